//! Webhook delivery: the notice as JSON in one POST, HMAC-signed when the
//! target has a secret, retried with doubling backoff while the answer may
//! still change (no answer, 5xx, 429). Keeps nothing between calls.
//!
//! Must never follow a redirect (the signed notice would go to a place nobody
//! configured) and never put the secret, or the URL's userinfo, path or query,
//! in a detail: webhook URLs often carry their token there.

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::header::CONTENT_TYPE;
use reqwest::{redirect, StatusCode, Url};
use sha2::Sha256;

use super::{human_duration, one_line, redact, without_os_error, Delivery, Limits, Notice, NoticeEvent};
use crate::settings::Secret;

/// Names the event (`alert.opened`, `alert.resolved`, `test`) so a receiver
/// can route without parsing the body.
pub const EVENT_HEADER: &str = "X-Drswitch-Event";
/// `sha256=<lowercase hex HMAC-SHA256(secret, body)>`, over the exact bytes sent.
pub const SIGNATURE_HEADER: &str = "X-Drswitch-Signature";
const USER_AGENT: &str = concat!("drswitch/", env!("CARGO_PKG_VERSION"));

/// Posts `notice` to `url`, retrying within `limits`.
pub async fn send(url: &str, secret: Option<&Secret>, notice: &Notice, limits: &Limits) -> Delivery {
    let Ok(url) = Url::parse(url) else {
        return refused("the webhook URL is not a valid URL");
    };
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return refused("the webhook URL must be http:// or https:// with a host");
    }
    // Serialised once: these bytes are both signed and sent, so a receiver
    // verifying the signature sees exactly what we hashed.
    let Ok(body) = serde_json::to_vec(notice) else {
        return refused("the notice could not be encoded as JSON");
    };
    let signature = match secret {
        Some(secret) => match signature(secret.expose().as_bytes(), &body) {
            Some(sig) => Some(sig),
            None => return refused("the notice could not be signed"),
        },
        None => None,
    };
    let client = match reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .connect_timeout(limits.attempt_timeout)
        .timeout(limits.attempt_timeout)
        .user_agent(USER_AGENT)
        .build()
    {
        Ok(client) => client,
        Err(_) => return refused("no HTTP client could be built"),
    };
    let post = Post { client, url: &url, body, signature, event: notice.event, timeout: limits.attempt_timeout };

    let attempts = limits.attempts.max(1);
    let mut wait = limits.backoff;
    let mut attempt = 1;
    loop {
        let outcome = post.once().await;
        let last = attempt == attempts;
        match outcome {
            Outcome::Delivered(status) => {
                let detail = match attempt {
                    1 => format!("delivered: HTTP {}", status.as_u16()),
                    n => format!("delivered: HTTP {} on attempt {n}", status.as_u16()),
                };
                return Delivery { ok: true, attempts: attempt, detail };
            }
            outcome if last || !outcome.worth_retrying() => {
                let detail = outcome.describe(attempt, &url, limits.attempt_timeout, &secrets_of(&url, secret));
                return Delivery { ok: false, attempts: attempt, detail };
            }
            _ => {}
        }
        tokio::time::sleep(wait).await;
        wait = wait.saturating_mul(2);
        attempt += 1;
    }
}

/// `sha256=` and the lowercase hex HMAC-SHA256 of `body` under `key`.
pub fn signature(key: &[u8], body: &[u8]) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(body);
    Some(format!("sha256={}", hex::encode(mac.finalize().into_bytes())))
}

/// What a detail may say about where the notice went: scheme, host and port,
/// nothing that could be a credential.
pub fn target_name(url: &Url) -> String {
    // IPv6 literals come back bracketed, ready to be followed by a port.
    let host = url.host_str().unwrap_or_default();
    match url.port_or_known_default() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

fn refused(detail: &str) -> Delivery {
    Delivery { ok: false, attempts: 0, detail: detail.to_string() }
}

fn secrets_of<'a>(url: &'a Url, secret: Option<&'a Secret>) -> Vec<&'a str> {
    let mut out = vec![url.as_str(), url.username(), url.path()];
    out.extend(url.password());
    out.extend(url.query());
    out.extend(secret.map(Secret::expose));
    // A bare "/" path is no secret, and replacing it would mangle any text.
    out.retain(|s| s.len() > 1);
    out
}

struct Post<'a> {
    client: reqwest::Client,
    url: &'a Url,
    body: Vec<u8>,
    signature: Option<String>,
    event: NoticeEvent,
    timeout: Duration,
}

