//! A user's own API tokens: shown once at creation, stored hashed,
//! revocable.

use serde::{Deserialize, Serialize};

use super::audit::{self, subject};
use super::input::label;
use super::{ServiceError, ServiceResult};
use crate::auth::token;
use crate::db::tokens::ApiToken;
use crate::db::users::User;
use crate::domain::{ApiTokenId, TokenScope};
use crate::state::AppState;

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenInput {
    /// A label to recognise the token by, e.g. "backup cron on host x".
    #[schema(value_type = Option<super::input::doc::Label>)]
    pub name: Option<String>,
    /// `write` (default): everything its user may do; `read`: GET requests
    /// only, any other request is refused with 403 `read_only_token`.
    pub scope: Option<TokenScope>,
}

/// A new token: the only time its secret is shown.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NewToken {
    pub id: ApiTokenId,
    pub name: String,
    pub scope: TokenScope,
    pub token: String,
}

pub async fn list(state: &AppState, actor: &User) -> ServiceResult<Vec<ApiToken>> {
    Ok(state.db.list_tokens(actor.id).await?)
}

pub async fn create(state: &AppState, actor: &User, b: TokenInput) -> ServiceResult<NewToken> {
    let name = match b.name {
        Some(n) => label("name", &n)?,
        None => "api token".into(),
    };
    let scope = b.scope.unwrap_or(TokenScope::Write);
    let secret = token::generate();
    let id = state.db.insert_token(actor.id, &name, scope, &token::digest(&secret)).await?;
    tracing::info!(username = %actor.username, token_id = %id, %scope, "api token created");
    let detail = format!("name {name:?}, scope {scope}");
    audit::record(state, &actor.username, "token.create", subject("token", id), &detail).await;
    Ok(NewToken { id, name, scope, token: secret })
}

pub async fn revoke(state: &AppState, actor: &User, id: ApiTokenId) -> ServiceResult<()> {
    if !state.db.revoke_token(actor.id, id).await? {
        return Err(ServiceError::NotFound("token"));
    }
    tracing::info!(username = %actor.username, token_id = %id, "api token revoked");
    audit::record(state, &actor.username, "token.revoke", subject("token", id), "").await;
    Ok(())
}
