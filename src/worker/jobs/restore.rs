//! Restore of a pair: preflight on the DRC host → rsync push to its dump
//! dir (sha256 checked there) → stop the old replica → qmrestore --force →
//! start and confirm running. If the restore fails after the old replica
//! was touched, the previously restored archive is restored again.

use tokio_util::sync::CancellationToken;

use super::backup::pair_dir;
use super::{fail, size, JobError};
use crate::db::archives::Archive;
use crate::db::hypervisors::Hypervisor as HypervisorRecord;
use crate::db::pairs::Pair;
use crate::hypervisor::proxmox::{percent, ProxmoxSsh};
use crate::hypervisor::{GuestState, Hypervisor};
use crate::transfer;
use crate::worker::context::{Span, TaskCtx};

pub async fn run_restore(
    ctx: &TaskCtx,
    pair: &Pair,
    dst: &HypervisorRecord,
    archive: &Archive,
    verify_local: bool,
    push: Span,
    restore: Span,
) -> Result<(), JobError> {
    let cancel = &ctx.cancel;
    if !dst.enabled {
        return Err(fail(format!("The DRC hypervisor {} is disabled.", dst.name)));
    }
    let hv = crate::hypervisor::proxmox(&ctx.state, dst)?;
    let local = pair_dir(&ctx.state.settings.archive_dir(), pair.id).join(archive.file_name.as_str());
    if !local.exists() {
        return Err(fail(format!("The archive {} is missing from the middleware's storage.", archive.file_name)));
    }
    if verify_local {
        ctx.phase("verifying", push.at(0.0));
        let sha = transfer::sha256_file(&local).await.map_err(|e| fail(format!("Cannot read the archive: {e}.")))?;
        if sha != archive.sha256 {
            return Err(fail(format!(
                "The archive {} on the middleware no longer matches its checksum.",
                archive.file_name
            )));
        }
        ctx.log(format!("archive {} verified on the middleware", archive.file_name));
    }

    ctx.phase("preflight", push.at(0.0));
    let before = hv.guest_state(pair.guest, pair.dst_vmid, cancel).await?;
    ctx.log(format!("preflight: replica VM {} on {} is {before}", pair.dst_vmid, dst.name));
    let free = hv.free_bytes(&dst.dump_dir, cancel).await?;
    let bytes = archive.size_bytes.max(0) as u64;
    if free < bytes {
        return Err(fail(format!(
            "{} has only {} free in {}, but the archive is {}.",
            dst.name,
            size(free),
            dst.dump_dir,
            size(bytes)
        )));
    }

    let remote = send(ctx, &hv, dst, archive, &local, push).await?;
    let outcome = install(ctx, pair, &hv, dst, &remote, &before, restore).await;
    let _ = hv.remove(&[&remote], &CancellationToken::new()).await;
    let err = match outcome {
        Ok(()) => return Ok(()),
        Err((e, false)) => return Err(e),
        Err((e, true)) => e,
    };
    // The old replica was stopped or overwritten: put the previous one back.
    let reason = err.to_string().trim_end_matches('.').to_string();
    ctx.log(format!("restore failed after the old replica was touched: {reason}"));
    match previous_archive(ctx, pair, archive).await? {
        None => Err(fail(format!(
            "{reason}; there is no earlier archive to roll back to, so VM {} on {} may be incomplete.",
            pair.dst_vmid, dst.name
        ))),
        Some(prev) => {
            ctx.log(format!("rolling back to {}", prev.file_name));
            let fresh = CancellationToken::new();
            match rollback(ctx, pair, &hv, dst, &prev, &before, &fresh).await {
                Ok(()) => Err(fail(format!(
                    "{reason}; rolled back to the previous archive {} and the replica is running again.",
                    prev.file_name
                ))),
                Err(e2) => Err(fail(format!("{reason}; rolling back to {} also failed: {e2}", prev.file_name))),
            }
        }
    }
}

/// Pushes the archive under a temporary name, checks its sha256 on the
/// host, then gives it its real name. Returns the remote path.
async fn send(
    ctx: &TaskCtx,
    hv: &ProxmoxSsh,
    dst: &HypervisorRecord,
    archive: &Archive,
    local: &std::path::Path,
    span: Span,
) -> Result<String, JobError> {
    let cancel = &ctx.cancel;
    let dir = dst.dump_dir.as_str().trim_end_matches('/');
    let remote = format!("{dir}/{}", archive.file_name);
    let tmp = format!("{dir}/.drswitch-{}-{}", ctx.task.id, archive.file_name);
    let total = archive.size_bytes;
    let rep = ctx.reporter();
    rep.progress("pushing", span.at(0.0), 0, total);
    let pushed = transfer::push(
        &hv.ssh,
        ctx.state.settings.transfer_bwlimit_kib,
        local,
        &tmp,
        ctx.state.settings.command_timeout,
        cancel,
        |done| {
            let f = if total <= 0 { 1.0 } else { done as f64 / total as f64 };
            rep.progress("pushing", span.at(f * 0.9), done as i64, total);
        },
    )
    .await;
    if let Err(e) = pushed {
        let _ = hv.remove(&[&tmp], &CancellationToken::new()).await;
        return Err(e.into());
    }
    rep.progress("verifying", span.at(0.9), total, total);
    let sha = hv.sha256(&tmp, cancel).await?;
    if sha != archive.sha256 {
        let _ = hv.remove(&[&tmp], &CancellationToken::new()).await;
        return Err(fail(format!("The archive copied to {} does not match its checksum.", dst.name)));
    }
    hv.rename(&tmp, &remote, cancel).await?;
    ctx.log(format!("archive {} copied to {}:{remote} and verified", archive.file_name, dst.name));
    Ok(remote)
}

