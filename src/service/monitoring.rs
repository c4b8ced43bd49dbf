//! What the monitor found: each host's reachability, latest figures and
//! history; the alert history; the thresholds.

use serde::{Deserialize, Serialize};

use super::input::nullable;
use super::{require, ServiceError, ServiceResult};
use crate::db::alerts::{Alert, AlertSettings};
use crate::db::monitoring::{Health, Sample};
use crate::db::users::User;
use crate::domain::{HypervisorId, Role, Timestamp};
use crate::monitor::conditions::{reachability, Reachability};
use crate::state::AppState;

/// Who may change thresholds and notification targets.
pub const MANAGE: Role = Role::Admin;

/// Most history rows one answer carries (the newest ones).
const HISTORY_LIMIT: i64 = 5000;
/// History shown when no `since` is given.
const DEFAULT_WINDOW_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HostStatus {
    pub hypervisor_id: HypervisorId,
    pub name: String,
    pub reachability: Reachability,
    /// True when its last good probe is older than the tolerance.
    pub down: bool,
    pub tolerance_secs: u64,
    /// Newest probe and when the host last answered; absent before the
    /// first probe.
    pub health: Option<Health>,
    pub latest: Option<Sample>,
    /// Oldest first: 15-minute averages (`span_secs` 900) beyond 48 h, raw
    /// probes after.
    pub history: Vec<Sample>,
}

pub async fn host_status(
    state: &AppState,
    actor: &User,
    id: HypervisorId,
    since: Option<Timestamp>,
) -> ServiceResult<HostStatus> {
    require(actor, Role::Viewer)?;
    let h = super::hypervisors::load(state, id).await?;
    let now = Timestamp::now();
    let settings = state.db.alert_settings().await?;
    let tolerance = crate::monitor::tolerance(state, &settings);
    let health = state.db.host_health(id).await?;
    let r = if watched(&h) { reachability(health.as_ref(), now, tolerance) } else { Reachability::Unchecked };
    let since = since.unwrap_or(Timestamp(now.millis() - DEFAULT_WINDOW_MS));
    Ok(HostStatus {
        hypervisor_id: id,
        name: h.name,
        reachability: r,
        down: r == Reachability::Down,
        tolerance_secs: tolerance.as_secs(),
        health,
        latest: state.db.recent_samples(id, 1).await?.into_iter().next(),
        history: state.db.sample_history(id, since, HISTORY_LIMIT).await?,
    })
}

/// Whether the monitor has declared the host down (last good probe older
/// than the tolerance).
pub async fn is_down(state: &AppState, id: HypervisorId) -> crate::db::DbResult<bool> {
    if !state.db.hypervisor(id).await?.is_some_and(|h| watched(&h)) {
        return Ok(false);
    }
    let settings = state.db.alert_settings().await?;
    let tolerance = crate::monitor::tolerance(state, &settings);
    let health = state.db.host_health(id).await?;
    Ok(reachability(health.as_ref(), Timestamp::now(), tolerance) == Reachability::Down)
}

/// Whether the monitor probes the host: enabled, with a pinned key. Any
/// other host is "not checked", whatever an old probe said.
fn watched(h: &crate::db::hypervisors::Hypervisor) -> bool {
    h.enabled && h.host_key.is_some()
}

/// Every host's reachability now, for the dashboard and the metrics.
pub async fn reachabilities(state: &AppState) -> ServiceResult<Vec<(HypervisorId, Reachability)>> {
    let now = Timestamp::now();
    let settings = state.db.alert_settings().await?;
    let tolerance = crate::monitor::tolerance(state, &settings);
    let health = state.db.all_host_health().await?;
    Ok(state
        .db
        .list_hypervisors()
        .await?
        .iter()
        .map(|h| {
            let r = if h.enabled {
                reachability(health.iter().find(|x| x.hypervisor_id == h.id), now, tolerance)
            } else {
                Reachability::Unchecked
            };
            (h.id, r)
        })
        .collect())
}

/// An alert still open, or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum AlertState {
    Open,
    Resolved,
}

impl std::str::FromStr for AlertState {
    type Err = ServiceError;
    fn from_str(s: &str) -> ServiceResult<Self> {
        match s {
            "open" => Ok(AlertState::Open),
            "resolved" => Ok(AlertState::Resolved),
            _ => Err(ServiceError::invalid("state", "must be one of: open, resolved")),
        }
    }
}

