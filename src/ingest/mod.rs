//! Ingest: one thread follows every `--log` file like `tail -F`, turns each line into events
//! with the file's format, correlates them into messages and publishes changed messages to the
//! index in batches.
//!
//! It knows log formats and files; it never touches a socket or a client.

pub mod event;
pub mod exim;
pub mod hosts;
mod idset;
pub mod journal;
pub mod mta;
pub mod native;
pub mod postfix;
pub mod queue_id;
pub mod sendmail;
pub mod state;
pub mod stream;
pub mod syslog;
pub mod tail;
pub mod timezone;
pub mod tracker;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::clock::unix_now;
use crate::index::message::Retention;
use crate::index::Index;
use event::{LineParser, Outcome};
use native::NativeTags;
use tail::Follower;
use tracker::Tracker;

/// The format of one log file. In a `native` file every line is the enabling component's; in
/// an MTA's log, a native line counts only under an allowed program tag (see [`native`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Only `mtqp:` lines (docs/ARCHITECTURE.md, "The native log format").
    Native,
    /// Postfix through syslog, rsyslog's RFC 3339 format or `maillog_file`.
    Postfix,
    /// Exim's mainlog, or Exim through syslog.
    Exim,
    /// sendmail through syslog.
    Sendmail,
}

impl LogFormat {
    /// Parses the FORMAT of `--log FORMAT:PATH`.
    pub fn parse(name: &str) -> Option<LogFormat> {
        match name {
            "native" => Some(LogFormat::Native),
            "postfix" => Some(LogFormat::Postfix),
            "exim" => Some(LogFormat::Exim),
            "sendmail" => Some(LogFormat::Sendmail),
            _ => None,
        }
    }
}

/// Where the lines of one `--log` come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogInput {
    /// A file, followed like `tail -F`.
    File(PathBuf),
    /// The systemd journal, followed through `journalctl` (all of it, or one unit's lines).
    Journal { unit: Option<String> },
}

/// One `--log FORMAT:PATH[,host=NAME]` or `--log FORMAT:journal[:UNIT][,host=NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSource {
    pub format: LogFormat,
    pub input: LogInput,
    /// The host whose lines these are when a line names none (Exim's mainlog, a native file);
    /// None: this machine's name.
    pub host: Option<String>,
}

impl LogSource {
    /// A file of `format`, of this host.
    pub fn file(format: LogFormat, path: impl Into<PathBuf>) -> LogSource {
        LogSource {
            format,
            input: LogInput::File(path.into()),
            host: None,
        }
    }

    /// The file followed, when the lines come from a file.
    pub fn path(&self) -> Option<&Path> {
        match &self.input {
            LogInput::File(p) => Some(p),
            LogInput::Journal { .. } => None,
        }
    }
}

impl std::str::FromStr for LogSource {
    type Err = String;

    fn from_str(s: &str) -> Result<LogSource, String> {
        let (format, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("'{s}' is not FORMAT:PATH (e.g. native:/var/log/mtqp.log)"))?;
        let format = LogFormat::parse(format).ok_or_else(|| {
            format!("unknown log format '{format}' (known: native, postfix, exim, sendmail)")
        })?;
        let (rest, host) = match rest.rsplit_once(",host=") {
            Some((rest, host)) => {
                hosts::check_host_name(host).map_err(|e| format!("'{s}': host= {e}"))?;
                (rest, Some(host.to_owned()))
            }
            None => (rest, None),
        };
        let input = match rest.split_once(':') {
            _ if rest == "journal" => LogInput::Journal { unit: None },
            Some(("journal", "")) => return Err(format!("'{s}' names no journal unit")),
            Some(("journal", unit)) => LogInput::Journal {
                unit: Some(unit.to_owned()),
            },
            _ if rest.is_empty() => return Err(format!("'{s}' has no path")),
            _ => LogInput::File(PathBuf::from(rest)),
        };
        Ok(LogSource {
            format,
            input,
            host,
        })
    }
}

/// Settings of the ingest thread.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub sources: Vec<LogSource>,
    /// This hub's name, the Reporting-MTA of every answer.
    pub reporting_mta: String,
    pub retention: Retention,
    /// Where checkpoints and the correlation state are kept; None: rebuild from the logs.
    pub state_dir: Option<PathBuf>,
    /// How often the state is written while lines keep coming (and always at shutdown).
    pub snapshot_interval: Duration,
    /// The zone of timestamps that carry none.
    pub log_zone: timezone::Zone,
    /// The program tags whose lines in an MTA's log may be native lines.
    pub native_tags: NativeTags,
}

