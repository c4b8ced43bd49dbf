//! Domain values with no I/O. Each newtype can only hold a valid value, so
//! once a value is one of these it is safe to store, print and pass to a
//! remote shell as an argument.

mod enums;
mod ids;
mod ip_range;
mod names;
mod network;
mod schedule_time;
mod time;
mod vmid;

pub use enums::{
    AlertKind, Compress, ErrorKind, Guest, HypervisorRole, Mode, PairState, Role, ScheduleKind, Severity, SmtpTlsMode,
    TargetKind, TaskKind, TaskStatus, TokenScope, Transfer,
};
pub use ids::{
    AlertId, ApiTokenId, ArchiveId, HypervisorId, LoginSessionId, PairId, ScheduleId, TargetId, TaskId, UserId,
};
pub use ip_range::IpRange;
pub use names::{ArchiveName, DirPath, HostName, LoginName, NodeName, SshUser, StorageId, TlsFingerprint, TokenId};
pub use network::{NetTarget, NetworkMap};
pub use schedule_time::{CronExpr, TimeZone};
pub use time::Timestamp;
pub use vmid::Vmid;

/// Why a value was refused; the API layer adds the field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}
