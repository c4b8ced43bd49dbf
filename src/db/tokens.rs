use serde::Serialize;
use sqlx::any::AnyRow;

use super::{get, parse, ts, ts_opt, Db, DbResult};
use crate::domain::{ApiTokenId, Timestamp, TokenScope, UserId};

/// An API token as listed to its owner; the token itself is never stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiToken {
    pub id: ApiTokenId,
    pub name: String,
    /// `write`: all its user may do; `read`: GET requests only.
    pub scope: TokenScope,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Timestamp>,
}

/// What a presented token grants: whose it is and how far it reaches.
#[derive(Debug, Clone, Copy)]
pub struct TokenGrant {
    pub id: ApiTokenId,
    pub user_id: UserId,
    pub scope: TokenScope,
}

fn token(row: &AnyRow) -> DbResult<ApiToken> {
    Ok(ApiToken {
        id: parse(row, "id")?,
        name: get(row, "name")?,
        scope: parse(row, "scope")?,
        created_at: ts(row, "created_at")?,
        last_used_at: ts_opt(row, "last_used_at")?,
    })
}

impl Db {
    pub async fn insert_token(
        &self,
        user_id: UserId,
        name: &str,
        scope: TokenScope,
        token_hash: &str,
    ) -> DbResult<ApiTokenId> {
        let id = ApiTokenId::new();
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, name, scope, token_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(user_id.to_string())
        .bind(name)
        .bind(scope.as_str())
        .bind(token_hash)
        .bind(Timestamp::now().millis())
        .execute(self.pool())
        .await?;
        Ok(id)
    }

    pub async fn list_tokens(&self, user_id: UserId) -> DbResult<Vec<ApiToken>> {
        sqlx::query(
            "SELECT id, name, scope, created_at, last_used_at FROM api_tokens \
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

    /// What a live token grants, recording its use.
    pub async fn token_grant(&self, token_hash: &str) -> DbResult<Option<TokenGrant>> {
        let row = sqlx::query("SELECT id, user_id, scope FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL")
            .bind(token_hash)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let grant =
            TokenGrant { id: parse(&row, "id")?, user_id: parse(&row, "user_id")?, scope: parse(&row, "scope")? };
        sqlx::query("UPDATE api_tokens SET last_used_at = ? WHERE id = ?")
            .bind(Timestamp::now().millis())
            .bind(grant.id.to_string())
            .execute(self.pool())
            .await?;
        Ok(Some(grant))
    }
}
