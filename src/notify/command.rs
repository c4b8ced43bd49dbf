//! Command delivery: runs a configured program (no shell) with the notice as
//! JSON on stdin and its fields in `DRSWITCH_*` variables. One attempt.
//!
//! Owns the child's process group for the length of the run. Must never wait
//! past the deadline (a grandchild that keeps our pipes open must not hold
//! the alert engine), never pass drswitch's own environment on (it holds the
//! database URL and keys), and never buffer more than a tail of the output.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::time::Instant;

use super::{human_duration, one_line, without_os_error, Delivery, Limits, Notice};

/// The only search path the command gets; it does not inherit ours.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Bytes kept from the end of stdout and of stderr.
const TAIL: usize = 2048;
/// After the command exits, how long its pipes may stay open before we stop
/// reading; its own output is already in the pipe by then.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// Runs `argv` for `notice`, within `limits.attempt_timeout`.
pub async fn run(argv: &[String], notice: &Notice, limits: &Limits) -> Delivery {
    let Some((program, args)) = argv.split_first() else {
        return Delivery { ok: false, attempts: 0, detail: "no command to run: argv is empty".into() };
    };
    let Ok(input) = serde_json::to_vec(notice) else {
        return Delivery { ok: false, attempts: 0, detail: "the notice could not be encoded as JSON".into() };
    };
    let deadline = Instant::now() + limits.attempt_timeout;
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("PATH", PATH)
        .envs(environment(notice))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so a timeout can take down whatever it started too.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return failed(format!("cannot run {}: {}", one_line(program, 120), io_text(&e))),
    };
    // process_group(0) makes the group id the child's pid. The pid cannot be
    // reused before we reap the child, and we kill before reaping.
    let pgid = child.id();

    // Everything spawned below is aborted when this guard drops, on every
    // return and also if the caller gives up on us mid-run.
    let mut tasks = AbortOnDrop::default();
    if let Some(mut stdin) = child.stdin.take() {
        tasks.0.push(
            tokio::spawn(async move {
                // A command that ignores stdin closes the pipe early; that is
                // its business, not a failure.
                let _ = stdin.write_all(&input).await;
            })
            .abort_handle(),
        );
    }
    let stdout = Tail::default();
    let stderr = Tail::default();
    let readers: Vec<_> = [child.stdout.take().map(|p| stdout.drain(p)), child.stderr.take().map(|p| stderr.drain(p))]
        .into_iter()
        .flatten()
        .collect();
    tasks.0.extend(readers.iter().map(|r| r.abort_handle()));

    let status = match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            kill_group(pgid, &mut child).await;
            return failed(format!("lost track of {}: {}", one_line(program, 120), io_text(&e)));
        }
        Err(_) => {
            kill_group(pgid, &mut child).await;
            let detail = format!("timed out after {}; the command was killed", human_duration(limits.attempt_timeout));
            return failed(detail);
        }
    };

    // A command that exited on time is done; what it left running in the
    // background is its business, but not our pipes: we read what it wrote
    // and stop at EOF or shortly after, whichever comes first.
    let drained_by = deadline.min(Instant::now() + DRAIN_GRACE);
    for reader in readers {
        let _ = tokio::time::timeout_at(drained_by, reader).await;
    }
    let said = last_line(&stderr.text()).or_else(|| last_line(&stdout.text()));
    describe(status, said)
}

/// The `DRSWITCH_*` variables: the notice's fields, for scripts that would
/// rather not parse JSON.
pub fn environment(notice: &Notice) -> Vec<(&'static str, String)> {
    let a = &notice.alert;
    vec![
        ("DRSWITCH_EVENT", notice.event.as_str().to_string()),
        ("DRSWITCH_ALERT_ID", a.id.clone()),
        ("DRSWITCH_ALERT_KIND", a.kind.clone()),
        ("DRSWITCH_SEVERITY", a.severity.clone()),
        ("DRSWITCH_SUBJECT_TYPE", a.subject.kind.clone()),
        ("DRSWITCH_SUBJECT_ID", a.subject.id.clone()),
        ("DRSWITCH_SUBJECT_NAME", a.subject.name.clone()),
        ("DRSWITCH_MESSAGE", a.message.clone()),
        ("DRSWITCH_OPENED_AT", a.opened_at.clone()),
        ("DRSWITCH_RESOLVED_AT", a.resolved_at.clone().unwrap_or_default()),
        ("DRSWITCH_SENT_AT", notice.sent_at.clone()),
    ]
}

