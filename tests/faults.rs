//! The fault suite: each scenario breaks something on the worst day (a
//! worker killed mid-hop, a cut connection, full storage, failing Proxmox
//! commands, a database restart, racing workers, a changed host key, a
//! clock jump, a process dying while a schedule fires) and then counts what
//! a sysadmin would care about: tasks stuck, archives corrupt or lost,
//! replicas lost, secrets leaked, and the time until everything settled.
//! Every row must be 0 / 0 / 0 / 0. With `DRSWITCH_FAULT_TABLE=<file>` each
//! row is also appended to that file (bench/faults.py collects them).

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
#[cfg(debug_assertions)]
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::lab::{sha256_of, Lab};
use common::{lab_setup, LabSetup, TestApp, ADMIN_PW};
use serde_json::{json, Value};

/// Scenarios run side by side, except the database restart, which takes
/// the database away from everyone.
static DB_LOCK: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

const FINAL: [&str; 3] = ["succeeded", "failed", "cancelled"];

struct Scenario {
    name: &'static str,
    app: TestApp,
    lab: Lab,
    dc: String,
    drc: String,
    pair: String,
    /// Disk contents the replica may hold: the one before the fault, or the
    /// one the faulty task was putting there.
    good_replicas: Vec<String>,
    /// Archives that existed before the fault.
    archives_before: Vec<String>,
}

/// The lab, drswitch and a pair whose replica exists; the DC disk then
/// changes, so the task under the fault carries new data.
async fn scenario(name: &'static str, env: &[(&str, &str)], disk: &str) -> Scenario {
    let mut env = env.to_vec();
    // Short enough that a killed worker's task comes back soon, long
    // enough that a loaded machine's stalls do not lose a live lease.
    env.push(("TASK_LEASE_SECS", "8"));
    let LabSetup { app, lab, dc, drc } = lab_setup(&env).await;
    lab.create_vm("dc1", 100, disk);
    let pair = app.create_pair(&dc, 100, &drc, 200).await;
    let (s, v) = app.put(&format!("/api/v1/pairs/{pair}"), json!({"compress": "none", "keep_last": 50})).await;
    assert_eq!(s, 200, "{v}");
    let t = app.wait_for_task(&app.queue(&pair, "replicate").await).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let before = lab.disk_sha("drc1", 200);
    let path = lab.disk_path("dc1", 100);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[..4096].fill(0x5A);
    std::fs::write(&path, &bytes).unwrap();
    let after = lab.disk_sha("dc1", 100);
    let archives_before = archives(&app, &pair).await.iter().map(|a| a["id"].as_str().unwrap().to_string()).collect();
    Scenario { name, app, lab, dc, drc, pair, good_replicas: vec![before, after], archives_before }
}

async fn archives(app: &TestApp, pair: &str) -> Vec<Value> {
    let (s, v) = app.get(&format!("/api/v1/pairs/{pair}/archives")).await;
    assert_eq!(s, 200, "{v}");
    v.as_array().unwrap().clone()
}

async fn all_tasks(app: &TestApp) -> Vec<Value> {
    let (_, page) = app.get("/api/v1/tasks?limit=500").await;
    page["items"].as_array().cloned().unwrap_or_default()
}

async fn set(app: &TestApp, path: &str, body: Value) {
    let (s, v) = app.put(path, body).await;
    assert_eq!(s, 200, "{path}: {v}");
}

/// Waits until the task is in `phase` with at least `fraction` of its bytes.
async fn reach(app: &TestApp, id: &str, phase: &str, fraction: f64) -> Value {
    app.wait_until(id, phase, |t| {
        let (d, n) = (t["bytes_done"].as_f64().unwrap_or(0.0), t["bytes_total"].as_f64().unwrap_or(0.0));
        t["phase"] == phase && (fraction == 0.0 || (n > 0.0 && d >= n * fraction))
    })
    .await
}

