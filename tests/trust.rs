//! The trust boundary (docs/ARCHITECTURE.md, "Trust boundary"), attacked through the text that
//! strangers put into MTA logs: envelope addresses, HELO names, remote servers' replies. Every
//! test writes the lines an MTA would log for the attack, and checks that the attacker's record
//! does not exist and the victim's answer is what its own lines say.

mod common;
use common::*;

use std::path::Path;
use std::sync::LazyLock;

/// An hour ago, and the seconds after it, as syslog and native lines write them.
static BASE: LazyLock<i64> = LazyLock::new(|| unix_now() - 3600);

fn syslog_time(offset: i64) -> String {
    // `Tue, 24 Nov 2026 10:00:00 +0000` → `Nov 24 10:00:00`.
    let d = rfc5322(*BASE + offset);
    let parts: Vec<&str> = d.split(' ').collect();
    format!("{} {:>2} {}", parts[2], parts[1], parts[4])
}

fn native_time(offset: i64) -> String {
    rfc3339(*BASE + offset)
}

/// The victim's message in a Postfix log: arrival, Message-ID, the milter's accept line,
/// qmgr; queue id VQ1.
fn victim_arrival() -> String {
    let t = syslog_time(0);
    format!(
        "{t} hub postfix/smtpd[100]: VQ1: client=client.example[192.0.2.10]\n\
         {t} hub postfix/cleanup[101]: VQ1: message-id=<victim@example.org>\n\
         {t} hub mtqp-milter[9]: {}\
         {t} hub postfix/qmgr[102]: VQ1: from=<victim@example.org>, size=1000, nrcpt=2 (queue active)\n",
        accept_line(
            &native_time(0),
            "victim@example.org",
            "victim secret",
            "msgid=victim@example.org"
        )
    )
}

/// The victim's two recipients: one relayed, one bounced by a remote server whose reply
/// spells `mtqp:`.
fn victim_deliveries() -> String {
    let t = syslog_time(5);
    format!(
        "{t} hub postfix/smtp[103]: VQ1: to=<friend@dest.example>, relay=mx.dest.example[198.51.100.1]:25, delay=5, delays=0/0/1/4, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4XYZ)\n\
         {t} hub postfix/smtp[103]: VQ1: to=<gone@dest.example>, relay=mx.dest.example[198.51.100.1]:25, delay=5, delays=0/0/1/4, dsn=5.1.1, status=bounced (host mx.dest.example[198.51.100.1] said: 550 mtqp: no such user (in reply to RCPT TO command))\n\
         {t} hub postfix/qmgr[102]: VQ1: removed\n"
    )
}

/// A Postfix reject line whose sender is a quoted local part: Postfix logs it verbatim.
fn reject_with_sender(sender_local_part: &str) -> String {
    format!(
        "{} hub postfix/smtpd[200]: NOQUEUE: reject: RCPT from evil.example[203.0.113.66]: 554 5.7.1 <rejected@hub.example>: Recipient address rejected: Access denied; from=<\"{sender_local_part}\"@evil.example> to=<rejected@hub.example> proto=ESMTP helo=<evil.example>\n",
        syslog_time(2)
    )
}

fn start(log: &Path) -> Server {
    let arg = format!("postfix:{}", log.display());
    Server::start_caught_up(&[
        "--hostname",
        "hub.example",
        "--log-timezone",
        "UTC",
        "--log",
        &arg,
    ])
}

fn track(s: &Server, envid: &str, secret: &str) -> String {
    let answer = s
        .client()
        .roundtrip(&format!("TRACK {envid} {}", secret_b64(secret)));
    String::from_utf8_lossy(&answer).into_owned()
}

const NOINFO: &str = "-ERR/noinfo No tracking information is available\r\n";

