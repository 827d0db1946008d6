//! Real MTA log lines through the real server: the fixture logs of Postfix, Exim and sendmail,
//! with the native accept lines a milter or an ACL would add, give the tracking answers their
//! lines say; a corpus of damaged lines in an MTA log is counted and skipped.

mod common;
use common::*;

use std::path::Path;

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/real-logs")
        .join(name);
    std::fs::read_to_string(path).expect("fixture")
}

fn track(s: &Server, envid: &str, secret: &str) -> Vec<u8> {
    s.client()
        .roundtrip(&format!("TRACK <{envid}> {}", secret_b64(secret)))
}

/// Starts a server on `log`, its clock at `now` (RFC 3339): the fixtures' dates are fixed, and
/// their classic syslog stamps take their year from the server's clock.
fn start(format: &str, log: &Path, now: &str) -> Server {
    let arg = format!("{format}:{}", log.display());
    Server::start_caught_up_at(
        now,
        &[
            "--hostname",
            "hub.example",
            "--log-timezone",
            "UTC",
            "--log",
            &arg,
        ],
    )
}

#[test]
fn postfix_youyo_log_with_accepts_keyed_by_message_id() {
    let dir = TempDir::new("mta-postfix");
    let log = dir.path("mail.log");
    // The milter's lines come through syslog too, here before Postfix's own.
    let mut text = String::new();
    text.push_str(&format!(
        "Oct 10 15:59:28 mail mtqp-milter[9]: {}",
        accept_line(
            "2026-10-10T15:59:28Z",
            "c6e@example.com",
            "s1",
            "msgid=A40CF64D-7F2D-42E4-8A76-CBFFF64A6EB1@example.com"
        )
    ));
    text.push_str(&fixture("postfix-rfc3164-youyo-test.log"));
    // The second message's accept arrives after its delivery lines: order does not matter.
    text.push_str(&format!(
        "Oct 10 15:59:40 mail mtqp-milter[9]: {}",
        accept_line(
            "2026-10-10T15:59:29Z",
            "3d7@example.info",
            "s2",
            "msgid=f93388828093534f92d85ffe21b2a719@example.info"
        )
    ));
    std::fs::write(&log, text).unwrap();
    let s = start("postfix", &log, "2026-10-10T16:00:00Z");
    assert_eq!(
        recipients(&track(&s, "c6e@example.com", "s1")),
        ["Final-Recipient: rfc822; test@example.ddd | Action: relayed | Status: 2.0.0 | Remote-MTA: dns; example.ddd"]
    );
    assert_eq!(
        recipients(&track(&s, "3d7@example.info", "s2")),
        [
            "Final-Recipient: rfc822; test@example.to | Action: relayed | Status: 2.0.0 | Remote-MTA: dns; example.to",
            "Final-Recipient: rfc822; test2@example.to | Action: relayed | Status: 2.0.0 | Remote-MTA: dns; example.to",
        ]
    );
    // A message of the log that no accept line names is not trackable.
    assert_eq!(
        track(&s, "6526@example.aaa", "s3"),
        b"-ERR/noinfo No tracking information is available\r\n"
    );
    let (_, stderr) = s.stop("TERM");
    assert!(stderr.contains(" rejected 0 "), "{stderr}");
}

/// A real run of Debian's Postfix in CI (tests/data/real-logs/SOURCES.md): one message to five
/// kinds of recipient, its bounce, and a session through the gate.
#[test]
fn postfix_debian_ci_log_every_kind_of_recipient() {
    let dir = TempDir::new("mta-postfix-ci");
    let log = dir.path("mail.log");
    let mut text = fixture("postfix-debian-ci.log");
    for (envid, msgid) in [
        (
            "every@envid.example",
            "1796279648870822001.28170.every@mtqpd-test.example",
        ),
        (
            "late@envid.example",
            "1796279410675892038.16801.late@mtqpd-test.example",
        ),
    ] {
        text.push_str(&format!(
            "Dec 03 06:35:00 mtqpd-ci mtqp-milter[9]: {}",
            accept_line(
                "2026-12-03T06:30:11Z",
                envid,
                "s",
                &format!("msgid={msgid}")
            )
        ));
    }
    std::fs::write(&log, text).unwrap();
    let s = start("postfix", &log, "2026-12-03T07:00:00Z");
    assert_eq!(
        recipients(&track(&s, "every@envid.example", "s")),
        [
            "Final-Recipient: rfc822; mtqpdtest@localhost | Action: delivered | Status: 2.0.0",
            "Final-Recipient: rfc822; s1796279648870822001-28170@sink.example | Action: relayed | Status: 2.0.0 | Remote-MTA: dns; 127.0.0.1",
            "Final-Recipient: rfc822; r1796279648870822001-28170@retry.example | Action: delivered | Status: 2.0.0",
            "Final-Recipient: rfc822; someone@deferred.example | Action: delayed | Status: 4.4.1",
            "Final-Recipient: rfc822; nosuchuser@localhost | Action: failed | Status: 5.1.1",
        ]
    );
    assert_eq!(
        recipients(&track(&s, "late@envid.example", "s")),
        ["Final-Recipient: rfc822; mtqpdtest@localhost | Action: delivered | Status: 2.0.0"]
    );
    let (_, stderr) = s.stop("TERM");
    assert!(stderr.contains(" rejected 0 "), "{stderr}");
}

