//! The worker: claims queued tasks under a lease, runs them, keeps the
//! lease alive with a heartbeat, and recovers tasks whose worker died. It
//! never decides what to run next beyond queue order; the API and the
//! scheduler do that by queueing.

pub mod context;
pub mod jobs;
pub mod leftovers;
pub mod retention;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;

use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::db::tasks::Task;
use crate::domain::{ErrorKind, TaskId, TaskKind, TaskStatus, Transfer};
use crate::hypervisor::proxmox::ProxmoxCli;
use crate::state::AppState;
use context::{Phases, Span, TaskCtx};
use jobs::restore::Source;
use jobs::stream::Forward;
use jobs::{fail, JobError};

/// Claims and runs tasks until `shutdown`; then claims nothing more and
/// returns once every running task has ended or handed itself back.
pub async fn run(state: Arc<AppState>, shutdown: CancellationToken) {
    // Without a key (no ssh-keygen yet) the API still serves; tasks fail
    // with ssh's own reason until the key exists.
    match crate::sshkey::ensure(&state.settings.ssh_dir()).await {
        Ok(key) => tracing::info!(key = %key.public_line, "worker ready; this is the key hypervisors must accept"),
        Err(e) => {
            tracing::error!(error = %e, "worker has no SSH key; install openssh-client and run `drswitch pubkey`")
        }
    }
    let worker_id = format!("{}-{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let sweeper = tokio::spawn(sweep_now_and_then(state.clone(), shutdown.clone()));
    let concurrency = state.settings.worker_concurrency;
    let slots = Arc::new(Semaphore::new(concurrency));
    let finished = Arc::new(Notify::new());
    while !shutdown.is_cancelled() {
        claim_all(&state, &worker_id, &slots, &finished, &shutdown).await;
        tokio::select! {
            _ = state.wake.until_task_queued() => {}
            _ = finished.notified() => {}
            _ = tokio::time::sleep(state.settings.poll_interval) => {}
            _ = shutdown.cancelled() => {}
        }
    }
    // Every slot back means every running task has ended.
    let _ = slots.acquire_many(concurrency as u32).await;
    sweeper.abort();
}

/// How often files of ended tasks are looked for (a host that was down at
/// the end, a task cancelled while queued after a crash).
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Removes what ended tasks left, on hosts and here: at start, then every
/// `SWEEP_EVERY`.
async fn sweep_now_and_then(state: Arc<AppState>, shutdown: CancellationToken) {
    loop {
        leftovers::sweep_ended(&state).await;
        let store = state.archives();
        for task in store.partial_tasks() {
            if let Ok(t) = state.db.task(task).await {
                if t.is_none_or(|t| t.status.is_final()) {
                    store.sweep_partials(task);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Claims tasks while there are free slots and runnable tasks.
async fn claim_all(
    state: &Arc<AppState>,
    worker_id: &str,
    slots: &Arc<Semaphore>,
    finished: &Arc<Notify>,
    shutdown: &CancellationToken,
) {
    while !shutdown.is_cancelled() {
        let Ok(permit) = slots.clone().try_acquire_owned() else { return };
        let lease_ms = state.settings.lease.as_millis() as i64;
        let (task, expired) = match state.db.claim_next(worker_id, lease_ms).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot claim tasks");
                return;
            }
        };
        for e in &expired {
            tracing::warn!(task = %e.task_id, requeued = e.requeued, "recovered a task whose worker stopped");
            if !e.requeued {
                state.archives().sweep_partials(e.task_id);
            }
        }
        if expired.iter().any(|e| !e.requeued) {
            // Files the dead worker left on hosts; in the background, so a
            // host that is down now does not hold up claiming.
            let state = state.clone();
            tokio::spawn(async move { leftovers::sweep_ended(&state).await });
        }
        let Some(task) = task else { return };
        let state = state.clone();
        let worker_id = worker_id.to_string();
        let finished = finished.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            execute(state, worker_id, task, shutdown).await;
            drop(permit);
            finished.notify_one();
        });
    }
}

/// Aborts the heartbeat however the job ends, a panic included: a lease
/// renewed for a job that is gone would hold its hosts forever.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs one claimed task to its final state, or hands it back to the queue
/// when the process shuts down.
async fn execute(state: Arc<AppState>, worker_id: String, task: Task, shutdown: CancellationToken) {
    let id = task.id;
    tracing::info!(task = %id, kind = %task.kind, attempt = task.attempt, "task started");
    let cancel = CancellationToken::new();
    let lost = CancellationToken::new();
    let (ctx, writer) = TaskCtx::new(state.clone(), task, cancel.clone());
    let heartbeat = AbortOnDrop(tokio::spawn(heartbeat(
        state.clone(),
        worker_id.clone(),
        id,
        Watch { cancel: cancel.clone(), lost: lost.clone(), shielded: ctx.shielded.clone() },
    )));
    // A shutdown stops the job like a cancel does; the job's shielded
    // steps (a replica being replaced) still run to their end.
    let stopping = AbortOnDrop(tokio::spawn({
        let (shutdown, cancel) = (shutdown.clone(), cancel.clone());
        async move {
            shutdown.cancelled().await;
            cancel.cancel();
        }
    }));
    ctx.log(format!("attempt {} of {} started", ctx.task.attempt, ctx.task.max_attempts));
    // What an earlier attempt of this task left on hosts goes first,
    // unless it left a transfer to go on from.
    if !leftovers::resumable(&ctx.task) {
        leftovers::sweep(&state, id, |line| ctx.log(line)).await;
    }
    let result = match AssertUnwindSafe(run_job(&ctx)).catch_unwind().await {
        Ok(r) => r,
        Err(panic) => {
            tracing::error!(task = %id, panic = crate::supervisor::panic_text(&panic), "task panicked");
            Err(fail(
                ErrorKind::Internal,
                "drswitch hit an internal error while running this task; see the server log.",
            ))
        }
    };
    if !lost.is_cancelled() {
        // Another worker may own the task now: its files are not ours to remove.
        leftovers::sweep(&state, id, |line| ctx.log(line)).await;
    }
    drop(stopping);
    let handed_back = shutdown.is_cancelled() && matches!(result, Err(JobError::Cancelled));
    let (status, error) = match &result {
        Ok(()) => (TaskStatus::Succeeded, None),
        Err(JobError::Cancelled) => {
            (TaskStatus::Cancelled, Some("Cancelled while running; partial files were removed.".to_string()))
        }
        Err(JobError::Failed { message, .. }) => (TaskStatus::Failed, Some(message.clone())),
    };
    match &error {
        _ if handed_back => {
            ctx.log("drswitch is stopping: the task goes back to the queue; this attempt does not count")
        }
        None => ctx.log("task succeeded"),
        Some(e) => ctx.log(format!("task {status}: {e}")),
    }
    drop(ctx);
    let _ = writer.await;
    drop(heartbeat);
    if lost.is_cancelled() {
        tracing::warn!(task = %id, "lost the lease; another worker owns the task now");
        return;
    }
    let recorded = if handed_back {
        state.db.hand_back_task(id, &worker_id).await
    } else {
        let kind = result.as_ref().err().and_then(JobError::kind);
        state.db.finish_task(id, &worker_id, status, error.as_deref(), kind).await
    };
    match recorded {
        Ok(true) if handed_back => tracing::info!(task = %id, "task handed back at shutdown"),
        Ok(true) => tracing::info!(task = %id, %status, error = error.as_deref().unwrap_or(""), "task finished"),
        Ok(false) => tracing::warn!(task = %id, "task was taken over before it finished"),
        Err(e) => tracing::error!(task = %id, error = %e, "cannot record the end of a task"),
    }
}

/// What the heartbeat signals to the job, and how it learns the job is
/// replacing a replica.
struct Watch {
    cancel: CancellationToken,
    lost: CancellationToken,
    shielded: Arc<std::sync::atomic::AtomicBool>,
}

/// Renews the lease and watches for cancel requests. If the database
/// cannot be reached for most of a lease, the job is stopped before another
/// worker may take the task over, so two workers never act on one VM;
/// while the job replaces a replica it keeps trying instead, since the
/// replacement cannot be cut and the lease must not lapse meanwhile.
async fn heartbeat(state: Arc<AppState>, worker_id: String, id: TaskId, w: Watch) {
    let lease = state.settings.lease;
    let lease_ms = lease.as_millis() as i64;
    let every = (lease / 3).max(Duration::from_millis(300));
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(every.min(Duration::from_secs(1))).await;
        match state.db.heartbeat(id, &worker_id, lease_ms).await {
            Ok((true, false)) => last_renewed = tokio::time::Instant::now(),
            Ok((true, true)) => {
                last_renewed = tokio::time::Instant::now();
                w.cancel.cancel();
            }
            Ok((false, _)) => {
                w.lost.cancel();
                w.cancel.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(task = %id, error = %e, "heartbeat failed");
                let shielded = w.shielded.load(std::sync::atomic::Ordering::SeqCst);
                if !shielded && last_renewed.elapsed() >= lease * 2 / 3 {
                    tracing::error!(task = %id, "cannot renew the lease; stopping the task before another worker takes it");
                    w.lost.cancel();
                    w.cancel.cancel();
                    return;
                }
            }
        }
    }
}

async fn run_job(ctx: &TaskCtx) -> Result<(), JobError> {
    let db = &ctx.state.db;
    let pair = db
        .pair(ctx.task.pair_id)
        .await?
        .ok_or_else(|| fail(ErrorKind::Config, "The pair of this task no longer exists."))?;
    #[cfg(debug_assertions)]
    panic_probe(&pair);
    // The state is checked again here, not only when the task was queued:
    // a failover may have run in between, and then the replica is the live
    // copy that no backup, restore or drill of the old source may touch.
    if !ctx.task.kind.is_switch() || ctx.task.kind == TaskKind::Drill {
        crate::service::tasks::allowed_in_state(&pair, ctx.task.kind)
            .map_err(|e| fail(ErrorKind::Config, e.to_string()))?;
    }
    let load = |id| async move {
        db.hypervisor(id).await?.ok_or_else(|| fail(ErrorKind::Config, "A hypervisor of this pair no longer exists."))
    };
    let connect = |h| crate::hypervisor::connect(&ctx.state, h).map_err(JobError::from);
    // Placement chose a DRC host when the task was queued (backups need none).
    let dst_id = match pair.dst_hypervisor_id {
        Some(id) => id,
        None if ctx.task.kind == TaskKind::Backup => pair.src_hypervisor_id,
        None => return Err(fail(ErrorKind::Config, "The pair has no DRC hypervisor yet; queue it again to place it.")),
    };
    match ctx.task.kind {
        TaskKind::Backup => {
            let src = load(pair.src_hypervisor_id).await?;
            let hv = connect(&src)?;
            match pair.transfer {
                Transfer::Staged => {
                    jobs::backup::run_backup(ctx, &pair, &src, &hv, Phases::new(0.0, 50.0, 100.0)).await?;
                }
                Transfer::Streaming => {
                    let span = Span { from: 0.0, to: 100.0 };
                    let none: Option<Forward<'_, ProxmoxCli>> = None;
                    let s = jobs::stream::run_streamed(ctx, &pair, &src, &hv, none, span).await?;
                    jobs::backup::prune(ctx, &pair, s.archive.id).await?;
                }
            }
            Ok(())
        }
        TaskKind::Restore => {
            let dst = load(dst_id).await?;
            let archive = match ctx.task.archive_id {
                Some(a) => db
                    .archive(a)
                    .await?
                    .ok_or_else(|| fail(ErrorKind::Config, "The archive to restore was deleted."))?,
                None => db
                    .list_archives(pair.id)
                    .await?
                    .into_iter()
                    .find(|a| a.verified_at.is_some())
                    .ok_or_else(|| fail(ErrorKind::Config, "This pair has no verified archive to restore yet."))?,
            };
            db.set_task_archive(ctx.task.id, archive.id).await?;
            let hv = connect(&dst)?;
            let source = Source::Store { verify: true };
            jobs::restore::run_restore(ctx, &pair, &dst, &hv, &archive, source, Phases::new(0.0, 40.0, 100.0), false)
                .await
        }
        TaskKind::Replicate => {
            let dst = load(dst_id).await?;
            // An earlier attempt died while replacing the replica with its
            // already verified archive: repair with that archive instead of
            // dumping the DC VM again (the DC may be what is down).
            // Likewise when it died after storing the archive: go on with
            // the copy to the DRC host from what arrived there.
            let resumed = match (pair.replica_task_id, ctx.task.archive_id) {
                (Some(t), Some(a)) if t == ctx.task.id => db.archive(a).await?.map(|a| (a, true)),
                (_, Some(a)) if ctx.task.attempt > 1 => db.archive(a).await?.map(|a| (a, false)),
                _ => None,
            };
            if let Some((archive, touched)) = resumed {
                ctx.log(if touched {
                    format!("resuming with {}: an earlier attempt was replacing the replica with it", archive.file_name)
                } else {
                    format!("resuming with {}: an earlier attempt stored and verified it", archive.file_name)
                });
                let dst_hv = connect(&dst)?;
                return jobs::restore::run_restore(
                    ctx,
                    &pair,
                    &dst,
                    &dst_hv,
                    &archive,
                    Source::Store { verify: true },
                    Phases::new(50.0, 75.0, 100.0),
                    false,
                )
                .await;
            }
            let src = load(pair.src_hypervisor_id).await?;
            let (src_hv, dst_hv) = (connect(&src)?, connect(&dst)?);
            let (archive, source, restore_phases) = match pair.transfer {
                Transfer::Staged => {
                    let archive =
                        jobs::backup::run_backup(ctx, &pair, &src, &src_hv, Phases::new(0.0, 25.0, 50.0)).await?;
                    // Just verified on arrival; no need to read it again.
                    (archive, Source::Store { verify: false }, Phases::new(50.0, 75.0, 100.0))
                }
                Transfer::Streaming => {
                    let forward = Some(Forward { dst: &dst, hv: &dst_hv });
                    let span = Span { from: 0.0, to: 70.0 };
                    let s = jobs::stream::run_streamed(ctx, &pair, &src, &src_hv, forward, span).await?;
                    jobs::backup::prune(ctx, &pair, s.archive.id).await?;
                    let source = match s.on_host {
                        Some((dir, remote)) => Source::OnHost { dir, remote },
                        None => Source::Store { verify: false },
                    };
                    (s.archive, source, Phases::new(70.0, 70.0, 100.0))
                }
            };
            jobs::restore::run_restore(ctx, &pair, &dst, &dst_hv, &archive, source, restore_phases, false).await
        }
        TaskKind::Failover => {
            let (src, dst) = (load(pair.src_hypervisor_id).await?, load(dst_id).await?);
            let (src_hv, dst_hv) = (connect(&src)?, connect(&dst)?);
            jobs::failover::run_failover(ctx, &pair, &src, &dst, &src_hv, &dst_hv).await
        }
        TaskKind::Drill => {
            let dst = load(dst_id).await?;
            let hv = connect(&dst)?;
            jobs::drill::run_drill(ctx, &pair, &dst, &hv).await
        }
        TaskKind::Failback => {
            let (src, dst) = (load(pair.src_hypervisor_id).await?, load(dst_id).await?);
            let (src_hv, dst_hv) = (connect(&src)?, connect(&dst)?);
            jobs::failback::run_failback(ctx, &pair, &src, &dst, &src_hv, &dst_hv).await
        }
    }
}

/// Debug builds only: `DRSWITCH_DEBUG_PANIC_VMID` makes jobs of pairs with
/// that source VMID panic, so tests can prove a panicking job fails its task
/// and frees its hosts. Release builds have no such switch.
#[cfg(debug_assertions)]
fn panic_probe(pair: &crate::db::pairs::Pair) {
    if std::env::var("DRSWITCH_DEBUG_PANIC_VMID").ok().and_then(|v| v.parse::<i64>().ok())
        == Some(i64::from(pair.src_vmid))
    {
        panic!("panic probe for VM {}", pair.src_vmid);
    }
}
