//! The scheduler: turns due schedules into queued tasks. It only enqueues;
//! the worker executes. The schedules table is the source of truth: "due"
//! is each schedule's stored `next_run`, so a change through the API takes
//! effect at once, a run missed while drswitch was down is caught up (within
//! the grace window) at start, and any number of `serve` processes share the
//! work with each run enqueued once: moving `next_run` past a due time is a
//! compare-and-set, and a unique key on (schedule, due time) records the run.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;

use crate::db::pairs::Pair;
use crate::db::schedules::Firing;
use crate::db::schedules::Schedule;
use crate::db::DbError;
use crate::db::DbResult;
use crate::domain::{TaskKind, Timestamp};
use crate::queue::{plan, record_queued, Planned, Request};
use crate::state::AppState;

/// Longest sleep, so schedules changed by another process are seen.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// Runs until `shutdown`. A failed round (database away) is logged and
/// retried; a round that panics is logged too and never ends the loop.
pub async fn run(state: Arc<AppState>, shutdown: CancellationToken) {
    tracing::info!("scheduler started");
    while !shutdown.is_cancelled() {
        let sleep = match AssertUnwindSafe(tick(&state)).catch_unwind().await {
            Ok(Ok(next)) => until(next),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "scheduler round failed");
                Duration::from_secs(1)
            }
            Err(panic) => {
                tracing::error!(panic = crate::supervisor::panic_text(&panic), "scheduler round panicked");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = state.wake.until_schedules_changed() => {}
            _ = tokio::time::sleep(sleep) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}

fn until(next: Option<Timestamp>) -> Duration {
    let Some(next) = next else { return MAX_SLEEP };
    let ms = next.millis() - Timestamp::now().millis();
    if ms <= 0 {
        Duration::ZERO
    } else {
        Duration::from_millis(ms as u64).min(MAX_SLEEP)
    }
}

/// Fires every due schedule once; returns the earliest next run.
pub async fn tick(state: &AppState) -> DbResult<Option<Timestamp>> {
    let now = Timestamp::now();
    for s in state.db.due_schedules(now).await? {
        // One schedule that cannot fire must not hold back the others.
        if let Err(e) = fire(state, &s, now).await {
            tracing::error!(schedule = %s.id, error = %e, "a due schedule could not fire; trying again");
        }
    }
    state.db.earliest_next_run().await
}

async fn fire(state: &AppState, s: &Schedule, now: Timestamp) -> DbResult<()> {
    let Some(due) = s.next_run else { return Ok(()) };
    let next = s.cron.next_after(now.to_datetime(), &s.timezone).map(Timestamp::from_datetime);
    let late_ms = now.millis() - due.millis();
    let missed = late_ms > state.settings.schedule_grace.as_millis() as i64;
    let by = format!("schedule {}", s.id);
    let (result, planned) = if missed {
        let r = format!("missed: drswitch was not running at {}, more than the grace window ago", due.to_rfc3339());
        (r, None)
    } else {
        decide(state, s, &by).await?
    };
    let (task, log, pair) = match planned {
        Some((p, pair)) => (Some(p.task), p.log, Some(pair)),
        None => (None, Vec::new(), None),
    };
    let kind = task.as_ref().map(|t| t.kind);
    // Moving next_run on, recording the run and queueing its task are one
    // transaction; whoever moves the schedule past this due time owns the
    // run: another process, or an API change (disable, new time, delete)
    // made just now, makes this a no-op.
    let firing = Firing { schedule_id: s.id, due, next, result: &result, task, log: &log };
    let Some(task) = state.db.fire_schedule(&firing).await? else { return Ok(()) };
    if let (Some(id), Some(pair), Some(kind)) = (task, &pair, kind) {
        let req =
            Request { kind, archive_id: None, schedule_id: Some(s.id), requested_by: &by, actor: &by, force: false };
        record_queued(state, pair, &req, id).await;
        state.wake.task_queued();
    }
    tracing::info!(schedule = %s.id, due = %due.to_rfc3339(), result = %result, task = ?task, "schedule fired");
    Ok(())
}

/// Plans the schedule's task unless one of that kind is already waiting
/// or running for the pair (no pile-up).
async fn decide<'a>(state: &AppState, s: &Schedule, by: &'a str) -> DbResult<(String, Option<(Planned<'a>, Pair)>)> {
    let kind = TaskKind::from(s.kind);
    let Some(pair) = state.db.pair(s.pair_id).await? else {
        return Ok(("skipped: the pair no longer exists".into(), None));
    };
    if !pair.enabled {
        return Ok(("skipped: the pair is disabled".into(), None));
    }
    if pair.state != crate::domain::PairState::Protected {
        // The DC VM is not the live copy now: a backup of it would archive
        // a stale (or fenced) VM over the failed-over one's history.
        return Ok((format!("skipped: the pair is {}", pair.state), None));
    }
    if state.db.pair_has_open_task(pair.id, TaskKind::Failover).await? {
        return Ok(("skipped: a failover of the pair is queued or running".into(), None));
    }
    if state.db.pair_has_open_task(pair.id, kind).await? {
        return Ok((format!("skipped: a {kind} of this pair was already queued or running"), None));
    }
    let req = Request { kind, archive_id: None, schedule_id: Some(s.id), requested_by: by, actor: by, force: false };
    match plan(state, &pair, &req).await {
        Ok(planned) => Ok(("queued".into(), Some((planned, pair)))),
        // Placement found no DRC host (the DR site may be down): this run
        // is recorded as skipped and the schedule moves on, like any other.
        Err(DbError::Conflict(why)) => Ok((format!("skipped: {}", why.trim_end_matches('.')), None)),
        Err(e) => Err(e),
    }
}
