//! What a running task carries: its cancel token, and a channel that writes
//! its log lines and progress to the database in order, off the hot path
//! (ssh output callbacks are synchronous), with progress coalesced.

use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::db::tasks::Task;
use crate::domain::TaskId;
use crate::state::AppState;

/// Remote output lines kept per task: a chatty or looping command must not
/// fill the database. drswitch's own lines are always kept.
pub const MAX_OUTPUT_LINES: usize = 2000;

enum Event {
    Log(String),
    /// A line a remote command printed.
    Output(String),
    Progress {
        phase: &'static str,
        percent: i64,
        done: i64,
        total: i64,
    },
}

/// A share of the task's 0–100 progress bar given to one phase.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub from: f64,
    pub to: f64,
}

/// A job's two halves of its share of the bar (dump and pull, push and
/// restore).
#[derive(Debug, Clone, Copy)]
pub struct Phases {
    pub first: Span,
    pub second: Span,
}

impl Phases {
    pub const fn new(from: f64, mid: f64, to: f64) -> Self {
        Self { first: Span { from, to: mid }, second: Span { from: mid, to } }
    }
}

impl Span {
    pub fn at(&self, fraction: f64) -> i64 {
        (self.from + (self.to - self.from) * fraction.clamp(0.0, 1.0)).round() as i64
    }
}

pub struct TaskCtx {
    pub state: Arc<AppState>,
    pub task: Task,
    pub cancel: CancellationToken,
    /// Set while the job replaces a replica: nothing may stop it then.
    pub shielded: Arc<AtomicBool>,
    tx: mpsc::UnboundedSender<Event>,
}

/// While alive, the task is replacing a replica: its heartbeat does not give
/// up on a database outage and shutdown waits for it.
pub struct Shield {
    state: Arc<AppState>,
    flag: Arc<AtomicBool>,
}

impl Drop for Shield {
    fn drop(&mut self) {
        self.flag.store(false, Ordering::SeqCst);
        self.state.in_flux.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Clone)]
pub struct Reporter {
    tx: mpsc::UnboundedSender<Event>,
}

impl Reporter {
    pub fn log(&self, line: impl Into<String>) {
        let _ = self.tx.send(Event::Log(line.into()));
    }

    /// A line of remote output (bounded per task).
    pub fn output(&self, line: impl Into<String>) {
        let _ = self.tx.send(Event::Output(line.into()));
    }

    pub fn progress(&self, phase: &'static str, percent: i64, done: i64, total: i64) {
        let _ = self.tx.send(Event::Progress { phase, percent, done, total });
    }
}

impl TaskCtx {
    /// Returns the context and the writer task to await after the job.
    pub fn new(state: Arc<AppState>, task: Task, cancel: CancellationToken) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_events(state.clone(), task.id, rx));
        (Self { state, task, cancel, shielded: Arc::new(AtomicBool::new(false)), tx }, writer)
    }

    pub fn shield(&self) -> Shield {
        self.shielded.store(true, Ordering::SeqCst);
        self.state.in_flux.fetch_add(1, Ordering::SeqCst);
        Shield { state: self.state.clone(), flag: self.shielded.clone() }
    }

    pub fn reporter(&self) -> Reporter {
        Reporter { tx: self.tx.clone() }
    }

    pub fn log(&self, line: impl Into<String>) {
        let _ = self.tx.send(Event::Log(line.into()));
    }

    pub fn phase(&self, phase: &'static str, percent: i64) {
        let _ = self.tx.send(Event::Progress { phase, percent, done: 0, total: 0 });
    }
}

/// A progress row as written to the task.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub phase: &'static str,
    pub percent: i64,
    pub done: i64,
    pub total: i64,
    pub rate_bps: Option<i64>,
    pub eta_secs: Option<i64>,
}

/// The rate of one phase's bytes, smoothed over samples at least
/// `MIN_GAP` apart (progress lines come many times a second and in bursts),
/// and the time left at that rate.
#[derive(Debug, Default)]
pub struct RateMeter {
    phase: &'static str,
    last: Option<(Instant, i64)>,
    rate: Option<f64>,
}

impl RateMeter {
    const MIN_GAP: Duration = Duration::from_millis(500);
    /// Weight of the newest sample: about the last five seconds count.
    const ALPHA: f64 = 0.3;

