//! drswitch never replaces a VM that is not its replica, never leaves a
//! replica half-written (cancel, worker killed), keeps the archive a
//! rollback needs, runs one pair's tasks one at a time, and survives any
//! remote output. Against the simulated Proxmox lab, on both databases.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::lab::Lab;
use common::{lab_setup, LabSetup};
use serde_json::{json, Value};

fn log_text(t: &Value) -> String {
    t["log"].as_array().unwrap().iter().map(|l| l["line"].as_str().unwrap().to_string()).collect::<Vec<_>>().join("\n")
}

/// Overwrites the start of the DC disk so the next backup differs.
fn change_disk(lab: &Lab, vmid: u32, byte: u8) -> String {
    let disk = lab.disk_path("dc1", vmid);
    let mut bytes = std::fs::read(&disk).unwrap();
    bytes[..4096].fill(byte);
    std::fs::write(&disk, &bytes).unwrap();
    lab.disk_sha("dc1", vmid)
}

/// Nothing of drswitch's left in the DRC host's dump dir.
fn drc_dump_dir_clean(lab: &Lab) {
    let files = lab.dump_dir_files("drc1");
    assert!(files.iter().all(|f| !f.starts_with(".drswitch-") && !f.starts_with("vzdump-")), "{files:?}");
}

#[tokio::test]
async fn an_unmarked_vm_is_never_replaced_until_an_admin_adopts_it() {
    let LabSetup { app, lab, dc, drc } = lab_setup(&[]).await;
    lab.create_vm("dc1", 180, "8M");
    lab.create_vm("drc1", 777, "8M");
    let production = lab.disk_sha("drc1", 777);
    let pair = app.create_pair(&dc, 180, &drc, 777).await;

    for what in ["replicate", "restore"] {
        let t = app.wait_for_task(&app.queue(&pair, what).await).await;
        assert_eq!(t["status"], "failed", "{what}: {t}");
        let err = t["error"].as_str().unwrap();
        assert!(err.contains("VM 777 on drc1 exists but is not a replica"), "{err}");
        assert!(err.contains("adopt"), "the error says how to adopt: {err}");
        assert_eq!(lab.disk_sha("drc1", 777), production, "{what} left the VM's disk alone");
        assert_eq!(lab.vm_status("drc1", 777), "running", "{what} left the VM running");
        drc_dump_dir_clean(&lab);
    }

    // Only an admin may adopt.
    let operator = app.user_client("op", "operator").await;
    let r = operator.post(app.url(&format!("/api/v1/pairs/{pair}/adopt"))).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let (s, p) = app.post(&format!("/api/v1/pairs/{pair}/adopt"), json!({})).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["adopted"], true);

    let t = app.wait_for_task(&app.queue(&pair, "restore").await).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(lab.disk_sha("drc1", 777), lab.disk_sha("dc1", 180), "the adopted VM was replaced");
    assert_eq!(lab.vm_status("drc1", 777), "running");
    let config = lab.vm_config("drc1", 777);
    assert!(config.contains(&format!("drswitch-{pair}")), "the replica carries the pair's marker:\n{config}");
    let (_, p) = app.get(&format!("/api/v1/pairs/{pair}")).await;
    assert_eq!(p["adopted"], false, "the marker replaces the adoption: {p}");
    assert!(p["replica_archive_id"].is_string(), "{p}");

    // An adoption belongs to its target: pointing the pair at another
    // existing VM makes the target "not ours" again.
    lab.create_vm("drc1", 778, "4M");
    let other = lab.disk_sha("drc1", 778);
    let (s, p) = app.post(&format!("/api/v1/pairs/{pair}/adopt"), json!({})).await;
    assert_eq!((s, &p["adopted"]), (200, &json!(true)));
    let (s, p) = app.put(&format!("/api/v1/pairs/{pair}"), json!({"dst_vmid": 778})).await;
    assert_eq!(s, 200);
    assert_eq!(p["adopted"], false, "a new target cancels the adoption: {p}");
    let t = app.wait_for_task(&app.queue(&pair, "restore").await).await;
    assert_eq!(t["status"], "failed", "{t}");
    assert_eq!(t["error_kind"], "not_ours", "{t}");
    assert_eq!(lab.disk_sha("drc1", 778), other);

    // Back to 777, which carries the marker of the pair's earlier target
    // setting: that marker no longer counts either.
    let (s, _) = app.put(&format!("/api/v1/pairs/{pair}"), json!({"dst_vmid": 777})).await;
    assert_eq!(s, 200);
    let before = lab.disk_sha("drc1", 777);
    let t = app.wait_for_task(&app.queue(&pair, "restore").await).await;
    assert_eq!(t["status"], "failed", "{t}");
    assert_eq!(lab.disk_sha("drc1", 777), before);
}

