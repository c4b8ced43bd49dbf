//! Small pieces every page uses: buttons that post, fields with their
//! error, badges, human sizes and ages.

use actix_web::http::header;
use actix_web::HttpResponse;
use maud::{html, Markup};

use crate::db::events::Event;
use crate::domain::{PairState, Severity, TaskKind, TaskStatus, Timestamp};
use crate::monitor::conditions::Reachability;
use crate::service::ServiceError;

/// A button that posts to `action` with the CSRF token; `confirm` asks
/// first (a destructive action).
pub fn post_button(action: &str, label: &str, csrf: &str, class: &str, confirm: Option<&str>) -> Markup {
    html! {
        form method="post" action=(action) data-confirm=[confirm] {
            input type="hidden" name="csrf" value=(csrf);
            button type="submit" class=(class) { (label) }
        }
    }
}

/// The same response with another status (a form shown again with its
/// errors is a 422).
pub fn with_status(status: actix_web::http::StatusCode, mut resp: HttpResponse) -> HttpResponse {
    *resp.status_mut() = status;
    resp
}

/// How a form post ended: done, or refused in a way the form shows
/// (a field, a clash) and should be filled in again.
pub enum Outcome<T> {
    Done(T),
    Again(ServiceError),
}

/// Sorts a service result for a form: other errors get their own page.
pub fn outcome<T>(result: Result<T, ServiceError>) -> Result<Outcome<T>, crate::web::PageError> {
    match result {
        Ok(v) => Ok(Outcome::Done(v)),
        Err(e @ (ServiceError::Invalid { .. } | ServiceError::Taken { .. } | ServiceError::Conflict(_))) => {
            Ok(Outcome::Again(e))
        }
        Err(e) => Err(e.into()),
    }
}

/// Done: the message for the next page, and a 303 to `to`.
pub fn done(session: &actix_session::Session, message: impl Into<String>, to: &str) -> crate::web::Page {
    crate::web::auth::flash(session, "ok", message);
    Ok(redirect(to))
}

/// The form shown again with its errors.
pub fn again(resp: HttpResponse) -> crate::web::Page {
    Ok(with_status(actix_web::http::StatusCode::UNPROCESSABLE_ENTITY, resp))
}

/// After a button's action: on success the message and `done`; refused
/// (a conflict), the reason and `back`; anything else is an error page.
pub fn after_action(
    session: &actix_session::Session,
    result: Result<(), ServiceError>,
    message: &str,
    done: &str,
    back: &str,
) -> crate::web::Page {
    match result {
        Ok(()) => {
            crate::web::auth::flash(session, "ok", message);
            Ok(redirect(done))
        }
        Err(ServiceError::Conflict(m)) => {
            crate::web::auth::flash(session, "error", m);
            Ok(redirect(back))
        }
        Err(e) => Err(e.into()),
    }
}

/// A path's id, or "not found" naming `what`.
pub fn path_id<T: std::str::FromStr>(raw: &str, what: &'static str) -> Result<T, ServiceError> {
    raw.parse().map_err(|_| ServiceError::NotFound(what))
}

/// After a POST: to `to` with a 303, so a reload does not post again.
pub fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, to)).finish()
}

/// The error of one form field, if the service named it.
pub fn field_error<'a>(err: Option<&'a ServiceError>, name: &str) -> Option<&'a str> {
    match err {
        Some(ServiceError::Invalid { field, message } | ServiceError::Taken { field, message }) if field == name => {
            Some(message.as_str())
        }
        _ => None,
    }
}

/// A labelled input that shows its error and keeps what was typed.
pub fn input(
    label: &str,
    name: &str,
    kind: &str,
    value: &str,
    hint: Option<&str>,
    err: Option<&ServiceError>,
) -> Markup {
    let error = field_error(err, name);
    html! {
        label {
            (label)
            @if let Some(h) = hint { span.hint { (h) } }
            input type=(kind) name=(name) value=(value) class=[error.map(|_| "invalid")];
            @if let Some(e) = error { span.field-error { (e) } }
        }
    }
}

/// A labelled textarea (a list: one item per line) that shows its error
/// and keeps what was typed.
pub fn textarea(label: &str, name: &str, value: &str, hint: Option<&str>, err: Option<&ServiceError>) -> Markup {
    let error = field_error(err, name);
    html! {
        label {
            (label)
            @if let Some(h) = hint { span.hint { (h) } }
            textarea name=(name) rows="3" spellcheck="false" class=[error.map(|_| "invalid")] { (value) }
            @if let Some(e) = error { span.field-error { (e) } }
        }
    }
}

/// A select with the current value chosen.
pub fn select(
    label: &str,
    name: &str,
    options: &[(String, String)],
    value: &str,
    err: Option<&ServiceError>,
) -> Markup {
    let error = field_error(err, name);
    html! {
        label {
            (label)
            select name=(name) class=[error.map(|_| "invalid")] {
                @for (v, text) in options {
                    option value=(v) selected[v == value] { (text) }
                }
            }
            @if let Some(e) = error { span.field-error { (e) } }
        }
    }
}

/// A checkbox that also sends "false" when unticked.
pub fn checkbox(label: &str, name: &str, checked: bool) -> Markup {
    html! {
        input type="hidden" name=(name) value="false";
        label.check { input type="checkbox" name=(name) value="true" checked[checked]; (label) }
    }
}

