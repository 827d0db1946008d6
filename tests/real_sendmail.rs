//! End to end against a real sendmail: `.ci/sendmail-setup.sh` unpacks Debian's sendmail 8.17
//! packages into a private root beside Postfix and starts the MTA on 127.0.0.1:10225 with a
//! sendmail.cf built from Debian's default .mc; it logs through syslog(3) to a real rsyslogd,
//! which writes the mail facility to its own file in the traditional format. Each test sends
//! messages over SMTP, writes a native accept line per message keyed by its Message-ID (what
//! the submitting application would), starts `mtqpd serve --log sendmail:… --log native:…` and
//! checks over MTQP (`mtqpd track`) that every recipient of the message appears exactly once,
//! with the Action and Status sendmail's log gives it:
//!
//! - a local user, delivered by the local mailer;
//! - two failures: a next hop that refuses the RCPT (5.3.0), and an alias whose target user
//!   does not exist (5.1.1); sendmail takes both at RCPT and fails them in delivery;
//! - an alias to a program that exits EX_TEMPFAIL until the test releases the message: delayed,
//!   then, after a queue run, delivered — the same recipient, in place. Its Final-Recipient is
//!   the alias (the line's `ctladdr=`), never the `|command` of the line's `to=`, as sendmail's
//!   own DSNs do (issue 14);
//! - two recipients relayed to an SMTP sink, which sendmail logs on one `to=` line;
//! - a next hop where nothing listens: delayed;
//! - a next hop where nothing listens until the test starts an SMTP sink there: delayed, then,
//!   after a queue run as Debian's `/etc/init.d/sendmail runq` makes it (its own syslog tag,
//!   `sm-mta-runq`), relayed — in place;
//! - an alias with two targets (a local user and a program): one recipient.
//!
//! Then `mtqpd ingest-check` on the sendmail log must reject no line, find no recipient missing
//! from its answer, and list every recipient of a message of each kind once.
//!
//! The tests run only when `MTQPD_REAL_SENDMAIL=1` (what `.ci/run` exports after the setup
//! script succeeded); otherwise they say they were skipped, except under CI (`CI` set), where a
//! missing sendmail is a failure. The log is followed from its start and may hold earlier runs:
//! Message-IDs, envids and secrets are unique per run.

mod common;
use common::*;

use common::real_mta::{self, recipient_block, Session};

use std::path::PathBuf;
use std::process::Command;

/// Where the setup script's rsyslogd writes sendmail's lines.
const SENDMAIL_LOG: &str = "/var/log/mtqpd-sendmail.log";
/// sendmail's listener.
const LISTENER: &str = "127.0.0.1:10225";
/// sendmail's `$j` (confDOMAIN_NAME), one of its local domains; also mtqpd's `--hostname`.
const DOMAIN: &str = "mtqpd-sm.example";
/// A local user (the setup scripts create it). Also the envelope sender, so that sendmail's
/// bounces are delivered rather than bounced again.
const LOCAL_USER: &str = "mtqpdtest";
/// The private root's sendmail and its configuration.
const SENDMAIL: &str = "/opt/mtqpd-sendmail/pkg/usr/libexec/sendmail/sendmail";
const CF: &str = "/opt/mtqpd-sendmail/etc/sendmail.cf";
const QUEUE_DIR: &str = "/opt/mtqpd-sendmail/spool/mqueue";
/// The deferrer alias's program succeeds once a file named by the Message-ID is here.
const RELEASE_DIR: &str = "/opt/mtqpd-sendmail/release";

/// Whether the tests should run; panics under CI when the setup did not say sendmail is ready.
fn enabled() -> bool {
    real_mta::enabled(
        "MTQPD_REAL_SENDMAIL",
        "real_sendmail",
        ".ci/sendmail-setup.sh",
    )
}

/// One message sent to sendmail, and how to track it.
struct Sent {
    message_id: String,
    envid: String,
    secret: String,
}

/// One test's run: its unique id, its native log and the server following both logs.
struct Run {
    id: String,
    time: String,
    native: PathBuf,
    serve: Server,
    _dir: TempDir,
}

impl Run {
    fn start(name: &str) -> Run {
        let dir = TempDir::new(name);
        let native = dir.path("mtqp.log");
        std::fs::write(&native, b"").expect("create native log");
        let serve = real_mta::serve(&format!("sendmail:{SENDMAIL_LOG}"), &native, DOMAIN);
        Run {
            id: real_mta::run_id(),
            time: rfc3339(unix_now()),
            native,
            serve,
            _dir: dir,
        }
    }

