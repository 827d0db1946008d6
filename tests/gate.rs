//! `mtqpd gate` against a scripted MTA on loopback: what reaches the MTA, byte for byte; what
//! the client is told; what the accept log holds, and when. The same gate in front of a real
//! Postfix is tests/gate_postfix.rs.

mod common;
use common::smtp::{FakeMta, MtaConn, Smtp};
use common::*;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mtqpd::protocol::secret::{encode, sha1};
use mtqpd::protocol::xtext;

const BANNER: &str = "220 mta.test ESMTP Postfix (Debian/GNU)\r\n";
const EHLO_REPLY: &str = "250-mta.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n\
    250-ETRN\r\n250-STARTTLS\r\n250-AUTH PLAIN\r\n250-XCLIENT NAME ADDR PROTO HELO\r\n\
    250-XFORWARD NAME ADDR\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n\
    250-SMTPUTF8\r\n250 CHUNKING\r\n";
/// What the client sees of EHLO_REPLY through a gate without certificates.
const EHLO_EDITED: &str = "250-mta.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n\
    250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 MTRK\r\n";
const QUEUED: &str = "250 2.0.0 Ok: queued as 4ZxY1k2Hq3z6\r\n";

/// An MTA that answers like Postfix until QUIT (or the gate closes).
fn postfix_like(conn: &mut MtaConn) {
    conn.proxy_header();
    conn.send(BANNER);
    answer_until_quit(conn);
}

fn answer_until_quit(conn: &mut MtaConn) {
    loop {
        let line = conn.line();
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => conn.send(EHLO_REPLY),
            "HELO" => conn.send("250 mta.test\r\n"),
            "MAIL" => conn.send("250 2.1.0 Ok\r\n"),
            "RCPT" => conn.send("250 2.1.5 Ok\r\n"),
            "DATA" => {
                conn.send("354 End data with <CR><LF>.<CR><LF>\r\n");
                conn.data();
                conn.send(QUEUED);
            }
            "QUIT" => {
                conn.send("221 2.0.0 Bye\r\n");
                return;
            }
            _ => conn.send("250 2.0.0 Ok\r\n"),
        }
    }
}

/// The certifier of `secret` as RFC 3885 writes it: base64 of SHA-1, without padding.
fn certifier(secret: &str) -> String {
    encode(&sha1(secret.as_bytes()))
        .trim_end_matches('=')
        .to_string()
}

struct Gate {
    server: Server,
    log: std::path::PathBuf,
    _dir: TempDir,
}

fn gate(name: &str, mta: &FakeMta, extra: &[&str]) -> Gate {
    let dir = TempDir::new(name);
    let log = dir.path("accept.log");
    let mta_arg = mta.mta_arg();
    let mut args = vec![
        "--mta",
        &mta_arg,
        "--accept-log",
        log.to_str().unwrap(),
        "--hostname",
        "gate.test",
        "--threads",
        "2",
    ];
    args.extend_from_slice(extra);
    Gate {
        server: Server::start_gate(&args),
        log,
        _dir: dir,
    }
}

impl Gate {
    fn client(&self) -> Smtp {
        Smtp::connect(self.server.addr)
    }

