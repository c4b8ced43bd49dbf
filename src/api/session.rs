use actix_session::Session;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::body::Body;
use crate::auth::SESSION_USER;
use crate::auth::{password, CurrentUser, LoginGuard};
use crate::domain::LoginName;
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
    if let Err(secs) = guard.per_addr.begin(&peer) {
        tracing::warn!(peer, "login refused: too many attempts from this address");
        return Err(AppError::Throttled(secs));
    }
    // Only a well-formed name becomes a throttle key or reaches the database.
    let Ok(name) = body.username.trim().parse::<LoginName>() else {
        tracing::warn!(peer, "login failed: malformed username");
        return Err(AppError::BadCredentials("Wrong username or password.".into()));
    };
    let name = name.as_str();
    if let Err(secs) = guard.per_name.begin(name) {
        tracing::warn!(username = name, peer, "login refused: too many failures");
        return Err(AppError::Throttled(secs));
    }
    let _slot = guard.verify_slots.acquire().await.map_err(AppError::internal)?;
    let found = state.db.user_with_hash(name).await?;
    // Every path verifies one hash, so unknown and inactive users take as
    // long as wrong passwords and names cannot be probed by timing.
    let ok = match &found {
        Some((user, hash)) => verify_off_thread(body.password, hash.clone()).await && user.active,
        None => {
            let _ = verify_off_thread(body.password, dummy_hash()).await;
            false
        }
    };
    match (ok, found) {
        (true, Some((user, _))) => {
            guard.per_name.succeeded(name);
            guard.per_addr.refund(&peer);
            session.renew();
            session.insert(SESSION_USER, user.id.to_string()).map_err(AppError::internal)?;
            tracing::info!(username = name, peer, "login");
            Ok(HttpResponse::Ok().json(user))
        }
        _ => {
            tracing::warn!(username = name, peer, "login failed");
            Err(AppError::BadCredentials("Wrong username or password.".into()))
        }
    }
}

/// A real argon2id hash of a random string, checked when the user does not
/// exist so that unknown names take as long as wrong passwords.
fn dummy_hash() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| password::hash(&password::random()).unwrap_or_default()).clone()
}

async fn verify_off_thread(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || password::verify(&password, &hash)).await.unwrap_or(false)
}

#[utoipa::path(post, path = "/api/v1/auth/logout", responses((status = 204)))]
pub async fn logout(session: Session) -> HttpResponse {
    session.purge();
    HttpResponse::NoContent().finish()
}

#[utoipa::path(get, path = "/api/v1/auth/me", responses((status = 200, body = crate::db::users::User), (status = 401)))]
pub async fn me(user: CurrentUser) -> HttpResponse {
    HttpResponse::Ok().json(user.0)
}
