//! Typed settings, read once at start from defaults, then `.env`, then the
//! environment. A bad value stops the program with one line naming the
//! variable. Never read globally: `Settings` is passed to whoever needs it.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::domain::{IpRange, TimeZone};

/// A value that must never reach a log: `Debug` and `Display` hide it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Which database the URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Mysql,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Mysql => "mysql",
        }
    }
}

/// When the session cookie carries `Secure` (`COOKIE_SECURE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieSecure {
    /// Always: drswitch is only ever reached over https.
    Always,
    /// Never: plain http (a lab, or a proxy on the same host).
    Never,
    /// When the request came over https, as a proxy in `TRUSTED_PROXIES`
    /// says with `X-Forwarded-Proto`; nobody else is believed.
    Auto,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: Secret,
    pub backend: Backend,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub secret_key: Option<Secret>,
    pub admin_username: Option<String>,
    pub admin_password: Option<Secret>,
    pub worker_concurrency: usize,
    pub timezone: TimeZone,
    pub cookie_secure: CookieSecure,
    /// Reverse proxies whose `X-Forwarded-Proto` is believed.
    pub trusted_proxies: Vec<IpRange>,
    pub worker_enabled: bool,
    pub scheduler_enabled: bool,
    pub lease: Duration,
    pub max_attempts: u32,
    pub ssh_connect_timeout: Duration,
    pub command_timeout: Duration,
    pub schedule_grace: Duration,
    pub poll_interval: Duration,
    /// A login lasts at most this long (seconds), however active.
    pub session_max_secs: u64,
    /// A login unused this long (seconds) is over; 0: no idle limit.
    pub session_idle_secs: u64,
    /// How long SIGTERM waits for running tasks to reach a safe point.
    pub shutdown_grace: Duration,
    /// rsync --bwlimit in KiB/s; 0 means no limit.
    pub transfer_bwlimit_kib: u64,
    /// Accept six-field cron expressions (seconds first); for tests and demos.
    pub schedule_seconds: bool,
    pub monitor_enabled: bool,
    /// How often every enabled hypervisor is probed.
    pub monitor_interval: Duration,
    /// Bound of one probe (API and ssh each); a dead host costs this much.
    pub probe_timeout: Duration,
    /// A host whose last good probe is older than this is down, unless the
    /// alert settings say otherwise.
    pub failover_tolerance: Duration,
    /// Serve `/metrics` without a token.
    pub metrics_public: bool,
    /// How long fencing waits for a clean shutdown of the DC VM before it
    /// stops it hard.
    pub fence_shutdown: Duration,
    /// How long a drill VM must keep running to pass.
    pub drill_boot: Duration,
    /// The audit log keeps this many newest entries.
    pub audit_max_entries: u64,
}

/// A configuration problem, naming the variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {var} {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

fn err(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError { var, message: message.into() }
}

struct Reader<F: Fn(&str) -> Option<String>>(F);

impl<F: Fn(&str) -> Option<String>> Reader<F> {
    fn get(&self, var: &str) -> Option<String> {
        (self.0)(var).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    fn parse<T: std::str::FromStr>(&self, var: &'static str, default: T, what: &str) -> Result<T, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| err(var, format!("must be {what} (got {v:?})"))),
        }
    }

    fn number(&self, var: &'static str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
        let n: u64 = self.parse(var, default, &format!("an integer from {min} to {max}"))?;
        if (min..=max).contains(&n) {
            Ok(n)
        } else {
            Err(err(var, format!("must be an integer from {min} to {max} (got {n})")))
        }
    }

    fn flag(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var).as_deref() {
            None => Ok(default),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(v) => Err(err(var, format!("must be true or false (got {v:?})"))),
        }
    }

    fn cookie_secure(&self) -> Result<CookieSecure, ConfigError> {
        match self.get("COOKIE_SECURE").as_deref() {
            None | Some("auto") => Ok(CookieSecure::Auto),
            Some("1" | "true" | "yes" | "on") => Ok(CookieSecure::Always),
            Some("0" | "false" | "no" | "off") => Ok(CookieSecure::Never),
            Some(v) => Err(err("COOKIE_SECURE", format!("must be auto, true or false (got {v:?})"))),
        }
    }

    /// A comma-separated list of addresses and CIDR blocks.
    fn ip_ranges(&self, var: &'static str) -> Result<Vec<IpRange>, ConfigError> {
        let Some(list) = self.get(var) else { return Ok(Vec::new()) };
        list.split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| v.parse().map_err(|e: crate::domain::Invalid| err(var, e.0)))
            .collect()
    }
}

