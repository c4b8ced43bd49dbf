//! Recovery plans and their runs. A plan is a name, a delay and ordered
//! groups of pairs; a run copies them at its start and records, per group,
//! when it started and ended and, per pair, the task queued for it or why
//! none could be. The runs table is the runner's whole state: at most one
//! running run per plan (a unique key), and every step forward is a
//! compare-and-set, so two processes never start the same group twice.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{conflict, flag, get, parse, parse_opt, ts, ts_opt, Db, DbError, DbResult};
use crate::domain::{Invalid, PairId, TaskId, TaskKind, TaskStatus, Timestamp};

/// A named, ordered list of groups of pairs (SRM's priority groups).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Plan {
    pub id: Uuid,
    pub name: String,
    /// Seconds between the end of one group (its last task ended) and the
    /// start of the next.
    pub delay_secs: i64,
    /// The groups in the order they run; the pairs of a group run side by
    /// side where the worker's host rules allow.
    pub groups: Vec<Vec<PairId>>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// What a plan is made of, checked by the service.
pub struct PlanFields {
    pub name: String,
    pub delay_secs: i64,
    pub groups: Vec<Vec<PairId>>,
}

/// What a plan run does to each of its pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanAction {
    /// Fail every pair over, group by group.
    Failover,
    /// Run a DR drill of every pair, group by group.
    Drill,
}

impl PlanAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanAction::Failover => "failover",
            PlanAction::Drill => "drill",
        }
    }

    pub fn task_kind(self) -> TaskKind {
        match self {
            PlanAction::Failover => TaskKind::Failover,
            PlanAction::Drill => TaskKind::Drill,
        }
    }
}

impl std::str::FromStr for PlanAction {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        match s {
            "failover" => Ok(PlanAction::Failover),
            "drill" => Ok(PlanAction::Drill),
            _ => Err(Invalid::new("must be one of: failover, drill")),
        }
    }
}

impl std::fmt::Display for PlanAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a plan run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Groups are still queued, running or waiting for their turn.
    Running,
    /// Every pair's task succeeded.
    Succeeded,
    /// At least one pair's task failed, was cancelled or could not be queued.
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }
}

impl std::str::FromStr for RunStatus {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        match s {
            "running" => Ok(RunStatus::Running),
            "succeeded" => Ok(RunStatus::Succeeded),
            "failed" => Ok(RunStatus::Failed),
            _ => Err(Invalid::new("must be one of: running, succeeded, failed")),
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one pair of a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Its group has not started (or is being started).
    Pending,
    /// Its task waits for a worker.
    Queued,
    /// Its task runs.
    Running,
    /// Its task succeeded.
    Succeeded,
    /// Its task failed, or no task could be queued (`error` says why).
    Failed,
    /// Its task was cancelled.
    Cancelled,
}

impl ItemStatus {
    /// Nothing more will happen to this pair in this run.
    pub fn is_final(self) -> bool {
        matches!(self, ItemStatus::Succeeded | ItemStatus::Failed | ItemStatus::Cancelled)
    }
}

impl From<TaskStatus> for ItemStatus {
    fn from(s: TaskStatus) -> Self {
        match s {
            TaskStatus::Queued => ItemStatus::Queued,
            TaskStatus::Running => ItemStatus::Running,
            TaskStatus::Succeeded => ItemStatus::Succeeded,
            TaskStatus::Failed => ItemStatus::Failed,
            TaskStatus::Cancelled => ItemStatus::Cancelled,
        }
    }
}

/// One pair of a run and its task.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunTask {
    pub pair_id: PairId,
    /// The task queued for the pair; null while pending or when none could be queued.
    pub task_id: Option<TaskId>,
    pub status: ItemStatus,
    /// Why no task could be queued, or the task's own error.
    pub error: Option<String>,
    /// Its place in the group (from 1).
    #[serde(skip)]
    pub slot: i64,
    /// When its task ended (exact, for the delay).
    #[serde(skip)]
    pub finished_at: Option<Timestamp>,
}

/// One group of a run.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunGroup {
    /// From 1, in the order the groups run.
    pub number: i64,
    /// When its tasks were queued; null while it waits for its turn.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    /// When its last task ended.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<Timestamp>,
    pub tasks: Vec<RunTask>,
}

