//! A DR drill (non-disruptive test recovery): restore the newest (or the
//! chosen) verified archive on the DRC host as the pair's `drill_vmid`
//! with fresh MAC addresses (`--unique 1`) and every NIC link down, start
//! it, check it keeps running for `DRILL_BOOT_SECS` (and that its guest
//! agent answers when it has one), record the evidence and the measured
//! RTO, then destroy it. The replica and the DC VM are never touched.
//!
//! A drill VM carries the tag `drswitch-drill-<pair>`; a VM on the drill
//! VMID without it was not made by a drill and is never destroyed.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::evidence::Evidence;
use super::restore::{is_nic, send};
use super::{fail, JobError};
use crate::archive_store::sha256_file;
use crate::db::archives::Archive;
use crate::db::hypervisors::Hypervisor as HypervisorRecord;
use crate::db::pairs::Pair;
use crate::domain::{ErrorKind, Guest, TaskKind, Timestamp, Vmid};
use crate::hypervisor::{GuestState, HvEvent, Hypervisor};
use crate::worker::context::{Span, TaskCtx};
use crate::worker::leftovers;

/// The tag that marks a VM as a drill VM of this pair.
pub fn drill_tag(pair: &Pair) -> String {
    format!("drswitch-drill-{}", pair.id)
}

pub async fn run_drill(
    ctx: &TaskCtx,
    pair: &Pair,
    dst: &HypervisorRecord,
    hv: &impl Hypervisor,
) -> Result<(), JobError> {
    let vmid =
        pair.drill_vmid.ok_or_else(|| fail(ErrorKind::Config, "The pair has no drill VMID; set drill_vmid first."))?;
    if pair.guest != Guest::Qemu {
        return Err(fail(ErrorKind::Config, "Drills are for qemu guests only so far."));
    }
    let mut ev = Evidence::begin(ctx, TaskKind::Drill).await?;
    let mut created = false;
    let result = drill(ctx, pair, dst, hv, vmid, &mut ev, &mut created).await;
    // Whatever happened, a drill VM this task made does not outlive it.
    let t = Timestamp::now();
    let cleanup = remove_drill_vm(ctx, pair, hv, vmid, created).await;
    match &cleanup {
        Ok(Some(detail)) => ev.step(ctx, "destroy drill VM", t, true, detail.clone()).await,
        Ok(None) => {}
        Err(e) => ev.step(ctx, "destroy drill VM", t, false, e.to_string()).await,
    }
    match (result, cleanup) {
        (Ok(rto_ms), Ok(_)) => {
            let summary = format!(
                "Drill passed: {} booted as VM {vmid} on {} in {:.1} s and kept running; the drill VM was destroyed.",
                pair.name,
                dst.name,
                rto_ms as f64 / 1000.0
            );
            ev.finish(ctx, true, &summary, Some(rto_ms)).await;
            ctx.log(summary);
            Ok(())
        }
        (Err(e), _) => {
            ev.finish(ctx, false, &format!("Drill failed: {e}"), None).await;
            Err(e)
        }
        (Ok(_), Err(e)) => {
            let why = format!("The drill VM {vmid} could not be destroyed: {e}");
            ev.finish(ctx, false, &why, None).await;
            Err(fail(ErrorKind::CommandFailed, why))
        }
    }
}

