//! The page a sysadmin leaves open on a wall screen: every pair's recovery
//! point against its target, its last task, what runs now; every host.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use maud::{html, Markup};

use crate::db::alerts::Alert;
use crate::domain::Severity;
use crate::domain::{HypervisorId, PairState, TaskStatus};
use crate::monitor::conditions::Reachability;
use crate::service::monitoring::{self, AlertState};
use crate::service::overview::{overview, rpo_health, Overview, RpoHealth};
use crate::state::AppState;
use crate::web::auth::PageUser;
use crate::web::layout::page;
use crate::web::view::{
    ago, duration, elapsed, event_badge, pair_state_badge, reachability_badge, reachability_word, severity_badge,
    status_badge,
};
use crate::web::Page;

/// Open alerts listed above the tiles; the rest are a click away.
const ALERTS_SHOWN: usize = 5;
/// Open alerts read at most (the service's page limit).
const OPEN_MAX: i64 = 500;

pub async fn content(state: &AppState, me: &PageUser) -> Result<Markup, crate::web::PageError> {
    let o = overview(state, &me.user).await?;
    let reach: HashMap<HypervisorId, Reachability> = monitoring::reachabilities(state).await?.into_iter().collect();
    let open = monitoring::alerts(state, &me.user, Some(AlertState::Open), OPEN_MAX, 0).await?;
    Ok(html! { (open_alerts(&open)) (tiles(&o, &reach, &open)) })
}

/// How many alerts are open, the newest of them, and a link to all.
fn open_alerts(open: &[Alert]) -> Markup {
    let n = open.len();
    let critical = open.iter().any(|a| a.severity == Severity::Critical);
    let count = if n as i64 >= OPEN_MAX { format!("{n}+") } else { n.to_string() };
    html! {
        @if n == 0 {
            div.alert-summary.ok { a #open-alerts href="/alerts" { "No open alerts" } }
        } @else {
            div class={ "alert-summary " (if critical { "bad" } else { "warn" }) } {
                a #open-alerts href="/alerts?state=open" {
                    strong { (count) } (if n == 1 { " open alert" } else { " open alerts" }) " — see Alerts"
                }
                ul {
                    @for a in open.iter().take(ALERTS_SHOWN) {
                        li { (severity_badge(a.severity)) " " (a.message) " " span.muted { "(" (ago(a.opened_at)) ")" } }
                    }
                    @if n > ALERTS_SHOWN { li.muted { "and " (n - ALERTS_SHOWN) " more" } }
                }
            }
        }
    }
}

/// A badge for the open alerts about one subject, if any.
fn subject_alerts(open: &[Alert], kind: &str, id: &str) -> Option<Markup> {
    let mine: Vec<&Alert> = open.iter().filter(|a| a.subject.kind == kind && a.subject.id == id).collect();
    let worst = mine.iter().map(|a| a.severity).max_by_key(|s| *s == Severity::Critical)?;
    let class = if worst == Severity::Critical { "bad" } else { "warn" };
    let text = if mine.len() == 1 { "1 open alert".to_string() } else { format!("{} open alerts", mine.len()) };
    Some(html! { a class={ "badge " (class) } href="/alerts?state=open" { (text) } })
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

fn tiles(o: &Overview, reach: &HashMap<HypervisorId, Reachability>, open: &[Alert]) -> Markup {
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
                    // Failed over is an incident whatever the recovery point says; a switch under way needs watching.
                    @let class = match (v.pair.state, health) {
                        _ if v.pair.replica_task_id.is_some() => "bad",
                        (PairState::FailedOver, _) | (_, RpoHealth::Breached) => "bad",
                        (PairState::FailingOver | PairState::FailingBack, _) | (_, RpoHealth::Near) => "warn",
                        (PairState::Protected, RpoHealth::Good) => "ok",
                    };
                    @let task = o.latest.get(&v.pair.id);
                    div class={ "tile " (class) } data-pair=(v.pair.id) data-state=(v.pair.state) {
                        h3 { a href={ "/pairs/" (v.pair.id) } { (v.pair.name) } " " (pair_state_badge(v.pair.state)) }
                        div.meta {
                            @if v.pair.state == PairState::FailedOver {
                                @let drc = v.pair.dst_hypervisor_id.and_then(|h| o.hypervisors.iter().find(|x| x.id == h));
                                span.live {
                                    "Replica VM " (v.pair.dst_vmid) @if let Some(h) = drc { " on " (h.name) }
                                    " is the live copy; backups paused"
                                }
                            }
                            span {
                                "Recovery point: "
                                @match (v.rpo_seconds, v.last_archive_at) {
                                    (Some(_), Some(at)) => { strong { (ago(at)) } }
                                    _ => { strong { "no archive yet" } }
                                }
                                " · " span.nowrap { "target " (duration(v.pair.rpo_target_secs)) }
                            }
                            @if let Some(d) = &v.last_drill {
                                span.drill {
                                    "Last drill: " (event_badge(d))
                                    @if let Some(r) = d.rto_secs { " RTO " (elapsed((r * 1000.0).round() as i64)) }
                                    " · " span.nowrap { (ago(d.started_at)) }
                                }
                            }
                            @if let Some(t) = task {
                                span {
                                    "Last task: " (t.kind) " " (status_badge(t.status))
                                    @if t.status == TaskStatus::Running {
                                        " " (t.phase) " " (t.progress) "%"
                                        @if let Some(r) = t.rate_bps { " · " (crate::web::view::size(r)) "/s" }
                                        @if let Some(e) = t.eta_secs { " · about " (crate::web::view::duration(e)) " left" }
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
                            @if let Some(b) = subject_alerts(open, "pair", &v.pair.id.to_string()) { span { (b) } }
                        }
                    }
                }
            }
        }
        @if !o.hypervisors.is_empty() {
            h2 { "Hypervisors" }
            div.tiles {
                @for h in &o.hypervisors {
                    @let r = reach.get(&h.id).copied().unwrap_or(Reachability::Unchecked);
                    // Red when it does not answer at all, amber when only half of it does.
                    @let class = match r {
                        _ if !h.enabled => "warn",
                        Reachability::Up => "ok",
                        Reachability::Degraded => "warn",
                        Reachability::Unreachable | Reachability::Down => "bad",
                        Reachability::Unchecked => "",
                    };
                    div class={ "tile " (class) } data-hypervisor=(h.id) data-reachability=(reachability_word(r)) {
                        h3 { a href={ "/hypervisors/" (h.id) } { (h.name) } }
                        div.meta {
                            span { (h.role) " · " (h.host) ":" (h.ssh_port) " · node " (h.node) }
                            span {
                                @if !h.enabled { span.badge.warn { "disabled" } }
                                @else { (reachability_badge(r)) }
                                @if let Some(b) = subject_alerts(open, "hypervisor", &h.id.to_string()) { " " (b) }
                            }
                        }
                    }
                }
            }
        }
    }
}
