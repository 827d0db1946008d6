//! Black-box tests of the log-ingest side: the real binary follows native logs the way `tail -F`
//! does (docs/ARCHITECTURE.md, docs/mta-logs.md section 4), and what it read shows up in TRACK
//! answers and in the ingest counters printed at shutdown.
//!
//! Every wait is bounded by the harness deadline; nothing asserts on timing. Where a test must
//! know that the ingest thread has looked at a file since some write, it writes a fresh message
//! to a second log and waits until that message is served (twice, so that one whole pass of the
//! ingest loop over every file lies between the write and the check).

mod common;
use common::*;

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, LazyLock};
use std::time::{Duration, Instant};

use mtqpd::protocol::response::Response;

/// Arrival of every test message, from the clock the test runs under: an hour ago, so long
/// past a `timeout=1` and well inside the default retention.
static BASE: LazyLock<i64> = LazyLock::new(|| unix_now() - 3600);
/// The arrival and the next three seconds, as native lines write them.
static T0: LazyLock<String> = LazyLock::new(|| rfc3339(*BASE));
static T1: LazyLock<String> = LazyLock::new(|| rfc3339(*BASE + 1));
static T2: LazyLock<String> = LazyLock::new(|| rfc3339(*BASE + 2));
static T3: LazyLock<String> = LazyLock::new(|| rfc3339(*BASE + 3));

/// Starts a server following `logs` (native format) and waits until it caught up once.
fn start(logs: &[&Path]) -> Server {
    let mut args: Vec<String> = ["--hostname", "hub.example", "--threads", "1"]
        .map(String::from)
        .to_vec();
    for log in logs {
        args.push("--log".into());
        args.push(format!("native:{}", log.display()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start_caught_up(&args)
}

/// Appends raw bytes to a log, as a writer with its own O_APPEND descriptor would.
fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log");
    f.write_all(bytes).expect("append log");
}

/// Counts the lines a test writes, to compare with the server's counters.
#[derive(Default)]
struct Written {
    lines: u64,
}

impl Written {
    fn append(&mut self, path: &Path, text: &str) {
        self.lines += text.matches('\n').count() as u64;
        append(path, text);
    }
}

/// A native rcpt line. `reference` is `queue=…`, `msgid=…` or `envid=…`.
fn rcpt_line(time: &str, reference: &str, rcpt: &str, action: &str, status: &str) -> String {
    format!(
        "mtqp: event=rcpt time={time} {reference} orcpt=rfc822;{rcpt} rcpt={rcpt} \
         action={action} status={status}\n"
    )
}

/// One test message: its envid, secret and queue id all derive from a tag.
struct Msg {
    tag: String,
    envid: String,
    secret: String,
}

impl Msg {
    fn new(tag: &str) -> Msg {
        Msg {
            tag: tag.to_string(),
            envid: format!("{tag}@sender.example"),
            secret: format!("secret-of-{tag}"),
        }
    }

    fn queue(&self) -> String {
        format!("queue=Q{}", self.tag)
    }

    /// The accept line, naming the queue id.
    fn accept(&self) -> String {
        accept_line(&T0, &self.envid, &self.secret, &self.queue())
    }

    /// The usual recipient of this message.
    fn rcpt(&self) -> String {
        format!("to-{}@dest.example", self.tag)
    }

    /// A rcpt line for the usual recipient, by queue id.
    fn update(&self, time: &str, action: &str, status: &str) -> String {
        rcpt_line(time, &self.queue(), &self.rcpt(), action, status)
    }

    /// Accept plus a delivered recipient: two lines.
    fn lines(&self) -> String {
        format!(
            "{}{}",
            self.accept(),
            self.update(&T1, "delivered", "2.0.0")
        )
    }
}

/// One TRACK on a fresh connection.
fn track(s: &Server, envid: &str, secret: &str) -> Response {
    let mut c = s.client();
    c.send(format!("TRACK {envid} {}\r\n", secret_b64(secret)).as_bytes());
    c.response()
}

fn show(r: &Response) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&r.status),
        String::from_utf8_lossy(&r.body)
    )
}

