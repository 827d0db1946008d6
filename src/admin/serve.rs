//! `mtqpd serve`'s admin pages: the server's, the ingest's and the process's metrics, and the
//! health rule of `/healthz` (ingest caught up and not lagging more than
//! `--healthz-max-lag`). Every metric is listed in docs/metrics.md.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::metrics::{family, histogram, labelled, resident_memory, sample, single, Kind};
use super::{Health, Pages};
use crate::index::Index;
use crate::ingest::{IngestStats, LineOrigin, LineOutcome};
use crate::protocol::command::{BadCommand, CommandKind};
use crate::server::ServerView;
use crate::stats::{slot, Counter, Counters, BUCKET_BOUNDS_NS};

/// Picks one counter out of a worker's.
type Pick = super::metrics::Pick<Counters>;

/// What `serve`'s admin endpoint reads.
pub struct ServePages {
    pub server: ServerView,
    pub ingest: Arc<IngestStats>,
    pub index: Arc<Index>,
    /// `--healthz-max-lag`.
    pub max_lag: Duration,
}

/// The `/healthz` rule: healthy once ingest has caught up with its logs, unless it has since
/// fallen behind by more than `max_lag`.
pub fn health(caught_up: bool, lag: Duration, max_lag: Duration) -> Health {
    let lag_s = lag.as_secs_f64();
    if !caught_up {
        return Health {
            ok: false,
            reason: format!("ingest has not caught up yet ({lag_s:.3}s since start)"),
        };
    }
    if lag > max_lag {
        return Health {
            ok: false,
            reason: format!(
                "ingest lags {lag_s:.3}s, more than --healthz-max-lag {}s",
                max_lag.as_secs_f64()
            ),
        };
    }
    Health {
        ok: true,
        reason: format!("ok: ingest caught up, lag {lag_s:.3}s"),
    }
}

/// A command kind's label value.
fn command_label(kind: CommandKind) -> &'static str {
    match kind {
        CommandKind::Track => "track",
        CommandKind::Starttls => "starttls",
        CommandKind::Comment => "comment",
        CommandKind::Quit => "quit",
        CommandKind::Bad => "bad",
    }
}

/// A bad command's reason as a label value (the counters' name with `_` for `-`).
fn bad_label(why: BadCommand) -> String {
    why.name().replace('-', "_")
}

impl ServePages {
    /// The sum of one counter over the workers.
    fn sum(&self, f: impl Fn(&Counters) -> &Counter) -> u64 {
        self.server
            .workers
            .iter()
            .map(|w| f(&w.counters).get())
            .sum()
    }

    /// A family of counters with one label ([`labelled`]), summed over the workers.
    fn labelled(&self, out: &mut String, meta: (&str, &str, &str), rows: &[(&str, Pick)]) {
        labelled(out, meta, rows, |pick| self.sum(pick));
    }

    fn commands(&self, out: &mut String) {
        let name = "mtqpd_commands_total";
        family(
            out,
            name,
            Kind::Counter,
            "MTQP commands answered, by command and result.",
        );
        let fixed: [(&str, &str, Pick); 7] = [
            ("track", "hit", |c| &c.track_hits),
            ("track", "miss", |c| &c.track_misses),
            ("track", "tls_required", |c| &c.track_tls_required),
            ("starttls", "accepted", |c| &c.starttls_accepted),
            ("starttls", "refused", |c| &c.starttls_refused),
            ("comment", "ok", |c| &c.comments),
            ("quit", "ok", |c| &c.quits),
        ];
        for (command, result, f) in fixed {
            let n = self.sum(f);
            sample(out, name, &[("command", command), ("result", result)], n);
        }
        for (i, why) in BadCommand::ALL.iter().enumerate() {
            let n = self.sum(|c| &c.bad[i]);
            let label = bad_label(*why);
            sample(out, name, &[("command", "bad"), ("result", &label)], n);
        }
    }

    fn latency(&self, out: &mut String) {
        let name = "mtqpd_command_duration_seconds";
        family(
            out,
            name,
            Kind::Histogram,
            "Time from reading a command to writing the last byte of its answer.",
        );
        let bounds: Vec<f64> = BUCKET_BOUNDS_NS.iter().map(|&b| b as f64 / 1e9).collect();
        for kind in CommandKind::ALL {
            let s = slot(kind);
            let mut counts = [0u64; BUCKET_BOUNDS_NS.len() + 1];
            let mut sum_ns = 0u64;
            for w in &self.server.workers {
                for (c, b) in counts.iter_mut().zip(&w.buckets.counts[s]) {
                    *c += b.get();
                }
                sum_ns += w.buckets.sum_ns[s].get();
            }
            let labels = [("command", command_label(kind))];
            histogram(out, name, &labels, &bounds, &counts, sum_ns as f64 / 1e9);
        }
    }

