//! `drswitch db backup`: a copy taken while drswitch runs and writes, that
//! restores into a database drswitch starts on with every row; the dump
//! tool never sees the password on its command line or in its environment.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use common::{TestApp, ADMIN, ADMIN_PW};
use serde_json::json;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Loads the backup into a new database and returns its URL: the SQLite
/// copy is a database file already; a MariaDB dump goes through the client.
async fn restore(app: &TestApp, backup: &Path, scratch: &Path) -> String {
    if app.backend == "sqlite" {
        let file = scratch.join("restored.db");
        std::fs::copy(backup, &file).unwrap();
        return format!("sqlite://{}", file.display());
    }
    let server = std::env::var("DRSWITCH_TEST_MYSQL_URL").unwrap();
    let url = url::Url::parse(&server).unwrap();
    let name = format!("restored_{}", uuid::Uuid::new_v4().simple());
    let client = || {
        let mut c = Command::new("mariadb");
        c.args(["--no-defaults", "--protocol=TCP", "-h", url.host_str().unwrap(), "-u", url.username()])
            .arg(format!("--port={}", url.port().unwrap()))
            .env("MYSQL_PWD", url.password().unwrap());
        c
    };
    assert!(client().arg("-e").arg(format!("CREATE DATABASE {name}")).status().unwrap().success());
    let loaded = client().arg(&name).stdin(Stdio::from(std::fs::File::open(backup).unwrap())).output().unwrap();
    assert!(loaded.status.success(), "{}", String::from_utf8_lossy(&loaded.stderr));
    format!("{}/{name}", server.trim_end_matches('/'))
}

#[tokio::test]
async fn a_backup_taken_while_drswitch_writes_restores_with_its_rows() {
    let app = TestApp::spawn().await;
    app.login_admin().await;
    let dc = app.create_hypervisor("dc1", "dc").await;
    let drc = app.create_hypervisor("drc1", "drc").await;
    let pair = app.create_pair(&dc, 100, &drc, 200).await;

    // A writer keeps adding hypervisors while the copy is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let added = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, added) = (stop.clone(), added.clone());
        let (client, base) = (app.client.clone(), app.base.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let n = added.load(Ordering::SeqCst);
                let body =
                    json!({"name": format!("w{n}"), "host": "127.0.0.1", "node": format!("w{n}"), "role": "drc"});
                let r = client.post(format!("{base}/api/v1/hypervisors")).json(&body).send().await.unwrap();
                assert_eq!(r.status(), 201);
                added.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    while added.load(Ordering::SeqCst) < 3 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("drswitch-backup");
    let mut cmd = app.command(&["db", "backup", "--out", out.to_str().unwrap()]);
    let done = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let said = String::from_utf8_lossy(&done.stdout);
    assert!(said.contains(out.to_str().unwrap()), "{said}");
    let method = if app.backend == "sqlite" { "VACUUM INTO" } else { "dump" };
    assert!(said.contains(method), "{said}");
    if app.backend == "mysql" {
        let sql = std::fs::read_to_string(&out).unwrap();
        assert!(sql.contains("CREATE TABLE `hypervisors`") && sql.contains("-- Dump completed"), "{sql:.400}");
    }
    assert_eq!(mode(&out), 0o600, "the copy holds password hashes and encrypted secrets");
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "no temporary file left: {names:?}");

    // An existing file is never overwritten.
    let before = std::fs::read(&out).unwrap();
    let again = app.command(&["db", "backup", "--out", out.to_str().unwrap()]).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(std::fs::read(&out).unwrap(), before);

    // drswitch starts on the restored copy (same SECRET_KEY): the users,
    // the pair and a consistent prefix of the writer's hypervisors are there.
    let scratch = tempfile::tempdir().unwrap();
    let restored = TestApp::spawn_on(restore(&app, &out, scratch.path()).await, app.backend).await;
    assert_eq!(restored.login(ADMIN, ADMIN_PW).await, 200);
    let (s, p) = restored.get(&format!("/api/v1/pairs/{pair}")).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!((p["src_vmid"].as_u64(), p["dst_vmid"].as_u64()), (Some(100), Some(200)));
    let (_, hvs) = restored.get("/api/v1/hypervisors").await;
    let names: Vec<String> = hvs.as_array().unwrap().iter().map(|h| h["name"].as_str().unwrap().to_string()).collect();
    let writes = names.iter().filter(|n| n.starts_with('w')).count();
    assert!(writes >= 3 && writes <= added.load(Ordering::SeqCst), "{names:?}");
    for i in 0..writes {
        assert!(names.contains(&format!("w{i}")), "the copy is one snapshot, without gaps: {names:?}");
    }
    assert!(names.contains(&"dc1".to_string()) && names.contains(&"drc1".to_string()));
}

