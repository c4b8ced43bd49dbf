//! The switch on a pair's page: where the pair stands (protected, failing
//! over, failed over, failing back), the `Fail over`, `Fail back` and `Run
//! drill` forms, the recovery assurance figures and the event history with
//! each step's time. It only reads and renders: which action a state
//! allows is `service::tasks::allowed_in_state`, asked here, decided there.

use maud::{html, Markup};

use crate::db::archives::Archive;
use crate::db::events::Event;
use crate::db::pairs::Pair;
use crate::db::tasks::Task;
use crate::domain::{PairState, TaskKind, TaskStatus, Timestamp};
use crate::service::pairs::PairView;
use crate::service::tasks::allowed_in_state;
use crate::service::ServiceError;
use crate::web::auth::PageUser;
use crate::web::view::{ago, duration, elapsed, event_badge, size, when};

/// Events listed on the page, newest first; `GET /api/v1/events` has all.
pub const EVENTS_SHOWN: usize = 10;

/// The pair and what the page read about it.
pub struct Site<'a> {
    pub pair: &'a Pair,
    /// Names of the DC and DRC hosts.
    pub dc: &'a str,
    pub drc: &'a str,
    /// Newest first, like everything below.
    pub archives: &'a [Archive],
    pub tasks: &'a [Task],
    pub events: &'a [Event],
    /// How long a drill VM must keep running (`DRILL_BOOT_SECS`).
    pub drill_boot_secs: u64,
}

impl Site<'_> {
    /// The queued or running task of `kind`, if any.
    fn open_task(&self, kind: TaskKind) -> Option<&Task> {
        self.tasks.iter().find(|t| t.kind == kind && !t.status.is_final())
    }

    fn newest_verified(&self) -> Option<&Archive> {
        self.archives.iter().find(|a| a.verified_at.is_some())
    }

    fn last_event(&self, kind: TaskKind) -> Option<&Event> {
        self.events.iter().find(|e| e.kind == kind && e.status != "running")
    }
}

fn watch(t: &Task) -> Markup {
    html! { a href={ "/tasks/" (t.id) } { "Watch the " (t.kind) " task" } "." }
}

/// A banner under the title whenever the pair is not simply protected.
pub fn banner(s: &Site) -> Markup {
    let p = s.pair;
    let last_task = |kind: TaskKind| s.tasks.iter().find(|t| t.kind == kind);
    html! {
        @match p.state {
            PairState::Protected => {}
            PairState::FailedOver => {
                div.state-banner.bad #pair-state data-state=(p.state) role="status" {
                    strong { "Failed over. " }
                    "The replica VM " (p.dst_vmid) " on " (s.drc) " is the live copy; backups of the DC VM are paused. "
                    span.muted {
                        "If VM " (p.src_vmid) " on " (s.dc) " runs again, drswitch "
                        (if p.shutdown_returned_source { "stops it" } else { "reports it and never overwrites it" })
                        "; Fail back when the DC is ready."
                    }
                }
            }
            PairState::FailingOver => {
                div.state-banner.warn #pair-state data-state=(p.state) role="status" {
                    strong { "Failing over. " }
                    @if let Some(t) = s.open_task(TaskKind::Failover) {
                        "Fencing VM " (p.src_vmid) " on " (s.dc) " and bringing up the replica VM " (p.dst_vmid) " on " (s.drc) ". " (watch(t))
                    } @else {
                        "A failover stopped after VM " (p.src_vmid) " on " (s.dc) " was fenced; the replica VM " (p.dst_vmid) " on "
                        (s.drc) " is not confirmed running. Fail over again to finish."
                        @if let Some(t) = last_task(TaskKind::Failover) { " " a href={ "/tasks/" (t.id) } { "The last attempt" } " says where it stopped." }
                    }
                }
            }
            PairState::FailingBack => {
                div.state-banner.warn #pair-state data-state=(p.state) role="status" {
                    strong { "Failing back. " }
                    @if let Some(t) = s.open_task(TaskKind::Failback) {
                        "Copying VM " (p.dst_vmid) " on " (s.drc) " back over VM " (p.src_vmid) " on " (s.dc) ". " (watch(t))
                    } @else {
                        "A failback stopped before it finished. Fail back again to finish it."
                        @if let Some(t) = last_task(TaskKind::Failback) { " " a href={ "/tasks/" (t.id) } { "The last attempt" } " says where it stopped." }
                    }
                }
            }
        }
    }
}

