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
mod line_host;
pub mod mta;
pub mod native;
mod pipeline;
pub mod postfix;
pub mod queue_id;
pub mod receiver;
pub mod sendmail;
pub mod state;
pub mod stream;
pub mod syslog;
pub mod tail;
pub mod timezone;
pub mod tracker;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::clock::unix_now;
use crate::index::message::Retention;
use crate::index::Index;
use event::LineParser;
use hosts::HostId;
use line_host::LineHost;
use native::NativeTags;
use pipeline::{Pipeline, RejectLog, Source, StreamSource, MAX_LOG_LINE};
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

/// Which host the lines of a `--log` belong to (queue ids are unique per host only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinesOf {
    /// This machine (`host=` not given for a file): a file is one host's log, whatever names
    /// its lines carry (postlogd writes myhostname's first label, rsyslog the system's name).
    ThisHost,
    /// `host=NAME`.
    Named(String),
    /// `host=*` (the journal's default): each line's own host field (syslog HOSTNAME,
    /// journal `_HOSTNAME`); this machine for a line without one. For a collector's file
    /// holding many hosts' lines.
    EachLine,
}

/// One `--log FORMAT:PATH[,host=NAME|*]` or `--log FORMAT:journal[:UNIT][,host=NAME|*]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSource {
    pub format: LogFormat,
    pub input: LogInput,
    /// Whose lines these are. A native line's own `host=` names the host of its queue id
    /// whatever this says.
    pub host: LinesOf,
}

impl LogSource {
    /// A file of `format`, of this host.
    pub fn file(format: LogFormat, path: impl Into<PathBuf>) -> LogSource {
        LogSource {
            format,
            input: LogInput::File(path.into()),
            host: LinesOf::ThisHost,
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
            Some((rest, "*")) => (rest, Some(LinesOf::EachLine)),
            Some((rest, host)) => {
                hosts::check_host_name(host).map_err(|e| format!("'{s}': host= {e}"))?;
                (rest, Some(LinesOf::Named(host.to_owned())))
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
        let host = host.unwrap_or(match input {
            LogInput::File(_) => LinesOf::ThisHost,
            LogInput::Journal { .. } => LinesOf::EachLine,
        });
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
    /// The same for the syslog receiver's lines (only those given: none by default).
    pub stream_native_tags: NativeTags,
    /// This machine's name: the host of a file's lines unless its `--log` names another.
    pub local_host: String,
    /// `--cluster-host`: where the other hosts of the cluster take mail.
    pub cluster_hosts: Vec<hosts::ClusterHost>,
    /// Told `READY=1` once every log has been read to its end (systemd's `Type=notify`).
    pub notify: Option<crate::sdnotify::Notifier>,
}

/// Where a line came from, for the per-format counters: a `--log` of one [`LogFormat`] (file
/// or journal), or the syslog receiver (whose lines are read by their program tags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineOrigin {
    Log(LogFormat),
    Receiver,
}

impl LineOrigin {
    /// Every origin, in the order of [`IngestStats::by_origin`].
    pub const ALL: [LineOrigin; 5] = [
        LineOrigin::Log(LogFormat::Native),
        LineOrigin::Log(LogFormat::Postfix),
        LineOrigin::Log(LogFormat::Exim),
        LineOrigin::Log(LogFormat::Sendmail),
        LineOrigin::Receiver,
    ];

    /// Its name in metrics.
    pub fn name(self) -> &'static str {
        match self {
            LineOrigin::Log(LogFormat::Native) => "native",
            LineOrigin::Log(LogFormat::Postfix) => "postfix",
            LineOrigin::Log(LogFormat::Exim) => "exim",
            LineOrigin::Log(LogFormat::Sendmail) => "sendmail",
            LineOrigin::Receiver => "syslog_receiver",
        }
    }

    fn slot(self) -> usize {
        LineOrigin::ALL.iter().position(|o| *o == self).unwrap_or(0)
    }
}

/// What became of a line, for the per-format counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineOutcome {
    Applied,
    Ignored,
    Rejected,
}

impl LineOutcome {
    /// Every outcome, in the order of [`IngestStats::by_origin`]'s inner arrays.
    pub const ALL: [LineOutcome; 3] = [
        LineOutcome::Applied,
        LineOutcome::Ignored,
        LineOutcome::Rejected,
    ];

