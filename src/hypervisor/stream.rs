//! Bytes that flow through the middleware instead of landing in files
//! first: a dump read from a host as it is produced, and an upload that
//! writes into a file on a host as bytes arrive. Both are one ssh session
//! each, with a bounded buffer, so memory stays flat whatever the size.

use std::process::Stdio;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::ssh::{quote, read_tail, SshTarget};
use super::HvError;
use crate::domain::ErrorKind;

/// Starts `args` on the host with the given ends piped.
fn spawn(t: &SshTarget, args: &[&str], stdin: Stdio, stdout: Stdio) -> Result<Child, HvError> {
    let remote = args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ");
    super::child::command("ssh")
        .args(t.options())
        .arg("--")
        .arg(&t.host)
        .arg(&remote)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| HvError::new(ErrorKind::Internal, format!("cannot run ssh: {e}")))
}

/// A line of the dump's log, with how far the dump is when the line says.
#[derive(Debug)]
pub struct StreamLine {
    pub line: String,
    pub percent: Option<u8>,
}

/// What `DumpStream::next` got.
pub enum Next {
    Bytes(usize),
    Line(StreamLine),
}

/// A dump streaming out of a host: its bytes on `read`, its log lines on
/// `lines`, and at `finish` the sha256 the host computed of what it sent.
pub struct DumpStream {
    child: Child,
    stdout: ChildStdout,
    lines: mpsc::UnboundedReceiver<StreamLine>,
    lines_open: bool,
    stderr: JoinHandle<String>,
    host: SshTarget,
    what: String,
}

/// Whether a log line is the checksum the stream's pipe printed.
pub fn is_sha_line(line: &str) -> bool {
    sha_line(line).is_some()
}

/// A `sha256sum` line: 64 hex digits, two blanks, `-`.
fn sha_line(line: &str) -> Option<&str> {
    let (hash, rest) = line.split_once("  ")?;
    (rest == "-" && hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hash)
}

impl DumpStream {
    /// Runs `command` (argv, validated by the caller) so that its stdout
    /// reaches us and its sha256 is printed on stderr after it, and its
    /// failure fails the whole pipe.
    /// `percent` reads the driver's progress lines.
    pub fn start(
        t: &SshTarget,
        command: &[&str],
        what: String,
        percent: fn(&str) -> Option<u8>,
    ) -> Result<Self, HvError> {
        // tee copies the bytes to the session (fd 3) and into sha256sum;
        // pipefail reports the dump's own failure, or a cut stream's.
        let script = "set -o pipefail; { \"$@\" | tee /dev/fd/3 | sha256sum >&2; } 3>&1";
        let mut args = vec!["bash", "-c", script, "drswitch-stream"];
        args.extend_from_slice(command);
        let mut child = spawn(t, &args, Stdio::null(), Stdio::piped())?;
        let stdout = child.stdout.take().ok_or_else(|| HvError::new(ErrorKind::Internal, "ssh has no stdout"))?;
        let mut stderr = child.stderr.take().ok_or_else(|| HvError::new(ErrorKind::Internal, "ssh has no stderr"))?;
        let (tx, lines) = mpsc::unbounded_channel();
        let stderr = tokio::spawn(async move {
            // Lines go on as they come; the tail is kept for the error.
            let mut tail = String::new();
            let mut pending = Vec::new();
            let mut buf = vec![0u8; 8192];
            loop {
                let n = match stderr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                pending.extend_from_slice(&buf[..n]);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let raw: Vec<u8> = pending.drain(..=end).collect();
                    let line = String::from_utf8_lossy(&raw[..end]).into_owned();
                    tail.push_str(&line);
                    tail.push('\n');
                    if tail.len() > 64 * 1024 {
                        let cut = tail.len() - 32 * 1024;
                        let cut = (cut..tail.len()).find(|i| tail.is_char_boundary(*i)).unwrap_or(tail.len());
                        tail.drain(..cut);
                    }
                    let _ = tx.send(StreamLine { percent: percent(&line), line });
                }
            }
            if !pending.is_empty() {
                let line = String::from_utf8_lossy(&pending).into_owned();
                tail.push_str(&line);
                let _ = tx.send(StreamLine { percent: percent(&line), line });
            }
            tail
        });
        Ok(Self { child, stdout, lines, lines_open: true, stderr, host: t.clone(), what })
    }

    /// The next bytes (0 at the end) or log line, whichever comes first.
    pub async fn next(&mut self, buf: &mut [u8]) -> Result<Next, HvError> {
        tokio::select! {
            line = self.lines.recv(), if self.lines_open => match line {
                Some(l) => Ok(Next::Line(l)),
                None => {
                    self.lines_open = false;
                    Ok(Next::Line(StreamLine { line: String::new(), percent: None }))
                }
            },
            n = self.stdout.read(buf) => n.map(Next::Bytes).map_err(|e| {
                HvError::new(ErrorKind::HostUnreachable, format!("{} from {} was cut: {e}", self.what, self.host.name))
            }),
        }
    }

    /// Waits for the end; the host's sha256 of every byte it sent.
    pub async fn finish(mut self) -> Result<String, HvError> {
        let status = self.child.wait().await;
        let tail = self.stderr.await.unwrap_or_default();
        let code = status.map_err(|e| HvError::new(ErrorKind::Internal, e.to_string()))?.code().unwrap_or(-1);
        if code == 0 {
            if let Some(sha) = tail.lines().rev().find_map(sha_line) {
                return Ok(sha.to_string());
            }
            return Err(HvError::new(
                ErrorKind::CommandFailed,
                format!("{} on {} ended without the checksum of what it sent", self.what, self.host.name),
            ));
        }
        if code == 255 {
            if let Some(e) = self.host.classify(&tail) {
                return Err(e.into());
            }
        }
        // Proxmox tools put the reason in an ERROR: line or the last line.
        let reason = tail
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("ERROR: "))
            .or_else(|| tail.lines().rev().find(|l| !l.trim().is_empty() && sha_line(l).is_none()))
            .unwrap_or("")
            .trim()
            .to_string();
        let kind = if reason.contains("does not exist") {
            ErrorKind::GuestMissing
        } else if reason.contains("No space left") {
            ErrorKind::NotEnoughSpace
        } else {
            ErrorKind::CommandFailed
        };
        let reason = if reason.is_empty() { format!("exit code {code}") } else { reason };
        Err(HvError::new(kind, format!("{} on {} failed: {reason}", self.what, self.host.name)))
    }
}

