//! Original-Recipient from the SMTP gate's native lines, through the real server: the gate
//! writes an accept line and one `event=recipient` line per RCPT TO to its `native:` file,
//! Postfix logs the deliveries to its own, and the answer shows the ORCPT the client gave,
//! in whichever order the two files are read, and after a restart from the state directory.

mod common;
use common::*;

use std::path::Path;
use std::sync::LazyLock;

/// Ten minutes ago, and the seconds after it, by the clock the test runs under.
static BASE: LazyLock<i64> = LazyLock::new(|| unix_now() - 600);

/// `offset` seconds after [`BASE`] as classic syslog writes it (`Nov 24 10:00:00`).
fn syslog_time(offset: i64) -> String {
    // `Tue, 24 Nov 2026 10:00:00 +0000` → `Nov 24 10:00:00`.
    let d = rfc5322(*BASE + offset);
    let parts: Vec<&str> = d.split(' ').collect();
    format!("{} {:>2} {}", parts[2], parts[1], parts[4])
}

/// One message through the gate: its envid, secret and Postfix queue id.
struct Gated {
    envid: &'static str,
    secret: &'static str,
    queue: &'static str,
}

const FIXED_UP: Gated = Gated {
    envid: "gate-1@client.example",
    secret: "first gate secret",
    queue: "4A0C1E2D3F",
};

const DECLARED_FIRST: Gated = Gated {
    envid: "gate-2@client.example",
    secret: "second gate secret",
    queue: "5B1D2F3E4A",
};

impl Gated {
    /// What the gate appends after Postfix's final 250: the accept line, a recipient line for
    /// `user+x@dest.example` with the client's ORCPT (its `+` written `+2B` inside the xtext
    /// address, as the client sent it), and one for `plain@dest.example`, given none.
    fn gate_lines(&self) -> String {
        let time = rfc3339(*BASE);
        let keys = format!(
            "time={time} envid={} mtrk={} queue={}",
            self.envid,
            mtrk(self.secret),
            self.queue
        );
        format!(
            "{}\
             mtqp: event=recipient {keys} rcpt=user+2Bx@dest.example orcpt=rfc822;user+2Bx@dest.example\n\
             mtqp: event=recipient {keys} rcpt=plain@dest.example\n",
            accept_line(
                &time,
                self.envid,
                self.secret,
                &format!("timeout=86400 queue={} client=192.0.2.7", self.queue)
            )
        )
    }

    /// What Postfix logs for the message: arrival from the gate, both recipients relayed.
    fn postfix_lines(&self) -> String {
        let (t0, t1) = (syslog_time(0), syslog_time(5));
        let q = self.queue;
        format!(
            "{t0} hub postfix/smtpd[100]: {q}: client=gate.example[192.0.2.7]\n\
             {t0} hub postfix/cleanup[101]: {q}: message-id=<{q}@client.example>\n\
             {t0} hub postfix/qmgr[102]: {q}: from=<sender@client.example>, size=1000, nrcpt=2 (queue active)\n\
             {t1} hub postfix/smtp[103]: {q}: to=<user+x@dest.example>, relay=mx.dest.example[198.51.100.1]:25, delay=5, delays=0/0/1/4, dsn=2.0.0, status=sent (250 2.0.0 Ok)\n\
             {t1} hub postfix/smtp[103]: {q}: to=<plain@dest.example>, relay=mx.dest.example[198.51.100.1]:25, delay=5, delays=0/0/1/4, dsn=2.0.0, status=sent (250 2.0.0 Ok)\n\
             {t1} hub postfix/qmgr[102]: {q}: removed\n"
        )
    }

    /// The whole answer, byte for byte: the ORCPT for the one recipient the client gave one,
    /// none for the other.
    fn answer(&self) -> String {
        let relayed = |to: &str| {
            format!(
                "Final-Recipient: rfc822; {to}\r\nAction: relayed\r\nStatus: 2.0.0\r\n\
                 Remote-MTA: dns; mx.dest.example\r\n\
                 Last-Attempt-Date: {}\r\n",
                rfc5322(*BASE + 5)
            )
        };
        format!(
            "+OK+ Tracking information follows\r\n\
             Content-Type: multipart/related; boundary=mtqp-boundary; type=\"message/tracking-status\"\r\n\
             \r\n--mtqp-boundary\r\nContent-Type: message/tracking-status\r\n\r\n\
             Original-Envelope-Id: {}\r\n\
             Reporting-MTA: dns; hub.example\r\n\
             Arrival-Date: {}\r\n\
             \r\n\
             Original-Recipient: rfc822; user+x@dest.example\r\n\
             {}\
             \r\n\
             {}\
             \r\n--mtqp-boundary--\r\n.\r\n",
            self.envid,
            rfc5322(*BASE),
            relayed("user+x@dest.example"),
            relayed("plain@dest.example"),
        )
    }

