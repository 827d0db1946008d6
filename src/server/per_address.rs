//! The per-client-address connection limit (`--max-connections-per-ip`): one address cannot
//! take every connection slot. An IPv6 client is counted by its /64, the smallest prefix a
//! single host or site is normally given, so that walking through the addresses of one
//! network does not escape the limit; an IPv4-mapped IPv6 address (a dual-stack listener's
//! view of an IPv4 client) counts as its IPv4 address.
//!
//! The counts are shared by every worker behind one lock, taken once when a connection is
//! accepted and once when it closes, never per command. The map holds one entry per address
//! with an open connection, so it is bounded by `--max-connections`.

use std::collections::HashMap;
use std::net::IpAddr;

use parking_lot::Mutex;

/// What one client address counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKey {
    V4(u32),
    /// The first 64 bits of the address.
    V6Prefix(u64),
}

impl AddressKey {
    pub fn of(ip: IpAddr) -> AddressKey {
        match ip {
            IpAddr::V4(v4) => AddressKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey::V4(u32::from(v4)),
                None => AddressKey::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// Open connections per client address.
pub struct AddressCounts {
    limit: usize,
    open: Mutex<HashMap<AddressKey, u32>>,
}

impl AddressCounts {
    /// Counts that admit at most `limit` connections per address.
    pub fn new(limit: usize) -> AddressCounts {
        AddressCounts {
            limit,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a new connection from `ip`, or None when its address is at the limit.
    pub fn admit(&self, ip: IpAddr) -> Option<AddressKey> {
        let key = AddressKey::of(ip);
        let mut open = self.open.lock();
        let n = open.entry(key).or_insert(0);
        if *n as usize >= self.limit {
            if *n == 0 {
                open.remove(&key);
            }
            return None;
        }
        *n += 1;
        Some(key)
    }

    /// Uncounts a closed connection.
    pub fn release(&self, key: AddressKey) {
        let mut open = self.open.lock();
        if let Some(n) = open.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&key);
            }
        }
    }

    /// Addresses with an open connection.
    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.open.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let key = |t| AddressKey::of(ip(t));
        assert_eq!(key("2001:db8::1"), key("2001:db8::ffff:1234:5678:9abc"));
        assert_ne!(key("2001:db8::1"), key("2001:db8:0:1::1"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
    }

    #[test]
    fn the_limit_holds_per_address_and_frees_with_each_close() {
        let counts = AddressCounts::new(2);
        let a = counts.admit(ip("2001:db8::1")).unwrap();
        counts.admit(ip("2001:db8::2")).unwrap();
        assert_eq!(counts.admit(ip("2001:db8::3")), None, "same /64");
        let b = counts.admit(ip("192.0.2.1")).unwrap();
        counts.release(a);
        assert!(counts.admit(ip("2001:db8::4")).is_some());
        counts.release(b);
        assert_eq!(
            counts.addresses(),
            1,
            "no entry is left for a closed address"
        );
    }
}
