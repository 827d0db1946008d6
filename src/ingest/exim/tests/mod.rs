//! The Exim parser's tests: real lines (the test suite's logs, the examples of
//! docs/mta-logs.md) in [`real_logs`], every line form and damaged input in [`forms`].

use super::*;
use crate::index::message::Recipient;

/// 1999-03-02 09:44:33 UTC, the time of every line of the Exim test-suite logs.
const SUITE_TIME: i64 = 920_367_873;
/// "Now" for the syslog clock's year inference: 2023-11-14 22:13:20 UTC.
const NOW: i64 = 1_700_000_000;

fn parser_in(zone: &str) -> EximParser {
    let clock = SyslogClock::new(Zone::parse(zone).unwrap(), NOW);
    EximParser::new(Zone::parse(zone).unwrap(), clock, NativeTags::default())
}

fn parse_with(p: &mut EximParser, line: &[u8]) -> (Outcome, Vec<MtaEvent>) {
    let mut events = Vec::new();
    let outcome = p.parse(line, &mut |e| match e {
        Event::Mta(m) => events.push(m),
        other => panic!("unexpected event {other:?}"),
    });
    match outcome {
        Outcome::Parsed => assert_eq!(events.len(), 1, "{}", String::from_utf8_lossy(line)),
        _ => assert!(events.is_empty()),
    }
    (outcome, events)
}

fn parse(line: &str) -> (Outcome, Vec<MtaEvent>) {
    parse_with(&mut parser_in("UTC"), line.as_bytes())
}

fn utc(unix: i64) -> Timestamp {
    Timestamp {
        unix,
        offset_minutes: 0,
    }
}

fn b(s: &str) -> Box<[u8]> {
    s.as_bytes().into()
}

fn qid(s: &str) -> crate::ingest::queue_id::QueueId {
    s.as_bytes().into()
}

/// What one line should give, written compactly.
#[derive(Clone, Copy)]
enum Want {
    Ignored,
    Arrival(&'static str, Option<&'static str>),
    Notification(&'static str),
    Done(&'static str),
    /// queue, final, original, action, status, remote-mta, diagnostic
    Rcpt(
        &'static str,
        &'static str,
        Option<&'static str>,
        Action,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
    ),
}

fn expected(want: Want, time: Timestamp) -> (Outcome, Vec<MtaEvent>) {
    let event = match want {
        Want::Ignored => return (Outcome::Ignored, vec![]),
        Want::Arrival(q, id) => MtaEvent::Arrival {
            queue: qid(q),
            time,
            message_id: id.map(b),
        },
        Want::Notification(q) => MtaEvent::Notification { queue: qid(q) },
        Want::Done(q) => MtaEvent::Done {
            queue: qid(q),
            time,
        },
        Want::Rcpt(q, final_rcpt, original, action, status, mta, diag) => MtaEvent::Recipient {
            queue: qid(q),
            recipient: Recipient {
                original: original.map(|o| b(&format!("rfc822;{o}"))),
                final_rcpt: b(final_rcpt),
                action,
                status: b(status),
                remote_mta: mta.map(|m| b(&format!("dns;{m}"))),
                diagnostic: diag.map(|d| b(&format!("smtp;{d}"))),
                last_attempt: (action != Action::Delivered).then_some(time),
                will_retry_until: None,
                at: time.unix,
            },
        },
    };
    (Outcome::Parsed, vec![event])
}

fn check(lines: &str, wants: &[Want], time: Timestamp) {
    let mut p = parser_in("UTC");
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(lines.len(), wants.len());
    for (line, want) in lines.iter().zip(wants) {
        let got = parse_with(&mut p, line.as_bytes());
        assert_eq!(got, expected(*want, time), "{line}");
    }
}

use Action::{Delayed, Delivered, Failed, Relayed};

/// Exim/exim test/log/0215 (GPL-2.0-or-later; see tests/data/real-logs/SOURCES.md).
const SUITE_0215: &str = include_str!("../../../../tests/data/real-logs/exim-testsuite-0215.log");

/// Exim/exim test/log/5102 (GPL-2.0-or-later; see tests/data/real-logs/SOURCES.md).
const SUITE_5102: &str = include_str!("../../../../tests/data/real-logs/exim-testsuite-5102.log");

mod forms;
mod real_logs;
