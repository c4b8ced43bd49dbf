//! Hypervisors: list, add, edit, delete, test the connection (pinning the
//! host key on first contact), and the middleware's public key to install.

use actix_session::Session;
use actix_web::web;
use maud::{html, Markup};

use crate::db::hypervisors::Hypervisor;
use crate::domain::HypervisorId;
use crate::hypervisor::proxmox::CheckReport;
use crate::service::hypervisors::{self as svc, HypervisorInput, MANAGE};
use crate::service::ServiceError;
use crate::state::AppState;
use crate::web::auth::PageUser;
use crate::web::form::{Form, Kind};
use crate::web::layout::page;
use crate::web::view::{
    after_action, again, checkbox, done, form_error, input, outcome, post_button, redirect, select, Outcome,
};
use crate::web::Page;

const FIELDS: &[(&str, Kind)] = &[
    ("name", Kind::Text),
    ("host", Kind::Text),
    ("ssh_port", Kind::Number),
    ("ssh_user", Kind::Text),
    ("node", Kind::Text),
    ("role", Kind::Text),
    ("api_port", Kind::Number),
    ("api_token_id", Kind::Clearable),
    ("api_token_secret", Kind::Secret),
    ("tls_fingerprint", Kind::Clearable),
    ("dump_dir", Kind::Text),
    ("restore_storage", Kind::Text),
    ("enabled", Kind::Flag),
    ("bwlimit_kib", Kind::OptNumber),
];

fn id(raw: &str) -> Result<HypervisorId, ServiceError> {
    crate::web::view::path_id(raw, "hypervisor")
}

/// The middleware's public key and the line that installs it on a host.
async fn pubkey_panel(state: &AppState) -> Markup {
    let key = crate::sshkey::ensure(&state.settings.ssh_dir()).await;
    html! {
        div.panel {
            h2 { "The middleware's SSH key" }
            @match key {
                Ok(k) => {
                    p.muted { "Every hypervisor must accept this key for root. Run this once on each host:" }
                    div.copy-row {
                        code #install-key { "echo '" (k.public_line) "' >> /root/.ssh/authorized_keys" }
                        button.secondary type="button" data-copy="install-key" { "Copy" }
                    }
                }
                Err(e) => { p.field-error { "No SSH key yet: " (e.to_string()) } }
            }
        }
    }
}

pub async fn list(state: web::Data<AppState>, me: PageUser) -> Page {
    let hosts = svc::list(&state, &me.user).await?;
    let can = me.user.role.allows(MANAGE);
    let body = html! {
        h1 { "Hypervisors" }
        @if can { div.actions { a.button href="/hypervisors/new" { "Add hypervisor" } } }
        @if hosts.is_empty() {
            div.empty { "No hypervisors yet — " a href="/hypervisors/new" { "add the DC host first" } ", then the DRC host." }
        } @else {
            div.table-wrap { table {
                thead { tr { th { "Name" } th { "Role" } th { "Address" } th { "Node" } th { "Host key" } th { "State" } } }
                tbody {
                    @for h in &hosts {
                        tr {
                            td { a href={ "/hypervisors/" (h.id) } { (h.name) } }
                            td { (h.role) }
                            td.mono { (h.host) ":" (h.ssh_port) }
                            td { (h.node) }
                            td { @if h.host_key_fingerprint.is_some() { span.badge.ok { "pinned" } } @else { span.badge.muted { "not checked yet" } } }
                            td { @if h.enabled { span.badge.ok { "enabled" } } @else { span.badge.warn { "disabled" } } }
                        }
                    }
                }
            } }
        }
        @if can { (pubkey_panel(&state).await) }
    };
    Ok(page(&me, "/hypervisors", "Hypervisors", body))
}

