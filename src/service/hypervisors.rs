//! Hypervisors: registering Proxmox hosts, their secrets (encrypted here,
//! never returned) and the connectivity check.

use serde::Deserialize;

use super::audit::{self, changes, subject};
use super::input::{doc, label, nullable, required, CreateRules, Input};
use super::{require, ServiceError, ServiceResult};
use crate::db::hypervisors::{Hypervisor, HypervisorFields};
use crate::db::users::User;
use crate::domain::{
    DirPath, HostName, HypervisorId, HypervisorRole, NodeName, Role, SshUser, StorageId, TlsFingerprint, TokenId,
};
use crate::hypervisor::proxmox::{self, api::VmInfo, CheckReport};
use crate::state::AppState;

/// Who may register, change, check and delete hypervisors.
pub const MANAGE: Role = Role::Admin;

/// Fields of a hypervisor. On create, `name`, `host`, `node` and `role` are
/// required; on update every field is optional and `null` clears the
/// optional ones. `api_token_secret` is write-only.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HypervisorInput {
    #[schema(value_type = Option<doc::Label>)]
    pub name: Option<String>,
    pub host: Option<HostName>,
    #[schema(minimum = 1, maximum = 65535)]
    pub ssh_port: Option<u16>,
    pub ssh_user: Option<SshUser>,
    pub node: Option<NodeName>,
    pub role: Option<HypervisorRole>,
    #[schema(minimum = 1, maximum = 65535)]
    pub api_port: Option<u16>,
    #[serde(default, deserialize_with = "nullable")]
    pub api_token_id: Option<Option<TokenId>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<doc::Secret>)]
    pub api_token_secret: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub tls_fingerprint: Option<Option<TlsFingerprint>>,
    pub dump_dir: Option<DirPath>,
    pub restore_storage: Option<StorageId>,
    pub enabled: Option<bool>,
    /// KiB/s for archive transfers to or from this host, 0 = no limit;
    /// null = the `TRANSFER_BWLIMIT_KIB` setting.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(minimum = 0, maximum = 100_000_000)]
    pub bwlimit_kib: Option<Option<i64>>,
}

impl Input for HypervisorInput {
    fn rules() -> CreateRules {
        CreateRules { required: &["name", "host", "node", "role"], create: None, update: None }
    }
}

/// Transfer limits in KiB/s: up to 100 GiB/s, 0 = none.
fn bwlimit(n: Option<i64>) -> ServiceResult<Option<u64>> {
    match n {
        None => Ok(None),
        Some(n) if (0..=100_000_000).contains(&n) => Ok(Some(n as u64)),
        Some(_) => Err(ServiceError::invalid("bwlimit_kib", "must be from 0 (no limit) to 100000000 KiB/s")),
    }
}

fn port(field: &str, p: u16) -> ServiceResult<u16> {
    if p == 0 {
        Err(ServiceError::invalid(field, "must be a port from 1 to 65535"))
    } else {
        Ok(p)
    }
}

fn secret(state: &AppState, s: Option<String>) -> ServiceResult<Option<String>> {
    match s {
        None => Ok(None),
        Some(s) if s.is_empty() || s.chars().count() > 512 || s.chars().any(char::is_control) => {
            Err(ServiceError::invalid("api_token_secret", "must be 1 to 512 printable characters"))
        }
        Some(s) => Ok(Some(state.secrets.encrypt(&s))),
    }
}

pub async fn load(state: &AppState, id: HypervisorId) -> ServiceResult<Hypervisor> {
    state.db.hypervisor(id).await?.ok_or(ServiceError::NotFound("hypervisor"))
}

pub async fn list(state: &AppState, actor: &User) -> ServiceResult<Vec<Hypervisor>> {
    require(actor, Role::Viewer)?;
    Ok(state.db.list_hypervisors().await?)
}

pub async fn get(state: &AppState, actor: &User, id: HypervisorId) -> ServiceResult<Hypervisor> {
    require(actor, Role::Viewer)?;
    load(state, id).await
}