/// What the victim's own lines say, and nothing else.
fn assert_victims_answer(s: &Server) {
    let answer = track(s, "victim@example.org", "victim secret");
    for want in [
        "Final-Recipient: rfc822; friend@dest.example\r\nAction: relayed\r\nStatus: 2.0.0\r\n",
        "Final-Recipient: rfc822; gone@dest.example\r\nAction: failed\r\nStatus: 5.1.1\r\n",
        "Diagnostic-Code: smtp; host mx.dest.example[198.51.100.1] said: 550 mtqp: no such user (in reply to RCPT TO command)\r\n",
    ] {
        assert!(answer.contains(want), "no {want:?} in:\n{answer}");
    }
    assert_eq!(
        answer.matches("Final-Recipient:").count(),
        2,
        "a recipient the victim's lines do not name:\n{answer}"
    );
}

/// Finding: a native accept spelled in a quoted sender address, logged by Postfix in a reject
/// line, took over the victim's queue id; a forged `event=rcpt` added a recipient to the
/// victim's answer; a remote reply spelling `mtqp:` made a bounce line vanish.
#[test]
fn native_lines_spelled_in_postfix_fields_forge_nothing() {
    let dir = TempDir::new("trust-postfix-fields");
    let log = dir.path("mail.log");
    let evil_hash = mtrk("evil secret");
    let mut text = victim_arrival();
    text.push_str(&reject_with_sender(&format!(
        "mtqp: event=accept time={} envid=evil@evil.example mtrk={evil_hash} queue=VQ1 t=",
        native_time(1)
    )));
    text.push_str(&reject_with_sender(&format!(
        "mtqp: event=rcpt time={} envid=victim@example.org rcpt=planted@evil.example action=delivered status=2.0.0 t=",
        native_time(3)
    )));
    text.push_str(&victim_deliveries());
    append(&log, &text);
    let s = start(&log);
    assert_eq!(track(&s, "evil@evil.example", "evil secret"), NOINFO);
    assert_victims_answer(&s);
    let (status, stderr) = s.stop("TERM");
    assert!(status.success());
    // Every line was read as what it is: none refused.
    let counters = stderr
        .lines()
        .find(|l| l.starts_with("mtqpd: ingest: lines"))
        .expect("counters");
    assert!(counters.contains(" rejected 0 "), "{counters}");
}

/// Finding: a program whose tag is not on the allow-list (here Postfix itself, and a cron job
/// any local user could run) cannot write native lines into an MTA's log.
#[test]
fn native_lines_count_only_under_an_allowed_tag() {
    let dir = TempDir::new("trust-tags");
    let log = dir.path("mail.log");
    let evil_hash = mtrk("evil secret");
    let forged = format!(
        "mtqp: event=accept time={} envid=evil@evil.example mtrk={evil_hash} queue=VQ1",
        native_time(1)
    );
    let mut text = victim_arrival();
    text.push_str(&format!(
        "{t} hub postfix/smtpd[300]: {forged}\n{t} hub cron[301]: {forged}\n",
        t = syslog_time(1)
    ));
    text.push_str(&victim_deliveries());
    append(&log, &text);
    let s = start(&log);
    assert_eq!(track(&s, "evil@evil.example", "evil secret"), NOINFO);
    assert_victims_answer(&s);
}

