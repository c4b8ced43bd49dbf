//! Recovery plans: the list with the "Add plan" form (groups typed one per
//! line, pairs by name or id), and a plan's page with its groups, its runs
//! (refreshed while one runs) and the `Fail over`, `Run drill`, `Edit` and
//! `Delete` actions. Pair names are resolved to ids here; the service only
//! ever sees ids, as the API does.

use actix_session::Session;
use actix_web::web;
use maud::{html, Markup};
use serde_json::Value;
use uuid::Uuid;

use crate::db::plans::{ItemStatus, Plan, PlanAction, PlanRun, RunStatus};
use crate::domain::PairId;
use crate::service::pairs::PairView;
use crate::service::plans::{self as svc, PlanInput, MANAGE, RUN};
use crate::service::ServiceError;
use crate::state::AppState;
use crate::web::auth::{flash, PageUser};
use crate::web::form::{Form, Kind};
use crate::web::layout::page;
use crate::web::view::{
    after_action, again, done, duration, form_error, input, outcome, post_button, redirect, textarea, when, Outcome,
};
use crate::web::Page;

const FIELDS: &[(&str, Kind)] = &[("name", Kind::Text), ("delay_secs", Kind::Number)];

fn id(raw: &str) -> Result<Uuid, ServiceError> {
    crate::web::view::path_id(raw, "plan")
}

/// A pair's name for people, or its id if the pair is gone.
fn pair_name(pairs: &[PairView], id: PairId) -> String {
    pairs.iter().find(|v| v.pair.id == id).map(|v| v.pair.name.clone()).unwrap_or_else(|| id.to_string())
}

/// The groups as typed in the textarea: one group per line, pairs by name
/// or id separated by commas. A name must be a pair's exact name (or, if
/// none is, one pair's name in any case); a name two pairs share needs the id.
fn resolve_groups(text: &str, pairs: &[PairView]) -> Result<Value, ServiceError> {
    let bad = |m: String| ServiceError::invalid("groups", m);
    let mut groups = Vec::new();
    for (i, line) in text.lines().map(str::trim).filter(|l| !l.is_empty()).enumerate() {
        let n = i + 1;
        let mut ids = Vec::new();
        for token in line.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let id = match token.parse::<PairId>() {
                // The service says whether such a pair exists.
                Ok(id) => id,
                Err(_) => {
                    let mut named: Vec<&PairView> = pairs.iter().filter(|v| v.pair.name == token).collect();
                    if named.is_empty() {
                        named = pairs.iter().filter(|v| v.pair.name.eq_ignore_ascii_case(token)).collect();
                    }
                    match named.as_slice() {
                        [one] => one.pair.id,
                        [] => return Err(bad(format!("group {n}: no pair is named {token:?}"))),
                        many => {
                            return Err(bad(format!(
                                "group {n}: {} pairs are named {token:?}; give that pair's id instead",
                                many.len()
                            )))
                        }
                    }
                }
            };
            ids.push(Value::String(id.to_string()));
        }
        groups.push(Value::Array(ids));
    }
    Ok(Value::Array(groups))
}

