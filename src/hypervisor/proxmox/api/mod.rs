//! A small client for the Proxmox VE HTTP API (`https://host:8006/api2/json`).
//!
//! Authentication is by API token (`Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET`).
//! Proxmox hosts normally use self-signed certificates, so TLS works in one of
//! two ways:
//!
//! * with a pinned `tls_fingerprint`, the connection is accepted only if the
//!   SHA-256 of the server's end-entity certificate equals the pin (CA chain
//!   and host name are ignored, handshake signatures are still verified);
//! * without a pin, the certificate is verified normally against the
//!   system's trust store; a self-signed certificate then fails with an error
//!   that shows the presented fingerprint, ready to be pinned.
//!
//! The token secret never appears in an error, a log line or a `Debug` dump.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::db::hypervisors::Hypervisor;
use crate::domain::{HostName, NodeName, TlsFingerprint};
use crate::settings::Secret;

/// Why a call to the Proxmox API failed. Every message is one sentence and
/// never contains the token secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("The Proxmox API at {address} is unreachable: {reason}.")]
    Unreachable { address: String, reason: String },

    #[error(
        "The TLS certificate of {address} does not match the pinned fingerprint: \
         the host presented {presented} but tls_fingerprint is {pinned}."
    )]
    FingerprintMismatch { address: String, presented: String, pinned: String },

    #[error(
        "The TLS certificate of {address} is not trusted ({reason}); if it is the host's own \
         certificate, pin it with tls_fingerprint = {presented}"
    )]
    Untrusted { address: String, presented: String, reason: String },

    #[error(
        "The Proxmox API at {address} refused API token {token_id} ({reason}); \
         check the token id and secret."
    )]
    AuthFailed { address: String, token_id: String, reason: String },

    #[error("No Proxmox API token is configured for this hypervisor; set api_token_id and api_token_secret.")]
    MissingToken,

    #[error("The Proxmox API at {address} answered GET {path} with HTTP {status}: {message}.")]
    Http { address: String, path: String, status: u16, message: String },

    #[error("The Proxmox API at {address} sent an unreadable answer to GET {path}: {reason}.")]
    BadJson { address: String, path: String, reason: String },

    #[error("The HTTP client for {address} could not be set up: {reason}.")]
    Setup { address: String, reason: String },
}

impl ApiError {
    /// The SHA-256 fingerprint of the certificate the host presented, when
    /// the error is about that certificate.
    pub fn presented_fingerprint(&self) -> Option<String> {
        match self {
            Self::FingerprintMismatch { presented, .. } | Self::Untrusted { presented, .. } => Some(presented.clone()),
            _ => None,
        }
    }
}

mod tls;
mod types;

pub use tls::fingerprint_of;
use tls::*;
pub use types::*;

fn address_of(host: &HostName, port: u16) -> String {
    let h = host.as_str();
    if h.contains(':') {
        format!("[{h}]:{port}")
    } else {
        format!("{h}:{port}")
    }
}

fn find_in_chain<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if let Some(t) = find_in_chain::<T>(inner) {
                    return Some(t);
                }
            }
        }
        cur = e.source();
    }
    None
}

/// The innermost error's text, e.g. `Connection refused (os error 111)`.
fn root_cause(err: &(dyn StdError + 'static)) -> String {
    let mut last = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let text = e.to_string();
        if !text.is_empty() {
            last = text;
        }
        cur = match e.downcast_ref::<std::io::Error>() {
            Some(io) if io.get_ref().is_some() => io.get_ref().map(|i| i as &(dyn StdError + 'static)),
            _ => e.source(),
        };
    }
    last
}

fn sentence_part(s: &str) -> String {
    s.trim().trim_end_matches(['.', '\n', ' ']).to_string()
}

fn fetch_failed(err: &reqwest::Error, address: &str, pinned: Option<&TlsFingerprint>, timeout: Duration) -> ApiError {
    let address = address.to_string();
    if let Some(p) = cert_problem(err) {
        return match p {
            CertProblem::Mismatch { presented } => ApiError::FingerprintMismatch {
                address,
                presented: presented.clone(),
                pinned: pinned.map(|p| p.as_str().to_uppercase()).unwrap_or_default(),
            },
            CertProblem::Untrusted { presented, reason } => {
                ApiError::Untrusted { address, presented: presented.clone(), reason: sentence_part(reason) }
            }
            // Only `fetch_fingerprint` probes, and it reads the fingerprint itself.
            CertProblem::Probed { presented } => {
                ApiError::Untrusted { address, presented: presented.clone(), reason: "it was not checked".into() }
            }
        };
    }
    let reason = if err.is_timeout() {
        format!("no answer within {:.1} s", timeout.as_secs_f64())
    } else if let Some(tls) = find_in_chain::<rustls::Error>(err) {
        format!("the TLS handshake failed ({})", sentence_part(&tls.to_string()))
    } else {
        sentence_part(&root_cause(err))
    };
    ApiError::Unreachable { address, reason }
}

/// Connects to `host:port`, reads the certificate the host presents and
/// returns its SHA-256 fingerprint (`3A:5F:…`) without trusting it and
/// without sending any request.
pub async fn fetch_fingerprint(host: &HostName, port: u16, timeout: Duration) -> Result<String, ApiError> {
    let address = address_of(host, port);
    let client = build_client(&address, None, true, HeaderMap::new(), timeout)?;
    match client.get(format!("https://{address}/api2/json/version")).send().await {
        Ok(_) => Err(ApiError::Setup { address, reason: "the certificate probe did not stop the handshake".into() }),
        Err(e) => match cert_problem(&e) {
            Some(CertProblem::Probed { presented }) => Ok(presented.clone()),
            _ => Err(fetch_failed(&e, &address, None, timeout)),
        },
    }
}

/// A client for one hypervisor's Proxmox API.
pub struct ProxmoxApi {
    client: reqwest::Client,
    base: String,
    address: String,
    token_id: String,
    pinned: Option<TlsFingerprint>,
    timeout: Duration,
}

impl fmt::Debug for ProxmoxApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxmoxApi")
            .field("base", &self.base)
            .field("token_id", &self.token_id)
            .field("pinned", &self.pinned)
            .finish_non_exhaustive()
    }
}