    fn accept_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The native lines the gate writes for this test's tracked message, at `time`.
fn expected_lines(time: &str, secret: &str, client: &str) -> String {
    let mtrk = xtext::encode(encode(&sha1(secret.as_bytes())).as_bytes());
    let common = format!("time={time} envid=QQ314159 mtrk={mtrk} queue=4ZxY1k2Hq3z6");
    format!(
        "mtqp: event=accept {common} timeout=3600 client={client}\n\
         mtqp: event=recipient {common} rcpt=rcpt1@example.org orcpt=rfc822;user+2Bx@example.org\n\
         mtqp: event=recipient {common} rcpt=rcpt2@example.org\n"
    )
}

/// The `time=` of the first native line.
fn time_of(lines: &str) -> String {
    lines
        .split(' ')
        .find_map(|f| f.strip_prefix("time="))
        .expect("a time= field")
        .to_string()
}

#[test]
fn a_tracked_message_reaches_the_mta_byte_for_byte_and_its_lines_the_accept_log() {
    tracked_message_through(&FakeMta::start(postfix_like), "gate-tracked");
}

/// The same through `--mta unix:PATH` (Postfix's smtpd as a `unix` service): the same octets
/// reach the MTA, and the PROXY v2 header still names the client's TCP address and port.
#[test]
fn a_tracked_message_reaches_an_mta_on_a_unix_socket_byte_for_byte() {
    let dir = TempDir::new("gate-unix-mta");
    let mta = FakeMta::start_unix(&dir.path("smtpd.sock"), postfix_like);
    tracked_message_through(&mta, "gate-tracked-unix");
}

fn tracked_message_through(mta: &FakeMta, name: &str) {
    let g = gate(name, mta, &[]);
    let before = unix_now();
    let mut c = g.client();
    assert_eq!(c.reply(), BANNER, "the MTA's banner, verbatim");
    assert_eq!(c.command("EHLO client.test"), EHLO_EDITED);
    let cert = certifier("s3cret");
    let mail =
        format!("MAIL FROM:<sender@example.net> RET=HDRS ENVID=QQ314159 MTRK={cert}:3600 SIZE=100");
    assert_eq!(c.command(&mail), "250 2.1.0 Ok\r\n");
    let rcpt1 =
        "RCPT TO:<rcpt1@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;user+2Bx@example.org";
    assert_eq!(c.command(rcpt1), "250 2.1.5 Ok\r\n");
    assert_eq!(c.command("RCPT TO:<rcpt2@example.org>"), "250 2.1.5 Ok\r\n");
    assert_eq!(c.command("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    let data = "Subject: t\r\n\r\nhello\r\n..dot\r\n.\r\n";
    c.send(data.as_bytes());
    assert_eq!(c.reply(), QUEUED);
    let written = g.accept_log();
    let after = unix_now();
    assert_eq!(c.command("QUIT"), "221 2.0.0 Bye\r\n");

    let mut conn = mta.finished();
    let header = conn.received[..28].to_vec();
    let client_addr = c.stream.local_addr().unwrap();
    let mut want_header =
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\x7f\x00\x00\x01\x7f\x00\x00\x01".to_vec();
    want_header.extend_from_slice(&client_addr.port().to_be_bytes());
    want_header.extend_from_slice(&g.server.addr.port().to_be_bytes());
    assert_eq!(
        header, want_header,
        "PROXY v2: the client's address and port"
    );
    let commands = String::from_utf8(conn.received.split_off(28)).unwrap();
    assert_eq!(
        commands,
        format!(
            "EHLO client.test\r\nMAIL FROM:<sender@example.net> RET=HDRS ENVID=QQ314159 \
             SIZE=100\r\n{rcpt1}\r\nRCPT TO:<rcpt2@example.org>\r\nDATA\r\n{data}QUIT\r\n"
        )
    );
    let time = time_of(&written);
    let t = mtqpd::protocol::date::Timestamp::parse_rfc3339(time.as_bytes()).unwrap();
    assert!(
        (before..=after).contains(&t.unix),
        "{time} not within the test"
    );
    assert_eq!(written, expected_lines(&time, "s3cret", "127.0.0.1"));
}

/// A message larger than every socket buffer between client and MTA (Linux lets loopback buffers
/// grow to 4 MiB to send and 6 MiB to receive), to an MTA that reads only after a pause: the
/// gate's writes to the MTA would block, it waits for writability (which it watches only from
/// then on) and relays every octet, in order.
#[test]
fn a_message_larger_than_the_socket_buffers_reaches_a_slow_mta_whole() {
    let line = format!("{}\r\n", "x".repeat(998));
    let body: String = line.repeat(16 * 1024);
    let mta = FakeMta::start(|conn| {
        conn.proxy_header();
        conn.send(BANNER);
        for reply in ["250 mta.test\r\n", "250 2.1.0 Ok\r\n", "250 2.1.5 Ok\r\n"] {
            conn.line();
            conn.send(reply);
        }
        assert_eq!(conn.line(), "DATA\r\n");
        conn.send("354 End data with <CR><LF>.<CR><LF>\r\n");
        std::thread::sleep(std::time::Duration::from_millis(500));
        let mut data = Vec::new();
        let mut chunk = [0u8; 65536];
        while !data.ends_with(b"\r\n.\r\n") {
            let n = std::io::Read::read(&mut conn.stream, &mut chunk).unwrap();
            assert!(n > 0, "closed inside the data");
            data.extend_from_slice(&chunk[..n]);
        }
        conn.received = data;
        conn.send(QUEUED);
    });
    let g = gate("gate-large", &mta, &[]);
    let mut c = g.client();
    assert_eq!(c.reply(), BANNER);
    assert_eq!(c.command("HELO client.test"), "250 mta.test\r\n");
    assert_eq!(c.command("MAIL FROM:<a@example.net>"), "250 2.1.0 Ok\r\n");
    assert_eq!(c.command("RCPT TO:<b@example.org>"), "250 2.1.5 Ok\r\n");
    assert_eq!(c.command("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    let writer = {
        let mut stream = c.stream.try_clone().unwrap();
        let data = format!("{body}.\r\n");
        std::thread::spawn(move || std::io::Write::write_all(&mut stream, data.as_bytes()))
    };
    assert_eq!(c.reply(), QUEUED);
    writer.join().unwrap().unwrap();
    let conn = mta.finished();
    assert_eq!(conn.received.len(), body.len() + 3);
    assert!(conn.received == format!("{body}.\r\n").into_bytes());
}

/// Under strace: the gate's fdatasync of the accept log returns before it writes the MTA's 250
/// to the client.
#[test]
fn the_native_lines_are_durable_before_the_client_sees_250() {
    if !strace_usable() {
        assert!(
            std::env::var_os("CI").is_none(),
            "strace is missing under CI"
        );
        eprintln!("skipped: no strace");
        return;
    }
    let mta = FakeMta::start(postfix_like);
    let dir = TempDir::new("gate-durable");
    let log = dir.path("accept.log");
    let trace = dir.path("trace");
    let mut cmd = Command::new("strace");
    cmd.args([
        "-f",
        "-qq",
        "-s",
        "48",
        "-e",
        "trace=fdatasync,write,sendto,writev",
    ])
    .arg("-o")
    .arg(&trace)
    .arg(env!("CARGO_BIN_EXE_mtqpd"))
    .args(["gate", "--listen", "127.0.0.1:0", "--mta", &mta.mta_arg()])
    .arg("--accept-log")
    .arg(&log)
    .stdout(Stdio::null());
    let server = Server::spawn_until(cmd, "mtqpd gate: listening on ");
    let mut c = Smtp::connect(server.addr);
    c.reply();
    c.command("EHLO client.test");
    let mail = format!(
        "MAIL FROM:<s@example.net> ENVID=QQ314159 MTRK={}",
        certifier("k")
    );
    c.command(&mail);
    c.command("RCPT TO:<r@example.org>");
    c.command("DATA");
    c.send(b"x\r\n.\r\n");
    assert_eq!(c.reply(), QUEUED);
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("event=accept"));
    c.command("QUIT");
    // strace's child is the gate: stop it, and strace exits with it (killing strace would leave
    // the gate running).
    let strace = server.pid();
    let children = std::fs::read_to_string(format!("/proc/{strace}/task/{strace}/children"))
        .expect("strace's children");
    let gate_pid = children
        .split_whitespace()
        .next()
        .expect("the gate under strace");
    let killed = Command::new("kill")
        .args(["-TERM", gate_pid])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let (status, stderr) = server.stop("TERM");
    assert!(
        status.success() || status.code().is_none(),
        "strace: {status}\n{stderr}"
    );
    let trace = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<&str> = trace.lines().collect();
    let find = |what: &dyn Fn(&str) -> bool, name: &str| {
        lines
            .iter()
            .position(|l| what(l))
            .unwrap_or_else(|| panic!("no {name} in the trace:\n{trace}"))
    };
    let log_write = find(&|l| l.contains("\"mtqp: event=accept"), "accept-log write");
    let synced = find(
        &|l| l.contains("fdatasync") && l.trim_end().ends_with("= 0"),
        "completed fdatasync",
    );
    let relayed = find(
        &|l| l.contains("\"250 2.0.0 Ok: queued as"),
        "write of the 250",
    );
    assert!(
        log_write < synced && synced < relayed,
        "write {log_write}, fdatasync {synced}, 250 {relayed}:\n{trace}"
    );
}

#[test]
fn pipelined_commands_go_to_the_mta_one_at_a_time_and_replies_come_back_in_order() {
    let quiet = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&quiet);
    let mta = FakeMta::start(move |conn| {
        conn.proxy_header();
        conn.send(BANNER);
        conn.line();
        conn.send(EHLO_REPLY);
        for reply in [
            "250 2.1.0 sender ok\r\n",
            "250 2.1.5 first ok\r\n",
            "250 2.1.5 second ok\r\n",
        ] {
            conn.line();
            // Nothing more may come while this command is unanswered.
            seen.lock()
                .unwrap()
                .push(conn.quiet_for(Duration::from_millis(200)));
            conn.send(reply);
        }
        conn.line();
        conn.send("354 go\r\n");
        conn.data();
        conn.send(QUEUED);
        conn.line();
        conn.send("221 bye\r\n");
    });
    let g = gate("gate-pipelined", &mta, &[]);
    let mut c = g.client();
    c.reply();
    c.command("EHLO client.test");
    c.send(b"MAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n");
    assert_eq!(c.reply(), "250 2.1.0 sender ok\r\n");
    assert_eq!(c.reply(), "250 2.1.5 first ok\r\n");
    assert_eq!(c.reply(), "250 2.1.5 second ok\r\n");
    assert_eq!(c.reply(), "354 go\r\n");
    c.send(b"body\r\n.\r\nQUIT\r\n");
    assert_eq!(c.reply(), QUEUED);
    assert_eq!(c.reply(), "221 bye\r\n");
    mta.finished();
    assert_eq!(*quiet.lock().unwrap(), vec![true, true, true]);
    assert_eq!(g.accept_log(), "", "no MTRK: nothing is logged");
}

#[test]
fn nothing_pipelined_after_starttls_reaches_the_mta() {
    let (pki, ca, ca_key) = pki::Pki::new("gate-tls-pki");
    let leaf = pki.leaf(&ca, &ca_key, "gate", &["gate.test"]);
    let mta = FakeMta::start(postfix_like);
    let g = gate(
        "gate-starttls",
        &mta,
        &["--tls-cert", &leaf.cert, "--tls-key", &leaf.key],
    );
    let mut c = g.client();
    c.reply();
    let ehlo = c.command("EHLO client.test");
    assert!(
        ehlo.ends_with("250-SMTPUTF8\r\n250-STARTTLS\r\n250 MTRK\r\n"),
        "{ehlo}"
    );
    c.send(b"STARTTLS\r\nMAIL FROM:<injected@example.net>\r\n");
    assert_eq!(c.reply(), "220 2.0.0 Ready to start TLS\r\n");
    let name = rustls::pki_types::ServerName::try_from("gate.test").unwrap();
    let conn = rustls::ClientConnection::new(pki.client_config(), name).unwrap();
    let mut tls = Smtp::wrap(rustls::StreamOwned::new(conn, c.stream));
    assert_eq!(
        tls.command("MAIL FROM:<early@example.net>"),
        "503 5.5.1 gate.test Error: send HELO/EHLO first\r\n"
    );
    let ehlo = tls.command("EHLO client.test");
    assert!(
        ehlo.ends_with("250-SMTPUTF8\r\n250 MTRK\r\n"),
        "no STARTTLS under TLS: {ehlo}"
    );
    assert_eq!(
        tls.command("STARTTLS"),
        "554 5.5.1 gate.test Error: TLS already active\r\n"
    );
    assert_eq!(
        tls.command("MAIL FROM:<good@example.net>"),
        "250 2.1.0 Ok\r\n"
    );
    assert_eq!(tls.command("QUIT"), "221 2.0.0 Bye\r\n");
    let conn = mta.finished();
    assert_eq!(
        String::from_utf8_lossy(&conn.received[28..]),
        "EHLO client.test\r\nEHLO client.test\r\nMAIL FROM:<good@example.net>\r\nQUIT\r\n"
    );
}

#[test]
fn bare_line_ends_are_normalised_and_a_smuggled_end_of_data_is_stuffed() {
    let mta = FakeMta::start(postfix_like);
    let g = gate("gate-smuggle", &mta, &[]);
    let mut c = g.client();
    c.reply();
    c.command("EHLO client.test");
    c.command("MAIL FROM:<a@example.net>");
    c.command("RCPT TO:<b@example.org>");
    c.command("DATA");
    // The classic smuggling payload: a second transaction behind `LF . LF`.
    c.send(b"Subject: one\r\n\r\nbody\n.\nMAIL FROM:<forged@example.net>\r\nRCPT TO:<x@example.org>\r\nDATA\r\nlone\rcr\r\n.\r\n");
    assert_eq!(c.reply(), QUEUED, "one message, one reply");
    assert_eq!(c.command("QUIT"), "221 2.0.0 Bye\r\n");
    let conn = mta.finished();
    let received = String::from_utf8_lossy(&conn.received[28..]).into_owned();
    assert_eq!(
        received,
        "EHLO client.test\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n\
         Subject: one\r\n\r\nbody\r\n..\r\nMAIL FROM:<forged@example.net>\r\n\
         RCPT TO:<x@example.org>\r\nDATA\r\nlone\r\ncr\r\n.\r\nQUIT\r\n"
    );
    let (status, stderr) = g.server.stop("TERM");
    assert!(status.success());
    assert!(
        stderr.contains("bare-line-ends 3 dots-stuffed 1"),
        "{stderr}"
    );
}

#[test]
fn a_desynchronised_mta_ends_the_session_with_421() {
    let mta = FakeMta::start(|conn| {
        conn.proxy_header();
        conn.send(BANNER);
        conn.line();
        // Two replies to one command.
        conn.send("250 mta.test\r\n250 smuggled\r\n");
        conn.until_closed();
    });
    let g = gate("gate-desync", &mta, &[]);
    let mut c = g.client();
    c.reply();
    c.send(b"EHLO client.test\r\n");
    assert_eq!(
        c.read_to_close(),
        "421 4.4.0 gate.test Error: the mail server's reply was not understood\r\n"
    );
    mta.finished();
}

#[test]
fn the_mta_s_own_421_is_relayed_as_it_is() {
    let mta = FakeMta::start(|conn| {
        conn.proxy_header();
        conn.send(BANNER);
        conn.line();
        conn.send(EHLO_REPLY);
        conn.send("421 4.4.2 mta.test Error: timeout exceeded\r\n");
        conn.until_closed();
    });
    let g = gate("gate-mta-421", &mta, &[]);
    let mut c = g.client();
    c.reply();
    c.command("EHLO client.test");
    assert_eq!(
        c.read_to_close(),
        "421 4.4.2 mta.test Error: timeout exceeded\r\n"
    );
    mta.finished();
}

#[test]
fn xclient_xforward_bdat_auth_and_unknown_verbs_never_reach_the_mta() {
    let mta = FakeMta::start(postfix_like);
    let g = gate("gate-verbs", &mta, &[]);
    let mut c = g.client();
    c.reply();
    c.command("EHLO client.test");
    for line in [
        "XCLIENT ADDR=10.0.0.1 NAME=trusted.example",
        "XFORWARD ADDR=10.0.0.1",
        "BDAT 4 LAST",
        "AUTH PLAIN AHVzZXIAcGFzcw",
        "ETRN example.org",
        "STARTTLS",
        "FOO",
    ] {
        assert_eq!(
            c.command(line),
            "502 5.5.1 gate.test Error: command not implemented\r\n",
            "{line}"
        );
    }
    assert_eq!(c.command("NOOP"), "250 2.0.0 Ok\r\n");
    assert_eq!(
        c.command("MAIL FROM:<a@b>\rRCPT TO:<c@d>"),
        "500 5.5.2 gate.test Error: bad syntax\r\n"
    );
    c.command("QUIT");
    let conn = mta.finished();
    assert_eq!(
        String::from_utf8_lossy(&conn.received[28..]),
        "EHLO client.test\r\nNOOP\r\nQUIT\r\n"
    );
}

#[test]
fn a_malformed_mtrk_is_refused_and_mtrk_without_envid_flows_untracked() {
    let mta = FakeMta::start(postfix_like);
    let g = gate("gate-mtrk", &mta, &[]);
    let mut c = g.client();
    c.reply();
    c.command("EHLO client.test");
    let cert = certifier("x");
    assert_eq!(
        c.command(&format!("MAIL FROM:<a@example.net> ENVID=e MTRK={cert}=")),
        "501 5.5.4 Malformed MTRK parameter: MTRK certifier is not base64 without padding\r\n"
    );
    assert_eq!(
        c.command(&format!(
            "MAIL FROM:<a@example.net> ENVID=e MTRK={cert} MTRK={cert}"
        )),
        "501 5.5.4 Malformed MTRK parameter: MTRK given twice\r\n"
    );
    assert_eq!(
        c.command(&format!("MAIL FROM:<a@example.net> MTRK={cert}")),
        "250 2.1.0 Ok\r\n"
    );
    c.command("RCPT TO:<b@example.org>");
    c.command("DATA");
    c.send(b"x\r\n.\r\n");
    assert_eq!(c.reply(), QUEUED);
    c.command("QUIT");
    let conn = mta.finished();
    assert_eq!(
        String::from_utf8_lossy(&conn.received[28..]),
        "EHLO client.test\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n\
         x\r\n.\r\nQUIT\r\n"
    );
    assert_eq!(g.accept_log(), "");
    let (status, stderr) = g.server.stop("TERM");
    assert!(status.success());
    assert!(
        stderr.contains("MAIL with MTRK flows untracked: mtrk-without-envid"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "transactions 1 tracked 0 untracked (mtrk-without-envid 1, bad-envid 0, \
                         certifier-not-20-octets 0, no-queue-id 0); mtrk-malformed 2"
        ),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_mta_is_a_421_banner_naming_the_gate() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = TempDir::new("gate-unreachable");
    let log = dir.path("accept.log");
    let mta = format!("127.0.0.1:{port}");
    // With PROXY v2 the refused connection shows when the header is written; without, as the
    // MTA socket's error event.
    for proxy in ["v2", "none"] {
        let server = Server::start_gate(&[
            "--mta",
            &mta,
            "--accept-log",
            log.to_str().unwrap(),
            "--hostname",
            "gate.test",
            "--proxy-protocol",
            proxy,
        ]);
        let mut c = Smtp::connect(server.addr);
        assert_eq!(
            c.read_to_close(),
            "421 4.3.2 gate.test Service not available, closing transmission channel\r\n",
            "--proxy-protocol {proxy}"
        );
    }
    // A UNIX-domain socket that is not there: the connect fails at once.
    let mta = format!("unix:{}", dir.path("no-such.sock").display());
    let server = Server::start_gate(&["--mta", &mta, "--accept-log", log.to_str().unwrap()]);
    let mut c = Smtp::connect(server.addr);
    assert!(
        c.read_to_close().starts_with("421 4.3.2 "),
        "a missing socket"
    );
    let (status, stderr) = server.stop("TERM");
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "mtqpd gate: warning: --mta {mta}: No such file or directory (os error 2); every \
             session is told 421 until it is there"
        )),
        "said at start-up: {stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "cannot reach the MTA at {mta}: No such file or directory"
        )),
        "{stderr}"
    );
}

