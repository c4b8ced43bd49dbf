//! A hypervisor's health as the monitor sees it: reachability, the last
//! probes, service states and charts of the last 24 h. One status call per
//! view; the section refreshes itself while the page is open.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use maud::{html, Markup};

use crate::db::hypervisors::Hypervisor;
use crate::db::monitoring::Sample;
use crate::domain::{HypervisorId, Timestamp};
use crate::monitor::conditions::Reachability;
use crate::service::monitoring::{self as svc, HostStatus};
use crate::state::AppState;
use crate::web::auth::PageUser;
use crate::web::charts::{Figure, History, Series};
use crate::web::view::{ago, duration, pct, reachability_badge, size, when};
use crate::web::{Page, PageError};

/// The health section of a hypervisor's page.
pub async fn section(state: &AppState, me: &PageUser, h: &Hypervisor) -> Result<Markup, PageError> {
    let status = svc::host_status(state, &me.user, h.id, None).await?;
    let thresholds = svc::alert_settings(state, &me.user).await?.settings;
    let interval = state.settings.monitor_interval;
    let mut html = render(h, &status, [thresholds.cpu_pct, thresholds.mem_pct, thresholds.disk_pct], interval);
    if !state.settings.monitor_enabled {
        html = html! { div.flash.info role="status" { "The monitor is switched off (MONITOR_ENABLED=false): nothing below is current." } (html) };
    }
    Ok(html)
}

/// The section alone, for its own refresh.
pub async fn live(state: web::Data<AppState>, me: PageUser, path: web::Path<String>) -> Page {
    let id: HypervisorId = crate::web::view::path_id(&path, "hypervisor")?;
    let h = crate::service::hypervisors::get(&state, &me.user, id).await?;
    let body = section(&state, &me, &h).await?;
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body.into_string()))
}

/// How long ago the last probe was, when that is several probe intervals
/// (the monitor no longer probes this host, or is not running).
fn stale_for(s: &HostStatus, interval: Duration) -> Option<i64> {
    let last = s.health.as_ref()?.last_probe_at;
    let age = (Timestamp::now().millis() - last.millis()).max(0) / 1000;
    let limit = 3 * interval.as_secs() as i64 + 10;
    (age > limit).then_some(age)
}

/// Why the host has the reachability it has, in one sentence.
fn explain(h: &Hypervisor, s: &HostStatus) -> String {
    let tolerance = duration(s.tolerance_secs as i64);
    let Some(health) = &s.health else {
        return if !h.enabled {
            "Disabled: the monitor does not probe it.".into()
        } else if h.host_key_fingerprint.is_none() {
            "Not probed yet: the monitor starts once the SSH host key is pinned (Test connection).".into()
        } else {
            "Not probed yet: the first probe comes within one monitor interval.".into()
        };
    };
    let silent = |since: Timestamp| duration((Timestamp::now().millis() - since.millis()).max(0) / 1000);
    match s.reachability {
        Reachability::Up => "The Proxmox API and ssh both answered the last probe.".into(),
        Reachability::Degraded if health.api_up => "Only the Proxmox API answered the last probe; ssh did not.".into(),
        Reachability::Degraded => "Only ssh answered the last probe; the Proxmox API did not.".into(),
        Reachability::Unreachable => match health.silent_since() {
            Some(since) => format!(
                "Nothing has answered for {}; it counts as down after {tolerance} without an answer.",
                silent(since)
            ),
            None => format!("Not answering; it counts as down after {tolerance} without an answer."),
        },
        Reachability::Down => match health.silent_since() {
            Some(since) => format!(
                "Nothing has answered for {}, longer than the {tolerance} tolerance: down for alerts and automatic failover.",
                silent(since)
            ),
            None => format!("Down: no answer for longer than the {tolerance} tolerance."),
        },
        Reachability::Unchecked if !h.enabled => "Disabled: the monitor does not probe it.".into(),
        Reachability::Unchecked => "Not probed yet.".into(),
    }
}

fn up_badge(up: Option<bool>) -> Markup {
    match up {
        Some(true) => html! { span.badge.ok { "answers" } },
        Some(false) => html! { span.badge.bad { "no answer" } },
        None => html! { span.badge.muted { "not probed" } },
    }
}

/// The newest figures, as a line.
fn figures(s: &Sample) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(v) = s.cpu_pct {
        parts.push(format!("CPU {}", pct(v)));
    }
    if let Some(v) = s.mem_pct {
        let free = s.mem_free_bytes.map(|b| format!(" ({} free)", size(b))).unwrap_or_default();
        parts.push(format!("memory {}{free}", pct(v)));
    }
    if let Some(v) = s.disk_pct {
        parts.push(format!("root disk {}", pct(v)));
    }
    if let Some(v) = s.backup_pct {
        parts.push(format!("backup storage {}", pct(v)));
    }
    (!parts.is_empty()).then(|| parts.join(" · "))
}

