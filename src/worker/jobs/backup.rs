//! Backup of a pair: preflight → vzdump on the DC host → sha256 there →
//! rsync pull to a temporary name → sha256 here → rename → record →
//! remove the source copy → retention.

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{fail, size, JobError};
use crate::db::archives::{Archive, NewArchive};
use crate::db::hypervisors::Hypervisor as HypervisorRecord;
use crate::db::pairs::Pair;
use crate::domain::DirPath;
use crate::hypervisor::proxmox::{archive_in, percent, ProxmoxSsh};
use crate::hypervisor::{DumpOptions, GuestState, HvError, Hypervisor};
use crate::transfer;
use crate::worker::context::{Span, TaskCtx};
use crate::worker::leftovers;
use crate::worker::retention::{to_prune, KeepRules};

/// The fewest archives a pair keeps: the newest and the one before it, so a
/// restore of the newest that fails can still roll back.
pub const MIN_KEEP_LAST: u32 = 2;

/// Where the archives of a pair live on the middleware.
pub fn pair_dir(archive_root: &Path, pair: Uuid) -> PathBuf {
    archive_root.join(pair.to_string())
}

/// Removes any partial files an earlier attempt of this task left.
pub fn sweep_partials(archive_root: &Path, task: Uuid) {
    let marker = format!("partial-{task}-");
    let Ok(dirs) = std::fs::read_dir(archive_root) else { return };
    for dir in dirs.flatten() {
        let Ok(files) = std::fs::read_dir(dir.path()) else { continue };
        for f in files.flatten() {
            if f.file_name().to_string_lossy().contains(&marker) {
                let _ = std::fs::remove_file(f.path());
            }
        }
    }
}

pub async fn run_backup(
    ctx: &TaskCtx,
    pair: &Pair,
    src: &HypervisorRecord,
    dump: Span,
    pull: Span,
) -> Result<Archive, JobError> {
    let state = &ctx.state;
    let cancel = &ctx.cancel;
    if !src.enabled {
        return Err(fail(format!("The DC hypervisor {} is disabled.", src.name)));
    }
    let hv = crate::hypervisor::proxmox(state, src)?;
    let dir = pair_dir(&state.settings.archive_dir(), pair.id);
    crate::files::own_dir(&dir)
        .map_err(|e| fail(format!("Cannot create the archive directory {}: {e}.", dir.display())))?;
    sweep_partials(&state.settings.archive_dir(), ctx.task.id);

    ctx.phase("preflight", dump.at(0.0));
    ctx.log(format!("preflight: checking VM {} on {}", pair.src_vmid, src.name));
    match hv.guest_state(pair.guest, pair.src_vmid, cancel).await? {
        GuestState::Missing => return Err(fail(format!("VM {} does not exist on {}.", pair.src_vmid, src.name))),
        s => ctx.log(format!("preflight: VM {} is {s}", pair.src_vmid)),
    }
    let src_free = hv.free_bytes(&src.dump_dir, cancel).await?;
    let here_free = transfer::free_bytes(&dir).await.map_err(|e| fail(e.to_string()))?;
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
    if src_free < expect {
        return Err(fail(format!(
            "{} has only {} free in {}, but the last archive of this VM took {}.",
            src.name,
            size(src_free),
            src.dump_dir,
            size(expect)
        )));
    }
    if here_free < expect {
        return Err(fail(format!(
            "The middleware's archive storage has only {} free, but the last archive of this VM took {}.",
            size(here_free),
            size(expect)
        )));
    }

    if let Some(a) = &newest {
        next_second_after(a.created_at.millis()).await;
    }
    ctx.phase("dumping", dump.at(0.0));
    // vzdump writes into the task's own directory, so everything it leaves
    // (archive, log, `.dat`, `.tmp`) is removed with that directory and no
    // file of anyone else's is ever touched.
    let task_dir = leftovers::open_task_dir(ctx, &hv, src).await?;
    let task_dir_path: DirPath =
        task_dir.parse().map_err(|_| fail(format!("{task_dir} is not a usable directory on {}.", src.name)))?;
    let opts = DumpOptions { dump_dir: task_dir_path.clone(), compress: pair.compress, mode: pair.mode };
    let rep = ctx.reporter();
    let dumped = {
        let mut on_line = |line: &str| {
            rep.output(line.to_string());
            if let Some(p) = percent(line) {
                rep.progress("dumping", dump.at(f64::from(p) / 100.0), 0, 0);
            }
        };
        hv.dump(pair.src_vmid, &opts, cancel, &mut on_line).await
    };
    let remote_path = match dumped {
        Ok(p) => p,
        Err(e) => {
            if matches!(e, HvError::Cancelled) {
                // The cut session's vzdump may still be writing its files.
                let _ = hv.wait_for_dumps(&CancellationToken::new()).await;
            }
            remove_task_dir(ctx, &hv, src, &task_dir).await;
            return Err(e.into());
        }
    };
    let name = match archive_in(&task_dir_path, &remote_path) {
        Some(n) => n,
        None => {
            remove_task_dir(ctx, &hv, src, &task_dir).await;
            return Err(fail(format!(
                "vzdump on {} wrote {remote_path:?}, which is not a standard archive in {task_dir}.",
                src.name
            )));
        }
    };

    let result = fetch(ctx, pair, &hv, &remote_path, &name, &dir, pull).await;
    remove_task_dir(ctx, &hv, src, &task_dir).await;
    if result.is_err() {
        sweep_partials(&state.settings.archive_dir(), ctx.task.id);
        return result;
    }
    let archive = result?;
    prune(ctx, pair, &dir, archive.id).await?;
    Ok(archive)
}

