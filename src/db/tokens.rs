use serde::Serialize;
use sqlx::any::AnyRow;

use super::{get, parse, ts, ts_opt, Db, DbResult};
use crate::domain::{ApiTokenId, Timestamp, UserId};

/// An API token as listed to its owner; the token itself is never stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiToken {
    pub id: ApiTokenId,
    pub name: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Timestamp>,
}

fn token(row: &AnyRow) -> DbResult<ApiToken> {
    Ok(ApiToken {
        id: parse(row, "id")?,
        name: get(row, "name")?,
        created_at: ts(row, "created_at")?,
        last_used_at: ts_opt(row, "last_used_at")?,
    })
}

impl Db {
    pub async fn insert_token(&self, user_id: UserId, name: &str, token_hash: &str) -> DbResult<ApiTokenId> {
        let id = ApiTokenId::new();
        sqlx::query("INSERT INTO api_tokens (id, user_id, name, token_hash, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(id.to_string())
            .bind(user_id.to_string())
            .bind(name)
            .bind(token_hash)
            .bind(Timestamp::now().millis())
            .execute(self.pool())
            .await?;
        Ok(id)
    }

    pub async fn list_tokens(&self, user_id: UserId) -> DbResult<Vec<ApiToken>> {
        sqlx::query(
            "SELECT id, name, created_at, last_used_at FROM api_tokens \
             WHERE user_id = ? AND revoked_at IS NULL ORDER BY created_at",
        )
        .bind(user_id.to_string())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(token)
        .collect()
    }

    /// Revokes one of the user's own tokens; false when there was none.
    pub async fn revoke_token(&self, user_id: UserId, id: ApiTokenId) -> DbResult<bool> {
        let r = sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL")
            .bind(Timestamp::now().millis())
            .bind(id.to_string())
            .bind(user_id.to_string())
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// The owner of a live token, recording its use.
    pub async fn token_owner(&self, token_hash: &str) -> DbResult<Option<UserId>> {
        let row = sqlx::query("SELECT id, user_id FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL")
            .bind(token_hash)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let id: String = get(&row, "id")?;
        sqlx::query("UPDATE api_tokens SET last_used_at = ? WHERE id = ?")
            .bind(Timestamp::now().millis())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(Some(parse(&row, "user_id")?))
    }
}
