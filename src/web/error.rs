//! How a page fails: to the login page, or with a short HTML page that
//! says why. Mapped to HTTP once, here.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use maud::html;

use crate::service::ServiceError;

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Not logged in.
    #[error("login required")]
    Login,
    /// Not logged in, asked by htmx (a live refresh): htmx follows
    /// `HX-Redirect` with a full page load instead of swapping the login
    /// form into the page.
    #[error("login required")]
    LoginLive,
    /// A form without the session's CSRF token.
    #[error("The form expired or did not come from drswitch; go back, reload the page and try again.")]
    Csrf,
    #[error("{0}")]
    Service(#[from] ServiceError),
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::Login => StatusCode::SEE_OTHER,
            PageError::LoginLive => StatusCode::OK,
            PageError::Csrf => StatusCode::FORBIDDEN,
            PageError::Service(e) => match e {
                ServiceError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                ServiceError::Conflict(_) | ServiceError::Taken { .. } => StatusCode::CONFLICT,
                ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
                ServiceError::Forbidden(_) => StatusCode::FORBIDDEN,
                ServiceError::BadCredentials => StatusCode::UNAUTHORIZED,
                ServiceError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
                ServiceError::Upstream(_) => StatusCode::BAD_GATEWAY,
                ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            PageError::Login => return HttpResponse::SeeOther().insert_header((header::LOCATION, "/login")).finish(),
            PageError::LoginLive => return HttpResponse::Ok().insert_header(("HX-Redirect", "/login")).finish(),
            _ => {}
        }
        let message = match self {
            PageError::Service(ServiceError::Internal(cause)) => {
                tracing::error!(%cause, "page failed");
                "drswitch hit an internal error; the server log has the details.".to_string()
            }
            other => {
                let m = other.to_string();
                match m.get(..1) {
                    Some(first) => first.to_uppercase() + &m[1..],
                    None => m,
                }
            }
        };
        let status = self.status_code();
        let body = html! {
            (maud::DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    title { "drswitch: " (status.as_u16()) }
                    link rel="stylesheet" href="/static/style.css";
                }
                body {
                    main {
                        div.panel {
                            h1 { (status.canonical_reason().unwrap_or("Error")) }
                            p { (message) }
                            p { a href="/" { "Back to the dashboard" } }
                        }
                    }
                }
            }
        };
        HttpResponse::build(status).content_type("text/html; charset=utf-8").body(body.into_string())
    }
}
