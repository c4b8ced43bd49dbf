//! Schedules fire on time through the real worker and lab, take effect at
//! once, never pile up, catch up missed runs, and fire once across processes.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Timelike, Utc};
use common::lab::Lab;
use common::TestApp;
use serde_json::{json, Value};

async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A seconds-resolution cron that fires once, `secs` from now.
fn once_in(secs: i64) -> String {
    let t = Utc::now() + chrono::Duration::seconds(secs);
    format!("{} {} {} * * *", t.second(), t.minute(), t.hour())
}

async fn tasks_of_schedule(app: &TestApp, schedule: &str) -> Vec<Value> {
    let (_, page) = app.get("/api/v1/tasks?limit=500").await;
    page["items"].as_array().unwrap().iter().filter(|t| t["schedule_id"] == schedule).cloned().collect()
}

/// Tasks of the schedule queued after `t` (a run already firing when the
/// schedule changed may land a moment after; a second is far beyond that).
async fn created_after(app: &TestApp, schedule: &str, t: DateTime<Utc>) -> usize {
    let later = (t + chrono::Duration::seconds(1)).timestamp_millis();
    app.schedule_tasks_created_after(schedule, later).await
}

fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.with_timezone(&Utc))
}

/// A schedule firing every two seconds on a disabled pair: each run is
/// recorded (as skipped) and queues nothing, so its `last_run` shows how far
/// the scheduler has got.
async fn witness_schedule(app: &TestApp, dc: &str, drc: &str) -> String {
    let pair = app.create_pair(dc, 101, drc, 201).await;
    let (s, p) = app.put(&format!("/api/v1/pairs/{pair}"), json!({"enabled": false})).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["enabled"], false, "{p}");
    let (s, w) = app.post("/api/v1/schedules", json!({"pair_id": pair, "cron": "*/2 * * * * *"})).await;
    assert_eq!(s, 201, "{w}");
    w["id"].as_str().unwrap().to_string()
}

/// Waits until the scheduler has finished every round due up to `t`: the
/// witness ran at a due time after `t`, and one process runs its rounds one
/// after another, each firing every schedule then due.
async fn wait_scheduler_past(app: &TestApp, witness: &str, t: DateTime<Utc>) {
    wait_until(&format!("the scheduler to run past {t}"), || async {
        let (_, w) = app.get(&format!("/api/v1/schedules/{witness}")).await;
        parse_time(&w["last_run"]).is_some_and(|run| run > t)
    })
    .await;
}

/// A second `drswitch serve`, killed if the test ends early.
struct Serve(Child);

