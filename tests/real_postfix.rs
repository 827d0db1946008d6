//! End to end against a real Postfix: `.ci/postfix-setup.sh` installs Debian's
//! postfix, listening on 127.0.0.1:25 only and logging to its own `maillog_file`. This test
//! sends three messages over SMTP — one delivered locally, one to an unknown local user (bounced
//! after acceptance: the setup sets `smtpd_reject_unlisted_recipient = no`, so smtpd takes the
//! recipient and local(8) bounces it with 5.1.1), one to a domain routed to a closed port
//! (deferred, 4.4.1) — writes a native accept line for each keyed by its Message-ID, and checks
//! over MTQP that mtqpd, following the Postfix log, gives each recipient the right Action and
//! Status.
//!
//! It runs only when `MTQPD_REAL_POSTFIX=1` (what `.ci/run` exports after the setup script
//! succeeded); otherwise it says it was skipped, except under CI (`CI` set), where a missing
//! Postfix is a failure. The Postfix log is followed from its start and may hold earlier runs:
//! Message-IDs, envids and secrets are unique per run.

mod common;
use common::*;

use common::postfix::{self, HOSTNAME};
use common::real_mta::{self, Session};

use std::path::Path;
use std::process::Command;

/// A local user the setup script creates. Also the envelope sender, so that the bounce of the
/// unknown user is delivered rather than bounced again.
const LOCAL_USER: &str = "mtqpdtest";

/// Hands Postfix one message with this Message-ID (without angle brackets) for `rcpt`, from
/// the local user.
fn send(smtp: &mut Session, rcpt: &str, message_id: &str) {
    let reply = smtp.transaction(
        &format!("MAIL FROM:<{LOCAL_USER}@{HOSTNAME}>"),
        &[format!("RCPT TO:<{rcpt}>")],
        message_id,
    );
    eprintln!("real_postfix: {rcpt} <{message_id}>: {}", reply.trim_end());
}

/// One message of the test and what TRACK must show for its recipient.
struct Case {
    rcpt: String,
    message_id: String,
    envid: String,
    secret: String,
    want: Vec<String>,
}

/// One TRACK on a fresh connection: the status line and the body.
fn track(s: &Server, envid: &str, secret: &str) -> (String, String) {
    let mut c = s.client();
    c.send(format!("TRACK {envid} {}\r\n", secret_b64(secret)).as_bytes());
    let r = c.response();
    (
        String::from_utf8_lossy(&r.status).into_owned(),
        String::from_utf8_lossy(&r.body).into_owned(),
    )
}

/// The queue id Postfix gave the message with this Message-ID, from its cleanup line.
fn queue_id_of(message_id: &str) -> Option<String> {
    let needle = format!(": message-id=<{message_id}>");
    let log = std::fs::read_to_string(postfix::LOG).ok()?;
    let line = log.lines().find(|l| l.ends_with(&needle))?;
    let head = &line[..line.len() - needle.len()];
    head.rsplit(' ').next().map(str::to_string)
}

