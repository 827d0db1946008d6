//! Ingest throughput on one core: `mtqpd serve`'s ingest thread (follow, parse, correlate,
//! render, index) over a whole log, timed from its start until it has caught up with the log.
//! Run: `cargo bench --bench ingest`. By default it generates a 200,000-message Postfix log
//! with `mtqp-load gen`; set MTQPD_BENCH_LOG=PATH (and MTQPD_BENCH_FORMAT=native|postfix) to
//! measure another log, e.g. a 1 GB one, and MTQPD_BENCH_HOST=NAME or `*` to read it as
//! `--log FORMAT:PATH,host=…` does (`*`: each line's host, for `mtqp-load gen --hosts N`).
//! MTQPD_BENCH_REPLAY=1 times `mtqpd ingest-check`'s offline replay instead: it also keeps
//! that command's audit of every recipient named (memory that grows with the log, which
//! `serve` never keeps), and reports what the tracker holds at the end.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mtqpd::index::message::Retention;
use mtqpd::index::Index;
use mtqpd::ingest::native::NativeTags;
use mtqpd::ingest::timezone::Zone;
use mtqpd::ingest::{replay, spawn, IngestConfig, LogSource};

/// The allocator of the `mtqpd` binary (src/main.rs), so that this measures what serve does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user and system) this process has used: on a machine shared with other work
/// the wall time of a run varies with what else runs on its core, its CPU time much less.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime, fields 14 and 15 of proc(5), in clock ticks of 1/100 s on Linux.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

fn main() {
    let format = std::env::var("MTQPD_BENCH_FORMAT").unwrap_or_else(|_| "postfix".into());
    let log = match std::env::var_os("MTQPD_BENCH_LOG") {
        Some(p) => PathBuf::from(p),
        None => {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
            let log = dir.join(format!("bench-{format}.log"));
            if !log.exists() {
                let ok = std::process::Command::new(env!("CARGO"))
                    .args([
                        "run",
                        "--quiet",
                        "--release",
                        "-p",
                        "mtqp-load",
                        "--",
                        "gen",
                        "--messages",
                        "200000",
                    ])
                    .args(["--format", &format, "--out"])
                    .arg(&log)
                    .arg("--secrets")
                    .arg(dir.join(format!("bench-{format}.secrets")))
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "mtqp-load gen failed");
            }
            log
        }
    };
    let host = std::env::var("MTQPD_BENCH_HOST")
        .map(|h| format!(",host={h}"))
        .unwrap_or_default();
    let offline = std::env::var_os("MTQPD_BENCH_REPLAY").is_some_and(|v| v == "1");
    let bytes = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let config = IngestConfig {
        sources: vec![format!("{format}:{}{host}", log.display())
            .parse::<LogSource>()
            .expect("log")],
        reporting_mta: "hub.example".into(),
        // A log kept from an earlier day (MTQPD_BENCH_LOG) must measure the same as a fresh
        // one: nothing is dropped for its age.
        retention: Retention {
            after_last_event: 36_500 * 86_400,
            queue_lifetime: 5 * 86_400,
        },
        state_dir: None,
        snapshot_interval: Duration::from_secs(30),
        log_zone: Zone::utc(),
        native_tags: NativeTags::default(),
        stream_native_tags: NativeTags::default(),
        local_host: "hub".into(),
        cluster_hosts: Vec::new(),
        notify: None,
    };
    let index = Arc::new(Index::new(32));
    let before = rss_kib();
    let cpu_before = cpu_secs();
    let start = Instant::now();
    let (secs, cpu, after, lines, rejected, tracker) = if offline {
        let r = replay(&config, &index);
        let secs = start.elapsed().as_secs_f64();
        let after = rss_kib();
        let cpu = cpu_secs() - cpu_before;
        let held = (r.tracker.messages(), r.tracker.queues().0);
        let g = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        (
            secs,
            cpu,
            after,
            g(&r.stats.lines),
            g(&r.stats.rejected),
            Some(held),
        )
    } else {
        let ingest = spawn(config, Vec::new(), Arc::clone(&index)).expect("ingest thread");
        while !ingest.stats.caught_up.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let secs = start.elapsed().as_secs_f64();
        // Before the thread ends and frees the correlation state.
        let after = rss_kib();
        let cpu = cpu_secs() - cpu_before;
        let stats = Arc::clone(&ingest.stats);
        ingest.stop();
        let g = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        (secs, cpu, after, g(&stats.lines), g(&stats.rejected), None)
    };
    println!(
        "log: {}{host} ({:.1} MB, {lines} lines, format {format}, {})",
        log.display(),
        bytes as f64 / 1e6,
        if offline {
            "ingest-check's replay"
        } else {
            "serve's ingest thread"
        }
    );
    println!(
        "ingest: {:.2} s, {:.0} lines/s, {:.0} MB/s, {} records; rejected {}",
        secs,
        lines as f64 / secs,
        bytes as f64 / secs / 1e6,
        index.len(),
        rejected
    );
    println!(
        "cpu: {cpu:.2} s user and system, {:.0} lines per CPU second",
        lines as f64 / cpu.max(0.01)
    );
    println!(
        "memory: RSS grew {} MiB, {:.0} bytes per tracked message (correlation state + index)",
        after.saturating_sub(before) / 1024,
        (after.saturating_sub(before) * 1024) as f64 / index.len().max(1) as f64
    );
    let (mut size, mut tail, mut body) = (0usize, 0usize, 0usize);
    index.for_each(|e| {
        size += e.size();
        tail += e.sidecar().len();
        body += e.body().len();
    });
    let per = |n: usize| n as f64 / index.len().max(1) as f64;
    println!(
        "records: {:.0} octets each on average ({:.0} answer without the frame and shared head, {:.0} tail, {:.0} header)",
        per(size),
        per(body),
        per(tail),
        per(size - body - tail)
    );
    if let Some((messages, queues)) = tracker {
        println!(
            "tracker: holds {messages} messages (the others only as their index records), {queues} queue ids"
        );
    }
}
