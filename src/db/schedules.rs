use serde::Serialize;
use sqlx::any::AnyRow;

use super::{flag, get, parse, parse_opt, ts, ts_opt, Db, DbResult};
use crate::domain::{CronExpr, PairId, ScheduleId, ScheduleKind, TaskId, TimeZone, Timestamp};

/// A recurring backup or replication of a pair.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Schedule {
    pub id: ScheduleId,
    pub pair_id: PairId,
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
    pub last_task_id: Option<TaskId>,
    /// What the last due run did: `queued`, `skipped: …` or `missed`.
    pub last_result: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct ScheduleFields {
    pub pair_id: PairId,
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
        id: parse(row, "id")?,
        pair_id: parse(row, "pair_id")?,
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
    pub async fn insert_schedule(&self, f: &ScheduleFields) -> DbResult<ScheduleId> {
        let id = ScheduleId::new();
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

    pub async fn update_schedule(&self, id: ScheduleId, f: &ScheduleFields) -> DbResult<()> {
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

    pub async fn schedule(&self, id: ScheduleId) -> DbResult<Option<Schedule>> {
        sqlx::query("SELECT * FROM schedules WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(schedule)
            .transpose()
    }

    pub async fn list_schedules(&self, pair_id: Option<PairId>) -> DbResult<Vec<Schedule>> {
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

    pub async fn delete_schedule(&self, id: ScheduleId) -> DbResult<bool> {
        let r = sqlx::query("DELETE FROM schedules WHERE id = ?").bind(id.to_string()).execute(self.pool()).await?;
        Ok(r.rows_affected() > 0)
    }
}

impl Db {
    /// Enabled schedules whose next run is due at `now`.
    pub async fn due_schedules(&self, now: Timestamp) -> DbResult<Vec<Schedule>> {
        sqlx::query(
            "SELECT * FROM schedules WHERE enabled = 1 AND next_run IS NOT NULL AND next_run <= ? ORDER BY next_run",
        )
        .bind(now.millis())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(schedule)
        .collect()
    }

    pub async fn earliest_next_run(&self) -> DbResult<Option<Timestamp>> {
        let row =
            sqlx::query("SELECT MIN(next_run) AS n FROM schedules WHERE enabled = 1").fetch_one(self.pool()).await?;
        Ok(get::<Option<i64>>(&row, "n")?.map(Timestamp))
    }

    /// Claims one due run of a schedule; false when another process already did.
    pub async fn claim_schedule_run(&self, schedule_id: ScheduleId, due: Timestamp, result: &str) -> DbResult<bool> {
        let r = sqlx::query("INSERT INTO schedule_runs (schedule_id, due_at, result, created_at) VALUES (?, ?, ?, ?)")
            .bind(schedule_id.to_string())
            .bind(due.millis())
            .bind(result)
            .bind(Timestamp::now().millis())
            .execute(self.pool())
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn set_schedule_run_result(
        &self,
        schedule_id: ScheduleId,
        due: Timestamp,
        result: &str,
        task: Option<TaskId>,
    ) -> DbResult<()> {
        sqlx::query("UPDATE schedule_runs SET result = ?, task_id = ? WHERE schedule_id = ? AND due_at = ?")
            .bind(result)
            .bind(task.map(|t| t.to_string()))
            .bind(schedule_id.to_string())
            .bind(due.millis())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Moves the schedule from `due` to `next`; false when its next run is
    /// no longer `due` (another process fired it, or it was changed).
    pub async fn advance_schedule(&self, id: ScheduleId, due: Timestamp, next: Option<Timestamp>) -> DbResult<bool> {
        let r = sqlx::query("UPDATE schedules SET next_run = ? WHERE id = ? AND next_run = ? AND enabled = 1")
            .bind(next.map(|t| t.millis()))
            .bind(id.to_string())
            .bind(due.millis())
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Shows what the run due at `due` did.
    pub async fn record_schedule_outcome(
        &self,
        id: ScheduleId,
        due: Timestamp,
        result: &str,
        task: Option<TaskId>,
    ) -> DbResult<()> {
        sqlx::query(
            "UPDATE schedules SET last_run = ?, last_result = ?, last_task_id = COALESCE(?, last_task_id) WHERE id = ?",
        )
        .bind(due.millis())
        .bind(result)
        .bind(task.map(|t| t.to_string()))
        .bind(id.to_string())
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
