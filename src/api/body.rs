//! Request bodies: size limit, malformed JSON (400) versus a bad field
//! (422 naming the field), unknown fields refused.

use std::future::Future;
use std::pin::Pin;

use actix_web::error::PayloadError;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::AppError;

pub const MAX_BODY: usize = 64 * 1024;

/// A JSON body parsed into `T`, with errors that name the field.
pub struct Body<T>(pub T);

/// Like `Body`, but an empty body means `T::default()`.
pub struct OptionalBody<T>(pub T);

/// Reads the body; one that is not empty must be declared JSON (also for
/// requests whose length the middleware could not see, e.g. over HTTP/2).
fn read(req: &HttpRequest, payload: &mut Payload) -> impl Future<Output = Result<web::Bytes, AppError>> {
    let bytes = web::Bytes::from_request(req, payload);
    let json = super::declared_json(req);
    async move {
        let bytes = bytes.await.map_err(|e| match e.as_error::<PayloadError>() {
            Some(PayloadError::Overflow) => AppError::TooLarge(MAX_BODY),
            _ => AppError::Malformed("the request body could not be read".into()),
        })?;
        if !json && !bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(AppError::NotJson);
        }
        Ok(bytes)
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = read(req, payload);
        Box::pin(async move { parse(&bytes.await?).map(Body) })
    }
}

impl<T: DeserializeOwned + Default + 'static> FromRequest for OptionalBody<T> {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = read(req, payload);
        Box::pin(async move {
            let bytes = bytes.await?;
            if bytes.iter().all(u8::is_ascii_whitespace) || bytes.trim_ascii() == b"null" {
                Ok(OptionalBody(T::default()))
            } else {
                parse(&bytes).map(OptionalBody)
            }
        })
    }
}

pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    if bytes.len() > MAX_BODY {
        return Err(AppError::TooLarge(MAX_BODY));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut json = serde_json::Value::deserialize(&mut de)
        .map_err(|e| AppError::Malformed(format!("the request body is not valid JSON ({e})")))?;
    de.end()
        .map_err(|_| AppError::Malformed("the request body has trailing characters after the JSON value".into()))?;
    // serde would take a JSON array for a struct's fields in order; every
    // body drswitch takes is an object.
    if !json.is_object() {
        return Err(AppError::Malformed("the request body must be a JSON object".into()));
    }
    integral(&mut json);
    serde_path_to_error::deserialize::<_, T>(json).map_err(|e| {
        let path = e.path().to_string();
        let text = strip_position(&e.into_inner().to_string());
        AppError::invalid(crate::service::input::field_at(&path, &text), text)
    })
}

/// `7.0` is the integer 7 in JSON (and to JSON Schema); serde would take
/// it for a float and refuse it where an integer is due.
fn integral(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15) {
                *v = serde_json::Value::from(f as i64);
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(integral),
        serde_json::Value::Object(m) => m.values_mut().for_each(integral),
        _ => {}
    }
}

/// serde_json appends " at line 1 column 20"; the field name is clearer.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Vmid;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct T {
        #[allow(dead_code)]
        vmid: Vmid,
    }

    #[test]
    fn only_objects() {
        assert!(matches!(parse::<T>(b"[100]"), Err(AppError::Malformed(_))));
        assert!(matches!(parse::<T>(b"100"), Err(AppError::Malformed(_))));
        assert!(parse::<T>(br#"{"vmid": 100}"#).is_ok());
    }

    fn field_of(body: &str) -> String {
        match parse::<T>(body.as_bytes()) {
            Err(AppError::Invalid { field, .. }) => field,
            other => panic!("{:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn names_the_field() {
        assert_eq!(field_of(r#"{"vmid": 99}"#), "vmid");
        assert_eq!(field_of(r#"{"vmid": "100; rm -rf /"}"#), "vmid");
        assert_eq!(field_of(r#"{}"#), "vmid");
        assert_eq!(field_of(r#"{"vmid": 100, "x": 1}"#), "x");
    }

    #[test]
    fn malformed_is_400() {
        assert!(matches!(parse::<T>(b"{\"vmid\": "), Err(AppError::Malformed(_))));
        assert!(matches!(parse::<T>(b"{\"vmid\": 100} x"), Err(AppError::Malformed(_))));
    }
}
