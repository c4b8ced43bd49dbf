//! Backup of a pair: preflight → dump on the DC host into the task's own
//! directory → sha256 there while pulling to a temporary name → sha256 here
//! → store → record → remove the task's directory → retention.

use std::path::Path;

use tokio_util::sync::CancellationToken;

use super::{fail, size, JobError};
use crate::archive_store::{sha256_file, StoreError};
use crate::db::archives::{Archive, NewArchive};
use crate::db::hypervisors::Hypervisor as HypervisorRecord;
use crate::db::pairs::Pair;
use crate::domain::{ArchiveId, ArchiveName, DirPath, ErrorKind};
use crate::hypervisor::{DumpOptions, Dumped, GuestState, HvError, HvEvent, Hypervisor};
use crate::worker::context::{Phases, Span, TaskCtx};
use crate::worker::leftovers;
use crate::worker::retention::{to_prune, KeepRules};

/// The fewest archives a pair keeps: the newest and the one before it, so a
/// restore of the newest that fails can still roll back.
pub const MIN_KEEP_LAST: u32 = 2;

pub async fn run_backup(
    ctx: &TaskCtx,
    pair: &Pair,
    src: &HypervisorRecord,
    hv: &impl Hypervisor,
    phases: Phases,
) -> Result<Archive, JobError> {
    let (dump, pull) = (phases.first, phases.second);
    let state = &ctx.state;
    let cancel = &ctx.cancel;
    if !src.enabled {
        return Err(fail(ErrorKind::Config, format!("The DC hypervisor {} is disabled.", src.name)));
    }
    let store = state.archives();
    let dir = store
        .prepare(pair.id)
        .map_err(|e| fail(ErrorKind::Internal, format!("Cannot create the archive directory of this pair: {e}.")))?;
    if let Some(d) = resume(ctx, hv, src).await? {
        ctx.log(format!(
            "going on from the dump {} an earlier attempt left on {}; the part of it already copied here is kept",
            d.name, src.name
        ));
        let task_dir = leftovers::task_dir(&src.dump_dir, ctx.task.id);
        return finish(ctx, pair, src, hv, d, &dir, &task_dir, pull).await;
    }
    store.sweep_partials(ctx.task.id);

    ctx.phase("preflight", dump.at(0.0));
    ctx.log(format!("preflight: checking VM {} on {}", pair.src_vmid, src.name));
    // The facts are asked for at once: each is a round trip, and on a WAN
    // those add up.
    let (guest, src_free, here_free) = tokio::join!(
        hv.guest_state(pair.guest, pair.src_vmid, cancel),
        hv.free_bytes(&src.dump_dir, cancel),
        store.free_bytes(pair.id)
    );
    match guest? {
        GuestState::Missing => {
            return Err(fail(ErrorKind::GuestMissing, format!("VM {} does not exist on {}.", pair.src_vmid, src.name)))
        }
        s => ctx.log(format!("preflight: VM {} is {s}", pair.src_vmid)),
    }
    let src_free = src_free?;
    let here_free = here_free.map_err(|e| fail(ErrorKind::Internal, e.to_string()))?;
    ctx.log(format!(
        "preflight: free space {} in {} on {}, {} on the middleware",
        size(src_free),
        src.dump_dir,
        src.name,
        size(here_free)
    ));
    // The newest archive of the pair is the best guess of the next one's size.
    let newest = state.db.list_archives(pair.id).await?.into_iter().next();
    let expect = newest.as_ref().map(|a| a.size_bytes.max(0) as u64).unwrap_or(0);
    super::need_room(&src.name, &format!(" in {}", src.dump_dir), src_free, expect, super::LAST_ARCHIVE)?;
    super::need_room(super::HERE, "", here_free, expect, super::LAST_ARCHIVE)?;

    if let Some(a) = &newest {
        next_second_after(a.created_at.millis()).await;
    }
    ctx.phase("dumping", dump.at(0.0));
    // The dump goes into the task's own directory, so everything it leaves
    // (archive, log, temporary files) is removed with that directory and no
    // file of anyone else's is ever touched.
    let task_dir = leftovers::open_task_dir(ctx, hv, src).await?;
    let task_dir_path: DirPath = task_dir
        .parse()
        .map_err(|_| fail(ErrorKind::Config, format!("{task_dir} is not a usable directory on {}.", src.name)))?;
    let opts = DumpOptions { dump_dir: task_dir_path, compress: pair.compress, mode: pair.mode };
    let rep = ctx.reporter();
    let dumped = {
        let mut on = |e: HvEvent<'_>| match e {
            HvEvent::Line(line) => rep.output(line),
            HvEvent::Progress { percent, done, total } => {
                rep.progress("dumping", dump.at(f64::from(percent) / 100.0), done as i64, total as i64)
            }
        };
        hv.dump(pair.src_vmid, &opts, cancel, &mut on).await
    };
    let dumped = match dumped {
        Ok(d) => d,
        Err(e) => {
            if matches!(e, HvError::Cancelled) {
                // The cut session's dump may still be writing its files.
                let _ = hv.wait_for_dumps(&CancellationToken::new()).await;
            }
            remove_task_dir(ctx, hv, src, &task_dir).await;
            return Err(e.into());
        }
    };
    // Should this attempt die while copying, the next goes on from here.
    state.db.set_resume_dump(ctx.task.id, Some(&dumped.path)).await?;
    finish(ctx, pair, src, hv, dumped, &dir, &task_dir, pull).await
}

