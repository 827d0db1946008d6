//! What the tests against real MTAs share (`tests/real_*.rs`, `tests/gate_postfix.rs`): whether
//! the MTA was set up, an SMTP session whose every reply is checked, and `mtqpd track` with the
//! blocks of its answer.
//!
//! Each real MTA is installed and started by a script under `.ci/` that `.ci/run` runs as root
//! before the tests; the script's success is announced to the tests by an environment variable.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;

use super::smtp;
use super::{eventually_or_none, secret_b64, Server};

/// Whether a real-MTA test should run: `var` is `1` (the setup script `setup` succeeded). Under
/// CI (`CI` set) a missing MTA is a failure; elsewhere the test says it was skipped.
pub fn enabled(var: &str, test: &str, setup: &str) -> bool {
    if std::env::var_os(var).is_some_and(|v| v == "1") {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but {var}=1 is not: .ci/run must run {setup} and export {var}=1"
    );
    eprintln!("{test}: skipped (set {var}=1 after running {setup} as root)");
    false
}

/// `mtqpd serve` following a real MTA's log `mta_log` (`FORMAT:PATH`, from its start) and the
/// native log `native`, answering as `hostname`.
pub fn serve(mta_log: &str, native: &Path, hostname: &str) -> Server {
    let native = format!("native:{}", native.display());
    Server::start_caught_up(&[
        "--log",
        mta_log,
        "--log",
        &native,
        "--hostname",
        hostname,
        "--log-timezone",
        "local",
        "--threads",
        "1",
    ])
}

/// `mtqpd ingest-check --log-timezone local` over `logs` (each `FORMAT:PATH`): its report.
pub fn ingest_check(logs: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtqpd"));
    cmd.args(["ingest-check", "--log-timezone", "local"]);
    for log in logs {
        cmd.args(["--log", log]);
    }
    let out = cmd.output().expect("run mtqpd ingest-check");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ingest-check failed: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

/// A string unique to this test run (nanoseconds and process id), for Message-IDs, envids and
/// secrets: an MTA's log may hold earlier runs.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{nanos}.{}", std::process::id())
}

/// The body every test message carries after its headers, as sent (a line that begins with a
/// dot, dot-stuffed) and ending the data.
const BODY: &str = "A test message of mtqpd's real-MTA tests.\r\n\
                    ..a line that begins with a dot\r\n.\r\n";
/// [`BODY`] as a local mailbox holds it: dot-unstuffed once, LF line ends.
pub const BODY_DELIVERED: &str =
    "\nA test message of mtqpd's real-MTA tests.\n.a line that begins with a dot\n";

/// An SMTP session with a real MTA (or the gate in front of one), each reply checked.
pub struct Session {
    client: smtp::Smtp,
    /// The greeting, as received.
    pub banner: String,
}

impl Session {
    /// Takes over a connected stream and reads the 220 greeting.
    pub fn connect(stream: TcpStream) -> Session {
        let mut s = Session {
            client: smtp::Smtp::over(stream),
            banner: String::new(),
        };
        s.banner = s.expect("greeting", 220);
        s
    }

    /// Connects to `addr` and reads the greeting.
    pub fn to(addr: &str) -> Session {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Session::connect(stream)
    }

    /// Reads one (possibly multi-line) reply, checks that every line is `CODE-…` or, the last,
    /// `CODE …` with one code and a CRLF, and that the code is `code`; returns the reply's text.
    pub fn expect(&mut self, what: &str, code: u16) -> String {
        let text = self.client.reply();
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            assert!(
                line.ends_with("\r\n")
                    && line.get(..3) == Some(&code.to_string())
                    && (line.get(3..4) == Some(&sep.to_string()) || *line == format!("{code}\r\n")),
                "{what}: wanted {code}, got {text:?}"
            );
        }
        text
    }

    /// Sends one command line and checks its reply's code.
    pub fn command(&mut self, line: &str, code: u16) -> String {
        self.client.send(format!("{line}\r\n").as_bytes());
        self.expect(line, code)
    }

    /// One transaction: `mail` (the whole MAIL command), the RCPT commands, then a message with
    /// this Message-ID and [`BODY`]. Returns the reply to the end of the data.
    pub fn transaction(&mut self, mail: &str, rcpts: &[String], message_id: &str) -> String {
        self.command(mail, 250);
        for rcpt in rcpts {
            self.command(rcpt, 250);
        }
        self.command("DATA", 354);
        let data =
            format!("Subject: mtqpd real-MTA test\r\nMessage-ID: <{message_id}>\r\n\r\n{BODY}");
        self.client.send(data.as_bytes());
        self.expect("end of DATA", 250)
    }

    pub fn quit(mut self) {
        self.command("QUIT", 221);
    }
}

