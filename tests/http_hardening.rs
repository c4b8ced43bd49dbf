//! What every HTTP answer carries, whatever the route: security headers,
//! 405 for a method a path does not take, and a `Secure` session cookie
//! behind a TLS proxy.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestApp, ADMIN, ADMIN_PW};
use reqwest::Method;
use serde_json::json;

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
        (Method::DELETE, "/api/v1/tasks", 405),
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

#[tokio::test]
async fn a_method_a_path_does_not_take_is_405_json_with_allow() {
    let app = TestApp::spawn().await;
    app.login_admin().await;
    let hv = app.create_hypervisor("dc1", "dc").await;
    let cases = [
        (Method::DELETE, "/api/v1/tasks".to_string(), "GET"),
        (Method::PATCH, "/api/v1/hypervisors".to_string(), "GET, POST"),
        (Method::PATCH, format!("/api/v1/hypervisors/{hv}"), "GET, PUT, DELETE"),
        (Method::GET, format!("/api/v1/hypervisors/{hv}/check"), "POST"),
        (Method::PUT, "/api/v1/auth/login".to_string(), "POST"),
        (Method::POST, "/api/v1/health".to_string(), "GET"),
        (Method::POST, "/metrics".to_string(), "GET"),
    ];
    for (method, path, allow) in cases {
        let r = app.client.request(method.clone(), app.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 405, "{method} {path}");
        assert_eq!(r.headers()["allow"], allow, "{method} {path}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
        let (_, body) = common::decode(r).await;
        assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
        assert!(common::message(&body).contains(allow), "{body}");
    }
    // Nothing changed, and the right methods still work.
    let (s, one) = app.get(&format!("/api/v1/hypervisors/{hv}")).await;
    assert_eq!(s, 200, "{one}");
    let (s, body) = app.delete("/api/v1/no-such-thing").await;
    assert_eq!(s, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let (s, body) = app.get("/api/v1/tasks/not-a-uuid/nope").await;
    assert_eq!((s, body["error"]["code"].as_str()), (404, Some("not_found")));
}

/// The session cookie a login answers with.
async fn session_cookie(app: &TestApp, forwarded_proto: Option<&str>) -> String {
    let mut req =
        plain_client().post(app.url("/api/v1/auth/login")).json(&json!({"username": ADMIN, "password": ADMIN_PW}));
    if let Some(proto) = forwarded_proto {
        req = req.header("x-forwarded-proto", proto);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|h| h.to_str().unwrap().to_string())
        .find(|c| c.starts_with("drswitch_session="))
        .expect("session cookie")
}

#[tokio::test]
async fn session_cookie_is_secure_when_a_trusted_proxy_says_https() {
    let app = TestApp::spawn_with(&[("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")]).await;
    let cookie = session_cookie(&app, Some("https")).await;
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!session_cookie(&app, Some("http")).await.contains("Secure"));
    assert!(!session_cookie(&app, None).await.contains("Secure"));

    // Nobody else is believed.
    let untrusted = TestApp::spawn_with(&[("TRUSTED_PROXIES", "10.0.0.0/8")]).await;
    assert!(!session_cookie(&untrusted, Some("https")).await.contains("Secure"));
    // COOKIE_SECURE=false wins over the proxy; true needs no proxy.
    let never = TestApp::spawn_with(&[("TRUSTED_PROXIES", "127.0.0.1"), ("COOKIE_SECURE", "false")]).await;
    assert!(!session_cookie(&never, Some("https")).await.contains("Secure"));
    let always = TestApp::spawn_with(&[("COOKIE_SECURE", "true")]).await;
    assert!(session_cookie(&always, None).await.contains("; Secure"));
}
