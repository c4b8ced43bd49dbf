//! `drswitch db backup --out FILE`: a consistent copy of drswitch's own
//! database, taken while drswitch may be running.
//!
//! - SQLite: `VACUUM INTO` a new file. It reads one snapshot, so writers
//!   carry on, and the copy is a whole database (WAL included).
//! - MySQL/MariaDB: `mariadb-dump` (or `mysqldump`) with
//!   `--single-transaction`: one consistent InnoDB snapshot, no table locks.
//!   The password goes in a 0600 option file that is removed afterwards,
//!   never on the command line (where `ps` shows it) or in the tool's
//!   environment (which gets none of drswitch's settings).
//!
//! The copy is written under a temporary name beside FILE and only gets its
//! name when complete; an existing FILE is never overwritten. The copy holds
//! encrypted secrets and password hashes, so it is 0600.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use percent_encoding::percent_decode_str;

use crate::settings::{Backend, Settings};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} exists; drswitch never overwrites a backup (choose a new name)")]
    Exists(PathBuf),
    #[error("there is no database at {0}")]
    NoDatabase(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Db(#[from] super::DbError),
    #[error("DATABASE_URL {0}")]
    Url(String),
    #[error("neither mariadb-dump nor mysqldump is installed (Debian: apt install mariadb-client)")]
    NoDumpTool,
    #[error("{0} wrote nothing; no backup was made")]
    Empty(String),
    #[error("{tool} failed: {detail}")]
    Dump { tool: String, detail: String },
}

/// What was written.
#[derive(Debug)]
pub struct Backup {
    pub path: PathBuf,
    pub bytes: u64,
    /// The program that made it: `VACUUM INTO`, `mariadb-dump`, `mysqldump`.
    pub method: String,
}

/// Copies the database `settings` name into a new file `out`.
pub async fn backup(settings: &Settings, out: &Path) -> Result<Backup, BackupError> {
    if out.symlink_metadata().is_ok() {
        return Err(BackupError::Exists(out.to_path_buf()));
    }
    let write_err = |source| BackupError::Write { path: out.to_path_buf(), source };
    let (tmp, file) = crate::files::temp_beside(out).map_err(write_err)?;
    // Whatever happens below, no temporary file stays behind.
    let tmp = Removed(tmp);
    let method = match settings.backend {
        Backend::Sqlite => {
            drop(file);
            vacuum_into(settings, &tmp.0).await?;
            "VACUUM INTO".to_string()
        }
        Backend::Mysql => dump(settings.database_url.expose(), file).await?,
    };
    // A tool that exits 0 without writing anything has not made a backup.
    if std::fs::metadata(&tmp.0).map(|m| m.len()).map_err(write_err)? == 0 {
        return Err(BackupError::Empty(method));
    }
    if !crate::files::publish_new(&tmp.0, out).map_err(write_err)? {
        return Err(BackupError::Exists(out.to_path_buf()));
    }
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    Ok(Backup { path: out.to_path_buf(), bytes, method })
}

/// A file removed when this goes out of scope.
struct Removed(PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn vacuum_into(settings: &Settings, into: &Path) -> Result<(), BackupError> {
    let file = PathBuf::from(super::sqlite_path(settings.database_url.expose()));
    // Opening a missing file would create an empty database and copy that.
    if !file.is_file() {
        return Err(BackupError::NoDatabase(file));
    }
    let db = super::Db::connect(settings).await?;
    // The target is the empty 0600 file made for it; SQLite fills it.
    let copied = sqlx::query("VACUUM INTO ?").bind(into.display().to_string()).execute(db.pool()).await;
    db.close().await;
    copied.map_err(super::DbError::Sqlx)?;
    Ok(())
}

/// Where and as whom to connect, from a `mysql://` URL.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
    database: String,
    socket: Option<String>,
}

fn parse_url(raw: &str) -> Result<Target, BackupError> {
    let url = url::Url::parse(raw).map_err(|_| BackupError::Url("is not a valid URL".into()))?;
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let database = decode(url.path().trim_start_matches('/'));
    // The name is an argument of the dump tool: a plain name, never an option.
    let plain = !database.is_empty()
        && !database.starts_with('-')
        && database.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '-'));
    if !plain {
        return Err(BackupError::Url("must name the database (mysql://user:password@host:port/database)".into()));
    }
    let socket = url.query_pairs().find(|(k, _)| k == "socket").map(|(_, v)| v.into_owned());
    Ok(Target {
        host: url.host_str().unwrap_or("localhost").trim_start_matches('[').trim_end_matches(']').to_string(),
        port: url.port().unwrap_or(3306),
        user: decode(url.username()),
        password: url.password().map(decode),
        database,
        socket,
    })
}

