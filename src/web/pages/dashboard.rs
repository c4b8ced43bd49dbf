//! The page a sysadmin leaves open on a wall screen: every pair's recovery
//! point against its target, its last task, what runs now; every host.

use actix_web::{web, HttpResponse};
use maud::{html, Markup};

use crate::domain::TaskStatus;
use crate::service::overview::{overview, rpo_health, Overview, RpoHealth};
use crate::state::AppState;
use crate::web::auth::PageUser;
use crate::web::layout::page;
use crate::web::view::{ago, duration, status_badge};
use crate::web::Page;

pub async fn content(state: &AppState, me: &PageUser) -> Result<Markup, crate::web::PageError> {
    let o = overview(state, &me.user).await?;
    Ok(tiles(&o))
}

pub async fn index(state: web::Data<AppState>, me: PageUser) -> Page {
    let body = content(&state, &me).await?;
    Ok(page(
        &me,
        "/",
        "Dashboard",
        html! {
            h1 { "Dashboard" }
            // Refreshes itself every 5 s; without JavaScript a reload does.
            div #dashboard hx-get="/dashboard/live" hx-trigger="every 5s" hx-swap="innerHTML" { (body) }
        },
    ))
}

pub async fn live(state: web::Data<AppState>, me: PageUser) -> Page {
    let body = content(&state, &me).await?;
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body.into_string()))
}

fn tiles(o: &Overview) -> Markup {
    let healthy = o.pairs.iter().filter(|p| rpo_health(p) != RpoHealth::Breached).count();
    html! {
        @if o.hypervisors.is_empty() {
            div.empty { "No hypervisors yet — " a href="/hypervisors/new" { "add the DC host first" } "." }
        } @else if o.pairs.is_empty() {
            div.empty { "No VM pairs yet — " a href="/pairs/new" { "pair a DC VM with its DRC replica" } "." }
        }
        @if !o.pairs.is_empty() {
            h2 { "Pairs " span.muted { "(" (healthy) " of " (o.pairs.len()) " within their RPO target)" } }
            div.tiles {
                @for v in &o.pairs {
                    @let health = rpo_health(v);
                    @let class = if v.pair.replica_task_id.is_some() { "bad" } else { match health { RpoHealth::Good => "ok", RpoHealth::Near => "warn", RpoHealth::Breached => "bad" } };
                    @let task = o.latest.get(&v.pair.id);
                    div class={ "tile " (class) } data-pair=(v.pair.id) {
                        h3 { a href={ "/pairs/" (v.pair.id) } { (v.pair.name) } }
                        div.meta {
                            span {
                                "Recovery point: "
                                @match (v.rpo_seconds, v.last_archive_at) {
                                    (Some(_), Some(at)) => { strong { (ago(at)) } }
                                    _ => { strong { "no archive yet" } }
                                }
                                " · " span.nowrap { "target " (duration(v.pair.rpo_target_secs)) }
                            }
                            @if let Some(t) = task {
                                span {
                                    "Last task: " (t.kind) " " (status_badge(t.status))
                                    @if t.status == TaskStatus::Running {
                                        " " (t.phase) " " (t.progress) "%"
                                    }
                                }
                                @if t.status == TaskStatus::Running {
                                    progress max="100" value=(t.progress) {}
                                }
                            } @else {
                                span { "No task yet" }
                            }
                            @if v.pair.replica_task_id.is_some() { span { span.badge.bad { "replica incomplete — restore it" } } }
                            @if !v.pair.enabled { span { span.badge.muted { "disabled" } } }
                        }
                    }
                }
            }
        }
        @if !o.hypervisors.is_empty() {
            h2 { "Hypervisors" }
            div.tiles {
                @for h in &o.hypervisors {
                    @let pinned = h.host_key_fingerprint.is_some();
                    // Neutral: a pinned key says nothing about whether the host is up.
                    div class={ "tile " (if !h.enabled { "warn" } else { "" }) } {
                        h3 { a href={ "/hypervisors/" (h.id) } { (h.name) } }
                        div.meta {
                            span { (h.role) " · " (h.host) ":" (h.ssh_port) " · node " (h.node) }
                            span {
                                @if !h.enabled { span.badge.warn { "disabled" } }
                                @else if pinned { span.badge.ok { "SSH key pinned" } }
                                @else { span.badge.muted { "not checked yet" } }
                            }
                        }
                    }
                }
            }
        }
    }
}