/// The add/edit form; `values` fills it, `err` marks the field at fault.
fn form(me: &PageUser, action: &str, values: &dyn Fn(&str) -> String, err: Option<&ServiceError>, new: bool) -> Markup {
    let v = |n: &str| values(n);
    let roles = [("dc".to_string(), "DC (production)".to_string()), ("drc".to_string(), "DRC (recovery)".to_string())];
    let fields: Vec<&str> = FIELDS.iter().map(|(n, _)| *n).collect();
    html! {
        @if let Some(e) = form_error(err, &fields) { div.flash.error role="alert" { (e) } }
        form.stack method="post" action=(action) {
            input type="hidden" name="csrf" value=(me.csrf);
            div.two {
                (input("Name", "name", "text", &v("name"), Some("a unique label, e.g. dc1"), err))
                (select("Role", "role", &roles, &v("role"), err))
            }
            div.two {
                (input("Host", "host", "text", &v("host"), Some("IP address or DNS name"), err))
                (input("Proxmox node name", "node", "text", &v("node"), None, err))
            }
            div.two {
                (input("SSH port", "ssh_port", "number", &v("ssh_port"), None, err))
                (input("SSH user", "ssh_user", "text", &v("ssh_user"), None, err))
            }
            div.two {
                (input("API port", "api_port", "number", &v("api_port"), None, err))
                (input("API token id", "api_token_id", "text", &v("api_token_id"), Some("e.g. root@pam!drswitch"), err))
            }
            (input("API token secret", "api_token_secret", "password", "",
                Some(if new { "write-only; stored encrypted" } else { "leave empty to keep the stored one" }), err))
            @if !new { label.check { input type="checkbox" name="forget_secret" value="true"; "Remove the stored secret" } }
            (input("TLS fingerprint", "tls_fingerprint", "text", &v("tls_fingerprint"), Some("SHA-256 of a self-signed certificate, 3A:5F:…"), err))
            div.two {
                (input("Dump directory", "dump_dir", "text", &v("dump_dir"), None, err))
                (input("Restore storage", "restore_storage", "text", &v("restore_storage"), None, err))
            }
            (input("Transfer limit (KiB/s)", "bwlimit_kib", "number", &v("bwlimit_kib"),
                Some("archives to or from this host; 0 = no limit, empty = the TRANSFER_BWLIMIT_KIB setting"), err))
            (checkbox("Enabled", "enabled", v("enabled") != "false"))
            div.actions { button type="submit" { (if new { "Add hypervisor" } else { "Save" }) } a.button.secondary href="/hypervisors" { "Back" } }
        }
    }
}

fn defaults(name: &str) -> String {
    match name {
        "ssh_port" => "22",
        "ssh_user" => "root",
        "api_port" => "8006",
        "dump_dir" => "/var/lib/vz/dump",
        "restore_storage" => "local-lvm",
        "role" => "dc",
        "enabled" => "true",
        _ => "",
    }
    .to_string()
}

fn current(h: &Hypervisor) -> impl Fn(&str) -> String + '_ {
    move |name| match name {
        "name" => h.name.clone(),
        "host" => h.host.to_string(),
        "ssh_port" => h.ssh_port.to_string(),
        "ssh_user" => h.ssh_user.to_string(),
        "node" => h.node.to_string(),
        "role" => h.role.to_string(),
        "api_port" => h.api_port.to_string(),
        "api_token_id" => h.api_token_id.as_ref().map(|t| t.to_string()).unwrap_or_default(),
        "tls_fingerprint" => h.tls_fingerprint.as_ref().map(|t| t.to_string()).unwrap_or_default(),
        "dump_dir" => h.dump_dir.to_string(),
        "restore_storage" => h.restore_storage.to_string(),
        "enabled" => h.enabled.to_string(),
        "bwlimit_kib" => h.bwlimit_kib.map(|n| n.to_string()).unwrap_or_default(),
        _ => String::new(),
    }
}

