//! Every line of two logs of Exim's own test suite, and the real lines quoted in
//! docs/mta-logs.md, with what each gives.

use super::*;

const Q_X: &str = "10HmaX-000000005vi-0000";
const Q_Y: &str = "10HmaY-000000005vi-0000";
const Q_Z: &str = "10HmaZ-000000005vi-0000";
const Q_BA: &str = "10HmbA-000000005vi-0000";
const Q_BB: &str = "10HmbB-000000005vi-0000";
const Q_BC: &str = "10HmbC-000000005vi-0000";
const Q_BD: &str = "10HmbD-000000005vi-0000";
const Q_BE: &str = "10HmbE-000000005vi-0000";
const Q_BF: &str = "10HmbF-000000005vi-0000";
const Q_BG: &str = "10HmbG-000000005vi-0000";
const Q_BH: &str = "10HmbH-000000005vi-0000";
const H: Option<&str> = Some("127.0.0.1");
const CALLER: &str = "CALLER@myhost.test.ex";
const DEFER_440: Option<&str> = Some("LMTP error after DATA: 440 Temporary error");
const FAIL_550: Option<&str> = Some("LMTP error after DATA: 550 Bad user");
const FAIL_550_ML: Option<&str> =
    Some(r"LMTP error after DATA: 550-I don't like this user\n550 Bad user");
const RCPT_BAD: &str =
    "SMTP error from remote mail server after RCPT TO:<{}@myhost.test.ex>: 550 Receiver BAD";

fn ok(q: &'static str, addr: &'static str) -> Want {
    Want::Rcpt(q, addr, None, Delivered, "2.0.0", H, None)
}

fn defer(q: &'static str, addr: &'static str, diag: Option<&'static str>) -> Want {
    Want::Rcpt(q, addr, None, Delayed, "4.0.0", H, diag)
}

fn fail(q: &'static str, addr: &'static str, diag: Option<&'static str>) -> Want {
    Want::Rcpt(q, addr, None, Failed, "5.0.0", H, diag)
}