#[test]
fn real_postfix_delivered_bounced_deferred() {
    if !postfix::enabled("real_postfix") {
        return;
    }
    let run = real_mta::run_id();
    let time = rfc3339(unix_now());

    let case = |tag: &str, rcpt: &str, want: &[&str]| Case {
        rcpt: rcpt.to_string(),
        message_id: format!("{run}.{tag}@mtqpd-test.example"),
        envid: format!("{run}.{tag}@envid.example"),
        secret: format!("secret-{tag}-{run}"),
        want: want
            .iter()
            .map(|w| w.replace("RCPT", rcpt))
            .collect::<Vec<_>>(),
    };
    let cases = [
        case(
            "delivered",
            &format!("{LOCAL_USER}@localhost"),
            &[
                "Final-Recipient: rfc822; RCPT\r\n",
                "Action: delivered\r\n",
                "Status: 2.0.0\r\n",
            ],
        ),
        case(
            "bounced",
            "nosuchuser@localhost",
            &[
                "Final-Recipient: rfc822; RCPT\r\n",
                "Action: failed\r\n",
                "Status: 5.1.1\r\n",
                "Diagnostic-Code: smtp; unknown user: \"nosuchuser\"\r\n",
            ],
        ),
        case(
            "deferred",
            "someone@deferred.example",
            &[
                "Final-Recipient: rfc822; RCPT\r\n",
                "Action: delayed\r\n",
                "Status: 4.4.1\r\n",
                "Diagnostic-Code: smtp; connect to 127.0.0.1[127.0.0.1]:9: Connection refused\r\n",
                "Will-Retry-Until: ",
            ],
        ),
    ];

    let dir = TempDir::new("real-postfix");
    let native = dir.path("mtqp.log");
    std::fs::write(&native, b"").expect("create native log");
    let s = postfix::serve(&native);

    // Hand Postfix the three messages on one SMTP session, then write what the submitting
    // application would: an accept line per message, keyed by its Message-ID.
    let mut smtp = Session::to("127.0.0.1:25");
    smtp.command("EHLO mtqpd-test.example", 250);
    for c in &cases {
        send(&mut smtp, &c.rcpt, &c.message_id);
    }
    smtp.quit();
    for c in &cases {
        append(
            &native,
            &accept_line(
                &time,
                &c.envid,
                &c.secret,
                &format!("msgid={}", c.message_id),
            ),
        );
    }

    for c in &cases {
        let mut last = (String::new(), String::new());
        let found = eventually_or_none(|| {
            last = track(&s, &c.envid, &c.secret);
            (last.0.starts_with("+OK") && c.want.iter().all(|w| last.1.contains(w.as_str())))
                .then_some(())
        });
        assert!(
            found.is_some(),
            "{}: TRACK never showed {:?}\nlast answer: {}\n{}\nPostfix log:\n{}\nmtqpd stderr:\n{}",
            c.rcpt,
            c.want,
            last.0,
            last.1,
            postfix::lines_with(
                &queue_id_of(&c.message_id).unwrap_or_else(|| c.message_id.clone())
            )
            .join("\n"),
            s.stderr()
        );
        eprintln!("real_postfix: TRACK {} ->\n{}", c.envid, last.1);
        // Exactly one recipient per message, and the envid is the one the accept line gave.
        assert_eq!(last.1.matches("Final-Recipient:").count(), 1, "{}", last.1);
        assert!(
            last.1
                .contains(&format!("Original-Envelope-Id: {}\r\n", c.envid)),
            "{}",
            last.1
        );
        // Postfix logs `relay=local` and, for a refused connection, `relay=none`: no
        // remote MTA to name.
        assert!(!last.1.contains("Remote-MTA:"), "{}", last.1);
        // A wrong secret learns nothing.
        let (status, _) = track(&s, &c.envid, "not-the-secret");
        assert!(
            status.starts_with("-ERR"),
            "wrong secret answered: {status}"
        );
    }

    // Tidy the queue: the deferred message would otherwise be retried for days.
    if let Some(qid) = queue_id_of(&cases[2].message_id) {
        let _ = Command::new("postsuper").args(["-d", &qid]).status();
    }
}

