//! RSS per tracked record: a server on 100,000 synthetic two-recipient messages against one on
//! an empty log. Run: `cargo bench --bench memory` (MTQPD_BENCH_RECORDS to change the count).

mod common;

fn main() {
    let n: usize = std::env::var("MTQPD_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let empty = common::start("memory-empty", 0, None);
    let base = common::rss_kib(empty.child.id());
    drop(empty);
    let full = common::start("memory-full", n, None);
    let rss = common::rss_kib(full.child.id());
    println!("records:           {n}");
    println!("RSS empty server:  {base} KiB");
    println!("RSS with records:  {rss} KiB");
    println!(
        "bytes per record:  {:.0}",
        (rss.saturating_sub(base) * 1024) as f64 / n as f64
    );
}
