use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::body::{label, Body};
use crate::auth::{token, CurrentUser};
use crate::db::tokens::ApiToken;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenInput {
    /// A label to recognise the token by, e.g. "backup cron on host x".
    name: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/tokens", responses((status = 200, body = [ApiToken])))]
pub async fn list(state: web::Data<AppState>, me: CurrentUser) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.db.list_tokens(me.0.id).await?))
}

/// Returns the token once; only its hash is kept.
#[utoipa::path(post, path = "/api/v1/tokens", request_body = TokenInput,
    responses((status = 201, description = "{\"id\": …, \"token\": …}; the token is shown only here")))]
pub async fn create(state: web::Data<AppState>, me: CurrentUser, Body(b): Body<TokenInput>) -> AppResult<HttpResponse> {
    let name = match b.name {
        Some(n) => label("name", &n)?,
        None => "api token".into(),
    };
    let secret = token::generate();
    let id = state.db.insert_token(me.0.id, &name, &token::digest(&secret)).await?;
    tracing::info!(username = %me.0.username, token_id = %id, "api token created");
    Ok(HttpResponse::Created().json(json!({"id": id, "name": name, "token": secret})))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", responses((status = 204), (status = 404)))]
pub async fn revoke(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    let id = super::id(&path, "token")?;
    if !state.db.revoke_token(me.0.id, id).await? {
        return Err(AppError::NotFound("token"));
    }
    tracing::info!(username = %me.0.username, token_id = %id, "api token revoked");
    Ok(HttpResponse::NoContent().finish())
}