    fn connections(&self, out: &mut String) {
        single(
            out,
            "mtqpd_connections",
            Kind::Gauge,
            "MTQP connections open now.",
            self.server.open_connections(),
        );
        self.labelled(
            out,
            (
                "mtqpd_connections_total",
                "result",
                "MTQP connections accepted, by what became of them.",
            ),
            &[
                ("admitted", |c| &c.admitted),
                ("refused_over_limit", |c| &c.refused_over_limit),
                ("refused_per_address", |c| &c.refused_per_address),
                ("accept_error", |c| &c.accept_errors),
            ],
        );
        self.labelled(
            out,
            (
                "mtqpd_connections_closed_total",
                "reason",
                "MTQP connections the server closed, by reason.",
            ),
            &[
                ("idle", |c| &c.closed_idle),
                ("handshake_timeout", |c| &c.closed_handshake_timeout),
                ("too_many_errors", |c| &c.closed_too_many_errors),
            ],
        );
        self.labelled(
            out,
            (
                "mtqpd_tls_handshakes_total",
                "result",
                "TLS handshakes after STARTTLS, by result.",
            ),
            &[
                ("ok", |c| &c.tls_handshakes),
                ("failed", |c| &c.tls_failures),
                ("timeout", |c| &c.closed_handshake_timeout),
            ],
        );
        single(
            out,
            "mtqpd_sent_bytes_total",
            Kind::Counter,
            "Octets written to MTQP clients.",
            self.sum(|c| &c.bytes_out),
        );
    }

    fn ingest(&self, out: &mut String) {
        let s = &self.ingest;
        let name = "mtqpd_ingest_lines_total";
        family(
            out,
            name,
            Kind::Counter,
            "Log lines read, by format and outcome.",
        );
        for (origin, counts) in LineOrigin::ALL.iter().zip(&s.by_origin) {
            for (outcome, n) in LineOutcome::ALL.iter().zip(counts) {
                let labels = [("format", origin.name()), ("outcome", outcome.name())];
                sample(out, name, &labels, n.load(Ordering::Relaxed));
            }
        }
        let counters = [
            (
                "mtqpd_ingest_lines_too_long_total",
                "Log lines longer than 64 KiB, skipped.",
                &s.too_long,
            ),
            (
                "mtqpd_ingest_rotations_total",
                "Log files followed to a new file after rotation.",
                &s.rotations,
            ),
            (
                "mtqpd_ingest_truncations_total",
                "Log files found truncated and read again from their start.",
                &s.truncations,
            ),
            (
                "mtqpd_ingest_read_errors_total",
                "Failed reads of log files.",
                &s.read_errors,
            ),
        ];
        for (name, help, n) in counters {
            single(out, name, Kind::Counter, help, n.load(Ordering::Relaxed));
        }
        single(
            out,
            "mtqpd_ingest_caught_up",
            Kind::Gauge,
            "1 once every log has been read to its end for the first time.",
            u8::from(s.caught_up.load(Ordering::Relaxed)),
        );
        single(
            out,
            "mtqpd_ingest_lag_seconds",
            Kind::Gauge,
            "How long log input has been waiting to be applied; 0 when caught up.",
            s.lag().as_secs_f64(),
        );
        single(
            out,
            "mtqpd_records",
            Kind::Gauge,
            "Tracking records in the index.",
            self.index.len(),
        );
    }
}

impl Pages for ServePages {
    fn metrics(&self, out: &mut String) {
        self.commands(out);
        self.latency(out);
        self.connections(out);
        self.ingest(out);
        resident_memory(out);
    }

    fn health(&self) -> Health {
        health(
            self.ingest.caught_up.load(Ordering::Relaxed),
            self.ingest.lag(),
            self.max_lag,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_only_when_caught_up_and_within_the_lag() {
        let max = Duration::from_secs(60);
        assert!(!health(false, Duration::ZERO, max).ok);
        assert!(health(true, Duration::ZERO, max).ok);
        assert!(health(true, max, max).ok);
        let late = health(true, Duration::from_secs(61), max);
        assert_eq!(
            late,
            Health {
                ok: false,
                reason: "ingest lags 61.000s, more than --healthz-max-lag 60s".into()
            }
        );
    }
}
