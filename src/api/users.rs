use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::body::{label, required, Body};
use crate::auth::{password, CurrentUser};
use crate::db::users::{NewUser, User};
use crate::domain::{LoginName, Role};
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// Fields of a user; all optional on update.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    #[schema(value_type = Option<String>)]
    username: Option<LoginName>,
    full_name: Option<String>,
    /// Write-only; at least 8 characters.
    password: Option<String>,
    role: Option<Role>,
    active: Option<bool>,
}

async fn hash(field: &str, pw: String) -> AppResult<String> {
    password::check_strength(&pw).map_err(|m| AppError::invalid(field, m))?;
    tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)
}

async fn load(state: &AppState, raw: &str) -> AppResult<User> {
    let id = super::id(raw, "user")?;
    state.db.user(id).await?.ok_or(AppError::NotFound("user"))
}

#[utoipa::path(get, path = "/api/v1/users", responses((status = 200, body = [User]), (status = 403)))]
pub async fn list(state: web::Data<AppState>, me: CurrentUser) -> AppResult<HttpResponse> {
    me.require(Role::Admin)?;
    Ok(HttpResponse::Ok().json(state.db.list_users().await?))
}

#[utoipa::path(post, path = "/api/v1/users", request_body = UserInput,
    responses((status = 201, body = User), (status = 403), (status = 409), (status = 422)))]
pub async fn create(state: web::Data<AppState>, me: CurrentUser, Body(b): Body<UserInput>) -> AppResult<HttpResponse> {
    me.require(Role::Admin)?;
    let username = required("username", b.username)?;
    let full_name = match b.full_name {
        Some(n) => label("full_name", &n)?,
        None => username.to_string(),
    };
    let role = required("role", b.role)?;
    let pw_hash = hash("password", required("password", b.password)?).await?;
    let user = state
        .db
        .insert_user(NewUser { username: username.as_str(), full_name: &full_name, password_hash: &pw_hash, role })
        .await?;
    tracing::info!(by = %me.0.username, username = %user.username, role = %role, "user created");
    Ok(HttpResponse::Created().json(user))
}

#[utoipa::path(get, path = "/api/v1/users/{id}", responses((status = 200, body = User), (status = 404)))]
pub async fn get(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    me.require(Role::Admin)?;
    Ok(HttpResponse::Ok().json(load(&state, &path).await?))
}

#[utoipa::path(put, path = "/api/v1/users/{id}", request_body = UserInput,
    responses((status = 200, body = User), (status = 404), (status = 409), (status = 422)))]
pub async fn update(
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
    Body(b): Body<UserInput>,
) -> AppResult<HttpResponse> {
    me.require(Role::Admin)?;
    let user = load(&state, &path).await?;
    if b.username.as_ref().is_some_and(|u| u.as_str() != user.username) {
        return Err(AppError::invalid("username", "cannot be changed; create a new user instead"));
    }
    let full_name = match b.full_name {
        Some(n) => label("full_name", &n)?,
        None => user.full_name.clone(),
    };
    let role = b.role.unwrap_or(user.role);
    let active = b.active.unwrap_or(user.active);
    let loses_admin = user.role == Role::Admin && user.active && (role != Role::Admin || !active);
    if loses_admin && state.db.count_active_admins().await? <= 1 {
        return Err(AppError::Conflict("This is the last active admin; make another admin first.".into()));
    }
    let pw_hash = match b.password {
        Some(pw) => Some(hash("password", pw).await?),
        None => None,
    };
    state.db.update_user(user.id, &full_name, role, active, pw_hash.as_deref()).await?;
    tracing::info!(by = %me.0.username, username = %user.username, "user updated");
    Ok(HttpResponse::Ok().json(load(&state, &path).await?))
}

#[utoipa::path(delete, path = "/api/v1/users/{id}", responses((status = 204), (status = 404), (status = 409)))]
pub async fn delete(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    me.require(Role::Admin)?;
    let user = load(&state, &path).await?;
    if user.role == Role::Admin && user.active && state.db.count_active_admins().await? <= 1 {
        return Err(AppError::Conflict("This is the last active admin; make another admin first.".into()));
    }
    state.db.delete_user(user.id).await?;
    tracing::info!(by = %me.0.username, username = %user.username, "user deleted");
    Ok(HttpResponse::NoContent().finish())
}
