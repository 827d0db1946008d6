//! One client connection: its socket, the input not yet answered, and its [`Session`]. Owned by
//! one worker for its whole life. Input is read into the worker's scratch buffer and answered
//! in place; only an incomplete last line (or lines left over when the connection must yield)
//! is copied into the connection's own buffer, which is freed again when it empties.

use std::io::{self, Read};
use std::time::Instant;

use mio::net::TcpStream;

use super::output::Bytes;
use super::session::{Session, Turn};
use super::Shared;
use crate::stats::WorkerStats;

/// What the worker should do with a connection after driving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait for the next readiness event.
    Wait,
    /// It has more work but used its turn: drive it again after the others.
    Again,
    /// Close it.
    Close,
}

/// Reads one connection may do in one turn. Commands are budgeted separately; this bounds
/// input that yields no command, such as an endless over-long line being discarded.
const READS_PER_TURN: usize = 16;

/// Input buffers larger than this are released when they empty, so idle connections cost
/// little memory.
const KEEP_INBUF: usize = 2048;

/// One client connection.
pub struct Conn {
    pub stream: TcpStream,
    session: Session,
    /// Input read but not yet answered.
    inbuf: Vec<u8>,
    /// When the last input arrived (for the idle timeout).
    pub last_activity: Instant,
    /// When the input being answered was read (for latency).
    read_at: Instant,
    /// The socket may have unread input (events are edge-triggered).
    readable: bool,
    /// The client closed its side; answer what was received, then close.
    read_closed: bool,
    /// The server is shutting down: read nothing new.
    draining: bool,
    /// Queued in the worker's list of connections to drive again.
    pub scheduled: bool,
}

impl Conn {
    /// A new connection, greeted.
    pub fn new(stream: TcpStream, shared: &Shared, now: Instant) -> Conn {
        let mut session = Session::default();
        session
            .out
            .push(Bytes::Shared(shared.greeting.clone()), None);
        Conn {
            stream,
            session,
            inbuf: Vec::new(),
            last_activity: now,
            read_at: now,
            readable: true,
            read_closed: false,
            draining: false,
            scheduled: false,
        }
    }

    /// Notes a readiness event.
    pub fn on_event(&mut self, readable: bool) {
        self.readable |= readable;
    }

    /// Stops reading; what was received is still answered and written.
    pub fn drain(&mut self) {
        self.draining = true;
    }

    /// Queues `line` as the last thing this connection is sent, and closes after it.
    pub fn close_with(&mut self, line: &'static [u8]) {
        self.session.out.push(Bytes::Static(line), None);
        self.session.closing = true;
    }

    /// Octets queued and not yet written.
    pub fn pending_output(&self) -> usize {
        self.session.out.pending_bytes()
    }

    /// Reads, answers and writes as far as the turn allows.
    pub fn drive(
        &mut self,
        scratch: &mut [u8],
        shared: &Shared,
        stats: &mut WorkerStats,
        now_unix: i64,
    ) -> Next {
        let mut turn = Turn {
            shared,
            stats,
            read_at: self.read_at,
            now_unix,
            budget: shared.limits.commands_per_turn,
        };
        if self.flush(turn.stats).is_err() {
            return Next::Close;
        }
        let mut reads = 0;
        loop {
            if !self.inbuf.is_empty() {
                let used = self.session.answer_lines(&self.inbuf, &mut turn);
                self.inbuf.drain(..used);
                if self.inbuf.is_empty() && self.inbuf.capacity() > KEEP_INBUF {
                    self.inbuf = Vec::new();
                }
                if self.session.has_complete_line(&self.inbuf) {
                    // Out of budget or over the high-water mark.
                    break;
                }
            }
            if self.session.closing
                || self.draining
                || self.read_closed
                || !self.readable
                || turn.budget == 0
                || reads == READS_PER_TURN
                || self.session.output_full(shared)
            {
                break;
            }
            reads += 1;
            match self.stream.read(scratch) {
                Ok(0) => self.read_closed = true,
                Ok(n) => {
                    let now = Instant::now();
                    self.last_activity = now;
                    self.read_at = now;
                    turn.read_at = now;
                    if self.inbuf.is_empty() {
                        let used = self.session.answer_lines(&scratch[..n], &mut turn);
                        self.inbuf.extend_from_slice(&scratch[used..n]);
                    } else {
                        self.inbuf.extend_from_slice(&scratch[..n]);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Next::Close,
            }
        }
        let pending_line = self.session.has_complete_line(&self.inbuf);
        if (self.read_closed || self.draining) && !pending_line {
            // Nothing more will be answered: an incomplete last line is dropped.
            self.session.closing = true;
        }
        if self.flush(turn.stats).is_err() {
            return Next::Close;
        }
        if self.session.closing {
            return if self.session.out.is_empty() {
                Next::Close
            } else {
                Next::Wait
            };
        }
        let more_input = pending_line || (self.readable && !self.draining && !self.read_closed);
        if more_input && !self.session.output_full(shared) {
            Next::Again
        } else {
            Next::Wait
        }
    }

    fn flush(&mut self, stats: &mut WorkerStats) -> io::Result<bool> {
        if self.session.out.is_empty() {
            return Ok(true);
        }
        self.session.out.write_to(&mut self.stream, stats)
    }
}
