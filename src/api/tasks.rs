use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::body::OptionalBody;
use crate::auth::CurrentUser;
use crate::db::tasks::{LogLine, Task, TaskFilter};
use crate::domain::{Role, TaskKind, TaskStatus};
use crate::error::{AppError, AppResult};
use crate::queue::{enqueue, Request};
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RestoreInput {
    /// The archive to restore; the newest verified one when absent.
    archive_id: Option<Uuid>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TaskView {
    #[serde(flatten)]
    task: Task,
    log: Vec<LogLine>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TaskPage {
    items: Vec<Task>,
    total: i64,
    limit: i64,
    offset: i64,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TaskQuery {
    status: Option<String>,
    pair_id: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn queue(
    state: &AppState,
    me: &CurrentUser,
    raw: &str,
    kind: TaskKind,
    archive_id: Option<Uuid>,
) -> AppResult<HttpResponse> {
    let user = me.require(Role::Operator)?;
    let pair = super::pairs::load(state, raw).await?;
    if !pair.enabled {
        return Err(AppError::Conflict("This pair is disabled; enable it first.".into()));
    }
    if let Some(a) = archive_id {
        match state.db.archive(a).await? {
            Some(arch) if arch.pair_id == pair.id && arch.verified_at.is_some() => {}
            _ => return Err(AppError::invalid("archive_id", "is not a verified archive of this pair")),
        }
    }
    let task =
        enqueue(state, &pair, Request { kind, archive_id, schedule_id: None, requested_by: &user.username }).await?;
    Ok(HttpResponse::Accepted().json(task))
}

#[utoipa::path(post, path = "/api/v1/pairs/{id}/backup", responses((status = 202, body = Task), (status = 404), (status = 409)))]
pub async fn backup(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    queue(&state, &me, &path, TaskKind::Backup, None).await
}

#[utoipa::path(post, path = "/api/v1/pairs/{id}/restore", request_body = RestoreInput,
    responses((status = 202, body = Task), (status = 404), (status = 409), (status = 422)))]
pub async fn restore(
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
    OptionalBody(input): OptionalBody<RestoreInput>,
) -> AppResult<HttpResponse> {
    queue(&state, &me, &path, TaskKind::Restore, input.archive_id).await
}

#[utoipa::path(post, path = "/api/v1/pairs/{id}/replicate", responses((status = 202, body = Task), (status = 404), (status = 409)))]
pub async fn replicate(
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    queue(&state, &me, &path, TaskKind::Replicate, None).await
}

#[utoipa::path(get, path = "/api/v1/tasks", params(TaskQuery), responses((status = 200, body = TaskPage), (status = 422)))]
pub async fn list(state: web::Data<AppState>, me: CurrentUser, q: web::Query<TaskQuery>) -> AppResult<HttpResponse> {
    me.require(Role::Viewer)?;
    let q = q.into_inner();
    let status = q
        .status
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<TaskStatus>().map_err(|e| AppError::invalid("status", e.0)))
        .transpose()?;
    let pair_id = q
        .pair_id
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<Uuid>().map_err(|_| AppError::invalid("pair_id", "must be a UUID")))
        .transpose()?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(AppError::invalid("limit", "must be from 1 to 500"));
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(AppError::invalid("offset", "must not be negative"));
    }
    let (items, total) = state.db.list_tasks(&TaskFilter { status, pair_id, limit, offset }).await?;
    Ok(HttpResponse::Ok().json(TaskPage { items, total, limit, offset }))
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}", responses((status = 200, body = TaskView), (status = 404)))]
pub async fn get(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    me.require(Role::Viewer)?;
    let id = super::id(&path, "task")?;
    let task = state.db.task(id).await?.ok_or(AppError::NotFound("task"))?;
    let log = state.db.task_log(id).await?;
    Ok(HttpResponse::Ok().json(TaskView { task, log }))
}

/// A queued task is cancelled at once; a running one is stopped by its
/// worker, which cleans up and marks it cancelled.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/cancel", responses((status = 202, body = Task), (status = 404), (status = 409)))]
pub async fn cancel(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    let user = me.require(Role::Operator)?;
    let id = super::id(&path, "task")?;
    let before = state.db.task(id).await?.ok_or(AppError::NotFound("task"))?;
    if before.status.is_final() {
        return Err(AppError::Conflict(format!("The task already ended ({}).", before.status)));
    }
    let task = state.db.request_cancel(id).await?.ok_or(AppError::NotFound("task"))?;
    state.db.append_log(id, &format!("cancel requested by {}", user.username)).await?;
    tracing::info!(task = %id, by = %user.username, "task cancel requested");
    Ok(HttpResponse::Accepted().json(task))
}
