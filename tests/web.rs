//! The web UI's rules over plain HTTP (the browser suite in tests/ui/ shows
//! the pages at work): login through the form, CSRF on every post, the
//! security headers, escaping, and what a viewer is not offered.

#![allow(clippy::unwrap_used)]

mod common;

use common::{client, csrf_of, TestApp, ADMIN, ADMIN_PW};
use serde_json::json;

async fn page_login(app: &TestApp, c: &reqwest::Client, user: &str, pw: &str) -> reqwest::Response {
    let html = c.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    c.post(app.url("/login"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("username", user), ("password", pw)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn pages_need_a_login_and_every_post_a_csrf_token() {
    let app = TestApp::spawn().await;
    let c = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = c.get(app.url("/pairs")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login");

    // The login form itself needs the token.
    let r = c.post(app.url("/login")).form(&[("username", ADMIN), ("password", ADMIN_PW)]).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = page_login(&app, &c, ADMIN, "wrong-password").await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("Wrong username or password."));
    let r = page_login(&app, &c, ADMIN, ADMIN_PW).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());

    let page = c.get(app.url("/hypervisors/new")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    let html = page.text().await.unwrap();
    let token = csrf_of(&html);

    let fields = [("name", "dc9"), ("host", "127.0.0.1"), ("node", "dc9"), ("role", "dc")];
    let r = c.post(app.url("/hypervisors")).form(&fields).send().await.unwrap();
    assert_eq!(r.status(), 403, "a post without the token is refused");
    let mut with = fields.to_vec();
    with.push(("csrf", "0".repeat(64).leak()));
    let r = c.post(app.url("/hypervisors")).form(&with).send().await.unwrap();
    assert_eq!(r.status(), 403, "a wrong token is refused");
    let mut with = fields.to_vec();
    with.push(("csrf", token.as_str()));
    let r = c.post(app.url("/hypervisors")).form(&with).send().await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());

    // A field error comes back next to the field, with what was typed kept.
    let bad = [("csrf", token.as_str()), ("name", "dc10"), ("host", "not a host!"), ("node", "dc10"), ("role", "dc")];
    let r = c.post(app.url("/hypervisors")).form(&bad).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("class=\"field-error\""), "{html}");
    assert!(html.contains("value=\"dc10\""), "the form keeps what was typed");

    // An edit form clears an optional setting when it is sent empty.
    let list: serde_json::Value = c.get(app.url("/api/v1/hypervisors")).send().await.unwrap().json().await.unwrap();
    let id = list[0]["id"].as_str().unwrap().to_string();
    let pin = ["AB"; 32].join(":");
    let set = [("csrf", token.as_str()), ("tls_fingerprint", pin.as_str()), ("api_token_id", "root@pam!drswitch")];
    let r = c.post(app.url(&format!("/hypervisors/{id}"))).form(&set).send().await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let h: serde_json::Value =
        c.get(app.url(&format!("/api/v1/hypervisors/{id}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(h["tls_fingerprint"], pin.as_str());
    let clear = [("csrf", token.as_str()), ("tls_fingerprint", ""), ("name", "dc9")];
    let r = c.post(app.url(&format!("/hypervisors/{id}"))).form(&clear).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let h: serde_json::Value =
        c.get(app.url(&format!("/api/v1/hypervisors/{id}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(h["tls_fingerprint"], serde_json::Value::Null, "sent empty: cleared");
    assert_eq!(h["api_token_id"], "root@pam!drswitch", "not sent: kept");

    // Log out is a post with the token, too.
    let r = c.post(app.url("/logout")).send().await.unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn host_text_is_escaped_and_viewers_get_no_action_buttons() {
    let app = TestApp::spawn().await;
    app.login_admin().await;
    let (s, _) = app
        .post(
            "/api/v1/hypervisors",
            json!({"name": "<script>alert(1)</script>", "host": "127.0.0.1", "node": "dc1", "role": "dc"}),
        )
        .await;
    assert_eq!(s, 201);
    let dc = app.create_hypervisor("dc1", "dc").await;
    let drc = app.create_hypervisor("drc1", "drc").await;
    let pair = app.create_pair(&dc, 100, &drc, 200).await;
    let (s, _) = app
        .post("/api/v1/users", json!({"username": "watcher", "password": "user-password-1", "role": "viewer"}))
        .await;
    assert_eq!(s, 201);

    let admin = client();
    assert_eq!(page_login(&app, &admin, ADMIN, ADMIN_PW).await.status(), 200);
    let html = admin.get(app.url("/hypervisors")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "the name is shown as text");
    assert!(!html.contains("<script>alert(1)"), "and never as markup");
    let html = admin.get(app.url(&format!("/pairs/{pair}"))).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Backup now") && html.contains("Delete"), "an admin gets the actions");

    let viewer = client();
    assert_eq!(page_login(&app, &viewer, "watcher", "user-password-1").await.status(), 200);
    let html = viewer.get(app.url(&format!("/pairs/{pair}"))).send().await.unwrap().text().await.unwrap();
    for button in ["Backup now", "Replicate now", ">Restore<", ">Edit<", ">Delete<", "Schedule backup"] {
        assert!(!html.contains(button), "a viewer is not offered {button}");
    }
    let r = viewer.get(app.url("/users")).send().await.unwrap();
    assert_eq!(r.status(), 403, "users are for admins");
    let html = viewer.get(app.url("/pairs")).send().await.unwrap().text().await.unwrap();
    assert!(!html.contains("Add pair"));
}

#[tokio::test]
async fn changing_the_password_is_limited_like_a_login() {
    let app = TestApp::spawn().await;
    let c = client();
    assert_eq!(page_login(&app, &c, ADMIN, ADMIN_PW).await.status(), 200);
    let html = c.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    let token = csrf_of(&html);
    let attempt = |current: &'static str| {
        c.post(app.url("/account/password"))
            .form(&[("csrf", token.as_str()), ("current_password", current), ("password", "a-new-password-1")])
            .send()
    };
    for _ in 0..5 {
        let r = attempt("wrong-password").await.unwrap();
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains("The current password is not right."));
    }
    let r = attempt(ADMIN_PW).await.unwrap();
    assert_eq!(r.status(), 422, "even the right password waits out the lock");
    assert!(r.text().await.unwrap().contains("too many failed logins"));
}
