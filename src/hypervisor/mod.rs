//! Talking to hypervisors. `Hypervisor` is everything the jobs need from a
//! host, in drswitch's terms: guests, dumps, restores, files, transfers.
//! A driver turns those into one hypervisor type's commands and turns that
//! type's output back into typed events; the jobs never see a command line
//! or an output format. Proxmox VE (CLI over ssh, HTTPS API) is the first
//! driver; a second type is a new folder beside `proxmox/` and one arm in
//! `connect`.

mod child;
pub mod proxmox;
pub mod rsync;
pub mod ssh;
pub mod stream;

#[cfg(test)]
pub mod fake;

use std::path::Path;

use tokio_util::sync::CancellationToken;

use crate::db::hypervisors::Hypervisor as HypervisorRecord;
use crate::db::pairs::Pair;
use crate::domain::{ArchiveName, Compress, DirPath, ErrorKind, Guest, Mode, StorageId, Vmid};
use crate::state::AppState;

/// Why a hypervisor operation failed: a kind for machines and one sentence
/// for people (never a secret, never raw driver text beyond the host's own
/// error line).
#[derive(Debug, Clone, thiserror::Error)]
pub enum HvError {
    #[error("{message}")]
    Failed { kind: ErrorKind, message: String },
    #[error("cancelled")]
    Cancelled,
}

impl HvError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        HvError::Failed { kind, message: message.into() }
    }
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

/// A dump that streams out of the host instead of into its dump dir.
pub struct StreamOptions {
    /// Where vzdump may put its log and temporary files (the archive
    /// itself goes to stdout).
    pub dump_dir: DirPath,
    pub compress: Compress,
    pub mode: Mode,
    /// vzdump's `--fleecing enabled=1,storage=…` (VMs only).
    pub fleecing: Option<StorageId>,
}

/// What a long-running operation reports while it runs.
#[derive(Debug, Clone, Copy)]
pub enum HvEvent<'a> {
    /// A line of the host's own output, for the task log.
    Line(&'a str),
    /// How far the operation is: percent 0–100 and, when the host says,
    /// bytes done of bytes in all.
    Progress { percent: u8, done: u64, total: u64 },
}

/// The archive a dump produced.
#[derive(Debug, Clone)]
pub struct Dumped {
    /// Full path on the host.
    pub path: String,
    pub name: ArchiveName,
}

