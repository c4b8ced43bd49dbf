//! Mail delivery: one plain-text mail per notice over SMTP, one attempt (the
//! relay queues and retries on its own; a second try from us would only
//! duplicate). Keeps no connection between calls.
//!
//! Must never downgrade: `StartTls` means STARTTLS is required, so credentials
//! and the mail never cross an unencrypted link unless the target says `None`.
//! Must never put the password in a detail, even when quoting the server.

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{
    human_duration, one_line, redact, without_os_error, Delivery, Limits, Notice, NoticeEvent, SmtpChannel, SmtpTls,
};
use crate::settings::Secret;

/// Sends `notice` as a mail through `smtp`, within `limits.attempt_timeout`.
pub async fn send(smtp: &SmtpChannel, notice: &Notice, limits: &Limits) -> Delivery {
    let message = match compose(smtp, notice) {
        Ok(message) => message,
        Err(detail) => return Delivery { ok: false, attempts: 0, detail },
    };
    let server = server_name(&smtp.host, smtp.port);
    let builder = match smtp.tls {
        SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host),
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host),
        SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)),
    };
    let Ok(builder) = builder else {
        let detail = format!("mail not sent: TLS could not be set up for {server}");
        return Delivery { ok: false, attempts: 0, detail };
    };
    let mut builder = builder.port(smtp.port).timeout(Some(limits.attempt_timeout));
    if let Some(user) = &smtp.username {
        let password = smtp.password.as_ref().map(Secret::expose).unwrap_or_default();
        builder = builder.credentials(Credentials::new(user.clone(), password.to_string()));
    }
    let mailer = builder.build();

    // lettre's timeout bounds the connect and nothing after it: a server that
    // accepts and never greets would hold us for ever without this one.
    let detail = match tokio::time::timeout(limits.attempt_timeout, mailer.send(message)).await {
        Ok(Ok(_)) => return Delivery { ok: true, attempts: 1, detail: format!("mail accepted by {server}") },
        Err(_) => timed_out(&server, limits),
        Ok(Err(e)) if e.is_timeout() => timed_out(&server, limits),
        Ok(Err(e)) => format!("mail not sent via {server}: {}", one_line(without_os_error(&e.to_string()), 200)),
    };
    let password = smtp.password.as_ref().map(Secret::expose).unwrap_or_default();
    Delivery { ok: false, attempts: 1, detail: redact(&detail, &[password]) }
}

fn timed_out(server: &str, limits: &Limits) -> String {
    format!("mail not sent: {server} timed out after {}", human_duration(limits.attempt_timeout))
}

