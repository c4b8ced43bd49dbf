//! The audit log: every kind of action leaves one entry saying who, what,
//! to what and from where, whether it came through the API, a page, a
//! schedule or the monitor; only admins read it; no secret ever reaches
//! it; it keeps a bounded number of entries.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/receiver.rs"]
mod receiver;

use std::time::{Duration, Instant};

use common::{client, csrf_of, page_client, TestApp, ADMIN, ADMIN_PW};
use receiver::{Receiver, Reply};
use serde_json::{json, Value};

/// Every entry, newest first.
async fn entries(app: &TestApp) -> Vec<Value> {
    let (s, page) = app.get("/api/v1/audit?limit=500").await;
    assert_eq!(s, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

fn find<'a>(all: &'a [Value], action: &str, actor: &str) -> Option<&'a Value> {
    all.iter().find(|e| e["action"] == action && e["actor"] == actor)
}

/// Polls until an entry of `action` by `actor` shows up (for what drswitch
/// does by itself: a schedule firing, the monitor failing over).
async fn wait_for(app: &TestApp, action: &str, actor: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(e) = find(&entries(app).await, action, actor) {
            return e.clone();
        }
        assert!(Instant::now() < deadline, "no {action} by {actor}: {:#?}", entries(app).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

async fn ok(app: &TestApp, method: &str, path: &str, body: Value) -> Value {
    let (s, v) = match method {
        "POST" => app.post(path, body).await,
        "PUT" => app.put(path, body).await,
        "DELETE" => app.delete(path).await,
        _ => unreachable!(),
    };
    assert!((200..300).contains(&s), "{method} {path}: {s} {v}");
    v
}

#[tokio::test]
async fn every_kind_of_action_leaves_an_entry() {
    let hook = Receiver::start(&[Reply::Status(204)]).await;
    let app = TestApp::spawn_with(&[
        ("WORKER_ENABLED", "false"),
        ("SCHEDULE_SECONDS", "true"),
        ("MONITOR_INTERVAL_SECS", "1"),
        ("MONITOR_PROBE_TIMEOUT_SECS", "1"),
        ("FAILOVER_TOLERANCE_SECS", "2"),
    ])
    .await;
    assert_eq!(app.login("admin", "not-the-password").await, 401);
    assert_eq!(app.login("nobody", "not-the-password").await, 401);
    app.login_admin().await;

    // Users, tokens.
    let vic =
        ok(&app, "POST", "/api/v1/users", json!({"username": "vic", "password": "vic-password-1", "role": "viewer"}))
            .await;
    let vic_id = id(&vic);
    ok(&app, "PUT", &format!("/api/v1/users/{vic_id}"), json!({"role": "operator"})).await;
    let gone =
        ok(&app, "POST", "/api/v1/users", json!({"username": "gone", "password": "gone-password-1", "role": "viewer"}))
            .await;
    ok(&app, "DELETE", &format!("/api/v1/users/{}", id(&gone)), json!(null)).await;
    let token = ok(&app, "POST", "/api/v1/tokens", json!({"name": "cron", "scope": "read"})).await;
    ok(&app, "DELETE", &format!("/api/v1/tokens/{}", id(&token)), json!(null)).await;

    // Hypervisors, pairs.
    let dc = app.create_hypervisor("dc1", "dc").await;
    let drc = app.create_hypervisor("drc1", "drc").await;
    ok(&app, "PUT", &format!("/api/v1/hypervisors/{dc}"), json!({"ssh_port": 2222, "api_token_secret": "s3"})).await;
    ok(&app, "POST", &format!("/api/v1/hypervisors/{dc}/check"), json!({})).await;
    ok(&app, "POST", &format!("/api/v1/hypervisors/{dc}/check"), json!({"repin": true})).await;
    let spare = app.create_hypervisor("spare", "dc").await;
    ok(&app, "DELETE", &format!("/api/v1/hypervisors/{spare}"), json!(null)).await;
    let pair = app.create_pair(&dc, 100, &drc, 200).await;
    ok(&app, "PUT", &format!("/api/v1/pairs/{pair}"), json!({"keep_last": 5, "drill_vmid": 9100})).await;
    ok(&app, "POST", &format!("/api/v1/pairs/{pair}/adopt"), json!({})).await;
    let doomed = app.create_pair(&dc, 101, &drc, 201).await;
    ok(&app, "DELETE", &format!("/api/v1/pairs/{doomed}"), json!(null)).await;

    // Tasks by hand.
    let backup = app.queue(&pair, "backup").await;
    ok(&app, "POST", &format!("/api/v1/tasks/{backup}/cancel"), json!({})).await;
    app.queue(&pair, "restore").await;
    app.queue(&pair, "replicate").await;
    app.queue(&pair, "drill").await;
    let other = app.create_pair(&dc, 102, &drc, 202).await;
    app.queue(&other, "failover").await;
    let back = app.create_pair(&dc, 103, &drc, 203).await;
    app.set_pair_state(&back, "failed_over").await;
    app.queue(&back, "failback").await;

    // Schedules, plans.
    let sched = ok(&app, "POST", "/api/v1/schedules", json!({"pair_id": pair, "cron": "0 0 3 * * *"})).await;
    ok(&app, "PUT", &format!("/api/v1/schedules/{}", id(&sched)), json!({"enabled": false})).await;
    ok(&app, "DELETE", &format!("/api/v1/schedules/{}", id(&sched)), json!(null)).await;
    let planned = app.create_pair(&dc, 106, &drc, 206).await;
    ok(&app, "PUT", &format!("/api/v1/pairs/{planned}"), json!({"drill_vmid": 9106})).await;
    let plan = ok(&app, "POST", "/api/v1/plans", json!({"name": "all", "groups": [[planned]]})).await;
    ok(&app, "PUT", &format!("/api/v1/plans/{}", id(&plan)), json!({"delay_secs": 30})).await;
    let spare_plan = ok(&app, "POST", "/api/v1/plans", json!({"name": "spare", "groups": [[other]]})).await;
    ok(&app, "DELETE", &format!("/api/v1/plans/{}", id(&spare_plan)), json!(null)).await;
    ok(&app, "POST", &format!("/api/v1/plans/{}/drill", id(&plan)), json!({})).await;
    let fo_plan = ok(&app, "POST", "/api/v1/plans", json!({"name": "fo", "groups": [[other]]})).await;
    ok(&app, "POST", &format!("/api/v1/plans/{}/failover", id(&fo_plan)), json!({})).await;

    // Notification targets, alert settings.
    let url = format!("http://127.0.0.1:{}/hook", hook.port);
    let target =
        ok(&app, "POST", "/api/v1/notification-targets", json!({"name": "hook", "kind": "webhook", "url": url})).await;
    let t = id(&target);
    ok(&app, "PUT", &format!("/api/v1/notification-targets/{t}"), json!({"secret": "w1", "min_severity": "critical"}))
        .await;
    ok(&app, "POST", &format!("/api/v1/notification-targets/{t}/test"), json!({})).await;
    ok(&app, "DELETE", &format!("/api/v1/notification-targets/{t}"), json!(null)).await;
    ok(&app, "PUT", "/api/v1/alert-settings", json!({"cpu_pct": 95})).await;

    // Sessions, passwords.
    let (vic_c, admin2) = (client(), client());
    for (c, who, pw) in [(&vic_c, "vic", "vic-password-1"), (&admin2, ADMIN, ADMIN_PW)] {
        let r = c.post(app.url("/api/v1/auth/login")).json(&json!({"username": who, "password": pw})).send().await;
        assert_eq!(r.unwrap().status(), 200);
    }
    let r = vic_c
        .post(app.url("/api/v1/session/password"))
        .json(&json!({"current_password": "vic-password-1", "password": "vic-password-2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(vic_c.post(app.url("/api/v1/session/logout-all")).send().await.unwrap().status(), 204);
    ok(&app, "POST", &format!("/api/v1/users/{vic_id}/logout-all"), json!({})).await;
    assert_eq!(admin2.post(app.url("/api/v1/auth/logout")).send().await.unwrap().status(), 204);

    // Through a page: the same service, the same log.
    let page = page_client(&app, ADMIN, ADMIN_PW).await;
    let html = page.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    let r = page
        .post(app.url("/account/tokens"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("name", "from the page"), ("scope", "write")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    // By drswitch itself: a schedule firing, the monitor failing a pair over.
    let timed = app.create_pair(&dc, 104, &drc, 204).await;
    let every = ok(&app, "POST", "/api/v1/schedules", json!({"pair_id": timed, "cron": "* * * * * *"})).await;
    let by_schedule = format!("schedule {}", id(&every));
    let lost = app.create_hypervisor("dc-lost", "dc").await;
    ok(&app, "PUT", &format!("/api/v1/hypervisors/{lost}"), json!({"ssh_port": 1})).await;
    app.set_host_key(&lost, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForATestThatNeverAnswers").await;
    let auto = app.create_pair(&lost, 105, &drc, 205).await;
    ok(&app, "PUT", &format!("/api/v1/pairs/{auto}"), json!({"auto_failover": true})).await;
    let scheduled = wait_for(&app, "task.backup", &by_schedule).await;
    assert!(scheduled["source_ip"].is_null(), "nobody's address: {scheduled}");
    let failover = wait_for(&app, "task.failover", "monitor").await;
    assert!(failover["detail"].as_str().unwrap().contains("dc-lost down"), "{failover}");

    // (action, actor, subject type, a piece of the detail)
    let table: &[(&str, &str, &str, &str)] = &[
        ("session.login_failed", "anonymous", "user", "username \"admin\""),
        ("session.login_failed", "anonymous", "user", "username \"nobody\""),
        ("session.login", ADMIN, "user", ""),
        ("session.login", "vic", "user", ""),
        ("session.logout", ADMIN, "user", ""),
        ("session.logout_all", "vic", "user", ""),
        ("user.create", ADMIN, "user", "username \"vic\", role viewer"),
        ("user.create", "bootstrap", "user", "username \"admin\""),
        ("user.update", ADMIN, "user", "changed: role"),
        ("user.delete", ADMIN, "user", "username \"gone\""),
        ("user.password_change", "vic", "user", ""),
        ("user.logout_all", ADMIN, "user", "username \"vic\""),
        ("token.create", ADMIN, "token", "scope read"),
        ("token.create", ADMIN, "token", "name \"from the page\""),
        ("token.revoke", ADMIN, "token", ""),
        ("hypervisor.create", ADMIN, "hypervisor", "name \"dc1\""),
        ("hypervisor.update", ADMIN, "hypervisor", "changed: ssh_port, api_token_secret"),
        ("hypervisor.check", ADMIN, "hypervisor", "a check failed"),
        ("hypervisor.repin", ADMIN, "hypervisor", "name \"dc1\""),
        ("hypervisor.delete", ADMIN, "hypervisor", "name \"spare\""),
        ("pair.create", ADMIN, "pair", "name \"VM 100 to VM 200\""),
        ("pair.update", ADMIN, "pair", "changed: drill_vmid, keep_last"),
        ("pair.adopt", ADMIN, "pair", "VM 200"),
        ("pair.delete", ADMIN, "pair", "VM 101"),
        ("task.backup", ADMIN, "task", "requested by admin"),
        ("task.cancel", ADMIN, "task", "backup of pair"),
        ("task.restore", ADMIN, "task", ""),
        ("task.replicate", ADMIN, "task", ""),
        ("task.drill", ADMIN, "task", ""),
        ("task.drill", ADMIN, "task", "requested by admin (plan all)"),
        ("task.failover", ADMIN, "task", "VM 102"),
        ("task.failback", ADMIN, "task", "VM 103"),
        ("task.backup", &by_schedule, "task", "VM 104"),
        ("task.failover", "monitor", "task", "VM 105"),
        ("schedule.create", ADMIN, "schedule", "backup of pair"),
        ("schedule.update", ADMIN, "schedule", "changed: enabled"),
        ("schedule.delete", ADMIN, "schedule", ""),
        ("plan.create", ADMIN, "plan", "name \"all\""),
        ("plan.update", ADMIN, "plan", "changed: delay_secs"),
        ("plan.delete", ADMIN, "plan", "name \"spare\""),
        ("plan.drill", ADMIN, "plan", "name \"all\""),
        ("plan.failover", ADMIN, "plan", "name \"fo\""),
        ("target.create", ADMIN, "target", "kind webhook"),
        ("target.update", ADMIN, "target", "changed: has_secret, min_severity, secret"),
        ("target.test", ADMIN, "target", "delivered"),
        ("target.delete", ADMIN, "target", "name \"hook\""),
        ("alert_settings.update", ADMIN, "alert_settings", "changed: cpu_pct"),
    ];
    let all = entries(&app).await;
    for (action, actor, subject, detail) in table {
        let hit = all.iter().find(|e| {
            e["action"] == *action
                && e["actor"] == *actor
                && e["subject_type"] == *subject
                && e["detail"].as_str().unwrap().contains(detail)
        });
        let Some(e) = hit else { panic!("no {action} by {actor} on a {subject} with {detail:?}: {all:#?}") };
        assert!(e["at"].as_str().unwrap().ends_with('Z'), "{e}");
        let system = ["bootstrap", "monitor"].contains(actor) || actor.starts_with("schedule ");
        if system {
            assert!(e["source_ip"].is_null(), "{e}");
        } else {
            assert_eq!(e["source_ip"], "127.0.0.1", "{e}");
        }
        if *subject != "alert_settings" && !(*action == "session.login_failed" && detail.contains("nobody")) {
            assert!(e["subject_id"].is_string(), "{e}");
        }
    }

    // Newest first, filters.
    let seqs: Vec<i64> = all.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");
    let (_, pairs) = app.get("/api/v1/audit?action=pair&limit=500").await;
    assert!(pairs["items"].as_array().unwrap().iter().all(|e| e["action"].as_str().unwrap().starts_with("pair.")));
    let pair_actions = all.iter().filter(|e| e["action"].as_str().unwrap().starts_with("pair.")).count();
    assert_eq!(pairs["total"], pair_actions, "{pairs}");
    assert!(pair_actions >= 4, "{pairs}");
    let (_, one) = app.get("/api/v1/audit?action=pair.adopt").await;
    assert_eq!(one["total"], 1, "{one}");
    let (_, vic_only) = app.get("/api/v1/audit?actor=vic&limit=500").await;
    assert!(vic_only["items"].as_array().unwrap().iter().all(|e| e["actor"] == "vic"), "{vic_only}");
    assert_eq!(vic_only["total"], 3, "login, password change, logout everywhere: {vic_only}");
    let (_, paged) = app.get("/api/v1/audit?limit=2&offset=1").await;
    assert_eq!(paged["items"].as_array().unwrap().len(), 2);
    assert_eq!(paged["items"][0]["seq"], all[1]["seq"]);
    for bad in ["limit=0", "limit=501", "offset=-1", "action=pair.%25", "action=a%20b", "since=x"] {
        let (s, v) = app.get(&format!("/api/v1/audit?{bad}")).await;
        assert_eq!(s, 422, "{bad}: {v}");
    }
}

#[tokio::test]
async fn only_admins_read_the_audit_log() {
    let app = TestApp::spawn().await;
    let (s, _) = app.get("/api/v1/audit").await;
    assert_eq!(s, 401);
    app.login_admin().await;
    let operator = app.user_client("otto", "operator").await;
    let r = operator.get(app.url("/api/v1/audit")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let (_, v) = common::decode(r).await;
    assert_eq!(v["error"]["code"], "forbidden");
    let (s, _) = app.get("/api/v1/audit").await;
    assert_eq!(s, 200);

    // The page and its link, for admins only.
    let admin = page_client(&app, ADMIN, ADMIN_PW).await;
    let html = admin.get(app.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("href=\"/audit\""), "admins get the link");
    let html = admin.get(app.url("/audit?action=user")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("user.create") && html.contains("otto"), "{html}");
    assert!(!html.contains("session.login<"), "the filter applies");
    let viewer_page = page_client(&app, "otto", "user-password-1").await;
    let html = viewer_page.get(app.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(!html.contains("href=\"/audit\""), "others do not");
    assert_eq!(viewer_page.get(app.url("/audit")).send().await.unwrap().status(), 403);
}

#[tokio::test]
async fn no_secret_reaches_the_audit_log() {
    let app = TestApp::spawn_with(&[("WORKER_ENABLED", "false")]).await;
    app.login_admin().await;
    let user_pw = "Pw-of-the-user-1";
    let new_pw = "Pw-changed-later-2";
    let wrong_pw = "Pw-wrong-guess-3";
    let reset_pw = "Pw-admin-reset-4";
    let api_secret = "Hv-api-token-secret-5";
    let api_secret2 = "Hv-api-token-secret-6";
    let hook_secret = "Webhook-hmac-key-7";
    let hook_secret2 = "Webhook-hmac-key-8";
    let smtp_pw = "Smtp-password-9";
    let (s, u) = app.post("/api/v1/users", json!({"username": "sam", "password": user_pw, "role": "admin"})).await;
    assert_eq!(s, 201);
    assert_eq!(app.login("sam", wrong_pw).await, 401);
    // A password typed into the username field is not recorded either.
    assert_eq!(app.login(&format!("{wrong_pw} x"), wrong_pw).await, 401);
    let sam = client();
    let r = sam.post(app.url("/api/v1/auth/login")).json(&json!({"username": "sam", "password": user_pw})).send().await;
    assert_eq!(r.unwrap().status(), 200);
    let r = sam
        .post(app.url("/api/v1/session/password"))
        .json(&json!({"current_password": user_pw, "password": new_pw}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (s, _) = app.put(&format!("/api/v1/users/{}", id(&u)), json!({"password": reset_pw})).await;
    assert_eq!(s, 200);

    let (s, t) = app.post("/api/v1/tokens", json!({"name": "script"})).await;
    assert_eq!(s, 201);
    let bearer = t["token"].as_str().unwrap().to_string();
    let tokened = client();
    let hv = json!({"name": "dc1", "host": "127.0.0.1", "node": "dc1", "role": "dc",
                    "api_token_id": "root@pam!drswitch", "api_token_secret": api_secret});
    let r = tokened.post(app.url("/api/v1/hypervisors")).bearer_auth(&bearer).json(&hv).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let hv_id = id(&r.json::<Value>().await.unwrap());
    let r = tokened
        .put(app.url(&format!("/api/v1/hypervisors/{hv_id}")))
        .bearer_auth(&bearer)
        .json(&json!({"api_token_secret": api_secret2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, w) = app
        .post(
            "/api/v1/notification-targets",
            json!({"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/h", "secret": hook_secret}),
        )
        .await;
    assert_eq!(s, 201, "{w}");
    let (s, _) = app.put(&format!("/api/v1/notification-targets/{}", id(&w)), json!({"secret": hook_secret2})).await;
    assert_eq!(s, 200);
    let (s, m) = app
        .post(
            "/api/v1/notification-targets",
            json!({"name": "mail", "kind": "smtp", "smtp_host": "127.0.0.1", "smtp_username": "ops",
                   "smtp_password": smtp_pw, "mail_from": "dr@example.com", "mail_to": ["ops@example.com"]}),
        )
        .await;
    assert_eq!(s, 201, "{m}");

    // What is stored for the secrets must not show up either.
    let stored_secret = app.stored_column("hypervisors", "api_token_secret_enc", &hv_id).await.unwrap();
    let token_hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(bearer.as_bytes()))
    };
    let secrets = [
        user_pw,
        new_pw,
        wrong_pw,
        reset_pw,
        api_secret,
        api_secret2,
        hook_secret,
        hook_secret2,
        smtp_pw,
        bearer.as_str(),
        token_hash.as_str(),
        stored_secret.as_str(),
        "$argon2",
    ];

    let (s, audit) = app.get("/api/v1/audit?limit=500").await;
    assert_eq!(s, 200);
    let json_text = audit.to_string();
    assert!(audit["total"].as_i64().unwrap() >= 12, "the actions were recorded: {audit:#}");
    let page = page_client(&app, ADMIN, ADMIN_PW).await;
    let mut html = page.get(app.url("/audit")).send().await.unwrap().text().await.unwrap();
    html.push_str(&page.get(app.url("/audit?action=hypervisor")).send().await.unwrap().text().await.unwrap());
    assert!(html.contains("hypervisor.update"), "{html}");
    for secret in secrets {
        assert!(!json_text.contains(secret), "{secret:?} is in the audit API's answer: {json_text}");
        assert!(!html.contains(secret), "{secret:?} is on the audit page");
    }
}

#[tokio::test]
async fn the_log_keeps_at_most_its_bound() {
    let app = TestApp::spawn_with(&[("AUDIT_MAX_ENTRIES", "10")]).await;
    app.login_admin().await;
    let mut last = String::new();
    for i in 0..15 {
        let (s, t) = app.post("/api/v1/tokens", json!({"name": format!("t{i}")})).await;
        assert_eq!(s, 201);
        last = id(&t);
    }
    let (_, page) = app.get("/api/v1/audit?limit=500").await;
    assert_eq!(page["total"], 10, "{page:#}");
    assert_eq!(page["items"][0]["subject_id"], last.as_str(), "the newest stay");
    assert_eq!(page["items"][0]["detail"], "name \"t14\", scope write");
    assert_eq!(page["items"][9]["detail"], "name \"t5\", scope write", "the oldest went");
}