/// Real runs of Debian's Exim in CI (tests/data/real-logs/SOURCES.md), one file a scenario, each
/// message's recipient once with its last state: `log_as_local` deliveries by their address, a
/// retry delivered in place, a `.forward` pipe with `=` in its command by the address that led
/// there, and the daemon's two-line start entry read without a rejection.
#[test]
fn exim_debian_ci_logs_every_scenario() {
    let dir = TempDir::new("mta-exim-ci");
    let log = dir.path("mainlog");
    let mut text = String::new();
    for name in [
        "daemon-start",
        "delivered",
        "unknown-user",
        "retried",
        "pipe",
        "relayed",
        "dead-hop",
    ] {
        text.push_str(&fixture(&format!("exim-debian-{name}.log")));
    }
    let id = "1796279630740658049.27534";
    for tag in [
        "delivered",
        "failed",
        "retried",
        "piped",
        "relayed",
        "deferred",
    ] {
        // An ACL's logwrite line, as the gate or an application's accept would be.
        text.push_str(&format!(
            "2026-12-03 06:35:00 {}",
            accept_line(
                "2026-12-03T06:33:50Z",
                &format!("{tag}@envid.example"),
                "s",
                &format!("msgid={id}.{tag}@mtqpd-test.example")
            )
        ));
    }
    std::fs::write(&log, text).unwrap();
    let s = start("exim", &log, "2026-12-03T07:00:00Z");
    for (tag, want) in [
        (
            "delivered",
            "mtqpdtest@mtqpd-ci.example | Action: delivered | Status: 2.0.0",
        ),
        (
            "failed",
            "nosuchuser@mtqpd-ci.example | Action: failed | Status: 5.0.0",
        ),
        (
            "retried",
            "mtqpdretry@mtqpd-ci.example | Action: delivered | Status: 2.0.0",
        ),
        (
            "piped",
            "mtqpdpipe@mtqpd-ci.example | Action: delivered | Status: 2.0.0",
        ),
        (
            "relayed",
            "someone@sink.example | Action: relayed | Status: 2.0.0 | Remote-MTA: dns; 127.0.0.2",
        ),
        // The host refusing is on a line of its own, before the deferral, which names none.
        (
            "deferred",
            "someone@dead.example | Action: delayed | Status: 4.0.0",
        ),
    ] {
        assert_eq!(
            recipients(&track(&s, &format!("{tag}@envid.example"), "s")),
            [format!("Final-Recipient: rfc822; {want}")],
            "{tag}"
        );
    }
    let (_, stderr) = s.stop("TERM");
    assert!(stderr.contains(" rejected 0 "), "{stderr}");
}

#[test]
fn exim_test_log_with_accepts_keyed_by_message_id_of_exim() {
    let dir = TempDir::new("mta-exim");
    let log = dir.path("mainlog");
    let mut text = fixture("exim-testsuite-5102.log");
    // An Exim ACL's logwrite line, naming the message by $message_exim_id.
    text.push_str(&format!(
        "1999-03-02 09:44:34 {}",
        accept_line(
            "1999-03-02T09:44:33Z",
            "y@myhost.test.ex",
            "s1",
            "queue=10HmaY-000000005vi-0000"
        )
    ));
    text.push_str(&format!(
        "1999-03-02 09:44:34 {}",
        accept_line(
            "1999-03-02T09:44:33Z",
            "x@myhost.test.ex",
            "s2",
            "queue=10HmaX-000000005vi-0000"
        )
    ));
    std::fs::write(&log, text).unwrap();
    let s = start("exim", &log, "1999-03-02T10:00:00Z");
    let y = recipients(&track(&s, "y@myhost.test.ex", "s1"));
    assert_eq!(
        y,
        ["Final-Recipient: rfc822; userx@myhost.test.ex | Action: failed | Status: 5.0.0"],
        "the deferrals ended in a failure"
    );
    let x = recipients(&track(&s, "x@myhost.test.ex", "s2"));
    // `=> userx <userx@myhost.test.ex>` (`log_as_local`): the local part, then the address the
    // sender gave, which is the recipient, with no original apart.
    assert_eq!(
        x,
        ["Final-Recipient: rfc822; userx@myhost.test.ex | Action: delivered | Status: 2.0.0"]
    );
    assert!(
        !String::from_utf8_lossy(&track(&s, "x@myhost.test.ex", "s2"))
            .contains("Original-Recipient:")
    );
    let (_, stderr) = s.stop("TERM");
    assert!(stderr.contains(" rejected 0 "), "{stderr}");
}

