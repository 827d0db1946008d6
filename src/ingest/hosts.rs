//! The hosts of a mail cluster, as their log lines name them.
//!
//! Queue ids are unique on one host only (Postfix's short ids collide across a row of MX hosts),
//! so every MTA event is qualified by the host that logged it, and the tracker keys queue ids by
//! (host, id). A host is known by the name its lines carry — the syslog HOSTNAME field, a file's
//! `host=`, a native line's `host=` — compared case-insensitively, a short name matching an
//! FQDN's first label (rsyslog writes `mx1` where the MTA calls itself `mx1.example.com`).
//! Inside the tracker a host is a small number, [`HostId`], so that qualifying an id costs two
//! octets.
//!
//! `--cluster-host NAME=ADDR[:PORT]` adds the addresses at which a host of the cluster takes
//! mail, so that a hand-off to `10.0.0.2:25` is followed on that host ([`Hosts::next_hop`]).

use std::collections::HashMap;
use std::net::IpAddr;

/// Most distinct hosts (names and aliases share the bound): a cluster's hosts, with room; the
/// names come from log lines, which trusted senders write, but a bound keeps a broken sender
/// from growing the table for ever.
pub const MAX_HOSTS: usize = 4096;

/// Longest host name: a DNS name is at most 253 octets.
pub const MAX_HOST_NAME: usize = 253;

/// Why a line is refused when its host cannot be given a number.
pub const TOO_MANY_HOSTS: &str = "the line names a host beyond the 4096 hosts kept";

/// A host, by its number in [`Hosts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct HostId(pub u16);

/// Checks a host name given on the command line or in a config file: 1 to 253 octets of
/// letters, digits, `-`, `_` and `.`.
pub fn check_host_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_HOST_NAME {
        return Err(format!("'{name}' must be 1 to 253 octets"));
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        return Err(format!(
            "'{name}' may hold only letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

/// The address at which a host of the cluster takes mail (`--cluster-host`); no port: any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterAddr {
    pub addr: IpAddr,
    pub port: Option<u16>,
}

/// `--cluster-host NAME=ADDR[:PORT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterHost {
    pub name: String,
    pub at: ClusterAddr,
}

impl std::str::FromStr for ClusterHost {
    type Err = String;

    fn from_str(s: &str) -> Result<ClusterHost, String> {
        let (name, at) = s
            .split_once('=')
            .ok_or_else(|| format!("'{s}' is not NAME=ADDR[:PORT] (e.g. hub2=10.0.0.2:25)"))?;
        check_host_name(name)?;
        let at = if let Ok(sock) = at.parse::<std::net::SocketAddr>() {
            ClusterAddr {
                addr: sock.ip(),
                port: Some(sock.port()),
            }
        } else {
            let bare = at
                .strip_prefix('[')
                .and_then(|a| a.strip_suffix(']'))
                .unwrap_or(at);
            ClusterAddr {
                addr: bare
                    .parse()
                    .map_err(|_| format!("'{at}' in '{s}' is not ADDR or ADDR:PORT"))?,
                port: None,
            }
        };
        Ok(ClusterHost {
            name: name.to_owned(),
            at,
        })
    }
}

/// One known host.
#[derive(Debug, Clone)]
struct Host {
    /// The name first seen, lower-cased: the one snapshots keep and answers show.
    name: Box<[u8]>,
    /// Whether lines of this host have been read (not only named by `--cluster-host`).
    logs: bool,
}

/// Every host seen, by number, and the ways to find one.
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    hosts: Vec<Host>,
    /// Every name (lower-cased) under which a host was found, FQDNs and short names.
    by_name: HashMap<Box<[u8]>, HostId>,
    /// The first label of every FQDN, for a short name that stands for it.
    by_label: HashMap<Box<[u8]>, HostId>,
    cluster: Vec<(ClusterAddr, HostId)>,
    /// `name` lower-cased, reused.
    scratch: Vec<u8>,
}

/// The first label of a name: all of it when it has no dot.
fn first_label(name: &[u8]) -> &[u8] {
    name.split(|&b| b == b'.').next().unwrap_or(name)
}

impl Hosts {
    /// A table whose host 0 is `local`: the host of lines that name none.
    pub fn new(local: &str) -> Hosts {
        let mut hosts = Hosts::default();
        // Host 0 exists whatever the name: the table is empty.
        let _ = hosts.intern(local.as_bytes(), true);
        hosts
    }