/// The groups as the textarea shows them: names where a name is the
/// pair's alone and reads back as itself, ids otherwise.
fn groups_text(plan: &Plan, pairs: &[PairView]) -> String {
    let token = |id: PairId| match pairs.iter().find(|v| v.pair.id == id) {
        Some(v)
            if !v.pair.name.contains(',')
                && v.pair.name.parse::<PairId>().is_err()
                && pairs.iter().filter(|o| o.pair.name.eq_ignore_ascii_case(&v.pair.name)).count() == 1 =>
        {
            v.pair.name.clone()
        }
        _ => id.to_string(),
    };
    plan.groups
        .iter()
        .map(|g| g.iter().map(|p| token(*p)).collect::<Vec<_>>().join(", "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The posted form as the service's input, the groups resolved to ids.
fn plan_input(f: &Form, pairs: &[PairView]) -> Result<PlanInput, ServiceError> {
    let mut json = f.json(FIELDS)?;
    if f.fields.iter().any(|(k, _)| k == "groups") {
        let groups = resolve_groups(f.raw("groups").unwrap_or_default(), pairs)?;
        if let Value::Object(map) = &mut json {
            map.insert("groups".into(), groups);
        }
    }
    crate::service::input::decode(json)
}

/// The add/edit form.
fn form(
    me: &PageUser,
    action: &str,
    values: &dyn Fn(&str) -> String,
    err: Option<&ServiceError>,
    pairs: &[PairView],
    new: bool,
) -> Markup {
    let v = |n: &str| values(n);
    let fields = ["name", "delay_secs", "groups"];
    let names: Vec<&str> = pairs.iter().map(|p| p.pair.name.as_str()).take(30).collect();
    html! {
        @if let Some(e) = form_error(err, &fields) { div.flash.error role="alert" { (e) } }
        form.stack method="post" action=(action) {
            input type="hidden" name="csrf" value=(me.csrf);
            (input("Name", "name", "text", &v("name"), Some("e.g. erp"), err))
            (input("Delay between groups (seconds)", "delay_secs", "number", &v("delay_secs"),
                Some("0–86400; counted from the end of the last task of a group"), err))
            (textarea("Groups", "groups", &v("groups"),
                Some("one group per line, in the order they run; pair names or ids separated by commas"), err))
            @if !names.is_empty() {
                p.muted { "Pairs: " (names.join(", ")) @if pairs.len() > names.len() { ", …" } }
            }
            div.actions {
                button type="submit" { (if new { "Add plan" } else { "Save" }) }
                @if !new { a.button.secondary href=(action) { "Back" } }
            }
        }
    }
}

fn defaults(name: &str) -> String {
    match name {
        "delay_secs" => svc::DEFAULT_DELAY_SECS.to_string(),
        _ => String::new(),
    }
}

fn run_badge(s: RunStatus) -> Markup {
    let class = match s {
        RunStatus::Running => "info",
        RunStatus::Succeeded => "ok",
        RunStatus::Failed => "bad",
    };
    html! { span class={ "badge " (class) } data-status=(s) { (s) } }
}

fn item_badge(s: ItemStatus) -> Markup {
    let (class, text) = match s {
        ItemStatus::Pending => ("muted", "pending"),
        ItemStatus::Queued => ("warn", "queued"),
        ItemStatus::Running => ("info", "running"),
        ItemStatus::Succeeded => ("ok", "succeeded"),
        ItemStatus::Failed => ("bad", "failed"),
        ItemStatus::Cancelled => ("muted", "cancelled"),
    };
    html! { span class={ "badge " (class) } { (text) } }
}

fn action_word(a: PlanAction) -> &'static str {
    match a {
        PlanAction::Failover => "Failover",
        PlanAction::Drill => "Drill",
    }
}

async fn build_list(state: &AppState, me: &PageUser, form_part: Option<Markup>) -> Result<Markup, ServiceError> {
    let plans = svc::list(state, &me.user).await?;
    let pairs = crate::service::pairs::list(state, &me.user).await?;
    let form_part = match form_part {
        Some(f) => Some(f),
        None if me.user.role.allows(MANAGE) && !pairs.is_empty() => {
            Some(form(me, "/plans", &defaults, None, &pairs, true))
        }
        None => None,
    };
    Ok(html! {
        h1 { "Recovery plans" }
        p.muted { "A plan fails over (or drills) its pairs group by group: the pairs of a group side by side, the next group once every task of the one before has ended and the plan's delay has passed." }
        @if plans.is_empty() {
            div.empty { "No plans yet." @if pairs.is_empty() { " A plan needs " a href="/pairs" { "pairs" } " first." } }
        } @else {
            div.table-wrap { table {
                thead { tr { th { "Name" } th { "Groups" } th { "Pairs" } th { "Delay" } th { "Last run" } } }
                tbody { @for s in &plans { tr {
                    td { a href={ "/plans/" (s.plan.id) } { (s.plan.name) } }
                    td { (s.plan.groups.len()) }
                    td { (s.plan.groups.iter().map(Vec::len).sum::<usize>()) }
                    td { (duration(s.plan.delay_secs)) }
                    td { @match &s.last_run {
                        Some(r) => { (action_word(r.action)) " " (run_badge(r.status)) " " span.muted { (when(r.started_at)) } }
                        None => { span.muted { "never run" } }
                    } }
                } } }
            } }
        }
        @if let Some(f) = form_part {
            div.panel #plan-form { h2 { "Add plan" } (f) }
        }
    })
}

pub async fn list(state: web::Data<AppState>, me: PageUser) -> Page {
    let body = build_list(&state, &me, None).await?;
    Ok(page(&me, "/plans", "Plans", body))
}

pub async fn create(state: web::Data<AppState>, me: PageUser, session: Session, f: Form) -> Page {
    let pairs = crate::service::pairs::list(&state, &me.user).await?;
    let result = async { svc::create(&state, &me.user, plan_input(&f, &pairs)?).await }.await;
    match outcome(result)? {
        Outcome::Done(d) => done(&session, format!("Plan {} added.", d.plan.name), &format!("/plans/{}", d.plan.id)),
        Outcome::Again(e) => {
            let values = f.values();
            let part = form(&me, "/plans", &values, Some(&e), &pairs, true);
            let body = build_list(&state, &me, Some(part)).await?;
            again(page(&me, "/plans", "Plans", body))
        }
    }
}

/// A run: what it did, where it stands, and each group's pairs with their tasks.
fn run_view(run: &PlanRun, pairs: &[PairView]) -> Markup {
    let total = run.groups.len();
    html! {
        div.panel.plan-run data-run=(run.id) {
            h3 {
                (action_word(run.action)) " " (run_badge(run.status))
                @if run.force { " " span.badge.warn { "forced" } }
            }
            p.muted {
                "Started " (when(run.started_at)) " by " (run.requested_by)
                @match run.finished_at {
                    Some(t) => { " · ended " (when(t)) " after " (duration((t.millis() - run.started_at.millis()).max(0) / 1000)) }
                    None => {
                        " · group " (run.current_group) " of " (total)
                        @if let Some(t) = run.next_group_at { " · group " (run.current_group + 1) " starts at " (when(t)) }
                    }
                }
            }
            div.table-wrap { table {
                thead { tr { th { "Group" } th { "Started" } th { "Ended" } th { "Pairs" } } }
                tbody { @for g in &run.groups { tr {
                    td { (g.number) }
                    td.nowrap { @match g.started_at { Some(t) => { (when(t)) } None => { span.muted { "waiting" } } } }
                    td.nowrap { @if let Some(t) = g.ended_at { (when(t)) } }
                    td { ul.plain { @for t in &g.tasks { li {
                        a href={ "/pairs/" (t.pair_id) } { (pair_name(pairs, t.pair_id)) } " "
                        @match t.task_id {
                            Some(task) => { a href={ "/tasks/" (task) } { (item_badge(t.status)) } }
                            None => { (item_badge(t.status)) }
                        }
                        @if let Some(e) = &t.error { " " span.muted { (e) } }
                    } } } }
                } } }
            } }
        }
    }
}

/// The runs, refreshing themselves while one runs.
fn runs_part(plan_id: Uuid, runs: &[PlanRun], pairs: &[PairView]) -> Markup {
    let running = runs.iter().any(|r| r.status == RunStatus::Running);
    let me_url = format!("/plans/{plan_id}");
    html! {
        @if running {
            div #plan-runs hx-get=(me_url) hx-select="#plan-runs" hx-target="this" hx-swap="outerHTML" hx-trigger="every 2s" {
                @for r in runs { (run_view(r, pairs)) }
            }
        } @else {
            div #plan-runs {
                @if runs.is_empty() { p.muted { "Not run yet." } }
                @for r in runs { (run_view(r, pairs)) }
            }
        }
    }
}

