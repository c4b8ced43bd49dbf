//! Files drswitch made on hypervisors for one task live in one directory
//! of its own, `<dump_dir>/.drswitch-<task>`, recorded in the database
//! before it is created. Whoever ends the task, in any state, removes it;
//! after a crash the worker that recovers the task does. Nothing outside
//! such a directory is ever removed.

use tokio_util::sync::CancellationToken;

use super::context::TaskCtx;
use super::jobs::{fail, JobError};
use crate::db::hypervisors::Hypervisor as HypervisorRecord;
use crate::domain::{DirPath, ErrorKind, HypervisorId, TaskId};
use crate::hypervisor::Hypervisor;
use crate::state::AppState;

const PREFIX: &str = ".drswitch-";

/// The task's own directory in a host's dump dir.
pub fn task_dir(dump_dir: &DirPath, task: TaskId) -> String {
    format!("{}/{PREFIX}{task}", dump_dir.as_str().trim_end_matches('/'))
}

/// Records, then creates, the task's directory on the host. A later
/// attempt of a task that left a transfer to go on from finds the
/// directory there: the name is this task's own, so it is its.
pub async fn open_task_dir(ctx: &TaskCtx, hv: &impl Hypervisor, host: &HypervisorRecord) -> Result<String, JobError> {
    let dir = task_dir(&host.dump_dir, ctx.task.id);
    ctx.state.db.record_remote_file(ctx.task.id, host.id, &dir).await?;
    match hv.make_dir(&dir, &ctx.cancel).await {
        Ok(()) => Ok(dir),
        // Asked again rather than read from mkdir's message, which speaks
        // the host's language.
        Err(e) if ctx.task.attempt > 1 && hv.file_size(&dir, &ctx.cancel).await.is_ok() => {
            ctx.log(format!("going on in {dir} on {}, which an earlier attempt made ({e})", host.name));
            Ok(dir)
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether an earlier attempt left a transfer the next one goes on from
/// (then its files on hosts and here are kept at the start).
pub fn resumable(task: &crate::db::tasks::Task) -> bool {
    task.attempt > 1
        && (task.resume_dump.is_some()
            || task.kind == crate::domain::TaskKind::Restore
            || (task.kind == crate::domain::TaskKind::Replicate && task.archive_id.is_some()))
}

/// Removes every directory the task recorded; one that cannot be removed
/// now (host down) stays recorded for the next sweep.
pub async fn sweep(state: &AppState, task: TaskId, log: impl Fn(String)) {
    let files = match state.db.remote_files(task).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(task = %task, error = %e, "cannot list the task's files on hosts");
            return;
        }
    };
    for f in files {
        match remove_one(state, task, f.hypervisor_id, &f.path).await {
            Ok(name) => {
                let _ = state.db.forget_remote_file(task, f.hypervisor_id, &f.path).await;
                log(format!("removed {} from {name}", f.path));
            }
            Err(e) => log(format!("could not remove {}: {e}", f.path)),
        }
    }
}

async fn remove_one(state: &AppState, task: TaskId, host: HypervisorId, path: &str) -> Result<String, JobError> {
    // Only the shape this module creates, whatever the database says.
    if !path.ends_with(&format!("/{PREFIX}{task}")) || path.contains("/../") {
        return Err(fail(
            ErrorKind::Internal,
            format!("{path} is not a directory drswitch made for this task; left alone."),
        ));
    }
    let Some(h) = state.db.hypervisor(host).await? else {
        // The host was deleted: nothing left to clean on it.
        return Ok("a deleted hypervisor".into());
    };
    let hv = crate::hypervisor::connect(state, &h)?;
    hv.remove(&[path], &CancellationToken::new()).await?;
    Ok(h.name)
}

/// Sweeps tasks that ended for good while their files stayed behind (their
/// worker died, or a host was down at the end).
pub async fn sweep_ended(state: &AppState) {
    let Ok(tasks) = state.db.tasks_with_leftovers().await else { return };
    for t in tasks {
        sweep(state, t, |line| tracing::info!(task = %t, "{line}")).await;
    }
}
