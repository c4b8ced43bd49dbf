//! The plan runner: advances running recovery-plan runs (the next group
//! once the current one has ended and the plan's delay has passed; the end
//! of the run). One process per database does it at a time, under the
//! `plans` lease, like the monitor. Its state is the database's, so a
//! restart resumes every run where it stood. It only queues tasks through
//! `service::plans`; the worker runs them.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;

use crate::domain::Timestamp;
use crate::service::ServiceResult;
use crate::state::AppState;

const LEASE: &str = "plans";
/// How often running runs are looked at (task ends are noticed by polling).
const TICK: Duration = Duration::from_secs(1);
/// The shortest pause between rounds: never a busy loop.
const MIN_SLEEP: Duration = Duration::from_millis(100);
/// Long enough to outlast a slow round, short enough that another process
/// takes over soon after this one dies.
const LEASE_FOR: Duration = Duration::from_secs(10);
/// Runs advanced per round, oldest first.
const MAX_RUNS: i64 = 100;

/// Runs until `shutdown`. A round that fails or panics is logged and the
/// next one comes as usual.
pub async fn run(state: Arc<AppState>, shutdown: CancellationToken) {
    let holder = uuid::Uuid::new_v4().to_string();
    tracing::info!("plan runner started");
    while !shutdown.is_cancelled() {
        let started = tokio::time::Instant::now();
        let now = Timestamp::now();
        let until = now.plus_millis(LEASE_FOR.as_millis() as i64);
        let mut sleep = TICK;
        match state.db.take_lease(LEASE, &holder, now, until).await {
            Ok(true) => match AssertUnwindSafe(round(&state)).catch_unwind().await {
                Ok(Ok(next)) => sleep = until_next(next),
                Ok(Err(e)) => tracing::error!(error = ?e, "plan runner round failed"),
                Err(panic) => {
                    tracing::error!(panic = crate::supervisor::panic_text(&panic), "plan runner round panicked")
                }
            },
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "plan runner cannot take its lease"),
        }
        tokio::select! {
            _ = tokio::time::sleep_until(started + sleep) => {}
            _ = shutdown.cancelled() => {}
        }
    }
    let _ = state.db.release_lease(LEASE, &holder).await;
}

/// How long to sleep: until the earliest time a run asked for, within
/// `MIN_SLEEP..=TICK`.
fn until_next(next: Option<Timestamp>) -> Duration {
    let Some(next) = next else { return TICK };
    let ms = (next.millis() - Timestamp::now().millis()).max(0) as u64;
    Duration::from_millis(ms).clamp(MIN_SLEEP, TICK)
}

/// Advances every running run once; one run that fails does not hold the
/// others back. Returns the earliest time a run wants to be looked at.
pub async fn round(state: &AppState) -> ServiceResult<Option<Timestamp>> {
    let runs = state.db.running_plan_runs(MAX_RUNS).await?;
    let mut next: Option<Timestamp> = None;
    for run in &runs {
        match crate::service::plans::advance(state, run).await {
            Ok(Some(t)) => next = Some(next.map_or(t, |n| n.min(t))),
            Ok(None) => {}
            Err(e) => tracing::error!(run = %run.id, error = ?e, "plan run could not advance"),
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_are_bounded() {
        assert_eq!(until_next(None), TICK);
        assert_eq!(until_next(Some(Timestamp(0))), MIN_SLEEP);
        assert_eq!(until_next(Some(Timestamp::now().plus_millis(60_000))), TICK);
        let mid = until_next(Some(Timestamp::now().plus_millis(500)));
        assert!(mid > MIN_SLEEP && mid <= Duration::from_millis(500), "{mid:?}");
    }
}
