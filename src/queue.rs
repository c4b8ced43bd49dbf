//! Putting tasks on the queue: the one path used by the API, the scheduler
//! and failover. It never runs a task; the worker does.

use crate::db::pairs::Pair;
use crate::db::tasks::{NewTask, Task};
use crate::db::DbResult;
use crate::domain::{ArchiveId, ScheduleId, TaskKind};
use crate::state::AppState;

pub struct Request<'a> {
    pub kind: TaskKind,
    pub archive_id: Option<ArchiveId>,
    pub schedule_id: Option<ScheduleId>,
    pub requested_by: &'a str,
    /// For a failover: go on even if the DC VM cannot be fenced.
    pub force: bool,
}

/// Queues a task for the pair and wakes this process's worker.
pub async fn enqueue(state: &AppState, pair: &Pair, req: Request<'_>) -> DbResult<Task> {
    // The hosts a task holds, for the per-host order. A failover holds only
    // the DRC host: fencing the DC VM is one short command, and a DC host
    // that is down or busy must not hold the failover back.
    let (src, dst) = match req.kind {
        TaskKind::Backup => (Some(pair.src_hypervisor_id), None),
        TaskKind::Restore | TaskKind::Failover | TaskKind::Drill => (None, Some(pair.dst_hypervisor_id)),
        TaskKind::Replicate | TaskKind::Failback => (Some(pair.src_hypervisor_id), Some(pair.dst_hypervisor_id)),
    };
    let task = state
        .db
        .insert_task(&NewTask {
            kind: req.kind,
            pair_id: pair.id,
            archive_id: req.archive_id,
            schedule_id: req.schedule_id,
            requested_by: req.requested_by,
            max_attempts: state.settings.max_attempts,
            src_hypervisor_id: src,
            dst_hypervisor_id: dst,
            force: req.force,
        })
        .await?;
    state.db.append_log(task.id, &format!("queued by {}", req.requested_by)).await?;
    tracing::info!(task = %task.id, kind = %req.kind, pair = %pair.id, by = req.requested_by, "task queued");
    state.wake.task_queued();
    Ok(task)
}
