use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::body::{label, nullable, required, Body, OptionalBody};
use crate::auth::CurrentUser;
use crate::db::hypervisors::{Hypervisor, HypervisorFields};
use crate::domain::{DirPath, HostName, HypervisorRole, NodeName, Role, SshUser, StorageId, TlsFingerprint, TokenId};
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// Fields of a hypervisor. On create, `name`, `host`, `node` and `role` are
/// required; on update every field is optional and `null` clears the
/// optional ones. `api_token_secret` is write-only.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HypervisorInput {
    name: Option<String>,
    #[schema(value_type = Option<String>)]
    host: Option<HostName>,
    ssh_port: Option<u16>,
    #[schema(value_type = Option<String>)]
    ssh_user: Option<SshUser>,
    #[schema(value_type = Option<String>)]
    node: Option<NodeName>,
    role: Option<HypervisorRole>,
    api_port: Option<u16>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    api_token_id: Option<Option<TokenId>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    api_token_secret: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    tls_fingerprint: Option<Option<TlsFingerprint>>,
    #[schema(value_type = Option<String>)]
    dump_dir: Option<DirPath>,
    #[schema(value_type = Option<String>)]
    restore_storage: Option<StorageId>,
    enabled: Option<bool>,
}

fn port(field: &str, p: u16) -> AppResult<u16> {
    if p == 0 {
        Err(AppError::invalid(field, "must be a port from 1 to 65535"))
    } else {
        Ok(p)
    }
}

fn secret(state: &AppState, s: Option<String>) -> AppResult<Option<String>> {
    match s {
        None => Ok(None),
        Some(s) if s.is_empty() || s.len() > 512 || s.chars().any(char::is_control) => {
            Err(AppError::invalid("api_token_secret", "must be 1 to 512 printable characters"))
        }
        Some(s) => Ok(Some(state.secrets.encrypt(&s))),
    }
}

async fn load(state: &AppState, raw: &str) -> AppResult<Hypervisor> {
    let id = super::id(raw, "hypervisor")?;
    state.db.hypervisor(id).await?.ok_or(AppError::NotFound("hypervisor"))
}

#[utoipa::path(get, path = "/api/v1/hypervisors", responses((status = 200, body = [Hypervisor])))]
pub async fn list(state: web::Data<AppState>, me: CurrentUser) -> AppResult<HttpResponse> {
    me.require(Role::Viewer)?;
    Ok(HttpResponse::Ok().json(state.db.list_hypervisors().await?))
}

#[utoipa::path(post, path = "/api/v1/hypervisors", request_body = HypervisorInput,
    responses((status = 201, body = Hypervisor), (status = 403), (status = 409), (status = 422)))]
pub async fn create(
    state: web::Data<AppState>,
    me: CurrentUser,
    Body(b): Body<HypervisorInput>,
) -> AppResult<HttpResponse> {
    me.require(Role::Admin)?;
    let fields = HypervisorFields {
        name: label("name", &required("name", b.name)?)?,
        host: required("host", b.host)?,
        ssh_port: port("ssh_port", b.ssh_port.unwrap_or(22))?,
        ssh_user: b.ssh_user.unwrap_or_else(SshUser::root),
        node: required("node", b.node)?,
        role: required("role", b.role)?,
        api_port: port("api_port", b.api_port.unwrap_or(8006))?,
        api_token_id: b.api_token_id.flatten(),
        api_token_secret_enc: secret(&state, b.api_token_secret.flatten())?,
        tls_fingerprint: b.tls_fingerprint.flatten(),
        dump_dir: b.dump_dir.unwrap_or_else(DirPath::default_dump),
        restore_storage: b.restore_storage.unwrap_or_else(StorageId::local_lvm),
        enabled: b.enabled.unwrap_or(true),
    };
    let id = state.db.insert_hypervisor(&fields).await?;
    tracing::info!(by = %me.0.username, name = %fields.name, host = %fields.host, "hypervisor created");
    let h = state.db.hypervisor(id).await?.ok_or(AppError::NotFound("hypervisor"))?;
    Ok(HttpResponse::Created().json(h))
}