fn render(h: &Hypervisor, s: &HostStatus, [cpu, mem, disk]: [f64; 3], interval: Duration) -> Markup {
    let refresh = interval.as_secs().clamp(5, 60);
    // Services are only known from probes the API answered: the newest such.
    let services = s.latest.iter().chain(s.history.iter().rev()).find_map(|x| x.services.as_ref().map(|m| (x.at, m)));
    // Stopped services by the newest probe (older states may be stale).
    let stopped = s
        .latest
        .as_ref()
        .and_then(|l| l.services.as_ref())
        .map_or(0, |m| m.values().filter(|state| *state != "running").count());
    let history = History::new(&s.history, Timestamp::now(), interval);
    let api_up = s.latest.as_ref().and_then(|l| l.api_up).map(|v| v > 0.0);
    let ssh_up = s.latest.as_ref().and_then(|l| l.ssh_up).map(|v| v > 0.0);
    html! {
        section.panel #health data-reachability=(crate::web::view::reachability_word(s.reachability))
            hx-get={ "/hypervisors/" (h.id) "/health" } hx-trigger={ "every " (refresh) "s" } hx-swap="outerHTML" {
            h2 {
                "Health " (reachability_badge(s.reachability))
                @if stopped > 0 {
                    " " span.badge.bad { (stopped) (if stopped == 1 { " service not running" } else { " services not running" }) }
                }
            }
            p.reach-why { (explain(h, s)) }
            @if let Some(age) = stale_for(s, interval) {
                div.flash.error.stale-probe role="alert" {
                    "The last probe was " (duration(age)) " ago, though the monitor probes every "
                    (duration(interval.as_secs() as i64)) ": what this section shows is not current. "
                    @if h.host_key_fingerprint.is_none() { "The host key is not pinned, so the monitor does not probe this host; use Test connection." }
                    @else if !h.enabled { "The host is disabled, so the monitor does not probe it." }
                    @else { "Is the monitor running? The server log says." }
                }
            }
            @if let Some(health) = &s.health {
                div.health-grid {
                    dl.health {
                        dt { "Last probe" } dd { (when(health.last_probe_at)) " " span.muted { "(" (ago(health.last_probe_at)) ")" } }
                        dt { "Last good probe" } dd { @match health.last_good_at {
                            Some(t) => { (when(t)) " " span.muted { "(" (ago(t)) ")" } }
                            None => { span.badge.bad { "never" } }
                        } }
                        dt { "Proxmox API" } dd { (up_badge(api_up.or(Some(health.api_up)))) " " span.detail { (health.api_detail) } }
                        dt { "SSH" } dd { (up_badge(ssh_up.or(Some(health.ssh_up)))) " " span.detail { (health.ssh_detail) } }
                        dt { "Now" } dd { @match s.latest.as_ref().and_then(figures) {
                            Some(f) => { (f) }
                            None => { span.muted { "no figures in the last probe" } }
                        } }
                        dt { "Down after" } dd { (duration(s.tolerance_secs as i64)) " without an answer" }
                    }
                    div.services {
                        h3 { "Services" }
                        @match services {
                            Some((at, map)) => {
                                // Older than the newest probe: the last known states, greyed.
                                @let stale = s.latest.as_ref().is_some_and(|l| l.at != at);
                                @if stale {
                                    p.muted.small { "Last known, " (when(at)) " — the API has not answered since:" }
                                }
                                ul.services {
                                    @for (name, state) in map {
                                        li data-service=(name) {
                                            @let class = if stale { "muted" } else if state == "running" { "ok" } else { "bad" };
                                            span class={ "badge " (class) } { (state) }
                                            " " span.mono { (name) }
                                        }
                                    }
                                }
                            }
                            None => { p.muted { "Unknown: the Proxmox API has not answered a probe in this window." } }
                        }
                    }
                }
            }
            @match &history {
                None => { div.empty.nodata { "No samples yet — charts appear after the first probes." } }
                Some(hist) => {
                    p.muted.chart-note { "History " (hist.span_label()) ", one probe every " (duration(interval.as_secs() as i64)) "." }
                    div.charts {
                        (hist.reachability_strip())
                        (hist.line_chart("CPU %", &[Series { class: "s1", name: "CPU", figure: Figure::Cpu }], Some(cpu)))
                        (hist.line_chart("Memory %", &[Series { class: "s1", name: "memory", figure: Figure::Memory }], Some(mem)))
                        (hist.line_chart("Disk %", &[
                            Series { class: "s1", name: "root disk", figure: Figure::Disk },
                            Series { class: "s2", name: "backup storage", figure: Figure::Backup },
                        ], Some(disk)))
                    }
                }
            }
        }
    }
}
