//! The monitor's probe of one Proxmox VE host: node figures and service
//! states from its API, reachability and the backup storage's fill from
//! one cheap ssh command. Each half is bounded by the probe timeout and
//! fails on its own; neither pins nor changes a key.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::api::ProxmoxApi;
use crate::db::hypervisors::Hypervisor;
use crate::db::monitoring::Sample;
use crate::domain::Timestamp;
use crate::hypervisor::ssh::SshTarget;
use crate::state::AppState;

/// The services whose state the monitor follows.
pub const WATCHED_SERVICES: &[&str] = &["pveproxy", "pvedaemon", "pvestatd", "sshd"];

pub struct ProbeResult {
    pub sample: Sample,
    pub api_detail: String,
    pub ssh_detail: String,
}

pub async fn probe(state: &AppState, h: &Hypervisor) -> ProbeResult {
    let timeout = state.settings.probe_timeout;
    let (api, ssh) = tokio::join!(probe_api(state, h, timeout), probe_ssh(state, h, timeout));
    let mut sample = Sample { at: Timestamp::now(), ..Default::default() };
    let api_detail = match api {
        ApiProbe::NotConfigured => "no API token configured".to_string(),
        ApiProbe::Failed(why) => {
            sample.api_up = Some(0.0);
            why
        }
        ApiProbe::Answered { cpu_pct, mem_pct, mem_free, disk_pct, services } => {
            sample.api_up = Some(1.0);
            sample.cpu_pct = Some(cpu_pct);
            sample.mem_pct = mem_pct;
            sample.mem_free_bytes = mem_free;
            sample.disk_pct = disk_pct;
            sample.services = services;
            "node status answered".to_string()
        }
    };
    let ssh_detail = match ssh {
        Ok(backup_pct) => {
            sample.ssh_up = Some(1.0);
            sample.backup_pct = backup_pct;
            "ssh answered".to_string()
        }
        Err(why) => {
            sample.ssh_up = Some(0.0);
            why
        }
    };
    ProbeResult { sample, api_detail, ssh_detail }
}

enum ApiProbe {
    NotConfigured,
    Failed(String),
    Answered {
        cpu_pct: f64,
        mem_pct: Option<f64>,
        mem_free: Option<i64>,
        disk_pct: Option<f64>,
        services: Option<BTreeMap<String, String>>,
    },
}

fn percent(used: u64, total: u64) -> Option<f64> {
    (total > 0).then(|| used as f64 * 100.0 / total as f64)
}

async fn probe_api(state: &AppState, h: &Hypervisor, timeout: Duration) -> ApiProbe {
    if h.api_token_id.is_none() || h.api_token_secret_enc.is_none() {
        return ApiProbe::NotConfigured;
    }
    let secret = match h.api_token_secret_enc.as_deref().map(|enc| state.secrets.decrypt(enc)).transpose() {
        Ok(s) => s,
        Err(e) => return ApiProbe::Failed(e.to_string()),
    };
    let api = match ProxmoxApi::new(h, secret.as_ref(), timeout) {
        Ok(api) => api,
        Err(e) => return ApiProbe::Failed(e.to_string()),
    };
    let (status, services) = tokio::join!(api.node_status(&h.node), api.services(&h.node));
    let status = match status {
        Ok(s) => s,
        Err(e) => return ApiProbe::Failed(e.to_string()),
    };
    // A node that answers its status but not its service list still counts
    // as up; the services are then unknown rather than down.
    let services = services.ok().map(|list| {
        list.into_iter()
            .filter(|s| WATCHED_SERVICES.contains(&s.service.as_str()))
            .map(|s| (s.service, s.state))
            .collect()
    });
    ApiProbe::Answered {
        cpu_pct: status.cpu * 100.0,
        mem_pct: percent(status.memory.used, status.memory.total),
        mem_free: (status.memory.total > 0).then(|| {
            i64::try_from(status.memory.free.max(status.memory.total.saturating_sub(status.memory.used)))
                .unwrap_or(i64::MAX)
        }),
        disk_pct: percent(status.rootfs.used, status.rootfs.total),
        services,
    }
}

/// One ssh round trip: `df` of the dump dir, whose fill is the backup
/// storage figure.
async fn probe_ssh(state: &AppState, h: &Hypervisor, timeout: Duration) -> Result<Option<f64>, String> {
    let target = SshTarget::for_hypervisor(h, &state.settings.ssh_dir(), timeout).map_err(|e| e.to_string())?;
    let out = target
        .run(&["df", "-kP", "--", h.dump_dir.as_str()], timeout, &CancellationToken::new())
        .await
        .map_err(|e| e.to_string())?;
    if !out.ok() {
        if let Some(e) = target.classify(&out.stderr) {
            return Err(e.to_string());
        }
        // sshd answered; only df did not (e.g. the dump dir is missing).
        return Ok(None);
    }
    Ok(df_used_percent(&out.stdout))
}

/// `Filesystem 1024-blocks Used Available Capacity Mounted on` → used %.
fn df_used_percent(out: &str) -> Option<f64> {
    let line = out.lines().nth(1)?;
    let cols: Vec<&str> = line.split_whitespace().collect();
    let used: f64 = cols.get(2)?.parse().ok()?;
    let avail: f64 = cols.get(3)?.parse().ok()?;
    (used + avail > 0.0).then(|| used * 100.0 / (used + avail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_output_gives_the_used_share() {
        let out = "Filesystem     1024-blocks     Used Available Capacity Mounted on\n\
                   /dev/sda1         1000000   250000    750000      25% /\n";
        assert_eq!(df_used_percent(out), Some(25.0));
        assert_eq!(df_used_percent("garbage"), None);
    }
}