/// The same attacks through Exim, whose main log has no program tags: a rejected HELO argument
/// and a remote reply are logged verbatim, and spell native lines. Only an ACL's `logwrite`,
/// whose text begins right after Exim's timestamp (or its message id), is native.
#[test]
fn native_lines_spelled_in_exim_fields_forge_nothing() {
    let dir = TempDir::new("trust-exim");
    let log = dir.path("mainlog");
    let exim_time = |offset: i64| {
        let t = native_time(offset);
        format!("{} {}", &t[..10], &t[11..19])
    };
    let forged = |envid: &str, secret: &str| {
        format!(
            "mtqp: event=accept time={} envid={envid} mtrk={} queue=1iGHiT-00007b-Na",
            native_time(1),
            mtrk(secret)
        )
    };
    let text = format!(
        "{t0} 1iGHiT-00007b-Na <= victim@example.org H=client.example [192.0.2.10] P=esmtp S=1000 id=victim@example.org\n\
         {t0} 1iGHiT-00007b-Na {}\
         {t1} rejected EHLO from [203.0.113.66]: syntactically invalid argument(s): {}\n\
         {t2} 1iGHiT-00007b-Na => friend@dest.example R=dnslookup T=remote_smtp H=mx.dest.example [198.51.100.1] C=\"250 2.0.0 Ok\"\n\
         {t2} 1iGHiT-00007b-Na ** gone@dest.example R=dnslookup T=remote_smtp H=mx.dest.example [198.51.100.1]: SMTP error from remote mail server after RCPT TO:<gone@dest.example>: 550 5.1.1 {}\n\
         {t2} 1iGHiT-00007b-Na Completed\n",
        accept_line(&native_time(0), "victim@example.org", "victim secret", "queue=1iGHiT-00007b-Na"),
        forged("evil@evil.example", "evil secret"),
        forged("evil2@evil.example", "evil secret"),
        t0 = exim_time(0),
        t1 = exim_time(1),
        t2 = exim_time(5),
    );
    append(&log, &text);
    let arg = format!("exim:{}", log.display());
    let s = Server::start_caught_up(&["--log-timezone", "UTC", "--log", &arg]);
    assert_eq!(track(&s, "evil@evil.example", "evil secret"), NOINFO);
    assert_eq!(track(&s, "evil2@evil.example", "evil secret"), NOINFO);
    let answer = track(&s, "victim@example.org", "victim secret");
    for want in [
        "Final-Recipient: rfc822; friend@dest.example\r\nAction: relayed\r\n",
        "Final-Recipient: rfc822; gone@dest.example\r\nAction: failed\r\nStatus: 5.1.1\r\n",
    ] {
        assert!(answer.contains(want), "no {want:?} in:\n{answer}");
    }
}

/// Sendmail logs the remote reply in `stat=`: a reply spelling a native line is a sendmail
/// line, and its recipient keeps its state.
#[test]
fn native_lines_spelled_in_sendmail_fields_forge_nothing() {
    let dir = TempDir::new("trust-sendmail");
    let log = dir.path("maillog");
    let t = syslog_time(0);
    let t5 = syslog_time(5);
    let text = format!(
        "{t} hub sm-mta[1]: m6JDSZoG011380: from=<victim@example.org>, size=553, class=0, nrcpts=1, msgid=<victim@example.org>, proto=SMTP, daemon=MTA-v4, relay=client.example [192.0.2.10]\n\
         {t} hub mtqp-milter[9]: {}\
         {t5} hub sm-mta[2]: m6JDSZoG011380: to=<gone@dest.example>, delay=00:00:05, xdelay=00:00:05, mailer=esmtp, pri=120553, relay=mx.dest.example. [198.51.100.1], dsn=5.1.1, stat=User unknown mtqp: event=accept time={} envid=evil@evil.example mtrk={} queue=m6JDSZoG011380\n",
        accept_line(&native_time(0), "victim@example.org", "victim secret", "msgid=victim@example.org"),
        native_time(5),
        mtrk("evil secret"),
    );
    append(&log, &text);
    let arg = format!("sendmail:{}", log.display());
    let s = Server::start_caught_up(&["--log-timezone", "UTC", "--log", &arg]);
    assert_eq!(track(&s, "evil@evil.example", "evil secret"), NOINFO);
    let answer = track(&s, "victim@example.org", "victim secret");
    assert!(
        answer.contains("Final-Recipient: rfc822; gone@dest.example\r\nAction: failed\r\n"),
        "{answer}"
    );
}

