use serde::Serialize;
use sqlx::any::AnyRow;

use super::tasks::NewTask;
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

    /// Fires the run of a schedule due at `due` in one transaction: moves
    /// `next_run` on (only if it is still `due`: whoever moves it owns the
    /// run), records the run and its outcome, and queues its task with its
    /// first log lines. A process that dies in between leaves either all of
    /// it or none: the run is never lost and never queued twice. Returns
    /// the task queued, or None when another process (or an API change)
    /// moved the schedule first.
    pub async fn fire_schedule(&self, f: &Firing<'_>) -> DbResult<Option<Option<TaskId>>> {
        let mut tx = self.pool().begin().await?;
        // The write first: SQLite takes its write lock at once.
        let moved = sqlx::query("UPDATE schedules SET next_run = ? WHERE id = ? AND next_run = ? AND enabled = 1")
            .bind(f.next.map(|t| t.millis()))
            .bind(f.schedule_id.to_string())
            .bind(f.due.millis())
            .execute(&mut *tx)
            .await?;
        if moved.rows_affected() == 0 {
            return Ok(None);
        }
        let task_id = f.task.as_ref().map(|_| TaskId::new());
        let run = sqlx::query(
            "INSERT INTO schedule_runs (schedule_id, due_at, result, created_at, task_id) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(f.schedule_id.to_string())
        .bind(f.due.millis())
        .bind(f.result)
        .bind(Timestamp::now().millis())
        .bind(task_id.map(|t| t.to_string()))
        .execute(&mut *tx)
        .await;
        match run {
            Ok(_) => {}
            // A second guard: the (schedule, due time) row exists already.
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        if let (Some(t), Some(id)) = (&f.task, task_id) {
            super::tasks::insert_task_query(id, t).execute(&mut *tx).await?;
            for line in f.log {
                super::tasks::log_query(id, line).execute(&mut *tx).await?;
            }
        }
        sqlx::query(
            "UPDATE schedules SET last_run = ?, last_result = ?, last_task_id = COALESCE(?, last_task_id) WHERE id = ?",
        )
        .bind(f.due.millis())
        .bind(f.result)
        .bind(task_id.map(|t| t.to_string()))
        .bind(f.schedule_id.to_string())
        .execute(&mut *tx)
        .await?;
        #[cfg(debug_assertions)]
        die_probe(f.schedule_id);
        tx.commit().await?;
        Ok(Some(task_id))
    }
}

/// One run of a schedule, as `fire_schedule` records it.
pub struct Firing<'a> {
    pub schedule_id: ScheduleId,
    pub due: Timestamp,
    pub next: Option<Timestamp>,
    /// `queued`, `skipped: …`, `missed: …`.
    pub result: &'a str,
    pub task: Option<NewTask<'a>>,
    /// The task's first log lines.
    pub log: &'a [String],
}

/// Debug builds only: `DRSWITCH_DEBUG_DIE_FIRING=<schedule id>` kills the
/// process inside that schedule's firing transaction, after every write
/// and before the commit, so a test can prove the run is not lost.
#[cfg(debug_assertions)]
fn die_probe(id: ScheduleId) {
    if std::env::var("DRSWITCH_DEBUG_DIE_FIRING").ok().as_deref() == Some(id.to_string().as_str()) {
        std::process::abort();
    }
}
