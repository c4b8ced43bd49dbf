//! Login, sessions, tokens and roles, over HTTP against the real binary.

#![allow(clippy::unwrap_used)]

mod common;

use common::{message, TestApp, ADMIN, ADMIN_PW};
use serde_json::json;

#[tokio::test]
async fn login_logout_and_me() {
    let app = TestApp::spawn().await;
    let (s, _) = app.get("/api/v1/auth/me").await;
    assert_eq!(s, 401);

    assert_eq!(app.login(ADMIN, "wrong-password").await, 401);
    let r = app.login_response(ADMIN, ADMIN_PW).await;
    assert_eq!(r.status(), 200);
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|h| h.to_str().unwrap().to_string())
        .find(|c| c.starts_with("drswitch_session="))
        .expect("session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http test server must not set Secure: {cookie}");

    let (s, me) = app.get("/api/v1/auth/me").await;
    assert_eq!(s, 200);
    assert_eq!(me["username"], ADMIN);
    assert_eq!(me["role"], "admin");
    assert!(me.get("password_hash").is_none());

    let (s, _) = app.post("/api/v1/auth/logout", json!({})).await;
    assert_eq!(s, 204);
    let (s, _) = app.get("/api/v1/auth/me").await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn secure_cookie_when_configured() {
    let app = TestApp::spawn_with(&[("COOKIE_SECURE", "true")]).await;
    let r = app.login_response(ADMIN, ADMIN_PW).await;
    let cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn failed_logins_are_throttled_and_logged_without_password() {
    let app = TestApp::spawn().await;
    for _ in 0..5 {
        assert_eq!(app.login(ADMIN, "guess-Zq9-wrong").await, 401);
    }
    let r = app.login_response(ADMIN, ADMIN_PW).await;
    assert_eq!(r.status(), 429, "even the right password waits out the lock");
    assert!(r.headers().get("retry-after").is_some());
    let (_, body) = common::decode(r).await;
    assert_eq!(body["error"]["code"], "too_many_requests");
    // Another user is not locked out.
    assert_eq!(app.login("someone-else", "x-wrong-pass").await, 401);

    let log = app.log();
    assert!(log.contains("login failed"), "{log}");
    assert!(!log.contains("guess-Zq9-wrong"), "a password reached the log");
    assert!(!log.contains(ADMIN_PW));
}

#[tokio::test]
async fn bearer_tokens_work_until_revoked() {
    let app = TestApp::spawn().await;
    app.login_admin().await;
    let (s, created) = app.post("/api/v1/tokens", json!({"name": "nightly cron"})).await;
    assert_eq!(s, 201);
    let token = created["token"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();

    let (_, list) = app.get("/api/v1/tokens").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains(&token), "the token is shown only once");
    assert!(list[0]["last_used_at"].is_null());

    let bare = common::client();
    let me = bare.get(app.url("/api/v1/auth/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(me.status(), 200);
    let (_, list) = app.get("/api/v1/tokens").await;
    assert!(list[0]["last_used_at"].is_string(), "last use is recorded");

    let bad = bare.get(app.url("/api/v1/auth/me")).bearer_auth("drs_not-a-token").send().await.unwrap();
    assert_eq!(bad.status(), 401);

    let (s, _) = app.delete(&format!("/api/v1/tokens/{id}")).await;
    assert_eq!(s, 204);
    let me = bare.get(app.url("/api/v1/auth/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(me.status(), 401);
    assert!(!app.log().contains(&token), "a token reached the log");
}

#[tokio::test]
async fn roles_are_enforced() {
    let app = TestApp::spawn().await;
    app.login_admin().await;
    let viewer = app.user_client("vera", "viewer").await;
    let operator = app.user_client("otto", "operator").await;

    let hv = json!({"name": "dc9", "host": "127.0.0.1", "node": "dc9", "role": "dc"});
    let r = viewer.post(app.url("/api/v1/hypervisors")).json(&hv).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let (_, body) = common::decode(r).await;
    assert_eq!(body["error"]["code"], "forbidden");
    let r = viewer.get(app.url("/api/v1/hypervisors")).send().await.unwrap();
    assert_eq!(r.status(), 200, "viewers read");

    let r = operator
        .post(app.url("/api/v1/users"))
        .json(&json!({"username": "eve", "password": "password-123", "role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (_, users) = app.get("/api/v1/users").await;
    assert!(!users.to_string().contains("eve"), "nothing stored");

    // A deactivated user's session stops working at once.
    let (_, list) = app.get("/api/v1/users").await;
    let vera =
        list.as_array().unwrap().iter().find(|u| u["username"] == "vera").unwrap()["id"].as_str().unwrap().to_string();
    let (s, _) = app.put(&format!("/api/v1/users/{vera}"), json!({"active": false})).await;
    assert_eq!(s, 200);
    let r = viewer.get(app.url("/api/v1/hypervisors")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn last_admin_cannot_be_removed() {
    let app = TestApp::spawn().await;
    app.login_admin().await;
    let (_, me) = app.get("/api/v1/auth/me").await;
    let id = me["id"].as_str().unwrap();
    let (s, body) = app.put(&format!("/api/v1/users/{id}"), json!({"role": "viewer"})).await;
    assert_eq!(s, 409, "{body}");
    assert!(message(&body).contains("last active admin"));
    let (s, _) = app.delete(&format!("/api/v1/users/{id}")).await;
    assert_eq!(s, 409);
}

#[tokio::test]
async fn parallel_guesses_get_no_more_than_the_limit_of_password_checks() {
    let app = TestApp::spawn().await;
    let guesses =
        (0..20).map(|i| {
            let c = common::client();
            let url = app.url("/api/v1/auth/login");
            async move {
                c.post(url).json(&json!({"username": ADMIN, "password": format!("guess-{i}")})).send().await.unwrap()
            }
        });
    let statuses: Vec<u16> =
        futures_util::future::join_all(guesses).await.iter().map(|r| r.status().as_u16()).collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(checked <= 5, "at most 5 passwords were checked: {statuses:?}");
    assert_eq!(checked + refused, 20, "{statuses:?}");
    // A malformed name is refused before it becomes a throttle key.
    let r = app.login_response("no such\nuser", "x").await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn the_api_takes_bodies_only_as_json() {
    let app = TestApp::spawn().await;
    app.login_admin().await;
    let body = r#"{"name":"dc9","host":"127.0.0.1","node":"dc9","role":"dc"}"#;
    for ct in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
        let r =
            app.client.post(app.url("/api/v1/hypervisors")).header("content-type", ct).body(body).send().await.unwrap();
        assert_eq!(r.status(), 415, "{ct}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "unsupported_media_type");
    }
    let (_, list) = app.get("/api/v1/hypervisors").await;
    assert_eq!(list, json!([]), "nothing was created");
    let r = app
        .client
        .post(app.url("/api/v1/hypervisors"))
        .header("content-type", "application/json; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn a_browser_request_from_another_site_changes_nothing() {
    let app = TestApp::spawn().await;
    app.login_admin().await;
    let dc = app.create_hypervisor("dc1", "dc").await;
    let drc = app.create_hypervisor("drc1", "drc").await;
    let pair = app.create_pair(&dc, 100, &drc, 200).await;
    let url = app.url(&format!("/api/v1/pairs/{pair}/backup"));
    // A bodiless form post from elsewhere: no content type to refuse.
    let r = app.client.post(&url).header("origin", "http://evil.example").send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = app.client.post(&url).header("sec-fetch-site", "cross-site").send().await.unwrap();
    assert_eq!(r.status(), 403);
    let (_, tasks) = app.get("/api/v1/tasks").await;
    assert_eq!(tasks["total"], 0, "nothing was queued");
    // The same request from drswitch's own pages, or from a script, works.
    let host = app.base.trim_start_matches("http://").to_string();
    let r = app.client.post(&url).header("origin", format!("http://{host}")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let r = app.client.post(&url).send().await.unwrap();
    assert_eq!(r.status(), 202);
}

#[tokio::test]
async fn logout_ends_every_copy_of_the_session() {
    let app = TestApp::spawn().await;
    let r = app.login_response(ADMIN, ADMIN_PW).await;
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let copy = reqwest::Client::new();
    let me = |c: &reqwest::Client| c.get(app.url("/api/v1/auth/me")).header("cookie", cookie.clone()).send();
    assert_eq!(me(&copy).await.unwrap().status(), 200, "the copied cookie works while the session lives");
    let r = app.client.post(app.url("/api/v1/auth/logout")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(me(&copy).await.unwrap().status(), 401, "and not after logout");
    assert_eq!(app.login(ADMIN, ADMIN_PW).await, 200, "a new login works");
}
