//! Recovery plans: a plan's drill against the lab runs its groups in order,
//! each next group only once every task of the one before has ended and
//! the plan's delay has passed; a run goes on after a restart; one run of
//! a plan at a time; plans are checked like any input and only operators
//! manage them; the web form takes pair names.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::lab::Lab;
use common::{client, csrf_of, lab_setup, message, page_client, LabSetup, TestApp, ADMIN, ADMIN_PW};
use serde_json::{json, Value};

/// A pair with a drill VMID and a verified archive (one replicate done).
async fn drillable_pair(app: &TestApp, lab: &Lab, dc: &str, drc: &str, vmid: u32) -> String {
    lab.create_vm("dc1", vmid, "4M");
    let (s, p) = app
        .post(
            "/api/v1/pairs",
            json!({"name": format!("vm{vmid}"), "src_hypervisor_id": dc, "src_vmid": vmid, "dst_hypervisor_id": drc,
                   "dst_vmid": 9000 + vmid, "drill_vmid": 8000 + vmid, "start_after_restore": false}),
        )
        .await;
    assert_eq!(s, 201, "{p}");
    let pair = p["id"].as_str().unwrap().to_string();
    let t = app.wait_for_task(&app.queue(&pair, "replicate").await).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    pair
}

/// When a task was queued (epoch milliseconds, exact: the API shows whole seconds).
async fn created_at(app: &TestApp, task: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.database_url).await.unwrap();
    let row = sqlx::query("SELECT created_at FROM tasks WHERE id = ?").bind(task).fetch_one(&pool).await.unwrap();
    pool.close().await;
    sqlx::Row::get::<i64, _>(&row, "created_at")
}

