//! The command line: migrate, user create, pubkey, bad configuration.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::process::Stdio;

#[tokio::test]
async fn migrate_twice_is_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = common::fresh_database(dir.path()).await;
    for _ in 0..2 {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_drswitch"))
            .arg("migrate")
            .env("DATABASE_URL", &url)
            .env("DATA_DIR", dir.path().join("data"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
    }
}

#[tokio::test]
async fn bad_database_url_fails_with_one_line() {
    for url in ["postgres://x/y", "mysql://nobody:pw@127.0.0.1:1/none"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_drswitch"))
            .arg("migrate")
            .env("DATABASE_URL", url)
            .env("DATA_DIR", std::env::temp_dir())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(lines[0].starts_with("drswitch: "), "{err}");
        assert!(!lines[0].contains("pw@"), "the URL password leaked: {err}");
        if url.starts_with("postgres") {
            assert!(lines[0].contains("DATABASE_URL"), "{err}");
        }
    }
}

#[tokio::test]
async fn bad_setting_names_the_variable() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_drswitch"))
        .arg("serve")
        .env("WORKER_CONCURRENCY", "many")
        .env("DATA_DIR", std::env::temp_dir())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("WORKER_CONCURRENCY"), "{err}");
}

#[tokio::test]
async fn user_create_then_login() {
    let mut app = common::TestApp::spawn().await;
    let mut child = app
        .command(&["user", "create", "--username", "carol", "--role", "operator"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"carol-password-1\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(app.login("carol", "carol-password-1").await, 200);
    let (_, me) = app.get("/api/v1/auth/me").await;
    assert_eq!(me["role"], "operator");

    let out = app
        .command(&["user", "create", "--username", "bad name", "--role", "viewer"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--username"));
    app.kill();
}

#[tokio::test]
async fn pubkey_is_created_once() {
    let app = common::TestApp::spawn().await;
    let a = app.command(&["pubkey"]).output().unwrap();
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let b = app.command(&["pubkey"]).output().unwrap();
    let key = String::from_utf8_lossy(&a.stdout).to_string();
    assert!(key.starts_with("ssh-ed25519 "), "{key}");
    assert_eq!(key, String::from_utf8_lossy(&b.stdout));
    assert!(app.data_dir().join("ssh/id_ed25519").exists());
}

#[tokio::test]
async fn first_admin_gets_a_printed_random_password() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = common::fresh_database(dir.path()).await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_drswitch"))
        .arg("serve")
        .env("DATABASE_URL", &url)
        .env("DATA_DIR", dir.path().join("data"))
        .env("LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(line.contains("created the first admin user \"admin\" with password "), "{line}");
    let pw = line.trim().rsplit(' ').next().unwrap();
    assert!(pw.len() >= 16);
}
