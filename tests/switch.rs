//! The switch against the lab: failover fences the DC VM before the
//! replica starts, runs at once past a long backup, happens by itself when
//! the DC host dies (and only for pairs that ask), never overwrites a
//! source VM that comes back; drills run an isolated copy and leave the
//! replica, the source and foreign VMs alone.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/receiver.rs"]
mod receiver;

use std::time::{Duration, Instant};

use common::lab::{lab_cmd, Lab};
use common::{lab_setup, LabSetup, TestApp};
use receiver::{Receiver, Reply};
use serde_json::{json, Value};

const FAST: &[(&str, &str)] = &[
    ("MONITOR_INTERVAL_SECS", "1"),
    ("MONITOR_PROBE_TIMEOUT_SECS", "1"),
    ("FAILOVER_TOLERANCE_SECS", "3"),
    ("DRILL_BOOT_SECS", "2"),
    ("FENCE_SHUTDOWN_SECS", "5"),
    ("SCHEDULE_SECONDS", "true"),
];

fn log_text(t: &Value) -> String {
    t["log"].as_array().unwrap().iter().map(|l| l["line"].as_str().unwrap().to_string()).collect::<Vec<_>>().join("\n")
}

/// A VM on dc1 that starts at boot, as production VMs do.
fn production_vm(lab: &Lab, vmid: u32) {
    lab_cmd(&[
        "create-vm",
        "--root",
        &lab.root("dc1"),
        "--node",
        "dc1",
        "--vmid",
        &vmid.to_string(),
        "--disk-size",
        "8M",
        "--name",
        &format!("vm{vmid}"),
        "--running",
        "--onboot",
    ]);
}

/// The `key: value` of a VM config line.
fn config_value(config: &str, key: &str) -> Option<String> {
    config.lines().find_map(|l| l.strip_prefix(&format!("{key}: ")).map(str::to_string))
}

fn mac(net: &str) -> String {
    net.split(',').next().unwrap().split('=').nth(1).unwrap().to_string()
}

/// A pair whose replica is current and stopped (so "both running" means a
/// failover went wrong).
async fn protected_pair(app: &TestApp, lab: &Lab, dc: &str, drc: &str, vmid: u32, extra: Value) -> String {
    production_vm(lab, vmid);
    let mut body = json!({"src_hypervisor_id": dc, "src_vmid": vmid, "dst_hypervisor_id": drc, "dst_vmid": 9000 + vmid,
                          "start_after_restore": false});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let (s, p) = app.post("/api/v1/pairs", body).await;
    assert_eq!(s, 201, "{p}");
    let pair = p["id"].as_str().unwrap().to_string();
    let t = app.wait_for_task(&app.queue(&pair, "replicate").await).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(lab.vm_status("drc1", 9000 + vmid), "stopped");
    pair
}