impl ProxmoxApi {
    /// A client for `h`, authenticating with its `api_token_id` and `secret`
    /// (the decrypted API token secret). `timeout` bounds every request.
    pub fn new(h: &Hypervisor, secret: Option<&Secret>, timeout: Duration) -> Result<Self, ApiError> {
        let address = address_of(&h.host, h.api_port);
        let token_id = h.api_token_id.as_ref().ok_or(ApiError::MissingToken)?;
        let secret = secret.filter(|s| !s.expose().trim().is_empty()).ok_or(ApiError::MissingToken)?;
        let mut auth =
            HeaderValue::from_str(&format!("PVEAPIToken={token_id}={}", secret.expose().trim())).map_err(|_| {
                ApiError::Setup {
                    address: address.clone(),
                    reason: "the API token secret contains characters not allowed in an HTTP header".into(),
                }
            })?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        let client = build_client(&address, h.tls_fingerprint.as_ref(), false, headers, timeout)?;
        Ok(Self {
            client,
            base: format!("https://{address}/api2/json"),
            address,
            token_id: token_id.to_string(),
            pinned: h.tls_fingerprint.clone(),
            timeout,
        })
    }

    /// `host:port` of the API.
    pub fn address(&self) -> &str {
        &self.address
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        tracing::debug!(address = %self.address, path, "Proxmox API request");
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .map_err(|e| fetch_failed(&e, &self.address, self.pinned.as_ref(), self.timeout))?;
        let status = resp.status();
        let reason = resp
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
            .or_else(|| status.canonical_reason().map(str::to_string))
            .unwrap_or_default();
        let body =
            resp.bytes().await.map_err(|e| fetch_failed(&e, &self.address, self.pinned.as_ref(), self.timeout))?;
        if status == reqwest::StatusCode::UNAUTHORIZED {
            let reason = if reason.is_empty() { "HTTP 401".to_string() } else { format!("HTTP 401 {reason}") };
            return Err(ApiError::AuthFailed {
                address: self.address.clone(),
                token_id: self.token_id.clone(),
                reason,
            });
        }
        if !status.is_success() {
            return Err(ApiError::Http {
                address: self.address.clone(),
                path: path.to_string(),
                status: status.as_u16(),
                message: error_message(&body, &reason),
            });
        }
        let bad_json = |reason: String| ApiError::BadJson {
            address: self.address.clone(),
            path: path.to_string(),
            reason: sentence_part(&reason),
        };
        let de = &mut serde_json::Deserializer::from_slice(&body);
        let env: Envelope<T> = serde_path_to_error::deserialize(de).map_err(|e| {
            let at = e.path().to_string();
            bad_json(if at == "." { e.inner().to_string() } else { format!("at {at}: {}", e.inner()) })
        })?;
        env.data.ok_or_else(|| bad_json("its data is null".into()))
    }

    /// `GET /version`.
    pub async fn version(&self) -> Result<Version, ApiError> {
        self.get("/version").await
    }

    /// The node names of `GET /nodes` (the whole cluster, or just this host).
    pub async fn node_names(&self) -> Result<Vec<String>, ApiError> {
        #[derive(Deserialize)]
        struct Node {
            node: String,
        }
        let nodes: Vec<Node> = self.get("/nodes").await?;
        Ok(nodes.into_iter().map(|n| n.node).collect())
    }