/// Finding: one line dated far ahead moved the correlation clock for ever: the next sweep took
/// every queue id still in flight for abandoned (their later deliveries were lost). A line
/// more than a few minutes ahead of the clock is refused, and counted with its reason.
#[test]
fn a_line_from_the_future_does_not_age_the_queue() {
    let dir = TempDir::new("trust-future");
    let log = dir.path("mail.log");
    let native_log = dir.path("mtqp.log");
    // The victim's message is queued: its recipient deferred.
    let t = syslog_time(0);
    let mut text = format!(
        "{t} hub postfix/smtpd[100]: VQ1: client=client.example[192.0.2.10]\n\
         {t} hub postfix/cleanup[101]: VQ1: message-id=<victim@example.org>\n\
         {t} hub mtqp-milter[9]: {}\
         {t} hub postfix/smtp[103]: VQ1: to=<friend@dest.example>, relay=none, delay=30, delays=0/0/30/0, dsn=4.4.1, status=deferred (connect to mx.dest.example[198.51.100.1]:25: Connection timed out)\n",
        accept_line(&native_time(0), "victim@example.org", "victim secret", "msgid=victim@example.org")
    );
    append(&log, &text);
    std::fs::write(&native_log, b"").unwrap();
    let postfix_arg = format!("postfix:{}", log.display());
    let native_arg = format!("native:{}", native_log.display());
    let s = Server::start_caught_up(&[
        "--log-timezone",
        "UTC",
        "--log",
        &postfix_arg,
        "--log",
        &native_arg,
    ]);
    // A native line dated in the year 9999 (a writer's bug, or a forged line in a writable
    // file), then enough other mail that the tracker sweeps its queue ids.
    append(
        &native_log,
        &accept_line(
            "9999-12-31T23:59:59Z",
            "future@example.org",
            "f",
            "queue=FQ1",
        ),
    );
    text.clear();
    let t2 = syslog_time(10);
    for i in 0..12_000 {
        text.push_str(&format!(
            "{t2} hub postfix/smtpd[{p}]: X{i:06X}: client=other.example[192.0.2.20]\n",
            p = 1000 + i % 1000
        ));
    }
    // A tracked message after them: once it is served, the sweep their number calls for has
    // run.
    text.push_str(&format!(
        "{t2} hub postfix/cleanup[101]: SQ1: message-id=<sentinel@example.org>\n\
         {t2} hub mtqp-milter[9]: {}\
         {t2} hub postfix/local[104]: SQ1: to=<s@hub.example>, relay=local, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (delivered to mailbox)\n",
        accept_line(&native_time(10), "sentinel@example.org", "sentinel", "msgid=sentinel@example.org")
    ));
    append(&log, &text);
    eventually("the sentinel", || {
        track(&s, "sentinel@example.org", "sentinel")
            .contains("Action: delivered\r\n")
            .then_some(())
    });
    // The victim's recipient is delivered at last.
    append(
        &log,
        &format!(
            "{} hub postfix/smtp[103]: VQ1: to=<friend@dest.example>, relay=mx.dest.example[198.51.100.1]:25, delay=600, delays=0/0/1/599, dsn=2.0.0, status=sent (250 2.0.0 Ok)\n",
            syslog_time(20)
        ),
    );
    let answer = eventually("the delivery", || {
        let a = track(&s, "victim@example.org", "victim secret");
        a.contains("Action: relayed\r\n").then_some(a)
    });
    assert!(!answer.contains("Action: delayed"), "{answer}");
    let (_, stderr) = s.stop("TERM");
    assert!(stderr.contains(" rejected 1 "), "{stderr}");
    assert!(stderr.contains("time ahead of the clock"), "{stderr}");
}

