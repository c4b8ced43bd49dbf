//! The monitor against the lab: hosts that lose power, figures above their
//! thresholds, stopped services, missed recovery points and failed tasks
//! each open one alert and send one notice, and one recovery notice when
//! they clear; every target kind delivers, a failing one does not hold up
//! the others; two `serve` processes notify once; `/metrics` parses.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/receiver.rs"]
mod receiver;
#[path = "common/smtp_sink.rs"]
mod smtp_sink;

use std::time::{Duration, Instant};

use common::{lab_setup, LabSetup, TestApp};
use receiver::{Receiver, Reply};
use serde_json::{json, Value};

/// One probe a second, a host down after 3 s without an answer.
const FAST: &[(&str, &str)] =
    &[("MONITOR_INTERVAL_SECS", "1"), ("MONITOR_PROBE_TIMEOUT_SECS", "1"), ("FAILOVER_TOLERANCE_SECS", "3")];

async fn webhook_target(app: &TestApp, name: &str, url: &str) -> String {
    let (s, t) = app.post("/api/v1/notification-targets", json!({"name": name, "kind": "webhook", "url": url})).await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["has_secret"], false);
    t["id"].as_str().unwrap().to_string()
}

/// The notices the receiver got about alerts of `kind` on `subject`, in
/// order: (event, body).
fn notices(r: &Receiver, kind: &str, subject: &str) -> Vec<(String, Value)> {
    r.requests()
        .iter()
        .map(|q| serde_json::from_slice::<Value>(&q.body).unwrap())
        .filter(|b| b["alert"]["kind"] == kind && b["alert"]["subject"]["name"] == subject)
        .map(|b| (b["event"].as_str().unwrap().to_string(), b))
        .collect()
}

fn events(r: &Receiver, kind: &str, subject: &str) -> Vec<String> {
    notices(r, kind, subject).into_iter().map(|(e, _)| e).collect()
}

