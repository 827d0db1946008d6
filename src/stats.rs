//! Latency histograms and counters. Each event-loop worker owns one [`WorkerStats`] and
//! records into it; at shutdown they are merged and printed. The counters and the coarse
//! latency buckets are [`Counter`]s behind an `Arc`, so that the admin server
//! ([`crate::admin`]) can read them while the worker runs; only the worker ever writes them.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hdrhistogram::Histogram;

use crate::protocol::command::{BadCommand, CommandKind};

/// Highest latency recorded exactly, in nanoseconds; slower commands count as this.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// A count that one thread writes and any thread may read. The writer adds with a relaxed
/// load and store, not a read-modify-write: with a single writer no update is lost, and the
/// hot path pays no locked instruction. A reader sees some recent value.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`; only the owning thread may call this.
    #[inline]
    pub fn add(&self, n: u64) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_add(n), Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counters of one worker. Aligned to two cache lines, so that two workers' counters never
/// share a line (each worker's live in their own allocation).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Counters {
    pub accepted: Counter,
    /// Accepted and given a connection slot (not refused by a limit).
    pub admitted: Counter,
    pub refused_over_limit: Counter,
    /// Refused because their address had `--max-connections-per-ip` open already.
    pub refused_per_address: Counter,
    pub accept_errors: Counter,
    pub closed_idle: Counter,
    /// Closed because their TLS handshake was not done in time.
    pub closed_handshake_timeout: Counter,
    pub closed_too_many_errors: Counter,
    pub track_hits: Counter,
    pub track_misses: Counter,
    /// TRACK refused because `--tls-required` and the session is not under TLS.
    pub track_tls_required: Counter,
    /// STARTTLS answered with the go-ahead.
    pub starttls_accepted: Counter,
    /// STARTTLS refused (no certificates, unknown name, already under TLS).
    pub starttls_refused: Counter,
    pub comments: Counter,
    pub quits: Counter,
    pub lines_too_long: Counter,
    pub bytes_out: Counter,
    pub tls_handshakes: Counter,
    pub tls_failures: Counter,
    /// Bad commands, by reason (in the order of [`BadCommand::ALL`]).
    pub bad: [Counter; BadCommand::ALL.len()],
}

impl Counters {
    fn add(&self, o: &Counters) {
        let pairs = [
            (&self.accepted, &o.accepted),
            (&self.admitted, &o.admitted),
            (&self.refused_over_limit, &o.refused_over_limit),
            (&self.refused_per_address, &o.refused_per_address),
            (&self.accept_errors, &o.accept_errors),
            (&self.closed_idle, &o.closed_idle),
            (&self.closed_handshake_timeout, &o.closed_handshake_timeout),
            (&self.closed_too_many_errors, &o.closed_too_many_errors),
            (&self.track_hits, &o.track_hits),
            (&self.track_misses, &o.track_misses),
            (&self.track_tls_required, &o.track_tls_required),
            (&self.starttls_accepted, &o.starttls_accepted),
            (&self.starttls_refused, &o.starttls_refused),
            (&self.comments, &o.comments),
            (&self.quits, &o.quits),
            (&self.lines_too_long, &o.lines_too_long),
            (&self.bytes_out, &o.bytes_out),
            (&self.tls_handshakes, &o.tls_handshakes),
            (&self.tls_failures, &o.tls_failures),
        ];
        for (mine, theirs) in pairs.into_iter().chain(self.bad.iter().zip(&o.bad)) {
            mine.add(theirs.get());
        }
    }

    /// Counts one bad command.
    pub fn count_bad(&self, why: BadCommand) {
        if let Some(i) = BadCommand::ALL.iter().position(|b| *b == why) {
            self.bad[i].add(1);
        }
    }
}

/// Upper bounds of the latency buckets the admin server exports (Prometheus' `le`), in
/// nanoseconds: 10 µs to 1 s in 1-2.5-5 steps. Slower answers fall in the last, open bucket.
pub const BUCKET_BOUNDS_NS: [u64; 16] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
];

