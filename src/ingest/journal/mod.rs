//! The systemd journal as a log source (`--log FORMAT:journal[:UNIT]`): a thread runs
//! `journalctl --follow --output=export`, reads its entries ([`export`]) and hands them to the
//! ingest thread as syslog lines in [`Batch`]es, each carrying the cursor of the last entry read,
//! so that a restart can resume right after what was applied.
//!
//! journalctl rather than reading the journal files: their format is systemd's to change, and
//! journalctl is what every journal host has. Why `--no-tail`: with `--follow`, journalctl
//! prints only the last 10 entries unless told otherwise — also after `--after-cursor` (systemd
//! 252, Debian 12), which would lose what was logged while mtqpd was down.
//!
//! When journalctl ends (killed, a failing journal, not installed any more) it is started again
//! after the last entry read, after a pause that doubles from [`MIN_BACKOFF`] to
//! [`MAX_BACKOFF`] while it keeps failing; each kind of failure is reported once on stderr.

pub mod export;

use std::fmt;
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};

use super::stream::Batch;
use export::{Entry, Parser, Skip};

/// The program run when none is configured: found on PATH.
pub const JOURNALCTL: &str = "journalctl";
/// The first pause before journalctl is started again.
pub const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// The longest pause between two starts of a failing journalctl.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Octets read from journalctl's output at a time: a pipe holds 64 KiB.
const READ_SIZE: usize = 64 * 1024;
/// How much of journalctl's stderr is kept to explain its exit.
const STDERR_KEPT: usize = 512;
/// How long journalctl may take to exit once its output has ended, before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(1);

/// What to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalConfig {
    /// Only this unit's entries (`journalctl --unit`); None: the whole journal.
    pub unit: Option<String>,
    /// Resume after this entry (the cursor of the last batch applied); None: from the
    /// journal's beginning.
    pub after_cursor: Option<String>,
    /// The journalctl to run ([`JOURNALCTL`]; tests give a script).
    pub journalctl: PathBuf,
}

impl JournalConfig {
    /// The whole journal or one unit's, from the beginning or after `after_cursor`, through the
    /// journalctl on PATH.
    pub fn new(unit: Option<String>, after_cursor: Option<String>) -> JournalConfig {
        JournalConfig {
            unit,
            after_cursor,
            journalctl: PathBuf::from(JOURNALCTL),
        }
    }
}

/// Counters of the follower, read at shutdown.
#[derive(Debug, Default)]
pub struct JournalStats {
    /// Complete entries read.
    pub entries: AtomicU64,
    /// Lines handed to ingest.
    pub lines: AtomicU64,
    /// Entries skipped: not the export format, or without a usable cursor.
    pub malformed: AtomicU64,
    /// Entries skipped: no MESSAGE.
    pub no_message: AtomicU64,
    /// Entries skipped: a MESSAGE or a line over 64 KiB.
    pub too_long: AtomicU64,
    /// Entries skipped: no usable time.
    pub no_time: AtomicU64,
    /// Entries skipped: no `_HOSTNAME` usable as a syslog host.
    pub bad_host: AtomicU64,
    /// Entries skipped: no identifier usable as a syslog program tag.
    pub bad_identifier: AtomicU64,
    /// Times journalctl ended and was started again (or could not be started).
    pub restarts: AtomicU64,
}

impl JournalStats {
    fn skipped(&self, why: Skip) {
        let counter = match why {
            Skip::Malformed => &self.malformed,
            Skip::NoMessage => &self.no_message,
            Skip::TooLong => &self.too_long,
            Skip::NoTime => &self.no_time,
            Skip::BadHost => &self.bad_host,
            Skip::BadIdentifier => &self.bad_identifier,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl fmt::Display for JournalStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        write!(
            f,
            "entries {} lines {} malformed {} no-message {} too-long {} no-time {} bad-host {} bad-identifier {} restarts {}",
            g(&self.entries),
            g(&self.lines),
            g(&self.malformed),
            g(&self.no_message),
            g(&self.too_long),
            g(&self.no_time),
            g(&self.bad_host),
            g(&self.bad_identifier),
            g(&self.restarts)
        )
    }
}

/// The journalctl being run, shared so that [`Journal::stop`] can kill it while the thread is
/// blocked reading its output.
#[derive(Default)]
struct Shared {
    child: Option<Child>,
    stopped: bool,
}

/// The running follower.
pub struct Journal {
    thread: Option<JoinHandle<()>>,
    shared: Arc<Mutex<Shared>>,
    /// Dropped to stop: wakes the thread from a send to a full channel or from its backoff.
    stop: Option<Sender<()>>,
    stats: Arc<JournalStats>,
}

impl Journal {
    pub fn stats(&self) -> Arc<JournalStats> {
        Arc::clone(&self.stats)
    }

