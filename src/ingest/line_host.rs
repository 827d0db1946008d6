//! The host each line belongs to, and the qualification of its events' queue ids by it.
//!
//! A file is one host's log unless its `--log` says otherwise ([`super::LinesOf`]): the names
//! its lines carry do not matter then (on one machine postlogd writes myhostname's first label
//! and rsyslog the system's name, for the same host). Streams of many hosts — the syslog
//! receiver, the journal, a collector's file with `host=*` — take each line's host field. A
//! native line's `host=` names the host of its queue id in every source: the SMTP gate writes
//! the name its MTA's lines carry.

use super::event::Event;
use super::hosts::{HostId, Hosts, TOO_MANY_HOSTS};
use super::syslog::{parse_prefix, Prefix, SyslogClock};
use super::tracker::Tracker;
use crate::index::Index;

/// How the host of a source's lines is found.
pub enum LineHost {
    /// Every line is this host's.
    Fixed(HostId),
    /// Each line names its own (its syslog HOSTNAME); `default` for a line that names none.
    EachLine {
        clock: SyslogClock,
        default: HostId,
        /// The last name seen and its host: consecutive lines mostly come from one host.
        last: Vec<u8>,
        last_id: Option<HostId>,
    },
}

impl LineHost {
    /// Each line's own host, read with `clock`; `default` when a line names none.
    pub fn each_line(clock: SyslogClock, default: HostId) -> LineHost {
        LineHost::EachLine {
            clock,
            default,
            last: Vec::new(),
            last_id: None,
        }
    }

    /// The host of `line`, or why it cannot have one (the host table is full); and, when
    /// finding it parsed the line's syslog prefix, that prefix, for the parser to take rather
    /// than parse again.
    pub fn of<'l>(
        &mut self,
        line: &'l [u8],
        hosts: &mut Hosts,
    ) -> (Option<Prefix<'l>>, Result<HostId, &'static str>) {
        match self {
            LineHost::Fixed(host) => (None, Ok(*host)),
            LineHost::EachLine {
                clock,
                default,
                last,
                last_id,
            } => {
                let prefix = parse_prefix(line, clock);
                let Some(name) = prefix.map(|p| p.host).filter(|h| !h.is_empty()) else {
                    return (prefix, Ok(*default));
                };
                if let Some(id) = last_id.filter(|_| last[..] == *name) {
                    return (prefix, Ok(id));
                }
                let Some(id) = hosts.intern(name, true) else {
                    return (prefix, Err(TOO_MANY_HOSTS));
                };
                last.clear();
                last.extend_from_slice(name);
                *last_id = Some(id);
                (prefix, Ok(id))
            }
        }
    }
}

/// Applies one event of a line of `host`: its queue ids go on the host the line names for
/// them (a native `host=`) or on `host`, then the tracker takes it.
pub fn apply(
    mut event: Event,
    host: HostId,
    tracker: &mut Tracker,
    index: &Index,
) -> Result<(), &'static str> {
    let host = match event.declared_host() {
        Some(name) => tracker
            .hosts_mut()
            .intern(name, true)
            .ok_or(TOO_MANY_HOSTS)?,
        None => host,
    };
    event.qualify(host);
    tracker.apply(event, index)
}
