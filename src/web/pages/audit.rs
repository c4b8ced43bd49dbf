//! The audit log (admin): who did what, when and from where, newest first,
//! filtered by actor and action.

use actix_web::web;
use maud::html;
use serde::Deserialize;

use crate::service::audit::{self as svc, AuditQuery, READ};
use crate::service::ServiceError;
use crate::state::AppState;
use crate::web::auth::PageUser;
use crate::web::layout::page;
use crate::web::view::when;
use crate::web::Page;

const PAGE: i64 = 50;

/// Families offered in the filter; any action can also be typed.
const FAMILIES: &[&str] =
    &["session", "user", "token", "hypervisor", "pair", "task", "schedule", "plan", "target", "alert_settings"];

#[derive(Deserialize)]
pub struct ListQuery {
    actor: Option<String>,
    action: Option<String>,
    page: Option<i64>,
}

pub async fn list(state: web::Data<AppState>, me: PageUser, q: web::Query<ListQuery>) -> Page {
    crate::service::require(&me.user, READ)?;
    let q = q.into_inner();
    let actor = q.actor.unwrap_or_default().trim().to_string();
    let action = q.action.unwrap_or_default().trim().to_string();
    let page_no = q.page.unwrap_or(1).clamp(1, 1_000_000);
    // An empty filter box means "any" on the page.
    let query = AuditQuery {
        actor: Some(actor.clone()).filter(|a| !a.is_empty()),
        action: Some(action.clone()).filter(|a| !a.is_empty()),
        limit: PAGE,
        offset: (page_no - 1) * PAGE,
    };
    let (entries, total, error) = match svc::list(&state, &me.user, query).await {
        Ok((entries, total)) => (entries, total, None),
        Err(e @ ServiceError::Invalid { .. }) => (Vec::new(), 0, Some(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let pages = (total + PAGE - 1) / PAGE;
    let link = |n: i64| {
        let query =
            serde_urlencoded::to_string([("actor", actor.as_str()), ("action", action.as_str())]).unwrap_or_default();
        format!("/audit?{query}&page={n}")
    };
    let body = html! {
        h1 { "Audit log" }
        p.muted { "Who did what, when and from where. Names and ids only: no password, token or secret is ever recorded." }
        form.filters method="get" action="/audit" {
            label { "Actor" input type="text" name="actor" value=(actor) placeholder="a username, monitor, schedule …"; }
            label { "Action" input type="text" name="action" value=(action) list="audit-families" placeholder="pair, or pair.update"; }
            datalist #audit-families { @for f in FAMILIES { option value=(f) {} } }
            button.secondary type="submit" { "Filter" }
        }
        @if let Some(e) = &error { div.flash.error role="alert" { (e) } }
        @if entries.is_empty() { div.empty { "No entries." } } @else {
            div.table-wrap { table #audit-table {
                thead { tr { th { "When" } th { "Actor" } th { "Action" } th { "Subject" } th { "Detail" } th { "From" } } }
                tbody { @for e in &entries { tr {
                    td.nowrap { (when(e.at)) }
                    td { (e.actor) }
                    td.mono { (e.action) }
                    td { (e.subject_type) @if let Some(id) = &e.subject_id { " " span.mono title=(id) { (id.get(..8).unwrap_or(id)) } } }
                    td { (e.detail) }
                    td.mono { (e.source_ip.clone().unwrap_or_default()) }
                } } }
            } }
        }
        div.pager {
            @if page_no > 1 { a.button.secondary href=(link(page_no - 1)) { "Newer" } }
            span.muted { "Page " (page_no) " of " (pages.max(1)) " · " (total) " entries" }
            @if page_no < pages { a.button.secondary href=(link(page_no + 1)) { "Older" } }
        }
    };
    Ok(page(&me, "/audit", "Audit log", body))
}
