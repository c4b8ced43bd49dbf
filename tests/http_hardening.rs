//! What every HTTP answer carries, whatever the route.

#![allow(clippy::unwrap_used)]

mod common;

use common::TestApp;
use reqwest::Method;

fn plain_client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    let c = plain_client();
    let cases = [
        (Method::GET, "/api/v1/health", 200),
        (Method::GET, "/api/v1/pairs", 401),
        (Method::GET, "/api/v1/no-such-thing", 404),
        (Method::GET, "/metrics", 401),
        (Method::GET, "/login", 200),
        (Method::GET, "/pairs", 303),
        (Method::POST, "/login", 403),
        (Method::GET, "/static/style.css", 200),
        (Method::GET, "/static/no-such-file.js", 404),
        (Method::GET, "/no/such/page", 404),
    ];
    for (method, path, status) in cases {
        let r = c.request(method.clone(), app.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        let h = r.headers();
        let header = |name: &str| h.get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let csp = header("content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{method} {path}: CSP {csp:?}");
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{method} {path}: {csp:?}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{method} {path}");
        assert_eq!(header("x-frame-options"), "DENY", "{method} {path}");
        assert!(["no-referrer", "same-origin"].contains(&header("referrer-policy").as_str()), "{method} {path}");
        assert_eq!(h.get_all("content-security-policy").iter().count(), 1, "{method} {path}: one CSP only");
    }
}
