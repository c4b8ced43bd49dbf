use serde::{Deserialize, Serialize};
use std::fmt;

use super::Invalid;

/// Declares a closed set of lowercase words stored as text in the database
/// and spelled the same in the API.
macro_rules! word_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = Invalid;
            fn from_str(s: &str) -> Result<Self, Invalid> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(Invalid::new(format!(
                        "must be one of: {}",
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

word_enum!(
    /// What a user may do. Admins manage users and hypervisors, operators run
    /// and schedule tasks and manage pairs, viewers only read.
    Role { Viewer => "viewer", Operator => "operator", Admin => "admin" }
);

impl Role {
    fn rank(self) -> u8 {
        match self {
            Role::Viewer => 0,
            Role::Operator => 1,
            Role::Admin => 2,
        }
    }

    /// True when this role includes everything `needed` may do.
    pub fn allows(self, needed: Role) -> bool {
        self.rank() >= needed.rank()
    }
}

word_enum!(
    /// Which side of the switch a hypervisor stands on.
    HypervisorRole { Dc => "dc", Drc => "drc" }
);

word_enum!(
    /// Guest type on Proxmox.
    Guest { Qemu => "qemu", Lxc => "lxc" }
);

word_enum!(
    /// vzdump `--compress` choice.
    Compress { Zstd => "zstd", Lzo => "lzo", Gzip => "gzip", None => "none" }
);

impl Compress {
    /// The value vzdump's `--compress` option takes.
    pub fn vzdump_arg(self) -> &'static str {
        match self {
            Compress::None => "0",
            other => other.as_str(),
        }
    }
}

word_enum!(
    /// How a pair's archives travel (SPEC §4.1): `staged` finishes each hop
    /// before the next; `streaming` reads `vzdump --stdout` and forwards the
    /// same bytes to the DRC host while storing them.
    Transfer { Staged => "staged", Streaming => "streaming" }
);

word_enum!(
    /// vzdump `--mode` choice.
    Mode { Snapshot => "snapshot", Suspend => "suspend", Stop => "stop" }
);

word_enum!(
    /// What a task does.
    TaskKind {
        /// vzdump on the DC host and pull the archive to the middleware.
        Backup => "backup",
        /// Push an archive to the DRC host and qmrestore it there.
        Restore => "restore",
        /// A backup followed by a restore of that same archive.
        Replicate => "replicate",
        /// Fence the DC VM and bring the replica up on the DRC side.
        Failover => "failover",
        /// Copy the DRC copy back over the DC VM and protect it again.
        Failback => "failback",
        /// Restore a throwaway, isolated copy on the DRC side, check it
        /// boots, destroy it.
        Drill => "drill",
    }
);

impl TaskKind {
    /// Failover, failback and drill come before other queued work.
    pub fn is_switch(self) -> bool {
        matches!(self, TaskKind::Failover | TaskKind::Failback | TaskKind::Drill)
    }
}

word_enum!(
    /// Where a pair stands in the switch (SPEC §5.3); only failover and
    /// failback tasks change it.
    PairState {
        Protected => "protected",
        FailingOver => "failing_over",
        FailedOver => "failed_over",
        FailingBack => "failing_back",
    }
);

word_enum!(
    /// Where a task is in its life.
    TaskStatus {
        /// Waiting for a worker.
        Queued => "queued",
        /// Claimed by a worker that holds a lease on it.
        Running => "running",
        /// Finished and every step checked out.
        Succeeded => "succeeded",
        /// Stopped with an error; `error` says why in one sentence.
        Failed => "failed",
        /// Stopped on request before it finished.
        Cancelled => "cancelled"
    }
);

impl TaskStatus {
    pub fn is_final(self) -> bool {
        matches!(self, TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Cancelled)
    }
}

word_enum!(
    /// What a schedule enqueues.
    ScheduleKind { Backup => "backup", Replicate => "replicate" }
);

impl From<ScheduleKind> for TaskKind {
    fn from(k: ScheduleKind) -> TaskKind {
        match k {
            ScheduleKind::Backup => TaskKind::Backup,
            ScheduleKind::Replicate => TaskKind::Replicate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_nest() {
        assert!(Role::Admin.allows(Role::Operator));
        assert!(Role::Operator.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Operator));
        assert!(!Role::Operator.allows(Role::Admin));
    }

    #[test]
    fn words_round_trip() {
        for r in TaskStatus::ALL {
            assert_eq!(r.as_str().parse::<TaskStatus>().unwrap(), *r);
        }
        assert!("root".parse::<Role>().is_err());
        assert_eq!(Compress::None.vzdump_arg(), "0");
    }
}

word_enum!(
    /// Why a task failed, for alerts and retries; the task's `error` is the
    /// sentence for a person.
    ErrorKind {
        /// ssh or the API of a host did not answer.
        HostUnreachable => "host_unreachable",
        /// The host's SSH key is not the pinned one (or none is pinned yet).
        HostKeyChanged => "host_key_changed",
        /// A dump dir, the archive store or a storage is too full.
        NotEnoughSpace => "not_enough_space",
        /// The VM does not exist where it should.
        GuestMissing => "guest_missing",
        /// A VM exists at the target that is not this pair's replica.
        NotOurs => "not_ours",
        /// A remote command ran and failed.
        CommandFailed => "command_failed",
        /// A remote command did not finish in time.
        Timeout => "timeout",
        /// A copy did not match its checksum.
        Checksum => "checksum",
        /// drswitch's own database failed.
        Database => "database",
        /// The pair, a host or an archive is not usable as configured.
        Config => "config",
        /// A failure inside drswitch itself.
        Internal => "internal",
        /// The worker running it stopped responding too often.
        WorkerLost => "worker_lost",
    }
);

word_enum!(
    /// What an alert is about (SPEC §5.2).
    AlertKind {
        HostDown => "host_down",
        ServiceDown => "service_down",
        MetricHigh => "metric_high",
        TaskFailed => "task_failed",
        RpoBreached => "rpo_breached",
        Failover => "failover",
    }
);

impl AlertKind {
    pub fn severity(self) -> Severity {
        match self {
            AlertKind::HostDown | AlertKind::RpoBreached | AlertKind::Failover => Severity::Critical,
            AlertKind::ServiceDown | AlertKind::MetricHigh | AlertKind::TaskFailed => Severity::Warning,
        }
    }
}

word_enum!(
    /// How urgent an alert is; a target takes those at or above its minimum.
    Severity { Warning => "warning", Critical => "critical" }
);

impl Severity {
    pub fn at_least(self, min: Severity) -> bool {
        (self as u8) >= (min as u8)
    }
}

word_enum!(
    /// How a notification target is reached.
    TargetKind { Webhook => "webhook", Smtp => "smtp", Command => "command" }
);

word_enum!(
    /// What an API token may do: `write` (everything its user may do) or
    /// `read` (GET requests only).
    TokenScope { Read => "read", Write => "write" }
);

word_enum!(
    /// How mail reaches the SMTP server.
    SmtpTlsMode { Starttls => "starttls", Tls => "tls", None => "none" }
);
