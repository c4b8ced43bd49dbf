//! Notification targets: where alerts go. Every field of a target's kind is
//! checked here; the secret (webhook `secret`, `smtp_password`) is
//! encrypted here and never returned.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::audit::{self, changes, subject};
use super::input::{doc, label, nullable, required, CreateRules, Input};
use super::monitoring::MANAGE;
use super::{require, ServiceError, ServiceResult};
use crate::db::targets::{Target, TargetFields};
use crate::db::users::User;
use crate::domain::{AlertKind, HostName, Severity, SmtpTlsMode, TargetId, TargetKind};
use crate::state::AppState;

/// Fields of a notification target. On create `name` and `kind` are
/// required, plus `url` (webhook), `smtp_host`, `mail_from`, `mail_to`
/// (smtp) or `argv` (command). Fields of another kind are refused.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetInput {
    #[schema(value_type = Option<doc::Label>)]
    pub name: Option<String>,
    pub kind: Option<TargetKind>,
    pub enabled: Option<bool>,
    pub min_severity: Option<Severity>,
    /// Alert kinds sent here; empty or absent on create means all.
    pub kinds: Option<Vec<AlertKind>>,
    /// webhook: `http://` or `https://` URL.
    #[schema(value_type = Option<WebhookUrl>)]
    pub url: Option<String>,
    /// webhook: HMAC-SHA256 key for `X-Drswitch-Signature`; write-only,
    /// `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<doc::Secret>)]
    pub secret: Option<Option<String>>,
    #[schema(value_type = Option<HostName>)]
    pub smtp_host: Option<String>,
    #[schema(minimum = 1, maximum = 65535)]
    pub smtp_port: Option<u16>,
    pub smtp_tls: Option<SmtpTlsMode>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<doc::Label>)]
    pub smtp_username: Option<Option<String>>,
    /// smtp: write-only, `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<doc::Secret>)]
    pub smtp_password: Option<Option<String>>,
    #[schema(value_type = Option<MailAddress>)]
    pub mail_from: Option<String>,
    /// smtp: 1 to 20 addresses.
    #[schema(value_type = Option<Vec<MailAddress>>, min_items = 1, max_items = 20)]
    pub mail_to: Option<Vec<String>>,
    /// command: program (absolute path) and its arguments, run without a
    /// shell; the alert JSON arrives on stdin and as `DRSWITCH_*` variables.
    #[schema(value_type = Option<Argv>)]
    pub argv: Option<Vec<String>>,
}

/// A webhook URL as `webhook_url` accepts it: http or https, a host name
/// or IPv4 address, a port, a plain path and query.
pub struct WebhookUrl;
crate::domain::documented!(
    WebhookUrl,
    serde_json::json!({"type": "string", "maxLength": 2048, "pattern": URL_PATTERN,
        "examples": ["https://hooks.example.com/drswitch?token=1"]})
);
const URL_PATTERN: &str = concat!(
    r"^https?://((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}",
    r"|([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)",
    r"(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?",
    r"(/[A-Za-z0-9._~!$&'()*+,;=:@/-]*)?(\?[A-Za-z0-9._~!$&'()*+,;=:@/?-]*)?$"
);

fn matches(pattern: &str, s: &str) -> bool {
    regex::Regex::new(pattern).is_ok_and(|r| r.is_match(s))
}

/// A mail address as `mail_address` accepts it (a plain subset of RFC 5321).
pub struct MailAddress;
crate::domain::documented!(
    MailAddress,
    serde_json::json!({"type": "string", "pattern": MAIL_PATTERN, "examples": ["ops@example.com"]})
);
const MAIL_PATTERN: &str = concat!(
    r"^[A-Za-z0-9_%+-]{1,32}(\.[A-Za-z0-9_%+-]{1,15}){0,2}",
    r"@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?){0,2}$"
);

/// A command as `command_argv` accepts it.
pub struct Argv;
crate::domain::documented!(
    Argv,
    serde_json::json!({"type": "array", "minItems": 1, "maxItems": 64,
        "prefixItems": [{"type": "string", "pattern": "^/"}],
        "items": {"type": "string", "maxLength": 4096, "pattern": "^[^\\x00]*$"}})
);

