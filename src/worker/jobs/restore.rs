//! Restore of a pair: preflight on the DRC host (is the VM at the target
//! ours to replace?) → rsync push into the task's own directory there
//! (sha256 checked) → stop the old replica → qmrestore --force → mark it as
//! this pair's replica → start and confirm running.
//!
//! Once the old replica is stopped or overwritten, nothing may leave it
//! half-written: a cancel or a lost lease waits until qmrestore ends, and a
//! failed restore restores the archive of the last good restore again.

use tokio_util::sync::CancellationToken;

use super::{fail, JobError};
use crate::archive_store::sha256_file;
use crate::db::archives::Archive;
use crate::db::hypervisors::Hypervisor as HypervisorRecord;
use crate::db::pairs::Pair;
use crate::domain::ErrorKind;
use crate::hypervisor::{replica_tag, with_replica_tag, GuestState, HvEvent, Hypervisor};
use crate::worker::context::{Phases, Span, TaskCtx};
use crate::worker::leftovers;

/// Where the archive to restore is.
pub enum Source {
    /// In the middleware's store, to be pushed; `verify` reads it once
    /// more first (not needed when this task just verified it).
    Store { verify: bool },
    /// Already in the task's directory on the DRC host, verified there
    /// (a streamed replicate put it there).
    OnHost { dir: String, remote: String },
}

#[allow(clippy::too_many_arguments)]
pub async fn run_restore(
    ctx: &TaskCtx,
    pair: &Pair,
    dst: &HypervisorRecord,
    hv: &impl Hypervisor,
    archive: &Archive,
    source: Source,
    phases: Phases,
    always_start: bool,
) -> Result<(), JobError> {
    let (push, restore) = (phases.first, phases.second);
    let cancel = &ctx.cancel;
    if !dst.enabled {
        return Err(fail(ErrorKind::Config, format!("The DRC hypervisor {} is disabled.", dst.name)));
    }
    // The pair as it is now: an adoption or an unfinished replacement may
    // have been recorded since the task was queued.
    let mut pair = ctx
        .state
        .db
        .pair(pair.id)
        .await?
        .ok_or_else(|| fail(ErrorKind::Config, "The pair of this task no longer exists."))?;
    // A failover starts the replica whatever the pair says for restores.
    pair.start_after_restore |= always_start;
    let pair = &pair;
    let (dir, remote) = match source {
        Source::OnHost { dir, remote } => (dir, remote),
        Source::Store { verify } => {
            let dir = prepare(ctx, pair, dst, hv, archive, verify, push).await?;
            let local = ctx.state.archives().path(pair.id, &archive.file_name);
            let remote = send(ctx, hv, dst, &dir, archive, &local, push, cancel).await?;
            (dir, remote)
        }
    };
    // Look again just before touching anything: the push may have taken long
    // and the VM may have changed meanwhile.
    let before = hv.guest_state(pair.guest, pair.dst_vmid, cancel).await?;
    ensure_ours(ctx, pair, hv, dst, &before).await?;

    // From here on the old replica is touched: neither a cancel nor a lost
    // lease may cut a step, and a crash leaves a record that the VM at the
    // target is ours even if a cut qmrestore wiped its marker.
    let shield = CancellationToken::new();
    let _shielded = ctx.shield();
    if before != GuestState::Missing {
        ctx.state.db.replica_touched(pair.id, ctx.task.id).await?;
    }
    let outcome = install(ctx, pair, hv, dst, &remote, &before, restore, &shield).await;
    let _ = hv.remove(&[&remote], &shield).await;
    let err = match outcome {
        Ok(()) => {
            ctx.state.db.replica_whole(pair.id, Some(archive.id)).await?;
            if ctx.cancel.is_cancelled() {
                ctx.log(format!(
                    "the cancel came while VM {} was being replaced; the restore was finished first so the replica is whole",
                    pair.dst_vmid
                ));
            }
            return Ok(());
        }
        // No VM was there before: nothing to roll back to. No record is
        // kept either: a VM found there later may not be one this task made
        // (someone may have created it meanwhile), so replacing it takes the
        // marker or an admin's adoption.
        Err((e, false)) => return Err(e),
        Err((e, true)) => e,
    };
    // The old replica was stopped or overwritten: put the last good one back.
    let reason = match &err {
        JobError::Cancelled => "cancelled".to_string(),
        e => e.to_string().trim_end_matches('.').to_string(),
    };
    ctx.log(format!("restore failed after the old replica was touched: {reason}"));
    let prev = match pair.replica_archive_id {
        Some(id) => ctx.state.db.archive(id).await?,
        None => None,
    };
    let Some(prev) = prev else {
        return Err(fail(
            err.kind().unwrap_or(ErrorKind::CommandFailed),
            format!(
                "{reason}; there is no earlier restore of this pair to roll back to, so VM {} on {} may be incomplete.",
                pair.dst_vmid, dst.name
            ),
        ));
    };
    ctx.log(format!("rolling back to {}, the archive of the last good restore", prev.file_name));
    match rollback(ctx, pair, hv, dst, &dir, &prev, &before, &shield).await {
        Ok(()) => {
            ctx.state.db.replica_whole(pair.id, Some(prev.id)).await?;
            Err(fail(
                err.kind().unwrap_or(ErrorKind::CommandFailed),
                format!(
                    "{reason}; rolled back to the archive of the last good restore {} and the replica is {} again.",
                    prev.file_name,
                    if matches!(before, GuestState::Running(_)) || pair.start_after_restore {
                        "running"
                    } else {
                        "whole"
                    }
                ),
            ))
        }
        Err(e2) => Err(fail(
            e2.kind().unwrap_or(ErrorKind::CommandFailed),
            format!("{reason}; rolling back to {} also failed: {e2}", prev.file_name),
        )),
    }
}

