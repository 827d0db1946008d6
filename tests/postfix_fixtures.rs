//! The Postfix parser against real log fixtures (tests/data/real-logs, see its
//! SOURCES.md for origins and licences): every line shape of the postfix-grok-patterns test
//! suite, two real mail logs with syslog prefixes, the deferral → expiry example of
//! docs/mta-logs.md 1.5, and damaged input.

use std::path::PathBuf;

use mtqpd::index::message::{Action, Recipient};
use mtqpd::ingest::event::{Event, LineParser, MtaEvent, NextHop, Outcome};
use mtqpd::ingest::native::NativeTags;
use mtqpd::ingest::postfix::PostfixParser;
use mtqpd::ingest::syslog::SyslogClock;
use mtqpd::ingest::timezone::Zone;
use mtqpd::protocol::date::Timestamp;

/// A fixture file: from `$MTQPD_REAL_LOGS`, else the repository's `tests/data/real-logs/`. A
/// missing file fails the test: skipping would hide lost coverage.
fn fixture(name: &str) -> Vec<u8> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("MTQPD_REAL_LOGS") {
        dirs.push(d.into());
    }
    dirs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/real-logs"));
    for d in &dirs {
        if let Ok(bytes) = std::fs::read(d.join(name)) {
            return bytes;
        }
    }
    panic!("fixture {name} not found in {dirs:?} (set MTQPD_REAL_LOGS)");
}

fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes.split(|&c| c == b'\n').filter(|l| !l.is_empty())
}

fn b(s: &str) -> Box<[u8]> {
    s.as_bytes().into()
}

fn qid(s: &str) -> mtqpd::ingest::queue_id::QueueId {
    s.as_bytes().into()
}

fn ts(rfc3339: &str) -> Timestamp {
    Timestamp::parse_rfc3339(rfc3339.as_bytes()).expect(rfc3339)
}

fn mta(e: Event) -> MtaEvent {
    match e {
        Event::Mta(m) => m,
        other => panic!("not an MTA event: {other:?}"),
    }
}