#[tokio::test]
async fn a_cancel_during_qmrestore_never_leaves_a_half_written_replica() {
    let LabSetup { app, lab, dc, drc } = lab_setup(&[]).await;
    lab.create_vm("dc1", 100, "24M");
    let first = lab.disk_sha("dc1", 100);
    let pair = app.create_pair(&dc, 100, &drc, 280).await;
    let (s, _) = app.put(&format!("/api/v1/pairs/{pair}"), json!({"compress": "none"})).await;
    assert_eq!(s, 200);
    let t = app.wait_for_task(&app.queue(&pair, "replicate").await).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(lab.disk_sha("drc1", 280), first);

    // A newer archive whose restore is cancelled while qmrestore writes,
    // and then fails: the rollback must run to its end despite the cancel.
    let second = change_disk(&lab, 100, 0xAB);
    let t = app.wait_for_task(&app.queue(&pair, "backup").await).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    lab.hook("drc1", "qmrestore-slow", "4000000");
    lab.hook("drc1", "qmrestore-fail", "simulated disk write error");
    let id = app.queue(&pair, "restore").await;
    app.wait_until(&id, "restoring", |t| t["phase"] == "restoring").await;
    let (s, _) = app.post(&format!("/api/v1/tasks/{id}/cancel"), json!({})).await;
    assert_eq!(s, 202);
    let t = app.wait_for_task(&id).await;
    assert_eq!(t["status"], "failed", "{t}");
    let err = t["error"].as_str().unwrap();
    assert!(err.contains("rolled back to the archive of the last good restore"), "{err}");
    assert_eq!(lab.disk_sha("drc1", 280), first, "the replica holds the last good restore again");
    assert_eq!(lab.vm_status("drc1", 280), "running");
    drc_dump_dir_clean(&lab);

    // The same cancel without a failure: the restore is finished first, the
    // replica holds the new archive, and the task says so.
    lab.hook("drc1", "qmrestore-slow", "4000000");
    let id = app.queue(&pair, "restore").await;
    app.wait_until(&id, "restoring", |t| t["phase"] == "restoring").await;
    let (s, _) = app.post(&format!("/api/v1/tasks/{id}/cancel"), json!({})).await;
    assert_eq!(s, 202);
    let t = app.wait_for_task(&id).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert!(log_text(&t).contains("the cancel came while VM 280 was being replaced"), "{t}");
    assert_eq!(lab.disk_sha("drc1", 280), second);
    assert_eq!(lab.vm_status("drc1", 280), "running");
    assert!(lab.vm_config("drc1", 280).contains(&format!("drswitch-{pair}")));
    drc_dump_dir_clean(&lab);
}

#[tokio::test]
async fn a_worker_killed_during_qmrestore_leaves_a_whole_replica_after_recovery() {
    let LabSetup { mut app, lab, dc, drc } = lab_setup(&[("TASK_LEASE_SECS", "2")]).await;
    lab.create_vm("dc1", 100, "24M");
    let pair = app.create_pair(&dc, 100, &drc, 280).await;
    let (s, _) = app.put(&format!("/api/v1/pairs/{pair}"), json!({"compress": "none"})).await;
    assert_eq!(s, 200);
    let t = app.wait_for_task(&app.queue(&pair, "replicate").await).await;
    assert_eq!(t["status"], "succeeded", "{t}");

    let second = change_disk(&lab, 100, 0xCD);
    let t = app.wait_for_task(&app.queue(&pair, "backup").await).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    lab.hook("drc1", "qmrestore-slow", "4000000");
    let id = app.queue(&pair, "restore").await;
    app.wait_until(&id, "restoring", |t| t["phase"] == "restoring" && t["progress"].as_i64().unwrap() > 45).await;
    app.kill();
    app.start().await;
    app.login_admin().await;
    let t = app.wait_for_task(&id).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert!(t["attempt"].as_i64().unwrap() >= 2, "{t}");
    assert!(log_text(&t).contains("left unfinished by task"), "the retry knew the VM was its own: {t}");
    assert_eq!(lab.disk_sha("drc1", 280), second, "the replica is whole");
    assert_eq!(lab.vm_status("drc1", 280), "running");
    assert!(lab.vm_config("drc1", 280).contains(&format!("drswitch-{pair}")));
    drc_dump_dir_clean(&lab);
}