/// Checks the stored archive, the replica VM and the DRC host's space,
/// and opens the task's directory there.
async fn prepare(
    ctx: &TaskCtx,
    pair: &Pair,
    dst: &HypervisorRecord,
    hv: &impl Hypervisor,
    archive: &Archive,
    verify: bool,
    push: Span,
) -> Result<String, JobError> {
    let cancel = &ctx.cancel;
    let local = ctx.state.archives().path(pair.id, &archive.file_name);
    if !local.exists() {
        return Err(fail(
            ErrorKind::Config,
            format!("The archive {} is missing from the middleware's storage.", archive.file_name),
        ));
    }
    if verify {
        ctx.phase("verifying", push.at(0.0));
        let sha = sha256_file(&local)
            .await
            .map_err(|e| fail(ErrorKind::Internal, format!("Cannot read the archive: {e}.")))?;
        if sha != archive.sha256 {
            return Err(fail(
                ErrorKind::Checksum,
                format!("The archive {} on the middleware no longer matches its checksum.", archive.file_name),
            ));
        }
        ctx.log(format!("archive {} verified on the middleware", archive.file_name));
    }

    ctx.phase("preflight", push.at(0.0));
    let (early, free) =
        tokio::join!(hv.guest_state(pair.guest, pair.dst_vmid, cancel), hv.free_bytes(&dst.dump_dir, cancel));
    let early = early?;
    ctx.log(format!("preflight: replica VM {} on {} is {early}", pair.dst_vmid, dst.name));
    // Fail before an hour-long push, not after it.
    ensure_ours(ctx, pair, hv, dst, &early).await?;
    let free = free?;
    let bytes = archive.size_bytes.max(0) as u64;
    super::need_room(&dst.name, &format!(" in {}", dst.dump_dir), free, bytes, "the archive is")?;

    leftovers::open_task_dir(ctx, hv, dst).await
}

/// A VM at the target must be ours to replace; with none there, a record
/// of an unfinished replacement is stale (that VM is gone).
pub(crate) async fn ensure_ours(
    ctx: &TaskCtx,
    pair: &Pair,
    hv: &impl Hypervisor,
    dst: &HypervisorRecord,
    state: &GuestState,
) -> Result<(), JobError> {
    if *state != GuestState::Missing {
        return check_ours(ctx, pair, hv, dst).await;
    }
    if pair.replica_task_id.is_some() {
        ctx.state.db.replica_whole(pair.id, None).await?;
    }
    Ok(())
}

