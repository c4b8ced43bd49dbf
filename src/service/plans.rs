//! Recovery plans (SPEC §5.3, SRM's priority groups): ordered groups of
//! pairs failed over or drilled together, with a pause between groups.
//! Every rule of a plan and of a run lives here: `start` records the run
//! and queues group 1 at once; `advance` (called each round by the runner,
//! `crate::plans`) queues the next group once every task of the current
//! one has ended and the delay has passed since, and ends the run. Tasks
//! are queued through the same checks as a single task and `queue::enqueue`;
//! nothing here runs a task.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::audit::{self, subject};
use super::input::{label, required};
use super::{require, ServiceError, ServiceResult};
use crate::db::plans::{ItemStatus, NewRun, Plan, PlanAction, PlanFields, PlanRun, RunStatus};
use crate::db::tasks::Task;
use crate::db::users::User;
use crate::db::DbError;
use crate::domain::{PairId, Role, TaskKind, Timestamp};
use crate::state::AppState;

/// Who may create, change and delete plans.
pub const MANAGE: Role = Role::Operator;
/// Who may start a plan's failover or drill: whoever may queue the tasks.
pub const RUN: Role = super::tasks::RUN;
/// Runs shown with a plan, newest first.
pub const RUNS_SHOWN: i64 = 10;
pub const MAX_GROUPS: usize = 20;
pub const MAX_GROUP_PAIRS: usize = 100;
pub const MAX_DELAY_SECS: i64 = 86_400;
pub const DEFAULT_DELAY_SECS: i64 = 60;
/// Pairs of a started group still pending this long after its start were
/// left by an interrupted start (a crash, a request cut off): the runner
/// finds their tasks or queues them.
const SETTLE_AFTER_MS: i64 = 15_000;

/// A plan's fields. On create `name` and `groups` are required; on update
/// every field is optional and what is given replaces the old value.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanInput {
    #[schema(value_type = Option<super::input::doc::Label>)]
    pub name: Option<String>,
    /// Seconds between the end of one group and the start of the next
    /// (0 to 86400; default 60).
    #[schema(minimum = 0, maximum = 86_400)]
    pub delay_secs: Option<i64>,
    /// The groups in the order they run, each a list of pair ids:
    /// `[["<pair id>", "<pair id>"], ["<pair id>"]]`; 1 to 20 groups of 1 to
    /// 100 pairs, each pair at most once.
    #[schema(value_type = Option<PlanGroups>)]
    pub groups: Option<serde_json::Value>,
}

/// `groups` as `check_groups` reads it, for the API document.
pub struct PlanGroups;
crate::domain::documented!(
    PlanGroups,
    serde_json::json!({"type": "array", "minItems": 1, "maxItems": MAX_GROUPS,
        "items": {"type": "array", "minItems": 1, "maxItems": MAX_GROUP_PAIRS, "uniqueItems": true,
            "items": {"type": "string", "format": "uuid"}}})
);

impl super::input::Input for PlanInput {
    fn rules() -> super::input::CreateRules {
        super::input::CreateRules { required: &["name", "groups"], create: None, update: None }
    }
}

/// A plan with its newest runs.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PlanDetail {
    #[serde(flatten)]
    pub plan: Plan,
    /// Newest first, at most 10.
    pub runs: Vec<PlanRun>,
}

/// A plan with its newest run, for lists.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PlanSummary {
    #[serde(flatten)]
    pub plan: Plan,
    pub last_run: Option<PlanRun>,
}

fn delay(n: i64) -> ServiceResult<i64> {
    if (0..=MAX_DELAY_SECS).contains(&n) {
        Ok(n)
    } else {
        Err(ServiceError::invalid("delay_secs", format!("must be from 0 to {MAX_DELAY_SECS} seconds")))
    }
}