impl Serve {
    /// SIGTERM, then waits (bounded) for the exit; true if it exited cleanly.
    /// A scheduler round in flight finishes before the process exits.
    async fn terminate(&mut self) -> bool {
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status.success();
            }
            assert!(Instant::now() < deadline, "drswitch serve did not exit within 60 s of SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_schedule_fires_runs_and_stops_when_deleted_or_disabled() {
    let app = TestApp::spawn_with(&[("SCHEDULE_SECONDS", "true")]).await;
    app.login_admin().await;
    let lab = Lab::start(&["dc1", "drc1"], &app.pubkey());
    let dc = app.register(&lab, "dc1", "dc").await;
    let drc = app.register(&lab, "drc1", "drc").await;
    lab.create_vm("dc1", 100, "2M");
    let pair = app.create_pair(&dc, 100, &drc, 200).await;

    let (s, sched) = app.post("/api/v1/schedules", json!({"pair_id": pair, "cron": "*/2 * * * * *"})).await;
    assert_eq!(s, 201, "{sched}");
    let id = sched["id"].as_str().unwrap().to_string();
    wait_until("the first scheduled task", || async {
        app.get(&format!("/api/v1/schedules/{id}")).await.1["last_task_id"].is_string()
    })
    .await;
    let (_, sched) = app.get(&format!("/api/v1/schedules/{id}")).await;
    assert_eq!(sched["last_result"], "queued");
    assert!(sched["last_run"].is_string());
    let t = app.wait_for_task(sched["last_task_id"].as_str().unwrap()).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(t["schedule_id"], id.as_str());

    // Disabled: no next run, and nothing fires over the next two due instants.
    let witness = witness_schedule(&app, &dc, &drc).await;
    let (s, sched) = app.put(&format!("/api/v1/schedules/{id}"), json!({"enabled": false})).await;
    assert_eq!(s, 200);
    assert!(sched["next_run"].is_null());
    let disabled_at = Utc::now();
    // Past the one-second allowance of `created_after`, two due instants of
    // the every-two-seconds cron fall within four more seconds.
    wait_scheduler_past(&app, &witness, disabled_at + chrono::Duration::seconds(1 + 4)).await;
    assert_eq!(created_after(&app, &id, disabled_at).await, 0, "a disabled schedule fired");
    let (_, sched) = app.get(&format!("/api/v1/schedules/{id}")).await;
    let last_run = parse_time(&sched["last_run"]).unwrap();
    assert!(last_run <= disabled_at, "a disabled schedule ran: {sched}");

    // A changed time is used from the next run on.
    let (s, sched) = app
        .put(&format!("/api/v1/schedules/{id}"), json!({"enabled": true, "hour": 3, "minute": 15, "timezone": "UTC"}))
        .await;
    assert_eq!(s, 200, "{sched}");
    assert!(sched["next_run"].as_str().unwrap().ends_with("T03:15:00Z"), "{sched}");

    // Deleted: never fires again.
    let (s, sched2) = app.post("/api/v1/schedules", json!({"pair_id": pair, "cron": "* * * * * *"})).await;
    assert_eq!(s, 201);
    let id2 = sched2["id"].as_str().unwrap().to_string();
    wait_until("the every-second schedule", || async { !tasks_of_schedule(&app, &id2).await.is_empty() }).await;
    let (s, _) = app.delete(&format!("/api/v1/schedules/{id2}")).await;
    assert_eq!(s, 204);
    let deleted_at = Utc::now();
    // Past the one-second allowance, two due instants of the every-second cron.
    wait_scheduler_past(&app, &witness, deleted_at + chrono::Duration::seconds(1 + 2)).await;
    assert_eq!(created_after(&app, &id2, deleted_at).await, 0, "a deleted schedule fired");
}

#[tokio::test]
async fn firing_while_queued_adds_none() {
    let app = TestApp::spawn_with(&[("SCHEDULE_SECONDS", "true"), ("WORKER_ENABLED", "false")]).await;
    app.login_admin().await;
    let dc = app.create_hypervisor("dc1", "dc").await;
    let drc = app.create_hypervisor("drc1", "drc").await;
    let pair = app.create_pair(&dc, 100, &drc, 100).await;
    let (s, sched) = app.post("/api/v1/schedules", json!({"pair_id": pair, "cron": "* * * * * *"})).await;
    assert_eq!(s, 201, "{sched}");
    let id = sched["id"].as_str().unwrap().to_string();
    wait_until("a skipped run", || async {
        app.get(&format!("/api/v1/schedules/{id}")).await.1["last_result"].as_str().unwrap_or("").starts_with("skipped")
    })
    .await;
    let (_, sched) = app.get(&format!("/api/v1/schedules/{id}")).await;
    assert!(sched["last_result"].as_str().unwrap().contains("already queued or running"), "{sched}");
    let queued = tasks_of_schedule(&app, &id).await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0]["status"], "queued");
}

