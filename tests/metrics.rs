//! `--admin-listen`: the real server's `/metrics`, parsed by the official Prometheus Python
//! client's text-format parser (Debian's python3-prometheus-client, which .ci/run installs),
//! moves by exactly the commands sent; `/healthz`; bad admin requests get their status and
//! never hurt serving; the gate's `/metrics` moves as a session goes through it.

mod common;
use common::smtp::{FakeMta, MtaConn, Smtp};
use common::*;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};

/// Debian's interpreter, where python3-prometheus-client is installed.
const PYTHON: &str = "/usr/bin/python3";

/// Prints every sample the parser finds as `name{k="v",…} value`, labels sorted; fails on
/// text that is not the exposition format.
const PARSE: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join('%s="%s"' % kv for kv in sorted(s.labels.items()))
        print("%s{%s} %r" % (s.name, labels, s.value))
"#;

/// The samples of a `/metrics` page, by name and labels.
fn parse(page: &str) -> BTreeMap<String, f64> {
    let mut child = Command::new(PYTHON)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run /usr/bin/python3 (apt-get install python3-prometheus-client)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused the page: {}\n{page}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

/// The admin address a process printed (`PREFIX admin on ADDR`).
fn admin_addr(server: &Server, prefix: &str) -> SocketAddr {
    let line = server.wait_for_stderr(&format!("{prefix} admin on "));
    line.rsplit(' ').next().unwrap().trim().parse().unwrap()
}

/// Sends `request` as it is and returns the status code and the body.
fn http(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
}

fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200);
    parse(&body)
}

/// A served log holding one delivered message, `QQ1`, and the server, caught up.
fn serve_one_message(dir: &TempDir, extra: &[&str]) -> (Server, SocketAddr) {
    let log = dir.path("mtqp.log");
    append(&log, &one_message_lines());
    let log_arg = format!("native:{}", log.display());
    let mut args = vec!["--log", &log_arg, "--admin-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let server = Server::start_caught_up(&args);
    let admin = admin_addr(&server, "mtqpd:");
    (server, admin)
}

fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, key: &str) -> f64 {
    let get = |m: &BTreeMap<String, f64>| *m.get(key).unwrap_or_else(|| panic!("no {key}"));
    get(after) - get(before)
}

