use serde::{Deserialize, Serialize};
use std::fmt;

use super::Invalid;

/// A Proxmox guest id: an integer 100..=999999999, as Proxmox itself
/// requires (`^[1-9][0-9]{2,8}$`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Vmid(u32);

impl Vmid {
    pub const MIN: i64 = 100;
    pub const MAX: i64 = 999_999_999;

    pub fn get(self) -> u32 {
        self.0
    }
}

super::documented!(
    Vmid,
    serde_json::json!({"type": "integer", "minimum": Vmid::MIN, "maximum": Vmid::MAX, "examples": [100]})
);

impl TryFrom<i64> for Vmid {
    type Error = Invalid;
    fn try_from(v: i64) -> Result<Self, Invalid> {
        if (Self::MIN..=Self::MAX).contains(&v) {
            Ok(Self(v as u32))
        } else {
            Err(Invalid::new(format!("must be a VM ID between {} and {}, got {v}", Self::MIN, Self::MAX)))
        }
    }
}

impl std::str::FromStr for Vmid {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        let ok = s.len() >= 3 && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0');
        if !ok {
            return Err(Invalid::new("must be a VM ID between 100 and 999999999"));
        }
        s.parse::<i64>().map_err(|_| Invalid::new("must be a VM ID between 100 and 999999999")).and_then(Self::try_from)
    }
}

impl From<Vmid> for i64 {
    fn from(v: Vmid) -> i64 {
        i64::from(v.0)
    }
}

impl fmt::Display for Vmid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(Vmid::try_from(99).is_err());
        assert!(Vmid::try_from(100).is_ok());
        assert!(Vmid::try_from(999_999_999).is_ok());
        assert!(Vmid::try_from(1_000_000_000).is_err());
        assert!(Vmid::try_from(-5).is_err());
    }

    #[test]
    fn parse_text() {
        assert_eq!("112".parse::<Vmid>().unwrap().get(), 112);
        for bad in ["99", "0100", "100; rm -rf /", "", "1e3", " 100"] {
            assert!(bad.parse::<Vmid>().is_err(), "{bad}");
        }
    }

    #[test]
    fn json_rejects_strings() {
        assert!(serde_json::from_str::<Vmid>("\"100; rm -rf /\"").is_err());
        assert!(serde_json::from_str::<Vmid>("100").is_ok());
    }
}
