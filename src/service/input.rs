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

/// A human label: trimmed, 1..=255 characters, no control characters.
/// Anything else (quotes, SQL-looking text) is stored verbatim.
pub fn label(field: &str, s: &str) -> ServiceResult<String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(ServiceError::invalid(field, "must not be empty"));
    }
    if t.chars().count() > 255 {
        return Err(ServiceError::invalid(field, "must be at most 255 characters"));
    }
    if t.chars().any(char::is_control) {
        return Err(ServiceError::invalid(field, "must not contain control characters"));
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
