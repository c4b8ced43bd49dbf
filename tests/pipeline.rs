//! Backup, restore and replicate through real sshd and rsync against the
//! simulated Proxmox lab.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Instant;

use common::lab::sha256_of;
use common::{lab_setup, message, LabSetup, TestApp};
use serde_json::json;

/// Sets the pair to store its archives uncompressed.
async fn uncompressed(app: &TestApp, pair: &str) {
    let (s, upd) = app.put(&format!("/api/v1/pairs/{pair}"), json!({"compress": "none"})).await;
    assert_eq!(s, 200, "{upd}");
    assert_eq!(upd["compress"], "none", "{upd}");
}

#[tokio::test]
async fn replicate_restore_and_roll_back() {
    let LabSetup { app, lab, dc, drc } = lab_setup(&[]).await;
    lab.create_vm("dc1", 100, "24M");
    let original = lab.disk_sha("dc1", 100);
    let pair = app.create_pair(&dc, 100, &drc, 200).await;

    // Replicate: backup then restore of that archive.
    let queued_at = Instant::now();
    let t = app.wait_for_task(&app.queue(&pair, "replicate").await).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(t["progress"], 100);
    assert!(t["log"].to_string().contains("creating vzdump archive"), "vzdump output is in the task log");
    assert_eq!(lab.disk_sha("drc1", 200), original, "restored disk must be byte-identical");
    assert_eq!(lab.vm_status("drc1", 200), "running");
    assert!(lab.dump_dir_files("dc1").is_empty(), "DC dump dir left clean: {:?}", lab.dump_dir_files("dc1"));

    let (s, archives) = app.get(&format!("/api/v1/pairs/{pair}/archives")).await;
    assert_eq!(s, 200, "{archives}");
    assert_eq!(archives.as_array().unwrap().len(), 1, "{archives}");
    let a = &archives[0];
    let name = a["file_name"].as_str().unwrap();
    assert!(name.starts_with("vzdump-qemu-100-") && name.ends_with(".vma.zst"), "{name}");
    let stored = app.data_dir().join("archives").join(&pair).join(name);
    assert_eq!(a["sha256"].as_str().unwrap(), sha256_of(&stored));
    assert_eq!(a["size_bytes"].as_u64().unwrap(), std::fs::metadata(&stored).unwrap().len());
    let (s, p) = app.get(&format!("/api/v1/pairs/{pair}")).await;
    assert_eq!(s, 200, "{p}");
    // The recovery point is the archive just taken: no older than this test's replicate.
    let rpo = p["rpo_seconds"].as_i64().unwrap_or_else(|| panic!("rpo_seconds is not a number: {p}"));
    let elapsed = queued_at.elapsed().as_secs_f64().ceil() as i64;
    assert!((0..=elapsed).contains(&rpo), "rpo_seconds {rpo} with the archive taken within the last {elapsed} s: {p}");
    assert_eq!(p["last_archive_at"], a["created_at"], "{p}");

    // Restore over the existing, running replica.
    let t = app.wait_for_task(&app.queue(&pair, "restore").await).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(lab.disk_sha("drc1", 200), original);
    assert_eq!(lab.vm_status("drc1", 200), "running");

    // The DC disk changes; a new backup; its restore fails after the old
    // replica was wiped: the previous replica must come back.
    let disk = lab.disk_path("dc1", 100);
    let mut bytes = std::fs::read(&disk).unwrap();
    bytes[..4096].fill(0xAB);
    std::fs::write(&disk, &bytes).unwrap();
    let t = app.wait_for_task(&app.queue(&pair, "backup").await).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    lab.hook("drc1", "qmrestore-fail", "simulated disk write error");
    let t = app.wait_for_task(&app.queue(&pair, "restore").await).await;
    assert_eq!(t["status"], "failed", "{t}");
    let err = t["error"].as_str().unwrap();
    assert!(err.contains("rolled back"), "{err}");
    assert_eq!(lab.disk_sha("drc1", 200), original, "the previous replica is back");
    assert_eq!(lab.vm_status("drc1", 200), "running");
}

