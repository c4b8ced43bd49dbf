//! Notification targets (admin): add, edit, delete, send a test. One form
//! for the three kinds; only the fields of the chosen kind are sent to the
//! service, which refuses settings of another kind. Secrets are write-only.

use actix_session::Session;
use actix_web::web;
use maud::{html, Markup};

use crate::db::targets::Target;
use crate::domain::{AlertKind, TargetId, TargetKind};
use crate::service::monitoring::MANAGE;
use crate::service::targets::{self as svc, TargetInput};
use crate::service::ServiceError;
use crate::state::AppState;
use crate::web::auth::{flash, PageUser};
use crate::web::form::{Form, Kind};
use crate::web::layout::page;
use crate::web::view::{
    after_action, again, checkbox, done, field_error, form_error, input, outcome, redirect, select, textarea, Outcome,
};
use crate::web::Page;

const COMMON: &[(&str, Kind)] = &[
    ("name", Kind::Text),
    ("kind", Kind::Text),
    ("enabled", Kind::Flag),
    ("min_severity", Kind::Text),
    ("kinds", Kind::Multi),
];
const WEBHOOK: &[(&str, Kind)] = &[("url", Kind::Text), ("secret", Kind::Secret)];
const SMTP: &[(&str, Kind)] = &[
    ("smtp_host", Kind::Text),
    ("smtp_port", Kind::Number),
    ("smtp_tls", Kind::Text),
    ("smtp_username", Kind::Clearable),
    ("smtp_password", Kind::Secret),
    ("mail_from", Kind::Text),
    ("mail_to", Kind::Lines),
];
const COMMAND: &[(&str, Kind)] = &[("argv", Kind::Lines)];

/// The fields a form of this kind sends; an unknown kind sends the common
/// ones, and the service names `kind` as the fault.
fn schema(kind: Option<TargetKind>) -> Vec<(&'static str, Kind)> {
    let own: &[(&str, Kind)] = match kind {
        Some(TargetKind::Webhook) => WEBHOOK,
        Some(TargetKind::Smtp) => SMTP,
        Some(TargetKind::Command) => COMMAND,
        None => &[],
    };
    COMMON.iter().chain(own).copied().collect()
}

fn all_fields() -> Vec<&'static str> {
    COMMON.iter().chain(WEBHOOK).chain(SMTP).chain(COMMAND).map(|(n, _)| *n).collect()
}

fn id(raw: &str) -> Result<TargetId, ServiceError> {
    crate::web::view::path_id(raw, "notification target")
}

fn options(words: &[(&str, &str)]) -> Vec<(String, String)> {
    words.iter().map(|(v, t)| (v.to_string(), t.to_string())).collect()
}

/// A write-only field: never filled in, never autofilled by the browser.
fn secret_input(label: &str, name: &str, hint: &str, err: Option<&ServiceError>) -> Markup {
    let error = field_error(err, name);
    html! {
        label {
            (label) span.hint { (hint) }
            input type="password" name=(name) value="" autocomplete="new-password" class=[error.map(|_| "invalid")];
            @if let Some(e) = error { span.field-error { (e) } }
        }
    }
}

/// What the form shows: the values, the ticked alert kinds, and which
/// kind's secret is stored (editing a target that has one).
struct Shown<'a> {
    values: &'a dyn Fn(&str) -> String,
    kinds: Vec<String>,
    stored_secret: Option<TargetKind>,
}

