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
    // Behind a trusted proxy, the client's own address: one client's
    // guesses must not lock out everyone behind the proxy.
    let peer =
        crate::client_addr::client_ip(&req, &state.settings.trusted_proxies).map(|a| a.to_string()).unwrap_or_default();
    let user = crate::service::session::login(&state, &guard, &peer, &body.username, body.password).await?;
    login_session::start(&state, &session, &user).await.map_err(AppError::internal)?;
    Ok(HttpResponse::Ok().json(user))
}

/// Ends this session (and every copy of its cookie); other sessions of the
/// user go on.
#[utoipa::path(post, path = "/api/v1/auth/logout", responses((status = 204)))]
pub async fn logout(state: web::Data<AppState>, session: Session) -> AppResult<HttpResponse> {
    if let Some(id) = login_session::user_id(&session) {
        crate::service::session::logout(&state, id, login_session::id(&session)).await?;
    }
    session.purge();
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/v1/auth/me", responses((status = 200, body = crate::db::users::User), (status = 401)))]
pub async fn me(user: CurrentUser) -> HttpResponse {
    HttpResponse::Ok().json(user.0)
}

/// Ends every session of the caller, on every device, this one too. API
/// tokens stay valid until revoked.
#[utoipa::path(post, path = "/api/v1/session/logout-all", responses((status = 204), (status = 401)))]
pub async fn logout_all(state: web::Data<AppState>, me: CurrentUser, session: Session) -> AppResult<HttpResponse> {
    crate::service::session::logout_all(&state, &me.0).await?;
    session.purge();
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    #[schema(value_type = crate::service::input::doc::Password)]
    current_password: String,
    /// At least 8 characters.
    #[schema(value_type = crate::service::input::doc::Password)]
    password: String,
}

/// Changes the caller's own password. Every other session of the caller
/// ends; the session making the change stays logged in.
#[utoipa::path(post, path = "/api/v1/session/password", request_body = PasswordChange,
    responses((status = 204), (status = 401), (status = 422), (status = 429)))]
pub async fn change_password(
    state: web::Data<AppState>,
    guard: web::Data<LoginGuard>,
    me: CurrentUser,
    session: Session,
    Body(b): Body<PasswordChange>,
) -> AppResult<HttpResponse> {
    let user =
        crate::service::users::change_own_password(&state, &guard, &me.0, b.current_password, b.password).await?;
    login_session::carry_on(&state, &session, &user).await.map_err(AppError::internal)?;
    Ok(HttpResponse::NoContent().finish())
}