/// Bytes going into a new file on a host (owner-only, like rsync's
/// `--chmod=F600`).
pub struct Upload {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: JoinHandle<String>,
    host: SshTarget,
    path: String,
}

impl Upload {
    pub fn start(t: &SshTarget, path: &str) -> Result<Self, HvError> {
        let script = "umask 077 && exec cat > \"$1\"";
        let mut child = spawn(t, &["sh", "-c", script, "drswitch-upload", path], Stdio::piped(), Stdio::null())?;
        let stdin = child.stdin.take();
        let mut stderr = child.stderr.take().ok_or_else(|| HvError::new(ErrorKind::Internal, "ssh has no stderr"))?;
        let stderr = tokio::spawn(async move { read_tail(&mut stderr).await });
        Ok(Self { child, stdin, stderr, host: t.clone(), path: path.to_string() })
    }

    pub async fn write(&mut self, buf: &[u8]) -> Result<(), HvError> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(HvError::new(ErrorKind::Internal, "the upload is closed"));
        };
        stdin.write_all(buf).await.map_err(|e| {
            HvError::new(ErrorKind::HostUnreachable, format!("copying to {} was cut: {e}", self.host.name))
        })
    }

    /// Closes the stream and waits until the host has every byte written.
    pub async fn finish(mut self) -> Result<(), HvError> {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.shutdown().await;
        }
        let status = self.child.wait().await;
        let tail = self.stderr.await.unwrap_or_default();
        let code = status.map_err(|e| HvError::new(ErrorKind::Internal, e.to_string()))?.code().unwrap_or(-1);
        if code == 0 {
            return Ok(());
        }
        if let Some(e) = self.host.classify(&tail) {
            return Err(e.into());
        }
        let reason = tail.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
        let kind = if reason.contains("No space left") { ErrorKind::NotEnoughSpace } else { ErrorKind::CommandFailed };
        Err(HvError::new(
            kind,
            format!("writing {} on {} failed: {reason} (exit code {code})", self.path, self.host.name),
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn checksum_lines() {
        let h = "a".repeat(64);
        assert_eq!(super::sha_line(&format!("{h}  -")), Some(h.as_str()));
        assert_eq!(super::sha_line("INFO: starting new backup job: vzdump 100 --stdout 1"), None);
        assert_eq!(super::sha_line(&format!("{h}  /tmp/x")), None);
    }
}
