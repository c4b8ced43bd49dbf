//! Streaming transfer (SPEC §4.1): the DC host's `vzdump --stdout` is read
//! over ssh, and every chunk is hashed, written to a temporary name in the
//! middleware's store and forwarded to a temporary name on the DRC host at
//! once, so the two hops overlap instead of adding up. Nothing is written
//! on the DC host. The archive counts only when the DC host's checksum of
//! what it sent, the middleware's of what it stored and the DRC host's of
//! what it wrote all agree.
//!
//! A copy to the DRC host that breaks off does not stop the dump: the
//! middleware keeps storing, and afterwards sends only the missing rest
//! from its verified copy (rsync `--append-verify`). A dump that breaks off
//! cannot go on (vzdump cannot start mid-way): the task fails and its
//! files are removed.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::{fail, size, JobError};
use crate::db::archives::Archive;
use crate::db::hypervisors::Hypervisor as HypervisorRecord;
use crate::db::pairs::Pair;
use crate::domain::{ArchiveName, ErrorKind};
use crate::hypervisor::stream::{is_sha_line, Next, Upload};
use crate::hypervisor::{GuestState, HvError, Hypervisor, StreamOptions};
use crate::worker::context::{Span, TaskCtx};
use crate::worker::leftovers;

/// Bytes read from the dump per step: big enough for few system calls,
/// small enough that memory stays flat.
const CHUNK: usize = 256 * 1024;

/// The DRC side of a streamed replicate.
pub struct Forward<'a, D: Hypervisor> {
    pub dst: &'a HypervisorRecord,
    pub hv: &'a D,
}

/// What a streamed dump left: the stored, verified archive, and where the
/// DRC host holds its verified copy (directory, path), if it was sent.
pub struct Streamed {
    pub archive: Archive,
    pub on_host: Option<(String, String)>,
}

pub async fn run_streamed<S: Hypervisor, D: Hypervisor>(
    ctx: &TaskCtx,
    pair: &Pair,
    src: &HypervisorRecord,
    src_hv: &S,
    forward: Option<Forward<'_, D>>,
    span: Span,
) -> Result<Streamed, JobError> {
    let cancel = &ctx.cancel;
    if !src.enabled {
        return Err(fail(ErrorKind::Config, format!("The DC hypervisor {} is disabled.", src.name)));
    }
    let store = ctx.state.archives();
    store
        .prepare(pair.id)
        .map_err(|e| fail(ErrorKind::Internal, format!("Cannot create the archive directory of this pair: {e}.")))?;
    store.sweep_partials(ctx.task.id);

    ctx.phase("preflight", span.at(0.0));
    let newest = ctx.state.db.list_archives(pair.id).await?.into_iter().next();
    let expect = newest.as_ref().map(|a| a.size_bytes.max(0) as u64).unwrap_or(0);
    // Both sides are asked at once: each is one round trip, and on a WAN
    // those add up.
    let here_free = store.free_bytes(pair.id);
    let src_state = src_hv.guest_state(pair.guest, pair.src_vmid, cancel);
    let dst_facts = async {
        match &forward {
            Some(f) => {
                let (state, free) = tokio::join!(
                    f.hv.guest_state(pair.guest, pair.dst_vmid, cancel),
                    f.hv.free_bytes(&f.dst.dump_dir, cancel)
                );
                Ok::<_, HvError>(Some((state?, free?)))
            }
            None => Ok(None),
        }
    };
    let (here_free, src_state, dst_facts) = tokio::join!(here_free, src_state, dst_facts);
    let here_free = here_free.map_err(|e| fail(ErrorKind::Internal, e.to_string()))?;
    match src_state? {
        GuestState::Missing => {
            return Err(fail(ErrorKind::GuestMissing, format!("VM {} does not exist on {}.", pair.src_vmid, src.name)))
        }
        s => ctx.log(format!("preflight: VM {} on {} is {s}", pair.src_vmid, src.name)),
    }
    super::need_room(super::HERE, "", here_free, expect, super::LAST_ARCHIVE)?;
    if let (Some(f), Some((state, free))) = (&forward, dst_facts?) {
        ctx.log(format!("preflight: replica VM {} on {} is {state}", pair.dst_vmid, f.dst.name));
        // Fail before the dump, not after it.
        super::restore::ensure_ours(ctx, pair, f.hv, f.dst, &state).await?;
        super::need_room(&f.dst.name, &format!(" in {}", f.dst.dump_dir), free, expect, super::LAST_ARCHIVE)?;
    }
    if let Some(a) = &newest {
        super::backup::next_second_after(a.created_at.millis()).await;
    }

    let local_now = chrono::Utc::now().with_timezone(&ctx.state.settings.timezone.0).naive_local();
    let name = ArchiveName::for_stream(pair.guest, pair.src_vmid, pair.compress, local_now);
    let tmp = store.partial(pair.id, ctx.task.id, &name);
    let remote = match &forward {
        Some(f) => {
            let dir = leftovers::open_task_dir(ctx, f.hv, f.dst).await?;
            Some((dir.clone(), format!("{dir}/.partial-{name}"), format!("{dir}/{name}")))
        }
        None => None,
    };
    let result = stream(ctx, pair, src, src_hv, forward.as_ref(), &name, &tmp, remote.as_ref(), span).await;
    let archive = match result {
        Ok(sha) => {
            let bytes = std::fs::metadata(&tmp).map(|m| m.len() as i64).unwrap_or(0);
            super::backup::store_verified(ctx, pair, &name, &tmp, &sha, bytes).await
        }
        Err(e) => Err(e),
    };
    let archive = match archive {
        Ok(a) => a,
        Err(e) => {
            store.sweep_partials(ctx.task.id);
            // A cut session's vzdump may still hold the node's backup lock.
            let _ = src_hv.wait_for_dumps(&CancellationToken::new()).await;
            return Err(e);
        }
    };
    let on_host = match (&forward, remote) {
        (Some(f), Some((dir, tmp_remote, final_remote))) => {
            complete_remote(ctx, f, &archive, &dir, &tmp_remote, &final_remote, span).await?;
            Some((dir, final_remote))
        }
        _ => None,
    };
    Ok(Streamed { archive, on_host })
}

