//! Alerts (one row per incident), who was told and how it went, and the
//! thresholds.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use super::{get, parse, ts, ts_opt, Db, DbResult};
use crate::domain::{AlertId, AlertKind, Severity, TargetId, Timestamp};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AlertSubject {
    /// `hypervisor`, `pair` or `task`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Alert {
    pub id: AlertId,
    pub kind: AlertKind,
    pub severity: Severity,
    pub subject: AlertSubject,
    pub message: String,
    #[schema(value_type = String, format = DateTime)]
    pub opened_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<Timestamp>,
    /// Why it closed, e.g. "dc1 answers again".
    pub resolution: Option<String>,
    /// `open` or `resolved`.
    pub state: &'static str,
    /// Kind and subject while open (one open alert per incident).
    #[serde(skip)]
    pub open_key: Option<String>,
    /// Who was told, and how it went.
    pub deliveries: Vec<Delivery>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub target_id: TargetId,
    pub target_name: String,
    /// `alert.opened` or `alert.resolved`.
    pub event: String,
    /// `pending`, `sending`, `sent` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub detail: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    #[serde(skip)]
    pub seq: i64,
    #[serde(skip)]
    pub alert_id: AlertId,
}

pub struct NewAlert<'a> {
    pub kind: AlertKind,
    pub severity: Severity,
    pub subject_type: &'a str,
    pub subject_id: &'a str,
    pub subject_name: &'a str,
    pub message: &'a str,
    pub open_key: &'a str,
}

/// Thresholds for `metric_high` and the host-down tolerance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct AlertSettings {
    pub cpu_pct: f64,
    pub mem_pct: f64,
    pub disk_pct: f64,
    /// Consecutive samples a condition must hold before an alert opens
    /// (and must be clear before it resolves).
    pub samples: i64,
    /// Seconds without a good probe before a host is down; null means
    /// `FAILOVER_TOLERANCE_SECS`.
    pub tolerance_secs: Option<i64>,
}

/// `all`, `open` or `resolved`, bound three times.
macro_rules! alert_state_filter {
    () => {
        "(? = 'all' OR (? = 'open' AND a.resolved_at IS NULL) OR (? = 'resolved' AND a.resolved_at IS NOT NULL))"
    };
}

fn alert(row: &AnyRow) -> DbResult<Alert> {
    let resolved_at = ts_opt(row, "resolved_at")?;
    Ok(Alert {
        id: parse(row, "id")?,
        kind: parse(row, "kind")?,
        severity: parse(row, "severity")?,
        subject: AlertSubject {
            kind: get(row, "subject_type")?,
            id: get(row, "subject_id")?,
            name: get(row, "subject_name")?,
        },
        message: get(row, "message")?,
        opened_at: ts(row, "opened_at")?,
        resolved_at,
        resolution: get(row, "resolution")?,
        state: if resolved_at.is_some() { "resolved" } else { "open" },
        open_key: get(row, "open_key")?,
        deliveries: Vec::new(),
    })
}

fn delivery(row: &AnyRow) -> DbResult<Delivery> {
    Ok(Delivery {
        target_id: parse(row, "target_id")?,
        target_name: get(row, "target_name")?,
        event: get(row, "event")?,
        status: get(row, "status")?,
        attempts: get(row, "attempts")?,
        detail: get(row, "detail")?,
        created_at: ts(row, "created_at")?,
        finished_at: ts_opt(row, "finished_at")?,
        seq: get(row, "seq")?,
        alert_id: parse(row, "alert_id")?,
    })
}