/// One failover or drill of a whole plan: the plan's event.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlanRun {
    pub id: Uuid,
    pub plan_id: Uuid,
    /// The plan's name when the run started.
    pub plan_name: String,
    pub action: PlanAction,
    pub status: RunStatus,
    /// A failover told to go on where a DC VM cannot be fenced.
    pub force: bool,
    /// The plan's delay when the run started.
    pub delay_secs: i64,
    pub requested_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    /// The group started last (from 1).
    pub current_group: i64,
    /// When the next group starts, once the current one has ended.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_group_at: Option<Timestamp>,
    pub groups: Vec<RunGroup>,
}

impl PlanRun {
    /// The group started last.
    pub fn current(&self) -> Option<&RunGroup> {
        self.groups.iter().find(|g| g.number == self.current_group)
    }
}

/// What a new run needs.
pub struct NewRun<'a> {
    pub plan: &'a Plan,
    pub action: PlanAction,
    pub force: bool,
    pub requested_by: &'a str,
}

fn run_row(row: &AnyRow) -> DbResult<PlanRun> {
    let action: String = get(row, "kind")?;
    Ok(PlanRun {
        id: parse(row, "id")?,
        plan_id: parse(row, "plan_id")?,
        plan_name: get(row, "plan_name")?,
        action: action.parse().map_err(|_| DbError::Corrupt(format!("kind = {action:?}")))?,
        status: parse(row, "status")?,
        force: flag(row, "forced")?,
        delay_secs: get(row, "delay_secs")?,
        requested_by: get(row, "requested_by")?,
        started_at: ts(row, "started_at")?,
        finished_at: ts_opt(row, "finished_at")?,
        current_group: get(row, "current_group")?,
        next_group_at: ts_opt(row, "next_group_at")?,
        groups: Vec::new(),
    })
}

fn item_row(row: &AnyRow) -> DbResult<(Uuid, i64, RunTask)> {
    let task_id: Option<TaskId> = parse_opt(row, "task_id")?;
    let own_error: Option<String> = get(row, "error")?;
    let task_status: Option<TaskStatus> = parse_opt(row, "task_status")?;
    let status = match (task_id, task_status, &own_error) {
        (Some(_), Some(s), _) => s.into(),
        // A task id whose task is gone: nothing will come of it.
        (Some(_), None, _) => ItemStatus::Failed,
        (None, _, Some(_)) => ItemStatus::Failed,
        (None, _, None) => ItemStatus::Pending,
    };
    let error = own_error.or(get(row, "task_error")?).or_else(|| {
        (task_id.is_some() && task_status.is_none()).then(|| "The task is no longer recorded.".to_string())
    });
    Ok((
        parse(row, "run_id")?,
        get(row, "group_no")?,
        RunTask {
            pair_id: parse(row, "pair_id")?,
            task_id,
            status,
            error,
            slot: get(row, "slot")?,
            finished_at: ts_opt(row, "task_finished_at")?,
        },
    ))
}

/// `?, ?, ?` for `n` values (at least one, so the SQL stays valid).
fn marks(n: usize) -> String {
    vec!["?"; n.max(1)].join(", ")
}

const NAME_TAKEN: &str = "another plan already has this name";

