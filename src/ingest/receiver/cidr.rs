//! `--syslog-allow CIDR`: the networks a syslog sender may write from. Anyone who can reach the
//! receiver can write log lines, so senders are admitted by address (or, on a TLS listener with
//! `--syslog-client-ca`, by certificate).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP network, `ADDR/LEN` (a bare address is one host: /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network's address, host bits cleared.
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    /// The default allow list: loopback only.
    pub const LOOPBACK: [&'static str; 2] = ["127.0.0.0/8", "::1/128"];

    /// Whether `peer` is inside. An IPv4-mapped IPv6 peer (`::ffff:a.b.c.d`, what a dual-stack
    /// socket reports for an IPv4 client) is matched as the IPv4 address it is.
    pub fn contains(&self, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, peer) {
            (IpAddr::V4(net), IpAddr::V4(p)) => {
                mask(u128::from(u32::from(p)), self.len, 32) == u128::from(u32::from(net))
            }
            (IpAddr::V6(net), IpAddr::V6(p)) => {
                mask(u128::from(p), self.len, 128) == u128::from(net)
            }
            _ => false,
        }
    }
}

/// `bits` with all but its first `len` of `width` bits cleared.
fn mask(bits: u128, len: u8, width: u8) -> u128 {
    if len == 0 {
        return 0;
    }
    let keep = u128::MAX << (width - len);
    bits & keep & (u128::MAX >> (128 - u32::from(width)))
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let bad = |why: &str| format!("'{s}' is not a network ADDR/LEN: {why}");
        let (addr, len) = match s.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (s, None),
        };
        let addr = IpAddr::from_str(addr).map_err(|_| bad("not an IP address"))?;
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => width,
            // Digits only: u8's parser would take "+8".
            Some(l) if !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit()) => l
                .parse::<u8>()
                .ok()
                .filter(|&l| l <= width)
                .ok_or_else(|| bad(&format!("the prefix length must be 0 to {width}")))?,
            Some(_) => return Err(bad(&format!("the prefix length must be 0 to {width}"))),
        };
        let net = match addr {
            IpAddr::V4(a) => IpAddr::V4((mask(u128::from(u32::from(a)), len, 32) as u32).into()),
            IpAddr::V6(a) => IpAddr::V6(mask(u128::from(a), len, 128).into()),
        };
        // Host bits set (10.0.0.1/8) is most likely a typo for a narrower network: refuse it
        // rather than silently admit the whole /8.
        if net != addr {
            return Err(bad(&format!(
                "host bits are set (the network is {net}/{len})"
            )));
        }
        Ok(Cidr { addr: net, len })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_matches() {
        let lo: Cidr = "127.0.0.0/8".parse().unwrap();
        assert!(lo.contains(ip("127.0.0.1")));
        assert!(lo.contains(ip("127.255.255.255")));
        assert!(!lo.contains(ip("128.0.0.1")));
        assert!(!lo.contains(ip("::1")));
        // A dual-stack socket's view of an IPv4 client.
        assert!(lo.contains(ip("::ffff:127.0.0.5")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let one: Cidr = "::1".parse().unwrap();
        assert_eq!(one.to_string(), "::1/128");
        assert!(one.contains(ip("::1")));
        assert!(!one.contains(ip("::2")));
        let host: Cidr = "192.0.2.7".parse().unwrap();
        assert_eq!(host.to_string(), "192.0.2.7/32");
        assert!(host.contains(ip("192.0.2.7")) && !host.contains(ip("192.0.2.8")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")) && all.contains(ip("::ffff:1.2.3.4")));
        assert!(!all.contains(ip("2001:db8::1")));
        let all6: Cidr = "::/0".parse().unwrap();
        assert!(all6.contains(ip("2001:db8::1")));
        let odd: Cidr = "10.64.0.0/10".parse().unwrap();
        assert!(odd.contains(ip("10.127.255.255")) && !odd.contains(ip("10.128.0.0")));
        for s in Cidr::LOOPBACK {
            s.parse::<Cidr>().unwrap();
        }
    }

    #[test]
    fn refuses_what_is_not_a_network() {
        for bad in [
            "",
            "/8",
            "127.0.0.1/",
            "127.0.0.1/33",
            "::/129",
            "127.0.0.1/+8",
            "127.0.0.1/ 8",
            "localhost",
            "10.0.0.1/8",
            "2001:db8::1/32",
            "1.2.3.4/0008",
            "1.2.3/24",
        ] {
            let e = bad.parse::<Cidr>().expect_err(bad);
            assert!(e.contains(bad) && !e.contains('\n'), "{e}");
        }
    }
}
