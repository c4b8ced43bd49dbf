//! Delivering notices to real (local) receivers: an HTTP endpoint that
//! answers what each test programs, an SMTP sink, and small shell commands.

#[path = "common/receiver.rs"]
mod receiver;
#[path = "common/smtp_sink.rs"]
mod smtp_sink;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use drswitch::notify::{
    self, command, smtp, webhook, AlertBody, Channel, Delivery, Limits, Notice, NoticeEvent, SmtpChannel, SmtpTls,
    Subject,
};
use drswitch::settings::Secret;
use hmac::{Hmac, Mac};
use receiver::{Receiver, Reply};
use serde_json::Value;
use sha2::Sha256;
use smtp_sink::SmtpSink;

fn notice(event: NoticeEvent) -> Notice {
    let resolved = event == NoticeEvent::Resolved;
    Notice {
        event,
        alert: AlertBody {
            id: "0b7d5c1e-3a52-4c57-9d0e-2f1a4e6b8c90".into(),
            kind: "host_down".into(),
            severity: "critical".into(),
            subject: Subject { kind: "hypervisor".into(), id: "hv-7".into(), name: "dc1".into() },
            message: "dc1 has not answered for 125 s.".into(),
            opened_at: "2025-03-01T10:00:00Z".into(),
            resolved_at: resolved.then(|| "2025-03-01T10:05:00Z".to_string()),
        },
        sent_at: "2025-03-01T10:05:01Z".into(),
    }
}

/// Small bounds so failures show up in well under a second.
fn quick() -> Limits {
    Limits { attempt_timeout: Duration::from_millis(300), attempts: 3, backoff: Duration::from_millis(50) }
}

// ---------------------------------------------------------------- webhook

#[tokio::test]
async fn webhook_posts_the_notice_as_signed_json() {
    let receiver = Receiver::start(&[Reply::Status(204)]).await;
    let secret = Secret::new("whsec-do-not-show");

    let d = webhook::send(&receiver.url(), Some(&secret), &notice(NoticeEvent::Opened), &quick()).await;

    assert_eq!(d, Delivery { ok: true, attempts: 1, detail: "delivered: HTTP 204".into() });
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.path, "/hook");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("user-agent"), Some(concat!("drswitch/", env!("CARGO_PKG_VERSION"))));
    assert_eq!(r.header("x-drswitch-event"), Some("alert.opened"));

    let body: Value = serde_json::from_slice(&r.body).expect("body is JSON");
    assert_eq!(body["event"], "alert.opened");
    assert_eq!(body["sent_at"], "2025-03-01T10:05:01Z");
    let alert = &body["alert"];
    assert_eq!(alert["id"], "0b7d5c1e-3a52-4c57-9d0e-2f1a4e6b8c90");
    assert_eq!(alert["kind"], "host_down");
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["subject"], serde_json::json!({"type": "hypervisor", "id": "hv-7", "name": "dc1"}));
    assert_eq!(alert["message"], "dc1 has not answered for 125 s.");
    assert_eq!(alert["opened_at"], "2025-03-01T10:00:00Z");
    assert_eq!(alert["resolved_at"], Value::Null);
    assert!(alert.as_object().expect("alert object").contains_key("resolved_at"));

    let header = r.header("x-drswitch-signature").expect("signed");
    let hex_sig = header.strip_prefix("sha256=").expect("sha256= prefix");
    assert_eq!(hex_sig, hex_sig.to_ascii_lowercase());
    let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec-do-not-show").expect("hmac key");
    mac.update(&r.body);
    mac.verify_slice(&hex::decode(hex_sig).expect("hex")).expect("signature verifies over the exact body");
}

#[tokio::test]
async fn webhook_without_a_secret_is_unsigned() {
    let receiver = Receiver::start(&[Reply::Status(200)]).await;

    let d = webhook::send(&receiver.url(), None, &notice(NoticeEvent::Resolved), &quick()).await;

    assert!(d.ok, "{d:?}");
    let r = &receiver.requests()[0];
    assert_eq!(r.header("x-drswitch-signature"), None);
    assert_eq!(r.header("x-drswitch-event"), Some("alert.resolved"));
    let body: Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(body["alert"]["resolved_at"], "2025-03-01T10:05:00Z");
}