#[tokio::test]
async fn failures_say_why_and_leave_no_archive() {
    let LabSetup { app, lab, dc, drc } = lab_setup(&[]).await;
    lab.create_vm("dc1", 100, "4M");

    // VM missing on the DC host.
    let missing = app.create_pair(&dc, 999, &drc, 201).await;
    let t = app.wait_for_task(&app.queue(&missing, "backup").await).await;
    assert_eq!(t["status"], "failed");
    assert!(t["error"].as_str().unwrap().contains("VM 999 does not exist on dc1"), "{t}");

    // vzdump fails with "job errors".
    let pair = app.create_pair(&dc, 100, &drc, 202).await;
    lab.hook("dc1", "vzdump-fail", "simulated qmp timeout");
    let t = app.wait_for_task(&app.queue(&pair, "backup").await).await;
    assert_eq!(t["status"], "failed");
    let err = t["error"].as_str().unwrap();
    assert!(err.contains("vzdump") && err.contains("job errors"), "{err}");
    let (_, archives) = app.get(&format!("/api/v1/pairs/{pair}/archives")).await;
    assert_eq!(archives, json!([]));
    assert!(lab.dump_dir_files("dc1").iter().all(|f| !f.contains(".vma")), "{:?}", lab.dump_dir_files("dc1"));

    // The DC host's key changes: the task fails naming the host key.
    let other_key = lab.host("drc1")["known_hosts_line"].as_str().unwrap().split_once(' ').unwrap().1.to_string();
    app.set_host_key(&dc, &other_key).await;
    let t = app.wait_for_task(&app.queue(&pair, "backup").await).await;
    assert_eq!(t["status"], "failed");
    assert!(t["error"].as_str().unwrap().contains("host key"), "{t}");
    let (_, report) = app.post(&format!("/api/v1/hypervisors/{dc}/check"), json!({})).await;
    assert_eq!(report["host_key"]["ok"], false, "check does not re-pin a changed key by itself: {report}");
    let (_, report) = app.post(&format!("/api/v1/hypervisors/{dc}/check"), json!({"repin": true})).await;
    assert_eq!(report["ok"], true, "{report}");

    // Unreachable source: a registered host whose sshd is gone.
    let (s, h) = app
        .post(
            "/api/v1/hypervisors",
            json!({"name": "dc-dead", "host": "127.0.0.1", "ssh_port": 1, "node": "dcdead", "role": "dc"}),
        )
        .await;
    assert_eq!(s, 201, "{h}");
    let dead = h["id"].as_str().unwrap().to_string();
    app.set_host_key(&dead, &other_key).await;
    let p = app.create_pair(&dead, 100, &drc, 203).await;
    let t = app.wait_for_task(&app.queue(&p, "backup").await).await;
    assert_eq!(t["status"], "failed");
    assert!(t["error"].as_str().unwrap().contains("cannot reach dc-dead"), "{t}");

    // Never pinned: the error says to run the check.
    let (s, h) = app
        .post(
            "/api/v1/hypervisors",
            json!({"name": "dc-new", "host": "127.0.0.1", "ssh_port": 1, "node": "dcnew", "role": "dc"}),
        )
        .await;
    assert_eq!(s, 201, "{h}");
    let p = app.create_pair(h["id"].as_str().unwrap(), 100, &drc, 204).await;
    let t = app.wait_for_task(&app.queue(&p, "backup").await).await;
    assert!(message(&json!({"error": {"message": t["error"]}})).contains("no pinned SSH host key"), "{t}");
    assert!(!app.log().contains("secret-of"), "no secret in the log");
}

#[tokio::test]
async fn killed_worker_leaves_no_partial_and_the_task_is_retried() {
    let env = [("TRANSFER_BWLIMIT_KIB", "2048"), ("TASK_LEASE_SECS", "2")];
    let LabSetup { mut app, lab, dc, drc } = lab_setup(&env).await;
    lab.create_vm("dc1", 100, "12M");
    let pair = app.create_pair(&dc, 100, &drc, 200).await;
    uncompressed(&app, &pair).await;
    let id = app.queue(&pair, "backup").await;
    let dir = app.data_dir().join("archives").join(&pair);
    let partial = || {
        std::fs::read_dir(&dir)
            .map(|d| d.flatten().any(|f| f.file_name().to_string_lossy().contains("partial-")))
            .unwrap_or(false)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !partial() {
        assert!(std::time::Instant::now() < deadline, "no transfer started");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app.kill();
    app.start().await;
    app.login_admin().await;
    let t = app.wait_for_task(&id).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert!(t["attempt"].as_i64().unwrap() >= 2, "retried after the kill: {t}");
    assert!(t["log"].to_string().contains("stopped responding"), "{t}");
    assert!(!partial(), "partial files are gone");
    let (_, archives) = app.get(&format!("/api/v1/pairs/{pair}/archives")).await;
    assert_eq!(archives.as_array().unwrap().len(), 1);
}

/// Unmounts the tiny file system even when an assertion fails.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn full_archive_storage_fails_cleanly() {
    let LabSetup { app, lab, dc, drc } = lab_setup(&[]).await;
    lab.create_vm("dc1", 100, "4M");
    let pair = app.create_pair(&dc, 100, &drc, 200).await;
    uncompressed(&app, &pair).await;
    // The middleware's archive storage is a 1 MiB file system; the archive is 4 MiB.
    let dir = app.data_dir().join("archives").join(&pair);
    std::fs::create_dir_all(&dir).unwrap();
    let status =
        std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"]).arg(&dir).status().unwrap();
    assert!(status.success(), "mounting a tmpfs needs root");
    let _guard = Mounted(dir.clone());

    let t = app.wait_for_task(&app.queue(&pair, "backup").await).await;
    assert_eq!(t["status"], "failed", "{t}");
    let err = t["error"].as_str().unwrap();
    assert!(err.contains("archive storage has only") && err.contains("free"), "{err}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no partial file left behind");
    let (_, archives) = app.get(&format!("/api/v1/pairs/{pair}/archives")).await;
    assert_eq!(archives, json!([]));
    assert!(lab.dump_dir_files("dc1").iter().all(|f| !f.contains("vzdump-")), "{:?}", lab.dump_dir_files("dc1"));
}