/// The `Fail over`, `Run drill` and `Fail back` forms the pair's state
/// allows, each saying what it will do; for people who may run tasks.
pub fn actions(me: &PageUser, s: &Site) -> Markup {
    let p = s.pair;
    let newest = s.newest_verified();
    let bring_up = match newest {
        Some(a) if p.replica_archive_id != Some(a.id) => " after restoring the newest verified archive over it",
        _ => "",
    };
    let failover_q = format!(
        "Stops VM {} on {} (shutdown, then stop, onboot 0) and starts the replica VM {} on {}{bring_up}.",
        p.src_vmid, s.dc, p.dst_vmid, s.drc
    );
    let failback_q = format!(
        "Copies the DRC copy (VM {} on {}) back over VM {} on {}, stops the DRC copy and starts VM {} on {}; \
         the pair is then protected again. Continue?",
        p.dst_vmid, s.drc, p.src_vmid, s.dc, p.src_vmid, s.dc
    );
    let shown = |kind: TaskKind| allowed_in_state(p, kind).is_ok() && s.open_task(kind).is_none();
    let drill = allowed_in_state(p, TaskKind::Drill);
    let running: Vec<&Task> =
        [TaskKind::Failover, TaskKind::Drill, TaskKind::Failback].iter().filter_map(|k| s.open_task(*k)).collect();
    html! {
        div.panel #switch {
            h2 { "Switch" }
            div.switch-actions {
                @for t in &running {
                    p.running { span.badge.info { (t.kind) " " (t.status) } " " (watch(t)) }
                }
                @if shown(TaskKind::Failover) {
                    form.switch-action #failover-form method="post" action={ "/pairs/" (p.id) "/failover" }
                        data-confirm=(format!("{failover_q} Continue?"))
                        data-confirm-forced=(format!("{failover_q} If VM {} on {} cannot be fenced, the replica starts anyway and both copies may run at once. Continue?", p.src_vmid, s.dc)) {
                        input type="hidden" name="csrf" value=(me.csrf);
                        button.danger type="submit" { "Fail over" }
                        div.what {
                            p { "Stops VM " (p.src_vmid) " on " (s.dc) " and starts the replica VM " (p.dst_vmid) " on " (s.drc) " as the live copy." }
                            label.check { input type="checkbox" name="force" value="true"; "Go on even if the DC VM cannot be fenced" }
                        }
                    }
                }
                @match (&drill, newest) {
                    (Ok(()), Some(a)) if s.open_task(TaskKind::Drill).is_none() => {
                        @let vmid = p.drill_vmid.map(|v| v.to_string()).unwrap_or_default();
                        form.switch-action #drill-form method="post" action={ "/pairs/" (p.id) "/drill" }
                            data-confirm=(format!(
                                "Restores the chosen archive on {} as an isolated VM {vmid} (new MAC addresses, network links down), \
                                 checks it keeps running for {} s, then destroys it. The replica VM {} and the DC VM are not touched. Continue?",
                                s.drc, s.drill_boot_secs, p.dst_vmid)) {
                            input type="hidden" name="csrf" value=(me.csrf);
                            button.secondary type="submit" { "Run drill" }
                            div.what {
                                p { "Restores an isolated copy as VM " (vmid) " on " (s.drc) ", checks it runs for " (duration(s.drill_boot_secs as i64)) ", then destroys it. Nothing else is touched." }
                                label.inline { "Archive"
                                    select name="archive_id" {
                                        option value="" { "newest verified (" (when(a.created_at)) ")" }
                                        @for a in s.archives.iter().filter(|a| a.verified_at.is_some()) {
                                            option value=(a.id) title=(a.file_name) { (when(a.created_at)) " · " (size(a.size_bytes)) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    (Ok(()), None) => {
                        p.switch-note { strong { "Run drill" } " needs a verified archive first; Backup now makes one." }
                    }
                    (Err(ServiceError::Taken { field, .. }), _) if field == "drill_vmid" && p.state == PairState::Protected => {
                        p.switch-note { strong { "Run drill" } " needs a drill VMID: a free VMID on " (s.drc) " (Edit the pair)." }
                    }
                    _ => {}
                }
                @if shown(TaskKind::Failback) {
                    form.switch-action #failback-form method="post" action={ "/pairs/" (p.id) "/failback" } data-confirm=(failback_q) {
                        input type="hidden" name="csrf" value=(me.csrf);
                        button.danger type="submit" { "Fail back" }
                        div.what {
                            p { "Copies VM " (p.dst_vmid) " on " (s.drc) " back over VM " (p.src_vmid) " on " (s.dc) " and starts it there; the pair is protected again." }
                        }
                    }
                }
            }
        }
    }
}

fn ms_between(from: Timestamp, to: Timestamp) -> i64 {
    to.millis() - from.millis()
}

fn rto(e: &Event) -> Option<String> {
    e.rto_secs.map(|s| elapsed((s * 1000.0).round() as i64))
}

fn kind_label(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Failover => "Failover",
        TaskKind::Failback => "Failback",
        TaskKind::Drill => "Drill",
        _ => "Event",
    }
}

/// Current RPO against its target, the last restore, the last drill and
/// failover: what a DR audit asks for.
pub fn assurance(s: &Site, v: &PairView, rpo_badge: Markup) -> Markup {
    let p = s.pair;
    let restore =
        s.tasks.iter().find_map(|t| {
            let (Some(a), Some(b)) = (t.started_at, t.finished_at) else { return None };
            (t.status == TaskStatus::Succeeded && matches!(t.kind, TaskKind::Restore | TaskKind::Replicate))
                .then_some((t, ms_between(a, b), b))
        });
    let drill_running = s.events.iter().any(|e| e.kind == TaskKind::Drill && e.status == "running");
    html! {
        div.panel #assurance {
            h2 { "Recovery assurance" }
            dl.facts {
                dt { "Recovery point" }
                dd #assurance-rpo {
                    (rpo_badge) " target " (duration(p.rpo_target_secs))
                    @if let Some(at) = v.last_archive_at { br; span.muted.small { "newest verified archive " (when(at)) } }
                    @if p.state != PairState::Protected {
                        br; span.small { "The DC VM's last backup; while the replica is live nothing backs it up." }
                    }
                }
                dt { "Last restore" }
                dd #assurance-restore {
                    @if let Some((t, ms, end)) = restore {
                        strong { (elapsed(ms)) } " "
                        (if t.kind == TaskKind::Replicate { "replicate (backup and restore)" } else { "restore" })
                        ", " (ago(end)) " · " a href={ "/tasks/" (t.id) } { "task" }
                    } @else { span.muted { "none in the recent tasks" } }
                }
                dt { "Last drill" }
                dd #assurance-drill {
                    @if let Some(e) = &v.last_drill {
                        (event_badge(e))
                        @if let Some(r) = rto(e) { " RTO " strong { (r) } }
                        ", " (ago(e.started_at))
                        @if let Some(t) = e.task_id { " · " a href={ "/tasks/" (t) } { "task" } }
                        @if drill_running { " · " span.badge.info { "another is running" } }
                    } @else if drill_running {
                        span.badge.info { "running" } " the first drill"
                    } @else if p.drill_vmid.is_none() {
                        span.muted { "never; set a drill VMID to run one" }
                    } @else {
                        span.muted { "never; Run drill tests recovery without touching the replica" }
                    }
                }
                @if let Some(e) = s.last_event(TaskKind::Failover) {
                    dt { "Last failover" }
                    dd #assurance-failover {
                        (event_badge(e))
                        @if let Some(r) = rto(e) { " RTO " strong { (r) } }
                        @if e.forced { " " span.badge.bad { "forced" } }
                        ", " (ago(e.started_at))
                    }
                }
                dt { "Drill VM" }
                dd { @match p.drill_vmid { Some(v) => { "VM " (v) " on " (s.drc) ", destroyed after each drill" } None => { span.muted { "not set" } } } }
            }
        }
    }
}

