//! Putting tasks on the queue: the one path used by the API, the scheduler
//! and failover. It never runs a task; the worker does.

use crate::db::pairs::Pair;
use crate::db::tasks::{NewTask, Task};
use crate::db::{DbError, DbResult};
use crate::domain::{ArchiveId, ScheduleId, TaskKind};
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

/// Queues a task for the pair and wakes this process's worker. A pair
/// without a DRC host is placed first when the task needs one.
pub async fn enqueue(state: &AppState, pair: &Pair, req: Request<'_>) -> DbResult<Task> {
    let mut placed = None;
    let mut pair = pair.clone();
    if pair.dst_hypervisor_id.is_none() && req.kind != TaskKind::Backup {
        let (host, why) = crate::placement::choose(state, &pair).await?;
        if state.db.place_pair(pair.id, host).await? {
            tracing::info!(pair = %pair.id, "{why}");
            placed = Some(why);
        }
        pair = state.db.pair(pair.id).await?.ok_or_else(|| DbError::Conflict("The pair was deleted.".into()))?;
    }
    let pair = &pair;
    // The hosts a task holds, for the per-host order. A failover holds only
    // the DRC host: fencing the DC VM is one short command, and a DC host
    // that is down or busy must not hold the failover back.
    let (src, dst) = match req.kind {
        TaskKind::Backup => (Some(pair.src_hypervisor_id), None),
        TaskKind::Restore | TaskKind::Failover | TaskKind::Drill => (None, pair.dst_hypervisor_id),
        TaskKind::Replicate | TaskKind::Failback => (Some(pair.src_hypervisor_id), pair.dst_hypervisor_id),
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
    if let Some(why) = placed {
        state.db.append_log(task.id, &why).await?;
    }
    tracing::info!(task = %task.id, kind = %req.kind, pair = %pair.id, by = req.requested_by, "task queued");
    let mut detail = format!("pair {:?}, requested by {}", pair.name, req.requested_by);
    if let Some(a) = req.archive_id {
        detail.push_str(&format!(", archive {a}"));
    }
    if req.force {
        detail.push_str(", forced");
    }
    let action = format!("task.{}", req.kind);
    crate::service::audit::record(state, req.actor, &action, crate::service::audit::subject("task", task.id), &detail)
        .await;
    state.wake.task_queued();
    Ok(task)
}
