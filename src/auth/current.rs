use std::future::Future;
use std::pin::Pin;

use actix_session::SessionExt;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};

use crate::auth::login_session;
use crate::db::users::User;
use crate::error::AppError;
use crate::state::AppState;

/// The logged-in, active user behind a request: from the session cookie or
/// an `Authorization: Bearer` API token.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub User);

impl FromRequest for CurrentUser {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let bearer = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(|t| t.trim().to_string());
        let session = req.get_session();
        Box::pin(async move {
            let state = state.ok_or_else(|| AppError::internal("application state missing"))?;
            let from_session = bearer.is_none();
            let user_id = match bearer {
                Some(token) => state.db.token_owner(&crate::auth::token::digest(&token)).await?,
                None => login_session::user_id(&session),
            };
            let user_id = user_id.ok_or(AppError::Unauthorized)?;
            match state.db.user(user_id).await? {
                Some(u)
                    if from_session && !login_session::still_valid(&session, &u, state.settings.session_max_age) =>
                {
                    session.purge();
                    Err(AppError::Unauthorized)
                }
                Some(u) if u.active => Ok(CurrentUser(u)),
                _ => Err(AppError::Unauthorized),
            }
        })
    }
}