    /// Hands sendmail one message from the local user for `rcpts`, then appends its accept line
    /// (keyed by the Message-ID) to the native log.
    fn send(&self, tag: &str, rcpts: &[&str]) -> Sent {
        let sent = Sent {
            message_id: format!("{}.{tag}@mtqpd-test.example", self.id),
            envid: format!("{}.{tag}@envid.example", self.id),
            secret: format!("secret-{tag}-{}", self.id),
        };
        let mut smtp = Session::to(LISTENER);
        smtp.command("EHLO mtqpd-test.example", 250);
        let rcpt_commands: Vec<String> = rcpts.iter().map(|r| format!("RCPT TO:<{r}>")).collect();
        let reply = smtp.transaction(
            &format!("MAIL FROM:<{LOCAL_USER}@{DOMAIN}>"),
            &rcpt_commands,
            &sent.message_id,
        );
        smtp.quit();
        eprintln!(
            "real_sendmail: {rcpts:?} <{}>: {}",
            sent.message_id,
            reply.trim_end()
        );
        append(
            &self.native,
            &accept_line(
                &self.time,
                &sent.envid,
                &sent.secret,
                &format!("msgid={}", sent.message_id),
            ),
        );
        sent
    }

    /// Polls `mtqpd track` until the answer has exit status `exit` and shows each recipient
    /// with every line `want` lists for it; then checks that each appears exactly once and
    /// that the answer has no other recipient. Returns the body.
    fn track_until(&self, sent: &Sent, want: &[(&str, &[&str])], exit: i32) -> String {
        let body =
            real_mta::track_until(&self.serve, &sent.envid, &sent.secret, want, exit, || {
                sendmail_lines(sent)
            });
        eprintln!("real_sendmail: track {} ->\n{body}", sent.envid);
        for (rcpt, _) in want {
            let line = format!("Final-Recipient: rfc822; {rcpt}");
            assert_eq!(
                body.lines().filter(|l| *l == line).count(),
                1,
                "{rcpt} must appear exactly once:\n{body}\nsendmail log:\n{}",
                sendmail_lines(sent)
            );
        }
        assert_eq!(
            body.matches("Final-Recipient:").count(),
            want.len(),
            "recipients other than {:?} in the answer:\n{body}\nsendmail log:\n{}",
            want.iter().map(|(r, _)| r).collect::<Vec<_>>(),
            sendmail_lines(sent)
        );
        assert!(
            body.contains(&format!("Original-Envelope-Id: {}\n", sent.envid)),
            "{body}"
        );
        // An alias's program or file is the hub's secret, never a recipient.
        assert!(!body.contains('|'), "a |command in the answer:\n{body}");
        body
    }
}

/// The queue id sendmail gave the message, from its `from=` line (`… QID: from=<…>, …,
/// msgid=<ID>, …`), once logged.
fn queue_id(sent: &Sent) -> Option<String> {
    let needle = format!(", msgid=<{}>,", sent.message_id);
    real_mta::log_lines_with(SENDMAIL_LOG, &needle)
        .iter()
        .find_map(|l| {
            let text = l.split("]: ").nth(1)?;
            let (qid, rest) = text.split_once(": ")?;
            rest.starts_with("from=").then(|| qid.to_string())
        })
}

/// The log lines of the message, for failure messages.
fn sendmail_lines(sent: &Sent) -> String {
    let needle = queue_id(sent).unwrap_or_else(|| sent.message_id.clone());
    real_mta::log_lines_with(SENDMAIL_LOG, &needle).join("\n")
}

/// The message's queue id, waiting for its `from=` line.
fn wait_queue_id(sent: &Sent) -> String {
    eventually("the message's from= line in the sendmail log", || {
        queue_id(sent)
    })
}

/// Removes a message sendmail would otherwise retry for days (its queue files), when dropped:
/// also when an assertion failed.
struct Dequeue(Option<String>);

impl Drop for Dequeue {
    fn drop(&mut self) {
        if let Some(qid) = &self.0 {
            for kind in ["qf", "df"] {
                let _ = std::fs::remove_file(format!("{QUEUE_DIR}/{kind}{qid}"));
            }
        }
    }
}

/// Runs the queue for one message, as Debian's sendmail daemon does every 10 minutes.
fn queue_run(qid: &str) {
    let status = Command::new(SENDMAIL)
        .args(["-Am", "-C", CF, "-L", "sm-mta", &format!("-qI{qid}")])
        .status()
        .expect("run sendmail -q");
    assert!(status.success(), "sendmail -qI{qid}: {status}");
}