/// The finished dump an earlier attempt of this task left in the task's
/// directory on the DC host, if it is still there.
async fn resume(ctx: &TaskCtx, hv: &impl Hypervisor, src: &HypervisorRecord) -> Result<Option<Dumped>, JobError> {
    let Some(path) = ctx.task.resume_dump.as_deref().filter(|_| ctx.task.attempt > 1) else { return Ok(None) };
    let task_dir = leftovers::task_dir(&src.dump_dir, ctx.task.id);
    // Only a standard archive name right in this task's own directory.
    let name = path
        .strip_prefix(&format!("{task_dir}/"))
        .filter(|n| !n.contains('/'))
        .and_then(|n| n.parse::<ArchiveName>().ok());
    let found = match name {
        Some(name) => match hv.file_size(path, &ctx.cancel).await {
            Ok(_) => Some(Dumped { path: path.to_string(), name }),
            Err(HvError::Cancelled) => return Err(JobError::Cancelled),
            // A host that does not answer now may still hold the dump: fail
            // this attempt (the next one looks again) rather than dump twice.
            Err(e @ HvError::Failed { kind: ErrorKind::HostUnreachable | ErrorKind::Timeout, .. }) => {
                return Err(e.into())
            }
            Err(_) => None,
        },
        None => None,
    };
    if found.is_none() {
        ctx.log(format!("the dump an earlier attempt left on {} is gone; dumping again", src.name));
        ctx.state.db.set_resume_dump(ctx.task.id, None).await?;
        leftovers::sweep(&ctx.state, ctx.task.id, |line| ctx.log(line)).await;
    }
    Ok(found)
}

/// Copies the dump here, stores it, cleans the DC host and prunes.
#[allow(clippy::too_many_arguments)]
async fn finish(
    ctx: &TaskCtx,
    pair: &Pair,
    src: &HypervisorRecord,
    hv: &impl Hypervisor,
    dumped: Dumped,
    dir: &Path,
    task_dir: &str,
    pull: Span,
) -> Result<Archive, JobError> {
    let store = ctx.state.archives();

    let result = fetch(ctx, pair, hv, &dumped.path, &dumped.name, dir, pull).await;
    // The dump goes now whatever happened; only a worker that died while
    // copying leaves it for the next attempt.
    let _ = ctx.state.db.set_resume_dump(ctx.task.id, None).await;
    remove_task_dir(ctx, hv, src, task_dir).await;
    if result.is_err() {
        store.sweep_partials(ctx.task.id);
        return result;
    }
    let archive = result?;
    prune(ctx, pair, archive.id).await?;
    Ok(archive)
}

/// vzdump names archives after the second it starts in; a second dump
/// within the second the last one was stored would get the same name.
pub(crate) async fn next_second_after(stored_ms: i64) {
    let now = crate::domain::Timestamp::now().millis();
    if now.div_euclid(1000) <= stored_ms.div_euclid(1000) {
        let wait = (stored_ms.div_euclid(1000) + 1) * 1000 - now;
        tokio::time::sleep(std::time::Duration::from_millis(wait.max(0) as u64 + 5)).await;
    }
}

async fn fetch(
    ctx: &TaskCtx,
    pair: &Pair,
    hv: &impl Hypervisor,
    remote_path: &str,
    name: &ArchiveName,
    dir: &Path,
    pull: Span,
) -> Result<Archive, JobError> {
    let cancel = &ctx.cancel;
    let store = ctx.state.archives();
    ctx.phase("pulling", pull.at(0.0));
    let bytes = hv.file_size(remote_path, cancel).await?;
    let free = crate::archive_store::free_bytes(dir).await.map_err(|e| fail(ErrorKind::Internal, e.to_string()))?;
    super::need_room(super::HERE, "", free, bytes, "the archive is")?;
    let tmp = store.partial(pair.id, ctx.task.id, name);
    let total = bytes as i64;
    super::log_limit(ctx, hv);
    if let Ok(m) = std::fs::metadata(&tmp) {
        ctx.log(format!("{} of {} arrived before; copying on from there", size(m.len()), size(bytes)));
    }
    ctx.reporter().progress("pulling", pull.at(0.0), 0, total);
    let rep = ctx.reporter();
    let mut on = transfer_progress(&rep, "pulling", pull, bytes);
    // The source checksum is computed while the copy runs: both only read the file.
    let (sha, pulled) = tokio::join!(hv.sha256(remote_path, cancel), hv.pull(remote_path, &tmp, cancel, &mut on));
    pulled?;
    let sha = sha?;
    ctx.log(format!("source archive {name}: {} sha256 {sha}", size(bytes)));
    ctx.reporter().progress("verifying", pull.at(0.9), total, total);
    let local_sha = sha256_file(&tmp)
        .await
        .map_err(|e| fail(ErrorKind::Internal, format!("Cannot read the copied archive: {e}.")))?;
    if local_sha != sha {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(
            ErrorKind::Checksum,
            format!(
                "The copied archive {name} does not match its source checksum ({local_sha} here, {sha} on the DC host)."
            ),
        ));
    }
    store_verified(ctx, pair, name, &tmp, &sha, total).await
}

