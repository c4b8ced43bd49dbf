//! `GET /metrics` in the Prometheus text format (version 0.0.4): per pair
//! its recovery point, last task per kind and archive bytes; per host its
//! reachability and figures; the queue; open alerts. Names follow the
//! Prometheus conventions: `drswitch_` prefix, base units (seconds, bytes,
//! ratios 0–1), `_total` only for counters.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use super::{require, ServiceResult};
use crate::db::users::User;
use crate::domain::{PairState, Role, TaskKind, TaskStatus, Timestamp};
use crate::monitor::conditions::Reachability;
use crate::state::AppState;

/// Builds the exposition text. `actor` is `None` when `METRICS_PUBLIC`.
pub async fn render(state: &AppState, actor: Option<&User>) -> ServiceResult<String> {
    if let Some(a) = actor {
        require(a, Role::Viewer)?;
    }
    let db = &state.db;
    let now = Timestamp::now();
    let mut m = Metrics::default();

    let pairs = db.list_pairs().await?;
    let newest = db.newest_verified_archives().await?;
    let totals = db.archive_totals().await?;
    let outcomes = db.latest_outcomes(Timestamp(0)).await?;
    let pair_names: HashMap<_, _> = pairs.iter().map(|p| (p.id, p.name.as_str())).collect();
    for p in &pairs {
        let labels = [("pair", p.name.as_str()), ("pair_id", &p.id.to_string())];
        if let Some(t) = newest.get(&p.id) {
            m.gauge(
                "drswitch_pair_rpo_seconds",
                "Age of the pair's newest verified archive.",
                &labels,
                (now.millis() - t.millis()) as f64 / 1000.0,
            );
        }
        m.gauge("drswitch_pair_rpo_target_seconds", "The pair's RPO target.", &labels, p.rpo_target_secs as f64);
        let (bytes, count) = totals.get(&p.id).copied().unwrap_or_default();
        m.gauge(
            "drswitch_pair_archive_bytes",
            "Bytes of the pair's archives on the middleware.",
            &labels,
            bytes as f64,
        );
        m.gauge("drswitch_pair_archives", "Archives of the pair on the middleware.", &labels, count as f64);
        m.gauge("drswitch_pair_enabled", "1 when the pair is enabled.", &labels, f64::from(u8::from(p.enabled)));
        for st in PairState::ALL {
            let l = [("pair", p.name.as_str()), ("pair_id", &p.id.to_string()), ("state", st.as_str())];
            m.gauge(
                "drswitch_pair_state",
                "1 for the pair's current switch state (protected, failing_over, failed_over, failing_back).",
                &l,
                f64::from(u8::from(p.state == *st)),
            );
        }
    }
    for e in db.latest_events(TaskKind::Drill).await? {
        let Some(name) = pair_names.get(&e.pair_id) else { continue };
        let labels = [("pair", *name), ("pair_id", &e.pair_id.to_string())];
        m.gauge(
            "drswitch_pair_last_drill_success",
            "1 when the pair's last DR drill passed, 0 when it failed.",
            &labels,
            f64::from(u8::from(e.status == "succeeded")),
        );
        if let Some(rto) = e.rto_secs {
            m.gauge(
                "drswitch_pair_last_drill_rto_seconds",
                "Measured RTO of the pair's last passed drill.",
                &labels,
                rto,
            );
        }
    }
    for t in &outcomes {
        let Some(name) = pair_names.get(&t.pair_id) else { continue };
        let labels = [("pair", *name), ("pair_id", &t.pair_id.to_string()), ("kind", t.kind.as_str())];
        if let (Some(s), Some(f)) = (t.started_at, t.finished_at) {
            m.gauge(
                "drswitch_pair_last_task_duration_seconds",
                "Duration of the pair's last finished task of this kind.",
                &labels,
                (f.millis() - s.millis()) as f64 / 1000.0,
            );
        }
        m.gauge(
            "drswitch_pair_last_task_success",
            "1 when the pair's last finished task of this kind succeeded, 0 when it failed.",
            &labels,
            f64::from(u8::from(t.status == TaskStatus::Succeeded)),
        );
        if let Some(f) = t.finished_at {
            m.gauge(
                "drswitch_pair_last_task_finished_timestamp_seconds",
                "When the pair's last task of this kind finished (Unix time).",
                &labels,
                f.millis() as f64 / 1000.0,
            );
        }
    }

    let hosts = db.list_hypervisors().await?;
    let reach: HashMap<_, _> = super::monitoring::reachabilities(state).await?.into_iter().collect();
    for h in &hosts {
        let role = h.role.as_str();
        let labels = [("host", h.name.as_str()), ("hypervisor_id", &h.id.to_string()), ("role", role)];
        let r = reach.get(&h.id).copied().unwrap_or(Reachability::Unchecked);
        if r == Reachability::Unchecked {
            continue;
        }
        m.gauge(
            "drswitch_host_up",
            "1 when the host answered its last probe (API or ssh), 0 when not.",
            &labels,
            f64::from(u8::from(matches!(r, Reachability::Up | Reachability::Degraded))),
        );
        m.gauge(
            "drswitch_host_down",
            "1 when the host's last good probe is older than the tolerance.",
            &labels,
            f64::from(u8::from(r == Reachability::Down)),
        );
        let Some(s) = db.recent_samples(h.id, 1).await?.into_iter().next() else { continue };
        m.gauge(
            "drswitch_host_last_probe_timestamp_seconds",
            "Time of the last probe (Unix time).",
            &labels,
            s.at.millis() as f64 / 1000.0,
        );
        let figures: [(&str, &str, Option<f64>); 7] = [
            ("drswitch_host_api_up", "1 when the Proxmox API answered the last probe.", s.api_up),
            ("drswitch_host_ssh_up", "1 when ssh answered the last probe.", s.ssh_up),
            ("drswitch_host_cpu_usage_ratio", "CPU use, 0 to 1.", s.cpu_pct.map(|v| v / 100.0)),
            ("drswitch_host_memory_usage_ratio", "Memory use, 0 to 1.", s.mem_pct.map(|v| v / 100.0)),
            ("drswitch_host_memory_free_bytes", "Free memory.", s.mem_free_bytes.map(|v| v as f64)),
            ("drswitch_host_root_disk_usage_ratio", "Root file system use, 0 to 1.", s.disk_pct.map(|v| v / 100.0)),
            (
                "drswitch_host_backup_storage_usage_ratio",
                "Dump directory file system use, 0 to 1.",
                s.backup_pct.map(|v| v / 100.0),
            ),
        ];
        for (name, help, v) in figures {
            if let Some(v) = v {
                m.gauge(name, help, &labels, v);
            }
        }
        for (service, st) in s.services.iter().flatten() {
            let l = [
                ("host", h.name.as_str()),
                ("hypervisor_id", &h.id.to_string()),
                ("role", role),
                ("service", service.as_str()),
            ];
            m.gauge(
                "drswitch_host_service_up",
                "1 when the service runs on the host.",
                &l,
                f64::from(u8::from(st == "running")),
            );
        }
    }

    let (queued, running) = db.queue_depth().await?;
    m.gauge("drswitch_tasks_queued", "Tasks waiting in the queue.", &[], queued as f64);
    m.gauge("drswitch_tasks_running", "Tasks running now.", &[], running as f64);
    let mut open: BTreeMap<&str, u64> = crate::domain::AlertKind::ALL.iter().map(|k| (k.as_str(), 0)).collect();
    for a in db.open_alerts().await? {
        *open.entry(a.kind.as_str()).or_default() += 1;
    }
    for (kind, n) in open {
        m.gauge("drswitch_alerts_open", "Open alerts by kind.", &[("kind", kind)], n as f64);
    }
    Ok(m.finish())
}