#[utoipa::path(get, path = "/api/v1/hypervisors/{id}", responses((status = 200, body = Hypervisor), (status = 404)))]
pub async fn get(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    me.require(Role::Viewer)?;
    Ok(HttpResponse::Ok().json(load(&state, &path).await?))
}

#[utoipa::path(put, path = "/api/v1/hypervisors/{id}", request_body = HypervisorInput,
    responses((status = 200, body = Hypervisor), (status = 404), (status = 409), (status = 422)))]
pub async fn update(
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
    Body(b): Body<HypervisorInput>,
) -> AppResult<HttpResponse> {
    me.require(Role::Admin)?;
    let h = load(&state, &path).await?;
    let fields = HypervisorFields {
        name: match b.name {
            Some(n) => label("name", &n)?,
            None => h.name.clone(),
        },
        host: b.host.unwrap_or_else(|| h.host.clone()),
        ssh_port: port("ssh_port", b.ssh_port.unwrap_or(h.ssh_port))?,
        ssh_user: b.ssh_user.unwrap_or_else(|| h.ssh_user.clone()),
        node: b.node.unwrap_or_else(|| h.node.clone()),
        role: b.role.unwrap_or(h.role),
        api_port: port("api_port", b.api_port.unwrap_or(h.api_port))?,
        api_token_id: b.api_token_id.unwrap_or_else(|| h.api_token_id.clone()),
        api_token_secret_enc: match b.api_token_secret {
            Some(s) => secret(&state, s)?,
            None => h.api_token_secret_enc.clone(),
        },
        tls_fingerprint: b.tls_fingerprint.unwrap_or_else(|| h.tls_fingerprint.clone()),
        dump_dir: b.dump_dir.unwrap_or_else(|| h.dump_dir.clone()),
        restore_storage: b.restore_storage.unwrap_or_else(|| h.restore_storage.clone()),
        enabled: b.enabled.unwrap_or(h.enabled),
    };
    if fields.role != h.role && state.db.count_pairs_using(h.id).await? > 0 {
        return Err(AppError::invalid("role", "cannot change while pairs use this hypervisor"));
    }
    // A different address is a different machine: its key must be pinned anew.
    let same_machine = fields.host == h.host && fields.ssh_port == h.ssh_port;
    state.db.update_hypervisor(h.id, &fields, same_machine).await?;
    tracing::info!(by = %me.0.username, name = %fields.name, "hypervisor updated");
    Ok(HttpResponse::Ok().json(load(&state, &path).await?))
}

#[utoipa::path(delete, path = "/api/v1/hypervisors/{id}", responses((status = 204), (status = 404), (status = 409)))]
pub async fn delete(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    me.require(Role::Admin)?;
    let h = load(&state, &path).await?;
    let used = state.db.count_pairs_using(h.id).await?;
    if used > 0 {
        return Err(AppError::Conflict(format!("{used} pair(s) use this hypervisor; delete them first.")));
    }
    state.db.delete_hypervisor(h.id).await?;
    tracing::info!(by = %me.0.username, name = %h.name, "hypervisor deleted");
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
#[utoipa::path(post, path = "/api/v1/hypervisors/{id}/check", request_body = CheckInput,
    responses((status = 200, body = crate::hypervisor::proxmox::CheckReport), (status = 404)))]
pub async fn check(
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
    OptionalBody(b): OptionalBody<CheckInput>,
) -> AppResult<HttpResponse> {
    me.require(Role::Admin)?;
    let h = load(&state, &path).await?;
    let report = crate::hypervisor::proxmox::check(&state, &h, b.repin).await?;
    Ok(HttpResponse::Ok().json(report))
}

#[utoipa::path(get, path = "/api/v1/hypervisors/{id}/vms",
    responses((status = 200, description = "VMs on the host, from its Proxmox API"), (status = 404), (status = 502)))]
pub async fn vms(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    me.require(Role::Viewer)?;
    let h = load(&state, &path).await?;
    let vms = crate::hypervisor::proxmox::list_vms(&state, &h).await?;
    Ok(HttpResponse::Ok().json(vms))
}
