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
    /// A number that may have a fraction (a percentage).
    Decimal,
    /// An optional whole number: sent empty means "none" (JSON null), the
    /// API's "use the default".
    OptNumber,
    /// A textarea holding a list, one item per line; empty lines are
    /// skipped.
    Lines,
    /// Checkboxes sharing one name, as a list of the ticked values. The
    /// form sends an empty value under the name first, so "none ticked"
    /// arrives as an empty list instead of as "unchanged".
    Multi,
    /// A checkbox: present means true; the form sends a hidden "false" first.
    Flag,
    /// An optional setting: sent empty means "none" (JSON null), which the
    /// API takes as "clear it".
    Clearable,
    /// A textarea holding a JSON object (a network map): sent empty means
    /// "none" (JSON null, which clears it); anything else must parse as an
    /// object, which the service input then checks like the API's body.
    JsonObject,
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

    /// Every non-empty value sent under `name`, trimmed, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
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
                Kind::OptNumber => match self.get(name) {
                    Some(v) => Value::from(whole(name, v)?),
                    None if self.fields.iter().any(|(k, _)| k == name) => Value::Null,
                    None => continue,
                },
                Kind::JsonObject => match self.get(name) {
                    Some(v) => json_object(name, v)?,
                    None if self.fields.iter().any(|(k, _)| k == name) => Value::Null,
                    None => continue,
                },
                Kind::Multi => {
                    if !self.fields.iter().any(|(k, _)| k == name) {
                        continue;
                    }
                    let ticked = self.all(name).map(|v| Value::String(v.to_string())).collect();
                    Value::Array(ticked)
                }
                _ if self.get(name).is_none() => continue,
                Kind::Text => Value::String(self.get(name).unwrap_or_default().to_string()),
                Kind::Number => Value::from(whole(name, self.get(name).unwrap_or_default())?),
                Kind::Decimal => match self.get(name).unwrap_or_default().parse::<f64>() {
                    Ok(n) if n.is_finite() => Value::from(n),
                    _ => return Err(ServiceError::invalid(*name, "must be a number")),
                },
                Kind::Lines => Value::Array(
                    self.get(name)
                        .unwrap_or_default()
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(|l| Value::String(l.to_string()))
                        .collect(),
                ),
                Kind::Flag => Value::Bool(matches!(self.get(name), Some("true" | "on" | "1"))),
            };
            map.insert(name.to_string(), value);
        }
        Ok(Value::Object(map))
    }

    /// The form as a service input type, with errors naming the field.
    /// An error inside a field's value (a key of a JSON object, an item
    /// of a list) is shown next to that field.
    pub fn input<T: DeserializeOwned>(&self, schema: &[(&str, Kind)]) -> ServiceResult<T> {
        crate::service::input::decode(self.json(schema)?).map_err(|e| match e {
            ServiceError::Invalid { field, message } => {
                let (top, inner) = split_path(&field);
                match inner {
                    Some(inner) if schema.iter().any(|(n, _)| *n == top) => {
                        ServiceError::invalid(top, format!("{inner}: {message}"))
                    }
                    _ => ServiceError::Invalid { field, message },
                }
            }
            other => other,
        })
    }

    /// The values as typed, to fill a form again after an error.
    pub fn values(&self) -> impl Fn(&str) -> String + '_ {
        move |name| self.fields.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default()
    }
}

/// A typed JSON object; a list, a number or broken JSON is refused naming
/// the field.
fn json_object(name: &str, v: &str) -> ServiceResult<Value> {
    match serde_json::from_str::<Value>(v) {
        Ok(obj @ Value::Object(_)) => Ok(obj),
        Ok(_) => Err(ServiceError::invalid(name, "must be a JSON object in braces: { … }")),
        Err(e) => Err(ServiceError::invalid(name, format!("is not valid JSON ({e})"))),
    }
}

/// `network_map.vmbr0` → (`network_map`, Some(`vmbr0`)); `kinds[1]` →
/// (`kinds`, Some(`[1]`)); a plain name has no inner part.
fn split_path(path: &str) -> (&str, Option<&str>) {
    match path.find(['.', '[']) {
        Some(i) => (&path[..i], Some(path[i..].trim_start_matches('.'))),
        None => (path, None),
    }
}

