//! Putting work on the queue and taking it off: the guards before a task is
//! queued, cancelling, and reading tasks and their logs.

use super::{require, ServiceError, ServiceResult};
use crate::db::tasks::{LogLine, Task, TaskFilter};
use crate::db::users::User;
use crate::domain::{ArchiveId, PairId, Role, TaskId, TaskKind, TaskStatus};
use crate::queue::{enqueue, Request};
use crate::state::AppState;

/// Who may queue and cancel tasks.
pub const RUN: Role = Role::Operator;

/// Queues `kind` for the pair; `archive_id` names the archive to restore.
pub async fn queue(
    state: &AppState,
    actor: &User,
    pair_id: PairId,
    kind: TaskKind,
    archive_id: Option<ArchiveId>,
) -> ServiceResult<Task> {
    require(actor, RUN)?;
    let pair = super::pairs::load(state, pair_id).await?;
    if !pair.enabled {
        return Err(ServiceError::Conflict("This pair is disabled; enable it first.".into()));
    }
    if let Some(a) = archive_id {
        match state.db.archive(a).await? {
            Some(arch) if arch.pair_id == pair.id && arch.verified_at.is_some() => {}
            _ => return Err(ServiceError::invalid("archive_id", "is not a verified archive of this pair")),
        }
    }
    Ok(enqueue(state, &pair, Request { kind, archive_id, schedule_id: None, requested_by: &actor.username }).await?)
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
    Ok(task)
}
