use actix_web::{web, HttpResponse};

use super::body::Body;
use crate::auth::CurrentUser;
use crate::db::tokens::ApiToken;
use crate::error::AppResult;
use crate::service::tokens::{self, NewToken, TokenInput};
use crate::state::AppState;

#[utoipa::path(get, path = "/api/v1/tokens", responses((status = 200, body = [ApiToken])))]
pub async fn list(state: web::Data<AppState>, me: CurrentUser) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(tokens::list(&state, &me.0).await?))
}

/// Returns the token once; only its hash is kept.
#[utoipa::path(post, path = "/api/v1/tokens", request_body = TokenInput,
    responses((status = 201, body = NewToken, description = "the token is shown only here")))]
pub async fn create(state: web::Data<AppState>, me: CurrentUser, Body(b): Body<TokenInput>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Created().json(tokens::create(&state, &me.0, b).await?))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", responses((status = 204), (status = 404)))]
pub async fn revoke(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    let id = super::id(&path, "token")?;
    tokens::revoke(&state, &me.0, id).await?;
    Ok(HttpResponse::NoContent().finish())
}
