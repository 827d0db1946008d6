//! The receiver's counters, shared with whoever reports them (serve's shutdown report): plain
//! atomics the receiver thread adds to, and the kernel's UDP drop counters, read when asked.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use super::udp_drops::UdpDrops;

/// What the receiver has seen since it started.
#[derive(Debug, Default)]
pub struct ReceiverStats {
    /// TCP and TLS connections admitted.
    pub connections: AtomicU64,
    /// TCP connections closed at once and UDP datagrams dropped because of their sender's
    /// address.
    pub refused: AtomicU64,
    /// Lines handed to the ingest thread.
    pub lines: AtomicU64,
    /// Octets received from admitted senders (after TLS, framing included).
    pub bytes: AtomicU64,
    /// Messages without a valid `<PRI>`, and octet-counted frames cut short by the sender's
    /// close; skipped.
    pub malformed: AtomicU64,
    /// Messages longer than 64 KiB; skipped.
    pub too_long: AtomicU64,
    /// Connections closed because their framing made no sense.
    pub framing_errors: AtomicU64,
    /// TLS connections whose handshake failed (a client certificate missing or not signed
    /// by `--syslog-client-ca`, or no common protocol).
    pub tls_failures: AtomicU64,
    /// The UDP sockets, whose kernel drop counters [`ReceiverStats::udp_drops`] reads.
    pub(super) udp: Vec<UdpDrops>,
}

/// The counters at one moment, for a report or a test.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub connections: u64,
    pub refused: u64,
    pub lines: u64,
    pub bytes: u64,
    pub malformed: u64,
    pub too_long: u64,
    pub framing_errors: u64,
    pub tls_failures: u64,
    /// Datagrams the kernel dropped on our UDP sockets (full receive buffers).
    pub udp_drops: u64,
}

impl ReceiverStats {
    /// Adds `n` to a counter (the receiver thread is the only writer; readers may be anywhere).
    pub(super) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The kernel's drop count over every UDP socket, read now.
    pub fn udp_drops(&self) -> u64 {
        self.udp.iter().filter_map(UdpDrops::read).sum()
    }

    /// Every counter, read now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            connections: get(&self.connections),
            refused: get(&self.refused),
            lines: get(&self.lines),
            bytes: get(&self.bytes),
            malformed: get(&self.malformed),
            too_long: get(&self.too_long),
            framing_errors: get(&self.framing_errors),
            tls_failures: get(&self.tls_failures),
            udp_drops: self.udp_drops(),
        }
    }
}

/// One line for the shutdown report.
impl fmt::Display for StatsSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "syslog receiver: {} lines ({} octets) from {} connections and UDP; refused {}, \
             malformed {}, too long {}, framing errors {}, TLS failures {}, \
             UDP datagrams dropped by the kernel {}",
            self.lines,
            self.bytes,
            self.connections,
            self.refused,
            self.malformed,
            self.too_long,
            self.framing_errors,
            self.tls_failures,
            self.udp_drops
        )
    }
}

impl fmt::Display for ReceiverStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.snapshot().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_is_one_line() {
        let stats = ReceiverStats::default();
        ReceiverStats::add(&stats.lines, 3);
        let s = stats.to_string();
        assert!(s.starts_with("syslog receiver: 3 lines (0 octets)"), "{s}");
        assert!(s.ends_with("UDP datagrams dropped by the kernel 0"), "{s}");
        assert!(!s.contains('\n'));
    }
}