/// `events` is one hand-off of (queue, new queue, recipient) to a next hop on 127.0.0.1, the
/// recipient relayed to it meanwhile.
fn assert_handed_off(events: &[MtaEvent], (from, to, rcpt): (&str, &str, &str)) {
    let [MtaEvent::HandedOff {
        queue,
        new_queue,
        recipient,
        hop,
    }] = events
    else {
        panic!("not one hand-off: {events:?}");
    };
    assert_eq!((queue, new_queue), (&qid(from), &qid(to)));
    assert_eq!(hop.addr, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(&*recipient.final_rcpt, rcpt.as_bytes());
    assert_eq!(recipient.action, Action::Relayed);
    assert_eq!(recipient.remote_mta.as_deref(), Some(&b"dns;127.0.0.1"[..]));
}

/// A short name of what a line produced, for the shape table.
fn kind(outcome: Outcome, events: &[MtaEvent]) -> String {
    match outcome {
        Outcome::Ignored => "ignored".into(),
        Outcome::Rejected(r) => format!("rejected: {r}"),
        Outcome::Parsed => events
            .iter()
            .map(|e| match e {
                MtaEvent::Arrival { .. } => "arrival".to_string(),
                MtaEvent::MessageId { .. } => "message-id".into(),
                MtaEvent::Recipient { recipient, .. } => {
                    format!("rcpt:{}", recipient.action.name())
                }
                MtaEvent::Handoff { .. } => "handoff".into(),
                MtaEvent::HandedOff { recipient, .. } => {
                    format!("handed-off:{}", recipient.action.name())
                }
                MtaEvent::Expired { .. } => "expired".into(),
                MtaEvent::Done { .. } => "done".into(),
                MtaEvent::Notification { .. } => "notification".into(),
            })
            .collect::<Vec<_>>()
            .join("+"),
    }
}

/// What each row of postfix-payloads-grok-tests.tsv must give, and why a row is ignored.
/// Rows are payloads without a prefix; the daemon is the yaml file's (see `daemon_of`).
const SHAPES: &[(&str, &str, &str)] = &[
    ("anvil_0001", "ignored", "anvil statistics"),
    ("anvil_0002", "ignored", "anvil statistics"),
    ("anvil_0003", "ignored", "anvil statistics"),
    ("anvil_0004", "ignored", "anvil statistics"),
    ("anvil_0005", "ignored", "anvil statistics"),
    ("anvil_0006", "ignored", "anvil statistics"),
    ("anvil_0007", "ignored", "anvil statistics"),
    ("anvil_0008", "ignored", "anvil statistics"),
    ("anvil_0009", "ignored", "anvil statistics"),
    ("bounce_0001", "notification", ""),
    ("bounce_0002", "notification", ""),
    ("bounce_0003", "notification", ""),
    ("bounce_0004", "notification", ""),
    ("cleanup_0001", "message-id", ""),
    (
        "cleanup_0002",
        "ignored",
        "message-id=<>: no Message-ID to match",
    ),
    (
        "cleanup_0003",
        "ignored",
        "milter header redirect: no recipient state",
    ),
    (
        "cleanup_0004",
        "ignored",
        "milter-reject: the client was refused, nothing queued for tracking",
    ),
    ("cleanup_0005", "ignored", "warning without queue id"),
    ("cleanup_0006", "ignored", "header_checks warning"),
    ("cleanup_0007", "ignored", "header_checks info"),
    ("cleanup_0008", "ignored", "header_checks info"),
    ("cleanup_0009", "ignored", "header_checks prepend"),
    ("cleanup_0010", "message-id", ""),
    ("cleanup_0011", "message-id", ""),
    (
        "cleanup_0012",
        "ignored",
        "warning: lookup problem (the message is not accepted)",
    ),
    (
        "command_counter_data_0001",
        "ignored",
        "fragment of a disconnect line",
    ),
    (
        "command_counter_data_0002",
        "ignored",
        "fragment of a disconnect line",
    ),
    (
        "command_counter_data_0003",
        "ignored",
        "fragment of a disconnect line",
    ),
    (
        "command_counter_data_0004",
        "ignored",
        "fragment of a disconnect line",
    ),
    (
        "command_counter_data_0005",
        "ignored",
        "fragment of a disconnect line",
    ),
    ("delays_0001", "ignored", "fragment: a delays= value"),
    ("discard_0001", "rcpt:delivered", ""),
    ("dnsblog_0001", "ignored", "DNSBL result"),
    ("dnsblog_0002", "ignored", "DNSBL result"),
    ("dnsblog_0003", "ignored", "DNSBL lookup warning"),
    ("error_0001", "rcpt:delayed", ""),
    ("error_0002", "rcpt:failed", ""),
    ("lmtp_0001", "handed-off:relayed", ""),
    ("local_0001", "rcpt:delivered", ""),
    ("local_0002", "rcpt:failed", ""),
    ("local_0003", "ignored", "configuration warning"),
    ("master_0001", "ignored", "master start"),
    ("master_0002", "ignored", "master stop"),
    ("master_0003", "ignored", "master reload"),
    ("master_0004", "ignored", "master warning"),
    ("pickup_0001", "arrival", ""),
    ("pipe_0001", "rcpt:delivered", ""),
    ("pipe_0002", "rcpt:delivered", ""),
    ("pipe_0003", "rcpt:failed", ""),
    ("pipe_0004", "rcpt:failed", ""),
    (
        "postdrop_0001",
        "ignored",
        "postdrop warning: nothing queued",
    ),
    ("postmap_0001", "ignored", "postmap warning"),
    ("postscreen_0001", "ignored", "postscreen cache cleanup"),
    (
        "postscreen_0002",
        "ignored",
        "postscreen: before any queue id",
    ),
    (
        "postscreen_0003",
        "ignored",
        "postscreen: before any queue id",
    ),
    (
        "postscreen_0004",
        "ignored",
        "postscreen: before any queue id",
    ),
    (
        "postscreen_0005",
        "ignored",
        "postscreen: before any queue id",
    ),
    (
        "postscreen_0006",
        "ignored",
        "postscreen: before any queue id",
    ),
    (
        "postscreen_0007",
        "ignored",
        "postscreen: before any queue id",
    ),
    (
        "postscreen_0008",
        "ignored",
        "postscreen: before any queue id",
    ),
    (
        "postscreen_0009",
        "ignored",
        "postscreen: before any queue id",
    ),
    (
        "postscreen_0011",
        "ignored",
        "postscreen: before any queue id",
    ),
    (
        "postscreen_0012",
        "ignored",
        "postscreen: before any queue id",
    ),
    (
        "postscreen_0013",
        "ignored",
        "postscreen: before any queue id",
    ),
    (
        "postscreen_0014",
        "ignored",
        "postscreen: before any queue id",
    ),
    (
        "postscreen_0015",
        "ignored",
        "postscreen: before any queue id",
    ),
    (
        "postscreen_0016",
        "ignored",
        "postscreen: before any queue id",
    ),
    (
        "postscreen_0017",
        "ignored",
        "postscreen: before any queue id",
    ),
    (
        "postscreen_0018",
        "ignored",
        "postscreen: before any queue id",
    ),
    (
        "postscreen_0019",
        "ignored",
        "postscreen: before any queue id",
    ),
    (
        "postscreen_0020",
        "ignored",
        "postscreen: before any queue id",
    ),
    (
        "postscreen_0021",
        "ignored",
        "postscreen: before any queue id",
    ),
    (
        "postscreen_0022",
        "ignored",
        "postscreen: before any queue id",
    ),
    ("postscreen_0023", "ignored", "NOQUEUE reject"),
    ("postscreen_0024", "ignored", "NOQUEUE reject"),
    (
        "postscreen_0026",
        "ignored",
        "postscreen: before any queue id",
    ),
    ("postscreen_0027", "ignored", "NOQUEUE reject"),
    ("postscreen_0028", "ignored", "NOQUEUE reject"),
    ("postscreen_0029", "ignored", "postscreen warning"),
    (
        "postscreen_0030",
        "ignored",
        "postscreen: before any queue id",
    ),
    ("postsuper_0001", "done", ""),
    (
        "postsuper_0002",
        "ignored",
        "requeued: the queue id lives on; pickup's orig_id= links a new one",
    ),
    (
        "postsuper_0003",
        "ignored",
        "placed on hold: still queued, recipients unchanged",
    ),
    (
        "postsuper_0004",
        "ignored",
        "released from hold: still queued",
    ),
    ("postsuper_0005", "ignored", "postsuper summary"),
    ("postsuper_0006", "ignored", "postsuper summary"),
    ("postsuper_0007", "ignored", "postsuper summary"),
    ("postsuper_0008", "ignored", "postsuper summary"),
    ("qmgr_0001", "done", ""),
    ("qmgr_0002", "arrival", ""),
    ("qmgr_0003", "ignored", "configuration warning"),
    ("qmgr_0004", "expired", ""),
    ("qmgr_0005", "expired", ""),
    (
        "qmgr_0006",
        "ignored",
        "skipped, still being delivered: no state change",
    ),
    ("relay_0001", "ignored", "fragment: a relay= value"),
    ("scache_0001", "ignored", "scache statistics"),
    ("scache_0002", "ignored", "scache statistics"),
    ("scache_0003", "ignored", "scache statistics"),
    ("scache_0004", "ignored", "scache statistics"),
    ("script_0001", "ignored", "postfix-script warning"),
    ("sendmail_0001", "ignored", "sendmail fatal: nothing queued"),
    ("smtp_0001", "handed-off:relayed", ""),
    ("smtp_0002", "handed-off:relayed", ""),
    ("smtp_0003", "ignored", "TLS session"),
    ("smtp_0004", "ignored", "TLS session"),
    (
        "smtp_0005",
        "ignored",
        "connect to: per-attempt detail; the to= line follows",
    ),
    (
        "smtp_0006",
        "ignored",
        "lost connection: per-attempt detail; the to= line follows",
    ),
    (
        "smtp_0007",
        "ignored",
        "connect to: per-attempt detail; the to= line follows",
    ),
    ("smtp_0015", "ignored", "TLS session"),
    ("smtp_0016", "ignored", "TLS session"),
    ("smtp_0017", "rcpt:relayed", ""),
    ("smtp_0018", "rcpt:failed", ""),
    ("smtp_0019", "ignored", "scache warning"),
    (
        "smtp_0020",
        "ignored",
        "host said: per-attempt detail; the to= line follows",
    ),
    (
        "smtp_0021",
        "ignored",
        "host said: per-attempt detail; the to= line follows",
    ),
    (
        "smtp_0022",
        "ignored",
        "conversation timed out: per-attempt detail",
    ),
    (
        "smtp_0023",
        "ignored",
        "host said: per-attempt detail; the to= line follows",
    ),
    (
        "smtp_0024",
        "ignored",
        "host said: per-attempt detail; the to= line follows",
    ),
    (
        "smtp_0025",
        "ignored",
        "connect to: per-attempt detail; the to= line follows",
    ),
    ("smtp_0026", "rcpt:delayed", ""),
    ("smtp_0027", "ignored", "TLS certificate verification"),
    ("smtp_0028", "ignored", "TLS certificate verification"),
    ("smtp_0029", "ignored", "TLS handshake error"),
    ("smtp_0030", "ignored", "TLS handshake error"),
    ("smtp_0031", "ignored", "PIX workarounds"),
    ("smtp_0032", "ignored", "SASL failure: per-attempt detail"),
    (
        "smtp_0033",
        "ignored",
        "lost connection: per-attempt detail; the to= line follows",
    ),
    (
        "smtp_0034",
        "ignored",
        "refused to talk: per-attempt detail; the to= line follows",
    ),
    ("smtp_0035", "ignored", "TLS session"),
    ("smtp_0036", "ignored", "TLS session"),
    ("smtpd_0001", "ignored", "connect"),
    ("smtpd_0002", "ignored", "disconnect"),
    ("smtpd_0003", "arrival", ""),
    ("smtpd_0004", "ignored", "NOQUEUE reject"),
    ("smtpd_0005", "ignored", "lost connection"),
    ("smtpd_0006", "ignored", "DNS warning"),
    ("smtpd_0007", "ignored", "timeout"),
    ("smtpd_0008", "ignored", "NOQUEUE reject"),
    ("smtpd_0009", "ignored", "NOQUEUE reject"),
    ("smtpd_0010", "ignored", "TLS session"),
    ("smtpd_0011", "ignored", "lost connection"),
    ("smtpd_0012", "ignored", "lost connection"),
    ("smtpd_0013", "ignored", "lost connection"),
    ("smtpd_0014", "ignored", "timeout"),
    ("smtpd_0016", "ignored", "lost connection"),
    ("smtpd_0017", "ignored", "NOQUEUE reject"),
    ("smtpd_0018", "ignored", "NOQUEUE reject"),
    ("smtpd_0019", "ignored", "TLS handshake error"),
    (
        "smtpd_0020",
        "ignored",
        "before-queue proxy accept: no queue id of this Postfix",
    ),
    ("smtpd_0021", "ignored", "before-queue proxy reject"),
    ("smtpd_0022", "ignored", "before-queue proxy reject"),
    ("smtpd_0023", "ignored", "TLS handshake error"),
    ("smtpd_0024", "ignored", "TLS handshake error"),
    ("smtpd_0025", "ignored", "TLS handshake error"),
    ("smtpd_0026", "ignored", "NOQUEUE discard"),
    ("smtpd_0027", "ignored", "NOQUEUE filter"),
    ("smtpd_0028", "ignored", "disconnect"),
    ("smtpd_0029", "ignored", "SASL warning"),
    ("smtpd_0030", "ignored", "NOQUEUE reject"),
    ("smtpd_0031", "ignored", "NOQUEUE reject_warning"),
    ("smtpd_0032", "ignored", "disconnect"),
    ("smtpd_0033", "ignored", "lost connection"),
    ("smtpd_0034", "ignored", "disconnect"),
    ("smtpd_0035", "ignored", "disconnect"),
    ("smtpd_0036", "ignored", "bare LF"),
    ("smtpd_0037", "ignored", "TLS session"),
    ("smtpd_0038", "ignored", "NOQUEUE milter-reject"),
    ("smtpd_0039", "ignored", "EHLO keyword discard"),
    ("tls_features_0001", "handed-off:relayed", ""),
    ("tls_features_0002", "handed-off:relayed", ""),
    ("tls_features_0003", "handed-off:relayed", ""),
    ("tls_features_0004", "handed-off:relayed", ""),
    ("tls_features_0005", "handed-off:relayed", ""),
    ("tls_features_0006", "handed-off:relayed", ""),
    ("tls_features_0007", "ignored", "fragment: a tls= value"),
    ("tls_features_0008", "ignored", "fragment: a tls= value"),
    ("tls_features_0009", "ignored", "fragment: a tls= value"),
    ("tls_features_0010", "ignored", "fragment: a tls= value"),
    ("tls_features_0011", "ignored", "fragment: a tls= value"),
    ("tls_features_0012", "ignored", "fragment: a tls= value"),
    ("tlsmgr_0001", "ignored", "tlsmgr warning"),
    ("tlsproxy_0001", "ignored", "tlsproxy disconnect"),
    ("tlsproxy_0002", "ignored", "tlsproxy connect"),
    ("trivial_rewrite_0001", "ignored", "lookup warning"),
    ("trivial_rewrite_0002", "ignored", "lookup warning"),
    ("verify_0001", "ignored", "verify cache cleanup"),
    ("verify_0002", "ignored", "verify cache cleanup"),
    ("virtual_0001", "rcpt:delivered", ""),
];

/// The daemon that logs a yaml file's shape: its name, except for the fragments of other
/// daemons' lines and the two daemons whose names have a `-`.
fn daemon_of(file: &str) -> &str {
    let stem = file
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .trim_end_matches('_');
    match stem {
        "command_counter_data" => "smtpd",
        "delays" | "relay" | "tls_features" => "smtp",
        "script" => "postfix-script",
        "trivial_rewrite" => "trivial-rewrite",
        other => other,
    }
}

#[test]
fn every_grok_fixture_shape() {
    let tsv = fixture("postfix-payloads-grok-tests.tsv");
    let time = ts("2014-10-26T18:13:50+01:00");
    let mut parser = PostfixParser::new(
        SyslogClock::new(Zone::utc(), time.unix),
        NativeTags::default(),
    );
    let mut seen = Vec::new();
    let mut wrong = Vec::new();
    for row in lines(&tsv).filter(|l| !l.starts_with(b"#")) {
        let row = std::str::from_utf8(row).expect("the fixture is UTF-8");
        let mut cols = row.splitn(3, '\t');
        let (file, _pattern, text) = (
            cols.next().unwrap(),
            cols.next().unwrap(),
            cols.next().unwrap(),
        );
        let file = file.trim_end_matches(".yaml");
        let Some(&(_, want, why)) = SHAPES.iter().find(|s| s.0 == file) else {
            panic!("{file} is not in the table");
        };
        assert_eq!(
            want == "ignored",
            !why.is_empty(),
            "{file}: give a reason exactly for ignored rows"
        );
        let mut events = Vec::new();
        let outcome = parser.parse_text(
            time,
            daemon_of(file).as_bytes(),
            text.as_bytes(),
            &mut |e| events.push(mta(e)),
        );
        let got = kind(outcome, &events);
        if got != want {
            wrong.push(format!("{file}: got {got}, want {want}: {text}"));
        }
        seen.push(file);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(seen.len(), 188);
    assert_eq!(seen.len(), SHAPES.len(), "table rows not in the fixture");
}

#[test]
fn grok_fixture_values() {
    // The fields of the rows whose meaning is not obvious from their kind.
    let time = ts("2014-10-26T18:13:50+01:00");
    let mut parser = PostfixParser::new(
        SyslogClock::new(Zone::utc(), time.unix),
        NativeTags::default(),
    );
    let mut run = |daemon: &str, text: &str| {
        let mut events = Vec::new();
        assert_eq!(
            parser.parse_text(time, daemon.as_bytes(), text.as_bytes(), &mut |e| events
                .push(mta(e))),
            Outcome::Parsed
        );
        events
    };
    assert_eq!(
        run("cleanup", "ADD961003206D: message-id==?UTF-8?B?PDE5?=? =?UTF-8?B?MTIyMDExMjkxNjYxMUBDbGllbnQtMDQ1LnJ1YmluZXR0ZXJpZS5sb2NhbD4=?="),
        [MtaEvent::MessageId {
            queue: qid("ADD961003206D"),
            message_id: b("=?UTF-8?B?PDE5?=? =?UTF-8?B?MTIyMDExMjkxNjYxMUBDbGllbnQtMDQ1LnJ1YmluZXR0ZXJpZS5sb2NhbD4=?="),
        }]
    );
    assert_eq!(
        run("smtp", "4E74613FE76: to=<redacted@gmail.com>, relay=gmail-smtp-in.l.google.com[2607:f8b0:400e:c04::1b]:25, delay=1.9, delays=0.05/0/1.1/0.71, dsn=5.7.1, status=bounced (host gmail-smtp-in.l.google.com[2607:f8b0:400e:c04::1b] said: 550-5.7.1 blocked (in reply to end of DATA command))"),
        [MtaEvent::Recipient {
            queue: qid("4E74613FE76"),
            recipient: Recipient {
                original: None,
                final_rcpt: b("redacted@gmail.com"),
                action: Action::Failed,
                status: b("5.7.1"),
                remote_mta: Some(b("dns;gmail-smtp-in.l.google.com")),
                diagnostic: Some(b("smtp;host gmail-smtp-in.l.google.com[2607:f8b0:400e:c04::1b] said: 550-5.7.1 blocked (in reply to end of DATA command)")),
                last_attempt: Some(time),
                will_retry_until: None,
                at: time.unix,
            },
        }]
    );
    assert_handed_off(
        &run("lmtp", "7EE668039: to=<admin@example.com>, relay=127.0.0.1[127.0.0.1]:2525, delay=3.6, delays=0.2/0.02/0.04/3.3, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 153053D)"),
        ("7EE668039", "153053D", "admin@example.com"),
    );
}

/// Every line of a log through `parse`, with the events of each.
fn parse_log(bytes: &[u8], now: i64) -> Vec<(String, Outcome, Vec<MtaEvent>)> {
    let mut parser = PostfixParser::new(SyslogClock::new(Zone::utc(), now), NativeTags::default());
    lines(bytes)
        .map(|line| {
            let mut events = Vec::new();
            let outcome = parser.parse(line, &mut |e| events.push(mta(e)));
            (String::from_utf8_lossy(line).into_owned(), outcome, events)
        })
        .collect()
}

fn events_of<'a>(log: &'a [(String, Outcome, Vec<MtaEvent>)], line: &str) -> &'a [MtaEvent] {
    let found: Vec<_> = log.iter().filter(|(l, _, _)| l == line).collect();
    assert_eq!(found.len(), 1, "line not in the log exactly once: {line}");
    assert_eq!(found[0].1, Outcome::Parsed, "{line}");
    &found[0].2
}

