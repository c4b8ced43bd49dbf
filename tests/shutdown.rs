//! SIGTERM while a task runs: drswitch stops claiming, hands the task back
//! to the queue without counting the attempt, leaves no partial file here
//! or on the host, and exits cleanly; the next start runs the task again.

#![allow(clippy::unwrap_used)]

mod common;

use common::{lab_setup, LabSetup};
use serde_json::json;

#[tokio::test]
async fn sigterm_during_a_backup_hands_the_task_back() {
    let LabSetup { mut app, lab, dc, drc } =
        lab_setup(&[("TRANSFER_BWLIMIT_KIB", "2048"), ("SHUTDOWN_GRACE_SECS", "20")]).await;
    lab.create_vm("dc1", 100, "12M");
    let pair = app.create_pair(&dc, 100, &drc, 200).await;
    let (s, p) = app.put(&format!("/api/v1/pairs/{pair}"), json!({"compress": "none"})).await;
    assert_eq!((s, p["compress"].as_str()), (200, Some("none")));
    let id = app.queue(&pair, "backup").await;
    let dir = app.data_dir().join("archives").join(&pair);
    let partial = || {
        std::fs::read_dir(&dir)
            .map(|d| d.flatten().any(|f| f.file_name().to_string_lossy().contains("partial-")))
            .unwrap_or(false)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !partial() {
        assert!(std::time::Instant::now() < deadline, "the pull never started");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    assert!(app.terminate(), "drswitch exits cleanly on SIGTERM");
    assert!(!partial(), "no partial archive left on the middleware");
    let leftovers: Vec<_> = lab.dump_dir_files("dc1").into_iter().filter(|f| f.starts_with(".drswitch-")).collect();
    assert!(leftovers.is_empty(), "nothing left on the DC host: {leftovers:?}");

    app.start().await;
    app.login_admin().await;
    let t = app.wait_for_task(&id).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(t["attempt"], 1, "the interrupted attempt did not count: {t}");
    assert!(t["log"].to_string().contains("goes back to the queue"), "{t}");
}