    /// `GET /nodes/{node}/status`.
    pub async fn node_status(&self, node: &NodeName) -> Result<NodeStatus, ApiError> {
        self.get(&format!("/nodes/{node}/status")).await
    }

    /// `GET /nodes/{node}/qemu`, sorted by vmid.
    pub async fn vms(&self, node: &NodeName) -> Result<Vec<VmInfo>, ApiError> {
        let mut vms: Vec<VmInfo> = self.get(&format!("/nodes/{node}/qemu")).await?;
        vms.sort_by_key(|v| v.vmid);
        Ok(vms)
    }

    /// `GET /nodes/{node}/services`.
    pub async fn services(&self, node: &NodeName) -> Result<Vec<ServiceState>, ApiError> {
        self.get(&format!("/nodes/{node}/services")).await
    }

    /// `GET /nodes/{node}/storage`, sorted by storage id.
    pub async fn storage(&self, node: &NodeName) -> Result<Vec<StorageInfo>, ApiError> {
        let mut list: Vec<StorageInfo> = self.get(&format!("/nodes/{node}/storage")).await?;
        list.sort_by(|a, b| a.storage.cmp(&b.storage));
        Ok(list)
    }

    /// `GET /cluster/resources?type=vm`, sorted by vmid.
    pub async fn cluster_vms(&self) -> Result<Vec<ClusterVm>, ApiError> {
        let mut vms: Vec<ClusterVm> = self.get("/cluster/resources?type=vm").await?;
        vms.sort_by_key(|v| v.vmid);
        Ok(vms)
    }
}

/// Proxmox's explanation of a failed call: the body's `message` (with any
/// per-parameter `errors`), else the HTTP reason phrase.
fn error_message(body: &[u8], reason: &str) -> String {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let mut msg = parsed.message.map(|m| sentence_part(&m)).filter(|m| !m.is_empty());
    if msg.is_none() && !reason.trim().is_empty() {
        msg = Some(sentence_part(reason));
    }
    let mut msg = msg.unwrap_or_else(|| "no reason given".into());
    if let Some(errors) = parsed.errors.filter(|e| !e.is_empty()) {
        let details: Vec<String> = errors
            .iter()
            .map(|(k, v)| format!("{k}: {}", sentence_part(v.as_str().map_or(&v.to_string(), |s| s))))
            .collect();
        msg = format!("{msg} ({})", details.join("; "));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn parses_node_status_with_string_numbers() {
        let v: Envelope<NodeStatus> = serde_json::from_str(
            r#"{"data":{"uptime":"864000","cpu":0.0342,"loadavg":["0.52","0.48","0.40"],
                "memory":{"total":67385200640,"used":"8331055104","free":1},
                "rootfs":{"total":100,"used":5,"avail":90,"free":95},
                "cpuinfo":{"cpus":16,"mhz":"2994.374"},"extra":{"x":1}}}"#,
        )
        .unwrap();
        let s = v.data.unwrap();
        assert_eq!(s.uptime, 864000);
        assert_eq!(s.memory.used, 8331055104);
        assert_eq!(s.loadavg, vec!["0.52", "0.48", "0.40"]);
        assert_eq!(s.cpuinfo.unwrap().mhz.as_deref(), Some("2994.374"));
        assert!((s.cpu - 0.0342).abs() < 1e-9);
    }

    #[test]
    fn parses_vm_list() {
        let v: Envelope<Vec<VmInfo>> = serde_json::from_str(
            r#"{"data":[{"vmid":"101","status":"stopped","template":1},
                        {"vmid":100,"name":"web01","status":"running","lock":"backup","maxmem":2147483648}]}"#,
        )
        .unwrap();
        let vms = v.data.unwrap();
        assert_eq!(vms[0].vmid, 101);
        assert!(vms[0].template);
        assert_eq!(vms[1].lock.as_deref(), Some("backup"));
        assert_eq!(vms[1].maxmem, 2147483648);
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            error_message(br#"{"data":null,"message":"VM 999 does not exist\n"}"#, "x"),
            "VM 999 does not exist"
        );
        assert_eq!(error_message(b"", "Permission check failed"), "Permission check failed");
        assert_eq!(
            error_message(br#"{"data":null,"errors":{"vmid":"invalid format"}}"#, "Parameter verification failed."),
            "Parameter verification failed (vmid: invalid format)"
        );
    }

    #[test]
    fn fingerprint_format() {
        let fp = fingerprint_of(b"abc");
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert!(fp.starts_with("BA:78:16:BF"));
        assert_eq!(fp.parse::<TlsFingerprint>().unwrap().bytes(), Sha256::digest(b"abc").to_vec());
    }
}
