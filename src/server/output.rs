//! A connection's unsent answers: a queue of shared, pre-encoded pieces written with vectored
//! writes, so that answering never copies a tracking body. A piece is one slice, or an index
//! record's answer: its own slices around the ones every answer shares ([`Entry::wire`]).
//! Each answer's last piece carries the time its command was read, so the write that finishes
//! it records its latency.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;
use std::time::Instant;

use crate::index::Entry;
use crate::protocol::command::CommandKind;
use crate::stats::WorkerStats;

/// Bytes of one piece of an answer.
#[derive(Debug, Clone)]
pub enum Bytes {
    Static(&'static [u8]),
    Shared(Arc<[u8]>),
    Owned(Box<[u8]>),
    /// An index record's whole answer.
    Record(Entry),
}

/// Most slices one piece is made of.
const PIECE_SLICES: usize = 5;

impl Bytes {
    /// The piece's slices in order, some possibly empty.
    fn slices(&self) -> [&[u8]; PIECE_SLICES] {
        let one = |s| [s, &[][..], &[], &[], &[]];
        match self {
            Bytes::Static(s) => one(s),
            Bytes::Shared(s) => one(s),
            Bytes::Owned(s) => one(s),
            Bytes::Record(e) => e.wire(),
        }
    }

    fn len(&self) -> usize {
        self.slices().iter().map(|s| s.len()).sum()
    }
}

#[derive(Debug)]
struct Piece {
    bytes: Bytes,
    /// Octets of `bytes` (a record's five slices are not summed again at every write).
    len: usize,
    /// Set on the last piece of an answer: which command, read when.
    completes: Option<(CommandKind, Instant)>,
}

/// Most slices handed to one `writev`.
const MAX_IOV: usize = 64;

/// The queue of unsent answers of one connection.
#[derive(Debug, Default)]
pub struct Output {
    pieces: VecDeque<Piece>,
    /// Octets of the front piece already written.
    written: usize,
    /// Octets queued and not yet written.
    pending: usize,
}

impl Output {
    /// Queues a piece; `completes` marks the last piece of a command's answer.
    pub fn push(&mut self, bytes: Bytes, completes: Option<(CommandKind, Instant)>) {
        let len = bytes.len();
        if len == 0 && completes.is_none() {
            return;
        }
        self.pending += len;
        self.pieces.push_back(Piece {
            bytes,
            len,
            completes,
        });
    }

    /// Octets waiting to be written.
    pub fn pending_bytes(&self) -> usize {
        self.pending
    }

    /// Pieces waiting to be written.
    pub fn pending_pieces(&self) -> usize {
        self.pieces.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// Writes as much as `sink` takes. Ok(true) when everything was written, Ok(false) when
    /// the sink would block. Latency of every answer finished by this call is recorded.
    pub fn write_to(&mut self, sink: &mut impl Write, stats: &mut WorkerStats) -> io::Result<bool> {
        while !self.pieces.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let mut n = 0;
            // Octets of the front piece already written, skipped.
            let mut skip = self.written;
            'fill: for p in &self.pieces {
                for s in p.bytes.slices() {
                    if skip >= s.len() {
                        skip -= s.len();
                        continue;
                    }
                    if n == MAX_IOV {
                        break 'fill;
                    }
                    slices[n] = IoSlice::new(&s[skip..]);
                    skip = 0;
                    n += 1;
                }
            }
            let wrote = match sink.write_vectored(&slices[..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(w) => w,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            stats.counters.bytes_out.add(wrote as u64);
            self.advance(wrote, stats);
        }
        Ok(true)
    }

    fn advance(&mut self, mut wrote: usize, stats: &mut WorkerStats) {
        self.pending -= wrote;
        let mut now = None;
        while let Some(front) = self.pieces.front() {
            let left = front.len - self.written;
            if wrote < left {
                self.written += wrote;
                return;
            }
            wrote -= left;
            self.written = 0;
            if let Some((kind, read_at)) = front.completes {
                let now = *now.get_or_insert_with(Instant::now);
                stats.record(
                    kind,
                    now.saturating_duration_since(read_at).as_nanos() as u64,
                );
            }
            self.pieces.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that takes at most `chunk` octets a call and then blocks after `calls` calls.
    struct Trickle {
        got: Vec<u8>,
        chunk: usize,
        calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.calls == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls -= 1;
            let n = buf.len().min(self.chunk);
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.calls == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls -= 1;
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.chunk - n);
                self.got.extend_from_slice(&b[..take]);
                n += take;
            }
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_record_goes_out_as_its_slices_and_the_shared_ones_whatever_the_chunks() {
        let head = &b"\r\nReporting-MTA: dns; output-test.example\r\nArrival-Date: "[..];
        let answer = |envid: &[u8]| {
            let wire = [
                crate::index::render::FRAME_PREFIX,
                envid,
                head,
                b"Thu, 3 Dec 2026 14:45:54 +0000\r\n",
                crate::index::render::FRAME_SUFFIX,
            ]
            .concat();
            let e = Entry::new(envid, &[1; 20], 0, &wire, b"").unwrap();
            assert_eq!(e.shared_head(), head);
            (e, wire)
        };
        let ((a, wire_a), (b, wire_b)) = (answer(b"a@x"), answer(b"bb@x"));
        for chunk in [1, 7, 64, 10_000] {
            let mut out = Output::default();
            let mut stats = WorkerStats::default();
            let t = Instant::now();
            out.push(Bytes::Record(a.clone()), Some((CommandKind::Track, t)));
            out.push(Bytes::Record(b.clone()), Some((CommandKind::Track, t)));
            assert_eq!(out.pending_bytes(), wire_a.len() + wire_b.len());
            let mut sink = Trickle {
                got: Vec::new(),
                chunk,
                calls: usize::MAX,
            };
            assert!(out.write_to(&mut sink, &mut stats).unwrap());
            assert_eq!(sink.got, [&wire_a[..], &wire_b].concat(), "chunk {chunk}");
            assert_eq!(stats.count(CommandKind::Track), 2);
        }
    }

    #[test]
    fn partial_writes_resume_where_they_stopped_and_record_once() {
        let mut out = Output::default();
        let mut stats = WorkerStats::default();
        let t = Instant::now();
        out.push(Bytes::Static(b"+OK\r\n"), Some((CommandKind::Comment, t)));
        out.push(
            Bytes::Shared(Arc::from(&b"+OK+ x\r\nbody\r\n.\r\n"[..])),
            Some((CommandKind::Track, t)),
        );
        out.push(Bytes::Owned(b"tail"[..].into()), None);
        assert_eq!(out.pending_bytes(), 5 + 17 + 4);
        let mut sink = Trickle {
            got: Vec::new(),
            chunk: 3,
            calls: 4,
        };
        assert!(!out.write_to(&mut sink, &mut stats).unwrap());
        assert_eq!(sink.got, b"+OK\r\n+OK+ x\r");
        assert_eq!(stats.count(CommandKind::Comment), 1);
        assert_eq!(stats.count(CommandKind::Track), 0);
        sink.calls = 100;
        assert!(out.write_to(&mut sink, &mut stats).unwrap());
        assert_eq!(sink.got, b"+OK\r\n+OK+ x\r\nbody\r\n.\r\ntail");
        assert_eq!(stats.count(CommandKind::Track), 1);
        assert!(out.is_empty());
        assert_eq!(out.pending_bytes(), 0);
        assert_eq!(stats.counters.bytes_out.get(), 26);
    }
}