#[tokio::test]
async fn retention_keeps_the_rollback_archive_and_one_pair_runs_one_task_at_a_time() {
    let LabSetup { app, lab, dc, drc } = lab_setup(&[("WORKER_CONCURRENCY", "2")]).await;
    lab.create_vm("dc1", 100, "8M");
    let original = lab.disk_sha("dc1", 100);
    let pair = app.create_pair(&dc, 100, &drc, 200).await;

    let (s, body) = app.put(&format!("/api/v1/pairs/{pair}"), json!({"keep_last": 1})).await;
    assert_eq!(s, 422, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().starts_with("keep_last"), "{body}");
    let (s, _) = app
        .post(
            "/api/v1/pairs",
            json!({"src_hypervisor_id": dc, "src_vmid": 100, "dst_hypervisor_id": drc,
                                                  "dst_vmid": 201, "keep_last": 1}),
        )
        .await;
    assert_eq!(s, 422);
    let (s, _) = app.put(&format!("/api/v1/pairs/{pair}"), json!({"keep_last": 2})).await;
    assert_eq!(s, 200);

    let t = app.wait_for_task(&app.queue(&pair, "replicate").await).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let restored = t["archive_id"].as_str().unwrap().to_string();

    // Two more backups: keep_last=2 alone would prune the restored archive.
    for b in [1u8, 2] {
        change_disk(&lab, 100, b);
        let t = app.wait_for_task(&app.queue(&pair, "backup").await).await;
        assert_eq!(t["status"], "succeeded", "{t}");
    }
    let (_, archives) = app.get(&format!("/api/v1/pairs/{pair}/archives")).await;
    let ids: Vec<&str> = archives.as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "{archives}");
    assert!(ids.contains(&restored.as_str()), "the archive of the last good restore is kept: {archives}");
    for a in archives.as_array().unwrap() {
        let file = app.data_dir().join("archives").join(&pair).join(a["file_name"].as_str().unwrap());
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is private: {mode:o}", file.display());
    }
    for (path, what) in [(app.data_dir(), "DATA_DIR"), (app.data_dir().join("archives").join(&pair), "archive dir")] {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{what} is private: {mode:o}");
    }
    if app.backend == "sqlite" {
        for f in ["drswitch.db", "drswitch.db-wal", "drswitch.db-shm"] {
            let path = app.dir.path().join(f);
            if path.exists() {
                let mode = std::fs::metadata(&path).unwrap().permissions().mode();
                assert_eq!(mode & 0o077, 0, "{f} is private: {mode:o}");
            }
        }
    }

    // The newest archive's restore fails: the rollback finds the old one.
    lab.hook("drc1", "qmrestore-fail", "simulated disk write error");
    let t = app.wait_for_task(&app.queue(&pair, "restore").await).await;
    assert_eq!(t["status"], "failed", "{t}");
    assert!(t["error"].as_str().unwrap().contains("rolled back"), "{t}");
    assert_eq!(lab.disk_sha("drc1", 200), original);

    // A backup (DC only) and a restore (DRC only) of one pair, queued
    // together with two worker slots: still one after the other.
    let backup = app.queue(&pair, "backup").await;
    let restore = app.queue(&pair, "restore").await;
    let (s, body) = app.put(&format!("/api/v1/pairs/{pair}"), json!({"name": "busy"})).await;
    assert_eq!(s, 409, "a pair with queued tasks cannot be edited: {body}");
    for id in [&backup, &restore] {
        let t = app.wait_for_task(id).await;
        assert_eq!(t["status"], "succeeded", "{t}");
    }
    let (_, backup_end) = app.task_times(&backup).await;
    let (restore_start, _) = app.task_times(&restore).await;
    assert!(restore_start >= backup_end, "the restore started after the backup ended");
    drc_dump_dir_clean(&lab);
}

#[tokio::test]
async fn endless_multibyte_output_and_a_panicking_job_fail_nothing_else() {
    let LabSetup { app, lab, dc, drc } =
        lab_setup(&[("DRSWITCH_DEBUG_PANIC_VMID", "150"), ("TASK_LEASE_SECS", "3")]).await;
    lab.create_vm("dc1", 100, "4M");
    lab.create_vm("dc1", 150, "1M");
    let pair = app.create_pair(&dc, 100, &drc, 200).await;

    // vzdump prints 1 MiB of multi-byte text: past the 64 KiB output tail
    // and the per-task limit on kept lines.
    lab.hook("dc1", "vzdump-chatter", "1048576");
    let t = app.wait_for_task(&app.queue(&pair, "backup").await).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let log = log_text(&t);
    assert!(log.contains("more lines of remote output were not kept"), "the log says lines were dropped");
    assert!(t["log"].as_array().unwrap().len() < 2100, "the log is bounded");

    // A job that panics fails its task, and the next task on the same host
    // runs at once instead of waiting for a lease that never ends.
    let panicky = app.create_pair(&dc, 150, &drc, 250).await;
    let t = app.wait_for_task(&app.queue(&panicky, "backup").await).await;
    assert_eq!(t["status"], "failed", "{t}");
    assert!(t["error"].as_str().unwrap().contains("internal error"), "{t}");
    let t = app.wait_for_task(&app.queue(&pair, "backup").await).await;
    assert_eq!(t["status"], "succeeded", "{t}");
}
