//! Restart with `--state-dir`: after SIGTERM or SIGKILL at any point of a long ingest, with or
//! without a rotation while down, the restarted server answers exactly as one that never
//! stopped, and (after SIGTERM) reads every line exactly once.

mod common;
use common::*;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, LazyLock};
use std::time::Duration;

const MESSAGES: usize = 12_000;

/// The log's times, from the clock the test runs under: accepts two hours ago, deliveries an
/// hour later. Built once, so that every run of a test reads the same log.
static TIMES: LazyLock<[String; 4]> = LazyLock::new(|| {
    let base = unix_now() - 7200;
    [0, 1, 3600, 3601].map(|s| rfc3339(base + s))
});

/// Native lines of message `i`: accept, a delay, then (later in the log) the delivery.
fn message_lines(i: usize) -> (String, String) {
    let envid = format!("r{i}@example.org");
    let [accepted, delayed, relayed, delivered] = &*TIMES;
    let first = format!(
        "{}mtqp: event=rcpt time={delayed} queue=Q{i} rcpt=a{i}@example.net action=delayed status=4.4.1 remote-mta=dns;mx.example.net\n",
        accept_line(accepted, &envid, &format!("s{i}"), &format!("queue=Q{i}")),
    );
    let later = format!(
        "mtqp: event=rcpt time={relayed} queue=Q{i} rcpt=a{i}@example.net action=relayed status=2.0.0 remote-mta=dns;mx.example.net\n\
         mtqp: event=rcpt time={delivered} queue=Q{i} rcpt=b{i}@example.net action=delivered status=2.0.0\n"
    );
    (first, later)
}

/// The whole log, with each delivery 500 messages after its accept, and its line count.
fn log_text(range: std::ops::Range<usize>) -> (String, usize) {
    let mut text = String::new();
    for i in range.clone() {
        text.push_str(&message_lines(i).0);
        if i >= range.start + 500 {
            text.push_str(&message_lines(i - 500).1);
        }
    }
    for i in range.end.saturating_sub(500).max(range.start)..range.end {
        text.push_str(&message_lines(i).1);
    }
    let lines = text.lines().count();
    (text, lines)
}

fn args<'a>(log: &'a str, state: &'a str) -> Vec<&'a str> {
    vec![
        "--hostname",
        "hub.example",
        "--log",
        log,
        "--state-dir",
        state,
        "--snapshot-interval",
        "1s",
    ]
}

/// Every message's answer, in order.
fn answers(s: &Server, count: usize) -> Vec<Vec<u8>> {
    let mut c = s.client();
    let mut out = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(200) {
        let mut batch = String::new();
        for i in chunk {
            batch.push_str(&format!(
                "TRACK <r{i}@example.org> {}\r\n",
                secret_b64(&format!("s{i}"))
            ));
        }
        c.send(batch.as_bytes());
        for _ in chunk {
            out.push(c.response_bytes());
        }
    }
    out
}

/// What a server that never stopped answers for `log`.
fn reference(dir: &TempDir, text: &str, count: usize) -> Vec<Vec<u8>> {
    let log = dir.path("reference.log");
    std::fs::write(&log, text).unwrap();
    let state = dir.path("reference-state");
    std::fs::create_dir_all(&state).unwrap();
    let log_arg = format!("native:{}", log.display());
    let state_arg = state.display().to_string();
    let s = Server::start_caught_up(&args(&log_arg, &state_arg));
    answers(&s, count)
}

fn counter(stderr: &str, name: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("mtqpd: ingest: lines"))
        .expect("ingest counters");
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == name {
            return words
                .next()
                .and_then(|n| n.trim_end_matches(';').parse().ok())
                .expect("number");
        }
    }
    panic!("no {name} in {line}")
}

/// Writes `text` to `log` in 100 appends, 25 ms apart, as a busy MTA would, and returns the
/// writer with the count of appends made. With `pause`, the writer stops after that many
/// appends until the returned sender is dropped or sent to, so that a server stopped there is
/// stopped mid-ingest however slowly it stops; it goes on while the server is restarted.
fn writer(
    log: &Path,
    text: &str,
    pause: Option<usize>,
) -> (
    std::thread::JoinHandle<()>,
    Arc<AtomicUsize>,
    mpsc::Sender<()>,
) {
    let log = log.to_path_buf();
    let mut chunks = Vec::new();
    let mut rest = text;
    let size = text.len() / 100 + 1;
    while !rest.is_empty() {
        // Cut anywhere, even mid-line: the follower must hold torn lines back.
        let cut = rest.len().min(size);
        let cut = (cut..=rest.len())
            .find(|&c| rest.is_char_boundary(c))
            .unwrap_or(rest.len());
        chunks.push(rest[..cut].to_string());
        rest = &rest[cut..];
    }
    let written = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&written);
    let (release, released) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        for (n, chunk) in chunks.into_iter().enumerate() {
            if Some(n) == pause {
                let _ = released.recv();
            }
            append(&log, &chunk);
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(25));
        }
    });
    (thread, written, release)
}

/// Waits until the writer has made `appends` appends.
fn wait_written(written: &AtomicUsize, appends: usize) {
    eventually("the writer", || {
        (written.load(Ordering::SeqCst) >= appends).then_some(())
    });
}

/// Starts the server on `log`, lets it read what is there, waits until `until` holds, stops
/// it with SIGTERM and returns how many lines it had read, with its stderr.
fn interrupted_run(log: &Path, state: &Path, until: impl FnOnce()) -> (u64, String) {
    let log_arg = format!("native:{}", log.display());
    let state_arg = state.display().to_string();
    let s = Server::start_caught_up(&args(&log_arg, &state_arg));
    until();
    let (status, stderr) = s.stop("TERM");
    assert!(status.success(), "{stderr}");
    (counter(&stderr, "lines"), stderr)
}

