//! Writing Prometheus' text exposition format (version 0.0.4): a `# HELP` and `# TYPE` line per
//! family, then its samples. Label values here are our own fixed names, so they need no
//! escaping beyond what [`escape`] does for safety.

use std::fmt::Write as _;

use crate::stats::Counter;

/// A metric family's type.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Writes a family's `# HELP` and `# TYPE` lines.
pub fn family(out: &mut String, name: &str, kind: Kind, help: &str) {
    let kind = match kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Histogram => "histogram",
    };
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes one sample: `name{labels} value`.
pub fn sample(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    value: impl std::fmt::Display,
) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// A family with one sample and no labels.
pub fn single(out: &mut String, name: &str, kind: Kind, help: &str, value: impl std::fmt::Display) {
    family(out, name, kind, help);
    sample(out, name, &[], value);
}

/// Picks one counter out of a worker's counters `C`.
pub type Pick<C> = fn(&C) -> &Counter;

/// A family of counters with one label, one sample per `(label value, counter)`: `sum` adds
/// the counter `pick` chooses over the workers.
pub fn labelled<C>(
    out: &mut String,
    (name, label, help): (&str, &str, &str),
    rows: &[(&str, Pick<C>)],
    sum: impl Fn(Pick<C>) -> u64,
) {
    family(out, name, Kind::Counter, help);
    for (value, pick) in rows {
        sample(out, name, &[(label, value)], sum(*pick));
    }
}

/// One histogram's samples: cumulative `_bucket`s (bounds in seconds, then `+Inf`), `_sum`
/// and `_count`. `counts` has one count per bound plus the one above them all, not cumulative.
pub fn histogram(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    bounds_seconds: &[f64],
    counts: &[u64],
    sum_seconds: f64,
) {
    let bucket = format!("{name}_bucket");
    let mut total = 0;
    for (i, count) in counts.iter().enumerate() {
        total += count;
        let le = bounds_seconds
            .get(i)
            .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
        let mut with_le = labels.to_vec();
        with_le.push(("le", &le));
        sample(out, &bucket, &with_le, total);
    }
    sample(out, &format!("{name}_sum"), labels, sum_seconds);
    sample(out, &format!("{name}_count"), labels, total);
}

/// A label value with `\`, `"` and line feeds escaped as the format requires.
fn escape(v: &str) -> std::borrow::Cow<'_, str> {
    if v.contains(['\\', '"', '\n']) {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
            .into()
    } else {
        v.into()
    }
}

/// This process's resident memory in bytes (`VmRSS` of /proc/self/status), None where that
/// cannot be read.
pub fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Writes `mtqpd_resident_memory_bytes` when it can be read.
pub fn resident_memory(out: &mut String) {
    if let Some(bytes) = resident_memory_bytes() {
        single(
            out,
            "mtqpd_resident_memory_bytes",
            Kind::Gauge,
            "Resident memory of the process (VmRSS).",
            bytes,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_end_with_inf() {
        let mut out = String::new();
        histogram(
            &mut out,
            "h",
            &[("command", "track")],
            &[0.001, 0.5],
            &[2, 0, 1],
            1.25,
        );
        assert_eq!(
            out,
            "h_bucket{command=\"track\",le=\"0.001\"} 2\n\
             h_bucket{command=\"track\",le=\"0.5\"} 2\n\
             h_bucket{command=\"track\",le=\"+Inf\"} 3\n\
             h_sum{command=\"track\"} 1.25\n\
             h_count{command=\"track\"} 3\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        sample(&mut out, "m", &[("a", "x\"y\\z\n")], 1);
        assert_eq!(out, "m{a=\"x\\\"y\\\\z\\n\"} 1\n");
    }

    #[test]
    fn resident_memory_is_read_on_linux() {
        assert!(resident_memory_bytes().is_some_and(|b| b > 0));
    }
}