/// An MTA whose UNIX-domain socket has a full listen backlog (every smtpd busy, none
/// accepting): the next session is told 421 at once, as Postfix's postscreen tells clients
/// when all server ports are busy, where TCP would leave it waiting; the session already queued
/// in the backlog is not disturbed.
#[test]
fn a_full_unix_socket_backlog_is_a_421_banner() {
    use socket2::{Domain, SockAddr, Socket, Type};
    let dir = TempDir::new("gate-unix-backlog");
    let path = dir.path("busy.sock");
    let listener = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
    listener.bind(&SockAddr::unix(&path).unwrap()).unwrap();
    // Linux queues one connection more than the backlog: with 0, the second one is refused.
    listener.listen(0).unwrap();
    let mta = format!("unix:{}", path.display());
    let log = dir.path("accept.log");
    // One event loop: the two clients' MTA connections are made in the order they connect.
    let server = Server::start_gate(&[
        "--mta",
        &mta,
        "--accept-log",
        log.to_str().unwrap(),
        "--hostname",
        "gate.test",
        "--threads",
        "1",
    ]);
    let first = Smtp::connect(server.addr);
    let mut second = Smtp::connect(server.addr);
    assert_eq!(
        second.read_to_close(),
        "421 4.3.2 gate.test Service not available, closing transmission channel\r\n"
    );
    // The first session's connection waits in the backlog: the MTA accepts it and gets the
    // PROXY header naming the first client.
    let (queued, _) = listener.accept().unwrap();
    let mut queued = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(queued));
    let mut header = [0u8; 28];
    std::io::Read::read_exact(&mut queued, &mut header).unwrap();
    let port = first.stream.local_addr().unwrap().port();
    assert_eq!(header[24..26], port.to_be_bytes(), "{header:?}");
    let (status, stderr) = server.stop("TERM");
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot reach the MTA at {mta}: its socket's listen backlog is full"
        )),
        "{stderr}"
    );
}