impl Db {
    pub async fn insert_plan(&self, f: &PlanFields) -> DbResult<Uuid> {
        let id = Uuid::new_v4();
        let now = Timestamp::now().millis();
        let mut tx = self.pool().begin().await?;
        sqlx::query("INSERT INTO plans (id, name, delay_secs, created_at, updated_at) VALUES (?, ?, ?, ?, ?)")
            .bind(id.to_string())
            .bind(&f.name)
            .bind(f.delay_secs)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, NAME_TAKEN))?;
        insert_members(&mut tx, id, &f.groups).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Replaces the plan's name, delay and groups; false if there is no such plan.
    pub async fn update_plan(&self, id: Uuid, f: &PlanFields) -> DbResult<bool> {
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query("UPDATE plans SET name = ?, delay_secs = ?, updated_at = ? WHERE id = ?")
            .bind(&f.name)
            .bind(f.delay_secs)
            .bind(Timestamp::now().millis())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, NAME_TAKEN))?;
        if n.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("DELETE FROM plan_pairs WHERE plan_id = ?").bind(id.to_string()).execute(&mut *tx).await?;
        insert_members(&mut tx, id, &f.groups).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn plan(&self, id: Uuid) -> DbResult<Option<Plan>> {
        let Some(row) =
            sqlx::query("SELECT * FROM plans WHERE id = ?").bind(id.to_string()).fetch_optional(self.pool()).await?
        else {
            return Ok(None);
        };
        let members = sqlx::query("SELECT * FROM plan_pairs WHERE plan_id = ? ORDER BY group_no, slot")
            .bind(id.to_string())
            .fetch_all(self.pool())
            .await?;
        let mut plans = assemble_plans(&[row], &members)?;
        Ok(plans.pop())
    }

    /// Every plan by name, with its groups (two queries whatever their number).
    pub async fn list_plans(&self) -> DbResult<Vec<Plan>> {
        let rows = sqlx::query("SELECT * FROM plans ORDER BY name").fetch_all(self.pool()).await?;
        let members =
            sqlx::query("SELECT * FROM plan_pairs ORDER BY plan_id, group_no, slot").fetch_all(self.pool()).await?;
        assemble_plans(&rows, &members)
    }

    /// Deletes the plan with its run history unless a run of it is running
    /// (false then, and nothing changes). The pairs and their tasks stay.
    pub async fn delete_plan(&self, id: Uuid) -> DbResult<bool> {
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query(
            "DELETE FROM plans WHERE id = ? AND NOT EXISTS \
             (SELECT 1 FROM plan_runs WHERE plan_id = ? AND status = 'running')",
        )
        .bind(id.to_string())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        if n.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("DELETE FROM plan_pairs WHERE plan_id = ?").bind(id.to_string()).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM plan_run_items WHERE run_id IN (SELECT id FROM plan_runs WHERE plan_id = ?)")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM plan_run_groups WHERE run_id IN (SELECT id FROM plan_runs WHERE plan_id = ?)")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM plan_runs WHERE plan_id = ?").bind(id.to_string()).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records a new run with a copy of the plan's groups, group 1 started
    /// now and every pair pending. None while another run of the plan runs.
    pub async fn insert_plan_run(&self, r: &NewRun<'_>) -> DbResult<Option<Uuid>> {
        let id = Uuid::new_v4();
        let now = Timestamp::now().millis();
        let plan = r.plan;
        let mut tx = self.pool().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO plan_runs (id, plan_id, plan_name, kind, status, forced, delay_secs, requested_by, \
             started_at, current_group, group_count, running_key) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, 1, ?, ?)",
        )
        .bind(id.to_string())
        .bind(plan.id.to_string())
        .bind(&plan.name)
        .bind(r.action.as_str())
        .bind(i64::from(r.force))
        .bind(plan.delay_secs)
        .bind(r.requested_by)
        .bind(now)
        .bind(plan.groups.len() as i64)
        .bind(plan.id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict(e, "a run of this plan is running"));
        match inserted {
            Ok(_) => {}
            Err(DbError::Conflict(_)) => {
                tx.rollback().await?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
        for (g, pairs) in plan.groups.iter().enumerate() {
            let number = g as i64 + 1;
            sqlx::query("INSERT INTO plan_run_groups (run_id, group_no, started_at) VALUES (?, ?, ?)")
                .bind(id.to_string())
                .bind(number)
                .bind((number == 1).then_some(now))
                .execute(&mut *tx)
                .await?;
            for (slot, pair) in pairs.iter().enumerate() {
                sqlx::query("INSERT INTO plan_run_items (run_id, group_no, slot, pair_id) VALUES (?, ?, ?, ?)")
                    .bind(id.to_string())
                    .bind(number)
                    .bind(slot as i64 + 1)
                    .bind(pair.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(Some(id))
    }

    pub async fn plan_run(&self, id: Uuid) -> DbResult<Option<PlanRun>> {
        let rows =
            sqlx::query("SELECT * FROM plan_runs WHERE id = ?").bind(id.to_string()).fetch_all(self.pool()).await?;
        Ok(self.with_groups(&rows).await?.pop())
    }

    /// The plan's runs, newest first.
    pub async fn list_plan_runs(&self, plan: Uuid, limit: i64) -> DbResult<Vec<PlanRun>> {
        let rows = sqlx::query("SELECT * FROM plan_runs WHERE plan_id = ? ORDER BY started_at DESC LIMIT ?")
            .bind(plan.to_string())
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        self.with_groups(&rows).await
    }

    /// Each plan's newest run.
    pub async fn latest_plan_runs(&self) -> DbResult<Vec<PlanRun>> {
        let rows = sqlx::query(
            "SELECT r.* FROM plan_runs r JOIN (SELECT plan_id, MAX(started_at) AS s FROM plan_runs GROUP BY plan_id) m \
             ON r.plan_id = m.plan_id AND r.started_at = m.s ORDER BY r.started_at DESC",
        )
        .fetch_all(self.pool())
        .await?;
        self.with_groups(&rows).await
    }

    /// Runs still running, oldest first (at most `limit`).
    pub async fn running_plan_runs(&self, limit: i64) -> DbResult<Vec<PlanRun>> {
        let rows = sqlx::query("SELECT * FROM plan_runs WHERE status = 'running' ORDER BY started_at LIMIT ?")
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        self.with_groups(&rows).await
    }

    /// The runs of `rows` with their groups and pairs, and each pair's task
    /// status (three queries whatever the number of runs).
    async fn with_groups(&self, rows: &[AnyRow]) -> DbResult<Vec<PlanRun>> {
        let mut runs: Vec<PlanRun> = rows.iter().map(run_row).collect::<DbResult<_>>()?;
        if runs.is_empty() {
            return Ok(runs);
        }
        let ids: Vec<String> = runs.iter().map(|r| r.id.to_string()).collect();
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT * FROM plan_run_groups WHERE run_id IN ({}) ORDER BY run_id, group_no",
            marks(ids.len())
        )));
        for id in &ids {
            q = q.bind(id.clone());
        }
        let groups = q.fetch_all(self.pool()).await?;
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT i.run_id, i.group_no, i.slot, i.pair_id, i.task_id, i.error, t.status AS task_status, \
             t.error AS task_error, t.finished_at AS task_finished_at \
             FROM plan_run_items i LEFT JOIN tasks t ON t.id = i.task_id WHERE i.run_id IN ({}) \
             ORDER BY i.run_id, i.group_no, i.slot",
            marks(ids.len())
        )));
        for id in &ids {
            q = q.bind(id.clone());
        }
        let items = q.fetch_all(self.pool()).await?;
        let mut by_run: HashMap<Uuid, Vec<RunGroup>> = HashMap::new();
        for g in &groups {
            let run: Uuid = parse(g, "run_id")?;
            by_run.entry(run).or_default().push(RunGroup {
                number: get(g, "group_no")?,
                started_at: ts_opt(g, "started_at")?,
                ended_at: ts_opt(g, "ended_at")?,
                tasks: Vec::new(),
            });
        }
        for row in &items {
            let (run, number, task) = item_row(row)?;
            let group = by_run
                .get_mut(&run)
                .and_then(|gs| gs.iter_mut().find(|g| g.number == number))
                .ok_or_else(|| DbError::Corrupt(format!("plan run {run} has no group {number}")))?;
            group.tasks.push(task);
        }
        for r in &mut runs {
            r.groups = by_run.remove(&r.id).unwrap_or_default();
        }
        Ok(runs)
    }

    /// Records the task queued for a pending pair of a run; false if the
    /// pair was already settled (by another process recovering the group).
    pub async fn set_run_item_task(&self, run: Uuid, group: i64, slot: i64, task: TaskId) -> DbResult<bool> {
        let r = sqlx::query(
            "UPDATE plan_run_items SET task_id = ? WHERE run_id = ? AND group_no = ? AND slot = ? \
             AND task_id IS NULL AND error IS NULL",
        )
        .bind(task.to_string())
        .bind(run.to_string())
        .bind(group)
        .bind(slot)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Records why no task could be queued for a pending pair of a run.
    pub async fn set_run_item_error(&self, run: Uuid, group: i64, slot: i64, error: &str) -> DbResult<bool> {
        let r = sqlx::query(
            "UPDATE plan_run_items SET error = ? WHERE run_id = ? AND group_no = ? AND slot = ? \
             AND task_id IS NULL AND error IS NULL",
        )
        .bind(error)
        .bind(run.to_string())
        .bind(group)
        .bind(slot)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Records that group `group` of the run ended at `ended_at` and when
    /// the next one starts (None after the last group).
    pub async fn set_run_group_ended(
        &self,
        run: Uuid,
        group: i64,
        ended_at: Timestamp,
        next_group_at: Option<Timestamp>,
    ) -> DbResult<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE plan_run_groups SET ended_at = ? WHERE run_id = ? AND group_no = ?")
            .bind(ended_at.millis())
            .bind(run.to_string())
            .bind(group)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE plan_runs SET next_group_at = ? WHERE id = ? AND current_group = ? AND status = 'running'")
            .bind(next_group_at.map(Timestamp::millis))
            .bind(run.to_string())
            .bind(group)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Moves the run from group `from` to the next one, started `now`;
    /// false if another process (or an earlier round) did it first.
    pub async fn start_next_run_group(&self, run: Uuid, from: i64, now: Timestamp) -> DbResult<bool> {
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query(
            "UPDATE plan_runs SET current_group = ?, next_group_at = NULL \
             WHERE id = ? AND current_group = ? AND status = 'running' AND current_group < group_count",
        )
        .bind(from + 1)
        .bind(run.to_string())
        .bind(from)
        .execute(&mut *tx)
        .await?;
        if n.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("UPDATE plan_run_groups SET started_at = ? WHERE run_id = ? AND group_no = ?")
            .bind(now.millis())
            .bind(run.to_string())
            .bind(from + 1)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Ends a running run; false if it had already ended.
    pub async fn finish_plan_run(&self, run: Uuid, status: RunStatus) -> DbResult<bool> {
        let r = sqlx::query(
            "UPDATE plan_runs SET status = ?, finished_at = ?, next_group_at = NULL, running_key = NULL \
             WHERE id = ? AND status = 'running'",
        )
        .bind(status.as_str())
        .bind(Timestamp::now().millis())
        .bind(run.to_string())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// The first task of `kind` for the pair queued by `requested_by` at or
    /// after `since`: how a group interrupted between queueing a task and
    /// recording it finds that task again.
    pub async fn plan_task_since(
        &self,
        pair: PairId,
        kind: TaskKind,
        requested_by: &str,
        since: Timestamp,
    ) -> DbResult<Option<TaskId>> {
        let row = sqlx::query(
            "SELECT id FROM tasks WHERE pair_id = ? AND kind = ? AND requested_by = ? AND created_at >= ? \
             ORDER BY seq LIMIT 1",
        )
        .bind(pair.to_string())
        .bind(kind.as_str())
        .bind(requested_by)
        .bind(since.millis())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(|r| parse(r, "id")).transpose()
    }
}

async fn insert_members(tx: &mut sqlx::Transaction<'_, sqlx::Any>, plan: Uuid, groups: &[Vec<PairId>]) -> DbResult<()> {
    for (g, pairs) in groups.iter().enumerate() {
        for (slot, pair) in pairs.iter().enumerate() {
            sqlx::query("INSERT INTO plan_pairs (plan_id, group_no, slot, pair_id) VALUES (?, ?, ?, ?)")
                .bind(plan.to_string())
                .bind(g as i64 + 1)
                .bind(slot as i64 + 1)
                .bind(pair.to_string())
                .execute(&mut **tx)
                .await
                .map_err(|e| conflict(e, "a pair may be in a plan only once"))?;
        }
    }
    Ok(())
}

/// Plans from their rows and their members (ordered by group and slot).
fn assemble_plans(rows: &[AnyRow], members: &[AnyRow]) -> DbResult<Vec<Plan>> {
    let mut groups: HashMap<Uuid, Vec<Vec<PairId>>> = HashMap::new();
    for m in members {
        let plan: Uuid = parse(m, "plan_id")?;
        let number: i64 = get(m, "group_no")?;
        let list = groups.entry(plan).or_default();
        let index = usize::try_from(number - 1).map_err(|_| DbError::Corrupt(format!("group_no = {number}")))?;
        while list.len() <= index {
            list.push(Vec::new());
        }
        list[index].push(parse(m, "pair_id")?);
    }
    rows.iter()
        .map(|r| {
            let id: Uuid = parse(r, "id")?;
            Ok(Plan {
                id,
                name: get(r, "name")?,
                delay_secs: get(r, "delay_secs")?,
                groups: groups.remove(&id).unwrap_or_default(),
                created_at: ts(r, "created_at")?,
                updated_at: ts(r, "updated_at")?,
            })
        })
        .collect()
}