/// Newest first; `limit` 1–500.
pub async fn alerts(
    state: &AppState,
    actor: &User,
    filter: Option<AlertState>,
    limit: i64,
    offset: i64,
) -> ServiceResult<Vec<Alert>> {
    require(actor, Role::Viewer)?;
    if !(1..=500).contains(&limit) {
        return Err(ServiceError::invalid("limit", "must be from 1 to 500"));
    }
    if offset < 0 {
        return Err(ServiceError::invalid("offset", "must not be negative"));
    }
    Ok(state.db.list_alerts(filter.map(|f| f == AlertState::Open), limit, offset).await?)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertSettingsView {
    #[serde(flatten)]
    pub settings: AlertSettings,
    /// The tolerance in force: `tolerance_secs`, or `FAILOVER_TOLERANCE_SECS`.
    pub effective_tolerance_secs: u64,
    /// `MONITOR_INTERVAL_SECS`: one sample per host this often.
    pub interval_secs: u64,
}

/// Changes to the thresholds; absent fields keep their value, a `null`
/// tolerance falls back to `FAILOVER_TOLERANCE_SECS`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertSettingsInput {
    /// Per cent, 1–100.
    #[schema(minimum = 1, maximum = 100)]
    pub cpu_pct: Option<f64>,
    /// Per cent, 1–100.
    #[schema(minimum = 1, maximum = 100)]
    pub mem_pct: Option<f64>,
    /// Per cent, 1–100 (root disk and backup storage).
    #[schema(minimum = 1, maximum = 100)]
    pub disk_pct: Option<f64>,
    /// 1–100.
    #[schema(minimum = 1, maximum = 100)]
    pub samples: Option<i64>,
    /// From twice `MONITOR_INTERVAL_SECS` to 86400 seconds, or null.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>, maximum = 86_400)]
    pub tolerance_secs: Option<Option<i64>>,
}

fn view(state: &AppState, settings: AlertSettings) -> AlertSettingsView {
    AlertSettingsView {
        effective_tolerance_secs: crate::monitor::tolerance(state, &settings).as_secs(),
        interval_secs: state.settings.monitor_interval.as_secs(),
        settings,
    }
}

pub async fn alert_settings(state: &AppState, actor: &User) -> ServiceResult<AlertSettingsView> {
    require(actor, Role::Viewer)?;
    Ok(view(state, state.db.alert_settings().await?))
}

pub async fn set_alert_settings(
    state: &AppState,
    actor: &User,
    input: AlertSettingsInput,
) -> ServiceResult<AlertSettingsView> {
    require(actor, MANAGE)?;
    let mut s = state.db.alert_settings().await?;
    let before = s.clone();
    let pct = |field: &str, v: f64| {
        if v.is_finite() && (1.0..=100.0).contains(&v) {
            Ok(v)
        } else {
            Err(ServiceError::invalid(field, "must be a number from 1 to 100"))
        }
    };
    if let Some(v) = input.cpu_pct {
        s.cpu_pct = pct("cpu_pct", v)?;
    }
    if let Some(v) = input.mem_pct {
        s.mem_pct = pct("mem_pct", v)?;
    }
    if let Some(v) = input.disk_pct {
        s.disk_pct = pct("disk_pct", v)?;
    }
    if let Some(n) = input.samples {
        if !(1..=100).contains(&n) {
            return Err(ServiceError::invalid("samples", "must be an integer from 1 to 100"));
        }
        s.samples = n;
    }
    if let Some(t) = input.tolerance_secs {
        if let Some(n) = t {
            let min = 2 * state.settings.monitor_interval.as_secs() as i64;
            if !(min..=86_400).contains(&n) {
                return Err(ServiceError::invalid(
                    "tolerance_secs",
                    format!("must be an integer from {min} (twice the probe interval) to 86400, or null"),
                ));
            }
        }
        s.tolerance_secs = t;
    }
    state.db.set_alert_settings(&s).await?;
    tracing::info!(target: "audit", by = %actor.username, "alert settings changed");
    let detail = super::audit::changes(&before, &s, &[]);
    super::audit::record(
        state,
        &actor.username,
        "alert_settings.update",
        super::audit::about("alert_settings"),
        &detail,
    )
    .await;
    Ok(view(state, s))
}