/// The message of an error that no field shows.
pub fn form_error(err: Option<&ServiceError>, fields: &[&str]) -> Option<String> {
    let e = err?;
    match e {
        ServiceError::Invalid { field, .. } | ServiceError::Taken { field, .. } if fields.contains(&field.as_str()) => {
            None
        }
        ServiceError::Internal(cause) => {
            tracing::error!(%cause, "form failed");
            Some("drswitch hit an internal error; the server log has the details.".into())
        }
        other => Some(other.to_string()),
    }
}

pub fn status_badge(status: TaskStatus) -> Markup {
    let class = match status {
        TaskStatus::Succeeded => "ok",
        TaskStatus::Failed => "bad",
        TaskStatus::Cancelled => "muted",
        TaskStatus::Running => "info",
        TaskStatus::Queued => "warn",
    };
    html! { span class={ "badge " (class) } { (status) } }
}

/// How a host looks to the monitor: up green, degraded or unreachable
/// amber, down red, not checked yet grey.
pub fn reachability_badge(r: Reachability) -> Markup {
    let (class, text) = match r {
        Reachability::Up => ("ok", "up"),
        Reachability::Degraded => ("warn", "degraded"),
        Reachability::Unreachable => ("warn", "unreachable"),
        Reachability::Down => ("bad", "down"),
        Reachability::Unchecked => ("muted", "not checked yet"),
    };
    html! { span class={ "badge " (class) } data-reachability=(reachability_word(r)) { (text) } }
}

/// The API's word for a reachability (`up`, `down`, …).
pub fn reachability_word(r: Reachability) -> &'static str {
    match r {
        Reachability::Up => "up",
        Reachability::Degraded => "degraded",
        Reachability::Unreachable => "unreachable",
        Reachability::Down => "down",
        Reachability::Unchecked => "unchecked",
    }
}

/// Where a pair stands in the switch: protected green, failing over or
/// back amber, failed over red. `data-state` carries the API's word.
pub fn pair_state_badge(s: PairState) -> Markup {
    let (class, text) = match s {
        PairState::Protected => ("ok", "protected"),
        PairState::FailingOver => ("warn", "failing over"),
        PairState::FailedOver => ("bad", "failed over"),
        PairState::FailingBack => ("warn", "failing back"),
    };
    html! { span class={ "badge " (class) } data-state=(s) { (text) } }
}

/// How a failover, failback or drill ended, in one word (drills pass or
/// fail); `data-outcome` carries the word.
pub fn event_badge(e: &Event) -> Markup {
    let (class, text) = match (e.status.as_str(), e.kind) {
        ("succeeded", TaskKind::Drill) => ("ok", "passed"),
        ("succeeded", _) => ("ok", "succeeded"),
        ("running", _) => ("info", "running"),
        _ => ("bad", "failed"),
    };
    html! { span class={ "badge " (class) } data-outcome=(text) { (text) } }
}

/// An alert's severity: critical red, warning amber.
pub fn severity_badge(s: Severity) -> Markup {
    let class = match s {
        Severity::Critical => "bad",
        Severity::Warning => "warn",
    };
    html! { span class={ "badge " (class) } { (s) } }
}

/// A percentage as people read it: "93 %", "0.4 %" (the sign never
/// wraps onto a line of its own).
pub fn pct(v: f64) -> String {
    if v > 0.0 && v < 1.0 {
        format!("{v:.1}\u{a0}%")
    } else {
        format!("{v:.0}\u{a0}%")
    }
}

pub fn size(bytes: i64) -> String {
    crate::worker::jobs::size(bytes.max(0) as u64)
}

/// "3 min ago" (rounded down; never negative).
pub fn ago(t: Timestamp) -> String {
    let secs = (Timestamp::now().millis() - t.millis()).max(0) / 1000;
    duration(secs) + " ago"
}

/// 59 s, 12 min, 5 h 3 min, 25 h, 2 d 4 h: hours up to two days, the way
/// RPO targets are usually given.
pub fn duration(secs: i64) -> String {
    let unit =
        |n: i64, u: &str, m: i64, mu: &str| if m == 0 { format!("{n} {u}") } else { format!("{n} {u} {m} {mu}") };
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 172_800 => unit(s / 3600, "h", s % 3600 / 60, "min"),
        s => unit(s / 86_400, "d", s % 86_400 / 3600, "h"),
    }
}

/// A measured time to the tenth of a second under a minute (RTOs, steps):
/// 0.4 s, 12.1 s, 2 min 5 s, 1 h 3 min.
pub fn elapsed(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 59_950 {
        return format!("{:.1} s", ms as f64 / 1000.0);
    }
    match (ms + 500) / 1000 {
        s if s < 3600 && s % 60 == 0 => format!("{} min", s / 60),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s => duration(s),
    }
}

/// A timestamp as people read it (UTC).
pub fn when(t: Timestamp) -> String {
    t.to_datetime().format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_like_people_say_them() {
        assert_eq!(super::duration(42), "42 s");
        assert_eq!(super::duration(90_000), "25 h");
        assert_eq!(super::duration(3_660), "1 h 1 min");
        assert_eq!(super::duration(2 * 86_400), "2 d");
        assert_eq!(super::duration(2 * 86_400 + 7_200), "2 d 2 h");
    }

    #[test]
    fn measured_times_keep_tenths_under_a_minute() {
        assert_eq!(super::elapsed(420), "0.4 s");
        assert_eq!(super::elapsed(12_149), "12.1 s");
        assert_eq!(super::elapsed(125_000), "2 min 5 s");
        assert_eq!(super::elapsed(3_780_000), "1 h 3 min");
        assert_eq!(super::elapsed(59_960), "1 min");
        assert_eq!(super::elapsed(-5), "0.0 s");
    }
}
