//! `mtqp-load run` end to end: against the real server (plain and STARTTLS) its counts must
//! add up with no errors and the achieved rate must match a low requested rate; against a fake
//! server that answers wrongly it must name the wrong answers and exit non-zero; against a slow
//! one it must correct for coordinated omission and say it fell behind.
//!
//! mtqp-load is another package of the workspace, so its binary is built here with cargo
//! (`CARGO_BIN_EXE_*` only covers this package's binaries).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use common::{Server, TempDir};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

/// Builds mtqp-load (once per test binary) in this build's profile; returns its path.
fn mtqp_load() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // target/<profile>/deps/load_driver-… → target/<profile>
            let exe = std::env::current_exe().expect("test executable");
            let profile_dir = exe
                .parent()
                .and_then(|d| d.parent())
                .expect("target/<profile>")
                .to_path_buf();
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args(["build", "--quiet", "-p", "mtqp-load", "--bin", "mtqp-load"])
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            // Not the variables cargo sets for this test: build scripts that watch them (ring
            // watches CARGO_MANIFEST_DIR) would rebuild, here and again at the next cargo test.
            for (key, _) in std::env::vars_os() {
                let key = key.to_string_lossy();
                let set_for_tests = key.starts_with("CARGO_PKG_")
                    || key.starts_with("CARGO_BIN_EXE_")
                    || [
                        "CARGO_MANIFEST_DIR",
                        "CARGO_MANIFEST_PATH",
                        "CARGO_CRATE_NAME",
                        "CARGO_BIN_NAME",
                        "CARGO_PRIMARY_PACKAGE",
                        "CARGO_TARGET_TMPDIR",
                        "CARGO_RUSTC_CURRENT_DIR",
                    ]
                    .contains(&key.as_ref());
                if set_for_tests {
                    cmd.env_remove(key.as_ref());
                }
            }
            // The build keeps the real clock: rustc hangs under libfaketime, which CI's
            // shifted-clock run (.ci/shifted-clock) preloads into the tests and their servers.
            cmd.env_remove("LD_PRELOAD");
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("run cargo build");
            assert!(status.success(), "cargo build -p mtqp-load failed");
            let bin = profile_dir.join("mtqp-load");
            assert!(bin.exists(), "{} not built", bin.display());
            bin
        })
        .clone()
}

