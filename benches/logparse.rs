//! Micro-benchmarks of log ingestion: one line of each common shape through its full parser
//! (syslog prefix included), a mixed Postfix log as the ingest thread reads it, and that log
//! through parse + `Tracker::apply` (+ `publish`). Throughput is shown both ways: items/s are
//! lines per second, B/s bytes of log per second.
//! Run: `cargo bench --bench logparse` (under a second once built).
//! Why divan: see benches/protocol.rs.
//! Lines are shaped as `mtqp-load gen` writes them (loadtest/src/gen.rs).

use std::hint::black_box;
use std::time::Duration;

use divan::counter::{BytesCount, ItemsCount};
use divan::Bencher;
use mtqpd::index::message::Retention;
use mtqpd::index::Index;
use mtqpd::ingest::event::{Event, LineParser, Outcome};
use mtqpd::ingest::native::{self, NativeTags};
use mtqpd::ingest::postfix::PostfixParser;
use mtqpd::ingest::syslog::SyslogClock;
use mtqpd::ingest::timezone::Zone;
use mtqpd::ingest::tracker::Tracker;
use mtqpd::protocol::secret::{encode, sha1};
use mtqpd::protocol::xtext;

fn main() {
    divan::Divan::default()
        .max_time(Duration::from_secs(1))
        .config_with_args()
        .main();
}

/// 2026-11-24T00:00:00Z, the day these lines are logged. The parser and the tracker are handed
/// a clock a day later: the bench never reads the calendar.
const DAY_START: i64 = 1_795_478_400;
const NOW: i64 = DAY_START + 86_400;

fn native_line(kind: &str) -> &'static str {
    match kind {
        "accept" => "mtqp: event=accept time=2026-11-24T10:00:00Z envid=gen-0000054321@client.example mtrk=qZk+2BNkcGgWq6PiVxeFDCbJzQ2J0 queue=000D4321A7",
        "accept-syslog" => "Nov 24 10:00:00 hub mtqp-milter[77]: mtqp: event=accept time=2026-11-24T10:00:00Z envid=gen-0000054321@client.example mtrk=qZk+2BNkcGgWq6PiVxeFDCbJzQ2J0 msgid=m54321@client.example",
        "rcpt" => "mtqp: event=rcpt time=2026-11-24T10:00:02Z queue=000D4321A7 orcpt=rfc822;user0.54321@dest81.example rcpt=user0.54321@dest81.example action=relayed status=2.0.0 remote-mta=dns;mx.dest.example",
        _ => unreachable!("{kind}"),
    }
}

fn postfix_line(kind: &str) -> &'static str {
    match kind {
        "smtpd-connect" => "Nov 24 10:00:00 hub postfix/smtpd[5321]: connect from client481.example[192.0.2.72]",
        "smtpd-client" => "Nov 24 10:00:00 hub postfix/smtpd[5321]: 000D4321A7: client=client481.example[192.0.2.72]",
        "cleanup-msgid" => "Nov 24 10:00:00 hub postfix/cleanup[5322]: 000D4321A7: message-id=<m54321@client.example>",
        "qmgr-from" => "Nov 24 10:00:00 hub postfix/qmgr[500]: 000D4321A7: from=<sender54321@client.example>, size=6321, nrcpt=2 (queue active)",
        "smtp-sent" => "Nov 24 10:00:02 hub postfix/smtp[8321]: 000D4321A7: to=<user0.54321@dest81.example>, relay=mx.dest81.example[198.51.100.72]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as XD431)",
        "local-sent" => "Nov 24 10:00:02 hub postfix/local[8322]: 000D4321A7: to=<local1.54321@hub.example>, relay=local, delay=0.3, delays=0.1/0/0/0.2, dsn=2.0.0, status=sent (delivered to mailbox)",
        "smtp-deferred" => "Nov 24 10:00:02 hub postfix/smtp[8323]: 000D4321A7: to=<user2.54321@dest81.example>, relay=none, delay=30, delays=0.1/0/30/0, dsn=4.4.1, status=deferred (connect to mx.dest.example[198.51.100.7]:25: Connection timed out)",
        "qmgr-removed" => "Nov 24 10:05:03 hub postfix/qmgr[500]: 000D4321A7: removed",
        _ => unreachable!("{kind}"),
    }
}

fn postfix_parser() -> PostfixParser {
    PostfixParser::new(SyslogClock::new(Zone::utc(), NOW), NativeTags::default())
}