pub async fn new_form(me: PageUser) -> Page {
    crate::service::require(&me.user, MANAGE)?;
    Ok(page(
        &me,
        "/hypervisors",
        "Add hypervisor",
        html! { h1 { "Add hypervisor" } div.panel { (form(&me, "/hypervisors", &defaults, None, true)) } },
    ))
}

pub async fn create(state: web::Data<AppState>, me: PageUser, session: Session, f: Form) -> Page {
    let result = async { svc::create(&state, &me.user, f.input::<HypervisorInput>(FIELDS)?).await }.await;
    match outcome(result)? {
        Outcome::Done(h) => done(
            &session,
            format!("Hypervisor {} added. Test the connection to pin its SSH host key.", h.name),
            &format!("/hypervisors/{}", h.id),
        ),
        Outcome::Again(e) => {
            let values = f.values();
            let body =
                html! { h1 { "Add hypervisor" } div.panel { (form(&me, "/hypervisors", &values, Some(&e), true)) } };
            again(page(&me, "/hypervisors", "Add hypervisor", body))
        }
    }
}

fn check_report(r: &CheckReport) -> Markup {
    let row = |what: &str, ok: bool, msg: &str| {
        html! { tr { td { (what) } td { @if ok { span.badge.ok { "ok" } } @else { span.badge.bad { "failed" } } } td { (msg) } } }
    };
    html! {
        div.panel #check-report {
            h2 { "Connection test " @if r.ok { span.badge.ok { "all good" } } @else { span.badge.bad { "problems found" } } }
            div.table-wrap { table {
                tbody {
                    (row("Host key", r.host_key.ok, &r.host_key.message))
                    (row("SSH", r.ssh.ok, &r.ssh.message))
                    (row("Proxmox API", r.api.ok, &r.api.message))
                    (row("Node name", r.node.ok, &r.node.message))
                }
            } }
            @if let Some(fp) = &r.host_key_fingerprint { p { "Host key fingerprint: " code { (fp) } } }
            @if let Some(fp) = &r.tls_fingerprint { p { "TLS certificate fingerprint: " code { (fp) } } }
        }
    }
}

async fn detail_page(state: &AppState, me: &PageUser, raw: &str, report: Option<&CheckReport>) -> Page {
    let h = svc::get(state, &me.user, id(raw)?).await?;
    let can = me.user.role.allows(MANAGE);
    let pairs = state.db.count_pairs_using(h.id).await.map_err(ServiceError::from)?;
    let health = super::health::section(state, me, &h).await?;
    let body = html! {
        h1 { (h.name) " " span.badge.info { (h.role) } }
        @if can {
            div.actions {
                (post_button(&format!("/hypervisors/{}/check", h.id), "Test connection", &me.csrf, "", None))
                a.button.secondary href={ "/hypervisors/" (h.id) "/edit" } { "Edit" }
                (post_button(&format!("/hypervisors/{}/delete", h.id), "Delete", &me.csrf, "danger",
                    Some("Delete this hypervisor? drswitch forgets it; nothing on the host changes.")))
            }
        }
        @if let Some(r) = report { (check_report(r)) }
        (health)
        div.panel {
            h2 { "Configuration" }
            dl.facts {
                dt { "Address" } dd.mono { (h.host) ":" (h.ssh_port) " (ssh user " (h.ssh_user) ")" }
                dt { "Proxmox node" } dd { (h.node) }
                dt { "API" } dd.mono { "https://" (h.host) ":" (h.api_port) }
                dt { "API token" } dd { (h.api_token_id.as_ref().map(|t| t.to_string()).unwrap_or_else(|| "none".into()))
                    @if h.has_api_token_secret { " (secret stored)" } }
                dt { "Transfer limit" } dd { @match h.bwlimit_kib { Some(0) => "none", Some(n) => { (n) " KiB/s" } None => "the TRANSFER_BWLIMIT_KIB setting" } }
                dt { "TLS pin" } dd.mono { (h.tls_fingerprint.as_ref().map(|t| t.to_string()).unwrap_or_else(|| "none (system trust)".into())) }
                dt { "SSH host key" } dd { @match &h.host_key_fingerprint {
                    Some(fp) => { code { (fp) } }
                    None => { span.badge.muted { "not checked yet" } " — use Test connection to pin it" }
                } }
                dt { "Dump directory" } dd.mono { (h.dump_dir) }
                dt { "Restore storage" } dd.mono { (h.restore_storage) }
                dt { "Enabled" } dd { (if h.enabled { "yes" } else { "no" }) }
                dt { "Pairs using it" } dd { (pairs) }
            }
        }
        @if can && h.host_key_fingerprint.is_some() {
            div.panel {
                h2 { "Re-pin the host key" }
                p.muted { "Only if the host was reinstalled and you have compared the new fingerprint on its console. \
                    A changed key otherwise means someone else may be answering at this address." }
                form method="post" action={ "/hypervisors/" (h.id) "/check" } data-confirm="Trust the key the host presents now?" {
                    input type="hidden" name="csrf" value=(me.csrf);
                    input type="hidden" name="repin" value="true";
                    button.danger type="submit" { "Re-pin host key" }
                }
            }
        }
    };
    Ok(page(me, "/hypervisors", &h.name, body))
}