    /// The number of the host named `name` (as a log line or a setting names it), given one if
    /// it is new; `logs` records that lines of it are read. None when `name` is empty, too long
    /// or the table is full.
    pub fn intern(&mut self, name: &[u8], logs: bool) -> Option<HostId> {
        if name.is_empty() || name.len() > MAX_HOST_NAME {
            return None;
        }
        let mut lower = std::mem::take(&mut self.scratch);
        lower.clear();
        lower.extend(name.iter().map(u8::to_ascii_lowercase));
        let found = self.find_lower(&lower);
        let id = match found {
            Some(id) => {
                if !self.by_name.contains_key(&lower[..]) && self.by_name.len() < MAX_HOSTS {
                    self.by_name.insert(lower[..].into(), id);
                }
                Some(id)
            }
            None if self.by_name.len() >= MAX_HOSTS => None,
            None => {
                let id = HostId(self.hosts.len() as u16);
                self.hosts.push(Host {
                    name: lower[..].into(),
                    logs: false,
                });
                self.by_name.insert(lower[..].into(), id);
                if lower.contains(&b'.') {
                    self.by_label
                        .entry(first_label(&lower).into())
                        .or_insert(id);
                }
                Some(id)
            }
        };
        if let (Some(id), true) = (id, logs) {
            self.hosts[usize::from(id.0)].logs = true;
        }
        self.scratch = lower;
        id
    }

    /// The host a lower-cased name stands for, if known: the same name, a short name for a
    /// known FQDN, or an FQDN whose first label is a known short name.
    fn find_lower(&self, lower: &[u8]) -> Option<HostId> {
        if let Some(&id) = self.by_name.get(lower) {
            return Some(id);
        }
        if lower.contains(&b'.') {
            let label = first_label(lower);
            return self
                .by_name
                .get(label)
                .copied()
                .filter(|id| !self.name(*id).contains(&b'.'));
        }
        self.by_label.get(lower).copied()
    }

    /// The name of a host, lower-cased, as first seen.
    pub fn name(&self, id: HostId) -> &[u8] {
        self.hosts
            .get(usize::from(id.0))
            .map_or(&[][..], |h| &h.name[..])
    }

    /// How many hosts are known.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Adds `--cluster-host` entries.
    pub fn add_cluster(&mut self, hosts: &[ClusterHost]) {
        for h in hosts {
            if let Some(id) = self.intern(h.name.as_bytes(), false) {
                self.cluster.push((h.at, id));
            }
        }
    }

    /// The host of the cluster that a message handed from `from` to the next hop `name`
    /// (`relay=`/`H=`), at `addr`:`port`, went to; None when it left the cluster.
    ///
    /// In order: a `--cluster-host` address (with its port, when both name one); a host whose
    /// lines are read, by the hop's exact name; a loopback address with no `--cluster-host`
    /// entry is `from` itself (a content filter re-injecting, a second instance that logs as
    /// this host).
    ///
    /// A hop's name is matched whole, never by its first label: the name comes from DNS, and
    /// anyone's domain can have an MX named `hub2.attacker.example` whose reply says `queued as`
    /// one of hub2's queue ids — followed, it would show a stranger's message in the
    /// attacker's answer. Where lines carry short names and `relay=` FQDNs, `--cluster-host`
    /// (or rsyslog's `preserveFQDN`) tells the hosts apart (docs/cluster.md).
    pub fn next_hop(
        &mut self,
        from: HostId,
        name: &[u8],
        addr: Option<IpAddr>,
        port: Option<u16>,
    ) -> Option<HostId> {
        if let Some(addr) = addr {
            let by_addr = self.cluster.iter().find(|(at, _)| {
                // sendmail logs no port: its hop is the host at that address.
                at.addr == addr && (at.port.is_none() || port.is_none() || at.port == port)
            });
            if let Some((_, id)) = by_addr {
                return Some(*id);
            }
        }
        if !name.is_empty() && name.len() <= MAX_HOST_NAME {
            let mut lower = std::mem::take(&mut self.scratch);
            lower.clear();
            lower.extend(name.iter().map(u8::to_ascii_lowercase));
            let found = self.by_name.get(&lower[..]).copied();
            self.scratch = lower;
            if let Some(id) = found.filter(|id| self.hosts[usize::from(id.0)].logs) {
                return Some(id);
            }
        }
        addr.filter(IpAddr::is_loopback).map(|_| from)
    }