/// Runs a command as root inside a lab host (its own mounts), with
/// drswitch's key and the host's pinned key.
fn on_host(app: &TestApp, lab: &Lab, host: &str, cmd: &str) {
    let h = lab.host(host);
    let known = app.data_dir().join(format!("known-{host}"));
    std::fs::write(&known, format!("{}\n", h["known_hosts_line"].as_str().unwrap())).unwrap();
    let out = Command::new("ssh")
        .args(["-i", app.data_dir().join("ssh/id_ed25519").to_str().unwrap()])
        .args(["-p", &h["ssh_port"].to_string(), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known.display()))
        .args(["-l", "root", h["address"].as_str().unwrap(), cmd])
        .output()
        .unwrap();
    assert!(out.status.success(), "{cmd} on {host}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The row's figures, counted after everything settled.
struct Row {
    stuck: usize,
    archives_bad: usize,
    replicas_lost: usize,
    secrets_leaked: usize,
    recover_secs: f64,
}

impl Scenario {
    /// Waits (bounded) until no task is queued or running, then counts.
    async fn settle(&self, fault_at: Instant) -> Row {
        let deadline = Instant::now() + Duration::from_secs(180);
        let mut tasks = all_tasks(&self.app).await;
        while tasks.iter().any(|t| !FINAL.contains(&t["status"].as_str().unwrap_or(""))) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            tasks = all_tasks(&self.app).await;
        }
        let recover_secs = fault_at.elapsed().as_secs_f64();
        let stuck = tasks.iter().filter(|t| !FINAL.contains(&t["status"].as_str().unwrap_or(""))).count();

        // Every recorded archive is there with its checksum; none of the
        // earlier ones went missing; no partial file is taken for one.
        let list = archives(&self.app, &self.pair).await;
        let dir = self.app.data_dir().join("archives").join(&self.pair);
        let mut archives_bad = list
            .iter()
            .filter(|a| {
                let path = dir.join(a["file_name"].as_str().unwrap());
                !path.exists() || sha256_of(&path) != a["sha256"].as_str().unwrap()
            })
            .count();
        archives_bad += self.archives_before.iter().filter(|id| !list.iter().any(|a| a["id"] == id.as_str())).count();

        let replicas_lost = usize::from(
            self.lab.vm_status("drc1", 200) == "missing"
                || !self.good_replicas.contains(&self.lab.disk_sha("drc1", 200)),
        );

        // Secrets the scenario knows, looked for everywhere a person could read.
        let mut secrets: Vec<String> = ["dc1", "drc1"]
            .iter()
            .map(|h| self.lab.host(h)["api_token_secret"].as_str().unwrap().to_string())
            .collect();
        secrets.push(ADMIN_PW.to_string());
        secrets.extend(self.app.env().into_iter().filter(|(k, _)| k == "SECRET_KEY").map(|(_, v)| v));
        let mut seen = self.app.log();
        for t in &tasks {
            let (_, full) = self.app.get(&format!("/api/v1/tasks/{}", t["id"].as_str().unwrap())).await;
            seen.push_str(&full.to_string());
        }
        for path in ["/api/v1/hypervisors", "/api/v1/pairs", "/api/v1/alerts", "/api/v1/events"] {
            seen.push_str(&self.app.get(path).await.1.to_string());
        }
        let secrets_leaked = secrets.iter().filter(|s| seen.contains(s.as_str())).count();
        Row { stuck, archives_bad, replicas_lost, secrets_leaked, recover_secs }
    }

    /// Prints the row, appends it to the table file, and holds it to zeros.
    fn report(&self, row: Row, outcome: &str) {
        let line = format!(
            "| {} | {} | {} | {} | {} | {} | {:.1} s | {} |",
            self.name,
            self.app.backend,
            row.stuck,
            row.archives_bad,
            row.replicas_lost,
            row.secrets_leaked,
            row.recover_secs,
            outcome
        );
        println!("{line}");
        if let Ok(file) = std::env::var("DRSWITCH_FAULT_TABLE") {
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(file).unwrap();
            writeln!(f, "{line}").unwrap();
        }
        assert_eq!(
            (row.stuck, row.archives_bad, row.replicas_lost, row.secrets_leaked),
            (0, 0, 0, 0),
            "{line}\n{}",
            self.app.log()
        );
    }

    /// One task's end, in a few words for the table.
    async fn outcome(&self, id: &str) -> (String, Value) {
        let (_, t) = self.app.get(&format!("/api/v1/tasks/{id}")).await;
        let s = match t["status"].as_str().unwrap_or("") {
            "succeeded" => format!("succeeded (attempt {})", t["attempt"]),
            other => format!("{other}: {}", t["error"].as_str().unwrap_or("")),
        };
        (s, t)
    }
}

/// Kills `serve` (worker and all) while a replicate is in `phase`, starts it
/// again, and expects the task to finish on its next attempt.
async fn killed_during(name: &'static str, phase: &str, prepare: impl AsyncFnOnce(&Scenario)) {
    let _db = DB_LOCK.read().await;
    let mut s = scenario(name, &[], "16M").await;
    prepare(&s).await;
    let id = s.app.queue(&s.pair, "replicate").await;
    reach(&s.app, &id, phase, if phase == "restoring" { 0.0 } else { 0.3 }).await;
    let fault = Instant::now();
    s.app.kill();
    s.app.start().await;
    s.app.login_admin().await;
    let row = s.settle(fault).await;
    let (outcome, t) = s.outcome(&id).await;
    s.report(row, &outcome);
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(s.lab.disk_sha("drc1", 200), s.good_replicas[1], "the retry put the new data there");
}

#[tokio::test]
async fn worker_killed_while_dumping() {
    killed_during("worker SIGKILL during dump", "dumping", async |s| {
        s.lab.hook("dc1", "vzdump-slow", "2000000");
    })
    .await;
}

#[tokio::test]
async fn worker_killed_while_pulling() {
    killed_during("worker SIGKILL during pull", "pulling", async |s| {
        set(&s.app, &format!("/api/v1/hypervisors/{}", s.dc), json!({"bwlimit_kib": 2048})).await;
    })
    .await;
}

#[tokio::test]
async fn worker_killed_while_pushing() {
    killed_during("worker SIGKILL during push", "pushing", async |s| {
        set(&s.app, &format!("/api/v1/hypervisors/{}", s.drc), json!({"bwlimit_kib": 2048})).await;
    })
    .await;
}

#[tokio::test]
async fn worker_killed_while_restoring() {
    killed_during("worker SIGKILL during restore", "restoring", async |s| {
        s.lab.hook("drc1", "qmrestore-slow", "2000000");
    })
    .await;
}

#[tokio::test]
async fn ssh_cut_mid_transfer() {
    let _db = DB_LOCK.read().await;
    let s = scenario("ssh connection cut mid-transfer", &[], "16M").await;
    set(&s.app, &format!("/api/v1/hypervisors/{}", s.dc), json!({"bwlimit_kib": 2048})).await;
    let id = s.app.queue(&s.pair, "replicate").await;
    reach(&s.app, &id, "pulling", 0.3).await;
    let fault = Instant::now();
    s.lab.drop_ssh("dc1");
    let row = s.settle(fault).await;
    let (outcome, t) = s.outcome(&id).await;
    s.report(row, &outcome);
    assert_eq!(t["status"], "succeeded", "{t}");
}

/// A small filesystem over a directory of a lab host (inside its own
/// mounts), or of the middleware, while the task runs; removed after.
async fn storage_full(name: &'static str, side: &str) {
    let _db = DB_LOCK.read().await;
    let s = scenario(name, &[], "16M").await;
    let archive_dir = s.app.data_dir().join("archives").join(&s.pair);
    let full_dir = match side {
        "middleware" => {
            // Room for what is stored, not for one more archive.
            let used: u64 =
                std::fs::read_dir(&archive_dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
            let stash = s.app.data_dir().join("stash");
            std::fs::rename(&archive_dir, &stash).unwrap();
            std::fs::create_dir(&archive_dir).unwrap();
            let size = format!("size={}k", used / 1024 + 2048);
            let st = Command::new("mount").args(["-t", "tmpfs", "-o", &size, "tmpfs"]).arg(&archive_dir).status();
            assert!(st.unwrap().success());
            for e in std::fs::read_dir(&stash).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), archive_dir.join(e.file_name())).unwrap();
            }
            None
        }
        host => {
            on_host(&s.app, &s.lab, host, "mount -t tmpfs -o size=2m tmpfs /var/lib/vz/dump");
            Some(host)
        }
    };
    let id = s.app.queue(&s.pair, "replicate").await;
    let fault = Instant::now();
    let row = s.settle(fault).await;
    let (outcome, t) = s.outcome(&id).await;
    match full_dir {
        Some(host) => on_host(&s.app, &s.lab, host, "umount /var/lib/vz/dump"),
        None => {
            let _ = Command::new("umount").arg(&archive_dir).status();
        }
    }
    s.report(row, &outcome);
    assert_eq!(t["status"], "failed", "{t}");
    let err = t["error"].as_str().unwrap_or("");
    assert!(err.contains("free") || err.contains("space"), "the error says the storage is full: {err}");
}