/// Polls `mtqpd track` until the answer has exit status `exit` and exactly one recipient, whose
/// block has every line of `want` (one that ends in `: ` is a prefix); returns its
/// Final-Recipient address, whatever it is.
fn only_recipient(run: &Run, sent: &Sent, want: &[&str], exit: i32) -> String {
    let mut last = String::new();
    let found = eventually_or_none(|| {
        let t = real_mta::track(run.serve.addr, &sent.envid, &sent.secret);
        last = format!("exit {:?}\n{}{}", t.exit, t.body, t.stderr);
        if t.exit != Some(exit) || t.body.matches("Final-Recipient:").count() != 1 {
            return None;
        }
        let block = t
            .body
            .split("\n\n")
            .find(|b| b.contains("Final-Recipient:"))?;
        let lines: Vec<&str> = block.lines().collect();
        let complete = want.iter().all(|w| {
            lines.iter().any(|l| {
                if w.ends_with(": ") {
                    l.starts_with(w)
                } else {
                    l == w
                }
            })
        });
        let rcpt = lines
            .iter()
            .find_map(|l| l.strip_prefix("Final-Recipient: rfc822; "))?;
        complete.then(|| rcpt.to_string())
    });
    found.unwrap_or_else(|| {
        panic!(
            "mtqpd track {} never showed one recipient with {want:?} (exit {exit})\nlast: {last}\n\
             sendmail log:\n{}\nmtqpd serve stderr:\n{}",
            sent.envid,
            sendmail_lines(sent),
            run.serve.stderr()
        )
    })
}

fn at_domain(local: &str) -> String {
    format!("{local}@{DOMAIN}")
}

#[test]
fn local_user_delivered() {
    if !enabled() {
        return;
    }
    let run = Run::start("real-sendmail-local");
    let rcpt = at_domain(LOCAL_USER);
    let sent = run.send("local", &[&rcpt]);
    let body = run.track_until(
        &sent,
        &[(&rcpt, &["Action: delivered", "Status: 2.0.0"])],
        0,
    );
    // The local mailer has no remote MTA.
    assert!(!body.contains("Remote-MTA:"), "{body}");
    // A wrong secret learns nothing.
    let wrong = real_mta::track(run.serve.addr, &sent.envid, "not-the-secret");
    assert_eq!(wrong.exit, Some(12), "{}{}", wrong.body, wrong.stderr);
}

#[test]
fn failed_by_the_next_hop_and_by_an_alias_to_a_missing_user() {
    if !enabled() {
        return;
    }
    let run = Run::start("real-sendmail-failed");
    // The next hop (an smtp-sink) answers the RCPT with 500 5.3.0.
    let refused = run.send("refused", &["nobody@unknown.example"]);
    let body = run.track_until(
        &refused,
        &[(
            "nobody@unknown.example",
            &[
                "Action: failed",
                "Status: 5.3.0",
                "Remote-MTA: ",
                "Diagnostic-Code: ",
            ],
        )],
        11,
    );
    assert!(body.contains("127.0.2.55"), "the refusing host:\n{body}");
    // ghost@ is an alias of a user that does not exist: sendmail logs `to=mtqpdgone,
    // ctladdr=<ghost@…>`, and its own bounce says Final-Recipient ghost@… with the user in
    // X-Actual-Recipient.
    let ghost = at_domain("ghost");
    let sent = run.send("ghost", &[&ghost]);
    run.track_until(&sent, &[(&ghost, &["Action: failed", "Status: 5.1.1"])], 11);
}

#[test]
fn program_alias_delayed_then_delivered_in_place() {
    if !enabled() {
        return;
    }
    let run = Run::start("real-sendmail-retry");
    let rcpt = at_domain("deferrer");
    let sent = run.send("deferrer", &[&rcpt]);
    let release = PathBuf::from(RELEASE_DIR).join(&sent.message_id);
    let qid = wait_queue_id(&sent);
    let _dequeue = Dequeue(Some(qid.clone()));

    // The program exits EX_TEMPFAIL: `to="|…/deferrer", ctladdr=<deferrer@…> (8/0), …,
    // mailer=prog, …, dsn=4.0.0, stat=Deferred: prog mailer (/bin/sh) exited with EX_TEMPFAIL`.
    // Whether the retry updates the one recipient in place is checked before its name, so that
    // a wrong name does not hide it.
    let delayed = only_recipient(
        &run,
        &sent,
        &["Action: delayed", "Status: 4.0.0", "Will-Retry-Until: "],
        10,
    );
    std::fs::write(&release, b"").expect("release the message");
    queue_run(&qid);
    let delivered = only_recipient(&run, &sent, &["Action: delivered", "Status: 2.0.0"], 0);
    assert_eq!(
        delayed,
        delivered,
        "the retry must update the delayed recipient in place\nsendmail log:\n{}",
        sendmail_lines(&sent)
    );
    assert_eq!(
        delayed,
        rcpt,
        "the program alias's recipient is its address (ctladdr=), not the program\nsendmail log:\n{}",
        sendmail_lines(&sent)
    );
    run.track_until(
        &sent,
        &[(&rcpt, &["Action: delivered", "Status: 2.0.0"])],
        0,
    );
    std::fs::remove_file(&release).expect("remove the release file");
}