    pub fn sample(&mut self, at: Instant, phase: &'static str, done: i64, total: i64) -> (Option<i64>, Option<i64>) {
        if phase != self.phase || done <= 0 {
            *self = RateMeter { phase, last: Some((at, done.max(0))), rate: None };
            return (None, None);
        }
        match self.last {
            Some((t0, d0)) if at.duration_since(t0) >= Self::MIN_GAP && done >= d0 => {
                let now = (done - d0) as f64 / at.duration_since(t0).as_secs_f64();
                self.rate = Some(match self.rate {
                    Some(r) => r + Self::ALPHA * (now - r),
                    None => now,
                });
                self.last = Some((at, done));
            }
            Some((_, d0)) if done < d0 => self.last = Some((at, done)),
            None => self.last = Some((at, done)),
            _ => {}
        }
        let rate = self.rate.filter(|r| *r >= 1.0);
        let eta = rate.filter(|_| total > done).map(|r| ((total - done) as f64 / r).ceil() as i64);
        (rate.map(|r| r.round() as i64), eta)
    }
}

async fn write_events(state: Arc<AppState>, task_id: TaskId, mut rx: mpsc::UnboundedReceiver<Event>) {
    let mut last_write = Instant::now() - Duration::from_secs(1);
    let mut pending: Option<Progress> = None;
    let mut last_phase = "";
    let mut meter = RateMeter::default();
    let mut output_lines = 0usize;
    loop {
        let ev = tokio::select! {
            ev = rx.recv() => ev,
            _ = tokio::time::sleep(Duration::from_millis(250)), if pending.is_some() => {
                if let Some(p) = pending.take() {
                    let _ = state.db.set_progress(task_id, &p).await;
                    last_write = Instant::now();
                }
                continue;
            }
        };
        match ev {
            None => break,
            Some(Event::Output(line)) => {
                output_lines += 1;
                if output_lines <= MAX_OUTPUT_LINES {
                    append(&state, task_id, &line).await;
                }
            }
            Some(Event::Log(line)) => append(&state, task_id, &line).await,
            Some(Event::Progress { phase, percent, done, total }) => {
                let (rate_bps, eta_secs) = meter.sample(Instant::now(), phase, done, total);
                let p = Progress { phase, percent, done, total, rate_bps, eta_secs };
                // A phase change is written at once; within a phase at most 4 times a second.
                if phase != last_phase || last_write.elapsed() >= Duration::from_millis(250) {
                    let _ = state.db.set_progress(task_id, &p).await;
                    last_write = Instant::now();
                    last_phase = phase;
                    pending = None;
                } else {
                    pending = Some(p);
                }
            }
        }
    }
    if let Some(p) = pending {
        let _ = state.db.set_progress(task_id, &p).await;
    }
    if output_lines > MAX_OUTPUT_LINES {
        let dropped = output_lines - MAX_OUTPUT_LINES;
        let line = format!("{dropped} more lines of remote output were not kept (at most {MAX_OUTPUT_LINES} per task)");
        append(&state, task_id, &line).await;
    }
}

async fn append(state: &AppState, task_id: TaskId, line: &str) {
    if let Err(e) = state.db.append_log(task_id, line).await {
        tracing::warn!(task = %task_id, error = %e, "cannot write task log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_time_left() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        assert_eq!(m.sample(t0, "pulling", 0, 100_000_000), (None, None));
        // Bursts closer than the gap do not count as a sample.
        assert_eq!(m.sample(t0 + Duration::from_millis(100), "pulling", 5_000_000, 100_000_000), (None, None));
        let (rate, eta) = m.sample(t0 + Duration::from_secs(1), "pulling", 10_000_000, 100_000_000);
        assert_eq!(rate, Some(10_000_000));
        assert_eq!(eta, Some(9));
        // A steady 10 MB/s keeps the figure; a slower second moves it part way.
        let (rate, _) = m.sample(t0 + Duration::from_secs(2), "pulling", 15_000_000, 100_000_000);
        assert_eq!(rate, Some(8_500_000));
        // A new phase starts afresh.
        assert_eq!(m.sample(t0 + Duration::from_secs(3), "pushing", 1, 100), (None, None));
        // No total: a rate but no time left.
        let (rate, eta) = m.sample(t0 + Duration::from_secs(4), "pushing", 1001, 0);
        assert_eq!((rate, eta), (Some(1000), None));
    }
}
