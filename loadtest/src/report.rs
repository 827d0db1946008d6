//! The final report, as text for people and as JSON for scripts (hand-written: a flat object
//! of numbers and a few small nested ones).

use std::fmt::Write;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::check::{Kind, Wrong};
use crate::worker::Stats;
use crate::workload::Mix;

/// What was asked for, and what happened.
pub struct Report<'a> {
    pub addr: &'a str,
    pub connections: u64,
    pub threads: u64,
    pub pipeline: usize,
    pub rate: u64,
    pub duration: Duration,
    pub warmup: Duration,
    pub mix: Mix,
    pub tls: bool,
    pub stats: &'a Stats,
}

/// The percentiles of the report, as (label, quantile).
const QUANTILES: [(&str, f64); 5] = [
    ("p50", 0.5),
    ("p90", 0.9),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
];

impl Report<'_> {
    pub fn achieved(&self) -> f64 {
        self.stats.answered_total() as f64 / self.duration.as_secs_f64()
    }

    /// True when an open-loop run did not keep to its schedule: requests never sent, or
    /// fewer answers than requested (more than 1% short).
    pub fn behind(&self) -> bool {
        self.rate > 0 && (self.stats.unsent > 0 || self.achieved() < 0.99 * self.rate as f64)
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn bytes(n: f64) -> String {
    if n >= 1e9 {
        format!("{:.2} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.2} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} kB", n / 1e3)
    } else {
        format!("{n:.0} B")
    }
}

fn latency_row(out: &mut String, label: &str, h: &Histogram<u64>) {
    let _ = write!(out, "    {label:<16}");
    if h.is_empty() {
        let _ = writeln!(out, " (no answers)");
        return;
    }
    for (_, q) in QUANTILES {
        let _ = write!(out, " {:>9.3}", ms(h.value_at_quantile(q)));
    }
    let _ = writeln!(out, " {:>9.3} {:>9.3}", ms(h.max()), h.mean() / 1000.0);
}

/// The report for people.
pub fn text(r: &Report) -> String {
    let s = r.stats;
    let secs = r.duration.as_secs_f64();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "mtqp-load run: {}{}, {} connections on {} thread{}, pipeline {}, mix {}",
        r.addr,
        if r.tls { " (STARTTLS)" } else { "" },
        r.connections,
        r.threads,
        if r.threads == 1 { "" } else { "s" },
        r.pipeline,
        r.mix
    );
    if r.rate > 0 {
        let _ = writeln!(
            out,
            "  {secs:.1} s measured after {:.1} s of warm-up; open loop, latency from each \
             request's scheduled send time",
            r.warmup.as_secs_f64()
        );
    } else {
        let _ = writeln!(
            out,
            "  {secs:.1} s measured after {:.1} s of warm-up; closed loop (--rate 0): each \
             window refilled as answers come, latency from the actual send",
            r.warmup.as_secs_f64()
        );
    }
    let requested = if r.rate > 0 {
        format!("{}/s", r.rate)
    } else {
        "as fast as possible".into()
    };
    let _ = writeln!(
        out,
        "  rate       requested {requested}, achieved {:.1}/s (sent {}, answered {})",
        r.achieved(),
        s.sent,
        s.answered_total()
    );
    let kinds: Vec<String> = Kind::ALL
        .iter()
        .filter(|k| r.mix.weight(**k) > 0)
        .map(|k| format!("{} {}", k.name(), s.answered[k.index()]))
        .collect();
    let _ = writeln!(out, "  answered   {}", kinds.join(", "));
    let errors = s.error_total();
    if errors == 0 {
        let _ = writeln!(out, "  errors     none: every answer checked and right");
    } else {
        let _ = writeln!(out, "  errors     {errors} WRONG (the run fails)");
        for w in Wrong::ALL {
            let n = s.errors[w.index()];
            if n > 0 {
                let _ = writeln!(out, "    {:<16} {n}", w.name());
            }
        }
        for e in &s.samples {
            let _ = writeln!(
                out,
                "    e.g. {} ({}): {:?} -> {:?}",
                e.wrong.name(),
                e.kind.name(),
                e.request,
                e.answer
            );
        }
    }
    let _ = writeln!(
        out,
        "  latency (ms)          p50       p90       p99     p99.9    p99.99       max      mean"
    );
    if r.rate > 0 {
        latency_row(&mut out, "from scheduled", &s.intended);
    }
    latency_row(&mut out, "from sent", &s.service);
    let answers = s.answered_total().max(1) as f64;
    let _ = writeln!(
        out,
        "  bytes      received {} ({}/s, {:.0} per answer), sent {} ({}/s)",
        bytes(s.bytes_in as f64),
        bytes(s.bytes_in as f64 / secs),
        s.bytes_in as f64 / answers,
        bytes(s.bytes_out as f64),
        bytes(s.bytes_out as f64 / secs),
    );
    if r.rate > 0 {
        let lag = &s.driver_lag;
        let _ = writeln!(
            out,
            "  schedule   driver's own send lag p99 {:.3} ms, max {:.3} ms; {} requests waited \
             for a full window (longest {:.3} ms); {} due and never sent",
            ms(lag.value_at_quantile(0.99)),
            ms(lag.max()),
            s.held,
            s.held_max as f64 / 1e6,
            s.unsent
        );
        if r.behind() {
            let _ = writeln!(
                out,
                "  WARNING    behind schedule: achieved {:.1}/s of the {}/s requested{}; the \
                 rate was not lowered, the shortfall is the server's (full windows) or the \
                 driver's (send lag, or more --threads)",
                r.achieved(),
                r.rate,
                if s.unsent > 0 {
                    format!(", {} requests never sent", s.unsent)
                } else {
                    String::new()
                }
            );
        }
    }
    if s.conns_lost > 0 {
        let _ = writeln!(out, "  connections lost: {}", s.conns_lost);
    }
    out
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_latency(out: &mut String, key: &str, h: &Histogram<u64>) {
    let _ = write!(out, "  \"{key}\": {{");
    for (label, q) in QUANTILES {
        let _ = write!(out, "\"{label}\": {}, ", h.value_at_quantile(q));
    }
    let _ = writeln!(
        out,
        "\"max\": {}, \"mean\": {:.1}, \"count\": {}}},",
        h.max(),
        h.mean(),
        h.len()
    );
}

/// The report for scripts: one object; latencies in microseconds.
pub fn json(r: &Report) -> String {
    let s = r.stats;
    let mut out = String::from("{\n");
    out.push_str("  \"addr\": ");
    json_str(&mut out, r.addr);
    out.push_str(",\n  \"mix\": ");
    json_str(&mut out, &r.mix.to_string());
    out.push_str(",\n");
    let nums: [(&str, String); 14] = [
        ("tls", r.tls.to_string()),
        ("connections", r.connections.to_string()),
        ("threads", r.threads.to_string()),
        ("pipeline", r.pipeline.to_string()),
        ("duration_s", format!("{:.3}", r.duration.as_secs_f64())),
        ("warmup_s", format!("{:.3}", r.warmup.as_secs_f64())),
        ("rate_requested", r.rate.to_string()),
        ("rate_achieved", format!("{:.1}", r.achieved())),
        ("sent", s.sent.to_string()),
        ("answered", s.answered_total().to_string()),
        ("errors", s.error_total().to_string()),
        ("bytes_received", s.bytes_in.to_string()),
        ("bytes_sent", s.bytes_out.to_string()),
        ("unsent", s.unsent.to_string()),
    ];
    for (k, v) in nums {
        let _ = writeln!(out, "  \"{k}\": {v},");
    }
    let _ = writeln!(out, "  \"held_by_window\": {},", s.held);
    let _ = writeln!(out, "  \"held_max_us\": {},", s.held_max / 1000);
    let _ = writeln!(
        out,
        "  \"driver_lag_p99_us\": {},",
        s.driver_lag.value_at_quantile(0.99)
    );
    let _ = writeln!(out, "  \"driver_lag_max_us\": {},", s.driver_lag.max());
    let _ = writeln!(out, "  \"connections_lost\": {},", s.conns_lost);
    let _ = writeln!(out, "  \"behind_schedule\": {},", r.behind());
    out.push_str("  \"answered_by_kind\": {");
    let kinds: Vec<String> = Kind::ALL
        .iter()
        .map(|k| format!("\"{}\": {}", k.name(), s.answered[k.index()]))
        .collect();
    out.push_str(&kinds.join(", "));
    out.push_str("},\n  \"errors_by_kind\": {");
    let errs: Vec<String> = Wrong::ALL
        .iter()
        .map(|w| format!("\"{}\": {}", w.name(), s.errors[w.index()]))
        .collect();
    out.push_str(&errs.join(", "));
    out.push_str("},\n");
    json_latency(&mut out, "latency_scheduled_us", &s.intended);
    json_latency(&mut out, "latency_sent_us", &s.service);
    out.push_str("  \"error_samples\": [");
    for (i, e) in s.samples.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str("{\"error\": ");
        json_str(&mut out, e.wrong.name());
        out.push_str(", \"kind\": ");
        json_str(&mut out, e.kind.name());
        out.push_str(", \"request\": ");
        json_str(&mut out, &e.request);
        out.push_str(", \"answer\": ");
        json_str(&mut out, &e.answer);
        out.push('}');
    }
    let _ = writeln!(out, "],\n  \"passed\": {}\n}}", s.error_total() == 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::Sample;

    fn stats() -> Stats {
        let mut s = Stats::new();
        s.answered = [900, 50, 50, 0];
        s.sent = 1000;
        for v in 1..=1000 {
            s.intended.record(v).unwrap();
            s.service.record(v / 2 + 1).unwrap();
        }
        s.bytes_in = 450_000;
        s
    }

    fn report(s: &Stats, rate: u64) -> Report<'_> {
        Report {
            addr: "127.0.0.1:1038",
            connections: 4,
            threads: 1,
            pipeline: 2,
            rate,
            duration: Duration::from_secs(1),
            warmup: Duration::from_secs(1),
            mix: Mix([90, 5, 5, 0]),
            tls: false,
            stats: s,
        }
    }

    #[test]
    fn text_shows_rates_and_both_clocks() {
        let s = stats();
        let t = text(&report(&s, 1000));
        assert!(t.contains("requested 1000/s, achieved 1000.0/s (sent 1000, answered 1000)"));
        assert!(t.contains("answered   hit 900, miss 50, badsecret 50\n"));
        assert!(t.contains("errors     none"));
        assert!(t.contains("from scheduled"));
        assert!(t.contains("from sent"));
        assert!(!t.contains("WARNING"));
        let t = text(&report(&s, 2000));
        assert!(t.contains("WARNING    behind schedule: achieved 1000.0/s of the 2000/s"));
    }

    #[test]
    fn errors_are_listed_with_samples() {
        let mut s = stats();
        s.errors[Wrong::Truncated.index()] = 3;
        s.samples.push(Sample {
            wrong: Wrong::Truncated,
            kind: Kind::Hit,
            request: "TRACK <a@b> x\"y".into(),
            answer: "+OK+ Tracking information follows".into(),
        });
        let r = report(&s, 1000);
        let t = text(&r);
        assert!(t.contains("errors     3 WRONG"));
        assert!(t.contains("truncated-body   3"));
        let j = json(&r);
        assert!(j.contains("\"errors\": 3,"));
        assert!(j.contains("\"truncated-body\": 3"));
        assert!(j.contains(r#""request": "TRACK <a@b> x\"y""#));
        assert!(j.contains("\"passed\": false"));
    }

    #[test]
    fn json_has_the_numbers() {
        let s = stats();
        let j = json(&report(&s, 1000));
        assert!(j.starts_with("{\n") && j.ends_with("}\n"));
        for want in [
            "\"rate_requested\": 1000,",
            "\"rate_achieved\": 1000.0,",
            "\"answered\": 1000,",
            "\"errors\": 0,",
            "\"p50\": 500,",
            "\"passed\": true",
        ] {
            assert!(j.contains(want), "{want} in {j}");
        }
        // Balanced braces and brackets: a cheap well-formedness check.
        assert_eq!(j.matches('{').count(), j.matches('}').count());
        assert_eq!(j.matches('[').count(), j.matches(']').count());
    }
}