#[test]
fn sendmail_lines_with_an_accept_keyed_by_queue_id() {
    let dir = TempDir::new("mta-sendmail");
    let log = dir.path("maillog");
    let text = format!(
        "Jul 19 13:28:35 vs184010 sm-mta[11380]: m6JDSZoG011380: from=<monit@blindgaenger.net>, size=553, class=0, nrcpts=1, msgid=<1216474115@vs184010.vserver.de>, proto=SMTP, daemon=MTA-v4, relay=localhost.localdomain [127.0.0.1]\n\
         Jul 19 13:28:35 vs184010 mtqp-milter[7]: {}\
         Jul 19 13:28:36 vs184010 sm-mta[11383]: m6JDSZoG011380: to=<mail@wzuup.com>, delay=00:00:01, xdelay=00:00:01, mailer=esmtp, pri=120553, relay=gmail-smtp-in.l.google.com. [209.85.129.27], dsn=2.0.0, stat=Sent (OK 1216474116 13si6851157fks.6)\n",
        accept_line("2008-07-19T13:28:35Z", "monit-1@blindgaenger.net", "s1", "msgid=1216474115@vs184010.vserver.de")
    );
    std::fs::write(&log, text).unwrap();
    // The lines are of 2008 (sendmail's queue id m6JDSZoG011380 says so).
    let s = start("sendmail", &log, "2008-07-19T14:00:00Z");
    assert_eq!(
        recipients(&track(&s, "monit-1@blindgaenger.net", "s1")),
        ["Final-Recipient: rfc822; mail@wzuup.com | Action: relayed | Status: 2.0.0 | Remote-MTA: dns; gmail-smtp-in.l.google.com"]
    );
}

#[test]
fn damaged_lines_in_a_postfix_log_are_counted_and_skipped() {
    let dir = TempDir::new("mta-damaged");
    let log = dir.path("mail.log");
    let mut bytes: Vec<u8> = Vec::new();
    bytes.extend_from_slice(b"Oct 10 15:59:28 mail postfix/smtp[1]: C6E0DDB74006: to=<a@b>, relay=x[1.2.3.4]:25, dsn=2.0.0\n");
    bytes.extend_from_slice(b"Oct 10 15:59:28 mail postfix/smtp[1]: C6E0DDB74006: to=<a@b, relay=x[1.2.3.4]:25, dsn=2.0.0, status=sent (ok)\n");
    bytes.extend_from_slice(b"Oct 10 15:5\n");
    bytes.extend_from_slice(b"\x00\xff\xfe garbage \x01\x02\n");
    bytes.extend_from_slice(b"Oct 10 15:59:28 mail postfix/smtp[1]: C6E0DDB74006: to=<\xff\xfe@b>, relay=local, dsn=2.0.0, status=sent (ok)\n");
    bytes.resize(bytes.len() + (1 << 20), b'x');
    bytes.push(b'\n');
    let tail = format!(
        "Oct 10 16:00:00 mail mtqp-milter[9]: {}Oct 10 16:00:01 mail postfix/local[2]: Q9: to=<u@hub.example>, relay=local, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (delivered to mailbox)\n",
        accept_line("2026-10-10T16:00:00Z", "ok@example.com", "s", "queue=Q9")
    );
    bytes.extend_from_slice(tail.as_bytes());
    std::fs::write(&log, bytes).unwrap();
    let s = start("postfix", &log, "2026-10-10T16:05:00Z");
    assert_eq!(
        recipients(&track(&s, "ok@example.com", "s")),
        ["Final-Recipient: rfc822; u@hub.example | Action: delivered | Status: 2.0.0"]
    );
    let (status, stderr) = s.stop("TERM");
    assert!(status.success());
    let counters = stderr
        .lines()
        .find(|l| l.starts_with("mtqpd: ingest: lines"))
        .expect("counters");
    // No status=, an unclosed address, a cut prefix and binary garbage; the 8-bit address is
    // carried (sanitised when rendered).
    assert!(
        counters.contains(" rejected 4 ") && counters.contains(" too-long 1 "),
        "{counters}"
    );
}