/// An smtp-sink (Postfix's) on 127.0.2.77:25, where later.example's mail goes, stopped when
/// dropped.
struct LaterSink(std::process::Child);

impl LaterSink {
    fn start() -> LaterSink {
        let child = Command::new("smtp-sink")
            .args([
                "-u",
                "nobody",
                "-h",
                "later.example",
                "127.0.2.77:25",
                "100",
            ])
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("start smtp-sink");
        let sink = LaterSink(child);
        eventually("smtp-sink on 127.0.2.77:25", || {
            std::net::TcpStream::connect("127.0.2.77:25").ok()
        });
        sink
    }
}

impl Drop for LaterSink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn relay_deferred_then_relayed_after_debians_runq() {
    if !enabled() {
        return;
    }
    let run = Run::start("real-sendmail-later");
    let rcpt = "someone@later.example";
    let sent = run.send("later", &[rcpt]);
    let qid = wait_queue_id(&sent);
    let _dequeue = Dequeue(Some(qid.clone()));
    // Nothing listens yet: `relay=[127.0.2.77] [127.0.2.77], dsn=4.4.1, stat=Deferred:
    // Connection refused by [127.0.2.77]`.
    let delayed = only_recipient(
        &run,
        &sent,
        &["Action: delayed", "Status: 4.4.1", "Will-Retry-Until: "],
        10,
    );
    let _sink = LaterSink::start();
    // What `/etc/init.d/sendmail purgestat` and `runq` run: forget that the host was down (or
    // the queue run would not try it for 30 minutes), then run the queue under Debian's tag
    // for it, sm-mta-runq.
    for args in [
        vec!["-Am", "-C", CF, "-bH"],
        vec!["-Am", "-C", CF, "-L", "sm-mta-runq", &format!("-qI{qid}")],
    ] {
        let status = Command::new(SENDMAIL)
            .args(&args)
            .status()
            .expect("run sendmail");
        assert!(status.success(), "sendmail {args:?}: {status}");
    }
    let relayed = only_recipient(&run, &sent, &["Action: relayed", "Status: 2.0.0"], 0);
    assert_eq!(
        delayed, relayed,
        "the retry must update the recipient in place"
    );
    assert_eq!(delayed, rcpt);
    let body = run.track_until(
        &sent,
        &[(rcpt, &["Action: relayed", "Status: 2.0.0", "Remote-MTA: "])],
        0,
    );
    assert!(
        body.contains("127.0.2.77"),
        "the sink as Remote-MTA:\n{body}"
    );
}

#[test]
fn relayed_to_a_sink_two_recipients_on_one_line() {
    if !enabled() {
        return;
    }
    let run = Run::start("real-sendmail-relayed");
    let (a, b) = ("a@sink.example", "b@sink.example");
    let sent = run.send("relayed", &[a, b]);
    let want: &[&str] = &["Action: relayed", "Status: 2.0.0", "Remote-MTA: "];
    let body = run.track_until(&sent, &[(a, want), (b, want)], 0);
    for rcpt in [a, b] {
        let block = recipient_block(&body, rcpt).expect("its block");
        assert!(
            block.iter().any(|l| l.contains("127.0.2.25")),
            "{rcpt}: the sink as Remote-MTA:\n{body}"
        );
    }
}

#[test]
fn dead_next_hop_delayed() {
    if !enabled() {
        return;
    }
    let run = Run::start("real-sendmail-dead");
    let rcpt = "someone@dead.example";
    let sent = run.send("dead", &[rcpt]);
    let _dequeue = Dequeue(Some(wait_queue_id(&sent)));
    run.track_until(
        &sent,
        &[(
            rcpt,
            &[
                "Action: delayed",
                "Status: 4.4.1",
                "Diagnostic-Code: ",
                "Will-Retry-Until: ",
            ],
        )],
        10,
    );
}