/// What the ingest thread does with a line of a Postfix file.
fn ingest_line(parser: &mut PostfixParser, line: &[u8], emit: &mut dyn FnMut(Event)) -> Outcome {
    parser.parse(line, emit)
}

fn per_line<'a, 'b>(bencher: Bencher<'a, 'b>, line: &str) -> Bencher<'a, 'b> {
    bencher
        .counter(ItemsCount::new(1usize))
        .counter(BytesCount::new(line.len() + 1))
}

// ---------------------------------------------------------------------------------------------
// One line of each shape.

#[divan::bench(args = ["accept", "accept-syslog", "rcpt"])]
fn native(bencher: Bencher, kind: &str) {
    let line = native_line(kind).as_bytes();
    let mut parser = native::NativeParser::new(SyslogClock::new(Zone::utc(), NOW));
    assert_eq!(parser.parse(line, &mut |_| {}), Outcome::Parsed, "{kind}");
    per_line(bencher, native_line(kind)).bench_local(|| {
        parser.parse(black_box(line), &mut |e| {
            black_box(e);
        })
    });
}

#[divan::bench(args = [
    "smtpd-connect",
    "smtpd-client",
    "cleanup-msgid",
    "qmgr-from",
    "smtp-sent",
    "local-sent",
    "smtp-deferred",
    "qmgr-removed",
])]
fn postfix(bencher: Bencher, kind: &str) {
    let line = postfix_line(kind).as_bytes();
    let mut parser = postfix_parser();
    let want = if kind == "smtpd-connect" {
        Outcome::Ignored
    } else {
        Outcome::Parsed
    };
    assert_eq!(parser.parse(line, &mut |_| {}), want, "{kind}");
    per_line(bencher, postfix_line(kind)).bench_local(|| {
        parser.parse(black_box(line), &mut |e| {
            black_box(e);
        })
    });
}

// ---------------------------------------------------------------------------------------------
// A whole Postfix log: several messages, queue ids interleaved.

/// Messages in the batch.
const MESSAGES: usize = 200;