fn form(me: &PageUser, action: &str, shown: &Shown<'_>, err: Option<&ServiceError>, new: bool) -> Markup {
    let v = |n: &str| (shown.values)(n);
    let secret_hint = |kind: TargetKind, fresh: &'static str| {
        if shown.stored_secret == Some(kind) {
            "stored — leave empty to keep"
        } else {
            fresh
        }
    };
    let forget = |kind: TargetKind| {
        html! {
            @if shown.stored_secret == Some(kind) {
                label.check { input type="checkbox" name="forget_secret" value="true" checked[v("forget_secret") == "true"]; "Remove the stored secret" }
            }
        }
    };
    let kinds_error = field_error(err, "kinds");
    html! {
        @if let Some(e) = form_error(err, &all_fields()) { div.flash.error role="alert" { (e) } }
        form.stack #target-form method="post" action=(action) {
            input type="hidden" name="csrf" value=(me.csrf);
            div.two {
                (input("Name", "name", "text", &v("name"), Some("e.g. ops webhook, on-call mail"), err))
                (select("Kind", "kind", &options(&[("webhook", "webhook (JSON POST)"), ("smtp", "smtp (mail)"), ("command", "command (run a program)")]), &v("kind"), err))
            }
            div.two {
                (select("Minimum severity", "min_severity", &options(&[("warning", "warning and critical"), ("critical", "critical only")]), &v("min_severity"), err))
                div.checkcell { (checkbox("Enabled", "enabled", v("enabled") != "false")) }
            }
            fieldset.kinds {
                legend { "Alert kinds " span.hint { "none ticked: every kind" } }
                input type="hidden" name="kinds" value="";
                div.checks {
                    @for k in AlertKind::ALL {
                        label.check { input type="checkbox" name="kinds" value=(k) checked[shown.kinds.iter().any(|x| x == k.as_str())];
                            (k) " " span.muted.small { "(" (k.severity()) ")" } }
                    }
                }
                @if let Some(e) = kinds_error { span.field-error { (e) } }
            }
            fieldset data-kind="webhook" {
                legend { "Webhook" }
                (input("URL", "url", "text", &v("url"), Some("http:// or https://; the alert arrives as a JSON POST"), err))
                (secret_input("Signing secret", "secret",
                    secret_hint(TargetKind::Webhook, "optional, write-only: signs each body with HMAC-SHA256 (X-Drswitch-Signature)"), err))
                (forget(TargetKind::Webhook))
            }
            fieldset data-kind="smtp" {
                legend { "Mail (SMTP)" }
                div.two {
                    (input("SMTP server", "smtp_host", "text", &v("smtp_host"), None, err))
                    (input("Port", "smtp_port", "number", &v("smtp_port"), Some("empty: 587 for starttls, 465 for tls, 25 for none"), err))
                }
                div.two {
                    (select("TLS", "smtp_tls", &options(&[("starttls", "starttls"), ("tls", "tls"), ("none", "none (plain text)")]), &v("smtp_tls"), err))
                    (input("Username", "smtp_username", "text", &v("smtp_username"), Some("empty: no login"), err))
                }
                (secret_input("Password", "smtp_password", secret_hint(TargetKind::Smtp, "write-only; stored encrypted"), err))
                (forget(TargetKind::Smtp))
                (input("From", "mail_from", "text", &v("mail_from"), Some("e.g. drswitch@example.com"), err))
                (textarea("To", "mail_to", &v("mail_to"), Some("one address per line"), err))
            }
            fieldset data-kind="command" {
                legend { "Command" }
                (textarea("Program and arguments", "argv", &v("argv"),
                    Some("one per line, the program first as an absolute path (e.g. /usr/local/bin/sms-gateway); run without a shell, the alert JSON on stdin"), err))
            }
            div.actions {
                button type="submit" { (if new { "Add target" } else { "Save" }) }
                a.button.secondary href="/settings" { "Back" }
            }
        }
    }
}

fn defaults(name: &str) -> String {
    match name {
        "kind" => "webhook",
        "enabled" => "true",
        "min_severity" => "warning",
        "smtp_tls" => "starttls",
        _ => "",
    }
    .to_string()
}

fn current(t: &Target) -> impl Fn(&str) -> String + '_ {
    let s = &t.settings;
    move |name| match name {
        "name" => t.name.clone(),
        "kind" => t.kind.to_string(),
        "enabled" => t.enabled.to_string(),
        "min_severity" => t.min_severity.to_string(),
        "url" => s.url.clone().unwrap_or_default(),
        "smtp_host" => s.smtp_host.clone().unwrap_or_default(),
        "smtp_port" => s.smtp_port.map(|p| p.to_string()).unwrap_or_default(),
        "smtp_tls" => s.smtp_tls.map(|t| t.to_string()).unwrap_or_else(|| "starttls".into()),
        "smtp_username" => s.smtp_username.clone().unwrap_or_default(),
        "mail_from" => s.mail_from.clone().unwrap_or_default(),
        "mail_to" => s.mail_to.as_ref().map(|m| m.join("\n")).unwrap_or_default(),
        "argv" => s.argv.as_ref().map(|a| a.join("\n")).unwrap_or_default(),
        _ => String::new(),
    }
}

fn page_body(
    me: &PageUser,
    title: &str,
    action: &str,
    shown: &Shown<'_>,
    err: Option<&ServiceError>,
    new: bool,
) -> Markup {
    html! {
        h1 { (title) }
        div.panel { (form(me, action, shown, err, new)) }
    }
}

/// The kind the form chose.
fn chosen(f: &Form) -> Option<TargetKind> {
    f.get("kind").and_then(|k| k.parse().ok())
}

