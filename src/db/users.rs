use serde::Serialize;
use sqlx::any::AnyRow;

use super::{conflict, flag, get, parse, ts, Db, DbResult};
use crate::domain::{Role, Timestamp, UserId};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub full_name: String,
    pub role: Role,
    pub active: bool,
    /// Sessions carrying another epoch are over (logout, password change,
    /// deactivation bump it).
    #[serde(skip)]
    pub session_epoch: i64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

fn user(row: &AnyRow) -> DbResult<User> {
    Ok(User {
        id: parse(row, "id")?,
        username: get(row, "username")?,
        full_name: get(row, "full_name")?,
        role: parse(row, "role")?,
        active: flag(row, "active")?,
        session_epoch: get(row, "session_epoch")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

/// The columns of `User`, spliced into queries at compile time.
macro_rules! cols {
    () => {
        "id, username, full_name, role, active, session_epoch, created_at, updated_at"
    };
}

pub struct NewUser<'a> {
    pub username: &'a str,
    pub full_name: &'a str,
    pub password_hash: &'a str,
    pub role: Role,
}

impl Db {
    pub async fn count_users(&self) -> DbResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users").fetch_one(self.pool()).await?;
        get(&row, "n")
    }

    pub async fn insert_user(&self, u: NewUser<'_>) -> DbResult<User> {
        let id = UserId::new();
        let now = Timestamp::now().millis();
        sqlx::query(
            "INSERT INTO users (id, username, full_name, password_hash, role, active, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
        )
        .bind(id.to_string())
        .bind(u.username)
        .bind(u.full_name)
        .bind(u.password_hash)
        .bind(u.role.as_str())
        .bind(now)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(|e| conflict(e, "a user with this username already exists"))?;
        self.user(id).await?.ok_or_else(|| super::DbError::Corrupt("user vanished after insert".into()))
    }

    pub async fn user(&self, id: UserId) -> DbResult<Option<User>> {
        sqlx::query(concat!("SELECT ", cols!(), " FROM users WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(user)
            .transpose()
    }

    /// The user and their password hash, for login.
    pub async fn user_with_hash(&self, username: &str) -> DbResult<Option<(User, String)>> {
        let row = sqlx::query(concat!("SELECT ", cols!(), ", password_hash FROM users WHERE username = ?"))
            .bind(username)
            .fetch_optional(self.pool())
            .await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some((user(&r)?, get(&r, "password_hash")?))),
        }
    }

    pub async fn list_users(&self) -> DbResult<Vec<User>> {
        sqlx::query(concat!("SELECT ", cols!(), " FROM users ORDER BY username"))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(user)
            .collect()
    }

    /// Replaces only the password hash (role and active flag stay as the
    /// database has them now).
    pub async fn set_password(&self, id: UserId, password_hash: &str) -> DbResult<()> {
        sqlx::query(
            "UPDATE users SET password_hash = ?, session_epoch = session_epoch + 1, updated_at = ? WHERE id = ?",
        )
        .bind(password_hash)
        .bind(Timestamp::now().millis())
        .bind(id.to_string())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Ends every session of the user.
    pub async fn end_sessions(&self, id: UserId) -> DbResult<()> {
        sqlx::query("UPDATE users SET session_epoch = session_epoch + 1 WHERE id = ?")
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn update_user(
        &self,
        id: UserId,
        full_name: &str,
        role: Role,
        active: bool,
        password_hash: Option<&str>,
    ) -> DbResult<()> {
        let now = Timestamp::now().millis();
        sqlx::query(
            "UPDATE users SET full_name = ?, role = ?, active = ?, password_hash = COALESCE(?, password_hash), \
             session_epoch = CASE WHEN ? IS NOT NULL OR ? = 0 THEN session_epoch + 1 ELSE session_epoch END, \
             updated_at = ? WHERE id = ?",
        )
        .bind(full_name)
        .bind(role.as_str())
        .bind(i64::from(active))
        .bind(password_hash)
        .bind(password_hash)
        .bind(i64::from(active))
        .bind(now)
        .bind(id.to_string())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn count_active_admins(&self) -> DbResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE role = 'admin' AND active = 1")
            .fetch_one(self.pool())
            .await?;
        get(&row, "n")
    }

    pub async fn delete_user(&self, id: UserId) -> DbResult<bool> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM api_tokens WHERE user_id = ?").bind(id.to_string()).execute(&mut *tx).await?;
        let n = sqlx::query("DELETE FROM users WHERE id = ?").bind(id.to_string()).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(n.rows_affected() > 0)
    }
}
