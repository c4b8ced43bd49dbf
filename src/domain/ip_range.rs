//! An address or a CIDR block (`10.0.0.5`, `10.0.0.0/8`, `fd00::/8`), as in
//! `TRUSTED_PROXIES`.

use std::net::IpAddr;

use super::Invalid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    net: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// Whether `ip` lies in the range. An IPv4 client seen through an IPv6
    /// socket (`::ffff:10.0.0.5`) counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask(u32::from(net).into(), u32::from(ip).into(), self.prefix, 32),
            (IpAddr::V6(net), IpAddr::V6(ip)) => mask(u128::from(net), u128::from(ip), self.prefix, 128),
            _ => false,
        }
    }
}

/// Whether the first `prefix` of `bits` bits of `a` and `b` agree.
fn mask(a: u128, b: u128, prefix: u8, bits: u8) -> bool {
    let shift = u32::from(bits - prefix);
    a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0)
}

impl std::str::FromStr for IpRange {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Invalid> {
        let bad = || Invalid::new(format!("{s:?} is not an IP address or CIDR block such as 10.0.0.0/8"));
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        Ok(Self { net, prefix })
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_and_blocks() {
        let one: IpRange = "10.0.0.5".parse().unwrap();
        assert!(one.contains(ip("10.0.0.5")));
        assert!(!one.contains(ip("10.0.0.6")));
        let block: IpRange = "10.1.0.0/16".parse().unwrap();
        assert!(block.contains(ip("10.1.200.3")));
        assert!(!block.contains(ip("10.2.0.1")));
        assert!(block.contains(ip("::ffff:10.1.0.9")), "an IPv4 client on an IPv6 socket");
        let all: IpRange = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("192.0.2.1")));
        assert!(!all.contains(ip("2001:db8::1")));
        let v6: IpRange = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")));
        assert!(!v6.contains(ip("fe80::1")));
        assert!("::1".parse::<IpRange>().unwrap().contains(ip("::1")));
    }

    #[test]
    fn refuses_what_is_not_a_range() {
        for bad in ["", "proxy.example", "10.0.0.0/33", "10.0.0.0/x", "fd00::/129", "10.0.0/8"] {
            assert!(bad.parse::<IpRange>().is_err(), "{bad}");
        }
    }
}
