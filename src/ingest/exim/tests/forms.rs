//! Each line form the parser knows — timestamps, ids, syslog prefixes and split pieces,
//! deliveries, failures and deferrals — and damaged or hostile input.

use super::*;

#[test]
fn milliseconds_offset_and_pid() {
    let q = "1iGHiT-00007b-Na";
    // 2021-07-17 23:20:49 +0200 = 21:20:49Z.
    let want = Timestamp {
        unix: 1_626_556_849,
        offset_minutes: 120,
    };
    for line in [
        "2021-07-17 23:20:49 +0200 1iGHiT-00007b-Na Completed",
        "2021-07-17 23:20:49.123 +0200 1iGHiT-00007b-Na Completed",
        "2021-07-17 23:20:49.123 +0200 [4711] 1iGHiT-00007b-Na Completed",
        "2021-07-17 23:20:49 +0200 [4711] 1iGHiT-00007b-Na Completed QT=3s",
    ] {
        assert_eq!(parse(line), expected(Want::Done(q), want), "{line}");
    }
    // Without +ZZZZ the parser's zone decides; an explicit offset wins over it.
    let mut berlin = parser_in("+02:00");
    for line in [
        "2021-07-17 23:20:49.5 [4711] 1iGHiT-00007b-Na Completed",
        "2021-07-17 23:20:49 +0200 1iGHiT-00007b-Na Completed",
    ] {
        assert_eq!(
            parse_with(&mut berlin, line.as_bytes()),
            expected(Want::Done(q), want),
            "{line}"
        );
    }
    let west = Timestamp {
        unix: 1_626_556_849 + 7 * 3600,
        offset_minutes: -300,
    };
    assert_eq!(
        parse_with(
            &mut berlin,
            b"2021-07-17 23:20:49 -0500 1iGHiT-00007b-Na Completed"
        ),
        expected(Want::Done(q), west)
    );
}