impl Post<'_> {
    async fn once(&self) -> Outcome {
        let mut request = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(EVENT_HEADER, self.event.as_str())
            .body(self.body.clone());
        if let Some(sig) = &self.signature {
            request = request.header(SIGNATURE_HEADER, sig);
        }
        // The client's own timeout should fire first; this one is the
        // guarantee, whatever a future client version decides to cover.
        match tokio::time::timeout(self.timeout, request.send()).await {
            Err(_) => Outcome::TimedOut,
            Ok(Ok(response)) if response.status().is_success() => Outcome::Delivered(response.status()),
            Ok(Ok(response)) => Outcome::Status(response.status()),
            Ok(Err(e)) if e.is_timeout() => Outcome::TimedOut,
            Ok(Err(e)) if e.is_connect() => Outcome::Unreachable(root_cause(&e)),
            Ok(Err(e)) => Outcome::Broken(root_cause(&e)),
        }
    }
}

enum Outcome {
    Delivered(StatusCode),
    /// Answered, but not with 2xx.
    Status(StatusCode),
    TimedOut,
    /// No connection (refused, DNS, TLS handshake).
    Unreachable(String),
    /// Connected, then the exchange broke (reset, closed without an answer).
    Broken(String),
}

impl Outcome {
    fn worth_retrying(&self) -> bool {
        match self {
            Outcome::Delivered(_) => false,
            Outcome::Status(s) => s.is_server_error() || *s == StatusCode::TOO_MANY_REQUESTS,
            // A dropped connection is as passing as a refused one.
            Outcome::TimedOut | Outcome::Unreachable(_) | Outcome::Broken(_) => true,
        }
    }

    /// Only a peer's words (`cause`) are redacted; ours never hold a secret,
    /// and redacting a short path like "/h" would mangle "https://h…".
    fn describe(&self, attempts: u32, url: &Url, timeout: Duration, secrets: &[&str]) -> String {
        let what = match self {
            Outcome::Delivered(s) | Outcome::Status(s) => format!("HTTP {}", s.as_u16()),
            Outcome::TimedOut if attempts == 1 => format!("timed out after {}", human_duration(timeout)),
            Outcome::TimedOut => format!("no answer within {}", human_duration(timeout)),
            Outcome::Unreachable(cause) => {
                format!("cannot connect to {} ({})", target_name(url), redact(cause, secrets))
            }
            Outcome::Broken(cause) => format!("request to {} failed ({})", target_name(url), redact(cause, secrets)),
        };
        match attempts {
            1 => what,
            n => format!("{what} after {n} attempts"),
        }
    }
}

/// The innermost cause, which names what actually went wrong ("connection
/// refused"); reqwest's own message is generic and carries the URL.
fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    one_line(&without_os_error(&cause.to_string()).to_lowercase(), 120)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("test URL")
    }

    #[test]
    fn target_name_drops_userinfo_path_and_query() {
        assert_eq!(target_name(&url("https://u:pw@hooks.example/x/TOKEN?k=v")), "https://hooks.example:443");
        assert_eq!(target_name(&url("http://127.0.0.1:8080/")), "http://127.0.0.1:8080");
        assert_eq!(target_name(&url("http://[::1]:9/h")), "http://[::1]:9");
    }

    #[test]
    fn signature_is_lowercase_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        let sig = signature(b"Jefe", b"what do ya want for nothing?").expect("sign");
        assert_eq!(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn retry_only_while_the_answer_may_change() {
        assert!(Outcome::Status(StatusCode::INTERNAL_SERVER_ERROR).worth_retrying());
        assert!(Outcome::Status(StatusCode::TOO_MANY_REQUESTS).worth_retrying());
        assert!(!Outcome::Status(StatusCode::NOT_FOUND).worth_retrying());
        assert!(!Outcome::Status(StatusCode::FOUND).worth_retrying());
        assert!(Outcome::TimedOut.worth_retrying());
    }

    #[test]
    fn details_never_show_url_credentials() {
        let u = url("https://user:hunter2@hooks.example/hook/abc123?token=xyz");
        let secrets = secrets_of(&u, None);
        let d = Outcome::Unreachable("dns error".into()).describe(3, &u, Duration::from_secs(10), &secrets);
        assert_eq!(d, "cannot connect to https://hooks.example:443 (dns error) after 3 attempts");
        let echoed = format!("peer said {} and hunter2", u.as_str());
        let d = Outcome::Broken(echoed).describe(1, &u, Duration::from_secs(10), &secrets);
        assert!(!d.contains("hunter2") && !d.contains("token=xyz") && !d.contains("abc123"), "{d}");
        assert!(d.starts_with("request to https://hooks.example:443 failed (peer said [redacted]"), "{d}");
    }

    #[tokio::test]
    async fn a_bad_url_is_refused_without_echoing_it() {
        let notice = crate::notify::tests::sample();
        let d = send("ftp://user:hunter2@x/", None, &notice, &Limits::default()).await;
        assert!(!d.ok);
        assert_eq!(d.attempts, 0);
        assert!(!d.detail.contains("hunter2"), "{}", d.detail);
        let d = send("not a url hunter2", None, &notice, &Limits::default()).await;
        assert!(!d.ok && !d.detail.contains("hunter2"), "{}", d.detail);
    }
}
