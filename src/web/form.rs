//! Posted forms: the CSRF token is checked before anything else, and the
//! fields become the same typed input the JSON API takes, so a form and a
//! `curl` are checked by the same service function.

use std::future::Future;
use std::pin::Pin;

use actix_session::SessionExt;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::auth::csrf_ok;
use super::PageError;
use crate::service::{ServiceError, ServiceResult};

const MAX_FORM: usize = 64 * 1024;

/// The fields of a posted form, in order, without the CSRF token.
pub struct Form {
    pub fields: Vec<(String, String)>,
}

impl FromRequest for Form {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, PageError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let session = req.get_session();
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await.map_err(|_| ServiceError::invalid("form", "could not be read"))?;
            if bytes.len() > MAX_FORM {
                return Err(ServiceError::invalid("form", "is too large").into());
            }
            let fields: Vec<(String, String)> =
                serde_urlencoded::from_bytes(&bytes).map_err(|_| ServiceError::invalid("form", "is not a form"))?;
            let token = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or("");
            if !csrf_ok(&session, token) {
                return Err(PageError::Csrf);
            }
            Ok(Form { fields: fields.into_iter().filter(|(k, _)| k != "csrf").collect() })
        })
    }
}

/// How a form value becomes JSON for the service input.
#[derive(Clone, Copy)]
pub enum Kind {
    Text,
    /// A password or secret: taken exactly as typed (spaces count).
    Secret,
    Number,
    /// A checkbox: present means true; the form sends a hidden "false" first.
    Flag,
    /// An optional setting: sent empty means "none" (JSON null), which the
    /// API takes as "clear it".
    Clearable,
}

impl Form {
    /// The last value sent under `name`, trimmed; None when empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.raw(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// The last value sent under `name` exactly as typed; None when empty.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.fields.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    /// The fields named in `schema` as the JSON object the API would take:
    /// empty fields are left out (unchanged on edit, the default on create).
    pub fn json(&self, schema: &[(&str, Kind)]) -> ServiceResult<Value> {
        let mut map = Map::new();
        for (name, kind) in schema {
            let value = match kind {
                Kind::Secret => match self.raw(name) {
                    Some(raw) => Value::String(raw.to_string()),
                    None => continue,
                },
                Kind::Clearable => match self.get(name) {
                    Some(v) => Value::String(v.to_string()),
                    None if self.raw(name).is_some() || self.fields.iter().any(|(k, _)| k == name) => Value::Null,
                    None => continue,
                },
                _ if self.get(name).is_none() => continue,
                Kind::Text => Value::String(self.get(name).unwrap_or_default().to_string()),
                Kind::Number => match self.get(name).unwrap_or_default().parse::<i64>() {
                    Ok(n) => Value::from(n),
                    Err(_) => return Err(ServiceError::invalid(*name, "must be a whole number")),
                },
                Kind::Flag => Value::Bool(matches!(self.get(name), Some("true" | "on" | "1"))),
            };
            map.insert(name.to_string(), value);
        }
        Ok(Value::Object(map))
    }

    /// The form as a service input type, with errors naming the field.
    pub fn input<T: DeserializeOwned>(&self, schema: &[(&str, Kind)]) -> ServiceResult<T> {
        crate::service::input::decode(self.json(schema)?)
    }

    /// The values as typed, to fill a form again after an error.
    pub fn values(&self) -> impl Fn(&str) -> String + '_ {
        move |name| self.fields.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default()
    }
}
