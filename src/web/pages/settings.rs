//! Settings (admin): the alert thresholds and the list of notification
//! targets (their form lives in `targets`).

use actix_session::Session;
use actix_web::web;
use maud::{html, Markup};

use crate::db::targets::Target;
use crate::domain::{Severity, TargetKind};
use crate::service::monitoring::{self as svc, AlertSettingsInput, AlertSettingsView, MANAGE};
use crate::service::ServiceError;
use crate::state::AppState;
use crate::web::auth::PageUser;
use crate::web::form::{Form, Kind};
use crate::web::layout::page;
use crate::web::view::{again, done, duration, field_error, form_error, input, outcome, post_button, Outcome};
use crate::web::Page;

const THRESHOLDS: &[(&str, Kind)] = &[
    ("cpu_pct", Kind::Decimal),
    ("mem_pct", Kind::Decimal),
    ("disk_pct", Kind::Decimal),
    ("samples", Kind::Number),
    ("tolerance_secs", Kind::OptNumber),
];

/// 90 → "90", 92.5 → "92.5".
fn number(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        v.to_string()
    }
}

fn current(v: &AlertSettingsView) -> impl Fn(&str) -> String + '_ {
    move |name| match name {
        "cpu_pct" => number(v.settings.cpu_pct),
        "mem_pct" => number(v.settings.mem_pct),
        "disk_pct" => number(v.settings.disk_pct),
        "samples" => v.settings.samples.to_string(),
        "tolerance_secs" => v.settings.tolerance_secs.map(|t| t.to_string()).unwrap_or_default(),
        _ => String::new(),
    }
}

/// A percentage field: a number that may have a fraction.
fn pct_input(label: &str, name: &str, value: &str, hint: &str, err: Option<&ServiceError>) -> Markup {
    let error = field_error(err, name);
    html! {
        label {
            (label) span.hint { (hint) }
            input type="number" step="any" name=(name) value=(value) class=[error.map(|_| "invalid")];
            @if let Some(e) = error { span.field-error { (e) } }
        }
    }
}

fn thresholds_form(
    me: &PageUser,
    view: &AlertSettingsView,
    values: &dyn Fn(&str) -> String,
    err: Option<&ServiceError>,
    default_tolerance: u64,
) -> Markup {
    let fields: Vec<&str> = THRESHOLDS.iter().map(|(n, _)| *n).collect();
    let interval = duration(view.interval_secs as i64);
    let tolerance = duration(view.effective_tolerance_secs as i64);
    let default_note = if view.settings.tolerance_secs.is_none() { " (the default)" } else { "" };
    html! {
        div.panel #thresholds {
            h2 { "Alert thresholds" }
            p.muted {
                "The monitor probes every host once every " strong { (interval) } " (MONITOR_INTERVAL_SECS). "
                "A host counts as down, for alerts and automatic failover, after " strong #effective-tolerance { (tolerance) }
                " without an answer" (default_note) "."
            }
            @if let Some(e) = form_error(err, &fields) { div.flash.error role="alert" { (e) } }
            form.stack method="post" action="/settings/thresholds" {
                input type="hidden" name="csrf" value=(me.csrf);
                div.three {
                    (pct_input("CPU %", "cpu_pct", &values("cpu_pct"), "1–100", err))
                    (pct_input("Memory %", "mem_pct", &values("mem_pct"), "1–100", err))
                    (pct_input("Disk %", "disk_pct", &values("disk_pct"), "root disk and backup storage", err))
                }
                div.two {
                    (input("Samples in a row", "samples", "number", &values("samples"),
                        Some("probes in a row to open or close an alert"), err))
                    (input("Host-down tolerance (seconds)", "tolerance_secs", "number", &values("tolerance_secs"),
                        Some(&format!("empty: FAILOVER_TOLERANCE_SECS ({} s)", default_tolerance)), err))
                }
                div.actions { button type="submit" { "Save thresholds" } }
            }
        }
    }
}

fn severity_text(s: Severity) -> &'static str {
    match s {
        Severity::Warning => "warning and critical",
        Severity::Critical => "critical only",
    }
}

