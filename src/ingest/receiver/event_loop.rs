//! The receiver thread: one mio loop over every listener, UDP socket and connection. It
//! accepts and admits senders, reads whatever is readable (a bounded amount per source per
//! round, so that one busy sender cannot starve the others), and sends the batch after each
//! round. While the channel to the ingest thread is full the thread waits in
//! [`Sink::send`] and reads nothing: that is the backpressure.
//!
//! mio reports readiness once (edge-triggered), so a source that still may have octets when
//! its round's budget runs out stays in the ready queue until a read ends in WouldBlock.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use super::cidr::Cidr;
use super::conn::{Close, Conn, Outcome};
use super::frame::MAX_MESSAGE;
use super::sink::Sink;
use super::stats::ReceiverStats;
use super::ReceiverTls;
use crate::server::listen::{accept, Accepted};

/// The token of the waker that `begin_stop` uses.
pub const WAKER: Token = Token(usize::MAX);

/// Octets read from one connection in one round: a few reads, enough to fill a batch.
const READ_BUDGET: usize = 256 * 1024;
/// Connections accepted from one listener in one round.
const ACCEPT_BUDGET: usize = 64;
/// Datagrams read from one UDP socket in one round.
const UDP_BUDGET: usize = 1024;
/// Octets read from one connection while draining at stop: more than any socket buffer holds,
/// and a bound, so that a sender that keeps writing cannot hold the shutdown.
const DRAIN_LIMIT: usize = 32 << 20;
/// A TLS client that has not finished its handshake by then is closed: it holds one of the
/// few connection slots, and on a listener that admits by certificate anyone may connect.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// At most one line on stderr about misbehaving senders this often.
const WARN_INTERVAL: Duration = Duration::from_secs(60);

/// A listening socket.
pub enum Source {
    /// TCP, or TLS when `tls` is set.
    Tcp {
        listener: mio::net::TcpListener,
        tls: bool,
    },
    Udp(mio::net::UdpSocket),
}

/// A listening socket and whether it waits in the ready queue.
pub struct Listener {
    pub source: Source,
    queued: bool,
}

impl Listener {
    pub fn new(source: Source) -> Listener {
        Listener {
            source,
            queued: false,
        }
    }
}

/// One stderr line now and then: a sender that sends garbage may do it a thousand times a
/// second.
#[derive(Default)]
struct Warnings {
    last: Option<Instant>,
    suppressed: u64,
}

impl Warnings {
    fn warn(&mut self, what: fmt::Arguments<'_>) {
        let now = Instant::now();
        if self.last.is_some_and(|last| now - last < WARN_INTERVAL) {
            self.suppressed += 1;
            return;
        }
        if self.suppressed > 0 {
            eprintln!(
                "mtqpd: syslog receiver: {what} ({} more since the last such line)",
                self.suppressed
            );
        } else {
            eprintln!("mtqpd: syslog receiver: {what}");
        }
        self.last = Some(now);
        self.suppressed = 0;
    }
}

/// The receiver thread's state.
pub struct EventLoop {
    pub poll: Poll,
    pub listeners: Vec<Listener>,
    /// Connection slots, token `listeners.len() + index`; None is free.
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    open: usize,
    next_serial: u64,
    /// Sources that may have something to read.
    ready: VecDeque<Token>,
    /// Accepting stopped at the connection limit (or out of descriptors) until one closes.
    accept_paused: bool,
    /// TLS handshakes in accept order (so in deadline order): slot and serial.
    handshakes: VecDeque<(Instant, usize, u64)>,
    sink: Sink,
    stats: Arc<ReceiverStats>,
    allow: Vec<Cidr>,
    tls: Option<ReceiverTls>,
    max_connections: usize,
    stop: Arc<AtomicBool>,
    /// Where reads land: a UDP datagram one octet longer than a message may be is too long.
    scratch: Vec<u8>,
    warnings: Warnings,
}

/// What [`EventLoop::new`] is made of.
pub struct Parts {
    pub poll: Poll,
    pub listeners: Vec<Listener>,
    pub sink: Sink,
    pub stats: Arc<ReceiverStats>,
    pub allow: Vec<Cidr>,
    pub tls: Option<ReceiverTls>,
    pub max_connections: usize,
    pub stop: Arc<AtomicBool>,
}