    /// Its name in metrics.
    pub fn name(self) -> &'static str {
        match self {
            LineOutcome::Applied => "applied",
            LineOutcome::Ignored => "ignored",
            LineOutcome::Rejected => "rejected",
        }
    }
}

/// Lines counted by [`LineOrigin`] and [`LineOutcome`] during one round of reading, added to
/// [`IngestStats`] when the round ends: a locked addition per counter a round rather than three
/// a line, which cost 5% of ingest.
#[derive(Debug, Default)]
pub struct LineCounts {
    by_origin: [[u64; LineOutcome::ALL.len()]; LineOrigin::ALL.len()],
}

impl LineCounts {
    /// Counts one line of `origin` that ended as `outcome`.
    pub fn count(&mut self, origin: LineOrigin, outcome: LineOutcome) {
        let i = LineOutcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(0);
        self.by_origin[origin.slot()][i] += 1;
    }
}

/// Counters the ingest thread keeps, read at shutdown and by the admin server.
#[derive(Debug)]
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
    /// Lines by [`LineOrigin`] and [`LineOutcome`] (in the order of their `ALL`).
    pub by_origin: [[AtomicU64; LineOutcome::ALL.len()]; LineOrigin::ALL.len()],
    /// Since when input has been waiting (see [`IngestStats::lag`]): nanoseconds after
    /// `epoch`, plus one; 0 while none waits.
    behind_since: AtomicU64,
    /// When the last round of reading ended: nanoseconds after `epoch`.
    last_round: AtomicU64,
    epoch: Instant,
}

/// How long the ingest thread may go without a round of reading before the time counts as lag:
/// an idle thread reads every [`IDLE_POLL`], a busy one many times a second, so a second means
/// it is held up (a snapshot written, an expiry sweep, a disk that hangs).
const STALL: Duration = Duration::from_secs(1);

