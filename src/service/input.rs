//! Checks shared by the inputs of several actions.

use serde::{Deserialize, Deserializer};

use super::{ServiceError, ServiceResult};

/// For optional fields that may be set to `null` to clear them:
/// absent → `None`, `null` → `Some(None)`.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A human label: 1..=255 characters, no control characters (not even
/// around it), stored trimmed. `LABEL_PATTERN` says the same for the API
/// document.
/// Anything else (quotes, SQL-looking text) is stored verbatim.
pub fn label(field: &str, s: &str) -> ServiceResult<String> {
    if s.chars().any(char::is_control) {
        return Err(ServiceError::invalid(field, "must not contain control characters"));
    }
    let t = s.trim();
    if t.is_empty() {
        return Err(ServiceError::invalid(field, "must not be empty"));
    }
    if s.chars().count() > 255 {
        return Err(ServiceError::invalid(field, "must be at most 255 characters"));
    }
    Ok(t.to_string())
}

pub fn required<T>(field: &str, v: Option<T>) -> ServiceResult<T> {
    v.ok_or_else(|| ServiceError::invalid(field, "is required"))
}

/// A JSON value (e.g. built from a web form) as a typed input, with errors
/// naming the field like the API's.
pub fn decode<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> ServiceResult<T> {
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
        let path = e.path().to_string();
        let text = e.into_inner().to_string();
        ServiceError::invalid(field_at(&path, &text), text)
    })
}

/// The field a deserialisation error is about: its path, or for a missing or
/// unknown field the name serde quotes in backticks, or else the whole body.
pub fn field_at(path: &str, message: &str) -> String {
    if path != "." && !path.is_empty() {
        return path.to_string();
    }
    message.split('`').nth(1).map(str::to_string).unwrap_or_else(|| "body".into())
}

/// What the body of a create needs beyond an update's (every field of an
/// update is optional), for the API document. The service checks the same
/// rules with `required` and friends; `tests/api_conformance.rs` holds the
/// two to each other.
pub struct CreateRules {
    /// Fields a create must give, not null.
    pub required: &'static [&'static str],
    /// Rules across fields of a create (JSON Schema), e.g. "either `cron` or `hour`".
    pub create: Option<serde_json::Value>,
    /// Rules across fields of an update.
    pub update: Option<serde_json::Value>,
}

/// An input struct whose create needs more than its update.
pub trait Input {
    fn rules() -> CreateRules;
}

/// A label as `label` accepts it, for the API document: 1 to 255
/// characters without control characters, not only white space.
pub const LABEL_PATTERN: &str = concat!(
    r"^[^\x00-\x1f\x7f-\x9f]*",
    r"[^\x00-\x1f\x7f-\x9f \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
    r"[^\x00-\x1f\x7f-\x9f]*$"
);

/// Schema-only types: what a plain `String` field accepts, for the API
/// document (`#[schema(value_type = Label)]`).
pub mod doc {
    use crate::domain::documented;

    /// A name or other label, as `label` accepts it.
    pub struct Label;
    documented!(
        Label,
        serde_json::json!({"type": "string", "minLength": 1, "maxLength": 255, "pattern": super::LABEL_PATTERN})
    );

    /// A new password, as `auth::password::check_strength` accepts it.
    pub struct Password;
    documented!(Password, serde_json::json!({"type": "string", "minLength": 8, "maxLength": 1024, "writeOnly": true}));

    /// A secret kept encrypted (a token secret, an HMAC key, a password):
    /// 1 to 512 characters without control characters.
    pub struct Secret;
    documented!(
        Secret,
        serde_json::json!({"type": "string", "minLength": 1, "maxLength": 512,
            "pattern": r"^[^\x00-\x1f\x7f-\x9f]*$", "writeOnly": true})
    );
}
