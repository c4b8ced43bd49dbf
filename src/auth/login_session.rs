//! What a login puts in the (signed, encrypted) session cookie, and when
//! such a session is over. The cookie names the user, the user's session
//! epoch and the login's row in the database; the session is over once
//! its row ended (logout), once it went unused for `SESSION_IDLE_SECS`, once
//! it is older than `SESSION_MAX_SECS`, or once the user's epoch moved on
//! (logging out everywhere, a password change, deactivation). A copied
//! cookie dies with the session it was copied from.

use actix_session::Session;

use crate::db::users::User;
use crate::db::DbResult;
use crate::domain::{LoginSessionId, Timestamp, UserId};
use crate::state::AppState;

pub const SESSION_USER: &str = "user_id";
const SESSION_EPOCH: &str = "epoch";
const SESSION_ID: &str = "sid";

/// A session's last use is written at most this often (and at least ten
/// times per idle period), so a busy page does not write on every request.
const TOUCH_EVERY_MS: i64 = 60_000;

/// Starts a session for `user`: the cookie is renewed and now names the
/// user, the epoch it was issued under and a new login row.
pub async fn start(state: &AppState, session: &Session, user: &User) -> Result<(), String> {
    let forget_before = Timestamp::now().plus_millis(-max_ms(state));
    let id = state.db.insert_login_session(user.id, forget_before).await.map_err(|e| e.to_string())?;
    session.renew();
    session.insert(SESSION_USER, user.id.to_string()).map_err(|e| e.to_string())?;
    session.insert(SESSION_EPOCH, user.session_epoch).map_err(|e| e.to_string())?;
    session.insert(SESSION_ID, id.to_string()).map_err(|e| e.to_string())?;
    Ok(())
}

/// After a change to `user` made through this session (a new password
/// bumps the epoch): if the session is `user`'s own, it goes on under the
/// new epoch while every other session of the user stays ended.
pub async fn carry_on(state: &AppState, session: &Session, user: &User) -> Result<(), String> {
    let epoch = session.get::<i64>(SESSION_EPOCH).ok().flatten();
    if user_id(session) != Some(user.id) || epoch == Some(user.session_epoch) {
        return Ok(());
    }
    if let Some(old) = id(session) {
        state.db.end_login_session(old).await.map_err(|e| e.to_string())?;
    }
    start(state, session, user).await
}

/// The user id the session names, if any (not yet checked against the user).
pub fn user_id(session: &Session) -> Option<UserId> {
    session.get::<String>(SESSION_USER).ok().flatten().and_then(|s| s.parse().ok())
}

/// The login row the session names, if any.
pub fn id(session: &Session) -> Option<LoginSessionId> {
    session.get::<String>(SESSION_ID).ok().flatten().and_then(|s| s.parse().ok())
}

fn max_ms(state: &AppState) -> i64 {
    (state.settings.session_max_secs as i64).saturating_mul(1000)
}

/// Whether the session may still act for `user`; if so, this use counts
/// against the idle limit.
pub async fn admit(state: &AppState, session: &Session, user: &User) -> DbResult<bool> {
    let epoch = session.get::<i64>(SESSION_EPOCH).ok().flatten();
    if !user.active || epoch != Some(user.session_epoch) {
        return Ok(false);
    }
    let Some(id) = id(session) else { return Ok(false) };
    let Some(row) = state.db.login_session(id).await? else { return Ok(false) };
    let now = Timestamp::now();
    let idle_ms = (state.settings.session_idle_secs as i64).saturating_mul(1000);
    let idle = now.millis() - row.last_seen_at.millis();
    let live = row.user_id == user.id
        && row.ended_at.is_none()
        && now.millis() - row.created_at.millis() < max_ms(state)
        && (idle_ms == 0 || idle < idle_ms);
    if live && idle >= touch_every(idle_ms) {
        state.db.touch_login_session(id, now).await?;
    }
    Ok(live)
}

fn touch_every(idle_ms: i64) -> i64 {
    if idle_ms == 0 {
        TOUCH_EVERY_MS
    } else {
        TOUCH_EVERY_MS.min(idle_ms / 10)
    }
}
