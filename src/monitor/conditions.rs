//! What should be alerting right now, from what the database knows: pure
//! functions, so every rule is tested without a host.
//!
//! Each watched thing gets a verdict under a key (kind and subject):
//! `Firing` opens an alert for that key unless one is open, `Clear` closes
//! an open one, `Hold` leaves things as they are. Damping lives here: a
//! condition must hold for N consecutive samples (a host: for the whole
//! tolerance) before it fires, and must be clear for N samples before it
//! resolves, so a flapping host or a figure hovering at its threshold
//! cannot send a storm.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;

use crate::db::alerts::AlertSettings;
use crate::db::hypervisors::Hypervisor;
use crate::db::monitoring::{Health, Sample};
use crate::db::pairs::Pair;
use crate::db::tasks::Task;
use crate::domain::{AlertKind, PairId, TaskStatus, Timestamp};
use crate::hypervisor::proxmox::probe::WATCHED_SERVICES;

#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub kind: AlertKind,
    pub subject_type: &'static str,
    pub subject_id: String,
    pub subject_name: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Firing(Draft),
    /// Clear, with the sentence the recovery notice carries.
    Clear(String),
    Hold,
}

/// How a host looks to the monitor right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reachability {
    /// Not probed yet (no pinned host key, disabled, or just added).
    Unchecked,
    Up,
    /// Its API or ssh answers, the other does not.
    Degraded,
    /// Not answering, but for less than the tolerance.
    Unreachable,
    /// No good probe for longer than the tolerance.
    Down,
}

pub fn reachability(health: Option<&Health>, now: Timestamp, tolerance: Duration) -> Reachability {
    let Some(h) = health else { return Reachability::Unchecked };
    match h.silent_since() {
        None if h.api_up && h.ssh_up => Reachability::Up,
        None => Reachability::Degraded,
        Some(since) if silent_for(since, now) > tolerance => Reachability::Down,
        Some(_) => Reachability::Unreachable,
    }
}

fn silent_for(since: Timestamp, now: Timestamp) -> Duration {
    Duration::from_millis(u64::try_from(now.millis() - since.millis()).unwrap_or(0))
}

pub struct HostView<'a> {
    pub host: &'a Hypervisor,
    pub health: Option<&'a Health>,
    /// Newest raw samples, newest first.
    pub recent: &'a [Sample],
}

pub struct Inputs<'a> {
    pub now: Timestamp,
    pub settings: &'a AlertSettings,
    pub tolerance: Duration,
    pub hosts: Vec<HostView<'a>>,
    pub pairs: &'a [Pair],
    pub newest_archive: &'a HashMap<PairId, Timestamp>,
    /// The newest ended task of each pair and kind.
    pub outcomes: &'a [Task],
}

pub fn evaluate(i: &Inputs<'_>) -> BTreeMap<String, Verdict> {
    let mut out = BTreeMap::new();
    let n = usize::try_from(i.settings.samples.max(1)).unwrap_or(1);
    for view in &i.hosts {
        host_verdicts(view, i, n, &mut out);
    }
    let names: HashMap<PairId, &str> = i.pairs.iter().map(|p| (p.id, p.name.as_str())).collect();
    // A pair that is failed over has its replica as the live copy and no
    // backups by design; the failover alerts speak for it.
    for pair in i.pairs.iter().filter(|p| p.enabled && p.state == crate::domain::PairState::Protected) {
        out.insert(format!("rpo_breached:{}", pair.id), rpo_verdict(pair, i.newest_archive.get(&pair.id), i.now));
    }
    for task in i.outcomes {
        let Some(pair) = names.get(&task.pair_id) else { continue };
        let key = format!("task_failed:{}:{}", task.pair_id, task.kind);
        let what = format!("{} of {pair}", task.kind);
        let verdict = match task.status {
            TaskStatus::Failed => Verdict::Firing(Draft {
                kind: AlertKind::TaskFailed,
                subject_type: "task",
                subject_id: task.id.to_string(),
                subject_name: what.clone(),
                message: format!("The {what} failed: {}", task.error.as_deref().unwrap_or("no reason recorded")),
            }),
            _ => Verdict::Clear(format!("a later {what} succeeded")),
        };
        out.insert(key, verdict);
    }
    out
}

/// Reads one figure of a sample.
type Figure = fn(&Sample) -> Option<f64>;