#[test]
fn both_id_formats_and_near_misses() {
    assert!(is_message_id(b"1iGHiT-00007b-Na"));
    assert!(is_message_id(b"1smkL5-00000000e65-24eQ"));
    for bad in [
        &b"1iGHiT-00007b-N"[..],
        b"1iGHiT-00007b-Na1",
        b"1iGHiT_00007b-Na",
        b"1iGHi!-00007b-Na",
        b"1smkL5-0000000e65-24eQ",
        b"1smkL5-00000000e65-24eQQ",
        b"",
    ] {
        assert!(!is_message_id(bad), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn syslog_prefixed_lines() {
    let q = "1iGHiT-00007b-Na";
    // Exim's own timestamp behind the prefix: its time is the line's.
    let own = utc(1_626_564_049); // 2021-07-17 23:20:49Z
    for line in [
        "Jul 18 01:20:49 mail exim[3751842]: 2021-07-17 23:20:49 1iGHiT-00007b-Na Completed",
        "mail.example.com exim[3751842]: 2021-07-17 23:20:49 1iGHiT-00007b-Na Completed",
        "2021-07-18T01:20:49.000000+02:00 mail exim4[1]: 2021-07-17 23:20:49 1iGHiT-00007b-Na Completed",
        "2021-07-17 23:20:49 mail exim[1]: 1iGHiT-00007b-Na Completed",
    ] {
        assert_eq!(parse(line), expected(Want::Done(q), own), "{line}");
    }
    // `syslog_timestamp = false`: the prefix's time.
    let clock_time = Timestamp {
        unix: 1_626_564_049,
        offset_minutes: 120,
    };
    let line = r#"2021-07-18T01:20:49+02:00 mail exim[17]: 1iGHiT-00007b-Na => a@b.example R=dnslookup T=remote_smtp H=mx.b.example [192.0.2.1] C="250 2.0.0 Ok""#;
    assert_eq!(
        parse(line),
        expected(
            Want::Rcpt(
                q,
                "a@b.example",
                None,
                Relayed,
                "2.0.0",
                Some("mx.b.example"),
                None
            ),
            clock_time
        )
    );
    // Classic syslog times have no year; the clock infers it from "now".
    let mut p = parser_in("UTC");
    let (outcome, events) = parse_with(
        &mut p,
        b"Nov 14 22:13:20 mail exim[17]: 1iGHiT-00007b-Na Completed",
    );
    assert_eq!(outcome, Outcome::Parsed);
    assert_eq!(
        events,
        vec![MtaEvent::Done {
            queue: qid(q),
            time: utc(NOW)
        }]
    );
    // Other daemons in a shared mail log.
    for line in [
        "Jul 18 01:20:49 mail dovecot[12]: imap-login: Login: user=<a>",
        "Jul 18 01:20:49 mail postfix/smtpd[12]: connect from x[192.0.2.1]",
    ] {
        assert_eq!(parse(line), (Outcome::Ignored, vec![]), "{line}");
    }
}

#[test]
fn syslog_split_pieces() {
    let q = "1iGHiT-00007b-Na";
    // The first piece of a long line split for syslog: the part that names the recipient
    // is there, the end (and with it C=) may be lost.
    let line = r#"Jul 18 01:20:49 mail exim[17]: [1\2] 2021-07-17 23:20:49 1iGHiT-00007b-Na => a@b.example R=dnslookup T=remote_smtp H=mx.b.example [192.0.2.1] C="250 2.0.0 Ok: queued as"#;
    assert_eq!(
        parse(line),
        expected(
            Want::Rcpt(
                q,
                "a@b.example",
                None,
                Relayed,
                "2.0.0",
                Some("mx.b.example"),
                None
            ),
            utc(1_626_564_049)
        )
    );
    let cut =
        "Jul 18 01:20:49 mail exim[17]: [1/2] 2021-07-17 23:20:49 1iGHiT-00007b-Na => a@b.example";
    assert_eq!(parse(cut).0, Outcome::Parsed);
    let rest = r#"Jul 18 01:20:49 mail exim[17]: [2\2]  FOO 1234" QT=4s"#;
    assert_eq!(parse(rest), (Outcome::Ignored, vec![]));
}

#[test]
fn a_confirmation_naming_the_next_hop_s_id_is_a_hand_off() {
    let at = |rest: &str| format!("2021-07-17 23:20:49 1iGHiT-00007b-Na {rest}");
    for (rest, next, addr, port) in [
        (
            r#"=> a@b.example R=dnslookup T=remote_smtp H=hub2.example.com [10.0.0.2] C="250 OK id=1smkL5-00000000e65-24eQ""#,
            "1smkL5-00000000e65-24eQ",
            "10.0.0.2",
            None,
        ),
        (
            r#"=> a@b.example R=smarthost T=remote_smtp H=hub2 [10.0.0.2]:2525 C="250 2.0.0 Ok: queued as 4ZxY1k2Hq3z6""#,
            "4ZxY1k2Hq3z6",
            "10.0.0.2",
            Some(2525),
        ),
        (
            r#"=> a@b.example R=smarthost T=remote_smtp H=hub2 [2001:db8::2] C="250 2.0.0 6B36ZJnG031684 Message accepted for delivery""#,
            "6B36ZJnG031684",
            "2001:db8::2",
            None,
        ),
    ] {
        let (outcome, events) = parse(&at(rest));
        assert_eq!(outcome, Outcome::Parsed, "{rest}");
        let [MtaEvent::HandedOff {
            new_queue,
            recipient,
            hop,
            ..
        }] = &events[..]
        else {
            panic!("not a hand-off: {events:?}");
        };
        assert_eq!(new_queue, &qid(next));
        assert_eq!(recipient.action, Relayed);
        assert_eq!(hop.addr, Some(addr.parse().unwrap()), "{rest}");
        assert_eq!(hop.port, port, "{rest}");
    }
    // A local delivery's confirmation (LMTP to a store) is not a hop.
    let (_, events) = parse(&at(
        r#"=> a@b.example R=r T=lmtp_store H=store [10.0.0.9] C="250 2.0.0 Ok: queued as 4ZxY1k2Hq3z6""#,
    ));
    assert!(
        matches!(&events[..], [MtaEvent::Recipient { recipient, .. }] if recipient.action == Delivered),
        "{events:?}"
    );
}

#[test]
fn delivery_forms() {
    let q = "1iGHiT-00007b-Na";
    let t = utc(1_626_564_049);
    let at = |rest: &str| format!("2021-07-17 23:20:49 1iGHiT-00007b-Na {rest}");
    // Cutthrough is a delivery.
    assert_eq!(
        parse(&at(
            r#">> a@b.example R=dnslookup T=remote_smtp H=mx.b.example [192.0.2.1]:25 C="250 2.0.0 OK""#
        )),
        expected(
            Want::Rcpt(
                q,
                "a@b.example",
                None,
                Relayed,
                "2.0.0",
                Some("mx.b.example"),
                None
            ),
            t
        )
    );
    // Suppressed by -N: nothing happened.
    assert_eq!(
        parse(&at(
            "*> a@b.example R=dnslookup T=remote_smtp H=mx.b.example [192.0.2.1]"
        )),
        (Outcome::Ignored, vec![])
    );
    // A host means another server: a relay, whatever the transport's name says, unless it
    // speaks LMTP; no C= code means 2.0.0; a 4xx/5xx code in C= never becomes a delivered
    // status.
    for (transport, action) in [
        ("dovecot_lmtp", Delivered),
        ("local_delivery", Relayed),
        ("remote_smtp_to_local_hub", Relayed),
        ("remote_smtp", Relayed),
    ] {
        assert_eq!(
            parse(&at(&format!(
                r#"=> a@b.example R=r T={transport} H=h.example [192.0.2.1] C="250 4.0.0 odd""#
            ))),
            expected(
                Want::Rcpt(
                    q,
                    "a@b.example",
                    None,
                    action,
                    "2.0.0",
                    Some("h.example"),
                    None
                ),
                t
            ),
            "{transport}"
        );
    }
    // The final address <original> form, and all_parents with the intermediate address.
    assert_eq!(
        parse(&at(
            "=> c@x.example (b@x.example) <a@x.example> R=local_user T=local_delivery"
        )),
        expected(
            Want::Rcpt(
                q,
                "c@x.example",
                Some("a@x.example"),
                Delivered,
                "2.0.0",
                None,
                None
            ),
            t
        )
    );
    assert_eq!(
        parse(&at(
            "=> c@x.example (b@x.example, d@x.example) <a@x.example> R=local_user T=local_delivery"
        )),
        expected(
            Want::Rcpt(
                q,
                "c@x.example",
                Some("a@x.example"),
                Delivered,
                "2.0.0",
                None,
                None
            ),
            t
        )
    );
    // Pipes and files: the recipient is the address that led there.
    assert_eq!(
        parse(&at(
            "=> |/usr/bin/procmail -d a <a@x.example> R=procmail T=procmail_pipe"
        )),
        expected(
            Want::Rcpt(q, "a@x.example", None, Delivered, "2.0.0", None, None),
            t
        )
    );
    assert_eq!(
        parse(&at(
            "=> /var/mail/a <a@x.example> R=local_user T=local_delivery"
        )),
        expected(
            Want::Rcpt(q, "a@x.example", None, Delivered, "2.0.0", None, None),
            t
        )
    );
    // Debian's `local_user` router has `log_as_local`: the local part, then the address. The
    // recipient is that address (as its deferral named it); after an alias, the local part at
    // the address's domain, the alias being the original.
    let local = |rest: &str, final_rcpt: &'static str, original: Option<&'static str>| {
        assert_eq!(
            parse(&at(rest)),
            expected(
                Want::Rcpt(q, final_rcpt, original, Delivered, "2.0.0", None, None),
                t
            ),
            "{rest}"
        );
    };
    local(
        "=> alice <alice@hub.example.test> R=local_user T=mail_spool",
        "alice@hub.example.test",
        None,
    );
    local(
        "=> carol <Carol@hub.example.test> R=local_user T=mail_spool",
        "Carol@hub.example.test",
        None,
    );
    local(
        "=> alice <postmaster@hub.example.test> R=local_user T=mail_spool",
        "alice@hub.example.test",
        Some("postmaster@hub.example.test"),
    );
    // A pipe whose command holds `=`, `<` or `(`, with or without the intermediate address.
    for rest in [
        "=> |/usr/bin/handler --queue=general <ticket@hub.example.test> R=system_aliases T=address_pipe",
        "=> |/usr/bin/handler < /etc/in (x) <ticket@hub.example.test> R=system_aliases T=address_pipe",
        "=> |/usr/bin/handler --queue=general (list@hub.example.test) <ticket@hub.example.test> R=system_aliases T=address_pipe",
        "=> /var/spool/x=y/mbox <ticket@hub.example.test> F=<s@x.example> R=userforward T=address_file",
        "=> >ticket@hub.example.test <ticket@hub.example.test> R=userforward T=address_reply",
    ] {
        local(rest, "ticket@hub.example.test", None);
    }
    // A quoted local part Exim prints unquoted: the address part runs to the fields.
    assert_eq!(
        parse(&at(
            r#"=> a;b R=x@relay.test <"a;b R=x"@relay.test> R=dnslookup T=remote_smtp H=mx.relay.test [192.0.2.7] C="250 OK""#
        )),
        expected(
            Want::Rcpt(
                q,
                "a;b",
                None,
                Relayed,
                "2.0.0",
                Some("mx.relay.test"),
                None
            ),
            t
        ),
        "the address part ends at the first field: a sender's quoting only garbles its own"
    );
    assert_eq!(
        parse(&at(
            r#"=> a;b c@relay.test <"a;b c"@relay.test> R=dnslookup T=remote_smtp H=mx.relay.test [192.0.2.7] C="250 OK""#
        )),
        expected(
            Want::Rcpt(
                q,
                "a;b c@relay.test",
                Some("\"a;b c\"@relay.test"),
                Relayed,
                "2.0.0",
                Some("mx.relay.test"),
                None
            ),
            t
        )
    );
    // A blackhole router.
    assert_eq!(
        parse(&at(
            "=> a@x.example R=:blackhole: T=remote_smtp H=h [192.0.2.1]"
        )),
        expected(
            Want::Rcpt(q, "a@x.example", None, Delivered, "2.0.0", Some("h"), None),
            t
        )
    );
}

#[test]
fn failure_and_deferral_codes() {
    let q = "1smkL5-00000000e65-24eQ";
    let t = utc(1_626_564_049);
    let at = |rest: &str| format!("2021-07-17 23:20:49 1smkL5-00000000e65-24eQ {rest}");
    let msg = r"SMTP error from remote mail server after RCPT TO:<a@b.example>: 550-5.1.1 The email account does not exist.\n550 5.1.1 https://support.example/answer";
    assert_eq!(
        parse(&at(&format!(
            "** a@b.example R=dnslookup T=remote_smtp H=mx.b.example [2001:db8::1]: {msg}"
        ))),
        expected(
            Want::Rcpt(
                q,
                "a@b.example",
                None,
                Failed,
                "5.1.1",
                Some("mx.b.example"),
                Some(msg)
            ),
            t
        )
    );
    // The code behind a `\n` escape is found.
    let msg = r"SMTP error from remote mail server after RCPT TO:<a@b.example>: 450-Greylisted\n450 4.2.0 try later";
    assert_eq!(
        parse(&at(&format!("== a@b.example R=dnslookup T=remote_smtp defer (-44) H=mx.b.example [192.0.2.1]: {msg}"))),
        expected(Want::Rcpt(q, "a@b.example", None, Delayed, "4.2.0", Some("mx.b.example"), Some(msg)), t)
    );
    // Deferrals without a transport, or without a router, and those of a pipe whose command
    // holds `=`: the address part ends at `[routing] defer (N)`.
    for (rest, rcpt, diag) in [
        (
            "== a@b.example routing defer (-51): retry time not reached",
            "a@b.example",
            "retry time not reached",
        ),
        (
            "== a@b.example R=dnslookup defer (-1): host lookup did not complete",
            "a@b.example",
            "host lookup did not complete",
        ),
        (
            "== a@b.example defer (-1): domain held",
            "a@b.example",
            "domain held",
        ),
        (
            "== |/usr/bin/handler --queue=general <ticket@hub.example.test> R=system_aliases T=address_pipe defer (0): Child process of address_pipe transport returned 75 (could mean temporary error) from command: /usr/bin/handler",
            "ticket@hub.example.test",
            "Child process of address_pipe transport returned 75 (could mean temporary error) from command: /usr/bin/handler",
        ),
    ] {
        assert_eq!(
            parse(&at(rest)),
            expected(Want::Rcpt(q, rcpt, None, Delayed, "4.0.0", None, Some(diag)), t),
            "{rest}"
        );
    }
    assert_eq!(
        parse(&at("** x@b.example <a@b.example>: Unrouteable address")),
        expected(
            Want::Rcpt(
                q,
                "x@b.example",
                Some("a@b.example"),
                Failed,
                "5.0.0",
                None,
                Some("Unrouteable address")
            ),
            t
        )
    );
    // A code of the wrong class is not used: a deferral stays 4.x.x.
    assert_eq!(
        parse(&at("== a@b.example R=dnslookup T=remote_smtp defer (-44) H=mx.b.example [192.0.2.1]: SMTP error: 550 5.7.1 nope")),
        expected(
            Want::Rcpt(q, "a@b.example", None, Delayed, "4.0.0", Some("mx.b.example"), Some("SMTP error: 550 5.7.1 nope")),
            t
        )
    );
    // No code next to an IP address or a version number.
    assert_eq!(
        parse(&at("** a@b.example: host 192.0.2.111 1.2.3 said no")),
        expected(
            Want::Rcpt(
                q,
                "a@b.example",
                None,
                Failed,
                "5.0.0",
                None,
                Some("host 192.0.2.111 1.2.3 said no")
            ),
            t
        )
    );
    // Long diagnostics are cut to 512 bytes, never inside a UTF-8 character.
    let long = format!("550 5.1.1 {}", "é".repeat(400));
    let (outcome, events) = parse(&at(&format!("** a@b.example R=r T=t: {long}")));
    assert_eq!(outcome, Outcome::Parsed);
    let MtaEvent::Recipient { recipient, .. } = &events[0] else {
        panic!("{events:?}");
    };
    let diag = recipient.diagnostic.as_deref().unwrap();
    assert!(diag.len() <= 512 && diag.len() > 500, "{}", diag.len());
    assert!(std::str::from_utf8(diag).is_ok());
    assert_eq!(&*recipient.status, b"5.1.1");
}

#[test]
fn other_message_lines_are_ignored() {
    for rest in [
        "removed by root",
        "Frozen",
        "Message is frozen",
        "Unfrozen by root",
        "SMTP error from remote mail server after RCPT TO:<a@b>: 451 later",
        "H=mx.b.example [192.0.2.1] Connection refused",
        "(= a@b.example H=x [192.0.2.1] P=esmtp S=100",
        "*> a@b.example R=r T=t",
        "no immediate delivery: load average 10.00",
    ] {
        let line = format!("2021-07-17 23:20:49 1iGHiT-00007b-Na {rest}");
        assert_eq!(parse(&line), (Outcome::Ignored, vec![]), "{line}");
    }
    for line in [
        "2021-07-17 23:20:49 Start queue run: pid=1234",
        "2021-07-17 23:20:49 End queue run: pid=1234",
        "2021-07-17 23:20:49 SMTP connection from [192.0.2.1]:4567 (TCP/IP connection count = 1)",
        "2021-07-17 23:20:49 H=(x) [192.0.2.1] F=<a@b> rejected RCPT <c@d>: relay not permitted",
        "2021-07-17 23:20:49 [1234] exim 4.97 daemon started: pid=1234",
        "",
        "   ",
        // Debian's Exim at every daemon start: a two-line entry, the second indented.
        "2026-12-03 06:33:50 Warning: No server certificate defined; will use a selfsigned one.",
        " Suggested action: either install a certificate or change tls_advertise_hosts option",
        "\t1iGHiT-00007b-Na => a@b.example R=r T=t",
    ] {
        assert_eq!(parse(line), (Outcome::Ignored, vec![]), "{line}");
    }
}

#[test]
fn truncated_and_malformed_lines_are_rejected() {
    for line in [
        "1999-03-02 09:4",
        "1999-03-02",
        "1999-03-02 09:44:33",
        "1999-03-02 09:44:33 ",
        "1999-13-02 09:44:33 10HmaX-000000005vi-0000 Completed",
        "1999-03-02 25:44:33 10HmaX-000000005vi-0000 Completed",
        "1999-03-02 09:44:33x 10HmaX-000000005vi-0000 Completed",
        "1999-03-02 09:44:33. 10HmaX-000000005vi-0000 Completed",
        "1999-03-02 09:44:33 +2500 10HmaX-000000005vi-0000 Completed",
        "1999-03-02 09:44:33 [123",
        "1999-03-02 09:44:33 [123]",
        "1999-03-02 09:44:33 10HmaX-0000",
        "1999-03-02 09:44:33 10HmaX-000000005vi-00",
        "1999-03-02 09:44:33 10HmaX-000000005vi-0000",
        "1999-03-02 09:44:33 10HmaX-000000005vi-0000 ",
        "1999-03-02 09:44:33 10HmaX-000000005vi-0000 <=",
        "1999-03-02 09:44:33 10HmaX-000000005vi-0000 =>",
        "1999-03-02 09:44:33 10HmaX-000000005vi-0000 => userx@myhost.test.ex F=<CALL",
        "1999-03-02 09:44:33 10HmaX-000000005vi-0000 => userx <userx@my",
        "1999-03-02 09:44:33 10HmaX-000000005vi-0000 => :blackhole: <CALL",
        "1999-03-02 09:44:33 10HmaY-000000005vi-0000 == userxx@myhost.test.ex R=smartuser T=lmtp defer (0) H=127.0.0.1 [127.0",
        "1999-03-02 09:44:33 10HmaY-000000005vi-0000 ** userxy@myhost.test.ex F=<CALLER@myhost.test.ex> R=smartuser",
        "1999-03-02 09:44:33 10HmaY-000000005vi-0000 **",
        "Jul 18 01:20:49 mail exim[17]: 1iGHiT-00007b-Na",
        "\u{0}\u{1}binary\u{7f}garbage",
        "not a log line at all",
    ] {
        let (outcome, _) = parse(line);
        assert!(matches!(outcome, Outcome::Rejected(_)), "{line:?}: {outcome:?}");
    }
    let long = format!(
        "1999-03-02 09:44:33 10HmaX-000000005vi-0000 => {}@x R=r T=t",
        "a".repeat(600)
    );
    assert!(matches!(parse(&long).0, Outcome::Rejected(_)));
}

/// A sender's quoted local part, which Exim prints unquoted, spelling another message's id,
/// fields and a top address: the line still names only its own message, and the garbled
/// recipient is the sender's own.
#[test]
fn an_address_part_spelling_another_message_names_only_its_own() {
    let own = "1xZ0O6-0007AC-2X";
    for rest in [
        r#"=> x 1xZ0O6-0007AC-2S => victim <victim@hub.example> R=local_user T=mail_spool@relay.test <"x 1xZ0O6-0007AC-2S => victim <victim@hub.example> R=local_user T=mail_spool"@relay.test> R=dnslookup T=remote_smtp H=mx [192.0.2.1] C="250 OK""#,
        r#"** x: Completed <y@z>@relay.test <"x: Completed <y@z>"@relay.test> R=dnslookup T=remote_smtp: 550 5.1.1 no"#,
        r#"== |x <victim@hub.example> R=a T=b defer (-1): <"|x <victim@hub.example> R=a T=b defer (-1):"@relay.test> R=dnslookup T=remote_smtp defer (-1): later"#,
    ] {
        let line = format!("2026-12-03 06:34:11 {own} {rest}");
        let (outcome, events) = parse(&line);
        for e in &events {
            let MtaEvent::Recipient { queue, .. } = e else {
                panic!("{line}: {e:?}");
            };
            assert_eq!(&**queue, own.as_bytes(), "{line}");
        }
        assert!(
            matches!(outcome, Outcome::Parsed | Outcome::Rejected(_)),
            "{line}: {outcome:?}"
        );
    }
}

#[test]
fn hostile_input_never_panics() {
    let mut p = parser_in("UTC");
    let mut sink = |_: Event| {};
    // Every prefix of every fixture line, and every line with one byte replaced.
    for line in SUITE_0215.lines().chain(SUITE_5102.lines()) {
        let bytes = line.as_bytes();
        for n in 0..=bytes.len() {
            p.parse(&bytes[..n], &mut sink);
        }
        let mut copy = bytes.to_vec();
        for i in 0..copy.len() {
            let old = copy[i];
            for c in [
                b' ', b'"', b'<', b'>', b':', b'[', b']', b'=', b'\\', 0xff, 0,
            ] {
                copy[i] = c;
                p.parse(&copy, &mut sink);
            }
            copy[i] = old;
        }
    }
    // Pseudo-random bytes, with and without an Exim head.
    let mut rng = fastrand::Rng::with_seed(0x9e37_79b9_7f4a_7c15);
    let mut buf = Vec::new();
    for round in 0..2000 {
        buf.clear();
        if round % 2 == 0 {
            buf.extend_from_slice(b"2021-07-17 23:20:49 1iGHiT-00007b-Na ");
        }
        let alphabet = b" =<>\"*-:[]()\\abc0123456789.\xc3\xa9\x00\xff";
        buf.extend((0..round % 200).map(|_| alphabet[rng.usize(..alphabet.len())]));
        p.parse(&buf, &mut sink);
    }
    // 1 MB lines.
    let mb = 1 << 20;
    let head = "2021-07-17 23:20:49 1iGHiT-00007b-Na ";
    let lines = [
        "a".repeat(mb),
        " ".repeat(mb),
        "\"".repeat(mb),
        format!("{head}=> a@b R=r T=t H=h C=\"{}", "x\"".repeat(mb / 2)),
        format!("{head}** a@b R=r T=t: {}", "550 5.1.1 ".repeat(mb / 10)),
        format!("{head}== a@b {}", "(".repeat(mb)),
        format!("{head}<= a@b {}", "id=".repeat(mb / 3)),
        format!("{head}=> |{} <a@b> R=r", " x".repeat(mb / 2)),
        format!("Jul 18 01:20:49 mail exim[17]: {}", "[1/2] ".repeat(mb / 6)),
    ];
    // Well-formed heads still parse (the tail reader caps lines long before this); noise
    // does not.
    let parsed = [false, false, false, true, true, false, true, true, false];
    for (line, parsed) in lines.iter().zip(parsed) {
        let outcome = p.parse(line.as_bytes(), &mut sink);
        assert_eq!(outcome == Outcome::Parsed, parsed, "{}", &line[..60]);
    }
}
