//! One client connection: its socket, its transport (plaintext, or rustls after STARTTLS), the
//! input not yet answered, and its [`Session`]. Owned by one worker for its whole life.
//!
//! Plaintext input is read into the worker's scratch buffer and answered in place; only an
//! incomplete last line (or lines left over when the connection must yield) is copied into the
//! connection's own buffer, which is freed again when it empties. Under TLS, rustls is driven
//! by hand over the non-blocking socket (`read_tls` / `process_new_packets` / `reader` /
//! `writer` / `write_tls`, as in rustls' `tlsserver-mio` example), with the same bounds.

use std::io::{self, Read, Write};
use std::time::Instant;

use mio::net::TcpStream;
use rustls::ServerConnection;

use super::output::Bytes;
use super::per_address::AddressKey;
use super::session::{Session, Turn};
use super::tls::TLS_BUFFER_LIMIT;
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

/// How the octets travel.
enum Transport {
    Plain,
    Tls(Box<ServerConnection>),
}

/// rustls' plaintext writer, with "buffer full" (a zero-length write) turned into WouldBlock so
/// that [`super::output::Output`] waits instead of failing.
struct TlsPlaintext<'a>(&'a mut ServerConnection);

impl Write for TlsPlaintext<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.writer().write(buf)? {
            0 if !buf.is_empty() => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self.0.writer().write_vectored(bufs)? {
            0 if bufs.iter().any(|b| !b.is_empty()) => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One client connection.
pub struct Conn {
    pub stream: TcpStream,
    transport: Transport,
    session: Session,
    /// Input read (and, under TLS, decrypted) but not yet answered.
    inbuf: Vec<u8>,
    /// What the client's address counts as, for the per-address limit.
    pub client: AddressKey,
    /// When the last complete command arrived, or the connection was accepted (for the idle
    /// and first-command timeouts). Octets that complete no command do not move it: a client
    /// cannot hold its slot by sending a byte now and then.
    pub last_activity: Instant,
    /// Whether a complete command has arrived yet.
    pub commands_seen: bool,
    /// When the TLS handshake began, while it is not done (for its deadline).
    pub handshake_started: Option<Instant>,
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
    pub fn new(stream: TcpStream, client: AddressKey, shared: &Shared, now: Instant) -> Conn {
        let mut session = Session::default();
        session
            .out
            .push(Bytes::Shared(shared.greeting.clone()), None);
        Conn {
            stream,
            transport: Transport::Plain,
            session,
            inbuf: Vec::new(),
            client,
            last_activity: now,
            commands_seen: false,
            handshake_started: None,
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
                self.answered(used);
                self.inbuf.drain(..used);
                if self.inbuf.is_empty() && self.inbuf.capacity() > KEEP_INBUF {
                    self.inbuf = Vec::new();
                }
                if self.session.has_complete_line(&self.inbuf) {
                    // Out of budget or over the high-water mark.
                    break;
                }
            }
            if self.session.upgrade.is_some() && !self.begin_tls(turn.stats) {
                // The go-ahead is still being written in plaintext: read nothing (the next
                // octets are the client's TLS handshake) until it is out.
                break;
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
            let (got, drained) = match &mut self.transport {
                Transport::Plain => {
                    let got = self.stream.read(scratch);
                    // A short read emptied the socket's queue: epoll (edge-triggered) reports
                    // whatever arrives next, so the read that would only say WouldBlock is
                    // skipped. At moderate load that was every other syscall of a turn.
                    let drained = got.as_ref().is_ok_and(|&n| n > 0 && n < scratch.len());
                    (got.map(Some), drained)
                }
                Transport::Tls(_) => (self.read_tls(scratch, &mut turn), false),
            };
            if drained {
                self.readable = false;
            }
            match got {
                Ok(Some(0)) => self.read_closed = true,
                Ok(Some(n)) => self.take_input(&scratch[..n], &mut turn),
                Ok(None) => {}
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
        if self.session.closing && self.session.out.is_empty() {
            if let Transport::Tls(tls) = &mut self.transport {
                tls.send_close_notify();
            }
        }
        if self.flush(turn.stats).is_err() {
            return Next::Close;
        }
        if self.session.closing {
            return if self.fully_written() {
                Next::Close
            } else {
                Next::Wait
            };
        }
        let more_input = pending_line || (self.readable && !self.draining && !self.read_closed);
        if more_input && !self.session.output_full(shared) && self.session.upgrade.is_none() {
            Next::Again
        } else {
            Next::Wait
        }
    }

    /// Answers freshly read plaintext: in place when nothing is waiting before it, else after
    /// what is.
    fn take_input(&mut self, data: &[u8], turn: &mut Turn<'_>) {
        let now = Instant::now();
        self.read_at = now;
        turn.read_at = now;
        if self.inbuf.is_empty() {
            let used = self.session.answer_lines(data, turn);
            self.answered(used);
            self.inbuf.extend_from_slice(&data[used..]);
        } else {
            self.inbuf.extend_from_slice(data);
        }
    }

    /// Notes that `used` octets of input were complete lines, answered: activity.
    fn answered(&mut self, used: usize) {
        if used > 0 {
            self.last_activity = Instant::now();
            self.commands_seen = true;
        }
    }

    /// Switches to TLS once the STARTTLS go-ahead has been written. Input that came with or
    /// after the STARTTLS line is dropped. Returns false while the go-ahead is still queued.
    fn begin_tls(&mut self, stats: &mut WorkerStats) -> bool {
        if !self.session.out.is_empty() {
            return false;
        }
        let Some(config) = self.session.upgrade.take() else {
            return true;
        };
        self.inbuf = Vec::new();
        match ServerConnection::new(config) {
            Ok(mut tls) => {
                tls.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
                self.transport = Transport::Tls(Box::new(tls));
                self.handshake_started = Some(Instant::now());
                // The ClientHello may already wait in the socket.
                self.readable = true;
            }
            Err(_) => {
                stats.counters.tls_failures.add(1);
                self.session.closing = true;
            }
        }
        true
    }

    /// Under TLS: reads ciphertext, processes it, and returns how much plaintext came out into
    /// `scratch`: Some(0) when the peer closed, None when the records held none (handshake
    /// traffic). The handshake's completion starts the session over.
    fn read_tls(&mut self, scratch: &mut [u8], turn: &mut Turn<'_>) -> io::Result<Option<usize>> {
        let Transport::Tls(tls) = &mut self.transport else {
            return Ok(Some(0));
        };
        let was_handshaking = tls.is_handshaking();
        if tls.read_tls(&mut self.stream)? == 0 {
            return Ok(Some(0));
        }
        if let Err(e) = tls.process_new_packets() {
            if was_handshaking {
                turn.stats.counters.tls_failures.add(1);
            }
            // Send the alert rustls queued, then give up on the connection.
            let _ = tls.write_tls(&mut self.stream);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        if was_handshaking && !tls.is_handshaking() {
            turn.stats.counters.tls_handshakes.add(1);
            self.handshake_started = None;
            self.session.start_over_under_tls(&turn.shared.greeting_tls);
        }
        // Drain every decrypted octet now: rustls refuses to read more ciphertext while
        // plaintext waits, and the amount is bounded by rustls' own record buffer.
        let mut total = 0;
        while total < scratch.len() {
            match tls.reader().read(&mut scratch[total..]) {
                // close_notify: the peer is done.
                Ok(0) if total == 0 => return Ok(Some(0)),
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok((total > 0).then_some(total))
    }

    /// True when every queued octet, including rustls' ciphertext, has reached the socket.
    fn fully_written(&self) -> bool {
        self.session.out.is_empty()
            && match &self.transport {
                Transport::Plain => true,
                Transport::Tls(tls) => !tls.wants_write(),
            }
    }

    /// Writes queued answers: directly, or through rustls and then the socket.
    fn flush(&mut self, stats: &mut WorkerStats) -> io::Result<()> {
        match &mut self.transport {
            Transport::Plain => {
                if !self.session.out.is_empty() {
                    self.session.out.write_to(&mut self.stream, stats)?;
                }
                Ok(())
            }
            Transport::Tls(tls) => loop {
                if !self.session.out.is_empty() && !tls.is_handshaking() {
                    self.session.out.write_to(&mut TlsPlaintext(tls), stats)?;
                }
                if !tls.wants_write() {
                    return Ok(());
                }
                while tls.wants_write() {
                    match tls.write_tls(&mut self.stream) {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                if self.session.out.is_empty() {
                    return Ok(());
                }
            },
        }
    }
}
