//! What a login puts in the (signed, encrypted) session cookie, and when
//! such a session is over: past `SESSION_MAX_AGE_SECS`, or once the user's
//! session epoch moved on (logout, a password change, deactivation), so a
//! copied cookie dies with the session it was copied from.

use actix_session::Session;

use crate::db::users::User;
use crate::domain::{Timestamp, UserId};

pub const SESSION_USER: &str = "user_id";
const SESSION_EPOCH: &str = "epoch";
const SESSION_SINCE: &str = "since";

/// Starts a session for `user`: the cookie is renewed and now names the
/// user, the epoch it was issued under and when.
pub fn start(session: &Session, user: &User) -> Result<(), String> {
    session.renew();
    session.insert(SESSION_USER, user.id.to_string()).map_err(|e| e.to_string())?;
    session.insert(SESSION_EPOCH, user.session_epoch).map_err(|e| e.to_string())?;
    session.insert(SESSION_SINCE, Timestamp::now().millis()).map_err(|e| e.to_string())?;
    Ok(())
}

/// The user id the session names, if any (not yet checked against the user).
pub fn user_id(session: &Session) -> Option<UserId> {
    session.get::<String>(SESSION_USER).ok().flatten().and_then(|s| s.parse().ok())
}

/// Whether the session may still act for `user`.
pub fn still_valid(session: &Session, user: &User, max_age_secs: u64) -> bool {
    let epoch = session.get::<i64>(SESSION_EPOCH).ok().flatten();
    let since = session.get::<i64>(SESSION_SINCE).ok().flatten();
    let young = since.is_some_and(|s| Timestamp::now().millis() - s < (max_age_secs as i64).saturating_mul(1000));
    user.active && epoch == Some(user.session_epoch) && young
}