/// vzdump names archives after the second it starts in; a second dump
/// within the second the last one was stored would get the same name.
async fn next_second_after(stored_ms: i64) {
    let now = crate::domain::Timestamp::now().millis();
    if now.div_euclid(1000) <= stored_ms.div_euclid(1000) {
        let wait = (stored_ms.div_euclid(1000) + 1) * 1000 - now;
        tokio::time::sleep(std::time::Duration::from_millis(wait.max(0) as u64 + 5)).await;
    }
}

async fn fetch(
    ctx: &TaskCtx,
    pair: &Pair,
    hv: &crate::hypervisor::proxmox::ProxmoxSsh,
    remote_path: &str,
    name: &crate::domain::ArchiveName,
    dir: &Path,
    pull: Span,
) -> Result<Archive, JobError> {
    let cancel = &ctx.cancel;
    ctx.phase("pulling", pull.at(0.0));
    let bytes = hv.file_size(remote_path, cancel).await?;
    let free = transfer::free_bytes(dir).await.map_err(|e| fail(e.to_string()))?;
    if free < bytes {
        return Err(fail(format!(
            "The middleware's archive storage has only {} free, but the archive is {}.",
            size(free),
            size(bytes)
        )));
    }
    let tmp = dir.join(format!(".partial-{}-{name}", ctx.task.id));
    let total = bytes as i64;
    ctx.reporter().progress("pulling", pull.at(0.0), 0, total);
    let rep = ctx.reporter();
    // The source checksum is computed while the copy runs: both only read the file.
    let (sha, pulled) = tokio::join!(
        hv.sha256(remote_path, cancel),
        transfer::pull(
            &hv.ssh,
            ctx.state.settings.transfer_bwlimit_kib,
            remote_path,
            &tmp,
            ctx.state.settings.command_timeout,
            cancel,
            |done| {
                let f = if bytes == 0 { 1.0 } else { done as f64 / bytes as f64 };
                rep.progress("pulling", pull.at(f * 0.9), done as i64, total);
            },
        )
    );
    pulled?;
    let sha = sha?;
    ctx.log(format!("source archive {name}: {} sha256 {sha}", size(bytes)));
    ctx.reporter().progress("verifying", pull.at(0.9), total, total);
    let local_sha =
        transfer::sha256_file(&tmp).await.map_err(|e| fail(format!("Cannot read the copied archive: {e}.")))?;
    if local_sha != sha {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(format!(
            "The copied archive {name} does not match its source checksum ({local_sha} here, {sha} on the DC host)."
        )));
    }
    let final_path = dir.join(name.as_str());
    // Link, never rename over: an archive already stored under this name
    // (vzdump names have one-second resolution) must not change under its
    // recorded checksum.
    let linked = std::fs::hard_link(&tmp, &final_path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(fail(format!("An archive named {name} is already stored for this pair; nothing was replaced.")))
        }
        Err(e) => return Err(fail(format!("Cannot store the verified archive: {e}."))),
    }
    let archive = ctx
        .state
        .db
        .insert_archive(&NewArchive {
            pair_id: pair.id,
            file_name: name,
            size_bytes: total,
            sha256: &sha,
            task_id: ctx.task.id,
        })
        .await?;
    ctx.state.db.set_task_archive(ctx.task.id, archive.id).await?;
    ctx.log(format!("archive {name} stored and verified (sha256 {sha})"));
    Ok(archive)
}

/// Removes the task's directory on the DC host, dump and all. Runs even
/// after a cancel; if the host cannot be reached, the directory stays
/// recorded and the end-of-task sweep tries again.
async fn remove_task_dir(ctx: &TaskCtx, hv: &ProxmoxSsh, host: &HypervisorRecord, dir: &str) {
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
async fn prune(ctx: &TaskCtx, pair: &Pair, dir: &Path, made: Uuid) -> Result<(), JobError> {
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
    for a in archives.iter().filter(|a| gone.contains(&a.id)) {
        let _ = std::fs::remove_file(dir.join(a.file_name.as_str()));
        ctx.state.db.delete_archive(a.id).await?;
        ctx.log(format!("retention: pruned {}", a.file_name));
    }
    ctx.log(format!("retention: {} archive(s) kept", verified.len() - gone.len()));
    Ok(())
}
