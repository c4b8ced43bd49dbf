//! The monitor: probes every enabled hypervisor each
//! `MONITOR_INTERVAL_SECS`, keeps the history, and opens and resolves
//! alerts. One process per database does it at a time (a lease in the
//! database, taken like the worker's task leases), so hosts are not probed
//! twice and nobody is told twice.

pub mod conditions;
pub mod notifier;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;

use crate::db::alerts::{Alert, NewAlert};
use crate::db::hypervisors::Hypervisor;
use crate::db::monitoring::Sample;
use crate::db::DbResult;
use crate::domain::Timestamp;
use crate::hypervisor::proxmox::probe::ProbeResult;
use crate::notify::NoticeEvent;
use crate::state::AppState;
use conditions::{Draft, HostView, Inputs, Verdict};

const LEASE: &str = "monitor";
/// History is compacted this often.
const COMPACT_EVERY: Duration = Duration::from_secs(3600);
/// Failed tasks older than this raise no alert (a first start on an old
/// database stays quiet about last month).
const TASK_WINDOW_MS: i64 = 7 * 86_400 * 1000;

/// Runs until `shutdown`. A round that fails or panics is logged and the
/// next one comes as usual.
pub async fn run(state: Arc<AppState>, shutdown: CancellationToken) {
    let holder = uuid::Uuid::new_v4().to_string();
    let interval = state.settings.monitor_interval;
    // Long enough to survive a slow round, short enough that another
    // process takes over soon after this one dies.
    let lease = (interval * 3).max(Duration::from_secs(10));
    tracing::info!(interval_secs = interval.as_secs(), "monitor started");
    let mut last_compact: Option<tokio::time::Instant> = None;
    while !shutdown.is_cancelled() {
        let started = tokio::time::Instant::now();
        let now = Timestamp::now();
        let until = Timestamp(now.millis() + lease.as_millis() as i64);
        match state.db.take_lease(LEASE, &holder, now, until).await {
            Ok(true) => {
                // Deliveries a stopped process left behind (also a
                // `drswitch worker` that raised a failover alert).
                notifier::resend_stale(&state).await;
                match AssertUnwindSafe(round(&state)).catch_unwind().await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "monitor round failed"),
                    Err(panic) => {
                        tracing::error!(panic = crate::supervisor::panic_text(&panic), "monitor round panicked")
                    }
                }
                if last_compact.is_none_or(|t| t.elapsed() >= COMPACT_EVERY) {
                    last_compact = Some(tokio::time::Instant::now());
                    match state.db.compact_samples(Timestamp::now()).await {
                        Ok(n) if n > 0 => tracing::info!(samples = n, "monitor history compacted"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "monitor history compaction failed"),
                    }
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "monitor cannot take its lease"),
        }
        tokio::select! {
            _ = tokio::time::sleep_until(started + interval) => {}
            _ = shutdown.cancelled() => {}
        }
    }
    let _ = state.db.release_lease(LEASE, &holder).await;
}

/// Probes every watched host in parallel, stores the results, then brings
/// the alerts in line with what is true now.
pub async fn round(state: &Arc<AppState>) -> DbResult<()> {
    let started = std::time::Instant::now();
    // Every sample of a round carries the round's start: a host that
    // answered quickly one round and not at all the next is then silent
    // for exactly the rounds in between, and a tolerance that is a
    // multiple of the interval does not cost one interval more.
    let round_at = Timestamp::now();
    let hosts: Vec<Hypervisor> =
        state.db.list_hypervisors().await?.into_iter().filter(|h| h.enabled && h.host_key.is_some()).collect();
    // Each probe bounds itself; the outer timeout only guards against a
    // probe that forgets to.
    let bound = state.settings.probe_timeout * 2 + Duration::from_secs(1);
    let probes = futures_util::future::join_all(hosts.iter().map(|h| async move {
        match tokio::time::timeout(bound, crate::hypervisor::probe(state, h)).await {
            Ok(p) => Some(p),
            Err(_) => {
                tracing::warn!(hypervisor = %h.name, "probe overran its time bound");
                None
            }
        }
    }))
    .await;
    for (h, p) in hosts.iter().zip(probes) {
        let mut p = p.unwrap_or_else(|| ProbeResult {
            sample: Sample { at: Timestamp::now(), api_up: Some(0.0), ssh_up: Some(0.0), ..Default::default() },
            api_detail: "the probe did not finish in time".into(),
            ssh_detail: "the probe did not finish in time".into(),
        });
        p.sample.at = round_at;
        state.db.record_probe(h.id, &p.sample, &p.api_detail, &p.ssh_detail).await?;
    }
    let probed_ms = started.elapsed().as_millis() as u64;
    reconcile(state, &hosts).await?;
    tracing::debug!(
        hosts = hosts.len(),
        probed_ms,
        total_ms = started.elapsed().as_millis() as u64,
        "monitor round done"
    );
    Ok(())
}

