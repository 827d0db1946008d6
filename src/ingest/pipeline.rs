//! The pipeline of one ingest: the files and streams lines come from, the parser of each, the
//! host each line belongs to, the tracker they feed, and the counters. One round reads a
//! bounded amount from every source, so that no file or stream starves the others.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};

use super::event::{Event, LineParser, Outcome};
use super::line_host::{self, LineHost};
use super::stream::Batch;
use super::tail::Follower;
use super::tracker::Tracker;
use super::{IngestStats, LineCounts, LineOrigin, LineOutcome};
use crate::clock::unix_now;
use crate::index::Index;

/// Longest log line kept; longer ones are skipped and counted (Postfix itself caps at 2000).
pub const MAX_LOG_LINE: usize = 64 * 1024;
/// Bytes read from one source before the others get a turn.
const READ_BUDGET: usize = 4 * 1024 * 1024;
/// The reason a line dated further ahead of the clock than [`super::MAX_AHEAD`] is refused.
const AHEAD: &str = "event time ahead of the clock";

/// One followed file, the parser of its format, and whose lines it holds.
pub struct Source {
    pub follower: Follower,
    pub origin: LineOrigin,
    pub parser: Box<dyn LineParser + Send>,
    pub host: LineHost,
}

/// A stream of lines (the syslog receiver, the journal): batches from its thread, the parser
/// of its lines, the host of each line.
pub struct StreamSource {
    /// What the rejection log calls it.
    pub name: String,
    pub origin: LineOrigin,
    pub batches: Receiver<Batch>,
    pub parser: Box<dyn LineParser + Send>,
    pub host: LineHost,
    /// For the journal: where its state is kept (the `--log` it comes from) and the cursor of
    /// the last batch applied.
    pub cursor: Option<(String, Option<Box<str>>)>,
    /// Its thread is gone and every batch was taken.
    pub finished: bool,
}

/// Shortest gap between two log lines about the same kind of rejected input.
const REJECT_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Logs rejected lines once per reason per interval, with the count in between, so a flood of
/// bad lines cannot flood the log.
#[derive(Default)]
pub struct RejectLog {
    pub last: HashMap<&'static str, (Instant, u64)>,
    /// Count only, log nothing (offline replays report the totals themselves).
    quiet: bool,
}

impl RejectLog {
    pub fn quiet() -> RejectLog {
        RejectLog {
            quiet: true,
            ..RejectLog::default()
        }
    }

    /// One line per reason with its total, for the shutdown report.
    pub fn summary(&self) -> String {
        let mut reasons: Vec<_> = self
            .last
            .iter()
            .map(|(r, (_, n))| format!("{r}: {n}"))
            .collect();
        reasons.sort();
        reasons.join("; ")
    }

    /// Counts a line of `source` refused for `reason`, and logs it when that reason was not
    /// logged for a while.
    pub fn note(&mut self, source: &dyn fmt::Display, reason: &'static str) {
        let now = Instant::now();
        let entry = self
            .last
            .entry(reason)
            .or_insert((now - REJECT_LOG_INTERVAL, 0));
        entry.1 += 1;
        if !self.quiet && now.duration_since(entry.0) >= REJECT_LOG_INTERVAL {
            eprintln!(
                "mtqpd: ingest: {source}: rejected line: {reason} ({} so far)",
                entry.1
            );
            entry.0 = now;
        }
    }
}

/// The pipeline of one ingest: files and streams, their parsers, the tracker and the counters.
pub struct Pipeline<'a> {
    pub sources: Vec<Source>,
    pub streams: Vec<StreamSource>,
    pub tracker: Tracker,
    pub index: &'a Index,
    pub rejects: RejectLog,
    pub stats: &'a IngestStats,
}

/// What one line needs from the pipeline, borrowed apart from the source it comes from.
struct Sink<'a, 'b> {
    tracker: &'a mut Tracker,
    index: &'b Index,
    rejects: &'a mut RejectLog,
    stats: &'b IngestStats,
    /// The lines of this round, added to `stats` when it ends.
    counts: LineCounts,
    /// Lines dated after this are refused: one such line would move the correlation clock,
    /// which ages every queue id, for ever.
    latest: i64,
}