/// Counters the ingest thread keeps, read at shutdown.
#[derive(Debug, Default)]
pub struct IngestStats {
    pub lines: AtomicU64,
    pub applied: AtomicU64,
    pub rejected: AtomicU64,
    pub ignored: AtomicU64,
    pub too_long: AtomicU64,
    pub rotations: AtomicU64,
    pub truncations: AtomicU64,
    pub read_errors: AtomicU64,
    /// Set once every file has been read to its end for the first time.
    pub caught_up: AtomicBool,
}

impl fmt::Display for IngestStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        write!(
            f,
            "lines {} applied {} rejected {} ignored {} too-long {} rotations {} truncations {} read-errors {}",
            g(&self.lines),
            g(&self.applied),
            g(&self.rejected),
            g(&self.ignored),
            g(&self.too_long),
            g(&self.rotations),
            g(&self.truncations),
            g(&self.read_errors)
        )
    }
}

/// The running ingest thread.
pub struct Ingest {
    thread: JoinHandle<()>,
    stop: Sender<()>,
    pub stats: Arc<IngestStats>,
}

impl Ingest {
    /// Stops the thread after its current batch and waits for it.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// Checks that every log can be followed: its directory must exist and be readable, and the
/// file, when it exists, must be readable. A missing file is fine: it is waited for.
pub fn check_sources(sources: &[LogSource]) -> Result<(), String> {
    for path in sources.iter().filter_map(LogSource::path) {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::read_dir(dir)
            .map_err(|e| format!("log directory {} is not readable: {e}", dir.display()))?;
        match std::fs::File::open(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("log {} is not readable: {e}", path.display())),
        }
        if path.is_dir() {
            return Err(format!("log {} is a directory", path.display()));
        }
    }
    Ok(())
}

/// Longest log line kept; longer ones are skipped and counted (Postfix itself caps at 2000).
const MAX_LOG_LINE: usize = 64 * 1024;
/// Bytes read from one file before the others get a turn.
const READ_BUDGET: usize = 4 * 1024 * 1024;
/// How often files are checked for new lines when all were at their end.
const IDLE_POLL: Duration = Duration::from_millis(50);
/// How far ahead of the wall clock a line's time may be (clocks of hosts and zones drift).
pub const MAX_AHEAD: i64 = 300;
/// The reason a line dated further ahead is refused.
const AHEAD: &str = "event time ahead of the clock";

/// How often expired records are swept.
const EXPIRY_SWEEP: Duration = Duration::from_secs(60);
/// Shortest gap between two log lines about the same kind of rejected input.
const REJECT_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Logs rejected lines once per reason per interval, with the count in between, so a flood of
/// bad lines cannot flood the log.
#[derive(Default)]
struct RejectLog {
    last: HashMap<&'static str, (Instant, u64)>,
    /// Count only, log nothing (offline replays report the totals themselves).
    quiet: bool,
}

impl RejectLog {
    fn quiet() -> RejectLog {
        RejectLog {
            quiet: true,
            ..RejectLog::default()
        }
    }

    /// One line per reason with its total, for the shutdown report.
    fn summary(&self) -> String {
        let mut reasons: Vec<_> = self
            .last
            .iter()
            .map(|(r, (_, n))| format!("{r}: {n}"))
            .collect();
        reasons.sort();
        reasons.join("; ")
    }

    fn note(&mut self, path: &Path, reason: &'static str) {
        let now = Instant::now();
        let entry = self
            .last
            .entry(reason)
            .or_insert((now - REJECT_LOG_INTERVAL, 0));
        entry.1 += 1;
        if !self.quiet && now.duration_since(entry.0) >= REJECT_LOG_INTERVAL {
            eprintln!(
                "mtqpd: ingest: {}: rejected line: {reason} ({} so far)",
                path.display(),
                entry.1
            );
            entry.0 = now;
        }
    }
}

/// Starts the ingest thread.
pub fn spawn(config: IngestConfig, index: Arc<Index>) -> std::io::Result<Ingest> {
    let stats = Arc::new(IngestStats::default());
    let (stop, stop_rx) = crossbeam_channel::bounded(1);
    let thread_stats = Arc::clone(&stats);
    let thread = std::thread::Builder::new()
        .name("mtqpd-ingest".into())
        .spawn(move || run(config, &index, &thread_stats, &stop_rx))?;
    Ok(Ingest {
        thread,
        stop,
        stats,
    })
}

/// One followed file and the parser of its format.
struct Source {
    follower: Follower,
    parser: Box<dyn LineParser + Send>,
}

