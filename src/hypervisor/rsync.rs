//! Moving archives with rsync over the same pinned ssh, with progress. A
//! transfer always lands on a temporary name; the caller renames it only
//! after the checksum matches. A transfer cut by the network goes on from
//! the bytes that arrived (`--partial --append-verify`, whose whole-file
//! check sends everything again if the kept part does not match), here
//! for a few tries and across attempts of a task, which keep that name.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use crate::hypervisor::ssh::SshTarget;
use crate::hypervisor::HvEvent;

/// Tries of one transfer when the connection drops.
const TRIES: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{0}")]
    Failed(String),
    #[error("cancelled")]
    Cancelled,
}

fn remote_spec(t: &SshTarget, path: &str) -> String {
    if t.host.contains(':') {
        format!("[{}]:{path}", t.host)
    } else {
        format!("{}:{path}", t.host)
    }
}

/// Copies `remote` on the host to `local`.
pub async fn pull(
    t: &SshTarget,
    bwlimit_kib: u64,
    remote: &str,
    local: &Path,
    timeout: Duration,
    cancel: &CancellationToken,
    on: &mut (dyn FnMut(HvEvent<'_>) + Send),
) -> Result<(), TransferError> {
    let src = remote_spec(t, remote);
    let dst = local.display().to_string();
    rsync(t, bwlimit_kib, &src, &dst, timeout, cancel, on, &format!("copying {remote} from {}", t.name)).await
}

/// Copies `local` to `remote` on the host.
pub async fn push(
    t: &SshTarget,
    bwlimit_kib: u64,
    local: &Path,
    remote: &str,
    timeout: Duration,
    cancel: &CancellationToken,
    on: &mut (dyn FnMut(HvEvent<'_>) + Send),
) -> Result<(), TransferError> {
    let src = local.display().to_string();
    let dst = remote_spec(t, remote);
    rsync(t, bwlimit_kib, &src, &dst, timeout, cancel, on, &format!("copying the archive to {}", t.name)).await
}

/// How one run of rsync ended.
enum Run {
    Done,
    /// The connection dropped: worth going on from what arrived.
    Cut(String),
}

#[allow(clippy::too_many_arguments)]
async fn rsync(
    t: &SshTarget,
    bwlimit_kib: u64,
    src: &str,
    dst: &str,
    timeout: Duration,
    cancel: &CancellationToken,
    on: &mut (dyn FnMut(HvEvent<'_>) + Send),
    what: &str,
) -> Result<(), TransferError> {
    let deadline = tokio::time::Instant::now() + timeout;
    for tryno in 1..=TRIES {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match run_once(t, bwlimit_kib, src, dst, left, timeout, cancel, on, what).await? {
            Run::Done => return Ok(()),
            Run::Cut(reason) if tryno < TRIES => {
                let line = format!(
                    "{what} was cut ({reason}); going on from the bytes that arrived (try {} of {TRIES})",
                    tryno + 1
                );
                on(HvEvent::Line(&line));
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = cancel.cancelled() => return Err(TransferError::Cancelled),
                }
            }
            Run::Cut(reason) => {
                return Err(TransferError::Failed(format!("{what} was cut {TRIES} times; the last time: {reason}")))
            }
        }
    }
    Err(TransferError::Failed(format!("{what} did not finish")))
}

#[allow(clippy::too_many_arguments)]
async fn run_once(
    t: &SshTarget,
    bwlimit_kib: u64,
    src: &str,
    dst: &str,
    left: Duration,
    timeout: Duration,
    cancel: &CancellationToken,
    on: &mut (dyn FnMut(HvEvent<'_>) + Send),
    what: &str,
) -> Result<Run, TransferError> {
    // --append-verify implies --inplace: bytes land on the caller's
    // temporary name at once, so a cut or a killed worker keeps them.
    let mut child = super::child::command("rsync")
        .args(["--info=progress2", "--no-inc-recursive", "--timeout=120", "--partial", "--append-verify"])
        .arg("--chmod=D700,F600")
        .arg(format!("--bwlimit={bwlimit_kib}"))
        .arg("-e")
        .arg(t.rsync_shell())
        .arg("--")
        .arg(src)
        .arg(dst)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| TransferError::Failed(format!("cannot run rsync: {e}")))?;
    let mut stdout = child.stdout.take().ok_or_else(|| TransferError::Failed("rsync has no stdout".into()))?;
    let mut stderr = child.stderr.take().ok_or_else(|| TransferError::Failed("rsync has no stderr".into()))?;
    let work = async {
        let err_task = tokio::spawn(async move { crate::hypervisor::ssh::read_tail(&mut stderr).await });
        // progress2 rewrites one line with \r: "  1,234,567  45%  10.5MB/s  0:00:03".
        let mut buf = [0u8; 4096];
        let mut pending = Vec::new();
        loop {
            let n = match stdout.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            for &b in &buf[..n] {
                if b == b'\r' || b == b'\n' {
                    if let Some((done, percent)) = parse_progress(&String::from_utf8_lossy(&pending)) {
                        on(HvEvent::Progress { percent, done, total: 0 });
                    }
                    pending.clear();
                } else {
                    pending.push(b);
                }
            }
        }
        let status = child.wait().await;
        (status, err_task.await.unwrap_or_default())
    };
    let (status, stderr) = tokio::select! {
        r = work => r,
        _ = tokio::time::sleep(left) => {
            return Err(TransferError::Failed(format!("{what} did not finish within {} s", timeout.as_secs())));
        }
        _ = cancel.cancelled() => return Err(TransferError::Cancelled),
    };
    let status = status.map_err(|e| TransferError::Failed(format!("rsync failed: {e}")))?;
    if status.success() {
        return Ok(Run::Done);
    }
    let code = status.code().unwrap_or(-1);
    // A full disk on the receiving side often ends the stream like a cut
    // connection does; it is not one, and trying again will not help.
    if stderr.contains("No space left on device") {
        return Err(TransferError::Failed(format!(
            "{what} failed: no space left on the receiving side (rsync exit code {code})"
        )));
    }
    if let Some(e) = t.classify(&stderr) {
        return match e {
            // A dropped connection, not a refused one: go on from what arrived.
            crate::hypervisor::ssh::SshError::Unreachable { reason, .. }
                if reason.contains("closed") || reason.contains("reset") || reason.contains("Broken pipe") =>
            {
                Ok(Run::Cut(reason))
            }
            e => Err(TransferError::Failed(e.to_string())),
        };
    }
    // 12: protocol data stream error, 30: I/O timeout, 35: daemon
    // timeout, 255: ssh lost the connection, 20/-1: killed by a signal.
    if matches!(code, 12 | 30 | 35 | 255) {
        let reason = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("connection lost").trim();
        return Ok(Run::Cut(format!("{reason} (rsync exit code {code})")));
    }
    let reason = if stderr.contains("No space left on device") {
        "no space left on the receiving side".to_string()
    } else {
        stderr.lines().find(|l| l.starts_with("rsync:") || l.contains("error")).unwrap_or("").trim().to_string()
    };
    Err(TransferError::Failed(format!("{what} failed: {reason} (rsync exit code {code})")))
}

/// `  1,234,567  45%  10.5MB/s  0:00:03` → bytes and percent. With
/// `--append` the bytes count the part already there, so a resumed run
/// goes on from where the cut one stopped.
fn parse_progress(line: &str) -> Option<(u64, u8)> {
    let mut words = line.split_whitespace();
    let done = words.next()?.replace(',', "").parse().ok()?;
    let percent = words.next()?.strip_suffix('%')?.parse::<u32>().ok()?;
    Some((done, percent.min(100) as u8))
}

#[cfg(test)]
mod tests {
    #[test]
    fn progress_lines() {
        assert_eq!(super::parse_progress("      1,234,567  45%   10.50MB/s    0:00:03"), Some((1_234_567, 45)));
        assert_eq!(
            super::parse_progress("  40,000,000 200%    1.13GB/s    0:00:00 (xfr#2, to-chk=0/1)"),
            Some((40_000_000, 100))
        );
        assert_eq!(super::parse_progress("sending incremental file list"), None);
    }
}
