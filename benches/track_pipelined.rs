//! TRACK hits per second: one server worker thread (pinned to CPU 0 when taskset exists)
//! against 50 connections with 8 commands in flight each, driven from this process (pinned to
//! CPU 1) by the same client that `memcached_compare` uses.
//! Run: `cargo bench --bench track_pipelined` (MTQPD_BENCH_SECS, MTQPD_BENCH_CONNS,
//! MTQPD_BENCH_DEPTH to change the load).

mod common;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let records = 10_000;
    let secs = env("MTQPD_BENCH_SECS", 10) as u64;
    let conns = env("MTQPD_BENCH_CONNS", 50);
    let depth = env("MTQPD_BENCH_DEPTH", 8);
    let bench = common::start("track", records, Some(0));
    common::pin_self(1);
    let commands: Vec<Vec<u8>> = (0..records)
        .map(|i| {
            let (envid, secret) = common::message(i);
            format!("TRACK <{envid}> {secret}\r\n").into_bytes()
        })
        .collect();
    let m = common::pipelined::run(bench.addr, &commands, b"\r\n.\r\n", conns, depth, secs);
    println!("connections {conns} x pipeline {depth}, {secs} s, server --threads 1");
    println!(
        "TRACK hits: {:.0}/s ({} bytes each)",
        m.per_second, m.bytes_per_answer
    );
}
