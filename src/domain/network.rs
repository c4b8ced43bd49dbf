//! A pair's network map: which DRC bridge (and VLAN tag) each DC bridge
//! becomes when the replica comes up, e.g. `{"vmbr0": "vmbr10"}` or
//! `{"vmbr0": {"bridge": "vmbr10", "tag": 20}}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Invalid;

/// A DRC bridge and an optional VLAN tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetTarget {
    pub bridge: String,
    pub tag: Option<u16>,
}

/// Source bridge → target. Names are Linux interface names (at most 15
/// characters of letters, digits, `_`, `.`, `-`), safe in a `qm set` value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkMap(pub BTreeMap<String, NetTarget>);

/// A bridge name as `bridge_name` accepts it.
const BRIDGE_PATTERN: &str = "^[A-Za-z][A-Za-z0-9_.-]{0,14}$";

fn bridge_name(s: &str) -> Result<String, Invalid> {
    let ok = !s.is_empty()
        && s.len() <= 15
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(Invalid::new(format!("{s:?} is not a bridge name (letters, digits, _ . -, at most 15)")))
    }
}

impl NetworkMap {
    /// Checks every name and tag; at most 32 entries (a VM's net0..net31).
    pub fn checked(raw: BTreeMap<String, RawTarget>) -> Result<Self, Invalid> {
        if raw.len() > 32 {
            return Err(Invalid::new("must map at most 32 bridges"));
        }
        let mut out = BTreeMap::new();
        for (from, to) in raw {
            let from = bridge_name(&from)?;
            let target = match to {
                RawTarget::Bridge(b) => NetTarget { bridge: bridge_name(&b)?, tag: None },
                RawTarget::Full(FullTarget { bridge, tag }) => {
                    if let Some(t) = tag {
                        if !(1..=4094).contains(&t) {
                            return Err(Invalid::new(format!("VLAN tag {t} must be from 1 to 4094")));
                        }
                    }
                    NetTarget { bridge: bridge_name(&bridge)?, tag }
                }
            };
            out.insert(from, target);
        }
        Ok(Self(out))
    }

    /// The way back (DRC bridge → DC bridge), for a failback. A VLAN tag
    /// the map added is dropped; the DC side's own tags are not known here.
    pub fn inverted(&self) -> Self {
        Self(
            self.0
                .iter()
                .map(|(from, to)| (to.bridge.clone(), NetTarget { bridge: from.clone(), tag: None }))
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A `netN` value with its bridge (and tag) replaced per the map, every
    /// other option (model and MAC first) kept; None when the map does not
    /// name its bridge.
    pub fn apply(&self, net_value: &str) -> Option<String> {
        let parts: Vec<&str> = net_value.split(',').collect();
        let bridge = parts.iter().find_map(|p| p.strip_prefix("bridge="))?;
        let target = self.0.get(bridge)?;
        let mut out: Vec<String> = parts
            .iter()
            .filter(|p| !p.starts_with("tag="))
            .map(|p| if p.starts_with("bridge=") { format!("bridge={}", target.bridge) } else { p.to_string() })
            .collect();
        if let Some(t) = target.tag {
            out.push(format!("tag={t}"));
        }
        Some(out.join(","))
    }
}

/// What the API accepts per source bridge.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawTarget {
    Bridge(String),
    Full(FullTarget),
}

/// `{"bridge": "vmbr10", "tag": 20}`; nothing else.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FullTarget {
    pub bridge: String,
    pub tag: Option<u16>,
}

impl Serialize for NetworkMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m: BTreeMap<&str, serde_json::Value> = self
            .0
            .iter()
            .map(|(k, t)| {
                let v = match t.tag {
                    None => serde_json::Value::String(t.bridge.clone()),
                    Some(tag) => serde_json::json!({"bridge": t.bridge, "tag": tag}),
                };
                (k.as_str(), v)
            })
            .collect();
        m.serialize(s)
    }
}

impl<'de> Deserialize<'de> for NetworkMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, serde_json::Value>::deserialize(d)?
            .into_iter()
            .map(|(k, v)| {
                serde_json::from_value::<RawTarget>(v).map(|t| (k.clone(), t)).map_err(|_| {
                    serde::de::Error::custom(format!(
                        "{k:?} must map to a bridge name or to {{\"bridge\": \"vmbr10\", \"tag\": 20}}"
                    ))
                })
            })
            .collect::<Result<BTreeMap<_, _>, D::Error>>()?;
        NetworkMap::checked(raw).map_err(|e| serde::de::Error::custom(e.0))
    }
}

super::documented!(
    NetworkMap,
    serde_json::json!({
        "type": "object",
        "description": "Source bridge → DRC bridge name, or {\"bridge\", \"tag\"}",
        "maxProperties": 32,
        "propertyNames": {"pattern": BRIDGE_PATTERN},
        "additionalProperties": {"anyOf": [
            {"type": "string", "pattern": BRIDGE_PATTERN},
            {"type": "object", "required": ["bridge"], "additionalProperties": false, "properties": {
                "bridge": {"type": "string", "pattern": BRIDGE_PATTERN},
                "tag": {"type": ["integer", "null"], "minimum": 1, "maximum": 4094}
            }}
        ]},
        "examples": [{"vmbr0": "vmbr10", "vmbr1": {"bridge": "vmbr10", "tag": 20}}]
    })
);

#[cfg(test)]
mod tests {
    use super::*;

    fn map(json: &str) -> Result<NetworkMap, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn bridges_are_replaced_keeping_model_and_mac() {
        let m = map(r#"{"vmbr0": "vmbr10", "vmbr1": {"bridge": "vmbr11", "tag": 20}}"#).unwrap();
        assert_eq!(
            m.apply("virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1").unwrap(),
            "virtio=BC:24:11:00:00:01,bridge=vmbr10,firewall=1"
        );
        assert_eq!(
            m.apply("e1000=BC:24:11:00:00:02,bridge=vmbr1,tag=5").unwrap(),
            "e1000=BC:24:11:00:00:02,bridge=vmbr11,tag=20"
        );
        assert_eq!(m.apply("virtio=BC:24:11:00:00:03,bridge=vmbr9"), None);
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"vmbr0":"vmbr10","vmbr1":{"bridge":"vmbr11","tag":20}}"#);
    }

    #[test]
    fn the_inverse_leads_back() {
        let m = map(r#"{"vmbr0": {"bridge": "vmbr10", "tag": 20}}"#).unwrap();
        let there = m.apply("virtio=BC:24:11:00:00:01,bridge=vmbr0").unwrap();
        assert_eq!(m.inverted().apply(&there).unwrap(), "virtio=BC:24:11:00:00:01,bridge=vmbr0");
    }

    #[test]
    fn bad_names_and_tags_are_refused() {
        assert!(map(r#"{"vmbr0": "vm br"}"#).is_err());
        assert!(map(r#"{"vmbr0": "x,bridge=evil"}"#).is_err());
        assert!(map(r#"{"vmbr0": {"bridge": "vmbr1", "tag": 5000}}"#).is_err());
        assert!(map(r#"{"0bad": "vmbr1"}"#).is_err());
    }
}
