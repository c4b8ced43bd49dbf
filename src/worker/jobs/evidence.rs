//! The record of a failover, failback or drill: each step with its times
//! and outcome, written to the event as it goes (so a crash keeps what
//! happened), plus the task log line for people watching.

use crate::db::events::Step;
use crate::domain::{TaskKind, Timestamp};
use crate::worker::context::TaskCtx;

use super::JobError;

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
