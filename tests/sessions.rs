//! Sessions end when unused too long, when too old however busy, on
//! logout (this one only), when logged out everywhere (by the user or an
//! admin), and on a password change (all but the one that made it). Time
//! is moved in the database, not waited for.

#![allow(clippy::unwrap_used)]

mod common;

use common::{client, csrf_of, page_client, TestApp, ADMIN, ADMIN_PW};
use serde_json::json;

const NOW_SLACK_MS: i64 = 60_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A new client logged in as `user` over the API, and the id of its session.
async fn login(app: &TestApp, user: &str, pw: &str) -> (reqwest::Client, String) {
    let before = app.login_sessions(user).await;
    let c = client();
    let r =
        c.post(app.url("/api/v1/auth/login")).json(&json!({"username": user, "password": pw})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let after = app.login_sessions(user).await;
    let new: Vec<_> = after.into_iter().filter(|id| !before.contains(id)).collect();
    assert_eq!(new.len(), 1, "one login, one session");
    (c, new[0].clone())
}

async fn me(app: &TestApp, c: &reqwest::Client) -> u16 {
    c.get(app.url("/api/v1/auth/me")).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn an_unused_session_ends_and_use_keeps_it_alive() {
    let app = TestApp::spawn_with(&[("SESSION_IDLE_SECS", "600"), ("SESSION_MAX_SECS", "7200")]).await;
    let (c, sid) = login(&app, ADMIN, ADMIN_PW).await;
    assert_eq!(me(&app, &c).await, 200);

    // Unused for 500 s of 600: still good, and this use resets the clock.
    app.set_stored_time("login_sessions", "last_seen_at", &sid, now_ms() - 500_000).await;
    assert_eq!(me(&app, &c).await, 200);
    let seen = app.stored_millis("login_sessions", "last_seen_at", &sid).await;
    assert!(now_ms() - seen < NOW_SLACK_MS, "the use was recorded: {seen}");

    // Unused for longer than 600 s: over, and it stays over.
    app.set_stored_time("login_sessions", "last_seen_at", &sid, now_ms() - 601_000).await;
    assert_eq!(me(&app, &c).await, 401);
    app.set_stored_time("login_sessions", "last_seen_at", &sid, now_ms()).await;
    assert_eq!(me(&app, &c).await, 401, "the cookie was dropped with the session");

    // Pages too: an idle page session goes back to the login form.
    let before = app.login_sessions(ADMIN).await;
    let page = page_client(&app, ADMIN, ADMIN_PW).await;
    let psid = app.login_sessions(ADMIN).await.into_iter().find(|id| !before.contains(id)).unwrap();
    assert_eq!(page.get(app.url("/pairs")).send().await.unwrap().status(), 200);
    app.set_stored_time("login_sessions", "last_seen_at", &psid, now_ms() - 601_000).await;
    let r = page.get(app.url("/pairs")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login");
}

#[tokio::test]
async fn a_session_ends_at_its_maximum_age_however_busy() {
    let app = TestApp::spawn_with(&[("SESSION_IDLE_SECS", "600"), ("SESSION_MAX_SECS", "3600")]).await;
    let (c, sid) = login(&app, ADMIN, ADMIN_PW).await;
    app.set_stored_time("login_sessions", "created_at", &sid, now_ms() - 3_500_000).await;
    assert_eq!(me(&app, &c).await, 200, "younger than the maximum");
    app.set_stored_time("login_sessions", "created_at", &sid, now_ms() - 3_601_000).await;
    assert_eq!(me(&app, &c).await, 401, "older than the maximum, though used a moment ago");
    let (c, _) = login(&app, ADMIN, ADMIN_PW).await;
    assert_eq!(me(&app, &c).await, 200, "a new login starts a new session");
}

#[tokio::test]
async fn logout_ends_this_session_only() {
    let app = TestApp::spawn().await;
    let (laptop, _) = login(&app, ADMIN, ADMIN_PW).await;
    let (phone, _) = login(&app, ADMIN, ADMIN_PW).await;
    let r = laptop.post(app.url("/api/v1/auth/logout")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(me(&app, &laptop).await, 401);
    assert_eq!(me(&app, &phone).await, 200, "the other session goes on");
}

#[tokio::test]
async fn logging_out_everywhere_ends_every_session_but_not_tokens() {
    let app = TestApp::spawn().await;
    let (laptop, _) = login(&app, ADMIN, ADMIN_PW).await;
    let (phone, _) = login(&app, ADMIN, ADMIN_PW).await;
    let page = page_client(&app, ADMIN, ADMIN_PW).await;
    let r = laptop.post(app.url("/api/v1/tokens")).json(&json!({"name": "cron"})).send().await.unwrap();
    let token = r.json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_string();

    let r = laptop.post(app.url("/api/v1/session/logout-all")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    for c in [&laptop, &phone] {
        assert_eq!(me(&app, c).await, 401);
    }
    assert_eq!(page.get(app.url("/")).send().await.unwrap().status(), 303, "the page session ended too");
    let r = client().get(app.url("/api/v1/auth/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200, "tokens stay until revoked");
    let (again, _) = login(&app, ADMIN, ADMIN_PW).await;
    assert_eq!(me(&app, &again).await, 200);

    // The same from the account page's button.
    let page = page_client(&app, ADMIN, ADMIN_PW).await;
    let html = page.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Log out everywhere"), "{html}");
    let r = page.post(app.url("/account/logout-all")).form(&[("csrf", csrf_of(&html))]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login");
    assert_eq!(me(&app, &again).await, 401);
    assert_eq!(page.get(app.url("/")).send().await.unwrap().status(), 303);
}

#[tokio::test]
async fn an_admin_logs_a_user_out_everywhere() {
    let app = TestApp::spawn().await;
    app.login_admin().await;
    let (s, u) =
        app.post("/api/v1/users", json!({"username": "ulla", "password": "user-password-1", "role": "operator"})).await;
    assert_eq!(s, 201);
    let id = u["id"].as_str().unwrap().to_string();
    let (desk, _) = login(&app, "ulla", "user-password-1").await;
    let (home, _) = login(&app, "ulla", "user-password-1").await;

    let r = desk.post(app.url(&format!("/api/v1/users/{id}/logout-all"))).send().await.unwrap();
    assert_eq!(r.status(), 403, "only an admin may");
    assert_eq!(me(&app, &desk).await, 200);

    let (s, _) = app.post(&format!("/api/v1/users/{id}/logout-all"), json!({})).await;
    assert_eq!(s, 204);
    assert_eq!(me(&app, &desk).await, 401);
    assert_eq!(me(&app, &home).await, 401);
    assert_eq!(app.get("/api/v1/auth/me").await.0, 200, "the admin's own session goes on");
    let (s, _) = app.post("/api/v1/users/00000000-0000-0000-0000-000000000000/logout-all", json!({})).await;
    assert_eq!(s, 404);

    // The button on the users page does the same.
    let (desk, _) = login(&app, "ulla", "user-password-1").await;
    let page = page_client(&app, ADMIN, ADMIN_PW).await;
    let html = page.get(app.url("/users")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(&format!("/users/{id}/logout-all")), "{html}");
    let r =
        page.post(app.url(&format!("/users/{id}/logout-all"))).form(&[("csrf", csrf_of(&html))]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(me(&app, &desk).await, 401);
    assert_eq!(page.get(app.url("/users")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_password_change_ends_the_other_sessions_but_not_this_one() {
    let app = TestApp::spawn().await;
    let (laptop, _) = login(&app, ADMIN, ADMIN_PW).await;
    let (phone, _) = login(&app, ADMIN, ADMIN_PW).await;
    let r = laptop
        .post(app.url("/api/v1/session/password"))
        .json(&json!({"current_password": "not-the-password", "password": "a-new-password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the current password must be right");
    assert_eq!(me(&app, &phone).await, 200, "a refused change ends nothing");

    let r = laptop
        .post(app.url("/api/v1/session/password"))
        .json(&json!({"current_password": ADMIN_PW, "password": "a-new-password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(me(&app, &laptop).await, 200, "the session that changed it stays");
    assert_eq!(me(&app, &phone).await, 401, "every other one ends");
    assert_eq!(app.login(ADMIN, ADMIN_PW).await, 401);
    assert_eq!(app.login(ADMIN, "a-new-password-1").await, 200);

    // Through the account page: the page stays logged in, the API client does not.
    let (other, _) = login(&app, ADMIN, "a-new-password-1").await;
    let page = page_client(&app, ADMIN, "a-new-password-1").await;
    let html = page.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    let r = page
        .post(app.url("/account/password"))
        .form(&[
            ("csrf", csrf_of(&html).as_str()),
            ("current_password", "a-new-password-1"),
            ("password", "a-third-password-1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(page.get(app.url("/account")).send().await.unwrap().status(), 200);
    assert_eq!(me(&app, &other).await, 401);

    // An admin setting their own password through the users API keeps the session too.
    let (admin, _) = login(&app, ADMIN, "a-third-password-1").await;
    let (bystander, _) = login(&app, ADMIN, "a-third-password-1").await;
    let me_json: serde_json::Value = admin.get(app.url("/api/v1/auth/me")).send().await.unwrap().json().await.unwrap();
    let id = me_json["id"].as_str().unwrap();
    let r = admin
        .put(app.url(&format!("/api/v1/users/{id}")))
        .json(&json!({"password": "a-fourth-password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(me(&app, &admin).await, 200);
    assert_eq!(me(&app, &bystander).await, 401);
}
