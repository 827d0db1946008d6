//! The Postfix parser's tests: every line shape it reads, real lines, hand-offs, and damaged input.

use super::*;
use crate::ingest::mta::MAX_DIAGNOSTIC;

const T: Timestamp = Timestamp {
    unix: 1_678_750_113,
    offset_minutes: 60,
};

fn run(daemon: &str, text: &[u8]) -> (Outcome, Vec<MtaEvent>) {
    let mut events = Vec::new();
    let outcome = parse_text(T, daemon.as_bytes(), text, &mut |e| match e {
        Event::Mta(m) => events.push(m),
        other => panic!("not an MTA event: {other:?}"),
    });
    (outcome, events)
}

fn one(daemon: &str, text: &str) -> MtaEvent {
    let (outcome, mut events) = run(daemon, text.as_bytes());
    assert_eq!(outcome, Outcome::Parsed, "{text}");
    assert_eq!(events.len(), 1, "{text}: {events:?}");
    events.remove(0)
}

fn rcpt(daemon: &str, text: &str) -> Recipient {
    match one(daemon, text) {
        MtaEvent::Recipient { queue, recipient } => {
            assert!(text.as_bytes().starts_with(&queue));
            recipient
        }
        other => panic!("{text}: {other:?}"),
    }
}

fn b(s: &str) -> Box<[u8]> {
    s.as_bytes().into()
}

fn qid(s: &str) -> crate::ingest::queue_id::QueueId {
    s.as_bytes().into()
}

fn ignored(daemon: &str, text: &str) {
    let (outcome, events) = run(daemon, text.as_bytes());
    assert_eq!(outcome, Outcome::Ignored, "{text}");
    assert!(events.is_empty());
}

fn rejected(daemon: &str, text: &str) -> &'static str {
    let (outcome, events) = run(daemon, text.as_bytes());
    assert!(events.is_empty(), "{text}: {events:?}");
    match outcome {
        Outcome::Rejected(r) => r,
        other => panic!("{text}: {other:?}"),
    }
}

#[test]
fn arrivals() {
    let arrival = MtaEvent::Arrival {
        queue: qid("4PbC4x469Jz3tBr"),
        time: T,
        message_id: None,
    };
    assert_eq!(
        one("smtpd", "4PbC4x469Jz3tBr: client=unknown[2a02:8109::15c8], sasl_method=PLAIN, sasl_username=vmail@uhu-banane.net"),
        arrival
    );
    assert_eq!(one("pickup", "4PbC4x469Jz3tBr: uid=0 from=<root>"), arrival);
    assert_eq!(
        one(
            "qmgr",
            "4PbC4x469Jz3tBr: from=<a@b.example>, size=1135, nrcpt=1 (queue active)"
        ),
        arrival
    );
    // Quoted local parts (Postfix >= 3.5) may hold `>` and `, `.
    assert_eq!(
        one(
            "qmgr",
            "4PbC4x469Jz3tBr: from=<\"a>, b\"@b.example>, size=1135, nrcpt=1 (queue active)"
        ),
        arrival
    );
    assert_eq!(
        one(
            "qmgr",
            "0F5383D: from=<>, size=6002, nrcpt=1 (queue active)"
        ),
        MtaEvent::Notification {
            queue: qid("0F5383D")
        }
    );
    ignored("pickup", "0F5383D: uid=0");
}

#[test]
fn requeued_mail_hands_off_from_its_old_id() {
    let (outcome, events) = run(
        "pickup",
        b"4PbMVG6Tmjz3tG3: uid=0 from=<root> orig_id=4PbMVG6Tmjz3tAA",
    );
    assert_eq!(outcome, Outcome::Parsed);
    assert_eq!(
        events,
        [
            MtaEvent::Arrival {
                queue: qid("4PbMVG6Tmjz3tG3"),
                time: T,
                message_id: None
            },
            MtaEvent::Handoff {
                queue: qid("4PbMVG6Tmjz3tAA"),
                new_queue: qid("4PbMVG6Tmjz3tG3")
            },
        ]
    );
    // XFORWARD's orig_queue_id= may name another host's queue: no hand-off.
    let (_, events) = run(
        "smtpd",
        b"ABC123: client=localhost[127.0.0.1], orig_queue_id=DEF456, orig_client=x[192.0.2.1]",
    );
    assert_eq!(events.len(), 1);
}

