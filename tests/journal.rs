//! The journal follower (`src/ingest/journal`): batches, cursors, resuming, restarting and
//! stopping, with journalctl played by `tests/data/journal/fake-journalctl.sh` printing the
//! recording of a real journald (`tests/data/journal/postfix-debian-ci.export`); and, when
//! `MTQPD_REAL_JOURNAL=1` (what `.ci/run` exports after `.ci/journal-setup.sh` started a real
//! systemd-journald), against that journald through the real journalctl: Postfix's lines
//! written as syslog(3) writes them arrive once each, in order, and a restart from the cursor
//! of the last batch taken gives exactly the lines logged after it.

mod common;
use common::TempDir;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver};
use mtqpd::ingest::event::Outcome;
use mtqpd::ingest::journal::{self, Journal, JournalConfig};
use mtqpd::ingest::native::NativeTags;
use mtqpd::ingest::stream::{Batch, CHANNEL_BATCHES};
use mtqpd::ingest::syslog::{parse_prefix, SyslogClock};
use mtqpd::ingest::timezone::Zone;
use mtqpd::ingest::{parser_for, LogFormat};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/journal");
/// Entries in the recording, and the lines they give (the last entry has no MESSAGE).
const ENTRIES: usize = 29;
const LINES: usize = 28;

