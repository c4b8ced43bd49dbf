//! The connectivity check: pins the SSH host key on first contact (trust on
//! first use, fingerprint shown for comparison), then tries ssh, the
//! Proxmox API and the node name. Never re-pins a changed key by itself.

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::api::ProxmoxApi;
use crate::db::hypervisors::Hypervisor;
use crate::db::DbError;
use crate::domain::ErrorKind;
use crate::hypervisor::ssh::SshTarget;
use crate::hypervisor::HvError;
use crate::state::AppState;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Probe {
    pub ok: bool,
    pub message: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckReport {
    /// True when ssh, the host key, the API and the node name all check out.
    pub ok: bool,
    pub host_key: Probe,
    /// SHA-256 fingerprint of the host key the server presents now.
    pub host_key_fingerprint: Option<String>,
    pub ssh: Probe,
    pub api: Probe,
    /// SHA-256 of the TLS certificate the API presents, to pin it.
    pub tls_fingerprint: Option<String>,
    pub node: Probe,
}

fn probe(ok: bool, message: impl Into<String>) -> Probe {
    Probe { ok, message: message.into() }
}

/// `ssh-ed25519 AAAA…` → `SHA256:…` as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &str) -> Option<String> {
    let blob = STANDARD.decode(key.split_whitespace().nth(1)?).ok()?;
    Some(format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob))))
}

/// Asks the host for its ed25519 key (no authentication happens here).
async fn scan(h: &Hypervisor, timeout: Duration) -> Result<String, String> {
    let out = Command::new("ssh-keyscan")
        .args(["-T", &timeout.as_secs().max(1).to_string(), "-p", &h.ssh_port.to_string(), "-t", "ed25519", "--"])
        .arg(h.host.as_str())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run ssh-keyscan: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let mut parts = l.split_whitespace().skip(1);
            Some(format!("{} {}", parts.next()?, parts.next()?))
        })
        .ok_or_else(|| format!("{}:{} did not present an SSH host key", h.host, h.ssh_port))
}

pub async fn check(state: &AppState, h: &Hypervisor, repin: bool) -> Result<CheckReport, HvError> {
    let timeout = state.settings.ssh_connect_timeout;
    let presented = scan(h, timeout).await;
    let presented_fp = presented.as_ref().ok().and_then(|k| fingerprint(k));
    let host_key = match (&presented, &h.host_key) {
        (Err(e), _) => probe(false, e.clone()),
        (Ok(key), Some(pinned)) if key == pinned && !repin => probe(true, "matches the pinned key"),
        (Ok(key), pinned) if pinned.is_none() || repin || pinned.as_deref() == Some(key.as_str()) => {
            let fp = fingerprint(key).unwrap_or_default();
            state.db.pin_host_key(h.id, Some(key), Some(&fp)).await?;
            tracing::info!(hypervisor = %h.name, fingerprint = %fp, "pinned SSH host key");
            probe(true, format!("pinned {fp}; compare it with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the host"))
        }
        (Ok(_), _) => probe(
            false,
            "the host presents a different SSH host key than the pinned one; if it was reinstalled, check again with repin",
        ),
    };
    let h = state
        .db
        .hypervisor(h.id)
        .await?
        .ok_or_else(|| HvError::new(ErrorKind::Config, "the hypervisor was deleted during the check"))?;

    let mut remote_hostname = None;
    let ssh = if !host_key.ok {
        probe(false, "not tried: the host key is not trusted")
    } else {
        match SshTarget::for_hypervisor(&h, &state.settings.ssh_dir(), state.settings.ssh_connect_timeout) {
            Err(e) => probe(false, e.to_string()),
            Ok(t) => match t.run(&["hostname"], timeout * 2, &CancellationToken::new()).await {
                Ok(out) if out.ok() => {
                    remote_hostname = Some(out.stdout.trim().to_string());
                    probe(true, "key login works")
                }
                Ok(out) => probe(false, format!("ssh login failed: {}", out.error_line())),
                Err(e) => probe(false, e.to_string()),
            },
        }
    };

    let mut tls_fingerprint = None;
    let mut api_nodes: Option<Vec<String>> = None;
    let api = match api_client(state, &h) {
        Err(e) => probe(false, e),
        Ok(client) => match client.version().await {
            Ok(v) => {
                api_nodes = client.node_names().await.ok();
                probe(true, format!("Proxmox VE {}", v.version))
            }
            Err(e) => {
                tls_fingerprint = e.presented_fingerprint();
                probe(false, e.to_string())
            }
        },
    };
    if tls_fingerprint.is_none() {
        tls_fingerprint = h.tls_fingerprint.as_ref().map(|f| f.to_string());
    }

    let want = h.node.as_str();
    let node = match (&api_nodes, &remote_hostname) {
        (Some(nodes), _) if nodes.iter().any(|n| n == want) => probe(true, format!("node {want} found in the API")),
        (Some(nodes), _) => probe(false, format!("the API lists nodes {nodes:?}, not {want}")),
        (None, Some(host)) if host.split('.').next() == Some(want) => probe(true, format!("ssh host name is {host}")),
        (None, Some(host)) => probe(false, format!("ssh host name is {host}, not {want}")),
        (None, None) => probe(false, "not known: neither ssh nor the API answered"),
    };
    Ok(CheckReport {
        ok: host_key.ok && ssh.ok && api.ok && node.ok,
        host_key,
        host_key_fingerprint: presented_fp,
        ssh,
        api,
        tls_fingerprint,
        node,
    })
}

fn api_client(state: &AppState, h: &Hypervisor) -> Result<ProxmoxApi, String> {
    let secret = match &h.api_token_secret_enc {
        Some(enc) => Some(state.secrets.decrypt(enc).map_err(|e| e.to_string())?),
        None => None,
    };
    ProxmoxApi::new(h, secret.as_ref(), Duration::from_secs(15)).map_err(|e| e.to_string())
}

/// VMs on the host, from its Proxmox API.
pub async fn list_vms(state: &AppState, h: &Hypervisor) -> Result<Vec<super::api::VmInfo>, HvError> {
    let client = api_client(state, h).map_err(|e| HvError::new(ErrorKind::Config, e))?;
    client.vms(&h.node).await.map_err(|e| HvError::new(ErrorKind::HostUnreachable, e.to_string()))
}

impl From<DbError> for HvError {
    fn from(e: DbError) -> Self {
        tracing::error!(error = %e, "database error during a hypervisor operation");
        HvError::new(ErrorKind::Database, "drswitch's database could not be reached")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fingerprint_like_ssh_keygen() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        let made = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(made.success());
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let listed =
            std::process::Command::new("ssh-keygen").arg("-lf").arg(key.with_extension("pub")).output().unwrap();
        // "256 SHA256:… comment (ED25519)"
        let expected = String::from_utf8_lossy(&listed.stdout).split_whitespace().nth(1).unwrap().to_string();
        assert_eq!(super::fingerprint(&public).unwrap(), expected);
    }
}
