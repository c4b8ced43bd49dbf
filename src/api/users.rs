use actix_session::Session;
use actix_web::{web, HttpResponse};

use super::body::Body;
use crate::auth::login_session;
use crate::auth::CurrentUser;
use crate::db::users::User;
use crate::error::{AppError, AppResult};
use crate::service::users::{self, UserInput};
use crate::state::AppState;

#[utoipa::path(get, path = "/api/v1/users", responses((status = 200, body = [User]), (status = 403)))]
pub async fn list(state: web::Data<AppState>, me: CurrentUser) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(users::list(&state, &me.0).await?))
}

#[utoipa::path(post, path = "/api/v1/users", request_body = UserInput,
    responses((status = 201, body = User), (status = 403), (status = 409), (status = 422)))]
pub async fn create(state: web::Data<AppState>, me: CurrentUser, Body(b): Body<UserInput>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Created().json(users::create(&state, &me.0, b).await?))
}

#[utoipa::path(get, path = "/api/v1/users/{id}", responses((status = 200, body = User), (status = 404)))]
pub async fn get(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    let id = super::id(&path, "user")?;
    Ok(HttpResponse::Ok().json(users::get(&state, &me.0, id).await?))
}

#[utoipa::path(put, path = "/api/v1/users/{id}", request_body = UserInput,
    responses((status = 200, body = User), (status = 404), (status = 409), (status = 422)))]
pub async fn update(
    state: web::Data<AppState>,
    me: CurrentUser,
    session: Session,
    path: web::Path<String>,
    Body(b): Body<UserInput>,
) -> AppResult<HttpResponse> {
    let id = super::id(&path, "user")?;
    let user = users::update(&state, &me.0, id, b).await?;
    // A new password ends the user's sessions; not the caller's own one.
    login_session::carry_on(&state, &session, &user).await.map_err(AppError::internal)?;
    Ok(HttpResponse::Ok().json(user))
}

#[utoipa::path(delete, path = "/api/v1/users/{id}", responses((status = 204), (status = 404), (status = 409)))]
pub async fn delete(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    let id = super::id(&path, "user")?;
    users::delete(&state, &me.0, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Ends every session of the user, on every device (admin only). API
/// tokens stay valid until revoked.
#[utoipa::path(post, path = "/api/v1/users/{id}/logout-all", responses((status = 204), (status = 403), (status = 404)))]
pub async fn logout_all(
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = super::id(&path, "user")?;
    users::logout_all(&state, &me.0, id).await?;
    Ok(HttpResponse::NoContent().finish())
}
