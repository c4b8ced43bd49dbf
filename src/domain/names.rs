use serde::{Deserialize, Serialize};
use std::fmt;

use super::{Invalid, Vmid};

/// Declares a string newtype whose only constructor runs `$check`.
macro_rules! checked_string {
    ($(#[$meta:meta])* $name:ident, $check:path) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Invalid;
            fn try_from(s: String) -> Result<Self, Invalid> {
                $check(&s)?;
                Ok(Self(s))
            }
        }

        impl std::str::FromStr for $name {
            type Err = Invalid;
            fn from_str(s: &str) -> Result<Self, Invalid> {
                Self::try_from(s.to_string())
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// One DNS label, as `is_label` accepts it.
const LABEL_PATTERN: &str = "^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$";
/// A DNS name as `check_host` accepts it (dots may trail).
const DNS_NAME_PATTERN: &str =
    r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.*$";
/// An absolute path as `check_dir` accepts it: no `..` part.
const DIR_PATTERN: &str = r"^(/(\.?|\.?[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+))+$";

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

fn check_host(s: &str) -> Result<(), Invalid> {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let dns_ok = !s.is_empty() && s.len() <= 253 && s.trim_end_matches('.').split('.').all(is_label);
    if dns_ok {
        Ok(())
    } else {
        Err(Invalid::new("must be an IP address or a DNS host name"))
    }
}

checked_string!(
    /// An IP address or DNS name: letters, digits, dots, dashes (and colons
    /// for IPv6). Nothing a shell would interpret.
    HostName,
    check_host
);
super::documented!(
    HostName,
    serde_json::json!({"anyOf": [
        {"type": "string", "maxLength": 253, "pattern": DNS_NAME_PATTERN},
        {"type": "string", "format": "ipv6"}
    ], "description": "An IP address or a DNS host name.", "examples": ["pve1.example.com", "192.0.2.10"]})
);

fn check_node(s: &str) -> Result<(), Invalid> {
    if is_label(s) {
        Ok(())
    } else {
        Err(Invalid::new("must be a Proxmox node name (letters, digits and inner dashes)"))
    }
}

checked_string!(
    /// A Proxmox node name, as in `/nodes/{node}`.
    NodeName,
    check_node
);
super::documented!(NodeName, serde_json::json!({"type": "string", "pattern": LABEL_PATTERN, "examples": ["pve1"]}));

fn check_ssh_user(s: &str) -> Result<(), Invalid> {
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 32
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(Invalid::new("must be a Unix user name (lower-case letters, digits, _ and -)"))
    }
}

checked_string!(
    /// A Unix account name used for ssh.
    SshUser,
    check_ssh_user
);
super::documented!(
    SshUser,
    serde_json::json!({"type": "string", "pattern": "^[a-z_][a-z0-9_-]{0,31}$", "examples": ["root"]})
);

fn check_login(s: &str) -> Result<(), Invalid> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(Invalid::new("must be 1 to 64 letters, digits, '.', '_', '-' or '@'"))
    }
}

checked_string!(
    /// A drswitch user's login name.
    LoginName,
    check_login
);
super::documented!(
    LoginName,
    serde_json::json!({"type": "string", "pattern": "^[A-Za-z0-9._@-]{1,64}$", "examples": ["alice"]})
);

fn check_dir(s: &str) -> Result<(), Invalid> {
    let ok = s.starts_with('/')
        && s.len() <= 255
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'/' | b'.' | b'_' | b'-'))
        && !s.split('/').any(|part| part == "..");
    if ok {
        Ok(())
    } else {
        Err(Invalid::new("must be an absolute path of letters, digits, '/', '.', '_' and '-' without '..'"))
    }
}

checked_string!(
    /// An absolute directory path on a hypervisor, e.g. `/var/lib/vz/dump`.
    DirPath,
    check_dir
);
super::documented!(
    DirPath,
    serde_json::json!({"type": "string", "maxLength": 255, "pattern": DIR_PATTERN, "examples": ["/var/lib/vz/dump"]})
);

fn check_storage(s: &str) -> Result<(), Invalid> {
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Invalid::new("must be a Proxmox storage id such as local-lvm"))
    }
}

