//! Failover of a pair: fence the DC VM (clean shutdown with a timeout, then
//! stop, then `onboot 0`, so the same VM never runs in both sites), bring
//! the replica up (start it if it holds the newest verified archive, else
//! restore that archive first), apply the network map, confirm it runs,
//! mark the pair `failed_over`. Each step goes into the pair's event.
//!
//! When the DC host does not answer, fencing is impossible: a manual
//! failover stops there unless forced; an automatic one (its host was
//! declared down by the monitor) goes on, and the event says so.

use tokio_util::sync::CancellationToken;

use super::evidence::{enter_state, Evidence};
use super::restore::{apply_network_map, run_restore, start_and_confirm, Source};
use super::{fail, JobError};
use crate::db::hypervisors::Hypervisor as HypervisorRecord;
use crate::db::pairs::Pair;
use crate::domain::{AlertKind, ErrorKind, PairState, TaskKind, Timestamp};
use crate::hypervisor::{replica_tag, GuestState, Hypervisor};
use crate::monitor::conditions::Draft;
use crate::worker::context::{Phases, TaskCtx};

pub async fn run_failover(
    ctx: &TaskCtx,
    pair: &Pair,
    src: &HypervisorRecord,
    dst: &HypervisorRecord,
    src_hv: &impl Hypervisor,
    dst_hv: &impl Hypervisor,
) -> Result<(), JobError> {
    let db = &ctx.state.db;
    let retry = enter_state(ctx, pair, PairState::Protected, PairState::FailingOver).await?;
    let mut ev = Evidence::begin(ctx, TaskKind::Failover).await?;
    let key = format!("failover:{}", pair.id);
    announce(
        ctx,
        &key,
        pair,
        format!("Failover of {} to {} started (requested by {}).", pair.name, dst.name, ctx.task.requested_by),
    )
    .await;

    let mut touched = false;
    let result = steps(ctx, pair, src, dst, src_hv, dst_hv, &mut ev, &mut touched).await;
    let rto = ev.elapsed_ms();
    match result {
        Ok(()) => {
            db.set_pair_state(pair.id, PairState::FailingOver, PairState::FailedOver).await?;
            let summary = format!(
                "VM {} runs on {} as the live copy of {}{} after {:.1} s.",
                pair.dst_vmid,
                dst.name,
                pair.name,
                if ev.forced { " (the DC VM could not be fenced)" } else { "" },
                rto as f64 / 1000.0
            );
            ev.finish(ctx, true, &summary, Some(rto)).await;
            ctx.log(format!("failover succeeded: {summary}"));
            settle(ctx, &key, &format!("failover succeeded: {summary}")).await;
            settle(ctx, &format!("failover-failed:{}", pair.id), "a later failover succeeded").await;
            Ok(())
        }
        Err(e) => {
            // Until anything was touched the pair is simply protected
            // still; after that (or when an earlier attempt may have touched
            // something) only another failover or a failback may move it.
            if !touched && !retry {
                db.set_pair_state(pair.id, PairState::FailingOver, PairState::Protected).await?;
            }
            let why = match &e {
                JobError::Cancelled => "cancelled".to_string(),
                other => other.to_string(),
            };
            ev.finish(ctx, false, &why, None).await;
            settle(ctx, &key, &format!("failover failed: {why}")).await;
            announce(
                ctx,
                &format!("failover-failed:{}", pair.id),
                pair,
                format!(
                    "Failover of {} failed: {why}{}",
                    pair.name,
                    if touched || retry {
                        " The DC VM may be stopped already (see the event); fail over again or fail back."
                    } else {
                        ""
                    }
                ),
            )
            .await;
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
    touched: &mut bool,
) -> Result<(), JobError> {
    ctx.phase("fencing", 5);
    let _ = fence(ctx, pair, src, src_hv, ev).await?;
    // The DC VM is fenced, or going on without fencing was allowed: either
    // way the replica comes up next, and the pair must not fall back to
    // protected after this.
    *touched = true;
    // From here the DC VM may be stopped: the replica must come up, so a
    // cancel no longer cuts a step.
    let _shielded = ctx.shield();
    let shield = CancellationToken::new();
    bring_up(ctx, pair, dst, dst_hv, ev, &shield).await
}

/// Returns whether the DC VM was stopped (or is absent) and set not to
/// start at boot.
async fn fence(
    ctx: &TaskCtx,
    pair: &Pair,
    src: &HypervisorRecord,
    hv: &impl Hypervisor,
    ev: &mut Evidence,
) -> Result<bool, JobError> {
    let t0 = Timestamp::now();
    let (guest, vmid) = (pair.guest, pair.src_vmid);
    // Always try: a host the monitor declared down may answer again, and a
    // VM that can be fenced must be, whatever queued the failover.
    let down = crate::service::monitoring::is_down(&ctx.state, src.id).await?;
    let state = hv.guest_state(guest, vmid, &ctx.cancel).await.map_err(|e| {
        if down {
            format!("{e}; the monitor has declared {} down", src.name)
        } else {
            e.to_string()
        }
    });
    let state = match state {
        Ok(s) => s,
        Err(why) => {
            if ctx.task.force {
                ev.forced = true;
                ev.step(
                    ctx,
                    "fence",
                    t0,
                    false,
                    format!("fencing VM {vmid} on {} is impossible ({why}); going on as forced", src.name),
                )
                .await;
                return Ok(false);
            }
            ev.step(ctx, "fence", t0, false, why.clone()).await;
            return Err(fail(
                ErrorKind::HostUnreachable,
                format!(
                    "VM {vmid} on {} cannot be fenced ({why}), so the replica was not started; fail over with force to go on without fencing.",
                    src.name
                ),
            ));
        }
    };
    let detail = match state {
        GuestState::Missing => format!("VM {vmid} does not exist on {}; nothing to fence", src.name),
        GuestState::Stopped => {
            hv.set_options(guest, vmid, &[("onboot".into(), "0".into())], &ctx.cancel).await?;
            format!("VM {vmid} on {} was already stopped; set onboot 0", src.name)
        }
        GuestState::Running(_) => {
            let how = shut_down(ctx, hv, guest, vmid, &src.name, &ctx.cancel).await?;
            if let GuestState::Running(s) = hv.guest_state(guest, vmid, &ctx.cancel).await? {
                ev.step(ctx, "fence", t0, false, format!("VM {vmid} on {} still {s}", src.name)).await;
                return Err(fail(ErrorKind::CommandFailed, format!("VM {vmid} on {} did not stop.", src.name)));
            }
            hv.set_options(guest, vmid, &[("onboot".into(), "0".into())], &ctx.cancel).await?;
            format!("VM {vmid} on {} {how}; set onboot 0", src.name)
        }
    };
    ev.step(ctx, "fence", t0, true, detail).await;
    Ok(true)
}

/// Asks a guest to shut down within `FENCE_SHUTDOWN_SECS`, then stops it
/// hard if it is still up. Says which it took.
pub(crate) async fn shut_down(
    ctx: &TaskCtx,
    hv: &impl Hypervisor,
    guest: crate::domain::Guest,
    vmid: crate::domain::Vmid,
    host: &str,
    cancel: &CancellationToken,
) -> Result<&'static str, JobError> {
    let timeout = ctx.state.settings.fence_shutdown;
    ctx.log(format!("asking VM {vmid} on {host} to shut down (up to {} s)", timeout.as_secs()));
    match hv.shutdown(guest, vmid, timeout, cancel).await {
        Ok(()) => Ok("shut down cleanly"),
        Err(e) => {
            ctx.log(format!("clean shutdown did not finish ({e}); stopping VM {vmid}"));
            hv.stop(guest, vmid, cancel).await?;
            Ok("stopped hard after the shutdown timed out")
        }
    }
}

/// Starts the replica if it is current, else restores the newest verified
/// archive over it and starts that.
async fn bring_up(
    ctx: &TaskCtx,
    pair: &Pair,
    dst: &HypervisorRecord,
    hv: &impl Hypervisor,
    ev: &mut Evidence,
    shield: &CancellationToken,
) -> Result<(), JobError> {
    let db = &ctx.state.db;
    let t0 = Timestamp::now();
    let pair = db.pair(pair.id).await?.ok_or_else(|| fail(ErrorKind::Config, "The pair no longer exists."))?;
    let newest = db.list_archives(pair.id).await?.into_iter().find(|a| a.verified_at.is_some());
    let replica = hv.guest_state(pair.guest, pair.dst_vmid, shield).await?;
    let marked = replica != GuestState::Missing
        && hv.tags(pair.guest, pair.dst_vmid, shield).await?.contains(&replica_tag(&pair));
    // A replica a crashed task left half-written is never "current".
    let current = marked
        && pair.replica_task_id.is_none()
        && newest.as_ref().is_some_and(|a| pair.replica_archive_id == Some(a.id));
    if current || (marked && newest.is_none() && pair.replica_task_id.is_none()) {
        let what = match &newest {
            Some(a) => format!("holds the newest verified archive {}", a.file_name),
            None => "is the only copy (no verified archive on the middleware)".into(),
        };
        ev.step(ctx, "check replica", t0, true, format!("replica VM {} on {} {what}", pair.dst_vmid, dst.name)).await;
        let t1 = Timestamp::now();
        apply_network_map(ctx, &pair, hv, pair.dst_vmid, shield).await?;
        if !matches!(replica, GuestState::Running(_)) {
            start_and_confirm(ctx, &pair, hv, dst, shield).await?;
        }
        ev.step(ctx, "start replica", t1, true, format!("VM {} runs on {}", pair.dst_vmid, dst.name)).await;
        return Ok(());
    }
    let Some(archive) = newest else {
        ev.step(ctx, "check replica", t0, false, "no replica and no verified archive").await;
        return Err(fail(
            ErrorKind::Config,
            format!("There is no replica of {} on {} and no verified archive to restore.", pair.name, dst.name),
        ));
    };
    ev.step(
        ctx,
        "check replica",
        t0,
        true,
        format!("replica VM {} is not current; restoring {}", pair.dst_vmid, archive.file_name),
    )
    .await;
    let t1 = Timestamp::now();
    let restored = run_restore(
        ctx,
        &pair,
        dst,
        hv,
        &archive,
        Source::Store { verify: true },
        Phases::new(10.0, 50.0, 100.0),
        true,
    )
    .await;
    let ok = restored.is_ok();
    let detail = match &restored {
        Ok(()) => format!("restored {} as VM {} on {} and started it", archive.file_name, pair.dst_vmid, dst.name),
        Err(e) => e.to_string(),
    };
    ev.step(ctx, "restore and start replica", t1, ok, detail).await;
    restored
}

async fn announce(ctx: &TaskCtx, key: &str, pair: &Pair, message: String) {
    let d = Draft {
        kind: AlertKind::Failover,
        subject_type: "pair",
        subject_id: pair.id.to_string(),
        subject_name: pair.name.clone(),
        message,
    };
    if let Err(e) = crate::monitor::raise(&ctx.state, key, &d).await {
        tracing::warn!(error = %e, "cannot raise the failover alert");
    }
}

async fn settle(ctx: &TaskCtx, key: &str, why: &str) {
    if let Err(e) = crate::monitor::clear(&ctx.state, key, why).await {
        tracing::warn!(error = %e, "cannot close the failover alert");
    }
}