/// The queue id in Postfix's final reply to a message's data (`250 2.0.0 Ok: queued as QID`),
/// which the gate relays.
pub fn queue_id(reply: &str) -> String {
    let qid = reply
        .strip_prefix("250 2.0.0 Ok: queued as ")
        .and_then(|r| r.strip_suffix("\r\n"))
        .unwrap_or_else(|| panic!("not Postfix's final reply: {reply:?}"));
    assert!(
        !qid.is_empty() && qid.bytes().all(|c| c.is_ascii_alphanumeric()),
        "{reply:?}"
    );
    qid.to_string()
}

/// A native line's `key=value` pairs (values as written: xtext).
pub fn native_fields(line: &str) -> HashMap<&str, &str> {
    let rest = line
        .strip_prefix("mtqp: ")
        .unwrap_or_else(|| panic!("not a native line: {line:?}"));
    rest.split(' ')
        .map(|kv| {
            kv.split_once('=')
                .unwrap_or_else(|| panic!("not key=value: {kv:?} in {line:?}"))
        })
        .collect()
}

/// The lines of the log at `path` that contain `needle`.
pub fn log_lines_with(path: &str, needle: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// What `mtqpd track` said.
pub struct Tracked {
    pub exit: Option<i32>,
    /// The tracking body as `mtqpd track` prints it: LF line ends, blocks separated by an
    /// empty line.
    pub body: String,
    pub stderr: String,
}

/// `mtqpd track --plaintext mtqp://SERVER/track/ENVID` with the secret in `MTQP_SECRET`.
pub fn track(server: SocketAddr, envid: &str, secret: &str) -> Tracked {
    let out = Command::new(env!("CARGO_BIN_EXE_mtqpd"))
        .args(["track", "--plaintext"])
        .arg(format!("mtqp://{server}/track/{envid}"))
        .env("MTQP_SECRET", secret_b64(secret))
        .output()
        .expect("run mtqpd track");
    Tracked {
        exit: out.status.code(),
        body: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The lines of the per-recipient block of a tracking body whose Final-Recipient is `rcpt`.
pub fn recipient_block<'a>(body: &'a str, rcpt: &str) -> Option<Vec<&'a str>> {
    let final_rcpt = format!("Final-Recipient: rfc822; {rcpt}");
    body.split("\n\n")
        .map(|b| b.lines().collect::<Vec<_>>())
        .find(|b| b.contains(&final_rcpt.as_str()))
}

/// Polls `mtqpd track` until it exits with `exit` and its answer shows every recipient with
/// every line `want` lists for it (one that ends in `: ` is a prefix); returns the body.
/// Fails with the last answer, `context()` (e.g. the MTA's log lines) and serve's stderr.
pub fn track_until(
    serve: &Server,
    envid: &str,
    secret: &str,
    want: &[(&str, &[&str])],
    exit: i32,
    context: impl Fn() -> String,
) -> String {
    let mut last = None;
    let found = eventually_or_none(|| {
        let t = track(serve.addr, envid, secret);
        let complete = t.exit == Some(exit)
            && want.iter().all(|(rcpt, lines)| {
                recipient_block(&t.body, rcpt).is_some_and(|b| {
                    lines.iter().all(|want| {
                        b.iter().any(|l| {
                            if want.ends_with(": ") {
                                l.starts_with(want)
                            } else {
                                l == want
                            }
                        })
                    })
                })
            });
        let body = t.body.clone();
        last = Some(t);
        complete.then_some(body)
    });
    found.unwrap_or_else(|| {
        let last = last.expect("tracked at least once");
        panic!(
            "mtqpd track {envid} never showed {want:?} (exit {exit})\nlast: exit {:?}\n{}\n{}\
             \ncontext:\n{}\nmtqpd serve stderr:\n{}",
            last.exit,
            last.body,
            last.stderr,
            context(),
            serve.stderr()
        )
    })
}
