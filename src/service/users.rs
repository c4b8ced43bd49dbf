//! Users and their roles: admins manage them; the last active admin is
//! never demoted, deactivated or deleted.

use serde::Deserialize;

use super::audit::{self, changes, subject};
use super::input::{doc, label, required, CreateRules, Input};
use super::{require, ServiceError, ServiceResult};
use crate::auth::{password, LoginGuard};
use crate::db::users::{NewUser, User};
use crate::domain::{LoginName, Role, UserId};
use crate::state::AppState;

/// Who may manage users.
pub const MANAGE: Role = Role::Admin;

/// Fields of a user; all optional on update.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    pub username: Option<LoginName>,
    #[schema(value_type = Option<doc::Label>)]
    pub full_name: Option<String>,
    /// Write-only; 8 to 1024 characters.
    #[schema(value_type = Option<doc::Password>)]
    pub password: Option<String>,
    pub role: Option<Role>,
    pub active: Option<bool>,
}

impl Input for UserInput {
    fn rules() -> CreateRules {
        CreateRules { required: &["username", "password", "role"], create: None, update: None }
    }
}

async fn hash(field: &str, pw: String) -> ServiceResult<String> {
    password::check_strength(&pw).map_err(|m| ServiceError::invalid(field, m))?;
    tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?
        .map_err(|e| ServiceError::Internal(e.to_string()))
}

pub async fn load(state: &AppState, id: UserId) -> ServiceResult<User> {
    state.db.user(id).await?.ok_or(ServiceError::NotFound("user"))
}

pub async fn list(state: &AppState, actor: &User) -> ServiceResult<Vec<User>> {
    require(actor, MANAGE)?;
    Ok(state.db.list_users().await?)
}

pub async fn get(state: &AppState, actor: &User, id: UserId) -> ServiceResult<User> {
    require(actor, MANAGE)?;
    load(state, id).await
}

pub async fn create(state: &AppState, actor: &User, b: UserInput) -> ServiceResult<User> {
    require(actor, MANAGE)?;
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
    tracing::info!(by = %actor.username, username = %user.username, role = %role, "user created");
    let detail = format!("username {:?}, role {role}", user.username);
    audit::record(state, &actor.username, "user.create", subject("user", user.id), &detail).await;
    Ok(user)
}

pub async fn update(state: &AppState, actor: &User, id: UserId, b: UserInput) -> ServiceResult<User> {
    require(actor, MANAGE)?;
    let user = load(state, id).await?;
    if b.username.as_ref().is_some_and(|u| u.as_str() != user.username) {
        return Err(ServiceError::clash("username", "cannot be changed; create a new user instead"));
    }
    let full_name = match b.full_name {
        Some(n) => label("full_name", &n)?,
        None => user.full_name.clone(),
    };
    let role = b.role.unwrap_or(user.role);
    let active = b.active.unwrap_or(user.active);
    let loses_admin = user.role == Role::Admin && user.active && (role != Role::Admin || !active);
    if loses_admin && state.db.count_active_admins().await? <= 1 {
        return Err(ServiceError::Conflict("This is the last active admin; make another admin first.".into()));
    }
    let pw_hash = match b.password {
        Some(pw) => Some(hash("password", pw).await?),
        None => None,
    };
    state.db.update_user(user.id, &full_name, role, active, pw_hash.as_deref()).await?;
    tracing::info!(by = %actor.username, username = %user.username, "user updated");
    let after = load(state, id).await?;
    let detail = changes(&user, &after, &[("password", pw_hash.is_some())]);
    audit::record(state, &actor.username, "user.update", subject("user", user.id), &detail).await;
    Ok(after)
}

pub async fn delete(state: &AppState, actor: &User, id: UserId) -> ServiceResult<()> {
    require(actor, MANAGE)?;
    let user = load(state, id).await?;
    if user.role == Role::Admin && user.active && state.db.count_active_admins().await? <= 1 {
        return Err(ServiceError::Conflict("This is the last active admin; make another admin first.".into()));
    }
    state.db.delete_user(user.id).await?;
    tracing::info!(by = %actor.username, username = %user.username, "user deleted");
    let detail = format!("username {:?}", user.username);
    audit::record(state, &actor.username, "user.delete", subject("user", user.id), &detail).await;
    Ok(())
}

/// Ends every session of the user, on every device (an admin's action,
/// e.g. for a lost laptop). API tokens stay until revoked.
pub async fn logout_all(state: &AppState, actor: &User, id: UserId) -> ServiceResult<User> {
    require(actor, MANAGE)?;
    let user = load(state, id).await?;
    state.db.end_sessions(user.id).await?;
    tracing::info!(by = %actor.username, username = %user.username, "user logged out everywhere");
    let detail = format!("username {:?}", user.username);
    audit::record(state, &actor.username, "user.logout_all", subject("user", user.id), &detail).await;
    load(state, id).await
}

/// Changes the acting user's own password after checking the current one,
/// under the same limits as a login (a stolen session must not become a
/// password-guessing oracle). Returns the user as now stored: the change
/// ended every session, so the caller starts a new one for this user.
pub async fn change_own_password(
    state: &AppState,
    guard: &LoginGuard,
    actor: &User,
    current: String,
    new: String,
) -> ServiceResult<User> {
    password::check_strength(&new).map_err(|m| ServiceError::invalid("password", m))?;
    guard.per_name.begin(&actor.username).map_err(ServiceError::Throttled)?;
    let (_, stored) = state.db.user_with_hash(&actor.username).await?.ok_or(ServiceError::NotFound("user"))?;
    if !super::session::verify_off_thread(guard, current, stored).await? {
        return Err(ServiceError::BadCredentials);
    }
    guard.per_name.succeeded(&actor.username);
    let new_hash = hash("password", new).await?;
    state.db.set_password(actor.id, &new_hash).await?;
    tracing::info!(username = %actor.username, "password changed");
    let detail = "the user's other sessions ended";
    audit::record(state, &actor.username, "user.password_change", subject("user", actor.id), detail).await;
    load(state, actor.id).await
}