checked_string!(
    /// A Proxmox storage id, e.g. `local-lvm`.
    StorageId,
    check_storage
);
super::documented!(
    StorageId,
    serde_json::json!({"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9._-]{0,63}$", "examples": ["local-lvm"]})
);

fn check_token_id(s: &str) -> Result<(), Invalid> {
    let msg = "must look like user@realm!tokenid";
    let (userrealm, token) = s.split_once('!').ok_or_else(|| Invalid::new(msg))?;
    let (user, realm) = userrealm.split_once('@').ok_or_else(|| Invalid::new(msg))?;
    let word = |w: &str| {
        !w.is_empty()
            && w.len() <= 64
            && w.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    };
    if word(user) && word(realm) && word(token) {
        Ok(())
    } else {
        Err(Invalid::new(msg))
    }
}

checked_string!(
    /// A Proxmox API token id, `user@realm!tokenid`.
    TokenId,
    check_token_id
);
super::documented!(
    TokenId,
    serde_json::json!({"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}@[A-Za-z0-9._-]{1,64}![A-Za-z0-9._-]{1,64}$",
        "examples": ["root@pam!drswitch"]})
);

fn check_fingerprint(s: &str) -> Result<(), Invalid> {
    let parts: Vec<&str> = s.split(':').collect();
    let ok = parts.len() == 32 && parts.iter().all(|p| p.len() == 2 && p.bytes().all(|c| c.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(Invalid::new("must be a SHA-256 fingerprint as 32 colon-separated hex bytes"))
    }
}

checked_string!(
    /// A certificate's SHA-256 as colon-separated hex (`3A:5F:…`).
    TlsFingerprint,
    check_fingerprint
);
super::documented!(
    TlsFingerprint,
    serde_json::json!({"type": "string", "pattern": "^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){31}$"})
);

impl TlsFingerprint {
    /// The 32 bytes the fingerprint stands for.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.split(':').filter_map(|p| u8::from_str_radix(p, 16).ok()).collect()
    }
}

impl SshUser {
    pub fn root() -> Self {
        Self("root".into())
    }
}

impl DirPath {
    /// Proxmox's default dump directory (storage `local`, subdir `dump`).
    pub fn default_dump() -> Self {
        Self("/var/lib/vz/dump".into())
    }
}

impl StorageId {
    pub fn local_lvm() -> Self {
        Self("local-lvm".into())
    }
}

const ARCHIVE_EXTS: &[&str] =
    &["vma", "vma.zst", "vma.lzo", "vma.gz", "vma.bz2", "tar", "tar.zst", "tar.lzo", "tar.gz", "tar.bz2", "tgz"];

/// Splits a standard vzdump archive name into (guest type, vmid, timestamp, ext).
fn parse_archive(s: &str) -> Option<(&str, Vmid, &str, &str)> {
    let rest = s.strip_prefix("vzdump-")?;
    let (ty, rest) = rest.split_once('-')?;
    if !matches!(ty, "qemu" | "lxc" | "openvz") {
        return None;
    }
    let (vmid, rest) = rest.split_once('-')?;
    let vmid: Vmid = vmid.parse().ok()?;
    // YYYY_MM_DD-HH_MM_SS is 19 characters, then a dot.
    let (stamp, ext) = (rest.get(..19)?, rest.get(19..)?.strip_prefix('.')?);
    let shape_ok = stamp.bytes().enumerate().all(|(i, c)| match i {
        4 | 7 | 13 | 16 => c == b'_',
        10 => c == b'-',
        _ => c.is_ascii_digit(),
    });
    if !shape_ok || !ARCHIVE_EXTS.contains(&ext) {
        return None;
    }
    Some((ty, vmid, stamp, ext))
}

fn check_archive(s: &str) -> Result<(), Invalid> {
    if parse_archive(s).is_some() {
        Ok(())
    } else {
        Err(Invalid::new("must be a Proxmox archive name such as vzdump-qemu-100-2026_11_22-02_00_00.vma.zst"))
    }
}

checked_string!(
    /// A standard vzdump archive file name (no directory part).
    ArchiveName,
    check_archive
);