#[test]
fn an_accept_log_that_cannot_be_written_still_lets_the_mail_through() {
    let mta = FakeMta::start(postfix_like);
    let server = Server::start_gate(&["--mta", &mta.mta_arg(), "--accept-log", "/dev/full"]);
    let mut c = Smtp::connect(server.addr);
    c.reply();
    c.command("EHLO client.test");
    c.command(&format!(
        "MAIL FROM:<a@example.net> ENVID=e1 MTRK={}",
        certifier("x")
    ));
    c.command("RCPT TO:<b@example.org>");
    c.command("DATA");
    c.send(b"x\r\n.\r\n");
    assert_eq!(
        c.reply(),
        QUEUED,
        "the MTA has the message: the 250 is relayed"
    );
    c.command("QUIT");
    let (status, stderr) = server.stop("TERM");
    assert!(status.success());
    assert!(
        stderr.contains("accept log: cannot write 1 tracked message(s)"),
        "{stderr}"
    );
    assert!(stderr.contains("accept-log write failures 1"), "{stderr}");
}

#[test]
fn sigterm_tells_idle_sessions_421_and_exits_0_with_its_counters() {
    let mta = FakeMta::start(postfix_like);
    let g = gate("gate-sigterm", &mta, &[]);
    let mut c = g.client();
    c.reply();
    c.command("EHLO client.test");
    let (status, stderr) = g.server.stop("TERM");
    assert!(status.success(), "{stderr}");
    assert_eq!(
        c.read_to_close(),
        "421 4.3.2 gate.test Service shutting down, closing transmission channel\r\n"
    );
    assert!(
        stderr.contains("mtqpd gate: SIGTERM: shutting down"),
        "{stderr}"
    );
    assert!(stderr.contains("mtqpd gate: sessions 1 "), "{stderr}");
    assert!(stderr.contains("  ehlo/helo           1 "), "{stderr}");
}