#[test]
fn counters_move_by_exactly_the_commands_sent() {
    let dir = TempDir::new("metrics-counters");
    let (server, admin) = serve_one_message(&dir, &[]);
    let before = scrape(admin);
    assert_eq!(before["mtqpd_records{}"], 1.0);
    assert_eq!(
        before[r#"mtqpd_ingest_lines_total{format="native",outcome="applied"}"#],
        2.0
    );
    assert_eq!(before["mtqpd_ingest_lag_seconds{}"], 0.0);
    assert_eq!(before["mtqpd_ingest_caught_up{}"], 1.0);
    assert!(before["mtqpd_resident_memory_bytes{}"] > 0.0);

    let mut c = server.client();
    let hit = format!("TRACK QQ1 {}", secret_b64("s3cret"));
    let miss = format!("TRACK QQ2 {}", secret_b64("s3cret"));
    for _ in 0..3 {
        assert!(c.roundtrip(&hit).starts_with(b"+OK+"));
    }
    for _ in 0..2 {
        assert_eq!(
            c.roundtrip(&miss),
            b"-ERR/noinfo No tracking information is available\r\n"
        );
    }
    c.roundtrip("COMMENT hello");
    c.roundtrip("FROB");
    // The server closes after QUIT, once every answer is written (and its latency recorded).
    c.send(b"QUIT\r\n");
    let mut rest = Vec::new();
    c.stream.read_to_end(&mut rest).unwrap();

    let after = scrape(admin);
    let moved = |key: &str| delta(&before, &after, key);
    let cmd = |command: &str, result: &str| {
        moved(&format!(
            r#"mtqpd_commands_total{{command="{command}",result="{result}"}}"#
        ))
    };
    assert_eq!(cmd("track", "hit"), 3.0);
    assert_eq!(cmd("track", "miss"), 2.0);
    assert_eq!(cmd("comment", "ok"), 1.0);
    assert_eq!(cmd("bad", "unknown_command"), 1.0);
    assert_eq!(cmd("quit", "ok"), 1.0);
    assert_eq!(cmd("starttls", "refused"), 0.0);
    let count = |command: &str| {
        moved(&format!(
            r#"mtqpd_command_duration_seconds_count{{command="{command}"}}"#
        ))
    };
    assert_eq!(count("track"), 5.0);
    assert_eq!(count("bad"), 1.0);
    assert_eq!(count("quit"), 1.0);
    assert_eq!(
        moved(r#"mtqpd_command_duration_seconds_bucket{command="track",le="+Inf"}"#),
        5.0
    );
    assert_eq!(moved(r#"mtqpd_connections_total{result="admitted"}"#), 1.0);
    assert_eq!(after["mtqpd_connections{}"], 0.0);
    // The shutdown report keeps its exact histograms.
    let (status, stderr) = server.stop("TERM");
    assert!(status.success(), "{stderr}");
    let track_row: Vec<&str> = stderr
        .lines()
        .find(|l| l.starts_with("  TRACK "))
        .expect("the TRACK row")
        .split_whitespace()
        .collect();
    assert_eq!(track_row[1], "5", "{stderr}");
}

/// The lines of [`serve_one_message`]'s log.
fn one_message_lines() -> String {
    let time = rfc3339(unix_now() - 60);
    accept_line(&time, "QQ1", "s3cret", "")
        + &format!(
            "mtqp: event=rcpt time={time} envid=QQ1 rcpt=a@example.org \
             action=delivered status=2.0.0\n"
        )
}

/// Ingest that has not caught up: the log is a sparse file of 1 TiB of NULs (no disk used),
/// which ingest reads at memory speed, minutes for the whole, so it is behind for as long as
/// the test lets it be. Cut to a real log, it is read again from its start and caught up.
#[test]
fn healthz_is_503_until_ingest_has_caught_up_then_200() {
    let dir = TempDir::new("metrics-healthz-503");
    let log = dir.path("mtqp.log");
    std::fs::File::create(&log)
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    let log_arg = format!("native:{}", log.display());
    let server = Server::start(&["--log", &log_arg, "--admin-listen", "127.0.0.1:0"]);
    let admin = admin_addr(&server, "mtqpd:");
    let (status, body) = get(admin, "/healthz");
    assert_eq!(status, 503);
    assert!(body.starts_with("ingest has not caught up yet ("), "{body}");
    let behind = scrape(admin);
    assert_eq!(behind["mtqpd_ingest_caught_up{}"], 0.0);
    assert!(behind["mtqpd_ingest_lag_seconds{}"] > 0.0);
    assert!(!server.stderr().contains("ingest caught up"));

    std::fs::File::create(&log).unwrap();
    append(&log, &one_message_lines());
    // The follower meets the end of the file at its old offset first (and so catches up),
    // then notices the truncation at its next look and reads the lines.
    server.wait_for_stderr("ingest caught up");
    let started = std::time::Instant::now();
    while scrape(admin)["mtqpd_records{}"] != 1.0 {
        assert!(started.elapsed() < DEADLINE, "the record never came");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (status, body) = get(admin, "/healthz");
    assert_eq!(
        (status, body.as_str()),
        (200, "ok: ingest caught up, lag 0.000s\n")
    );
    assert_eq!(scrape(admin)["mtqpd_ingest_lag_seconds{}"], 0.0);
}

#[test]
fn healthz_is_200_once_ingest_has_caught_up() {
    let dir = TempDir::new("metrics-healthz");
    let (_server, admin) = serve_one_message(&dir, &["--healthz-max-lag", "1s"]);
    let (status, body) = get(admin, "/healthz");
    assert_eq!(
        (status, body.as_str()),
        (200, "ok: ingest caught up, lag 0.000s\n")
    );
    let (status, body) = http(admin, b"HEAD /healthz HTTP/1.0\r\n\r\n");
    assert_eq!((status, body.as_str()), (200, ""));
}

#[test]
fn bad_admin_requests_get_their_status_and_serving_goes_on() {
    let dir = TempDir::new("metrics-bad-requests");
    let (server, admin) = serve_one_message(&dir, &[]);
    let oversized = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
    let cases: [(&[u8], u16, &str); 5] = [
        (
            oversized.as_bytes(),
            431,
            "Request Header Fields Too Large\n",
        ),
        (
            b"POST /metrics HTTP/1.1\r\n\r\n",
            405,
            "Method Not Allowed\n",
        ),
        (b"GET /nothing HTTP/1.1\r\n\r\n", 404, "Not Found\n"),
        (b"GET /metrics SMTP/1.0\r\n\r\n", 400, "Bad Request\n"),
        (b"\x16\x03\x01\x02\x00\r\n\r\n", 400, "Bad Request\n"),
    ];
    for (request, status, body) in cases {
        assert_eq!(http(admin, request), (status, body.to_string()));
    }
    // A client that sends half a head and waits holds one admin handler, not the server.
    let mut idle = TcpStream::connect(admin).unwrap();
    idle.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    let mut c = server.client();
    let hit = format!("TRACK QQ1 {}", secret_b64("s3cret"));
    assert!(c.roundtrip(&hit).starts_with(b"+OK+"));
    let after = scrape(admin);
    assert_eq!(
        after[r#"mtqpd_commands_total{command="track",result="hit"}"#],
        1.0
    );
}

/// An MTA that answers like Postfix until QUIT.
fn postfix_like(conn: &mut MtaConn) {
    conn.proxy_header();
    conn.send("220 mta.test ESMTP\r\n");
    loop {
        let line = conn.line();
        match line.get(..4).unwrap_or("").to_ascii_uppercase().as_str() {
            "DATA" => {
                conn.send("354 go ahead\r\n");
                conn.data();
                conn.send("250 2.0.0 Ok: queued as 4ZxY1k2Hq3z6\r\n");
            }
            "QUIT" => {
                conn.send("221 2.0.0 Bye\r\n");
                return;
            }
            _ => conn.send("250 ok\r\n"),
        }
    }
}

#[test]
fn the_gate_s_metrics_move_as_a_tracked_session_goes_through() {
    let mta = FakeMta::start(postfix_like);
    let dir = TempDir::new("metrics-gate");
    let log = dir.path("accept.log");
    let mta_arg = mta.mta_arg();
    let gate = Server::start_gate(&[
        "--mta",
        &mta_arg,
        "--accept-log",
        log.to_str().unwrap(),
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    let admin = admin_addr(&gate, "mtqpd gate:");
    let before = scrape(admin);
    let mut c = Smtp::connect(gate.addr);
    c.reply();
    c.command("EHLO client.test");
    let mtrk = mtqpd::protocol::secret::encode(&mtqpd::protocol::secret::sha1(b"s3cret"));
    let mail = format!(
        "MAIL FROM:<s@example.net> ENVID=QQ1 MTRK={}:3600",
        mtrk.trim_end_matches('=')
    );
    assert_eq!(c.command(&mail), "250 ok\r\n");
    c.command("RCPT TO:<r@example.org>");
    c.command("DATA");
    c.send(b"Subject: t\r\n\r\nhi\r\n.\r\n");
    assert_eq!(c.reply(), "250 2.0.0 Ok: queued as 4ZxY1k2Hq3z6\r\n");
    let during = scrape(admin);
    assert_eq!(during["mtqpd_gate_sessions{}"], 1.0);
    c.command("QUIT");
    mta.finished();

    let after = scrape(admin);
    let moved = |key: &str| delta(&before, &after, key);
    assert_eq!(
        moved(r#"mtqpd_gate_sessions_total{result="admitted"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"mtqpd_gate_transactions_total{tracking="tracked"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"mtqpd_gate_transactions_total{tracking="untracked"}"#),
        0.0
    );
    assert_eq!(moved("mtqpd_gate_accept_log_failures_total{}"), 0.0);
    let (status, _) = get(admin, "/healthz");
    assert_eq!(status, 200);
    // The admin threads hold nothing the shutdown waits for.
    let (status, stderr) = gate.stop("TERM");
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("tracked 1 "), "{stderr}");
}
