//! The test harness: starts the real `drswitch` binary on a random port
//! against SQLite (default) or MariaDB (when `DRSWITCH_TEST_MYSQL_URL` is
//! set), and drives it over HTTP.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub mod lab;

pub const ADMIN: &str = "admin";
pub const ADMIN_PW: &str = "admin-password-1";

pub struct TestApp {
    pub base: String,
    pub dir: tempfile::TempDir,
    pub database_url: String,
    pub backend: &'static str,
    child: Option<Child>,
    pub client: reqwest::Client,
    extra_env: Vec<(String, String)>,
}

/// A fresh database URL: a new SQLite file, or a new MariaDB database.
pub async fn fresh_database(dir: &Path) -> (String, &'static str) {
    match std::env::var("DRSWITCH_TEST_MYSQL_URL") {
        Ok(server) if !server.is_empty() => {
            let name = format!("t_{}", uuid::Uuid::new_v4().simple());
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&server).await.expect("connect to test MariaDB");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.unwrap();
            pool.close().await;
            (format!("{}/{name}", server.trim_end_matches('/')), "mysql")
        }
        _ => (format!("sqlite://{}", dir.join("drswitch.db").display()), "sqlite"),
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).timeout(Duration::from_secs(60)).build().unwrap()
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    pub async fn spawn_with(env: &[(&str, &str)]) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let (database_url, backend) = fresh_database(dir.path()).await;
        let mut app = TestApp {
            base: String::new(),
            dir,
            database_url,
            backend,
            child: None,
            client: client(),
            extra_env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        app.start().await;
        app
    }

    /// `serve` on an existing database (e.g. one restored from a backup),
    /// with a fresh data dir.
    pub async fn spawn_on(database_url: String, backend: &'static str) -> TestApp {
        let mut app = TestApp {
            base: String::new(),
            dir: tempfile::tempdir().unwrap(),
            database_url,
            backend,
            child: None,
            client: client(),
            extra_env: Vec::new(),
        };
        app.start().await;
        app
    }

    /// Another `serve` process on the same database and data dir, with its
    /// own log.
    pub async fn second_process(&self) -> TestApp {
        let mut extra_env = self.extra_env.clone();
        extra_env.push(("DATA_DIR".to_string(), self.data_dir().display().to_string()));
        let mut app = TestApp {
            base: String::new(),
            dir: tempfile::tempdir().unwrap(),
            database_url: self.database_url.clone(),
            backend: self.backend,
            child: None,
            client: client(),
            extra_env,
        };
        app.start().await;
        app
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("drswitch.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The environment the app runs with, for starting more processes on the same data.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("DATABASE_URL".to_string(), self.database_url.clone()),
            ("DATA_DIR".to_string(), self.data_dir().display().to_string()),
            ("ADMIN_USERNAME".to_string(), ADMIN.to_string()),
            ("ADMIN_PASSWORD".to_string(), ADMIN_PW.to_string()),
            ("SECRET_KEY".to_string(), "test-secret-key-0123456789abcdef0123456789".to_string()),
            ("RUST_LOG".to_string(), "info,sqlx=warn".to_string()),
        ];
        env.extend(self.extra_env.iter().cloned());
        env
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_drswitch"));
        cmd.args(args).current_dir(self.dir.path()).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd
    }

    /// Starts `drswitch serve` and waits until its health check answers.
    pub async fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
        let before = self.log().len();
        let child = self
            .command(&["serve"])
            .env("LISTEN", "127.0.0.1:0")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start drswitch");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let marker = "drswitch listening on http://";
        loop {
            let text = self.log();
            if let Some(i) = text[before..].find(marker) {
                let rest = &text[before + i + marker.len()..];
                let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                self.base = format!("http://{addr}");
                break;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("drswitch exited with {status} before listening:\n{text}");
            }
            assert!(Instant::now() < deadline, "drswitch did not start:\n{text}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let r = self.client.get(self.url("/api/v1/health")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit; returns
    /// whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else { return false };
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!("drswitch did not exit within 60 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        decode(r).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self.client.post(self.url(path)).json(&body).send().await.unwrap();
        decode(r).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self.client.put(self.url(path)).json(&body).send().await.unwrap();
        decode(r).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let r = self.client.delete(self.url(path)).send().await.unwrap();
        decode(r).await
    }

    /// The raw login response, for tests that read its headers.
    pub async fn login_response(&self, user: &str, pw: &str) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({"username": user, "password": pw}))
            .send()
            .await
            .unwrap()
    }

    pub async fn login(&self, user: &str, pw: &str) -> u16 {
        self.login_response(user, pw).await.status().as_u16()
    }

    pub async fn login_admin(&self) {
        assert_eq!(self.login(ADMIN, ADMIN_PW).await, 200);
    }

    /// A second client logged in as a new user with `role`.
    pub async fn user_client(&self, name: &str, role: &str) -> reqwest::Client {
        let (s, body) =
            self.post("/api/v1/users", json!({"username": name, "password": "user-password-1", "role": role})).await;
        assert_eq!(s, 201, "{body}");
        let c = client();
        let r = c
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({"username": name, "password": "user-password-1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        c
    }

    pub async fn create_hypervisor(&self, name: &str, role: &str) -> String {
        let (s, body) = self
            .post(
                "/api/v1/hypervisors",
                json!({"name": name, "host": "127.0.0.1", "node": name, "role": role,
                       "api_token_id": "root@pam!drswitch", "api_token_secret": format!("secret-of-{name}")}),
            )
            .await;
        assert_eq!(s, 201, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    pub async fn create_pair(&self, src: &str, src_vmid: u32, dst: &str, dst_vmid: u32) -> String {
        let (s, body) = self
            .post(
                "/api/v1/pairs",
                json!({"src_hypervisor_id": src, "src_vmid": src_vmid, "dst_hypervisor_id": dst, "dst_vmid": dst_vmid}),
            )
            .await;
        assert_eq!(s, 201, "{body}");
        body["id"].as_str().unwrap().to_string()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.kill();
    }
}

pub async fn decode(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    (status, v)
}

/// The `message` of an error body.
pub fn message(v: &Value) -> String {
    v["error"]["message"].as_str().unwrap_or_default().to_string()
}

impl TestApp {
    /// Makes the middleware key (as `drswitch pubkey` does) and returns the public key file.
    pub fn pubkey(&self) -> PathBuf {
        let out = self.command(&["pubkey"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        self.data_dir().join("ssh/id_ed25519.pub")
    }

    /// Registers a lab host, runs the connectivity check (pinning its key)
    /// and returns the hypervisor id.
    pub async fn register(&self, lab: &lab::Lab, name: &str, role: &str) -> String {
        let (s, h) = self.post("/api/v1/hypervisors", lab.hypervisor_body(name, role)).await;
        assert_eq!(s, 201, "{h}");
        let id = h["id"].as_str().unwrap().to_string();
        let (s, report) = self.post(&format!("/api/v1/hypervisors/{id}/check"), json!({})).await;
        assert_eq!(s, 200, "{report}");
        assert_eq!(report["ok"], true, "{report}");
        id
    }

    pub async fn queue(&self, pair: &str, what: &str) -> String {
        let (s, t) = self.post(&format!("/api/v1/pairs/{pair}/{what}"), json!({})).await;
        assert_eq!(s, 202, "{t}");
        t["id"].as_str().unwrap().to_string()
    }

    /// Polls the task until `pred` holds for it (bounded).
    pub async fn wait_until(&self, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (_, t) = self.get(&format!("/api/v1/tasks/{id}")).await;
            if pred(&t) {
                return t;
            }
            assert!(Instant::now() < deadline, "task never reached {what}: {t}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Start and end (epoch milliseconds) of a task, exact from the database.
    pub async fn task_times(&self, id: &str) -> (i64, i64) {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&self.database_url).await.unwrap();
        let row = sqlx::query("SELECT started_at, finished_at FROM tasks WHERE id = ?")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
        use sqlx::Row;
        let times = (row.try_get::<i64, _>("started_at").unwrap(), row.try_get::<i64, _>("finished_at").unwrap());
        pool.close().await;
        times
    }

    /// Polls the task until it reaches a final state (bounded).
    pub async fn wait_for_task(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (_, t) = self.get(&format!("/api/v1/tasks/{id}")).await;
            if ["succeeded", "failed", "cancelled"].contains(&t["status"].as_str().unwrap_or("")) {
                return t;
            }
            assert!(Instant::now() < deadline, "task did not finish: {t}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The few checks the API does not expose read or set the stored schema
/// here, and only here, so a schema change breaks one place.
impl TestApp {
    async fn pool(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        sqlx::AnyPool::connect(&self.database_url).await.expect("connect to the app's database")
    }

    /// One text column of the row of `table` whose `id` is `id`, as stored;
    /// None when it is NULL. Panics when there is no such row.
    pub async fn stored_column(&self, table: &str, column: &str, id: &str) -> Option<String> {
        let pool = self.pool().await;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {column} AS v FROM {table} WHERE id = ?")))
            .bind(id)
            .fetch_optional(&pool)
            .await
            .unwrap();
        pool.close().await;
        let row = row.unwrap_or_else(|| panic!("no row {id} in {table}"));
        sqlx::Row::try_get::<Option<String>, _>(&row, "v").unwrap()
    }

    /// Replaces the pinned SSH host key of a hypervisor behind the API's back.
    pub async fn set_host_key(&self, hypervisor_id: &str, key: &str) {
        let pool = self.pool().await;
        let r = sqlx::query("UPDATE hypervisors SET host_key = ? WHERE id = ?")
            .bind(key)
            .bind(hypervisor_id)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        assert_eq!(r.rows_affected(), 1, "no hypervisor {hypervisor_id}");
    }

    /// Moves a schedule's stored next run (epoch milliseconds), as if it fell
    /// due while drswitch was down.
    pub async fn set_schedule_next_run(&self, schedule_id: &str, at_ms: i64) {
        let pool = self.pool().await;
        let r = sqlx::query("UPDATE schedules SET next_run = ? WHERE id = ?")
            .bind(at_ms)
            .bind(schedule_id)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        assert_eq!(r.rows_affected(), 1, "no schedule {schedule_id}");
    }

    /// Moves a stored time (epoch milliseconds) of one row, e.g. to make an
    /// archive or a pair look older than its recovery point target.
    pub async fn set_stored_time(&self, table: &str, column: &str, id: &str, at_ms: i64) {
        let pool = self.pool().await;
        let r = sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE {table} SET {column} = ? WHERE id = ?")))
            .bind(at_ms)
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        assert_eq!(r.rows_affected(), 1, "no row {id} in {table}");
    }

    /// Puts a pair in a switch state behind the API's back (as a failover
    /// that ran would leave it).
    pub async fn set_pair_state(&self, pair_id: &str, state: &str) {
        let pool = self.pool().await;
        let r = sqlx::query("UPDATE pairs SET state = ? WHERE id = ?")
            .bind(state)
            .bind(pair_id)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        assert_eq!(r.rows_affected(), 1, "no pair {pair_id}");
    }

    /// A stored time (epoch milliseconds) of one row.
    pub async fn stored_millis(&self, table: &str, column: &str, id: &str) -> i64 {
        let pool = self.pool().await;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {column} AS v FROM {table} WHERE id = ?")))
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        sqlx::Row::get::<i64, _>(&row, "v")
    }

    /// The ids of a user's login sessions (one per login), oldest first.
    pub async fn login_sessions(&self, username: &str) -> Vec<String> {
        let pool = self.pool().await;
        let rows = sqlx::query(
            "SELECT s.id AS id FROM login_sessions s JOIN users u ON u.id = s.user_id \
             WHERE u.username = ? ORDER BY s.created_at, s.id",
        )
        .bind(username)
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows.iter().map(|r| sqlx::Row::get::<String, _>(r, "id")).collect()
    }

    /// The recorded runs of a schedule: (due time in epoch milliseconds, result).
    pub async fn schedule_runs(&self, schedule_id: &str) -> Vec<(i64, String)> {
        let pool = self.pool().await;
        let rows = sqlx::query("SELECT due_at, result FROM schedule_runs WHERE schedule_id = ? ORDER BY due_at")
            .bind(schedule_id)
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows.iter().map(|r| (sqlx::Row::get::<i64, _>(r, "due_at"), sqlx::Row::get::<String, _>(r, "result"))).collect()
    }

    /// How many tasks of the schedule were created after `after_ms` (epoch
    /// milliseconds, exact: the API shows whole seconds).
    pub async fn schedule_tasks_created_after(&self, schedule_id: &str, after_ms: i64) -> usize {
        let pool = self.pool().await;
        let row = sqlx::query("SELECT COUNT(*) AS n FROM tasks WHERE schedule_id = ? AND created_at > ?")
            .bind(schedule_id)
            .bind(after_ms)
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        sqlx::Row::get::<i64, _>(&row, "n") as usize
    }
}

/// A logged-in drswitch and a lab with dc1 and drc1 registered and checked.
pub struct LabSetup {
    pub app: TestApp,
    pub lab: lab::Lab,
    pub dc: String,
    pub drc: String,
}

/// The CSRF token in a page's forms.
pub fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a form with a csrf field") + 19;
    html[at..at + 64].to_string()
}

/// A client that does not follow redirects, logged in through the login page.
pub async fn page_client(app: &TestApp, user: &str, pw: &str) -> reqwest::Client {
    let c = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let html = c.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    let r = c
        .post(app.url("/login"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("username", user), ("password", pw)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    c
}

pub async fn lab_setup(env: &[(&str, &str)]) -> LabSetup {
    let app = TestApp::spawn_with(env).await;
    app.login_admin().await;
    let lab = lab::Lab::start(&["dc1", "drc1"], &app.pubkey());
    let dc = app.register(&lab, "dc1", "dc").await;
    let drc = app.register(&lab, "drc1", "drc").await;
    LabSetup { app, lab, dc, drc }
}