fn whole(name: &str, v: &str) -> ServiceResult<i64> {
    v.parse::<i64>().map_err(|_| ServiceError::invalid(name, "must be a whole number"))
}

#[cfg(test)]
mod tests {
    use super::{Form, Kind};
    use serde_json::json;

    fn form(fields: &[(&str, &str)]) -> Form {
        Form { fields: fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    #[test]
    fn lists_come_one_per_line_and_ticked_boxes_as_a_list() {
        let f = form(&[
            ("mail_to", "ops@example.com\r\n\r\n  oncall@example.com \r\n"),
            ("kinds", ""),
            ("kinds", "host_down"),
            ("kinds", "failover"),
        ]);
        let v = f.json(&[("mail_to", Kind::Lines), ("kinds", Kind::Multi), ("argv", Kind::Lines)]).unwrap();
        assert_eq!(
            v,
            json!({"mail_to": ["ops@example.com", "oncall@example.com"], "kinds": ["host_down", "failover"]})
        );
        // None ticked is an empty list, not "unchanged".
        let v = form(&[("kinds", "")]).json(&[("kinds", Kind::Multi)]).unwrap();
        assert_eq!(v, json!({"kinds": []}));
    }

    #[test]
    fn numbers_with_fractions_and_optional_numbers() {
        let f = form(&[("cpu_pct", "92.5"), ("samples", "3"), ("tolerance_secs", "")]);
        let v = f
            .json(&[("cpu_pct", Kind::Decimal), ("samples", Kind::Number), ("tolerance_secs", Kind::OptNumber)])
            .unwrap();
        assert_eq!(v, json!({"cpu_pct": 92.5, "samples": 3, "tolerance_secs": null}));
        let err = form(&[("tolerance_secs", "2 min")]).json(&[("tolerance_secs", Kind::OptNumber)]).unwrap_err();
        assert!(err.to_string().starts_with("tolerance_secs:"), "{err}");
        let err = form(&[("cpu_pct", "NaN")]).json(&[("cpu_pct", Kind::Decimal)]).unwrap_err();
        assert!(err.to_string().starts_with("cpu_pct:"), "{err}");
    }

    #[test]
    fn a_json_object_field_parses_or_names_itself() {
        let v =
            form(&[("network_map", " {\"vmbr0\": \"vmbr10\"} ")]).json(&[("network_map", Kind::JsonObject)]).unwrap();
        assert_eq!(v, json!({"network_map": {"vmbr0": "vmbr10"}}));
        // Sent empty: cleared; not sent: unchanged.
        let v = form(&[("network_map", "")]).json(&[("network_map", Kind::JsonObject)]).unwrap();
        assert_eq!(v, json!({"network_map": null}));
        assert_eq!(form(&[]).json(&[("network_map", Kind::JsonObject)]).unwrap(), json!({}));
        for bad in ["{\"vmbr0\": ", "[\"vmbr0\"]", "vmbr0=vmbr10"] {
            let err = form(&[("network_map", bad)]).json(&[("network_map", Kind::JsonObject)]).unwrap_err();
            assert!(err.to_string().starts_with("network_map:"), "{bad}: {err}");
        }
    }

    #[test]
    fn an_error_inside_a_value_is_shown_at_its_field() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Input {
            limits: Option<std::collections::BTreeMap<String, u16>>,
        }
        let f = form(&[("limits", "{\"vmbr0\": 70000}")]);
        let err = f.input::<Input>(&[("limits", Kind::JsonObject)]).unwrap_err();
        match err {
            crate::service::ServiceError::Invalid { field, message } => {
                assert_eq!(field, "limits");
                assert!(message.starts_with("vmbr0: "), "{message}");
            }
            other => panic!("{other}"),
        }
        assert_eq!(super::split_path("kinds[1]"), ("kinds", Some("[1]")));
        assert_eq!(super::split_path("name"), ("name", None));
    }
}
