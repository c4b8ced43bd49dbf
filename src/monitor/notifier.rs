//! Telling people: each alert that opens or resolves goes to every enabled
//! target that wants its kind and severity. Each delivery is recorded
//! before it is tried, then sent in the background, all targets at once,
//! each bounded in time, so a hanging target delays nobody else and the
//! monitor's next round is not held up either.

use std::sync::Arc;

use crate::db::alerts::Alert;
use crate::db::targets::Target;
use crate::db::DbResult;
use crate::domain::{AlertKind, SmtpTlsMode, TargetKind, Timestamp};
use crate::notify::{self, AlertBody, Channel, Delivery, Limits, Notice, NoticeEvent, SmtpChannel, SmtpTls, Subject};
use crate::state::AppState;

/// Deliveries still pending this long after they were recorded were cut
/// short (the process stopped); the next monitor sends them again.
const STALE_MS: i64 = 120_000;

pub fn notice(alert: &Alert, event: NoticeEvent) -> Notice {
    Notice {
        event,
        alert: AlertBody {
            id: alert.id.to_string(),
            kind: alert.kind.to_string(),
            severity: alert.severity.to_string(),
            subject: Subject {
                kind: alert.subject.kind.clone(),
                id: alert.subject.id.clone(),
                name: alert.subject.name.clone(),
            },
            message: alert.message.clone(),
            opened_at: alert.opened_at.to_rfc3339(),
            resolved_at: alert.resolved_at.map(|t| t.to_rfc3339()),
        },
        sent_at: Timestamp::now().to_rfc3339(),
    }
}

/// Records a delivery per interested target and sends them in the
/// background.
pub async fn announce(state: &Arc<AppState>, alert: &Alert, event: NoticeEvent) -> DbResult<()> {
    let targets: Vec<Target> =
        state.db.list_targets().await?.into_iter().filter(|t| t.wants(alert.kind, alert.severity)).collect();
    let mut jobs = Vec::new();
    for t in targets {
        let seq = state.db.add_delivery(alert.id, t.id, &t.name, event.as_str()).await?;
        jobs.push((seq, t));
    }
    if jobs.is_empty() {
        return Ok(());
    }
    let state = state.clone();
    let notice = notice(alert, event);
    tokio::spawn(async move {
        futures_util::future::join_all(jobs.iter().map(|(seq, t)| send_recorded(&state, *seq, t, &notice))).await;
    });
    Ok(())
}

/// Sends deliveries a stopped process left pending.
pub async fn resend_stale(state: &Arc<AppState>) {
    let stale = match state.db.stale_deliveries(Timestamp(Timestamp::now().millis() - STALE_MS)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read pending notifications");
            return;
        }
    };
    for d in stale {
        let (Ok(Some(alert)), Ok(Some(target))) =
            (state.db.alert(d.alert_id).await, state.db.target(d.target_id).await)
        else {
            let _ = state.db.finish_delivery(d.seq, false, 0, "the alert or the target no longer exists").await;
            continue;
        };
        let event = if d.event == NoticeEvent::Resolved.as_str() { NoticeEvent::Resolved } else { NoticeEvent::Opened };
        let state = state.clone();
        tokio::spawn(async move {
            send_recorded(&state, d.seq, &target, &notice(&alert, event)).await;
        });
    }
}

async fn send_recorded(state: &AppState, seq: i64, target: &Target, notice: &Notice) {
    match state.db.claim_delivery(seq).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(error = %e, target = %target.name, "cannot claim a notification");
            return;
        }
    }
    let d = send(state, target, notice).await;
    if d.ok {
        tracing::info!(target = %target.name, event = notice.event.as_str(), detail = %d.detail, "notification sent");
    } else {
        tracing::warn!(target = %target.name, event = notice.event.as_str(), detail = %d.detail, "notification failed");
    }
    if let Err(e) = state.db.finish_delivery(seq, d.ok, d.attempts, &d.detail).await {
        tracing::warn!(error = %e, target = %target.name, "cannot record a notification's outcome");
    }
}

/// Sends one notice to one target now.
pub async fn send(state: &AppState, target: &Target, notice: &Notice) -> Delivery {
    match channel(state, target) {
        Ok(c) => notify::deliver(&c, notice, &Limits::default()).await,
        Err(why) => Delivery { ok: false, attempts: 0, detail: why },
    }
}

/// A notice of event `test`, so a receiver can be checked end to end.
pub fn test_notice(target: &Target) -> Notice {
    let now = Timestamp::now().to_rfc3339();
    Notice {
        event: NoticeEvent::Test,
        alert: AlertBody {
            id: uuid::Uuid::nil().to_string(),
            kind: target.kinds.first().copied().unwrap_or(AlertKind::HostDown).to_string(),
            severity: target.min_severity.to_string(),
            subject: Subject { kind: "hypervisor".into(), id: String::new(), name: "drswitch test".into() },
            message: format!("Test notification from drswitch to target {}.", target.name),
            opened_at: now.clone(),
            resolved_at: None,
        },
        sent_at: now,
    }
}

fn channel(state: &AppState, t: &Target) -> Result<Channel, String> {
    let secret = t
        .secret_enc
        .as_deref()
        .map(|enc| state.secrets.decrypt(enc))
        .transpose()
        .map_err(|_| format!("the secret of target {} cannot be decrypted (was SECRET_KEY changed?)", t.name))?;
    let s = &t.settings;
    let missing = |field: &str| format!("target {} has no {field}", t.name);
    Ok(match t.kind {
        TargetKind::Webhook => Channel::Webhook { url: s.url.clone().ok_or_else(|| missing("url"))?, secret },
        TargetKind::Smtp => Channel::Smtp(SmtpChannel {
            host: s.smtp_host.clone().ok_or_else(|| missing("smtp_host"))?,
            port: s.smtp_port.unwrap_or(25),
            tls: match s.smtp_tls.unwrap_or(SmtpTlsMode::Starttls) {
                SmtpTlsMode::Starttls => SmtpTls::StartTls,
                SmtpTlsMode::Tls => SmtpTls::Tls,
                SmtpTlsMode::None => SmtpTls::None,
            },
            username: s.smtp_username.clone(),
            password: secret,
            mail_from: s.mail_from.clone().ok_or_else(|| missing("mail_from"))?,
            mail_to: s.mail_to.clone().unwrap_or_default(),
        }),
        TargetKind::Command => Channel::Command { argv: s.argv.clone().unwrap_or_default() },
    })
}
