//! What the Proxmox API answers, read leniently: its Perl JSON encoder
//! sometimes sends numbers as strings and booleans as 0/1.

use serde::{Deserialize, Deserializer, Serialize};

/// `GET /version`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Version {
    pub version: String,
    #[serde(default)]
    pub release: String,
    #[serde(default)]
    pub repoid: String,
}

/// `memory` and `swap` of `GET /nodes/{node}/status`, in bytes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryUsage {
    #[serde(deserialize_with = "lenient_u64")]
    pub total: u64,
    #[serde(deserialize_with = "lenient_u64")]
    pub used: u64,
    #[serde(deserialize_with = "lenient_u64")]
    pub free: u64,
    #[serde(deserialize_with = "lenient_opt_u64", skip_serializing_if = "Option::is_none")]
    pub available: Option<u64>,
}

/// `rootfs` of `GET /nodes/{node}/status`, in bytes. `free` is total − used,
/// `avail` what an unprivileged writer can still use.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DiskUsage {
    #[serde(deserialize_with = "lenient_u64")]
    pub total: u64,
    #[serde(deserialize_with = "lenient_u64")]
    pub used: u64,
    #[serde(deserialize_with = "lenient_u64")]
    pub avail: u64,
    #[serde(deserialize_with = "lenient_u64")]
    pub free: u64,
}

/// `cpuinfo` of `GET /nodes/{node}/status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuInfo {
    #[serde(deserialize_with = "lenient_opt_u64", skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u64>,
    #[serde(deserialize_with = "lenient_opt_u64", skip_serializing_if = "Option::is_none")]
    pub cores: Option<u64>,
    #[serde(deserialize_with = "lenient_opt_u64", skip_serializing_if = "Option::is_none")]
    pub sockets: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A string in Proxmox's answer, e.g. `"2994.374"`.
    #[serde(deserialize_with = "lenient_opt_string", skip_serializing_if = "Option::is_none")]
    pub mhz: Option<String>,
}

/// `GET /nodes/{node}/status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeStatus {
    /// CPU usage as a fraction 0..1 (not per cent).
    #[serde(deserialize_with = "lenient_f64")]
    pub cpu: f64,
    /// IO wait as a fraction 0..1.
    #[serde(deserialize_with = "lenient_opt_f64", skip_serializing_if = "Option::is_none")]
    pub wait: Option<f64>,
    /// Seconds since boot.
    #[serde(deserialize_with = "lenient_u64")]
    pub uptime: u64,
    /// 1, 5 and 15 minute load averages; strings in Proxmox's answer.
    #[serde(deserialize_with = "lenient_strings")]
    pub loadavg: Vec<String>,
    pub memory: MemoryUsage,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap: Option<MemoryUsage>,
    pub rootfs: DiskUsage,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpuinfo: Option<CpuInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pveversion: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kversion: Option<String>,
}

/// One entry of `GET /nodes/{node}/qemu`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmInfo {
    #[serde(deserialize_with = "lenient_u32")]
    pub vmid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `running` or `stopped`.
    #[serde(default)]
    pub status: String,
    /// With `?full=1`: `running`, `paused`, `prelaunch`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qmpstatus: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_u64", skip_serializing_if = "Option::is_none")]
    pub pid: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub uptime: u64,
    /// CPU usage as a fraction of the VM's cpus.
    #[serde(default, deserialize_with = "lenient_f64")]
    pub cpu: f64,
    #[serde(default, deserialize_with = "lenient_opt_f64", skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub mem: u64,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub maxmem: u64,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub maxdisk: u64,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub netin: u64,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub netout: u64,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub diskread: u64,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub diskwrite: u64,
    /// Set while a backup, migration, … holds the VM (`backup`, `migrate`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub template: bool,
}