/// The effective host-down tolerance: the alert settings' value, else
/// `FAILOVER_TOLERANCE_SECS`.
pub fn tolerance(state: &AppState, settings: &crate::db::alerts::AlertSettings) -> Duration {
    settings
        .tolerance_secs
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
        .unwrap_or(state.settings.failover_tolerance)
}

async fn reconcile(state: &Arc<AppState>, hosts: &[Hypervisor]) -> DbResult<()> {
    let db = &state.db;
    let settings = db.alert_settings().await?;
    let now = Timestamp::now();
    let health: HashMap<_, _> = db.all_host_health().await?.into_iter().map(|h| (h.hypervisor_id, h)).collect();
    let mut recent = HashMap::new();
    for h in hosts {
        recent.insert(h.id, db.recent_samples(h.id, settings.samples.max(1)).await?);
    }
    let pairs = db.list_pairs().await?;
    let newest_archive = db.newest_verified_archives().await?;
    let outcomes = db.latest_outcomes(Timestamp(now.millis() - TASK_WINDOW_MS)).await?;
    let inputs = Inputs {
        now,
        settings: &settings,
        tolerance: tolerance(state, &settings),
        hosts: hosts
            .iter()
            .map(|h| HostView {
                host: h,
                health: health.get(&h.id),
                recent: recent.get(&h.id).map(Vec::as_slice).unwrap_or(&[]),
            })
            .collect(),
        pairs: &pairs,
        newest_archive: &newest_archive,
        outcomes: &outcomes,
    };
    let verdicts = conditions::evaluate(&inputs);
    if let Err(e) = switch_watch(state, hosts, &health, &pairs, inputs.tolerance, now).await {
        tracing::error!(error = %e, "failover watch failed");
    }
    let open: HashMap<String, Alert> =
        db.open_alerts().await?.into_iter().filter_map(|a| Some((a.open_key.clone()?, a))).collect();
    for (key, verdict) in &verdicts {
        match (verdict, open.get(key)) {
            (Verdict::Firing(d), None) => raise(state, key, d).await?,
            (Verdict::Clear(why), Some(a)) => resolve(state, a, why).await?,
            _ => {}
        }
    }
    // An open alert whose subject is gone (host or pair deleted or
    // disabled) is closed, except kinds the monitor does not judge.
    let pair_ids: Vec<String> = pairs.iter().map(|p| p.id.to_string()).collect();
    for (key, a) in &open {
        // Failover alerts are the switch's to close, unless their pair is gone.
        let switch_alert_of_live_pair =
            a.kind == crate::domain::AlertKind::Failover && pair_ids.contains(&a.subject.id);
        if !verdicts.contains_key(key) && !switch_alert_of_live_pair {
            resolve(state, a, &format!("{} is no longer watched", a.subject.name)).await?;
        }
    }
    Ok(())
}

/// What the switch needs from each round: a DC host declared down gets
/// one failover per pair with `auto_failover` (once per incident: not if a
/// failover was queued since its last good probe), and the backups waiting
/// on it are cancelled. A DC host that answers while its pairs are failed
/// over has their source VMs checked: one running again is reported, never
/// overwritten, and stopped only if the pair says so.
async fn switch_watch(
    state: &Arc<AppState>,
    hosts: &[Hypervisor],
    health: &HashMap<crate::domain::HypervisorId, crate::db::monitoring::Health>,
    pairs: &[crate::db::pairs::Pair],
    tolerance: Duration,
    now: Timestamp,
) -> DbResult<()> {
    use crate::domain::{HypervisorRole, PairState};
    use conditions::Reachability;
    for h in hosts.iter().filter(|h| h.role == HypervisorRole::Dc) {
        let hh = health.get(&h.id);
        match conditions::reachability(hh, now, tolerance) {
            Reachability::Down => {
                let since = hh.and_then(|x| x.silent_since()).unwrap_or(now);
                let n = state.db.cancel_work_on_host(h.id, &format!("Cancelled: {} is down.", h.name)).await?;
                if n > 0 {
                    tracing::warn!(hypervisor = %h.name, tasks = n, "host down: its backups were cancelled");
                }
                for p in pairs.iter().filter(|p| {
                    p.src_hypervisor_id == h.id && p.enabled && p.auto_failover && p.state == PairState::Protected
                }) {
                    // One pair that cannot be queued (e.g. no DRC host to
                    // place it on) must not keep the others from failing over.
                    if let Err(e) = auto_failover(state, h, p, since).await {
                        tracing::error!(pair = %p.name, error = %e, "automatic failover could not be queued");
                    }
                }
            }
            Reachability::Up | Reachability::Degraded => {
                // Bounded and side by side: a slow host must not stretch
                // the round past the monitor's lease.
                let bound = state.settings.probe_timeout * 2;
                let checks = pairs
                    .iter()
                    .filter(|p| p.src_hypervisor_id == h.id && p.state == PairState::FailedOver)
                    .map(|p| async move {
                        if tokio::time::timeout(bound, source_returned(state, h, p)).await.is_err() {
                            tracing::warn!(pair = %p.name, "checking the returned source VM timed out");
                        }
                    });
                futures_util::future::join_all(checks).await;
            }
            _ => {}
        }
    }
    Ok(())
}