    fn track(&self, s: &Server) -> String {
        let answer =
            s.client()
                .roundtrip(&format!("TRACK {} {}", self.envid, secret_b64(self.secret)));
        String::from_utf8_lossy(&answer).into_owned()
    }
}

fn start(postfix: &Path, gate: &Path, state: &Path) -> Server {
    let (postfix, gate) = (
        format!("postfix:{}", postfix.display()),
        format!("native:{}", gate.display()),
    );
    // The Postfix log first: at start-up each file is read in this order, so that the first
    // message's MTA lines are applied before the gate's lines name it.
    Server::start_caught_up(&[
        "--hostname",
        "hub.example",
        "--log-timezone",
        "UTC",
        "--log",
        &postfix,
        "--log",
        &gate,
        "--state-dir",
        &state.display().to_string(),
    ])
}

#[test]
fn the_gates_orcpt_is_the_original_recipient_in_either_order_and_after_a_restart() {
    let dir = TempDir::new("orcpt");
    let (postfix, gate, state) = (
        dir.path("mail.log"),
        dir.path("gate.log"),
        dir.path("state"),
    );
    std::fs::create_dir(&state).expect("state dir");
    // Postfix's lines read before the gate's: the recipients exist before their ORCPTs come.
    append(&postfix, &FIXED_UP.postfix_lines());
    append(&gate, &FIXED_UP.gate_lines());
    let s = start(&postfix, &gate, &state);
    assert_eq!(FIXED_UP.track(&s), FIXED_UP.answer());

    // The gate's lines read first: Postfix's later lines get the declared ORCPTs.
    append(&gate, &DECLARED_FIRST.gate_lines());
    eventually("the second accept", || {
        DECLARED_FIRST.track(&s).starts_with("+OK+").then_some(())
    });
    append(&postfix, &DECLARED_FIRST.postfix_lines());
    let answer = eventually("the second message's deliveries", || {
        let a = DECLARED_FIRST.track(&s);
        (a.matches("Action: relayed").count() == 2).then_some(a)
    });
    assert_eq!(answer, DECLARED_FIRST.answer());

    let (status, stderr) = s.stop("TERM");
    assert!(status.success(), "{stderr}");
    let counters = stderr
        .lines()
        .find(|l| l.starts_with("mtqpd: ingest: lines"))
        .expect("counters");
    assert!(counters.contains(" rejected 0 "), "{counters}");

    // Without the logs, only the state directory can give the answers back.
    std::fs::remove_file(&postfix).expect("remove log");
    std::fs::remove_file(&gate).expect("remove log");
    let s = start(&postfix, &gate, &state);
    assert_eq!(FIXED_UP.track(&s), FIXED_UP.answer());
    assert_eq!(DECLARED_FIRST.track(&s), DECLARED_FIRST.answer());

    // The declarations came back too: a later line without an ORCPT of its own updates the
    // recipient the ORCPT was given to, rather than adding one without it.
    append(
        &gate,
        &format!(
            "mtqp: event=rcpt time={} envid={} mtrk={} rcpt=user+2Bx@dest.example action=delivered status=2.0.0\n",
            rfc3339(*BASE + 10),
            DECLARED_FIRST.envid,
            mtrk(DECLARED_FIRST.secret)
        ),
    );
    let answer = eventually("the later line", || {
        let a = DECLARED_FIRST.track(&s);
        a.contains("Action: delivered").then_some(a)
    });
    assert!(
        answer.contains(
            "\r\n\r\nOriginal-Recipient: rfc822; user+x@dest.example\r\n\
             Final-Recipient: rfc822; user+x@dest.example\r\nAction: delivered\r\n"
        ),
        "{answer}"
    );
    assert_eq!(answer.matches("Final-Recipient:").count(), 2, "{answer}");
}
