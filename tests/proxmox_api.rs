#![allow(clippy::unwrap_used)]
//! The Proxmox API client against the lab's simulated Proxmox VE host
//! (`lab/lab.py run`), over real HTTPS with the lab's self-signed certificate.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use drswitch::db::hypervisors::Hypervisor;
use drswitch::domain::{DirPath, HostName, HypervisorRole, NodeName, SshUser, StorageId, Timestamp};
use drswitch::hypervisor::proxmox::api::{fetch_fingerprint, ApiError, ProxmoxApi};
use drswitch::settings::Secret;
use serde_json::Value;

const PYTHON: &str = "/usr/bin/python3";
const TIMEOUT: Duration = Duration::from_secs(10);

fn lab_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/lab.py")
}

/// A running lab; closing its stdin stops it, killing is the fallback.
struct Lab {
    child: Child,
    stdin: Option<ChildStdin>,
    host: Value,
    _dir: tempfile::TempDir,
}

impl Lab {
    fn start() -> Lab {
        let dir = tempfile::Builder::new().prefix("drswitch-lab-").tempdir_in("/tmp").unwrap();
        let key = dir.path().join("id_ed25519");
        let status =
            Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key).status().unwrap();
        assert!(status.success(), "ssh-keygen failed");
        let mut child = Command::new(PYTHON)
            .arg(lab_py())
            .arg("run")
            .arg("--dir")
            .arg(dir.path().join("lab"))
            .arg("--authorized-key")
            .arg(key.with_extension("pub"))
            .args(["--host", "dc1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Keep draining so the lab never blocks on a full pipe.
                    continue;
                }
            }
        });
        let mut lab = Lab { child, stdin, host: Value::Null, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|e| panic!("lab did not get READY: {e}"));
            if line.trim() == "READY" {
                break;
            }
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("lab printed {line:?}: {e}"));
            if v["name"] == "dc1" {
                lab.host = v;
            }
        }
        assert!(lab.host.is_object(), "lab printed no line for dc1");
        lab
    }

    fn str(&self, key: &str) -> String {
        self.host[key].as_str().unwrap_or_else(|| panic!("lab host has no {key}")).to_string()
    }

    fn api_port(&self) -> u16 {
        u16::try_from(self.host["api_port"].as_u64().unwrap()).unwrap()
    }

    fn secret(&self) -> Secret {
        Secret::new(self.str("api_token_secret"))
    }

    fn create_vm(&self, vmid: u32, name: &str) {
        let out = Command::new(PYTHON)
            .arg(lab_py())
            .args(["create-vm", "--root", &self.str("root"), "--node", "dc1", "--vmid", &vmid.to_string()])
            .args(["--name", name, "--disk-size", "8M"])
            .output()
            .unwrap();
        assert!(out.status.success(), "create-vm failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A hypervisor record pointing at the lab host, pinned to its certificate.
    fn hypervisor(&self) -> Hypervisor {
        hypervisor(
            &self.str("address"),
            self.api_port(),
            Some(&self.str("api_token_id")),
            Some(&self.str("tls_fingerprint")),
        )
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hypervisor(host: &str, api_port: u16, token_id: Option<&str>, fingerprint: Option<&str>) -> Hypervisor {
    let now = Timestamp::now();
    Hypervisor {
        id: drswitch::domain::HypervisorId::new(),
        name: "dc1".into(),
        host: host.parse::<HostName>().unwrap(),
        ssh_port: 22,
        ssh_user: SshUser::root(),
        node: "dc1".parse().unwrap(),
        role: HypervisorRole::Dc,
        api_port,
        api_token_id: token_id.map(|t| t.parse().unwrap()),
        has_api_token_secret: true,
        tls_fingerprint: fingerprint.map(|f| f.parse().unwrap()),
        dump_dir: DirPath::default_dump(),
        restore_storage: StorageId::local_lvm(),
        enabled: true,
        bwlimit_kib: None,
        host_key_fingerprint: None,
        host_key: None,
        api_token_secret_enc: None,
        created_at: now,
        updated_at: now,
    }
}

#[tokio::test]
async fn proxmox_api_against_the_lab() {
    let lab = Lab::start();
    lab.create_vm(100, "web01");
    let node: NodeName = "dc1".parse().unwrap();
    let fingerprint = lab.str("tls_fingerprint");
    let secret = lab.secret();

    // The right token and the pinned certificate: everything works.
    let api = ProxmoxApi::new(&lab.hypervisor(), Some(&secret), TIMEOUT).unwrap();
    assert!(!format!("{api:?}").contains(secret.expose()));
    let version = api.version().await.unwrap();
    assert!(!version.version.is_empty());
    assert!(version.version.starts_with(&version.release), "{version:?}");
    assert_eq!(api.node_names().await.unwrap(), vec!["dc1".to_string()]);

    let status = api.node_status(&node).await.unwrap();
    assert!((0.0..=1.0).contains(&status.cpu), "{status:?}");
    assert!(status.memory.total > 0 && status.memory.used <= status.memory.total, "{status:?}");
    assert!(status.rootfs.total > 0 && status.rootfs.avail <= status.rootfs.total, "{status:?}");
    assert_eq!(status.loadavg.len(), 3);

    lab.create_vm(101, "db01");
    let vms = api.vms(&node).await.unwrap();
    let ids: Vec<u32> = vms.iter().map(|v| v.vmid).collect();
    assert_eq!(ids, vec![100, 101]);
    assert_eq!(vms[0].name.as_deref(), Some("web01"));
    assert_eq!(vms[0].status, "stopped");
    assert_eq!(vms[0].maxdisk, 8 << 20);
    assert!(vms[0].maxmem > 0);
    assert!(vms[0].lock.is_none());

    let services = api.services(&node).await.unwrap();
    let pveproxy = services.iter().find(|s| s.service == "pveproxy").unwrap();
    assert_eq!(pveproxy.state, "running");

    // The certificate the host presents is the one the lab reports.
    let host: HostName = lab.str("address").parse().unwrap();
    assert_eq!(fetch_fingerprint(&host, lab.api_port(), TIMEOUT).await.unwrap(), fingerprint);

    // A node the host does not know: Proxmox's message comes through.
    let other: NodeName = "dc9".parse().unwrap();
    let err = api.node_status(&other).await.unwrap_err();
    assert!(matches!(err, ApiError::Http { status: 500, .. }), "{err:?}");
    assert!(err.to_string().contains("dc9"), "{err}");

    // A lower-case pin matches too.
    let mut h = lab.hypervisor();
    h.tls_fingerprint = Some(fingerprint.to_lowercase().parse().unwrap());
    ProxmoxApi::new(&h, Some(&secret), TIMEOUT).unwrap().version().await.unwrap();

    // A wrong secret: 401, named token, no secret in the message.
    let wrong = Secret::new("00000000-1111-2222-3333-444444444444");
    let api = ProxmoxApi::new(&lab.hypervisor(), Some(&wrong), TIMEOUT).unwrap();
    let err = api.version().await.unwrap_err();
    assert!(matches!(err, ApiError::AuthFailed { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("root@pam!drswitch"), "{text}");
    assert!(!text.contains(wrong.expose()) && !format!("{err:?}").contains(wrong.expose()), "{text}");
    assert!(!text.contains(secret.expose()), "{text}");

    // A wrong pin: mismatch naming both fingerprints; nothing is sent.
    let pin = vec!["AB"; 32].join(":");
    let mut h = lab.hypervisor();
    h.tls_fingerprint = Some(pin.parse().unwrap());
    let err = ProxmoxApi::new(&h, Some(&secret), TIMEOUT).unwrap().version().await.unwrap_err();
    assert!(matches!(err, ApiError::FingerprintMismatch { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&pin) && text.contains(&fingerprint), "{text}");
    assert!(!text.contains(secret.expose()), "{text}");
    assert_eq!(err.presented_fingerprint().as_deref(), Some(fingerprint.as_str()));

    // No pin: the self-signed certificate is not trusted, and the message
    // says what to pin.
    let mut h = lab.hypervisor();
    h.tls_fingerprint = None;
    let err = ProxmoxApi::new(&h, Some(&secret), TIMEOUT).unwrap().node_names().await.unwrap_err();
    assert!(matches!(err, ApiError::Untrusted { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&format!("tls_fingerprint = {fingerprint}")), "{text}");
    assert!(!text.contains(secret.expose()), "{text}");
    assert_eq!(err.presented_fingerprint().as_deref(), Some(fingerprint.as_str()));

    // No token configured.
    let mut h = lab.hypervisor();
    h.api_token_id = None;
    let err = ProxmoxApi::new(&h, Some(&secret), TIMEOUT).unwrap_err();
    assert!(matches!(err, ApiError::MissingToken), "{err:?}");
    let err = ProxmoxApi::new(&lab.hypervisor(), None, TIMEOUT).unwrap_err();
    assert!(matches!(err, ApiError::MissingToken), "{err:?}");
}

#[tokio::test]
async fn unreachable_port() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let fp = vec!["AB"; 32].join(":");
    let h = hypervisor("127.0.0.1", port, Some("root@pam!drswitch"), Some(&fp));
    let secret = Secret::new("not-a-real-secret-5b0c");
    let api = ProxmoxApi::new(&h, Some(&secret), Duration::from_secs(3)).unwrap();
    let err = api.version().await.unwrap_err();
    assert!(matches!(err, ApiError::Unreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains(secret.expose()), "{text}");
    assert!(err.presented_fingerprint().is_none());

    let host: HostName = "127.0.0.1".parse().unwrap();
    let err = fetch_fingerprint(&host, port, Duration::from_secs(3)).await.unwrap_err();
    assert!(matches!(err, ApiError::Unreachable { .. }), "{err:?}");
}

#[tokio::test]
async fn silent_server_times_out() {
    // Accepts TCP connections but never speaks TLS.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let fp = vec!["AB"; 32].join(":");
    let h = hypervisor("127.0.0.1", port, Some("root@pam!drswitch"), Some(&fp));
    let api = ProxmoxApi::new(&h, Some(&Secret::new("s3cr3t-value")), Duration::from_millis(500)).unwrap();
    let started = Instant::now();
    let err = api.version().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, ApiError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
    hold.abort();
}