/// One entry of `GET /nodes/{node}/services`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceState {
    pub service: String,
    /// The systemd SubState: `running`, `dead`, …
    #[serde(default)]
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desc: Option<String>,
    #[serde(rename = "active-state", default, skip_serializing_if = "Option::is_none")]
    pub active_state: Option<String>,
    #[serde(rename = "unit-state", default, skip_serializing_if = "Option::is_none")]
    pub unit_state: Option<String>,
}

/// One entry of `GET /nodes/{node}/storage`; sizes in bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StorageInfo {
    pub storage: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub content: String,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub active: bool,
    #[serde(default = "yes", deserialize_with = "lenient_bool")]
    pub enabled: bool,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub shared: bool,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub total: u64,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub used: u64,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub avail: u64,
}

fn yes() -> bool {
    true
}

/// One guest of `GET /cluster/resources?type=vm` (qemu and lxc mixed; the
/// status lags by up to ~10 s).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterVm {
    #[serde(default)]
    pub id: String,
    /// `qemu` or `lxc`.
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(deserialize_with = "lenient_u32")]
    pub vmid: u32,
    #[serde(default)]
    pub node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub status: String,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub uptime: u64,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub maxmem: u64,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub maxdisk: u64,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub template: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hastate: Option<String>,
}

// Proxmox is written in Perl, whose JSON encoder sometimes sends numbers as
// strings (and booleans as 0/1); these accept either.

#[derive(Deserialize)]
#[serde(untagged)]
enum Loose {
    U(u64),
    I(i64),
    F(f64),
    S(String),
    B(bool),
}

impl Loose {
    fn f64(&self) -> Option<f64> {
        match self {
            Self::U(v) => Some(*v as f64),
            Self::I(v) => Some(*v as f64),
            Self::F(v) => Some(*v),
            Self::S(s) => s.trim().parse().ok(),
            Self::B(b) => Some(f64::from(u8::from(*b))),
        }
    }

    fn u64(&self) -> Option<u64> {
        match self {
            Self::U(v) => Some(*v),
            Self::I(v) => u64::try_from(*v).ok(),
            Self::F(v) if v.is_finite() && *v >= 0.0 => Some(v.trunc() as u64),
            Self::F(_) => None,
            Self::S(s) => s.trim().parse::<u64>().ok().or_else(|| Self::F(s.trim().parse().ok()?).u64()),
            Self::B(b) => Some(u64::from(*b)),
        }
    }

    fn string(self) -> String {
        match self {
            Self::U(v) => v.to_string(),
            Self::I(v) => v.to_string(),
            Self::F(v) => v.to_string(),
            Self::S(s) => s,
            Self::B(b) => b.to_string(),
        }
    }
}

fn loose<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Loose>, D::Error> {
    Option::<Loose>::deserialize(d)
}

fn bad<E: serde::de::Error>(what: &str) -> E {
    E::custom(format!("expected {what}"))
}

fn lenient_opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    loose(d)?.map(|v| v.u64().ok_or_else(|| bad("a non-negative integer"))).transpose()
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(lenient_opt_u64(d)?.unwrap_or(0))
}

fn lenient_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = lenient_opt_u64(d)?.ok_or_else(|| bad("an integer"))?;
    u32::try_from(v).map_err(|_| bad("a 32-bit integer"))
}

fn lenient_opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    loose(d)?.map(|v| v.f64().ok_or_else(|| bad("a number"))).transpose()
}

fn lenient_f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(lenient_opt_f64(d)?.unwrap_or(0.0))
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(loose(d)?.and_then(|v| v.f64()).is_some_and(|v| v != 0.0))
}

fn lenient_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(loose(d)?.map(Loose::string))
}

fn lenient_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<Loose>>::deserialize(d)?.unwrap_or_default().into_iter().map(Loose::string).collect())
}

#[derive(Deserialize)]
pub(super) struct Envelope<T> {
    pub(super) data: Option<T>,
}

#[derive(Deserialize, Default)]
pub(super) struct ErrorBody {
    #[serde(default)]
    pub(super) message: Option<String>,
    #[serde(default)]
    pub(super) errors: Option<serde_json::Map<String, serde_json::Value>>,
}