/// What the backup and restore jobs need from a hypervisor.
#[allow(async_fn_in_trait)]
pub trait Hypervisor {
    fn name(&self) -> &str;
    async fn guest_state(&self, guest: Guest, vmid: Vmid, cancel: &CancellationToken) -> Result<GuestState, HvError>;
    async fn free_bytes(&self, dir: &DirPath, cancel: &CancellationToken) -> Result<u64, HvError>;
    /// Backs the guest up into `opts.dump_dir`.
    async fn dump(
        &self,
        vmid: Vmid,
        opts: &DumpOptions,
        cancel: &CancellationToken,
        on: &mut (dyn FnMut(HvEvent<'_>) + Send),
    ) -> Result<Dumped, HvError>;
    /// Starts a dump whose archive streams to the middleware (`vzdump
    /// --stdout`); nothing is written on the host.
    async fn dump_stream(&self, guest: Guest, vmid: Vmid, opts: &StreamOptions) -> Result<stream::DumpStream, HvError>;
    /// Starts writing a new file on the host from bytes sent as they come.
    async fn upload(&self, path: &str) -> Result<stream::Upload, HvError>;
    /// Waits (bounded) until no backup job runs on the host any more, e.g.
    /// one whose ssh session was just cut, so it cannot write after cleanup.
    async fn wait_for_dumps(&self, cancel: &CancellationToken) -> Result<(), HvError>;
    #[allow(clippy::too_many_arguments)]
    async fn restore(
        &self,
        guest: Guest,
        archive: &str,
        vmid: Vmid,
        storage: &StorageId,
        force: bool,
        unique: bool,
        cancel: &CancellationToken,
        on: &mut (dyn FnMut(HvEvent<'_>) + Send),
    ) -> Result<(), HvError>;
    async fn stop(&self, guest: Guest, vmid: Vmid, cancel: &CancellationToken) -> Result<(), HvError>;
    async fn start(&self, guest: Guest, vmid: Vmid, cancel: &CancellationToken) -> Result<(), HvError>;
    /// Asks the guest to shut down cleanly, failing if it has not within
    /// `timeout`.
    async fn shutdown(
        &self,
        guest: Guest,
        vmid: Vmid,
        timeout: std::time::Duration,
        cancel: &CancellationToken,
    ) -> Result<(), HvError>;
    /// The guest's configuration as `(key, value)` pairs.
    async fn options(
        &self,
        guest: Guest,
        vmid: Vmid,
        cancel: &CancellationToken,
    ) -> Result<Vec<(String, String)>, HvError>;
    /// Sets guest options such as `onboot` or `net0` (keys drswitch chose,
    /// values it built or read from the host).
    async fn set_options(
        &self,
        guest: Guest,
        vmid: Vmid,
        options: &[(String, String)],
        cancel: &CancellationToken,
    ) -> Result<(), HvError>;
    /// Removes the guest and its disks (only ever a drill VM drswitch made).
    async fn destroy(&self, guest: Guest, vmid: Vmid, cancel: &CancellationToken) -> Result<(), HvError>;
    /// Whether the guest agent of a qemu guest answers a ping.
    async fn agent_ping(&self, vmid: Vmid, cancel: &CancellationToken) -> Result<bool, HvError>;
    /// The guest's tags, where drswitch keeps its replica marker.
    async fn tags(&self, guest: Guest, vmid: Vmid, cancel: &CancellationToken) -> Result<Vec<String>, HvError>;
    async fn set_tags(
        &self,
        guest: Guest,
        vmid: Vmid,
        tags: &[String],
        cancel: &CancellationToken,
    ) -> Result<(), HvError>;

    /// SHA-256 (hex) of a file on the host.
    async fn sha256(&self, path: &str, cancel: &CancellationToken) -> Result<String, HvError>;
    async fn file_size(&self, path: &str, cancel: &CancellationToken) -> Result<u64, HvError>;
    /// Creates a directory of drswitch's own; fails if it exists.
    async fn make_dir(&self, path: &str, cancel: &CancellationToken) -> Result<(), HvError>;
    async fn rename(&self, from: &str, to: &str, cancel: &CancellationToken) -> Result<(), HvError>;
    /// Removes files or directories drswitch made.
    async fn remove(&self, paths: &[&str], cancel: &CancellationToken) -> Result<(), HvError>;
    /// Copies a file from the host to the middleware; `on` sees the bytes
    /// done so far (`Progress`, total unknown) and notes such as a resume
    /// after a cut (`Line`). A partial `local` of an earlier cut transfer
    /// is gone on from, not sent again.
    async fn pull(
        &self,
        remote: &str,
        local: &Path,
        cancel: &CancellationToken,
        on: &mut (dyn FnMut(HvEvent<'_>) + Send),
    ) -> Result<(), HvError>;
    /// Copies a file from the middleware to the host, going on from a
    /// partial `remote` the same way.
    async fn push(
        &self,
        local: &Path,
        remote: &str,
        cancel: &CancellationToken,
        on: &mut (dyn FnMut(HvEvent<'_>) + Send),
    ) -> Result<(), HvError>;
    /// KiB/s archive transfers to or from this host may use; 0 = no limit.
    fn bwlimit_kib(&self) -> u64;
}

/// The tag that marks a VM as drswitch's replica of one pair at its
/// current target: the pair's id and a part that changes with the target,
/// so a VM restored for an earlier target (or a clone of one) does not
/// count. Proxmox tags allow `[a-z0-9_][a-z0-9_+.-]*`, which this fits.
pub fn replica_tag(pair: &Pair) -> String {
    format!("drswitch-{}-{}", pair.id, pair.replica_marker)
}

/// The guest's tags with this pair's marker, and without any other marker.
pub fn with_replica_tag(tags: &[String], pair: &Pair) -> Vec<String> {
    let mut out: Vec<String> = tags.iter().filter(|t| !t.starts_with("drswitch-")).cloned().collect();
    out.push(replica_tag(pair));
    out
}

/// The driver for a stored hypervisor, by its type (Proxmox VE is the only
/// type so far).
pub fn connect(state: &AppState, h: &HypervisorRecord) -> Result<proxmox::ProxmoxCli, HvError> {
    proxmox::ProxmoxCli::connect(state, h)
}

/// The monitor's probe of a stored hypervisor, by its type.
pub async fn probe(state: &AppState, h: &HypervisorRecord) -> proxmox::probe::ProbeResult {
    proxmox::probe::probe(state, h).await
}