#[tokio::test]
async fn same_host_runs_back_to_back_and_different_hosts_overlap() {
    // A one-minute poll: any gap shorter than that comes from the worker
    // waking the moment a task ends, not from polling.
    let app =
        TestApp::spawn_with(&[("SCHEDULE_SECONDS", "true"), ("WORKER_CONCURRENCY", "4"), ("WORKER_POLL_MS", "60000")])
            .await;
    app.login_admin().await;
    let lab = Lab::start(&["dc1", "dc2", "dc3", "dc4", "drc1"], &app.pubkey());
    let drc = app.register(&lab, "drc1", "drc").await;
    let mut dcs = Vec::new();
    for h in ["dc1", "dc2", "dc3", "dc4"] {
        dcs.push(app.register(&lab, h, "dc").await);
    }
    // Four VMs on dc1 (the seed's scenario) and one VM on each of dc2..dc4.
    let mut same_host = Vec::new();
    for v in 0..4u32 {
        lab.create_vm("dc1", 100 + v, "2M");
        same_host.push(app.create_pair(&dcs[0], 100 + v, &drc, 300 + v).await);
    }
    let mut spread = vec![same_host[0].clone()];
    for (i, h) in ["dc2", "dc3", "dc4"].iter().enumerate() {
        lab.create_vm(h, 100, "2M");
        spread.push(app.create_pair(&dcs[i + 1], 100, &drc, 310 + i as u32).await);
    }
    let cron = once_in(3);
    let mut ids = Vec::new();
    for p in same_host.iter().chain(spread[1..].iter()) {
        let (s, sc) = app.post("/api/v1/schedules", json!({"pair_id": p, "cron": cron})).await;
        assert_eq!(s, 201, "{sc}");
        ids.push(sc["id"].as_str().unwrap().to_string());
    }
    let mut task_ids = Vec::new();
    for id in &ids {
        wait_until("the scheduled task", || async {
            app.get(&format!("/api/v1/schedules/{id}")).await.1["last_task_id"].is_string()
        })
        .await;
        let (_, sc) = app.get(&format!("/api/v1/schedules/{id}")).await;
        let t = app.wait_for_task(sc["last_task_id"].as_str().unwrap()).await;
        assert_eq!(t["status"], "succeeded", "{t}");
        task_ids.push(t["id"].as_str().unwrap().to_string());
    }
    let mut spans = Vec::new();
    for id in &task_ids {
        spans.push(app.task_times(id).await);
    }
    let mut dc1: Vec<(i64, i64)> = spans[..4].to_vec();
    dc1.sort();
    for w in dc1.windows(2) {
        assert!(w[0].1 <= w[1].0, "same-host tasks overlapped: {w:?}");
        assert!(w[1].0 - w[0].1 < 5000, "idle gap of {} ms between same-host tasks", w[1].0 - w[0].1);
    }
    let others = &spans[4..];
    let overlaps = others.iter().filter(|o| dc1.iter().any(|d| o.0 < d.1 && d.0 < o.1)).count();
    assert!(overlaps > 0, "tasks on different hosts should overlap with WORKER_CONCURRENCY=4: {spans:?}");
}

#[tokio::test]
async fn missed_runs_inside_and_outside_the_grace_window() {
    let mut app = TestApp::spawn_with(&[("WORKER_ENABLED", "false")]).await;
    app.login_admin().await;
    let dc = app.create_hypervisor("dc1", "dc").await;
    let drc = app.create_hypervisor("drc1", "drc").await;
    let p1 = app.create_pair(&dc, 100, &drc, 100).await;
    let p2 = app.create_pair(&dc, 101, &drc, 101).await;
    let (s, recent) = app.post("/api/v1/schedules", json!({"pair_id": p1, "hour": 2, "minute": 0})).await;
    assert_eq!(s, 201, "{recent}");
    let (s, old) = app.post("/api/v1/schedules", json!({"pair_id": p2, "hour": 2, "minute": 0})).await;
    assert_eq!(s, 201, "{old}");
    let recent = recent["id"].as_str().unwrap().to_string();
    let old = old["id"].as_str().unwrap().to_string();

    // drswitch goes down; the runs fall due while it is down.
    app.kill();
    let now = Utc::now().timestamp_millis();
    for (id, ago_ms) in [(&recent, 10 * 60_000), (&old, 3 * 3_600_000)] {
        app.set_schedule_next_run(id, now - ago_ms).await;
    }
    app.start().await;
    app.login_admin().await;

    wait_until("catch-up", || async {
        let a = app.get(&format!("/api/v1/schedules/{recent}")).await.1;
        let b = app.get(&format!("/api/v1/schedules/{old}")).await.1;
        a["last_result"].is_string() && b["last_result"].is_string()
    })
    .await;
    let (_, a) = app.get(&format!("/api/v1/schedules/{recent}")).await;
    assert_eq!(a["last_result"], "queued", "{a}");
    assert_eq!(tasks_of_schedule(&app, &recent).await.len(), 1);
    let (_, b) = app.get(&format!("/api/v1/schedules/{old}")).await;
    assert!(b["last_result"].as_str().unwrap().starts_with("missed"), "{b}");
    assert!(tasks_of_schedule(&app, &old).await.is_empty());
    for s in [&a, &b] {
        assert!(s["next_run"].as_str().unwrap().ends_with("T02:00:00Z"), "moved on to the next 02:00: {s}");
    }
}