/// A fresh parser for one file of `format`. In an MTA's log, native lines count only under the
/// program tags of `native_tags` (see [`native`]).
pub fn parser_for(
    format: LogFormat,
    zone: &timezone::Zone,
    native_tags: &NativeTags,
) -> Box<dyn LineParser + Send> {
    let clock = || syslog::SyslogClock::new(zone.clone(), unix_now());
    let tags = native_tags.clone();
    match format {
        LogFormat::Native => Box::new(native::NativeParser::new(clock())),
        LogFormat::Postfix => Box::new(postfix::PostfixParser::new(clock(), tags)),
        LogFormat::Exim => Box::new(exim::EximParser::new(zone.clone(), clock(), tags)),
        LogFormat::Sendmail => Box::new(sendmail::SendmailParser::new(clock(), tags)),
    }
}

/// The tracker and files as the state directory left them, or fresh ones (reading every log
/// from its start) when there is no usable snapshot.
fn restore(config: &IngestConfig) -> (Tracker, Vec<Source>) {
    let fresh = |config: &IngestConfig| {
        let tracker = Tracker::new(config.reporting_mta.clone(), config.retention);
        let sources = config
            .sources
            .iter()
            .filter_map(|s| {
                Some(Source {
                    follower: Follower::new(s.path()?.to_path_buf(), MAX_LOG_LINE),
                    parser: parser_for(s.format, &config.log_zone, &config.native_tags),
                })
            })
            .collect();
        (tracker, sources)
    };
    let Some(dir) = &config.state_dir else {
        return fresh(config);
    };
    let started = Instant::now();
    let decoded = state::load(dir).and_then(|payload| {
        let Some(payload) = payload else {
            return Ok(None);
        };
        let mut dec = state::Decoder::new(&payload);
        let positions = state::decode_positions(&mut dec)?;
        let tracker = Tracker::decode(
            &mut dec,
            config.reporting_mta.clone(),
            config.retention,
            unix_now().saturating_add(MAX_AHEAD),
        )?;
        if !dec.is_done() {
            return Err(state::Corrupt("trailing bytes in the payload".into()));
        }
        Ok(Some((positions, tracker)))
    });
    match decoded {
        Ok(None) => fresh(config),
        Ok(Some((positions, tracker))) => {
            let sources = config
                .sources
                .iter()
                .filter_map(|s| {
                    let path = s.path()?.to_path_buf();
                    let saved = positions
                        .iter()
                        .find(|(p, _)| *p == path)
                        .map(|(_, pos)| pos.clone());
                    let follower = match saved {
                        Some(pos) => Follower::resume(path, MAX_LOG_LINE, pos),
                        None => Follower::new(path, MAX_LOG_LINE),
                    };
                    Some(Source {
                        follower,
                        parser: parser_for(s.format, &config.log_zone, &config.native_tags),
                    })
                })
                .collect();
            eprintln!(
                "mtqpd: state: restored {} messages from {} in {} ms",
                tracker.restored_records(),
                dir.display(),
                started.elapsed().as_millis()
            );
            (tracker, sources)
        }
        Err(state::Corrupt(why)) => {
            eprintln!(
                "mtqpd: state: {} is unusable ({why}); rebuilding from the logs",
                dir.display()
            );
            fresh(config)
        }
    }
}

/// Writes the snapshot: every file's position and the tracker, together.
fn snapshot(dir: &Path, sources: &[Source], tracker: &Tracker, index: &Index) {
    let positions: Vec<_> = sources
        .iter()
        .filter_map(|s| Some((s.follower.path().to_path_buf(), s.follower.position()?)))
        .collect();
    let mut enc = state::Encoder::default();
    state::encode_positions(&mut enc, &positions);
    tracker.encode(&mut enc, index);
    if let Err(e) = state::save(dir, &enc.buf) {
        eprintln!("mtqpd: state: cannot write {}: {e}", dir.display());
    }
}

/// The pipeline of one ingest: files, their parsers, the tracker and the counters.
struct Pipeline<'a> {
    sources: Vec<Source>,
    tracker: Tracker,
    index: &'a Index,
    rejects: RejectLog,
    stats: &'a IngestStats,
}