/// The groups as pair ids: a list of 1–20 lists of 1–100 ids of existing
/// pairs, no pair twice. Every complaint names `groups`.
async fn check_groups(state: &AppState, raw: &serde_json::Value) -> ServiceResult<Vec<Vec<PairId>>> {
    let bad = |m: String| ServiceError::invalid("groups", m);
    let outer = raw.as_array().ok_or_else(|| bad("must be a list of groups, each a list of pair ids".into()))?;
    if outer.is_empty() || outer.len() > MAX_GROUPS {
        return Err(bad(format!("must hold from 1 to {MAX_GROUPS} groups")));
    }
    let pairs: HashSet<PairId> = state.db.list_pairs().await?.into_iter().map(|p| p.id).collect();
    let mut seen = HashSet::new();
    let mut groups = Vec::with_capacity(outer.len());
    for (i, group) in outer.iter().enumerate() {
        let n = i + 1;
        let list = group.as_array().ok_or_else(|| bad(format!("group {n} must be a list of pair ids")))?;
        if list.is_empty() || list.len() > MAX_GROUP_PAIRS {
            return Err(bad(format!("group {n} must hold from 1 to {MAX_GROUP_PAIRS} pairs")));
        }
        let mut ids = Vec::with_capacity(list.len());
        for v in list {
            let s = v.as_str().ok_or_else(|| bad(format!("group {n}: every pair id must be a string")))?;
            let id: PairId = s.trim().parse().map_err(|_| bad(format!("group {n}: {s:?} is not a pair id")))?;
            if !pairs.contains(&id) {
                return Err(ServiceError::clash("groups", format!("group {n}: no pair has the id {id}")));
            }
            if !seen.insert(id) {
                return Err(bad(format!("group {n}: pair {id} is already in this plan; a pair may be in a plan once")));
            }
            ids.push(id);
        }
        groups.push(ids);
    }
    Ok(groups)
}

/// A name clash names the field; any other clash is a conflict.
fn clash(e: DbError) -> ServiceError {
    match e {
        DbError::Conflict(m) if m.contains("name") => ServiceError::Taken { field: "name".into(), message: m },
        other => other.into(),
    }
}

pub async fn load(state: &AppState, id: Uuid) -> ServiceResult<Plan> {
    state.db.plan(id).await?.ok_or(ServiceError::NotFound("plan"))
}

/// Every plan by name, each with its newest run.
pub async fn list(state: &AppState, actor: &User) -> ServiceResult<Vec<PlanSummary>> {
    require(actor, Role::Viewer)?;
    let mut latest = state.db.latest_plan_runs().await?;
    Ok(state
        .db
        .list_plans()
        .await?
        .into_iter()
        .map(|plan| {
            let last_run = latest.iter().position(|r| r.plan_id == plan.id).map(|i| latest.swap_remove(i));
            PlanSummary { plan, last_run }
        })
        .collect())
}

pub async fn get(state: &AppState, actor: &User, id: Uuid) -> ServiceResult<PlanDetail> {
    require(actor, Role::Viewer)?;
    let plan = load(state, id).await?;
    let runs = state.db.list_plan_runs(plan.id, RUNS_SHOWN).await?;
    Ok(PlanDetail { plan, runs })
}

pub async fn create(state: &AppState, actor: &User, b: PlanInput) -> ServiceResult<PlanDetail> {
    require(actor, MANAGE)?;
    let name = label("name", &required("name", b.name)?)?;
    let delay_secs = delay(b.delay_secs.unwrap_or(DEFAULT_DELAY_SECS))?;
    let groups = check_groups(state, &required("groups", b.groups)?).await?;
    let detail = format!("name {name:?}");
    let id = state.db.insert_plan(&PlanFields { name, delay_secs, groups }).await.map_err(clash)?;
    tracing::info!(by = %actor.username, plan = %id, "plan created");
    audit::record(state, &actor.username, "plan.create", subject("plan", id), &detail).await;
    get(state, actor, id).await
}

/// Changes the fields given. A run already started keeps the plan as it
/// was when it started.
pub async fn update(state: &AppState, actor: &User, id: Uuid, b: PlanInput) -> ServiceResult<PlanDetail> {
    require(actor, MANAGE)?;
    let plan = load(state, id).await?;
    let before = plan.clone();
    let name = match b.name {
        Some(n) => label("name", &n)?,
        None => plan.name,
    };
    let delay_secs = delay(b.delay_secs.unwrap_or(plan.delay_secs))?;
    let groups = match b.groups {
        Some(g) => check_groups(state, &g).await?,
        None => plan.groups,
    };
    if !state.db.update_plan(id, &PlanFields { name, delay_secs, groups }).await.map_err(clash)? {
        return Err(ServiceError::NotFound("plan"));
    }
    tracing::info!(by = %actor.username, plan = %id, "plan updated");
    let detail = audit::changes(&before, &load(state, id).await?, &[]);
    audit::record(state, &actor.username, "plan.update", subject("plan", id), &detail).await;
    get(state, actor, id).await
}

