//! Tasks: the queue with filters and paging, and a task's page whose
//! progress bar and log grow without a reload.

use actix_session::Session;
use actix_web::{web, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;

use crate::db::tasks::{Task, TaskFilter};
use crate::domain::{PairId, TaskId, TaskKind, TaskStatus};
use crate::service::tasks::{self as svc, RUN};
use crate::service::ServiceError;
use crate::state::AppState;
use crate::web::auth::{flash, PageUser};
use crate::web::form::Form;
use crate::web::layout::page;
use crate::web::view::{ago, duration, post_button, redirect, size, status_badge, when};
use crate::web::Page;

const PAGE: i64 = 50;

fn id(raw: &str) -> Result<TaskId, ServiceError> {
    crate::web::view::path_id(raw, "task")
}

/// Tasks as a table, newest first; `pair` names a task's pair when the
/// table mixes pairs.
pub fn table(tasks: &[Task], pair: &dyn Fn(PairId) -> Option<String>) -> Markup {
    let show_pair = tasks.iter().any(|t| pair(t.pair_id).is_some());
    html! {
        @if tasks.is_empty() { div.empty { "No tasks yet — they appear here when a pair is backed up, replicated or restored." } } @else {
            div.table-wrap { table {
                thead { tr { th { "Task" } @if show_pair { th { "Pair" } } th { "Kind" } th { "Status" } th { "Progress" } th { "Queued" } th { "By" } th { "Result" } } }
                tbody { @for t in tasks { tr {
                    td { a.mono href={ "/tasks/" (t.id) } { (t.id.to_string().get(..8).unwrap_or("")) } }
                    @if show_pair { td { (pair(t.pair_id).unwrap_or_default()) } }
                    td { (t.kind) }
                    td { (status_badge(t.status)) }
                    td { @if t.status == TaskStatus::Running { progress max="100" value=(t.progress) {} " " (t.phase) } @else { (t.progress) "%" } }
                    td.nowrap { (ago(t.created_at)) }
                    td { (t.requested_by) }
                    td { (t.error.clone().unwrap_or_default()) }
                } } }
            } }
        }
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    pair_id: Option<String>,
    kind: Option<String>,
    page: Option<i64>,
}

pub async fn list(state: web::Data<AppState>, me: PageUser, q: web::Query<ListQuery>) -> Page {
    let status = q.status.as_deref().filter(|s| !s.is_empty()).and_then(|s| s.parse::<TaskStatus>().ok());
    let pair_id = q.pair_id.as_deref().filter(|s| !s.is_empty()).and_then(|s| s.parse::<PairId>().ok());
    let kind = q.kind.as_deref().filter(|s| !s.is_empty()).and_then(|s| s.parse::<TaskKind>().ok());
    let page_no = q.page.unwrap_or(1).clamp(1, 1_000_000);
    let filter = TaskFilter { status, pair_id, kind, limit: PAGE, offset: (page_no - 1) * PAGE };
    let (tasks, total) = svc::list(&state, &me.user, &filter).await?;
    let pairs = crate::service::pairs::list(&state, &me.user).await?;
    let pages = (total + PAGE - 1) / PAGE;
    // Built from the parsed values only: nothing typed into the URL is echoed.
    let link = |n: i64| {
        format!(
            "/tasks?status={}&pair_id={}&kind={}&page={n}",
            status.map(|s| s.to_string()).unwrap_or_default(),
            pair_id.map(|p| p.to_string()).unwrap_or_default(),
            kind.map(|k| k.to_string()).unwrap_or_default()
        )
    };
    let body = html! {
        h1 { "Tasks" }
        form.filters method="get" action="/tasks" {
            label { "Status" select name="status" {
                option value="" { "any" }
                @for s in TaskStatus::ALL { option value=(s) selected[Some(*s) == status] { (s) } }
            } }
            label { "Kind" select name="kind" {
                option value="" { "any" }
                @for k in TaskKind::ALL { option value=(k) selected[Some(*k) == kind] { (k) } }
            } }
            label { "Pair" select name="pair_id" {
                option value="" { "any" }
                @for v in &pairs { option value=(v.pair.id) selected[Some(v.pair.id) == pair_id] { (v.pair.name) } }
            } }
            button.secondary type="submit" { "Filter" }
        }
        div #task-table hx-get=(link(page_no)) hx-select="#task-table" hx-target="this" hx-swap="outerHTML" hx-trigger="every 5s" {
            (table(&tasks, &|p| pairs.iter().find(|v| v.pair.id == p).map(|v| v.pair.name.clone())))
        }
        div.pager {
            @if page_no > 1 { a.button.secondary href=(link(page_no - 1)) { "Newer" } }
            span.muted { "Page " (page_no) " of " (pages.max(1)) " · " (total) " tasks" }
            @if page_no < pages { a.button.secondary href=(link(page_no + 1)) { "Older" } }
        }
    };
    Ok(page(&me, "/tasks", "Tasks", body))
}

/// The part of a task's page that changes while it runs.
fn live_part(me: &PageUser, t: &Task, oob: bool) -> Markup {
    let running = t.status == TaskStatus::Running;
    html! {
        div #task-live hx-swap-oob=[oob.then_some("outerHTML")] {
            // Only while the task can still be stopped.
            @if !t.status.is_final() && me.user.role.allows(RUN) {
                div.actions {
                    (post_button(&format!("/tasks/{}/cancel", t.id), "Cancel", &me.csrf, "danger", Some("Cancel this task?")))
                }
            }
            p {
                "Status " span #task-status { (status_badge(t.status)) }
                " · phase " strong #task-phase { (t.phase) }
                " · attempt " (t.attempt) " of " (t.max_attempts)
            }
            progress #task-progress max="100" value=(t.progress) { (t.progress) "%" }
            div.progress-line {
                span #task-percent { (t.progress) "%" }
                @if t.bytes_total > 0 { span { (size(t.bytes_done)) " of " (size(t.bytes_total)) } }
                @if let (true, Some(r)) = (running, t.rate_bps) { span #task-rate { (size(r)) "/s" } }
                @if let (true, Some(e)) = (running, t.eta_secs) { span #task-eta { "about " (duration(e)) " left" } }
                @if let (Some(s), Some(f)) = (t.started_at, t.finished_at) { span { "took " (duration((f.millis() - s.millis()) / 1000)) } }
            }
            @if let Some(e) = &t.error { div.flash.error role="alert" #task-error { (e) } }
        }
    }
}

pub async fn detail(state: web::Data<AppState>, me: PageUser, path: web::Path<String>) -> Page {
    let t = svc::get(&state, &me.user, id(&path)?).await?;
    let log = svc::log(&state, &me.user, t.id, None).await?;
    let last = log.last().map(|l| l.seq).unwrap_or(0);
    let pair = state.db.pair(t.pair_id).await.map_err(ServiceError::from)?;
    let running = !t.status.is_final();
    let body = html! {
        h1 { "Task " span.mono { (t.id.to_string().get(..8).unwrap_or("")) } " · " (t.kind) }
        div.actions {
            @if let Some(p) = &pair { a.button.secondary href={ "/pairs/" (p.id) } { "Pair " (p.name) } }
        }
        div.panel {
            // Polls while the task runs: the status part is replaced, new log
            // lines are appended after the last one shown.
            div hx-get={ "/tasks/" (t.id) "/live?after=" (last) } hx-trigger=[running.then_some("every 1s")]
                hx-swap="none" #task-poller {}
            (live_part(&me, &t, false))
            dl.facts {
                dt { "Queued" } dd { (when(t.created_at)) " by " (t.requested_by) }
                @if let Some(s) = t.started_at { dt { "Started" } dd { (when(s)) } }
                @if let Some(f) = t.finished_at { dt { "Finished" } dd { (when(f)) } }
            }
        }
        h2 { "Log" }
        pre.log #task-log data-after=(last) {
            @for l in &log { span.line data-seq=(l.seq) { (when(l.at)) "  " (l.line) "\n" } }
        }
    };
    Ok(page(&me, "/tasks", "Task", body))
}

#[derive(Deserialize)]
pub struct LiveQuery {
    after: Option<i64>,
}

/// The live update: the status part (swapped out of band) and the log lines
/// after the cursor (appended out of band), plus a new poller that carries
/// the next cursor and stops once the task has ended.
pub async fn live(state: web::Data<AppState>, me: PageUser, path: web::Path<String>, q: web::Query<LiveQuery>) -> Page {
    let t = svc::get(&state, &me.user, id(&path)?).await?;
    let after = q.after.unwrap_or(0);
    let lines = svc::log(&state, &me.user, t.id, Some(after)).await?;
    let last = lines.last().map(|l| l.seq).unwrap_or(after);
    let running = !t.status.is_final();
    let body = html! {
        div #task-poller hx-swap-oob="true" hx-get={ "/tasks/" (t.id) "/live?after=" (last) }
            hx-trigger=[running.then_some("every 1s")] hx-swap="none" {}
        (live_part(&me, &t, true))
        @if !lines.is_empty() {
            pre #task-log hx-swap-oob="beforeend" {
                @for l in &lines { span.line data-seq=(l.seq) { (when(l.at)) "  " (l.line) "\n" } }
            }
        }
    };
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body.into_string()))
}

pub async fn cancel(
    state: web::Data<AppState>,
    me: PageUser,
    session: Session,
    path: web::Path<String>,
    _f: Form,
) -> Page {
    let tid = id(&path)?;
    match svc::cancel(&state, &me.user, tid).await {
        Ok(_) => flash(&session, "info", "Cancel requested; the worker stops the task and cleans up."),
        Err(ServiceError::Conflict(m)) => flash(&session, "error", m),
        Err(e) => return Err(e.into()),
    }
    Ok(redirect(&format!("/tasks/{tid}")))
}