#[test]
fn message_ids() {
    assert_eq!(
        one("cleanup", "0F5383D: message-id=<544D2523.30609@rhsoft.net>"),
        MtaEvent::MessageId {
            queue: qid("0F5383D"),
            message_id: b("544D2523.30609@rhsoft.net")
        }
    );
    assert_eq!(
        one(
            "cleanup",
            "ADD961003206D: message-id==?UTF-8?B?PDE5?=? =?UTF-8?B?MTI=?="
        ),
        MtaEvent::MessageId {
            queue: qid("ADD961003206D"),
            message_id: b("=?UTF-8?B?PDE5?=? =?UTF-8?B?MTI=?=")
        }
    );
    assert_eq!(
        one("cleanup", "0F5383D: message-id=<unbalanced"),
        MtaEvent::MessageId {
            queue: qid("0F5383D"),
            message_id: b("<unbalanced")
        }
    );
    ignored("cleanup", "4104E3D: message-id=<>");
    ignored("cleanup", "4104E3D: message-id=");
    ignored("cleanup", "4104E3D: resent-message-id=<a@b>");
    let long = format!("0F5383D: message-id=<{}>", "x".repeat(999));
    assert_eq!(
        rejected("cleanup", &long),
        "message-id longer than 998 octets"
    );
}

#[test]
fn removal_and_expiry() {
    for (daemon, text) in [
        ("qmgr", "D4F2023DB: removed"),
        ("postsuper", "D4F2023DB: removed"),
        ("cleanup", "D4F2023DB: removed (canceled)"),
        ("cleanup", "D4F2023DB: removed (discarded)"),
    ] {
        assert_eq!(
            one(daemon, text),
            MtaEvent::Done {
                queue: qid("D4F2023DB"),
                time: T
            }
        );
    }
    ignored("postsuper", "D4F2023DB: removedX");
    ignored("postsuper", "D4F2023DB: requeued");
    ignored("postsuper", "D4F2023DB: expired");
    for text in [
        "66C15648577B: from=<uvnhbl@yahoo.com.tw>, status=expired, returned to sender",
        "66C15648577B: from=<a@b>, status=force-expired, returned to sender",
        "66C15648577B: from=<>, status=expired, returned to sender",
    ] {
        assert_eq!(
            one("qmgr", text),
            MtaEvent::Expired {
                queue: qid("66C15648577B"),
                time: T
            }
        );
    }
    ignored("qmgr", "66C15648577B: from=<a@b>");
    assert_eq!(
        rejected("qmgr", "66C15648577B: from=<a@b"),
        "address without closing >"
    );
}

#[test]
fn notifications() {
    for text in [
        "17CCA8044: sender non-delivery notification: ADD2F8052",
        "17CCA8044: postmaster non-delivery notification: ADD2F8052",
        "17CCA8044: sender delay notification: ADD2F8052",
        "17CCA8044: sender delivery status notification: ADD2F8052",
    ] {
        assert_eq!(
            one("bounce", text),
            MtaEvent::Notification {
                queue: qid("ADD2F8052")
            }
        );
    }
    assert_eq!(
        rejected("bounce", "17CCA8044: sender non-delivery notification: "),
        "notification without a queue id"
    );
    ignored("bounce", "17CCA8044: sender is weird");
}

#[test]
fn relayed_by_smtp() {
    let r = rcpt("smtp", "3D74ADB7400B: to=<test@example.to>, relay=example.to[192.168.0.20]:25, delay=1.7, delays=0.02/0/1.7/0.06, dsn=2.0.0, status=sent (250 [Sniper] OK 1539154772 snipe-queue 10549)");
    assert_eq!(
        r,
        Recipient {
            original: None,
            final_rcpt: b("test@example.to"),
            action: Action::Relayed,
            status: b("2.0.0"),
            remote_mta: Some(b("dns;example.to")),
            diagnostic: None,
            last_attempt: Some(T),
            will_retry_until: None,
            at: T.unix,
        }
    );
    // conn_use= and Postfix 3.11's tls= are skipped like any unknown key.
    let r = rcpt("smtp", "D53A72713E5: to=<me@bellsouth.net>, relay=gw.att.net[204.127.217.16]:25, conn_use=2, delay=0.57, delays=0.11/0.03/0.23/0.19, tls=dane/!requiretls:nocertmatch, future_key=x, dsn=2.1.5, status=sent (250 ok)");
    assert_eq!(r.action, Action::Relayed);
    assert_eq!(&*r.status, b"2.1.5");
    assert_eq!(r.remote_mta.as_deref(), Some(&b"dns;gw.att.net"[..]));
}

