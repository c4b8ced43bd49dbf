//! Bad input gets a clear 4xx naming the field, and nothing is stored.

#![allow(clippy::unwrap_used)]

mod common;

use common::{message, TestApp};
use serde_json::{json, Value};

async fn count(app: &TestApp, path: &str) -> usize {
    let (_, v) = app.get(path).await;
    v.as_array().map(Vec::len).unwrap_or(0)
}

fn assert_names(status: u16, body: &Value, expected_status: u16, field: &str) {
    assert_eq!(status, expected_status, "{body}");
    let msg = message(body);
    assert!(msg.starts_with(&format!("{field}:")), "message {msg:?} should name {field}");
    assert!(body["error"]["code"].as_str().is_some());
}

#[tokio::test]
async fn bad_fields_are_refused_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    app.login_admin().await;
    let dc = app.create_hypervisor("dc1", "dc").await;
    let drc = app.create_hypervisor("drc1", "drc").await;
    let pair = |src_vmid: Value, dst_vmid: Value| json!({"src_hypervisor_id": dc, "src_vmid": src_vmid, "dst_hypervisor_id": drc, "dst_vmid": dst_vmid});

    for (vmid, why) in
        [(json!(99), "too small"), (json!(1_000_000_000u64), "too big"), (json!("100; rm -rf /"), "a string")]
    {
        let (s, body) = app.post("/api/v1/pairs", pair(vmid.clone(), json!(200))).await;
        assert_names(s, &body, 422, "src_vmid");
        assert!(!body.to_string().contains("Internal"), "{why}");
    }
    let (s, body) = app.post("/api/v1/pairs", pair(json!(100), json!(-1))).await;
    assert_names(s, &body, 422, "dst_vmid");
    assert_eq!(count(&app, "/api/v1/pairs").await, 0);

    // Source must be a DC host, target a DRC host: well-formed ids that do
    // not fit what is stored clash with it (409), naming the field.
    let (s, body) = app
        .post(
            "/api/v1/pairs",
            json!({"src_hypervisor_id": drc, "src_vmid": 100, "dst_hypervisor_id": drc, "dst_vmid": 101}),
        )
        .await;
    assert_names(s, &body, 409, "src_hypervisor_id");
    let (s, body) = app
        .post(
            "/api/v1/pairs",
            json!({"src_hypervisor_id": dc, "src_vmid": 100, "dst_hypervisor_id": dc, "dst_vmid": 101}),
        )
        .await;
    assert_names(s, &body, 409, "dst_hypervisor_id");
    assert_eq!(count(&app, "/api/v1/pairs").await, 0);

    // Duplicate target VMID on one DRC host.
    let (s, _) = app.post("/api/v1/pairs", pair(json!(100), json!(300))).await;
    assert_eq!(s, 201);
    let (s, body) = app.post("/api/v1/pairs", pair(json!(101), json!(300))).await;
    assert_names(s, &body, 409, "dst_vmid");
    assert_eq!(count(&app, "/api/v1/pairs").await, 1);

    for (host, _) in [("a b", 0), ("$(reboot)", 1), ("-oProxyCommand=touch /tmp/x", 2)] {
        let (s, body) =
            app.post("/api/v1/hypervisors", json!({"name": "x", "host": host, "node": "x", "role": "dc"})).await;
        assert_names(s, &body, 422, "host");
    }
    let (s, body) = app
        .post(
            "/api/v1/hypervisors",
            json!({"name": "x", "host": "h", "node": "x", "role": "dc", "dump_dir": "/tmp/$(id)"}),
        )
        .await;
    assert_names(s, &body, 422, "dump_dir");
    // Every field that ever reaches a remote command refuses shell syntax.
    let marker = "/tmp/drswitch-injected";
    for (field, value) in [
        ("ssh_user", format!("root;touch {marker}")),
        ("node", format!("n1 && touch {marker}")),
        ("restore_storage", format!("local-lvm`touch {marker}`")),
        ("dump_dir", format!("/var/lib/vz/dump;touch {marker}")),
        ("api_token_id", "root@pam!x y".to_string()),
        ("tls_fingerprint", "AA:BB".to_string()),
    ] {
        let mut body = json!({"name": "x", "host": "127.0.0.1", "node": "x", "role": "dc"});
        body[field] = json!(value);
        let (s, resp) = app.post("/api/v1/hypervisors", body).await;
        assert_names(s, &resp, 422, field);
    }
    assert!(!std::path::Path::new(marker).exists());
    let (s, body) =
        app.post("/api/v1/hypervisors", json!({"name": "x", "host": "h", "node": "x", "role": "primary"})).await;
    assert_names(s, &body, 422, "role");
    let (s, body) = app
        .post("/api/v1/hypervisors", json!({"name": "x", "host": "h", "node": "x", "role": "dc", "ssh_port": 70000}))
        .await;
    assert_names(s, &body, 422, "ssh_port");
    let (s, body) = app.post("/api/v1/hypervisors", json!({"host": "h", "node": "x", "role": "dc"})).await;
    assert_names(s, &body, 422, "name");
    let (s, body) = app
        .post("/api/v1/hypervisors", json!({"name": "x", "host": "h", "node": "x", "role": "dc", "colour": "red"}))
        .await;
    assert_names(s, &body, 422, "colour");
    assert_eq!(count(&app, "/api/v1/hypervisors").await, 2);

    let pair_id = {
        let (_, v) = app.get("/api/v1/pairs").await;
        v[0]["id"].as_str().unwrap().to_string()
    };
    let (s, body) = app.post("/api/v1/schedules", json!({"pair_id": pair_id, "cron": "61 * * * *"})).await;
    assert_names(s, &body, 422, "cron");
    let (s, body) = app.post("/api/v1/schedules", json!({"pair_id": pair_id, "hour": 24, "minute": 0})).await;
    assert_names(s, &body, 422, "hour");
    let (s, body) = app
        .post("/api/v1/schedules", json!({"pair_id": pair_id, "hour": 2, "minute": 0, "timezone": "Mars/Olympus"}))
        .await;
    assert_names(s, &body, 422, "timezone");
    assert_eq!(count(&app, "/api/v1/schedules").await, 0);
}