/// Where a target sends, in a few words.
fn destination(t: &Target) -> Markup {
    let s = &t.settings;
    html! {
        @match t.kind {
            TargetKind::Webhook => { span.mono { (s.url.as_deref().unwrap_or("")) } }
            TargetKind::Smtp => {
                (s.mail_to.as_ref().map(|m| m.join(", ")).unwrap_or_default())
                br; span.muted.small { "via " (s.smtp_host.as_deref().unwrap_or("")) ":" (s.smtp_port.unwrap_or(0))
                    " (" (s.smtp_tls.map(|t| t.to_string()).unwrap_or_default()) ")" }
            }
            TargetKind::Command => { span.mono { (s.argv.as_ref().map(|a| a.join(" ")).unwrap_or_default()) } }
        }
    }
}

fn targets_panel(me: &PageUser, targets: &[Target]) -> Markup {
    html! {
        div.panel #targets {
            h2 { "Notification targets" }
            p.muted { "Every alert that opens or resolves goes to each enabled target that wants its kind and severity." }
            div.actions { a.button href="/settings/targets/new" { "Add target" } }
            @if targets.is_empty() {
                div.empty { "No notification targets yet — alerts are only shown on the " a href="/alerts" { "Alerts" } " page. "
                    a href="/settings/targets/new" { "Add a webhook, mail or command target" } "." }
            } @else {
                div.table-wrap { table.targets {
                    thead { tr { th { "Name" } th { "Kind" } th { "Sends to" } th { "Alerts" } th { "Secret" } th { "State" } th { "Actions" } } }
                    tbody { @for t in targets {
                        tr data-target=(t.id) {
                            td { (t.name) }
                            td { (t.kind) }
                            td.dest { (destination(t)) }
                            td { (severity_text(t.min_severity)) br;
                                span.muted.small { @if t.kinds.is_empty() { "every kind" } @else {
                                    (t.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")) } } }
                            td { @if t.has_secret { span.badge.info { "stored" } } @else { span.muted { "none" } } }
                            td { @if t.enabled { span.badge.ok { "enabled" } } @else { span.badge.muted { "disabled" } } }
                            td { div.row-actions {
                                a.button.secondary href={ "/settings/targets/" (t.id) "/edit" } { "Edit" }
                                (post_button(&format!("/settings/targets/{}/test", t.id), "Send test", &me.csrf, "secondary", None))
                                (post_button(&format!("/settings/targets/{}/delete", t.id), "Delete", &me.csrf, "danger",
                                    Some(&format!("Delete the notification target {}? Alerts stop going there; past deliveries stay in the history.", t.name))))
                            } }
                        }
                    } }
                } }
            }
        }
    }
}

async fn render(state: &AppState, me: &PageUser, form: Option<(&Form, &ServiceError)>) -> Page {
    crate::service::require(&me.user, MANAGE)?;
    let view = svc::alert_settings(state, &me.user).await?;
    let targets = crate::service::targets::list(state, &me.user).await?;
    let saved = current(&view);
    let typed = form.map(|(f, _)| f.values());
    let values: &dyn Fn(&str) -> String = match &typed {
        Some(t) => t,
        None => &saved,
    };
    let body = html! {
        h1 { "Settings" }
        (thresholds_form(me, &view, values, form.map(|(_, e)| e), state.settings.failover_tolerance.as_secs()))
        (targets_panel(me, &targets))
    };
    let resp = page(me, "/settings", "Settings", body);
    if form.is_some() {
        again(resp)
    } else {
        Ok(resp)
    }
}

pub async fn page_(state: web::Data<AppState>, me: PageUser) -> Page {
    render(&state, &me, None).await
}

pub async fn thresholds(state: web::Data<AppState>, me: PageUser, session: Session, f: Form) -> Page {
    let result =
        async { svc::set_alert_settings(&state, &me.user, f.input::<AlertSettingsInput>(THRESHOLDS)?).await }.await;
    match outcome(result)? {
        Outcome::Done(v) => done(
            &session,
            format!(
                "Thresholds saved: CPU {} %, memory {} %, disk {} %, {} samples in a row; down after {}.",
                number(v.settings.cpu_pct),
                number(v.settings.mem_pct),
                number(v.settings.disk_pct),
                v.settings.samples,
                duration(v.effective_tolerance_secs as i64)
            ),
            "/settings",
        ),
        Outcome::Again(e) => render(&state, &me, Some((&f, &e))).await,
    }
}