impl Db {
    /// Opens an alert unless one with the same key is open (then `None`):
    /// the unique key makes this safe from any number of processes.
    pub async fn open_alert(&self, a: &NewAlert<'_>) -> DbResult<Option<Alert>> {
        let id = AlertId::new();
        let r = sqlx::query(
            "INSERT INTO alerts (id, kind, severity, subject_type, subject_id, subject_name, message, open_key, opened_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(a.kind.as_str())
        .bind(a.severity.as_str())
        .bind(a.subject_type)
        .bind(a.subject_id)
        .bind(a.subject_name)
        .bind(a.message)
        .bind(a.open_key)
        .bind(Timestamp::now().millis())
        .execute(self.pool())
        .await;
        match r {
            Ok(_) => self.alert(id).await,
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Closes an open alert; false if it was already closed (by another
    /// process), so only one recovery notice goes out.
    pub async fn resolve_alert(&self, id: AlertId, resolution: &str) -> DbResult<bool> {
        let r = sqlx::query(
            "UPDATE alerts SET resolved_at = ?, resolution = ?, open_key = NULL WHERE id = ? AND resolved_at IS NULL",
        )
        .bind(Timestamp::now().millis())
        .bind(resolution)
        .bind(id.to_string())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn alert(&self, id: AlertId) -> DbResult<Option<Alert>> {
        let row =
            sqlx::query("SELECT * FROM alerts WHERE id = ?").bind(id.to_string()).fetch_optional(self.pool()).await?;
        let Some(row) = row else { return Ok(None) };
        let mut a = alert(&row)?;
        a.deliveries = self.deliveries_of(a.id).await?;
        Ok(Some(a))
    }

    pub async fn open_alerts(&self) -> DbResult<Vec<Alert>> {
        let rows = sqlx::query("SELECT * FROM alerts WHERE resolved_at IS NULL ORDER BY opened_at")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(alert).collect()
    }

    /// Newest first, with their deliveries; `open` None means both states.
    pub async fn list_alerts(&self, open: Option<bool>, limit: i64, offset: i64) -> DbResult<Vec<Alert>> {
        let state = match open {
            None => "all",
            Some(true) => "open",
            Some(false) => "resolved",
        };
        let rows = sqlx::query(concat!(
            "SELECT * FROM alerts a WHERE ",
            alert_state_filter!(),
            " ORDER BY opened_at DESC, id LIMIT ? OFFSET ?"
        ))
        .bind(state)
        .bind(state)
        .bind(state)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        let mut alerts = rows.iter().map(alert).collect::<DbResult<Vec<_>>>()?;
        // The same page again, joined to its deliveries (a derived table:
        // MySQL takes no LIMIT inside IN).
        let rows = sqlx::query(concat!(
            "SELECT d.* FROM alert_deliveries d JOIN (SELECT a.id FROM alerts a WHERE ",
            alert_state_filter!(),
            " ORDER BY opened_at DESC, id LIMIT ? OFFSET ?) p ON d.alert_id = p.id ORDER BY d.seq"
        ))
        .bind(state)
        .bind(state)
        .bind(state)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        let deliveries = rows.iter().map(delivery).collect::<DbResult<Vec<_>>>()?;
        for a in &mut alerts {
            a.deliveries = deliveries.iter().filter(|d| d.alert_id == a.id).cloned().collect();
        }
        Ok(alerts)
    }

    pub async fn count_open_alerts(&self) -> DbResult<i64> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM alerts WHERE resolved_at IS NULL").fetch_one(self.pool()).await?;
        get(&row, "n")
    }

    async fn deliveries_of(&self, id: AlertId) -> DbResult<Vec<Delivery>> {
        let rows = sqlx::query("SELECT * FROM alert_deliveries WHERE alert_id = ? ORDER BY seq")
            .bind(id.to_string())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(delivery).collect()
    }

    /// Records that `target` is to be told about `alert`; returns its seq.
    pub async fn add_delivery(
        &self,
        alert: AlertId,
        target: TargetId,
        target_name: &str,
        event: &str,
    ) -> DbResult<i64> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO alert_deliveries (alert_id, target_id, target_name, event, status, attempts, detail, created_at) \
             VALUES (?, ?, ?, ?, 'pending', 0, '', ?)",
        )
        .bind(alert.to_string())
        .bind(target.to_string())
        .bind(target_name)
        .bind(event)
        .bind(Timestamp::now().millis())
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query("SELECT MAX(seq) AS seq FROM alert_deliveries WHERE alert_id = ? AND target_id = ?")
            .bind(alert.to_string())
            .bind(target.to_string())
            .fetch_one(&mut *tx)
            .await?;
        let seq: i64 = get(&row, "seq")?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Claims a pending delivery for sending; false if someone else did.
    pub async fn claim_delivery(&self, seq: i64) -> DbResult<bool> {
        let r = sqlx::query("UPDATE alert_deliveries SET status = 'sending' WHERE seq = ? AND status = 'pending'")
            .bind(seq)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn finish_delivery(&self, seq: i64, ok: bool, attempts: u32, detail: &str) -> DbResult<()> {
        sqlx::query("UPDATE alert_deliveries SET status = ?, attempts = ?, detail = ?, finished_at = ? WHERE seq = ?")
            .bind(if ok { "sent" } else { "failed" })
            .bind(i64::from(attempts))
            .bind(detail)
            .bind(Timestamp::now().millis())
            .bind(seq)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Deliveries left pending or half-sent by a process that stopped,
    /// created before `before`: they are sent again (pending once more).
    pub async fn stale_deliveries(&self, before: Timestamp) -> DbResult<Vec<Delivery>> {
        sqlx::query("UPDATE alert_deliveries SET status = 'pending' WHERE status = 'sending' AND created_at < ?")
            .bind(before.millis())
            .execute(self.pool())
            .await?;
        let rows =
            sqlx::query("SELECT * FROM alert_deliveries WHERE status = 'pending' AND created_at < ? ORDER BY seq")
                .bind(before.millis())
                .fetch_all(self.pool())
                .await?;
        rows.iter().map(delivery).collect()
    }

    pub async fn alert_settings(&self) -> DbResult<AlertSettings> {
        let row = sqlx::query("SELECT * FROM alert_settings WHERE id = 1").fetch_one(self.pool()).await?;
        Ok(AlertSettings {
            cpu_pct: get(&row, "cpu_pct")?,
            mem_pct: get(&row, "mem_pct")?,
            disk_pct: get(&row, "disk_pct")?,
            samples: get(&row, "samples")?,
            tolerance_secs: get(&row, "tolerance_secs")?,
        })
    }

    pub async fn set_alert_settings(&self, s: &AlertSettings) -> DbResult<()> {
        sqlx::query(
            "UPDATE alert_settings SET cpu_pct = ?, mem_pct = ?, disk_pct = ?, samples = ?, tolerance_secs = ?, \
             updated_at = ? WHERE id = 1",
        )
        .bind(s.cpu_pct)
        .bind(s.mem_pct)
        .bind(s.disk_pct)
        .bind(s.samples)
        .bind(s.tolerance_secs)
        .bind(Timestamp::now().millis())
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
