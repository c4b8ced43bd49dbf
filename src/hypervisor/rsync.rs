//! Moving archives with rsync over the same pinned ssh, with progress. A
//! transfer always lands on a temporary name; the caller renames it only
//! after the checksum matches.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::hypervisor::ssh::SshTarget;

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
    on_bytes: impl FnMut(u64),
) -> Result<(), TransferError> {
    let src = remote_spec(t, remote);
    let dst = local.display().to_string();
    rsync(t, bwlimit_kib, &src, &dst, timeout, cancel, on_bytes, &format!("copying {remote} from {}", t.name)).await
}

/// Copies `local` to `remote` on the host.
pub async fn push(
    t: &SshTarget,
    bwlimit_kib: u64,
    local: &Path,
    remote: &str,
    timeout: Duration,
    cancel: &CancellationToken,
    on_bytes: impl FnMut(u64),
) -> Result<(), TransferError> {
    let src = local.display().to_string();
    let dst = remote_spec(t, remote);
    rsync(t, bwlimit_kib, &src, &dst, timeout, cancel, on_bytes, &format!("copying the archive to {}", t.name)).await
}

#[allow(clippy::too_many_arguments)]
async fn rsync(
    t: &SshTarget,
    bwlimit_kib: u64,
    src: &str,
    dst: &str,
    timeout: Duration,
    cancel: &CancellationToken,
    mut on_bytes: impl FnMut(u64),
    what: &str,
) -> Result<(), TransferError> {
    let mut child = Command::new("rsync")
        .args(["--info=progress2", "--no-inc-recursive", "--timeout=120", "--whole-file", "--chmod=D700,F600"])
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
                    if let Some(done) = parse_progress(&String::from_utf8_lossy(&pending)) {
                        on_bytes(done);
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
        _ = tokio::time::sleep(timeout) => {
            return Err(TransferError::Failed(format!("{what} did not finish within {} s", timeout.as_secs())));
        }
        _ = cancel.cancelled() => return Err(TransferError::Cancelled),
    };
    let status = status.map_err(|e| TransferError::Failed(format!("rsync failed: {e}")))?;
    if status.success() {
        return Ok(());
    }
    if let Some(e) = t.classify(&stderr) {
        return Err(TransferError::Failed(e.to_string()));
    }
    let reason = if stderr.contains("No space left on device") {
        "no space left on the receiving side".to_string()
    } else {
        stderr.lines().find(|l| l.starts_with("rsync:") || l.contains("error")).unwrap_or("").trim().to_string()
    };
    Err(TransferError::Failed(format!("{what} failed: {reason} (rsync exit code {})", status.code().unwrap_or(-1))))
}

fn parse_progress(line: &str) -> Option<u64> {
    let first = line.split_whitespace().next()?;
    if !line.contains('%') {
        return None;
    }
    first.replace(',', "").parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn progress_lines() {
        assert_eq!(super::parse_progress("      1,234,567  45%   10.50MB/s    0:00:03"), Some(1_234_567));
        assert_eq!(super::parse_progress("sending incremental file list"), None);
    }
}