fn restarted(log: &Path, state: &Path, count: usize) -> (Vec<Vec<u8>>, u64, String) {
    let log_arg = format!("native:{}", log.display());
    let state_arg = state.display().to_string();
    let s = Server::start_caught_up(&args(&log_arg, &state_arg));
    let got = answers(&s, count);
    let (status, stderr) = s.stop("TERM");
    assert!(status.success());
    (got, counter(&stderr, "lines"), stderr)
}

#[test]
fn sigterm_at_several_points_loses_nothing_and_reads_each_line_once() {
    let dir = TempDir::new("restart-term");
    let (text, lines) = log_text(0..MESSAGES);
    let want = reference(&dir, &text, MESSAGES);
    // Stopped early, half way and late in the writing, the writer paused there.
    for (round, appends) in [(0, 10), (1, 45), (2, 80)] {
        let log = dir.path(&format!("mail{round}.log"));
        let state = dir.path(&format!("state{round}"));
        std::fs::create_dir_all(&state).unwrap();
        let (writing, written, release) = writer(&log, &text, Some(appends));
        wait_written(&written, 1);
        let (first, _) = interrupted_run(&log, &state, || wait_written(&written, appends));
        drop(release);
        assert!(
            first > 0 && first < lines as u64,
            "round {round}: stopped after {first} of {lines} lines, not mid-ingest"
        );
        writing.join().unwrap();
        let (got, second, stderr) = restarted(&log, &state, MESSAGES);
        assert_eq!(
            first + second,
            lines as u64,
            "round {round}: {first} + {second} lines read of {lines}\n{stderr}"
        );
        assert!(
            got == want,
            "round {round}: answers differ from a run that never stopped"
        );
    }
}

#[test]
fn sigkill_mid_ingest_loses_nothing_and_replays_idempotently() {
    let dir = TempDir::new("restart-kill");
    let (text, _) = log_text(0..MESSAGES);
    let want = reference(&dir, &text, MESSAGES);
    // Killed at once after the first snapshot, and some way into the next interval.
    for (round, after_ms) in [(0, 0u64), (1, 800)] {
        let log = dir.path(&format!("mail{round}.log"));
        let state = dir.path(&format!("state{round}"));
        std::fs::create_dir_all(&state).unwrap();
        let (writing, written, _) = writer(&log, &text, None);
        wait_written(&written, 1);
        let log_arg = format!("native:{}", log.display());
        let state_arg = state.display().to_string();
        let s = Server::start(&args(&log_arg, &state_arg));
        eventually("the first snapshot", || {
            state.join("state.bin").exists().then_some(())
        });
        std::thread::sleep(Duration::from_millis(after_ms));
        s.stop("KILL");
        writing.join().unwrap();
        let (got, read, _) = restarted(&log, &state, MESSAGES);
        assert!(read > 0, "round {round}: the restart found nothing to read");
        assert!(got == want, "round {round}: answers differ after SIGKILL");
    }
}

#[test]
fn rotation_while_down_finishes_the_rotated_file_first() {
    let dir = TempDir::new("restart-rotate");
    let (old_text, old_lines) = log_text(0..MESSAGES / 2);
    let (new_text, new_lines) = log_text(MESSAGES / 2..MESSAGES);
    let want = reference(&dir, &format!("{old_text}{new_text}"), MESSAGES);
    let log = dir.path("mail.log");
    let state = dir.path("state");
    std::fs::create_dir_all(&state).unwrap();
    // The first half is written, the server reads part of it and stops...
    let (head, tail) = old_text.split_at(old_text.len() / 2);
    let head_end = head.rfind('\n').map_or(0, |i| i + 1);
    std::fs::write(&log, &old_text[..head_end]).unwrap();
    let (first, _) = interrupted_run(&log, &state, || {});
    assert!(first > 0, "the first run read nothing");
    // ...and while it is down the MTA writes the rest of the first half, the log is rotated,
    // and the second half goes to a new file.
    append(&log, &format!("{}{}", &head[head_end..], tail));
    std::fs::rename(&log, dir.path("mail.log.1")).unwrap();
    std::fs::write(&log, &new_text).unwrap();
    let (got, second, stderr) = restarted(&log, &state, MESSAGES);
    assert_eq!(first + second, (old_lines + new_lines) as u64, "{stderr}");
    assert!(got == want, "answers differ after a rotation while down");
}

#[test]
fn a_damaged_state_file_is_reported_and_the_logs_are_read_again() {
    let dir = TempDir::new("restart-corrupt");
    let (text, lines) = log_text(0..2_000);
    let want = reference(&dir, &text, 2_000);
    let log = dir.path("mail.log");
    let state = dir.path("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(&log, &text).unwrap();
    let log_arg = format!("native:{}", log.display());
    let state_arg = state.display().to_string();
    let s = Server::start_caught_up(&args(&log_arg, &state_arg));
    assert!(s.stop("TERM").0.success());
    let file = state.join("state.bin");
    let mut bytes = std::fs::read(&file).unwrap();
    for (what, damage) in [("truncated", 0usize), ("flipped", 1)] {
        if damage == 0 {
            std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
        } else {
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
            std::fs::write(&file, &bytes).unwrap();
        }
        let (got, read, stderr) = restarted(&log, &state, 2_000);
        assert!(stderr.contains("is unusable"), "{what}: {stderr}");
        assert_eq!(
            read, lines as u64,
            "{what}: the logs are read again from the start"
        );
        assert!(got == want, "{what}: answers differ after a rebuild");
        bytes = std::fs::read(&file).unwrap();
    }
}
