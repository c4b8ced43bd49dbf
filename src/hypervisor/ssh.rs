//! Running commands on a hypervisor with the system `ssh`: key-based only,
//! strict host-key checking against the key pinned for that hypervisor,
//! every command bounded by a timeout and stoppable by cancellation.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sha2::Digest;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use crate::db::hypervisors::Hypervisor;

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("the SSH host key of {name} ({addr}) does not match the pinned key; if the host was reinstalled, an admin must re-pin it with the connectivity check")]
    HostKeyChanged { name: String, addr: String },
    #[error("{name} has no pinned SSH host key yet; run the connectivity check (POST /api/v1/hypervisors/{{id}}/check) first")]
    NotPinned { name: String },
    #[error("cannot reach {name} over SSH ({addr}): {reason}")]
    Unreachable { name: String, addr: String, reason: String },
    #[error("{what} on {name} did not finish within {secs} s")]
    Timeout { name: String, what: String, secs: u64 },
    #[error("cancelled")]
    Cancelled,
    #[error("cannot run ssh: {0}")]
    Spawn(String),
}

/// How to reach one hypervisor over ssh.
#[derive(Debug, Clone)]
pub struct SshTarget {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub key: PathBuf,
    pub known_hosts: PathBuf,
    pub control_dir: PathBuf,
    /// Names the shared connection after host, port, user and pinned key:
    /// a re-pinned or changed key never rides on a connection opened under
    /// the old one.
    pub socket_name: String,
    pub connect_timeout: Duration,
}

/// What a finished remote command left behind.
#[derive(Debug, Default)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.code == 0
    }

    /// The last non-empty stderr line, which is where Proxmox tools put the error.
    pub fn error_line(&self) -> String {
        self.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string()
    }
}

/// The last `TAIL_BYTES` (or a little more) of a command's output, cut at
/// line ends only: a remote command may print without end, and a cut inside
/// a multi-byte character would not be text any more.
const TAIL_BYTES: usize = 64 * 1024;

#[derive(Default)]
struct Tail {
    lines: std::collections::VecDeque<String>,
    bytes: usize,
    /// Bytes of an unfinished last line (stderr arrives in chunks).
    partial: Vec<u8>,
}

impl Tail {
    fn push_line(&mut self, line: &str) {
        // One huge line keeps only its end, cut at a character boundary.
        let line = if line.len() > TAIL_BYTES {
            let mut from = line.len() - TAIL_BYTES;
            while !line.is_char_boundary(from) {
                from += 1;
            }
            &line[from..]
        } else {
            line
        };
        self.bytes += line.len() + 1;
        self.lines.push_back(line.to_string());
        while self.bytes > TAIL_BYTES {
            match self.lines.pop_front() {
                Some(old) => self.bytes -= old.len() + 1,
                None => break,
            }
        }
    }

    fn push_bytes(&mut self, chunk: &[u8]) {
        self.partial.extend_from_slice(chunk);
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            self.push_line(String::from_utf8_lossy(&line[..end]).as_ref());
        }
        if self.partial.len() > TAIL_BYTES {
            let line = std::mem::take(&mut self.partial);
            self.push_line(String::from_utf8_lossy(&line).as_ref());
        }
    }

    fn into_string(mut self) -> String {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.push_line(String::from_utf8_lossy(&line).as_ref());
        }
        let mut s = String::with_capacity(self.bytes);
        for l in &self.lines {
            s.push_str(l);
            s.push('\n');
        }
        s
    }
}

/// Reads a stream to its end, keeping only its tail.
pub async fn read_tail(r: &mut (impl tokio::io::AsyncRead + Unpin)) -> String {
    let mut tail = Tail::default();
    let mut buf = vec![0u8; 8192];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        tail.push_bytes(&buf[..n]);
    }
    tail.into_string()
}

