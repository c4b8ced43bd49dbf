//! CRUD round trips of hypervisors, pairs, schedules and tasks.

#![allow(clippy::unwrap_used)]

mod common;

use common::TestApp;
use serde_json::json;

/// How every encrypted secret starts (the format version of src/secrets.rs).
const ENCRYPTED_PREFIX: &str = "v1:";

#[tokio::test]
async fn hypervisor_round_trip_never_echoes_the_secret() {
    let app = TestApp::spawn().await;
    app.login_admin().await;
    let secret = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
    let r = app
        .client
        .post(app.url("/api/v1/hypervisors"))
        .json(&json!({"name": "dc1", "host": "127.0.0.1", "node": "pve-dc1", "role": "dc", "ssh_port": 2222,
                      "api_token_id": "root@pam!drswitch", "api_token_secret": secret,
                      "tls_fingerprint": vec!["3A"; 32].join(":")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let raw = r.text().await.unwrap();
    assert!(!raw.contains(secret), "{raw}");
    let created: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(created["has_api_token_secret"], true);
    assert_eq!(created["ssh_user"], "root");
    assert_eq!(created["dump_dir"], "/var/lib/vz/dump");
    assert_eq!(created["restore_storage"], "local-lvm");
    assert_eq!(created["api_port"], 8006);
    let id = created["id"].as_str().unwrap();

    // Stored encrypted, never in plain text.
    let stored = app.stored_column("hypervisors", "api_token_secret_enc", id).await;
    let stored = stored.expect("the secret is stored");
    assert!(!stored.contains(secret), "stored in plain text: {stored}");
    assert!(stored.len() > ENCRYPTED_PREFIX.len(), "stored empty: {stored:?}");
    assert!(stored.starts_with(ENCRYPTED_PREFIX), "not in the encrypted format: {stored}");

    for path in ["/api/v1/hypervisors".to_string(), format!("/api/v1/hypervisors/{id}")] {
        let raw = app.client.get(app.url(&path)).send().await.unwrap().text().await.unwrap();
        assert!(!raw.contains(secret), "{raw}");
    }

    let (s, upd) =
        app.put(&format!("/api/v1/hypervisors/{id}"), json!({"name": "dc1-renamed", "enabled": false})).await;
    assert_eq!(s, 200, "{upd}");
    assert_eq!(upd["name"], "dc1-renamed");
    assert_eq!(upd["enabled"], false);
    assert_eq!(upd["has_api_token_secret"], true, "secret kept when not sent");
    assert_eq!(upd["ssh_port"], 2222);
    let kept = app.stored_column("hypervisors", "api_token_secret_enc", id).await;
    assert_eq!(kept.as_deref(), Some(stored.as_str()), "an update that does not send the secret keeps it as stored");

    let (s, upd) = app.put(&format!("/api/v1/hypervisors/{id}"), json!({"api_token_secret": null})).await;
    assert_eq!(s, 200);
    assert_eq!(upd["has_api_token_secret"], false);
    assert_eq!(app.stored_column("hypervisors", "api_token_secret_enc", id).await, None, "cleared secret is gone");

    let (s, _) = app.delete(&format!("/api/v1/hypervisors/{id}")).await;
    assert_eq!(s, 204);
    let (s, _) = app.get(&format!("/api/v1/hypervisors/{id}")).await;
    assert_eq!(s, 404);

    let log = app.log();
    assert!(!log.contains(secret), "the secret reached the log");
}

#[tokio::test]
async fn pair_round_trip_and_tasks() {
    // No worker: the queued task must stay queued for this test to see it.
    let app = TestApp::spawn_with(&[("WORKER_ENABLED", "false")]).await;
    app.login_admin().await;
    let dc = app.create_hypervisor("dc1", "dc").await;
    let drc = app.create_hypervisor("drc1", "drc").await;
    let (s, pair) = app
        .post(
            "/api/v1/pairs",
            json!({"src_hypervisor_id": dc, "src_vmid": 112, "dst_hypervisor_id": drc, "dst_vmid": 111}),
        )
        .await;
    assert_eq!(s, 201, "{pair}");
    assert_eq!(pair["guest"], "qemu");
    assert_eq!(pair["compress"], "zstd");
    assert_eq!(pair["mode"], "snapshot");
    assert_eq!(pair["keep_last"], 3);
    assert_eq!(pair["start_after_restore"], true);
    assert!(pair["rpo_seconds"].is_null());
    let id = pair["id"].as_str().unwrap().to_string();

    let (s, upd) = app.put(&format!("/api/v1/pairs/{id}"), json!({"compress": "lzo", "keep_last": 5})).await;
    assert_eq!(s, 200, "{upd}");
    assert_eq!(upd["compress"], "lzo");
    assert_eq!(upd["keep_last"], 5);
    assert_eq!(upd["src_vmid"], 112);

    let (s, list) = app.get("/api/v1/pairs").await;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);

    // The hypervisor of a pair cannot be deleted under it.
    let (s, _) = app.delete(&format!("/api/v1/hypervisors/{dc}")).await;
    assert_eq!(s, 409);

    let (s, task) = app.post(&format!("/api/v1/pairs/{id}/backup"), json!({})).await;
    assert_eq!(s, 202, "{task}");
    assert_eq!(task["status"], "queued");
    assert_eq!(task["kind"], "backup");
    let task_id = task["id"].as_str().unwrap().to_string();

    let (s, page) = app.get(&format!("/api/v1/tasks?status=queued&pair_id={id}")).await;
    assert_eq!(s, 200);
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["id"], task_id.as_str());
    let (_, none) = app.get("/api/v1/tasks?status=running").await;
    assert_eq!(none["total"], 0);
    let (s, bad) = app.get("/api/v1/tasks?status=sleeping").await;
    assert_eq!(s, 422);
    assert!(common::message(&bad).starts_with("status"));

    let (s, one) = app.get(&format!("/api/v1/tasks/{task_id}")).await;
    assert_eq!(s, 200);
    assert!(one["log"][0]["line"].as_str().unwrap().contains("queued by admin"));

    let (s, cancelled) = app.post(&format!("/api/v1/tasks/{task_id}/cancel"), json!({})).await;
    assert_eq!(s, 202);
    assert_eq!(cancelled["status"], "cancelled");
    let (s, _) = app.post(&format!("/api/v1/tasks/{task_id}/cancel"), json!({})).await;
    assert_eq!(s, 409, "a finished task cannot be cancelled again");

    // Restore of an archive that is not this pair's is refused.
    let (s, body) = app.post(&format!("/api/v1/pairs/{id}/restore"), json!({"archive_id": uuid::Uuid::new_v4()})).await;
    assert_eq!(s, 409, "{body}");
    let (s, arch) = app.get(&format!("/api/v1/pairs/{id}/archives")).await;
    assert_eq!(s, 200);
    assert_eq!(arch, json!([]));

    let (s, _) = app.delete(&format!("/api/v1/pairs/{id}")).await;
    assert_eq!(s, 204);
    let (s, _) = app.get(&format!("/api/v1/pairs/{id}")).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn schedule_round_trip() {
    let app = TestApp::spawn_with(&[("TZ", "Europe/Berlin")]).await;
    app.login_admin().await;
    let dc = app.create_hypervisor("dc1", "dc").await;
    let drc = app.create_hypervisor("drc1", "drc").await;
    let pair = app.create_pair(&dc, 100, &drc, 100).await;

    let (s, sched) = app.post("/api/v1/schedules", json!({"pair_id": pair, "hour": 2, "minute": 30})).await;
    assert_eq!(s, 201, "{sched}");
    assert_eq!(sched["cron"], "30 2 * * *");
    assert_eq!(sched["timezone"], "Europe/Berlin");
    assert_eq!(sched["kind"], "backup");
    let next = sched["next_run"].as_str().unwrap();
    assert!(next.ends_with(":30:00Z"), "{next}");
    let id = sched["id"].as_str().unwrap().to_string();

    let (s, upd) = app
        .put(
            &format!("/api/v1/schedules/{id}"),
            json!({"cron": "*/15 * * * 1-5", "kind": "replicate", "timezone": "UTC"}),
        )
        .await;
    assert_eq!(s, 200, "{upd}");
    assert_eq!(upd["cron"], "*/15 * * * 1-5");
    assert!(upd["hour"].is_null());
    assert_eq!(upd["kind"], "replicate");

    let (s, upd) = app.put(&format!("/api/v1/schedules/{id}"), json!({"enabled": false})).await;
    assert_eq!(s, 200);
    assert!(upd["next_run"].is_null(), "a disabled schedule has no next run");

    let (s, list) = app.get("/api/v1/schedules").await;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (s, _) = app.delete(&format!("/api/v1/schedules/{id}")).await;
    assert_eq!(s, 204);
    let (s, _) = app.get(&format!("/api/v1/schedules/{id}")).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn health_and_openapi() {
    let app = TestApp::spawn().await;
    let (s, h) = app.get("/api/v1/health").await;
    assert_eq!(s, 200);
    assert_eq!(h["status"], "ok");
    assert_eq!(h["database"], app.backend);
    assert!(h["version"].is_string());
    let (s, doc) = app.get("/api/v1/openapi.json").await;
    assert_eq!(s, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for p in ["/api/v1/pairs/{id}/backup", "/api/v1/hypervisors", "/api/v1/schedules/{id}", "/api/v1/tokens"] {
        assert!(doc["paths"].get(p).is_some(), "missing {p}");
    }
}
