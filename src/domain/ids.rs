//! Typed ids: a pair's id cannot be passed where a task's is expected.
//! Parsed once at the edge (paths, JSON, database rows); UUIDs on the wire.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Invalid;

/// A UUID as the API writes it: 36 characters, hyphenated (the `uuid`
/// format of the API document); the other spellings `Uuid` reads are refused.
fn parse(s: &str) -> Result<Uuid, Invalid> {
    match Uuid::try_parse(s) {
        Ok(u) if s.len() == 36 => Ok(u),
        _ => Err(Invalid::new("must be a UUID")),
    }
}

fn hyphenated<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
    let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    parse(&s).map_err(|e| serde::de::Error::custom(e.0))
}

macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(#[serde(deserialize_with = "hyphenated")] Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            pub fn uuid(self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }

        impl FromStr for $name {
            type Err = Invalid;
            fn from_str(s: &str) -> Result<Self, Invalid> {
                parse(s).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

typed_id!(
    /// A user.
    UserId
);
typed_id!(
    /// An API token.
    ApiTokenId
);
typed_id!(
    /// One login: the row behind a session cookie.
    LoginSessionId
);
typed_id!(
    /// A registered hypervisor.
    HypervisorId
);
typed_id!(
    /// A VM pair.
    PairId
);
typed_id!(
    /// A task in the queue.
    TaskId
);
typed_id!(
    /// A schedule.
    ScheduleId
);
typed_id!(
    /// An archive on the middleware.
    ArchiveId
);
typed_id!(
    /// An alert (one incident).
    AlertId
);
typed_id!(
    /// A notification target.
    TargetId
);
