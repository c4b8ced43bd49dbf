//! The jobs. Each is one function the worker calls whatever queued the task
//! (button, API, schedule).

pub mod backup;
pub mod restore;

use crate::db::DbError;
use crate::hypervisor::HvError;
use crate::transfer::TransferError;

/// Why a job stopped; `Failed` holds the one sentence shown to users.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{0}")]
    Failed(String),
    #[error("cancelled")]
    Cancelled,
}

impl From<HvError> for JobError {
    fn from(e: HvError) -> Self {
        match e {
            HvError::Cancelled => JobError::Cancelled,
            HvError::Failed(m) => JobError::Failed(m),
        }
    }
}

impl From<TransferError> for JobError {
    fn from(e: TransferError) -> Self {
        match e {
            TransferError::Cancelled => JobError::Cancelled,
            TransferError::Failed(m) => JobError::Failed(m),
        }
    }
}

impl From<DbError> for JobError {
    fn from(e: DbError) -> Self {
        JobError::Failed(format!("The database failed during the task ({e})."))
    }
}

pub fn fail(msg: impl Into<String>) -> JobError {
    JobError::Failed(msg.into())
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