/// `Fail over` and `Run drill`, each saying what it will do, while no run
/// of the plan runs.
fn start_actions(me: &PageUser, plan: &Plan, running: Option<&PlanRun>) -> Markup {
    let pairs: usize = plan.groups.iter().map(Vec::len).sum();
    let order = format!(
        "{} pairs of plan {} in {} groups, {} between groups",
        pairs,
        plan.name,
        plan.groups.len(),
        duration(plan.delay_secs)
    );
    let failover_q = format!(
        "Fails over the {order}: each DC VM is stopped (shutdown, then stop, onboot 0) and its replica started on the \
         DRC as the live copy."
    );
    let drill_q = format!(
        "Runs a DR drill of the {order}: each pair's newest verified archive is restored on the DRC as an isolated drill \
         VM (new MAC addresses, network links down), checked, then destroyed. Replicas and DC VMs are not touched. Continue?"
    );
    html! {
        @match running {
            Some(r) => { p { span.badge.info { (r.action) " running" } " — the plan can run again once it has ended." } }
            None => {
                form method="post" action={ "/plans/" (plan.id) "/failover" }
                    data-confirm=(format!("{failover_q} Continue?"))
                    data-confirm-forced=(format!("{failover_q} Where a DC VM cannot be fenced its replica starts anyway, and both copies may run at once. Continue?")) {
                    input type="hidden" name="csrf" value=(me.csrf);
                    button.danger type="submit" { "Fail over" }
                    " "
                    label.check { input type="checkbox" name="force" value="true"; "Go on where a DC VM cannot be fenced" }
                }
                (post_button(&format!("/plans/{}/drill", plan.id), "Run drill", &me.csrf, "secondary", Some(&drill_q)))
            }
        }
    }
}

