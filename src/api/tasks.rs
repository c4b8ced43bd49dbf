use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::body::OptionalBody;
use crate::auth::CurrentUser;
use crate::db::tasks::{LogLine, Task, TaskFilter};
use crate::domain::{ArchiveId, PairId, TaskKind, TaskStatus};
use crate::error::{AppError, AppResult};
use crate::service::tasks;
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RestoreInput {
    /// The archive to restore; the newest verified one when absent.
    archive_id: Option<ArchiveId>,
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
    #[param(value_type = Option<TaskStatus>)]
    status: Option<String>,
    #[param(value_type = Option<PairId>)]
    pair_id: Option<String>,
    #[param(value_type = Option<TaskKind>)]
    kind: Option<String>,
    /// 1–500, default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// Default 0.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Only lines after this sequence number (the `seq` of the last line seen).
    after: Option<i64>,
}

#[derive(Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct FailoverInput {
    /// Go on even when the DC VM cannot be fenced (its host does not
    /// answer); the event records that fencing was impossible.
    #[serde(default)]
    force: bool,
}

async fn queue(
    state: &AppState,
    me: &CurrentUser,
    raw: &str,
    kind: TaskKind,
    archive_id: Option<ArchiveId>,
    force: bool,
) -> AppResult<HttpResponse> {
    let pair = super::id(raw, "pair")?;
    Ok(HttpResponse::Accepted().json(tasks::queue(state, &me.0, pair, kind, archive_id, force).await?))
}

#[utoipa::path(post, path = "/api/v1/pairs/{id}/backup", responses((status = 202, body = Task), (status = 404), (status = 409)))]
pub async fn backup(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    queue(&state, &me, &path, TaskKind::Backup, None, false).await
}

#[utoipa::path(post, path = "/api/v1/pairs/{id}/restore", request_body = Option<RestoreInput>,
    responses((status = 202, body = Task), (status = 404), (status = 409), (status = 422)))]
pub async fn restore(
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
    OptionalBody(input): OptionalBody<RestoreInput>,
) -> AppResult<HttpResponse> {
    queue(&state, &me, &path, TaskKind::Restore, input.archive_id, false).await
}

#[utoipa::path(post, path = "/api/v1/pairs/{id}/replicate", responses((status = 202, body = Task), (status = 404), (status = 409)))]
pub async fn replicate(
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    queue(&state, &me, &path, TaskKind::Replicate, None, false).await
}

/// Fences the DC VM (shutdown, stop, onboot 0) and brings the replica up.
#[utoipa::path(post, path = "/api/v1/pairs/{id}/failover", request_body = Option<FailoverInput>,
    responses((status = 202, body = Task), (status = 404), (status = 409), (status = 422)))]
pub async fn failover(
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
    OptionalBody(input): OptionalBody<FailoverInput>,
) -> AppResult<HttpResponse> {
    queue(&state, &me, &path, TaskKind::Failover, None, input.force).await
}

/// Copies the DRC copy back over the DC VM, fences the DRC copy, protects
/// the pair again.
#[utoipa::path(post, path = "/api/v1/pairs/{id}/failback", responses((status = 202, body = Task), (status = 404), (status = 409)))]
pub async fn failback(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    queue(&state, &me, &path, TaskKind::Failback, None, false).await
}

/// Restores the newest (or the given) verified archive as the pair's
/// isolated drill VM, checks it runs, destroys it.
#[utoipa::path(post, path = "/api/v1/pairs/{id}/drill", request_body = Option<RestoreInput>,
    responses((status = 202, body = Task), (status = 404), (status = 409), (status = 422)))]
pub async fn drill(
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
    OptionalBody(input): OptionalBody<RestoreInput>,
) -> AppResult<HttpResponse> {
    queue(&state, &me, &path, TaskKind::Drill, input.archive_id, false).await
}

#[utoipa::path(get, path = "/api/v1/tasks", params(TaskQuery), responses((status = 200, body = TaskPage), (status = 422)))]
pub async fn list(state: web::Data<AppState>, me: CurrentUser, q: web::Query<TaskQuery>) -> AppResult<HttpResponse> {
    let q = q.into_inner();
    let status = q.status.map(|s| s.parse::<TaskStatus>().map_err(|e| AppError::invalid("status", e.0))).transpose()?;
    let pair_id = q.pair_id.map(|s| s.parse::<PairId>().map_err(|e| AppError::invalid("pair_id", e.0))).transpose()?;
    let kind = q.kind.map(|s| s.parse::<TaskKind>().map_err(|e| AppError::invalid("kind", e.0))).transpose()?;
    let filter = TaskFilter { status, pair_id, kind, limit: q.limit.unwrap_or(50), offset: q.offset.unwrap_or(0) };
    let (items, total) = tasks::list(&state, &me.0, &filter).await?;
    Ok(HttpResponse::Ok().json(TaskPage { items, total, limit: filter.limit, offset: filter.offset }))
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}", responses((status = 200, body = TaskView), (status = 404)))]
pub async fn get(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    let id = super::id(&path, "task")?;
    let task = tasks::get(&state, &me.0, id).await?;
    let log = tasks::log(&state, &me.0, id, None).await?;
    Ok(HttpResponse::Ok().json(TaskView { task, log }))
}

/// Log lines after a cursor, for live views that fetch only what is new.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/log", params(LogQuery),
    responses((status = 200, body = [LogLine]), (status = 404), (status = 422)))]
pub async fn log(
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
    q: web::Query<LogQuery>,
) -> AppResult<HttpResponse> {
    let id = super::id(&path, "task")?;
    Ok(HttpResponse::Ok().json(tasks::log(&state, &me.0, id, q.after).await?))
}

/// A queued task is cancelled at once; a running one is stopped by its
/// worker, which cleans up and marks it cancelled.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/cancel", responses((status = 202, body = Task), (status = 404), (status = 409)))]
pub async fn cancel(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    let id = super::id(&path, "task")?;
    Ok(HttpResponse::Accepted().json(tasks::cancel(&state, &me.0, id).await?))
}