impl ArchiveName {
    pub fn vmid(&self) -> Option<Vmid> {
        parse_archive(&self.0).map(|(_, v, _, _)| v)
    }

    /// The `YYYY_MM_DD-HH_MM_SS` stamp in the name (node local time).
    pub fn stamp(&self) -> Option<&str> {
        parse_archive(&self.0).map(|(_, _, s, _)| s)
    }

    /// The name vzdump would give a dump started at `local` (the node's
    /// local time): `vzdump --stdout` writes no file, so the caller names
    /// the archive itself in the standard form (proxmox-reference §6.2).
    pub fn for_stream(
        guest: super::Guest,
        vmid: Vmid,
        compress: super::Compress,
        local: chrono::NaiveDateTime,
    ) -> ArchiveName {
        let (ty, base) = match guest {
            super::Guest::Qemu => ("qemu", "vma"),
            super::Guest::Lxc => ("lxc", "tar"),
        };
        let ext = match compress {
            super::Compress::Zstd => ".zst",
            super::Compress::Lzo => ".lzo",
            super::Compress::Gzip => ".gz",
            super::Compress::None => "",
        };
        ArchiveName(format!("vzdump-{ty}-{vmid}-{}.{base}{ext}", local.format("%Y_%m_%d-%H_%M_%S")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for ok in ["127.0.0.1", "::1", "pve1.example.org", "dc-1"] {
            assert!(ok.parse::<HostName>().is_ok(), "{ok}");
        }
        for bad in ["a b", "$(reboot)", "", "-oProxyCommand=x", "host;ls", "a..b"] {
            assert!(bad.parse::<HostName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn stream_names_are_standard() {
        let at = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap().and_hms_opt(2, 0, 0).unwrap();
        let vmid: Vmid = 100.try_into().unwrap();
        let a = ArchiveName::for_stream(crate::domain::Guest::Qemu, vmid, crate::domain::Compress::Zstd, at);
        assert_eq!(a.as_str(), "vzdump-qemu-100-2026_11_22-02_00_00.vma.zst");
        let b = ArchiveName::for_stream(crate::domain::Guest::Lxc, vmid, crate::domain::Compress::None, at);
        assert_eq!(b.as_str(), "vzdump-lxc-100-2026_11_22-02_00_00.tar");
        for g in crate::domain::Guest::ALL {
            for c in crate::domain::Compress::ALL {
                let n = ArchiveName::for_stream(*g, vmid, *c, at);
                assert!(n.as_str().parse::<ArchiveName>().is_ok(), "{n}");
            }
        }
    }

    #[test]
    fn archive_names() {
        let a: ArchiveName = "vzdump-qemu-100-2026_11_22-02_00_00.vma.zst".parse().unwrap();
        assert_eq!(a.vmid().unwrap().get(), 100);
        assert_eq!(a.stamp().unwrap(), "2026_11_22-02_00_00");
        for bad in [
            "vzdump-qemu-100-2026_11_22-02_00_00.vma.dat",
            "vzdump-qemu-99-2026_11_22-02_00_00.vma",
            "../vzdump-qemu-100-2026_11_22-02_00_00.vma",
            "vzdump-qemu-100-2026_11_22-02_00_00.vma;rm",
            "x.vma",
        ] {
            assert!(bad.parse::<ArchiveName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn dirs_and_ids() {
        assert!("/var/lib/vz/dump".parse::<DirPath>().is_ok());
        assert!("/var/../etc".parse::<DirPath>().is_err());
        assert!("relative".parse::<DirPath>().is_err());
        assert!("/a b".parse::<DirPath>().is_err());
        assert!("root@pam!drswitch".parse::<TokenId>().is_ok());
        assert!("root@pam".parse::<TokenId>().is_err());
        assert!("root".parse::<SshUser>().is_ok());
        assert!("root;x".parse::<SshUser>().is_err());
        let fp = vec!["3A"; 32].join(":");
        assert_eq!(fp.parse::<TlsFingerprint>().unwrap().bytes().len(), 32);
        assert!("3A:5F".parse::<TlsFingerprint>().is_err());
    }
}