/// The trust boundary through the real Postfix: a sender whose quoted local part spells a native
/// accept naming the victim's queue id, then a rejected RCPT. Postfix logs the sender verbatim
/// in its `NOQUEUE: reject:` line; that line is a Postfix line and forges nothing.
#[test]
fn a_quoted_sender_spelling_an_accept_forges_nothing() {
    if !postfix::enabled("real_postfix") {
        return;
    }
    let run = real_mta::run_id();
    let time = rfc3339(unix_now());
    let dir = TempDir::new("real-postfix-forgery");
    let native = dir.path("mtqp.log");
    std::fs::write(&native, b"").expect("create native log");
    let s = postfix::serve(&native);
    let rcpt = format!("{LOCAL_USER}@localhost");
    // The victim's message, delivered, and its answer.
    let (victim_msgid, victim_envid) = (
        format!("{run}.victim@mtqpd-test.example"),
        format!("{run}.victim@envid.example"),
    );
    let mut smtp = Session::to("127.0.0.1:25");
    smtp.command("EHLO mtqpd-test.example", 250);
    send(&mut smtp, &rcpt, &victim_msgid);
    smtp.quit();
    append(
        &native,
        &accept_line(
            &time,
            &victim_envid,
            "victim secret",
            &format!("msgid={victim_msgid}"),
        ),
    );
    let delivered = |envid: &str, secret: &str| {
        eventually_or_none(|| {
            let (status, body) = track(&s, envid, secret);
            (status.starts_with("+OK") && body.contains("Action: delivered\r\n")).then_some(body)
        })
    };
    let before = delivered(&victim_envid, "victim secret").expect("the victim's delivery");
    let victim_queue = queue_id_of(&victim_msgid).expect("the victim's queue id");

    // The attack.
    let evil_envid = format!("{run}.evil@evil.example");
    let forged = format!(
        "mtqp: event=accept time={time} envid={evil_envid} mtrk={} queue={victim_queue} t=",
        mtrk("evil secret")
    );
    let mut smtp = Session::to("127.0.0.1:25");
    smtp.command("EHLO evil.example", 250);
    smtp.command(&format!("MAIL FROM:<\"{forged}\"@evil.example>"), 250);
    smtp.command("RCPT TO:<rejected@localhost>", 554);
    smtp.quit();

    // A later message, served only once everything before it in the log was read.
    let (sentinel_msgid, sentinel_envid) = (
        format!("{run}.sentinel@mtqpd-test.example"),
        format!("{run}.sentinel@envid.example"),
    );
    let mut smtp = Session::to("127.0.0.1:25");
    smtp.command("EHLO mtqpd-test.example", 250);
    send(&mut smtp, &rcpt, &sentinel_msgid);
    smtp.quit();
    append(
        &native,
        &accept_line(
            &time,
            &sentinel_envid,
            "sentinel",
            &format!("msgid={sentinel_msgid}"),
        ),
    );
    delivered(&sentinel_envid, "sentinel").expect("the sentinel's delivery");

    // Postfix did log the forged text verbatim: the attack was real.
    let reject = postfix::lines_with(&evil_envid).join("\n");
    assert!(
        reject.contains("NOQUEUE: reject:") && reject.contains(&forged),
        "Postfix did not log the sender as expected:\n{reject}"
    );
    let (status, _) = track(&s, &evil_envid, "evil secret");
    assert!(status.starts_with("-ERR/noinfo"), "forged record: {status}");
    let (_, after) = track(&s, &victim_envid, "victim secret");
    assert_eq!(after, before, "the victim's answer changed");
    let (_, stderr) = s.stop("TERM");
    assert!(!stderr.contains("rejected line"), "{stderr}");
}

/// smtp-sink (Postfix's test server) on the next hop of `sink.example`, stopped when dropped.
struct Sink(std::process::Child);