#[tokio::test]
async fn sql_looking_names_are_stored_verbatim() {
    let app = TestApp::spawn().await;
    app.login_admin().await;
    let name = "' OR 1=1 --";
    let (s, h) =
        app.post("/api/v1/hypervisors", json!({"name": name, "host": "127.0.0.1", "node": "n1", "role": "dc"})).await;
    assert_eq!(s, 201, "{h}");
    assert_eq!(h["name"], name);
    let (_, list) = app.get("/api/v1/hypervisors").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], name);
    let (s, u) = app.post("/api/v1/users", json!({"username": "bob", "full_name": "Robert'); DROP TABLE users;--", "password": "password-123", "role": "viewer"})).await;
    assert_eq!(s, 201);
    assert_eq!(u["full_name"], "Robert'); DROP TABLE users;--");
    let (_, users) = app.get("/api/v1/users").await;
    assert_eq!(users.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn malformed_oversized_and_unknown() {
    let app = TestApp::spawn().await;
    app.login_admin().await;
    let r = app
        .client
        .post(app.url("/api/v1/hypervisors"))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (_, body) = common::decode(r).await;
    assert_eq!(body["error"]["code"], "malformed_request");

    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(1024 * 1024));
    let r = app
        .client
        .post(app.url("/api/v1/hypervisors"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.headers().get("content-type").unwrap().to_str().unwrap().contains("json"));
    let (_, body) = common::decode(r).await;
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert_eq!(count(&app, "/api/v1/hypervisors").await, 0);

    let (s, body) = app.get("/api/v1/no-such-thing").await;
    assert_eq!(s, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let (s, body) = app.get("/api/v1/pairs/not-a-uuid").await;
    assert_eq!(s, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let (s, _) = app.get(&format!("/api/v1/pairs/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(s, 404);
}