/// Waits until TRACK answers `+OK+` with a body containing every string of `want`; returns the
/// body. On timeout, fails with the last answer seen.
fn wait_body(s: &Server, envid: &str, secret: &str, want: &[&str]) -> String {
    let start = Instant::now();
    loop {
        let r = track(s, envid, secret);
        if r.status.starts_with(b"+OK+") {
            let body = String::from_utf8(r.body.clone()).expect("a 7-bit body");
            if want.iter().all(|w| body.contains(w)) {
                return body;
            }
        }
        assert!(
            start.elapsed() < DEADLINE,
            "TRACK {envid} never showed {want:?}; last answer:\n{}",
            show(&r)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the message is served with its usual recipient delivered.
fn wait_delivered(s: &Server, m: &Msg) -> String {
    let rcpt = format!(
        "Final-Recipient: rfc822; {}\r\nAction: delivered\r\n",
        m.rcpt()
    );
    wait_body(s, &m.envid, &m.secret, &[&rcpt, "Status: 2.0.0\r\n"])
}

fn assert_noinfo(s: &Server, envid: &str, secret: &str) {
    let r = track(s, envid, secret);
    assert!(
        r.status.starts_with(b"-ERR/noinfo"),
        "TRACK {envid} should say nothing, got:\n{}",
        show(&r)
    );
}

/// Proves that the ingest loop made at least one whole pass over every log since this call
/// began: writes a fresh message to `tick_log` and waits for it, twice; the lines go into
/// `written`.
fn sync_ingest(s: &Server, tick_log: &Path, written: &mut Written) {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    for _ in 0..2 {
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let m = Msg::new(&format!("tick{n}-{}", std::process::id()));
        written.append(tick_log, &m.lines());
        wait_delivered(s, &m);
    }
}

/// The counters of the `mtqpd: ingest: lines N applied N …; records N` shutdown line.
fn counters(stderr: &str) -> HashMap<String, u64> {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("mtqpd: ingest: lines "))
        .unwrap_or_else(|| panic!("no ingest counters on stderr:\n{stderr}"));
    let tokens: Vec<&str> = line["mtqpd: ingest: ".len()..]
        .split([' ', ';'])
        .filter(|t| !t.is_empty())
        .collect();
    assert_eq!(tokens.len() % 2, 0, "odd counter line: {line}");
    tokens
        .chunks(2)
        .map(|kv| {
            let n = kv[1]
                .parse()
                .unwrap_or_else(|_| panic!("counter {} in: {line}", kv[0]));
            (kv[0].to_string(), n)
        })
        .collect()
}

/// Stops the server with SIGTERM and returns its ingest counters and stderr.
fn stop(s: Server) -> (HashMap<String, u64>, String) {
    let (status, stderr) = s.stop("TERM");
    assert!(status.success(), "exit {status:?}; stderr:\n{stderr}");
    (counters(&stderr), stderr)
}

fn assert_counters(got: &HashMap<String, u64>, want: &[(&str, u64)], stderr: &str) {
    for (name, n) in want {
        assert_eq!(
            got.get(*name),
            Some(n),
            "counter '{name}' (all: {got:?}); stderr:\n{stderr}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Live ingest

fn live_ingest(name: &str, create_empty: bool) {
    let dir = TempDir::new(name);
    let log = dir.path("mail.log");
    if create_empty {
        fs::write(&log, b"").expect("create empty log");
    }
    let s = start(&[&log]);
    let m = Msg::new("live");
    assert_noinfo(&s, &m.envid, &m.secret);

    append(
        &log,
        &format!(
            "{}{}",
            m.accept(),
            m.update(&T1, "delayed", "4.4.1+20(No+20answer+20from+20host)")
        ),
    );
    let body = wait_body(
        &s,
        &m.envid,
        &m.secret,
        &[
            "Action: delayed\r\n",
            "Status: 4.4.1 (No answer from host)\r\n",
        ],
    );
    for want in [
        "Original-Envelope-Id: live@sender.example\r\n",
        "Reporting-MTA: dns; hub.example\r\n",
        &format!("Arrival-Date: {}\r\n", rfc5322(*BASE)),
        "Original-Recipient: rfc822; to-live@dest.example\r\n",
        "Final-Recipient: rfc822; to-live@dest.example\r\n",
        "Will-Retry-Until: ",
    ] {
        assert!(body.contains(want), "no {want:?} in:\n{body}");
    }
    // Brackets around the envid name the same message; a wrong secret learns nothing.
    let r = track(&s, &format!("<{}>", m.envid), &m.secret);
    assert_eq!(r.body, body.as_bytes(), "{}", show(&r));
    assert_noinfo(&s, &m.envid, "not-the-secret");

    // The recipient's state moves on: delayed, then delivered.
    append(&log, &m.update(&T2, "delivered", "2.0.0"));
    let body = wait_delivered(&s, &m);
    assert!(!body.contains("delayed"), "old state kept:\n{body}");
    assert!(
        !body.contains("Will-Retry-Until"),
        "old state kept:\n{body}"
    );
    assert_eq!(body.matches("Final-Recipient:").count(), 1, "{body}");

    let (c, err) = stop(s);
    assert_counters(
        &c,
        &[
            ("lines", 3),
            ("applied", 3),
            ("rejected", 0),
            ("ignored", 0),
            ("too-long", 0),
            ("rotations", 0),
            ("truncations", 0),
            ("read-errors", 0),
            ("records", 1),
        ],
        &err,
    );
}

#[test]
fn live_ingest_from_an_empty_log() {
    live_ingest("live-empty", true);
}

#[test]
fn live_ingest_from_a_missing_log() {
    live_ingest("live-missing", false);
}

// ---------------------------------------------------------------------------------------------
// 2. A last line without its newline

#[test]
fn unterminated_last_line_waits_for_its_newline() {
    let dir = TempDir::new("partial");
    let log = dir.path("mail.log");
    let tick = dir.path("tick.log");
    let mut w = Written::default();
    let s = start(&[&log, &tick]);

    // The first half is a valid accept line by itself: a follower that handed out an
    // unterminated line would serve it at once (and without its queue id).
    let m = Msg::new("torn");
    let accept = m.accept();
    let cut = accept.find(" queue=").expect("queue key");
    append(&log, &accept[..cut]);
    sync_ingest(&s, &tick, &mut w);
    assert_noinfo(&s, &m.envid, &m.secret);

    // The rest of the line arrives, then a recipient that only the queue id (in the second
    // half) ties to the message.
    w.append(
        &log,
        &format!("{}{}", &accept[cut..], m.update(&T1, "delivered", "2.0.0")),
    );
    let body = wait_delivered(&s, &m);
    assert_eq!(body.matches("Final-Recipient:").count(), 1, "{body}");

    let (c, err) = stop(s);
    assert_counters(
        &c,
        &[
            ("lines", w.lines),
            ("applied", w.lines),
            ("rejected", 0),
            ("ignored", 0),
            ("too-long", 0),
        ],
        &err,
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Rename rotation

/// Lines of message 1, which has two recipients: one delivered at once, one delayed first.
fn two_recipient_message(m: &Msg) -> String {
    format!(
        "{}{}{}",
        m.accept(),
        rcpt_line(&T1, &m.queue(), "first@dest.example", "delivered", "2.0.0"),
        rcpt_line(
            &T1,
            &m.queue(),
            "second@dest.example",
            "delayed",
            "4.4.1+20(timeout)"
        ),
    )
}

fn assert_two_recipients_once(body: &str) {
    for r in ["first@dest.example", "second@dest.example"] {
        assert_eq!(
            body.matches(&format!("Final-Recipient: rfc822; {r}\r\n"))
                .count(),
            1,
            "{r} not exactly once:\n{body}"
        );
    }
    assert_eq!(body.matches("Final-Recipient:").count(), 2, "{body}");
}

#[test]
fn rename_rotation_loses_and_doubles_nothing() {
    let dir = TempDir::new("rename");
    let log = dir.path("mail.log");
    let rotated = dir.path("mail.log.1");
    let mut w = Written::default();
    let msgs: Vec<Msg> = (1..=9).map(|i| Msg::new(&format!("rot{i}"))).collect();

    // Messages 1..4 are there before the server starts.
    w.append(&log, &two_recipient_message(&msgs[0]));
    for m in &msgs[1..4] {
        w.append(&log, &m.lines());
    }
    let s = start(&[&log]);
    for m in &msgs[1..4] {
        wait_delivered(&s, m);
    }
    let body = wait_body(
        &s,
        &msgs[0].envid,
        &msgs[0].secret,
        &["Action: delayed\r\n"],
    );
    assert_two_recipients_once(&body);

    // Rotate by rename; the writer has not reopened yet and appends to the renamed file.
    fs::rename(&log, &rotated).expect("rename");
    for m in &msgs[4..6] {
        w.append(&rotated, &m.lines());
    }
    // Then it reopens: a new mail.log with messages 7..9 and the second recipient's delivery.
    for m in &msgs[6..9] {
        w.append(&log, &m.lines());
    }
    w.append(
        &log,
        &rcpt_line(
            &T2,
            &msgs[0].queue(),
            "second@dest.example",
            "delivered",
            "2.0.0",
        ),
    );

    for m in &msgs[1..9] {
        wait_delivered(&s, m);
    }
    let body = wait_body(
        &s,
        &msgs[0].envid,
        &msgs[0].secret,
        &["Final-Recipient: rfc822; second@dest.example\r\nAction: delivered\r\n"],
    );
    assert_two_recipients_once(&body);
    assert!(!body.contains("delayed"), "{body}");

    let (c, err) = stop(s);
    assert_counters(
        &c,
        &[
            ("lines", w.lines),
            ("applied", w.lines),
            ("rejected", 0),
            ("ignored", 0),
            ("rotations", 1),
            ("truncations", 0),
            ("read-errors", 0),
            ("records", 9),
        ],
        &err,
    );
}

/// logrotate `create`: rename, an empty new file at once, the writer still on the old file for
/// a while, then writing to the new one.
#[test]
fn rename_rotation_with_create_waits_for_the_writer() {
    let dir = TempDir::new("rename-create");
    let log = dir.path("mail.log");
    let rotated = dir.path("mail.log.1");
    let tick = dir.path("tick.log");
    let mut w = Written::default();
    let msgs: Vec<Msg> = (1..=6).map(|i| Msg::new(&format!("cre{i}"))).collect();

    let mut writer = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .expect("open log");
    let s = start(&[&log, &tick]);
    for m in &msgs[0..2] {
        writer.write_all(m.lines().as_bytes()).expect("write");
        w.lines += 2;
    }
    for m in &msgs[0..2] {
        wait_delivered(&s, m);
    }

    fs::rename(&log, &rotated).expect("rename");
    fs::write(&log, b"").expect("create");
    sync_ingest(&s, &tick, &mut w);
    // Still the old descriptor: these lines land in mail.log.1.
    for m in &msgs[2..4] {
        writer.write_all(m.lines().as_bytes()).expect("write");
        w.lines += 2;
    }
    for m in &msgs[2..4] {
        wait_delivered(&s, m);
    }
    drop(writer);
    for m in &msgs[4..6] {
        w.append(&log, &m.lines());
    }
    for m in &msgs {
        wait_delivered(&s, m);
    }

    let (c, err) = stop(s);
    assert_counters(
        &c,
        &[
            ("lines", w.lines),
            ("applied", w.lines),
            ("rotations", 1),
            ("truncations", 0),
            ("read-errors", 0),
        ],
        &err,
    );
}

/// `strace` attached to every thread of the server: each `statx` waits `delay_us` before it runs,
/// and every `pread64` and `statx` is reported, line by line, on a channel. Detached on drop.
struct Tracer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Tracer {
    /// None when strace is missing or cannot attach (no ptrace here).
    fn attach(pid: u32, delay_us: u32) -> Option<Tracer> {
        if !strace_usable() {
            return None;
        }
        let mut child = Command::new("strace")
            .args(["-f", "-qq", "-e", "trace=pread64,statx", "-e"])
            .arg(format!("inject=statx:delay_enter={delay_us}"))
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        let pipe = child.stderr.take().expect("strace stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut tracer = Tracer { child, lines };
        // Attached once the ingest thread's polling shows up.
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            match tracer.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(l) if l.contains("pread64(") || l.contains("statx(") => return Some(tracer),
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        tracer.detach();
        None
    }

    /// Waits for the next `pread64(…) = 0`: the ingest thread just met the end of a file and
    /// is about to look at the path again.
    fn next_end_of_file(&self) {
        while self.lines.try_recv().is_ok() {}
        let start = Instant::now();
        loop {
            let left = DEADLINE.saturating_sub(start.elapsed());
            let line = self
                .lines
                .recv_timeout(left)
                .expect("strace saw no end of file");
            if line.contains("pread64(") && line.trim_end().ends_with("= 0") {
                return;
            }
        }
    }

    fn detach(&mut self) {
        // SIGINT makes strace detach and let the tracees run on.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < DEADLINE {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.detach();
        }
    }
}

/// The writer's last lines to the renamed file land after the follower met its end, and the
/// new file appears before the follower looks at the path again: those lines must still be
/// read before the switch (nobody else will ever read them). The window is microseconds wide
/// in real life; strace widens it to 300 ms by delaying every `statx`, and tells us when the
/// ingest thread has just met the end of the file. Skipped when strace cannot attach.
#[test]
fn rename_rotation_reads_what_the_old_file_got_just_before_the_switch() {
    let dir = TempDir::new("rename-race");
    let log = dir.path("mail.log");
    let mut w = Written::default();
    let first = Msg::new("race0");
    w.append(&log, &first.lines());
    let s = start(&[&log]);
    wait_delivered(&s, &first);
    let Some(mut tracer) = Tracer::attach(s.pid(), 300_000) else {
        // CI installs strace (.ci/run), so there a missing tracer is a failure, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "strace is missing or cannot attach under CI"
        );
        eprintln!("skipped: strace is missing or cannot attach");
        return;
    };
    let rounds = 3;
    for i in 1..=rounds {
        let late = Msg::new(&format!("late{i}"));
        let new = Msg::new(&format!("new{i}"));
        tracer.next_end_of_file();
        // Now, while the ingest thread waits in statx: the writer's last lines go to the
        // renamed file, then it reopens and writes to a new mail.log.
        fs::rename(&log, dir.path(&format!("mail.log.{i}"))).expect("rename");
        w.append(&dir.path(&format!("mail.log.{i}")), &late.lines());
        w.append(&log, &new.lines());
        wait_delivered(&s, &new);
        // Lines read in the same pass are published together: once the new file's message is
        // served, the old file has been let go of, and its last message must be there.
        let r = track(&s, &late.envid, &late.secret);
        assert!(
            r.status.starts_with(b"+OK+"),
            "round {i}: the line written to mail.log.{i} just before mail.log was recreated \
             was never read:\n{}",
            show(&r)
        );
    }
    tracer.detach();
    let (c, err) = stop(s);
    assert_counters(
        &c,
        &[
            ("lines", w.lines),
            ("applied", w.lines),
            ("rotations", rounds),
            ("truncations", 0),
        ],
        &err,
    );
}

// ---------------------------------------------------------------------------------------------
// 4. copytruncate

/// What logrotate `copytruncate` does: copy, then truncate the original in place.
fn copytruncate(log: &Path, copy: &Path) {
    fs::copy(log, copy).expect("copy");
    let f = OpenOptions::new().write(true).open(log).expect("open");
    f.set_len(0).expect("truncate");
}

#[test]
fn copytruncate_restarts_at_zero() {
    let dir = TempDir::new("copytruncate");
    let log = dir.path("mail.log");
    let mut w = Written::default();
    let msgs: Vec<Msg> = (1..=8).map(|i| Msg::new(&format!("ct{i}"))).collect();
    for m in &msgs[0..6] {
        w.append(&log, &m.lines());
    }
    let s = start(&[&log]);
    for m in &msgs[0..6] {
        wait_delivered(&s, m);
    }
    let old_len = fs::metadata(&log).expect("stat").len();

    copytruncate(&log, &dir.path("mail.log.1"));
    for m in &msgs[6..8] {
        w.append(&log, &m.lines());
    }
    assert!(fs::metadata(&log).expect("stat").len() < old_len);
    for m in &msgs {
        wait_delivered(&s, m);
    }

    let (c, err) = stop(s);
    assert_counters(
        &c,
        &[
            ("lines", w.lines),
            ("applied", w.lines),
            ("rejected", 0),
            ("ignored", 0),
            ("rotations", 0),
            ("read-errors", 0),
            ("records", 8),
        ],
        &err,
    );
    assert!(c["truncations"] >= 1, "no truncation seen: {c:?}\n{err}");
}

#[test]
fn copytruncate_regrown_past_the_old_offset() {
    let dir = TempDir::new("copytruncate-regrow");
    let log = dir.path("mail.log");
    let mut w = Written::default();
    let msgs: Vec<Msg> = (1..=9).map(|i| Msg::new(&format!("rg{i}"))).collect();
    for m in &msgs[0..3] {
        w.append(&log, &m.lines());
    }
    let s = start(&[&log]);
    for m in &msgs[0..3] {
        wait_delivered(&s, m);
    }
    let old_len = fs::metadata(&log).expect("stat").len();

    // Truncate and, right away, write more than the file held, in one write.
    let regrown: String = msgs[3..9].iter().map(Msg::lines).collect();
    fs::copy(&log, dir.path("mail.log.1")).expect("copy");
    let f = OpenOptions::new().write(true).open(&log).expect("open");
    f.set_len(0).expect("truncate");
    w.append(&log, &regrown);
    drop(f);
    assert!(fs::metadata(&log).expect("stat").len() > old_len);

    for m in &msgs {
        wait_delivered(&s, m);
    }
    let (c, err) = stop(s);
    assert_counters(
        &c,
        &[
            ("lines", w.lines),
            ("applied", w.lines),
            ("rejected", 0),
            ("ignored", 0),
            ("rotations", 0),
            ("read-errors", 0),
            ("records", 9),
        ],
        &err,
    );
    assert!(c["truncations"] >= 1, "no truncation seen: {c:?}\n{err}");
}

// ---------------------------------------------------------------------------------------------
// 5. Delete and recreate

#[test]
fn delete_and_recreate() {
    let dir = TempDir::new("recreate");
    let log = dir.path("mail.log");
    let tick = dir.path("tick.log");
    let mut w = Written::default();
    let msgs: Vec<Msg> = (1..=6).map(|i| Msg::new(&format!("rc{i}"))).collect();
    for m in &msgs[0..3] {
        w.append(&log, &m.lines());
    }
    let s = start(&[&log, &tick]);
    for m in &msgs[0..3] {
        wait_delivered(&s, m);
    }

    fs::remove_file(&log).expect("rm");
    // Let the server look at the missing path at least once.
    sync_ingest(&s, &tick, &mut w);
    for m in &msgs[0..3] {
        wait_delivered(&s, m);
    }
    for m in &msgs[3..6] {
        w.append(&log, &m.lines());
    }
    for m in &msgs {
        wait_delivered(&s, m);
    }

    let (c, err) = stop(s);
    assert_counters(
        &c,
        &[
            ("lines", w.lines),
            ("applied", w.lines),
            ("rotations", 1),
            ("truncations", 0),
            ("read-errors", 0),
            // six messages and the two of sync_ingest
            ("records", 6 + 2),
        ],
        &err,
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Out-of-order arrival

#[test]
fn recipient_before_its_accept_is_applied_when_the_accept_arrives() {
    let dir = TempDir::new("order");
    let log = dir.path("mail.log");
    let mut w = Written::default();
    let s = start(&[&log]);

    let by_queue = Msg::new("early-q");
    let by_msgid = Msg::new("early-m");
    let other = Msg::new("other");
    w.append(&log, &by_queue.update(&T1, "delivered", "2.0.0"));
    w.append(
        &log,
        &rcpt_line(
            &T1,
            "msgid=early-m@sender.example",
            &by_msgid.rcpt(),
            "delivered",
            "2.0.0",
        ),
    );
    // Read past both orphans: a later, complete message is served.
    w.append(&log, &other.lines());
    wait_delivered(&s, &other);
    assert_noinfo(&s, &by_queue.envid, &by_queue.secret);
    assert_noinfo(&s, &by_msgid.envid, &by_msgid.secret);

    w.append(&log, &by_queue.accept());
    w.append(
        &log,
        &accept_line(
            &T0,
            &by_msgid.envid,
            &by_msgid.secret,
            "msgid=early-m@sender.example",
        ),
    );
    let body = wait_delivered(&s, &by_queue);
    assert_eq!(body.matches("Final-Recipient:").count(), 1, "{body}");
    let body = wait_delivered(&s, &by_msgid);
    assert_eq!(body.matches("Final-Recipient:").count(), 1, "{body}");

    // An older state read after a newer one does not move the recipient back.
    w.append(&log, &by_queue.update(&T0, "delayed", "4.0.0"));
    w.append(&log, &other.update(&T3, "failed", "5.1.1"));
    wait_body(&s, &other.envid, &other.secret, &["Action: failed\r\n"]);
    let body = wait_delivered(&s, &by_queue);
    assert!(!body.contains("delayed"), "{body}");

    let (c, err) = stop(s);
    assert_counters(
        &c,
        &[
            ("lines", w.lines),
            ("applied", w.lines),
            ("rejected", 0),
            ("records", 3),
        ],
        &err,
    );
}

/// A record carries its message as its answer; one whose answer the renderer changed (a
/// control octet in a diagnostic) holds the message whole beside it. Both answer alike, and the
/// shutdown counters say how many of each there are.
#[test]
fn records_say_at_shutdown_how_they_carry_their_messages() {
    let dir = TempDir::new("carried");
    let log = dir.path("mail.log");
    let (plain, odd) = (Msg::new("plain"), Msg::new("odd"));
    let mut w = Written::default();
    w.append(&log, &plain.lines());
    w.append(&log, &odd.accept());
    w.append(
        &log,
        &format!(
            "mtqp: event=rcpt time={} {} rcpt={} action=failed status=5.0.0 diag=smtp;550+01bad\n",
            *T1,
            odd.queue(),
            odd.rcpt()
        ),
    );
    let s = start(&[&log]);
    wait_delivered(&s, &plain);
    wait_body(&s, &odd.envid, &odd.secret, &["Action: failed\r\n"]);
    let (c, err) = stop(s);
    assert_counters(
        &c,
        &[
            ("lines", w.lines),
            ("records", 2),
            ("read-back", 1),
            ("stored-whole", 1),
        ],
        &err,
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Malformed lines

#[test]
fn malformed_lines_are_counted_and_skipped() {
    let dir = TempDir::new("malformed");
    let log = dir.path("mail.log");
    let before = Msg::new("before");
    let after = Msg::new("after");
    append(&log, &before.lines());
    let s = start(&[&log]);
    wait_delivered(&s, &before);

    let m = mtrk("x");
    let t0 = T0.as_str();
    // Lines that hold `mtqp:` but are not valid native lines.
    let mut rejected: Vec<Vec<u8>> = [
        // truncated
        "mtqp: event=acc".to_string(),
        format!("mtqp: event=accept time={t0} envi"),
        format!("mtqp: event=accept time={} envid=t1@x mtrk={m}", &t0[..15]),
        format!("mtqp: event=accept time={t0} envid=t2@x mtrk={}", &m[..10]),
        format!("mtqp: event=rcpt time={t0} queue=Qx rcpt=a@x action=deliv"),
        "mtqp:".to_string(),
        // bad time
        format!(
            "Nov 24 00:00:00 hub app[1]: mtqp: event=accept time=yesterday envid=b1@x mtrk={m}"
        ),
        format!("mtqp: event=accept time=2026-02-30T00:00:00Z envid=b2@x mtrk={m}"),
        // bad mtrk
        format!("mtqp: event=accept time={t0} envid=b3@x mtrk=!!not-base64!!"),
        format!("mtqp: event=accept time={t0} envid=b4@x mtrk=YWJj"),
        // bad xtext
        format!("mtqp: event=rcpt time={t0} queue=Qx rcpt=a+zz@x action=delivered status=2.0.0"),
        format!("mtqp: event=rcpt time={t0} queue=Qx rcpt=a@x action=delivered status=2.0.0+2"),
        format!("mtqp: event=accept time={t0} envid=b+5@x mtrk={m}"),
        // missing keys
        format!("mtqp: event=accept time={t0} mtrk={m}"),
        format!("mtqp: event=accept time={t0} envid=b6@x"),
        format!("mtqp: event=accept envid=b7@x mtrk={m}"),
        format!("mtqp: time={t0} envid=b8@x mtrk={m}"),
        format!("mtqp: event=rcpt time={t0} rcpt=a@x action=delivered status=2.0.0"),
        format!("mtqp: event=rcpt time={t0} queue=Qx action=delivered status=2.0.0"),
        format!("mtqp: event=rcpt time={t0} queue=Qx rcpt=a@x status=2.0.0"),
        format!("mtqp: event=rcpt time={t0} queue=Qx rcpt=a@x action=delivered"),
        // other bad values
        format!("mtqp: event=rcpt time={t0} queue=Qx rcpt=a@x action=delivered status=9.9.9"),
        format!("mtqp: event=accept time={t0} envid=b9@x mtrk={m} timeout=soon"),
        format!("mtqp: event=accept event=accept time={t0} envid=b10@x mtrk={m}"),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect();
    // Invalid UTF-8, NUL and other control bytes around `mtqp:`.
    rejected.push(
        format!("mtqp: event=rcpt time={t0} queue=Qx rcpt=\u{1}@x action=delivered status=2.0.0")
            .into_bytes(),
    );
    let mut raw = format!("mtqp: event=rcpt time={t0} queue=Qx rcpt=").into_bytes();
    raw.extend_from_slice(b"\xff\xfe@x action=delivered status=2.0.0");
    rejected.push(raw);
    let mut raw = format!("mtqp: event=accept time={t0} envid=").into_bytes();
    raw.extend_from_slice(b"\xc3\x28@x mtrk=");
    raw.extend_from_slice(m.as_bytes());
    rejected.push(raw);
    rejected.push(format!("mtqp: event=accept\0 time={t0}").into_bytes());

    // Lines that are not native lines: binary garbage, invalid UTF-8, empty, foreign log lines, a
    // line of exactly the 64 KiB limit, and `mtqp:` inside a line.
    let mut ignored: Vec<Vec<u8>> = Vec::new();
    let mut rng = fastrand::Rng::with_seed(0x2545_f491_4f6c_dd1d);
    while ignored.len() < 20 {
        let len = 1 + usize::from(rng.u8(..)) * 4;
        let mut line: Vec<u8> = (0..len)
            .map(|_| rng.u8(..))
            .filter(|&b| b != b'\n')
            .collect();
        line.extend_from_slice(b"\x00\xff");
        if memchr_find(&line, b"mtqp:").is_none() {
            ignored.push(line);
        }
    }
    ignored.push(b"\xc3\x28\xa0\xa1 \xf0\x28\x8c\xbc not UTF-8".to_vec());
    // `mtqp:` not at the start of the text: not a native line, never looked for inside one.
    ignored.push(b"\xff\xfe\x00 mtqp: \x00\x01 event=accept".to_vec());
    ignored.push(Vec::new());
    ignored.push(b"\r".to_vec());
    ignored.push(b"Nov 24 00:00:00 hub postfix/qmgr[1]: 4F2A1B: removed".to_vec());
    ignored.push(vec![b'x'; 64 * 1024]);

    // Lines over the 64 KiB limit: one of 1 MB (with `mtqp:`), one a byte over.
    let mut huge = format!("mtqp: event=accept time={t0} envid=huge@x mtrk={m} diag=").into_bytes();
    huge.resize(1024 * 1024, b'A');
    let too_long = [huge, vec![b'y'; 64 * 1024 + 1]];

    let mut corpus = Vec::new();
    for line in rejected.iter().chain(&ignored).chain(&too_long) {
        corpus.extend_from_slice(line);
        corpus.push(b'\n');
    }
    append_bytes(&log, &corpus);
    append(&log, &after.lines());

    wait_delivered(&s, &after);
    wait_delivered(&s, &before);
    assert_noinfo(&s, "huge@x", "x");
    let mut c = s.client();
    assert_eq!(c.roundtrip("COMMENT still there?"), b"+OK\r\n");

    let (c, err) = stop(s);
    let (rej, ign, long) = (
        rejected.len() as u64,
        ignored.len() as u64,
        too_long.len() as u64,
    );
    assert_counters(
        &c,
        &[
            ("lines", 4 + rej + ign),
            ("applied", 4),
            ("rejected", rej),
            ("ignored", ign),
            ("too-long", long),
            ("rotations", 0),
            ("truncations", 0),
            ("read-errors", 0),
            ("records", 2),
        ],
        &err,
    );
    // Rejections are logged, at most once per reason.
    let mut per_reason: HashMap<&str, usize> = HashMap::new();
    for l in err.lines().filter(|l| l.contains("rejected line: ")) {
        let reason = l.split("rejected line: ").nth(1).unwrap_or("");
        let reason = reason.split(" (").next().unwrap_or(reason);
        *per_reason.entry(reason).or_default() += 1;
    }
    assert!(
        !per_reason.is_empty(),
        "no 'rejected line:' on stderr:\n{err}"
    );
    for (reason, n) in &per_reason {
        assert_eq!(*n, 1, "'{reason}' logged {n} times:\n{err}");
    }
    assert!(
        per_reason.keys().any(|r| r.contains("64 KiB")),
        "too-long lines not logged:\n{err}"
    );
    // The shutdown summary gives every reason's total: they add up to the counters.
    let summary = err
        .lines()
        .find_map(|l| l.strip_prefix("mtqpd: ingest: rejected lines by reason: "))
        .unwrap_or_else(|| panic!("no rejection summary on stderr:\n{err}"));
    let totals: HashMap<&str, u64> = summary
        .split("; ")
        .map(|kv| {
            let (reason, n) = kv.rsplit_once(": ").expect("reason: count");
            (reason, n.parse().expect("a count"))
        })
        .collect();
    let too_long_total = totals
        .iter()
        .filter(|(r, _)| r.contains("64 KiB"))
        .map(|(_, n)| n)
        .sum::<u64>();
    assert_eq!(too_long_total, long, "too-long lines in: {summary}");
    let rejected_total = totals
        .iter()
        .filter(|(r, _)| !r.contains("64 KiB"))
        .map(|(_, n)| n)
        .sum::<u64>();
    assert_eq!(rejected_total, rej, "rejected lines in: {summary}");
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// 8. Expiry

#[test]
fn records_past_their_mtrk_timeout_are_never_served() {
    let dir = TempDir::new("expiry");
    let log = dir.path("mail.log");
    let mut w = Written::default();
    let s = start(&[&log]);

    // Arrived at T0 (well over a second ago) with timeout=1 and finished: gone.
    let expired = Msg::new("expired");
    // The same, but a recipient is still queued: RFC 3885 keeps it while queued.
    let queued = Msg::new("queued");
    // A timeout still running, and no timeout at all.
    let long = Msg::new("long-timeout");
    let plain = Msg::new("plain");
    w.append(
        &log,
        &accept_line(
            &T0,
            &expired.envid,
            &expired.secret,
            &format!("timeout=1 {}", expired.queue()),
        ),
    );
    w.append(&log, &expired.update(&T1, "delivered", "2.0.0"));
    w.append(
        &log,
        &accept_line(
            &T0,
            &queued.envid,
            &queued.secret,
            &format!("timeout=1 {}", queued.queue()),
        ),
    );
    w.append(&log, &queued.update(&T1, "delayed", "4.4.1"));
    w.append(
        &log,
        &accept_line(
            &T0,
            &long.envid,
            &long.secret,
            &format!("timeout=999999999 {}", long.queue()),
        ),
    );
    w.append(&log, &long.update(&T1, "delivered", "2.0.0"));
    w.append(&log, &plain.lines());

    wait_delivered(&s, &plain);
    wait_delivered(&s, &long);
    wait_body(&s, &queued.envid, &queued.secret, &["Action: delayed\r\n"]);
    assert_noinfo(&s, &expired.envid, &expired.secret);

    let (c, err) = stop(s);
    assert_counters(
        &c,
        &[("lines", w.lines), ("applied", w.lines), ("records", 3)],
        &err,
    );
}

// ---------------------------------------------------------------------------------------------
// 9. One envid, two secrets

#[test]
fn same_envid_with_two_secrets_keeps_two_records() {
    let dir = TempDir::new("same-envid");
    let log = dir.path("mail.log");
    let mut w = Written::default();
    let s = start(&[&log]);

    let envid = "shared-123@sender.example";
    let (s1, s2) = ("first-secret", "second-secret");
    w.append(&log, &accept_line(&T0, envid, s1, "queue=QONE"));
    w.append(
        &log,
        &rcpt_line(&T1, "queue=QONE", "one@dest.example", "delayed", "4.4.1"),
    );
    w.append(&log, &accept_line(&T0, envid, s2, "queue=QTWO"));
    w.append(
        &log,
        &rcpt_line(&T1, "queue=QTWO", "two@dest.example", "failed", "5.1.1"),
    );

    let first = wait_body(
        &s,
        envid,
        s1,
        &["Final-Recipient: rfc822; one@dest.example\r\n"],
    );
    assert!(first.contains("Action: delayed\r\n"), "{first}");
    assert!(!first.contains("two@dest.example"), "{first}");
    let second = wait_body(
        &s,
        envid,
        s2,
        &["Final-Recipient: rfc822; two@dest.example\r\n"],
    );
    assert!(second.contains("Action: failed\r\n"), "{second}");
    assert!(!second.contains("one@dest.example"), "{second}");

    // An update to the first message, after the second was accepted, still goes to the first.
    w.append(
        &log,
        &rcpt_line(&T2, "queue=QONE", "one@dest.example", "delivered", "2.0.0"),
    );
    let first = wait_body(&s, envid, s1, &["Action: delivered\r\n"]);
    assert!(!first.contains("two@dest.example"), "{first}");
    let second = wait_body(&s, envid, s2, &["Action: failed\r\n"]);
    assert!(!second.contains("one@dest.example"), "{second}");
    assert_noinfo(&s, envid, "third-secret");

    let (c, err) = stop(s);
    assert_counters(
        &c,
        &[("lines", w.lines), ("applied", w.lines), ("records", 2)],
        &err,
    );
}
