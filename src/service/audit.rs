//! The audit log: who did what, when, and from where. Every action records
//! itself here, in the service layer, so the JSON API, the web UI, the
//! scheduler, the monitor and the shell all land in one log.
//!
//! An entry holds names, ids and the *names* of changed fields: never the
//! value of a secret field, a password, a token or a hash. Writing an entry
//! never fails the action it records (the action is done by then); a write
//! that fails goes to the server log.

use std::fmt::Display;
use std::future::Future;

use serde::Serialize;
use serde_json::Value;

use super::{require, ServiceError, ServiceResult};
use crate::db::audit::{AuditEntry, AuditFilter, NewAuditEntry};
use crate::db::users::User;
use crate::db::Db;
use crate::domain::Role;
use crate::state::AppState;

/// Who may read the audit log.
pub const READ: Role = Role::Admin;

/// Longest detail kept, in characters.
const MAX_DETAIL: usize = 1000;

tokio::task_local! {
    /// The client address of the HTTP request being served, for the entries
    /// it causes. Set once per request, around the handler, by
    /// `crate::client_addr`: the address is known only at the edge, and
    /// every action under it records it without passing it along.
    static SOURCE_IP: Option<String>;
}

/// Runs `f` (a request's handling) with its client's address known to
/// the entries it records.
pub async fn with_source_ip<F: Future>(ip: Option<String>, f: F) -> F::Output {
    SOURCE_IP.scope(ip, f).await
}

fn source_ip() -> Option<String> {
    SOURCE_IP.try_with(Clone::clone).ok().flatten()
}

/// What an action was done to: a kind (`pair`) and, when there is one, its id.
pub struct Subject {
    kind: &'static str,
    id: Option<String>,
}

/// The subject `kind` with id `id`.
pub fn subject(kind: &'static str, id: impl Display) -> Subject {
    Subject { kind, id: Some(id.to_string()) }
}

/// A subject without an id (the alert settings, an unknown username).
pub fn about(kind: &'static str) -> Subject {
    Subject { kind, id: None }
}

/// Records that `actor` did `action` to `subject`; `detail` is a short
/// note that must hold no secret.
pub async fn record(state: &AppState, actor: &str, action: &str, subject: Subject, detail: &str) {
    record_in(&state.db, state.settings.audit_max_entries, actor, action, subject, detail).await
}

/// `record` for a process without the shared state (the shell's `drswitch
/// user create`), keeping the newest `keep` entries.
pub async fn record_in(db: &Db, keep: u64, actor: &str, action: &str, subject: Subject, detail: &str) {
    let actor: String = actor.chars().take(255).collect();
    let detail: String = detail.chars().take(MAX_DETAIL).collect();
    let ip = source_ip();
    let entry = NewAuditEntry {
        actor: &actor,
        action,
        subject_type: subject.kind,
        subject_id: subject.id.as_deref(),
        detail: &detail,
        source_ip: ip.as_deref(),
    };
    if let Err(e) = db.insert_audit(&entry, keep).await {
        tracing::error!(error = %e, action, actor, "could not write an audit entry");
    }
}

/// "changed: a, b": the fields whose value differs between two
/// serialisations of a record (nested ones as `settings.url`), plus the
/// write-only fields the request set (`secret`, `password`, …), which no
/// serialisation shows. Names only, never values.
pub fn changes(before: &impl Serialize, after: &impl Serialize, write_only: &[(&str, bool)]) -> String {
    let (before, after) = (serde_json::to_value(before), serde_json::to_value(after));
    let mut names = Vec::new();
    if let (Ok(b), Ok(a)) = (before, after) {
        differing("", &b, &a, &mut names);
    }
    names.retain(|n| n != "updated_at");
    names.extend(write_only.iter().filter(|(_, set)| *set).map(|(n, _)| n.to_string()));
    names.dedup();
    if names.is_empty() {
        "no change".into()
    } else {
        format!("changed: {}", names.join(", "))
    }
}

fn differing(prefix: &str, b: &Value, a: &Value, out: &mut Vec<String>) {
    match (b, a) {
        (Value::Object(b), Value::Object(a)) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                differing(&name, b.get(k).unwrap_or(&Value::Null), a.get(k).unwrap_or(&Value::Null), out);
            }
        }
        (b, a) if b != a => out.push(prefix.to_string()),
        _ => {}
    }
}

/// Which entries to list: `action` is an exact action (`pair.update`) or a
/// family (`pair` or `pair.*`: every action on pairs).
#[derive(Debug, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// Entries newest first, with the total for paging.
pub async fn list(state: &AppState, actor: &User, q: AuditQuery) -> ServiceResult<(Vec<AuditEntry>, i64)> {
    require(actor, READ)?;
    if !(1..=500).contains(&q.limit) {
        return Err(ServiceError::invalid("limit", "must be from 1 to 500"));
    }
    if q.offset < 0 {
        return Err(ServiceError::invalid("offset", "must not be negative"));
    }
    // Filters are taken as given: an empty or padded one is refused, not
    // silently widened to "all".
    let who = q.actor;
    if who.as_ref().is_some_and(|a| a.is_empty() || a.chars().count() > 255) {
        return Err(ServiceError::invalid("actor", "must be 1 to 255 characters"));
    }
    let (action, action_like) = match q.action.as_deref() {
        None => (None, None),
        Some(a) => action_filter(a)?,
    };
    let filter = AuditFilter { actor: who, action, action_like, limit: q.limit, offset: q.offset };
    Ok(state.db.list_audit(&filter).await?)
}

/// An exact action, or a LIKE pattern for a family of them.
fn action_filter(a: &str) -> ServiceResult<(Option<String>, Option<String>)> {
    let ok = !a.is_empty()
        && a.len() <= 64
        && a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.*".contains(c));
    if !ok {
        return Err(ServiceError::invalid("action", "must be an action such as pair.update, or a family such as pair"));
    }
    let family = a.strip_suffix(".*").or((!a.contains('.')).then_some(a));
    match family {
        Some(f) if !f.contains(['.', '*']) => Ok((None, Some(format!("{}.%", f.replace('_', "!_"))))),
        Some(_) => {
            Err(ServiceError::invalid("action", "must be an action such as pair.update, or a family such as pair"))
        }
        None if a.contains('*') => {
            Err(ServiceError::invalid("action", "must be an action such as pair.update, or a family such as pair"))
        }
        None => Ok((Some(a.to_string()), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_name_fields_never_values() {
        let before = json!({"name": "a", "keep_last": 3, "settings": {"url": "http://x/secret-path", "port": 1},
                            "updated_at": 1});
        let after = json!({"name": "a", "keep_last": 4, "settings": {"url": "http://y/secret-path", "port": 1},
                           "updated_at": 2});
        let d = changes(&before, &after, &[("secret", true), ("smtp_password", false)]);
        assert_eq!(d, "changed: keep_last, settings.url, secret");
        assert!(!d.contains("secret-path"));
        assert_eq!(changes(&before, &before, &[]), "no change");
    }

    #[test]
    fn action_filters() {
        assert_eq!(action_filter("pair.update").unwrap(), (Some("pair.update".into()), None));
        assert_eq!(action_filter("pair").unwrap(), (None, Some("pair.%".into())));
        assert_eq!(action_filter("pair.*").unwrap(), (None, Some("pair.%".into())));
        assert_eq!(action_filter("alert_settings").unwrap(), (None, Some("alert!_settings.%".into())));
        for bad in ["pair.%", "*", "a.*.b", "pa*ir", "DROP TABLE", "a.b.*"] {
            assert!(action_filter(bad).is_err(), "{bad}");
        }
    }
}