/// The form's fields as the service input; "Remove the stored secret"
/// clears the secret `stored` for that kind (a kind change starts without
/// one anyway, and must not lose a secret typed for the new kind).
fn parse(f: &Form, stored: Option<TargetKind>) -> Result<TargetInput, ServiceError> {
    let kind = chosen(f);
    let mut input = f.input::<TargetInput>(&schema(kind))?;
    if f.get("forget_secret") == Some("true") && kind.is_some() && kind == stored {
        match kind {
            Some(TargetKind::Webhook) => input.secret = Some(None),
            Some(TargetKind::Smtp) => input.smtp_password = Some(None),
            _ => {}
        }
    }
    Ok(input)
}

/// The form again with what was typed and the error.
fn retry(me: &PageUser, f: &Form, e: &ServiceError, title: &str, action: &str, stored: Option<TargetKind>) -> Page {
    let values = f.values();
    let shown = Shown { values: &values, kinds: f.all("kinds").map(str::to_string).collect(), stored_secret: stored };
    again(page(me, "/settings", title, page_body(me, title, action, &shown, Some(e), action == NEW)))
}

/// Where the add form posts.
const NEW: &str = "/settings/targets";

pub async fn new_form(me: PageUser) -> Page {
    crate::service::require(&me.user, MANAGE)?;
    let shown = Shown { values: &defaults, kinds: Vec::new(), stored_secret: None };
    let title = "Add notification target";
    Ok(page(&me, "/settings", title, page_body(&me, title, NEW, &shown, None, true)))
}

pub async fn create(state: web::Data<AppState>, me: PageUser, session: Session, f: Form) -> Page {
    let result = async { svc::create(&state, &me.user, parse(&f, None)?).await }.await;
    match outcome(result)? {
        Outcome::Done(t) => done(
            &session,
            format!("Notification target {} added. Send a test to check that it arrives.", t.name),
            "/settings",
        ),
        Outcome::Again(e) => retry(&me, &f, &e, "Add notification target", NEW, None),
    }
}

fn stored_secret(t: &Target) -> Option<TargetKind> {
    t.has_secret.then_some(t.kind)
}

pub async fn edit_form(state: web::Data<AppState>, me: PageUser, path: web::Path<String>) -> Page {
    let t = svc::get(&state, &me.user, id(&path)?).await?;
    let values = current(&t);
    let shown = Shown {
        values: &values,
        kinds: t.kinds.iter().map(|k| k.to_string()).collect(),
        stored_secret: stored_secret(&t),
    };
    let title = format!("Edit {}", t.name);
    Ok(page(
        &me,
        "/settings",
        &title,
        page_body(&me, &title, &format!("/settings/targets/{}", t.id), &shown, None, false),
    ))
}

pub async fn update(
    state: web::Data<AppState>,
    me: PageUser,
    session: Session,
    path: web::Path<String>,
    f: Form,
) -> Page {
    let tid = id(&path)?;
    let old = svc::get(&state, &me.user, tid).await?;
    let result = async { svc::update(&state, &me.user, tid, parse(&f, stored_secret(&old))?).await }.await;
    match outcome(result)? {
        Outcome::Done(t) => done(&session, format!("Notification target {} saved.", t.name), "/settings"),
        Outcome::Again(e) => {
            retry(&me, &f, &e, &format!("Edit {}", old.name), &format!("/settings/targets/{tid}"), stored_secret(&old))
        }
    }
}

pub async fn delete(
    state: web::Data<AppState>,
    me: PageUser,
    session: Session,
    path: web::Path<String>,
    _f: Form,
) -> Page {
    let result = svc::delete(&state, &me.user, id(&path)?).await;
    after_action(&session, result, "Notification target deleted.", "/settings", "/settings")
}

/// Sends a test notice now and says how it went on the settings page.
pub async fn test(
    state: web::Data<AppState>,
    me: PageUser,
    session: Session,
    path: web::Path<String>,
    _f: Form,
) -> Page {
    let tid = id(&path)?;
    let t = svc::get(&state, &me.user, tid).await?;
    let r = svc::test(&state, &me.user, tid).await?;
    let attempts = if r.attempts == 1 { "1 attempt".to_string() } else { format!("{} attempts", r.attempts) };
    if r.ok {
        flash(&session, "ok", format!("Test notice to {}: sent ({}). {}", t.name, attempts, r.detail));
    } else {
        flash(&session, "error", format!("Test notice to {}: failed after {}. {}", t.name, attempts, r.detail));
    }
    Ok(redirect("/settings"))
}
