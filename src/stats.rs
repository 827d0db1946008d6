//! Latency histograms and counters. Each event-loop worker owns one [`WorkerStats`] and
//! records into it without sharing; at shutdown they are merged and printed.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::protocol::command::{BadCommand, CommandKind};

/// Highest latency recorded exactly, in nanoseconds; slower commands count as this.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// Counters of one worker.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub accepted: u64,
    pub refused_over_limit: u64,
    /// Refused because their address had `--max-connections-per-ip` open already.
    pub refused_per_address: u64,
    pub accept_errors: u64,
    pub closed_idle: u64,
    /// Closed because their TLS handshake was not done in time.
    pub closed_handshake_timeout: u64,
    pub closed_too_many_errors: u64,
    pub track_hits: u64,
    pub track_misses: u64,
    pub lines_too_long: u64,
    pub bytes_out: u64,
    pub tls_handshakes: u64,
    pub tls_failures: u64,
    /// Bad commands, by reason (in the order of [`BadCommand::ALL`]).
    pub bad: [u64; BadCommand::ALL.len()],
}

impl Counters {
    fn add(&mut self, o: &Counters) {
        self.accepted += o.accepted;
        self.refused_over_limit += o.refused_over_limit;
        self.refused_per_address += o.refused_per_address;
        self.accept_errors += o.accept_errors;
        self.closed_idle += o.closed_idle;
        self.closed_handshake_timeout += o.closed_handshake_timeout;
        self.closed_too_many_errors += o.closed_too_many_errors;
        self.track_hits += o.track_hits;
        self.track_misses += o.track_misses;
        self.lines_too_long += o.lines_too_long;
        self.bytes_out += o.bytes_out;
        self.tls_handshakes += o.tls_handshakes;
        self.tls_failures += o.tls_failures;
        for (mine, theirs) in self.bad.iter_mut().zip(o.bad) {
            *mine += theirs;
        }
    }

    /// Counts one bad command.
    pub fn count_bad(&mut self, why: BadCommand) {
        if let Some(i) = BadCommand::ALL.iter().position(|b| *b == why) {
            self.bad[i] += 1;
        }
    }
}

/// Writes one row per histogram, in microseconds: count, p50, p90, p99, p99.9 and max (the
/// shutdown reports of `serve` and `gate`).
pub fn latency_table<'a>(
    out: &mut String,
    rows: impl IntoIterator<Item = (&'a str, &'a Histogram<u64>)>,
) {
    let _ = writeln!(
        out,
        "  {:<10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "what", "count", "p50", "p90", "p99", "p99.9", "max"
    );
    for (name, h) in rows {
        let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let _ = writeln!(
            out,
            "  {:<10} {:>10} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            name,
            h.len(),
            us(0.5),
            us(0.9),
            us(0.99),
            us(0.999),
            h.max() as f64 / 1000.0
        );
    }
}

/// One worker's statistics.
pub struct WorkerStats {
    latency: Vec<Histogram<u64>>,
    pub counters: Counters,
}

impl Default for WorkerStats {
    fn default() -> Self {
        let latency = CommandKind::ALL
            .iter()
            .map(|_| Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid bounds"))
            .collect();
        WorkerStats {
            latency,
            counters: Counters::default(),
        }
    }
}

fn slot(kind: CommandKind) -> usize {
    CommandKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(0)
}

impl WorkerStats {
    /// Records one command's latency in nanoseconds.
    pub fn record(&mut self, kind: CommandKind, nanos: u64) {
        self.latency[slot(kind)].saturating_record(nanos.clamp(1, MAX_LATENCY_NS));
    }

    /// Adds another worker's statistics to these.
    pub fn merge(&mut self, other: &WorkerStats) {
        for (mine, theirs) in self.latency.iter_mut().zip(&other.latency) {
            // Both histograms have the same bounds, so adding cannot fail.
            let _ = mine.add(theirs);
        }
        self.counters.add(&other.counters);
    }

    /// How many commands of `kind` were recorded.
    pub fn count(&self, kind: CommandKind) -> u64 {
        self.latency[slot(kind)].len()
    }

    /// The report printed at shutdown: one histogram row per command kind, then the counters.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "mtqpd: latency per command, microseconds (bytes read -> last response byte written):"
        );
        latency_table(
            &mut out,
            CommandKind::ALL
                .iter()
                .map(|&kind| (kind.name(), &self.latency[slot(kind)])),
        );
        let c = &self.counters;
        let _ = writeln!(
            out,
            "mtqpd: connections accepted {} refused-over-limit {} refused-per-address {} \
             accept-errors {} closed-idle {} closed-handshake-timeout {} closed-too-many-errors {}; \
             track hits {} misses {}; lines too long {}; bytes out {}; tls handshakes {} failed {}",
            c.accepted,
            c.refused_over_limit,
            c.refused_per_address,
            c.accept_errors,
            c.closed_idle,
            c.closed_handshake_timeout,
            c.closed_too_many_errors,
            c.track_hits,
            c.track_misses,
            c.lines_too_long,
            c.bytes_out,
            c.tls_handshakes,
            c.tls_failures
        );
        let bad: Vec<String> = BadCommand::ALL
            .iter()
            .zip(c.bad)
            .filter(|(_, n)| *n > 0)
            .map(|(why, n)| format!("{} {n}", why.name()))
            .collect();
        if !bad.is_empty() {
            let _ = writeln!(out, "mtqpd: bad commands by reason: {}", bad.join(", "));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_counts_and_report_lists_every_kind() {
        let mut a = WorkerStats::default();
        let mut b = WorkerStats::default();
        a.record(CommandKind::Track, 1_000);
        b.record(CommandKind::Track, 3_000);
        b.record(CommandKind::Quit, 0);
        b.counters.track_hits = 2;
        b.counters.count_bad(BadCommand::BadSecret);
        a.counters.count_bad(BadCommand::BadSecret);
        a.merge(&b);
        assert_eq!(a.count(CommandKind::Track), 2);
        assert_eq!(a.count(CommandKind::Quit), 1);
        let report = a.report();
        for kind in CommandKind::ALL {
            assert!(report.contains(kind.name()));
        }
        assert!(report.contains("track hits 2"));
        assert!(report.contains("bad commands by reason: bad-secret 2\n"));
    }
}
