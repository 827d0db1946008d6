//! The percentile-spectrum text format (`.hgrm`) of HdrHistogram's
//! `outputPercentileDistribution`, as wrk2 prints it and the HdrHistogram plotter reads it:
//! a header, one line per percentile tick (5 ticks per half distance to 100%), the 100% line
//! without its last column, and the mean / max / buckets footer.

use std::fmt::Write;

use hdrhistogram::Histogram;

/// Ticks per half distance, as wrk2 and the Java default use.
pub const TICKS: u32 = 5;

/// Formats `h` with values divided by `scale` (e.g. microseconds recorded, `1000.0` for
/// milliseconds printed, as wrk2 does).
pub fn format(h: &Histogram<u64>, scale: f64) -> String {
    let digits = usize::from(h.sigfig());
    let mut out = String::new();
    let _ = write!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(TICKS) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / scale;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:12.digits$} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{value:12.digits$} {q:2.12} {total:10}");
            }
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.digits$}, StdDeviation   = {:12.digits$}]",
        h.mean() / scale,
        h.stdev() / scale
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.digits$}, Total count    = {:12}]",
        h.max() as f64 / scale,
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_buckets(h.sigfig())
    );
    out
}

/// The sub-bucket count HdrHistogram derives from the significant digits (2048 for 3).
fn sub_buckets(sigfig: u8) -> u32 {
    let largest = 2 * 10u32.pow(u32::from(sigfig));
    largest.next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform() -> Histogram<u64> {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for v in 1..=10_000u64 {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn layout_matches_hdrhistogram() {
        let text = format(&uniform(), 1000.0);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines[1], "");
        // The first tick is the lowest value at percentile 0.
        assert_eq!(
            lines[2],
            "       0.001 0.000000000000          1           1.00"
        );
        // 50%: the highest value equivalent to the 5000th (5 ms at 3 digits: 5.003 ms), and
        // 2 ticks per 10% below 50%.
        assert!(lines.contains(&"       5.003 0.500000000000       5003           2.00"));
        assert!(lines.contains(&"       1.000 0.100000000000       1000           1.11"));
        // The 100% line has no last column.
        let last = lines.iter().rev().find(|l| !l.starts_with('#')).unwrap();
        assert_eq!(*last, "      10.007 1.000000000000      10000");
        let n = lines.len();
        assert_eq!(
            lines[n - 3],
            "#[Mean    =        5.001, StdDeviation   =        2.887]"
        );
        assert_eq!(
            lines[n - 2],
            "#[Max     =       10.007, Total count    =        10000]"
        );
        assert!(lines[n - 1].starts_with("#[Buckets = "));
        assert!(lines[n - 1].ends_with("SubBuckets     =         2048]"));
    }

    #[test]
    fn percentiles_and_counts_only_grow() {
        let text = format(&uniform(), 1.0);
        let rows: Vec<(f64, f64, u64)> = text
            .lines()
            .skip(2)
            .take_while(|l| !l.starts_with('#'))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (
                    f[0].parse().unwrap(),
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                )
            })
            .collect();
        assert!(rows.len() > 50);
        for w in rows.windows(2) {
            assert!(w[1].0 >= w[0].0 && w[1].1 > w[0].1 && w[1].2 >= w[0].2);
        }
        assert_eq!(rows.last().unwrap().2, 10_000);
    }

    #[test]
    fn empty_histogram_has_only_header_and_footer() {
        let h = Histogram::<u64>::new_with_bounds(1, 1000, 3).unwrap();
        let text = format(&h, 1.0);
        assert_eq!(text.lines().count(), 5);
        assert!(text.contains("Total count    =            0]"));
    }
}