/// `SESSION_MAX_SECS`, or its older name `SESSION_MAX_AGE_SECS` when only
/// that one is set (an existing `.env` keeps working).
fn session_max_var<F: Fn(&str) -> Option<String>>(r: &Reader<F>) -> &'static str {
    if r.get("SESSION_MAX_SECS").is_none() && r.get("SESSION_MAX_AGE_SECS").is_some() {
        "SESSION_MAX_AGE_SECS"
    } else {
        "SESSION_MAX_SECS"
    }
}

impl Settings {
    /// Reads the process environment (after `.env` was loaded into it).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let r = Reader(lookup);
        let data_dir = PathBuf::from(r.get("DATA_DIR").unwrap_or_else(|| "./data".into()));
        let database_url =
            r.get("DATABASE_URL").unwrap_or_else(|| format!("sqlite://{}", data_dir.join("drswitch.db").display()));
        let backend = if database_url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if database_url.starts_with("mysql://") || database_url.starts_with("mariadb://") {
            Backend::Mysql
        } else {
            return Err(err("DATABASE_URL", "must start with sqlite:// or mysql://"));
        };
        let database_url = database_url.replacen("mariadb://", "mysql://", 1);
        let listen =
            r.parse("LISTEN", SocketAddr::from(([127, 0, 0, 1], 8080)), "an address such as 127.0.0.1:8080")?;
        let secret_key = r.get("SECRET_KEY").map(Secret::new);
        if let Some(k) = &secret_key {
            if k.expose().len() < 32 {
                return Err(err("SECRET_KEY", "must be at least 32 characters long"));
            }
        }
        let admin_username = r.get("ADMIN_USERNAME");
        if let Some(u) = &admin_username {
            u.parse::<crate::domain::LoginName>().map_err(|e| err("ADMIN_USERNAME", e.0))?;
        }
        let admin_password = r.get("ADMIN_PASSWORD").map(Secret::new);
        if let Some(p) = &admin_password {
            if p.expose().len() < 8 {
                return Err(err("ADMIN_PASSWORD", "must be at least 8 characters long"));
            }
        }
        let timezone = match r.get("TZ") {
            None => TimeZone(chrono_tz::UTC),
            Some(v) => v
                .trim_start_matches(':')
                .parse()
                .map_err(|_| err("TZ", format!("must be an IANA time zone such as Europe/Berlin (got {v:?})")))?,
        };
        let secs = Duration::from_secs;
        let monitor_interval = secs(r.number("MONITOR_INTERVAL_SECS", 60, 1, 3600)?);
        let probe_timeout = secs(r.number("MONITOR_PROBE_TIMEOUT_SECS", 10, 1, 300)?);
        if probe_timeout > monitor_interval.max(secs(2)) {
            return Err(err("MONITOR_PROBE_TIMEOUT_SECS", "must not be longer than MONITOR_INTERVAL_SECS"));
        }
        let failover_tolerance = secs(r.number("FAILOVER_TOLERANCE_SECS", 120, 1, 86_400)?);
        // One missed probe must never make a host "down" (and fail it over).
        if failover_tolerance < monitor_interval * 2 {
            return Err(err("FAILOVER_TOLERANCE_SECS", "must be at least twice MONITOR_INTERVAL_SECS"));
        }
        Ok(Settings {
            database_url: Secret::new(database_url),
            backend,
            listen,
            data_dir,
            secret_key,
            admin_username,
            admin_password,
            worker_concurrency: r.number("WORKER_CONCURRENCY", 1, 1, 64)? as usize,
            timezone,
            cookie_secure: r.cookie_secure()?,
            trusted_proxies: r.ip_ranges("TRUSTED_PROXIES")?,
            worker_enabled: r.flag("WORKER_ENABLED", true)?,
            scheduler_enabled: r.flag("SCHEDULER_ENABLED", true)?,
            lease: secs(r.number("TASK_LEASE_SECS", 30, 2, 3600)?),
            max_attempts: r.number("TASK_MAX_ATTEMPTS", 3, 1, 20)? as u32,
            ssh_connect_timeout: secs(r.number("SSH_CONNECT_TIMEOUT_SECS", 10, 1, 300)?),
            command_timeout: secs(r.number("COMMAND_TIMEOUT_SECS", 14_400, 5, 604_800)?),
            schedule_grace: secs(r.number("SCHEDULE_GRACE_SECS", 3600, 0, 604_800)?),
            poll_interval: Duration::from_millis(r.number("WORKER_POLL_MS", 500, 50, 60_000)?),
            shutdown_grace: secs(r.number("SHUTDOWN_GRACE_SECS", 30, 1, 3600)?),
            session_max_secs: r.number(session_max_var(&r), 43_200, 1, 2_592_000)?,
            session_idle_secs: r.number("SESSION_IDLE_SECS", 3600, 0, 2_592_000)?,
            transfer_bwlimit_kib: r.number("TRANSFER_BWLIMIT_KIB", 0, 0, 100_000_000)?,
            schedule_seconds: r.flag("SCHEDULE_SECONDS", false)?,
            monitor_enabled: r.flag("MONITOR_ENABLED", true)?,
            monitor_interval,
            probe_timeout,
            failover_tolerance,
            metrics_public: r.flag("METRICS_PUBLIC", false)?,
            fence_shutdown: secs(r.number("FENCE_SHUTDOWN_SECS", 60, 1, 3600)?),
            drill_boot: secs(r.number("DRILL_BOOT_SECS", 60, 1, 3600)?),
            audit_max_entries: r.number("AUDIT_MAX_ENTRIES", 100_000, 10, 100_000_000)?,
        })
    }

    pub fn archive_dir(&self) -> PathBuf {
        self.data_dir.join("archives")
    }

    pub fn ssh_dir(&self) -> PathBuf {
        self.data_dir.join("ssh")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let s = load(&[]).unwrap();
        assert_eq!(s.backend, Backend::Sqlite);
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.database_url.expose(), "sqlite://./data/drswitch.db");
        assert_eq!(s.worker_concurrency, 1);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = load(&[("WORKER_CONCURRENCY", "lots")]).unwrap_err();
        assert_eq!(e.var, "WORKER_CONCURRENCY");
        assert_eq!(load(&[("DATABASE_URL", "postgres://x")]).unwrap_err().var, "DATABASE_URL");
        assert_eq!(load(&[("TZ", "Mars/Base")]).unwrap_err().var, "TZ");
        assert_eq!(load(&[("LISTEN", "nowhere")]).unwrap_err().var, "LISTEN");
        assert_eq!(load(&[("SECRET_KEY", "short")]).unwrap_err().var, "SECRET_KEY");
    }

    #[test]
    fn cookie_secure_and_trusted_proxies() {
        let s = load(&[]).unwrap();
        assert_eq!(s.cookie_secure, CookieSecure::Auto);
        assert!(s.trusted_proxies.is_empty());
        assert_eq!(load(&[("COOKIE_SECURE", "true")]).unwrap().cookie_secure, CookieSecure::Always);
        assert_eq!(load(&[("COOKIE_SECURE", "false")]).unwrap().cookie_secure, CookieSecure::Never);
        assert_eq!(load(&[("COOKIE_SECURE", "sometimes")]).unwrap_err().var, "COOKIE_SECURE");
        let s = load(&[("TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8,fd00::/8")]).unwrap();
        assert_eq!(s.trusted_proxies.len(), 3);
        assert!(s.trusted_proxies[1].contains("10.9.8.7".parse().unwrap()));
        assert_eq!(load(&[("TRUSTED_PROXIES", "10.0.0.0/8, proxy.lan")]).unwrap_err().var, "TRUSTED_PROXIES");
    }

    #[test]
    fn session_limits() {
        let s = load(&[]).unwrap();
        assert_eq!((s.session_max_secs, s.session_idle_secs), (43_200, 3600));
        let s = load(&[("SESSION_MAX_AGE_SECS", "600"), ("SESSION_IDLE_SECS", "0")]).unwrap();
        assert_eq!((s.session_max_secs, s.session_idle_secs), (600, 0), "the older name still works; 0: no idle limit");
        let s = load(&[("SESSION_MAX_AGE_SECS", "600"), ("SESSION_MAX_SECS", "900")]).unwrap();
        assert_eq!(s.session_max_secs, 900, "the new name wins");
        assert_eq!(load(&[("SESSION_MAX_SECS", "0")]).unwrap_err().var, "SESSION_MAX_SECS");
        assert_eq!(load(&[("SESSION_IDLE_SECS", "soon")]).unwrap_err().var, "SESSION_IDLE_SECS");
    }

    #[test]
    fn secrets_do_not_print() {
        let s = load(&[("ADMIN_PASSWORD", "hunter2hunter2")]).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
