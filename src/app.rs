//! Builds the shared state and runs the pieces of a process (API, worker,
//! scheduler, monitor) as siblings under one supervisor: one shutdown token stops
//! them all, a panicking sibling is restarted, and SIGTERM gives running
//! tasks `SHUTDOWN_GRACE_SECS` to hand themselves back.

use std::net::TcpListener;
use std::sync::Arc;

use actix_session::config::CookieContentSecurity;
use actix_session::storage::CookieSessionStore;
use actix_session::SessionMiddleware;
use actix_web::cookie::{Key, SameSite};
use actix_web::{web, App, HttpServer};
use tokio_util::sync::CancellationToken;

use crate::auth::{password, LoginGuard};
use crate::db::users::NewUser;
use crate::db::Db;
use crate::domain::Role;
use crate::secrets::SecretBox;
use crate::settings::Settings;
use crate::state::AppState;
use crate::supervisor::{supervise, wait_all};

pub const SESSION_COOKIE: &str = "drswitch_session";

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
pub async fn state(settings: Settings) -> Result<Arc<AppState>, StartError> {
    for dir in [settings.data_dir.clone(), settings.archive_dir()] {
        crate::files::own_dir(&dir).map_err(|e| StartError::Other(format!("cannot prepare {}: {e}", dir.display())))?;
    }
    let db = Db::connect(&settings).await?;
    db.migrate().await?;
    let secrets = SecretBox::load(&settings)?;
    Ok(Arc::new(AppState::new(db, settings, secrets)))
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
    let user = state
        .db
        .insert_user(NewUser {
            username: &username,
            full_name: "Administrator",
            password_hash: &hash,
            role: Role::Admin,
        })
        .await?;
    let detail = format!("username {username:?}, role admin: the first admin, on an empty database");
    let subject = crate::service::audit::subject("user", user.id);
    crate::service::audit::record(state, "bootstrap", "user.create", subject, &detail).await;
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
    let shutdown = CancellationToken::new();
    let mut siblings = Vec::new();
    if state.settings.worker_enabled {
        let s = state.clone();
        siblings.push(supervise("worker", shutdown.clone(), move |stop| crate::worker::run(s.clone(), stop)));
    }
    if state.settings.scheduler_enabled {
        let s = state.clone();
        siblings.push(supervise("scheduler", shutdown.clone(), move |stop| crate::scheduler::run(s.clone(), stop)));
    }
    if state.settings.monitor_enabled {
        let s = state.clone();
        siblings.push(supervise("monitor", shutdown.clone(), move |stop| crate::monitor::run(s.clone(), stop)));
        let s = state.clone();
        siblings.push(supervise("plans", shutdown.clone(), move |stop| crate::plans::run(s.clone(), stop)));
    }
    let mut server = tokio::spawn(server);
    tokio::select! {
        r = &mut server => {
            shutdown.cancel();
            let _ = wait_all(siblings, state.settings.shutdown_grace, in_flux(&state)).await;
            state.db.close().await;
            return match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(StartError::Other(e.to_string())),
                Err(e) => Err(StartError::Other(e.to_string())),
            };
        }
        _ = shutdown_signal() => tracing::info!("shutting down: no new tasks are claimed"),
    }
    shutdown.cancel();
    // Stop taking requests at once, finish the ones in flight, while the
    // worker brings its running tasks to a safe point.
    let stop_http = handle.stop(true);
    let (_, finished) = tokio::join!(stop_http, wait_all(siblings, state.settings.shutdown_grace, in_flux(&state)));
    if !finished {
        tracing::warn!(
            "running tasks did not reach a safe point in time; their leases will expire and they will be retried"
        );
    }
    state.db.close().await;
    Ok(())
}

/// True while a replica is being replaced: shutdown must not cut that.
fn in_flux(state: &Arc<AppState>) -> impl Fn() -> bool {
    let state = state.clone();
    move || {
        let n = state.replicas_in_flux();
        if n > 0 {
            tracing::warn!(replicas = n, "waiting past the grace period: a replica is being replaced");
        }
        n > 0
    }
}

/// Runs `drswitch worker` (no API, no scheduler) until SIGINT/SIGTERM.
pub async fn worker_only(settings: Settings) -> Result<(), StartError> {
    let state = state(settings).await?;
    tracing::info!(database = state.settings.backend.as_str(), "drswitch worker started");
    let shutdown = CancellationToken::new();
    let s = state.clone();
    let worker = supervise("worker", shutdown.clone(), move |stop| crate::worker::run(s.clone(), stop));
    shutdown_signal().await;
    tracing::info!("shutting down: no new tasks are claimed");
    shutdown.cancel();
    if !wait_all(vec![worker], state.settings.shutdown_grace, in_flux(&state)).await {
        tracing::warn!(
            "running tasks did not reach a safe point in time; their leases will expire and they will be retried"
        );
    }
    state.db.close().await;
    Ok(())
}

fn http_server(state: Arc<AppState>, listener: TcpListener) -> Result<actix_web::dev::Server, StartError> {
    let key = Key::from(state.secrets.cookie_key());
    // `auto` is decided per request, outside the session middleware.
    let secure = state.settings.cookie_secure == crate::settings::CookieSecure::Always;
    let state = web::Data::from(state);
    let guard = web::Data::new(LoginGuard::default());
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
            .app_data(guard.clone())
            .app_data(web::PayloadConfig::new(crate::api::body::MAX_BODY))
            .wrap(sessions)
            .wrap(actix_web::middleware::from_fn(crate::client_addr::remember))
            .wrap(actix_web::middleware::from_fn(crate::secure_cookie::mark))
            // Pages, assets and JSON travel compressed when the client asks.
            .wrap(actix_web::middleware::Compress::default())
            .wrap(tracing_actix())
            .wrap(crate::security_headers::middleware())
            .configure(crate::api::routes)
            .configure(crate::web::routes)
    })
    .listen(listener)
    .map_err(|e| StartError::Other(e.to_string()))?
    // The supervisor handles the signals, so shutdown runs in one order.
    .disable_signals()
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