/// The `[client]` option file: a value in double quotes with `\` and `"`
/// escaped is read back verbatim by the MySQL and MariaDB clients.
fn option_file(t: &Target) -> String {
    let quote = |s: &str| {
        let escaped = s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n").replace('\r', "\\r");
        format!("\"{escaped}\"")
    };
    let mut text = format!("[client]\nuser={}\n", quote(&t.user));
    if let Some(pw) = &t.password {
        text += &format!("password={}\n", quote(pw));
    }
    match &t.socket {
        Some(socket) => text += &format!("socket={}\n", quote(socket)),
        // Like drswitch itself: TCP, also for "localhost".
        None => text += &format!("host={}\nport={}\nprotocol=TCP\n", quote(&t.host), t.port),
    }
    text
}

fn dump_tool() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["mariadb-dump", "mysqldump"]
        .iter()
        .flat_map(|tool| std::env::split_paths(&path).map(move |dir| dir.join(tool)))
        .find(|p| p.is_file())
}

/// Runs the dump tool with its stdout in `out`; returns the tool's name.
async fn dump(url: &str, out: std::fs::File) -> Result<String, BackupError> {
    let target = parse_url(url)?;
    let tool = dump_tool().ok_or(BackupError::NoDumpTool)?;
    let name = tool.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let failed = |detail: String| BackupError::Dump { tool: name.clone(), detail };
    let options_path = std::env::temp_dir().join(format!("drswitch-dump-{}.cnf", uuid::Uuid::new_v4().simple()));
    let options_err = |e: std::io::Error| failed(format!("cannot write its option file: {e}"));
    let mut options = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&options_path)
        .map_err(options_err)?;
    let options_path = Removed(options_path);
    options.write_all(option_file(&target).as_bytes()).and_then(|()| options.sync_all()).map_err(options_err)?;
    drop(options);
    let output = tokio::process::Command::new(&tool)
        // Only this file: no ~/.my.cnf may change user or server.
        .arg(format!("--defaults-file={}", options_path.0.display()))
        .args([
            "--single-transaction",
            "--routines",
            "--triggers",
            "--no-tablespaces",
            "--hex-blob",
            "--default-character-set=utf8mb4",
        ])
        .arg(&target.database)
        // DATABASE_URL, SECRET_KEY, ADMIN_PASSWORD may sit in ours.
        .env_clear()
        .envs(std::env::vars_os().filter(|(k, _)| ["PATH", "LANG", "LC_ALL", "TZ"].iter().any(|keep| k == keep)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Not `output()`: that would capture stdout too, instead of the file.
        .spawn()
        .map_err(|e| failed(e.to_string()))?
        .wait_with_output()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let detail = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim();
        return Err(failed(format!("{detail} ({})", output.status)));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_url_and_quotes_the_password() {
        let t = parse_url("mysql://dr%40switch:p%22a%5Cs%23s%20w@db.example:3307/drswitch").unwrap();
        assert_eq!(t.user, "dr@switch");
        assert_eq!(t.password.as_deref(), Some("p\"a\\s#s w"));
        assert_eq!((t.host.as_str(), t.port, t.database.as_str()), ("db.example", 3307, "drswitch"));
        let text = option_file(&t);
        assert!(text.contains("password=\"p\\\"a\\\\s#s w\"\n"), "{text}");
        assert!(text.contains("protocol=TCP"), "{text}");

        let t = parse_url("mysql://u@localhost/db?socket=/run/mysqld/mysqld.sock").unwrap();
        assert_eq!((t.port, t.password.as_deref()), (3306, None));
        assert!(option_file(&t).contains("socket=\"/run/mysqld/mysqld.sock\""));
    }

    #[test]
    fn the_database_name_cannot_be_an_option() {
        for url in ["mysql://u:p@h/", "mysql://u:p@h/--all-databases", "mysql://u:p@h/a%20b", "mysql://u:p@h"] {
            assert!(matches!(parse_url(url), Err(BackupError::Url(_))), "{url}");
        }
    }
}