impl Sink {
    fn start() -> Sink {
        let child = Command::new("smtp-sink")
            .args(["-u", "nobody", SINK_NEXT_HOP, "10"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start smtp-sink");
        let up = eventually_or_none(|| std::net::TcpStream::connect(SINK_NEXT_HOP).ok());
        assert!(up.is_some(), "smtp-sink never listened on {SINK_NEXT_HOP}");
        Sink(child)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where `sink.example` is relayed to (.ci/postfix-setup.sh).
const SINK_NEXT_HOP: &str = "127.0.0.1:10028";
/// Postfix's `queue_directory` on Debian.
const POSTFIX_QUEUE: &str = "/var/spool/postfix";
/// The retry transport delivers once this directory holds a file named after the recipient.
const RETRY_FLAGS: &str = "/var/tmp/mtqpd-retry";

/// One message to every kind of recipient (issue 14): delivered locally, failed (unknown user),
/// delayed by a dead next hop, delayed by a transport that fails until a flag file exists and
/// then delivered after a retry, relayed to a sink. Each appears exactly once with its Action
/// and Status, and the retried one turns from delayed to delivered in place.
#[test]
fn every_recipient_once_and_a_retry_delivered_in_place() {
    if !postfix::enabled("real_postfix") {
        return;
    }
    let run = real_mta::run_id();
    let time = rfc3339(unix_now());
    let _sink = Sink::start();
    let dir = TempDir::new("real-postfix-retry");
    let native = dir.path("mtqp.log");
    std::fs::write(&native, b"").expect("create native log");
    let s = postfix::serve(&native);

    let retry = format!("r{}@retry.example", run.replace('.', "-"));
    let delivered = format!("{LOCAL_USER}@localhost");
    let sink = format!("s{}@sink.example", run.replace('.', "-"));
    let rcpts = [
        delivered.as_str(),
        "nosuchuser@localhost",
        "someone@deferred.example",
        retry.as_str(),
        sink.as_str(),
    ];
    let message_id = format!("{run}.every@mtqpd-test.example");
    let (envid, secret) = (
        format!("{run}.every@envid.example"),
        format!("s-every-{run}"),
    );
    let mut smtp = Session::to("127.0.0.1:25");
    smtp.command("EHLO mtqpd-test.example", 250);
    let reply = smtp.transaction(
        &format!("MAIL FROM:<{LOCAL_USER}@{HOSTNAME}>"),
        &rcpts.map(|r| format!("RCPT TO:<{r}>")),
        &message_id,
    );
    smtp.quit();
    let qid = reply
        .trim_end()
        .rsplit(' ')
        .next()
        .expect("queue id in the reply")
        .to_string();
    let _cleanup = postfix::QueueCleanup(vec![qid.clone()]);
    append(
        &native,
        &accept_line(&time, &envid, &secret, &format!("msgid={message_id}")),
    );

    let log = || postfix::lines_with(&qid).join("\n");
    let before = real_mta::track_until(
        &s,
        &envid,
        &secret,
        &[
            (&delivered, &["Action: delivered", "Status: 2.0.0"]),
            ("nosuchuser@localhost", &["Action: failed", "Status: 5.1.1"]),
            (
                "someone@deferred.example",
                &["Action: delayed", "Status: 4.4.1"],
            ),
            (&retry, &["Action: delayed", "Status: 4.3.0"]),
            (
                &sink,
                &[
                    "Action: relayed",
                    "Status: 2.0.0",
                    "Remote-MTA: dns; 127.0.0.1",
                ],
            ),
        ],
        11,
        log,
    );
    assert_eq!(before.matches("Final-Recipient:").count(), 5, "{before}");

    // The flag, then a retry of this message only: the same recipient, now delivered. The
    // retry is asked for once the queue manager has put the message in the deferred queue
    // (`postqueue -i` does nothing for a message still active).
    std::fs::write(format!("{RETRY_FLAGS}/{retry}"), b"").expect("create the retry flag");
    let deferred = |qid: &str| {
        // hash_queue_depth = 1 (Postfix's default): deferred/FIRST-CHARACTER/QUEUE-ID.
        Path::new(POSTFIX_QUEUE)
            .join("deferred")
            .join(&qid[..1])
            .join(qid)
            .exists()
    };
    assert!(
        eventually_or_none(|| deferred(&qid).then_some(())).is_some(),
        "{qid} never reached the deferred queue:\n{}",
        log()
    );
    let status = Command::new("postqueue")
        .args(["-i", &qid])
        .status()
        .expect("run postqueue");
    assert!(status.success(), "postqueue -i {qid}: {status}");
    let after = real_mta::track_until(
        &s,
        &envid,
        &secret,
        &[(&retry, &["Action: delivered", "Status: 2.0.0"])],
        11,
        log,
    );
    eprintln!("real_postfix: mtqpd track {envid} ->\n{after}");
    assert_eq!(after.matches("Final-Recipient:").count(), 5, "{after}");
    let order = |body: &str| {
        body.lines()
            .filter_map(|l| l.strip_prefix("Final-Recipient: rfc822; "))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(order(&after), order(&before), "the retried recipient moved");
    let _ = std::fs::remove_file(format!("{RETRY_FLAGS}/{retry}"));

    // The offline check over the whole log this Postfix wrote: every line read, and no
    // recipient a line named absent from its message's answer.
    let report = real_mta::ingest_check(&[
        &format!("postfix:{}", postfix::LOG),
        &format!("native:{}", native.display()),
    ]);
    assert!(report.contains(", rejected 0, "), "{report}");
    assert!(report.contains("\nrecipients missing 0 "), "{report}");
    assert!(!report.contains("tracked messages 0;"), "{report}");
}