#[test]
fn delivered_locally() {
    let r = rcpt("pipe", "153053D: to=<tom@example.com>, orig_to=<admin@example.com>, relay=dovecot, delay=3.4, delays=3.3/0.03/0/0.12, dsn=2.0.0, status=sent (delivered via dovecot service)");
    assert_eq!(
        r,
        Recipient {
            original: Some(b("rfc822;admin@example.com")),
            final_rcpt: b("tom@example.com"),
            action: Action::Delivered,
            status: b("2.0.0"),
            remote_mta: None,
            diagnostic: None,
            last_attempt: None,
            will_retry_until: None,
            at: T.unix,
        }
    );
    for daemon in ["lmtp", "local", "virtual", "discard"] {
        let r = rcpt(daemon, "B657F2DB195D: to=<postmaster@example.com>, relay=virtual, delay=0.52, delays=0.51/0.01/0/0, dsn=2.0.0, status=sent (delivered to maildir)");
        assert_eq!(r.action, Action::Delivered);
        assert_eq!(r.remote_mta, None);
    }
    // A unix-socket LMTP relay names no remote MTA.
    let r = rcpt("lmtp", "AD6E41CDC05C: to=<admin@example.com>, relay=sub1.example.com[private/dovecot-lmtp], delay=0.15, delays=0.04/0/0.02/0.08, dsn=2.0.0, status=sent (250 2.0.0 <admin@example.com> qYyyBMsl9FRuZQAAA15QOA Saved)");
    assert_eq!((r.action, r.remote_mta), (Action::Delivered, None));
    // Addresses without angle brackets (a hand-edited upstream fixture) are tolerated.
    let r = rcpt("local", "2A22C263F6: to=user@hostname.example.com, orig_to=root@localhost, relay=local, delay=0.07, delays=0.04/0/0/0.03, dsn=2.0.0, status=sent (delivered to command: procmail -a \"$EXTENSION\")");
    assert_eq!(&*r.final_rcpt, b"user@hostname.example.com");
    assert_eq!(r.original.as_deref(), Some(&b"rfc822;root@localhost"[..]));
}

#[test]
fn delayed_and_failed() {
    let r = rcpt("smtp", "C93CEB08A046: to=<order@arobor.ru>, relay=none, delay=307136, delays=307106/0.02/30/0, dsn=4.4.1, status=deferred (connect to arobor.ru[178.210.73.19]:25: Connection timed out)");
    assert_eq!(
        r,
        Recipient {
            original: None,
            final_rcpt: b("order@arobor.ru"),
            action: Action::Delayed,
            status: b("4.4.1"),
            remote_mta: None,
            diagnostic: Some(b(
                "smtp;connect to arobor.ru[178.210.73.19]:25: Connection timed out"
            )),
            last_attempt: Some(T),
            will_retry_until: None,
            at: T.unix,
        }
    );
    let r = rcpt("smtp", "A0E85200BD: to=<u@lists.example.org>, relay=open.example.nl[10.49.140.10]:25, delay=2.3, delays=0.25/0.05/2/0.04, dsn=4.2.0, status=deferred (host open.example.nl[10.49.140.10] said: 450 4.2.0 Greylisted (in reply to RCPT TO command))");
    assert_eq!(r.remote_mta.as_deref(), Some(&b"dns;open.example.nl"[..]));
    assert_eq!(
        r.diagnostic.as_deref(),
        Some(&b"smtp;host open.example.nl[10.49.140.10] said: 450 4.2.0 Greylisted (in reply to RCPT TO command)"[..])
    );
    let r = rcpt("smtp", "ABC: to=<a@b>, relay=none, delay=1, dsn=4.7.1, status=SOFTBOUNCE (host x[192.0.2.1] said: 554 no)");
    assert_eq!((r.action, &*r.status), (Action::Delayed, &b"4.7.1"[..]));
    let r = rcpt("local", "892A0205B6: to=ghdsgfhdslfh@localhost, relay=local, delay=0.05, delays=0.02/0/0/0.02, dsn=5.1.1, status=bounced (unknown user: \"ghdsgfhdslfh\")");
    assert_eq!(r.action, Action::Failed);
    assert_eq!(r.last_attempt, Some(T));
    assert_eq!(
        r.diagnostic.as_deref(),
        Some(&b"smtp;unknown user: \"ghdsgfhdslfh\""[..])
    );
    let r = rcpt("error", "3E29030F8637E: to=<user@yahoo.com>, relay=none, delay=0.01, delays=0.01/0/0/0, dsn=5.1.1, status=undeliverable-but-not-cached (User unknown in virtual alias table)");
    assert_eq!(r.action, Action::Failed);
    ignored("smtp", "3E29030F8637E: to=<user@yahoo.com>, relay=x[192.0.2.1]:25, delay=1, delays=0/0/0/1, dsn=2.1.5, status=deliverable (250 ok)");
}