/// Which fields belong to which kind, for the API document.
const KIND_FIELDS: [(&str, &[&str]); 3] = [
    ("webhook", &["url", "secret"]),
    ("smtp", &["smtp_host", "smtp_port", "smtp_tls", "smtp_username", "smtp_password", "mail_from", "mail_to"]),
    ("command", &["argv"]),
];

/// One kind's fields and nobody else's; with `required`, those a target of
/// that kind cannot do without.
fn kind_rule(required: bool) -> serde_json::Value {
    let ways: Vec<serde_json::Value> = KIND_FIELDS
        .iter()
        .map(|(kind, _)| {
            let mut props = serde_json::Map::new();
            props.insert("kind".into(), serde_json::json!({"enum": [kind, null]}));
            for (other, fields) in KIND_FIELDS {
                if other != *kind {
                    for f in fields {
                        props.insert((*f).into(), serde_json::Value::Bool(false));
                    }
                }
            }
            let needs: &[&str] = match (*kind, required) {
                (_, false) => &[],
                ("webhook", _) => &["url"],
                ("smtp", _) => &["smtp_host", "mail_from", "mail_to"],
                _ => &["argv"],
            };
            for f in needs {
                props.insert((*f).into(), serde_json::json!({"not": {"type": "null"}}));
            }
            serde_json::json!({"properties": props, "required": needs})
        })
        .collect();
    serde_json::json!({"anyOf": ways})
}

impl Input for TargetInput {
    fn rules() -> CreateRules {
        CreateRules { required: &["name", "kind"], create: Some(kind_rule(true)), update: Some(kind_rule(false)) }
    }
}

/// The answer of `Send test`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TestResult {
    pub ok: bool,
    pub attempts: u32,
    pub detail: String,
}

pub async fn load(state: &AppState, id: TargetId) -> ServiceResult<Target> {
    state.db.target(id).await?.ok_or(ServiceError::NotFound("notification target"))
}

pub async fn list(state: &AppState, actor: &User) -> ServiceResult<Vec<Target>> {
    require(actor, MANAGE)?;
    Ok(state.db.list_targets().await?)
}

pub async fn get(state: &AppState, actor: &User, id: TargetId) -> ServiceResult<Target> {
    require(actor, MANAGE)?;
    load(state, id).await
}

pub async fn create(state: &AppState, actor: &User, b: TargetInput) -> ServiceResult<Target> {
    require(actor, MANAGE)?;
    let name = label("name", &required("name", b.name.clone())?)?;
    let kind = required("kind", b.kind)?;
    let fields = fields(state, name, kind, None, true, b)?;
    let id = state.db.insert_target(&fields).await.map_err(taken)?;
    tracing::info!(target: "audit", by = %actor.username, name = %fields.name, kind = %kind, "notification target created");
    let detail = format!("name {:?}, kind {kind}", fields.name);
    audit::record(state, &actor.username, "target.create", subject("target", id), &detail).await;
    load(state, id).await
}

pub async fn update(state: &AppState, actor: &User, id: TargetId, b: TargetInput) -> ServiceResult<Target> {
    require(actor, MANAGE)?;
    let old = load(state, id).await?;
    let name = match &b.name {
        Some(n) => label("name", n)?,
        None => old.name.clone(),
    };
    let kind_given = b.kind.is_some();
    let kind = b.kind.unwrap_or(old.kind);
    let secrets = [("secret", b.secret.is_some()), ("smtp_password", b.smtp_password.is_some())];
    let fields = fields(state, name, kind, Some(&old), kind_given, b)?;
    if !state.db.update_target(id, &fields).await.map_err(taken)? {
        return Err(ServiceError::NotFound("notification target"));
    }
    tracing::info!(target: "audit", by = %actor.username, name = %fields.name, "notification target changed");
    let after = load(state, id).await?;
    let detail = changes(&old, &after, &secrets);
    audit::record(state, &actor.username, "target.update", subject("target", id), &detail).await;
    Ok(after)
}

pub async fn delete(state: &AppState, actor: &User, id: TargetId) -> ServiceResult<()> {
    require(actor, MANAGE)?;
    let t = load(state, id).await?;
    state.db.delete_target(id).await?;
    tracing::info!(target: "audit", by = %actor.username, name = %t.name, "notification target deleted");
    audit::record(state, &actor.username, "target.delete", subject("target", id), &format!("name {:?}", t.name)).await;
    Ok(())
}