fn task_ids(group: &Value) -> Vec<String> {
    group["tasks"].as_array().unwrap().iter().map(|t| t["task_id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn a_plan_drill_runs_its_groups_in_order_with_the_delay_between() {
    let LabSetup { app, lab, dc, drc } = lab_setup(&[("DRILL_BOOT_SECS", "2")]).await;
    let a = drillable_pair(&app, &lab, &dc, &drc, 140).await;
    let b = drillable_pair(&app, &lab, &dc, &drc, 141).await;
    let c = drillable_pair(&app, &lab, &dc, &drc, 142).await;
    let (s, plan) = app.post("/api/v1/plans", json!({"name": "erp", "delay_secs": 3, "groups": [[a, b], [c]]})).await;
    assert_eq!(s, 201, "{plan}");
    assert_eq!(plan["groups"], json!([[a, b], [c]]));
    assert_eq!(plan["runs"], json!([]));
    let id = plan["id"].as_str().unwrap().to_string();

    let (s, run) = app.post(&format!("/api/v1/plans/{id}/drill"), json!({})).await;
    assert_eq!(s, 202, "{run}");
    assert_eq!((run["action"].as_str(), run["status"].as_str()), (Some("drill"), Some("running")), "{run}");
    assert_eq!(run["current_group"], 1);
    assert_eq!(run["requested_by"], ADMIN);
    let group1 = &run["groups"][0];
    assert!(group1["started_at"].is_string(), "{run}");
    let pairs1: Vec<&str> =
        group1["tasks"].as_array().unwrap().iter().map(|t| t["pair_id"].as_str().unwrap()).collect();
    assert_eq!(pairs1, [a.as_str(), b.as_str()]);
    // Group 1 is queued at once; group 2 waits its turn.
    let first = task_ids(group1);
    assert_eq!(first.len(), 2, "{run}");
    assert_eq!(run["groups"][1]["tasks"][0]["status"], "pending", "{run}");
    assert!(run["groups"][1]["tasks"][0]["task_id"].is_null(), "{run}");
    assert!(run["groups"][1]["started_at"].is_null(), "{run}");
    for t in &first {
        let (_, task) = app.get(&format!("/api/v1/tasks/{t}")).await;
        assert_eq!(task["kind"], "drill", "{task}");
        assert_eq!(task["requested_by"], "admin (plan erp)", "{task}");
    }

    // One run of a plan at a time, and the plan stays while it runs.
    for what in ["drill", "failover"] {
        let (s, v) = app.post(&format!("/api/v1/plans/{id}/{what}"), json!({})).await;
        assert_eq!(s, 409, "{what}: {v}");
        assert!(message(&v).contains("already running"), "{v}");
    }
    let (s, v) = app.delete(&format!("/api/v1/plans/{id}")).await;
    assert_eq!(s, 409, "{v}");

    let started = Instant::now();
    let run = loop {
        let (s, p) = app.get(&format!("/api/v1/plans/{id}")).await;
        assert_eq!(s, 200, "{p}");
        if p["runs"][0]["status"] != "running" {
            break p["runs"][0].clone();
        }
        assert!(started.elapsed() < Duration::from_secs(180), "the run did not end: {p}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(run["finished_at"].is_string() && run["next_group_at"].is_null(), "{run}");
    assert_eq!(run["current_group"], 2, "{run}");
    let all: Vec<&Value> =
        run["groups"].as_array().unwrap().iter().flat_map(|g| g["tasks"].as_array().unwrap()).collect();
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|t| t["status"] == "succeeded"), "{run}");
    assert_eq!(task_ids(&run["groups"][0]), first, "group 1 kept its tasks");
    let second = task_ids(&run["groups"][1]);
    assert_eq!(run["groups"][1]["tasks"][0]["pair_id"], c.as_str());

    // Group 2 was queued only after both tasks of group 1 had ended, and
    // the plan's 3 s after the later end (times exact from the database).
    let mut ended = 0;
    for t in &first {
        let (_, finished) = app.task_times(t).await;
        ended = ended.max(finished);
    }
    let queued = created_at(&app, &second[0]).await;
    assert!(queued >= ended + 3000, "group 2 queued {} ms after group 1 ended", queued - ended);
    assert!(queued < ended + 3000 + 5000, "group 2 came {} ms late", queued - ended - 3000);
    let (task_start, _) = app.task_times(&second[0]).await;
    assert!(task_start >= queued);

    // The run is the plan's event: listed with the plan, each task a drill of its pair.
    let (_, task) = app.get(&format!("/api/v1/tasks/{}", second[0])).await;
    assert_eq!((task["kind"].as_str(), task["pair_id"].as_str()), (Some("drill"), Some(c.as_str())), "{task}");
    let (_, list) = app.get("/api/v1/plans").await;
    assert_eq!(list[0]["last_run"]["id"], run["id"], "{list}");
    for vmid in [140, 141, 142] {
        assert_eq!(lab.vm_status("drc1", 8000 + vmid), "missing", "drill VM {} destroyed", 8000 + vmid);
    }

    // A pair that cannot drill fails its part of the run, and the rest goes on.
    let (s, v) = app.put(&format!("/api/v1/pairs/{b}"), json!({"drill_vmid": null})).await;
    assert_eq!(s, 200, "{v}");
    let (s, plan) = app.put(&format!("/api/v1/plans/{id}"), json!({"delay_secs": 0})).await;
    assert_eq!(s, 200, "{plan}");
    let (s, run) = app.post(&format!("/api/v1/plans/{id}/drill"), json!({})).await;
    assert_eq!(s, 202, "{run}");
    let refused = &run["groups"][0]["tasks"][1];
    assert_eq!((refused["status"].as_str(), refused["task_id"].as_str()), (Some("failed"), None), "{run}");
    assert!(refused["error"].as_str().unwrap().contains("drill_vmid"), "{run}");
    let started = Instant::now();
    let run = loop {
        let (_, p) = app.get(&format!("/api/v1/plans/{id}")).await;
        if p["runs"][0]["status"] != "running" {
            break p["runs"][0].clone();
        }
        assert!(started.elapsed() < Duration::from_secs(180), "the run did not end: {p}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["groups"][0]["tasks"][0]["status"], "succeeded", "{run}");
    assert_eq!(run["groups"][1]["tasks"][0]["status"], "succeeded", "group 2 still ran: {run}");
    let (_, p) = app.get(&format!("/api/v1/plans/{id}")).await;
    assert_eq!(p["runs"].as_array().unwrap().len(), 2, "newest first: {p}");
}

#[tokio::test]
async fn plans_are_checked_and_only_operators_manage_them() {
    let app = TestApp::spawn().await;
    app.login_admin().await;
    let dc = app.create_hypervisor("dc1", "dc").await;
    let drc = app.create_hypervisor("drc1", "drc").await;
    let p1 = app.create_pair(&dc, 100, &drc, 9100).await;
    let p2 = app.create_pair(&dc, 101, &drc, 9101).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let too_many: Vec<Value> = (0..21).map(|_| json!([p1])).collect();
    let too_big: Vec<String> = (0..101).map(|_| p1.clone()).collect();
    for (groups, why) in [
        (json!([[p1], [p1]]), "a pair twice"),
        (json!([[p1, p1]]), "a pair twice in a group"),
        (json!([]), "no groups"),
        (json!([[]]), "an empty group"),
        (json!([["web01"]]), "not a pair id"),
        (json!([[42]]), "a number"),
        (json!(p1), "not a list"),
        (json!(too_many), "21 groups"),
        (json!([too_big]), "101 pairs in a group"),
    ] {
        let (s, v) = app.post("/api/v1/plans", json!({"name": "x", "groups": groups})).await;
        assert_eq!(s, 422, "{why}: {v}");
        assert!(message(&v).starts_with("groups:"), "{why}: {v}");
    }
    // A well-formed id of no pair clashes with what is stored.
    let (s, v) = app.post("/api/v1/plans", json!({"name": "x", "groups": [[p1, unknown]]})).await;
    assert_eq!((s, message(&v).starts_with("groups:")), (409, true), "{v}");
    let (s, v) = app.post("/api/v1/plans", json!({"name": "x"})).await;
    assert_eq!((s, message(&v).starts_with("groups:")), (422, true), "{v}");
    for delay in [-1, 86_401] {
        let (s, v) = app.post("/api/v1/plans", json!({"name": "x", "delay_secs": delay, "groups": [[p1]]})).await;
        assert_eq!((s, message(&v).starts_with("delay_secs:")), (422, true), "{v}");
    }
    let (s, v) = app.post("/api/v1/plans", json!({"name": " ", "groups": [[p1]]})).await;
    assert_eq!((s, message(&v).starts_with("name:")), (422, true), "{v}");
    let (s, v) = app.post("/api/v1/plans", json!({"name": "x", "groups": [[p1]], "colour": "red"})).await;
    assert_eq!(s, 422, "{v}");

    let (s, plan) = app.post("/api/v1/plans", json!({"name": "erp", "groups": [[p1, p2]]})).await;
    assert_eq!(s, 201, "{plan}");
    assert_eq!(plan["delay_secs"], 60, "the default delay");
    let id = plan["id"].as_str().unwrap().to_string();
    let (s, v) = app.post("/api/v1/plans", json!({"name": "erp", "groups": [[p1]]})).await;
    assert_eq!(s, 409, "{v}");
    assert!(message(&v).starts_with("name:"), "{v}");
    let (s, v) = app.put(&format!("/api/v1/plans/{id}"), json!({"groups": [[p2], [p1]], "delay_secs": 0})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["groups"].clone(), v["delay_secs"].clone(), v["name"].clone()),
        (json!([[p2], [p1]]), json!(0), json!("erp"))
    );
    let (s, v) = app.put(&format!("/api/v1/plans/{id}"), json!({"groups": [[p2, p2]]})).await;
    assert_eq!((s, message(&v).starts_with("groups:")), (422, true), "{v}");
    // No pair has a drill VMID: every pair of the drill fails at once and the run ends failed.
    let (s, run) = app.post(&format!("/api/v1/plans/{id}/drill"), json!({})).await;
    assert_eq!(s, 202, "{run}");
    assert!(run["groups"][0]["tasks"][0]["error"].as_str().unwrap().contains("drill_vmid"), "{run}");

    let viewer = app.user_client("vera", "viewer").await;
    let body = json!({"name": "v", "groups": [[p1]]});
    let call = |method: reqwest::Method, path: String| {
        let req = viewer.request(method, app.url(&path)).json(&body);
        async move { req.send().await.unwrap().status() }
    };
    assert_eq!(call(reqwest::Method::GET, "/api/v1/plans".into()).await, 200);
    assert_eq!(call(reqwest::Method::GET, format!("/api/v1/plans/{id}")).await, 200);
    assert_eq!(call(reqwest::Method::POST, "/api/v1/plans".into()).await, 403);
    assert_eq!(call(reqwest::Method::PUT, format!("/api/v1/plans/{id}")).await, 403);
    assert_eq!(call(reqwest::Method::DELETE, format!("/api/v1/plans/{id}")).await, 403);
    let r = viewer.post(app.url(&format!("/api/v1/plans/{id}/failover"))).send().await.unwrap();
    assert_eq!(r.status(), 403);

    let (s, _) = app.get("/api/v1/plans/not-a-plan").await;
    assert_eq!(s, 404);
    let (s, _) = app.get(&format!("/api/v1/plans/{unknown}")).await;
    assert_eq!(s, 404);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, v) = app.delete(&format!("/api/v1/plans/{id}")).await;
        if s == 204 {
            break;
        }
        // The failed drill run ends at the runner's next round.
        assert_eq!(s, 409, "{v}");
        assert!(Instant::now() < deadline, "the run never ended: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (s, _) = app.get(&format!("/api/v1/plans/{id}")).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn the_plans_page_takes_pair_names_one_group_per_line() {
    let app = TestApp::spawn().await;
    app.login_admin().await;
    let dc = app.create_hypervisor("dc1", "dc").await;
    let drc = app.create_hypervisor("drc1", "drc").await;
    let (s, db) = app
        .post("/api/v1/pairs", json!({"name": "db01", "src_hypervisor_id": dc, "src_vmid": 100, "dst_hypervisor_id": drc, "dst_vmid": 9100}))
        .await;
    assert_eq!(s, 201);
    let (s, web) = app
        .post("/api/v1/pairs", json!({"name": "web01", "src_hypervisor_id": dc, "src_vmid": 101, "dst_hypervisor_id": drc, "dst_vmid": 9101}))
        .await;
    assert_eq!(s, 201);

    let c = page_client(&app, ADMIN, ADMIN_PW).await;
    let html = c.get(app.url("/plans")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("href=\"/plans\""), "the navigation links the page");
    let token = csrf_of(&html);

    // Without the token: refused.
    let r = c.post(app.url("/plans")).form(&[("name", "erp"), ("groups", "db01")]).send().await.unwrap();
    assert_eq!(r.status(), 403);
    // An unknown name comes back next to the field, with what was typed kept.
    let r = c
        .post(app.url("/plans"))
        .form(&[("csrf", token.as_str()), ("name", "erp"), ("delay_secs", "30"), ("groups", "db01\nmail01")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("class=\"field-error\"") && html.contains("no pair is named"), "{html}");
    assert!(html.contains("db01\nmail01"), "the form keeps what was typed");

    let r = c
        .post(app.url("/plans"))
        .form(&[("csrf", token.as_str()), ("name", "erp"), ("delay_secs", "30"), ("groups", "db01\r\nWEB01, \r\n")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let to = r.headers()["location"].to_str().unwrap().to_string();
    let (_, plans) = app.get("/api/v1/plans").await;
    assert_eq!(plans[0]["groups"], json!([[db["id"]], [web["id"]]]), "{plans}");
    assert_eq!(to, format!("/plans/{}", plans[0]["id"].as_str().unwrap()));

    let html = c.get(app.url(&to)).send().await.unwrap().text().await.unwrap();
    for text in ["Fail over", "Run drill", "Delete", "data-confirm=", "web01"] {
        assert!(html.contains(text), "{text} missing: {html}");
    }
    // A viewer reads the plan but is offered no action.
    app.user_client("vera", "viewer").await;
    let v = client();
    let html = v.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    v.post(app.url("/login"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("username", "vera"), ("password", "user-password-1")])
        .send()
        .await
        .unwrap();
    let html = v.get(app.url(&to)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("web01") && !html.contains("Run drill") && !html.contains("Delete"), "{html}");
}

#[tokio::test]
async fn a_run_resumes_after_a_restart() {
    let LabSetup { mut app, lab, dc, drc } = lab_setup(&[("DRILL_BOOT_SECS", "2")]).await;
    let a = drillable_pair(&app, &lab, &dc, &drc, 150).await;
    let b = drillable_pair(&app, &lab, &dc, &drc, 151).await;
    let (s, plan) = app.post("/api/v1/plans", json!({"name": "crm", "delay_secs": 3, "groups": [[a], [b]]})).await;
    assert_eq!(s, 201, "{plan}");
    let id = plan["id"].as_str().unwrap().to_string();
    let (s, run) = app.post(&format!("/api/v1/plans/{id}/drill"), json!({})).await;
    assert_eq!(s, 202, "{run}");
    let first = task_ids(&run["groups"][0]);
    let t = app.wait_for_task(&first[0]).await;
    assert_eq!(t["status"], "succeeded", "{t}");

    // drswitch dies during the delay and comes back: the run goes on from the database.
    app.kill();
    app.start().await;
    let started = Instant::now();
    let run = loop {
        let (_, p) = app.get(&format!("/api/v1/plans/{id}")).await;
        if p["runs"][0]["status"] != "running" {
            break p["runs"][0].clone();
        }
        assert!(started.elapsed() < Duration::from_secs(180), "the run did not end: {p}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(run["status"], "succeeded", "{run}");
    let second = task_ids(&run["groups"][1]);
    let (_, ended) = app.task_times(&first[0]).await;
    assert!(created_at(&app, &second[0]).await >= ended + 3000, "{run}");
}