/// Returns the measured RTO: from the task's start until the drill VM ran.
async fn drill(
    ctx: &TaskCtx,
    pair: &Pair,
    dst: &HypervisorRecord,
    hv: &impl Hypervisor,
    vmid: Vmid,
    ev: &mut Evidence,
    created: &mut bool,
) -> Result<i64, JobError> {
    let db = &ctx.state.db;
    let t0 = Timestamp::now();
    let archive: Archive = match ctx.task.archive_id {
        Some(a) => db.archive(a).await?.ok_or_else(|| fail(ErrorKind::Config, "The archive to drill was deleted."))?,
        None => db
            .list_archives(pair.id)
            .await?
            .into_iter()
            .find(|a| a.verified_at.is_some())
            .ok_or_else(|| fail(ErrorKind::Config, "This pair has no verified archive to drill yet."))?,
    };
    db.set_task_archive(ctx.task.id, archive.id).await?;
    // The drill VMID must be free, or hold a leftover of an earlier drill.
    if hv.guest_state(pair.guest, vmid, &ctx.cancel).await? != GuestState::Missing {
        let tags = hv.tags(pair.guest, vmid, &ctx.cancel).await?;
        if !tags.contains(&drill_tag(pair)) {
            ev.step(ctx, "preflight", t0, false, format!("VM {vmid} exists on {} and is not a drill VM", dst.name))
                .await;
            return Err(fail(
                ErrorKind::NotOurs,
                format!(
                    "VM {vmid} on {} exists and was not made by a drill of this pair, so nothing was changed; pick a free drill_vmid.",
                    dst.name
                ),
            ));
        }
        ctx.log(format!("VM {vmid} is a leftover of an earlier drill; destroying it first"));
        hv.stop(pair.guest, vmid, &ctx.cancel).await.ok();
        hv.destroy(pair.guest, vmid, &ctx.cancel).await?;
    }
    let local = ctx.state.archives().path(pair.id, &archive.file_name);
    let sha =
        sha256_file(&local).await.map_err(|e| fail(ErrorKind::Internal, format!("Cannot read the archive: {e}.")))?;
    if sha != archive.sha256 {
        return Err(fail(
            ErrorKind::Checksum,
            format!("The archive {} no longer matches its checksum.", archive.file_name),
        ));
    }
    ev.step(
        ctx,
        "preflight",
        t0,
        true,
        format!("archive {} verified; VM {vmid} is free on {}", archive.file_name, dst.name),
    )
    .await;

    let t1 = Timestamp::now();
    let dir = leftovers::open_task_dir(ctx, hv, dst).await?;
    let remote = send(ctx, hv, dst, &dir, &archive, &local, Span { from: 0.0, to: 40.0 }, &ctx.cancel).await?;
    ev.step(ctx, "push", t1, true, format!("archive copied to {} and verified", dst.name)).await;

    let t2 = Timestamp::now();
    ctx.phase("restoring", 40);
    let rep = ctx.reporter();
    let mut on = |e: HvEvent<'_>| match e {
        HvEvent::Line(line) => rep.output(line),
        HvEvent::Progress { percent, done, total } => {
            rep.progress("restoring", 40 + i64::from(percent) * 40 / 100, done as i64, total as i64)
        }
    };
    // Look again right before restoring: the push may have taken minutes,
    // and someone may have taken the VMID meanwhile.
    if hv.guest_state(pair.guest, vmid, &ctx.cancel).await? != GuestState::Missing {
        return Err(fail(
            ErrorKind::NotOurs,
            format!("VM {vmid} on {} was created by someone else during the drill; nothing was changed.", dst.name),
        ));
    }
    // The VMID was free a moment ago: what is there from now on is this
    // drill's, even a half-restored VM without the tag.
    *created = true;
    hv.restore(pair.guest, &remote, vmid, &dst.restore_storage, false, true, &ctx.cancel, &mut on).await?;
    let _ = hv.remove(&[&remote], &CancellationToken::new()).await;
    // Marked first, so whatever happens next it is known as a drill VM.
    hv.set_tags(pair.guest, vmid, &[drill_tag(pair)], &ctx.cancel).await?;
    let isolated = isolate(hv, pair.guest, vmid, &ctx.cancel).await?;
    ev.step(
        ctx,
        "restore",
        t2,
        true,
        format!("restored as VM {vmid} with new MAC addresses; {isolated} NIC(s) set link_down=1"),
    )
    .await;

    let t3 = Timestamp::now();
    ctx.phase("starting", 85);
    hv.start(pair.guest, vmid, &ctx.cancel).await?;
    if !matches!(hv.guest_state(pair.guest, vmid, &ctx.cancel).await?, GuestState::Running(_)) {
        ev.step(ctx, "boot", t3, false, "did not start").await;
        return Err(fail(ErrorKind::CommandFailed, format!("The drill VM {vmid} did not start.")));
    }
    let rto_ms = ev.elapsed_ms();
    ev.step(ctx, "boot", t3, true, format!("VM {vmid} running {:.1} s after the drill began", rto_ms as f64 / 1000.0))
        .await;

    let t4 = Timestamp::now();
    ctx.phase("checking", 90);
    let hold = ctx.state.settings.drill_boot;
    let agent = hv.options(pair.guest, vmid, &ctx.cancel).await?.iter().any(|(k, v)| k == "agent" && agent_enabled(v));
    let deadline = tokio::time::Instant::now() + hold;
    let mut agent_ok = !agent;
    loop {
        match hv.guest_state(pair.guest, vmid, &ctx.cancel).await? {
            GuestState::Running(_) => {}
            other => {
                ev.step(ctx, "stays up", t4, false, format!("VM {vmid} is {other}")).await;
                return Err(fail(ErrorKind::CommandFailed, format!("The drill VM {vmid} stopped running ({other}).")));
            }
        }
        if !agent_ok {
            agent_ok = hv.agent_ping(vmid, &ctx.cancel).await?;
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1).min(hold)) => {}
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        }
    }
    if !agent_ok {
        ev.step(ctx, "stays up", t4, false, "the guest agent never answered").await;
        return Err(fail(ErrorKind::CommandFailed, format!("The guest agent of drill VM {vmid} never answered.")));
    }
    let agent_note = if agent { "; the guest agent answers" } else { "" };
    ev.step(ctx, "stays up", t4, true, format!("kept running for {} s{agent_note}", hold.as_secs())).await;
    Ok(rto_ms)
}

