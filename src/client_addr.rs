//! The client's address, for the audit log: the peer of the connection,
//! or, when that peer is a reverse proxy listed in `TRUSTED_PROXIES`, the
//! address it reports in `X-Forwarded-For` (the nearest one no trusted
//! proxy added; anything further left could be made up by the client).

use std::net::IpAddr;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest};

use crate::domain::IpRange;
use crate::state::AppState;

/// The client's address as far as it can be trusted.
pub fn client_ip(req: &HttpRequest, trusted: &[IpRange]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip().to_canonical();
    if !trusted.iter().any(|r| r.contains(peer)) {
        return Some(peer);
    }
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut nearest = peer;
    for hop in forwarded.into_iter().rev() {
        // A hop that is no address ends the walk: whatever stands left of
        // it was not vouched for by a proxy we trust.
        let Ok(hop) = hop.parse::<IpAddr>() else { break };
        nearest = hop.to_canonical();
        if !trusted.iter().any(|r| r.contains(nearest)) {
            break;
        }
    }
    Some(nearest)
}

/// Middleware: the request is handled knowing its client's address, which
/// every audit entry it causes records.
pub async fn remember(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let trusted = req.app_data::<web::Data<AppState>>().map(|s| s.settings.trusted_proxies.clone()).unwrap_or_default();
    let ip = client_ip(req.request(), &trusted).map(|ip| ip.to_string());
    crate::service::audit::with_source_ip(ip, next.call(req)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn ip(req: TestRequest, trusted: &[&str]) -> String {
        let trusted: Vec<IpRange> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        client_ip(&req.to_http_request(), &trusted).unwrap().to_string()
    }

    #[test]
    fn believes_only_trusted_proxies() {
        let peer = "10.0.0.2:5000".parse().unwrap();
        let forwarded =
            || TestRequest::default().peer_addr(peer).insert_header(("x-forwarded-for", "6.6.6.6, 192.0.2.7"));
        assert_eq!(ip(forwarded(), &[]), "10.0.0.2", "an untrusted peer's header is ignored");
        assert_eq!(ip(forwarded(), &["10.0.0.0/8"]), "192.0.2.7", "the nearest hop a trusted proxy saw");
        assert_eq!(ip(forwarded(), &["10.0.0.0/8", "192.0.2.0/24"]), "6.6.6.6");
        assert_eq!(ip(TestRequest::default().peer_addr(peer), &["10.0.0.0/8"]), "10.0.0.2");
    }
}