#[tokio::test]
async fn dc_storage_full() {
    storage_full("DC storage full", "dc1").await;
}

#[tokio::test]
async fn middleware_storage_full() {
    storage_full("middleware storage full", "middleware").await;
}

#[tokio::test]
async fn drc_storage_full() {
    storage_full("DRC storage full", "drc1").await;
}

/// A Proxmox command fails on the DRC host during a replicate.
async fn drc_command_fails(name: &'static str, hook: &str) {
    let _db = DB_LOCK.read().await;
    let s = scenario(name, &[], "8M").await;
    s.lab.hook("drc1", hook, "simulated failure");
    let id = s.app.queue(&s.pair, "replicate").await;
    let fault = Instant::now();
    let row = s.settle(fault).await;
    let (outcome, t) = s.outcome(&id).await;
    s.report(row, &outcome);
    assert_eq!(t["status"], "failed", "{t}");
    assert!(t["error"].as_str().unwrap().contains("rolled back"), "{t}");
    assert_eq!(s.lab.disk_sha("drc1", 200), s.good_replicas[0], "the previous replica is back");
    assert_eq!(s.lab.vm_status("drc1", 200), "running");
}

#[tokio::test]
async fn qmrestore_fails() {
    drc_command_fails("qmrestore failure", "qmrestore-fail").await;
}