pub async fn detail(state: web::Data<AppState>, me: PageUser, path: web::Path<String>) -> Page {
    let d = svc::get(&state, &me.user, id(&path)?).await?;
    let pairs = crate::service::pairs::list(&state, &me.user).await?;
    let plan = &d.plan;
    let running = d.runs.iter().find(|r| r.status == RunStatus::Running);
    let run = me.user.role.allows(RUN);
    let manage = me.user.role.allows(MANAGE);
    let text = groups_text(plan, &pairs);
    let current = |n: &str| match n {
        "name" => plan.name.clone(),
        "delay_secs" => plan.delay_secs.to_string(),
        "groups" => text.clone(),
        _ => String::new(),
    };
    let body = html! {
        h1 { "Plan " (plan.name) }
        @if run || manage {
            div.actions {
                @if run { (start_actions(&me, plan, running)) }
                @if manage {
                    (post_button(&format!("/plans/{}/delete", plan.id), "Delete", &me.csrf, "danger",
                        Some(&format!("Delete plan {} and its run history? The pairs and their tasks stay.", plan.name))))
                }
            }
        }
        div.panel {
            h2 { "Groups" }
            p.muted { "Group by group, " (duration(plan.delay_secs)) " after every task of a group has ended; the pairs of a group side by side." }
            ol.plan-groups { @for g in &plan.groups { li {
                @for (i, p) in g.iter().enumerate() {
                    @if i > 0 { ", " }
                    a href={ "/pairs/" (p) } { (pair_name(&pairs, *p)) }
                }
            } } }
        }
        h2 { "Runs" }
        (runs_part(plan.id, &d.runs, &pairs))
        @if manage {
            details.panel {
                summary { "Edit" }
                (form(&me, &format!("/plans/{}", plan.id), &current, None, &pairs, false))
            }
        }
    };
    Ok(page(&me, "/plans", &plan.name, body))
}

pub async fn update(
    state: web::Data<AppState>,
    me: PageUser,
    session: Session,
    path: web::Path<String>,
    f: Form,
) -> Page {
    let pid = id(&path)?;
    let pairs = crate::service::pairs::list(&state, &me.user).await?;
    let result = async { svc::update(&state, &me.user, pid, plan_input(&f, &pairs)?).await }.await;
    match outcome(result)? {
        Outcome::Done(d) => done(&session, format!("Plan {} saved.", d.plan.name), &format!("/plans/{pid}")),
        Outcome::Again(e) => {
            let values = f.values();
            let body = html! {
                h1 { "Edit plan" }
                div.panel { (form(&me, &format!("/plans/{pid}"), &values, Some(&e), &pairs, false)) }
            };
            again(page(&me, "/plans", "Edit plan", body))
        }
    }
}

async fn start(state: &AppState, me: &PageUser, session: &Session, raw: &str, action: PlanAction, f: &Form) -> Page {
    let pid = id(raw)?;
    let force = action == PlanAction::Failover && matches!(f.get("force"), Some("true" | "on"));
    match svc::start(state, &me.user, pid, action, force).await {
        Ok(r) => {
            let queued = r.groups.first().map(|g| g.tasks.iter().filter(|t| t.task_id.is_some()).count()).unwrap_or(0);
            flash(
                session,
                "ok",
                format!(
                    "{} of plan {} started: {queued} task(s) of group 1 of {} queued.",
                    action_word(action),
                    r.plan_name,
                    r.groups.len()
                ),
            );
        }
        Err(e @ (ServiceError::Conflict(_) | ServiceError::Invalid { .. })) => flash(session, "error", e.to_string()),
        Err(e) => return Err(e.into()),
    }
    Ok(redirect(&format!("/plans/{pid}")))
}

pub async fn failover(
    state: web::Data<AppState>,
    me: PageUser,
    session: Session,
    path: web::Path<String>,
    f: Form,
) -> Page {
    start(&state, &me, &session, &path, PlanAction::Failover, &f).await
}

pub async fn drill(
    state: web::Data<AppState>,
    me: PageUser,
    session: Session,
    path: web::Path<String>,
    f: Form,
) -> Page {
    start(&state, &me, &session, &path, PlanAction::Drill, &f).await
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
        "Plan deleted; its pairs and their tasks are kept.",
        "/plans",
        &format!("/plans/{pid}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_lines_of_comma_separated_pairs() {
        let id = PairId::new();
        let v = resolve_groups(&format!(" {id} , \r\n\r\n{id}\n"), &[]).unwrap();
        assert_eq!(v, serde_json::json!([[id.to_string()], [id.to_string()]]));
        let err = resolve_groups("web01", &[]).unwrap_err();
        assert!(err.to_string().starts_with("groups: group 1: no pair is named"), "{err}");
    }
}