/// Finding: an accept naming both `queue=` and `msgid=` registered the Message-ID for ever; a
/// later, untracked message with the same `Message-ID:` header (any recipient of the first has
/// it) was correlated into the victim's record, its bounce and diagnostic shown to the victim.
#[test]
fn a_reused_message_id_does_not_join_the_victims_record() {
    let dir = TempDir::new("trust-msgid");
    let log = dir.path("mail.log");
    let t = syslog_time(0);
    let t9 = syslog_time(9);
    let text = format!(
        "{t} hub postfix/smtpd[100]: VQ1: client=client.example[192.0.2.10]\n\
         {t} hub postfix/cleanup[101]: VQ1: message-id=<victim@example.org>\n\
         {t} hub mtqp-milter[9]: {}\
         {t} hub postfix/smtp[103]: VQ1: to=<friend@dest.example>, relay=mx.dest.example[198.51.100.1]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 2.0.0 Ok)\n\
         {t} hub postfix/qmgr[102]: VQ1: removed\n\
         {t9} hub postfix/smtpd[200]: AQ1: client=evil.example[203.0.113.66]\n\
         {t9} hub postfix/cleanup[201]: AQ1: message-id=<victim@example.org>\n\
         {t9} hub postfix/smtp[203]: AQ1: to=<planted@evil.example>, relay=mx.evil.example[203.0.113.67]:25, delay=1, delays=0/0/0/1, dsn=5.1.1, status=bounced (host mx.evil.example[203.0.113.67] said: 550 leaked (in reply to RCPT TO command))\n",
        accept_line(&native_time(0), "victim@example.org", "victim secret", "queue=VQ1 msgid=victim@example.org"),
    );
    append(&log, &text);
    let s = start(&log);
    let answer = track(&s, "victim@example.org", "victim secret");
    assert!(answer.contains("friend@dest.example"), "{answer}");
    assert!(!answer.contains("planted"), "{answer}");
}

/// The same by an accept naming only `msgid=`: it claims one queue id, the first that logs the
/// Message-ID; a later message with the same header is not the victim's.
#[test]
fn a_message_id_claims_one_queue_id_only() {
    let dir = TempDir::new("trust-msgid-one");
    let log = dir.path("mail.log");
    let mut text = victim_arrival();
    text.push_str(&victim_deliveries());
    let t9 = syslog_time(9);
    text.push_str(&format!(
        "{t9} hub postfix/smtpd[200]: AQ1: client=evil.example[203.0.113.66]\n\
         {t9} hub postfix/cleanup[201]: AQ1: message-id=<victim@example.org>\n\
         {t9} hub postfix/smtp[203]: AQ1: to=<planted@evil.example>, relay=mx.evil.example[203.0.113.67]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 2.0.0 Ok)\n"
    ));
    append(&log, &text);
    let s = start(&log);
    assert_victims_answer(&s);
}

/// Finding: with two messages under one envid (any sender may reuse an ENVID with another
/// MTRK), an `event=rcpt` naming only the envid went to the newest, so one sender received the
/// other's updates. Such a line is now refused, and counted.
#[test]
fn an_envid_only_update_is_refused_when_two_messages_share_the_envid() {
    let dir = TempDir::new("trust-envid-only");
    let log = dir.path("mtqp.log");
    let text = format!(
        "{}{}mtqp: event=rcpt time={} envid=shared@example.org rcpt=r@dest.example action=delivered status=2.0.0\n",
        accept_line(&native_time(0), "shared@example.org", "first secret", ""),
        accept_line(&native_time(1), "shared@example.org", "second secret", ""),
        native_time(2)
    );
    append(&log, &text);
    let arg = format!("native:{}", log.display());
    let s = Server::start_caught_up(&["--log", &arg]);
    for secret in ["first secret", "second secret"] {
        let answer = track(&s, "shared@example.org", secret);
        assert!(!answer.contains("r@dest.example"), "{secret}: {answer}");
    }
    let (_, stderr) = s.stop("TERM");
    assert!(stderr.contains(" rejected 1 "), "{stderr}");
}