impl EventLoop {
    pub fn new(parts: Parts) -> EventLoop {
        EventLoop {
            poll: parts.poll,
            listeners: parts.listeners,
            conns: Vec::new(),
            free: Vec::new(),
            open: 0,
            next_serial: 0,
            ready: VecDeque::new(),
            accept_paused: false,
            handshakes: VecDeque::new(),
            sink: parts.sink,
            stats: parts.stats,
            allow: parts.allow,
            tls: parts.tls,
            max_connections: parts.max_connections,
            stop: parts.stop,
            scratch: vec![0; MAX_MESSAGE + 1],
            warnings: Warnings::default(),
        }
    }

    /// Runs until stopped (then drains) or until the ingest thread is gone. Returning drops
    /// the sink, and with it the channel's sender: the ingest thread sees the end.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(256);
        // Data may have arrived between binding and this first poll.
        for i in 0..self.listeners.len() {
            self.mark(Token(i));
        }
        while !self.sink.disconnected {
            let timeout = if self.ready.is_empty() {
                self.handshakes
                    .front()
                    .map(|&(deadline, _, _)| deadline.saturating_duration_since(Instant::now()))
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                eprintln!("mtqpd: syslog receiver: cannot wait for sockets: {e}; it stops");
                return;
            }
            for event in events.iter() {
                if event.token() != WAKER {
                    self.mark(event.token());
                }
            }
            if self.stop.load(Ordering::Acquire) {
                self.drain();
                return;
            }
            self.expire_handshakes();
            self.round();
            self.sink.send();
        }
    }

    /// Puts a source in the ready queue, once.
    fn mark(&mut self, token: Token) {
        let queued = match token.0.checked_sub(self.listeners.len()) {
            None => &mut self.listeners[token.0].queued,
            Some(slot) => match self.conns.get_mut(slot).and_then(Option::as_mut) {
                Some(conn) => &mut conn.queued,
                None => return,
            },
        };
        if !*queued {
            *queued = true;
            self.ready.push_back(token);
        }
    }

    /// Serves each source that was ready when the round began, once.
    fn round(&mut self) {
        for _ in 0..self.ready.len() {
            let Some(token) = self.ready.pop_front() else {
                break;
            };
            let more = match token.0.checked_sub(self.listeners.len()) {
                None => {
                    self.listeners[token.0].queued = false;
                    self.serve_listener(token.0, false)
                }
                Some(slot) => {
                    if let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) {
                        conn.queued = false;
                    }
                    self.read_conn(slot, READ_BUDGET)
                }
            };
            if more {
                self.mark(token);
            }
            if self.sink.disconnected {
                return;
            }
        }
    }

    /// Accepts from a TCP listener or reads a UDP socket; true when there may be more.
    /// `all`: until WouldBlock, however much (at stop).
    fn serve_listener(&mut self, index: usize, all: bool) -> bool {
        match self.listeners[index].source {
            Source::Tcp { .. } => self.accept(index, if all { usize::MAX } else { ACCEPT_BUDGET }),
            Source::Udp(_) => self.receive(index, if all { usize::MAX } else { UDP_BUDGET }),
        }
    }

    fn accept(&mut self, index: usize, budget: usize) -> bool {
        for _ in 0..budget {
            if self.open >= self.max_connections {
                // The backlog keeps the rest until a connection closes.
                self.accept_paused = true;
                return false;
            }
            let Source::Tcp { listener, tls } = &self.listeners[index].source else {
                return false;
            };
            let tls = *tls;
            match accept(listener) {
                Accepted::Client(stream, peer) => self.admit(stream, peer, tls),
                Accepted::Drained => return false,
                Accepted::OutOfDescriptors(e) => {
                    self.warnings.warn(format_args!(
                        "cannot accept: {e}; waiting for a connection to close"
                    ));
                    self.accept_paused = true;
                    return false;
                }
                Accepted::ClientFailed(_) => {}
            }
        }
        true
    }

    /// Whether `peer` may send: by address, or on a TLS listener that requires client
    /// certificates by its certificate (which rustls checks during the handshake).
    fn admitted(&self, peer: std::net::IpAddr, tls_listener: bool) -> bool {
        let by_certificate =
            tls_listener && self.tls.as_ref().is_some_and(|t| t.client_certificates);
        by_certificate || self.allow.iter().any(|net| net.contains(peer))
    }

    fn admit(&mut self, mut stream: mio::net::TcpStream, peer: std::net::SocketAddr, tls: bool) {
        if !self.admitted(peer.ip(), tls) {
            // Dropping the stream closes it.
            ReceiverStats::add(&self.stats.refused, 1);
            return;
        }
        let config = if tls {
            self.tls.as_ref().map(|t| &t.config)
        } else {
            None
        };
        let serial = self.next_serial;
        self.next_serial += 1;
        let slot = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        let token = Token(self.listeners.len() + slot);
        let interest = if tls {
            // TLS writes too: the handshake's answers may not fit the socket at once.
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let registered = self.poll.registry().register(&mut stream, token, interest);
        let conn = registered
            .map_err(|e| e.to_string())
            .and_then(|()| Conn::new(stream, peer, config, serial).map_err(|e| e.to_string()));
        match conn {
            Ok(conn) => {
                if conn.is_tls() {
                    self.handshakes
                        .push_back((Instant::now() + HANDSHAKE_TIMEOUT, slot, serial));
                }
                self.conns[slot] = Some(conn);
                self.open += 1;
                ReceiverStats::add(&self.stats.connections, 1);
                // It may have written already; the registration's event may say so too.
                self.mark(token);
            }
            Err(e) => {
                self.free.push(slot);
                self.warnings
                    .warn(format_args!("{peer}: cannot take the connection: {e}"));
            }
        }
    }

    /// Reads one connection; true when it may have more.
    fn read_conn(&mut self, slot: usize, budget: usize) -> bool {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return false;
        };
        let outcome = conn.read(&mut self.scratch, budget, &mut self.sink, &self.stats);
        // A WRITABLE event lands here too: TLS output left over is written.
        let flushed = conn.flush_tls();
        match (outcome, flushed) {
            (Outcome::Closed(why), _) | (_, Err(why)) => {
                self.close(slot, why);
                false
            }
            (Outcome::Drained, Ok(())) => false,
            (Outcome::Budget, Ok(())) => true,
        }
    }

    fn close(&mut self, slot: usize, why: Close) {
        let Some(mut conn) = self.conns.get_mut(slot).and_then(Option::take) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.free.push(slot);
        self.open -= 1;
        match why {
            Close::Framing(e) => {
                ReceiverStats::add(&self.stats.framing_errors, 1);
                self.warnings
                    .warn(format_args!("{}: {e}; connection closed", conn.peer));
            }
            Close::Tls(e) => self
                .warnings
                .warn(format_args!("{}: TLS: {e}; connection closed", conn.peer)),
            Close::Eof | Close::Io(_) => {}
        }
        if self.accept_paused {
            self.accept_paused = false;
            for i in 0..self.listeners.len() {
                if matches!(self.listeners[i].source, Source::Tcp { .. }) {
                    self.mark(Token(i));
                }
            }
        }
    }

    /// Reads datagrams; true when there may be more.
    fn receive(&mut self, index: usize, budget: usize) -> bool {
        let Source::Udp(socket) = &self.listeners[index].source else {
            return false;
        };
        for _ in 0..budget {
            let (n, peer) = match socket.recv_from(&mut self.scratch) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Rare (ENOMEM); the next readiness event tries again.
                    self.warnings.warn(format_args!("cannot read UDP: {e}"));
                    return false;
                }
            };
            if !self.allow.iter().any(|net| net.contains(peer.ip())) {
                ReceiverStats::add(&self.stats.refused, 1);
                continue;
            }
            ReceiverStats::add(&self.stats.bytes, n as u64);
            if n > MAX_MESSAGE {
                ReceiverStats::add(&self.stats.too_long, 1);
                continue;
            }
            self.sink.message(&self.scratch[..n], &self.stats);
        }
        true
    }

    /// Closes TLS connections whose handshake is overdue.
    fn expire_handshakes(&mut self) {
        let now = Instant::now();
        while let Some(&(deadline, slot, serial)) = self.handshakes.front() {
            if deadline > now {
                return;
            }
            self.handshakes.pop_front();
            let overdue = self
                .conns
                .get(slot)
                .and_then(Option::as_ref)
                .is_some_and(|c| c.serial == serial && c.is_handshaking());
            if overdue {
                ReceiverStats::add(&self.stats.tls_failures, 1);
                self.close(slot, Close::Io(io::ErrorKind::TimedOut.into()));
            }
        }
    }

    /// At stop: accepts what the backlogs hold (a sender that connected just before may have
    /// written already), reads every socket until it has nothing more, sends it all.
    fn drain(&mut self) {
        for i in 0..self.listeners.len() {
            self.serve_listener(i, true);
        }
        for slot in 0..self.conns.len() {
            self.read_conn(slot, DRAIN_LIMIT);
        }
        self.sink.send();
    }
}