    /// Stops the thread and journalctl and waits for both; lines read but not yet sent are
    /// dropped (they are after the cursor of the last batch sent, so a restart reads them).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        {
            let mut shared = lock(&self.shared);
            shared.stopped = true;
            if let Some(child) = shared.child.as_mut() {
                // Its output then ends, which ends a read the thread is blocked in.
                let _ = child.kill();
            }
        }
        self.stop = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Checks at start-up that `journalctl` runs and may read the system journal: a user outside
/// the groups `systemd-journal` and `adm` would see only their own entries, not the MTA's.
pub fn check(journalctl: &Path) -> Result<(), String> {
    let out = Command::new(journalctl)
        .args(["--lines=0", "--no-pager"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", journalctl.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr.lines().next().unwrap_or("").trim();
    let groups = "the user mtqpd runs as must be root or in the group systemd-journal or adm";
    if !out.status.success() {
        return Err(format!(
            "{} cannot read the journal ({}{}{first}); {groups}",
            journalctl.display(),
            out.status,
            if first.is_empty() { "" } else { ": " },
        ));
    }
    if stderr.contains("not seeing messages from other users") {
        return Err(format!(
            "{} shows only this user's journal entries; {groups}",
            journalctl.display()
        ));
    }
    if stderr.contains("No journal files were found") {
        return Err(format!(
            "{} finds no journal files: is systemd-journald running?",
            journalctl.display()
        ));
    }
    Ok(())
}

/// Starts following the journal. Batches go to `tx` (bounded: a full channel stops the reading,
/// and journalctl then waits on its pipe).
pub fn spawn(config: JournalConfig, tx: Sender<Batch>) -> io::Result<Journal> {
    let shared = Arc::new(Mutex::new(Shared::default()));
    let stats = Arc::new(JournalStats::default());
    let (stop_tx, stop_rx) = crossbeam_channel::bounded(0);
    let thread = {
        let (shared, stats) = (Arc::clone(&shared), Arc::clone(&stats));
        std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || follow(&config, &tx, &stop_rx, &shared, &stats))?
    };
    Ok(Journal {
        thread: Some(thread),
        shared,
        stop: Some(stop_tx),
        stats,
    })
}

/// How one run of journalctl ended.
enum End {
    /// Its output ended (or could not be read).
    Ended(String),
    /// Stopped, or the ingest thread is gone.
    Stop,
}

/// The thread: runs journalctl again and again until stopped.
fn follow(
    config: &JournalConfig,
    tx: &Sender<Batch>,
    stop: &Receiver<()>,
    shared: &Mutex<Shared>,
    stats: &JournalStats,
) {
    let mut sink = Sink {
        tx,
        stop,
        stats,
        batch: Batch::default(),
        cursor: config.after_cursor.clone(),
    };
    let mut backoff = MIN_BACKOFF;
    let mut reported: Option<String> = None;
    loop {
        let entries_before = stats.entries.load(Ordering::Relaxed);
        let why = match run_once(config, shared, &mut sink) {
            End::Stop => return,
            End::Ended(why) => why,
        };
        if stats.entries.load(Ordering::Relaxed) > entries_before {
            // It worked for a while: a new failure is news, and the pause starts short again.
            backoff = MIN_BACKOFF;
            reported = None;
        }
        stats.restarts.fetch_add(1, Ordering::Relaxed);
        if reported.as_ref() != Some(&why) {
            eprintln!("mtqpd: journal: {why}; starting it again after the last entry read");
            reported = Some(why);
        }
        // Nothing is ever sent on `stop`: the wait ends early only when stop() drops its sender.
        let _ = stop.recv_timeout(backoff);
        if lock(shared).stopped {
            return;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Starts journalctl after the sink's cursor and reads it to its end.
fn run_once(config: &JournalConfig, shared: &Mutex<Shared>, sink: &mut Sink<'_>) -> End {
    let mut cmd = Command::new(&config.journalctl);
    cmd.args([
        "--follow",
        "--no-tail",
        "--no-pager",
        "--quiet",
        "--output=export",
    ])
    .arg(format!("--output-fields={}", export::OUTPUT_FIELDS));
    if let Some(unit) = &config.unit {
        cmd.arg(format!("--unit={unit}"));
    }
    if let Some(cursor) = &sink.cursor {
        cmd.arg(format!("--after-cursor={cursor}"));
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a Ctrl-C at the terminal is mtqpd's to handle (it then stops
        // journalctl itself), not a failure of journalctl to report and restart.
        .process_group(0);

    let (stdout, stderr) = {
        let mut guard = lock(shared);
        // Checked under the lock that stop() takes: no journalctl starts after it killed one.
        if guard.stopped {
            return End::Stop;
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return End::Ended(format!("cannot start {}: {e}", config.journalctl.display()))
            }
        };
        let io = (child.stdout.take(), child.stderr.take());
        guard.child = Some(child);
        io
    };
    let stderr = stderr.and_then(|e| {
        std::thread::Builder::new()
            .name("journalctl-stderr".into())
            .spawn(move || first_line(e))
            .ok()
    });

    let mut parser = Parser::new();
    let mut buf = vec![0; READ_SIZE];
    let mut failed = None;
    if let Some(mut stdout) = stdout {
        loop {
            let n = match stdout.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    failed = Some(format!("reading journalctl's output failed: {e}"));
                    break;
                }
            };
            parser.feed(&buf[..n], &mut |entry| sink.take(entry));
            // What one read brought is sent at once: the journal is followed live, and a read
            // of less than a full pipe means journalctl has nothing more for now.
            if sink.stopped() || !sink.flush() {
                kill(shared);
                let _ = stderr.map(JoinHandle::join);
                return End::Stop;
            }
        }
    }
    let status = reap(shared);
    let said = stderr
        .and_then(|t| t.join().ok())
        .filter(|s| !s.is_empty())
        .map(|s| format!(": {s}"))
        .unwrap_or_default();
    if lock(shared).stopped {
        return End::Stop;
    }
    End::Ended(failed.unwrap_or_else(|| match status {
        Some(status) => format!("journalctl ended ({status}){said}"),
        None => format!("journalctl ended{said}"),
    }))
}

/// Kills journalctl and waits for it.
fn kill(shared: &Mutex<Shared>) {
    if let Some(mut child) = lock(shared).child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Waits for journalctl, whose output has ended, to exit, killing it after [`EXIT_GRACE`]. The
/// lock is never held across a wait, so that stop() is never held up.
fn reap(shared: &Mutex<Shared>) -> Option<ExitStatus> {
    let deadline = Instant::now() + EXIT_GRACE;
    while Instant::now() < deadline {
        {
            let mut guard = lock(shared);
            let child = guard.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                guard.child = None;
                return Some(status);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut child = lock(shared).child.take()?;
    let _ = child.kill();
    child.wait().ok()
}

/// The first line journalctl wrote to stderr (bounded), reading the rest away so that it never
/// blocks on the pipe.
fn first_line(mut stderr: ChildStderr) -> String {
    let mut kept = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match stderr.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = STDERR_KEPT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&kept);
    text.lines().next().unwrap_or("").trim().to_owned()
}

/// Gathers lines into batches and sends them, each with the cursor of the last entry read.
struct Sink<'a> {
    tx: &'a Sender<Batch>,
    stop: &'a Receiver<()>,
    stats: &'a JournalStats,
    batch: Batch,
    /// The last entry read: where journalctl resumes, and the cursor of the next batch.
    cursor: Option<String>,
}

impl Sink<'_> {
    fn take(&mut self, entry: Entry<'_>) {
        self.stats.entries.fetch_add(1, Ordering::Relaxed);
        match entry.line {
            Ok(line) => self.batch.push(line),
            Err(why) => self.stats.skipped(why),
        }
        if let Some(c) = entry.cursor {
            let cursor = self.cursor.get_or_insert_with(String::new);
            cursor.clear();
            cursor.push_str(c);
        }
        if self.batch.is_full() {
            // A failed send (stopped) leaves the lines; flush() after the read finds it stopped.
            self.flush();
        }
    }

    /// Sends the lines gathered, if any; false when stopped or the ingest thread is gone.
    fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let mut batch = std::mem::take(&mut self.batch);
        batch.cursor = self.cursor.as_deref().map(Box::from);
        // Counted before the send, which orders it before the receiver's view of the batch: a
        // reader that has the batch sees its lines counted (taken back if it is not sent).
        let lines = batch.ends.len() as u64;
        self.stats.lines.fetch_add(lines, Ordering::Relaxed);
        let sent = select! {
            send(self.tx, batch) -> sent => sent.is_ok(),
            recv(self.stop) -> _ => false,
        };
        if !sent {
            self.stats.lines.fetch_sub(lines, Ordering::Relaxed);
        }
        sent
    }

    /// True once stop() has been called.
    fn stopped(&self) -> bool {
        matches!(
            self.stop.try_recv(),
            Err(crossbeam_channel::TryRecvError::Disconnected)
        )
    }
}
