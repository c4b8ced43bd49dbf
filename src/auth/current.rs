use std::future::Future;
use std::pin::Pin;

use actix_session::SessionExt;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};

use crate::auth::{bearer, login_session};
use crate::db::users::User;
use crate::error::AppError;
use crate::state::AppState;

/// The logged-in, active user behind a request: from the session cookie or
/// an `Authorization: Bearer` API token (within the token's scope).
#[derive(Debug, Clone)]
pub struct CurrentUser(pub User);

impl FromRequest for CurrentUser {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| AppError::internal("application state missing"))?;
            if bearer::presented(&req).is_some() {
                let grant = bearer::grant(&req).await?.ok_or(AppError::Unauthorized)?;
                // Also here, for routes outside the API's guard.
                if !bearer::permits(grant.scope, req.method()) {
                    return Err(AppError::ReadOnlyToken);
                }
                return match state.db.user(grant.user_id).await? {
                    Some(u) if u.active => Ok(CurrentUser(u)),
                    _ => Err(AppError::Unauthorized),
                };
            }
            let session = req.get_session();
            let user_id = login_session::user_id(&session).ok_or(AppError::Unauthorized)?;
            match state.db.user(user_id).await? {
                Some(u) if login_session::admit(&state, &session, &u).await? => Ok(CurrentUser(u)),
                _ => {
                    session.purge();
                    Err(AppError::Unauthorized)
                }
            }
        })
    }
}
