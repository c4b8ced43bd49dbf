//! Logins: one row per session cookie, so a session can end on its own
//! (logout) and its idle and total age are known to every process.

use sqlx::any::AnyRow;

use super::{parse, ts, ts_opt, Db, DbResult};
use crate::domain::{LoginSessionId, Timestamp, UserId};

#[derive(Debug, Clone)]
pub struct LoginSession {
    pub id: LoginSessionId,
    pub user_id: UserId,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub ended_at: Option<Timestamp>,
}

fn login_session(row: &AnyRow) -> DbResult<LoginSession> {
    Ok(LoginSession {
        id: parse(row, "id")?,
        user_id: parse(row, "user_id")?,
        created_at: ts(row, "created_at")?,
        last_seen_at: ts(row, "last_seen_at")?,
        ended_at: ts_opt(row, "ended_at")?,
    })
}

impl Db {
    /// Records a new login, and forgets logins that started before
    /// `forget_before` (past any session's lifetime).
    pub async fn insert_login_session(&self, user_id: UserId, forget_before: Timestamp) -> DbResult<LoginSessionId> {
        let id = LoginSessionId::new();
        let now = Timestamp::now().millis();
        sqlx::query("DELETE FROM login_sessions WHERE created_at < ?")
            .bind(forget_before.millis())
            .execute(self.pool())
            .await?;
        sqlx::query("INSERT INTO login_sessions (id, user_id, created_at, last_seen_at) VALUES (?, ?, ?, ?)")
            .bind(id.to_string())
            .bind(user_id.to_string())
            .bind(now)
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(id)
    }

    pub async fn login_session(&self, id: LoginSessionId) -> DbResult<Option<LoginSession>> {
        sqlx::query("SELECT id, user_id, created_at, last_seen_at, ended_at FROM login_sessions WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(login_session)
            .transpose()
    }

    /// The session was used at `at`.
    pub async fn touch_login_session(&self, id: LoginSessionId, at: Timestamp) -> DbResult<()> {
        sqlx::query("UPDATE login_sessions SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?")
            .bind(at.millis())
            .bind(id.to_string())
            .bind(at.millis())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Ends one session (every copy of its cookie with it).
    pub async fn end_login_session(&self, id: LoginSessionId) -> DbResult<()> {
        sqlx::query("UPDATE login_sessions SET ended_at = ? WHERE id = ? AND ended_at IS NULL")
            .bind(Timestamp::now().millis())
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