pub async fn create(state: &AppState, actor: &User, b: HypervisorInput) -> ServiceResult<Hypervisor> {
    require(actor, MANAGE)?;
    let fields = HypervisorFields {
        name: label("name", &required("name", b.name)?)?,
        host: required("host", b.host)?,
        ssh_port: port("ssh_port", b.ssh_port.unwrap_or(22))?,
        ssh_user: b.ssh_user.unwrap_or_else(SshUser::root),
        node: required("node", b.node)?,
        role: required("role", b.role)?,
        api_port: port("api_port", b.api_port.unwrap_or(8006))?,
        api_token_id: b.api_token_id.flatten(),
        api_token_secret_enc: secret(state, b.api_token_secret.flatten())?,
        tls_fingerprint: b.tls_fingerprint.flatten(),
        dump_dir: b.dump_dir.unwrap_or_else(DirPath::default_dump),
        restore_storage: b.restore_storage.unwrap_or_else(StorageId::local_lvm),
        enabled: b.enabled.unwrap_or(true),
        bwlimit_kib: bwlimit(b.bwlimit_kib.flatten())?,
    };
    let id = state.db.insert_hypervisor(&fields).await?;
    tracing::info!(by = %actor.username, name = %fields.name, host = %fields.host, "hypervisor created");
    let detail = format!("name {:?}, host {}, role {}", fields.name, fields.host, fields.role);
    audit::record(state, &actor.username, "hypervisor.create", subject("hypervisor", id), &detail).await;
    load(state, id).await
}

pub async fn update(state: &AppState, actor: &User, id: HypervisorId, b: HypervisorInput) -> ServiceResult<Hypervisor> {
    require(actor, MANAGE)?;
    let h = load(state, id).await?;
    let secret_set = b.api_token_secret.is_some();
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
            Some(s) => secret(state, s)?,
            None => h.api_token_secret_enc.clone(),
        },
        tls_fingerprint: b.tls_fingerprint.unwrap_or_else(|| h.tls_fingerprint.clone()),
        dump_dir: b.dump_dir.unwrap_or_else(|| h.dump_dir.clone()),
        restore_storage: b.restore_storage.unwrap_or_else(|| h.restore_storage.clone()),
        enabled: b.enabled.unwrap_or(h.enabled),
        bwlimit_kib: match b.bwlimit_kib {
            Some(n) => bwlimit(n)?,
            None => h.bwlimit_kib,
        },
    };
    if fields.role != h.role && state.db.count_pairs_using(h.id).await? > 0 {
        return Err(ServiceError::clash("role", "cannot change while pairs use this hypervisor"));
    }
    // A different address is a different machine: its key must be pinned anew.
    let same_machine = fields.host == h.host && fields.ssh_port == h.ssh_port;
    state.db.update_hypervisor(h.id, &fields, same_machine).await?;
    tracing::info!(by = %actor.username, name = %fields.name, "hypervisor updated");
    let after = load(state, id).await?;
    let detail = changes(&h, &after, &[("api_token_secret", secret_set)]);
    audit::record(state, &actor.username, "hypervisor.update", subject("hypervisor", h.id), &detail).await;
    Ok(after)
}

pub async fn delete(state: &AppState, actor: &User, id: HypervisorId) -> ServiceResult<()> {
    require(actor, MANAGE)?;
    let h = load(state, id).await?;
    let used = state.db.count_pairs_using(h.id).await?;
    if used > 0 {
        return Err(ServiceError::Conflict(format!("{used} pair(s) use this hypervisor; delete them first.")));
    }
    state.db.delete_hypervisor(h.id).await?;
    tracing::info!(by = %actor.username, name = %h.name, "hypervisor deleted");
    let detail = format!("name {:?}", h.name);
    audit::record(state, &actor.username, "hypervisor.delete", subject("hypervisor", h.id), &detail).await;
    Ok(())
}

/// Pins the SSH host key on first contact (or again with `repin`) and
/// reports ssh, host key, API and node-name results.
pub async fn check(state: &AppState, actor: &User, id: HypervisorId, repin: bool) -> ServiceResult<CheckReport> {
    require(actor, MANAGE)?;
    let h = load(state, id).await?;
    if repin {
        tracing::warn!(target: "audit", by = %actor.username, hypervisor = %h.name, "host key re-pin requested");
    }
    let report = proxmox::check(state, &h, repin).await?;
    let pinned = load(state, id).await?.host_key_fingerprint;
    let mut detail = format!("name {:?}: {}", h.name, if report.ok { "all checks passed" } else { "a check failed" });
    if pinned != h.host_key_fingerprint {
        if let Some(fp) = &pinned {
            detail.push_str(&format!("; host key {fp} pinned"));
        }
    }
    let action = if repin { "hypervisor.repin" } else { "hypervisor.check" };
    audit::record(state, &actor.username, action, subject("hypervisor", h.id), &detail).await;
    Ok(report)
}

/// VMs on the host, from its Proxmox API.
pub async fn vms(state: &AppState, actor: &User, id: HypervisorId) -> ServiceResult<Vec<VmInfo>> {
    require(actor, Role::Viewer)?;
    let h = load(state, id).await?;
    if h.api_token_id.is_none() || h.api_token_secret_enc.is_none() {
        return Err(ServiceError::Conflict(
            "No Proxmox API token is configured for this hypervisor; set api_token_id and api_token_secret.".into(),
        ));
    }
    Ok(proxmox::list_vms(state, &h).await?)
}
