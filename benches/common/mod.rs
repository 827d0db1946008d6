//! Shared by the end-to-end benches: a synthetic native log and a server started on it.

#![allow(dead_code)] // each bench uses a different part

pub mod pipelined;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mtqpd::clock::unix_now;
use mtqpd::protocol::date::Timestamp;
use mtqpd::protocol::secret::{encode, sha1};
use mtqpd::protocol::xtext;

/// The envid and base64 secret of synthetic message `i`.
pub fn message(i: usize) -> (String, String) {
    (
        format!("bench-{i:08}@example.org"),
        encode(format!("secret-{i}").as_bytes()),
    )
}

/// Writes `n` two-recipient messages (one relayed, one delivered) as native lines, logged a
/// minute ago (so that the server's default retention keeps them).
pub fn write_log(path: &Path, n: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create log"));
    let [accepted, relayed, delivered] = [60, 59, 58].map(|ago| {
        let mut t = String::new();
        Timestamp {
            unix: unix_now() - ago,
            offset_minutes: 0,
        }
        .write_rfc3339_utc(&mut t);
        t
    });
    for i in 0..n {
        let (envid, _) = message(i);
        let hash = encode(&sha1(format!("secret-{i}").as_bytes()));
        writeln!(
            f,
            "mtqp: event=accept time={accepted} envid={envid} mtrk={} queue=Q{i:08}",
            xtext::encode(hash.trim_end_matches('=').as_bytes())
        )
        .unwrap();
        writeln!(f, "mtqp: event=rcpt time={relayed} queue=Q{i:08} orcpt=rfc822;user{i}@example.net rcpt=user{i}@example.net action=relayed status=2.0.0 remote-mta=dns;mx1.example.net").unwrap();
        writeln!(f, "mtqp: event=rcpt time={delivered} queue=Q{i:08} orcpt=rfc822;local{i}@hub.example rcpt=local{i}@hub.example action=delivered status=2.0.0").unwrap();
    }
}

/// A running server; killed when dropped.
pub struct Bench {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `mtqpd serve` with one worker thread (pinned to CPU `cpu` when taskset exists) on a
/// log of `n` synthetic messages, and waits until the log is ingested.
pub fn start(name: &str, n: usize, cpu: Option<usize>) -> Bench {
    start_with(name, n, cpu, |_| Vec::new())
}

/// Pins this process to CPU `cpu` when taskset exists.
pub fn pin_self(cpu: usize) {
    if Path::new("/usr/bin/taskset").exists() {
        let _ = Command::new("/usr/bin/taskset")
            .args([
                "-p",
                "-c",
                &cpu.to_string(),
                &std::process::id().to_string(),
            ])
            .stdout(Stdio::null())
            .status();
    }
}

/// Like [`start`], with extra flags made from the bench's directory.
pub fn start_with(
    name: &str,
    n: usize,
    cpu: Option<usize>,
    extra: impl FnOnce(&Path) -> Vec<String>,
) -> Bench {
    let dir = std::env::temp_dir().join(format!("mtqpd-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("mail.log");
    write_log(&log, n);
    let exe = env!("CARGO_BIN_EXE_mtqpd");
    let log_arg = format!("native:{}", log.display());
    let mut args: Vec<String> = [
        "serve",
        "--threads",
        "1",
        "--listen",
        "127.0.0.1:0",
        "--hostname",
        "hub.example",
        "--log",
        &log_arg,
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(extra(&dir));
    let mut cmd = match cpu.filter(|_| Path::new("/usr/bin/taskset").exists()) {
        Some(cpu) => {
            let mut c = Command::new("/usr/bin/taskset");
            c.args(["-c", &cpu.to_string(), exe]);
            c
        }
        None => Command::new(exe),
    };
    let mut child = cmd
        .args(args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn mtqpd");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut addr = None;
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("server output");
        if let Some(a) = line.strip_prefix("mtqpd: listening on ") {
            addr = a.parse().ok();
        }
        if line.contains("ingest caught up") {
            break;
        }
    }
    Bench {
        child,
        addr: addr.expect("address"),
        dir,
    }
}

/// Resident set size of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
