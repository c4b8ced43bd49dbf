//! The record of a failover, failback or drill: each step with its times
//! and outcome, written to the event as it goes (so a crash keeps what
//! happened), plus the task log line for people watching.

use crate::db::events::Step;
use crate::db::pairs::Pair;
use crate::domain::{ErrorKind, PairState, TaskKind, Timestamp};
use crate::worker::context::TaskCtx;

use super::{fail, JobError};

/// Moves the pair from `from` into `to` as a failover or failback starts.
/// A pair already in `to` is an earlier attempt that stopped: this one
/// goes on from there and says so. Returns whether it is such a retry.
pub async fn enter_state(ctx: &TaskCtx, pair: &Pair, from: PairState, to: PairState) -> Result<bool, JobError> {
    let db = &ctx.state.db;
    if db.set_pair_state(pair.id, from, to).await? {
        return Ok(false);
    }
    let now = db.pair(pair.id).await?.map(|p| p.state);
    if now != Some(to) {
        let now = now.map(|s| s.to_string()).unwrap_or_default();
        return Err(fail(ErrorKind::Config, format!("The pair is {now} now; a {} is not possible.", ctx.task.kind)));
    }
    ctx.log(format!("the pair was already {to} (an earlier attempt stopped); going on"));
    Ok(true)
}

pub struct Evidence {
    id: String,
    pub steps: Vec<Step>,
    /// A failover went on without fencing the DC VM.
    pub forced: bool,
    pub started: Timestamp,
}

impl Evidence {
    pub async fn begin(ctx: &TaskCtx, kind: TaskKind) -> Result<Self, JobError> {
        let started = ctx.task.started_at.unwrap_or_else(Timestamp::now);
        let id = ctx.state.db.insert_event(ctx.task.pair_id, kind, ctx.task.id, started).await?;
        Ok(Self { id, steps: Vec::new(), forced: false, started })
    }

    /// Records a step that began at `started` and ends now.
    pub async fn step(&mut self, ctx: &TaskCtx, name: &str, started: Timestamp, ok: bool, detail: impl Into<String>) {
        let detail = detail.into();
        let finished = Timestamp::now();
        ctx.log(format!(
            "{name}: {} in {:.1} s: {detail}",
            if ok { "done" } else { "failed" },
            (finished.millis() - started.millis()) as f64 / 1000.0
        ));
        self.steps.push(Step { name: name.into(), started_at: started, finished_at: finished, ok, detail });
        if let Err(e) = ctx.state.db.update_event(&self.id, &self.steps, None, self.forced).await {
            tracing::warn!(error = %e, "cannot record an event step");
        }
    }

    /// Seconds since the task started.
    pub fn elapsed_ms(&self) -> i64 {
        Timestamp::now().millis() - self.started.millis()
    }

    pub async fn finish(&self, ctx: &TaskCtx, ok: bool, summary: &str, rto_ms: Option<i64>) {
        let status = if ok { "succeeded" } else { "failed" };
        if let Err(e) =
            ctx.state.db.update_event(&self.id, &self.steps, Some((status, summary, rto_ms)), self.forced).await
        {
            tracing::warn!(error = %e, "cannot record the end of an event");
        }
    }
}
