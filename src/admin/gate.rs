//! `mtqpd gate`'s admin pages: its sessions, transactions and accept-log failures (every
//! metric is listed in docs/metrics.md). The gate has no ingest to wait for: `/healthz` says
//! 200 while it runs.

use super::metrics::{family, labelled, resident_memory, sample, single, Kind};
use super::{Health, Pages};
use crate::gate::smtp::mail::Untracked;
use crate::gate::stats::Counters;
use crate::gate::GateView;
use crate::stats::Counter;

/// Picks one counter out of a worker's.
type Pick = super::metrics::Pick<Counters>;

/// What the gate's admin endpoint reads.
pub struct GatePages {
    pub gate: GateView,
}

impl GatePages {
    fn sum(&self, f: impl Fn(&Counters) -> &Counter) -> u64 {
        self.gate.workers.iter().map(|w| f(w).get()).sum()
    }

    /// A family of counters with one label ([`labelled`]), summed over the workers.
    fn labelled(&self, out: &mut String, meta: (&str, &str, &str), rows: &[(&str, Pick)]) {
        labelled(out, meta, rows, |pick| self.sum(pick));
    }
}

impl Pages for GatePages {
    fn metrics(&self, out: &mut String) {
        single(
            out,
            "mtqpd_gate_sessions",
            Kind::Gauge,
            "SMTP sessions open now.",
            self.gate.open_sessions(),
        );
        self.labelled(
            out,
            (
                "mtqpd_gate_sessions_total",
                "result",
                "SMTP sessions accepted, by whether they were admitted.",
            ),
            &[
                ("admitted", |c| &c.sessions),
                ("refused_over_limit", |c| &c.refused_over_limit),
                ("refused_per_address", |c| &c.refused_per_address),
            ],
        );
        single(
            out,
            "mtqpd_gate_mta_unreachable_total",
            Kind::Counter,
            "Admitted sessions told 421 because the MTA could not be reached.",
            self.sum(|c| &c.mta_unreachable),
        );
        let name = "mtqpd_gate_transactions_total";
        family(
            out,
            name,
            Kind::Counter,
            "Messages the MTA accepted, by whether their native lines were made durable.",
        );
        let tracked = self.sum(|c| &c.tracked);
        // A tracked message counts as accepted before its lines are durable: for that moment
        // it is neither.
        let untracked = self.sum(|c| &c.transactions).saturating_sub(tracked);
        sample(out, name, &[("tracking", "tracked")], tracked);
        sample(out, name, &[("tracking", "untracked")], untracked);
        let name = "mtqpd_gate_untracked_total";
        family(
            out,
            name,
            Kind::Counter,
            "MAILs with MTRK, or their messages, that flow untracked, by reason.",
        );
        for (i, why) in Untracked::ALL.iter().enumerate() {
            let reason = why.name().replace('-', "_");
            sample(
                out,
                name,
                &[("reason", &reason)],
                self.sum(|c| &c.untracked[i]),
            );
        }
        let no_queue_id = self.sum(|c| &c.untracked_no_queue_id);
        sample(out, name, &[("reason", "no_queue_id")], no_queue_id);
        single(
            out,
            "mtqpd_gate_accept_log_failures_total",
            Kind::Counter,
            "Tracked messages whose native lines could not be made durable (relayed anyway).",
            self.sum(|c| &c.accept_log_failures),
        );
        single(
            out,
            "mtqpd_gate_mtrk_malformed_total",
            Kind::Counter,
            "MAILs refused 501 for a malformed or repeated MTRK.",
            self.sum(|c| &c.mtrk_malformed),
        );
        self.labelled(
            out,
            (
                "mtqpd_gate_tls_handshakes_total",
                "result",
                "TLS handshakes after STARTTLS, by result.",
            ),
            &[
                ("ok", |c| &c.tls_handshakes),
                ("failed", |c| &c.tls_failures),
            ],
        );
        self.labelled(
            out,
            (
                "mtqpd_gate_sessions_ended_total",
                "reason",
                "Sessions the gate ended, by reason.",
            ),
            &[("desync", |c| &c.desyncs), ("timeout", |c| &c.timeouts)],
        );
        resident_memory(out);
    }

    fn health(&self) -> Health {
        Health {
            ok: true,
            reason: "ok: the gate is running".into(),
        }
    }
}
