//! Alerts: what is open now, then the history of resolved ones (newest
//! first, paged), each with who was told and how that went.

use actix_web::web;
use maud::{html, Markup};
use serde::Deserialize;

use crate::db::alerts::{Alert, AlertSubject, Delivery};
use crate::domain::{HypervisorId, PairId, TaskId, Timestamp};
use crate::service::monitoring::{self as svc, AlertState};
use crate::state::AppState;
use crate::web::auth::PageUser;
use crate::web::layout::page;
use crate::web::view::{ago, duration, severity_badge, when};
use crate::web::Page;

const PAGE: i64 = 50;
/// Open alerts shown at most (the service's page limit).
const OPEN_MAX: i64 = 500;

#[derive(Deserialize)]
pub struct ListQuery {
    state: Option<String>,
    page: Option<i64>,
}

/// The subject, linked to its page when drswitch has one.
fn subject(s: &AlertSubject) -> Markup {
    let href = match s.kind.as_str() {
        "hypervisor" => s.id.parse::<HypervisorId>().ok().map(|id| format!("/hypervisors/{id}")),
        "pair" => s.id.parse::<PairId>().ok().map(|id| format!("/pairs/{id}")),
        "task" => s.id.parse::<TaskId>().ok().map(|id| format!("/tasks/{id}")),
        _ => None,
    };
    html! {
        @match href {
            Some(h) => { a href=(h) { (s.name) } }
            None => { (s.name) }
        }
        br; span.muted.small { (s.kind) }
    }
}

fn delivery(d: &Delivery) -> Markup {
    let (class, text) = match d.status.as_str() {
        "sent" => ("ok", "sent"),
        "failed" => ("bad", "failed"),
        "sending" => ("info", "sending"),
        _ => ("muted", "pending"),
    };
    let event = d.event.strip_prefix("alert.").unwrap_or(&d.event);
    html! {
        li {
            span class={ "badge " (class) } { (text) } " "
            strong { (d.target_name) } " "
            span.muted { (event) @if d.attempts > 1 { ", " (d.attempts) " attempts" } }
            @if !d.detail.is_empty() { br; span.detail { (d.detail) } }
        }
    }
}

fn table(alerts: &[Alert], empty: &str) -> Markup {
    html! {
        @if alerts.is_empty() { div.empty { (empty) } } @else {
            div.table-wrap { table.alerts {
                thead { tr { th.c-alert { "Alert" } th.c-subject { "Subject" } th { "Message" } th.c-opened { "Opened" } th.c-resolved { "Resolved" } th.c-notified { "Notified" } } }
                tbody { @for a in alerts {
                    tr data-alert=(a.id) data-state=(a.state) data-kind=(a.kind) {
                        td { (severity_badge(a.severity)) br; span.kind { (a.kind) } }
                        td { (subject(&a.subject)) }
                        td.message { (a.message) }
                        td { (when(a.opened_at)) br; span.muted.small { (ago(a.opened_at)) } }
                        td {
                            @match a.resolved_at {
                                Some(r) => {
                                    (when(r)) br;
                                    span.muted.small { "after " (duration((r.millis() - a.opened_at.millis()).max(0) / 1000))
                                        @if let Some(why) = &a.resolution { ": " (why) } }
                                }
                                None => {
                                    span class={ "badge " (if a.severity == crate::domain::Severity::Critical { "bad" } else { "warn" }) } {
                                        "open " (duration((Timestamp::now().millis() - a.opened_at.millis()).max(0) / 1000))
                                    }
                                }
                            }
                        }
                        td {
                            @if a.deliveries.is_empty() { span.muted.small { "no target wanted it" } }
                            @else { ul.deliveries { @for d in &a.deliveries { (delivery(d)) } } }
                        }
                    }
                } }
            } }
        }
    }
}

pub async fn list(state: web::Data<AppState>, me: PageUser, q: web::Query<ListQuery>) -> Page {
    let filter = q.state.as_deref().filter(|s| !s.is_empty()).and_then(|s| s.parse::<AlertState>().ok());
    let page_no = q.page.unwrap_or(1).clamp(1, 1_000_000);
    let open = match filter {
        Some(AlertState::Resolved) => None,
        _ => Some(svc::alerts(&state, &me.user, Some(AlertState::Open), OPEN_MAX, 0).await?),
    };
    let history = match filter {
        Some(AlertState::Open) => None,
        // One more than a page: whether there is an older page.
        _ => Some(svc::alerts(&state, &me.user, Some(AlertState::Resolved), PAGE + 1, (page_no - 1) * PAGE).await?),
    };
    let older = history.as_ref().is_some_and(|h| h.len() as i64 > PAGE);
    let history = history.map(|mut h| {
        h.truncate(PAGE as usize);
        h
    });
    let word = match filter {
        Some(AlertState::Open) => "open",
        Some(AlertState::Resolved) => "resolved",
        None => "",
    };
    // Built from the parsed values only: nothing typed into the URL is echoed.
    let link = |n: i64| format!("/alerts?state={word}&page={n}");
    let body = html! {
        h1 { "Alerts" }
        form.filters method="get" action="/alerts" {
            label { "State" select name="state" {
                option value="" { "open, then history" }
                option value="open" selected[word == "open"] { "open" }
                option value="resolved" selected[word == "resolved"] { "resolved" }
            } }
            button.secondary type="submit" { "Filter" }
        }
        div #alert-list hx-get=(link(page_no)) hx-select="#alert-list" hx-target="this" hx-swap="outerHTML" hx-trigger="every 10s" {
            @if let Some(open) = &open {
                h2 #open-alerts { "Open " span.muted { "(" (open.len()) ")" } }
                (table(open, "No open alerts: every watched host, service, figure, pair and task is fine."))
            }
            @if let Some(history) = &history {
                h2 #alert-history { "History" }
                (table(history, if page_no > 1 { "No older alerts." } else { "No resolved alerts yet." }))
                @if page_no > 1 || older {
                    div.pager {
                        @if page_no > 1 { a.button.secondary href=(link(page_no - 1)) { "Newer" } }
                        span.muted { "Page " (page_no) }
                        @if older { a.button.secondary href=(link(page_no + 1)) { "Older" } }
                    }
                }
            }
        }
    };
    Ok(page(&me, "/alerts", "Alerts", body))
}
