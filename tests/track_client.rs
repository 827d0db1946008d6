//! End-to-end tests of `mtqpd track`, the client: the real binary against the real server (native
//! logs written before start), and against small scripted servers for the answers the real one
//! never gives (refused greetings, broken STARTTLS). Expected output is derived from RFC 3887
//! examples #6, #8 and #9 and the client's documented `--summary` format, not from what the
//! client prints.

mod common;
use common::*;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;

use mtqpd::protocol::secret::{encode, sha1};

const HOST: &str = "example2.com";
/// The envid of the RFC 3887 examples.
const ENVID: &str = "12345-20010101@example.com";
const SECRET: &str = "our own secret for the RFC 3887 examples";
/// `Mon, 1 Jan 2001 15:15:15 -0500`.
const ARRIVAL: &str = "2001-01-01T15:15:15-05:00";
/// `Mon, 1 Jan 2001 19:15:03 -0500`.
const ATTEMPT: &str = "2001-01-01T19:15:03-05:00";
/// When the servers read the examples' logs: the evening of the examples' day.
const EXAMPLES_READ_AT: &str = "2001-01-01T23:00:00-05:00";
/// The name in the test server certificate.
const TLS_NAME: &str = "mtqp.example.com";

/// The outer header of every tracking answer (RFC 3886 type, quoted; see tests/wire.rs).
const CONTENT_TYPE: &str =
    "Content-Type: multipart/related; boundary=mtqp-boundary; type=\"message/tracking-status\"";

// ---------------------------------------------------------------------------------------------
// Helpers

/// What one run of `mtqpd track` did.
struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn expect(&self, code: i32) -> &Run {
        assert_eq!(
            self.code,
            code,
            "exit status; stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&self.stdout),
            self.stderr
        );
        self
    }

    /// Errors are one line on stderr.
    #[track_caller]
    fn one_error_line(&self, needle: &str) -> &Run {
        assert_eq!(self.stderr.lines().count(), 1, "stderr: {}", self.stderr);
        assert!(
            self.stderr.starts_with("mtqpd track: ") && self.stderr.contains(needle),
            "stderr should mention '{needle}': {}",
            self.stderr
        );
        self
    }

    #[track_caller]
    fn stdout_is(&self, want: &str) -> &Run {
        assert_eq!(String::from_utf8_lossy(&self.stdout), want);
        assert_eq!(self.stdout, want.as_bytes());
        self
    }
}

