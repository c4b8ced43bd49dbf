//! The audit log's rows: appended, pruned to a bound in the same write,
//! listed newest first.

use serde::Serialize;
use sqlx::any::AnyRow;

use super::{get, ts, Db, DbResult};
use crate::domain::Timestamp;

/// One recorded action.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Grows with every entry; the newest has the highest.
    pub seq: i64,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// A username, or a system actor: `schedule <id>`, `monitor`, `cli`,
    /// `anonymous` (a failed login).
    pub actor: String,
    /// What was done, e.g. `pair.update`, `task.backup`, `session.login`.
    pub action: String,
    /// What it was done to: `user`, `token`, `hypervisor`, `pair`, `task`, …
    pub subject_type: String,
    pub subject_id: Option<String>,
    /// A short note: a name, which fields changed (names only, never values
    /// of secret fields).
    pub detail: String,
    /// The client's address, when the action came over HTTP.
    pub source_ip: Option<String>,
}

pub struct NewAuditEntry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub subject_type: &'a str,
    pub subject_id: Option<&'a str>,
    pub detail: &'a str,
    pub source_ip: Option<&'a str>,
}

pub struct AuditFilter {
    pub actor: Option<String>,
    /// An exact action, e.g. `pair.update`.
    pub action: Option<String>,
    /// A LIKE pattern (escape character `!`) for a family of actions.
    pub action_like: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

fn entry(row: &AnyRow) -> DbResult<AuditEntry> {
    Ok(AuditEntry {
        seq: get(row, "seq")?,
        at: ts(row, "at")?,
        actor: get(row, "actor")?,
        action: get(row, "action")?,
        subject_type: get(row, "subject_type")?,
        subject_id: get(row, "subject_id")?,
        detail: get(row, "detail")?,
        source_ip: get(row, "source_ip")?,
    })
}

/// The filter's condition, spliced into queries at compile time.
macro_rules! filter {
    () => {
        "(? IS NULL OR actor = ?) AND (? IS NULL OR action = ?) AND (? IS NULL OR action LIKE ? ESCAPE '!')"
    };
}

impl Db {
    /// Appends the entry and removes the oldest beyond the newest `keep`
    /// (sequence numbers only grow, so the bound holds whatever number of
    /// processes write).
    pub async fn insert_audit(&self, e: &NewAuditEntry<'_>, keep: u64) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO audit (at, actor, action, subject_type, subject_id, detail, source_ip) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(Timestamp::now().millis())
        .bind(e.actor)
        .bind(e.action)
        .bind(e.subject_type)
        .bind(e.subject_id)
        .bind(e.detail)
        .bind(e.source_ip)
        .execute(self.pool())
        .await?;
        let newest: Option<i64> =
            get(&sqlx::query("SELECT MAX(seq) AS m FROM audit").fetch_one(self.pool()).await?, "m")?;
        if let Some(newest) = newest {
            let keep = i64::try_from(keep).unwrap_or(i64::MAX);
            sqlx::query("DELETE FROM audit WHERE seq <= ?")
                .bind(newest.saturating_sub(keep))
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }

    /// Entries newest first, with the total matching the filter.
    pub async fn list_audit(&self, f: &AuditFilter) -> DbResult<(Vec<AuditEntry>, i64)> {
        let rows = sqlx::query(concat!(
            "SELECT seq, at, actor, action, subject_type, subject_id, detail, source_ip FROM audit WHERE ",
            filter!(),
            " ORDER BY seq DESC LIMIT ? OFFSET ?"
        ))
        .bind(f.actor.as_deref())
        .bind(f.actor.as_deref())
        .bind(f.action.as_deref())
        .bind(f.action.as_deref())
        .bind(f.action_like.as_deref())
        .bind(f.action_like.as_deref())
        .bind(f.limit)
        .bind(f.offset)
        .fetch_all(self.pool())
        .await?;
        let total = sqlx::query(concat!("SELECT COUNT(*) AS n FROM audit WHERE ", filter!()))
            .bind(f.actor.as_deref())
            .bind(f.actor.as_deref())
            .bind(f.action.as_deref())
            .bind(f.action.as_deref())
            .bind(f.action_like.as_deref())
            .bind(f.action_like.as_deref())
            .fetch_one(self.pool())
            .await?;
        Ok((rows.iter().map(entry).collect::<DbResult<_>>()?, get(&total, "n")?))
    }
}