/// Refuses to touch a VM that is not this pair's replica: it must carry
/// the pair's marker, or have been adopted by an admin, or be one a task of
/// this pair left half-restored.
async fn check_ours(ctx: &TaskCtx, pair: &Pair, hv: &impl Hypervisor, dst: &HypervisorRecord) -> Result<(), JobError> {
    if let Some(t) = pair.replica_task_id {
        ctx.log(format!("VM {} was left unfinished by task {t}; replacing it", pair.dst_vmid));
        return Ok(());
    }
    let tags = hv.tags(pair.guest, pair.dst_vmid, &ctx.cancel).await?;
    if tags.contains(&replica_tag(pair)) {
        ctx.log(format!("VM {} carries this pair's replica marker", pair.dst_vmid));
        return Ok(());
    }
    if pair.adopted {
        ctx.log(format!("VM {} has no replica marker but was adopted by an admin; replacing it", pair.dst_vmid));
        return Ok(());
    }
    Err(fail(
        ErrorKind::NotOurs,
        format!(
            "VM {} on {} exists but is not a replica drswitch made for this pair, so nothing was changed; \
             if it may be replaced, an admin can adopt it (POST /api/v1/pairs/{}/adopt).",
            pair.dst_vmid, dst.name, pair.id
        ),
    ))
}

/// Pushes the archive into the task's directory under a temporary name,
/// checks its sha256 on the host, then gives it its real name (which
/// qmrestore reads the format from). Returns the remote path.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn send(
    ctx: &TaskCtx,
    hv: &impl Hypervisor,
    dst: &HypervisorRecord,
    dir: &str,
    archive: &Archive,
    local: &std::path::Path,
    span: Span,
    cancel: &CancellationToken,
) -> Result<String, JobError> {
    let remote = format!("{dir}/{}", archive.file_name);
    let tmp = format!("{dir}/.partial-{}", archive.file_name);
    let total = archive.size_bytes;
    super::log_limit(ctx, hv);
    let rep = ctx.reporter();
    rep.progress("pushing", span.at(0.0), 0, total);
    let mut on = super::backup::transfer_progress(&rep, "pushing", span, total.max(0) as u64);
    let pushed = hv.push(local, &tmp, cancel, &mut on).await;
    if let Err(e) = pushed {
        let _ = hv.remove(&[&tmp], &CancellationToken::new()).await;
        return Err(e.into());
    }
    rep.progress("verifying", span.at(0.9), total, total);
    let sha = hv.sha256(&tmp, cancel).await?;
    if sha != archive.sha256 {
        let _ = hv.remove(&[&tmp], &CancellationToken::new()).await;
        return Err(fail(
            ErrorKind::Checksum,
            format!("The archive copied to {} does not match its checksum.", dst.name),
        ));
    }
    hv.rename(&tmp, &remote, cancel).await?;
    ctx.log(format!("archive {} copied to {}:{remote} and verified", archive.file_name, dst.name));
    Ok(remote)
}

/// Stops the old replica, restores over it, marks it, starts it. The error
/// says whether the old replica was touched.
#[allow(clippy::too_many_arguments)]
async fn install(
    ctx: &TaskCtx,
    pair: &Pair,
    hv: &impl Hypervisor,
    dst: &HypervisorRecord,
    remote: &str,
    before: &GuestState,
    span: Span,
    shield: &CancellationToken,
) -> Result<(), (JobError, bool)> {
    let exists = *before != GuestState::Missing;
    if let GuestState::Running(_) = before {
        ctx.phase("stopping", span.at(0.0));
        ctx.log(format!("stopping the old replica VM {}", pair.dst_vmid));
        hv.stop(pair.guest, pair.dst_vmid, shield).await.map_err(|e| (e.into(), true))?;
    }
    ctx.phase("restoring", span.at(0.0));
    ctx.log(format!(
        "restoring {remote} as VM {} on {}{}",
        pair.dst_vmid,
        dst.name,
        if exists { " (replacing the old replica)" } else { "" }
    ));
    let rep = ctx.reporter();
    let mut on = |e: HvEvent<'_>| match e {
        HvEvent::Line(line) => rep.output(line),
        HvEvent::Progress { percent, done, total } => {
            rep.progress("restoring", span.at(f64::from(percent) / 100.0 * 0.9), done as i64, total as i64)
        }
    };
    // Over an existing VM, --force may have wiped it whatever the error.
    hv.restore(pair.guest, remote, pair.dst_vmid, &dst.restore_storage, exists, false, shield, &mut on)
        .await
        .map_err(|e| (e.into(), exists))?;
    mark(ctx, pair, hv, shield).await.map_err(|e| (e, true))?;
    apply_network_map(ctx, pair, hv, pair.dst_vmid, shield).await.map_err(|e| (e, true))?;
    if pair.start_after_restore {
        start_and_confirm(ctx, pair, hv, dst, shield).await.map_err(|e| (e, true))?;
    }
    Ok(())
}