/// Sends a notice of event `test` now and says how it went.
pub async fn test(state: &AppState, actor: &User, id: TargetId) -> ServiceResult<TestResult> {
    require(actor, MANAGE)?;
    let t = load(state, id).await?;
    let notice = crate::monitor::notifier::test_notice(&t);
    let d = crate::monitor::notifier::send(state, &t, &notice).await;
    tracing::info!(by = %actor.username, target = %t.name, ok = d.ok, "test notification sent");
    let detail = format!("name {:?}: {}", t.name, if d.ok { "delivered" } else { "not delivered" });
    audit::record(state, &actor.username, "target.test", subject("target", id), &detail).await;
    Ok(TestResult { ok: d.ok, attempts: d.attempts, detail: d.detail })
}

fn taken(e: crate::db::DbError) -> ServiceError {
    match e {
        crate::db::DbError::Conflict(message) => ServiceError::Taken { field: "name".into(), message },
        other => other.into(),
    }
}

/// Builds the stored fields from the input over `old` (if any). Settings
/// of another kind are refused; a kind change starts from empty settings.
/// A body that says its `kind` answers for its fields (422); one that
/// leaves the stored kind in force clashes with it (409).
fn fields(
    state: &AppState,
    name: String,
    kind: TargetKind,
    old: Option<&Target>,
    kind_given: bool,
    b: TargetInput,
) -> ServiceResult<TargetFields> {
    let same_kind = old.filter(|o| o.kind == kind);
    let refuse = |field: &str, message: String| {
        if kind_given {
            ServiceError::invalid(field, message)
        } else {
            ServiceError::clash(field, format!("{message}; this target is {kind}"))
        }
    };
    // Missing settings on a create are the body's fault; on an update they
    // were dropped by a change of kind, or the stored ones are used.
    let needs = |field: &str, given: bool| -> ServiceResult<()> {
        match (given, old) {
            (true, _) => Ok(()),
            (false, None) => required(field, None::<()>).map(|_| ()),
            (false, Some(_)) => Err(ServiceError::clash(field, format!("is required by {kind} targets"))),
        }
    };
    let only = |field: &str, given: bool, of: TargetKind| {
        if given && kind != of {
            Err(refuse(field, format!("is only used by {of} targets")))
        } else {
            Ok(())
        }
    };
    only("url", b.url.is_some(), TargetKind::Webhook)?;
    only("secret", b.secret.is_some(), TargetKind::Webhook)?;
    for (field, given) in [
        ("smtp_host", b.smtp_host.is_some()),
        ("smtp_port", b.smtp_port.is_some()),
        ("smtp_tls", b.smtp_tls.is_some()),
        ("smtp_username", b.smtp_username.is_some()),
        ("smtp_password", b.smtp_password.is_some()),
        ("mail_from", b.mail_from.is_some()),
        ("mail_to", b.mail_to.is_some()),
    ] {
        only(field, given, TargetKind::Smtp)?;
    }
    only("argv", b.argv.is_some(), TargetKind::Command)?;

    let mut s = same_kind.map(|o| o.settings.clone()).unwrap_or_default();
    let mut secret_enc = same_kind.and_then(|o| o.secret_enc.clone());
    let encrypt = |field: &str, v: Option<String>| -> ServiceResult<Option<String>> {
        match v {
            None => Ok(None),
            Some(v) if v.is_empty() || v.chars().count() > 512 || v.chars().any(char::is_control) => {
                Err(ServiceError::invalid(field, "must be 1 to 512 printable characters"))
            }
            Some(v) => Ok(Some(state.secrets.encrypt(&v))),
        }
    };
    match kind {
        TargetKind::Webhook => {
            if let Some(u) = b.url {
                s.url = Some(webhook_url(&u)?);
            }
            needs("url", s.url.is_some())?;
            if let Some(v) = b.secret {
                secret_enc = encrypt("secret", v)?;
            }
        }
        TargetKind::Smtp => {
            if let Some(h) = b.smtp_host {
                HostName::from_str(h.trim()).map_err(|e| ServiceError::invalid("smtp_host", e.0))?;
                s.smtp_host = Some(h.trim().to_string());
            }
            needs("smtp_host", s.smtp_host.is_some())?;
            if let Some(t) = b.smtp_tls {
                s.smtp_tls = Some(t);
            }
            let tls = *s.smtp_tls.get_or_insert(SmtpTlsMode::Starttls);
            if let Some(p) = b.smtp_port {
                if p == 0 {
                    return Err(ServiceError::invalid("smtp_port", "must be a port from 1 to 65535"));
                }
                s.smtp_port = Some(p);
            }
            s.smtp_port.get_or_insert(match tls {
                SmtpTlsMode::Starttls => 587,
                SmtpTlsMode::Tls => 465,
                SmtpTlsMode::None => 25,
            });
            if let Some(u) = b.smtp_username {
                s.smtp_username = u.map(|u| label("smtp_username", &u)).transpose()?;
            }
            if let Some(v) = b.smtp_password {
                secret_enc = encrypt("smtp_password", v)?;
            }
            if let Some(f) = b.mail_from {
                s.mail_from = Some(mail_address("mail_from", &f)?);
            }
            needs("mail_from", s.mail_from.is_some())?;
            if let Some(to) = b.mail_to {
                if to.is_empty() || to.len() > 20 {
                    return Err(ServiceError::invalid("mail_to", "must list 1 to 20 addresses"));
                }
                s.mail_to = Some(to.iter().map(|a| mail_address("mail_to", a)).collect::<ServiceResult<_>>()?);
            }
            needs("mail_to", s.mail_to.is_some())?;
        }
        TargetKind::Command => {
            if let Some(argv) = b.argv {
                s.argv = Some(command_argv(argv)?);
            }
            needs("argv", s.argv.is_some())?;
        }
    }
    if kind != TargetKind::Webhook && kind != TargetKind::Smtp {
        secret_enc = None;
    }
    Ok(TargetFields {
        name,
        kind,
        enabled: b.enabled.or(old.map(|o| o.enabled)).unwrap_or(true),
        min_severity: b.min_severity.or(old.map(|o| o.min_severity)).unwrap_or(Severity::Warning),
        kinds: b.kinds.or_else(|| old.map(|o| o.kinds.clone())).unwrap_or_default(),
        settings: s,
        secret_enc,
    })
}