/// Stops the old replica, restores over it, starts it. The error says
/// whether the old replica was touched.
async fn install(
    ctx: &TaskCtx,
    pair: &Pair,
    hv: &ProxmoxSsh,
    dst: &HypervisorRecord,
    remote: &str,
    before: &GuestState,
    span: Span,
) -> Result<(), (JobError, bool)> {
    let cancel = &ctx.cancel;
    let exists = *before != GuestState::Missing;
    if let GuestState::Running(_) = before {
        ctx.phase("stopping", span.at(0.0));
        ctx.log(format!("stopping the old replica VM {}", pair.dst_vmid));
        hv.stop(pair.guest, pair.dst_vmid, cancel).await.map_err(|e| (e.into(), true))?;
    }
    ctx.phase("restoring", span.at(0.0));
    ctx.log(format!(
        "restoring {remote} as VM {} on {}{}",
        pair.dst_vmid,
        dst.name,
        if exists { " (replacing the old replica)" } else { "" }
    ));
    let rep = ctx.reporter();
    let mut on_line = |line: &str| {
        rep.log(line.to_string());
        if let Some(p) = percent(line) {
            rep.progress("restoring", span.at(f64::from(p) / 100.0 * 0.9), 0, 0);
        }
    };
    hv.restore(pair.guest, remote, pair.dst_vmid, &dst.restore_storage, exists, cancel, &mut on_line)
        .await
        .map_err(|e| (e.into(), exists))?;
    if pair.start_after_restore {
        start_and_confirm(ctx, pair, hv, dst, cancel).await.map_err(|e| (e, true))?;
    }
    Ok(())
}

async fn start_and_confirm(
    ctx: &TaskCtx,
    pair: &Pair,
    hv: &ProxmoxSsh,
    dst: &HypervisorRecord,
    cancel: &CancellationToken,
) -> Result<(), JobError> {
    ctx.phase("starting", 95);
    hv.start(pair.guest, pair.dst_vmid, cancel).await?;
    match hv.guest_state(pair.guest, pair.dst_vmid, cancel).await? {
        GuestState::Running(s) if s == "running" => {
            ctx.log(format!("VM {} on {} is running", pair.dst_vmid, dst.name));
            Ok(())
        }
        other => {
            Err(fail(format!("VM {} on {} did not come up after start (state {other:?}).", pair.dst_vmid, dst.name)))
        }
    }
}

/// The archive the last successful restore installed, else the newest
/// verified archive older than the one that failed.
async fn previous_archive(ctx: &TaskCtx, pair: &Pair, failed: &Archive) -> Result<Option<Archive>, JobError> {
    let db = &ctx.state.db;
    if let Some(id) = db.last_restored_archive(pair.id).await? {
        if id != failed.id {
            if let Some(a) = db.archive(id).await? {
                return Ok(Some(a));
            }
        }
    }
    Ok(db
        .list_archives(pair.id)
        .await?
        .into_iter()
        .find(|a| a.id != failed.id && a.verified_at.is_some() && a.created_at <= failed.created_at))
}

async fn rollback(
    ctx: &TaskCtx,
    pair: &Pair,
    hv: &ProxmoxSsh,
    dst: &HypervisorRecord,
    prev: &Archive,
    before: &GuestState,
    cancel: &CancellationToken,
) -> Result<(), JobError> {
    let local = pair_dir(&ctx.state.settings.archive_dir(), pair.id).join(prev.file_name.as_str());
    let span = Span { from: 90.0, to: 95.0 };
    let remote = send(ctx, hv, dst, prev, &local, span).await?;
    let mut on_line = |line: &str| ctx.reporter().log(line.to_string());
    // The failed restore may have left the VM config behind: always force.
    let result = hv.restore(pair.guest, &remote, pair.dst_vmid, &dst.restore_storage, true, cancel, &mut on_line).await;
    let _ = hv.remove(&[&remote], &CancellationToken::new()).await;
    result?;
    if pair.start_after_restore || matches!(before, GuestState::Running(_)) {
        start_and_confirm(ctx, pair, hv, dst, cancel).await?;
    }
    ctx.log(format!("rolled back to {}", prev.file_name));
    Ok(())
}