/// The report of the last connection test, shown once after the redirect.
const SESSION_REPORT: &str = "check_report";

pub async fn detail(state: web::Data<AppState>, me: PageUser, session: Session, path: web::Path<String>) -> Page {
    let report = session.remove_as::<CheckReport>(SESSION_REPORT).and_then(Result::ok);
    detail_page(&state, &me, &path, report.as_ref()).await
}

/// Runs the test, then shows the hypervisor's page with its report (a
/// reload of that page does not test again).
pub async fn check(
    state: web::Data<AppState>,
    me: PageUser,
    session: Session,
    path: web::Path<String>,
    f: Form,
) -> Page {
    let hid = id(&path)?;
    let repin = f.get("repin") == Some("true");
    let report = svc::check(&state, &me.user, hid, repin).await?;
    session.insert(SESSION_REPORT, &report).map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok(redirect(&format!("/hypervisors/{hid}")))
}

pub async fn edit_form(state: web::Data<AppState>, me: PageUser, path: web::Path<String>) -> Page {
    crate::service::require(&me.user, MANAGE)?;
    let h = svc::get(&state, &me.user, id(&path)?).await?;
    let values = current(&h);
    let body = html! { h1 { "Edit " (h.name) } div.panel { (form(&me, &format!("/hypervisors/{}", h.id), &values, None, false)) } };
    Ok(page(&me, "/hypervisors", "Edit hypervisor", body))
}

pub async fn update(
    state: web::Data<AppState>,
    me: PageUser,
    session: Session,
    path: web::Path<String>,
    f: Form,
) -> Page {
    let hid = id(&path)?;
    let result = async {
        let mut input = f.input::<HypervisorInput>(FIELDS)?;
        if f.get("forget_secret") == Some("true") {
            input.api_token_secret = Some(None);
        }
        svc::update(&state, &me.user, hid, input).await
    }
    .await;
    match outcome(result)? {
        Outcome::Done(h) => done(&session, format!("Hypervisor {} saved.", h.name), &format!("/hypervisors/{}", h.id)),
        Outcome::Again(e) => {
            let values = f.values();
            let body = html! { h1 { "Edit hypervisor" } div.panel { (form(&me, &format!("/hypervisors/{hid}"), &values, Some(&e), false)) } };
            again(page(&me, "/hypervisors", "Edit hypervisor", body))
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
    let hid = id(&path)?;
    let result = svc::delete(&state, &me.user, hid).await;
    after_action(&session, result, "Hypervisor deleted.", "/hypervisors", &format!("/hypervisors/{hid}"))
}
