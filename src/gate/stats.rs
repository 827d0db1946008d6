//! The gate's statistics: counters and latency histograms, one set per event loop, merged and
//! printed at shutdown like `serve`'s. The counters are [`Counter`]s behind an `Arc`: only
//! their loop writes them, the admin server ([`crate::admin`]) reads them while it runs.

use std::fmt::Write as _;
use std::io;
use std::sync::Arc;

use hdrhistogram::Histogram;

use super::smtp::mail::Untracked;
use super::upstream::MtaAddr;
use crate::stats::{latency_table, Counter};

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

/// Counters of one event loop, aligned so that two loops' counters never share a cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Counters {
    pub sessions: Counter,
    pub refused_over_limit: Counter,
    pub refused_per_address: Counter,
    pub mta_unreachable: Counter,
    /// Messages the MTA accepted (a 2xx to the end of data).
    pub transactions: Counter,
    /// Of those, tracked: their native lines were written.
    pub tracked: Counter,
    /// MAILs with MTRK that flow untracked, by [`Untracked`] reason.
    pub untracked: [Counter; Untracked::ALL.len()],
    /// Tracked messages whose queue id the MTA's reply did not give (see `--queue-id-pattern`).
    pub untracked_no_queue_id: Counter,
    /// `501` for a malformed or repeated MTRK.
    pub mtrk_malformed: Counter,
    /// Commands the gate answered `502` (unknown verbs, XCLIENT, XFORWARD, BDAT, AUTH …).
    pub refused_verbs: Counter,
    /// Native lines that could not be made durable (the 250 was relayed anyway).
    pub accept_log_failures: Counter,
    /// Accepted recipients whose ORCPT could not be remembered (over the bounds).
    pub recipients_dropped: Counter,
    /// Bare LF or bare CR line ends in message data, forwarded as CRLF.
    pub bare_line_ends: Counter,
    /// Lone `.` lines without CRLF on both sides, forwarded as `..`.
    pub dots_stuffed: Counter,
    /// Sessions ended because the MTA's output was not a reply to the command sent.
    pub desyncs: Counter,
    pub timeouts: Counter,
    pub tls_handshakes: Counter,
    pub tls_failures: Counter,
}

impl Counters {
    fn add(&self, o: &Counters) {
        let pairs = [
            (&self.sessions, &o.sessions),
            (&self.refused_over_limit, &o.refused_over_limit),
            (&self.refused_per_address, &o.refused_per_address),
            (&self.mta_unreachable, &o.mta_unreachable),
            (&self.transactions, &o.transactions),
            (&self.tracked, &o.tracked),
            (&self.untracked_no_queue_id, &o.untracked_no_queue_id),
            (&self.mtrk_malformed, &o.mtrk_malformed),
            (&self.refused_verbs, &o.refused_verbs),
            (&self.accept_log_failures, &o.accept_log_failures),
            (&self.recipients_dropped, &o.recipients_dropped),
            (&self.bare_line_ends, &o.bare_line_ends),
            (&self.dots_stuffed, &o.dots_stuffed),
            (&self.desyncs, &o.desyncs),
            (&self.timeouts, &o.timeouts),
            (&self.tls_handshakes, &o.tls_handshakes),
            (&self.tls_failures, &o.tls_failures),
        ];
        for (mine, theirs) in pairs
            .into_iter()
            .chain(self.untracked.iter().zip(&o.untracked))
        {
            mine.add(theirs.get());
        }
    }

    /// Counts a session told 421 because the MTA could not be reached, and says why on the
    /// first of this loop's and every thousandth (an MTA that is down fails every session).
    pub fn count_mta_unreachable(&self, mta: &MtaAddr, e: &io::Error) {
        self.mta_unreachable.add(1);
        let so_far = self.mta_unreachable.get();
        if so_far == 1 || so_far % 1000 == 0 {
            let why = match (mta, e.kind()) {
                (MtaAddr::Unix(_), io::ErrorKind::WouldBlock) => {
                    "its socket's listen backlog is full (every smtpd busy)".to_string()
                }
                _ => e.to_string(),
            };
            eprintln!(
                "mtqpd gate: cannot reach the MTA at {mta}: {why} ({so_far} session(s) told \
                 421 by this thread so far)"
            );
        }
    }

    /// Counts a MAIL with MTRK that flows untracked.
    pub fn count_untracked(&self, why: Untracked) {
        if let Some(i) = Untracked::ALL.iter().position(|u| *u == why) {
            self.untracked[i].add(1);
        }
    }
}

/// One event loop's statistics.
pub struct GateStats {
    latency: Vec<Histogram<u64>>,
    pub counters: Arc<Counters>,
}

impl Default for GateStats {
    fn default() -> Self {
        GateStats {
            latency: Timed::ALL
                .iter()
                .map(|_| Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid bounds"))
                .collect(),
            counters: Arc::default(),
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
            .zip(&c.untracked)
            .map(|(why, n)| format!("{} {}", why.name(), n.get()))
            .chain([format!("no-queue-id {}", c.untracked_no_queue_id.get())])
            .collect();
        let _ = writeln!(
            out,
            "mtqpd gate: sessions {} refused-over-limit {} refused-per-address {} \
             mta-unreachable {}; transactions {} tracked {} untracked ({}); mtrk-malformed {}; \
             accept-log write failures {}; recipients-not-remembered {}; refused-verbs {}; \
             bare-line-ends {} dots-stuffed {}; desyncs {} timeouts {}; tls handshakes {} failed {}",
            c.sessions.get(),
            c.refused_over_limit.get(),
            c.refused_per_address.get(),
            c.mta_unreachable.get(),
            c.transactions.get(),
            c.tracked.get(),
            untracked.join(", "),
            c.mtrk_malformed.get(),
            c.accept_log_failures.get(),
            c.recipients_dropped.get(),
            c.refused_verbs.get(),
            c.bare_line_ends.get(),
            c.dots_stuffed.get(),
            c.desyncs.get(),
            c.timeouts.get(),
            c.tls_handshakes.get(),
            c.tls_failures.get()
        );
        out
    }
}
