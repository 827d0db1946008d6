//! The sendmail parser against the real sendmail's log of a CI run (tests/data/real-logs,
//! `sendmail-debian-*.log`, see its SOURCES.md): `mtqpd ingest-check` on each excerpt, with a
//! native accept line per message keyed by its Message-ID, must reject no line, find no recipient
//! missing from its answer, and list every recipient once, by its address, with the action the
//! log gives it: the checks tests/real_sendmail.rs makes against the live sendmail, offline, so
//! that they run everywhere.

mod common;
use common::*;

use std::path::Path;
use std::process::Command;

use mtqpd::clock::PIN_VARIABLE;

/// Just after the excerpts' last line (classic syslog stamps take their year from the clock).
const NOW: &str = "2026-12-03T06:40:00Z";

/// `mtqpd ingest-check` on the fixture `name` and a native log with an accept line for each
/// `(tag, Message-ID)`, its envid `TAG@envid.example`; returns the report.
fn ingest_check(name: &str, messages: &[(&str, &str)]) -> String {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/real-logs")
        .join(name);
    let dir = TempDir::new(&format!("sendmail-fixture-{name}"));
    let native = dir.path("mtqp.log");
    let accepts: String = messages
        .iter()
        .map(|(tag, msgid)| {
            accept_line(
                "2026-12-03T06:35:19Z",
                &format!("{tag}@envid.example"),
                tag,
                &format!("msgid={msgid}"),
            )
        })
        .collect();
    std::fs::write(&native, accepts).expect("write native log");
    let out = Command::new(env!("CARGO_BIN_EXE_mtqpd"))
        .arg("ingest-check")
        .arg("--log")
        .arg(format!("sendmail:{}", fixture.display()))
        .arg("--log")
        .arg(format!("native:{}", native.display()))
        .args(["--log-timezone", "UTC"])
        .env(PIN_VARIABLE, NOW)
        .output()
        .expect("run mtqpd ingest-check");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

/// The recipient lines (`RCPT<TAB>ACTION<TAB>STATUS`) of the message with envid
/// `TAG@envid.example`, without the remote MTA.
fn recipients(report: &str, tag: &str) -> Vec<String> {
    let head = format!("message {tag}@envid.example (");
    report
        .lines()
        .skip_while(|l| !l.starts_with(&head))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| {
            l.trim_start()
                .splitn(4, '\t')
                .take(3)
                .collect::<Vec<_>>()
                .join("\t")
        })
        .collect()
}

/// Checks every message's recipients (in any order), then that no line was rejected and no
/// recipient is missing; all failures at once.
fn check(report: &str, want: &[(&str, &[&str])]) {
    let mut problems = Vec::new();
    for (tag, rcpts) in want {
        let got = recipients(report, tag);
        let complete = got.len() == rcpts.len()
            && rcpts
                .iter()
                .all(|w| got.iter().filter(|g| g == w).count() == 1);
        if !complete {
            problems.push(format!("{tag}: got {got:?}, want {rcpts:?}"));
        }
    }
    let counts = report
        .lines()
        .find(|l| l.starts_with("lines "))
        .unwrap_or("");
    if !counts.contains(", rejected 0,") {
        problems.push(format!("rejected lines: {counts}"));
    }
    if !report.contains("\nrecipients missing 0 ") {
        problems.push("recipients missing from their answers".to_string());
    }
    assert!(
        problems.is_empty(),
        "{}\n\nreport:\n{report}",
        problems.join("\n")
    );
}

#[test]
fn every_scenario_of_the_ci_run() {
    let id = "1796279719363667409.30121";
    let msgid = |tag: &str| format!("{id}.{tag}@mtqpd-test.example");
    let tags = [
        "local", "refused", "ghost", "deferrer", "relayed", "dead", "team",
    ];
    let msgids: Vec<String> = tags.iter().map(|t| msgid(t)).collect();
    let messages: Vec<(&str, &str)> = tags
        .iter()
        .zip(&msgids)
        .map(|(t, m)| (*t, m.as_str()))
        .collect();
    let report = ingest_check("sendmail-debian-scenarios.log", &messages);
    check(
        &report,
        &[
            ("local", &["mtqpdtest@mtqpd-sm.example\tdelivered\t2.0.0"]),
            ("refused", &["nobody@unknown.example\tfailed\t5.3.0"]),
            // `to=mtqpdgone, ctladdr=<ghost@mtqpd-sm.example> (8/0)`: the recipient is the
            // alias, as in sendmail's own DSN (Final-Recipient ghost@…, X-Actual-Recipient
            // mtqpdgone@…).
            ("ghost", &["ghost@mtqpd-sm.example\tfailed\t5.1.1"]),
            // `to="|/opt/mtqpd-sendmail/bin/deferrer", ctladdr=<deferrer@mtqpd-sm.example>`.
            ("deferrer", &["deferrer@mtqpd-sm.example\tdelayed\t4.0.0"]),
            // One line names both.
            (
                "relayed",
                &[
                    "b@sink.example\trelayed\t2.0.0",
                    "a@sink.example\trelayed\t2.0.0",
                ],
            ),
            ("dead", &["someone@dead.example\tdelayed\t4.4.1"]),
            // One alias, two targets: the program stands for the alias (its ctladdr), the local
            // user is itself (its own ctladdr: sendmail logs no trace of the alias on its line),
            // each once.
            (
                "team",
                &[
                    "team@mtqpd-sm.example\tdelivered\t2.0.0",
                    "mtqpdtest@mtqpd-sm.example\tdelivered\t2.0.0",
                ],
            ),
        ],
    );
}

#[test]
fn a_program_alias_deferred_then_sent_is_one_recipient_delivered() {
    let report = ingest_check(
        "sendmail-debian-program-alias-retry.log",
        &[(
            "deferrer",
            "1796279719462033679.30121.deferrer@mtqpd-test.example",
        )],
    );
    check(
        &report,
        &[("deferrer", &["deferrer@mtqpd-sm.example\tdelivered\t2.0.0"])],
    );
}

/// Debian's queue runs log under their own tags (`sm-mta-runq` for `/etc/init.d/sendmail runq`,
/// `sm-mta-queue` for the cron job): their lines are sendmail's.
#[test]
fn a_relay_deferred_then_sent_by_debians_runq_is_one_recipient_relayed() {
    let report = ingest_check(
        "sendmail-debian-relay-retry-runq.log",
        &[("later", "1796279850351744820.5542.later@mtqpd-test.example")],
    );
    check(
        &report,
        &[("later", &["someone@later.example\trelayed\t2.0.0"])],
    );
}