fn failed(detail: String) -> Delivery {
    Delivery { ok: false, attempts: 1, detail }
}

fn describe(status: ExitStatus, said: Option<String>) -> Delivery {
    let ok = status.success();
    let mut detail = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "ended without an exit status".to_string(),
    };
    if let (false, Some(said)) = (ok, said) {
        detail = format!("{detail}: {said}");
    }
    Delivery { ok, attempts: 1, detail }
}

/// SIGKILL to the whole group, then the child itself should `kill` be
/// missing, then reap it (bounded: a child stuck in the kernel must not hold
/// us either).
async fn kill_group(pgid: Option<u32>, child: &mut tokio::process::Child) {
    if let Some(pgid) = pgid {
        // No libc binding in our dependencies; kill(1) reaches a group.
        let kill = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .env_clear()
            .env("PATH", PATH)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = tokio::time::timeout(Duration::from_secs(1), kill).await;
    }
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(1), child.wait()).await;
}

#[derive(Default)]
struct AbortOnDrop(Vec<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

fn io_text(e: &io::Error) -> String {
    without_os_error(&e.to_string()).to_string()
}

fn last_line(text: &str) -> Option<String> {
    text.lines().map(str::trim).rfind(|l| !l.is_empty()).map(|l| one_line(l, 200))
}

/// The last [`TAIL`] bytes of a pipe, readable while the pipe is still open.
#[derive(Clone, Default)]
struct Tail(Arc<Mutex<Vec<u8>>>);

impl Tail {
    fn drain(&self, mut pipe: impl AsyncRead + Unpin + Send + 'static) -> tokio::task::JoinHandle<()> {
        let tail = self.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf).await {
                tail.push(&buf[..n]);
            }
        })
    }

    fn push(&self, bytes: &[u8]) {
        let mut kept = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        kept.extend_from_slice(bytes);
        if kept.len() > TAIL {
            let cut = kept.len() - TAIL;
            kept.drain(..cut);
        }
    }

    fn text(&self) -> String {
        let kept = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        String::from_utf8_lossy(&kept).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::tests::sample;

    #[test]
    fn tail_keeps_only_the_end() {
        let tail = Tail::default();
        tail.push(&[b'a'; 3000]);
        tail.push(b"\nlast words\n");
        let text = tail.text();
        assert_eq!(text.len(), TAIL);
        assert_eq!(last_line(&text).as_deref(), Some("last words"));
    }

    #[test]
    fn environment_has_every_field_and_empty_resolved_at() {
        let env = environment(&sample());
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("DRSWITCH_EVENT"), Some("alert.opened"));
        assert_eq!(get("DRSWITCH_SUBJECT_TYPE"), Some("hypervisor"));
        assert_eq!(get("DRSWITCH_RESOLVED_AT"), Some(""));
        assert_eq!(env.len(), 11);
    }

    #[tokio::test]
    async fn empty_argv_is_refused() {
        let d = run(&[], &sample(), &Limits::default()).await;
        assert!(!d.ok && d.attempts == 0, "{d:?}");
    }

    #[tokio::test]
    async fn failure_quotes_the_last_line_of_stderr() {
        let argv: Vec<String> =
            ["/bin/sh", "-c", "echo noise; echo first >&2; echo 'it broke' >&2; exit 3"].map(String::from).into();
        let d = run(&argv, &sample(), &Limits::default()).await;
        assert_eq!(d, Delivery { ok: false, attempts: 1, detail: "exit status 3: it broke".into() });
    }

    #[tokio::test]
    async fn a_grandchild_holding_the_pipes_does_not_hold_us() {
        // The shell exits at once; its background sleep keeps stdout open.
        let argv: Vec<String> = ["/bin/sh", "-c", "sleep 5 & echo done"].map(String::from).into();
        let started = std::time::Instant::now();
        let d = run(&argv, &sample(), &Limits { attempt_timeout: Duration::from_secs(20), ..Limits::default() }).await;
        assert!(d.ok, "{d:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    }
}
