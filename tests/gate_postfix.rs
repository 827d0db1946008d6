//! End to end through `mtqpd gate` and the real Postfix that `.ci/postfix-setup.sh` configures:
//! the gate on 127.0.0.1 (port 0) in front of Postfix's smtpd on 127.0.0.1:10025, which reads
//! the client's address from the gate's PROXY v2 header (`smtpd_upstream_proxy_protocol =
//! haproxy`); `mtqpd serve` reads the gate's accept log (`native:`) beside Postfix's log.
//!
//! An SMTP client on 127.0.0.2 sends one message with `ENVID` and `MTRK` to a delivered, a
//! bounced (unknown local user, bounced after acceptance) and a deferred recipient (a domain
//! routed to a closed port), the delivered one with an `ORCPT` whose xtext hides a `+`. Checked:
//! the EHLO reply the gate edits, the final 250, Postfix's log naming the real client, the native
//! lines the gate wrote, and `mtqpd track` showing each recipient with the ORCPT the client gave.
//! Then a message without MTRK flows and adds nothing to the accept log, and with `mtqpd serve`
//! stopped mail still flows through the gate (and is tracked once serve runs again). A second
//! test takes the other hop the gate offers: Postfix's smtpd on a UNIX-domain socket.
//!
//! It runs only when `MTQPD_REAL_POSTFIX=1` (what `.ci/run` exports after the setup script
//! succeeded); otherwise it says it was skipped, except under CI (`CI` set), where a missing
//! Postfix is a failure. Envids, secrets and Message-IDs are unique per run: the Postfix log is
//! read from its start and holds earlier runs.

mod common;
use common::postfix;
use common::real_mta::{self, native_fields, queue_id, track, track_until, Session};
use common::*;

use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use mtqpd::protocol::date::Timestamp;
use mtqpd::protocol::secret::{decode_hash, encode, sha1};
use mtqpd::protocol::xtext;

/// Postfix's smtpd for the gate: PROXY protocol required.
const GATE_MTA: &str = "127.0.0.1:10025";
/// The same on a UNIX-domain socket (master.cf service `mtqpd-smtpd`, type unix, public/).
const GATE_MTA_SOCKET: &str = "unix:/var/spool/postfix/public/mtqpd-smtpd";
/// Postfix's plain smtpd (the benchmark's direct path): here, the EHLO reply the gate edits.
const DIRECT_MTA: &str = "127.0.0.1:10026";
/// The client's address: not the gate's, so Postfix logging it shows PROXY v2 worked.
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// The delivered recipient (a local user the setup creates), and the ORCPT the client gives for
/// it: xtext, `+2B` is `+`.
const DELIVERED: &str = "mtqpdtest@localhost";
const ORCPT: &str = "rfc822;user+2Bx@example.org";
/// An unknown local user: smtpd accepts it, local(8) bounces it (5.1.1).
const BOUNCED: &str = "nosuchuser@localhost";
/// Routed to 127.0.0.1:9, where nothing listens: deferred (4.4.1).
const DEFERRED: &str = "someone@deferred.example";
const SENDER: &str = "sender@example.net";

/// The EHLO keywords of a reply (each line after the first, without `250-`/`250 `).
fn ehlo_keywords(reply: &str) -> Vec<String> {
    reply.lines().skip(1).map(|l| l[4..].to_string()).collect()
}

/// Waits until Postfix logged `QID: to=<rcpt>, … status=sent`.
fn wait_delivered(qid: &str, rcpt: &str) {
    let needle = format!(" {qid}: to=<{rcpt}>, ");
    let found = eventually_or_none(|| {
        postfix::lines_with(&needle)
            .iter()
            .any(|l| l.contains(", status=sent "))
            .then_some(())
    });
    assert!(
        found.is_some(),
        "Postfix never delivered {qid} to {rcpt}:\n{}",
        postfix::lines_with(qid).join("\n")
    );
}

