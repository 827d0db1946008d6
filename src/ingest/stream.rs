//! Lines that reach ingest from a stream rather than from a file: the syslog receiver and the
//! systemd journal. Each stream source runs on its own thread and hands the ingest thread
//! [`Batch`]es of whole syslog lines over a bounded channel; a full channel stops the source
//! from reading, which is how backpressure reaches a TCP sender.
//!
//! A line in a batch is what [`super::syslog::parse_prefix`] reads: RFC 5424 with its `<PRI>`,
//! or an RFC 3164 / RFC 3339 line with its `<PRI>` removed. Which MTA's parser reads it is
//! chosen by its program tag, on the ingest thread.

use super::event::{Event, LineParser, Outcome};
use super::exim::{self, EximParser};
use super::native::{NativeParser, NativeTags};
use super::postfix::PostfixParser;
use super::sendmail::{self, SendmailParser};
use super::syslog::{parse_prefix, Prefix, SyslogClock};
use super::timezone::Zone;
use crate::clock::unix_now;

/// Most octets of lines one batch carries (a source sends a batch when it is this full or has
/// nothing more to read).
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Batches a stream source may have in flight: with [`MAX_BATCH_BYTES`], bounds the memory
/// between a source and the ingest thread at 4 MiB.
pub const CHANNEL_BATCHES: usize = 16;

/// Whole syslog lines, in the order the source received them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The lines, one after another, without line ends.
    pub bytes: Vec<u8>,
    /// Where each line ends in `bytes` (the first starts at 0, each next one at the end before).
    pub ends: Vec<u32>,
    /// For the journal: the cursor of the last entry in this batch, to resume after it once the
    /// batch is applied and saved in the state directory. None for the syslog receiver.
    pub cursor: Option<Box<str>>,
}

impl Batch {
    /// Appends one line. The caller keeps `bytes` within [`MAX_BATCH_BYTES`] plus one line.
    pub fn push(&mut self, line: &[u8]) {
        self.bytes.extend_from_slice(line);
        // Bounded by MAX_BATCH_BYTES plus one line of at most 64 KiB: far below u32::MAX.
        self.ends.push(self.bytes.len() as u32);
    }

    /// The lines, in order.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| &self.bytes[start as usize..end as usize])
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// True once the batch should be sent.
    pub fn is_full(&self) -> bool {
        self.bytes.len() >= MAX_BATCH_BYTES
    }
}

/// The parser of a stream of many programs' lines (the syslog receiver): each line goes to
/// the parser of its program tag — every `syslog_name` of a Postfix instance (`postfix/smtpd`,
/// `postfix-hub2/qmgr`, `postfix/submission/smtpd`), Exim's (`exim`, `exim4`), sendmail's
/// (`sendmail`, `sm-mta`, …) — and native lines only under the allowed tags. Other programs'
/// lines are ignored.
pub struct TagRouter {
    clock: SyslogClock,
    postfix: PostfixParser,
    exim: EximParser,
    sendmail: SendmailParser,
    native: NativeParser,
    native_tags: NativeTags,
}

impl TagRouter {
    /// A router whose parsers read classic timestamps in `zone`.
    pub fn new(zone: &Zone, native_tags: NativeTags) -> TagRouter {
        let clock = || SyslogClock::new(zone.clone(), unix_now());
        TagRouter {
            clock: clock(),
            postfix: PostfixParser::new(clock(), native_tags.clone()),
            exim: EximParser::new(zone.clone(), clock(), native_tags.clone()),
            sendmail: SendmailParser::new(clock(), native_tags.clone()),
            native: NativeParser::new(clock()),
            native_tags,
        }
    }
}

impl LineParser for TagRouter {
    fn parse(&mut self, line: &[u8], emit: &mut dyn FnMut(Event)) -> Outcome {
        let Some(prefix) = parse_prefix(line, &mut self.clock) else {
            return Outcome::Rejected("no syslog prefix");
        };
        self.parse_prefixed(&prefix, line, emit)
    }

    fn parse_prefixed(
        &mut self,
        prefix: &Prefix<'_>,
        line: &[u8],
        emit: &mut dyn FnMut(Event),
    ) -> Outcome {
        let program = prefix.program;
        let parser: &mut dyn LineParser = if self.native_tags.allows(program) {
            &mut self.native
        } else if program.starts_with(b"postfix") {
            &mut self.postfix
        } else if exim::is_exim_program(program) {
            &mut self.exim
        } else if sendmail::is_sendmail_program(program) {
            &mut self.sendmail
        } else {
            return Outcome::Ignored;
        };
        parser.parse_prefixed(prefix, line, emit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(router: &mut TagRouter, line: &str) -> (Outcome, Vec<Event>) {
        let mut events = Vec::new();
        let outcome = router.parse(line.as_bytes(), &mut |e| events.push(e));
        (outcome, events)
    }

    #[test]
    fn each_line_goes_to_the_parser_of_its_program() {
        let mut r = TagRouter::new(&Zone::utc(), NativeTags::new(&["mtqp"]));
        let t = "2026-12-03T08:00:00+00:00";
        for line in [
            format!("{t} hub1 postfix/qmgr[2]: 4AB1C2: removed"),
            format!("{t} hub2 postfix-hub2/qmgr[2]: 4AB1C2: removed"),
            format!("{t} hub2 postfix/submission/smtpd[2]: 4AB1C2: client=a[192.0.2.1]"),
            format!("{t} hub3 exim4[7]: 1iGHiT-00007b-Na Completed"),
            format!("{t} hub4 sm-mta[9]: 6B36ZJnG031684: from=<a@b>, size=1, class=0, nrcpts=1, msgid=<x@y>, relay=c [192.0.2.1]"),
        ] {
            let (outcome, events) = route(&mut r, &line);
            assert_eq!(outcome, Outcome::Parsed, "{line}");
            assert!(matches!(&events[..], [Event::Mta(_)]), "{line}: {events:?}");
        }
        // Native lines only under an allowed tag; other programs are not ours.
        let native =
            "mtqp: event=accept time=2026-12-03T08:00:00Z envid=e mtrk=AAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let (outcome, events) = route(&mut r, &format!("{t} hub1 mtqp[3]: {native}"));
        assert_eq!((outcome, events.len()), (Outcome::Parsed, 1));
        for tag in ["postfix/smtpd", "dovecot", "amavis"] {
            let (_, events) = route(&mut r, &format!("{t} hub1 {tag}[3]: {native}"));
            assert!(events.is_empty(), "{tag}");
        }
        assert_eq!(
            route(&mut r, &format!("{t} hub1 dovecot[3]: imap-login: Login")).0,
            Outcome::Ignored
        );
        assert_eq!(
            route(&mut r, "no prefix at all").0,
            Outcome::Rejected("no syslog prefix")
        );
    }

    #[test]
    fn lines_come_back_as_pushed() {
        let mut b = Batch::default();
        assert!(b.is_empty());
        for line in [
            &b"Dec  3 08:00:00 hub postfix/qmgr[1]: A: removed"[..],
            b"",
            b"x",
        ] {
            b.push(line);
        }
        let lines: Vec<_> = b.lines().collect();
        assert_eq!(
            lines,
            [
                &b"Dec  3 08:00:00 hub postfix/qmgr[1]: A: removed"[..],
                b"",
                b"x"
            ]
        );
        assert!(!b.is_full());
    }
}
