//! `COOKIE_SECURE=auto`: the session cookie gets `Secure` when the request
//! came over https. drswitch speaks plain http itself, so only a reverse
//! proxy can say so (`X-Forwarded-Proto: https`), and only a proxy listed in
//! `TRUSTED_PROXIES` is believed: anyone else could send the header.

use actix_web::body::MessageBody;
use actix_web::cookie::Cookie;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, SET_COOKIE};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest};

use crate::app::SESSION_COOKIE;
use crate::domain::IpRange;
use crate::settings::CookieSecure;
use crate::state::AppState;

/// Whether a trusted proxy says the client reached it over https.
pub fn came_over_https(req: &HttpRequest, trusted: &[IpRange]) -> bool {
    let Some(peer) = req.peer_addr() else { return false };
    if !trusted.iter().any(|r| r.contains(peer.ip())) {
        return false;
    }
    // A chain of proxies lists one scheme each; the first is the client's.
    req.headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// Middleware (outside the session middleware): marks the session cookie
/// `Secure` on responses to requests that came over https.
pub async fn mark(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let https = req.app_data::<web::Data<AppState>>().is_some_and(|state| {
        state.settings.cookie_secure == CookieSecure::Auto
            && came_over_https(req.request(), &state.settings.trusted_proxies)
    });
    let mut res = next.call(req).await?;
    if https {
        let headers = res.headers_mut();
        let cookies: Vec<HeaderValue> = headers.get_all(SET_COOKIE).cloned().collect();
        headers.remove(SET_COOKIE);
        for value in cookies {
            headers.append(SET_COOKIE, secure(value));
        }
    }
    Ok(res)
}

fn secure(value: HeaderValue) -> HeaderValue {
    let Some(mut cookie) = value.to_str().ok().and_then(|v| Cookie::parse(v.to_string()).ok()) else {
        return value;
    };
    if cookie.name() != SESSION_COOKIE {
        return value;
    }
    cookie.set_secure(true);
    HeaderValue::from_str(&cookie.to_string()).unwrap_or(value)
}