#[tokio::test]
async fn webhook_retries_a_500_then_succeeds() {
    let receiver = Receiver::start(&[Reply::Status(500), Reply::Status(204)]).await;

    let d = webhook::send(&receiver.url(), None, &notice(NoticeEvent::Opened), &quick()).await;

    assert_eq!(d, Delivery { ok: true, attempts: 2, detail: "delivered: HTTP 204 on attempt 2".into() });
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].body, requests[1].body, "every attempt sends the same bytes");
}

#[tokio::test]
async fn webhook_gives_up_after_three_500s_with_doubling_waits() {
    let receiver = Receiver::start(&[Reply::Status(500)]).await;
    let limits = Limits { backoff: Duration::from_millis(100), ..quick() };

    let d = webhook::send(&receiver.url(), None, &notice(NoticeEvent::Opened), &limits).await;

    assert_eq!(d, Delivery { ok: false, attempts: 3, detail: "HTTP 500 after 3 attempts".into() });
    let at: Vec<Instant> = receiver.requests().iter().map(|r| r.at).collect();
    assert_eq!(at.len(), 3);
    assert!(at[1] - at[0] >= Duration::from_millis(100), "first wait {:?}", at[1] - at[0]);
    assert!(at[2] - at[1] >= Duration::from_millis(200), "second wait {:?}", at[2] - at[1]);
}

#[tokio::test]
async fn webhook_retries_a_429() {
    let receiver = Receiver::start(&[Reply::Status(429), Reply::Status(202)]).await;

    let d = webhook::send(&receiver.url(), None, &notice(NoticeEvent::Test), &quick()).await;

    assert!(d.ok && d.attempts == 2, "{d:?}");
}