/// Quotes one argument for the remote POSIX shell.
pub fn quote(arg: &str) -> String {
    if !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+".contains(&b)) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// The known_hosts line for a pinned key (`ssh-ed25519 AAAA…`).
pub fn known_hosts_line(host: &str, port: u16, key: &str) -> String {
    if port == 22 {
        format!("{host} {key}")
    } else {
        format!("[{host}]:{port} {key}")
    }
}

/// Unix socket paths are limited to 107 bytes and ssh adds a 17-byte
/// suffix while creating one; a deep DATA_DIR gets a short private
/// directory under /tmp instead.
fn control_dir(ssh_dir: &Path) -> Result<PathBuf, SshError> {
    let io = |d: &Path, e: std::io::Error| SshError::Spawn(format!("cannot prepare {}: {e}", d.display()));
    let preferred = ssh_dir.join("cm");
    if preferred.as_os_str().len() + 1 + 16 + 17 <= 100 {
        std::fs::create_dir_all(&preferred).map_err(|e| io(&preferred, e))?;
        return Ok(preferred);
    }
    let tag = hex::encode(&sha2::Sha256::digest(ssh_dir.as_os_str().as_encoded_bytes())[..4]);
    let short = std::env::temp_dir().join(format!("drswitch-cm-{tag}"));
    match crate::files::create_private_dir(&short) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(&short, e)),
    }
    // Only a directory of our own, closed to others, may hold our sockets.
    // Look before touching: /tmp is shared, and a symlink planted there
    // must be refused, never followed by chmod.
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mine = std::fs::metadata(ssh_dir).map_err(|e| io(ssh_dir, e))?.uid();
    let meta = std::fs::symlink_metadata(&short).map_err(|e| io(&short, e))?;
    if meta.file_type().is_symlink() || !meta.is_dir() || meta.uid() != mine {
        return Err(SshError::Spawn(format!("{} is not a private directory of this user", short.display())));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o700)).map_err(|e| io(&short, e))?;
    }
    Ok(short)
}