fn no_rejections(log: &[(String, Outcome, Vec<MtaEvent>)]) {
    let rejected: Vec<_> = log
        .iter()
        .filter(|(_, o, _)| matches!(o, Outcome::Rejected(_)))
        .map(|(l, o, _)| format!("{o:?}: {l}"))
        .collect();
    assert!(rejected.is_empty(), "{}", rejected.join("\n"));
}

fn arrival(queue: &str, time: Timestamp) -> MtaEvent {
    MtaEvent::Arrival {
        queue: qid(queue),
        time,
        message_id: None,
    }
}

fn relayed(queue: &str, to: &str, host: &str, time: Timestamp) -> MtaEvent {
    MtaEvent::Recipient {
        queue: qid(queue),
        recipient: Recipient {
            original: None,
            final_rcpt: b(to),
            action: Action::Relayed,
            status: b("2.0.0"),
            remote_mta: Some(b(&format!("dns;{host}"))),
            diagnostic: None,
            last_attempt: Some(time),
            will_retry_until: None,
            at: time.unix,
        },
    }
}

#[test]
fn youyo_rfc3164_log() {
    // The log is of 2018-10-10 (a reply in it holds 1539154772); its syslog stamps lack the year.
    let log = parse_log(
        &fixture("postfix-rfc3164-youyo-test.log"),
        ts("2018-10-11T00:00:00Z").unix,
    );
    no_rejections(&log);
    let at = |hms: &str| ts(&format!("2018-10-10T{hms}Z"));
    let all: Vec<MtaEvent> = log.iter().flat_map(|(_, _, e)| e.clone()).collect();
    assert_eq!(
        all,
        [
            arrival("C6E0DDB74006", at("15:59:28")),
            MtaEvent::MessageId {
                queue: qid("C6E0DDB74006"),
                message_id: b("A40CF64D-7F2D-42E4-8A76-CBFFF64A6EB1@example.com")
            },
            arrival("C6E0DDB74006", at("15:59:28")),
            arrival("3D74ADB7400B", at("15:59:29")),
            MtaEvent::MessageId {
                queue: qid("3D74ADB7400B"),
                message_id: b("f93388828093534f92d85ffe21b2a719@example.info")
            },
            arrival("3D74ADB7400B", at("15:59:29")),
            relayed(
                "3D74ADB7400B",
                "test@example.to",
                "example.to",
                at("15:59:30")
            ),
            relayed(
                "3D74ADB7400B",
                "test2@example.to",
                "example.to",
                at("15:59:30")
            ),
            MtaEvent::Done {
                queue: qid("3D74ADB7400B"),
                time: at("15:59:30")
            },
            arrival("6526CDB7400B", at("15:59:31")),
            MtaEvent::MessageId {
                queue: qid("6526CDB7400B"),
                message_id: b("153915476795520900002087@example.aaa")
            },
            arrival("6526CDB7400B", at("15:59:31")),
            // `queued as` from a remote relay: a hand-off, which the tracker follows only to a
            // host of the cluster (a stranger's MX says what it likes).
            {
                let MtaEvent::Recipient { queue, recipient } = relayed(
                    "6526CDB7400B",
                    "test@example.ccc",
                    "example.ccc",
                    at("15:59:31"),
                ) else {
                    unreachable!()
                };
                MtaEvent::HandedOff {
                    queue,
                    new_queue: qid("71111424269E"),
                    recipient,
                    hop: NextHop::new(b"example.ccc", b"192.168.0.10", Some(b"25")),
                }
            },
            MtaEvent::Done {
                queue: qid("6526CDB7400B"),
                time: at("15:59:31")
            },
            relayed(
                "C6E0DDB74006",
                "test@example.ddd",
                "example.ddd",
                at("15:59:32")
            ),
            MtaEvent::Done {
                queue: qid("C6E0DDB74006"),
                time: at("15:59:32")
            },
        ]
    );
    let ignored = log
        .iter()
        .filter(|(_, o, _)| *o == Outcome::Ignored)
        .count();
    assert_eq!(ignored, 6, "connect and disconnect lines");
}