/// Coarse latency histograms of one worker, per command kind: a count per bucket (not
/// cumulative; the last one is above every bound) and the sum of the latencies. Next to the
/// exact HdrHistograms of the shutdown report, and readable while the worker runs.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Buckets {
    pub counts: [[Counter; BUCKET_BOUNDS_NS.len() + 1]; CommandKind::ALL.len()],
    pub sum_ns: [Counter; CommandKind::ALL.len()],
}

impl Buckets {
    fn record(&self, slot: usize, nanos: u64) {
        let bucket = BUCKET_BOUNDS_NS.partition_point(|&b| b < nanos);
        self.counts[slot][bucket].add(1);
        self.sum_ns[slot].add(nanos);
    }

    fn add(&self, o: &Buckets) {
        for (mine, theirs) in self.counts.iter().flatten().zip(o.counts.iter().flatten()) {
            mine.add(theirs.get());
        }
        for (mine, theirs) in self.sum_ns.iter().zip(&o.sum_ns) {
            mine.add(theirs.get());
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
    pub counters: Arc<Counters>,
    pub buckets: Arc<Buckets>,
}

impl Default for WorkerStats {
    fn default() -> Self {
        let latency = CommandKind::ALL
            .iter()
            .map(|_| Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid bounds"))
            .collect();
        WorkerStats {
            latency,
            counters: Arc::default(),
            buckets: Arc::default(),
        }
    }
}

/// The index of `kind` in [`CommandKind::ALL`] (and in the per-kind arrays).
pub fn slot(kind: CommandKind) -> usize {
    CommandKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(0)
}

/// What the admin server reads of one running worker: its counters and latency buckets.
#[derive(Clone)]
pub struct LiveStats {
    pub counters: Arc<Counters>,
    pub buckets: Arc<Buckets>,
}

impl WorkerStats {
    /// The parts of these statistics others may read while the worker runs.
    pub fn live(&self) -> LiveStats {
        LiveStats {
            counters: Arc::clone(&self.counters),
            buckets: Arc::clone(&self.buckets),
        }
    }

    /// Records one command's latency in nanoseconds.
    pub fn record(&mut self, kind: CommandKind, nanos: u64) {
        self.latency[slot(kind)].saturating_record(nanos.clamp(1, MAX_LATENCY_NS));
        self.buckets.record(slot(kind), nanos);
    }

    /// Adds another worker's statistics to these.
    pub fn merge(&mut self, other: &WorkerStats) {
        for (mine, theirs) in self.latency.iter_mut().zip(&other.latency) {
            // Both histograms have the same bounds, so adding cannot fail.
            let _ = mine.add(theirs);
        }
        self.counters.add(&other.counters);
        self.buckets.add(&other.buckets);
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
            c.accepted.get(),
            c.refused_over_limit.get(),
            c.refused_per_address.get(),
            c.accept_errors.get(),
            c.closed_idle.get(),
            c.closed_handshake_timeout.get(),
            c.closed_too_many_errors.get(),
            c.track_hits.get(),
            c.track_misses.get(),
            c.lines_too_long.get(),
            c.bytes_out.get(),
            c.tls_handshakes.get(),
            c.tls_failures.get()
        );
        let bad: Vec<String> = BadCommand::ALL
            .iter()
            .zip(c.bad.iter().map(Counter::get))
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
        b.counters.track_hits.add(2);
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
        // 1 µs and 3 µs fall in the first bucket (up to 10 µs), 0 too.
        assert_eq!(a.buckets.counts[slot(CommandKind::Track)][0].get(), 2);
        assert_eq!(a.buckets.sum_ns[slot(CommandKind::Track)].get(), 4_000);
        assert_eq!(a.buckets.counts[slot(CommandKind::Quit)][0].get(), 1);
    }
}
