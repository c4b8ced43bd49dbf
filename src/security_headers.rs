//! The security headers every response carries: pages, JSON, assets,
//! errors and 404s alike. Set here and nowhere else, around the whole app,
//! so a new route or an error path cannot forget them.

use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;

/// Scripts, styles and images only from drswitch itself (no inline scripts,
/// no CDN), forms post back to it, and no other site may frame it.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The middleware, for the outermost layer of the app. Handler errors,
/// 404s and 405s are responses by the time they pass it, so they get the
/// headers too; a header a handler set itself is kept.
pub fn middleware() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        // Links to other sites (a Proxmox host, a webhook) must not learn
        // drswitch's paths, which carry ids.
        .add((header::REFERRER_POLICY, "same-origin"))
}