fn host_verdicts(v: &HostView<'_>, i: &Inputs<'_>, n: usize, out: &mut BTreeMap<String, Verdict>) {
    let h = v.host;
    let id = h.id.to_string();
    let draft = |kind, message: String| Draft {
        kind,
        subject_type: "hypervisor",
        subject_id: id.clone(),
        subject_name: h.name.clone(),
        message,
    };
    let recent = &v.recent[..v.recent.len().min(n)];
    let full = recent.len() == n;

    let down = match (reachability(v.health, i.now, i.tolerance), v.health.and_then(|x| x.silent_since())) {
        (Reachability::Down, Some(since)) => Verdict::Firing(draft(
            AlertKind::HostDown,
            format!("{} has not answered for {} s.", h.name, silent_for(since, i.now).as_secs()),
        )),
        _ if full && recent.iter().all(Sample::up) => Verdict::Clear(format!("{} answers again", h.name)),
        _ => Verdict::Hold,
    };
    out.insert(format!("host_down:{id}"), down);

    // Services are known only from samples where the API answered.
    let with_services: Vec<&BTreeMap<String, String>> = recent.iter().filter_map(|s| s.services.as_ref()).collect();
    for service in WATCHED_SERVICES {
        let state = |m: &&BTreeMap<String, String>| m.get(*service).cloned();
        let verdict = if with_services.len() < n || with_services.iter().any(|m| state(m).is_none()) {
            Verdict::Hold
        } else if with_services.iter().all(|m| state(m).as_deref() != Some("running")) {
            let now_state = with_services.first().and_then(state).unwrap_or_default();
            Verdict::Firing(draft(
                AlertKind::ServiceDown,
                format!("{service} on {} is {now_state} (for {n} samples).", h.name),
            ))
        } else if with_services.iter().all(|m| state(m).as_deref() == Some("running")) {
            Verdict::Clear(format!("{service} on {} runs again", h.name))
        } else {
            Verdict::Hold
        };
        out.insert(format!("service_down:{id}:{service}"), verdict);
    }

    let s = i.settings;
    let metrics: [(&str, &str, f64, Figure); 4] = [
        ("cpu", "CPU", s.cpu_pct, |x| x.cpu_pct),
        ("memory", "memory", s.mem_pct, |x| x.mem_pct),
        ("disk", "root disk", s.disk_pct, |x| x.disk_pct),
        ("backup_storage", "backup storage", s.disk_pct, |x| x.backup_pct),
    ];
    for (key, label, threshold, get) in metrics {
        let values: Vec<f64> = recent.iter().filter_map(get).collect();
        let verdict = if values.len() < n {
            Verdict::Hold
        } else if values.iter().all(|v| *v > threshold) {
            Verdict::Firing(draft(
                AlertKind::MetricHigh,
                format!("{label} of {} at {:.0} % for {n} samples (threshold {threshold:.0} %).", h.name, values[0]),
            ))
        } else if values.iter().all(|v| *v <= threshold) {
            Verdict::Clear(format!("{label} of {} back at {:.0} %", h.name, values[0]))
        } else {
            Verdict::Hold
        };
        out.insert(format!("metric_high:{id}:{key}"), verdict);
    }
}

fn rpo_verdict(pair: &Pair, newest: Option<&Timestamp>, now: Timestamp) -> Verdict {
    let target = pair.rpo_target_secs;
    let age = |t: Timestamp| (now.millis() - t.millis()).max(0) / 1000;
    let message = match newest {
        Some(t) if age(*t) > target => format!(
            "The newest verified archive of {} is {} old (target {}).",
            pair.name,
            human(age(*t)),
            human(target)
        ),
        Some(t) => return Verdict::Clear(format!("a verified archive of {} is {} old", pair.name, human(age(*t)))),
        None if age(pair.created_at) > target => format!(
            "{} has no verified archive, {} after it was created (target {}).",
            pair.name,
            human(age(pair.created_at)),
            human(target)
        ),
        None => return Verdict::Hold,
    };
    Verdict::Firing(Draft {
        kind: AlertKind::RpoBreached,
        subject_type: "pair",
        subject_id: pair.id.to_string(),
        subject_name: pair.name.clone(),
        message,
    })
}

/// `90000` → `25 h`, `125` → `2 min`, `30` → `30 s`.
pub fn human(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

#[cfg(test)]
mod tests;
