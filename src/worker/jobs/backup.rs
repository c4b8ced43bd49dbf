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
use crate::domain::{ArchiveName, DirPath};
use crate::hypervisor::proxmox::{archive_in, archive_path, percent, ProxmoxSsh};
use crate::hypervisor::{DumpOptions, GuestState, HvError, Hypervisor};
use crate::transfer;
use crate::worker::context::{Span, TaskCtx};
use crate::worker::retention::{to_prune, KeepRules};

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
    std::fs::create_dir_all(&dir)
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
    let expect = state.db.list_archives(pair.id).await?.first().map(|a| a.size_bytes.max(0) as u64).unwrap_or(0);
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

    ctx.phase("dumping", dump.at(0.0));
    let opts = DumpOptions { dump_dir: src.dump_dir.clone(), compress: pair.compress, mode: pair.mode };
    let rep = ctx.reporter();
    // The archive's name appears early in vzdump's output; remember it so a
    // failed or cancelled dump can be cleaned up too.
    let mut seen: Option<String> = None;
    let dumped = {
        let mut on_line = |line: &str| {
            if let Some(p) = archive_path(line) {
                seen = Some(p.to_string());
            }
            rep.log(line.to_string());
            if let Some(p) = percent(line) {
                rep.progress("dumping", dump.at(f64::from(p) / 100.0), 0, 0);
            }
        };
        hv.dump(pair.src_vmid, &opts, cancel, &mut on_line).await
    };
    let remote_path = match dumped {
        Ok(p) => p,
        Err(e) => {
            if let Some(name) = seen.as_deref().and_then(|p| archive_in(&src.dump_dir, p)) {
                if matches!(e, HvError::Cancelled) {
                    // The cut session's vzdump may still be writing its files.
                    let _ = hv.wait_for_dumps(&CancellationToken::new()).await;
                }
                remove_dump(ctx, &hv, &src.dump_dir, &name).await;
            }
            return Err(e.into());
        }
    };
    let name = archive_in(&src.dump_dir, &remote_path).ok_or_else(|| {
        fail(format!(
            "vzdump on {} wrote {remote_path:?}, which is not a standard archive in {}.",
            src.name, src.dump_dir
        ))
    })?;

    let result = fetch(ctx, pair, &hv, &remote_path, &name, &dir, pull).await;
    if result.is_err() {
        // Leave no dump behind on the DC host after a failure either.
        remove_dump(ctx, &hv, &src.dump_dir, &name).await;
        sweep_partials(&state.settings.archive_dir(), ctx.task.id);
        return result;
    }
    let archive = result?;
    remove_dump(ctx, &hv, &src.dump_dir, &name).await;
    prune(ctx, pair, &dir).await?;
    Ok(archive)
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
    std::fs::rename(&tmp, &final_path).map_err(|e| fail(format!("Cannot rename the verified archive: {e}.")))?;
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

/// Removes the archive and what vzdump writes beside it (`.log`, the `.dat`
/// temporary file, the `.tmp` directory). Runs even after a cancel.
async fn remove_dump(ctx: &TaskCtx, hv: &ProxmoxSsh, dir: &DirPath, name: &ArchiveName) {
    let dir = dir.as_str().trim_end_matches('/');
    let base = base_name(name.as_str());
    let archive = format!("{dir}/{name}");
    let log = format!("{dir}/{base}.log");
    let dat = format!("{dir}/{}", dat_name(name.as_str()));
    let tmp = format!("{dir}/{base}.tmp");
    match hv.remove(&[&archive, &log, &dat, &tmp], &CancellationToken::new()).await {
        Ok(()) => ctx.log(format!("removed {archive} and its log from {}", hv.name())),
        Err(e) => ctx.log(format!("could not remove {archive} from {}: {e}", hv.name())),
    }
}

/// vzdump's temporary name: the last extension replaced by `.dat`
/// (`….vma.zst` → `….vma.dat`, `….vma` → `….dat`).
fn dat_name(name: &str) -> String {
    match name.rsplit_once('.') {
        Some((stem, _)) => format!("{stem}.dat"),
        None => format!("{name}.dat"),
    }
}

/// `vzdump-qemu-100-2026_11_22-02_00_00.vma.zst` → `vzdump-qemu-100-2026_11_22-02_00_00`.
fn base_name(name: &str) -> &str {
    name.find(".vma").or_else(|| name.find(".tar")).or_else(|| name.find(".tgz")).map(|i| &name[..i]).unwrap_or(name)
}

async fn prune(ctx: &TaskCtx, pair: &Pair, dir: &Path) -> Result<(), JobError> {
    let archives = ctx.state.db.list_archives(pair.id).await?;
    let verified: Vec<_> =
        archives.iter().filter(|a| a.verified_at.is_some()).map(|a| (a.id, a.created_at.to_datetime())).collect();
    let rules = KeepRules {
        last: pair.keep_last,
        daily: pair.keep_daily,
        weekly: pair.keep_weekly,
        monthly: pair.keep_monthly,
    };
    let gone = to_prune(&verified, rules, &ctx.state.settings.timezone);
    for a in archives.iter().filter(|a| gone.contains(&a.id)) {
        let _ = std::fs::remove_file(dir.join(a.file_name.as_str()));
        ctx.state.db.delete_archive(a.id).await?;
        ctx.log(format!("retention: pruned {}", a.file_name));
    }
    ctx.log(format!("retention: {} archive(s) kept", verified.len() - gone.len()));
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn base_names() {
        assert_eq!(
            super::base_name("vzdump-qemu-100-2026_11_22-02_00_00.vma.zst"),
            "vzdump-qemu-100-2026_11_22-02_00_00"
        );
        assert_eq!(super::base_name("vzdump-lxc-100-2026_11_22-02_00_00.tar"), "vzdump-lxc-100-2026_11_22-02_00_00");
        assert_eq!(
            super::dat_name("vzdump-qemu-100-2026_11_22-02_00_00.vma.zst"),
            "vzdump-qemu-100-2026_11_22-02_00_00.vma.dat"
        );
        assert_eq!(
            super::dat_name("vzdump-qemu-100-2026_11_22-02_00_00.vma"),
            "vzdump-qemu-100-2026_11_22-02_00_00.dat"
        );
    }
}