#[test]
fn alias_with_two_targets_shows_each_once_and_no_command() {
    if !enabled() {
        return;
    }
    let run = Run::start("real-sendmail-team");
    // team@ → the local user and a program. sendmail logs one line per target:
    // `to="|…/archiver", ctladdr=<team@…> (8/0), … mailer=prog` and
    // `to=mtqpdtest, ctladdr=<mtqpdtest@…> (1001/1001), … mailer=local`. The program stands for
    // the alias that led there; the user's line names only the user (sendmail logs no trace of
    // the alias on it): each once, and the command never.
    let (team, local) = (at_domain("team"), at_domain(LOCAL_USER));
    let sent = run.send("team", &[&team]);
    let want: &[&str] = &["Action: delivered", "Status: 2.0.0"];
    let body = run.track_until(&sent, &[(&team, want), (&local, want)], 0);
    assert_eq!(body.matches("Final-Recipient:").count(), 2, "{body}");
    assert!(!body.contains('|'), "a |command in the answer:\n{body}");
}

/// `mtqpd ingest-check` on the real log: no line rejected, no recipient missing from its answer,
/// and every recipient of a message of each kind listed once with its action.
#[test]
fn ingest_check_reads_every_line_and_lists_every_recipient() {
    if !enabled() {
        return;
    }
    let run = Run::start("real-sendmail-check");
    let (local, ghost, deferrer, team) = (
        at_domain(LOCAL_USER),
        at_domain("ghost"),
        at_domain("deferrer"),
        at_domain("team"),
    );
    let cases: Vec<(Sent, Vec<(&str, &str)>)> = vec![
        (run.send("local", &[&local]), vec![(&local, "delivered")]),
        (
            run.send("refused", &["nobody@unknown.example"]),
            vec![("nobody@unknown.example", "failed")],
        ),
        (run.send("ghost", &[&ghost]), vec![(&ghost, "failed")]),
        (
            run.send("deferrer", &[&deferrer]),
            vec![(&deferrer, "delayed")],
        ),
        (
            run.send("relayed", &["a@sink.example", "b@sink.example"]),
            vec![("a@sink.example", "relayed"), ("b@sink.example", "relayed")],
        ),
        (
            run.send("dead", &["someone@dead.example"]),
            vec![("someone@dead.example", "delayed")],
        ),
        (
            run.send("team", &[&team]),
            vec![(&team, "delivered"), (&local, "delivered")],
        ),
    ];
    let mut cleanup = Vec::new();
    for (sent, _) in &cases {
        let qid = wait_queue_id(sent);
        if sent.message_id.contains(".deferrer@") || sent.message_id.contains(".dead@") {
            cleanup.push(Dequeue(Some(qid.clone())));
        }
    }
    // Every message has its delivery attempts logged (serve sees them: its answers are read from
    // the same lines) before the log is read once more, offline.
    for (sent, rcpts) in &cases {
        eventually_or_none(|| {
            let t = real_mta::track(run.serve.addr, &sent.envid, &sent.secret);
            (t.body.matches("Final-Recipient:").count() >= rcpts.len()).then_some(())
        });
    }
    let report = real_mta::ingest_check(&[
        &format!("sendmail:{SENDMAIL_LOG}"),
        &format!("native:{}", run.native.display()),
    ]);
    let mut problems = Vec::new();
    let counts = report
        .lines()
        .find(|l| l.starts_with("lines "))
        .expect("the counts line");
    if !counts.contains(", rejected 0,") {
        problems.push(format!("rejected lines: {counts}"));
    }
    if !report.contains("\nrecipients missing 0 ") {
        problems
            .push("recipients missing from their answers (named by a sendmail line):".to_string());
    }
    for (sent, rcpts) in &cases {
        // The message's block: `message ENVID (arrived …)`, then `  RCPT<TAB>ACTION<TAB>…`.
        let head = format!("message {} (", sent.envid);
        let block: Vec<&str> = report
            .lines()
            .skip_while(|l| !l.starts_with(&head))
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .collect();
        for (rcpt, action) in rcpts {
            let n = block
                .iter()
                .filter(|l| l.starts_with(&format!("  {rcpt}\t{action}\t")))
                .count();
            if n != 1 {
                problems.push(format!(
                    "{}: {rcpt} {action} listed {n} times: {block:?}\nsendmail log:\n{}",
                    sent.envid,
                    sendmail_lines(sent)
                ));
            }
        }
        if block.len() != rcpts.len() {
            problems.push(format!(
                "{}: {} recipient lines, wanted {}: {block:?}",
                sent.envid,
                block.len(),
                rcpts.len()
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "ingest-check:\n{}\n\nreport:\n{report}",
        problems.join("\n")
    );
    drop(cleanup);
}
