//! Builds the shared state and starts the pieces of a process (API,
//! worker, scheduler) as siblings that stop together.

use std::net::TcpListener;
use std::sync::Arc;

use actix_session::config::CookieContentSecurity;
use actix_session::storage::CookieSessionStore;
use actix_session::SessionMiddleware;
use actix_web::cookie::{Key, SameSite};
use actix_web::{web, App, HttpServer};
use tokio::sync::Notify;

use crate::auth::{password, Throttle};
use crate::db::users::NewUser;
use crate::db::Db;
use crate::domain::Role;
use crate::secrets::SecretBox;
use crate::settings::Settings;

pub const SESSION_COOKIE: &str = "drswitch_session";

/// Password verifications at once.
const VERIFY_SLOTS: usize = 4;

/// Everything handlers, the worker and the scheduler share.
pub struct AppState {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub secrets: SecretBox,
    /// Login attempts per username.
    pub throttle: Throttle,
    /// Login attempts per client address.
    pub addr_throttle: Throttle,
    /// argon2 verifications running at once (each takes ~19 MiB and a core
    /// for a moment); further logins wait their turn.
    pub verify_slots: tokio::sync::Semaphore,
    /// Woken whenever a task is queued by this process.
    pub task_queued: Arc<Notify>,
    /// Woken whenever a schedule is created, changed or deleted.
    pub schedules_changed: Arc<Notify>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("{0}")]
    Other(String),
}

/// Opens the database, applies migrations and loads the secret key.
pub async fn state(settings: Settings) -> Result<web::Data<AppState>, StartError> {
    for dir in [settings.data_dir.clone(), settings.archive_dir()] {
        crate::files::own_dir(&dir).map_err(|e| StartError::Other(format!("cannot prepare {}: {e}", dir.display())))?;
    }
    let db = Db::connect(&settings).await?;
    db.migrate().await?;
    let secrets = SecretBox::load(&settings)?;
    Ok(web::Data::new(AppState {
        db,
        settings: Arc::new(settings),
        secrets,
        throttle: Throttle::default(),
        addr_throttle: Throttle::per_address(),
        verify_slots: tokio::sync::Semaphore::new(VERIFY_SLOTS),
        task_queued: Arc::new(Notify::new()),
        schedules_changed: Arc::new(Notify::new()),
    }))
}

/// Creates the first admin when the database has no user at all.
pub async fn bootstrap_admin(state: &AppState) -> Result<(), StartError> {
    if state.db.count_users().await? > 0 {
        return Ok(());
    }
    let s = &state.settings;
    let username = s.admin_username.clone().unwrap_or_else(|| "admin".into());
    let (pw, generated) = match &s.admin_password {
        Some(p) => (p.expose().to_string(), false),
        None => (password::random(), true),
    };
    let hash = password::hash(&pw).map_err(StartError::Other)?;
    state
        .db
        .insert_user(NewUser {
            username: &username,
            full_name: "Administrator",
            password_hash: &hash,
            role: Role::Admin,
        })
        .await?;
    if generated {
        // Printed once on the terminal, never to the log.
        println!("drswitch: created the first admin user {username:?} with password {pw}");
        println!("drswitch: log in and change it; it will not be shown again.");
    }
    tracing::info!(username, "created the first admin user");
    Ok(())
}

/// Runs `drswitch serve` until SIGINT/SIGTERM.
pub async fn serve(settings: Settings) -> Result<(), StartError> {
    let state = state(settings).await?;
    bootstrap_admin(&state).await?;
    let addr = state.settings.listen;
    let listener = TcpListener::bind(addr).map_err(|source| StartError::Listen { addr: addr.to_string(), source })?;
    let bound = listener.local_addr().map_err(|source| StartError::Listen { addr: addr.to_string(), source })?;
    let server = http_server(state.clone(), listener)?;
    tracing::info!(database = state.settings.backend.as_str(), "drswitch listening on http://{bound}");
    let handle = server.handle();
    let worker = crate::worker::run(state.clone(), state.settings.worker_enabled);
    let scheduler = crate::scheduler::run(state.clone(), state.settings.scheduler_enabled);
    tokio::select! {
        r = server => r.map_err(|e| StartError::Other(e.to_string()))?,
        _ = worker => {},
        _ = scheduler => {},
        _ = shutdown_signal() => tracing::info!("shutting down"),
    }
    handle.stop(true).await;
    state.db.close().await;
    Ok(())
}

/// Runs `drswitch worker` (no API, no scheduler) until SIGINT/SIGTERM.
pub async fn worker_only(settings: Settings) -> Result<(), StartError> {
    let state = state(settings).await?;
    tracing::info!(database = state.settings.backend.as_str(), "drswitch worker started");
    tokio::select! {
        _ = crate::worker::run(state.clone(), true) => {},
        _ = shutdown_signal() => tracing::info!("shutting down"),
    }
    state.db.close().await;
    Ok(())
}

fn http_server(state: web::Data<AppState>, listener: TcpListener) -> Result<actix_web::dev::Server, StartError> {
    let key = Key::from(state.secrets.cookie_key());
    let secure = state.settings.cookie_secure;
    let server = HttpServer::new(move || {
        let sessions = SessionMiddleware::builder(CookieSessionStore::default(), key.clone())
            .cookie_name(SESSION_COOKIE.into())
            .cookie_http_only(true)
            .cookie_same_site(SameSite::Strict)
            .cookie_secure(secure)
            .cookie_content_security(CookieContentSecurity::Private)
            .build();
        App::new()
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(crate::api::body::MAX_BODY))
            .wrap(sessions)
            .wrap(tracing_actix())
            .configure(crate::api::routes)
    })
    .listen(listener)
    .map_err(|e| StartError::Other(e.to_string()))?
    .shutdown_timeout(5)
    .run();
    Ok(server)
}

/// Logs method, path (never the query or body) and status.
fn tracing_actix() -> actix_web::middleware::Logger {
    actix_web::middleware::Logger::new("%{r}a \"%m %U\" %s %Dms")
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
