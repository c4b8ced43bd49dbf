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

use crate::db::schedules::Schedule;
use crate::db::DbResult;
use crate::domain::{TaskId, TaskKind, Timestamp};
use crate::queue::{enqueue, Request};
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
        fire(state, &s, now).await?;
    }
    state.db.earliest_next_run().await
}

async fn fire(state: &AppState, s: &Schedule, now: Timestamp) -> DbResult<()> {
    let Some(due) = s.next_run else { return Ok(()) };
    let next = s.cron.next_after(now.to_datetime(), &s.timezone).map(Timestamp::from_datetime);
    let late_ms = now.millis() - due.millis();
    let missed = late_ms > state.settings.schedule_grace.as_millis() as i64;
    // Whoever moves the schedule past this due time owns the run: another
    // process, or an API change (disable, new time, delete) made just now,
    // makes this fail and nothing is queued.
    if !state.db.advance_schedule(s.id, due, next).await? {
        return Ok(());
    }
    // The unique (schedule, due time) row records the run, and guards it a
    // second time should two processes ever read different next_run values.
    if !state.db.claim_schedule_run(s.id, due, if missed { "missed" } else { "firing" }).await? {
        return Ok(());
    }
    let (result, task) = if missed {
        let r = format!("missed: drswitch was not running at {}, more than the grace window ago", due.to_rfc3339());
        (r, None)
    } else {
        decide(state, s).await?
    };
    tracing::info!(schedule = %s.id, due = %due.to_rfc3339(), result = %result, "schedule fired");
    state.db.set_schedule_run_result(s.id, due, &result, task).await?;
    state.db.record_schedule_outcome(s.id, due, &result, task).await?;
    Ok(())
}

/// Queues the schedule's task unless one of that kind is already waiting
/// or running for the pair (no pile-up).
async fn decide(state: &AppState, s: &Schedule) -> DbResult<(String, Option<TaskId>)> {
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
    let by = format!("schedule {}", s.id);
    let task = enqueue(
        state,
        &pair,
        Request { kind, archive_id: None, schedule_id: Some(s.id), requested_by: &by, actor: &by, force: false },
    )
    .await?;
    Ok(("queued".into(), Some(task.id)))
}