async fn auto_failover(
    state: &Arc<AppState>,
    h: &Hypervisor,
    p: &crate::db::pairs::Pair,
    since: Timestamp,
) -> DbResult<()> {
    use crate::domain::TaskKind;
    if state.db.failover_since(p.id, since).await? || state.db.pair_has_open_task(p.id, TaskKind::Failover).await? {
        return Ok(());
    }
    let by = format!("monitor ({} down)", h.name);
    let why = format!("Cancelled: {} is down and the pair fails over.", h.name);
    state.db.clear_way_for_switch(p.id, &why).await?;
    let req = crate::queue::Request {
        kind: TaskKind::Failover,
        archive_id: None,
        schedule_id: None,
        requested_by: &by,
        actor: "monitor",
        force: true,
    };
    let t = crate::queue::enqueue(state, p, req).await?;
    tracing::warn!(pair = %p.name, task = %t.id, host = %h.name, "automatic failover queued");
    Ok(())
}

async fn source_returned(state: &Arc<AppState>, h: &Hypervisor, p: &crate::db::pairs::Pair) {
    use crate::hypervisor::{GuestState, Hypervisor as _};
    let key = format!("source-returned:{}", p.id);
    let cancel = CancellationToken::new();
    let hv = match crate::hypervisor::connect(state, h) {
        Ok(hv) => hv,
        Err(e) => {
            tracing::warn!(error = %e, "cannot check a returned source VM");
            return;
        }
    };
    let running = match hv.guest_state(p.guest, p.src_vmid, &cancel).await {
        Ok(GuestState::Running(_)) => true,
        Ok(_) => false,
        Err(e) => {
            tracing::warn!(error = %e, host = %h.name, "cannot check a returned source VM");
            return;
        }
    };
    if !running {
        let _ = clear(state, &key, &format!("VM {} on {} is stopped", p.src_vmid, h.name)).await;
        return;
    }
    let mut message = format!(
        "VM {} on {} runs again while {} is failed over; it was not overwritten and is not backed up.",
        p.src_vmid, h.name, p.name
    );
    // Only while still failed over: a failback may have brought it home
    // since this round read the pairs.
    let still =
        state.db.pair(p.id).await.ok().flatten().is_some_and(|x| x.state == crate::domain::PairState::FailedOver);
    if !still {
        return;
    }
    if p.shutdown_returned_source {
        let stopped = hv.stop(p.guest, p.src_vmid, &cancel).await;
        let onboot = hv.set_options(p.guest, p.src_vmid, &[("onboot".into(), "0".into())], &cancel).await;
        message = match (stopped, onboot) {
            (Ok(()), Ok(())) => format!("{message} It was stopped again (onboot 0), as the pair asks."),
            (Err(e), _) | (_, Err(e)) => format!("{message} Stopping it failed: {e}"),
        };
    }
    let d = Draft {
        kind: crate::domain::AlertKind::Failover,
        subject_type: "pair",
        subject_id: p.id.to_string(),
        subject_name: p.name.clone(),
        message,
    };
    if let Err(e) = raise(state, &key, &d).await {
        tracing::warn!(error = %e, "cannot raise the returned-source alert");
    }
}

/// Opens the alert for incident `key` unless it is open, and tells the
/// targets. Also used by the switch for `failover` alerts.
pub async fn raise(state: &Arc<AppState>, key: &str, d: &Draft) -> DbResult<()> {
    let new = NewAlert {
        kind: d.kind,
        severity: d.kind.severity(),
        subject_type: d.subject_type,
        subject_id: &d.subject_id,
        subject_name: &d.subject_name,
        message: &d.message,
        open_key: key,
    };
    if let Some(alert) = state.db.open_alert(&new).await? {
        tracing::warn!(kind = %alert.kind, subject = %alert.subject.name, message = %alert.message, "alert opened");
        notifier::announce(state, &alert, NoticeEvent::Opened).await?;
    }
    Ok(())
}

/// Closes the open alert of incident `key`, if any, with a recovery notice.
pub async fn clear(state: &Arc<AppState>, key: &str, why: &str) -> DbResult<()> {
    if let Some(a) = state.db.open_alerts().await?.into_iter().find(|a| a.open_key.as_deref() == Some(key)) {
        resolve(state, &a, why).await?;
    }
    Ok(())
}

async fn resolve(state: &Arc<AppState>, a: &Alert, why: &str) -> DbResult<()> {
    if state.db.resolve_alert(a.id, why).await? {
        tracing::info!(kind = %a.kind, subject = %a.subject.name, resolution = why, "alert resolved");
        if let Some(alert) = state.db.alert(a.id).await? {
            notifier::announce(state, &alert, NoticeEvent::Resolved).await?;
        }
    }
    Ok(())
}
