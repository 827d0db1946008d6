//! A connection's unsent answers: a queue of shared, pre-encoded byte slices written with
//! vectored writes, so that answering never copies a tracking body. Each answer's last piece
//! carries the time its command was read, so the write that finishes it records its latency.

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
    /// The stored part of an index record's answer.
    Record(Entry),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Static(s) => s,
            Bytes::Shared(s) => s,
            Bytes::Owned(s) => s,
            Bytes::Record(e) => e.body(),
        }
    }
}

#[derive(Debug)]
struct Piece {
    bytes: Bytes,
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
        let len = bytes.as_slice().len();
        if len == 0 && completes.is_none() {
            return;
        }
        self.pending += len;
        self.pieces.push_back(Piece { bytes, completes });
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
            for (i, p) in self.pieces.iter().take(MAX_IOV).enumerate() {
                let s = p.bytes.as_slice();
                slices[i] = IoSlice::new(if i == 0 { &s[self.written..] } else { s });
                n = i + 1;
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
            let left = front.bytes.as_slice().len() - self.written;
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

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
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
        assert_eq!(sink.got, b"+OK\r\n+OK+ x");
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