impl Default for IngestStats {
    /// Counters at zero, behind from now on: nothing is applied yet.
    fn default() -> Self {
        IngestStats {
            lines: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            ignored: AtomicU64::new(0),
            too_long: AtomicU64::new(0),
            rotations: AtomicU64::new(0),
            truncations: AtomicU64::new(0),
            read_errors: AtomicU64::new(0),
            caught_up: AtomicBool::new(false),
            by_origin: Default::default(),
            behind_since: AtomicU64::new(1),
            last_round: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl IngestStats {
    /// Adds the lines a round counted.
    pub fn add(&self, counts: &LineCounts) {
        let mut by_outcome = [0; LineOutcome::ALL.len()];
        for (counted, slots) in counts.by_origin.iter().zip(&self.by_origin) {
            for ((&n, slot), total) in counted.iter().zip(slots).zip(&mut by_outcome) {
                if n > 0 {
                    slot.fetch_add(n, Ordering::Relaxed);
                    *total += n;
                }
            }
        }
        let [applied, ignored, rejected] = by_outcome;
        self.applied.fetch_add(applied, Ordering::Relaxed);
        self.ignored.fetch_add(ignored, Ordering::Relaxed);
        self.rejected.fetch_add(rejected, Ordering::Relaxed);
        self.lines
            .fetch_add(applied + ignored + rejected, Ordering::Relaxed);
    }

    /// Notes, after a round of reading, whether input is left waiting: the lag runs from the
    /// first round that left some until a round leaves none.
    pub fn note_waiting(&self, waiting: bool) {
        let since = &self.behind_since;
        let nanos = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        self.last_round.store(nanos, Ordering::Relaxed);
        if !waiting {
            since.store(0, Ordering::Relaxed);
        } else if since.load(Ordering::Relaxed) == 0 {
            since.store(nanos + 1, Ordering::Relaxed);
        }
    }

    /// How long input has been waiting to be applied: since start-up until the first catch-up,
    /// later since the first round of reading that left input unread (a file read to its
    /// budget, a stream's batches still queued); zero when the last round read everything.
    /// An upper bound on the age of the oldest line available but not yet applied; lines
    /// written since the last round (at most 50 ms ago when ingest is idle) do not count.
    /// A thread held up between rounds for more than [`STALL`] cannot see what waits: the
    /// time since its last round counts then, whether input waits or not.
    pub fn lag(&self) -> Duration {
        let now = self.epoch.elapsed();
        let streak = match self.behind_since.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => now.saturating_sub(Duration::from_nanos(since - 1)),
        };
        let stalled = now.saturating_sub(Duration::from_nanos(
            self.last_round.load(Ordering::Relaxed),
        ));
        if stalled > STALL {
            streak.max(stalled)
        } else {
            streak
        }
    }
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
    if sources
        .iter()
        .any(|s| matches!(s.input, LogInput::Journal { .. }))
    {
        journal::check(Path::new(journal::JOURNALCTL))?;
    }
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

/// How often files are checked for new lines when all were at their end.
const IDLE_POLL: Duration = Duration::from_millis(50);
/// How far ahead of the wall clock a line's time may be (clocks of hosts and zones drift).
pub const MAX_AHEAD: i64 = 300;
/// How often expired records are swept.
const EXPIRY_SWEEP: Duration = Duration::from_secs(60);

/// Starts the ingest thread.
/// `received`: the streams serve started (the syslog receiver); at [`Ingest::stop`] the thread
/// applies what they still hand over until their threads are gone (their owner stops them
/// first), then writes the snapshot.
pub fn spawn(
    config: IngestConfig,
    received: Vec<Received>,
    index: Arc<Index>,
) -> std::io::Result<Ingest> {
    let stats = Arc::new(IngestStats::default());
    let (stop, stop_rx) = crossbeam_channel::bounded(1);
    let thread_stats = Arc::clone(&stats);
    let thread = std::thread::Builder::new()
        .name("mtqpd-ingest".into())
        .spawn(move || run(config, received, &index, &thread_stats, &stop_rx))?;
    Ok(Ingest {
        thread,
        stop,
        stats,
    })
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

/// The tracker as the state directory left it, or a fresh one, with the files' positions
/// (none: every file is read from its start) when there is a usable snapshot.
fn restore(config: &IngestConfig) -> (Tracker, state::Positions, state::Cursors) {
    let fresh = || Tracker::new(config.reporting_mta.clone(), config.retention);
    let Some(dir) = &config.state_dir else {
        return (fresh(), Vec::new(), Vec::new());
    };
    let started = Instant::now();
    let decoded = state::load(dir).and_then(|payload| {
        let Some(payload) = payload else {
            return Ok(None);
        };
        let mut dec = state::Decoder::new(&payload);
        let positions = state::decode_positions(&mut dec)?;
        let cursors = state::decode_cursors(&mut dec)?;
        let tracker = Tracker::decode(
            &mut dec,
            config.reporting_mta.clone(),
            config.retention,
            unix_now().saturating_add(MAX_AHEAD),
        )?;
        if !dec.is_done() {
            return Err(state::Corrupt("trailing bytes in the payload".into()));
        }
        Ok(Some((positions, cursors, tracker)))
    });
    match decoded {
        Ok(None) => (fresh(), Vec::new(), Vec::new()),
        Ok(Some((positions, cursors, tracker))) => {
            eprintln!(
                "mtqpd: state: restored {} messages from {} in {} ms",
                tracker.restored_records(),
                dir.display(),
                started.elapsed().as_millis()
            );
            (tracker, positions, cursors)
        }
        Err(state::Corrupt(why)) => {
            eprintln!(
                "mtqpd: state: {} is unusable ({why}); rebuilding from the logs",
                dir.display()
            );
            (fresh(), Vec::new(), Vec::new())
        }
    }
}

/// The host a source's lines belong to, `local` being this machine's.
fn line_host(
    config: &IngestConfig,
    of: &LinesOf,
    local: HostId,
    tracker: &mut Tracker,
) -> LineHost {
    match of {
        LinesOf::ThisHost => LineHost::Fixed(local),
        // Checked as a host name when parsed: the table refuses only when full.
        LinesOf::Named(name) => LineHost::Fixed(
            tracker
                .hosts_mut()
                .intern(name.as_bytes(), true)
                .unwrap_or(local),
        ),
        LinesOf::EachLine => LineHost::each_line(
            syslog::SyslogClock::new(config.log_zone.clone(), unix_now()),
            local,
        ),
    }
}

/// A stream `mtqpd serve` started for ingest (the syslog receiver): its batches, whose lines
/// are read by their program tags and put on the hosts they name.
pub struct Received {
    /// What the rejection log calls it.
    pub name: String,
    pub batches: Receiver<stream::Batch>,
}

/// What ingest reads from, ready: the tracker, the files, the streams, and the journal
/// followers that feed some of the streams.
struct Opened {
    tracker: Tracker,
    sources: Vec<Source>,
    streams: Vec<StreamSource>,
    journals: Vec<journal::Journal>,
}

/// The key under which a journal source's cursor is kept.
fn cursor_key(source: &LogSource) -> Option<String> {
    match &source.input {
        LogInput::Journal { unit } => Some(format!("journal:{}", unit.as_deref().unwrap_or(""))),
        LogInput::File(_) => None,
    }
}

/// The tracker, the files to follow (each from its saved position if there is one), the
/// streams serve `received`, and, when `follow_journals`, the journal sources (each from its
/// saved cursor) with their followers started.
fn open(config: &IngestConfig, received: Vec<Received>, follow_journals: bool) -> Opened {
    let (mut tracker, positions, cursors) = restore(config);
    tracker.hosts_mut().add_cluster(&config.cluster_hosts);
    let local = tracker
        .hosts_mut()
        .intern(config.local_host.as_bytes(), true)
        .unwrap_or_default();
    let mut sources = Vec::new();
    let mut streams = Vec::new();
    let mut journals = Vec::new();
    for s in &config.sources {
        let parser = parser_for(s.format, &config.log_zone, &config.native_tags);
        let host = line_host(config, &s.host, local, &mut tracker);
        match &s.input {
            LogInput::File(path) => {
                let saved = positions
                    .iter()
                    .find(|(p, _)| p == path)
                    .map(|(_, pos)| pos.clone());
                let follower = match saved {
                    Some(pos) => Follower::resume(path.clone(), MAX_LOG_LINE, pos),
                    None => Follower::new(path.clone(), MAX_LOG_LINE),
                };
                sources.push(Source {
                    follower,
                    origin: LineOrigin::Log(s.format),
                    parser,
                    host,
                });
            }
            LogInput::Journal { unit } if follow_journals => {
                let key = cursor_key(s).unwrap_or_default();
                let saved = cursors.iter().find(|(k, _)| *k == key).map(|(_, c)| c);
                let (tx, batches) = crossbeam_channel::bounded(stream::CHANNEL_BATCHES);
                let config = journal::JournalConfig::new(unit.clone(), saved.cloned());
                match journal::spawn(config, tx) {
                    Ok(j) => journals.push(j),
                    Err(e) => {
                        eprintln!("mtqpd: ingest: cannot follow {key}: {e}");
                        continue;
                    }
                }
                streams.push(StreamSource {
                    name: key.clone(),
                    origin: LineOrigin::Log(s.format),
                    batches,
                    parser,
                    host,
                    cursor: Some((key, saved.map(|c| c.as_str().into()))),
                    finished: false,
                });
            }
            LogInput::Journal { .. } => {}
        }
    }
    for r in received {
        streams.push(StreamSource {
            name: r.name,
            origin: LineOrigin::Receiver,
            batches: r.batches,
            parser: Box::new(stream::TagRouter::new(
                &config.log_zone,
                config.stream_native_tags.clone(),
            )),
            host: LineHost::each_line(
                syslog::SyslogClock::new(config.log_zone.clone(), unix_now()),
                local,
            ),
            cursor: None,
            finished: false,
        });
    }
    Opened {
        tracker,
        sources,
        streams,
        journals,
    }
}

/// Writes the snapshot: every file's position, every journal's cursor and the tracker,
/// together.
fn snapshot(dir: &Path, p: &Pipeline<'_>, index: &Index) {
    let positions: Vec<_> = p
        .sources
        .iter()
        .filter_map(|s| Some((s.follower.path().to_path_buf(), s.follower.position()?)))
        .collect();
    let cursors: Vec<_> = p
        .streams
        .iter()
        .filter_map(|s| {
            let (key, cursor) = s.cursor.as_ref()?;
            Some((key.clone(), cursor.as_deref()?.to_owned()))
        })
        .collect();
    let mut enc = state::Encoder::default();
    state::encode_positions(&mut enc, &positions);
    state::encode_cursors(&mut enc, &cursors);
    p.tracker.encode(&mut enc, index);
    if let Err(e) = state::save(dir, &enc.buf) {
        eprintln!("mtqpd: state: cannot write {}: {e}", dir.display());
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
    let Opened {
        mut tracker,
        sources,
        ..
    } = open(&fresh, Vec::new(), false);
    tracker.enable_audit();
    let mut p = Pipeline {
        sources,
        streams: Vec::new(),
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

/// Waits up to `wait` for a batch from a stream (files are polled) or for `stop`; true when
/// stopped.
fn wait_for_input(p: &Pipeline<'_>, stop: Option<&Receiver<()>>, wait: Duration) -> bool {
    let mut select = crossbeam_channel::Select::new();
    let stop_at = stop.map(|s| select.recv(s));
    for s in p.streams.iter().filter(|s| !s.finished) {
        select.recv(&s.batches);
    }
    match select.ready_timeout(wait) {
        Ok(i) if Some(i) == stop_at => stop.is_some_and(|s| {
            matches!(
                s.try_recv(),
                Ok(()) | Err(crossbeam_channel::TryRecvError::Disconnected)
            )
        }),
        _ => false,
    }
}

fn run(
    config: IngestConfig,
    received: Vec<Received>,
    index: &Index,
    stats: &IngestStats,
    stop: &Receiver<()>,
) {
    let opened = open(&config, received, true);
    index.reserve(opened.tracker.restored_records());
    let mut p = Pipeline {
        sources: opened.sources,
        streams: opened.streams,
        tracker: opened.tracker,
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
        stats.note_waiting(more);
        let now = unix_now();
        p.tracker.publish(index, now);
        if last_sweep.elapsed() >= EXPIRY_SWEEP {
            p.tracker.expire(index, now);
            last_sweep = Instant::now();
        }
        if !more && !stats.caught_up.swap(true, Ordering::Relaxed) {
            let status = format!(
                "ingest caught up: {} lines, {} records",
                stats.lines.load(Ordering::Relaxed),
                index.len()
            );
            eprintln!("mtqpd: {status}");
            // After the publish above: a client told "ready" finds every line in the index.
            if let Some(notify) = &config.notify {
                notify.ready(&status);
            }
        }
        let lines = stats.lines.load(Ordering::Relaxed);
        if let Some(dir) = &config.state_dir {
            if lines != lines_at_snapshot && last_snapshot.elapsed() >= snapshot_gap {
                let started = Instant::now();
                snapshot(dir, &p, index);
                snapshot_gap = config.snapshot_interval.max(started.elapsed() * 10);
                lines_at_snapshot = lines;
                last_snapshot = Instant::now();
            }
        }
        let wait = if more { Duration::ZERO } else { IDLE_POLL };
        if wait_for_input(&p, Some(stop), wait) {
            break;
        }
    }
    // What the streams still hand over (a receiver drains its sockets when stopped, a journal
    // follower's last batches wait in its channel) goes in before the snapshot.
    for j in opened.journals {
        eprintln!("mtqpd: journal: {}", j.stats());
        j.stop();
    }
    while !p.streams_finished() {
        if !p.round() {
            wait_for_input(&p, None, IDLE_POLL);
        }
    }
    p.tracker.publish(index, unix_now());
    if let Some(dir) = &config.state_dir {
        snapshot(dir, &p, index);
    }
    if !p.rejects.last.is_empty() {
        eprintln!(
            "mtqpd: ingest: rejected lines by reason: {}",
            p.rejects.summary()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stats whose clock started `ago` before now, as if the thread had run that long.
    fn started(ago: Duration) -> IngestStats {
        IngestStats {
            epoch: Instant::now()
                .checked_sub(ago)
                .expect("a clock that far back"),
            ..IngestStats::default()
        }
    }

    #[test]
    fn lag_runs_while_input_waits_and_is_zero_once_a_round_reads_everything() {
        let stats = started(Duration::from_secs(30));
        assert!(
            stats.lag() >= Duration::from_secs(30),
            "behind since start-up"
        );
        stats.note_waiting(false);
        assert_eq!(stats.lag(), Duration::ZERO);
        stats.note_waiting(true);
        assert!(stats.lag() < STALL, "{:?}", stats.lag());
    }

    #[test]
    fn a_thread_held_up_between_rounds_counts_as_lagging() {
        let stats = started(Duration::from_secs(30));
        stats.note_waiting(false);
        // The last round ended 10 s ago: the thread is held up, nothing waiting or not.
        stats.last_round.store(
            u64::try_from(Duration::from_secs(20).as_nanos()).unwrap(),
            Ordering::Relaxed,
        );
        let lag = stats.lag();
        assert!(
            lag >= Duration::from_secs(10) && lag < Duration::from_secs(30),
            "{lag:?}"
        );
    }
}
