//! TRACK hits per second: one server worker thread (pinned to CPU 0 when taskset exists)
//! against 50 connections with 8 commands in flight each, driven from this process (pinned to
//! CPU 1). An interim driver until mtqp-load exists.
//! Run: `cargo bench --bench track_pipelined` (MTQPD_BENCH_SECS, MTQPD_BENCH_CONNS,
//! MTQPD_BENCH_DEPTH to change the load).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use memchr::memmem;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Conn {
    stream: TcpStream,
    /// The last 4 octets of the previous read, so a terminator split across reads is found.
    tail: Vec<u8>,
    in_flight: usize,
    next: usize,
    out: Vec<u8>,
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
    let mut poll = Poll::new().unwrap();
    let mut all: Vec<Conn> = (0..conns)
        .map(|i| {
            let std = std::net::TcpStream::connect(bench.addr).unwrap();
            std.set_nodelay(true).unwrap();
            std.set_nonblocking(true).unwrap();
            let mut stream = TcpStream::from_std(std);
            poll.registry()
                .register(&mut stream, Token(i), Interest::READABLE)
                .unwrap();
            Conn {
                stream,
                tail: Vec::new(),
                in_flight: 0,
                next: i * 97,
                out: Vec::new(),
            }
        })
        .collect();
    let terminator = memmem::Finder::new(b"\r\n.\r\n");
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    let mut bytes = 0u64;
    let fill = |c: &mut Conn| {
        while c.in_flight < depth {
            c.out.extend_from_slice(&commands[c.next % records]);
            c.next += 1;
            c.in_flight += 1;
        }
        // Small writes into an empty socket buffer: a short write would only happen under
        // memory pressure, which this bench does not create.
        c.stream.write_all(&c.out).unwrap();
        c.out.clear();
    };
    all.iter_mut().for_each(fill);
    let start = Instant::now();
    let mut measured_from = None;
    let warmup = Duration::from_secs(1);
    while start.elapsed() < Duration::from_secs(secs) + warmup {
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .unwrap();
        if measured_from.is_none() && start.elapsed() >= warmup {
            measured_from = Some((Instant::now(), done, bytes));
        }
        for ev in events.iter() {
            let c = &mut all[ev.token().0];
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => panic!("server closed a connection"),
                    Ok(n) => {
                        bytes += n as u64;
                        let mut scan = std::mem::take(&mut c.tail);
                        scan.extend_from_slice(&buf[..n]);
                        let k = terminator.find_iter(&scan).count();
                        c.tail = scan[scan.len().saturating_sub(4)..].to_vec();
                        c.in_flight -= k;
                        done += k as u64;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("read: {e}"),
                }
            }
            fill(c);
        }
    }
    let (t0, d0, b0) = measured_from.expect("ran past warm-up");
    let elapsed = t0.elapsed().as_secs_f64();
    let rate = (done - d0) as f64 / elapsed;
    println!("connections {conns} x pipeline {depth}, {secs} s, server --threads 1");
    println!(
        "TRACK hits: {:.0}/s ({:.1} MB/s of answers, {} bytes each)",
        rate,
        (bytes - b0) as f64 / elapsed / 1e6,
        (bytes - b0) / (done - d0).max(1)
    );
}
