//! Talking to hypervisors. `Hypervisor` is what the jobs need from a host;
//! Proxmox over ssh is its first implementation, so a second hypervisor
//! type is a new file, not edits everywhere.

pub mod api;
pub mod check;
pub mod proxmox;
pub mod ssh;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::db::hypervisors::Hypervisor as HypervisorRecord;
use crate::domain::{Compress, DirPath, Guest, Mode, StorageId, Vmid};
use crate::state::AppState;

pub use check::{check, list_vms};

#[derive(Debug, thiserror::Error)]
pub enum HvError {
    /// One sentence saying what failed where.
    #[error("{0}")]
    Failed(String),
    #[error("cancelled")]
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestState {
    Missing,
    Stopped,
    /// Running, paused, … as the hypervisor says it.
    Running(String),
}

impl std::fmt::Display for GuestState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuestState::Missing => f.write_str("absent"),
            GuestState::Stopped => f.write_str("stopped"),
            GuestState::Running(s) => f.write_str(s),
        }
    }
}

pub struct DumpOptions {
    pub dump_dir: DirPath,
    pub compress: Compress,
    pub mode: Mode,
}

/// What the backup and restore jobs need from a hypervisor.
#[allow(async_fn_in_trait)]
pub trait Hypervisor {
    fn name(&self) -> &str;
    async fn guest_state(&self, guest: Guest, vmid: Vmid, cancel: &CancellationToken) -> Result<GuestState, HvError>;
    async fn free_bytes(&self, dir: &DirPath, cancel: &CancellationToken) -> Result<u64, HvError>;
    /// Backs the guest up into `opts.dump_dir`; returns the archive's path.
    async fn dump(
        &self,
        vmid: Vmid,
        opts: &DumpOptions,
        cancel: &CancellationToken,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<String, HvError>;
    /// SHA-256 (hex) of a file on the host.
    async fn sha256(&self, path: &str, cancel: &CancellationToken) -> Result<String, HvError>;
    async fn file_size(&self, path: &str, cancel: &CancellationToken) -> Result<u64, HvError>;
    async fn remove(&self, paths: &[&str], cancel: &CancellationToken) -> Result<(), HvError>;
    /// Waits (bounded) until no backup job runs on the host any more, e.g.
    /// one whose ssh session was just cut, so it cannot write after cleanup.
    async fn wait_for_dumps(&self, cancel: &CancellationToken) -> Result<(), HvError>;
    async fn rename(&self, from: &str, to: &str, cancel: &CancellationToken) -> Result<(), HvError>;
    /// Creates a directory of drswitch's own (and missing parents).
    async fn make_dir(&self, path: &str, cancel: &CancellationToken) -> Result<(), HvError>;
    /// The guest's tags (Proxmox's `tags` config option), where drswitch
    /// keeps its replica marker.
    async fn tags(&self, guest: Guest, vmid: Vmid, cancel: &CancellationToken) -> Result<Vec<String>, HvError>;
    async fn set_tags(
        &self,
        guest: Guest,
        vmid: Vmid,
        tags: &[String],
        cancel: &CancellationToken,
    ) -> Result<(), HvError>;
    async fn stop(&self, guest: Guest, vmid: Vmid, cancel: &CancellationToken) -> Result<(), HvError>;
    async fn start(&self, guest: Guest, vmid: Vmid, cancel: &CancellationToken) -> Result<(), HvError>;
    #[allow(clippy::too_many_arguments)]
    async fn restore(
        &self,
        guest: Guest,
        archive: &str,
        vmid: Vmid,
        storage: &StorageId,
        force: bool,
        cancel: &CancellationToken,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), HvError>;
}

/// The tag that marks a VM as drswitch's replica of one pair. Proxmox tags
/// allow `[a-z0-9_][a-z0-9_+.-]*`, which a UUID with a prefix fits.
pub fn replica_tag(pair: uuid::Uuid) -> String {
    format!("drswitch-{pair}")
}

/// The guest's tags with this pair's marker, and without any other pair's.
pub fn with_replica_tag(tags: &[String], pair: uuid::Uuid) -> Vec<String> {
    let mut out: Vec<String> = tags.iter().filter(|t| !t.starts_with("drswitch-")).cloned().collect();
    out.push(replica_tag(pair));
    out
}

/// The ssh connection settings for a stored hypervisor.
pub fn ssh_target(state: &AppState, h: &HypervisorRecord) -> Result<ssh::SshTarget, ssh::SshError> {
    ssh::SshTarget::for_hypervisor(h, &state.settings.ssh_dir(), state.settings.ssh_connect_timeout)
}

/// The Proxmox driver for a stored hypervisor.
pub fn proxmox(state: &AppState, h: &HypervisorRecord) -> Result<proxmox::ProxmoxSsh, HvError> {
    Ok(proxmox::ProxmoxSsh {
        ssh: ssh_target(state, h)?,
        node: h.node.to_string(),
        command_timeout: state.settings.command_timeout,
        quick_timeout: Duration::from_secs(120).min(state.settings.command_timeout),
    })
}