/// Runs `mtqpd track ARGS…` to its exit, with `env` added to its environment (and no
/// `MTQP_SECRET` but one given there) and `stdin` as its standard input.
fn run_track(args: &[&str], env: &[(&str, &OsStr)], stdin: Option<&[u8]>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtqpd"));
    cmd.arg("track")
        .args(args)
        .env_remove("MTQP_SECRET")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn mtqpd track");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input).expect("write stdin");
    }
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(output) = rx.recv_timeout(DEADLINE) else {
        let _ = Command::new("kill").arg(pid.to_string()).status();
        panic!("mtqpd track {args:?} did not exit");
    };
    let output = output.expect("wait for mtqpd track");
    Run {
        code: output.status.code().expect("exit status, not a signal"),
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn track_with_env(args: &[&str], env: &[(&str, &Path)]) -> Run {
    let env: Vec<(&str, &OsStr)> = env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    run_track(args, &env, None)
}

fn track(args: &[&str]) -> Run {
    run_track(args, &[], None)
}

/// `mtqp://127.0.0.1:PORT/track/ENVID/SECRET`, ENVID and SECRET given already encoded.
fn uri(port: u16, envid: &str, secret: &str) -> String {
    format!("mtqp://127.0.0.1:{port}/track/{envid}/{secret}")
}

/// The URI of the examples' message on `server`.
fn example_uri(server: &Server) -> String {
    uri(server.addr.port(), ENVID, &secret_b64(SECRET))
}

/// Body lines as the client prints them: unstuffed, each followed by the platform newline.
fn body(lines: &[&str]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// A native rcpt line at the examples' attempt time; `extra` holds further key=value pairs.
fn rcpt_line(envid: &str, rcpt: &str, action: &str, status: &str, extra: &str) -> String {
    format!(
        "mtqp: event=rcpt time={ATTEMPT} envid={envid} orcpt=rfc822;{rcpt} rcpt={rcpt} \
         action={action} status={status} {extra}"
    )
    .trim_end()
    .to_string()
        + "\n"
}

/// Writes `lines` as the native log in `dir` and starts a caught-up server reading it, with
/// `--hostname example2.com` and `extra`, its clock at [`EXAMPLES_READ_AT`].
fn serve_log(dir: &TempDir, lines: &[String], extra: &[&str]) -> Server {
    let log = dir.path("mail.log");
    append(&log, &lines.concat());
    let source = format!("native:{}", log.display());
    let mut args = vec!["--hostname", HOST, "--log", &source];
    args.extend_from_slice(extra);
    Server::start_caught_up_at(EXAMPLES_READ_AT, &args)
}

/// RFC 3887 example #6: one recipient, delivered.
fn delivered_log() -> Vec<String> {
    vec![
        accept_line(ARRIVAL, ENVID, SECRET, ""),
        rcpt_line(ENVID, "user1@example1.com", "delivered", "2.5.0", ""),
    ]
}

fn delivered_body() -> String {
    body(&[
        CONTENT_TYPE,
        "",
        "--mtqp-boundary",
        "Content-Type: message/tracking-status",
        "",
        "Original-Envelope-Id: 12345-20010101@example.com",
        "Reporting-MTA: dns; example2.com",
        "Arrival-Date: Mon, 1 Jan 2001 15:15:15 -0500",
        "",
        "Original-Recipient: rfc822; user1@example1.com",
        "Final-Recipient: rfc822; user1@example1.com",
        "Action: delivered",
        "Status: 2.5.0",
        "",
        "--mtqp-boundary--",
    ])
}

/// RFC 3887 example #8: delayed, with a header line that starts with a dot.
fn delayed_log() -> Vec<String> {
    vec![
        accept_line(
            ARRIVAL,
            ENVID,
            SECRET,
            "header=X-Extra-Header:+20as+20an+20example",
        ),
        rcpt_line(
            ENVID,
            "user1@example1.com",
            "delayed",
            "4.4.1+20(No+20answer+20from+20host)",
            "remote-mta=dns;example3.com retry-until=2001-01-04T15:15:15-05:00",
        ),
    ]
}

/// RFC 3887 example #9: one relayed, one failed.
fn relayed_and_failed_log() -> Vec<String> {
    vec![
        accept_line(ARRIVAL, ENVID, SECRET, ""),
        rcpt_line(
            ENVID,
            "user1@example1.com",
            "relayed",
            "2.1.9",
            "remote-mta=dns;example3.com",
        ),
        rcpt_line(
            ENVID,
            "user2@example1.com",
            "failed",
            "5.2.2+20(Mailbox+20full)",
            "remote-mta=dns;example3.com",
        ),
    ]
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

// ---------------------------------------------------------------------------------------------
// 1. Plain MTQP against the real server: body and exit status

#[test]
fn delivered_prints_the_body_and_exits_0() {
    let dir = TempDir::new("track-delivered");
    let s = serve_log(&dir, &delivered_log(), &[]);
    let run = track(&[&example_uri(&s)]);
    run.expect(0).stdout_is(&delivered_body());
    assert_eq!(run.stderr, "");
}

#[test]
fn delayed_exits_10_with_the_body() {
    let dir = TempDir::new("track-delayed");
    let s = serve_log(&dir, &delayed_log(), &[]);
    track(&[&example_uri(&s)]).expect(10).stdout_is(&body(&[
        CONTENT_TYPE,
        "X-Extra-Header: as an example",
        "",
        "--mtqp-boundary",
        "Content-Type: message/tracking-status",
        "",
        "Original-Envelope-Id: 12345-20010101@example.com",
        "Reporting-MTA: dns; example2.com",
        "Arrival-Date: Mon, 1 Jan 2001 15:15:15 -0500",
        "",
        "Original-Recipient: rfc822; user1@example1.com",
        "Final-Recipient: rfc822; user1@example1.com",
        "Action: delayed",
        "Status: 4.4.1 (No answer from host)",
        "Remote-MTA: dns; example3.com",
        "Last-Attempt-Date: Mon, 1 Jan 2001 19:15:03 -0500",
        "Will-Retry-Until: Thu, 4 Jan 2001 15:15:15 -0500",
        "",
        "--mtqp-boundary--",
    ]));
}

#[test]
fn a_failed_recipient_exits_11() {
    let dir = TempDir::new("track-failed");
    let s = serve_log(&dir, &relayed_and_failed_log(), &[]);
    track(&[&example_uri(&s)]).expect(11).stdout_is(&body(&[
        CONTENT_TYPE,
        "",
        "--mtqp-boundary",
        "Content-Type: message/tracking-status",
        "",
        "Original-Envelope-Id: 12345-20010101@example.com",
        "Reporting-MTA: dns; example2.com",
        "Arrival-Date: Mon, 1 Jan 2001 15:15:15 -0500",
        "",
        "Original-Recipient: rfc822; user1@example1.com",
        "Final-Recipient: rfc822; user1@example1.com",
        "Action: relayed",
        "Status: 2.1.9",
        "Remote-MTA: dns; example3.com",
        "Last-Attempt-Date: Mon, 1 Jan 2001 19:15:03 -0500",
        "",
        "Original-Recipient: rfc822; user2@example1.com",
        "Final-Recipient: rfc822; user2@example1.com",
        "Action: failed",
        "Status: 5.2.2 (Mailbox full)",
        "Remote-MTA: dns; example3.com",
        "Last-Attempt-Date: Mon, 1 Jan 2001 19:15:03 -0500",
        "",
        "--mtqp-boundary--",
    ]));
}

#[test]
fn an_unknown_envid_exits_12_with_nothing_on_stdout() {
    let dir = TempDir::new("track-unknown");
    let s = serve_log(&dir, &delivered_log(), &[]);
    let run = track(&[&uri(
        s.addr.port(),
        "never-logged@example.com",
        &secret_b64(SECRET),
    )]);
    run.expect(12).stdout_is("").one_error_line("-ERR/noinfo");
}

#[test]
fn a_wrong_secret_exits_12_like_an_unknown_envid() {
    let dir = TempDir::new("track-wrong-secret");
    let s = serve_log(&dir, &delivered_log(), &[]);
    let run = track(&[&uri(s.addr.port(), ENVID, &secret_b64("not the secret"))]);
    run.expect(12).stdout_is("").one_error_line("-ERR/noinfo");
}

#[test]
fn an_opaque_answer_is_printed_and_exits_12() {
    let dir = TempDir::new("track-opaque");
    let s = serve_log(&dir, &delivered_log(), &["--unknown", "opaque"]);
    let run = track(&[&uri(s.addr.port(), ENVID, &secret_b64("not the secret"))]);
    run.expect(12).stdout_is(&body(&[
        CONTENT_TYPE,
        "",
        "--mtqp-boundary",
        "Content-Type: message/tracking-status",
        "",
        "Original-Envelope-Id: 12345-20010101@example.com",
        "Reporting-MTA: dns; example2.com",
        "",
        "Final-Recipient: rfc822; unknown",
        "Action: opaque",
        "Status: 5.0.0",
        "",
        "--mtqp-boundary--",
    ]));
    assert_eq!(run.stderr, "");
}

#[test]
fn angle_brackets_and_case_in_the_uri() {
    let dir = TempDir::new("track-brackets");
    let s = serve_log(&dir, &delivered_log(), &[]);
    let u = format!(
        "MTQP://127.0.0.1:{}/Track/%3C{ENVID}%3E/{}",
        s.addr.port(),
        secret_b64(SECRET)
    );
    track(&[&u]).expect(0).stdout_is(&delivered_body());
}

// ---------------------------------------------------------------------------------------------
// 2. --summary

#[test]
fn summary_one_line_per_recipient() {
    let dir = TempDir::new("track-summary");
    let s = serve_log(&dir, &relayed_and_failed_log(), &[]);
    track(&[&example_uri(&s), "--summary"])
        .expect(11)
        .stdout_is(
            "user1@example1.com\trelayed\t2.1.9\texample3.com\tMon, 1 Jan 2001 19:15:03 -0500\n\
             user2@example1.com\tfailed\t5.2.2 (Mailbox full)\texample3.com\t\
             Mon, 1 Jan 2001 19:15:03 -0500\n",
        );
}

#[test]
fn summary_of_a_local_delivery_uses_the_arrival_date_and_dashes() {
    let dir = TempDir::new("track-summary-local");
    let s = serve_log(&dir, &delivered_log(), &[]);
    track(&["--summary", &example_uri(&s)])
        .expect(0)
        .stdout_is("user1@example1.com\tdelivered\t2.5.0\t-\tMon, 1 Jan 2001 15:15:15 -0500\n");
}

#[test]
fn summary_of_a_delayed_recipient() {
    let dir = TempDir::new("track-summary-delayed");
    let s = serve_log(&dir, &delayed_log(), &[]);
    track(&["--summary", &example_uri(&s)])
        .expect(10)
        .stdout_is(
            "user1@example1.com\tdelayed\t4.4.1 (No answer from host)\texample3.com\t\
             Mon, 1 Jan 2001 19:15:03 -0500\n",
        );
}

// ---------------------------------------------------------------------------------------------
// 3. Percent-decoding (RFC 3887 section 9.4)

#[test]
fn envid_and_secret_with_slash_question_mark_percent_and_plus() {
    // In the native log the envid is xtext: '/', '?' and '%' are themselves there. In the URI
    // they are %2F, %3F and %25.
    let envid = "a/b%c?d@example.com";
    let envid_in_uri = "a%2Fb%25c%3Fd@example.com";
    // Secret octets whose base64 is "++//YWJj": '+' stays as is in the URI, '/' is %2F.
    let secret: &[u8] = b"\xfb\xef\xff\xffabc";
    let secret_b64 = encode(secret);
    assert!(
        secret_b64.contains('+') && secret_b64.contains('/'),
        "{secret_b64}"
    );
    let secret_in_uri = secret_b64.replace('/', "%2F");
    let mtrk = encode(&sha1(secret));
    let log = vec![
        format!(
            "mtqp: event=accept time={ARRIVAL} envid={envid} mtrk={}\n",
            mtqpd::protocol::xtext::encode(mtrk.trim_end_matches('=').as_bytes())
        ),
        rcpt_line(envid, "user1@example1.com", "delivered", "2.5.0", ""),
    ];
    let dir = TempDir::new("track-percent");
    let s = serve_log(&dir, &log, &[]);
    let run = track(&[
        &uri(s.addr.port(), envid_in_uri, &secret_in_uri),
        "--summary",
    ]);
    run.expect(0)
        .stdout_is("user1@example1.com\tdelivered\t2.5.0\t-\tMon, 1 Jan 2001 15:15:15 -0500\n");
    // And the body names the envid as logged.
    let run = track(&[&uri(s.addr.port(), envid_in_uri, &secret_in_uri)]);
    run.expect(0);
    assert!(
        String::from_utf8_lossy(&run.stdout).contains(&format!("Original-Envelope-Id: {envid}\n")),
        "{}",
        String::from_utf8_lossy(&run.stdout)
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Errors: network, command line

#[test]
fn a_closed_port_exits_13() {
    let port = closed_port();
    track(&[&uri(port, ENVID, &secret_b64(SECRET))])
        .expect(13)
        .stdout_is("")
        .one_error_line(&format!("127.0.0.1:{port}"));
}

#[test]
fn bad_uris_and_flags_are_usage_errors() {
    for args in [
        vec!["http://127.0.0.1/track/x@y/YWJj"],
        vec!["mtqp://127.0.0.1/track/x@y"],
        vec!["mtqp://127.0.0.1/track/x%zz@y/YWJj"],
        vec!["mtqp://127.0.0.1/track/x@y/not*base64"],
        vec!["mtqp://127.0.0.1:0/track/x@y/YWJj"],
        vec!["mtqp://127.0.0.1/track/x@y/YWJj", "--starttls", "localhost"],
        vec!["mtqp://127.0.0.1/track/x@y/YWJj", "--starttls", "10.0.0.1"],
        vec!["mtqp://127.0.0.1/track/x@y/YWJj", "--timeout", "10s"],
        vec![],
    ] {
        let run = track(&args);
        run.expect(2);
        assert!(run.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_documents_the_exit_statuses_and_the_summary() {
    let run = track(&["--help"]);
    run.expect(0);
    let help = String::from_utf8_lossy(&run.stdout);
    for needle in [
        "Exit status",
        "10 ",
        "11 ",
        "12 ",
        "13 ",
        "--summary",
        "--starttls",
        "--ca",
    ] {
        assert!(help.contains(needle), "--help lacks '{needle}':\n{help}");
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Scripted servers: what the real server does not do

/// A one-connection server: sends `greeting`, then hands each received line (without CRLF) to
/// `answer` with the socket; `answer` returns false to close. Returns the port and, on join,
/// every line received.
fn scripted(
    greeting: &'static [u8],
    mut answer: impl FnMut(&str, &mut TcpStream) -> bool + Send + 'static,
) -> (u16, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let mut writer = stream.try_clone().expect("clone");
        writer.write_all(greeting).expect("greeting");
        let mut reader = BufReader::new(stream);
        let mut seen = Vec::new();
        let mut line = String::new();
        while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            let l = line.trim_end_matches(['\r', '\n']).to_string();
            seen.push(l.clone());
            line.clear();
            if l.eq_ignore_ascii_case("QUIT") {
                let _ = writer.write_all(b"+OK Bye\r\n");
                break;
            }
            if !answer(&l, &mut writer) {
                break;
            }
        }
        seen
    });
    (port, handle)
}

fn reply(stream: &mut TcpStream, bytes: &[u8]) {
    stream.write_all(bytes).expect("reply");
}

/// A tracking answer with one recipient in the given state.
fn canned_answer(action: &str) -> Vec<u8> {
    format!(
        "+OK+ Tracking information follows\r\n\
         Content-Type: multipart/related; boundary=b; type=\"message/tracking-status\"\r\n\
         \r\n--b\r\nContent-Type: message/tracking-status\r\n\r\nReporting-MTA: dns; fake\r\n\
         \r\nFinal-Recipient: rfc822; u@example.com\r\nAction: {action}\r\nStatus: 2.0.0\r\n\
         \r\n--b--\r\n.\r\n"
    )
    .into_bytes()
}

#[test]
fn unavailable_greetings_exit_13() {
    for greeting in [
        &b"-TEMP/MTQP/admin Service down for admin, call back later\r\n"[..],
        b"-ERR/MTQP/unavailable Service down\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n",
    ] {
        let (port, server) = scripted(greeting, |_, _| false);
        let run = track(&[&uri(port, ENVID, "YWJj")]);
        run.expect(13).stdout_is("");
        let first = String::from_utf8_lossy(greeting);
        let first = first.trim_end();
        run.one_error_line(&first[..first.len().min(20)]);
        assert_eq!(server.join().expect("server"), Vec::<String>::new());
    }
}

/// A body line that begins with `.` comes dot-stuffed (RFC 3887 example #8's header): the client
/// prints it with one dot.
#[test]
fn a_dot_stuffed_body_is_printed_unstuffed() {
    let (port, server) = scripted(b"+OK/MTQP fake MTQP server ready\r\n", |line, s| {
        if line.starts_with("TRACK ") {
            reply(
                s,
                b"+OK+ Tracking information follows\r\n\
                  ..Dot-Stuffed-Header: as an example\r\n\r\n\
                  --mtqp-boundary\r\nContent-Type: message/tracking-status\r\n\r\n\
                  Original-Envelope-Id: 12345-20010101@example.com\r\n\r\n\
                  Final-Recipient: rfc822; a@example1.com\r\nAction: delivered\r\n\
                  Status: 2.0.0\r\n\r\n--mtqp-boundary--\r\n.\r\n",
            );
        }
        true
    });
    let run = track(&[&uri(port, ENVID, "YWJj")]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.starts_with(".Dot-Stuffed-Header: as an example\n"),
        "{stdout}"
    );
    server.join().expect("server");
}

#[test]
fn options_without_starttls_including_continuations_go_straight_to_track() {
    let (port, server) = scripted(
        b"+OK+/MTQP fake MTQP server ready\r\nvnd.com.example.option3 with a very long\r\n \
          list of parameters, STARTTLS among them\r\n.\r\n",
        |line, s| {
            if line.starts_with("TRACK ") {
                reply(s, &canned_answer("expanded"));
            }
            true
        },
    );
    let run = track(&[&uri(port, "x@example.com", "YWJj"), "--summary"]);
    run.expect(0)
        .stdout_is("u@example.com\texpanded\t2.0.0\t-\t-\n");
    assert_eq!(
        server.join().expect("server"),
        ["TRACK x@example.com YWJj", "QUIT"]
    );
}

#[test]
fn starttls_offered_to_an_address_without_a_name_exits_13_before_any_command() {
    let (port, server) = scripted(
        b"+OK+/MTQP fake MTQP server ready\r\nSTARTTLS\r\n.\r\n",
        |_, _| false,
    );
    track(&[&uri(port, ENVID, "YWJj")])
        .expect(13)
        .one_error_line("--starttls");
    assert_eq!(server.join().expect("server"), Vec::<String>::new());
}

#[test]
fn starttls_required_but_refused_never_tracks_in_plaintext() {
    let (port, server) = scripted(
        b"+OK+/MTQP fake MTQP server ready\r\nSTARTTLS required\r\n.\r\n",
        |line, s| {
            if line.starts_with("STARTTLS") {
                reply(s, b"-ERR/unavailable TLS is broken today\r\n");
            } else if line.starts_with("TRACK") {
                reply(s, &canned_answer("delivered"));
            }
            true
        },
    );
    track(&[&uri(port, ENVID, "YWJj"), "--starttls", TLS_NAME])
        .expect(13)
        .one_error_line("-ERR/unavailable");
    assert_eq!(
        server.join().expect("server"),
        [format!("STARTTLS {TLS_NAME}")]
    );
}

#[test]
fn starttls_required_and_a_failed_handshake_never_tracks_in_plaintext() {
    let certs = TestCerts::new("track-fake-handshake");
    let (port, server) = scripted(
        b"+OK+/MTQP fake MTQP server ready\r\nSTARTTLS required\r\n.\r\n",
        |line, s| {
            if line.starts_with("STARTTLS") {
                reply(s, b"+OK Begin TLS negotiation\r\n");
                // Wait for the ClientHello, then answer it with something that is not TLS.
                let mut hello = [0u8; 5];
                s.read_exact(&mut hello).expect("ClientHello");
                assert_eq!(hello[0], 0x16, "a TLS handshake record");
                reply(s, b"+OK this is not TLS\r\n");
                return false;
            }
            true
        },
    );
    let ca = certs.ca.display().to_string();
    track(&[
        &uri(port, ENVID, "YWJj"),
        "--starttls",
        TLS_NAME,
        "--ca",
        &ca,
    ])
    .expect(13)
    .one_error_line("TLS handshake");
    assert_eq!(
        server.join().expect("server"),
        [format!("STARTTLS {TLS_NAME}")]
    );
}

#[test]
fn plaintext_after_starttls_ok_is_refused() {
    // An attacker on the path appends a fake greeting to the +OK; it must not be believed.
    let (port, server) = scripted(
        b"+OK+/MTQP fake MTQP server ready\r\nSTARTTLS\r\n.\r\n",
        |line, s| {
            if line.starts_with("STARTTLS") {
                reply(s, b"+OK Begin TLS negotiation\r\n+OK/MTQP injected\r\n");
            }
            true
        },
    );
    track(&[&uri(port, ENVID, "YWJj"), "--starttls", TLS_NAME])
        .expect(13)
        .one_error_line("after accepting STARTTLS");
    assert_eq!(
        server.join().expect("server"),
        [format!("STARTTLS {TLS_NAME}")]
    );
}

#[test]
fn a_single_line_ok_to_track_and_a_truncated_body_are_protocol_errors() {
    let (port, _server) = scripted(b"+OK/MTQP fake\r\n", |_, s| {
        reply(s, b"+OK fine\r\n");
        true
    });
    track(&[&uri(port, ENVID, "YWJj")])
        .expect(13)
        .one_error_line("without tracking information");

    // A body whose multipart never closes: printed as received, and an error.
    let (port, _server) = scripted(b"+OK/MTQP fake\r\n", |_, s| {
        reply(
            s,
            b"+OK+ x\r\nContent-Type: multipart/related; boundary=b\r\n\r\n--b\r\n.\r\n",
        );
        true
    });
    track(&[&uri(port, ENVID, "YWJj")])
        .expect(13)
        .stdout_is("Content-Type: multipart/related; boundary=b\n\n--b\n")
        .one_error_line("closing delimiter");
}

#[test]
fn tls_required_without_an_offer_points_at_starttls() {
    let (port, _server) = scripted(b"+OK/MTQP fake\r\n", |_, s| {
        reply(s, b"-ERR/tls-required Use STARTTLS before TRACK\r\n");
        true
    });
    track(&[&uri(port, ENVID, "YWJj")])
        .expect(13)
        .one_error_line("--starttls");
}

// ---------------------------------------------------------------------------------------------
// 6. STARTTLS against the real server

/// A CA and a leaf for `mtqp.example.com` signed by it, and an unrelated CA, as PEM files.
struct TestCerts {
    _dir: TempDir,
    ca: PathBuf,
    other_ca: PathBuf,
    leaf: PathBuf,
    leaf_key: PathBuf,
}

impl TestCerts {
    fn new(name: &str) -> TestCerts {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let dir = TempDir::new(name);
        let new_ca = |cn: &str| {
            let mut params = CertificateParams::new(Vec::new()).expect("CA params");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, cn);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate().expect("CA key");
            let cert = params.self_signed(&key).expect("CA certificate");
            (cert, key)
        };
        let (ca, ca_key) = new_ca("mtqpd test CA");
        let (other_ca, _) = new_ca("some other CA");
        let mut params = CertificateParams::new(vec![TLS_NAME.to_string()]).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, TLS_NAME);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf = params
            .signed_by(&leaf_key, &ca, &ca_key)
            .expect("leaf certificate");
        let certs = TestCerts {
            ca: dir.path("ca.pem"),
            other_ca: dir.path("other-ca.pem"),
            leaf: dir.path("leaf.pem"),
            leaf_key: dir.path("leaf.key"),
            _dir: dir,
        };
        std::fs::write(&certs.ca, ca.pem()).expect("write ca.pem");
        std::fs::write(&certs.other_ca, other_ca.pem()).expect("write other-ca.pem");
        std::fs::write(&certs.leaf, leaf.pem()).expect("write leaf.pem");
        std::fs::write(&certs.leaf_key, leaf_key.serialize_pem()).expect("write leaf.key");
        certs
    }

    fn server_args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.leaf.display().to_string(),
            "--tls-key".into(),
            self.leaf_key.display().to_string(),
        ]
    }
}

/// A TLS-enabled server with the examples' delivered message.
fn tls_server(name: &str) -> (TestCerts, TempDir, Server) {
    let certs = TestCerts::new(&format!("{name}-certs"));
    let dir = TempDir::new(name);
    let args = certs.server_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = serve_log(&dir, &delivered_log(), &args);
    (certs, dir, server)
}

#[test]
fn starttls_with_the_right_name_and_ca_tracks_under_tls() {
    let (certs, _dir, s) = tls_server("track-tls-ok");
    let ca = certs.ca.display().to_string();
    let run = track(&[&example_uri(&s), "--starttls", TLS_NAME, "--ca", &ca]);
    run.expect(0).stdout_is(&delivered_body());
    assert_eq!(run.stderr, "");
}

#[test]
fn starttls_with_a_name_the_server_has_no_certificate_for_exits_13() {
    let (certs, _dir, s) = tls_server("track-tls-bad-fqdn");
    let ca = certs.ca.display().to_string();
    track(&[
        &example_uri(&s),
        "--starttls",
        "other.example.com",
        "--ca",
        &ca,
    ])
    .expect(13)
    .stdout_is("")
    .one_error_line("-BAD/bad-fqdn");
}

#[test]
fn starttls_with_a_certificate_from_an_unknown_issuer_exits_13() {
    let (certs, _dir, s) = tls_server("track-tls-unknown-issuer");
    // The "system" roots (SSL_CERT_FILE, which rustls-native-certs honours) hold another CA.
    let run = track_with_env(
        &[&example_uri(&s), "--starttls", TLS_NAME],
        &[("SSL_CERT_FILE", &certs.other_ca)],
    );
    run.expect(13).stdout_is("").one_error_line("UnknownIssuer");
    // And with the real system roots, which cannot know the test CA either.
    track(&[&example_uri(&s), "--starttls", TLS_NAME])
        .expect(13)
        .stdout_is("");
    // A --ca bundle with the wrong CA fails the same way.
    let other = certs.other_ca.display().to_string();
    track(&[&example_uri(&s), "--starttls", TLS_NAME, "--ca", &other])
        .expect(13)
        .one_error_line("UnknownIssuer");
}

#[test]
fn an_offered_starttls_is_used_and_needs_a_name_for_an_address() {
    let (certs, _dir, s) = tls_server("track-tls-offered");
    let ca = certs.ca.display().to_string();
    // The greeting offers STARTTLS; the URI names the server by address: no silent plaintext.
    track(&[&example_uri(&s), "--ca", &ca])
        .expect(13)
        .one_error_line("--starttls");
}

// ---------------------------------------------------------------------------------------------
// 7. The secret: never in clear to a named host, never in the arguments, and what a server
// sends never reaches the terminal as control sequences

/// A scripted server that answers TRACK with an expanded recipient.
fn answering_server(greeting: &'static [u8]) -> (u16, JoinHandle<Vec<String>>) {
    scripted(greeting, |line, s| {
        if line.starts_with("TRACK ") {
            reply(s, &canned_answer("expanded"));
        }
        true
    })
}

/// An on-path attacker removes STARTTLS from the greeting: a server named by its host name is
/// then not sent the secret, unless the user says --plaintext.
#[test]
fn a_host_name_without_starttls_is_never_sent_the_secret() {
    let (port, server) = answering_server(b"+OK/MTQP fake MTQP server ready\r\n");
    let named = format!("mtqp://localhost:{port}/track/x@example.com/YWJj");
    track(&[&named])
        .expect(13)
        .stdout_is("")
        .one_error_line("--plaintext");
    assert_eq!(server.join().expect("server"), Vec::<String>::new());

    let (port, server) = answering_server(b"+OK/MTQP fake MTQP server ready\r\n");
    let named = format!("mtqp://localhost:{port}/track/x@example.com/YWJj");
    track(&[&named, "--plaintext", "--summary"])
        .expect(0)
        .stdout_is("u@example.com\texpanded\t2.0.0\t-\t-\n");
    assert_eq!(
        server.join().expect("server"),
        ["TRACK x@example.com YWJj", "QUIT"]
    );
}

/// The secret can stay out of the process's arguments: a file, standard input, or the
/// environment, with a URI that ends at the envid.
#[test]
fn the_secret_comes_from_a_file_stdin_or_the_environment() {
    let dir = TempDir::new("track-secret-sources");
    let file = dir.path("secret");
    std::fs::write(&file, "c2VjcmV0\n").expect("write");
    let file = file.display().to_string();
    let env_secret = [("MTQP_SECRET", OsStr::new("ZW52"))];
    type Case<'a> = (
        &'a [&'a str],
        &'a [(&'a str, &'a OsStr)],
        Option<&'a [u8]>,
        &'a str,
    );
    let cases: [Case<'_>; 3] = [
        (&["--secret-file", &file], &[], None, "c2VjcmV0"),
        (
            &["--secret-file", "-"],
            &[],
            Some(b"c3RkaW4=\r\n"),
            "c3RkaW4=",
        ),
        (&[], &env_secret, None, "ZW52"),
    ];
    for (flags, env, stdin, sent) in cases {
        let (port, server) = answering_server(b"+OK/MTQP fake MTQP server ready\r\n");
        let uri = format!("mtqp://127.0.0.1:{port}/track/x@example.com");
        let mut args = vec![uri.as_str(), "--summary"];
        args.extend_from_slice(flags);
        run_track(&args, env, stdin).expect(0);
        let seen = server.join().expect("server");
        assert_eq!(seen, [format!("TRACK x@example.com {sent}"), "QUIT".into()]);
    }
}

#[test]
fn no_secret_two_secrets_or_a_bad_one_are_usage_errors() {
    let dir = TempDir::new("track-secret-errors");
    let bad = dir.path("bad");
    std::fs::write(&bad, "not*base64\n").expect("write");
    let bad = bad.display().to_string();
    let port = closed_port();
    let bare = format!("mtqp://127.0.0.1:{port}/track/x@example.com");
    let full = format!("{bare}/YWJj");
    let missing = dir.path("missing").display().to_string();
    for (args, needle) in [
        (vec![bare.as_str()], "no secret"),
        (vec![&full, "--secret-file", &bad], "give one"),
        (vec![&bare, "--secret-file", &bad], "not base64"),
        (
            vec![&bare, "--secret-file", &missing],
            "cannot read the secret",
        ),
    ] {
        track(&args).expect(2).stdout_is("").one_error_line(needle);
    }
    run_track(&[&bare], &[("MTQP_SECRET", OsStr::new("a b"))], None)
        .expect(2)
        .one_error_line("MTQP_SECRET is not base64");
}

/// A hostile server's body carries terminal escapes (a title change, a bell, a bare CR that
/// would overwrite the line): printed as \xHH, unless --raw asks for the octets.
#[test]
fn control_characters_in_a_body_are_escaped_unless_raw() {
    const BODY: &[u8] = b"+OK+ Tracking information follows\r\n\
        Content-Type: multipart/related; boundary=b; type=\"message/tracking-status\"\r\n\
        \r\n--b\r\nContent-Type: message/tracking-status\r\n\r\nReporting-MTA: dns; fake\r\n\
        \r\nFinal-Recipient: rfc822; u@example.com\x1b]0;owned\x07\rAction: delivered\r\n\
        Action: delivered\r\nStatus: 2.0.0\r\n\r\n--b--\r\n.\r\n";
    let mut printed = Vec::new();
    for raw in [false, true] {
        let (port, server) = scripted(b"+OK/MTQP fake MTQP server ready\r\n", |line, s| {
            if line.starts_with("TRACK ") {
                reply(s, BODY);
            }
            true
        });
        let mut args = vec![uri(port, ENVID, "YWJj")];
        if raw {
            args.push("--raw".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = track(&args);
        run.expect(0);
        server.join().expect("server");
        printed.push(run.stdout.clone());
    }
    let escaped = String::from_utf8(printed[0].clone()).expect("ASCII");
    assert!(
        escaped.contains("Final-Recipient: rfc822; u@example.com\\x1b]0;owned\\x07\\x0dAction"),
        "{escaped}"
    );
    assert!(!printed[0]
        .iter()
        .any(|&c| c < 0x20 && c != b'\n' && c != b'\t'));
    let raw = &printed[1];
    assert!(
        raw.windows(9).any(|w| w == b"\x1b]0;owned"),
        "--raw keeps the octets"
    );
}