/// Postfix logged the client's own address (127.0.0.2, from the gate's PROXY v2 header) for
/// queue id `qid`, not the gate's.
fn assert_postfix_logged_the_client(qid: &str) {
    let client_line = eventually_or_none(|| {
        postfix::lines_with(&format!(" {qid}: client="))
            .into_iter()
            .next()
    })
    .unwrap_or_else(|| panic!("no client= line for {qid}"));
    assert!(
        client_line.ends_with("[127.0.0.2]"),
        "Postfix did not log the real client: {client_line}"
    );
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

/// A tracking secret (raw octets) whose MTRK certifier holds a `+`, so that the gate's xtext of
/// it (`+2B`) is exercised; and that certifier: the base64 SHA-1, unpadded (27 characters).
fn secret_with_plus(run: &str, tag: &str) -> (String, String) {
    (0..1000)
        .map(|i| format!("secret-{tag}-{run}-{i}"))
        .map(|secret| {
            let certifier = encode(&sha1(secret.as_bytes()))
                .trim_end_matches('=')
                .to_string();
            (secret, certifier)
        })
        .find(|(_, certifier)| certifier.contains('+'))
        .expect("a certifier with a '+' in 1000 tries")
}

#[test]
fn gate_in_front_of_postfix_tracks_with_orcpt_and_client_address() {
    if !postfix::enabled("gate_postfix") {
        return;
    }
    let run = real_mta::run_id();
    let dir = TempDir::new("gate-postfix");
    let accept_log = dir.path("accept.log");
    let accept_arg = accept_log.display().to_string();
    let gate = Server::start_gate(&["--mta", GATE_MTA, "--accept-log", &accept_arg]);
    // The gate creates its accept log at start-up, readable by its group only.
    let mode = std::fs::metadata(&accept_log)
        .expect("the gate created its accept log")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640, "accept log mode {mode:o}");
    let serve = postfix::serve(&accept_log);

    // What Postfix itself says on its plain listener, to compare with what the gate relays.
    let mut direct = Session::connect(TcpStream::connect(DIRECT_MTA).expect("connect to Postfix"));
    let direct_ehlo = direct.command("EHLO client.example", 250);
    let direct_banner = direct.banner.clone();
    direct.quit();

    // The tracked message.
    let envid = format!("{run}.gate@envid.example");
    let (secret, certifier) = secret_with_plus(&run, "gate");
    assert_eq!(certifier.len(), 27, "{certifier}");
    let message_id = format!("{run}.gate@mtqpd-test.example");
    let mut smtp = Session::connect(connect_from(CLIENT, gate.addr));
    // The banner is Postfix's, relayed unchanged.
    assert_eq!(smtp.banner, direct_banner);
    let ehlo = smtp.command("EHLO client.example", 250);
    let keywords = ehlo_keywords(&ehlo);
    let direct_keywords = ehlo_keywords(&direct_ehlo);
    assert_eq!(ehlo.lines().next(), direct_ehlo.lines().next(), "{ehlo}");
    for k in ["MTRK", "DSN", "PIPELINING", "8BITMIME", "SMTPUTF8"] {
        assert!(keywords.iter().any(|w| w == k), "no {k} in {ehlo:?}");
    }
    for k in ["CHUNKING", "XCLIENT", "XFORWARD", "STARTTLS", "BDAT"] {
        assert!(
            !keywords.iter().any(|w| w.split(' ').next() == Some(k)),
            "{k} in {ehlo:?}"
        );
    }
    // Nothing but MTRK is added: every other keyword is Postfix's, with its parameters.
    for k in &keywords {
        assert!(
            k == "MTRK" || direct_keywords.contains(k),
            "{k} is not Postfix's: {ehlo:?} (Postfix: {direct_ehlo:?})"
        );
    }

    let before = unix_now();
    let rcpts = [
        format!("RCPT TO:<{DELIVERED}> ORCPT={ORCPT}"),
        format!("RCPT TO:<{BOUNCED}>"),
        format!("RCPT TO:<{DEFERRED}>"),
    ];
    let reply = smtp.transaction(
        &format!("MAIL FROM:<{SENDER}> ENVID={envid} MTRK={certifier}"),
        &rcpts,
        &message_id,
    );
    let after = unix_now();
    let qid = queue_id(&reply);
    let _cleanup = postfix::QueueCleanup(vec![qid.clone()]);
    smtp.quit();
    eprintln!(
        "gate_postfix: tracked message {envid}: {}",
        reply.trim_end()
    );

    // Postfix saw the client's own address, from the PROXY v2 header.
    assert_postfix_logged_the_client(&qid);

    // The native lines: durable before the 250, so there already. One accept line, one line
    // per recipient.
    let lines = read_lines(&accept_log);
    let accepts: Vec<_> = lines
        .iter()
        .filter(|l| l.starts_with("mtqp: event=accept "))
        .collect();
    assert_eq!(accepts.len(), 1, "{lines:#?}");
    let accept = native_fields(accepts[0]);
    assert_eq!(accept.get("envid"), Some(&envid.as_str()), "{accept:?}");
    // mtrk= is the hash B in base64 (padded or not) as xtext: the certifier's '+' is +2B.
    let mtrk = accept.get("mtrk").copied().unwrap_or_default();
    assert!(mtrk.contains("+2B"), "{accept:?}");
    let mut b64 = Vec::new();
    xtext::decode_append(mtrk.as_bytes(), &mut b64, 64).expect("mtrk= is xtext");
    assert_eq!(
        decode_hash(&b64),
        Some(sha1(secret.as_bytes())),
        "mtrk= is not the certifier {certifier}: {accept:?}"
    );
    assert_eq!(accept.get("queue"), Some(&qid.as_str()), "{accept:?}");
    assert_eq!(accept.get("client"), Some(&"127.0.0.2"), "{accept:?}");
    let time = accept
        .get("time")
        .and_then(|t| Timestamp::parse_rfc3339(t.as_bytes()))
        .unwrap_or_else(|| panic!("no RFC 3339 time in {accept:?}"));
    assert!(
        (before..=after).contains(&time.unix),
        "accept time {} is not between {} and {}",
        accept["time"],
        rfc3339(before),
        rfc3339(after)
    );
    for (rcpt, orcpt) in [(DELIVERED, Some(ORCPT)), (BOUNCED, None), (DEFERRED, None)] {
        let of_rcpt: Vec<_> = lines
            .iter()
            .filter(|l| !l.starts_with("mtqp: event=accept "))
            .map(|l| native_fields(l))
            .filter(|f| f.get("rcpt") == Some(&rcpt))
            .collect();
        assert_eq!(of_rcpt.len(), 1, "{rcpt}: {lines:#?}");
        assert_eq!(
            of_rcpt[0].get("orcpt").copied(),
            orcpt,
            "{rcpt}: {lines:#?}"
        );
    }
    assert_eq!(lines.len(), 4, "{lines:#?}");

    // What the sender learns over MTQP: each recipient, the ORCPT it gave decoded.
    let body = track_until(
        &serve,
        &envid,
        &secret,
        &[
            (
                DELIVERED,
                &[
                    "Original-Recipient: rfc822; user+x@example.org",
                    "Action: delivered",
                    "Status: 2.0.0",
                ],
            ),
            (BOUNCED, &["Action: failed", "Status: 5.1.1"]),
            (DEFERRED, &["Action: delayed", "Status: 4.4.1"]),
        ],
        11, // some recipient failed
        || postfix::lines_with(&qid).join("\n"),
    );
    eprintln!("gate_postfix: mtqpd track {envid} ->\n{body}");
    assert!(
        body.contains(&format!("Original-Envelope-Id: {envid}\n")),
        "{body}"
    );
    assert_eq!(body.matches("Final-Recipient:").count(), 3, "{body}");
    // Only the recipient the client gave an ORCPT for has an Original-Recipient.
    assert_eq!(body.matches("Original-Recipient:").count(), 1, "{body}");
    // The delivered copy's body is the one the client sent, dot-unstuffed once.
    let mailbox = std::fs::read_to_string("/var/mail/mtqpdtest").unwrap_or_default();
    let copy = mailbox
        .split(&format!("Message-ID: <{message_id}>\n"))
        .nth(1)
        // Up to the next message's "From " line (local(8) writes a body line that starts so
        // as ">From "): the blank line that ends each message stays with the copy.
        .and_then(|rest| rest.split("\nFrom ").next())
        .unwrap_or_else(|| panic!("no copy of <{message_id}> in /var/mail/mtqpdtest"));
    assert!(copy.contains(real_mta::BODY_DELIVERED), "{copy}");
    // A wrong secret learns nothing.
    assert_eq!(track(serve.addr, &envid, "not the secret").exit, Some(12));

    // A message without MTRK flows unchanged, and the gate writes nothing for it.
    let log_before = std::fs::read(&accept_log).expect("accept log");
    let plain_id = format!("{run}.plain@mtqpd-test.example");
    let mut smtp = Session::connect(connect_from(CLIENT, gate.addr));
    smtp.command("EHLO client.example", 250);
    let reply = smtp.transaction(
        &format!("MAIL FROM:<{SENDER}> ENVID={run}.plain@envid.example"),
        &[format!("RCPT TO:<{DELIVERED}>")],
        &plain_id,
    );
    smtp.quit();
    let plain_qid = queue_id(&reply);
    wait_delivered(&plain_qid, DELIVERED);
    assert_eq!(
        std::fs::read(&accept_log).expect("accept log"),
        log_before,
        "the gate wrote for a message without MTRK"
    );

    // With mtqpd serve stopped, mail still flows through the gate and is tracked: the accept
    // line waits in the accept log for the next serve.
    let (status, stderr) = serve.stop("TERM");
    assert!(status.success(), "mtqpd serve: {status}\n{stderr}");
    let late_envid = format!("{run}.late@envid.example");
    let (late_secret, late_certifier) = secret_with_plus(&run, "late");
    let mut smtp = Session::connect(connect_from(CLIENT, gate.addr));
    smtp.command("EHLO client.example", 250);
    let reply = smtp.transaction(
        &format!("MAIL FROM:<{SENDER}> ENVID={late_envid} MTRK={late_certifier}"),
        &[format!("RCPT TO:<{DELIVERED}>")],
        &format!("{run}.late@mtqpd-test.example"),
    );
    smtp.quit();
    let late_qid = queue_id(&reply);
    wait_delivered(&late_qid, DELIVERED);
    let lines = read_lines(&accept_log);
    assert!(
        lines
            .iter()
            .filter(|l| l.starts_with("mtqp: event=accept "))
            .map(|l| native_fields(l))
            .any(|f| f.get("envid") == Some(&late_envid.as_str())
                && f.get("queue") == Some(&late_qid.as_str())),
        "no accept line for {late_envid} in queue {late_qid}: {lines:#?}"
    );
    let serve = postfix::serve(&accept_log);
    track_until(
        &serve,
        &late_envid,
        &late_secret,
        &[(DELIVERED, &["Action: delivered", "Status: 2.0.0"])],
        0,
        || postfix::lines_with(&late_qid).join("\n"),
    );

    let (status, stderr) = gate.stop("TERM");
    assert!(status.success(), "mtqpd gate: {status}\n{stderr}");
    eprintln!("gate_postfix: mtqpd gate at exit:\n{stderr}");
}

