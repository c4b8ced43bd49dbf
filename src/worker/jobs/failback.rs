//! Failback of a pair (after the DC returned): back up the DRC copy through
//! the middleware (archived like any other, checksummed at every hop),
//! restore it over the pair's own DC VMID (stopping that VM first; rolled
//! back to the DC's last archive if the restore fails, so the DC never
//! ends with no VM), fence the DRC copy (which keeps its marker and stays
//! the replica), start the DC VM, mark the pair `protected`.

use tokio_util::sync::CancellationToken;

use super::evidence::{enter_state, Evidence};
use super::restore::{apply_network_map, send, start_and_confirm};
use super::{fail, JobError};
use crate::db::archives::Archive;
use crate::db::hypervisors::Hypervisor as HypervisorRecord;
use crate::db::pairs::Pair;
use crate::domain::{AlertKind, ErrorKind, PairState, TaskKind, Timestamp};
use crate::hypervisor::{GuestState, HvEvent, Hypervisor};
use crate::monitor::conditions::Draft;
use crate::worker::context::{Phases, Span, TaskCtx};
use crate::worker::leftovers;

pub async fn run_failback(
    ctx: &TaskCtx,
    pair: &Pair,
    src: &HypervisorRecord,
    dst: &HypervisorRecord,
    src_hv: &impl Hypervisor,
    dst_hv: &impl Hypervisor,
) -> Result<(), JobError> {
    let db = &ctx.state.db;
    enter_state(ctx, pair, PairState::FailedOver, PairState::FailingBack).await?;
    let mut ev = Evidence::begin(ctx, TaskKind::Failback).await?;
    let mut dc_touched = false;
    let result = steps(ctx, pair, src, dst, src_hv, dst_hv, &mut ev, &mut dc_touched).await;
    match result {
        Ok(()) => {
            db.set_pair_state(pair.id, PairState::FailingBack, PairState::Protected).await?;
            let summary = format!(
                "VM {} on {} is the live copy again and {} is protected; the DRC copy VM {} is stopped.",
                pair.src_vmid, src.name, pair.name, pair.dst_vmid
            );
            ev.finish(ctx, true, &summary, Some(ev.elapsed_ms())).await;
            ctx.log(format!("failback succeeded: {summary}"));
            for key in ["failback-failed", "failover-failed", "source-returned"] {
                if let Err(e) = crate::monitor::clear(
                    &ctx.state,
                    &format!("{key}:{}", pair.id),
                    "the pair failed back and is protected again",
                )
                .await
                {
                    tracing::warn!(error = %e, "cannot close a switch alert");
                }
            }
            Ok(())
        }
        Err(e) => {
            // Until the DC VM was touched the DRC copy still runs as the
            // live one: the pair stays failed over.
            if !dc_touched {
                db.set_pair_state(pair.id, PairState::FailingBack, PairState::FailedOver).await?;
            }
            let why = match &e {
                JobError::Cancelled => "cancelled".to_string(),
                other => other.to_string(),
            };
            ev.finish(ctx, false, &why, None).await;
            let d = Draft {
                kind: AlertKind::Failover,
                subject_type: "pair",
                subject_id: pair.id.to_string(),
                subject_name: pair.name.clone(),
                message: format!("Failback of {} failed: {why}", pair.name),
            };
            if let Err(e) = crate::monitor::raise(&ctx.state, &format!("failback-failed:{}", pair.id), &d).await {
                tracing::warn!(error = %e, "cannot raise the failback alert");
            }
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn steps(
    ctx: &TaskCtx,
    pair: &Pair,
    src: &HypervisorRecord,
    dst: &HypervisorRecord,
    src_hv: &impl Hypervisor,
    dst_hv: &impl Hypervisor,
    ev: &mut Evidence,
    dc_touched: &mut bool,
) -> Result<(), JobError> {
    let db = &ctx.state.db;
    let (guest, vmid) = (pair.guest, pair.dst_vmid);
    // The DC's last archive: what a failed restore on the DC rolls back to.
    let prev = db.list_archives(pair.id).await?.into_iter().find(|a| a.verified_at.is_some());

    // 1. Fence the DRC copy first: the archive taken next then holds its
    //    last write, and the two copies never run at once. Every failure
    //    from here on starts it again unless the DC VM took over.
    let t0 = Timestamp::now();
    ctx.phase("fencing", 2);
    let was_running = matches!(dst_hv.guest_state(guest, vmid, &ctx.cancel).await?, GuestState::Running(_));
    if was_running {
        super::failover::shut_down(ctx, dst_hv, guest, vmid, &dst.name, &ctx.cancel).await?;
    }
    ev.step(ctx, "fence the DRC copy", t0, true, format!("VM {vmid} on {} stopped for the final copy", dst.name)).await;
    let _shielded = ctx.shield();
    let shield = CancellationToken::new();
    let result = copy_home(ctx, pair, src, dst, src_hv, dst_hv, ev, dc_touched, prev.as_ref(), &shield).await;
    match result {
        Ok(()) => {
            dst_hv.set_options(guest, vmid, &[("onboot".into(), "0".into())], &shield).await?;
            Ok(())
        }
        Err(e) => {
            if was_running {
                match dst_hv.start(guest, vmid, &shield).await {
                    Ok(()) => ctx.log(format!("the DRC copy VM {vmid} was started again and stays the live copy")),
                    Err(e2) => ctx.log(format!("starting the DRC copy VM {vmid} again failed: {e2}")),
                }
            }
            Err(e)
        }
    }
}

/// Backs up the stopped DRC copy, restores it over the DC VM, starts that.
#[allow(clippy::too_many_arguments)]
async fn copy_home(
    ctx: &TaskCtx,
    pair: &Pair,
    src: &HypervisorRecord,
    dst: &HypervisorRecord,
    src_hv: &impl Hypervisor,
    dst_hv: &impl Hypervisor,
    ev: &mut Evidence,
    dc_touched: &mut bool,
    prev: Option<&Archive>,
    shield: &CancellationToken,
) -> Result<(), JobError> {
    // 2. Back up the DRC copy, as if it were the pair's source.
    let t0 = Timestamp::now();
    let mut reversed = pair.clone();
    reversed.src_hypervisor_id = dst.id;
    reversed.src_vmid = pair.dst_vmid;
    let archive = match super::backup::run_backup(ctx, &reversed, dst, dst_hv, Phases::new(5.0, 20.0, 40.0)).await {
        Ok(a) => a,
        Err(e) => {
            ev.step(ctx, "back up the DRC copy", t0, false, e.to_string()).await;
            return Err(e);
        }
    };
    ev.step(
        ctx,
        "back up the DRC copy",
        t0,
        true,
        format!(
            "VM {} on {} archived as {} ({} bytes, verified)",
            pair.dst_vmid, dst.name, archive.file_name, archive.size_bytes
        ),
    )
    .await;

    // 3. Restore it over the DC VM.
    let t1 = Timestamp::now();
    let dir = leftovers::open_task_dir(ctx, src_hv, src).await?;
    let local = ctx.state.archives().path(pair.id, &archive.file_name);
    let remote = send(ctx, src_hv, src, &dir, &archive, &local, Span { from: 40.0, to: 60.0 }, shield).await?;
    let before = src_hv.guest_state(pair.guest, pair.src_vmid, shield).await?;
    *dc_touched = true;
    let restored = restore_dc(ctx, pair, src, src_hv, &remote, &before, shield).await;
    let _ = src_hv.remove(&[&remote], shield).await;
    if let Err(e) = restored {
        let why = e.to_string();
        ev.step(ctx, "restore on the DC", t1, false, why.clone()).await;
        return Err(rollback(ctx, pair, src, src_hv, &dir, prev, &archive, &why, shield).await);
    }
    // The copy came from the DRC: its marker and DRC bridges go back to
    // what the DC uses.
    let mut dc_pair = pair.clone();
    dc_pair.dst_vmid = pair.src_vmid;
    dc_pair.network_map = pair.network_map.inverted();
    let tags = src_hv.tags(pair.guest, pair.src_vmid, shield).await?;
    let own: Vec<String> = tags.iter().filter(|t| !t.starts_with("drswitch-")).cloned().collect();
    if own.len() != tags.len() {
        src_hv.set_tags(pair.guest, pair.src_vmid, &own, shield).await?;
    }
    apply_network_map(ctx, &dc_pair, src_hv, pair.src_vmid, shield).await?;
    ctx.state.db.replica_whole(pair.id, Some(archive.id)).await?;
    ev.step(
        ctx,
        "restore on the DC",
        t1,
        true,
        format!("restored {} as VM {} on {}", archive.file_name, pair.src_vmid, src.name),
    )
    .await;

    // 4. Start the DC VM. If it does not come up it is stopped again (and
    //    kept from booting) before the DRC copy is started again.
    let t3 = Timestamp::now();
    if let Err(e) = start_and_confirm(ctx, &dc_pair, src_hv, src, shield).await {
        ev.step(ctx, "start the DC VM", t3, false, e.to_string()).await;
        let _ = src_hv.stop(pair.guest, pair.src_vmid, shield).await;
        let stopped =
            !matches!(src_hv.guest_state(pair.guest, pair.src_vmid, shield).await, Ok(GuestState::Running(_)));
        let _ = src_hv.set_options(pair.guest, pair.src_vmid, &[("onboot".into(), "0".into())], shield).await;
        if !stopped {
            return Err(fail(
                ErrorKind::CommandFailed,
                format!("{e} VM {} on {} could not be stopped again; check both sites.", pair.src_vmid, src.name),
            ));
        }
        *dc_touched = false;
        return Err(fail(ErrorKind::CommandFailed, format!("{e} The DRC copy stays the live copy.")));
    }
    ev.step(ctx, "start the DC VM", t3, true, format!("VM {} runs on {}", pair.src_vmid, src.name)).await;
    Ok(())
}

/// Stops the DC VM if it runs and restores the archive over it (or in its
/// place), without starting it.
async fn restore_dc(
    ctx: &TaskCtx,
    pair: &Pair,
    src: &HypervisorRecord,
    hv: &impl Hypervisor,
    remote: &str,
    before: &GuestState,
    shield: &CancellationToken,
) -> Result<(), JobError> {
    if let GuestState::Running(_) = before {
        ctx.log(format!("stopping VM {} on {} before restoring over it", pair.src_vmid, src.name));
        hv.stop(pair.guest, pair.src_vmid, shield).await?;
    }
    ctx.phase("restoring", 60);
    let rep = ctx.reporter();
    let mut on = |e: HvEvent<'_>| match e {
        HvEvent::Line(line) => rep.output(line),
        HvEvent::Progress { percent, done, total } => {
            rep.progress("restoring", 60 + i64::from(percent) * 30 / 100, done as i64, total as i64)
        }
    };
    let exists = *before != GuestState::Missing;
    hv.restore(pair.guest, remote, pair.src_vmid, &src.restore_storage, exists, false, shield, &mut on).await?;
    Ok(())
}

/// Puts the DC's last archive back over the DC VM after a failed restore,
/// and starts it; the pair stays failed over. Returns the task's error.
#[allow(clippy::too_many_arguments)]
async fn rollback(
    ctx: &TaskCtx,
    pair: &Pair,
    src: &HypervisorRecord,
    hv: &impl Hypervisor,
    dir: &str,
    prev: Option<&Archive>,
    failed: &Archive,
    why: &str,
    shield: &CancellationToken,
) -> JobError {
    let Some(prev) = prev.filter(|p| p.id != failed.id) else {
        return fail(
            ErrorKind::CommandFailed,
            format!(
                "{why}; there is no earlier archive of VM {} to roll back to, so it may be incomplete.",
                pair.src_vmid
            ),
        );
    };
    ctx.log(format!("restore on the DC failed; rolling back to {}, the DC's last archive", prev.file_name));
    let local = ctx.state.archives().path(pair.id, &prev.file_name);
    let result = async {
        let remote = send(ctx, hv, src, dir, prev, &local, Span { from: 90.0, to: 95.0 }, shield).await?;
        let mut on = |_: HvEvent<'_>| {};
        let r =
            hv.restore(pair.guest, &remote, pair.src_vmid, &src.restore_storage, true, false, shield, &mut on).await;
        let _ = hv.remove(&[&remote], shield).await;
        r.map_err(JobError::from)
    }
    .await;
    // Rolled back or half-written, the DC VM is not the live copy: the
    // pair stays failed over either way.
    let _ = ctx.state.db.set_pair_state(pair.id, PairState::FailingBack, PairState::FailedOver).await;
    if let Err(e) = &result {
        return fail(ErrorKind::CommandFailed, format!("{why}; rolling back to {} also failed: {e}", prev.file_name));
    }
    fail(
        ErrorKind::CommandFailed,
        format!(
            "{why}; VM {} on {} was rolled back to {} (stopped); the DRC copy stays the live copy.",
            pair.src_vmid, src.name, prev.file_name
        ),
    )
}
