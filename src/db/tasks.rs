use serde::Serialize;
use sqlx::any::AnyRow;

use super::{get, parse, parse_opt, ts, ts_opt, Db, DbResult};
use crate::domain::{ArchiveId, ErrorKind, HypervisorId, PairId, ScheduleId, TaskId, TaskKind, TaskStatus, Timestamp};

/// One unit of work in the queue.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Task {
    pub id: TaskId,
    pub kind: TaskKind,
    pub pair_id: PairId,
    pub status: TaskStatus,
    pub phase: String,
    pub progress: i64,
    pub bytes_done: i64,
    pub bytes_total: i64,
    /// Bytes per second of the current phase's transfer, while it moves.
    pub rate_bps: Option<i64>,
    /// Seconds the current phase still needs at that rate.
    pub eta_secs: Option<i64>,
    pub archive_id: Option<ArchiveId>,
    pub schedule_id: Option<ScheduleId>,
    pub requested_by: String,
    pub attempt: i64,
    pub max_attempts: i64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    pub error: Option<String>,
    /// Why it failed, for machines: `host_unreachable`, `not_ours`, …
    pub error_kind: Option<ErrorKind>,
    #[serde(skip)]
    pub seq: i64,
    #[serde(skip)]
    pub src_hypervisor_id: Option<HypervisorId>,
    #[serde(skip)]
    pub dst_hypervisor_id: Option<HypervisorId>,
    #[serde(skip)]
    pub cancel_requested: bool,
    /// A failover told to go on when the DC VM cannot be fenced.
    pub force: bool,
    /// A finished dump an earlier attempt left on the DC host.
    #[serde(skip)]
    pub resume_dump: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LogLine {
    /// Increases with every line written; pass the last one seen as `after`
    /// to fetch only newer lines.
    pub seq: i64,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub line: String,
}

pub(crate) fn task(row: &AnyRow) -> DbResult<Task> {
    Ok(Task {
        id: parse(row, "id")?,
        kind: parse(row, "kind")?,
        pair_id: parse(row, "pair_id")?,
        status: parse(row, "status")?,
        phase: get(row, "phase")?,
        progress: get(row, "progress")?,
        bytes_done: get(row, "bytes_done")?,
        bytes_total: get(row, "bytes_total")?,
        rate_bps: get(row, "rate_bps")?,
        eta_secs: get(row, "eta_secs")?,
        archive_id: parse_opt(row, "archive_id")?,
        schedule_id: parse_opt(row, "schedule_id")?,
        requested_by: get(row, "requested_by")?,
        attempt: get(row, "attempt")?,
        max_attempts: get(row, "max_attempts")?,
        created_at: ts(row, "created_at")?,
        started_at: ts_opt(row, "started_at")?,
        finished_at: ts_opt(row, "finished_at")?,
        error: get(row, "error")?,
        error_kind: parse_opt(row, "error_kind")?,
        seq: get(row, "seq")?,
        src_hypervisor_id: parse_opt(row, "src_hypervisor_id")?,
        dst_hypervisor_id: parse_opt(row, "dst_hypervisor_id")?,
        cancel_requested: get::<i64>(row, "cancel_requested")? != 0,
        force: get::<i64>(row, "forced")? != 0,
        resume_dump: get(row, "resume_dump")?,
    })
}

/// What a new task needs; the hypervisors are the ones it will touch, so
/// the worker can keep same-host tasks in order.
pub struct NewTask<'a> {
    pub kind: TaskKind,
    pub pair_id: PairId,
    pub archive_id: Option<ArchiveId>,
    pub schedule_id: Option<ScheduleId>,
    pub requested_by: &'a str,
    pub max_attempts: u32,
    pub src_hypervisor_id: Option<HypervisorId>,
    pub dst_hypervisor_id: Option<HypervisorId>,
    pub force: bool,
}

pub struct TaskFilter {
    pub status: Option<TaskStatus>,
    pub pair_id: Option<PairId>,
    pub kind: Option<TaskKind>,
    pub limit: i64,
    pub offset: i64,
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// The one INSERT of a new task, for the pool or a transaction.
pub(crate) fn insert_task_query<'q>(id: TaskId, t: &'q NewTask<'q>) -> Query<'q> {
    sqlx::query(
        "INSERT INTO tasks (id, kind, pair_id, status, phase, archive_id, schedule_id, requested_by, max_attempts, \
         src_hypervisor_id, dst_hypervisor_id, created_at, forced) \
         VALUES (?, ?, ?, 'queued', 'queued', ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(id.to_string())
    .bind(t.kind.as_str())
    .bind(t.pair_id.to_string())
    .bind(t.archive_id.map(|a| a.to_string()))
    .bind(t.schedule_id.map(|a| a.to_string()))
    .bind(t.requested_by)
    .bind(i64::from(t.max_attempts))
    .bind(t.src_hypervisor_id.map(|a| a.to_string()))
    .bind(t.dst_hypervisor_id.map(|a| a.to_string()))
    .bind(Timestamp::now().millis())
    .bind(i64::from(t.force))
}

/// The one INSERT of a task's log line.
pub(crate) fn log_query(task_id: TaskId, line: &str) -> Query<'_> {
    sqlx::query("INSERT INTO task_logs (task_id, at, line) VALUES (?, ?, ?)")
        .bind(task_id.to_string())
        .bind(Timestamp::now().millis())
        .bind(line)
}

impl Db {
    pub async fn insert_task(&self, t: &NewTask<'_>) -> DbResult<Task> {
        let id = TaskId::new();
        insert_task_query(id, t).execute(self.pool()).await?;
        self.task(id).await?.ok_or_else(|| super::DbError::Corrupt("task vanished after insert".into()))
    }