#[tokio::test]
async fn qm_start_fails_after_a_good_restore() {
    drc_command_fails("qm start failure after a good restore", "qm-start-fail").await;
}

#[tokio::test]
async fn serve_terminated_during_a_task() {
    let _db = DB_LOCK.read().await;
    let mut s = scenario("serve SIGTERM during a task", &[], "16M").await;
    set(&s.app, &format!("/api/v1/hypervisors/{}", s.dc), json!({"bwlimit_kib": 2048})).await;
    let id = s.app.queue(&s.pair, "replicate").await;
    reach(&s.app, &id, "pulling", 0.3).await;
    let fault = Instant::now();
    assert!(s.app.terminate(), "serve exits cleanly on SIGTERM");
    s.app.start().await;
    s.app.login_admin().await;
    let row = s.settle(fault).await;
    let (outcome, t) = s.outcome(&id).await;
    s.report(row, &outcome);
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(t["attempt"], 1, "a task handed back at shutdown does not count an attempt: {t}");
}

#[tokio::test]
async fn database_restarted_during_a_task() {
    let _db = DB_LOCK.write().await;
    let Ok(dir) = std::env::var("DRSWITCH_TEST_MYSQL_DIR") else {
        println!("| MariaDB restarted during a task | sqlite | n/a | n/a | n/a | n/a | n/a | SQLite has no server |");
        return;
    };
    let s = scenario("MariaDB restarted during a task", &[], "16M").await;
    if s.app.backend != "mysql" {
        return;
    }
    set(&s.app, &format!("/api/v1/hypervisors/{}", s.dc), json!({"bwlimit_kib": 2048})).await;
    let id = s.app.queue(&s.pair, "replicate").await;
    reach(&s.app, &id, "pulling", 0.2).await;
    let fault = Instant::now();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/mariadb.sh");
    let st = Command::new("bash").args([script, "restart", &dir]).stdout(Stdio::null()).status().unwrap();
    assert!(st.success(), "mariadb restart");
    let row = s.settle(fault).await;
    let (outcome, t) = s.outcome(&id).await;
    s.report(row, &outcome);
    // Either the task rode it out or it stopped and was tried again.
    assert_eq!(t["status"], "succeeded", "{t}");
}

#[tokio::test]
async fn two_workers_race_for_fifty_tasks() {
    let _db = DB_LOCK.read().await;
    let s = scenario("two workers racing for 50 tasks", &[("WORKER_CONCURRENCY", "1")], "1M").await;
    // A second pair whose restores hold only drc1, while the first pair's
    // backups hold only dc1: two tasks can run at a time, each process runs
    // one, so both claim from the same queue at once.
    s.lab.create_vm("dc1", 101, "1M");
    let second = s.app.create_pair(&s.dc, 101, &s.drc, 201).await;
    let t = s.app.wait_for_task(&s.app.queue(&second, "replicate").await).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let other = s.app.second_process().await;
    let fault = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..25 {
        ids.push(s.app.queue(&s.pair, "backup").await);
        ids.push(s.app.queue(&second, "restore").await);
    }
    let row = s.settle(fault).await;
    let mut runs = 0;
    for id in &ids {
        let (_, t) = s.app.get(&format!("/api/v1/tasks/{id}")).await;
        assert_eq!(t["status"], "succeeded", "{t}");
        assert_eq!(t["attempt"], 1, "{t}");
        runs += t["log"].to_string().matches("attempt 1 of").count();
    }
    let stored = archives(&s.app, &s.pair).await.len() - s.archives_before.len();
    let by_other = other.log().matches("task finished").count();
    let outcome =
        format!("{} tasks, {runs} runs, {stored} new archives; {by_other} run by the second worker", ids.len());
    s.report(row, &outcome);
    assert_eq!((runs, stored), (50, 25), "each task ran once; each backup stored one archive");
    assert!(by_other > 0, "both workers claimed tasks");
}

