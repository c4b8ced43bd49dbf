//! Logging in: every attempt is counted before the password is checked
//! (per username and per client address), only well-formed names become
//! throttle keys, password checks run a few at a time, and unknown or
//! inactive users cost the same time as wrong passwords.

use super::audit::{self, about, subject};
use super::{ServiceError, ServiceResult};
use crate::auth::{password, LoginGuard};
use crate::db::users::User;
use crate::domain::{LoginName, LoginSessionId, UserId};
use crate::state::AppState;

/// The key a client address is throttled under: IPv6 clients get a /64
/// each (one host usually has the whole /64), IPv4 clients their address.
fn address_key(peer: &str) -> String {
    match peer.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        _ => peer.to_string(),
    }
}

/// The user if `username` and `password` match an active user.
pub async fn login(
    state: &AppState,
    guard: &LoginGuard,
    peer: &str,
    username: &str,
    password: String,
) -> ServiceResult<User> {
    if let Err(secs) = guard.per_addr.begin(&address_key(peer)) {
        tracing::warn!(peer, "login refused: too many attempts from this address");
        return Err(ServiceError::Throttled(secs));
    }
    // Only a well-formed name becomes a throttle key or reaches the database.
    let Ok(name) = username.trim().parse::<LoginName>() else {
        tracing::warn!(peer, "login failed: malformed username");
        // Not even the name: a malformed one may be a password typed in the wrong field.
        audit::record(state, "anonymous", "session.login_failed", about("user"), "malformed username").await;
        return Err(ServiceError::BadCredentials);
    };
    let name = name.as_str();
    if let Err(secs) = guard.per_name.begin(name) {
        tracing::warn!(username = name, peer, "login refused: too many failures");
        return Err(ServiceError::Throttled(secs));
    }
    let found = state.db.user_with_hash(name).await?;
    // Every path verifies one hash, so unknown and inactive users take as
    // long as wrong passwords and names cannot be probed by timing.
    let ok = match &found {
        Some((user, hash)) => verify_off_thread(guard, password, hash.clone()).await? && user.active,
        None => {
            let _ = verify_off_thread(guard, password, dummy_hash()).await?;
            false
        }
    };
    match (ok, found) {
        (true, Some((user, _))) => {
            guard.per_name.succeeded(name);
            guard.per_addr.refund(&address_key(peer));
            tracing::info!(username = name, peer, "login");
            audit::record(state, &user.username, "session.login", subject("user", user.id), "").await;
            Ok(user)
        }
        (_, found) => {
            tracing::warn!(username = name, peer, "login failed");
            let target = match &found {
                Some((u, _)) => subject("user", u.id),
                None => about("user"),
            };
            audit::record(state, "anonymous", "session.login_failed", target, &format!("username {name:?}")).await;
            Err(ServiceError::BadCredentials)
        }
    }
}

/// A real argon2id hash of a random string, checked when the user does not
/// exist so that unknown names take as long as wrong passwords.
fn dummy_hash() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| password::hash(&password::random()).unwrap_or_default()).clone()
}

/// Checks the password on a blocking thread, holding one of the guard's
/// slots until the check itself ends (not merely until this request is
/// dropped), so at most that many checks ever run at once.
pub(crate) async fn verify_off_thread(guard: &LoginGuard, password: String, hash: String) -> ServiceResult<bool> {
    let slot = guard.verify_slots.clone().acquire_owned().await.map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok(tokio::task::spawn_blocking(move || {
        let ok = password::verify(&password, &hash);
        drop(slot);
        ok
    })
    .await
    .unwrap_or(false))
}

/// Ends one session of the user (and every copy of its cookie); the
/// user's other sessions go on.
pub async fn logout(state: &AppState, user: UserId, session: Option<LoginSessionId>) -> ServiceResult<()> {
    if let Some(id) = session {
        state.db.end_login_session(id).await?;
    }
    tracing::info!(user = %user, "logout");
    let name = state.db.user(user).await?.map(|u| u.username).unwrap_or_else(|| user.to_string());
    audit::record(state, &name, "session.logout", subject("user", user), "").await;
    Ok(())
}

/// Ends every session of the acting user, on every device, this one too.
/// API tokens are not sessions: they stay until revoked.
pub async fn logout_all(state: &AppState, actor: &User) -> ServiceResult<()> {
    state.db.end_sessions(actor.id).await?;
    tracing::info!(username = %actor.username, "logged out everywhere");
    audit::record(state, &actor.username, "session.logout_all", subject("user", actor.id), "").await;
    Ok(())
}