#[test]
fn diagnostics_are_capped_on_a_character_boundary() {
    let text = format!(
        "ABC: to=<a@b>, relay=none, delay=1, dsn=5.0.0, status=bounced ({})",
        "é".repeat(400)
    );
    let r = rcpt("smtp", &text);
    let diag = r.diagnostic.unwrap();
    assert!(diag.len() <= MAX_DIAGNOSTIC);
    assert!(diag.len() > MAX_DIAGNOSTIC - 2);
    assert!(std::str::from_utf8(&diag).is_ok());
    // A line Postfix truncated (2000 bytes) has no closing parenthesis.
    let r = rcpt(
        "smtp",
        "ABC: to=<a@b>, relay=none, delay=1, dsn=5.0.0, status=bounced (host x said: 550 no such",
    );
    assert_eq!(
        r.diagnostic.as_deref(),
        Some(&b"smtp;host x said: 550 no such"[..])
    );
}

#[test]
fn pre_2_3_lines_without_dsn() {
    let r = rcpt(
        "smtp",
        "ABC: to=<a@b>, relay=mx.b[192.0.2.1], delay=0, status=sent (250 ok)",
    );
    assert_eq!((&*r.status, r.action), (&b"2.0.0"[..], Action::Relayed));
    assert_eq!(r.remote_mta.as_deref(), Some(&b"dns;mx.b"[..]));
    let r = rcpt(
        "smtp",
        "ABC: to=<a@b>, relay=none, delay=0, status=deferred (timeout)",
    );
    assert_eq!(&*r.status, b"4.0.0");
    let r = rcpt(
        "smtp",
        "ABC: to=<a@b>, relay=none, delay=0, status=bounced (no)",
    );
    assert_eq!(&*r.status, b"5.0.0");
}

#[test]
fn quoted_local_parts() {
    let r = rcpt("smtp", "ABC: to=<\"a>, b\"@example.com>, orig_to=<\"x\\\"y>\"@example.com>, relay=none, delay=0, dsn=4.0.0, status=deferred (x)");
    assert_eq!(&*r.final_rcpt, b"\"a>, b\"@example.com");
    assert_eq!(
        r.original.as_deref(),
        Some(&b"rfc822;\"x\\\"y>\"@example.com"[..])
    );
    // The internal (unquoted) format: the `>` that ends the field closes the address.
    let r = rcpt(
        "smtp",
        "ABC: to=<a>b@example.com>, relay=none, delay=0, dsn=4.0.0, status=deferred (x)",
    );
    assert_eq!(&*r.final_rcpt, b"a>b@example.com");
    let r = rcpt(
        "smtp",
        "ABC: to=<a\"b@example.com>, relay=none, delay=0, dsn=4.0.0, status=deferred (x)",
    );
    assert_eq!(&*r.final_rcpt, b"a\"b@example.com");
}