impl Sink<'_, '_> {
    /// Parses one line of `source` and applies its events, each on the line's host.
    fn line(
        &mut self,
        source: &dyn fmt::Display,
        origin: LineOrigin,
        parser: &mut dyn LineParser,
        line_host: &mut LineHost,
        line: &[u8],
    ) {
        let (tracker, index, latest) = (&mut *self.tracker, self.index, self.latest);
        let mut refused = None;
        let (prefix, host) = line_host.of(line, tracker.hosts_mut());
        let outcome = match host {
            Ok(host) => {
                let mut emit = |event: Event| {
                    if event.time().is_some_and(|t| t > latest) {
                        refused = Some(AHEAD);
                    } else if let Err(why) = line_host::apply(event, host, tracker, index) {
                        refused = Some(why);
                    }
                };
                match &prefix {
                    Some(p) => parser.parse_prefixed(p, line, &mut emit),
                    None => parser.parse(line, &mut emit),
                }
            }
            Err(why) => Outcome::Rejected(why),
        };
        let outcome = match (outcome, refused) {
            (Outcome::Parsed, Some(why)) => Outcome::Rejected(why),
            (outcome, _) => outcome,
        };
        let counted = match outcome {
            Outcome::Parsed => LineOutcome::Applied,
            Outcome::Ignored => LineOutcome::Ignored,
            Outcome::Rejected(why) => {
                self.rejects.note(source, why);
                LineOutcome::Rejected
            }
        };
        self.counts.count(origin, counted);
    }
}

impl Pipeline<'_> {
    /// Reads what is new in every file and stream, a bounded amount each. True when some
    /// source has more.
    pub fn round(&mut self) -> bool {
        let mut more = false;
        let mut sink = Sink {
            tracker: &mut self.tracker,
            index: self.index,
            rejects: &mut self.rejects,
            stats: self.stats,
            counts: LineCounts::default(),
            latest: unix_now().saturating_add(super::MAX_AHEAD),
        };
        for source in &mut self.sources {
            let path = source.follower.path().display().to_string();
            let (parser, line_host, origin) =
                (&mut *source.parser, &mut source.host, source.origin);
            let mut on_line = |line: &[u8]| sink.line(&path, origin, parser, line_host, line);
            match source.follower.poll(READ_BUDGET, &mut on_line) {
                Ok(p) => {
                    let stats = sink.stats;
                    stats.too_long.fetch_add(p.too_long, Ordering::Relaxed);
                    stats.rotations.fetch_add(p.rotations, Ordering::Relaxed);
                    stats
                        .truncations
                        .fetch_add(p.truncations, Ordering::Relaxed);
                    // Once per line, so the summary's total is the counter's.
                    for _ in 0..p.too_long {
                        sink.rejects.note(&path, "line longer than 64 KiB");
                    }
                }
                Err(e) => {
                    let stats = sink.stats;
                    stats.read_errors.fetch_add(1, Ordering::Relaxed);
                    sink.rejects.note(&path, "read error");
                    if stats.read_errors.load(Ordering::Relaxed) == 1 {
                        eprintln!("mtqpd: ingest: {path}: {e}");
                    }
                }
            }
            more |= source.follower.has_more();
        }
        for stream in &mut self.streams {
            more |= stream.take(&mut sink);
        }
        sink.stats.add(&sink.counts);
        more
    }

    /// Whether every stream's thread is gone and its batches taken.
    pub fn streams_finished(&self) -> bool {
        self.streams.iter().all(|s| s.finished)
    }
}

impl StreamSource {
    /// Applies the batches waiting, up to [`READ_BUDGET`] octets. True when more wait.
    fn take(&mut self, sink: &mut Sink<'_, '_>) -> bool {
        let mut taken = 0;
        while taken < READ_BUDGET {
            let batch = match self.batches.try_recv() {
                Ok(b) => b,
                Err(TryRecvError::Empty) => return false,
                Err(TryRecvError::Disconnected) => {
                    self.finished = true;
                    return false;
                }
            };
            taken += batch.bytes.len();
            for line in batch.lines() {
                sink.line(
                    &self.name,
                    self.origin,
                    &mut *self.parser,
                    &mut self.host,
                    line,
                );
            }
            if let (Some((_, cursor)), Some(c)) = (&mut self.cursor, batch.cursor) {
                *cursor = Some(c);
            }
        }
        !self.batches.is_empty()
    }
}