async fn pair_state(app: &TestApp, pair: &str) -> String {
    app.get(&format!("/api/v1/pairs/{pair}")).await.1["state"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_manual_failover_fences_the_source_before_the_replica_starts() {
    let LabSetup { app, lab, dc, drc } = lab_setup(FAST).await;
    let hook = Receiver::start(&[Reply::Status(204)]).await;
    let (s, _) =
        app.post("/api/v1/notification-targets", json!({"name": "ops", "kind": "webhook", "url": hook.url()})).await;
    assert_eq!(s, 201);
    let pair = protected_pair(&app, &lab, &dc, &drc, 130, json!({"network_map": {"vmbr0": "vmbr10"}})).await;
    assert_eq!(pair_state(&app, &pair).await, "protected");
    let dc_net = config_value(&lab.vm_config("dc1", 130), "net0").unwrap();
    let replica_disk = lab.disk_sha("drc1", 9130);

    let task = app.queue(&pair, "failover").await;
    // Sample both VMs until the failover ends: never both running.
    loop {
        let (dc_state, drc_state) = (lab.vm_status("dc1", 130), lab.vm_status("drc1", 9130));
        assert!(!(dc_state == "running" && drc_state == "running"), "both copies ran at once");
        let (_, t) = app.get(&format!("/api/v1/tasks/{task}")).await;
        if ["succeeded", "failed", "cancelled"].contains(&t["status"].as_str().unwrap()) {
            assert_eq!(t["status"], "succeeded", "{t}");
            break;
        }
    }
    assert_eq!(lab.vm_status("dc1", 130), "stopped");
    assert_eq!(config_value(&lab.vm_config("dc1", 130), "onboot").as_deref(), Some("0"), "fenced for good");
    assert_eq!(lab.vm_status("drc1", 9130), "running");
    assert_eq!(lab.disk_sha("drc1", 9130), replica_disk, "the current replica was started, not restored");
    let net = config_value(&lab.vm_config("drc1", 9130), "net0").unwrap();
    assert!(net.contains("bridge=vmbr10"), "{net}");
    assert_eq!(mac(&net), mac(&dc_net), "the MAC is kept");
    assert_eq!(pair_state(&app, &pair).await, "failed_over");

    let (_, events) = app.get(&format!("/api/v1/events?pair_id={pair}")).await;
    let ev = &events[0];
    assert_eq!(
        (ev["kind"].as_str(), ev["status"].as_str(), ev["forced"].as_bool()),
        (Some("failover"), Some("succeeded"), Some(false))
    );
    let steps: Vec<&str> = ev["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(steps, ["fence", "check replica", "start replica"], "{ev}");
    assert!(ev["rto_secs"].as_f64().unwrap() > 0.0);
    assert!(ev["steps"][0]["started_at"].is_string());

    // The failover alert opened and closed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got: Vec<String> = hook
            .requests()
            .iter()
            .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
            .filter(|b| b["alert"]["kind"] == "failover")
            .map(|b| b["event"].as_str().unwrap().to_string())
            .collect();
        if got == ["alert.opened", "alert.resolved"] {
            break;
        }
        assert!(Instant::now() < deadline, "failover notices: {got:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // While failed over, nothing backs up or overwrites anything.
    for what in ["backup", "replicate", "restore"] {
        let (s, v) = app.post(&format!("/api/v1/pairs/{pair}/{what}"), json!({})).await;
        assert_eq!(s, 409, "{what}: {v}");
    }
    let (s, v) = app.post(&format!("/api/v1/pairs/{pair}/failover"), json!({})).await;
    assert_eq!(s, 409, "{v}");
}

#[tokio::test]
async fn a_failover_of_an_unreachable_dc_needs_force_and_says_so() {
    let LabSetup { app, lab, dc, drc } = lab_setup(&[]).await;
    let pair = protected_pair(&app, &lab, &dc, &drc, 131, json!({})).await;
    lab.power_off("dc1");
    let t = app.wait_for_task(&app.queue(&pair, "failover").await).await;
    assert_eq!(t["status"], "failed", "{t}");
    assert!(t["error"].as_str().unwrap().contains("fail over with force"), "{t}");
    assert_eq!(lab.vm_status("drc1", 9131), "stopped", "nothing started");
    assert_eq!(pair_state(&app, &pair).await, "protected");

    let (s, t) = app.post(&format!("/api/v1/pairs/{pair}/failover"), json!({"force": true})).await;
    assert_eq!(s, 202, "{t}");
    let t = app.wait_for_task(t["id"].as_str().unwrap()).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(lab.vm_status("drc1", 9131), "running");
    let (_, events) = app.get(&format!("/api/v1/events?pair_id={pair}")).await;
    assert_eq!(events[0]["forced"], true, "{events}");
    assert!(events[0]["steps"][0]["detail"].as_str().unwrap().contains("impossible"), "{events}");
    let (s, v) = app.post(&format!("/api/v1/pairs/{pair}/backup"), json!({"force": true})).await;
    assert!(s == 409 || s == 422, "{v}");
}

#[tokio::test]
async fn a_failover_queued_during_a_long_backup_starts_at_once() {
    let LabSetup { app, lab, dc, drc } = lab_setup(&[]).await;
    let pair = protected_pair(&app, &lab, &dc, &drc, 132, json!({})).await;
    // 8 MiB at 64 KiB/s: the backup would take two minutes.
    lab.hook("dc1", "vzdump-slow", "65536");
    let backup = app.queue(&pair, "backup").await;
    app.wait_until(&backup, "dumping", |t| t["phase"] == "dumping").await;
    let queued_at = Instant::now();
    let failover = app.queue(&pair, "failover").await;
    let t = app.wait_until(&failover, "running", |t| t["status"] != "queued").await;
    let waited = queued_at.elapsed();
    assert!(waited < Duration::from_secs(20), "the failover waited {waited:?} behind the backup: {t}");
    let b = app.wait_for_task(&backup).await;
    assert_eq!(b["status"], "cancelled", "{b}");
    let f = app.wait_for_task(&failover).await;
    assert_eq!(f["status"], "succeeded", "{f}");
    assert_eq!(lab.vm_status("drc1", 9132), "running");
    assert!(lab.dump_dir_files("dc1").iter().all(|f| !f.contains(".drswitch-")), "backup cleaned up");
}

#[tokio::test]
async fn the_dc_host_dying_fails_over_pairs_that_ask_and_a_returning_source_is_left_alone() {
    let LabSetup { app, lab, dc, drc } = lab_setup(FAST).await;
    let auto = protected_pair(&app, &lab, &dc, &drc, 133, json!({"auto_failover": true})).await;
    let manual = protected_pair(&app, &lab, &dc, &drc, 134, json!({})).await;
    let dc_disk = lab.disk_sha("dc1", 133);
    let (s, sch) =
        app.post("/api/v1/schedules", json!({"pair_id": auto, "kind": "backup", "cron": "*/2 * * * * *"})).await;
    assert_eq!(s, 201, "{sch}");

    lab.power_off("dc1");
    let died = Instant::now();
    let failover = loop {
        let (_, page) = app.get(&format!("/api/v1/tasks?pair_id={auto}&kind=failover")).await;
        if let Some(t) = page["items"].as_array().unwrap().first() {
            break t["id"].as_str().unwrap().to_string();
        }
        assert!(died.elapsed() < Duration::from_secs(60), "no failover was queued");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let t = app.wait_for_task(&failover).await;
    assert_eq!(t["status"], "succeeded", "{}", log_text(&t));
    assert!(t["requested_by"].as_str().unwrap().starts_with("monitor"), "{t}");
    assert_eq!(lab.vm_status("drc1", 9133), "running");
    assert_eq!(lab.disk_sha("drc1", 9133), dc_disk, "the replica holds the newest archive's disk");
    assert_eq!(pair_state(&app, &auto).await, "failed_over");
    let (_, events) = app.get(&format!("/api/v1/events?pair_id={auto}")).await;
    assert_eq!(events[0]["forced"], true, "the DC could not be fenced: {events}");
    // The pair without auto_failover is not touched.
    assert_eq!(pair_state(&app, &manual).await, "protected");
    assert_eq!(lab.vm_status("drc1", 9134), "stopped");
    let (_, page) = app.get(&format!("/api/v1/tasks?pair_id={manual}&kind=failover")).await;
    assert_eq!(page["total"], 0);

    // The DC comes back and its VM boots (onboot 1): reported, not
    // overwritten, not backed up.
    lab.power_on("dc1");
    let back = Instant::now();
    loop {
        let (_, alerts) = app.get("/api/v1/alerts?state=open").await;
        let found = alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "failover" && a["message"].as_str().unwrap().contains("runs again while"));
        if found {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(60), "no alert about the returned VM: {alerts}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(lab.vm_status("dc1", 133), "running", "only reported: the pair does not ask to stop it");
    assert_eq!(lab.disk_sha("dc1", 133), dc_disk, "not overwritten");
    let failover_started = t["started_at"].as_str().unwrap().to_string();
    // The schedule keeps firing every 2 s, and skips the pair.
    let sch = loop {
        let (_, v) = app.get(&format!("/api/v1/schedules/{}", sch["id"].as_str().unwrap())).await;
        if v["last_run"].as_str().unwrap_or("") > failover_started.as_str() {
            break v;
        }
        assert!(back.elapsed() < Duration::from_secs(60), "the schedule did not fire: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(sch["last_result"].as_str().unwrap_or("").starts_with("skipped: the pair is fail"), "{sch}");
    let (_, page) = app.get(&format!("/api/v1/tasks?pair_id={auto}&kind=backup")).await;
    let after: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["created_at"].as_str().unwrap() > failover_started.as_str())
        .collect();
    assert!(after.is_empty(), "no backup queued after the failover began: {after:?}");
}

#[tokio::test]
async fn a_drill_runs_an_isolated_copy_then_destroys_it() {
    let LabSetup { app, lab, dc, drc } = lab_setup(FAST).await;
    let pair = protected_pair(&app, &lab, &dc, &drc, 135, json!({"drill_vmid": 8135})).await;
    let (replica_disk, dc_disk) = (lab.disk_sha("drc1", 9135), lab.disk_sha("dc1", 135));
    let replica_mac = mac(&config_value(&lab.vm_config("drc1", 9135), "net0").unwrap());

    let task = app.queue(&pair, "drill").await;
    let mut seen = None;
    loop {
        let config = lab.vm_config("drc1", 8135);
        if lab.vm_status("drc1", 8135) == "running" {
            seen = Some(config);
        }
        let (_, t) = app.get(&format!("/api/v1/tasks/{task}")).await;
        if ["succeeded", "failed", "cancelled"].contains(&t["status"].as_str().unwrap()) {
            assert_eq!(t["status"], "succeeded", "{}", log_text(&t));
            break;
        }
    }
    let config = seen.expect("the drill VM ran");
    let net = config_value(&config, "net0").unwrap();
    assert!(net.contains("link_down=1"), "{net}");
    assert_ne!(mac(&net), replica_mac, "fresh MAC");
    assert_eq!(lab.vm_status("drc1", 8135), "missing", "destroyed");
    assert_eq!(lab.disk_sha("drc1", 9135), replica_disk);
    assert_eq!(lab.vm_status("drc1", 9135), "stopped");
    assert_eq!(lab.disk_sha("dc1", 135), dc_disk);
    assert_eq!(lab.vm_status("dc1", 135), "running");
    let (_, events) = app.get(&format!("/api/v1/events?pair_id={pair}")).await;
    let ev = &events[0];
    assert_eq!((ev["kind"].as_str(), ev["status"].as_str()), (Some("drill"), Some("succeeded")), "{ev}");
    let steps: Vec<&str> = ev["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(steps, ["preflight", "push", "restore", "boot", "stays up", "destroy drill VM"], "{ev}");
    assert!(ev["rto_secs"].as_f64().unwrap() > 0.0);
    assert_eq!(pair_state(&app, &pair).await, "protected");
    let (_, view) = app.get(&format!("/api/v1/pairs/{pair}")).await;
    assert_eq!(view["last_drill"]["status"], "succeeded", "{view}");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("drswitch_pair_last_drill_success{") && l.ends_with(" 1")),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("drswitch_pair_state{") && l.contains("state=\"protected\"") && l.ends_with(" 1")),
        "{metrics}"
    );

    // A VM on the drill VMID that no drill made is left alone.
    lab.create_vm("drc1", 8136, "4M");
    let foreign = lab.disk_sha("drc1", 8136);
    let (s, p) = app.put(&format!("/api/v1/pairs/{pair}"), json!({"drill_vmid": 8136})).await;
    assert_eq!(s, 200, "{p}");
    let t = app.wait_for_task(&app.queue(&pair, "drill").await).await;
    assert_eq!(t["status"], "failed");
    assert_eq!(t["error_kind"], "not_ours", "{t}");
    assert!(t["error"].as_str().unwrap().contains("was not made by a drill"), "{t}");
    assert_eq!(lab.vm_status("drc1", 8136), "running");
    assert_eq!(lab.disk_sha("drc1", 8136), foreign);
}

#[tokio::test]
async fn a_failback_brings_the_drc_copy_home_byte_for_byte() {
    let LabSetup { app, lab, dc, drc } = lab_setup(FAST).await;
    let pair = protected_pair(&app, &lab, &dc, &drc, 137, json!({"network_map": {"vmbr0": "vmbr10"}})).await;
    let t = app.wait_for_task(&app.queue(&pair, "failover").await).await;
    assert_eq!(t["status"], "succeeded", "{}", log_text(&t));
    // The DRC copy lives on and changes while the DC is away.
    let drc_disk = lab.disk_path("drc1", 9137);
    let mut bytes = std::fs::read(&drc_disk).unwrap();
    bytes[..4096].fill(0x5a);
    std::fs::write(&drc_disk, &bytes).unwrap();
    let live = lab.disk_sha("drc1", 9137);
    assert_ne!(live, lab.disk_sha("dc1", 137));
    let (s, sch) =
        app.post("/api/v1/schedules", json!({"pair_id": pair, "kind": "backup", "cron": "*/2 * * * * *"})).await;
    assert_eq!(s, 201, "{sch}");

    let t = app.wait_for_task(&app.queue(&pair, "failback").await).await;
    assert_eq!(t["status"], "succeeded", "{}", log_text(&t));
    assert_eq!(lab.disk_sha("dc1", 137), live, "the DC VM is byte-identical to the DRC copy");
    assert_eq!(lab.vm_status("dc1", 137), "running");
    assert_eq!(lab.vm_status("drc1", 9137), "stopped", "the DRC copy is fenced");
    assert_eq!(config_value(&lab.vm_config("drc1", 9137), "onboot").as_deref(), Some("0"));
    assert_eq!(pair_state(&app, &pair).await, "protected");
    let dc_config = lab.vm_config("dc1", 137);
    assert!(config_value(&dc_config, "net0").unwrap().contains("bridge=vmbr0,"), "{dc_config}");
    assert!(!config_value(&dc_config, "tags").unwrap_or_default().contains("drswitch-"), "{dc_config}");
    let (_, events) = app.get(&format!("/api/v1/events?pair_id={pair}")).await;
    let ev = &events[0];
    assert_eq!((ev["kind"].as_str(), ev["status"].as_str()), (Some("failback"), Some("succeeded")), "{ev}");
    let steps: Vec<&str> = ev["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(steps, ["fence the DRC copy", "back up the DRC copy", "restore on the DC", "start the DC VM"]);

    // Protected again: the schedule backs the DC VM up once more.
    let done = t["finished_at"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, page) = app.get(&format!("/api/v1/tasks?pair_id={pair}&kind=backup")).await;
        let fresh = page["items"].as_array().unwrap().iter().any(|b| {
            b["schedule_id"].is_string()
                && b["status"] == "succeeded"
                && b["created_at"].as_str().unwrap() > done.as_str()
        });
        if fresh {
            break;
        }
        assert!(Instant::now() < deadline, "no scheduled backup after the failback: {page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn placement_picks_the_drc_host_with_the_most_free_memory() {
    let app = TestApp::spawn_with(FAST).await;
    app.login_admin().await;
    let lab = Lab::start(&["dc1", "drc1", "drc2", "drc3"], &app.pubkey());
    let dc = app.register(&lab, "dc1", "dc").await;
    let mut drc = std::collections::HashMap::new();
    for (name, used_gib) in [("drc1", 12u64), ("drc2", 4), ("drc3", 8)] {
        lab.hook(name, "node-memory-used", &(used_gib << 30).to_string());
        drc.insert(name, app.register(&lab, name, "drc").await);
    }
    // Wait until the monitor has seen each host's memory.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (name, id) in &drc {
        loop {
            let (_, st) = app.get(&format!("/api/v1/hypervisors/{id}/status")).await;
            let free = st["latest"]["mem_free_bytes"].as_i64().unwrap_or(0);
            if free > 0 {
                break;
            }
            assert!(Instant::now() < deadline, "no figures for {name}: {st}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    lab.create_vm("dc1", 140, "4M");
    let (s, p) = app.post("/api/v1/pairs", json!({"src_hypervisor_id": dc, "src_vmid": 140, "dst_vmid": 9140})).await;
    assert_eq!(s, 201, "{p}");
    assert_eq!(p["dst_hypervisor_id"], Value::Null, "placed later: {p}");
    let pair = p["id"].as_str().unwrap().to_string();

    let t = app.wait_for_task(&app.queue(&pair, "replicate").await).await;
    assert_eq!(t["status"], "succeeded", "{}", log_text(&t));
    let log = log_text(&t);
    assert!(log.contains("placement: drc2 chosen because it has the most free memory (12.0 GiB)"), "{log}");
    assert!(log.contains("drc1 4.0 GiB free") && log.contains("drc3 8.0 GiB free"), "{log}");
    let (_, p) = app.get(&format!("/api/v1/pairs/{pair}")).await;
    assert_eq!(p["dst_hypervisor_id"], drc["drc2"].as_str(), "{p}");
    assert_eq!(lab.vm_status("drc2", 9140), "running");
    assert_eq!(lab.vm_status("drc1", 9140), "missing");
    // The choice is kept: the next replicate goes to the same host.
    lab.hook("drc2", "node-memory-used", &(15u64 << 30).to_string());
    let t = app.wait_for_task(&app.queue(&pair, "replicate").await).await;
    assert_eq!(t["status"], "succeeded");
    assert!(!log_text(&t).contains("placement:"));
    assert_eq!(lab.vm_status("drc3", 9140), "missing");
}

#[tokio::test]
async fn fencing_stops_a_vm_that_ignores_its_shutdown() {
    let LabSetup { app, lab, dc, drc } = lab_setup(&[("FENCE_SHUTDOWN_SECS", "2")]).await;
    let pair = protected_pair(&app, &lab, &dc, &drc, 138, json!({})).await;
    lab.hook("dc1", "qm-shutdown-hang", "138");
    let t = app.wait_for_task(&app.queue(&pair, "failover").await).await;
    assert_eq!(t["status"], "succeeded", "{}", log_text(&t));
    assert!(log_text(&t).contains("stopped hard after the shutdown timed out"), "{}", log_text(&t));
    assert_eq!(lab.vm_status("dc1", 138), "stopped");
    assert_eq!(lab.vm_status("drc1", 9138), "running");
}

#[tokio::test]
async fn a_drill_waits_for_the_guest_agent_when_the_vm_has_one() {
    let LabSetup { app, lab, dc, drc } = lab_setup(FAST).await;
    lab_cmd(&[
        "create-vm",
        "--root",
        &lab.root("dc1"),
        "--node",
        "dc1",
        "--vmid",
        "139",
        "--disk-size",
        "4M",
        "--running",
        "--agent",
    ]);
    let (s, p) = app
        .post(
            "/api/v1/pairs",
            json!({"src_hypervisor_id": dc, "src_vmid": 139, "dst_hypervisor_id": drc, "dst_vmid": 9139,
                                      "drill_vmid": 8139, "start_after_restore": false}),
        )
        .await;
    assert_eq!(s, 201, "{p}");
    let pair = p["id"].as_str().unwrap().to_string();
    assert_eq!(app.wait_for_task(&app.queue(&pair, "replicate").await).await["status"], "succeeded");

    let t = app.wait_for_task(&app.queue(&pair, "drill").await).await;
    assert_eq!(t["status"], "succeeded", "{}", log_text(&t));
    assert!(log_text(&t).contains("the guest agent answers"), "{}", log_text(&t));

    lab.hook("drc1", "guest-agent-dead", "8139");
    let t = app.wait_for_task(&app.queue(&pair, "drill").await).await;
    assert_eq!(t["status"], "failed");
    assert!(t["error"].as_str().unwrap().contains("guest agent"), "{t}");
    assert_eq!(lab.vm_status("drc1", 8139), "missing", "a failed drill still destroys its VM");
    let (_, view) = app.get(&format!("/api/v1/pairs/{pair}")).await;
    assert_eq!(view["last_drill"]["status"], "failed", "{view}");
}