/// Failover, failback and drill history, newest first; each opens to its
/// steps with their times. The newest is open.
pub fn events(s: &Site) -> Markup {
    html! {
        section #events {
            h2 { "Events " span.muted.small { "failovers, failbacks and drills, step by step" } }
            @if s.events.is_empty() {
                p.muted { "No failover, failback or drill yet." }
            } @else {
                div.events {
                    @for (i, e) in s.events.iter().take(EVENTS_SHOWN).enumerate() {
                        (event(e, i == 0))
                    }
                }
                @if s.events.len() > EVENTS_SHOWN {
                    p.muted.small { "The " (EVENTS_SHOWN) " newest are shown; " code { "GET /api/v1/events?pair_id=" (s.pair.id) } " lists them all." }
                }
            }
        }
    }
}

fn event(e: &Event, open: bool) -> Markup {
    let took = match e.finished_at {
        Some(end) => elapsed(ms_between(e.started_at, end)),
        None => format!("running for {}", elapsed(ms_between(e.started_at, Timestamp::now()))),
    };
    html! {
        details.event #{ "event-" (e.id) } data-kind=(e.kind) data-status=(e.status) open[open] {
            summary {
                // Spaces between the parts, so the text reads (and copies) as a sentence.
                span.ev-head {
                    strong.ev-kind { (kind_label(e.kind)) } " "
                    (event_badge(e)) " "
                    @if e.forced { span.badge.bad title="The DC VM could not be fenced; the failover went on anyway" { "forced" } " " }
                    span.ev-when { (when(e.started_at)) " (" (ago(e.started_at)) ")" } " "
                    span.ev-took { "took " (took) }
                    @if let Some(r) = rto(e) { " " span.ev-rto { "RTO " (r) } }
                }
                @if !e.summary.is_empty() { " " span.ev-summary { (e.summary) } }
            }
            @if e.steps.is_empty() {
                p.muted.small { "No step recorded yet." }
            } @else {
                table.steps {
                    thead { tr { th { "Step" } th { "Result" } th { "At" } th { "Took" } th { "Detail" } } }
                    tbody {
                        @for st in &e.steps {
                            tr data-ok=(st.ok) {
                                td.nowrap { (st.name) }
                                td { @if st.ok { span.badge.ok { "ok" } } @else { span.badge.bad { "failed" } } }
                                td.nowrap.muted { "+" (elapsed(ms_between(e.started_at, st.started_at))) }
                                td.nowrap { (elapsed(ms_between(st.started_at, st.finished_at))) }
                                td.detail { (st.detail) }
                            }
                        }
                    }
                }
            }
            @if let Some(t) = e.task_id { p.small { a href={ "/tasks/" (t) } { "The task's log" } } }
        }
    }
}
