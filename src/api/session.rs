use actix_session::Session;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::body::Body;
use crate::auth::login_session;
use crate::auth::{CurrentUser, LoginGuard};
use crate::error::{AppError, AppResult};
use crate::state::AppState;

#[utoipa::path(get, path = "/api/v1/health", responses((status = 200, description = "Service and database are up")))]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let database = state.settings.backend.as_str();
    let version = env!("CARGO_PKG_VERSION");
    match state.db.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ok", "version": version, "database": database})),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unreachable");
            HttpResponse::ServiceUnavailable()
                .json(json!({"status": "error", "version": version, "database": database}))
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    username: String,
    password: String,
}

#[utoipa::path(post, path = "/api/v1/auth/login", request_body = LoginRequest,
    responses((status = 200, body = crate::db::users::User), (status = 401), (status = 429)))]
pub async fn login(
    state: web::Data<AppState>,
    guard: web::Data<LoginGuard>,
    session: Session,
    req: HttpRequest,
    Body(body): Body<LoginRequest>,
) -> AppResult<HttpResponse> {
    let peer = req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
    let user = crate::service::session::login(&state, &guard, &peer, &body.username, body.password).await?;
    login_session::start(&session, &user).map_err(AppError::internal)?;
    Ok(HttpResponse::Ok().json(user))
}

#[utoipa::path(post, path = "/api/v1/auth/logout", responses((status = 204)))]
pub async fn logout(state: web::Data<AppState>, session: Session) -> AppResult<HttpResponse> {
    if let Some(id) = login_session::user_id(&session) {
        crate::service::session::logout(&state, id).await?;
    }
    session.purge();
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/v1/auth/me", responses((status = 200, body = crate::db::users::User), (status = 401)))]
pub async fn me(user: CurrentUser) -> HttpResponse {
    HttpResponse::Ok().json(user.0)
}