/// Finding: any sender may reuse an envid with a new secret, and 20,000 messages of one envid
/// made ingest quadratic and each TRACK of it linear. An envid holds at most 8 messages at
/// once: the 9th and later accept lines are refused, counted with their reason, and the first
/// 8 are served as before.
#[test]
fn an_envid_holds_at_most_eight_secrets() {
    let dir = TempDir::new("trust-envid-secrets");
    let log = dir.path("mtqp.log");
    let mut text = String::new();
    for i in 0..20 {
        text.push_str(&accept_line(
            &native_time(i),
            "reused@example.org",
            &format!("secret {i}"),
            "",
        ));
        text.push_str(&format!(
            "mtqp: event=rcpt time={} envid=reused@example.org mtrk={} rcpt=r{i}@dest.example action=delivered status=2.0.0\n",
            native_time(i),
            mtrk(&format!("secret {i}"))
        ));
    }
    append(&log, &text);
    let arg = format!("native:{}", log.display());
    let s = Server::start_caught_up(&["--log", &arg]);
    for i in 0..20 {
        let answer = track(&s, "reused@example.org", &format!("secret {i}"));
        if i < 8 {
            assert!(
                answer.contains(&format!("r{i}@dest.example")),
                "{i}: {answer}"
            );
        } else {
            assert!(answer.starts_with("-ERR/noinfo"), "{i}: {answer}");
        }
    }
    let (_, stderr) = s.stop("TERM");
    assert!(
        stderr.contains("its envid already has 8 messages, each its own secret: 12"),
        "{stderr}"
    );
}

/// Finding: Postfix's pickup `orig_id=` (a requeued message's old id) was found anywhere in the
/// line, so a local sender address spelling ` orig_id=VQ1` tied its own message to the
/// victim's queue. It is read only as the field after `from=<…>`.
#[test]
fn orig_id_inside_a_sender_address_links_nothing() {
    let dir = TempDir::new("trust-orig-id");
    let log = dir.path("mail.log");
    let mut text = victim_arrival();
    let t = syslog_time(3);
    text.push_str(&format!(
        "{t} hub postfix/pickup[300]: AQ2: uid=1000 from=<\"x orig_id=VQ1\"@evil.example>\n\
         {t} hub postfix/smtp[301]: AQ2: to=<planted@evil.example>, relay=mx.evil.example[203.0.113.67]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 2.0.0 Ok)\n"
    ));
    text.push_str(&victim_deliveries());
    append(&log, &text);
    let s = start(&log);
    assert_victims_answer(&s);
}

/// Finding: the state file was 0644 (it holds recipients, diagnostics and every hash B) and its
/// fixed temporary name followed symlinks: a planted `state.tmp` link had its target truncated
/// at start-up and overwritten at the first snapshot. Now the file is 0600, the temporary name
/// is fresh and never followed, and a directory others may write to is refused.
#[test]
fn the_state_directory_is_private_and_follows_no_planted_link() {
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
    let dir = TempDir::new("trust-state");
    let state = dir.path("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let victim = dir.path("precious");
    std::fs::write(&victim, b"do not touch").unwrap();
    symlink(&victim, state.join("state.tmp")).unwrap();
    let log = dir.path("mtqp.log");
    append(
        &log,
        &accept_line(&native_time(0), "victim@example.org", "victim secret", ""),
    );
    let log_arg = format!("native:{}", log.display());
    let state_arg = state.display().to_string();
    let s = Server::start_caught_up(&["--log", &log_arg, "--state-dir", &state_arg]);
    let (status, stderr) = s.stop("TERM");
    assert!(status.success(), "{stderr}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"do not touch");
    let saved = std::fs::metadata(state.join("state.bin")).expect("a snapshot");
    assert_eq!(saved.mode() & 0o777, 0o600);

    // A state directory others may write to is refused, with one line.
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (status, stderr) = run_to_exit(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--log",
        &log_arg,
        "--state-dir",
        &state_arg,
    ]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("writable by others"), "{stderr}");
}