/// Tags the restored VM as this pair's replica (qmrestore replaced its
/// config, tags included, with the archive's).
async fn mark(ctx: &TaskCtx, pair: &Pair, hv: &impl Hypervisor, cancel: &CancellationToken) -> Result<(), JobError> {
    let tags = hv.tags(pair.guest, pair.dst_vmid, cancel).await?;
    hv.set_tags(pair.guest, pair.dst_vmid, &with_replica_tag(&tags, pair), cancel).await?;
    ctx.log(format!("VM {} marked as this pair's replica (tag {})", pair.dst_vmid, replica_tag(pair)));
    Ok(())
}

/// Points the guest's NICs at the DRC bridges the pair's network map
/// names, keeping model, MAC and every other option; NICs on bridges the
/// map does not name are left alone.
pub async fn apply_network_map(
    ctx: &TaskCtx,
    pair: &Pair,
    hv: &impl Hypervisor,
    vmid: crate::domain::Vmid,
    cancel: &CancellationToken,
) -> Result<(), JobError> {
    if pair.network_map.is_empty() {
        return Ok(());
    }
    let changes: Vec<(String, String)> = hv
        .options(pair.guest, vmid, cancel)
        .await?
        .into_iter()
        .filter(|(k, _)| is_nic(k))
        .filter_map(|(k, v)| pair.network_map.apply(&v).filter(|new| *new != v).map(|new| (k, new)))
        .collect();
    if changes.is_empty() {
        ctx.log(format!("network map: no NIC of VM {vmid} is on a mapped bridge"));
        return Ok(());
    }
    hv.set_options(pair.guest, vmid, &changes, cancel).await?;
    for (k, v) in &changes {
        ctx.log(format!("network map: VM {vmid} {k} is now {v}"));
    }
    Ok(())
}

/// `net0` … `net31`.
pub fn is_nic(key: &str) -> bool {
    key.strip_prefix("net").is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

pub async fn start_and_confirm(
    ctx: &TaskCtx,
    pair: &Pair,
    hv: &impl Hypervisor,
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
        other => Err(fail(
            ErrorKind::CommandFailed,
            format!("VM {} on {} did not come up after start (state {other}).", pair.dst_vmid, dst.name),
        )),
    }
}

/// Restores `prev` over whatever the failed restore left, to its end: the
/// caller passes a token nothing cancels.
#[allow(clippy::too_many_arguments)]
async fn rollback(
    ctx: &TaskCtx,
    pair: &Pair,
    hv: &impl Hypervisor,
    dst: &HypervisorRecord,
    dir: &str,
    prev: &Archive,
    before: &GuestState,
    shield: &CancellationToken,
) -> Result<(), JobError> {
    let local = ctx.state.archives().path(pair.id, &prev.file_name);
    if !local.exists() {
        return Err(fail(
            ErrorKind::Config,
            format!("the archive {} is missing from the middleware's storage", prev.file_name),
        ));
    }
    let span = Span { from: 90.0, to: 95.0 };
    let remote = send(ctx, hv, dst, dir, prev, &local, span, shield).await?;
    let rep = ctx.reporter();
    let mut on = |e: HvEvent<'_>| {
        if let HvEvent::Line(line) = e {
            rep.output(line);
        }
    };
    // The failed restore may have left the VM config behind: always force.
    let result =
        hv.restore(pair.guest, &remote, pair.dst_vmid, &dst.restore_storage, true, false, shield, &mut on).await;
    let _ = hv.remove(&[&remote], shield).await;
    result?;
    mark(ctx, pair, hv, shield).await?;
    apply_network_map(ctx, pair, hv, pair.dst_vmid, shield).await?;
    if pair.start_after_restore || matches!(before, GuestState::Running(_)) {
        start_and_confirm(ctx, pair, hv, dst, shield).await?;
    }
    ctx.log(format!("rolled back to {}", prev.file_name));
    Ok(())
}
