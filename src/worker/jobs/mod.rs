//! The jobs. Each is one function the worker calls whatever queued the task
//! (button, API, schedule).

pub mod backup;
pub mod drill;
pub mod evidence;
pub mod failback;
pub mod failover;
pub mod restore;
pub mod stream;

#[cfg(test)]
mod tests;

use crate::db::DbError;
use crate::domain::ErrorKind;
use crate::hypervisor::HvError;

/// Why a job stopped. `Failed` holds a kind for alerts and retries and the
/// one sentence shown to people; causes that would mean nothing to them
/// (database errors) go to the server log instead.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{message}")]
    Failed { kind: ErrorKind, message: String },
    #[error("cancelled")]
    Cancelled,
}

impl JobError {
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            JobError::Failed { kind, .. } => Some(*kind),
            JobError::Cancelled => None,
        }
    }
}

impl From<HvError> for JobError {
    fn from(e: HvError) -> Self {
        match e {
            HvError::Cancelled => JobError::Cancelled,
            HvError::Failed { kind, message } => JobError::Failed { kind, message },
        }
    }
}

impl From<DbError> for JobError {
    fn from(e: DbError) -> Self {
        tracing::error!(error = %e, "database error during a task");
        fail(ErrorKind::Database, "drswitch's database failed during the task; see the server log.")
    }
}

pub fn fail(kind: ErrorKind, msg: impl Into<String>) -> JobError {
    JobError::Failed { kind, message: msg.into() }
}

/// Fails for want of space unless `free` bytes hold `need`: "`whose` has
/// only … free`place`, but `need_is` …." (one wording for every check).
pub fn need_room(whose: &str, place: &str, free: u64, need: u64, need_is: &str) -> Result<(), JobError> {
    if free >= need {
        return Ok(());
    }
    Err(fail(
        ErrorKind::NotEnoughSpace,
        format!("{whose} has only {} free{place}, but {need_is} {}.", size(free), size(need)),
    ))
}

/// The middleware's archive storage, as `need_room` names it.
pub const HERE: &str = "The middleware's archive storage";
/// What a preflight expects: the pair's last archive.
pub const LAST_ARCHIVE: &str = "the last archive of this VM took";

/// Says in the task log how fast a transfer with `hv` may go.
pub fn log_limit(ctx: &crate::worker::context::TaskCtx, hv: &impl crate::hypervisor::Hypervisor) {
    match hv.bwlimit_kib() {
        0 => ctx.log(format!("transfer limit for {}: none", hv.name())),
        l => ctx.log(format!("transfer limit for {}: {l} KiB/s ({:.1} Mbit/s)", hv.name(), l as f64 * 8192.0 / 1e6)),
    }
}

/// Human size for log lines.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