fn load(args: &[&str]) -> Output {
    let out = Command::new(mtqp_load())
        .args(args)
        .output()
        .expect("run mtqp-load");
    eprintln!(
        "mtqp-load {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A number from the flat part of the JSON report.
fn json_num(json: &str, key: &str) -> f64 {
    let at = json
        .find(&format!("\"{key}\": "))
        .unwrap_or_else(|| panic!("no {key} in {json}"));
    let rest = &json[at + key.len() + 4..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|_| panic!("{key}: {rest}"))
}

/// Generates `n` messages in `format` with gen's further `flags`; returns (log flag for
/// serve, secrets path).
fn generate_with(dir: &TempDir, n: u32, format: &str, flags: &[&str]) -> (String, String) {
    let (log, secrets) = (dir.path("log"), dir.path("secrets"));
    let count = n.to_string();
    let mut args = vec![
        "gen",
        "--messages",
        &count,
        "--format",
        format,
        "--out",
        log.to_str().unwrap(),
        "--secrets",
        secrets.to_str().unwrap(),
    ];
    args.extend_from_slice(flags);
    let out = load(&args);
    assert!(out.status.success());
    (
        format!("{format}:{}", log.display()),
        secrets.display().to_string(),
    )
}

/// Generates `n` native messages, the latest logged now; returns (log flag, secrets path).
fn generate(dir: &TempDir, n: u32) -> (String, String) {
    generate_with(dir, n, "native", &[])
}

#[test]
fn open_loop_run_against_the_server_counts_right_and_keeps_the_rate() {
    let dir = TempDir::new("load-real");
    let (log, secrets) = generate(&dir, 500);
    let server = Server::start_caught_up(&["--threads", "1", "--log", &log]);
    let addr = server.addr.to_string();
    let (json, hgrm) = (dir.path("r.json"), dir.path("r.hgrm"));
    let out = load(&[
        "run",
        "--addr",
        &addr,
        "--secrets",
        &secrets,
        "--connections",
        "4",
        "--threads",
        "2",
        "--pipeline",
        "2",
        "--rate",
        "400",
        "--duration",
        "2s",
        "--warmup",
        "500ms",
        "--mix",
        "hit=85,miss=5,badsecret=5,comment=5",
        "--json",
        json.to_str().unwrap(),
        "--hgrm",
        hgrm.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let json = std::fs::read_to_string(json).unwrap();
    assert_eq!(json_num(&json, "errors"), 0.0);
    assert_eq!(json_num(&json, "unsent"), 0.0);
    // The schedule is exact: 400/s for 2 s is 800 requests sent in the measured window, each
    // answered (the drain waits for the last ones).
    assert_eq!(json_num(&json, "sent"), 800.0);
    assert_eq!(json_num(&json, "answered"), 800.0);
    let achieved = json_num(&json, "rate_achieved");
    assert!((achieved - 400.0).abs() < 4.0, "{achieved}");
    let kinds = ["hit", "miss", "badsecret", "comment"].map(|k| json_num(&json, k));
    assert_eq!(kinds.iter().sum::<f64>(), 800.0);
    assert!(kinds.iter().all(|&n| n > 0.0), "{kinds:?}");
    assert!(json.contains("\"passed\": true"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("requested 400/s, achieved 400.0/s"),
        "{stdout}"
    );
    assert!(stdout.contains("errors     none"));
    let hgrm = std::fs::read_to_string(hgrm).unwrap();
    assert!(hgrm.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"));
    assert!(hgrm.contains("Total count    =          800]"), "{hgrm}");
}

#[test]
fn closed_loop_run_over_starttls() {
    let dir = TempDir::new("load-tls");
    let (log, secrets) = generate(&dir, 200);
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["mtqp.load.example".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let (ca_pem, cert_pem, key_pem) = (dir.path("ca.pem"), dir.path("c.pem"), dir.path("k.pem"));
    std::fs::write(&ca_pem, ca.pem()).unwrap();
    std::fs::write(&cert_pem, cert.pem()).unwrap();
    std::fs::write(&key_pem, key.serialize_pem()).unwrap();
    let server = Server::start_caught_up(&[
        "--threads",
        "1",
        "--log",
        &log,
        "--tls-cert",
        cert_pem.to_str().unwrap(),
        "--tls-key",
        key_pem.to_str().unwrap(),
        "--tls-required",
    ]);
    let addr = server.addr.to_string();
    let json = dir.path("r.json");
    let out = load(&[
        "run",
        "--addr",
        &addr,
        "--secrets",
        &secrets,
        "--connections",
        "3",
        "--pipeline",
        "4",
        "--rate",
        "0",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--mix",
        "hit=90,badsecret=10",
        "--starttls",
        "mtqp.load.example",
        "--ca",
        ca_pem.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let json = std::fs::read_to_string(json).unwrap();
    assert_eq!(json_num(&json, "errors"), 0.0);
    assert!(json_num(&json, "answered") > 100.0, "{json}");
    assert!(json.contains("\"tls\": true"));
    // A name the certificate is not for: the run cannot start (exit 2), and says why.
    let out = load(&[
        "run",
        "--addr",
        &addr,
        "--secrets",
        &secrets,
        "--connections",
        "1",
        "--rate",
        "10",
        "--duration",
        "1s",
        "--starttls",
        "other.load.example",
        "--ca",
        ca_pem.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("STARTTLS"));
}

/// A Postfix log whose classic stamps (no year) cross New Year, read an hour after it: every
/// line gets its year, so every message is served, and the driver finds each hit it expects.
#[test]
fn a_postfix_log_across_new_year_is_served_whole() {
    let dir = TempDir::new("load-new-year");
    let (log, secrets) = generate_with(
        &dir,
        20_000,
        "postfix",
        &["--start", "2027-12-31T23:50:00Z"],
    );
    let server = Server::start_caught_up_at(
        "2028-01-01T01:00:00Z",
        &["--threads", "1", "--log-timezone", "UTC", "--log", &log],
    );
    let lines = std::fs::read_to_string(dir.path("log"))
        .unwrap()
        .lines()
        .count();
    let caught_up = format!("ingest caught up: {lines} lines, 20000 records");
    assert!(server.stderr().contains(&caught_up), "{}", server.stderr());
    // The first message arrived in 2027, the last in 2028.
    let pairs = std::fs::read_to_string(&secrets).unwrap();
    let lines: Vec<&str> = pairs.lines().collect();
    for (line, arrival) in [
        (
            lines[0],
            "Arrival-Date: Fri, 31 Dec 2027 23:50:00 +0000\r\n",
        ),
        (
            lines[19_999],
            "Arrival-Date: Sat, 1 Jan 2028 00:20:18 +0000\r\n",
        ),
    ] {
        let (envid, secret) = line.split_once('\t').unwrap();
        let answer = server
            .client()
            .roundtrip(&format!("TRACK {envid} {secret}"));
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.contains(arrival), "{answer}");
    }
    let json = dir.path("r.json");
    let addr = server.addr.to_string();
    let out = load(&[
        "run",
        "--addr",
        &addr,
        "--secrets",
        &secrets,
        "--connections",
        "2",
        "--pipeline",
        "4",
        "--rate",
        "0",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--mix",
        "hit=100",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let json = std::fs::read_to_string(json).unwrap();
    assert_eq!(json_num(&json, "errors"), 0.0);
    assert!(json_num(&json, "hit") > 100.0, "{json}");
}

/// A hit's right answer, as mtqpd renders it (one recipient).
fn hit_body(envid: &str) -> String {
    format!(
        "+OK+ Tracking information follows\r\n\
         Content-Type: multipart/related; boundary=mtqp-boundary; type=\"message/tracking-status\"\r\n\
         \r\n--mtqp-boundary\r\nContent-Type: message/tracking-status\r\n\r\n\
         Original-Envelope-Id: {envid}\r\nReporting-MTA: dns; fake.example\r\n\r\n\
         Final-Recipient: rfc822; a@b.example\r\nAction: relayed\r\nStatus: 2.0.0\r\n\
         \r\n--mtqp-boundary--\r\n.\r\n"
    )
}

/// How the fake server answers the n-th TRACK of a connection.
#[derive(Clone, Copy)]
enum Fake {
    /// Right, then truncated, then -ERR/noinfo, then another envid, over and over.
    Wrong,
    /// Right, but each answer 20 ms late and one at a time.
    Slow,
    /// Two right answers, then half of the third, then the connection closes.
    Hangup,
}

/// A fake MTQP server on 127.0.0.1; returns its address.
fn fake_server(mode: Fake) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            std::thread::spawn(move || serve_fake(conn, mode));
        }
    });
    addr
}

fn serve_fake(conn: TcpStream, mode: Fake) {
    let mut out = conn.try_clone().unwrap();
    if out
        .write_all(b"+OK/MTQP fake.example MTQP server ready\r\n")
        .is_err()
    {
        return;
    }
    let mut n = 0usize;
    for line in BufReader::new(conn).lines() {
        if matches!(mode, Fake::Hangup) && n >= 3 {
            continue;
        }
        let Ok(line) = line else { return };
        let mut words = line.split_whitespace();
        let answer = match words.next() {
            Some("TRACK") => {
                let envid = words.next().unwrap_or("").trim_matches(['<', '>']);
                n += 1;
                match mode {
                    Fake::Slow => {
                        std::thread::sleep(Duration::from_millis(20));
                        hit_body(envid)
                    }
                    Fake::Hangup if n == 3 => {
                        let body = hit_body(envid);
                        let _ = out.write_all(&body.as_bytes()[..body.len() / 2]);
                        // Close our side (FIN, not a reset: whatever the driver sends after
                        // this is still read, below, and dropped).
                        let _ = out.shutdown(std::net::Shutdown::Write);
                        String::new()
                    }
                    Fake::Hangup => hit_body(envid),
                    Fake::Wrong => match n % 4 {
                        1 => hit_body(envid),
                        2 => hit_body(envid).replace("\r\n--mtqp-boundary--", ""),
                        3 => "-ERR/noinfo No tracking information is available\r\n".into(),
                        _ => hit_body(&format!("x{envid}")),
                    },
                }
            }
            Some("COMMENT") => "+OK\r\n".into(),
            _ => "-BAD/unknown-command Unrecognized command\r\n".into(),
        };
        if out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn wrong_answers_are_counted_shown_and_fail_the_run() {
    let dir = TempDir::new("load-wrong");
    let (_, secrets) = generate(&dir, 50);
    let addr = fake_server(Fake::Wrong);
    let json = dir.path("r.json");
    let out = load(&[
        "run",
        "--addr",
        &addr,
        "--secrets",
        &secrets,
        "--connections",
        "2",
        "--pipeline",
        "2",
        "--rate",
        "200",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--mix",
        "hit=1",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "wrong answers must fail the run"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for kind in ["truncated-body", "noinfo-for-hit", "wrong-envid"] {
        assert!(stdout.contains(kind), "{kind} not reported:\n{stdout}");
    }
    assert!(stdout.contains("WRONG (the run fails)"));
    assert!(stdout.contains("e.g. "), "a sample of a wrong answer");
    let json = std::fs::read_to_string(json).unwrap();
    // Three of every four answers are wrong, one kind each (counted against the answers that
    // came back, not the rate asked for: a loaded machine may send fewer in the second).
    let answered = json_num(&json, "answered");
    let errors = json_num(&json, "errors");
    assert!(answered >= 40.0, "{answered} answered");
    assert!(
        (errors - answered * 0.75).abs() <= 3.0,
        "{errors} of {answered}"
    );
    for kind in ["truncated-body", "noinfo-for-hit", "wrong-envid"] {
        let n = json_num(&json, kind);
        assert!(
            (n - answered / 4.0).abs() <= 2.0,
            "{kind}: {n} of {answered}"
        );
    }
    assert!(json.contains("\"passed\": false"));
}

#[test]
fn a_slow_server_shows_in_latency_from_the_schedule_and_as_falling_behind() {
    let dir = TempDir::new("load-slow");
    let (_, secrets) = generate(&dir, 50);
    let addr = fake_server(Fake::Slow);
    let json = dir.path("r.json");
    // One connection, one request at a time, 20 ms each: at most 50/s, and 200/s asked.
    let out = load(&[
        "run",
        "--addr",
        &addr,
        "--secrets",
        &secrets,
        "--connections",
        "1",
        "--pipeline",
        "1",
        "--rate",
        "200",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--json",
        json.to_str().unwrap(),
    ]);
    // Slow is not wrong: the run passes, and says it fell behind.
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("WARNING    behind schedule"), "{stdout}");
    let json = std::fs::read_to_string(json).unwrap();
    assert!(json.contains("\"behind_schedule\": true"));
    assert!(json_num(&json, "rate_achieved") < 100.0);
    assert!(json_num(&json, "unsent") > 50.0);
    assert!(json_num(&json, "held_by_window") > 10.0);
    // Service time stays near 20 ms; from the schedule, waits pile up toward the run's end.
    let p50 = |key: &str| {
        let at = json.find(&format!("\"{key}\"")).unwrap();
        json_num(&json[at..], "p50")
    };
    let (sched, sent) = (p50("latency_scheduled_us"), p50("latency_sent_us"));
    assert!((20_000.0..200_000.0).contains(&sent), "{sent}");
    assert!(
        sched > 5.0 * sent,
        "scheduled p50 {sched} µs vs sent p50 {sent} µs"
    );
}

#[test]
fn a_connection_closed_mid_answer_is_a_truncated_answer_and_a_lost_connection() {
    let dir = TempDir::new("load-hangup");
    let (_, secrets) = generate(&dir, 50);
    let addr = fake_server(Fake::Hangup);
    let json = dir.path("r.json");
    let out = load(&[
        "run",
        "--addr",
        &addr,
        "--secrets",
        &secrets,
        "--connections",
        "1",
        "--rate",
        "100",
        "--duration",
        "500ms",
        "--warmup",
        "0s",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("truncated-body   1"), "{stdout}");
    assert!(stdout.contains("connections lost: 1"), "{stdout}");
    let json = std::fs::read_to_string(json).unwrap();
    assert_eq!(json_num(&json, "errors"), 1.0);
    assert_eq!(json_num(&json, "sent"), 3.0);
    assert_eq!(json_num(&json, "answered"), 2.0);
    // The rest of the schedule could not be sent, and says so.
    assert_eq!(json_num(&json, "unsent"), 47.0);
}