    /// The names of every host, in number order, for snapshots.
    pub fn names(&self) -> impl Iterator<Item = (&[u8], bool)> {
        self.hosts.iter().map(|h| (&h.name[..], h.logs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_without_case_and_short_names_match_first_labels() {
        let mut h = Hosts::new("hub1");
        let hub1 = h.intern(b"hub1", true).unwrap();
        assert_eq!(hub1, HostId(0));
        assert_eq!(h.intern(b"HUB1.example.com", true), Some(hub1));
        let mx = h.intern(b"mx1.Example.com", true).unwrap();
        assert_ne!(mx, hub1);
        assert_eq!(h.intern(b"MX1", true), Some(mx));
        assert_eq!(h.intern(b"mx1.example.com", true), Some(mx));
        assert_eq!(h.name(mx), b"mx1.example.com");
        let other = h.intern(b"mx2", true).unwrap();
        assert_ne!(other, mx);
        assert_eq!(h.intern(b"", true), None);
        assert_eq!(h.intern(&[b'a'; 254], true), None);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut h = Hosts::new("local");
        let mut refused = 0;
        for i in 0..MAX_HOSTS + 10 {
            if h.intern(format!("h{i}").as_bytes(), true).is_none() {
                refused += 1;
            }
        }
        assert_eq!(refused, 11, "host 0 and 4095 more");
        assert_eq!(h.len(), MAX_HOSTS);
    }

    #[test]
    fn hops_are_followed_to_cluster_hosts_only() {
        let mut h = Hosts::new("hub1");
        let hub1 = HostId(0);
        h.add_cluster(&["hub2=127.0.0.1:10026".parse().unwrap()]);
        let hub2 = h.intern(b"hub2", false).unwrap();
        let lo = Some("127.0.0.1".parse().unwrap());
        assert_eq!(h.next_hop(hub1, b"localhost", lo, Some(10026)), Some(hub2));
        assert_eq!(h.next_hop(hub1, b"127.0.0.1", lo, Some(10025)), Some(hub1));
        let ext = Some("192.0.2.7".parse().unwrap());
        assert_eq!(h.next_hop(hub1, b"mx.example.net", ext, Some(25)), None);
        // hub3 logs: its name in relay= leads there, wherever it is, but only its whole name.
        let hub3 = h.intern(b"hub3.example.com", true).unwrap();
        assert_eq!(
            h.next_hop(hub1, b"HUB3.example.com", ext, Some(25)),
            Some(hub3)
        );
        assert_eq!(h.next_hop(hub1, b"hub3", ext, Some(25)), None);
        let hub5 = h.intern(b"hub5", true).unwrap();
        assert_eq!(h.next_hop(hub1, b"hub5", ext, Some(25)), Some(hub5));
        // An attacker's MX named after a cluster host's first label leads nowhere.
        assert_eq!(
            h.next_hop(hub1, b"hub5.attacker.example", ext, Some(25)),
            None
        );
        // A host only named by a setting, whose lines never came, is reached by address only.
        h.add_cluster(&["hub4=10.0.0.4".parse().unwrap()]);
        assert_eq!(h.next_hop(hub1, b"hub4", ext, Some(25)), None);
        let hub4 = h.intern(b"hub4", false).unwrap();
        let ten = Some("10.0.0.4".parse().unwrap());
        assert_eq!(h.next_hop(hub1, b"x", ten, Some(2525)), Some(hub4));
    }

    #[test]
    fn cluster_host_settings() {
        let c: ClusterHost = "hub2=[2001:db8::2]".parse().unwrap();
        assert_eq!(c.at.port, None);
        let c: ClusterHost = "hub2=[2001:db8::2]:25".parse().unwrap();
        assert_eq!(c.at.port, Some(25));
        for bad in [
            "hub2",
            "=10.0.0.1",
            "hub 2=10.0.0.1",
            "hub2=nowhere",
            "hub2=10.0.0.1:x",
        ] {
            assert!(bad.parse::<ClusterHost>().is_err(), "{bad}");
        }
    }
}
