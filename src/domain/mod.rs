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

/// Where a schema written as JSON waits in the derived document until
/// `api::conformance` puts it in place.
pub const JSON_SCHEMA_KEY: &str = "x-drswitch-schema";

/// A schema for the API document written as JSON Schema, for the values
/// whose rules utoipa cannot derive (patterns, ranges, enums, `anyOf`).
pub(crate) fn schema(v: serde_json::Value) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::extensions::ExtensionsBuilder;
    use utoipa::openapi::schema::ObjectBuilder;
    ObjectBuilder::new().extensions(Some(ExtensionsBuilder::new().add(JSON_SCHEMA_KEY, v).build())).into()
}

/// Declares the API document's schema of a value type, next to its rules.
macro_rules! documented {
    ($name:ident, $schema:expr) => {
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $crate::domain::schema($schema)
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}
pub(crate) use documented;