fn webhook_url(u: &str) -> ServiceResult<String> {
    let bad = |m: &str| ServiceError::invalid("url", m.to_string());
    let u = u.trim();
    if u.len() > 2048 {
        return Err(bad("must be at most 2048 characters"));
    }
    if !matches(URL_PATTERN, u) {
        return Err(bad("must be an http:// or https:// URL of a host name or IPv4 address"));
    }
    let parsed = reqwest::Url::parse(u).map_err(|_| bad("must be an http:// or https:// URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("must be an http:// or https:// URL"));
    }
    Ok(u.to_string())
}

fn mail_address(field: &str, a: &str) -> ServiceResult<String> {
    let a = a.trim();
    if !matches(MAIL_PATTERN, a) {
        return Err(ServiceError::invalid(field, format!("{a:?} is not a mail address")));
    }
    lettre::Address::from_str(a)
        .map(|_| a.to_string())
        .map_err(|_| ServiceError::invalid(field, format!("{a:?} is not a mail address")))
}

fn command_argv(argv: Vec<String>) -> ServiceResult<Vec<String>> {
    let bad = |m: &str| ServiceError::invalid("argv", m.to_string());
    if argv.is_empty() || argv.len() > 64 {
        return Err(bad("must list the program and at most 63 arguments"));
    }
    if argv.iter().any(|a| a.chars().count() > 4096 || a.contains('\0')) {
        return Err(bad("arguments must be at most 4096 characters, without NUL"));
    }
    if !argv[0].starts_with('/') {
        return Err(bad("the program (first item) must be an absolute path, e.g. /usr/bin/curl"));
    }
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_addresses_and_argv_are_checked() {
        assert!(webhook_url("https://hooks.example/x?token=1").is_ok());
        assert!(webhook_url("ftp://x").is_err());
        assert!(webhook_url("javascript:alert(1)").is_err());
        assert!(mail_address("mail_to", "ops@example.com").is_ok());
        assert!(mail_address("mail_to", "not an address").is_err());
        assert!(command_argv(vec!["/usr/bin/curl".into(), "-d".into(), "@-".into()]).is_ok());
        assert!(command_argv(vec!["curl".into()]).is_err());
        assert!(command_argv(vec![]).is_err());
    }
}