/// Deletes the plan and its run history; the pairs and their tasks stay.
pub async fn delete(state: &AppState, actor: &User, id: Uuid) -> ServiceResult<()> {
    require(actor, MANAGE)?;
    let plan = load(state, id).await?;
    if !state.db.delete_plan(plan.id).await? {
        return Err(ServiceError::Conflict(format!(
            "A run of plan {} is running; wait for it to end before deleting the plan.",
            plan.name
        )));
    }
    tracing::info!(by = %actor.username, plan = %id, "plan deleted");
    audit::record(state, &actor.username, "plan.delete", subject("plan", id), &format!("name {:?}", plan.name)).await;
    Ok(())
}

/// Starts a failover or drill of the whole plan: records the run and
/// queues group 1 at once; the runner does the rest. `force` lets each
/// failover go on where the DC VM cannot be fenced.
pub async fn start(
    state: &AppState,
    actor: &User,
    id: Uuid,
    action: PlanAction,
    force: bool,
) -> ServiceResult<PlanRun> {
    require(actor, RUN)?;
    if force && action != PlanAction::Failover {
        return Err(ServiceError::invalid("force", "only a failover can be forced"));
    }
    let plan = load(state, id).await?;
    let new = NewRun { plan: &plan, action, force, requested_by: &actor.username };
    let run_id = state.db.insert_plan_run(&new).await?.ok_or_else(|| {
        ServiceError::Conflict(format!("A run of plan {} is already running; wait for it to end.", plan.name))
    })?;
    tracing::info!(by = %actor.username, plan = %plan.name, run = %run_id, %action, "plan run started");
    let detail = format!("name {:?}, run {run_id}{}", plan.name, if force { ", forced" } else { "" });
    audit::record(state, &actor.username, &format!("plan.{action}"), subject("plan", plan.id), &detail).await;
    let run = load_run(state, run_id).await?;
    queue_group(state, &run, 1, false).await?;
    load_run(state, run_id).await
}

async fn load_run(state: &AppState, id: Uuid) -> ServiceResult<PlanRun> {
    state.db.plan_run(id).await?.ok_or(ServiceError::NotFound("plan run"))
}

/// Who the run's tasks say asked for them: the user and the plan.
fn task_requester(run: &PlanRun) -> String {
    format!("{} (plan {})", run.requested_by, run.plan_name).chars().take(255).collect()
}

/// Queues a task for every pending pair of group `number`. A pair whose
/// task cannot be queued (its state, no drill VMID, disabled, deleted) is
/// recorded as failed with the reason, and the others go on. `recover`
/// first looks for a task an interrupted start queued but did not record.
async fn queue_group(state: &AppState, run: &PlanRun, number: i64, recover: bool) -> ServiceResult<()> {
    let Some(group) = run.groups.iter().find(|g| g.number == number) else { return Ok(()) };
    let kind = run.action.task_kind();
    let by = task_requester(run);
    let since = group.started_at.unwrap_or(run.started_at);
    for item in group.tasks.iter().filter(|t| t.status == ItemStatus::Pending) {
        if recover {
            if let Some(task) = state.db.plan_task_since(item.pair_id, kind, &by, since).await? {
                state.db.set_run_item_task(run.id, number, item.slot, task).await?;
                continue;
            }
        }
        match queue_one(state, &run.requested_by, &by, item.pair_id, kind, run.force).await {
            Ok(task) => {
                if !state.db.set_run_item_task(run.id, number, item.slot, task.id).await? {
                    // Another process settled this pair meanwhile: this task is one too many.
                    state.db.request_cancel(task.id).await?;
                    state.db.append_log(task.id, "cancelled: the plan run already has a task for this pair").await?;
                }
            }
            Err(e) => {
                let reason = match e {
                    ServiceError::NotFound(_) => "The pair no longer exists.".to_string(),
                    ServiceError::Internal(cause) => {
                        tracing::error!(%cause, pair = %item.pair_id, "plan run: queueing a task failed");
                        "drswitch could not queue the task (an internal error; the server log has the details).".into()
                    }
                    other => other.to_string(),
                };
                tracing::warn!(run = %run.id, group = number, pair = %item.pair_id, %reason, "plan run: pair not queued");
                state.db.set_run_item_error(run.id, number, item.slot, &reason).await?;
            }
        }
    }
    Ok(())
}

