//! The throughput target (docs/ARCHITECTURE.md, "Performance targets"), side by side:
//! memcached 1.6 (`memcached -t 1`, pinned to CPU 0) serving `get` of values the size of a
//! TRACK answer, and mtqpd (`--threads 1`, CPU 0) serving TRACK hits, both under the same
//! client (CPU 1): 50 connections × 8 pipelined.
//! Needs memcached on the PATH (`apt-get install memcached`); says so and stops otherwise.
//! Run: `cargo bench --bench memcached_compare`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

const KEYS: usize = 10_000;

fn main() {
    let secs: u64 = std::env::var("MTQPD_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let (conns, depth) = (50, 8);
    let mtqpd = common::start("compare", KEYS, Some(0));
    common::pin_self(1);
    let tracks: Vec<Vec<u8>> = (0..KEYS)
        .map(|i| {
            let (envid, secret) = common::message(i);
            format!("TRACK <{envid}> {secret}\r\n").into_bytes()
        })
        .collect();
    let m = common::pipelined::run(mtqpd.addr, &tracks, b"\r\n.\r\n", conns, depth, secs);
    drop(mtqpd);

    let port = 21_000 + (std::process::id() % 10_000) as u16;
    let mut cmd = if std::path::Path::new("/usr/bin/taskset").exists() {
        let mut c = Command::new("/usr/bin/taskset");
        c.args(["-c", "0", "memcached"]);
        c
    } else {
        Command::new("memcached")
    };
    let Ok(mut memcached) = cmd
        .args([
            "-t",
            "1",
            "-U",
            "0",
            "-l",
            "127.0.0.1",
            "-m",
            "256",
            "-c",
            "1024",
            "-u",
            "root",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        println!("memcached is not installed: apt-get install memcached");
        return;
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut setup = (0..50)
        .find_map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            TcpStream::connect(addr).ok()
        })
        .expect("memcached listening");
    let value = vec![b'x'; m.bytes_per_answer as usize];
    for i in 0..KEYS {
        setup
            .write_all(format!("set track{i:06} 0 0 {}\r\n", value.len()).as_bytes())
            .unwrap();
        setup.write_all(&value).unwrap();
        setup.write_all(b"\r\n").unwrap();
        let mut reply = [0u8; 8];
        setup.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"STORED\r\n");
    }
    let gets: Vec<Vec<u8>> = (0..KEYS)
        .map(|i| format!("get track{i:06}\r\n").into_bytes())
        .collect();
    let mc = common::pipelined::run(addr, &gets, b"\r\nEND\r\n", conns, depth, secs);
    let _ = memcached.kill();
    let _ = memcached.wait();

    println!("{conns} connections x {depth} pipelined, {secs} s, one server thread on CPU 0, client on CPU 1");
    println!(
        "memcached 1.6 -t 1, get of {}-byte values: {:.0}/s",
        value.len(),
        mc.per_second
    );
    println!(
        "mtqpd --threads 1, TRACK hits ({} bytes):     {:.0}/s",
        m.bytes_per_answer, m.per_second
    );
    println!(
        "ratio mtqpd / memcached: {:.2} (target: at least 2)",
        m.per_second / mc.per_second
    );
}
