//! Delivering one alert notice to one notification target: a webhook (JSON
//! POST, optionally HMAC-signed, retried with backoff), a mail over SMTP, or
//! a command run without a shell. Every delivery is bounded in time and
//! never returns an error: it returns what happened, for the alert history.
//! Deciding *what* to send and *to whom* is the alert engine's job.

pub mod command;
pub mod smtp;
pub mod webhook;

use std::time::Duration;

use serde::Serialize;

use crate::settings::Secret;

/// The body every target gets (SPEC §5.2); webhooks get it as JSON as is.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    pub event: NoticeEvent,
    pub alert: AlertBody,
    /// RFC 3339 UTC.
    pub sent_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NoticeEvent {
    #[serde(rename = "alert.opened")]
    Opened,
    #[serde(rename = "alert.resolved")]
    Resolved,
    #[serde(rename = "test")]
    Test,
}

impl NoticeEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeEvent::Opened => "alert.opened",
            NoticeEvent::Resolved => "alert.resolved",
            NoticeEvent::Test => "test",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertBody {
    pub id: String,
    /// `host_down`, `service_down`, `metric_high`, `task_failed`,
    /// `rpo_breached`, `failover`.
    pub kind: String,
    /// `critical` or `warning`.
    pub severity: String,
    pub subject: Subject,
    pub message: String,
    pub opened_at: String,
    pub resolved_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Subject {
    /// `hypervisor`, `pair` or `task`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required, not optional).
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// No encryption: only for a relay on the same machine or a test sink.
    None,
}

/// Where and how to deliver; secrets already decrypted.
#[derive(Debug, Clone)]
pub enum Channel {
    Webhook { url: String, secret: Option<Secret> },
    Smtp(SmtpChannel),
    Command { argv: Vec<String> },
}

#[derive(Debug, Clone)]
pub struct SmtpChannel {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub mail_from: String,
    pub mail_to: Vec<String>,
}

/// Time bounds of one delivery.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// One attempt (connect + answer, one mail, one command run).
    pub attempt_timeout: Duration,
    /// Webhook attempts in all (the first plus retries).
    pub attempts: u32,
    /// Wait before the first retry; doubled after each.
    pub backoff: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { attempt_timeout: Duration::from_secs(10), attempts: 3, backoff: Duration::from_secs(2) }
    }
}

/// What happened, for the alert history: one sentence, never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub ok: bool,
    pub attempts: u32,
    pub detail: String,
}

/// Delivers `notice` over `channel` within `limits`.
pub async fn deliver(channel: &Channel, notice: &Notice, limits: &Limits) -> Delivery {
    match channel {
        Channel::Webhook { url, secret } => webhook::send(url, secret.as_ref(), notice, limits).await,
        Channel::Smtp(smtp) => smtp::send(smtp, notice, limits).await,
        Channel::Command { argv } => command::run(argv, notice, limits).await,
    }
}

/// A duration as a person reads it: "10 s", "300 ms", "1.5 s".
pub(crate) fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Replaces every non-empty `secret` found in `text`. Details are built from
/// our own words, but some quote a peer's (an SMTP reply, an OS error) and a
/// peer may echo what we sent it.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s, "[redacted]");
    }
    out
}

/// At most `max` characters of one line, for quoting a peer in a detail.
pub(crate) fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// An OS error as a person reads it: "Connection refused", without the
/// "(os error 111)" that only helps someone with the source at hand.
pub(crate) fn without_os_error(text: &str) -> &str {
    text.find(" (os error").map_or(text, |at| &text[..at])
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Notice {
        Notice {
            event: NoticeEvent::Opened,
            alert: AlertBody {
                id: "a-1".into(),
                kind: "host_down".into(),
                severity: "critical".into(),
                subject: Subject { kind: "hypervisor".into(), id: "h-1".into(), name: "dc1".into() },
                message: "dc1 has not answered for 125 s.".into(),
                opened_at: "2025-01-02T03:04:05Z".into(),
                resolved_at: None,
            },
            sent_at: "2025-01-02T03:04:06Z".into(),
        }
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_millis(300)), "300 ms");
        assert_eq!(human_duration(Duration::from_secs(10)), "10 s");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5 s");
    }

    #[test]
    fn redact_hides_every_occurrence_and_ignores_empty_secrets() {
        assert_eq!(redact("a pw b pw", &["pw", ""]), "a [redacted] b [redacted]");
    }

    #[test]
    fn one_line_flattens_and_cuts_on_a_char_boundary() {
        assert_eq!(one_line("a\r\n  b", 10), "a b");
        assert_eq!(one_line("ééééé", 3), "ééé…");
    }

    #[test]
    fn os_error_numbers_are_dropped() {
        assert_eq!(without_os_error("Connection refused (os error 111)"), "Connection refused");
        assert_eq!(without_os_error("tls error"), "tls error");
    }
}