impl SshTarget {
    /// Writes the pinned key to this hypervisor's own known_hosts file.
    pub fn for_hypervisor(h: &Hypervisor, ssh_dir: &Path, connect_timeout: Duration) -> Result<Self, SshError> {
        let key = h.host_key.as_deref().ok_or_else(|| SshError::NotPinned { name: h.name.clone() })?;
        let dir = ssh_dir.join("known_hosts.d");
        let control_dir = control_dir(ssh_dir)?;
        std::fs::create_dir_all(&dir).map_err(|e| SshError::Spawn(format!("cannot create {}: {e}", dir.display())))?;
        let known_hosts = dir.join(h.id.to_string());
        let line = known_hosts_line(h.host.as_str(), h.ssh_port, key);
        crate::files::write_atomic(&known_hosts, format!("{line}\n").as_bytes())
            .map_err(|e| SshError::Spawn(format!("cannot write {}: {e}", known_hosts.display())))?;
        let tag = format!("{}|{}|{line}", h.ssh_user, h.id);
        let socket_name = hex::encode(&sha2::Sha256::digest(tag.as_bytes())[..8]);
        Ok(Self {
            socket_name,
            name: h.name.clone(),
            host: h.host.to_string(),
            port: h.ssh_port,
            user: h.ssh_user.to_string(),
            key: ssh_dir.join("id_ed25519"),
            known_hosts,
            control_dir,
            connect_timeout,
        })
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Options shared by ssh and rsync's `-e`: our key only, the pinned key
    /// only, no prompts, connection sharing to save a handshake per command.
    pub fn options(&self) -> Vec<String> {
        vec![
            "-i".into(),
            self.key.display().to_string(),
            "-p".into(),
            self.port.to_string(),
            "-l".into(),
            self.user.clone(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "-o".into(),
            "GlobalKnownHostsFile=/dev/null".into(),
            "-o".into(),
            "UpdateHostKeys=no".into(),
            "-o".into(),
            format!("ConnectTimeout={}", self.connect_timeout.as_secs().max(1)),
            "-o".into(),
            "ServerAliveInterval=15".into(),
            "-o".into(),
            "ServerAliveCountMax=4".into(),
            "-o".into(),
            "ControlMaster=auto".into(),
            "-o".into(),
            format!("ControlPath={}/{}", self.control_dir.display(), self.socket_name),
            "-o".into(),
            "ControlPersist=30".into(),
        ]
    }

    /// The `-e` value for rsync (paths here never hold spaces or quotes:
    /// they live under DATA_DIR, which the operator controls). ssh, too,
    /// dies with the rsync that started it: rsync's forked receiver would
    /// otherwise go on writing what a live ssh still delivers into the file
    /// the next attempt appends to.
    pub fn rsync_shell(&self) -> String {
        ["setpriv", "--pdeathsig", "KILL", "--", "ssh"]
            .into_iter()
            .map(String::from)
            .chain(self.options().iter().map(|o| quote(o)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs `args` (each quoted) on the host. `on_line` sees every stdout
    /// line as it arrives.
    pub async fn run_streaming(
        &self,
        args: &[&str],
        timeout: Duration,
        cancel: &CancellationToken,
        mut on_line: impl FnMut(&str),
    ) -> Result<Output, SshError> {
        let remote = args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ");
        let mut child = super::child::command("ssh")
            .args(self.options())
            .arg("--")
            .arg(&self.host)
            .arg(&remote)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| SshError::Spawn(e.to_string()))?;
        let stdout = child.stdout.take().ok_or_else(|| SshError::Spawn("no stdout".into()))?;
        let mut stderr = child.stderr.take().ok_or_else(|| SshError::Spawn("no stderr".into()))?;
        let what = args.first().copied().unwrap_or("command").to_string();
        let work = async {
            let err_task = tokio::spawn(async move { read_tail(&mut stderr).await });
            // Bytes, not `lines()`: remote output may not be UTF-8 (file
            // names in vzdump's tar warnings), and a reader that stopped at
            // the first bad byte would leave the command blocked on a full pipe.
            let mut stdout = stdout;
            let mut out = Tail::default();
            let mut pending: Vec<u8> = Vec::new();
            let mut buf = vec![0u8; 8192];
            loop {
                let n = match stdout.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                pending.extend_from_slice(&buf[..n]);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let raw: Vec<u8> = pending.drain(..=end).collect();
                    let line = String::from_utf8_lossy(&raw[..end]);
                    on_line(&line);
                    out.push_line(&line);
                }
                // A line without an end is passed on in pieces, never held whole.
                if pending.len() > TAIL_BYTES {
                    let line = String::from_utf8_lossy(&pending).into_owned();
                    pending.clear();
                    on_line(&line);
                    out.push_line(&line);
                }
            }
            if !pending.is_empty() {
                let line = String::from_utf8_lossy(&pending).into_owned();
                on_line(&line);
                out.push_line(&line);
            }
            let out = out.into_string();
            let status = child.wait().await;
            let stderr = err_task.await.unwrap_or_default();
            (status, out, stderr)
        };
        let (status, stdout, stderr) = tokio::select! {
            r = work => r,
            _ = tokio::time::sleep(timeout) => {
                return Err(SshError::Timeout { name: self.name.clone(), what, secs: timeout.as_secs() });
            }
            _ = cancel.cancelled() => return Err(SshError::Cancelled),
        };
        let code = status.map_err(|e| SshError::Spawn(e.to_string()))?.code().unwrap_or(-1);
        // ssh itself exits 255 on connection problems; tell them apart from
        // a remote command's own 255 by what ssh printed.
        if code == 255 {
            if let Some(e) = self.classify(&stderr) {
                return Err(e);
            }
        }
        Ok(Output { code, stdout, stderr })
    }

    pub async fn run(&self, args: &[&str], timeout: Duration, cancel: &CancellationToken) -> Result<Output, SshError> {
        self.run_streaming(args, timeout, cancel, |_| {}).await
    }

    /// Recognises ssh's own failures in its stderr.
    pub fn classify(&self, stderr: &str) -> Option<SshError> {
        if stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") || stderr.contains("Host key verification failed")
        {
            return Some(SshError::HostKeyChanged { name: self.name.clone(), addr: self.addr() });
        }
        let reasons = [
            "Connection refused",
            "Connection timed out",
            "No route to host",
            "Could not resolve hostname",
            "Permission denied",
            "Connection closed by",
            "Connection reset",
            "Network is unreachable",
            "kex_exchange_identification",
        ];
        let line = stderr.lines().find(|l| reasons.iter().any(|r| l.contains(r)))?;
        Some(SshError::Unreachable { name: self.name.clone(), addr: self.addr(), reason: line.trim().to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("/var/lib/vz/dump"), "/var/lib/vz/dump");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("$(reboot)"), "'$(reboot)'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn control_sockets_fit_the_path_limit() {
        let short = tempfile::tempdir().unwrap();
        assert_eq!(control_dir(short.path()).unwrap(), short.path().join("cm"));
        let deep = short.path().join("a-rather-long-directory-name-to-push-past-the-limit".repeat(2));
        std::fs::create_dir_all(&deep).unwrap();
        let dir = control_dir(&deep).unwrap();
        assert!(dir.as_os_str().len() + 1 + 16 + 17 <= 107, "{}", dir.display());
    }

    #[test]
    fn output_tail_keeps_whole_lines_of_multibyte_text() {
        let mut t = Tail::default();
        let line = "é€𝄞".repeat(40);
        for _ in 0..1000 {
            t.push_line(&line);
        }
        let s = t.into_string();
        assert!(s.len() <= TAIL_BYTES + line.len() + 1);
        assert!(s.lines().all(|l| l == line));
        let mut t = Tail::default();
        let bytes = format!("{line}\n").repeat(1000).into_bytes();
        for chunk in bytes.chunks(4093) {
            t.push_bytes(chunk);
        }
        assert!(t.into_string().lines().all(|l| l == line));
        let mut t = Tail::default();
        t.push_line(&"€".repeat(40_000));
        assert!(t.into_string().trim_end().chars().all(|c| c == '€'));
    }

    #[test]
    fn known_hosts_format() {
        assert_eq!(known_hosts_line("127.0.0.1", 2222, "ssh-ed25519 AAAA"), "[127.0.0.1]:2222 ssh-ed25519 AAAA");
        assert_eq!(known_hosts_line("pve", 22, "ssh-ed25519 AAAA"), "pve ssh-ed25519 AAAA");
    }
}