/// A stand-in journalctl in `dir` that runs the fake in `mode` on the recording.
fn fake(dir: &TempDir, mode: &str) -> PathBuf {
    let program = dir.0.join(format!("journalctl-{mode}"));
    std::fs::write(
        &program,
        format!(
            "#!/bin/sh\nexec bash {DATA}/fake-journalctl.sh {mode} {DATA}/postfix-debian-ci.export {} \"$@\"\n",
            dir.0.join("args").display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&program)
        .status()
        .unwrap();
    program
}

/// The argument lines of each journalctl run so far.
fn runs(dir: &TempDir) -> Vec<String> {
    std::fs::read_to_string(dir.0.join("args"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn start(program: &Path, unit: Option<&str>, after: Option<&str>) -> (Journal, Receiver<Batch>) {
    start_with(program, unit, after, CHANNEL_BATCHES)
}

fn start_with(
    program: &Path,
    unit: Option<&str>,
    after: Option<&str>,
    capacity: usize,
) -> (Journal, Receiver<Batch>) {
    let (tx, rx) = bounded(capacity);
    let config = JournalConfig {
        journalctl: program.to_owned(),
        ..JournalConfig::new(unit.map(str::to_owned), after.map(str::to_owned))
    };
    (journal::spawn(config, tx).unwrap(), rx)
}

/// Takes batches until `lines` lines have come, or panics at the deadline.
fn take(rx: &Receiver<Batch>, lines: usize, within: Duration) -> Vec<Batch> {
    let deadline = Instant::now() + within;
    let mut batches = Vec::new();
    let mut got = 0;
    while got < lines {
        let left = deadline.saturating_duration_since(Instant::now());
        let batch = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("{got} of {lines} lines within {within:?}"));
        assert!(!batch.is_empty(), "no empty batch is sent");
        assert!(batch.cursor.is_some(), "every journal batch has a cursor");
        got += batch.ends.len();
        batches.push(batch);
    }
    batches
}

fn lines_of(batches: &[Batch]) -> Vec<String> {
    batches
        .iter()
        .flat_map(Batch::lines)
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}

/// The cursors of the recording, in order.
fn recorded_cursors() -> Vec<String> {
    let data = std::fs::read(format!("{DATA}/postfix-debian-ci.export")).unwrap();
    data.split(|&b| b == b'\n')
        .filter_map(|l| l.strip_prefix(b"__CURSOR="))
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect()
}

/// Every line of the recording, through the follower.
fn all_lines() -> Vec<String> {
    let dir = TempDir::new("journal-all");
    let (j, rx) = start(&fake(&dir, "follow"), None, None);
    let lines = lines_of(&take(&rx, LINES, Duration::from_secs(20)));
    j.stop();
    lines
}

#[test]
fn follows_the_recording_with_the_arguments_journalctl_needs() {
    let dir = TempDir::new("journal-follow");
    let (j, rx) = start(&fake(&dir, "follow"), Some("postfix@-.service"), None);
    let batches = take(&rx, LINES, Duration::from_secs(20));
    let cursors = recorded_cursors();
    assert_eq!(cursors.len(), ENTRIES);
    // The last batch ends at the last entry read: the one without MESSAGE, skipped.
    assert_eq!(
        batches.last().unwrap().cursor.as_deref(),
        Some(cursors[ENTRIES - 1].as_str())
    );
    let stats = j.stats();
    assert_eq!(stats.entries.load(Ordering::Relaxed), ENTRIES as u64);
    assert_eq!(stats.lines.load(Ordering::Relaxed), LINES as u64);
    assert_eq!(stats.no_message.load(Ordering::Relaxed), 1);
    assert_eq!(stats.restarts.load(Ordering::Relaxed), 0);
    j.stop();
    assert_eq!(
        runs(&dir),
        ["--follow --no-tail --no-pager --quiet --output=export \
          --output-fields=_HOSTNAME,SYSLOG_IDENTIFIER,_COMM,SYSLOG_PID,_PID,MESSAGE \
          --unit=postfix@-.service"]
    );

    // What ingest's Postfix parser makes of them: what it makes of the same lines from a file.
    let log = include_str!("data/real-logs/postfix-debian-ci.log");
    let lines = lines_of(&batches);
    let tags = NativeTags::new::<&str>(&[]);
    let mut from_journal = parser_for(LogFormat::Postfix, &Zone::utc(), &tags);
    let mut from_file = parser_for(LogFormat::Postfix, &Zone::utc(), &tags);
    let mut clock = SyslogClock::new(Zone::utc(), 0);
    for (line, want) in lines.iter().zip(log.lines()) {
        let p = parse_prefix(line.as_bytes(), &mut clock).unwrap();
        assert_eq!(p.host, b"vm", "{line}");
        let outcome = |parser: &mut Box<dyn mtqpd::ingest::event::LineParser + Send>, l: &str| {
            let mut events = 0;
            let o = parser.parse(l.as_bytes(), &mut |_| events += 1);
            (std::mem::discriminant(&o), events)
        };
        assert_eq!(
            outcome(&mut from_journal, line),
            outcome(&mut from_file, want),
            "{line}"
        );
    }
    let parsed = lines
        .iter()
        .filter(|l| {
            matches!(
                from_journal.parse(l.as_bytes(), &mut |_| {}),
                Outcome::Parsed
            )
        })
        .count();
    assert!(parsed >= 15, "{parsed} lines of events");
}

#[test]
fn a_restart_from_the_last_batch_taken_gives_every_line_once() {
    let all = all_lines();
    assert_eq!(all.len(), LINES);
    let dir = TempDir::new("journal-resume");
    let program = fake(&dir, "slow");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    // Three runs, each stopped after a few batches (whatever else was sent is dropped unread, as
    // an ingest thread stopping before applying it would), then one to the end.
    for _ in 0..3 {
        let (j, rx) = start(&program, None, cursor.as_deref());
        for batch in take(&rx, 5, Duration::from_secs(20)) {
            seen.extend(lines_of(std::slice::from_ref(&batch)));
            cursor = batch.cursor.as_deref().map(str::to_owned);
        }
        j.stop();
    }
    let (j, rx) = start(&program, None, cursor.as_deref());
    let rest = take(&rx, LINES - seen.len(), Duration::from_secs(20));
    seen.extend(lines_of(&rest));
    j.stop();
    assert_eq!(seen, all);
    let runs = runs(&dir);
    assert_eq!(runs.len(), 4);
    assert!(!runs[0].contains("--after-cursor"));
    assert!(runs[1..].iter().all(|r| r.contains(" --after-cursor=s=")));
}

#[test]
fn journalctl_ending_is_started_again_after_the_last_entry_read() {
    let dir = TempDir::new("journal-exit");
    let (j, rx) = start(&fake(&dir, "exit"), None, None);
    let lines = lines_of(&take(&rx, LINES, Duration::from_secs(20)));
    assert_eq!(lines, all_lines());
    // Started again after the last entry: it prints nothing more, and ends again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while runs(&dir).len() < 3 {
        assert!(Instant::now() < deadline, "journalctl started again");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(rx.try_recv().is_err(), "nothing is read twice");
    let last = recorded_cursors().pop().unwrap();
    let runs = runs(&dir);
    assert!(
        runs[1].ends_with(&format!("--after-cursor={last}")),
        "{}",
        runs[1]
    );
    assert!(j.stats().restarts.load(Ordering::Relaxed) >= 2);
    // Paused 1 s, then 2 s: the third start is not before 3 s (a busy loop would be).
    let stopped = Instant::now();
    j.stop();
    assert!(
        stopped.elapsed() < Duration::from_secs(2),
        "stop in a backoff"
    );
}

#[test]
fn stop_is_prompt_when_blocked_on_a_full_channel_or_a_read() {
    let dir = TempDir::new("journal-stop");
    // Capacity 1, never read: the second batch blocks the thread, and journalctl behind it.
    let (j, rx) = start_with(&fake(&dir, "slow"), None, None, 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !rx.is_full() || j.stats().entries.load(Ordering::Relaxed) < 2 {
        assert!(Instant::now() < deadline, "the channel fills");
        std::thread::sleep(Duration::from_millis(20));
    }
    let t = Instant::now();
    j.stop();
    assert!(t.elapsed() < Duration::from_secs(2), "stop while sending");

    // All read: blocked reading journalctl's output.
    let (j, rx) = start(&fake(&dir, "follow"), None, None);
    take(&rx, LINES, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    j.stop();
    assert!(t.elapsed() < Duration::from_secs(2), "stop while reading");

    // Dropping the receiver (the ingest thread gone) ends the thread too.
    let (j, rx) = start(&fake(&dir, "slow"), None, None);
    take(&rx, 1, Duration::from_secs(20));
    drop(rx);
    let t = Instant::now();
    j.stop();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "stop with the receiver gone"
    );
}

#[test]
fn a_missing_journalctl_is_a_start_up_error_and_no_busy_loop() {
    let missing = Path::new("/nonexistent/journalctl");
    let e = journal::check(missing).unwrap_err();
    assert!(e.contains("cannot run /nonexistent/journalctl"), "{e}");
    let (j, _rx) = start(missing, None, None);
    std::thread::sleep(Duration::from_millis(1500));
    // Tried at once, then after 1 s: twice, not thousands of times.
    let restarts = j.stats().restarts.load(Ordering::Relaxed);
    assert!((1..=2).contains(&restarts), "{restarts} attempts in 1.5 s");
    let t = Instant::now();
    j.stop();
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn check_refuses_a_journal_the_user_cannot_read() {
    let dir = TempDir::new("journal-check");
    let script = |name: &str, body: &str| {
        let p = dir.0.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        Command::new("chmod").arg("+x").arg(&p).status().unwrap();
        p
    };
    // What journalctl 252 says to a user outside systemd-journal and adm.
    let denied = script(
        "denied",
        "echo 'No journal files were opened due to insufficient permissions.' >&2; exit 1",
    );
    let e = journal::check(&denied).unwrap_err();
    assert!(
        e.contains("insufficient permissions") && e.contains("systemd-journal"),
        "{e}"
    );
    let own_only = script(
        "own-only",
        "echo 'Hint: You are currently not seeing messages from other users and the system.' >&2",
    );
    let e = journal::check(&own_only).unwrap_err();
    assert!(e.contains("only this user's") && e.contains("adm"), "{e}");
    let no_journald = script("none", "echo 'No journal files were found.' >&2");
    let e = journal::check(&no_journald).unwrap_err();
    assert!(e.contains("systemd-journald running"), "{e}");
    journal::check(&script("fine", "echo '-- No entries --'")).unwrap();
}

/// Writes `text` to journald's syslog socket as glibc's syslog(3) does for Postfix: facility
/// mail, the program tag and pid, a classic timestamp (journald keeps its own).
fn syslog(tag: &str, pid: u32, text: &str) {
    let sock = UnixDatagram::unbound().unwrap();
    let datagram = format!("<22>Dec  3 08:00:00 {tag}[{pid}]: {text}");
    sock.send_to(datagram.as_bytes(), "/run/systemd/journal/dev-log")
        .expect("journald's /run/systemd/journal/dev-log takes a datagram");
}

/// The newest entry's cursor, from the real journalctl.
fn newest_cursor() -> Option<String> {
    let out = Command::new("journalctl")
        .args(["--lines=1", "--output=export", "--no-pager"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("__CURSOR=").map(str::to_owned))
}

/// The tag, pid and text of each line.
fn parts(lines: &[String]) -> Vec<(String, Option<u32>, String)> {
    let mut clock = SyslogClock::new(Zone::utc(), 0);
    lines
        .iter()
        .map(|l| {
            let p = parse_prefix(l.as_bytes(), &mut clock).unwrap();
            let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            (s(p.program), p.pid, s(p.text))
        })
        .collect()
}

/// The real-journald tests write to one journal, and one counts what it reads: one at a time.
static REAL_JOURNAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_real_journald() {
    if !common::real_mta::enabled("MTQPD_REAL_JOURNAL", "journal", ".ci/journal-setup.sh") {
        return;
    }
    let _alone = REAL_JOURNAL.lock().unwrap_or_else(|e| e.into_inner());
    journal::check(Path::new(journal::JOURNALCTL)).unwrap();
    let log = include_str!("data/real-logs/postfix-debian-ci.log");
    let want = parts(&log.lines().map(str::to_owned).collect::<Vec<_>>());
    let ours = |lines: Vec<String>| -> Vec<(String, Option<u32>, String)> {
        parts(&lines)
            .into_iter()
            .filter(|p| want.contains(p))
            .collect()
    };
    let start_at = newest_cursor();
    let (j, rx) = start(Path::new(journal::JOURNALCTL), None, start_at.as_deref());
    for (tag, pid, text) in &want {
        syslog(tag, pid.unwrap(), text);
    }
    // Other programs may log meanwhile: batches are taken until all of ours have come.
    let mut got = Vec::new();
    let mut cursor = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < want.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let batch = rx
            .recv_timeout(left)
            .expect("every line through the journal");
        got.extend(ours(lines_of(std::slice::from_ref(&batch))));
        cursor = batch.cursor.map(String::from);
    }
    assert_eq!(got, want);
    j.stop();

    // Logged while stopped: a restart after the last batch taken gives these, once, and
    // nothing of before.
    let later = &want[..3];
    for (tag, pid, text) in later {
        syslog(tag, pid.unwrap(), text);
    }
    let (j, rx) = start(Path::new(journal::JOURNALCTL), None, cursor.as_deref());
    let mut again = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while again.len() < later.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let batch = rx
            .recv_timeout(left)
            .expect("the lines logged while stopped");
        again.extend(ours(lines_of(std::slice::from_ref(&batch))));
    }
    // Anything more within a second would be a line read twice.
    if let Ok(batch) = rx.recv_timeout(Duration::from_secs(1)) {
        again.extend(ours(lines_of(std::slice::from_ref(&batch))));
    }
    j.stop();
    assert_eq!(again, later);
}

/// `mtqpd serve --log postfix:journal` against the real journald: a tracked message's Postfix
/// lines, logged through journald's syslog socket, reach its answer; the server stops with the
/// journal's cursor in its state directory and, restarted, reads on from there.
#[test]
fn serve_follows_the_real_journal_and_resumes_after_a_restart() {
    if !common::real_mta::enabled("MTQPD_REAL_JOURNAL", "journal", ".ci/journal-setup.sh") {
        return;
    }
    let _alone = REAL_JOURNAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("journal-serve");
    let (accept, state) = (dir.path("accept.log"), dir.path("state"));
    std::fs::create_dir_all(&state).unwrap();
    // A queue id of this run only: the journal keeps every run's lines.
    let nanos = common::unix_now().rem_euclid(1 << 30);
    let queue = format!("{:X}J{}", nanos, std::process::id());
    let envid = format!("{queue}@journal.example");
    common::append(
        &accept,
        &common::accept_line(
            &common::rfc3339(common::unix_now() - 5),
            &envid,
            "s3cret",
            &format!("queue={queue}"),
        ),
    );
    syslog(
        "postfix/smtpd",
        4001,
        &format!("{queue}: client=c.example[192.0.2.1]"),
    );
    syslog("postfix/local", 4002, &format!("{queue}: to=<a@journal.example>, relay=local, delay=1, delays=0/0/0/1, dsn=4.2.2, status=deferred (mailbox full)"));
    let logs = [
        "--log".to_string(),
        "postfix:journal".to_string(),
        "--log".to_string(),
        format!("native:{}", accept.display()),
        "--state-dir".to_string(),
        state.display().to_string(),
    ];
    let args: Vec<&str> = logs.iter().map(String::as_str).collect();
    let action = |s: &common::Server| {
        let answer = s
            .client()
            .roundtrip(&format!("TRACK <{envid}> {}", common::secret_b64("s3cret")));
        common::recipients(&answer)
    };
    let until = |s: &common::Server, want: &str| {
        common::eventually_or_none(|| {
            let got = action(s);
            (got.len() == 1 && got[0].contains(want)).then_some(())
        })
        .unwrap_or_else(|| panic!("never {want}: {:?}", action(s)))
    };
    let s = common::Server::start(&args);
    until(&s, "Action: delayed");
    let (status, stderr) = s.stop("TERM");
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("mtqpd: journal: "), "{stderr}");

    syslog("postfix/local", 4003, &format!("{queue}: to=<a@journal.example>, relay=local, delay=9, delays=0/0/0/9, dsn=2.0.0, status=sent (delivered to mailbox)"));
    let s = common::Server::start(&args);
    until(&s, "Action: delivered");
    let (status, again) = s.stop("TERM");
    assert!(status.success(), "{again}");
    // The restart read on from the cursor: fewer entries than the first run, which read the
    // whole journal, both of our lines included.
    let entries = |stderr: &str| -> u64 {
        let stats = stderr.split("mtqpd: journal: entries ").nth(1).unwrap();
        stats.split(' ').next().unwrap().parse().unwrap()
    };
    assert!(entries(&stderr) >= 2, "{stderr}");
    assert!(entries(&again) < entries(&stderr), "{stderr}\n{again}");
}