#[test]
fn helga_rfc3339_log() {
    let log = parse_log(
        &fixture("postfix-rfc3339-helga-excerpt.log"),
        ts("2023-03-20T00:00:00Z").unix,
    );
    no_rejections(&log);

    // 1.1: submission with SASL.
    let t = "2023-03-14T00:31:06";
    assert_eq!(
        events_of(&log, &format!("{t}.621091+01:00 helga postfix/submission/smtpd[303987]: 4PbCZy4PWKz3tBr: client=unknown[2a02:8109:b240:41c8:9264:99a9:1b0d:15c8], sasl_method=PLAIN, sasl_username=vmail@uhu-banane.net")),
        [arrival("4PbCZy4PWKz3tBr", ts(&format!("{t}.621091+01:00")))]
    );
    assert_eq!(
        events_of(&log, &format!("{t}.648747+01:00 helga postfix/cleanup[304008]: 4PbCZy4PWKz3tBr: message-id=<20230313233104.C4ABB401A8@bruni.home.brehm-online.com>")),
        [MtaEvent::MessageId { queue: qid("4PbCZy4PWKz3tBr"), message_id: b("20230313233104.C4ABB401A8@bruni.home.brehm-online.com") }]
    );
    assert_eq!(
        events_of(&log, &format!("{t}.653551+01:00 helga postfix/qmgr[3163066]: 4PbCZy4PWKz3tBr: from=<user01.test+root.host1@uhu-banane.net>, size=1135, nrcpt=1 (queue active)")),
        [arrival("4PbCZy4PWKz3tBr", ts(&format!("{t}.653551+01:00")))]
    );

    // 1.4.2: the amavis content filter chain.
    assert_handed_off(
        events_of(&log, "2023-03-14T17:20:58.135293+01:00 helga postfix/amavis/smtp[374616]: 4Pbf065nmSz3tBr: to=<user01.test@uhu-banane.net>, relay=127.0.0.1[127.0.0.1]:10024, delay=3.7, delays=0.6/0.02/0.01/3, dsn=2.0.0, status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 4Pbf0B0gx2z3tG3)"),
        ("4Pbf065nmSz3tBr", "4Pbf0B0gx2z3tG3", "user01.test@uhu-banane.net"),
    );
    assert_eq!(
        events_of(&log, "2023-03-14T17:20:58.135481+01:00 helga postfix/qmgr[3163066]: 4Pbf065nmSz3tBr: removed"),
        [MtaEvent::Done { queue: qid("4Pbf065nmSz3tBr"), time: ts("2023-03-14T17:20:58.135481+01:00") }]
    );
    let t = ts("2023-03-14T17:20:58.271846+01:00");
    assert_eq!(
        events_of(&log, "2023-03-14T17:20:58.271846+01:00 helga postfix/pipe[374623]: 4Pbf0B0gx2z3tG3: to=<user01.test@uhu-banane.net>, relay=dovecot, delay=0.19, delays=0.02/0.02/0/0.15, dsn=2.0.0, status=sent (delivered via dovecot service)"),
        [MtaEvent::Recipient {
            queue: qid("4Pbf0B0gx2z3tG3"),
            recipient: Recipient {
                original: None,
                final_rcpt: b("user01.test@uhu-banane.net"),
                action: Action::Delivered,
                status: b("2.0.0"),
                remote_mta: None,
                diagnostic: None,
                last_attempt: None,
                will_retry_until: None,
                at: t.unix,
            },
        }]
    );

    // 1.4.3: local .forward, then the pipe delivery of the forwarded copy.
    let t = ts("2023-03-14T06:27:35.281454+01:00");
    assert_eq!(
        events_of(&log, "2023-03-14T06:27:35.281454+01:00 helga postfix/local[326895]: 4PbMVH1gW1z3tBr: to=<root@mail.uhu-banane.de>, relay=local, delay=0.05, delays=0.01/0.03/0/0.01, dsn=2.0.0, status=sent (forwarded as 4PbMVH1yTpz3tG3)"),
        [
            MtaEvent::Recipient {
                queue: qid("4PbMVH1gW1z3tBr"),
                recipient: Recipient {
                    original: None,
                    final_rcpt: b("root@mail.uhu-banane.de"),
                    action: Action::Expanded,
                    status: b("2.0.0"),
                    remote_mta: None,
                    diagnostic: None,
                    last_attempt: None,
                    will_retry_until: None,
                    at: t.unix,
                },
            },
            MtaEvent::Handoff { queue: qid("4PbMVH1gW1z3tBr"), new_queue: qid("4PbMVH1yTpz3tG3") },
        ]
    );
    let t = ts("2023-03-14T06:27:35.413909+01:00");
    assert_eq!(
        events_of(&log, "2023-03-14T06:27:35.413909+01:00 helga postfix/pipe[326897]: 4PbMVH1yTpz3tG3: to=<user01.test@uhu-banane.net>, orig_to=<root@mail.uhu-banane.de>, relay=dovecot, delay=0.14, delays=0/0.01/0/0.12, dsn=2.0.0, status=sent (delivered via dovecot service)"),
        [MtaEvent::Recipient {
            queue: qid("4PbMVH1yTpz3tG3"),
            recipient: Recipient {
                original: Some(b("rfc822;root@mail.uhu-banane.de")),
                final_rcpt: b("user01.test@uhu-banane.net"),
                action: Action::Delivered,
                status: b("2.0.0"),
                remote_mta: None,
                diagnostic: None,
                last_attempt: None,
                will_retry_until: None,
                at: t.unix,
            },
        }]
    );

    // 1.4.4: a bounce and its notification.
    let t = ts("2023-03-16T02:27:29.827273+01:00");
    assert_eq!(
        events_of(&log, "2023-03-16T02:27:29.827273+01:00 helga postfix/smtp[505058]: 4PcV4K5FPLz3tBr: to=<user02.test@uhu-banane.com>, relay=none, delay=0.07, delays=0.01/0.02/0.04/0, dsn=5.4.4, status=bounced (Host or domain name not found. Name service error for name=hennig-berlin.com type=AAAA: Host not found)"),
        [MtaEvent::Recipient {
            queue: qid("4PcV4K5FPLz3tBr"),
            recipient: Recipient {
                original: None,
                final_rcpt: b("user02.test@uhu-banane.com"),
                action: Action::Failed,
                status: b("5.4.4"),
                remote_mta: None,
                diagnostic: Some(b("smtp;Host or domain name not found. Name service error for name=hennig-berlin.com type=AAAA: Host not found")),
                last_attempt: Some(t),
                will_retry_until: None,
                at: t.unix,
            },
        }]
    );
    assert_eq!(
        events_of(&log, "2023-03-16T02:27:29.831436+01:00 helga postfix/cleanup[505040]: 4PcV4K5tFpz3tG5: message-id=<4PcV4K5tFpz3tG5@mail.brehm-berlin.de>"),
        [MtaEvent::MessageId { queue: qid("4PcV4K5tFpz3tG5"), message_id: b("4PcV4K5tFpz3tG5@mail.brehm-berlin.de") }]
    );
    assert_eq!(
        events_of(&log, "2023-03-16T02:27:29.834732+01:00 helga postfix/bounce[505059]: 4PcV4K5FPLz3tBr: sender non-delivery notification: 4PcV4K5tFpz3tG5"),
        [MtaEvent::Notification { queue: qid("4PcV4K5tFpz3tG5") }]
    );
    assert_eq!(
        events_of(&log, "2023-03-16T02:27:29.835213+01:00 helga postfix/qmgr[3163066]: 4PcV4K5tFpz3tG5: from=<>, size=6002, nrcpt=1 (queue active)"),
        [MtaEvent::Notification { queue: qid("4PcV4K5tFpz3tG5") }]
    );
    assert_eq!(
        events_of(&log, "2023-03-16T02:27:29.839842+01:00 helga postfix/qmgr[3163066]: 4PcV4K5FPLz3tBr: removed"),
        [MtaEvent::Done { queue: qid("4PcV4K5FPLz3tBr"), time: ts("2023-03-16T02:27:29.839842+01:00") }]
    );

    // Other programs sharing the file are not ours.
    for (line, outcome, _) in &log {
        if line.contains(" amavis[") {
            assert_eq!(*outcome, Outcome::Ignored, "{line}");
        }
    }
    // The whole file, by kind: a regression guard over every line.
    let mut counts = std::collections::BTreeMap::new();
    for (_, outcome, events) in &log {
        *counts.entry(kind(*outcome, events)).or_insert(0) += 1;
    }
    let counts: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
    assert_eq!(
        counts,
        [
            "arrival 53",
            "done 28",
            "handed-off:relayed 13",
            "ignored 394",
            "message-id 28",
            "notification 2",
            "rcpt:delivered 10",
            "rcpt:expanded+handoff 1",
            "rcpt:failed 1",
            "rcpt:relayed 3",
        ]
    );
}