/// A stand-in for `mariadb-dump` that records what it was given.
fn fake_dump_tool(dir: &Path, fail: bool) {
    let script = format!(
        r#"#!/bin/sh
seen="{seen}"
printf '%s\n' "$@" > "$seen/argv"
env > "$seen/env"
cnf="${{1#--defaults-file=}}"
stat -c %a "$cnf" > "$seen/mode"
cp "$cnf" "$seen/cnf"
{tail}
"#,
        seen = dir.display(),
        tail = if fail {
            "echo \"mariadb-dump: Got error: 1045: Access denied for user 'dr@switch'\" >&2; exit 2"
        } else {
            "echo '-- MariaDB dump'; echo 'CREATE TABLE t (id int);'; echo '-- Dump completed'"
        },
    );
    let tool = dir.join("mariadb-dump");
    std::fs::write(&tool, script).unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn backup_with(tools: &Path, tmp: &Path, out: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_drswitch"))
        .args(["db", "backup", "--out", out.to_str().unwrap()])
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", tools.display()))
        .env("TMPDIR", tmp)
        .env("DATA_DIR", tmp.join("data"))
        .env("DATABASE_URL", "mysql://dr%40switch:s3cr%22t%20pw%23x@db.example:3307/drswitch")
        .output()
        .unwrap()
}

#[test]
fn the_dump_tool_gets_the_password_in_a_private_file_only() {
    let tools = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    fake_dump_tool(tools.path(), false);
    let out = tmp.path().join("drswitch.sql");
    let done = backup_with(tools.path(), tmp.path(), &out);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));

    let seen = |f: &str| std::fs::read_to_string(tools.path().join(f)).unwrap();
    let argv = seen("argv");
    for flag in ["--single-transaction", "--routines", "drswitch"] {
        assert!(argv.lines().any(|l| l == flag), "{flag} in {argv}");
    }
    assert!(argv.lines().next().unwrap().starts_with("--defaults-file="), "first, as the tools require: {argv}");
    for place in [argv.as_str(), seen("env").as_str()] {
        assert!(!place.contains("s3cr"), "the password leaked: {place}");
    }
    assert_eq!(seen("mode").trim(), "600");
    let cnf = seen("cnf");
    assert!(cnf.contains("user=\"dr@switch\"") && cnf.contains("password=\"s3cr\\\"t pw#x\""), "{cnf}");
    assert!(cnf.contains("host=\"db.example\"") && cnf.contains("port=3307"), "{cnf}");

    assert!(std::fs::read_to_string(&out).unwrap().contains("-- Dump completed"));
    assert_eq!(mode(&out), 0o600);
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("drswitch.sql")], "the option file is gone");
}

#[test]
fn a_failed_dump_leaves_no_file_and_says_why() {
    let tools = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    fake_dump_tool(tools.path(), true);
    let out = tmp.path().join("drswitch.sql");
    let done = backup_with(tools.path(), tmp.path(), &out);
    assert!(!done.status.success());
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(err.contains("mariadb-dump failed") && err.contains("Access denied"), "{err}");
    assert!(!err.contains("s3cr"), "{err}");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "no dump, no option file left");
}