#[test]
fn a_next_hop_that_queued_the_message_is_a_hand_off() {
    for (daemon, host, hop, text) in [
        ("smtp", "127.0.0.1", ("127.0.0.1", Some("127.0.0.1"), Some(10024)), "4Pbf065nmSz3tBr: to=<u@uhu-banane.net>, relay=127.0.0.1[127.0.0.1]:10024, delay=3.7, delays=0.6/0.02/0.01/3, dsn=2.0.0, status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 4Pbf0B0gx2z3tG3)"),
        ("lmtp", "localhost", ("localhost", Some("::1"), Some(10024)), "4Pbf065nmSz3tBr: to=<u@uhu-banane.net>, relay=localhost[::1]:10024, delay=3.7, delays=0.6/0.02/0.01/3, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4Pbf0B0gx2z3tG3)"),
        ("smtp", "filter", ("filter", Some("::1"), Some(10024)), "4Pbf065nmSz3tBr: to=<u@uhu-banane.net>, relay=filter[::1]:10024, delay=3.7, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4Pbf0B0gx2z3tG3)"),
        // Another host: the tracker follows it only to a host of the cluster.
        ("smtp", "hub2.example.com", ("hub2.example.com", Some("10.0.0.2"), Some(25)), "4Pbf065nmSz3tBr: to=<u@uhu-banane.net>, relay=hub2.example.com[10.0.0.2]:25, delay=3.7, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4Pbf0B0gx2z3tG3)"),
        ("smtp", "hub2", ("hub2", Some("2001:db8::2"), None), "4Pbf065nmSz3tBr: to=<u@uhu-banane.net>, relay=hub2[IPv6:2001:db8::2], delay=3.7, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4Pbf0B0gx2z3tG3)"),
    ] {
        let MtaEvent::HandedOff { queue, new_queue, recipient, hop: got } = one(daemon, text) else {
            panic!("not a hand-off: {text}");
        };
        assert_eq!((queue, new_queue), (qid("4Pbf065nmSz3tBr"), qid("4Pbf0B0gx2z3tG3")));
        assert_eq!(&*recipient.final_rcpt, b"u@uhu-banane.net");
        assert_eq!(recipient.action, Action::Relayed, "{text}");
        assert_eq!(recipient.remote_mta.as_deref(), Some(format!("dns;{host}").as_bytes()));
        assert_eq!(&*got.name, hop.0.as_bytes(), "{text}");
        assert_eq!(got.addr, hop.1.map(|a| a.parse().unwrap()), "{text}");
        assert_eq!(got.port, hop.2, "{text}");
    }
    // A remote store's lmtp reply that says `queued as` is a delivery, not a hop.
    let r = rcpt("lmtp", "A: to=<a@b>, relay=store.example.net[10.0.0.9]:24, delay=1, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4Pbf0B0gx2z3tG3)");
    assert_eq!(r.action, Action::Delivered);
    // A local relay that does not re-queue (LMTP to a local store) delivers.
    let r = rcpt("lmtp", "A: to=<a@b>, relay=127.0.0.1[127.0.0.1]:24, delay=1, dsn=2.0.0, status=sent (250 2.0.0 <a@b> Saved)");
    assert_eq!(r.action, Action::Delivered);
}

#[test]
fn forwarded_is_expanded_and_handed_off() {
    let (outcome, events) = run("local", b"4PbMVH1gW1z3tBr: to=<root@mail.uhu-banane.de>, relay=local, delay=0.05, delays=0.01/0.03/0/0.01, dsn=2.0.0, status=sent (forwarded as 4PbMVH1yTpz3tG3)");
    assert_eq!(outcome, Outcome::Parsed);
    assert_eq!(
        events,
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
                    at: T.unix,
                },
            },
            MtaEvent::Handoff {
                queue: qid("4PbMVH1gW1z3tBr"),
                new_queue: qid("4PbMVH1yTpz3tG3")
            },
        ]
    );
}

#[test]
fn damaged_delivery_lines_are_rejected() {
    assert_eq!(
        rejected("smtp", "ABC: to=<a@b>, relay=none, delay=0"),
        "delivery line without status="
    );
    assert_eq!(
        rejected("smtp", "ABC: to=<a@b"),
        "address without closing >"
    );
    assert_eq!(
        rejected("smtp", "ABC: to=<>, relay=none, dsn=2.0.0, status=sent (x)"),
        "delivery line with an empty to= address"
    );
    assert_eq!(
        rejected(
            "smtp",
            "ABC: to=<a@b>, relay=none, dsn=2.0, status=sent (x)"
        ),
        "dsn= is not class.subject.detail"
    );
    assert_eq!(
        rejected(
            "smtp",
            "ABC: to=<a@b>, relay=none, dsn=2.0.0, status=sentx (x)"
        ),
        "unknown delivery status"
    );
    assert_eq!(
        rejected(
            "smtp",
            "ABC: to=<a@b> relay=none, dsn=2.0.0, status=sent (x)"
        ),
        "address without closing >"
    );
    assert_eq!(
        rejected(
            "smtp",
            "ABC: to=a@b, relay=none, dsn 2.0.0, status=sent (x)"
        ),
        "delivery line field is not key=value"
    );
    assert_eq!(
        rejected(
            "smtp",
            "ABC: to=<a@b>, Relay Host=none, dsn=2.0.0, status=sent (x)"
        ),
        "delivery line field is not key=value"
    );
    let long = format!(
        "ABC: to=<{}@b>, relay=none, dsn=2.0.0, status=sent (x)",
        "a".repeat(600)
    );
    assert_eq!(rejected("smtp", &long), "address longer than 512 octets");
}