    pub async fn task(&self, id: TaskId) -> DbResult<Option<Task>> {
        sqlx::query("SELECT * FROM tasks WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(task)
            .transpose()
    }

    /// Newest first, filtered, paged. Returns the page and the total count.
    pub async fn list_tasks(&self, f: &TaskFilter) -> DbResult<(Vec<Task>, i64)> {
        let status = f.status.map(|s| s.as_str());
        let pair = f.pair_id.map(|p| p.to_string());
        let kind = f.kind.map(|k| k.as_str());
        let rows = sqlx::query(
            "SELECT * FROM tasks WHERE (? IS NULL OR status = ?) AND (? IS NULL OR pair_id = ?) \
             AND (? IS NULL OR kind = ?) ORDER BY seq DESC LIMIT ? OFFSET ?",
        )
        .bind(status)
        .bind(status)
        .bind(pair.clone())
        .bind(pair.clone())
        .bind(kind)
        .bind(kind)
        .bind(f.limit)
        .bind(f.offset)
        .fetch_all(self.pool())
        .await?;
        let total = sqlx::query(
            "SELECT COUNT(*) AS n FROM tasks WHERE (? IS NULL OR status = ?) AND (? IS NULL OR pair_id = ?) \
             AND (? IS NULL OR kind = ?)",
        )
        .bind(status)
        .bind(status)
        .bind(pair.clone())
        .bind(pair)
        .bind(kind)
        .bind(kind)
        .fetch_one(self.pool())
        .await?;
        Ok((rows.iter().map(task).collect::<DbResult<_>>()?, get(&total, "n")?))
    }

    /// Whether the pair has a queued or running task of this kind.
    pub async fn pair_has_open_task(&self, pair_id: PairId, kind: TaskKind) -> DbResult<bool> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM tasks WHERE pair_id = ? AND kind = ? AND status IN ('queued', 'running')",
        )
        .bind(pair_id.to_string())
        .bind(kind.as_str())
        .fetch_one(self.pool())
        .await?;
        Ok(get::<i64>(&row, "n")? > 0)
    }

    /// Each pair's newest task, in one query.
    pub async fn latest_task_per_pair(&self) -> DbResult<Vec<Task>> {
        sqlx::query(
            "SELECT t.* FROM tasks t JOIN (SELECT pair_id, MAX(seq) AS s FROM tasks GROUP BY pair_id) m ON t.seq = m.s",
        )
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(task)
        .collect()
    }

    /// For each pair and kind, the newest task that ended (succeeded or
    /// failed; cancelled ones say nothing) since `since`.
    pub async fn latest_outcomes(&self, since: Timestamp) -> DbResult<Vec<Task>> {
        sqlx::query(
            "SELECT t.* FROM tasks t JOIN (SELECT pair_id, kind, MAX(seq) AS s FROM tasks \
             WHERE status IN ('succeeded', 'failed') AND finished_at >= ? GROUP BY pair_id, kind) m ON t.seq = m.s",
        )
        .bind(since.millis())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(task)
        .collect()
    }

    /// How many tasks are queued and how many run, across all pairs.
    pub async fn queue_depth(&self) -> DbResult<(i64, i64)> {
        let row = sqlx::query(
            "SELECT COUNT(CASE WHEN status = 'queued' THEN 1 END) AS queued, \
             COUNT(CASE WHEN status = 'running' THEN 1 END) AS running FROM tasks WHERE status IN ('queued', 'running')",
        )
        .fetch_one(self.pool())
        .await?;
        Ok((get(&row, "queued")?, get(&row, "running")?))
    }

    /// Stops the pair's backups, restores and replications so a switch
    /// task can run: queued ones are cancelled at once, running ones are
    /// asked to stop (their worker cleans up). Returns how many of each.
    pub async fn clear_way_for_switch(&self, pair_id: PairId, why: &str) -> DbResult<(u64, u64)> {
        let queued = sqlx::query(
            "UPDATE tasks SET status = 'cancelled', phase = 'cancelled', finished_at = ?, error = ? \
             WHERE pair_id = ? AND status = 'queued' AND kind IN ('backup', 'restore', 'replicate', 'drill')",
        )
        .bind(Timestamp::now().millis())
        .bind(why)
        .bind(pair_id.to_string())
        .execute(self.pool())
        .await?;
        let running = sqlx::query(
            "UPDATE tasks SET cancel_requested = 1 WHERE pair_id = ? AND status = 'running' \
             AND kind IN ('backup', 'restore', 'replicate', 'drill')",
        )
        .bind(pair_id.to_string())
        .execute(self.pool())
        .await?;
        Ok((queued.rows_affected(), running.rows_affected()))
    }