#[test]
fn deferral_then_expiry() {
    // docs/mta-logs.md 1.5 (quoted there; the source's licence is unknown, so it is not a file).
    const LOG: &str = "\
Dec 27 02:38:54 mx postfix/qmgr[22753]: C93CEB08A046: from=<ina@somedomain.com>, size=1844, nrcpt=1 (queue active)
Dec 27 02:38:54 mx postfix/smtp[24234]: connect to arobor.ru[178.210.73.19]:25: Connection timed out
Dec 27 02:39:24 mx postfix/smtp[15816]: C93CEB08A046: to=<order@arobor.ru>, relay=none, delay=307136, delays=307106/0.02/30/0, dsn=4.4.1, status=deferred (connect to arobor.ru[178.210.73.19]:25: Connection timed out)
Dec 27 03:48:54 mx postfix/qmgr[22753]: C93CEB08A046: from=<ina@somedomain.com>, size=1844, nrcpt=1 (queue active)
Dec 27 03:48:54 mx postfix/smtp[24234]: connect to arobor.ru[178.210.73.19]:25: Connection timed out
Dec 27 03:49:24 mx postfix/smtp[15816]: C93CEB08A046: to=<order@arobor.ru>, relay=none, delay=307136, delays=307106/0.02/30/0, dsn=4.4.1, status=deferred (connect to arobor.ru[178.210.73.19]:25: Connection timed out)
Dec 28 13:39:28 mx postfix/qmgr[22753]: C93CEB08A046: from=<ina@somedomain.com>, status=expired, returned to sender
Dec 28 13:39:28 mx postfix/cleanup[19210]: B1B894562003: message-id=<20151228103928.B1B894562003@mx.somedomain.com>
Dec 28 13:39:28 mx postfix/bounce[19155]: C93CEB08A046: sender non-delivery notification: B1B894562003
Dec 28 13:39:28 mx postfix/qmgr[22753]: B1B894562003: from=<>, size=3773, nrcpt=1 (queue active)
Dec 28 13:39:28 mx postfix/qmgr[22753]: C93CEB08A046: removed
";
    let log = parse_log(LOG.as_bytes(), ts("2015-12-29T12:00:00Z").unix);
    no_rejections(&log);
    let at = |s: &str| ts(&format!("2015-12-{s}Z"));
    let deferred = |time: Timestamp| MtaEvent::Recipient {
        queue: qid("C93CEB08A046"),
        recipient: Recipient {
            original: None,
            final_rcpt: b("order@arobor.ru"),
            action: Action::Delayed,
            status: b("4.4.1"),
            remote_mta: None,
            diagnostic: Some(b(
                "smtp;connect to arobor.ru[178.210.73.19]:25: Connection timed out",
            )),
            last_attempt: Some(time),
            will_retry_until: None,
            at: time.unix,
        },
    };
    let per_line: Vec<(Outcome, Vec<MtaEvent>)> = log.into_iter().map(|(_, o, e)| (o, e)).collect();
    assert_eq!(
        per_line,
        [
            (
                Outcome::Parsed,
                vec![arrival("C93CEB08A046", at("27T02:38:54"))]
            ),
            (Outcome::Ignored, vec![]),
            (Outcome::Parsed, vec![deferred(at("27T02:39:24"))]),
            (
                Outcome::Parsed,
                vec![arrival("C93CEB08A046", at("27T03:48:54"))]
            ),
            (Outcome::Ignored, vec![]),
            (Outcome::Parsed, vec![deferred(at("27T03:49:24"))]),
            (
                Outcome::Parsed,
                vec![MtaEvent::Expired {
                    queue: qid("C93CEB08A046"),
                    time: at("28T13:39:28")
                }]
            ),
            (
                Outcome::Parsed,
                vec![MtaEvent::MessageId {
                    queue: qid("B1B894562003"),
                    message_id: b("20151228103928.B1B894562003@mx.somedomain.com")
                }]
            ),
            (
                Outcome::Parsed,
                vec![MtaEvent::Notification {
                    queue: qid("B1B894562003")
                }]
            ),
            (
                Outcome::Parsed,
                vec![MtaEvent::Notification {
                    queue: qid("B1B894562003")
                }]
            ),
            (
                Outcome::Parsed,
                vec![MtaEvent::Done {
                    queue: qid("C93CEB08A046"),
                    time: at("28T13:39:28")
                }]
            ),
        ]
    );
}