#[test]
fn noise_is_ignored() {
    for (daemon, text) in [
        ("smtpd", "connect from example.com[127.0.0.1]"),
        ("smtpd", "disconnect from unknown[2001:db8::1] ehlo=1 commands=1"),
        ("smtpd", "NOQUEUE: reject: RCPT from x[192.0.2.1]: 554 5.7.1 no; from=<a@b> to=<c@d> proto=ESMTP helo=<x>"),
        ("cleanup", "warning: 9BECF3F19D: sender_canonical_maps map lookup problem"),
        ("smtp", "B99FE3D: lost connection with mx3.hotmail.com[65.55.37.72] while receiving the initial server greeting"),
        ("smtp", "ED59C3D: host mail2.example.com[1.74.253.23] said: 450 4.7.1 Greylisted (in reply to RCPT TO command)"),
        ("anvil", "statistics: max cache size 1 at Oct 26 18:13:50"),
        ("postsuper", "Deleted: 115 messages"),
        ("qmgr", "ED06590130AA1C9D6D862: skipped, still being delivered"),
        ("master", "daemon started -- version 2.11.0, configuration /etc/postfix"),
        ("smtp", ""),
        ("smtp", ":"),
        ("smtp", ": "),
        ("smtp", "ABC:"),
        ("smtp", "ABC: "),
    ] {
        ignored(daemon, text);
    }
}

/// Pseudo-random bytes of `alphabet`, from a seeded generator so that a failure can be replayed.
fn noise(rng: &mut fastrand::Rng, len: usize, alphabet: &[u8]) -> Vec<u8> {
    (0..len)
        .map(|_| alphabet[rng.usize(..alphabet.len())])
        .collect()
}

#[test]
fn no_input_panics() {
    let lines: &[&[u8]] = &[
        b"4PbMVH1gW1z3tBr: to=<\"root\"@mail.uhu-banane.de>, orig_to=<x@y>, relay=local[127.0.0.1]:25, conn_use=2, delay=0.05, delays=0.01/0.03/0/0.01, tls=may, dsn=2.0.0, status=sent (forwarded as 4PbMVH1yTpz3tG3)",
        b"4Pbf065nmSz3tBr: to=<u@uhu-banane.net>, relay=127.0.0.1[127.0.0.1]:10024, delay=3.7, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4Pbf0B0gx2z3tG3)",
        b"C93CEB08A046: from=<ina@somedomain.com>, status=expired, returned to sender",
        b"17CCA8044: sender non-delivery notification: ADD2F8052",
        b"0F5383D: message-id=<544D2523.30609@rhsoft.net>",
        b"4PbMVG6Tmjz3tG3: uid=0 from=<root> orig_id=4PbMVG6Tmjz3tAA",
    ];
    // Every truncation of real shapes.
    for line in lines {
        for end in 0..=line.len() {
            for daemon in ["smtp", "local", "qmgr"] {
                let _ = run(daemon, &line[..end]);
            }
        }
    }
    // Random bytes, and random bytes from the syntax's own alphabet.
    let mut rng = fastrand::Rng::with_seed(0x9E37_79B9_7F4A_7C15);
    let all: Vec<u8> = (0..=255).collect();
    let syntax = b"<>\"\\,= ()[]:.to=relay=status=dsn=2.0.0sentqueued as ABC12forwarded";
    for i in 0..20_000 {
        let len = i % 300;
        let mut line = b"ABC12: to=".to_vec();
        line.extend(noise(&mut rng, len, if i % 2 == 0 { &all } else { syntax }));
        let _ = run("smtp", &line);
        let _ = run("smtp", &line[7..]);
        let _ = run("smtp", &noise(&mut rng, len, &all));
    }
    // A 1 MB line of each kind.
    let big = vec![b'A'; 1 << 20];
    let _ = run("smtp", &big);
    let mut to = b"ABC: to=<".to_vec();
    to.resize(to.len() + (1 << 20), b'>');
    assert!(matches!(run("smtp", &to).0, Outcome::Rejected(_)));
    let mut status = b"ABC: to=<a@b>, relay=none, dsn=5.0.0, status=bounced (".to_vec();
    status.resize(status.len() + (1 << 20), b'x');
    let r = rcpt("smtp", std::str::from_utf8(&status).unwrap());
    assert!(r.diagnostic.unwrap().len() <= 5 + MAX_DIAGNOSTIC);
    let mut msgid = b"ABC: message-id=<".to_vec();
    msgid.resize(msgid.len() + (1 << 20), b'x');
    assert!(matches!(run("cleanup", &msgid).0, Outcome::Rejected(_)));
}
