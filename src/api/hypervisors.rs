use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::body::{Body, OptionalBody};
use crate::auth::CurrentUser;
use crate::db::hypervisors::Hypervisor;
use crate::error::AppResult;
use crate::service::hypervisors::{self, HypervisorInput};
use crate::state::AppState;

#[utoipa::path(get, path = "/api/v1/hypervisors", responses((status = 200, body = [Hypervisor])))]
pub async fn list(state: web::Data<AppState>, me: CurrentUser) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(hypervisors::list(&state, &me.0).await?))
}

#[utoipa::path(post, path = "/api/v1/hypervisors", request_body = HypervisorInput,
    responses((status = 201, body = Hypervisor), (status = 403), (status = 409), (status = 422)))]
pub async fn create(
    state: web::Data<AppState>,
    me: CurrentUser,
    Body(b): Body<HypervisorInput>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Created().json(hypervisors::create(&state, &me.0, b).await?))
}

#[utoipa::path(get, path = "/api/v1/hypervisors/{id}", responses((status = 200, body = Hypervisor), (status = 404)))]
pub async fn get(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    let id = super::id(&path, "hypervisor")?;
    Ok(HttpResponse::Ok().json(hypervisors::get(&state, &me.0, id).await?))
}

#[utoipa::path(put, path = "/api/v1/hypervisors/{id}", request_body = HypervisorInput,
    responses((status = 200, body = Hypervisor), (status = 404), (status = 409), (status = 422)))]
pub async fn update(
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
    Body(b): Body<HypervisorInput>,
) -> AppResult<HttpResponse> {
    let id = super::id(&path, "hypervisor")?;
    Ok(HttpResponse::Ok().json(hypervisors::update(&state, &me.0, id, b).await?))
}

#[utoipa::path(delete, path = "/api/v1/hypervisors/{id}", responses((status = 204), (status = 404), (status = 409)))]
pub async fn delete(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    let id = super::id(&path, "hypervisor")?;
    hypervisors::delete(&state, &me.0, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckInput {
    /// Trust the host key the host presents now, replacing the pinned one.
    #[serde(default)]
    repin: bool,
}

/// Pins the SSH host key on first contact and reports ssh, host key, API
/// and node-name results.
#[utoipa::path(post, path = "/api/v1/hypervisors/{id}/check", request_body = Option<CheckInput>,
    responses((status = 200, body = crate::hypervisor::proxmox::CheckReport), (status = 403), (status = 404), (status = 502)))]
pub async fn check(
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
    OptionalBody(b): OptionalBody<CheckInput>,
) -> AppResult<HttpResponse> {
    let id = super::id(&path, "hypervisor")?;
    Ok(HttpResponse::Ok().json(hypervisors::check(&state, &me.0, id, b.repin).await?))
}

#[utoipa::path(get, path = "/api/v1/hypervisors/{id}/vms",
    responses((status = 200, description = "VMs on the host, from its Proxmox API"), (status = 404), (status = 409), (status = 502)))]
pub async fn vms(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    let id = super::id(&path, "hypervisor")?;
    Ok(HttpResponse::Ok().json(hypervisors::vms(&state, &me.0, id).await?))
}
