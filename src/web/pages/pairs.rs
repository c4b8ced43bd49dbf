//! VM pairs: the seed's "Add Node Pair" form with a VM picker, the pair's
//! page with its actions, archives, schedules and charts; the switch part
//! of the page (failover, drills, recovery assurance, events) is in
//! `switch`.

mod switch;

use actix_session::Session;
use actix_web::{web, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;

use crate::db::archives::Archive;
use crate::db::hypervisors::Hypervisor;
use crate::db::tasks::TaskFilter;
use crate::domain::{ArchiveId, HypervisorId, HypervisorRole, NetworkMap, PairId, TaskKind, TaskStatus};
use crate::service::pairs::{self as svc, PairInput, PairView, ADOPT, MANAGE};
use crate::service::tasks::allowed_in_state;
use crate::service::{self, ServiceError};
use crate::state::AppState;
use crate::web::auth::{flash, PageUser};
use crate::web::form::{Form, Kind};
use crate::web::layout::page;
use crate::web::view::{
    after_action, again, checkbox, done, duration, form_error, input, outcome, pair_state_badge, post_button, redirect,
    select, size, textarea, when, Outcome,
};
use crate::web::Page;

const FIELDS: &[(&str, Kind)] = &[
    ("name", Kind::Text),
    ("src_hypervisor_id", Kind::Text),
    ("src_vmid", Kind::Number),
    ("dst_hypervisor_id", Kind::Text),
    ("dst_vmid", Kind::Number),
    ("guest", Kind::Text),
    ("compress", Kind::Text),
    ("mode", Kind::Text),
    ("start_after_restore", Kind::Flag),
    ("keep_last", Kind::Number),
    ("rpo_target_secs", Kind::Number),
    ("enabled", Kind::Flag),
    ("drill_vmid", Kind::OptNumber),
    ("network_map", Kind::JsonObject),
    ("auto_failover", Kind::Flag),
    ("shutdown_returned_source", Kind::Flag),
    ("transfer", Kind::Text),
    ("fleecing_storage", Kind::Clearable),
];

/// The form's fields as the service input.
fn pair_input(f: &Form) -> Result<PairInput, ServiceError> {
    f.input::<PairInput>(FIELDS)
}

/// `vmbr0 → vmbr10, vmbr1 → vmbr11 (VLAN 20)`.
fn network_map_text(m: &NetworkMap) -> String {
    m.0.iter()
        .map(|(from, to)| match to.tag {
            Some(tag) => format!("{from} → {} (VLAN {tag})", to.bridge),
            None => format!("{from} → {}", to.bridge),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn id(raw: &str) -> Result<PairId, ServiceError> {
    crate::web::view::path_id(raw, "pair")
}

pub async fn list(state: web::Data<AppState>, me: PageUser) -> Page {
    let pairs = svc::list(&state, &me.user).await?;
    let hosts = crate::service::hypervisors::list(&state, &me.user).await?;
    let name = |h: HypervisorId| hosts.iter().find(|x| x.id == h).map(|x| x.name.clone()).unwrap_or_default();
    let body = html! {
        h1 { "VM pairs" }
        @if me.user.role.allows(MANAGE) { div.actions { a.button href="/pairs/new" { "Add pair" } } }
        @if pairs.is_empty() {
            div.empty { "No VM pairs yet — " a href="/pairs/new" { "pair a DC VM with its DRC replica" } "." }
        } @else {
            div.table-wrap { table {
                thead { tr { th { "Name" } th { "DC VM" } th { "DRC replica" } th { "Recovery point" } th { "State" } } }
                tbody {
                    @for v in &pairs {
                        tr {
                            td { a href={ "/pairs/" (v.pair.id) } { (v.pair.name) } }
                            td { (name(v.pair.src_hypervisor_id)) " / " (v.pair.src_vmid) }
                            td {
                                @match v.pair.dst_hypervisor_id {
                                    Some(h) => (name(h)),
                                    None => span.muted { "placed at first restore" },
                                }
                                " / " (v.pair.dst_vmid)
                            }
                            td { (rpo(v)) }
                            td { (pair_state_badge(v.pair.state)) @if !v.pair.enabled { " " span.badge.muted { "disabled" } } }
                        }
                    }
                }
            } }
        }
    };
    Ok(page(&me, "/pairs", "Pairs", body))
}

fn rpo(v: &PairView) -> Markup {
    use crate::service::overview::{rpo_health, RpoHealth};
    let class = match rpo_health(v) {
        RpoHealth::Good => "ok",
        RpoHealth::Near => "warn",
        RpoHealth::Breached => "bad",
    };
    html! {
        span class={ "badge " (class) } {
            @match v.rpo_seconds { Some(s) => { (duration(s)) " old" } None => { "no archive" } }
        }
    }
}

fn host_options(hosts: &[Hypervisor], role: HypervisorRole) -> Vec<(String, String)> {
    hosts.iter().filter(|h| h.role == role).map(|h| (h.id.to_string(), format!("{} ({})", h.name, h.host))).collect()
}

/// The add/edit form. The VMID fields are plain numbers; the picker below
/// the DC host fills the source VMID from the host's Proxmox API.
fn form(
    me: &PageUser,
    hosts: &[Hypervisor],
    action: &str,
    values: &dyn Fn(&str) -> String,
    err: Option<&ServiceError>,
    new: bool,
) -> Markup {
    let v = |n: &str| values(n);
    let fields: Vec<&str> = FIELDS.iter().map(|(n, _)| *n).collect();
    let opts = |list: &[(&str, &str)]| list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
    html! {
        @if let Some(e) = form_error(err, &fields) { div.flash.error role="alert" { (e) } }
        form.stack method="post" action=(action) {
            input type="hidden" name="csrf" value=(me.csrf);
            (input("Name", "name", "text", &v("name"), Some("optional; e.g. web01 replica"), err))
            div.two {
                (select("DC hypervisor", "src_hypervisor_id", &host_options(hosts, HypervisorRole::Dc), &v("src_hypervisor_id"), err))
                (input("DC VMID", "src_vmid", "number", &v("src_vmid"), Some("the VM to protect"), err))
            }
            @if new {
                div #vm-picker hx-get="/pairs/vms" hx-trigger="load, change from:[name=src_hypervisor_id]"
                    hx-include="[name=src_hypervisor_id]" hx-swap="innerHTML" {
                    span.muted { "VMs on the chosen DC host appear here (needs its API token); or type the VMID." }
                }
            }
            div.two {
                (select("DRC hypervisor", "dst_hypervisor_id", &host_options(hosts, HypervisorRole::Drc), &v("dst_hypervisor_id"), err))
                (input("DRC VMID", "dst_vmid", "number", &v("dst_vmid"), Some("the replica's VMID"), err))
            }
            div.two {
                (select("Compression", "compress", &opts(&[("zstd", "zstd"), ("lzo", "lzo"), ("gzip", "gzip"), ("none", "none")]), &v("compress"), err))
                (select("Backup mode", "mode", &opts(&[("snapshot", "snapshot"), ("suspend", "suspend"), ("stop", "stop")]), &v("mode"), err))
            }
            div.two {
                (input("Archives kept", "keep_last", "number", &v("keep_last"), Some("at least 2"), err))
                (input("RPO target (seconds)", "rpo_target_secs", "number", &v("rpo_target_secs"), Some("90000 = 25 h"), err))
            }
            div.two {
                (select("Transfer", "transfer", &opts(&[("staged", "staged: each hop finishes first"), ("streaming", "streaming: DC → middleware → DRC at once")]), &v("transfer"), err))
                (input("Fleecing storage", "fleecing_storage", "text", &v("fleecing_storage"),
                    Some("streaming VMs only: a fast DC storage for vzdump's fleecing image, e.g. local-lvm; empty = none"), err))
            }
            (select("Guest type", "guest", &opts(&[("qemu", "VM (qemu)"), ("lxc", "container (lxc)")]), &v("guest"), err))
            (checkbox("Start the replica after each restore", "start_after_restore", v("start_after_restore") != "false"))
            (checkbox("Enabled", "enabled", v("enabled") != "false"))
            fieldset #switch-fields {
                legend { "Failover and drills" }
                div.two {
                    (input("Drill VMID", "drill_vmid", "number", &v("drill_vmid"),
                        Some("a free VMID on the DRC host that drills restore to and destroy; empty = no drills"), err))
                }
                (textarea("Network map", "network_map", &v("network_map"),
                    Some(r#"JSON, DC bridge → DRC bridge, applied before the replica starts: {"vmbr0": "vmbr10"} or {"vmbr0": {"bridge": "vmbr10", "tag": 20}}; empty = keep the bridges"#), err))
                (checkbox("Fail over automatically when the DC host is declared down", "auto_failover", v("auto_failover") == "true"))
                (checkbox("While failed over, stop the DC VM if it runs again (otherwise only report it)", "shutdown_returned_source", v("shutdown_returned_source") == "true"))
            }
            div.actions {
                button type="submit" { (if new { "Add pair" } else { "Save" }) }
                a.button.secondary href="/pairs" { "Back" }
            }
        }
    }
}

fn defaults(name: &str) -> String {
    match name {
        "compress" => "zstd",
        "mode" => "snapshot",
        "keep_last" => "3",
        "rpo_target_secs" => "90000",
        "guest" => "qemu",
        "transfer" => "staged",
        "start_after_restore" | "enabled" => "true",
        "auto_failover" | "shutdown_returned_source" => "false",
        _ => "",
    }
    .to_string()
}

pub async fn new_form(state: web::Data<AppState>, me: PageUser) -> Page {
    service::require(&me.user, MANAGE)?;
    let hosts = crate::service::hypervisors::list(&state, &me.user).await?;
    let body = html! {
        h1 { "Add pair" }
        @if !hosts.iter().any(|h| h.role == HypervisorRole::Dc) || !hosts.iter().any(|h| h.role == HypervisorRole::Drc) {
            div.empty { "A pair needs a DC and a DRC hypervisor — " a href="/hypervisors/new" { "add them first" } "." }
        } @else {
            div.panel { (form(&me, &hosts, "/pairs", &defaults, None, true)) }
        }
    };
    Ok(page(&me, "/pairs", "Add pair", body))
}

#[derive(Deserialize)]
pub struct PickerQuery {
    src_hypervisor_id: Option<String>,
}

/// The VMs on the chosen DC host, from its Proxmox API; buttons fill the
/// VMID field. When the API does not answer, the plain field is enough.
pub async fn vm_picker(state: web::Data<AppState>, me: PageUser, q: web::Query<PickerQuery>) -> Page {
    let Some(hid) = q.src_hypervisor_id.as_deref().and_then(|s| s.parse::<HypervisorId>().ok()) else {
        return Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(""));
    };
    let body = match crate::service::hypervisors::vms(&state, &me.user, hid).await {
        Ok(vms) if vms.is_empty() => html! { span.muted { "The host's API lists no VMs." } },
        Ok(vms) => html! {
            label { "Pick the DC VM" span.hint { "sets the DC VMID" }
                select name="src_vmid_pick" data-fills="src_vmid" {
                    option value="" { "—" }
                    @for vm in &vms { option value=(vm.vmid) { (vm.vmid) " · " (vm.name.clone().unwrap_or_default()) " (" (vm.status) ")" } }
                }
            }
        },
        Err(e) => html! { span.muted { "The host's API did not answer (" (e.to_string()) "); type the VMID." } },
    };
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body.into_string()))
}

pub async fn create(state: web::Data<AppState>, me: PageUser, session: Session, f: Form) -> Page {
    let result = async { svc::create(&state, &me.user, pair_input(&f)?).await }.await;
    match outcome(result)? {
        Outcome::Done(v) => done(&session, format!("Pair {} added.", v.pair.name), &format!("/pairs/{}", v.pair.id)),
        Outcome::Again(e) => {
            let hosts = crate::service::hypervisors::list(&state, &me.user).await?;
            let values = f.values();
            let body = html! { h1 { "Add pair" } div.panel { (form(&me, &hosts, "/pairs", &values, Some(&e), true)) } };
            again(page(&me, "/pairs", "Add pair", body))
        }
    }
}

fn current(v: &PairView) -> impl Fn(&str) -> String + '_ {
    let p = &v.pair;
    move |name| match name {
        "name" => p.name.clone(),
        "src_hypervisor_id" => p.src_hypervisor_id.to_string(),
        "src_vmid" => p.src_vmid.to_string(),
        "dst_hypervisor_id" => p.dst_hypervisor_id.map(|h| h.to_string()).unwrap_or_default(),
        "dst_vmid" => p.dst_vmid.to_string(),
        "guest" => p.guest.to_string(),
        "compress" => p.compress.to_string(),
        "mode" => p.mode.to_string(),
        "start_after_restore" => p.start_after_restore.to_string(),
        "keep_last" => p.keep_last.to_string(),
        "rpo_target_secs" => p.rpo_target_secs.to_string(),
        "enabled" => p.enabled.to_string(),
        "drill_vmid" => p.drill_vmid.map(|v| v.to_string()).unwrap_or_default(),
        "network_map" if p.network_map.is_empty() => String::new(),
        "network_map" => serde_json::to_string_pretty(&p.network_map).unwrap_or_default(),
        "auto_failover" => p.auto_failover.to_string(),
        "shutdown_returned_source" => p.shutdown_returned_source.to_string(),
        "transfer" => p.transfer.to_string(),
        "fleecing_storage" => p.fleecing_storage.as_ref().map(|s| s.to_string()).unwrap_or_default(),
        _ => String::new(),
    }
}

pub async fn edit_form(state: web::Data<AppState>, me: PageUser, path: web::Path<String>) -> Page {
    service::require(&me.user, MANAGE)?;
    let v = svc::get(&state, &me.user, id(&path)?).await?;
    let hosts = crate::service::hypervisors::list(&state, &me.user).await?;
    let values = current(&v);
    let body = html! { h1 { "Edit " (v.pair.name) } div.panel { (form(&me, &hosts, &format!("/pairs/{}", v.pair.id), &values, None, false)) } };
    Ok(page(&me, "/pairs", "Edit pair", body))
}

pub async fn update(
    state: web::Data<AppState>,
    me: PageUser,
    session: Session,
    path: web::Path<String>,
    f: Form,
) -> Page {
    let pid = id(&path)?;
    let result = async { svc::update(&state, &me.user, pid, pair_input(&f)?).await }.await;
    match outcome(result)? {
        Outcome::Done(v) => done(&session, format!("Pair {} saved.", v.pair.name), &format!("/pairs/{}", v.pair.id)),
        Outcome::Again(e) => {
            let hosts = crate::service::hypervisors::list(&state, &me.user).await?;
            let values = f.values();
            let body = html! { h1 { "Edit pair" } div.panel { (form(&me, &hosts, &format!("/pairs/{pid}"), &values, Some(&e), false)) } };
            again(page(&me, "/pairs", "Edit pair", body))
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
    let pid = id(&path)?;
    let result = svc::delete(&state, &me.user, pid).await;
    after_action(
        &session,
        result,
        "Pair deleted; its archives and task history are kept.",
        "/pairs",
        &format!("/pairs/{pid}"),
    )
}

pub async fn adopt(
    state: web::Data<AppState>,
    me: PageUser,
    session: Session,
    path: web::Path<String>,
    _f: Form,
) -> Page {
    match svc::adopt(&state, &me.user, id(&path)?).await {
        Ok(v) => flash(&session, "ok", format!("VM {} may now be replaced by the next restore.", v.pair.dst_vmid)),
        Err(ServiceError::Conflict(m)) => flash(&session, "error", m),
        Err(e) => return Err(e.into()),
    }
    Ok(redirect(&format!("/pairs/{}", path.as_str())))
}

/// `Backup now`, `Replicate now`, `Restore` (with an optional archive).
pub async fn queue(
    state: web::Data<AppState>,
    me: PageUser,
    session: Session,
    path: web::Path<(String, String)>,
    f: Form,
) -> Page {
    let (raw, action) = path.into_inner();
    let kind = match action.as_str() {
        "backup" => TaskKind::Backup,
        "replicate" => TaskKind::Replicate,
        "restore" => TaskKind::Restore,
        "failover" => TaskKind::Failover,
        "failback" => TaskKind::Failback,
        "drill" => TaskKind::Drill,
        _ => return Err(ServiceError::NotFound("action").into()),
    };
    let force = f.get("force").is_some_and(|v| v == "true" || v == "on");
    let archive = match f.get("archive_id") {
        Some(a) => {
            Some(a.parse::<ArchiveId>().map_err(|_| ServiceError::invalid("archive_id", "must be an archive id"))?)
        }
        None => None,
    };
    match crate::service::tasks::queue(&state, &me.user, id(&raw)?, kind, archive, force).await {
        Ok(t) => Ok(redirect(&format!("/tasks/{}", t.id))),
        Err(e @ (ServiceError::Conflict(_) | ServiceError::Invalid { .. })) => {
            flash(&session, "error", e.to_string());
            Ok(redirect(&format!("/pairs/{raw}")))
        }
        Err(e) => Err(e.into()),
    }
}

/// Bars of archive size and a line of backup duration, oldest to newest,
/// as plain SVG: no script, nothing to load.
fn charts(points: &[(String, i64, i64)]) -> Markup {
    if points.len() < 2 {
        return html! { p.muted { "Charts appear after two backups." } };
    }
    let (w, h, pad) = (600.0_f64, 150.0_f64, 22.0_f64);
    let n = points.len() as f64;
    let max_size = points.iter().map(|p| p.1).max().unwrap_or(1).max(1) as f64;
    let max_secs = points.iter().map(|p| p.2).max().unwrap_or(1).max(1) as f64;
    let step = (w - 2.0 * pad) / n;
    let line: String = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let x = pad + step * (i as f64 + 0.5);
            let y = h - pad - (h - 2.0 * pad) * p.2 as f64 / max_secs;
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ");
    html! {
        svg.chart viewBox={ "0 0 " (w) " " (h) } role="img" aria-label="Archive size (bars) and backup duration (line) per backup" {
            @for (i, p) in points.iter().enumerate() {
                @let bh = (h - 2.0 * pad) * p.1 as f64 / max_size;
                rect.bar x=(format!("{:.1}", pad + step * i as f64 + 2.0)) y=(format!("{:.1}", h - pad - bh))
                    width=(format!("{:.1}", (step - 4.0).max(1.0))) height=(format!("{:.1}", bh)) { title { (p.0) ": " (size(p.1)) } }
            }
            polyline.line points=(line) {}
            @for (i, p) in points.iter().enumerate() {
                circle.dot cx=(format!("{:.1}", pad + step * (i as f64 + 0.5)))
                    cy=(format!("{:.1}", h - pad - (h - 2.0 * pad) * p.2 as f64 / max_secs)) r="3" { title { (p.0) ": " (duration(p.2)) } }
            }
            text x="4" y="14" { "bars: archive size, up to " (size(max_size as i64)) " · line: task duration (backup or replicate), up to " (duration(max_secs as i64)) }
            text x="4" y=(format!("{:.0}", h - 5.0)) { (points.first().map(|p| p.0.as_str()).unwrap_or("")) }
            text x=(format!("{:.0}", w - 4.0)) y=(format!("{:.0}", h - 5.0)) text-anchor="end" { (points.last().map(|p| p.0.as_str()).unwrap_or("")) }
        }
    }
}

pub async fn detail(state: web::Data<AppState>, me: PageUser, path: web::Path<String>) -> Page {
    let v = svc::get(&state, &me.user, id(&path)?).await?;
    let p = &v.pair;
    let hosts = crate::service::hypervisors::list(&state, &me.user).await?;
    let host = |h: HypervisorId| hosts.iter().find(|x| x.id == h).map(|x| x.name.clone()).unwrap_or_default();
    let archives = svc::archives(&state, &me.user, p.id).await?;
    let (tasks, _) = crate::service::tasks::list(
        &state,
        &me.user,
        &TaskFilter { status: None, pair_id: Some(p.id), kind: None, limit: 50, offset: 0 },
    )
    .await?;
    let schedules: Vec<_> =
        crate::service::schedules::list(&state, &me.user).await?.into_iter().filter(|s| s.pair_id == p.id).collect();
    // Backups that made an archive: (date, archive size, duration).
    let mut points: Vec<(String, i64, i64)> = tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Succeeded && matches!(t.kind, TaskKind::Backup | TaskKind::Replicate))
        .filter_map(|t| {
            let a = archives.iter().find(|a| Some(a.id) == t.archive_id)?;
            let secs = (t.finished_at?.millis() - t.started_at?.millis()) / 1000;
            Some((when(a.created_at), a.size_bytes, secs))
        })
        .collect();
    points.reverse();
    let run = me.user.role.allows(crate::service::tasks::RUN);
    let manage = me.user.role.allows(MANAGE);
    // Only what the pair's state allows (failed over: nothing touches the old source or the live replica).
    let can = |kind: TaskKind| run && allowed_in_state(p, kind).is_ok();
    let events = crate::service::tasks::events(&state, &me.user, Some(p.id), 50).await?;
    let (dc_name, drc_name) = (
        host(p.src_hypervisor_id),
        p.dst_hypervisor_id.map(&host).unwrap_or_else(|| "the DRC host placement picks".into()),
    );
    let site = switch::Site {
        pair: p,
        dc: &dc_name,
        drc: &drc_name,
        archives: &archives,
        tasks: &tasks,
        events: &events,
        drill_boot_secs: state.settings.drill_boot.as_secs(),
    };
    let body = html! {
        h1 { (p.name) " " (rpo(&v)) " " (pair_state_badge(p.state)) }
        (switch::banner(&site))
        @if run || manage {
            div.actions {
                @if can(TaskKind::Backup) {
                    (post_button(&format!("/pairs/{}/backup", p.id), "Backup now", &me.csrf, "", None))
                }
                @if can(TaskKind::Replicate) {
                    (post_button(&format!("/pairs/{}/replicate", p.id), "Replicate now", &me.csrf, "",
                        Some("Back up the DC VM and restore it over the replica now?")))
                }
                @if can(TaskKind::Restore) {
                    (post_button(&format!("/pairs/{}/restore", p.id), "Restore", &me.csrf, "secondary",
                        Some("Restore the newest verified archive over the replica now?")))
                }
                @if manage {
                    a.button.secondary href={ "/pairs/" (p.id) "/edit" } { "Edit" }
                    (post_button(&format!("/pairs/{}/delete", p.id), "Delete", &me.csrf, "danger",
                        Some("Delete this pair and its schedules? Archives and task history are kept.")))
                }
            }
        }
        // Two columns: what the pair is and how it backs up; how well it is protected and what to do.
        div.row {
          div.col {
            div.panel {
                h2 { "Pair" }
                dl.facts {
                    dt { "DC VM" } dd { (host(p.src_hypervisor_id)) " / VM " (p.src_vmid) " (" (p.guest) ")" }
                    dt { "DRC replica" } dd {
                        @match p.dst_hypervisor_id {
                            Some(h) => (host(h)),
                            None => "placed at the first restore or failover",
                        }
                        " / VM " (p.dst_vmid)
                    }
                    dt { "Backup" } dd { (p.mode) " mode, " (p.compress) ", keep " (p.keep_last) }
                    dt { "Transfer" } dd { (p.transfer)
                        @if let Some(f) = &p.fleecing_storage { ", fleecing on " (f) } }
                    dt { "After restore" } dd { (if p.start_after_restore { "start the replica" } else { "leave it stopped" }) }
                    dt { "RPO target" } dd { (duration(p.rpo_target_secs)) }
                    dt { "Replica" } dd { @if let Some(t) = p.replica_task_id {
                            span.badge.bad { "incomplete: " a href={ "/tasks/" (t) } { "a task" } " stopped while replacing it — Restore makes it whole" } }
                        @else if p.adopted { span.badge.warn { "adopted: the next restore replaces the VM there" } }
                        @else if p.replica_archive_id.is_some() { span.badge.ok { "replica restored by drswitch" } }
                        @else { span.badge.muted { "no restore yet" } } }
                    dt { "Network map" } dd #network-map {
                        @if p.network_map.is_empty() { span.muted { "none: the replica keeps the DC bridges" } }
                        @else { (network_map_text(&p.network_map)) } }
                    dt { "Auto failover" } dd { (if p.auto_failover { "yes, when the DC host is declared down" } else { "no: an operator fails over" }) }
                    dt { "DC VM back while failed over" } dd {
                        (if p.shutdown_returned_source { "stopped by drswitch" } else { "reported, never overwritten" }) }
                }
                @if me.user.role.allows(ADOPT) && !p.adopted {
                    details {
                        summary { "The VM at the DRC target was not made by drswitch?" }
                        p.muted { "A restore refuses to replace a VM without this pair's marker. Adopt it only if it may be overwritten." }
                        (post_button(&format!("/pairs/{}/adopt", p.id), "Adopt the target VM", &me.csrf, "danger",
                            Some("Let the next restore overwrite the VM at the DRC target?")))
                    }
                }
            }
            div.panel {
                h2 { "Backups over time" }
                (charts(&points))
            }
          }
          div.col {
            (switch::assurance(&site, &v, rpo(&v)))
            @if run { (switch::actions(&me, &site)) }
          }
        }
        (switch::events(&site))
        h2 { "Archives" }
        (archive_table(&me, p.id, &archives, can(TaskKind::Restore)))
        h2 { "Schedules" }
        @if schedules.is_empty() { p.muted { "No schedule yet." } } @else {
            div.table-wrap { table {
                thead { tr { th { "Kind" } th { "When" } th { "Next run" } th { "Last result" } } }
                tbody { @for s in &schedules { tr {
                    td { (s.kind) }
                    td.mono { @match (s.hour, s.minute) { (Some(h), Some(m)) => { "daily " (format!("{h:02}:{m:02}")) } _ => { (s.cron.as_str()) } } " " (s.timezone.name()) }
                    td { @match s.next_run { Some(t) => { (when(t)) } None => { span.muted { "disabled" } } } }
                    td { (s.last_result.clone().unwrap_or_default()) }
                } } }
            } }
        }
        @if me.user.role.allows(crate::service::schedules::MANAGE) {
            (crate::web::pages::schedules::form(&me, p.id, &|_| String::new(), None))
        }
        h2 { "Recent tasks" }
        (crate::web::pages::tasks::table(&tasks, &|_| None))
    };
    Ok(page(&me, "/pairs", &p.name, body))
}

/// `restore`: the viewer may restore and the pair's state allows it.
fn archive_table(me: &PageUser, pair: PairId, archives: &[Archive], restore: bool) -> Markup {
    html! {
        @if archives.is_empty() { p.muted { "No archive yet." @if restore { " Backup now makes the first." } } } @else {
            div.table-wrap { table {
                thead { tr { th { "Archive" } th { "Taken" } th { "Size" } th { "SHA-256" } @if restore { th {} } } }
                tbody { @for a in archives { tr {
                    td.mono { (a.file_name) }
                    td { (when(a.created_at)) }
                    td { (size(a.size_bytes)) }
                    td.mono title=(a.sha256) { (a.sha256.get(..16).unwrap_or(&a.sha256)) "…" }
                    @if restore { td {
                        form method="post" action={ "/pairs/" (pair) "/restore" } data-confirm="Restore this archive over the replica now?" {
                            input type="hidden" name="csrf" value=(me.csrf);
                            input type="hidden" name="archive_id" value=(a.id);
                            button.secondary type="submit" { "Restore" }
                        }
                    } }
                } } }
            } }
        }
    }
}

#[derive(Deserialize)]
pub struct ArchiveQuery {
    pair_id: Option<String>,
}

/// Archives of every pair (or one), newest first.
pub async fn archives(state: web::Data<AppState>, me: PageUser, q: web::Query<ArchiveQuery>) -> Page {
    let pairs = svc::list(&state, &me.user).await?;
    let only = q.pair_id.as_deref().and_then(|s| s.parse::<PairId>().ok());
    let run = me.user.role.allows(crate::service::tasks::RUN);
    let mut sections = Vec::new();
    for v in pairs.iter().filter(|v| only.is_none_or(|p| p == v.pair.id)) {
        let list = svc::archives(&state, &me.user, v.pair.id).await?;
        sections.push((v, list));
    }
    let body = html! {
        h1 { "Archives" }
        @if sections.is_empty() { div.empty { "No pairs yet — " a href="/pairs/new" { "add one" } "." } }
        @for (v, list) in &sections {
            h2 { a href={ "/pairs/" (v.pair.id) } { (v.pair.name) } }
            (archive_table(&me, v.pair.id, list, run && allowed_in_state(&v.pair, TaskKind::Restore).is_ok()))
        }
    };
    Ok(page(&me, "/archives", "Archives", body))
}