/// Moves the bytes; returns the sha256 all of them had on the DC host and
/// here.
#[allow(clippy::too_many_arguments)]
async fn stream<S: Hypervisor, D: Hypervisor>(
    ctx: &TaskCtx,
    pair: &Pair,
    src: &HypervisorRecord,
    src_hv: &S,
    forward: Option<&Forward<'_, D>>,
    name: &ArchiveName,
    tmp: &std::path::Path,
    remote: Option<&(String, String, String)>,
    span: Span,
) -> Result<String, JobError> {
    let cancel = &ctx.cancel;
    let rep = ctx.reporter();
    let limit = [Some(src_hv.bwlimit_kib()), forward.map(|f| f.hv.bwlimit_kib())]
        .into_iter()
        .flatten()
        .filter(|l| *l > 0)
        .min()
        .unwrap_or(0);
    super::log_limit(ctx, src_hv);
    if let Some(f) = forward {
        super::log_limit(ctx, f.hv);
    }
    let mut upload: Option<Upload> = match (forward, remote) {
        (Some(f), Some((_, tmp_remote, _))) => Some(f.hv.upload(tmp_remote).await?),
        _ => None,
    };
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .await
        .map_err(|e| fail(ErrorKind::Internal, format!("Cannot create {}: {e}.", tmp.display())))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o600));
    }
    // vzdump's log and temporary files go into the task's own directory,
    // removed with it when the task ends.
    let dc_dir = leftovers::open_task_dir(ctx, src_hv, src).await?;
    let dump_dir = dc_dir
        .parse()
        .map_err(|_| fail(ErrorKind::Config, format!("{dc_dir} is not a usable directory on {}.", src.name)))?;
    let opts =
        StreamOptions { dump_dir, compress: pair.compress, mode: pair.mode, fleecing: pair.fleecing_storage.clone() };
    if let Some(f) = &opts.fleecing {
        ctx.log(format!("fleecing on {f} of {}: guest writes wait on that storage, not on the link", src.name));
    }
    ctx.phase("streaming", span.at(0.0));
    ctx.log(format!(
        "streaming {name} from {}{}",
        src.name,
        forward.map(|f| format!(" to the middleware and {} at once", f.dst.name)).unwrap_or_default()
    ));
    let mut dump = src_hv.dump_stream(pair.guest, pair.src_vmid, &opts).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut done: u64 = 0;
    let mut percent: u8 = 0;
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + ctx.state.settings.command_timeout;
    let timed_out = || {
        fail(
            ErrorKind::Timeout,
            format!(
                "The streamed dump of VM {} from {} did not finish within {} s.",
                pair.src_vmid,
                src.name,
                ctx.state.settings.command_timeout.as_secs()
            ),
        )
    };
    let mut pace = Pace::new(limit);
    loop {
        let n = tokio::select! {
            next = dump.next(&mut buf) => match next? {
                Next::Bytes(n) => n,
                Next::Line(l) => {
                    // The checksum line is ours, not the host's log.
                    if !l.line.is_empty() && !is_sha_line(&l.line) {
                        rep.output(l.line);
                    }
                    percent = l.percent.unwrap_or(percent);
                    continue;
                }
            },
            _ = cancel.cancelled() => return Err(JobError::Cancelled),
            _ = tokio::time::sleep_until(deadline) => return Err(timed_out()),
        };
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        hasher.update(chunk);
        file.write_all(chunk).await.map_err(|e| {
            fail(ErrorKind::NotEnoughSpace, format!("Cannot write the archive on the middleware: {e}."))
        })?;
        if let Some(u) = upload.as_mut() {
            let sent = tokio::select! {
                r = u.write(chunk) => r,
                _ = cancel.cancelled() => return Err(JobError::Cancelled),
                _ = tokio::time::sleep_until(deadline) => return Err(timed_out()),
            };
            if let Err(e) = sent {
                // The dump goes on; the rest reaches the DRC host later.
                ctx.log(format!("{e}; the rest goes there from the middleware's copy after the dump"));
                upload = None;
            }
        }
        done += n as u64;
        // vzdump's percent is of the disk read; the archive's size follows it.
        let total = if percent >= 1 { (done * 100 / u64::from(percent)).max(done) } else { 0 };
        rep.progress("streaming", span.at(f64::from(percent) / 100.0 * 0.8), done as i64, total as i64);
        if let Some(wait) = pace.take(n as u64, Instant::now()) {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = cancel.cancelled() => return Err(JobError::Cancelled),
            }
        }
    }
    let src_sha = tokio::time::timeout_at(deadline, dump.finish()).await.map_err(|_| timed_out())??;
    file.sync_all().await.map_err(|e| fail(ErrorKind::Internal, format!("Cannot write the archive: {e}.")))?;
    drop(file);
    let sha = hex::encode(hasher.finalize());
    let secs = started.elapsed().as_secs_f64().max(0.001);
    ctx.log(format!(
        "streamed {name}: {} in {secs:.1} s ({}/s), sha256 {sha}",
        size(done),
        size((done as f64 / secs) as u64)
    ));
    if sha != src_sha {
        return Err(fail(
            ErrorKind::Checksum,
            format!("The streamed archive {name} does not match what {} sent ({sha} here, {src_sha} there).", src.name),
        ));
    }
    if let Some(u) = upload {
        match tokio::time::timeout_at(deadline, u.finish()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => ctx.log(format!("{e}; the rest goes there from the middleware's copy")),
            Err(_) => return Err(timed_out()),
        }
    }
    Ok(sha)
}