#[test]
fn damaged_lines_are_rejected_or_ignored() {
    let mut parser = PostfixParser::new(
        SyslogClock::new(Zone::utc(), ts("2018-10-11T00:00:00Z").unix),
        NativeTags::default(),
    );
    let mut parse = |line: &[u8]| parser.parse(line, &mut |_| {});
    assert_eq!(parse(b""), Outcome::Rejected("no syslog prefix"));
    assert_eq!(
        parse(b"Oct 10 15:59"),
        Outcome::Rejected("no syslog prefix")
    );
    assert_eq!(
        parse(b"\x00\xff\xfe garbage"),
        Outcome::Rejected("no syslog prefix")
    );
    assert_eq!(
        parse(b"Oct 10 15:59:29 mail dovecot[12]: imap-login: Login: user=<a@b>"),
        Outcome::Ignored
    );
    // Every truncation of real lines, prefix included: never a panic.
    let youyo = fixture("postfix-rfc3164-youyo-test.log");
    let helga = fixture("postfix-rfc3339-helga-excerpt.log");
    for line in lines(&youyo).chain(lines(&helga).take(60)) {
        for end in 0..=line.len() {
            let _ = parse(&line[..end]);
        }
    }
    // Pseudo-random bytes, alone and behind a valid prefix.
    let mut rng = fastrand::Rng::with_seed(0x2545_F491_4F6C_DD1D);
    for i in 0..5_000 {
        let mut garbage: Vec<u8> = (0..i % 400).map(|_| rng.u8(..)).collect();
        let alone = parse(&garbage);
        assert!(
            matches!(alone, Outcome::Rejected(_) | Outcome::Ignored),
            "{garbage:?}"
        );
        let mut line = b"Oct 10 15:59:30 mail postfix/smtp[1810]: ".to_vec();
        line.append(&mut garbage);
        let _ = parse(&line);
    }
    // A 1 MB line, of garbage and of a delivery line's shape.
    let big = vec![b'x'; 1 << 20];
    assert!(matches!(
        parse(&big),
        Outcome::Rejected(_) | Outcome::Ignored
    ));
    let mut line = b"Oct 10 15:59:30 mail postfix/smtp[1810]: 3D74ADB7400B: to=<".to_vec();
    line.resize(line.len() + (1 << 20), b'a');
    assert!(matches!(parse(&line), Outcome::Rejected(_)));
}
