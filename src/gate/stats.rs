//! The gate's statistics: counters and latency histograms, one set per event loop (no sharing),
//! merged and printed at shutdown like `serve`'s.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::smtp::data::Normalised;
use super::smtp::mail::Untracked;
use crate::stats::latency_table;

/// Highest latency recorded exactly, in nanoseconds (the DATA end may take 10 minutes).
const MAX_LATENCY_NS: u64 = 600_000_000_000;

/// What the latency histograms measure: the MTA's answer to each kind of command, from the
/// command leaving the gate's queue to the reply being handed to the client; and, for tracked
/// messages, the accept log making the native lines durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timed {
    Banner,
    Ehlo,
    Mail,
    Rcpt,
    DataEnd,
    Other,
    AcceptLog,
}

impl Timed {
    pub const ALL: [Timed; 7] = [
        Timed::Banner,
        Timed::Ehlo,
        Timed::Mail,
        Timed::Rcpt,
        Timed::DataEnd,
        Timed::Other,
        Timed::AcceptLog,
    ];

    fn name(self) -> &'static str {
        match self {
            Timed::Banner => "banner",
            Timed::Ehlo => "ehlo/helo",
            Timed::Mail => "mail",
            Timed::Rcpt => "rcpt",
            Timed::DataEnd => "data-end",
            Timed::Other => "other",
            Timed::AcceptLog => "accept-log",
        }
    }
}

/// Counters of one event loop.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub sessions: u64,
    pub refused_over_limit: u64,
    pub refused_per_address: u64,
    pub mta_unreachable: u64,
    /// Messages the MTA accepted (a 2xx to the end of data).
    pub transactions: u64,
    /// Of those, tracked: their native lines were written.
    pub tracked: u64,
    /// MAILs with MTRK that flow untracked, by [`Untracked`] reason.
    pub untracked: [u64; Untracked::ALL.len()],
    /// Tracked messages whose queue id the MTA's reply did not give (see `--queue-id-pattern`).
    pub untracked_no_queue_id: u64,
    /// `501` for a malformed or repeated MTRK.
    pub mtrk_malformed: u64,
    /// Commands the gate answered `502` (unknown verbs, XCLIENT, XFORWARD, BDAT, AUTH …).
    pub refused_verbs: u64,
    /// Native lines that could not be made durable (the 250 was relayed anyway).
    pub accept_log_failures: u64,
    /// Accepted recipients whose ORCPT could not be remembered (over the bounds).
    pub recipients_dropped: u64,
    pub normalised: Normalised,
    /// Sessions ended because the MTA's output was not a reply to the command sent.
    pub desyncs: u64,
    pub timeouts: u64,
    pub tls_handshakes: u64,
    pub tls_failures: u64,
}

impl Counters {
    fn add(&mut self, o: &Counters) {
        self.sessions += o.sessions;
        self.refused_over_limit += o.refused_over_limit;
        self.refused_per_address += o.refused_per_address;
        self.mta_unreachable += o.mta_unreachable;
        self.transactions += o.transactions;
        self.tracked += o.tracked;
        for (mine, theirs) in self.untracked.iter_mut().zip(o.untracked) {
            *mine += theirs;
        }
        self.untracked_no_queue_id += o.untracked_no_queue_id;
        self.mtrk_malformed += o.mtrk_malformed;
        self.refused_verbs += o.refused_verbs;
        self.accept_log_failures += o.accept_log_failures;
        self.recipients_dropped += o.recipients_dropped;
        self.normalised.bare_line_ends += o.normalised.bare_line_ends;
        self.normalised.dots_stuffed += o.normalised.dots_stuffed;
        self.desyncs += o.desyncs;
        self.timeouts += o.timeouts;
        self.tls_handshakes += o.tls_handshakes;
        self.tls_failures += o.tls_failures;
    }

    /// Counts a MAIL with MTRK that flows untracked.
    pub fn count_untracked(&mut self, why: Untracked) {
        if let Some(i) = Untracked::ALL.iter().position(|u| *u == why) {
            self.untracked[i] += 1;
        }
    }
}

/// One event loop's statistics.
pub struct GateStats {
    latency: Vec<Histogram<u64>>,
    pub counters: Counters,
}

impl Default for GateStats {
    fn default() -> Self {
        GateStats {
            latency: Timed::ALL
                .iter()
                .map(|_| Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid bounds"))
                .collect(),
            counters: Counters::default(),
        }
    }
}

fn slot(t: Timed) -> usize {
    Timed::ALL.iter().position(|k| *k == t).unwrap_or(0)
}

impl GateStats {
    /// Records one latency in nanoseconds.
    pub fn record(&mut self, what: Timed, nanos: u64) {
        self.latency[slot(what)].saturating_record(nanos.clamp(1, MAX_LATENCY_NS));
    }

    /// Adds another loop's statistics to these.
    pub fn merge(&mut self, other: &GateStats) {
        for (mine, theirs) in self.latency.iter_mut().zip(&other.latency) {
            // Same bounds on both sides: adding cannot fail.
            let _ = mine.add(theirs);
        }
        self.counters.add(&other.counters);
    }

    /// The report printed at shutdown.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "mtqpd gate: latency, microseconds (command sent -> MTA's reply relayed; \
             accept-log: lines handed over -> durable):"
        );
        latency_table(
            &mut out,
            Timed::ALL
                .iter()
                .map(|&t| (t.name(), &self.latency[slot(t)])),
        );
        let c = &self.counters;
        let untracked: Vec<String> = Untracked::ALL
            .iter()
            .zip(c.untracked)
            .map(|(why, n)| format!("{} {n}", why.name()))
            .chain([format!("no-queue-id {}", c.untracked_no_queue_id)])
            .collect();
        let _ = writeln!(
            out,
            "mtqpd gate: sessions {} refused-over-limit {} refused-per-address {} \
             mta-unreachable {}; transactions {} tracked {} untracked ({}); mtrk-malformed {}; \
             accept-log write failures {}; recipients-not-remembered {}; refused-verbs {}; \
             bare-line-ends {} dots-stuffed {}; desyncs {} timeouts {}; tls handshakes {} failed {}",
            c.sessions,
            c.refused_over_limit,
            c.refused_per_address,
            c.mta_unreachable,
            c.transactions,
            c.tracked,
            untracked.join(", "),
            c.mtrk_malformed,
            c.accept_log_failures,
            c.recipients_dropped,
            c.refused_verbs,
            c.normalised.bare_line_ends,
            c.normalised.dots_stuffed,
            c.desyncs,
            c.timeouts,
            c.tls_handshakes,
            c.tls_failures
        );
        out
    }
}
