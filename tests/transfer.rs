//! Streaming transfer, transfers that go on after a cut, and per-host
//! transfer limits, through real sshd and rsync against the lab (some hosts
//! behind shaped links in their own network namespaces).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::lab::{sha256_of, Lab};
use common::{lab_setup, LabSetup, TestApp};
use serde_json::{json, Value};

async fn set_pair(app: &TestApp, pair: &str, body: Value) {
    let (s, v) = app.put(&format!("/api/v1/pairs/{pair}"), body).await;
    assert_eq!(s, 200, "{v}");
}

async fn set_limit(app: &TestApp, host: &str, kib: u64) {
    let (s, v) = app.put(&format!("/api/v1/hypervisors/{host}"), json!({ "bwlimit_kib": kib })).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["bwlimit_kib"], kib, "{v}");
}

/// Files in the pair's archive directory on the middleware.
fn stored_files(app: &TestApp, pair: &str) -> Vec<String> {
    let dir = app.data_dir().join("archives").join(pair);
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn log_text(t: &Value) -> String {
    t["log"]
        .as_array()
        .map(|l| l.iter().map(|x| x["line"].as_str().unwrap_or("").to_string() + "\n").collect())
        .unwrap_or_default()
}

/// Starts drswitch and a lab whose `shaped` hosts sit behind shaped links.
async fn shaped_setup(env: &[(&str, &str)], shaped: &[(&str, &str)]) -> LabSetup {
    let app = TestApp::spawn_with(env).await;
    app.login_admin().await;
    let lab = Lab::start_with(&["dc1", "drc1"], shaped, &app.pubkey());
    let dc = app.register(&lab, "dc1", "dc").await;
    let drc = app.register(&lab, "drc1", "drc").await;
    LabSetup { app, lab, dc, drc }
}

#[tokio::test]
async fn streaming_replicate_restores_byte_identical_and_rolls_back() {
    let LabSetup { app, lab, dc, drc } = lab_setup(&[]).await;
    lab.create_vm("dc1", 100, "24M");
    let original = lab.disk_sha("dc1", 100);
    let pair = app.create_pair(&dc, 100, &drc, 200).await;
    set_pair(&app, &pair, json!({"transfer": "streaming"})).await;

    let t = app.wait_for_task(&app.queue(&pair, "replicate").await).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let log = log_text(&t);
    assert!(log.contains("streaming vzdump-qemu-100-"), "{log}");
    assert!(log.contains("copied to drc1") && log.contains("and verified"), "{log}");
    assert!(!log.contains("creating vzdump archive"), "no archive file is written on the DC host: {log}");
    assert_eq!(lab.disk_sha("drc1", 200), original, "restored disk must be byte-identical");
    assert_eq!(lab.vm_status("drc1", 200), "running");
    assert!(lab.dump_dir_files("dc1").is_empty(), "DC dump dir: {:?}", lab.dump_dir_files("dc1"));
    assert!(lab.dump_dir_files("drc1").is_empty(), "DRC dump dir: {:?}", lab.dump_dir_files("drc1"));

    let (_, archives) = app.get(&format!("/api/v1/pairs/{pair}/archives")).await;
    assert_eq!(archives.as_array().unwrap().len(), 1, "{archives}");
    let a = &archives[0];
    assert!(!a["verified_at"].is_null(), "{a}");
    let name = a["file_name"].as_str().unwrap();
    assert!(name.ends_with(".vma.zst"), "{name}");
    let stored = app.data_dir().join("archives").join(&pair).join(name);
    assert_eq!(a["sha256"].as_str().unwrap(), sha256_of(&stored));
    assert_eq!(stored_files(&app, &pair), vec![name.to_string()], "no partial file is left");

    // A failed qmrestore after the old replica was wiped rolls back, as in
    // staged mode.
    let disk = lab.disk_path("dc1", 100);
    let mut bytes = std::fs::read(&disk).unwrap();
    bytes[..4096].fill(0xCD);
    std::fs::write(&disk, &bytes).unwrap();
    lab.hook("drc1", "qmrestore-fail", "simulated disk write error");
    let t = app.wait_for_task(&app.queue(&pair, "replicate").await).await;
    assert_eq!(t["status"], "failed", "{t}");
    assert!(t["error"].as_str().unwrap().contains("rolled back"), "{t}");
    assert_eq!(lab.disk_sha("drc1", 200), original, "the previous replica is back");
    assert_eq!(lab.vm_status("drc1", 200), "running");
    assert!(lab.dump_dir_files("drc1").is_empty(), "DRC dump dir: {:?}", lab.dump_dir_files("drc1"));
    assert!(stored_files(&app, &pair).iter().all(|f| !f.starts_with('.')), "{:?}", stored_files(&app, &pair));
}

#[tokio::test]
async fn cancelling_a_stream_leaves_nothing_partial_anywhere() {
    let LabSetup { app, lab, dc, drc } = lab_setup(&[]).await;
    lab.create_vm("dc1", 100, "32M");
    let pair = app.create_pair(&dc, 100, &drc, 200).await;
    set_pair(&app, &pair, json!({"transfer": "streaming", "compress": "none"})).await;
    // Slow enough to cancel mid-way.
    set_limit(&app, &dc, 1024).await;
    let id = app.queue(&pair, "replicate").await;
    let t = app
        .wait_until(&id, "streaming a third of the archive", |t| {
            t["phase"] == "streaming" && t["bytes_done"].as_i64().unwrap_or(0) > 4 << 20
        })
        .await;
    assert!(t["rate_bps"].as_i64().unwrap_or(0) > 0, "a running transfer shows its rate: {t}");
    // The middleware and the DRC host hold part of the archive now.
    assert!(stored_files(&app, &pair).iter().any(|f| f.starts_with(".partial-")), "{:?}", stored_files(&app, &pair));
    let (s, v) = app.post(&format!("/api/v1/tasks/{id}/cancel"), json!({})).await;
    assert!(s == 200 || s == 202, "{s} {v}");
    let t = app.wait_for_task(&id).await;
    assert_eq!(t["status"], "cancelled", "{t}");
    assert!(stored_files(&app, &pair).is_empty(), "middleware: {:?}", stored_files(&app, &pair));
    assert!(lab.dump_dir_files("dc1").is_empty(), "DC: {:?}", lab.dump_dir_files("dc1"));
    assert!(lab.dump_dir_files("drc1").is_empty(), "DRC: {:?}", lab.dump_dir_files("drc1"));
    assert_eq!(lab.vm_status("drc1", 200), "missing", "no replica was begun");
    let (_, archives) = app.get(&format!("/api/v1/pairs/{pair}/archives")).await;
    assert_eq!(archives, json!([]));
    // The node's backup lock is free again: the next dump runs.
    set_limit(&app, &dc, 0).await;
    let t = app.wait_for_task(&app.queue(&pair, "backup").await).await;
    assert_eq!(t["status"], "succeeded", "{t}");
}

/// Bytes that left `host` over its shaped link.
fn sent_by(lab: &Lab, host: &str) -> u64 {
    lab.link_bytes(host).1
}

#[tokio::test]
async fn a_cut_pull_goes_on_from_what_arrived() {
    let LabSetup { app, lab, dc, drc } = shaped_setup(&[], &[("dc1", "rate=100mbit")]).await;
    lab.create_vm("dc1", 100, "32M");
    let pair = app.create_pair(&dc, 100, &drc, 200).await;
    set_pair(&app, &pair, json!({"compress": "none"})).await;
    set_limit(&app, &dc, 4096).await;
    let id = app.queue(&pair, "backup").await;
    let t = app
        .wait_until(&id, "half the pull", |t| {
            let (d, n) = (t["bytes_done"].as_i64().unwrap_or(0), t["bytes_total"].as_i64().unwrap_or(0));
            t["phase"] == "pulling" && n > 0 && d * 2 >= n
        })
        .await;
    let total = t["bytes_total"].as_u64().unwrap();
    let before = sent_by(&lab, "dc1");
    lab.drop_ssh("dc1");
    let t = app.wait_for_task(&id).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let again = sent_by(&lab, "dc1") - before;
    let log = log_text(&t);
    assert!(log.contains("was cut") && log.contains("going on from the bytes that arrived"), "{log}");
    assert!(
        (again as f64) < 0.6 * total as f64,
        "after the cut at half, {again} bytes crossed the link again for a {total}-byte archive"
    );
}

#[tokio::test]
async fn a_killed_worker_goes_on_with_the_dump_it_left() {
    let env = [("TASK_LEASE_SECS", "6")];
    let LabSetup { mut app, lab, dc, drc } = shaped_setup(&env, &[("dc1", "rate=100mbit")]).await;
    lab.create_vm("dc1", 100, "32M");
    let pair = app.create_pair(&dc, 100, &drc, 200).await;
    set_pair(&app, &pair, json!({"compress": "none"})).await;
    set_limit(&app, &dc, 4096).await;
    let id = app.queue(&pair, "backup").await;
    let t = app
        .wait_until(&id, "half the pull", |t| {
            let (d, n) = (t["bytes_done"].as_i64().unwrap_or(0), t["bytes_total"].as_i64().unwrap_or(0));
            t["phase"] == "pulling" && n > 0 && d * 2 >= n
        })
        .await;
    let total = t["bytes_total"].as_u64().unwrap();
    app.kill();
    let before = sent_by(&lab, "dc1");
    app.start().await;
    app.login_admin().await;
    let t = app.wait_for_task(&id).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(t["attempt"], 2, "{t}");
    let log = log_text(&t);
    assert_eq!(log.matches("creating vzdump archive").count(), 1, "dumped once: {log}");
    assert!(log.contains("going on from the dump"), "{log}");
    let again = sent_by(&lab, "dc1") - before;
    assert!(
        (again as f64) < 0.6 * total as f64,
        "{again} bytes crossed the link again for a {total}-byte archive: {log}"
    );
    assert!(lab.dump_dir_files("dc1").is_empty(), "DC: {:?}", lab.dump_dir_files("dc1"));
    assert_eq!(stored_files(&app, &pair).len(), 1, "{:?}", stored_files(&app, &pair));
}

/// The rate on the host's link over the middle of one phase of a task (a
/// fifth to four fifths of the bytes that crossed during it), from the
/// link's own counter: whole frames, so TCP/IP/ssh framing (~5 %) counts.
async fn measured_rate(app: &TestApp, lab: &Lab, host: &str, id: &str, phase: &str) -> f64 {
    let mut samples: Vec<(Instant, u64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, t) = app.get(&format!("/api/v1/tasks/{id}")).await;
        let st = t["status"].as_str().unwrap_or("").to_string();
        if t["phase"] == phase {
            samples.push((Instant::now(), sent_by(lab, host)));
        }
        if ["succeeded", "failed", "cancelled"].contains(&st.as_str()) || Instant::now() > deadline {
            assert_eq!(st, "succeeded", "{t}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(samples.len() >= 2, "the task was never seen in phase {phase}");
    let (first, last) = (samples[0].1, samples[samples.len() - 1].1);
    let moved = last - first;
    let mid: Vec<_> = samples.iter().filter(|s| (s.1 - first) * 5 >= moved && (s.1 - first) * 5 <= moved * 4).collect();
    assert!(mid.len() >= 5, "too few samples in the middle of the transfer: {}", mid.len());
    let (a, b) = (mid[0], mid[mid.len() - 1]);
    (b.1 - a.1) as f64 / b.0.duration_since(a.0).as_secs_f64()
}

#[tokio::test]
async fn the_per_host_limit_holds_over_a_shaped_link() {
    let LabSetup { app, lab, dc, drc } = shaped_setup(&[], &[("dc1", "rate=42mbit,delay=10ms")]).await;
    lab.create_vm("dc1", 100, "24M");
    let pair = app.create_pair(&dc, 100, &drc, 200).await;
    set_pair(&app, &pair, json!({"compress": "none"})).await;
    let limit = 2560u64; // KiB/s, 21 Mbit/s: half the link's 42.
    set_limit(&app, &dc, limit).await;

    let id = app.queue(&pair, "backup").await;
    let rate = measured_rate(&app, &lab, "dc1", &id, "pulling").await;
    let want = (limit * 1024) as f64;
    assert!((rate - want).abs() <= want * 0.1, "staged: {rate:.0} B/s on the link against a limit of {want:.0}");
    let (_, t) = app.get(&format!("/api/v1/tasks/{id}")).await;
    assert!(log_text(&t).contains("transfer limit for dc1: 2560 KiB/s"), "{t}");

    set_pair(&app, &pair, json!({"transfer": "streaming"})).await;
    let id = app.queue(&pair, "backup").await;
    let rate = measured_rate(&app, &lab, "dc1", &id, "streaming").await;
    assert!((rate - want).abs() <= want * 0.1, "streaming: {rate:.0} B/s on the link against a limit of {want:.0}");
}