#[test]
fn sessions_per_address_are_limited_and_proxy_none_warns() {
    let mta = FakeMta::start(|conn| {
        conn.send(BANNER);
        conn.until_closed();
    });
    let g = gate(
        "gate-per-ip",
        &mta,
        &["--max-sessions-per-ip", "1", "--proxy-protocol", "none"],
    );
    let mut first = g.client();
    assert_eq!(
        first.reply(),
        BANNER,
        "no PROXY header expected by this MTA"
    );
    let mut second = g.client();
    assert_eq!(
        second.read_to_close(),
        "421 4.7.0 gate.test Error: too many sessions from your address\r\n"
    );
    assert!(g.server.stderr().contains("WARNING: --proxy-protocol none"));
}

#[test]
fn bad_settings_are_one_line() {
    for (args, want) in [
        (
            vec!["gate", "--accept-log", "/tmp/x"],
            "mtqpd: --mta HOST:PORT is required",
        ),
        (
            vec!["gate", "--mta", "127.0.0.1:1"],
            "mtqpd: --accept-log PATH is required",
        ),
        (
            vec![
                "gate",
                "--mta",
                "unix:var/mta.sock",
                "--accept-log",
                "/tmp/x",
            ],
            "mtqpd: --mta unix:var/mta.sock: the socket's path must be absolute",
        ),
        (
            // The listeners are bound before the accept log is opened (as --user, when
            // given): a free port, so that the accept log is what fails.
            vec![
                "gate",
                "--listen",
                "127.0.0.1:0",
                "--mta",
                "127.0.0.1:1",
                "--accept-log",
                "/nonexistent/dir/a.log",
            ],
            "mtqpd: cannot open the accept log /nonexistent/dir/a.log",
        ),
    ] {
        let (status, stderr) = run_to_exit(&args);
        assert_eq!(status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.starts_with(want), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}