/// `--mta unix:PATH`: the gate hands the session to Postfix's smtpd over a UNIX-domain socket;
/// the PROXY v2 header still tells Postfix the client's TCP address, and the message is
/// tracked like one over TCP.
#[test]
fn gate_to_postfix_over_a_unix_socket_tracks_with_the_client_address() {
    if !postfix::enabled("gate_postfix") {
        return;
    }
    let run = real_mta::run_id();
    let dir = TempDir::new("gate-postfix-unix");
    let accept_log = dir.path("accept.log");
    let accept_arg = accept_log.display().to_string();
    let gate = Server::start_gate(&["--mta", GATE_MTA_SOCKET, "--accept-log", &accept_arg]);
    let serve = postfix::serve(&accept_log);

    let envid = format!("{run}.unix@envid.example");
    let (secret, certifier) = secret_with_plus(&run, "unix");
    let mut smtp = Session::connect(connect_from(CLIENT, gate.addr));
    let ehlo = smtp.command("EHLO client.example", 250);
    assert!(ehlo_keywords(&ehlo).iter().any(|k| k == "MTRK"), "{ehlo}");
    let reply = smtp.transaction(
        &format!("MAIL FROM:<{SENDER}> ENVID={envid} MTRK={certifier}"),
        &[
            format!("RCPT TO:<{DELIVERED}> ORCPT={ORCPT}"),
            format!("RCPT TO:<{DEFERRED}>"),
        ],
        &format!("{run}.unix@mtqpd-test.example"),
    );
    let qid = queue_id(&reply);
    let _cleanup = postfix::QueueCleanup(vec![qid.clone()]);
    smtp.quit();

    assert_postfix_logged_the_client(&qid);
    let lines = read_lines(&accept_log);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let accept = native_fields(&lines[0]);
    assert_eq!(accept.get("event"), Some(&"accept"), "{accept:?}");
    assert_eq!(accept.get("queue"), Some(&qid.as_str()), "{accept:?}");
    assert_eq!(accept.get("client"), Some(&"127.0.0.2"), "{accept:?}");

    track_until(
        &serve,
        &envid,
        &secret,
        &[
            (
                DELIVERED,
                &[
                    "Original-Recipient: rfc822; user+x@example.org",
                    "Action: delivered",
                ],
            ),
            (DEFERRED, &["Action: delayed", "Status: 4.4.1"]),
        ],
        10, // a recipient still on its way
        || postfix::lines_with(&qid).join("\n"),
    );
    let (status, stderr) = gate.stop("TERM");
    assert!(status.success(), "mtqpd gate: {status}\n{stderr}");
}
