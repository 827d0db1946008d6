//! The PROXY protocol version 2 header (HAProxy's spec, section 2.2), sent to the MTA before
//! anything else so that it learns the client's real address. Without it every session would
//! come from the gate's own address, 127.0.0.1, which Postfix's default `mynetworks` trusts as a
//! relay client.

use std::net::{IpAddr, SocketAddr};

/// The twelve octets every v2 header starts with.
const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Version 2, command PROXY.
const VERSION_PROXY: u8 = 0x21;
/// Address family and transport: TCP over IPv4, TCP over IPv6.
const TCP4: u8 = 0x11;
const TCP6: u8 = 0x21;

/// IPv4-mapped IPv6 addresses (a dual-stack listener's view of an IPv4 client) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The header for a connection from `client` to the gate's `local` address. When one address
/// is IPv4 and the other IPv6, both are sent as IPv6 (IPv4 mapped), as the spec requires one
/// family.
pub fn header(client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let (src, dst) = (canonical(client.ip()), canonical(local.ip()));
    let mut out = Vec::with_capacity(16 + 36);
    out.extend_from_slice(&SIGNATURE);
    out.push(VERSION_PROXY);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.push(TCP4);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.push(TCP6);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(s).octets());
            out.extend_from_slice(&v6(d).octets());
        }
    }
    out.extend_from_slice(&client.port().to_be_bytes());
    out.extend_from_slice(&local.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4() {
        let h = header(
            "192.0.2.7:40000".parse().unwrap(),
            "198.51.100.1:25".parse().unwrap(),
        );
        let mut want = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
        want.extend_from_slice(&[192, 0, 2, 7, 198, 51, 100, 1, 0x9c, 0x40, 0, 25]);
        assert_eq!(h, want);
    }

    #[test]
    fn ipv6_and_mapped() {
        let h = header(
            "[2001:db8::1]:1024".parse().unwrap(),
            "[::ffff:198.51.100.1]:25".parse().unwrap(),
        );
        assert_eq!(&h[12..16], b"\x21\x21\x00\x24");
        assert_eq!(h.len(), 16 + 36);
        assert_eq!(&h[16..18], &[0x20, 0x01]);
        assert_eq!(&h[32 + 10..32 + 16], &[0xff, 0xff, 198, 51, 100, 1]);
        let mapped = header(
            "[::ffff:192.0.2.7]:1".parse().unwrap(),
            "[::ffff:198.51.100.1]:25".parse().unwrap(),
        );
        assert_eq!(mapped[13], TCP4, "both mapped: sent as IPv4");
    }
}