/// A Postfix log of `MESSAGES` two-recipient messages with their milter accept lines, each
/// message's deliveries written a few messages after its arrival as on a busy hub; outcomes
/// cycle through relayed, local, deferred-then-relayed and still deferred.
fn postfix_log() -> Vec<Vec<u8>> {
    const LAG: usize = 8;
    let mut lines = Vec::new();
    let time = |t: i64| {
        let s = t.rem_euclid(86_400);
        format!("Nov 24 {:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    };
    let queue = |i: usize| format!("{:08X}{:02X}", i, i % 251);
    let arrival = |lines: &mut Vec<String>, i: usize| {
        let (t, q, at) = (
            time(36_000 + i as i64 / 11),
            queue(i),
            36_000 + i as i64 / 11,
        );
        let hash = encode(&sha1(format!("secret-{i}").as_bytes()));
        let stamp = format!(
            "2026-11-24T{:02}:{:02}:{:02}Z",
            at / 3600,
            at / 60 % 60,
            at % 60
        );
        lines.push(format!(
            "{t} hub postfix/smtpd[{}]: connect from client{}.example[192.0.2.{}]",
            1000 + i,
            i % 997,
            i % 250 + 1
        ));
        lines.push(format!(
            "{t} hub postfix/smtpd[{}]: {q}: client=client{}.example[192.0.2.{}]",
            1000 + i,
            i % 997,
            i % 250 + 1
        ));
        lines.push(format!(
            "{t} hub postfix/cleanup[{}]: {q}: message-id=<m{i}@client.example>",
            1001 + i
        ));
        lines.push(format!("{t} hub mtqp-milter[77]: mtqp: event=accept time={stamp} envid=gen-{i:010}@client.example mtrk={} msgid=m{i}@client.example", xtext::encode(hash.trim_end_matches('=').as_bytes())));
        lines.push(format!("{t} hub postfix/qmgr[500]: {q}: from=<sender{i}@client.example>, size={}, nrcpt=2 (queue active)", 2000 + i));
        lines.push(format!("{t} hub postfix/smtpd[{}]: disconnect from client{}.example[192.0.2.{}] ehlo=1 mail=1 rcpt=2 data=1 quit=1 commands=6", 1000 + i, i % 997, i % 250 + 1));
    };
    let deliveries = |lines: &mut Vec<String>, i: usize| {
        let (q, at) = (queue(i), 36_002 + i as i64 / 11);
        let t = time(at);
        for r in 0..2 {
            let to = format!("user{r}.{i}@dest{}.example", i % 113);
            let pid = 2000 + i + r;
            match (i + r) % 4 {
                0 | 3 => lines.push(format!("{t} hub postfix/smtp[{pid}]: {q}: to=<{to}>, relay=mx.dest{}.example[198.51.100.{}]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as X{i:X})", i % 113, i % 250 + 1)),
                1 => lines.push(format!("{t} hub postfix/local[{pid}]: {q}: to=<local{r}.{i}@hub.example>, relay=local, delay=0.3, delays=0.1/0/0/0.2, dsn=2.0.0, status=sent (delivered to mailbox)")),
                _ => {
                    lines.push(format!("{t} hub postfix/smtp[{pid}]: {q}: to=<{to}>, relay=none, delay=30, delays=0.1/0/30/0, dsn=4.4.1, status=deferred (connect to mx.dest.example[198.51.100.7]:25: Connection timed out)"));
                    if i % 3 != 0 {
                        lines.push(format!("{} hub postfix/smtp[{pid}]: {q}: to=<{to}>, relay=mx.dest{}.example[198.51.100.{}]:25, delay=330, delays=300/0/20/10, dsn=2.0.0, status=sent (250 2.0.0 Ok)", time(at + 300), i % 113, i % 250 + 1));
                    }
                }
            }
        }
        lines.push(format!(
            "{} hub postfix/qmgr[500]: {q}: removed",
            time(at + 301)
        ));
    };
    for i in 0..MESSAGES + LAG {
        if i < MESSAGES {
            arrival(&mut lines, i);
        }
        if i >= LAG {
            deliveries(&mut lines, i - LAG);
        }
    }
    lines.into_iter().map(String::into_bytes).collect()
}

fn batch_counters<'a, 'b>(bencher: Bencher<'a, 'b>, log: &[Vec<u8>]) -> Bencher<'a, 'b> {
    let bytes: usize = log.iter().map(|l| l.len() + 1).sum();
    bencher
        .counter(ItemsCount::new(log.len()))
        .counter(BytesCount::new(bytes))
}

fn retention() -> Retention {
    Retention {
        after_last_event: 7 * 86_400,
        queue_lifetime: 5 * 86_400,
    }
}

/// Parsing only, every line of the log as the ingest thread dispatches it.
#[divan::bench]
fn postfix_log_parse(bencher: Bencher) {
    let log = postfix_log();
    let mut parser = postfix_parser();
    let mut events = 0;
    for line in &log {
        ingest_line(&mut parser, line, &mut |_| events += 1);
    }
    assert!(events >= MESSAGES * 6, "{events} events");
    batch_counters(bencher, &log).bench_local(|| {
        for line in &log {
            ingest_line(&mut parser, black_box(line), &mut |e| {
                black_box(e);
            });
        }
    });
}

/// Parse + `Tracker::apply` into a fresh tracker (its creation and drop are not timed).
#[divan::bench]
fn postfix_log_apply(bencher: Bencher) {
    let log = postfix_log();
    let mut parser = postfix_parser();
    let index = Index::new(32);
    {
        let mut tracker = Tracker::new("hub.example".into(), retention());
        for line in &log {
            ingest_line(&mut parser, line, &mut |e| {
                tracker.apply(e, &index).expect("applied")
            });
        }
        assert_eq!(tracker.messages(), MESSAGES);
    }
    batch_counters(bencher, &log)
        .with_inputs(|| Tracker::new("hub.example".into(), retention()))
        .bench_local_values(|mut tracker| {
            for line in &log {
                ingest_line(&mut parser, black_box(line), &mut |e| {
                    let _ = tracker.apply(e, &index);
                });
            }
            tracker
        });
}

/// The whole ingest step: parse, apply, then `publish` (render each message, put it in the
/// index) into a fresh tracker and index.
#[divan::bench]
fn postfix_log_apply_publish(bencher: Bencher) {
    let log = postfix_log();
    let mut parser = postfix_parser();
    batch_counters(bencher, &log)
        .with_inputs(|| {
            (
                Tracker::new("hub.example".into(), retention()),
                Index::new(32),
            )
        })
        .bench_local_values(|(mut tracker, index)| {
            for line in &log {
                ingest_line(&mut parser, black_box(line), &mut |e| {
                    let _ = tracker.apply(e, &index);
                });
            }
            assert_eq!(tracker.publish(&index, NOW), MESSAGES);
            (tracker, index)
        });
}
