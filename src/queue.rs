//! Putting tasks on the queue: the one path used by the API, the scheduler
//! and failover. It never runs a task; the worker does.

use crate::db::pairs::Pair;
use crate::db::tasks::{NewTask, Task};
use crate::db::{DbError, DbResult};
use crate::domain::{ArchiveId, ScheduleId, TaskId, TaskKind};
use crate::state::AppState;

pub struct Request<'a> {
    pub kind: TaskKind,
    pub archive_id: Option<ArchiveId>,
    pub schedule_id: Option<ScheduleId>,
    pub requested_by: &'a str,
    /// Who answers for it in the audit log: a username, `schedule <id>`,
    /// `monitor`.
    pub actor: &'a str,
    /// For a failover: go on even if the DC VM cannot be fenced.
    pub force: bool,
}

/// A task ready to insert, with its first log lines.
pub struct Planned<'a> {
    pub task: NewTask<'a>,
    pub log: Vec<String>,
}

/// Everything about a new task except writing it: placement of a pair
/// without a DRC host (when the task needs one) and the hosts it holds.
pub async fn plan<'a>(state: &AppState, pair: &Pair, req: &Request<'a>) -> DbResult<Planned<'a>> {
    let mut log = vec![format!("queued by {}", req.requested_by)];
    let mut pair = pair.clone();
    if pair.dst_hypervisor_id.is_none() && req.kind != TaskKind::Backup {
        let (host, why) = crate::placement::choose(state, &pair).await?;
        if state.db.place_pair(pair.id, host).await? {
            tracing::info!(pair = %pair.id, "{why}");
            log.push(why);
        }
        pair = state.db.pair(pair.id).await?.ok_or_else(|| DbError::Conflict("The pair was deleted.".into()))?;
    }
    // The hosts a task holds, for the per-host order. A failover holds only
    // the DRC host: fencing the DC VM is one short command, and a DC host
    // that is down or busy must not hold the failover back.
    let (src, dst) = match req.kind {
        TaskKind::Backup => (Some(pair.src_hypervisor_id), None),
        TaskKind::Restore | TaskKind::Failover | TaskKind::Drill => (None, pair.dst_hypervisor_id),
        TaskKind::Replicate | TaskKind::Failback => (Some(pair.src_hypervisor_id), pair.dst_hypervisor_id),
    };
    Ok(Planned {
        task: NewTask {
            kind: req.kind,
            pair_id: pair.id,
            archive_id: req.archive_id,
            schedule_id: req.schedule_id,
            requested_by: req.requested_by,
            max_attempts: state.settings.max_attempts,
            src_hypervisor_id: src,
            dst_hypervisor_id: dst,
            force: req.force,
        },
        log,
    })
}

/// Queues a task for the pair and wakes this process's worker. A pair
/// without a DRC host is placed first when the task needs one.
pub async fn enqueue(state: &AppState, pair: &Pair, req: Request<'_>) -> DbResult<Task> {
    let planned = plan(state, pair, &req).await?;
    let task = state.db.insert_task(&planned.task).await?;
    for line in &planned.log {
        state.db.append_log(task.id, line).await?;
    }
    record_queued(state, pair, &req, task.id).await;
    state.wake.task_queued();
    Ok(task)
}

/// Logs a queued task and records it in the audit log (the scheduler,
/// which queues inside its own transaction, calls this after the commit).
pub async fn record_queued(state: &AppState, pair: &Pair, req: &Request<'_>, task: TaskId) {
    tracing::info!(task = %task, kind = %req.kind, pair = %pair.id, by = req.requested_by, "task queued");
    let mut detail = format!("pair {:?}, requested by {}", pair.name, req.requested_by);
    if let Some(a) = req.archive_id {
        detail.push_str(&format!(", archive {a}"));
    }
    if req.force {
        detail.push_str(", forced");
    }
    let action = format!("task.{}", req.kind);
    crate::service::audit::record(state, req.actor, &action, crate::service::audit::subject("task", task), &detail)
        .await;
}
