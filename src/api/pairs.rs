use actix_web::{web, HttpResponse};

use super::body::Body;
use crate::auth::CurrentUser;
use crate::db::archives::Archive;
use crate::error::AppResult;
use crate::service::pairs::{self, PairInput, PairView};
use crate::state::AppState;

#[utoipa::path(get, path = "/api/v1/pairs", responses((status = 200, body = [PairView])))]
pub async fn list(state: web::Data<AppState>, me: CurrentUser) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(pairs::list(&state, &me.0).await?))
}

#[utoipa::path(post, path = "/api/v1/pairs", request_body = PairInput,
    responses((status = 201, body = PairView), (status = 403), (status = 409), (status = 422)))]
pub async fn create(state: web::Data<AppState>, me: CurrentUser, Body(b): Body<PairInput>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Created().json(pairs::create(&state, &me.0, b).await?))
}

#[utoipa::path(get, path = "/api/v1/pairs/{id}", responses((status = 200, body = PairView), (status = 404)))]
pub async fn get(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    let id = super::id(&path, "pair")?;
    Ok(HttpResponse::Ok().json(pairs::get(&state, &me.0, id).await?))
}

#[utoipa::path(put, path = "/api/v1/pairs/{id}", request_body = PairInput,
    responses((status = 200, body = PairView), (status = 404), (status = 409), (status = 422)))]
pub async fn update(
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
    Body(b): Body<PairInput>,
) -> AppResult<HttpResponse> {
    let id = super::id(&path, "pair")?;
    Ok(HttpResponse::Ok().json(pairs::update(&state, &me.0, id, b).await?))
}

/// Deletes the pair and its schedules; its archives and task history are kept.
#[utoipa::path(delete, path = "/api/v1/pairs/{id}", responses((status = 204), (status = 404), (status = 409)))]
pub async fn delete(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    let id = super::id(&path, "pair")?;
    pairs::delete(&state, &me.0, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/v1/pairs/{id}/archives", responses((status = 200, body = [Archive]), (status = 404)))]
pub async fn archives(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    let id = super::id(&path, "pair")?;
    Ok(HttpResponse::Ok().json(pairs::archives(&state, &me.0, id).await?))
}

/// Lets drswitch replace the existing VM without its marker at the pair's
/// target (admin only).
#[utoipa::path(post, path = "/api/v1/pairs/{id}/adopt",
    responses((status = 200, body = PairView), (status = 403), (status = 404), (status = 409)))]
pub async fn adopt(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    let id = super::id(&path, "pair")?;
    Ok(HttpResponse::Ok().json(pairs::adopt(&state, &me.0, id).await?))
}