/// Polls `check` (bounded) until it gives a value.
async fn wait_for<T>(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn status(app: &TestApp, hv: &str) -> Value {
    let (s, v) = app.get(&format!("/api/v1/hypervisors/{hv}/status")).await;
    assert_eq!(s, 200, "{v}");
    v
}

/// Waits until the monitor has probed `hv` `n` more times.
async fn rounds(app: &TestApp, hv: &str, n: usize) {
    let before = status(app, hv).await["history"].as_array().unwrap().len();
    wait_for("more probes", Duration::from_secs(30), async || {
        (status(app, hv).await["history"].as_array().unwrap().len() >= before + n).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_host_that_loses_power_opens_one_alert_and_resolves_once() {
    let LabSetup { app, lab, dc, .. } = lab_setup(FAST).await;
    let hook = Receiver::start(&[Reply::Status(204)]).await;
    webhook_target(&app, "ops", &hook.url()).await;
    wait_for("dc1 up", Duration::from_secs(30), async || {
        (status(&app, &dc).await["reachability"] == "up").then_some(())
    })
    .await;
    let up = status(&app, &dc).await;
    let latest = &up["latest"];
    assert_eq!(latest["api_up"], 1.0, "{up}");
    assert_eq!(latest["ssh_up"], 1.0, "{up}");
    assert!(latest["mem_pct"].as_f64().unwrap() > 0.0, "{up}");
    assert!(latest["backup_pct"].as_f64().is_some(), "{up}");
    assert_eq!(latest["services"]["pvedaemon"], "running", "{up}");

    lab.power_off("dc1");
    let off = Instant::now();
    let tolerance = Duration::from_secs(3);
    let opened = wait_for("alert.opened", Duration::from_secs(60), async || {
        notices(&hook, "host_down", "dc1").into_iter().find(|(e, _)| e == "alert.opened")
    })
    .await;
    // The notice left within 30 s of the tolerance running out, and not
    // before: the tolerance counts from the last good probe, at most one
    // interval before the power went.
    assert!(off.elapsed() < tolerance + Duration::from_secs(30), "took {:?}", off.elapsed());
    assert!(off.elapsed() >= tolerance - Duration::from_secs(1), "before the tolerance ran out: {:?}", off.elapsed());
    let body = opened.1;
    assert_eq!(body["alert"]["severity"], "critical");
    assert_eq!(body["alert"]["subject"]["type"], "hypervisor");
    assert_eq!(body["alert"]["subject"]["id"], dc.as_str());
    assert!(body["alert"]["message"].as_str().unwrap().starts_with("dc1 has not answered for "), "{body}");
    assert_eq!(body["alert"]["resolved_at"], Value::Null);
    let down = status(&app, &dc).await;
    assert_eq!(down["reachability"], "down", "{down}");
    assert_eq!(down["down"], true);
    assert_eq!(down["latest"]["ssh_up"], 0.0);

    // Still down for a few more rounds: no second notice.
    rounds(&app, &dc, 3).await;
    assert_eq!(events(&hook, "host_down", "dc1"), ["alert.opened"]);

    lab.power_on("dc1");
    wait_for("alert.resolved", Duration::from_secs(60), async || {
        (events(&hook, "host_down", "dc1").len() == 2).then_some(())
    })
    .await;
    rounds(&app, &dc, 3).await;
    assert_eq!(events(&hook, "host_down", "dc1"), ["alert.opened", "alert.resolved"]);
    let resolved = notices(&hook, "host_down", "dc1").pop().unwrap().1;
    assert_eq!(resolved["alert"]["id"], body["alert"]["id"], "the same alert closes");
    assert!(resolved["alert"]["resolved_at"].is_string());

    // The alert history shows it, with the delivery.
    let (s, alerts) = app.get("/api/v1/alerts?state=resolved").await;
    assert_eq!(s, 200);
    let a = alerts.as_array().unwrap().iter().find(|a| a["kind"] == "host_down").unwrap();
    assert_eq!(a["state"], "resolved");
    let deliveries = a["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2, "{a}");
    assert!(deliveries.iter().all(|d| d["status"] == "sent" && d["target_name"] == "ops"), "{a}");
}

#[tokio::test]
async fn figures_services_recovery_points_and_failed_tasks_alert_once_each() {
    let LabSetup { app, lab, dc, drc } = lab_setup(FAST).await;
    let hook = Receiver::start(&[Reply::Status(204)]).await;
    webhook_target(&app, "ops", &hook.url()).await;
    let (s, v) = app.put("/api/v1/alert-settings", json!({"mem_pct": 80, "samples": 2})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["samples"], 2);
    assert_eq!(v["effective_tolerance_secs"], 3);

    // Memory at 95 % for two samples.
    let total: u64 = 16 << 30;
    lab.hook("dc1", "node-memory-used", &(total * 95 / 100).to_string());
    lab.hook("dc1", "services-stopped", "pvedaemon");
    wait_for("metric_high and service_down", Duration::from_secs(30), async || {
        (events(&hook, "metric_high", "dc1") == ["alert.opened"]
            && events(&hook, "service_down", "dc1") == ["alert.opened"])
        .then_some(())
    })
    .await;
    let metric = notices(&hook, "metric_high", "dc1").remove(0).1;
    assert_eq!(metric["alert"]["severity"], "warning");
    assert!(metric["alert"]["message"].as_str().unwrap().contains("memory of dc1 at 95 %"), "{metric}");
    let service = notices(&hook, "service_down", "dc1").remove(0).1;
    assert!(service["alert"]["message"].as_str().unwrap().contains("pvedaemon on dc1 is dead"), "{service}");
    rounds(&app, &dc, 3).await;
    assert_eq!(events(&hook, "metric_high", "dc1"), ["alert.opened"]);
    assert_eq!(events(&hook, "service_down", "dc1"), ["alert.opened"]);

    lab.hook("dc1", "node-memory-used", &(total / 4).to_string());
    std::process::Command::new("/usr/bin/python3")
        .args([
            concat!(env!("CARGO_MANIFEST_DIR"), "/lab/lab.py"),
            "hook",
            "--root",
            &lab.root("dc1"),
            "--clear",
            "services-stopped",
        ])
        .status()
        .unwrap();
    wait_for("both resolved", Duration::from_secs(30), async || {
        (events(&hook, "metric_high", "dc1").len() == 2 && events(&hook, "service_down", "dc1").len() == 2)
            .then_some(())
    })
    .await;

    // A failed backup, then a good one.
    lab.create_vm("dc1", 120, "4M");
    let pair = app.create_pair(&dc, 120, &drc, 9120).await;
    lab.hook("dc1", "vzdump-fail", "disk on fire");
    let failed = app.wait_for_task(&app.queue(&pair, "backup").await).await;
    assert_eq!(failed["status"], "failed");
    let name = failed["pair_id"].as_str().map(|_| "backup of ").unwrap().to_string();
    let subject = format!("{name}{}", pair_name(&app, &pair).await);
    wait_for("task_failed", Duration::from_secs(30), async || {
        (events(&hook, "task_failed", &subject) == ["alert.opened"]).then_some(())
    })
    .await;
    let tf = notices(&hook, "task_failed", &subject).remove(0).1;
    assert_eq!(tf["alert"]["subject"]["type"], "task");
    assert_eq!(tf["alert"]["subject"]["id"], failed["id"]);
    assert!(tf["alert"]["message"].as_str().unwrap().contains("disk on fire"), "{tf}");
    let good = app.wait_for_task(&app.queue(&pair, "backup").await).await;
    assert_eq!(good["status"], "succeeded", "{good}");
    wait_for("task_failed resolved", Duration::from_secs(30), async || {
        (events(&hook, "task_failed", &subject) == ["alert.opened", "alert.resolved"]).then_some(())
    })
    .await;

    // The newest archive is older than the target: one rpo_breached, closed
    // by the next backup.
    let pname = pair_name(&app, &pair).await;
    let (s, p) = app.put(&format!("/api/v1/pairs/{pair}"), json!({"rpo_target_secs": 3600})).await;
    assert_eq!(s, 200, "{p}");
    let archive = good["archive_id"].as_str().unwrap();
    let two_hours_ago = chrono_ms() - 2 * 3600 * 1000;
    app.set_stored_time("archives", "created_at", archive, two_hours_ago).await;
    wait_for("rpo_breached", Duration::from_secs(30), async || {
        (events(&hook, "rpo_breached", &pname) == ["alert.opened"]).then_some(())
    })
    .await;
    let rpo = notices(&hook, "rpo_breached", &pname).remove(0).1;
    assert_eq!(rpo["alert"]["severity"], "critical");
    assert!(rpo["alert"]["message"].as_str().unwrap().contains("is 2 h old (target 60 min)"), "{rpo}");
    rounds(&app, &dc, 2).await;
    assert_eq!(events(&hook, "rpo_breached", &pname), ["alert.opened"]);
    let next = app.wait_for_task(&app.queue(&pair, "backup").await).await;
    assert_eq!(next["status"], "succeeded");
    wait_for("rpo resolved", Duration::from_secs(30), async || {
        (events(&hook, "rpo_breached", &pname) == ["alert.opened", "alert.resolved"]).then_some(())
    })
    .await;

    // /metrics parses and carries the pair's recovery point and the hosts.
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let rpo = scrape
        .samples
        .iter()
        .find(|s| s.metric == "drswitch_pair_rpo_seconds" && s.labels.get("pair") == Some(pname.as_str()))
        .unwrap_or_else(|| panic!("no RPO for {pname} in:\n{text}"));
    match rpo.value {
        prometheus_parse::Value::Gauge(v) => assert!((0.0..600.0).contains(&v), "RPO {v}"),
        ref other => panic!("{other:?}"),
    }
    let up =
        scrape.samples.iter().find(|s| s.metric == "drswitch_host_up" && s.labels.get("host") == Some("dc1")).unwrap();
    assert!(matches!(up.value, prometheus_parse::Value::Gauge(v) if v == 1.0), "{text}");
    assert!(scrape.docs.contains_key("drswitch_tasks_queued"), "{text}");
    let anonymous = common::client().get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

async fn pair_name(app: &TestApp, pair: &str) -> String {
    app.get(&format!("/api/v1/pairs/{pair}")).await.1["name"].as_str().unwrap().to_string()
}

fn chrono_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A pair with no archive, created two days ago: its recovery point is
/// breached from the first round on. Needs no reachable host.
async fn breached_pair(app: &TestApp) -> (String, String) {
    let dc = app.create_hypervisor("dc-x", "dc").await;
    let drc = app.create_hypervisor("drc-x", "drc").await;
    let pair = app.create_pair(&dc, 100, &drc, 100).await;
    app.set_stored_time("pairs", "created_at", &pair, chrono_ms() - 2 * 86_400 * 1000).await;
    let name = pair_name(app, &pair).await;
    (pair, name)
}

#[tokio::test]
async fn a_failing_webhook_is_retried_while_mail_and_command_deliver() {
    let app = TestApp::spawn_with(FAST).await;
    app.login_admin().await;
    let failing = Receiver::start(&[Reply::Status(500)]).await;
    webhook_target(&app, "broken-hook", &failing.url()).await;
    let sink = smtp_sink::SmtpSink::start().await;
    let (s, t) = app
        .post(
            "/api/v1/notification-targets",
            json!({"name": "mail", "kind": "smtp", "smtp_host": "127.0.0.1", "smtp_port": sink.port, "smtp_tls": "none",
                   "mail_from": "drswitch@example.com", "mail_to": ["oncall@example.com"]}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let out = app.dir.path().join("sms.json");
    let (s, t) = app
        .post(
            "/api/v1/notification-targets",
            json!({"name": "sms", "kind": "command",
                   "argv": ["/bin/sh", "-c", "cat > \"$1\"; echo \"$DRSWITCH_ALERT_KIND\" >> \"$1.env\"", "sh", out.display().to_string()]}),
        )
        .await;
    assert_eq!(s, 201, "{t}");

    let (_, pname) = breached_pair(&app).await;
    // The mail and the command arrive while the webhook is still retrying.
    wait_for("mail", Duration::from_secs(30), async || (!sink.messages.lock().unwrap().is_empty()).then_some(())).await;
    let mail = sink.messages.lock().unwrap()[0].clone();
    assert!(mail.contains("rpo_breached"), "{mail}");
    assert!(mail.contains(&pname), "{mail}");
    let written = wait_for("command output", Duration::from_secs(30), async || {
        std::fs::read_to_string(&out).ok().filter(|s| s.ends_with('}'))
    })
    .await;
    let body: Value = serde_json::from_str(&written).unwrap();
    assert_eq!(body["event"], "alert.opened");
    assert_eq!(body["alert"]["kind"], "rpo_breached");
    assert_eq!(std::fs::read_to_string(format!("{}.env", out.display())).unwrap().trim(), "rpo_breached");

    let alert = wait_for("the webhook recorded as failed", Duration::from_secs(60), async || {
        let (_, alerts) = app.get("/api/v1/alerts?state=open").await;
        alerts
            .as_array()
            .unwrap()
            .iter()
            .find(|a| {
                a["kind"] == "rpo_breached"
                    && a["deliveries"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|d| d["target_name"] == "broken-hook" && d["status"] == "failed")
            })
            .cloned()
    })
    .await;
    let by_target =
        |name: &str| alert["deliveries"].as_array().unwrap().iter().find(|d| d["target_name"] == name).unwrap().clone();
    let hook = by_target("broken-hook");
    assert_eq!(hook["attempts"], 3, "{alert}");
    assert!(hook["detail"].as_str().unwrap().contains("500"), "{hook}");
    assert_eq!(failing.requests().len(), 3, "retried twice");
    assert_eq!(by_target("mail")["status"], "sent", "{alert}");
    assert_eq!(by_target("sms")["status"], "sent", "{alert}");
    // The others did not wait for the webhook's retries.
    assert!(by_target("mail")["finished_at"].as_str() <= hook["finished_at"].as_str(), "{alert}");

    // Send test reaches the mail sink with event "test".
    let (_, targets) = app.get("/api/v1/notification-targets").await;
    let mail_id =
        targets.as_array().unwrap().iter().find(|t| t["name"] == "mail").unwrap()["id"].as_str().unwrap().to_string();
    let (s, r) = app.post(&format!("/api/v1/notification-targets/{mail_id}/test"), json!({})).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["ok"], true, "{r}");
    assert!(sink.messages.lock().unwrap().iter().any(|m| m.contains("\"event\": \"test\"")), "test mail arrived");
}

#[tokio::test]
async fn two_serve_processes_notify_once_and_the_second_takes_over() {
    let mut first = TestApp::spawn_with(FAST).await;
    first.login_admin().await;
    let hook = Receiver::start(&[Reply::Status(204)]).await;
    webhook_target(&first, "ops", &hook.url()).await;
    let mut second = first.second_process().await;
    second.login_admin().await;

    let (pair, pname) = breached_pair(&first).await;
    wait_for("alert.opened", Duration::from_secs(30), async || {
        (events(&hook, "rpo_breached", &pname) == ["alert.opened"]).then_some(())
    })
    .await;

    // Whichever process holds the monitor dies; the other takes over
    // within the lease and neither sends the opened notice again.
    first.kill();
    let (s, _) = second.delete(&format!("/api/v1/pairs/{pair}")).await;
    assert_eq!(s, 204);
    wait_for("alert.resolved", Duration::from_secs(60), async || {
        (events(&hook, "rpo_breached", &pname).len() >= 2).then_some(())
    })
    .await;
    let (_, alerts) = second.get("/api/v1/alerts").await;
    let rpo: Vec<&Value> = alerts.as_array().unwrap().iter().filter(|a| a["kind"] == "rpo_breached").collect();
    assert_eq!(rpo.len(), 1, "{alerts}");
    assert_eq!(rpo[0]["state"], "resolved");
    assert_eq!(events(&hook, "rpo_breached", &pname), ["alert.opened", "alert.resolved"]);
    second.kill();
}

#[tokio::test]
async fn targets_are_validated_and_their_secrets_stay_hidden() {
    let app = TestApp::spawn().await;
    app.login_admin().await;
    let (s, v) =
        app.post("/api/v1/notification-targets", json!({"name": "x", "kind": "webhook", "url": "ftp://x"})).await;
    assert_eq!((s, v["error"]["message"].as_str().unwrap().starts_with("url")), (422, true), "{v}");
    let (s, v) =
        app.post("/api/v1/notification-targets", json!({"name": "x", "kind": "command", "argv": ["curl"]})).await;
    assert_eq!(s, 422, "{v}");
    let (s, v) = app
        .post(
            "/api/v1/notification-targets",
            json!({"name": "x", "kind": "webhook", "url": "https://h.example/", "argv": ["/bin/true"]}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert!(common::message(&v).contains("argv"), "{v}");
    let (s, v) = app
        .post("/api/v1/notification-targets", json!({"name": "x", "kind": "smtp", "smtp_host": "mail.example", "mail_from": "nope", "mail_to": ["a@example.com"]}))
        .await;
    assert_eq!(s, 422, "{v}");
    assert!(common::message(&v).contains("mail_from"), "{v}");

    let (s, t) = app
        .post(
            "/api/v1/notification-targets",
            json!({"name": "signed", "kind": "webhook", "url": "https://h.example/x", "secret": "whsec-very-secret"}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["has_secret"], true);
    assert!(!t.to_string().contains("whsec-very-secret"));
    let id = t["id"].as_str().unwrap();
    let stored = app.stored_column("notification_targets", "secret_enc", id).await.unwrap();
    assert!(!stored.contains("whsec-very-secret"), "encrypted at rest");
    let (s, t) = app.put(&format!("/api/v1/notification-targets/{id}"), json!({"secret": null})).await;
    assert_eq!((s, &t["has_secret"]), (200, &json!(false)), "{t}");

    let viewer = app.user_client("watcher", "viewer").await;
    let r = viewer.get(app.url("/api/v1/notification-targets")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = viewer.get(app.url("/api/v1/alerts")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (s, v) = app.get("/api/v1/alerts?limit=0").await;
    assert_eq!(s, 422, "{v}");
    let (s, v) = app.put("/api/v1/alert-settings", json!({"cpu_pct": 150})).await;
    assert_eq!(s, 422, "{v}");
    assert!(!app.log().contains("whsec-very-secret"), "secret never logged");
}
