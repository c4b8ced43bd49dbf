//! Schedules: the seed's "Schedule backup" form (hour and minute, or cron
//! with the next runs previewed), the list, enable/disable, delete.

use actix_session::Session;
use actix_web::{web, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;

use crate::domain::{PairId, ScheduleId, TimeZone};
use crate::service::schedules::{self as svc, ScheduleInput, MANAGE};
use crate::service::ServiceError;
use crate::state::AppState;
use crate::web::auth::{flash, PageUser};
use crate::web::form::{Form, Kind};
use crate::web::layout::page;
use crate::web::view::{again, done, form_error, input, outcome, post_button, redirect, select, when, Outcome};
use crate::web::Page;

const FIELDS: &[(&str, Kind)] = &[
    ("pair_id", Kind::Text),
    ("kind", Kind::Text),
    ("hour", Kind::Number),
    ("minute", Kind::Number),
    ("cron", Kind::Text),
    ("timezone", Kind::Text),
];

fn id(raw: &str) -> Result<ScheduleId, ServiceError> {
    crate::web::view::path_id(raw, "schedule")
}

/// The "Schedule backup" form for one pair.
pub fn form(me: &PageUser, pair: PairId, values: &dyn Fn(&str) -> String, err: Option<&ServiceError>) -> Markup {
    let v = |n: &str| values(n);
    let kinds = [("backup".to_string(), "backup".to_string()), ("replicate".to_string(), "replicate".to_string())];
    let fields: Vec<&str> = FIELDS.iter().map(|(n, _)| *n).collect();
    html! {
        div.panel #schedule-form {
            h2 { "Schedule backup" }
            @if let Some(e) = form_error(err, &fields) { div.flash.error role="alert" { (e) } }
            form.stack method="post" action="/schedules" {
                input type="hidden" name="csrf" value=(me.csrf);
                input type="hidden" name="pair_id" value=(pair);
                (select("What", "kind", &kinds, &v("kind"), err))
                div.two {
                    (input("Hour", "hour", "number", &v("hour"), Some("0–23, daily"), err))
                    (input("Minute", "minute", "number", &v("minute"), Some("0–59"), err))
                }
                (input("Or a cron expression", "cron", "text", &v("cron"), Some("five fields: minute hour day-of-month month day-of-week, e.g. 30 2 * * 1-5"), err))
                (input("Time zone", "timezone", "text", &v("timezone"), Some("IANA name; empty means the server's"), err))
                div #schedule-preview hx-get="/schedules/preview" hx-trigger="keyup changed delay:400ms from:closest form, change from:closest form"
                    hx-include="closest form" hx-swap="innerHTML" {}
                div.actions { button type="submit" { "Schedule backup" } }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct PreviewQuery {
    hour: Option<String>,
    minute: Option<String>,
    cron: Option<String>,
    timezone: Option<String>,
}

/// The next five runs of what the form holds, or why it is not valid.
pub async fn preview(state: web::Data<AppState>, _me: PageUser, q: web::Query<PreviewQuery>) -> HttpResponse {
    let num = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(|s| s.parse::<i64>());
    let text = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let body = match (
        num(&q.hour).transpose(),
        num(&q.minute).transpose(),
        text(&q.timezone).map(|t| t.parse::<TimeZone>()).transpose(),
    ) {
        (Ok(h), Ok(m), Ok(tz)) if h.is_some() || m.is_some() || text(&q.cron).is_some() => {
            match svc::preview(&state, h, m, text(&q.cron), tz, 5) {
                Ok(runs) => {
                    html! { p.muted { "Next runs: " @for (i, t) in runs.iter().enumerate() { @if i > 0 { ", " } (when(*t)) } } }
                }
                Err(e) => html! { p.field-error { (e.to_string()) } },
            }
        }
        (Ok(_), Ok(_), Ok(_)) => html! {},
        _ => html! { p.field-error { "hour, minute and time zone must be valid first" } },
    };
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body.into_string())
}

pub async fn list(state: web::Data<AppState>, me: PageUser) -> Page {
    let schedules = svc::list(&state, &me.user).await?;
    let pairs = crate::service::pairs::list(&state, &me.user).await?;
    let name = |p: PairId| pairs.iter().find(|v| v.pair.id == p).map(|v| v.pair.name.clone()).unwrap_or_default();
    let can = me.user.role.allows(MANAGE);
    let body = html! {
        h1 { "Schedules" }
        @if schedules.is_empty() {
            div.empty { "No schedules yet — open a " a href="/pairs" { "pair" } " and use Schedule backup." }
        } @else {
            div.table-wrap { table {
                thead { tr { th { "Pair" } th { "Kind" } th { "When" } th { "Next run" } th { "Last run" } th { "Last result" } @if can { th {} } } }
                tbody { @for s in &schedules { tr {
                    td { a href={ "/pairs/" (s.pair_id) } { (name(s.pair_id)) } }
                    td { (s.kind) }
                    td.mono { @match (s.hour, s.minute) { (Some(h), Some(m)) => { "daily " (format!("{h:02}:{m:02}")) } _ => { (s.cron.as_str()) } } " " (s.timezone.name()) }
                    td { @match s.next_run { Some(t) => { (when(t)) } None => { span.badge.muted { "disabled" } } } }
                    td { @match s.last_run { Some(t) => { (when(t)) } None => { "never" } } }
                    td { (s.last_result.clone().unwrap_or_default()) }
                    @if can { td { div.actions {
                        form method="post" action={ "/schedules/" (s.id) "/toggle" } {
                            input type="hidden" name="csrf" value=(me.csrf);
                            input type="hidden" name="enabled" value=(!s.enabled);
                            button.secondary type="submit" { (if s.enabled { "Disable" } else { "Enable" }) }
                        }
                        (post_button(&format!("/schedules/{}/delete", s.id), "Delete", &me.csrf, "danger", Some("Delete this schedule?")))
                    } } }
                } } }
            } }
        }
    };
    Ok(page(&me, "/schedules", "Schedules", body))
}

pub async fn create(state: web::Data<AppState>, me: PageUser, session: Session, f: Form) -> Page {
    let pair: PairId = f.get("pair_id").and_then(|p| p.parse().ok()).ok_or(ServiceError::NotFound("pair"))?;
    let result = async { svc::create(&state, &me.user, f.input::<ScheduleInput>(FIELDS)?).await }.await;
    match outcome(result)? {
        Outcome::Done(s) => {
            let next = s.next_run.map(when).unwrap_or_else(|| "never".into());
            done(&session, format!("Scheduled; the next run is {next}."), &format!("/pairs/{pair}"))
        }
        Outcome::Again(e) => {
            let values = f.values();
            let body = html! {
                h1 { "Schedule backup" }
                (form(&me, pair, &values, Some(&e)))
                p { a href={ "/pairs/" (pair) } { "Back to the pair" } }
            };
            again(page(&me, "/schedules", "Schedule backup", body))
        }
    }
}

/// Enables or disables as the button said (not "the opposite of now": the
/// schedule may have changed since the page was drawn).
pub async fn toggle(state: web::Data<AppState>, me: PageUser, path: web::Path<String>, f: Form) -> Page {
    let sid = id(&path)?;
    let enabled = f.get("enabled") == Some("true");
    let input = ScheduleInput { enabled: Some(enabled), ..Default::default() };
    svc::update(&state, &me.user, sid, input).await?;
    Ok(redirect("/schedules"))
}

pub async fn delete(
    state: web::Data<AppState>,
    me: PageUser,
    session: Session,
    path: web::Path<String>,
    _f: Form,
) -> Page {
    svc::delete(&state, &me.user, id(&path)?).await?;
    flash(&session, "ok", "Schedule deleted.");
    Ok(redirect("/schedules"))
}