impl Pipeline<'_> {
    /// Reads what is new in every file, a bounded amount each. True when some file has more.
    fn round(&mut self) -> bool {
        let mut more = false;
        let (tracker, rejects, stats) = (&mut self.tracker, &mut self.rejects, self.stats);
        let index = self.index;
        // A line dated further ahead than this is refused: one such line would move the
        // correlation clock, which ages every queue id, for ever.
        let latest = unix_now().saturating_add(MAX_AHEAD);
        for source in &mut self.sources {
            let path = source.follower.path().to_path_buf();
            let parser = &mut source.parser;
            let mut on_line = |line: &[u8]| {
                stats.lines.fetch_add(1, Ordering::Relaxed);
                let mut refused = None;
                let outcome = parser.parse(line, &mut |event| {
                    if event.time().is_some_and(|t| t > latest) {
                        refused = Some(AHEAD);
                    } else if let Err(why) = tracker.apply(event, index) {
                        refused = Some(why);
                    }
                });
                let outcome = match (outcome, refused) {
                    (Outcome::Parsed, Some(why)) => Outcome::Rejected(why),
                    (outcome, _) => outcome,
                };
                match outcome {
                    Outcome::Parsed => stats.applied.fetch_add(1, Ordering::Relaxed),
                    Outcome::Ignored => stats.ignored.fetch_add(1, Ordering::Relaxed),
                    Outcome::Rejected(why) => {
                        rejects.note(&path, why);
                        stats.rejected.fetch_add(1, Ordering::Relaxed)
                    }
                };
            };
            match source.follower.poll(READ_BUDGET, &mut on_line) {
                Ok(p) => {
                    stats.too_long.fetch_add(p.too_long, Ordering::Relaxed);
                    stats.rotations.fetch_add(p.rotations, Ordering::Relaxed);
                    stats
                        .truncations
                        .fetch_add(p.truncations, Ordering::Relaxed);
                    // Once per line, so the summary's total is the counter's.
                    for _ in 0..p.too_long {
                        rejects.note(&path, "line longer than 64 KiB");
                    }
                }
                Err(e) => {
                    stats.read_errors.fetch_add(1, Ordering::Relaxed);
                    rejects.note(&path, "read error");
                    if stats.read_errors.load(Ordering::Relaxed) == 1 {
                        eprintln!("mtqpd: ingest: {}: {e}", path.display());
                    }
                }
            }
            more |= source.follower.has_more();
        }
        more
    }
}

/// What an offline read of the logs found (see [`replay`]).
pub struct Replay {
    pub tracker: Tracker,
    pub stats: IngestStats,
    /// Rejected lines per reason, most frequent first.
    pub rejected: Vec<(&'static str, u64)>,
}

/// Reads every log once from its start to its current end, without following it and without
/// the state directory, and puts what it found in `index`: for `mtqpd ingest-check` and the
/// ingest benchmark.
pub fn replay(config: &IngestConfig, index: &Index) -> Replay {
    let stats = IngestStats::default();
    let mut fresh = config.clone();
    fresh.state_dir = None;
    let (mut tracker, sources) = restore(&fresh);
    tracker.enable_audit();
    let mut p = Pipeline {
        sources,
        tracker,
        index,
        rejects: RejectLog::quiet(),
        stats: &stats,
    };
    while p.round() {
        p.tracker.publish(index, unix_now());
    }
    p.tracker.publish(index, unix_now());
    let mut rejected: Vec<_> = p.rejects.last.iter().map(|(r, (_, n))| (*r, *n)).collect();
    rejected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    Replay {
        tracker: p.tracker,
        stats,
        rejected,
    }
}

fn run(config: IngestConfig, index: &Index, stats: &IngestStats, stop: &Receiver<()>) {
    let (tracker, sources) = restore(&config);
    index.reserve(tracker.restored_records());
    let mut p = Pipeline {
        sources,
        tracker,
        index,
        rejects: RejectLog::default(),
        stats,
    };
    let mut last_sweep = Instant::now();
    let mut last_snapshot = Instant::now();
    // The ingest thread writes snapshots itself, so a large state stalls it while writing:
    // space them at least ten times their own duration apart, keeping the stall under a tenth
    // of the time whatever the interval says.
    let mut snapshot_gap = config.snapshot_interval;
    let mut lines_at_snapshot = 0;
    loop {
        let more = p.round();
        let now = unix_now();
        p.tracker.publish(index, now);
        if last_sweep.elapsed() >= EXPIRY_SWEEP {
            p.tracker.expire(index, now);
            last_sweep = Instant::now();
        }
        if !more && !stats.caught_up.swap(true, Ordering::Relaxed) {
            eprintln!(
                "mtqpd: ingest caught up: {} lines, {} records",
                stats.lines.load(Ordering::Relaxed),
                index.len()
            );
        }
        let lines = stats.lines.load(Ordering::Relaxed);
        if let Some(dir) = &config.state_dir {
            if lines != lines_at_snapshot && last_snapshot.elapsed() >= snapshot_gap {
                let started = Instant::now();
                snapshot(dir, &p.sources, &p.tracker, index);
                snapshot_gap = config.snapshot_interval.max(started.elapsed() * 10);
                lines_at_snapshot = lines;
                last_snapshot = Instant::now();
            }
        }
        let wait = if more { Duration::ZERO } else { IDLE_POLL };
        match stop.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    if let Some(dir) = &config.state_dir {
        snapshot(dir, &p.sources, &p.tracker, index);
    }
    if !p.rejects.last.is_empty() {
        eprintln!(
            "mtqpd: ingest: rejected lines by reason: {}",
            p.rejects.summary()
        );
    }
}
