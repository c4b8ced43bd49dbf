//! The business rules, one function per action: typed input and the acting
//! user in, a typed result or a `ServiceError` out. The JSON API (and the
//! web UI) only adapt HTTP to these; waking the worker or the scheduler
//! after a change happens here, never in a handler.

pub mod audit;
pub mod hypervisors;
pub mod input;
pub mod metrics;
pub mod monitoring;
pub mod overview;
pub mod pairs;
pub mod plans;
pub mod schedules;
pub mod session;
pub mod targets;
pub mod tasks;
pub mod tokens;
pub mod users;

use crate::db::users::User;
use crate::db::DbError;
use crate::domain::Role;
use crate::hypervisor::HvError;

/// Why an action was refused or failed. The web layer maps each variant to
/// one HTTP status, once.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A field's value is not acceptable; `message` says why.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The action clashes with the current state.
    #[error("{0}")]
    Conflict(String),
    /// A field's value clashes with another record (e.g. a duplicate target).
    #[error("{field}: {message}")]
    Taken { field: String, message: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("your role may not do this; it needs {0}")]
    Forbidden(&'static str),
    /// A hypervisor did not answer or answered wrongly.
    #[error("{0}")]
    Upstream(String),
    #[error("Wrong username or password.")]
    BadCredentials,
    /// Too many login attempts; retry after this many seconds.
    #[error("too many failed logins; try again in {0} seconds")]
    Throttled(u64),
    /// drswitch itself failed; the cause is for the log only.
    #[error("internal error")]
    Internal(String),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ServiceError::Invalid { field: field.into(), message: message.into() }
    }

    /// A well-formed field whose value clashes with what is stored (an id
    /// of nothing, a VMID in use): 409 naming the field, where a malformed
    /// one is 422.
    pub fn clash(field: impl Into<String>, message: impl Into<String>) -> Self {
        ServiceError::Taken { field: field.into(), message: message.into() }
    }
}

impl From<DbError> for ServiceError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Conflict(what) => ServiceError::Conflict(what),
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

impl From<HvError> for ServiceError {
    fn from(e: HvError) -> Self {
        match e {
            HvError::Failed { kind: crate::domain::ErrorKind::Database, message } => ServiceError::Internal(message),
            other => ServiceError::Upstream(other.to_string()),
        }
    }
}

/// The acting user may do what `needed` may do.
pub fn require(actor: &User, needed: Role) -> ServiceResult<()> {
    if actor.role.allows(needed) {
        Ok(())
    } else {
        Err(ServiceError::Forbidden(match needed {
            Role::Admin => "the admin role",
            Role::Operator => "the operator role",
            Role::Viewer => "the viewer role",
        }))
    }
}
