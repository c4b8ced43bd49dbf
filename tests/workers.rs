//! Several worker processes on one database: every task runs exactly once,
//! tasks on the same hypervisor never overlap, and a running task can be
//! cancelled.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::lab::Lab;
use common::TestApp;
use serde_json::json;

struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn two_workers_run_each_task_once_and_never_overlap_on_a_host() {
    let app = TestApp::spawn_with(&[("WORKER_ENABLED", "false")]).await;
    app.login_admin().await;
    let hosts = ["dc1", "dc2", "dc3", "dc4", "drc1"];
    let lab = Lab::start(&hosts, &app.pubkey());
    let drc = app.register(&lab, "drc1", "drc").await;
    let mut pairs = Vec::new();
    for (i, h) in hosts[..4].iter().enumerate() {
        let id = app.register(&lab, h, "dc").await;
        for v in 0..5u32 {
            lab.create_vm(h, 100 + v, "1M");
            pairs.push((app.create_pair(&id, 100 + v, &drc, 200 + (i as u32) * 10 + v).await, h.to_string()));
        }
    }
    let mut tasks = Vec::new();
    for (p, h) in &pairs {
        tasks.push((app.queue(p, "backup").await, h.clone()));
    }
    let logs: Vec<_> = (0..2).map(|i| app.dir.path().join(format!("worker{i}.log"))).collect();
    let _workers: Vec<Worker> = logs
        .iter()
        .map(|log| {
            let f = std::fs::File::create(log).unwrap();
            Worker(
                app.command(&["worker"])
                    .env("WORKER_CONCURRENCY", "4")
                    .stdout(Stdio::from(f.try_clone().unwrap()))
                    .stderr(Stdio::from(f))
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();

    for (id, _) in &tasks {
        let t = app.wait_for_task(id).await;
        assert_eq!(t["status"], "succeeded", "{t}");
        assert_eq!(t["attempt"], 1, "ran once: {t}");
        let starts =
            t["log"].as_array().unwrap().iter().filter(|l| l["line"].as_str().unwrap().starts_with("attempt ")).count();
        assert_eq!(starts, 1, "{t}");
    }
    let started: usize = logs.iter().map(|l| std::fs::read_to_string(l).unwrap().matches("task started").count()).sum();
    assert_eq!(started, 20, "each task was started by exactly one worker");

    // Exact start and end times (milliseconds) from the database.
    let mut spans: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
    for (id, host) in &tasks {
        spans.entry(host.clone()).or_default().push(app.task_times(id).await);
    }
    let mut overlapped_across_hosts = false;
    let all: Vec<(i64, i64)> = spans.values().flatten().copied().collect();
    for (host, mut s) in spans {
        s.sort();
        for w in s.windows(2) {
            assert!(w[0].1 <= w[1].0, "tasks on {host} overlapped: {w:?}");
        }
    }
    for a in &all {
        overlapped_across_hosts |= all.iter().any(|b| b != a && b.0 < a.1 && a.0 < b.1);
    }
    assert!(overlapped_across_hosts, "tasks on different hosts should run side by side");
}

#[tokio::test]
async fn a_running_task_can_be_cancelled() {
    let app = TestApp::spawn().await;
    app.login_admin().await;
    let lab = Lab::start(&["dc1", "drc1"], &app.pubkey());
    let dc = app.register(&lab, "dc1", "dc").await;
    let drc = app.register(&lab, "drc1", "drc").await;
    lab.create_vm("dc1", 100, "4M");
    let pair = app.create_pair(&dc, 100, &drc, 200).await;
    lab.hook("dc1", "vzdump-hang", "1");
    let id = app.queue(&pair, "backup").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, t) = app.get(&format!("/api/v1/tasks/{id}")).await;
        if t["phase"] == "dumping" {
            break;
        }
        assert!(Instant::now() < deadline, "the backup never reached phase dumping within 60 s: {t}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (s, _) = app.post(&format!("/api/v1/tasks/{id}/cancel"), json!({})).await;
    assert_eq!(s, 202);
    let t = app.wait_for_task(&id).await;
    assert_eq!(t["status"], "cancelled", "{t}");
    let (_, archives) = app.get(&format!("/api/v1/pairs/{pair}/archives")).await;
    assert_eq!(archives, json!([]));
    // The killed vzdump's partial files and the lock go away on the DC host.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lab.dump_dir_files("dc1").is_empty() {
        assert!(Instant::now() < deadline, "left on dc1: {:?}", lab.dump_dir_files("dc1"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The VM list comes from the host's Proxmox API.
    let (s, vms) = app.get(&format!("/api/v1/hypervisors/{dc}/vms")).await;
    assert_eq!(s, 200, "{vms}");
    assert!(vms.as_array().unwrap().iter().any(|v| v["vmid"] == 100), "{vms}");
}
