//! The command line: `serve`, `worker`, `migrate`, `db backup`, `user create`, `pubkey`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::auth::password;
use crate::db::users::NewUser;
use crate::db::Db;
use crate::domain::{LoginName, Role};
use crate::settings::Settings;

#[derive(Parser)]
#[command(name = "drswitch", version, about = "Disaster-recovery switch for Proxmox VE")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// API, web UI, scheduler and worker in one process (the default).
    Serve,
    /// A worker only; several may share one MySQL database and archive store.
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// drswitch's own database.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Manage users from the shell.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Print the middleware's SSH public key (created on first use).
    Pubkey,
}

#[derive(Subcommand)]
enum DbCommand {
    /// Write a consistent copy of the database to a new file, also while
    /// drswitch runs: a SQLite database file, or for MySQL/MariaDB an SQL
    /// dump (mariadb-dump --single-transaction).
    Backup {
        /// The new file; an existing one is never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from stdin or --password-file.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long, default_value = "operator")]
        role: String,
        #[arg(long)]
        full_name: Option<String>,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
}

pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    // A missing .env is normal; a broken one is reported by the settings.
    let _ = dotenvy::dotenv();
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("drswitch: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing();
    match run(cli.command.unwrap_or(Command::Serve), settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("drswitch: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,actix_server=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

async fn run(cmd: Command, settings: Settings) -> Result<(), String> {
    match cmd {
        Command::Serve => crate::app::serve(settings).await.map_err(|e| e.to_string()),
        Command::Worker => crate::app::worker_only(settings).await.map_err(|e| e.to_string()),
        Command::Migrate => {
            let db = Db::connect(&settings).await.map_err(|e| e.to_string())?;
            db.migrate().await.map_err(|e| e.to_string())?;
            println!("drswitch: database is up to date ({})", settings.backend.as_str());
            Ok(())
        }
        Command::Db { command: DbCommand::Backup { out } } => {
            let done = crate::db::backup::backup(&settings, &out).await.map_err(|e| e.to_string())?;
            println!(
                "drswitch: wrote the {} database to {} ({} bytes, {})",
                settings.backend.as_str(),
                done.path.display(),
                done.bytes,
                done.method
            );
            Ok(())
        }
        Command::User { command: UserCommand::Create { username, role, full_name, password_file } } => {
            create_user(settings, username, role, full_name, password_file).await
        }
        Command::Pubkey => {
            let key = crate::sshkey::ensure(&settings.ssh_dir()).await.map_err(|e| e.to_string())?;
            println!("{}", key.public_line);
            Ok(())
        }
    }
}

async fn create_user(
    settings: Settings,
    username: String,
    role: String,
    full_name: Option<String>,
    password_file: Option<PathBuf>,
) -> Result<(), String> {
    let username: LoginName = username.parse().map_err(|e: crate::domain::Invalid| format!("--username {e}"))?;
    let role: Role = role.parse().map_err(|e: crate::domain::Invalid| format!("--role {e}"))?;
    let raw = match password_file {
        Some(p) => std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?,
        None => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).map_err(|e| format!("cannot read the password from stdin: {e}"))?;
            s
        }
    };
    let pw = raw.lines().next().unwrap_or_default().to_string();
    password::check_strength(&pw).map_err(|m| format!("the password {m}"))?;
    let hash = password::hash(&pw)?;
    let db = Db::connect(&settings).await.map_err(|e| e.to_string())?;
    db.migrate().await.map_err(|e| e.to_string())?;
    let full = full_name.unwrap_or_else(|| username.to_string());
    let user = db
        .insert_user(NewUser { username: username.as_str(), full_name: &full, password_hash: &hash, role })
        .await
        .map_err(|e| e.to_string())?;
    let detail = format!("username {:?}, role {}", user.username, user.role);
    let subject = crate::service::audit::subject("user", user.id);
    crate::service::audit::record_in(&db, settings.audit_max_entries, "cli", "user.create", subject, &detail).await;
    println!("drswitch: created user {} ({})", user.username, user.role);
    Ok(())
}