#[tokio::test]
async fn webhook_does_not_retry_a_404() {
    let receiver = Receiver::start(&[Reply::Status(404), Reply::Status(204)]).await;

    let d = webhook::send(&receiver.url(), None, &notice(NoticeEvent::Opened), &quick()).await;

    assert_eq!(d, Delivery { ok: false, attempts: 1, detail: "HTTP 404".into() });
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn webhook_does_not_follow_a_redirect() {
    // The receiver points at itself; following would make a second request.
    let receiver = Receiver::start(&[Reply::Status(302), Reply::Status(204)]).await;

    let d = webhook::send(&receiver.url(), None, &notice(NoticeEvent::Opened), &quick()).await;

    assert_eq!(d, Delivery { ok: false, attempts: 1, detail: "HTTP 302".into() });
    let paths: Vec<String> = receiver.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/hook"]);
}

#[tokio::test]
async fn webhook_times_out_on_a_receiver_that_never_answers() {
    let receiver = Receiver::start(&[Reply::Hang]).await;
    let limits = Limits { attempts: 1, ..quick() };

    let started = Instant::now();
    let d = webhook::send(&receiver.url(), None, &notice(NoticeEvent::Opened), &limits).await;
    let took = started.elapsed();

    assert_eq!(d, Delivery { ok: false, attempts: 1, detail: "timed out after 300 ms".into() });
    assert!(took >= Duration::from_millis(250) && took < Duration::from_millis(1500), "took {took:?}");
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn webhook_retries_after_a_timeout() {
    let receiver = Receiver::start(&[Reply::Hang, Reply::Status(204)]).await;

    let d = webhook::send(&receiver.url(), None, &notice(NoticeEvent::Opened), &quick()).await;

    assert!(d.ok && d.attempts == 2, "{d:?}");
}

#[tokio::test]
async fn webhook_detail_never_shows_url_credentials_or_the_secret() {
    let receiver = Receiver::start(&[Reply::Status(503)]).await;
    let url = format!("http://hookuser:hunter2@127.0.0.1:{}/hook/TOKEN123?token=qwerty", receiver.port);
    let secret = Secret::new("whsec-do-not-show");

    let d = webhook::send(&url, Some(&secret), &notice(NoticeEvent::Opened), &quick()).await;

    assert_eq!(d, Delivery { ok: false, attempts: 3, detail: "HTTP 503 after 3 attempts".into() });
    assert_eq!(receiver.requests()[0].path, "/hook/TOKEN123?token=qwerty");
}

#[tokio::test]
async fn webhook_names_only_scheme_host_and_port_when_unreachable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let url = format!("http://hookuser:hunter2@127.0.0.1:{port}/hook?token=qwerty");

    let d = webhook::send(&url, None, &notice(NoticeEvent::Opened), &quick()).await;

    assert!(!d.ok && d.attempts == 3, "{d:?}");
    assert!(d.detail.starts_with(&format!("cannot connect to http://127.0.0.1:{port} (")), "{d:?}");
    assert!(d.detail.ends_with("after 3 attempts"), "{d:?}");
    for leak in ["hunter2", "hookuser", "qwerty", "/hook"] {
        assert!(!d.detail.contains(leak), "{leak} in {d:?}");
    }
}

// ---------------------------------------------------------------- smtp

fn mail_channel(port: u16) -> SmtpChannel {
    SmtpChannel {
        host: "127.0.0.1".into(),
        port,
        tls: SmtpTls::None,
        username: None,
        password: None,
        mail_from: "drswitch <drswitch@dr.example>".into(),
        mail_to: vec!["ops@dr.example".into(), "Night Shift <night@dr.example>".into()],
    }
}

/// Header lines joined back where the mail folded them.
fn unfold(mail: &str) -> String {
    mail.replace("\r\n ", " ").replace("\r\n\t", " ")
}

#[tokio::test]
async fn smtp_delivers_a_plain_mail_with_subject_and_json() {
    let sink = SmtpSink::start().await;

    let d = smtp::send(&mail_channel(sink.port), &notice(NoticeEvent::Opened), &quick()).await;

    assert_eq!(d, Delivery { ok: true, attempts: 1, detail: format!("mail accepted by 127.0.0.1:{}", sink.port) });
    let mails = sink.wait_for(1, Duration::from_secs(5)).await;
    let mail = unfold(&mails[0]);
    assert!(
        mail.contains("Subject: [drswitch] OPENED critical host_down: dc1 has not answered for 125 s.\r\n"),
        "{mail}"
    );
    assert!(mail.contains("From: drswitch <drswitch@dr.example>\r\n"), "{mail}");
    assert!(mail.contains("@dr.example>\r\n") && mail.contains("Message-ID: <"), "{mail}");
    assert!(mail.contains("ops@dr.example") && mail.contains("night@dr.example"), "{mail}");
    assert!(mail.contains("Kind:         host_down\r\n"), "{mail}");
    let json_at = mail.find("\r\n{").expect("JSON in the body") + 2;
    let json: Value = serde_json::from_str(&mail[json_at..]).expect("the body ends with the notice as JSON");
    assert_eq!(json, serde_json::to_value(notice(NoticeEvent::Opened)).expect("notice as JSON"));

    let envelope = sink.envelopes.lock().expect("envelopes")[0].clone();
    assert_eq!(envelope.from, "drswitch@dr.example");
    assert_eq!(envelope.to, ["ops@dr.example", "night@dr.example"]);
    assert!(envelope.auth.is_empty());
}

#[tokio::test]
async fn smtp_subject_says_resolved_and_test() {
    let sink = SmtpSink::start().await;
    for event in [NoticeEvent::Resolved, NoticeEvent::Test] {
        let d = smtp::send(&mail_channel(sink.port), &notice(event), &quick()).await;
        assert!(d.ok, "{d:?}");
    }
    let mails: Vec<String> = sink.wait_for(2, Duration::from_secs(5)).await.iter().map(|m| unfold(m)).collect();
    assert!(mails[0].contains("Subject: [drswitch] RESOLVED critical host_down: "), "{}", mails[0]);
    assert!(mails[1].contains("Subject: [drswitch] TEST critical host_down: "), "{}", mails[1]);
}

#[tokio::test]
async fn smtp_logs_in_when_a_username_is_set() {
    let sink = SmtpSink::start().await;
    let channel = SmtpChannel {
        username: Some("alerts".into()),
        password: Some(Secret::new("smtp-pass-do-not-show")),
        ..mail_channel(sink.port)
    };

    let d = smtp::send(&channel, &notice(NoticeEvent::Opened), &quick()).await;

    assert!(d.ok, "{d:?}");
    assert!(!d.detail.contains("smtp-pass"), "{d:?}");
    sink.wait_for(1, Duration::from_secs(5)).await;
    let envelope = sink.envelopes.lock().expect("envelopes")[0].clone();
    assert_eq!(envelope.auth.len(), 1, "{envelope:?}");
    assert!(envelope.auth[0].starts_with("AUTH "), "{envelope:?}");
}

#[tokio::test]
async fn smtp_times_out_on_a_server_that_never_greets() {
    let sink = SmtpSink::start_silent().await;

    let started = Instant::now();
    let d = smtp::send(&mail_channel(sink.port), &notice(NoticeEvent::Opened), &quick()).await;
    let took = started.elapsed();

    assert_eq!(
        d,
        Delivery {
            ok: false,
            attempts: 1,
            detail: format!("mail not sent: 127.0.0.1:{} timed out after 300 ms", sink.port)
        }
    );
    assert!(took < Duration::from_millis(1500), "took {took:?}");
}

#[tokio::test]
async fn smtp_refuses_an_invalid_recipient_naming_the_field() {
    let mut channel = mail_channel(1);
    channel.mail_to.push("not-an-address".into());

    let d = smtp::send(&channel, &notice(NoticeEvent::Opened), &quick()).await;

    assert_eq!(
        d,
        Delivery { ok: false, attempts: 0, detail: "invalid recipient address in mail_to: \"not-an-address\"".into() }
    );
}

// ---------------------------------------------------------------- command

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn command_gets_the_notice_on_stdin_and_its_fields_in_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("notice.json");
    let out_arg = out.to_str().expect("utf-8 path");
    let n = notice(NoticeEvent::Resolved);

    let d = command::run(&argv(&["/bin/sh", "-c", r#"cat > "$1"; env > "$1.env""#, "sh", out_arg]), &n, &quick()).await;

    assert_eq!(d, Delivery { ok: true, attempts: 1, detail: "exit status 0".into() });
    let stdin = std::fs::read(&out).expect("stdin copy");
    assert_eq!(stdin, serde_json::to_vec(&n).expect("notice JSON"), "stdin is exactly the notice JSON");
    let env_text = std::fs::read_to_string(dir.path().join("notice.json.env")).expect("env copy");
    let env: HashMap<&str, &str> = env_text.lines().filter_map(|l| l.split_once('=')).collect();
    let expected = [
        ("PATH", command::PATH),
        ("DRSWITCH_EVENT", "alert.resolved"),
        ("DRSWITCH_ALERT_ID", "0b7d5c1e-3a52-4c57-9d0e-2f1a4e6b8c90"),
        ("DRSWITCH_ALERT_KIND", "host_down"),
        ("DRSWITCH_SEVERITY", "critical"),
        ("DRSWITCH_SUBJECT_TYPE", "hypervisor"),
        ("DRSWITCH_SUBJECT_ID", "hv-7"),
        ("DRSWITCH_SUBJECT_NAME", "dc1"),
        ("DRSWITCH_MESSAGE", "dc1 has not answered for 125 s."),
        ("DRSWITCH_OPENED_AT", "2025-03-01T10:00:00Z"),
        ("DRSWITCH_RESOLVED_AT", "2025-03-01T10:05:00Z"),
        ("DRSWITCH_SENT_AT", "2025-03-01T10:05:01Z"),
    ];
    for (key, value) in expected {
        assert_eq!(env.get(key).copied(), Some(value), "{key} in\n{env_text}");
    }
    // Only what we set, plus what the shell adds for itself.
    let shell_own = ["PWD", "OLDPWD", "SHLVL", "_"];
    for key in env.keys() {
        assert!(key.starts_with("DRSWITCH_") || *key == "PATH" || shell_own.contains(key), "inherited {key}");
    }
}

#[tokio::test]
async fn command_sees_an_empty_resolved_at_for_an_open_alert() {
    let d = command::run(
        &argv(&["/bin/sh", "-c", r#"test -z "$DRSWITCH_RESOLVED_AT" && test "$DRSWITCH_EVENT" = alert.opened"#]),
        &notice(NoticeEvent::Opened),
        &quick(),
    )
    .await;
    assert!(d.ok, "{d:?}");
}

#[tokio::test]
async fn command_false_fails_with_exit_status_1() {
    let d = command::run(&argv(&["false"]), &notice(NoticeEvent::Opened), &quick()).await;
    assert_eq!(d, Delivery { ok: false, attempts: 1, detail: "exit status 1".into() });
}

#[tokio::test]
async fn command_failure_quotes_the_last_line_of_stderr() {
    let script = r#"cat >/dev/null; echo "warming up" >&2; echo "relay refused the page" >&2; exit 4"#;
    let d = command::run(&argv(&["/bin/sh", "-c", script]), &notice(NoticeEvent::Opened), &quick()).await;
    assert_eq!(d, Delivery { ok: false, attempts: 1, detail: "exit status 4: relay refused the page".into() });
}

#[tokio::test]
async fn command_that_outlives_its_timeout_is_killed_with_its_children() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("grandchild.pid");
    let script = r#"sleep 30 & echo $! > "$1"; wait"#;
    let pid_arg = pid_file.to_str().expect("utf-8 path");

    let started = Instant::now();
    let d =
        command::run(&argv(&["/bin/sh", "-c", script, "sh", pid_arg]), &notice(NoticeEvent::Opened), &quick()).await;
    let took = started.elapsed();

    assert_eq!(d, Delivery { ok: false, attempts: 1, detail: "timed out after 300 ms; the command was killed".into() });
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let pid = std::fs::read_to_string(&pid_file).expect("grandchild pid");
    let stat = format!("/proc/{}/stat", pid.trim());
    // SIGKILL is delivered at once, but the reaping by init is not ours to time.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gone_or_zombie(&stat) {
        assert!(Instant::now() < deadline, "the grandchild sleep {} survived", pid.trim());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn gone_or_zombie(stat_path: &str) -> bool {
    match std::fs::read_to_string(stat_path) {
        Err(_) => true,
        // "pid (comm) S ...": the state follows the closing parenthesis.
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

#[tokio::test]
async fn command_sleep_with_a_short_timeout_returns_promptly() {
    let started = Instant::now();
    let d = command::run(&argv(&["sleep", "30"]), &notice(NoticeEvent::Opened), &quick()).await;
    assert!(!d.ok, "{d:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn command_missing_program_says_so() {
    let d = command::run(&argv(&["/nonexistent/drswitch-page"]), &notice(NoticeEvent::Opened), &quick()).await;
    assert_eq!(
        d,
        Delivery {
            ok: false,
            attempts: 1,
            detail: "cannot run /nonexistent/drswitch-page: No such file or directory".into()
        }
    );
}

#[tokio::test]
async fn command_empty_argv_is_refused() {
    let d = command::run(&[], &notice(NoticeEvent::Opened), &quick()).await;
    assert!(!d.ok && d.attempts == 0, "{d:?}");
}

// ---------------------------------------------------------------- dispatch

#[tokio::test]
async fn deliver_routes_each_channel_to_its_sender() {
    let receiver = Receiver::start(&[Reply::Status(204)]).await;
    let sink = SmtpSink::start().await;
    let channels = [
        Channel::Webhook { url: receiver.url(), secret: None },
        Channel::Smtp(mail_channel(sink.port)),
        Channel::Command { argv: argv(&["true"]) },
    ];
    for channel in &channels {
        let d = notify::deliver(channel, &notice(NoticeEvent::Test), &quick()).await;
        assert!(d.ok, "{channel:?}: {d:?}");
    }
    assert_eq!(receiver.requests().len(), 1);
    assert_eq!(sink.wait_for(1, Duration::from_secs(5)).await.len(), 1);
}