/// Gives a verified partial file its archive name and records it as this
/// task's archive (staged pulls and streams alike).
pub(crate) async fn store_verified(
    ctx: &TaskCtx,
    pair: &Pair,
    name: &ArchiveName,
    tmp: &Path,
    sha: &str,
    size_bytes: i64,
) -> Result<Archive, JobError> {
    ctx.state.archives().store(tmp, pair.id, name).map_err(|e| match e {
        StoreError::Exists(_) => fail(
            ErrorKind::Config,
            format!("An archive named {name} is already stored for this pair; nothing was replaced."),
        ),
        StoreError::Io(e) => fail(ErrorKind::Internal, format!("Cannot store the verified archive: {e}.")),
    })?;
    let archive = ctx
        .state
        .db
        .insert_archive(&NewArchive {
            pair_id: pair.id,
            file_name: name,
            size_bytes,
            sha256: sha,
            task_id: ctx.task.id,
        })
        .await?;
    ctx.state.db.set_task_archive(ctx.task.id, archive.id).await?;
    ctx.log(format!("archive {name} stored and verified (sha256 {sha})"));
    Ok(archive)
}

/// Turns a transfer's events into the task's progress (bytes of `total`,
/// 90 % of the span; checking takes the rest) and log.
pub(crate) fn transfer_progress<'a>(
    rep: &'a crate::worker::context::Reporter,
    phase: &'static str,
    span: Span,
    total: u64,
) -> impl FnMut(HvEvent<'_>) + Send + 'a {
    move |e| match e {
        HvEvent::Line(line) => rep.log(line),
        HvEvent::Progress { done, .. } => {
            let done = done.min(total);
            let f = if total == 0 { 1.0 } else { done as f64 / total as f64 };
            rep.progress(phase, span.at(f * 0.9), done as i64, total as i64);
        }
    }
}

/// Removes the task's directory on the DC host, dump and all. Runs even
/// after a cancel; if the host cannot be reached, the directory stays
/// recorded and the end-of-task sweep tries again.
async fn remove_task_dir(ctx: &TaskCtx, hv: &impl Hypervisor, host: &HypervisorRecord, dir: &str) {
    match hv.remove(&[dir], &CancellationToken::new()).await {
        Ok(()) => {
            let _ = ctx.state.db.forget_remote_file(ctx.task.id, host.id, dir).await;
            ctx.log(format!("removed {dir} and the dump in it from {}", hv.name()));
        }
        Err(e) => ctx.log(format!("could not remove {dir} from {}: {e}", hv.name())),
    }
}

/// Applies the pair's keep rules, except to archives something still
/// needs: the one just made, the one the replica holds (a rollback restores
/// it), and any a queued or running task names.
pub(crate) async fn prune(ctx: &TaskCtx, pair: &Pair, made: ArchiveId) -> Result<(), JobError> {
    let archives = ctx.state.db.list_archives(pair.id).await?;
    let verified: Vec<_> =
        archives.iter().filter(|a| a.verified_at.is_some()).map(|a| (a.id, a.created_at.to_datetime())).collect();
    let mut protected = ctx.state.db.archives_in_use(pair.id).await?;
    protected.push(made);
    let rules = KeepRules {
        last: pair.keep_last.max(MIN_KEEP_LAST),
        daily: pair.keep_daily,
        weekly: pair.keep_weekly,
        monthly: pair.keep_monthly,
    };
    let mut gone = to_prune(&verified, rules, &ctx.state.settings.timezone);
    gone.retain(|id| !protected.contains(id));
    let store = ctx.state.archives();
    let mut pruned = 0;
    for a in archives.iter().filter(|a| gone.contains(&a.id)) {
        // The record goes first and only if still unused; then the file.
        if ctx.state.db.delete_archive_if_unused(a.id).await? {
            store.remove(pair.id, &a.file_name);
            ctx.log(format!("retention: pruned {}", a.file_name));
            pruned += 1;
        }
    }
    ctx.log(format!("retention: {} archive(s) kept", verified.len() - pruned));
    Ok(())
}
