//! Read-only API tokens: refused on every route that changes something,
//! welcome on every route that reads. The routes come from the OpenAPI
//! document the app serves, so a new write route is covered the day it
//! is added.

#![allow(clippy::unwrap_used)]

mod common;

use common::TestApp;
use serde_json::{json, Value};

/// One of each resource, and a read-only token of the admin's.
struct World {
    app: TestApp,
    ids: Vec<(&'static str, String)>,
    read_token: String,
}

async fn world() -> World {
    // Nothing runs by itself: what the API shows changes only by requests.
    let app = TestApp::spawn_with(&[
        ("WORKER_ENABLED", "false"),
        ("SCHEDULER_ENABLED", "false"),
        ("MONITOR_ENABLED", "false"),
    ])
    .await;
    app.login_admin().await;
    let dc = app.create_hypervisor("dc1", "dc").await;
    let drc = app.create_hypervisor("drc1", "drc").await;
    let pair = app.create_pair(&dc, 100, &drc, 200).await;
    let task = app.queue(&pair, "backup").await;
    let (s, schedule) = app.post("/api/v1/schedules", json!({"pair_id": pair, "hour": 2, "minute": 30})).await;
    assert_eq!(s, 201, "{schedule}");
    let (s, plan) = app.post("/api/v1/plans", json!({"name": "all", "groups": [[pair]]})).await;
    assert_eq!(s, 201, "{plan}");
    let (s, target) = app
        .post("/api/v1/notification-targets", json!({"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/x"}))
        .await;
    assert_eq!(s, 201, "{target}");
    let (s, user) =
        app.post("/api/v1/users", json!({"username": "olga", "password": "user-password-1", "role": "operator"})).await;
    assert_eq!(s, 201, "{user}");
    let (s, token) = app.post("/api/v1/tokens", json!({"name": "dashboard", "scope": "read"})).await;
    assert_eq!(s, 201, "{token}");
    assert_eq!(token["scope"], "read");
    let id = |v: &Value| v["id"].as_str().unwrap().to_string();
    let ids = vec![
        ("users", id(&user)),
        ("tokens", id(&token)),
        ("hypervisors", dc.clone()),
        ("pairs", pair.clone()),
        ("tasks", task.clone()),
        ("plans", id(&plan)),
        ("schedules", id(&schedule)),
        ("notification-targets", id(&target)),
    ];
    World { app, ids, read_token: token["token"].as_str().unwrap().to_string() }
}

/// Every (method, path) the OpenAPI document lists, with `{id}` replaced by
/// the id of a real resource of that kind.
async fn routes(w: &World) -> Vec<(String, String)> {
    let (s, doc) = w.app.get("/api/v1/openapi.json").await;
    assert_eq!(s, 200);
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = if path.contains('{') {
            let kind = path.trim_start_matches("/api/v1/").split('/').next().unwrap();
            let id =
                w.ids.iter().find(|(k, _)| *k == kind).unwrap_or_else(|| {
                    panic!("{path}: no {kind} in this test's world; add one so the route is checked")
                });
            path.replace("{id}", &id.1)
        } else {
            path.clone()
        };
        assert!(!concrete.contains('{'), "{concrete}: a path parameter this test does not know");
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                out.push((method.to_uppercase(), concrete.clone()));
            }
        }
    }
    assert!(out.len() > 40, "the document was read: {out:?}");
    out
}

/// What the admin sees of everything, without what reading itself moves
/// (a token's last use).
async fn snapshot(app: &TestApp) -> Value {
    let mut all = serde_json::Map::new();
    for path in [
        "users",
        "tokens",
        "hypervisors",
        "pairs",
        "tasks",
        "plans",
        "schedules",
        "notification-targets",
        "alert-settings",
        "alerts",
        "events",
    ] {
        let (s, mut v) = app.get(&format!("/api/v1/{path}")).await;
        assert_eq!(s, 200, "{path}: {v}");
        strip(&mut v, &["last_used_at", "rpo_seconds"]);
        all.insert(path.to_string(), v);
    }
    Value::Object(all)
}

fn strip(v: &mut Value, keys: &[&str]) {
    match v {
        Value::Object(m) => {
            for k in keys {
                m.remove(*k);
            }
            m.values_mut().for_each(|x| strip(x, keys));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| strip(x, keys)),
        _ => {}
    }
}

#[tokio::test]
async fn a_read_only_token_is_refused_on_every_write_route_and_changes_nothing() {
    let w = world().await;
    let before = snapshot(&w.app).await;
    let bare = common::client();
    let writes: Vec<_> = routes(&w).await.into_iter().filter(|(m, _)| m != "GET").collect();
    assert!(writes.len() > 30, "{writes:?}");
    for (method, path) in &writes {
        // A plausible body, an empty one and a broken one: the scope is
        // checked before the body is.
        for body in ["{}", "", "{\"name\": "] {
            let mut r = bare
                .request(method.parse().unwrap(), w.app.url(path))
                .bearer_auth(&w.read_token)
                .header("content-type", "application/json");
            if !body.is_empty() {
                r = r.body(body);
            }
            let (s, v) = common::decode(r.send().await.unwrap()).await;
            assert_eq!(s, 403, "{method} {path} with {body:?}: {v}");
            assert_eq!(v["error"]["code"], "read_only_token", "{method} {path}: {v}");
        }
    }
    assert_eq!(snapshot(&w.app).await, before, "a refused request changed something");

    // The same token still reads.
    let (_, list) = w.app.get("/api/v1/tokens").await;
    assert_eq!(list[0]["scope"], "read", "the list shows the scope: {list}");
    let me = bare.get(w.app.url("/api/v1/auth/me")).bearer_auth(&w.read_token).send().await.unwrap();
    assert_eq!(me.status(), 200);
}

#[tokio::test]
async fn a_read_only_token_reads_every_get_route() {
    let w = world().await;
    let bare = common::client();
    let reads: Vec<_> = routes(&w).await.into_iter().filter(|(m, _)| m == "GET").collect();
    assert!(reads.len() > 20, "{reads:?}");
    for (_, path) in &reads {
        let r = bare.get(w.app.url(path)).bearer_auth(&w.read_token).send().await.unwrap();
        let status = r.status().as_u16();
        // The registered hosts are not real: asking one for its VMs fails upstream.
        let ok = status == 200 || (path.ends_with("/vms") && status == 502);
        assert!(ok, "GET {path}: {status} {}", r.text().await.unwrap());
    }
    let r = bare.get(w.app.url("/metrics")).bearer_auth(&w.read_token).send().await.unwrap();
    assert_eq!(r.status(), 200, "metrics are read with a read token too");
}

#[tokio::test]
async fn write_tokens_are_the_default_and_may_write() {
    let app = TestApp::spawn_with(&[("WORKER_ENABLED", "false")]).await;
    app.login_admin().await;
    let (s, t) = app.post("/api/v1/tokens", json!({"name": "cron"})).await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["scope"], "write", "write is the default: {t}");
    let token = t["token"].as_str().unwrap();
    let bare = common::client();
    let r = bare
        .post(app.url("/api/v1/hypervisors"))
        .bearer_auth(token)
        .json(&json!({"name": "dc1", "host": "127.0.0.1", "node": "dc1", "role": "dc"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (s, v) = app.post("/api/v1/tokens", json!({"name": "x", "scope": "admin"})).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["message"].as_str().unwrap().split(':').next(), Some("scope"), "{v}");
}
