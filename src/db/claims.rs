//! The worker's side of the task table: claiming with a lease, heartbeats,
//! progress, final states, and recovery of tasks whose worker died.

use std::collections::HashSet;

use sqlx::Row;

use super::tasks::{task, Task};
use super::{get, Db, DbResult};
use crate::domain::{ArchiveId, ErrorKind, TaskId, TaskStatus, Timestamp};

/// Queued tasks read per query while looking for one to claim.
const CLAIM_PAGE: i64 = 500;

/// What happened to a task whose lease ran out.
#[derive(Debug)]
pub struct Expired {
    pub task_id: TaskId,
    pub requeued: bool,
}

impl Db {
    /// Claims the oldest queued task whose hypervisors no running task
    /// touches and that no older queued task touching them is waiting
    /// before; failovers, failbacks and drills before all others. Expired leases are recovered first. All of this runs under
    /// one row lock, so any number of workers claim one at a time.
    pub async fn claim_next(&self, worker_id: &str, lease_ms: i64) -> DbResult<(Option<Task>, Vec<Expired>)> {
        let now = Timestamp::now().millis();
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE claim_lock SET counter = counter + 1 WHERE id = 1").execute(&mut *tx).await?;

        let expired_rows = sqlx::query("SELECT * FROM tasks WHERE status = 'running' AND lease_until < ?")
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        let mut expired = Vec::new();
        for row in &expired_rows {
            let t = task(row)?;
            // A task that died while replacing a replica left that VM
            // half-written: only its next attempt can make it whole, so it
            // is queued again even past its attempts (up to twice as many)
            // and a cancel waits for that.
            let in_flux = sqlx::query("SELECT COUNT(*) AS n FROM pairs WHERE replica_task_id = ?")
                .bind(t.id.to_string())
                .fetch_one(&mut *tx)
                .await
                .and_then(|r| r.try_get::<i64, _>("n"))?
                > 0;
            let requeue = if in_flux {
                t.attempt < 2 * t.max_attempts
            } else {
                t.attempt < t.max_attempts && !t.cancel_requested
            };
            if requeue {
                sqlx::query(
                    "UPDATE tasks SET status = 'queued', phase = 'queued', worker_id = NULL, lease_until = NULL, \
                     progress = 0, bytes_done = 0, bytes_total = 0, cancel_requested = 0 WHERE id = ?",
                )
                .bind(t.id.to_string())
                .execute(&mut *tx)
                .await?;
            } else {
                let error = if t.cancel_requested {
                    "Cancelled; the worker running it stopped before it could clean up.".to_string()
                } else {
                    format!("The worker running this task stopped responding on each of {} attempts.", t.attempt)
                };
                let status = if t.cancel_requested { TaskStatus::Cancelled } else { TaskStatus::Failed };
                let kind = (!t.cancel_requested).then_some(ErrorKind::WorkerLost.as_str());
                sqlx::query(
                    "UPDATE tasks SET status = ?, finished_at = ?, error = ?, error_kind = ?, worker_id = NULL, \
                     lease_until = NULL WHERE id = ?",
                )
                .bind(status.as_str())
                .bind(now)
                .bind(error)
                .bind(kind)
                .bind(t.id.to_string())
                .execute(&mut *tx)
                .await?;
            }
            let line = if requeue && in_flux {
                format!(
                    "the worker running attempt {} stopped while replacing the replica; queued again to make it whole",
                    t.attempt
                )
            } else if requeue {
                format!("the worker running attempt {} stopped responding; queued again", t.attempt)
            } else {
                "the worker running this task stopped responding; giving up".to_string()
            };
            sqlx::query("INSERT INTO task_logs (task_id, at, line) VALUES (?, ?, ?)")
                .bind(t.id.to_string())
                .bind(now)
                .bind(line)
                .execute(&mut *tx)
                .await?;
            expired.push(Expired { task_id: t.id, requeued: requeue });
        }

        let busy_rows =
            sqlx::query("SELECT pair_id, src_hypervisor_id, dst_hypervisor_id FROM tasks WHERE status = 'running'")
                .fetch_all(&mut *tx)
                .await?;
        // Hosts and pairs a running task holds: tasks of one pair never run
        // side by side, whatever hosts they touch.
        let mut blocked: HashSet<String> = HashSet::new();
        for r in &busy_rows {
            for col in ["pair_id", "src_hypervisor_id", "dst_hypervisor_id"] {
                if let Some(h) = get::<Option<String>>(r, col)? {
                    blocked.insert(h);
                }
            }
        }
        let holds_of = |t: &Task| -> Vec<String> {
            std::iter::once(t.pair_id.to_string())
                .chain([t.src_hypervisor_id, t.dst_hypervisor_id].iter().flatten().map(|h| h.to_string()))
                .collect()
        };
        // Failover, failback and drill come first: they are few, so one
        // query reads them all. One that must wait still holds its hosts
        // and pair against the ordinary queue behind it.
        let mut chosen = None;
        let switch = sqlx::query(
            "SELECT * FROM tasks WHERE status = 'queued' AND kind IN ('failover', 'failback', 'drill') \
             ORDER BY CASE kind WHEN 'failover' THEN 0 WHEN 'failback' THEN 1 ELSE 2 END, seq",
        )
        .fetch_all(&mut *tx)
        .await?;
        for row in &switch {
            let t = task(row)?;
            let holds = holds_of(&t);
            if holds.iter().any(|h| blocked.contains(h)) {
                blocked.extend(holds);
                continue;
            }
            chosen = Some(t);
            break;
        }
        // The queue is read in pages, so a long backlog on one busy host
        // never hides a runnable task of another host behind it.
        let mut after = 0i64;
        'pages: while chosen.is_none() {
            let page = sqlx::query("SELECT * FROM tasks WHERE status = 'queued' AND seq > ? ORDER BY seq LIMIT ?")
                .bind(after)
                .bind(CLAIM_PAGE)
                .fetch_all(&mut *tx)
                .await?;
            for row in &page {
                let t = task(row)?;
                after = t.seq;
                if t.kind.is_switch() {
                    continue;
                }
                let holds = holds_of(&t);
                if holds.iter().any(|h| blocked.contains(h)) {
                    // Keep queue order per host and per pair: later tasks on these wait too.
                    blocked.extend(holds);
                    continue;
                }
                chosen = Some(t);
                break 'pages;
            }
            if (page.len() as i64) < CLAIM_PAGE {
                break;
            }
        }
        let Some(t) = chosen else {
            tx.commit().await?;
            return Ok((None, expired));
        };
        // Read the clock only now: every task seen finished above ended before this instant.
        let started = Timestamp::now().millis();
        sqlx::query(
            "UPDATE tasks SET status = 'running', phase = 'starting', worker_id = ?, lease_until = ?, \
             attempt = attempt + 1, started_at = COALESCE(started_at, ?), error = NULL, error_kind = NULL \
             WHERE id = ? AND status = 'queued'",
        )
        .bind(worker_id)
        .bind(started + lease_ms)
        .bind(started)
        .bind(t.id.to_string())
        .execute(&mut *tx)
        .await?;
        let claimed =
            sqlx::query("SELECT * FROM tasks WHERE id = ?").bind(t.id.to_string()).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok((Some(task(&claimed)?), expired))
    }

    /// Extends the lease; returns (still ours, cancel requested).
    pub async fn heartbeat(&self, id: TaskId, worker_id: &str, lease_ms: i64) -> DbResult<(bool, bool)> {
        let now = Timestamp::now().millis();
        let r = sqlx::query("UPDATE tasks SET lease_until = ? WHERE id = ? AND worker_id = ? AND status = 'running'")
            .bind(now + lease_ms)
            .bind(id.to_string())
            .bind(worker_id)
            .execute(self.pool())
            .await?;
        if r.rows_affected() == 0 {
            return Ok((false, false));
        }
        let row = sqlx::query("SELECT cancel_requested FROM tasks WHERE id = ?")
            .bind(id.to_string())
            .fetch_one(self.pool())
            .await?;
        Ok((true, get::<i64>(&row, "cancel_requested")? != 0))
    }

    pub async fn set_progress(&self, id: TaskId, p: &crate::worker::context::Progress) -> DbResult<()> {
        sqlx::query(
            "UPDATE tasks SET phase = ?, progress = ?, bytes_done = ?, bytes_total = ?, rate_bps = ?, eta_secs = ? \
             WHERE id = ? AND status = 'running'",
        )
        .bind(p.phase)
        .bind(p.percent.clamp(0, 100))
        .bind(p.done)
        .bind(p.total)
        .bind(p.rate_bps)
        .bind(p.eta_secs)
        .bind(id.to_string())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records (or clears) the finished dump this task's attempt left on
    /// the DC host, so a later attempt copies on from it.
    pub async fn set_resume_dump(&self, id: TaskId, path: Option<&str>) -> DbResult<()> {
        sqlx::query("UPDATE tasks SET resume_dump = ? WHERE id = ?")
            .bind(path)
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn set_task_archive(&self, id: TaskId, archive_id: ArchiveId) -> DbResult<()> {
        sqlx::query("UPDATE tasks SET archive_id = ? WHERE id = ?")
            .bind(archive_id.to_string())
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Puts a task this worker holds back in the queue without counting the
    /// attempt (the process is shutting down, not failing).
    pub async fn hand_back_task(&self, id: TaskId, worker_id: &str) -> DbResult<bool> {
        let r = sqlx::query(
            "UPDATE tasks SET status = 'queued', phase = 'queued', worker_id = NULL, lease_until = NULL, \
             attempt = CASE WHEN attempt > 0 THEN attempt - 1 ELSE 0 END, progress = 0, bytes_done = 0, \
             bytes_total = 0 WHERE id = ? AND worker_id = ? AND status = 'running'",
        )
        .bind(id.to_string())
        .bind(worker_id)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Records the end of a task this worker still holds.
    pub async fn finish_task(
        &self,
        id: TaskId,
        worker_id: &str,
        status: TaskStatus,
        error: Option<&str>,
        kind: Option<ErrorKind>,
    ) -> DbResult<bool> {
        let progress_sql = if status == TaskStatus::Succeeded { 100 } else { -1 };
        let r = sqlx::query(
            "UPDATE tasks SET status = ?, phase = ?, error = ?, error_kind = ?, finished_at = ?, lease_until = NULL, rate_bps = NULL, eta_secs = NULL, \
             progress = CASE WHEN ? >= 0 THEN ? ELSE progress END WHERE id = ? AND worker_id = ? AND status = 'running'",
        )
        .bind(status.as_str())
        .bind(status.as_str())
        .bind(error)
        .bind(kind.map(ErrorKind::as_str))
        .bind(Timestamp::now().millis())
        .bind(progress_sql)
        .bind(progress_sql)
        .bind(id.to_string())
        .bind(worker_id)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }
}
