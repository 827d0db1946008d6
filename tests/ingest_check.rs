//! `mtqpd ingest-check`: the offline report operators run on their logs before deploying.

mod common;
use common::*;

use std::path::Path;
use std::process::Command;

use mtqpd::clock::PIN_VARIABLE;

#[test]
fn reports_tracked_messages_unreadable_lines_and_untrackable_queue_ids() {
    let dir = TempDir::new("ingest-check");
    let log = dir.path("mail.log");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/real-logs/postfix-rfc3164-youyo-test.log");
    let mut text = std::fs::read_to_string(fixture).unwrap();
    text.push_str(&format!(
        "Oct 10 16:00:00 mail mtqp-milter[9]: {}",
        accept_line(
            "2026-10-10T15:59:28Z",
            "c6e@example.com",
            "s1",
            "msgid=A40CF64D-7F2D-42E4-8A76-CBFFF64A6EB1@example.com"
        )
    ));
    text.push_str("garbage without a prefix\nOct 10 16:00:01 mail postfix/smtp[1]: ABCDEF123: to=<x@y>, relay=none\n");
    std::fs::write(&log, text).unwrap();
    // The log's classic stamps take their year from the clock: read it on the day it was written.
    let out = Command::new(env!("CARGO_BIN_EXE_mtqpd"))
        .args(["ingest-check", "--log-timezone", "UTC", "--log"])
        .arg(format!("postfix:{}", log.display()))
        .env(PIN_VARIABLE, "2026-10-10T16:05:00Z")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "message c6e@example.com (arrived Sat, 10 Oct 2026 15:59:28 +0000)\n\
         \x20 test@example.ddd\trelayed\t2.0.0\tdns;example.ddd\n\
         lines 25: parsed 17, ignored 6, rejected 2, too long 0\n\
         \x20 rejected: delivery line without status=: 1\n\
         \x20 rejected: no syslog prefix: 1\n\
         tracked messages 1; queue ids without an accept line (not trackable) 2\n\
         recipients missing 0 (named by an MTA line of a tracked message, absent from its answer)\n\
         index records 1: 1 read back from their answers, 0 stored whole\n"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_mtqpd"))
        .args([
            "ingest-check",
            "--counts-only",
            "--log",
            "exim:/nonexistent-dir/mainlog",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}