/// `agent: 1` or `agent: enabled=1,…` (the first, unnamed, option is
/// `enabled`).
fn agent_enabled(value: &str) -> bool {
    value.split(',').any(|part| matches!(part.trim(), "1" | "enabled=1"))
}

/// Sets `link_down=1` on every NIC, keeping model and MAC. Returns how many.
async fn isolate(
    hv: &impl Hypervisor,
    guest: Guest,
    vmid: Vmid,
    cancel: &CancellationToken,
) -> Result<usize, JobError> {
    let changes: Vec<(String, String)> = hv
        .options(guest, vmid, cancel)
        .await?
        .into_iter()
        .filter(|(k, _)| is_nic(k))
        .map(|(k, v)| {
            let mut parts: Vec<String> =
                v.split(',').filter(|p| !p.starts_with("link_down=")).map(String::from).collect();
            parts.push("link_down=1".into());
            (k, parts.join(","))
        })
        .collect();
    hv.set_options(guest, vmid, &changes, cancel).await?;
    Ok(changes.len())
}

/// Stops and destroys the drill VM if this task made it or it carries the
/// drill tag; a cancel does not cut this. Returns what was done, None when
/// there was nothing to do.
async fn remove_drill_vm(
    ctx: &TaskCtx,
    pair: &Pair,
    hv: &impl Hypervisor,
    vmid: Vmid,
    created: bool,
) -> Result<Option<String>, JobError> {
    let shield = CancellationToken::new();
    if hv.guest_state(pair.guest, vmid, &shield).await? == GuestState::Missing {
        return Ok(None);
    }
    if !created && !hv.tags(pair.guest, vmid, &shield).await?.contains(&drill_tag(pair)) {
        return Ok(None);
    }
    ctx.phase("cleaning up", 95);
    if matches!(hv.guest_state(pair.guest, vmid, &shield).await?, GuestState::Running(_)) {
        hv.stop(pair.guest, vmid, &shield).await?;
    }
    hv.destroy(pair.guest, vmid, &shield).await?;
    Ok(Some(format!("drill VM {vmid} stopped and destroyed")))
}

#[cfg(test)]
mod tests {
    use super::agent_enabled;

    #[test]
    fn the_agent_option_is_read_both_ways() {
        assert!(agent_enabled("1"));
        assert!(agent_enabled("enabled=1,fstrim_cloned_disks=1"));
        assert!(agent_enabled("1,type=virtio"));
        assert!(!agent_enabled("0"));
        assert!(!agent_enabled("enabled=0"));
    }
}
