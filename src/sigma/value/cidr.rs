//! `cidr` networks, and the address spellings events write (IPv4-mapped IPv6 included).

use std::net::IpAddr;

/// An IP network for `cidr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|&p| p <= max)?,
            None => max,
        };
        Some(Cidr { addr, prefix })
    }

    /// Whether `ip` lies in the network. An address has two spellings in IPv6 that an input
    /// may choose to evade an IPv4 rule: the IPv4-mapped `::ffff:10.0.0.1` (also written
    /// `::ffff:a00:1`) is the IPv4 address `10.0.0.1` to every network here, and an IPv4
    /// address lies in an IPv6 network over `::ffff:0:0/96` if its mapped form does.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6
                .to_ipv4_mapped()
                .is_some_and(|v4| self.contains(IpAddr::V4(v4))),
            (IpAddr::V6(_), IpAddr::V4(v4)) => self.contains(IpAddr::V6(v4.to_ipv6_mapped())),
        }
    }
}

/// An event's address text as an address: surrounding space, `[...]` brackets and an IPv6
/// zone (`fe80::1%eth0`, the zone names a local interface, not another address) do not hide
/// it. `None` for anything else that is not an address.
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    let t = text.trim();
    let t = t
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(t);
    let t = match t.split_once('%') {
        Some((addr, _zone)) if addr.contains(':') => addr,
        _ => t,
    };
    t.parse().ok()
}
