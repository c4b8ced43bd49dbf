//! Who is looking at a page: the session's user (pages never take API
//! tokens), and the session's CSRF token every form carries.

use std::future::Future;
use std::pin::Pin;

use actix_session::{Session, SessionExt};
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};

use super::PageError;
use crate::auth::login_session;
use crate::db::users::User;
use crate::service::ServiceError;
use crate::state::AppState;

const SESSION_CSRF: &str = "csrf";

/// The logged-in, active user of a page, and the form token of the session.
pub struct PageUser {
    pub user: User,
    pub csrf: String,
    /// A message left by the previous request (kind `ok`, `error` or `info`, text).
    pub flash: Option<(String, String)>,
}

const SESSION_FLASH: &str = "flash";

/// Leaves a message for the next page this session sees.
pub fn flash(session: &Session, kind: &str, text: impl Into<String>) {
    let _ = session.insert(SESSION_FLASH, (kind.to_string(), text.into()));
}

/// The session's CSRF token, made on first use.
pub fn csrf_token(session: &Session) -> String {
    if let Ok(Some(t)) = session.get::<String>(SESSION_CSRF) {
        return t;
    }
    let t = hex::encode(rand::random::<[u8; 32]>());
    let _ = session.insert(SESSION_CSRF, &t);
    t
}

/// Whether a submitted token is the session's (compared in constant time).
pub fn csrf_ok(session: &Session, submitted: &str) -> bool {
    let Ok(Some(expected)) = session.get::<String>(SESSION_CSRF) else { return false };
    let (a, b) = (expected.as_bytes(), submitted.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequest for PageUser {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, PageError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let session = req.get_session();
        let live = req.headers().contains_key("hx-request");
        let login = if live { PageError::LoginLive } else { PageError::Login };
        Box::pin(async move {
            let state = state.ok_or_else(|| ServiceError::Internal("application state missing".into()))?;
            let Some(id) = login_session::user_id(&session) else { return Err(login) };
            let user = state.db.user(id).await.map_err(ServiceError::from)?;
            let admitted = match &user {
                Some(u) => login_session::admit(&state, &session, u).await.map_err(ServiceError::from)?,
                None => false,
            };
            match user {
                Some(user) if admitted => {
                    // A live refresh must not eat the message meant for the next page.
                    let flash = if live {
                        None
                    } else {
                        session.remove_as::<(String, String)>(SESSION_FLASH).and_then(Result::ok)
                    };
                    Ok(PageUser { user, csrf: csrf_token(&session), flash })
                }
                _ => {
                    // Logged out, unused or open too long, or the user is
                    // gone or deactivated: the session is over.
                    session.purge();
                    Err(login)
                }
            }
        })
    }
}
