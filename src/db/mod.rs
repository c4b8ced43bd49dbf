//! The database: one pool for SQLite or MySQL/MariaDB, embedded migrations,
//! and one named function per query (bound parameters only). No other
//! module writes SQL.

pub mod alerts;
pub mod archives;
pub mod audit;
pub mod backup;
pub mod claims;
pub mod events;
pub mod hypervisors;
pub mod login_sessions;
pub mod monitoring;
pub mod pairs;
pub mod plans;
pub mod remote_files;
pub mod schedules;
pub mod targets;
pub mod tasks;
pub mod tokens;
pub mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Connection, Executor, Row};

use crate::settings::{Backend, Settings};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A unique key refused the row; the text says which thing clashed.
    #[error("{0}")]
    Conflict(String),
    /// A stored value no longer parses (edited by hand, or a bug).
    #[error("stored value is invalid: {0}")]
    Corrupt(String),
    #[error("cannot open the database: {0}")]
    Open(String),
}

pub type DbResult<T> = Result<T, DbError>;

#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static MYSQL_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/mysql");

impl Db {
    /// Opens the pool; for SQLite the file and its directory are created.
    pub async fn connect(settings: &Settings) -> DbResult<Self> {
        sqlx::any::install_default_drivers();
        let url = settings.database_url.expose();
        let backend = settings.backend;
        let (url, max) = match backend {
            Backend::Sqlite => (sqlite_url(url)?, 8),
            Backend::Mysql => (url.to_string(), 16),
        };
        // One direct attempt first: a pool would retry a refused connection
        // until its timeout, and a wrong URL should fail at once.
        let probe = sqlx::AnyConnection::connect(&url).await.map_err(|e| DbError::Open(describe_open_error(&e)))?;
        let _ = probe.close().await;
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| DbError::Open(describe_open_error(&e)))?;
        if backend == Backend::Sqlite {
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        Ok(Self { pool, backend })
    }

    pub async fn migrate(&self) -> DbResult<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Mysql => MYSQL_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn ping(&self) -> DbResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Adds `mode=rwc` so a missing SQLite file is created, and creates its
/// directory.
fn sqlite_url(url: &str) -> DbResult<String> {
    let path = sqlite_path(url);
    if path.is_empty() || path == ":memory:" {
        return Err(DbError::Open(
            "SQLite needs a file path (an in-memory database is not shared between connections)".into(),
        ));
    }
    let file = std::path::Path::new(path);
    if let Some(dir) = file.parent() {
        if !dir.as_os_str().is_empty() {
            crate::files::ensure_private_dir(dir)
                .map_err(|e| DbError::Open(format!("cannot create {}: {e}", dir.display())))?;
        }
    }
    // SQLite gives its -wal and -shm files the mode of the database file,
    // so a private database file keeps all three private.
    let private = |e: std::io::Error| DbError::Open(format!("cannot create {}: {e}", file.display()));
    if file.exists() {
        // A database file an earlier version created open.
        for suffix in ["", "-wal", "-shm"] {
            let f = std::path::PathBuf::from(format!("{path}{suffix}"));
            if f.exists() {
                crate::files::make_private(&f).map_err(private)?;
            }
        }
    } else {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(file).map_err(private)?;
    }
    Ok(if url.contains('?') { url.to_string() } else { format!("{url}?mode=rwc") })
}

/// The file a `sqlite:` URL names.
pub(crate) fn sqlite_path(url: &str) -> &str {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    path.split('?').next().unwrap_or(path)
}

/// One sentence without the URL (it may hold a password).
fn describe_open_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Configuration(_) => "DATABASE_URL is not a valid database URL".into(),
        sqlx::Error::Io(io) => format!("cannot reach the database server ({io})"),
        sqlx::Error::Database(d) => format!("the database refused the connection ({})", d.message()),
        sqlx::Error::PoolTimedOut => "timed out connecting to the database".into(),
        other => other.to_string(),
    }
}

/// Maps a unique-key violation to `Conflict(what)`.
pub(crate) fn conflict(e: sqlx::Error, what: &str) -> DbError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => DbError::Conflict(what.to_string()),
        _ => DbError::Sqlx(e),
    }
}

pub(crate) fn get<T>(row: &AnyRow, col: &str) -> DbResult<T>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(col).map_err(DbError::Sqlx)
}

/// Reads a text column into a domain type.
pub(crate) fn parse<T: FromStr>(row: &AnyRow, col: &str) -> DbResult<T> {
    let s: String = get(row, col)?;
    s.parse().map_err(|_| DbError::Corrupt(format!("{col} = {s:?}")))
}

pub(crate) fn parse_opt<T: FromStr>(row: &AnyRow, col: &str) -> DbResult<Option<T>> {
    let s: Option<String> = get(row, col)?;
    s.map(|s| s.parse().map_err(|_| DbError::Corrupt(format!("{col} = {s:?}")))).transpose()
}

pub(crate) fn flag(row: &AnyRow, col: &str) -> DbResult<bool> {
    Ok(get::<i64>(row, col)? != 0)
}

pub(crate) fn ts(row: &AnyRow, col: &str) -> DbResult<crate::domain::Timestamp> {
    Ok(crate::domain::Timestamp(get(row, col)?))
}

pub(crate) fn ts_opt(row: &AnyRow, col: &str) -> DbResult<Option<crate::domain::Timestamp>> {
    Ok(get::<Option<i64>>(row, col)?.map(crate::domain::Timestamp))
}