#[tokio::test]
async fn host_key_changed_between_tasks() {
    let _db = DB_LOCK.read().await;
    let s = scenario("host key changed between tasks", &[], "8M").await;
    let other_key = s.lab.host("drc1")["known_hosts_line"].as_str().unwrap().split_once(' ').unwrap().1.to_string();
    s.app.set_host_key(&s.dc, &other_key).await;
    let fault = Instant::now();
    let id = s.app.queue(&s.pair, "replicate").await;
    let row = s.settle(fault).await;
    let (outcome, t) = s.outcome(&id).await;
    s.report(row, &outcome);
    assert_eq!(t["status"], "failed", "{t}");
    assert!(t["error"].as_str().unwrap().contains("host key"), "{t}");
    let (_, report) = s.app.post(&format!("/api/v1/hypervisors/{}/check", s.dc), json!({"repin": true})).await;
    assert_eq!(report["ok"], true, "{report}");
    let t = s.app.wait_for_task(&s.app.queue(&s.pair, "replicate").await).await;
    assert_eq!(t["status"], "succeeded", "after the re-pin: {t}");
}

#[tokio::test]
async fn clock_jumps_an_hour_during_a_schedule_window() {
    let _db = DB_LOCK.read().await;
    let s =
        scenario("clock jumps an hour forward", &[("SCHEDULE_SECONDS", "true"), ("SCHEDULE_GRACE_SECS", "7200")], "1M")
            .await;
    let (st, sched) = s.app.post("/api/v1/schedules", json!({"pair_id": s.pair, "cron": "0 * * * * *"})).await;
    assert_eq!(st, 201, "{sched}");
    let id = sched["id"].as_str().unwrap().to_string();
    // The clock jumped: the stored next run is an hour behind "now", with
    // sixty minutes of runs in between.
    let fault = Instant::now();
    let due = chrono::Utc::now().timestamp_millis() - 3_600_000;
    s.app.set_schedule_next_run(&id, due).await;
    let mut waited = 0;
    while s.app.schedule_runs(&id).await.is_empty() && waited < 600 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    let row = s.settle(fault).await;
    let runs = s.app.schedule_runs(&id).await;
    let outcome = format!("{} run(s) for 60 slots", runs.iter().filter(|r| r.0 <= due).count());
    s.report(row, &outcome);
    assert_eq!(runs.first().map(|r| r.0), Some(due), "{runs:?}");
    assert_eq!(runs.iter().filter(|r| r.0 <= due + 60_000).count(), 1, "one run, not sixty: {runs:?}");
    let (_, now) = s.app.get(&format!("/api/v1/schedules/{id}")).await;
    let next = chrono::DateTime::parse_from_rfc3339(now["next_run"].as_str().unwrap()).unwrap();
    assert!(next.timestamp_millis() > due + 3_500_000, "next_run moved on past the jump: {now}");
}

/// Debug builds only: release builds have no die probe.
#[cfg(debug_assertions)]
#[tokio::test]
async fn serve_killed_while_a_schedule_fires() {
    let _db = DB_LOCK.read().await;
    let mut s = scenario("serve killed while a schedule fires", &[], "1M").await;
    let (st, sched) = s.app.post("/api/v1/schedules", json!({"pair_id": s.pair, "hour": 2, "minute": 0})).await;
    assert_eq!(st, 201, "{sched}");
    let id = sched["id"].as_str().unwrap().to_string();
    s.app.kill();
    let due = chrono::Utc::now().timestamp_millis() + 2_000;
    s.app.set_schedule_next_run(&id, due).await;
    let mut dying = s
        .app
        .command(&["serve"])
        .env("LISTEN", "127.0.0.1:0")
        .env("DRSWITCH_DEBUG_DIE_FIRING", &id)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let fault = Instant::now();
    let status = loop {
        if let Some(status) = dying.try_wait().unwrap() {
            break status;
        }
        assert!(fault.elapsed() < Duration::from_secs(60), "serve did not reach the firing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.signal(), Some(6), "serve was to abort inside the firing: {status}");
    s.app.start().await;
    s.app.login_admin().await;
    while s.app.schedule_runs(&id).await.is_empty() && fault.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let row = s.settle(fault).await;
    let runs = s.app.schedule_runs(&id).await;
    s.report(row, &format!("{} run(s) recorded", runs.len()));
    assert_eq!(runs, vec![(due, "queued".to_string())]);
}
