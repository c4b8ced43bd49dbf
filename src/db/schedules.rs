use serde::Serialize;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{flag, get, parse, parse_opt, ts, ts_opt, uuid, Db, DbResult};
use crate::domain::{CronExpr, ScheduleKind, TimeZone, Timestamp};

/// A recurring backup or replication of a pair.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Schedule {
    pub id: Uuid,
    pub pair_id: Uuid,
    pub kind: ScheduleKind,
    /// Set when the schedule was made as a daily time.
    pub hour: Option<u8>,
    pub minute: Option<u8>,
    /// The five-field cron expression in force (a daily time is shown as cron too).
    #[schema(value_type = String)]
    pub cron: CronExpr,
    #[schema(value_type = String)]
    pub timezone: TimeZone,
    pub enabled: bool,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_run: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_run: Option<Timestamp>,
    pub last_task_id: Option<Uuid>,
    /// What the last due run did: `queued`, `skipped: …` or `missed`.
    pub last_result: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct ScheduleFields {
    pub pair_id: Uuid,
    pub kind: ScheduleKind,
    pub hour: Option<u8>,
    pub minute: Option<u8>,
    pub cron: CronExpr,
    pub timezone: TimeZone,
    pub enabled: bool,
    pub next_run: Option<Timestamp>,
}

fn small(row: &AnyRow, col: &str) -> DbResult<Option<u8>> {
    let n: Option<i64> = get(row, col)?;
    n.map(|n| u8::try_from(n).map_err(|_| super::DbError::Corrupt(format!("{col} = {n}")))).transpose()
}

pub(crate) fn schedule(row: &AnyRow) -> DbResult<Schedule> {
    Ok(Schedule {
        id: uuid(row, "id")?,
        pair_id: uuid(row, "pair_id")?,
        kind: parse(row, "kind")?,
        hour: small(row, "hour")?,
        minute: small(row, "minute")?,
        cron: {
            let s: String = get(row, "cron")?;
            CronExpr::try_from(s.clone()).map_err(|_| super::DbError::Corrupt(format!("cron = {s:?}")))?
        },
        timezone: parse(row, "timezone")?,
        enabled: flag(row, "enabled")?,
        next_run: ts_opt(row, "next_run")?,
        last_run: ts_opt(row, "last_run")?,
        last_task_id: parse_opt(row, "last_task_id")?,
        last_result: get(row, "last_result")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

impl Db {
    pub async fn insert_schedule(&self, f: &ScheduleFields) -> DbResult<Uuid> {
        let id = Uuid::new_v4();
        let now = Timestamp::now().millis();
        sqlx::query(
            "INSERT INTO schedules (id, pair_id, kind, hour, minute, cron, timezone, enabled, next_run, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(f.pair_id.to_string())
        .bind(f.kind.as_str())
        .bind(f.hour.map(i64::from))
        .bind(f.minute.map(i64::from))
        .bind(f.cron.as_str())
        .bind(f.timezone.name())
        .bind(i64::from(f.enabled))
        .bind(f.next_run.map(|t| t.millis()))
        .bind(now)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(id)
    }

    pub async fn update_schedule(&self, id: Uuid, f: &ScheduleFields) -> DbResult<()> {
        sqlx::query(
            "UPDATE schedules SET pair_id = ?, kind = ?, hour = ?, minute = ?, cron = ?, timezone = ?, enabled = ?, \
             next_run = ?, updated_at = ? WHERE id = ?",
        )
        .bind(f.pair_id.to_string())
        .bind(f.kind.as_str())
        .bind(f.hour.map(i64::from))
        .bind(f.minute.map(i64::from))
        .bind(f.cron.as_str())
        .bind(f.timezone.name())
        .bind(i64::from(f.enabled))
        .bind(f.next_run.map(|t| t.millis()))
        .bind(Timestamp::now().millis())
        .bind(id.to_string())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn schedule(&self, id: Uuid) -> DbResult<Option<Schedule>> {
        sqlx::query("SELECT * FROM schedules WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(schedule)
            .transpose()
    }

    pub async fn list_schedules(&self, pair_id: Option<Uuid>) -> DbResult<Vec<Schedule>> {
        let pair = pair_id.map(|p| p.to_string());
        sqlx::query("SELECT * FROM schedules WHERE (? IS NULL OR pair_id = ?) ORDER BY created_at, id")
            .bind(pair.clone())
            .bind(pair)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(schedule)
            .collect()
    }

    pub async fn delete_schedule(&self, id: Uuid) -> DbResult<bool> {
        let r = sqlx::query("DELETE FROM schedules WHERE id = ?").bind(id.to_string()).execute(self.pool()).await?;
        Ok(r.rows_affected() > 0)
    }
}
