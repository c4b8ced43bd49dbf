//! Placement (SPEC §5.3): a pair without a DRC hypervisor gets, when its
//! first restore, replication, failover or drill is queued, the enabled,
//! reachable DRC host with the most free memory as the monitor last saw it
//! (none reported yet: the first such host by name), among those where
//! the pair's VMID is free. The choice is kept on the pair, so the replica
//! stays where it was made.

use crate::db::pairs::Pair;
use crate::db::{DbError, DbResult};
use crate::domain::{HypervisorId, HypervisorRole, Timestamp};
use crate::monitor::conditions::{reachability, Reachability};
use crate::state::AppState;

/// The chosen host and a sentence with the figures, for the task log.
pub async fn choose(state: &AppState, pair: &Pair) -> DbResult<(HypervisorId, String)> {
    let db = &state.db;
    let taken: Vec<HypervisorId> = db
        .list_pairs()
        .await?
        .into_iter()
        .filter(|p| p.id != pair.id && p.dst_vmid == pair.dst_vmid)
        .filter_map(|p| p.dst_hypervisor_id)
        .collect();
    let settings = db.alert_settings().await?;
    let tolerance = crate::monitor::tolerance(state, &settings);
    let now = Timestamp::now();
    let mut hosts: Vec<_> = db
        .list_hypervisors()
        .await?
        .into_iter()
        .filter(|h| h.role == HypervisorRole::Drc && h.enabled && !taken.contains(&h.id))
        .collect();
    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    let mut figures = Vec::new();
    for h in &hosts {
        let health = db.host_health(h.id).await?;
        let r = reachability(health.as_ref(), now, tolerance);
        let free = db.recent_samples(h.id, 1).await?.into_iter().next().and_then(|s| s.mem_free_bytes);
        figures.push((h, r, free));
    }
    let described: Vec<String> = figures
        .iter()
        .map(|(h, r, free)| match (r, free) {
            (Reachability::Up | Reachability::Degraded, Some(b)) => format!("{} {} free", h.name, gib(*b)),
            (Reachability::Up | Reachability::Degraded, None) => format!("{} (no memory figure)", h.name),
            (other, _) => format!("{} {}", h.name, serde_json::to_string(other).unwrap_or_default().trim_matches('"')),
        })
        .collect();
    let reachable = |r: &Reachability| matches!(r, Reachability::Up | Reachability::Degraded);
    let best = figures
        .iter()
        .filter(|(_, r, free)| reachable(r) && free.is_some())
        .max_by_key(|(_, _, free)| free.unwrap_or(0));
    let (host, why) = match best {
        Some((h, _, free)) => (h, format!("it has the most free memory ({})", gib(free.unwrap_or(0)))),
        None => match figures.iter().find(|(_, r, _)| *r != Reachability::Down && *r != Reachability::Unreachable) {
            Some((h, _, _)) => (h, "no host has reported its free memory yet; the first one".to_string()),
            None => {
                return Err(DbError::Conflict(format!(
                    "No enabled, reachable DRC hypervisor can take VM {} for {}.",
                    pair.dst_vmid, pair.name
                )))
            }
        },
    };
    Ok((host.id, format!("placement: {} chosen because {why} ({})", host.name, described.join(", "))))
}

fn gib(bytes: i64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}
