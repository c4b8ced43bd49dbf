//! Putting work on the queue and taking it off: the guards before a task is
//! queued, cancelling, and reading tasks and their logs.

use super::{require, ServiceError, ServiceResult};
use crate::db::pairs::Pair;
use crate::db::tasks::{LogLine, Task, TaskFilter};
use crate::db::users::User;
use crate::domain::{ArchiveId, PairId, PairState, Role, TaskId, TaskKind, TaskStatus};
use crate::queue::{enqueue, Request};
use crate::state::AppState;

/// Who may queue and cancel tasks.
pub const RUN: Role = Role::Operator;

/// Queues `kind` for the pair; `archive_id` names the archive to restore
/// (or drill), `force` lets a failover go on when the DC VM cannot be
/// fenced.
pub async fn queue(
    state: &AppState,
    actor: &User,
    pair_id: PairId,
    kind: TaskKind,
    archive_id: Option<ArchiveId>,
    force: bool,
) -> ServiceResult<Task> {
    require(actor, RUN)?;
    if let Some(a) = archive_id {
        let pair = super::pairs::load(state, pair_id).await?;
        match state.db.archive(a).await? {
            Some(arch) if arch.pair_id == pair.id && arch.verified_at.is_some() => {}
            _ => return Err(ServiceError::clash("archive_id", "is not a verified archive of this pair")),
        }
    }
    if force && kind != TaskKind::Failover {
        return Err(ServiceError::invalid("force", "only a failover can be forced"));
    }
    queue_as(state, &actor.username, &actor.username, pair_id, kind, archive_id, force).await
}

/// Queues `kind` for the pair on behalf of `by`, whose role the caller
/// checked (a user now, or the user who started a recovery plan), with
/// `actor` answering for it in the audit log: the
/// pair must be enabled and in a state that allows the kind, one switch
/// task per pair at a time, and a failover first clears the pair's other
/// work.
pub async fn queue_as(
    state: &AppState,
    actor: &str,
    by: &str,
    pair_id: PairId,
    kind: TaskKind,
    archive_id: Option<ArchiveId>,
    force: bool,
) -> ServiceResult<Task> {
    let pair = super::pairs::load(state, pair_id).await?;
    if !pair.enabled {
        return Err(ServiceError::Conflict("This pair is disabled; enable it first.".into()));
    }
    allowed_in_state(&pair, kind)?;
    if !kind.is_switch() && state.db.pair_has_open_task(pair.id, TaskKind::Failover).await? {
        return Err(ServiceError::Conflict(format!("A failover of this pair is queued or running; no {kind} now.")));
    }
    if kind.is_switch() && state.db.pair_has_open_task(pair.id, kind).await? {
        return Err(ServiceError::Conflict(format!("A {kind} of this pair is already queued or running.")));
    }
    if kind == TaskKind::Failover {
        let why = format!("Cancelled: a failover of this pair was requested by {by}.");
        let (queued, running) = state.db.clear_way_for_switch(pair.id, &why).await?;
        if queued + running > 0 {
            tracing::warn!(pair = %pair.id, queued, running, "failover: other tasks of the pair cancelled");
        }
    }
    let req = Request { kind, archive_id, schedule_id: None, requested_by: by, actor, force };
    Ok(enqueue(state, &pair, req).await?)
}

/// What a pair's state allows: while failed over the replica is the live
/// copy, so nothing may back up the old source or overwrite the replica.
pub fn allowed_in_state(pair: &Pair, kind: TaskKind) -> ServiceResult<()> {
    let ok = match kind {
        TaskKind::Backup | TaskKind::Restore | TaskKind::Replicate | TaskKind::Drill => {
            pair.state == PairState::Protected
        }
        TaskKind::Failover => matches!(pair.state, PairState::Protected | PairState::FailingOver),
        TaskKind::Failback => matches!(pair.state, PairState::FailedOver | PairState::FailingBack),
    };
    if !ok {
        return Err(ServiceError::Conflict(format!("A {kind} is not possible while the pair is {}.", pair.state)));
    }
    if kind == TaskKind::Drill && pair.guest != crate::domain::Guest::Qemu {
        return Err(ServiceError::Conflict("Drills are for qemu guests only so far.".into()));
    }
    if kind == TaskKind::Drill && pair.drill_vmid.is_none() {
        return Err(ServiceError::clash(
            "drill_vmid",
            "is not set for this pair; set a free VMID on the DRC host first",
        ));
    }
    Ok(())
}

/// Tasks newest first, with the total for paging.
pub async fn list(state: &AppState, actor: &User, filter: &TaskFilter) -> ServiceResult<(Vec<Task>, i64)> {
    require(actor, Role::Viewer)?;
    if !(1..=500).contains(&filter.limit) {
        return Err(ServiceError::invalid("limit", "must be from 1 to 500"));
    }
    if filter.offset < 0 {
        return Err(ServiceError::invalid("offset", "must not be negative"));
    }
    Ok(state.db.list_tasks(filter).await?)
}

pub async fn get(state: &AppState, actor: &User, id: TaskId) -> ServiceResult<Task> {
    require(actor, Role::Viewer)?;
    state.db.task(id).await?.ok_or(ServiceError::NotFound("task"))
}

/// Log lines of the task after sequence number `after` (all when None),
/// each with its sequence number as the next cursor.
pub async fn log(state: &AppState, actor: &User, id: TaskId, after: Option<i64>) -> ServiceResult<Vec<LogLine>> {
    let task = get(state, actor, id).await?;
    Ok(match after {
        Some(after) => state.db.task_log_after(task.id, after).await?,
        None => state.db.task_log(task.id).await?,
    })
}

/// A queued task is cancelled at once; a running one is stopped by its
/// worker, which cleans up and marks it cancelled (a replica being
/// replaced is first left whole).
pub async fn cancel(state: &AppState, actor: &User, id: TaskId) -> ServiceResult<Task> {
    require(actor, RUN)?;
    let before = state.db.task(id).await?.ok_or(ServiceError::NotFound("task"))?;
    if before.status.is_final() {
        return Err(ServiceError::Conflict(format!("The task already ended ({}).", before.status)));
    }
    if before.status == TaskStatus::Queued {
        let pair = state.db.pair(before.pair_id).await?;
        if let Some(p) = pair.filter(|p| p.replica_task_id == Some(before.id)) {
            return Err(ServiceError::Conflict(format!(
                "This task's previous attempt left VM {} half-restored; it must run to make the replica whole.",
                p.dst_vmid
            )));
        }
    }
    let task = state.db.request_cancel(id).await?.ok_or(ServiceError::NotFound("task"))?;
    state.db.append_log(id, &format!("cancel requested by {}", actor.username)).await?;
    tracing::info!(task = %id, by = %actor.username, "task cancel requested");
    let detail = format!("{} of pair {}, {}", task.kind, task.pair_id, before.status);
    super::audit::record(state, &actor.username, "task.cancel", super::audit::subject("task", id), &detail).await;
    Ok(task)
}

/// Failover, failback and drill history with step timings, newest first.
pub async fn events(
    state: &AppState,
    actor: &User,
    pair_id: Option<PairId>,
    limit: i64,
) -> ServiceResult<Vec<crate::db::events::Event>> {
    require(actor, Role::Viewer)?;
    if !(1..=500).contains(&limit) {
        return Err(ServiceError::invalid("limit", "must be from 1 to 500"));
    }
    Ok(state.db.list_events(pair_id, limit).await?)
}