/// Queues one pair's task by the same rules as `tasks::queue` (the pair's
/// state, its drill VMID, one open switch task per pair, a failover first
/// clearing the pair's other work), on behalf of the user who started the
/// run, whose role was checked then.
async fn queue_one(
    state: &AppState,
    actor: &str,
    by: &str,
    pair_id: PairId,
    kind: TaskKind,
    force: bool,
) -> ServiceResult<Task> {
    super::tasks::queue_as(state, actor, by, pair_id, kind, None, force).await
}

/// One step of a running run, as far as it can go now: settles pairs an
/// interrupted start left pending, and once every task of the current
/// group has ended, either ends the run (after the last group) or starts
/// the next group when the delay since that end has passed. Returns when
/// it wants to look again (None: when a task ends; the runner polls).
pub async fn advance(state: &AppState, run: &PlanRun) -> ServiceResult<Option<Timestamp>> {
    let now = Timestamp::now();
    let Some(group) = run.current() else {
        // Only a hand-edited database makes a run without its group.
        tracing::error!(run = %run.id, "plan run has no current group; ending it");
        state.db.finish_plan_run(run.id, RunStatus::Failed).await?;
        return Ok(None);
    };
    let started = group.started_at.unwrap_or(run.started_at);
    if group.tasks.iter().any(|t| t.status == ItemStatus::Pending) {
        let settle_at = started.plus_millis(SETTLE_AFTER_MS);
        if now < settle_at {
            return Ok(Some(settle_at));
        }
        tracing::warn!(run = %run.id, group = group.number, "plan run: settling pairs an interrupted start left");
        queue_group(state, run, group.number, true).await?;
        return Ok(Some(Timestamp::now()));
    }
    if !group.tasks.iter().all(|t| t.status.is_final()) {
        return Ok(None);
    }
    // The group ended when its last task did (or when it started, if no
    // task could be queued).
    let ended_at = group.tasks.iter().filter_map(|t| t.finished_at).max().unwrap_or(started).max(started);
    if group.number >= run.groups.len() as i64 {
        if group.ended_at.is_none() {
            state.db.set_run_group_ended(run.id, group.number, ended_at, None).await?;
        }
        let all_ok = run.groups.iter().flat_map(|g| &g.tasks).all(|t| t.status == ItemStatus::Succeeded);
        let status = if all_ok { RunStatus::Succeeded } else { RunStatus::Failed };
        if state.db.finish_plan_run(run.id, status).await? {
            tracing::info!(run = %run.id, plan = %run.plan_name, action = %run.action, %status, "plan run ended");
        }
        return Ok(None);
    }
    let next_at = ended_at.plus_millis(run.delay_secs.saturating_mul(1000));
    if group.ended_at.is_none() || run.next_group_at != Some(next_at) {
        state.db.set_run_group_ended(run.id, group.number, ended_at, Some(next_at)).await?;
    }
    if now < next_at {
        return Ok(Some(next_at));
    }
    if state.db.start_next_run_group(run.id, group.number, now).await? {
        let run = load_run(state, run.id).await?;
        tracing::info!(run = %run.id, plan = %run.plan_name, group = group.number + 1, "plan run: next group started");
        queue_group(state, &run, group.number + 1, false).await?;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_bounds() {
        assert_eq!(delay(0).ok(), Some(0));
        assert_eq!(delay(86_400).ok(), Some(86_400));
        assert!(matches!(delay(-1), Err(ServiceError::Invalid { field, .. }) if field == "delay_secs"));
        assert!(matches!(delay(86_401), Err(ServiceError::Invalid { field, .. }) if field == "delay_secs"));
    }
}
