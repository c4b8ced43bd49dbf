//! Monitoring and alerting: host status, alert history, thresholds and
//! notification targets.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::body::Body;
use crate::auth::CurrentUser;
use crate::db::alerts::Alert;
use crate::db::targets::Target;
use crate::domain::Timestamp;
use crate::error::{AppError, AppResult};
use crate::service::monitoring::{self, AlertSettingsInput, AlertSettingsView, AlertState, HostStatus};
use crate::service::targets::{self, TargetInput, TestResult};
use crate::state::AppState;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StatusQuery {
    /// RFC 3339; history from this time on (default: the last 24 h).
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
}

/// Reachability, the newest probe and the history since `since`.
#[utoipa::path(get, path = "/api/v1/hypervisors/{id}/status", params(StatusQuery),
    responses((status = 200, body = HostStatus), (status = 404), (status = 422)))]
pub async fn status(
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
    q: web::Query<StatusQuery>,
) -> AppResult<HttpResponse> {
    let id = super::id(&path, "hypervisor")?;
    let since = q
        .since
        .as_deref()
        .map(|s| Timestamp::parse_rfc3339(s).ok_or_else(|| AppError::invalid("since", "must be an RFC 3339 time")))
        .transpose()?;
    Ok(HttpResponse::Ok().json(monitoring::host_status(&state, &me.0, id, since).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// `open` or `resolved`; both when absent.
    #[param(value_type = Option<AlertState>)]
    state: Option<String>,
    /// 1–500, default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// Default 0.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

/// Alert history, newest first, with who was notified and how it went.
#[utoipa::path(get, path = "/api/v1/alerts", params(AlertQuery), responses((status = 200, body = [Alert]), (status = 422)))]
pub async fn list(state: web::Data<AppState>, me: CurrentUser, q: web::Query<AlertQuery>) -> AppResult<HttpResponse> {
    let q = q.into_inner();
    let filter = q.state.as_deref().map(str::parse::<AlertState>).transpose()?;
    let alerts = monitoring::alerts(&state, &me.0, filter, q.limit.unwrap_or(50), q.offset.unwrap_or(0)).await?;
    Ok(HttpResponse::Ok().json(alerts))
}

#[utoipa::path(get, path = "/api/v1/alert-settings", responses((status = 200, body = AlertSettingsView)))]
pub async fn settings(state: web::Data<AppState>, me: CurrentUser) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(monitoring::alert_settings(&state, &me.0).await?))
}

#[utoipa::path(put, path = "/api/v1/alert-settings", request_body = AlertSettingsInput,
    responses((status = 200, body = AlertSettingsView), (status = 403), (status = 422)))]
pub async fn set_settings(
    state: web::Data<AppState>,
    me: CurrentUser,
    Body(b): Body<AlertSettingsInput>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(monitoring::set_alert_settings(&state, &me.0, b).await?))
}

#[utoipa::path(get, path = "/api/v1/notification-targets", responses((status = 200, body = [Target]), (status = 403)))]
pub async fn targets(state: web::Data<AppState>, me: CurrentUser) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(targets::list(&state, &me.0).await?))
}

#[utoipa::path(post, path = "/api/v1/notification-targets", request_body = TargetInput,
    responses((status = 201, body = Target), (status = 403), (status = 409), (status = 422)))]
pub async fn create_target(
    state: web::Data<AppState>,
    me: CurrentUser,
    Body(b): Body<TargetInput>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Created().json(targets::create(&state, &me.0, b).await?))
}

#[utoipa::path(get, path = "/api/v1/notification-targets/{id}", responses((status = 200, body = Target), (status = 403), (status = 404)))]
pub async fn target(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    let id = super::id(&path, "notification target")?;
    Ok(HttpResponse::Ok().json(targets::get(&state, &me.0, id).await?))
}

#[utoipa::path(put, path = "/api/v1/notification-targets/{id}", request_body = TargetInput,
    responses((status = 200, body = Target), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub async fn update_target(
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
    Body(b): Body<TargetInput>,
) -> AppResult<HttpResponse> {
    let id = super::id(&path, "notification target")?;
    Ok(HttpResponse::Ok().json(targets::update(&state, &me.0, id, b).await?))
}

#[utoipa::path(delete, path = "/api/v1/notification-targets/{id}", responses((status = 204), (status = 403), (status = 404)))]
pub async fn delete_target(
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = super::id(&path, "notification target")?;
    targets::delete(&state, &me.0, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Sends a notice of event `test` to this target now and says how it went.
#[utoipa::path(post, path = "/api/v1/notification-targets/{id}/test",
    responses((status = 200, body = TestResult), (status = 403), (status = 404)))]
pub async fn test_target(
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = super::id(&path, "notification target")?;
    Ok(HttpResponse::Ok().json(targets::test(&state, &me.0, id).await?))
}