#[tokio::test]
async fn two_serve_processes_enqueue_each_due_run_once() {
    let mut app = TestApp::spawn_with(&[("SCHEDULE_SECONDS", "true")]).await;
    app.login_admin().await;
    let log2 = app.dir.path().join("second.log");
    let f = std::fs::File::create(&log2).unwrap();
    let mut second = Serve(
        app.command(&["serve"])
            .env("LISTEN", "127.0.0.1:0")
            .env("SCHEDULE_SECONDS", "true")
            .stdout(Stdio::from(f.try_clone().unwrap()))
            .stderr(Stdio::from(f))
            .spawn()
            .unwrap(),
    );
    wait_until("the second process", || async {
        std::fs::read_to_string(&log2).unwrap_or_default().contains("scheduler started")
    })
    .await;
    // Unpinned hosts: each task fails at once, so the next due run is never
    // skipped as a pile-up and every second brings a new task.
    let dc = app.create_hypervisor("dc1", "dc").await;
    let drc = app.create_hypervisor("drc1", "drc").await;
    let pair = app.create_pair(&dc, 100, &drc, 100).await;
    let (s, sched) = app.post("/api/v1/schedules", json!({"pair_id": pair, "cron": "* * * * * *"})).await;
    assert_eq!(s, 201, "{sched}");
    let id = sched["id"].as_str().unwrap().to_string();
    wait_until("five runs", || async { tasks_of_schedule(&app, &id).await.len() >= 5 }).await;
    let (s, _) = app.delete(&format!("/api/v1/schedules/{id}")).await;
    assert_eq!(s, 204);
    // Stop both processes before counting: a round that was firing the
    // schedule as it was deleted finishes before its process exits, so the
    // counts below are final. The first comes back for the API.
    let clean = second.terminate().await;
    assert!(clean, "the second process did not stop cleanly:\n{}", std::fs::read_to_string(&log2).unwrap());
    assert!(app.terminate(), "the first process did not stop cleanly:\n{}", app.log());
    app.start().await;
    app.login_admin().await;

    let fired = |text: String| text.lines().filter(|l| l.contains("schedule fired") && l.contains(&id)).count();
    let by_first = fired(app.log());
    let by_second = fired(std::fs::read_to_string(&log2).unwrap());
    let rows = app.schedule_runs(&id).await;
    assert_eq!(by_first + by_second, rows.len(), "each due run fired in exactly one process");
    let queued_runs = rows.iter().filter(|(_, result)| result == "queued").count();
    let tasks = tasks_of_schedule(&app, &id).await;
    assert_eq!(tasks.len(), queued_runs, "one task per queued run");
    assert!(tasks.len() >= 5);
}

/// `serve` dies inside the firing of a run, after next_run moved on and the
/// task was written but before the commit: the run is neither lost nor
/// queued twice. Debug builds die there on `DRSWITCH_DEBUG_DIE_FIRING`.
#[cfg(debug_assertions)]
#[tokio::test]
async fn a_process_killed_while_firing_loses_no_run() {
    let mut app = TestApp::spawn_with(&[("WORKER_ENABLED", "false")]).await;
    app.login_admin().await;
    let dc = app.create_hypervisor("dc1", "dc").await;
    let drc = app.create_hypervisor("drc1", "drc").await;
    let pair = app.create_pair(&dc, 100, &drc, 100).await;
    let (s, sched) = app.post("/api/v1/schedules", json!({"pair_id": pair, "hour": 2, "minute": 0})).await;
    assert_eq!(s, 201, "{sched}");
    let id = sched["id"].as_str().unwrap().to_string();

    app.kill();
    let due = Utc::now().timestamp_millis() + 2_000;
    app.set_schedule_next_run(&id, due).await;
    let mut dying = Serve(
        app.command(&["serve"])
            .env("LISTEN", "127.0.0.1:0")
            .env("DRSWITCH_DEBUG_DIE_FIRING", &id)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = dying.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not reach the firing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(6), "serve was to abort inside the firing: {status}");
    assert!(app.schedule_runs(&id).await.is_empty(), "the dead firing left no run behind");
    assert_eq!(app.schedule_tasks_created_after(&id, 0).await, 0, "nor a task");

    // The next process fires the run (still due, inside the grace window) once.
    app.start().await;
    app.login_admin().await;
    wait_until("the run to fire", || async { !app.schedule_runs(&id).await.is_empty() }).await;
    let runs = app.schedule_runs(&id).await;
    assert_eq!(runs, vec![(due, "queued".to_string())]);
    assert_eq!(tasks_of_schedule(&app, &id).await.len(), 1);
    let (_, s) = app.get(&format!("/api/v1/schedules/{id}")).await;
    assert_eq!(s["last_result"], "queued", "{s}");
    assert_eq!(s["last_task_id"], tasks_of_schedule(&app, &id).await[0]["id"], "{s}");
}