/// A token bucket for the transfer limit: bytes may go as fast as the
/// limit allows on average, with at most a second's worth of credit, so a
/// slow stretch (vzdump starting, a sparse disk) is not followed by a
/// burst at full link speed on a WAN shared with production.
struct Pace {
    /// Bytes per second; 0 = no limit.
    rate: f64,
    credit: f64,
    at: Option<Instant>,
}

impl Pace {
    fn new(limit_kib: u64) -> Self {
        Pace { rate: limit_kib as f64 * 1024.0, credit: 0.0, at: None }
    }

    /// Spends `bytes`; how long to wait before sending more.
    fn take(&mut self, bytes: u64, now: Instant) -> Option<Duration> {
        if self.rate <= 0.0 {
            return None;
        }
        let last = *self.at.get_or_insert(now);
        self.credit = (self.credit + now.duration_since(last).as_secs_f64() * self.rate).min(self.rate);
        self.at = Some(now);
        self.credit -= bytes as f64;
        (self.credit < 0.0).then(|| Duration::from_secs_f64(-self.credit / self.rate))
    }
}

/// Checks the DRC host's copy, sending the missing rest from the stored
/// archive first when the forward broke off, and gives it its real name.
async fn complete_remote<D: Hypervisor>(
    ctx: &TaskCtx,
    f: &Forward<'_, D>,
    archive: &Archive,
    dir: &str,
    tmp_remote: &str,
    final_remote: &str,
    span: Span,
) -> Result<(), JobError> {
    let cancel = &ctx.cancel;
    ctx.phase("verifying", span.at(0.9));
    let have = f.hv.file_size(tmp_remote, cancel).await.unwrap_or(0);
    let total = archive.size_bytes.max(0) as u64;
    if have < total {
        ctx.log(format!("{} has {} of {}; sending the rest from the middleware", f.dst.name, size(have), size(total)));
        let local = ctx.state.archives().path(archive.pair_id, &archive.file_name);
        let rep = ctx.reporter();
        let mut on = super::backup::transfer_progress(&rep, "pushing", span, total);
        f.hv.push(&local, tmp_remote, cancel, &mut on).await?;
    }
    let sha = f.hv.sha256(tmp_remote, cancel).await?;
    if sha != archive.sha256 {
        let _ = f.hv.remove(&[tmp_remote], &CancellationToken::new()).await;
        return Err(fail(
            ErrorKind::Checksum,
            format!("The archive streamed to {} does not match its checksum.", f.dst.name),
        ));
    }
    f.hv.rename(tmp_remote, final_remote, cancel).await?;
    ctx.log(format!("archive {} copied to {}:{dir} and verified", archive.file_name, f.dst.name));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_holds_the_rate_without_bursts_after_a_pause() {
        let t0 = Instant::now();
        let mut p = Pace::new(1024); // 1 MiB/s
        assert_eq!(Pace::new(0).take(1 << 30, t0), None);
        // 2 MiB at once: wait 2 s before the next byte.
        assert_eq!(p.take(2 << 20, t0), Some(Duration::from_secs(2)));
        // After a 10 s pause only a second's worth goes without waiting.
        let later = t0 + Duration::from_secs(12);
        assert_eq!(p.take(1 << 20, later), None);
        let w = p.take(1 << 20, later).unwrap();
        assert!((w.as_secs_f64() - 1.0).abs() < 1e-6, "{w:?}");
    }
}