    /// Asks every backup and replication touching a host declared down to
    /// stop, and cancels the queued ones: they would only wait on it.
    pub async fn cancel_work_on_host(&self, host: HypervisorId, why: &str) -> DbResult<u64> {
        let queued = sqlx::query(
            "UPDATE tasks SET status = 'cancelled', phase = 'cancelled', finished_at = ?, error = ? \
             WHERE status = 'queued' AND kind IN ('backup', 'replicate') AND src_hypervisor_id = ?",
        )
        .bind(Timestamp::now().millis())
        .bind(why)
        .bind(host.to_string())
        .execute(self.pool())
        .await?;
        let running = sqlx::query(
            "UPDATE tasks SET cancel_requested = 1 WHERE status = 'running' AND kind IN ('backup', 'replicate') \
             AND src_hypervisor_id = ? AND cancel_requested = 0",
        )
        .bind(host.to_string())
        .execute(self.pool())
        .await?;
        Ok(queued.rows_affected() + running.rows_affected())
    }

    /// Whether a failover of the pair was queued at or after `since`.
    pub async fn failover_since(&self, pair_id: PairId, since: Timestamp) -> DbResult<bool> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM tasks WHERE pair_id = ? AND kind = 'failover' AND created_at >= ?")
                .bind(pair_id.to_string())
                .bind(since.millis())
                .fetch_one(self.pool())
                .await?;
        Ok(get::<i64>(&row, "n")? > 0)
    }

    /// Whether the pair has any queued or running task.
    pub async fn pair_is_busy(&self, pair_id: PairId) -> DbResult<bool> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM tasks WHERE pair_id = ? AND status IN ('queued', 'running')")
            .bind(pair_id.to_string())
            .fetch_one(self.pool())
            .await?;
        Ok(get::<i64>(&row, "n")? > 0)
    }

    /// Archives of the pair that retention must keep whatever its rules say:
    /// the one the replica holds and every one a queued or running task names.
    pub async fn archives_in_use(&self, pair_id: PairId) -> DbResult<Vec<ArchiveId>> {
        let rows = sqlx::query(
            "SELECT archive_id FROM tasks WHERE pair_id = ? AND status IN ('queued', 'running') \
             AND archive_id IS NOT NULL \
             UNION SELECT replica_archive_id AS archive_id FROM pairs WHERE id = ? AND replica_archive_id IS NOT NULL",
        )
        .bind(pair_id.to_string())
        .bind(pair_id.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| parse(r, "archive_id")).collect()
    }

    /// Cancels a queued task at once; a running task is flagged and its
    /// worker stops it. Returns the task as it is now.
    pub async fn request_cancel(&self, id: TaskId) -> DbResult<Option<Task>> {
        let now = Timestamp::now().millis();
        sqlx::query(
            "UPDATE tasks SET status = 'cancelled', phase = 'cancelled', finished_at = ?, \
             error = 'Cancelled before it started.' WHERE id = ? AND status = 'queued'",
        )
        .bind(now)
        .bind(id.to_string())
        .execute(self.pool())
        .await?;
        sqlx::query("UPDATE tasks SET cancel_requested = 1 WHERE id = ? AND status = 'running'")
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        self.task(id).await
    }

    pub async fn append_log(&self, task_id: TaskId, line: &str) -> DbResult<()> {
        log_query(task_id, line).execute(self.pool()).await?;
        Ok(())
    }

    /// The whole log (bounded per task by what the worker writes).
    pub async fn task_log(&self, task_id: TaskId) -> DbResult<Vec<LogLine>> {
        sqlx::query("SELECT seq, at, line FROM task_logs WHERE task_id = ? ORDER BY seq")
            .bind(task_id.to_string())
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| Ok(LogLine { seq: get(r, "seq")?, at: ts(r, "at")?, line: get(r, "line")? }))
            .collect()
    }

    /// Lines written after the line numbered `after` (at most 5000 at once).
    pub async fn task_log_after(&self, task_id: TaskId, after: i64) -> DbResult<Vec<LogLine>> {
        sqlx::query("SELECT seq, at, line FROM task_logs WHERE task_id = ? AND seq > ? ORDER BY seq LIMIT 5000")
            .bind(task_id.to_string())
            .bind(after)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| Ok(LogLine { seq: get(r, "seq")?, at: ts(r, "at")?, line: get(r, "line")? }))
            .collect()
    }
}