fn blackhole(q: &'static str) -> Want {
    Want::Rcpt(q, CALLER, None, Delivered, "2.0.0", None, None)
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[test]
fn every_line_of_exim_test_0215() {
    let bad = |u: &str| Some(leak(RCPT_BAD.replace("{}", u)));
    let multi = Some(concat!(
        r"LMTP error after DATA: 440-Here's a whole long message, in several lines,\n",
        r"440-just for testing that nothing breaks when\n440-we do this\n",
        r"440 Temporary error"
    ));
    let temp_bad = Some(
        "SMTP error from remote mail server after RCPT TO:<userxy@myhost.test.ex>: \
         450 Receiver temporarily bad",
    );
    let later =
        Some("SMTP error from remote mail server after RCPT TO:<userx@myhost.test.ex>: 450 LATER");
    let wants = [
        Want::Arrival(Q_X, None),
        ok(Q_X, "userx@myhost.test.ex"),
        Want::Done(Q_X),
        Want::Arrival(Q_Y, None),
        ok(Q_Y, "userx@myhost.test.ex"),
        defer(Q_Y, "userxx@myhost.test.ex", DEFER_440),
        fail(Q_Y, "userxy@myhost.test.ex", FAIL_550),
        ok(Q_Y, "userxz@myhost.test.ex"),
        defer(Q_Y, "useryx@myhost.test.ex", DEFER_440),
        fail(Q_Y, "useryy@myhost.test.ex", FAIL_550),
        Want::Notification(Q_Z),
        blackhole(Q_Z),
        Want::Done(Q_Z),
        Want::Ignored,
        Want::Done(Q_Y),
        Want::Arrival(Q_BA, None),
        ok(Q_BA, "userx@myhost.test.ex"),
        defer(Q_BA, "userxx@myhost.test.ex", DEFER_440),
        fail(Q_BA, "userxy@myhost.test.ex", FAIL_550_ML),
        ok(Q_BA, "userxz@myhost.test.ex"),
        defer(Q_BA, "useryx@myhost.test.ex", multi),
        fail(Q_BA, "useryy@myhost.test.ex", FAIL_550),
        Want::Notification(Q_BB),
        blackhole(Q_BB),
        Want::Done(Q_BB),
        Want::Ignored,
        Want::Done(Q_BA),
        Want::Arrival(Q_BC, None),
        fail(Q_BC, "userx@myhost.test.ex", bad("userx")),
        defer(Q_BC, "userxx@myhost.test.ex", DEFER_440),
        defer(Q_BC, "userxy@myhost.test.ex", temp_bad),
        fail(Q_BC, "userxz@myhost.test.ex", FAIL_550_ML),
        ok(Q_BC, "useryx@myhost.test.ex"),
        fail(Q_BC, "useryy@myhost.test.ex", bad("useryy")),
        Want::Notification(Q_BD),
        blackhole(Q_BD),
        Want::Done(Q_BD),
        Want::Arrival(Q_BE, None),
        ok(Q_BE, "userxx@myhost.test.ex"),
        ok(Q_BE, "userxy@myhost.test.ex"),
        ok(Q_BE, "userxz@myhost.test.ex"),
        Want::Done(Q_BE),
        Want::Arrival(Q_BF, None),
        ok(Q_BF, "userxx@myhost.test.ex"),
        ok(Q_BF, "userxy@myhost.test.ex"),
        ok(Q_BF, "userxz@myhost.test.ex"),
        Want::Done(Q_BF),
        Want::Arrival(Q_BG, None),
        defer(Q_BG, "userx@myhost.test.ex", later),
        Want::Arrival(Q_BH, None),
        defer(Q_BH, "userx@myhost.test.ex", later),
    ];
    check(SUITE_0215, &wants, utc(SUITE_TIME));
}

#[test]
fn every_line_of_exim_test_5102() {
    // `log_as_local`: Exim prints the local part, then the address in `<…>`; the recipient is
    // that address, the same one the deferrals and failures name.
    let local = |q, a| Want::Rcpt(q, a, None, Delivered, "2.0.0", None, None);
    let late = |q, a, d| Want::Rcpt(q, a, None, Delayed, "4.0.0", None, Some(d));
    let fail = |q, a, d| Want::Rcpt(q, a, None, Failed, "5.0.0", None, Some(d));
    let wants = [
        Want::Arrival(Q_X, None),
        local(Q_X, "userx@myhost.test.ex"),
        Want::Done(Q_X),
        Want::Arrival(Q_Y, None),
        late(
            Q_Y,
            "userx@myhost.test.ex",
            "LMTP timeout after initial connection",
        ),
        Want::Ignored,
        late(
            Q_Y,
            "userx@myhost.test.ex",
            "LMTP error after initial connection: 440 Sorry, there's a problem here",
        ),
        Want::Ignored,
        Want::Ignored,
        fail(
            Q_Y,
            "userx@myhost.test.ex",
            "LMTP error after MAIL FROM:<CALLER@myhost.test.ex>: 550 Don't like that sender",
        ),
        Want::Notification(Q_Z),
        blackhole(Q_Z),
        Want::Done(Q_Z),
        Want::Done(Q_Y),
        Want::Ignored,
        Want::Arrival(Q_BA, None),
        local(Q_BA, "lp1@myhost.test.ex"),
        late(
            Q_BA,
            "lp2@myhost.test.ex",
            "LMTP error after end of data: 450 Number 2 is now delayed",
        ),
        fail(
            Q_BA,
            "lp3@myhost.test.ex",
            "LMTP error after end of data: 550 Number 3 is now rejected",
        ),
        late(
            Q_BA,
            "lp4@myhost.test.ex",
            "LMTP error after RCPT TO:<lp4@myhost.test.ex>: 450 This one is delayed on RCPT",
        ),
        fail(
            Q_BA,
            "lp5@myhost.test.ex",
            "LMTP error after RCPT TO:<lp5@myhost.test.ex>: 550 This one is unknown on RCPT",
        ),
        local(Q_BA, "lp6@myhost.test.ex"),
        Want::Notification(Q_BB),
        blackhole(Q_BB),
        Want::Done(Q_BB),
    ];
    check(SUITE_5102, &wants, utc(SUITE_TIME));
}

/// docs/mta-logs.md 2.4: a mailing-list post relayed to vger (Exim 4.92, old ids).
#[test]
fn spec_linux_arch_relay() {
    let time = utc(1_570_172_969); // 2019-10-04 07:09:29
    let delivered = utc(1_570_172_977);
    check(
        "2019-10-04 07:09:29 1iGHiT-00007b-Na <= fw@deneb.enyo.de H=(deneb.enyo.de) [172.17.203.2] P=esmtps X=TLS1.2:ECDHE_RSA_AES_256_GCM_SHA384:256 CV=no S=72580 id=87h84pgf6h.fsf@mid.deneb.enyo.de\n",
        &[Want::Arrival(
            "1iGHiT-00007b-Na",
            Some("87h84pgf6h.fsf@mid.deneb.enyo.de"),
        )],
        time,
    );
    let c = r#" R=dnslookup T=remote_smtp_ext H=vger.kernel.org [209.132.180.67] C="250 2.7.1 Looks like Linux source DIFF email.. BF:<S 1>; S1728766AbfJDHJg""#;
    for (flag, addr) in [
        ("=>", "linux-api@vger.kernel.org"),
        ("->", "linux-arch@vger.kernel.org"),
        ("->", "linux-kernel@vger.kernel.org"),
    ] {
        let line = format!("2019-10-04 07:09:37 1iGHiT-00007b-Na {flag} {addr}{c}");
        let want = Want::Rcpt(
            "1iGHiT-00007b-Na",
            leak(addr.into()),
            None,
            Relayed,
            "2.7.1",
            Some("vger.kernel.org"),
            None,
        );
        assert_eq!(parse(&line), expected(want, delivered), "{line}");
    }
    assert_eq!(
        parse("2019-10-04 07:09:37 1iGHiT-00007b-Na Completed"),
        expected(Want::Done("1iGHiT-00007b-Na"), delivered)
    );
}

/// docs/mta-logs.md 2.2: Exim 4.98 with a 23-character id, TLS fields and a quoted DN.
#[test]
fn spec_new_id_relay() {
    let q = "1smkL5-00000000e65-24eQ";
    let t0 = utc(1_725_672_851); // 2024-09-07 01:34:11
    let t1 = utc(1_725_672_852);
    assert_eq!(
        parse("2024-09-07 01:34:11 1smkL5-00000000e65-24eQ <= nothing@change.this H=(v261955545.local) [43.6.92.12] P=esmtps X=TLS1.3:ECDHE_X25519__RSA_PSS_RSAE_SHA256__AES_256_GCM:256 CV=no S=15813"),
        expected(Want::Arrival(q, None), t0)
    );
    assert_eq!(
        parse("2024-09-07 01:34:11 1smkL5-00000000e65-24eQ H=mx.yandex.ru [2a02:6b8::311] Network is unreachable"),
        (Outcome::Ignored, vec![])
    );
    assert_eq!(
        parse(
            r#"2024-09-07 01:34:12 1smkL5-00000000e65-24eQ => xxxxxxx@ya.ru R=dnslookup T=remote_smtp H=mx.yandex.ru [77.88.21.249] X=TLS1.3:ECDHE_SECP256R1__RSA_PSS_RSAE_SHA256__AES_256_GCM:256 CV=yes DN="C=RU,ST=Moscow,L=Moscow,O=YANDEX LLC,CN=mx.yandex.ru" C="250 2.0.0 Ok: queued on mail-nwsmtp-mxfront-production-main-42.sas.yp-c.yandex.net 1725672891-oYTsOiJLGSw0-m3DSxyvl""#
        ),
        expected(
            Want::Rcpt(
                q,
                "xxxxxxx@ya.ru",
                None,
                Relayed,
                "2.0.0",
                Some("mx.yandex.ru"),
                None
            ),
            t1
        )
    );
    assert_eq!(
        parse("2024-09-07 01:34:12 1smkL5-00000000e65-24eQ Completed"),
        expected(Want::Done(q), t1)
    );
}

/// docs/mta-logs.md 2.3: `[pid]`, ports, interfaces, subjects and recipient lists on arrivals.
#[test]
fn spec_arrivals_with_pid_and_subject() {
    assert_eq!(
        parse(
            r#"2010-09-13 05:00:13 [1487] 1Ov4tU-0000Nz-Rm <= mailling.list@domain.com H=mailhost.domain.com [208.42.54.2]:51792 I=[67.215.162.175]:25 P=esmtps X=TLSv1:AES256-SHA:256 CV=no S=21778 id=384a86a39e83be0d9b3a94d1feb3119f@domain.com T="Daily List: Chameleon" for user@example.com"#
        ),
        expected(
            Want::Arrival(
                "1Ov4tU-0000Nz-Rm",
                Some("384a86a39e83be0d9b3a94d1feb3119f@domain.com")
            ),
            utc(1_284_354_013)
        )
    );
    assert_eq!(
        parse(
            r#"2014-08-10 11:18:35 [28107] 1gsu1C-003dCu-Hb <= aaron@domain.com H=localhost (10.5.40.204) [127.0.0.1]:39753 I=[127.0.0.1]:25 P=esmtpa A=dovecot_plain:aaron@domain.com S=4315 M8S=0 id=d2b648f00f1a1b0813c483d552778dc6@domain.com T="what's up?!? ;-)" from <aaron@domain.com> for aaron+forward@domain.com"#
        ),
        expected(
            Want::Arrival(
                "1gsu1C-003dCu-Hb",
                Some("d2b648f00f1a1b0813c483d552778dc6@domain.com")
            ),
            utc(1_407_669_515)
        )
    );
}

/// docs/mta-logs.md 2.4: the examples of Exim's specification.
#[test]
fn spec_examples_of_the_exim_manual() {
    assert_eq!(
        parse("2002-12-19 16:20:23 16aiQz-0002Q5-00 == marvin@endrest.example R=dnslookup T=smtp defer (146): Connection refused"),
        expected(
            Want::Rcpt("16aiQz-0002Q5-00", "marvin@endrest.example", None, Delayed, "4.0.0", None, Some("Connection refused")),
            utc(1_040_314_823)
        )
    );
    // No H=: the host comes from the SMTP error text; the code from the reply.
    assert_eq!(
        parse("2002-07-11 07:14:17 17SXDU-000189-00 ** ace400@pb.example R=dnslookup T=remote_smtp: SMTP error from remote mailer after pipelined RCPT TO:<ace400@pb.example>: host pbmail3.py.example [192.168.63.111]: 553 5.3.0 <ace400@pb.example>...Addressee unknown"),
        expected(
            Want::Rcpt(
                "17SXDU-000189-00",
                "ace400@pb.example",
                None,
                Failed,
                "5.3.0",
                Some("pbmail3.py.example"),
                Some("SMTP error from remote mailer after pipelined RCPT TO:<ace400@pb.example>: host pbmail3.py.example [192.168.63.111]: 553 5.3.0 <ace400@pb.example>...Addressee unknown"),
            ),
            utc(1_026_371_657)
        )
    );
    assert_eq!(
        parse("1995-12-19 16:20:23 0tRiQz-0002Q5-00 ** jim@trek99.example <jim@trek99.example>: unknown mail domain"),
        expected(
            Want::Rcpt("0tRiQz-0002Q5-00", "jim@trek99.example", Some("jim@trek99.example"), Failed, "5.0.0", None, Some("unknown mail domain")),
            utc(819_390_023)
        )
    );
}

/// docs/mta-logs.md 2.1: authenticator failures via syslog carry no message id.
#[test]
fn spec_fail2ban_syslog_lines_are_ignored() {
    for line in [
        "2019-10-22 03:39:17 mx1.fqdn.local exim[29786]: dovecot_login authenticator failed for (User) [192.0.2.37]: 535 Incorrect authentication data (set_id=test@domain.com)",
        "mail.example.com exim[3751842]: 2021-07-17 23:20:49 plain_server authenticator failed for ([192.0.2.17]) [192.0.2.27]: 535 Incorrect authentication data",
    ] {
        assert_eq!(parse(line), (Outcome::Ignored, vec![]), "{line}");
    }
}