/// `host:port`, with an IPv6 literal bracketed.
fn server_name(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The whole mail, or a sentence naming the field that stops it.
fn compose(smtp: &SmtpChannel, notice: &Notice) -> Result<Message, String> {
    let from: Mailbox = smtp
        .mail_from
        .parse()
        .map_err(|_| format!("invalid sender address in mail_from: {}", quoted(&smtp.mail_from)))?;
    if smtp.mail_to.is_empty() {
        return Err("no recipient in mail_to".into());
    }
    // Our own id on the sender's domain: lettre's default names "localhost",
    // which spam filters hold against a mail.
    let message_id = format!("<{}@{}>", uuid::Uuid::new_v4().simple(), from.email.domain());
    let mut builder = Message::builder()
        .from(from)
        .subject(subject(notice))
        .message_id(Some(message_id))
        .user_agent(concat!("drswitch/", env!("CARGO_PKG_VERSION")).to_string())
        .header(ContentType::TEXT_PLAIN);
    for to in &smtp.mail_to {
        let to: Mailbox = to.parse().map_err(|_| format!("invalid recipient address in mail_to: {}", quoted(to)))?;
        builder = builder.to(to);
    }
    builder.body(body(notice)).map_err(|e| format!("mail could not be built: {e}"))
}

fn quoted(address: &str) -> String {
    format!("\"{}\"", one_line(address, 80))
}

/// `[drswitch] OPENED critical host_down: dc1 has not answered for 125 s.`
pub fn subject(notice: &Notice) -> String {
    let word = match notice.event {
        NoticeEvent::Opened => "OPENED",
        NoticeEvent::Resolved => "RESOLVED",
        NoticeEvent::Test => "TEST",
    };
    let a = &notice.alert;
    // The message is free text: folded to one line and cut so a runaway
    // message cannot make a header no mail client shows.
    format!("[drswitch] {word} {} {}: {}", a.severity, a.kind, one_line(&a.message, 160))
}

/// The alert for a person to read, then the notice as JSON for a script.
pub fn body(notice: &Notice) -> String {
    let a = &notice.alert;
    let json = serde_json::to_string_pretty(notice).unwrap_or_default();
    let fields = [
        ("Event", notice.event.as_str()),
        ("Alert", a.id.as_str()),
        ("Kind", a.kind.as_str()),
        ("Severity", a.severity.as_str()),
        ("Subject type", a.subject.kind.as_str()),
        ("Subject", a.subject.name.as_str()),
        ("Subject id", a.subject.id.as_str()),
        ("Message", a.message.as_str()),
        ("Opened at", a.opened_at.as_str()),
        ("Resolved at", a.resolved_at.as_deref().unwrap_or("-")),
        ("Sent at", notice.sent_at.as_str()),
    ];
    let mut out = String::new();
    for (name, value) in fields {
        out.push_str(&format!("{:<13} {value}\n", format!("{name}:")));
    }
    out.push_str("\nThe notice as JSON:\n");
    out.push_str(&json);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::tests::sample;

    fn channel() -> SmtpChannel {
        SmtpChannel {
            host: "127.0.0.1".into(),
            port: 1,
            tls: SmtpTls::None,
            username: None,
            password: None,
            mail_from: "drswitch <alerts@example.org>".into(),
            mail_to: vec!["ops@example.org".into()],
        }
    }

    #[test]
    fn subject_names_event_severity_kind_and_message() {
        let mut n = sample();
        assert_eq!(subject(&n), "[drswitch] OPENED critical host_down: dc1 has not answered for 125 s.");
        n.event = NoticeEvent::Resolved;
        assert!(subject(&n).starts_with("[drswitch] RESOLVED critical host_down: "));
        n.event = NoticeEvent::Test;
        n.alert.message = "line one\nline two".into();
        assert_eq!(subject(&n), "[drswitch] TEST critical host_down: line one line two");
    }

    #[test]
    fn body_lists_the_fields_and_ends_with_the_json() {
        let b = body(&sample());
        assert!(b.contains("Severity:     critical\n"), "{b}");
        assert!(b.contains("Resolved at:  -\n"), "{b}");
        let json = &b[b.find('{').expect("json")..];
        let v: serde_json::Value = serde_json::from_str(json).expect("parses");
        assert_eq!(v["alert"]["subject"]["name"], "dc1");
    }

    #[tokio::test]
    async fn bad_addresses_name_their_field() {
        let mut c = channel();
        c.mail_from = "not an address".into();
        let d = send(&c, &sample(), &Limits::default()).await;
        assert!(!d.ok && d.attempts == 0 && d.detail.contains("mail_from"), "{d:?}");
        let mut c = channel();
        c.mail_to.push("nobody@".into());
        let d = send(&c, &sample(), &Limits::default()).await;
        assert!(!d.ok && d.detail.contains("mail_to") && d.detail.contains("nobody@"), "{d:?}");
        let mut c = channel();
        c.mail_to.clear();
        assert!(send(&c, &sample(), &Limits::default()).await.detail.contains("mail_to"));
    }

    #[tokio::test]
    async fn a_refused_connection_is_reported_without_the_password() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        for tls in [SmtpTls::None, SmtpTls::StartTls, SmtpTls::Tls] {
            let mut c = channel();
            c.port = port;
            c.tls = tls;
            c.username = Some("drswitch".into());
            c.password = Some(Secret::new("hunter2-secret"));
            let d = send(&c, &sample(), &Limits::default()).await;
            assert!(!d.ok && d.attempts == 1, "{d:?}");
            assert!(d.detail.contains(&format!("127.0.0.1:{port}")), "{d:?}");
            assert!(!d.detail.contains("hunter2"), "{d:?}");
        }
    }
}
