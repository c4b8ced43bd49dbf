//! A user's own API tokens: shown once at creation, stored hashed,
//! revocable.

use serde::{Deserialize, Serialize};

use super::input::label;
use super::{ServiceError, ServiceResult};
use crate::auth::token;
use crate::db::tokens::ApiToken;
use crate::db::users::User;
use crate::domain::ApiTokenId;
use crate::state::AppState;

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenInput {
    /// A label to recognise the token by, e.g. "backup cron on host x".
    #[schema(value_type = Option<super::input::doc::Label>)]
    pub name: Option<String>,
}

/// A new token: the only time its secret is shown.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NewToken {
    pub id: ApiTokenId,
    pub name: String,
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
    let secret = token::generate();
    let id = state.db.insert_token(actor.id, &name, &token::digest(&secret)).await?;
    tracing::info!(username = %actor.username, token_id = %id, "api token created");
    Ok(NewToken { id, name, token: secret })
}

pub async fn revoke(state: &AppState, actor: &User, id: ApiTokenId) -> ServiceResult<()> {
    if !state.db.revoke_token(actor.id, id).await? {
        return Err(ServiceError::NotFound("token"));
    }
    tracing::info!(username = %actor.username, token_id = %id, "api token revoked");
    Ok(())
}