/// Collects samples by metric name, so each family's HELP and TYPE come
/// once, before its samples.
#[derive(Default)]
struct Metrics {
    families: BTreeMap<&'static str, (&'static str, Vec<String>)>,
}

impl Metrics {
    fn gauge(&mut self, name: &'static str, help: &'static str, labels: &[(&str, &str)], value: f64) {
        let mut line = String::from(name);
        if !labels.is_empty() {
            let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
            let _ = write!(line, "{{{}}}", inner.join(","));
        }
        let _ = write!(line, " {}", number(value));
        self.families.entry(name).or_insert((help, Vec::new())).1.push(line);
    }

    fn finish(self) -> String {
        let mut out = String::new();
        for (name, (help, lines)) in self.families {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            for l in lines {
                out.push_str(&l);
                out.push('\n');
            }
        }
        out
    }
}

/// Label values escape backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_grouped_and_labels_escaped() {
        let mut m = Metrics::default();
        m.gauge("drswitch_x", "X.", &[("pair", "a\"b\\c\nd")], 1.5);
        m.gauge("drswitch_x", "X.", &[("pair", "e")], 2.0);
        let out = m.finish();
        assert_eq!(
            out,
            "# HELP drswitch_x X.\n# TYPE drswitch_x gauge\ndrswitch_x{pair=\"a\\\"b\\\\c\\nd\"} 1.5\ndrswitch_x{pair=\"e\"} 2\n"
        );
    }
}
