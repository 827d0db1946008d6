//! One event loop: a `mio::Poll` on one thread, its own listeners (SO_REUSEPORT) and every
//! connection they accept, for their whole life. Workers share nothing but the index and the
//! read-only [`Shared`] settings.
//!
//! Each turn: wait for readiness (or a timer), accept, drive every connection that had an
//! event, then drive those that used up their command budget last turn. A connection that has
//! more to do than its budget goes to the back of the line instead of starving the others.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use super::conn::{Conn, Next};
use super::listen::{self, Accepted};
use super::Shared;
use crate::clock::unix_now;
use crate::protocol::reply;
use crate::stats::WorkerStats;

/// The waker's token; listeners count down from just below it.
const WAKER: Token = Token(usize::MAX);
/// Input read from a socket at once.
const SCRATCH: usize = 64 * 1024;
/// How often idle connections are looked for.
const TICK: Duration = Duration::from_secs(1);
/// How long accepting pauses when the process is out of file descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// How long a shutdown waits for answers already owed to be written.
const DRAIN_DEADLINE: Duration = Duration::from_secs(3);

fn listener_token(i: usize) -> Token {
    Token(usize::MAX - 1 - i)
}

/// What a worker needs to start.
pub struct WorkerSetup {
    pub poll: Poll,
    pub waker: Arc<Waker>,
    pub listeners: Vec<TcpListener>,
}

impl WorkerSetup {
    /// A poll with its waker and the listeners registered.
    pub fn new(mut listeners: Vec<TcpListener>) -> io::Result<WorkerSetup> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        for (i, l) in listeners.iter_mut().enumerate() {
            poll.registry()
                .register(l, listener_token(i), Interest::READABLE)?;
        }
        Ok(WorkerSetup {
            poll,
            waker,
            listeners,
        })
    }
}

struct Worker {
    shared: Arc<Shared>,
    poll: Poll,
    listeners: Vec<Option<TcpListener>>,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    again: VecDeque<usize>,
    scratch: Box<[u8]>,
    stats: WorkerStats,
    /// Closed and reopened around an accept when the process is out of descriptors, so that one
    /// waiting client can be told so instead of being left in the backlog.
    reserve_fd: Option<File>,
    accept_paused_until: Option<Instant>,
}

/// Runs a worker until shutdown, counting into `stats` (whose live part others may read);
/// returns them.
pub fn run(setup: WorkerSetup, shared: Arc<Shared>, stats: WorkerStats) -> WorkerStats {
    let mut w = Worker {
        shared,
        poll: setup.poll,
        listeners: setup.listeners.into_iter().map(Some).collect(),
        conns: Vec::new(),
        free: Vec::new(),
        again: VecDeque::new(),
        scratch: vec![0u8; SCRATCH].into_boxed_slice(),
        stats,
        reserve_fd: File::open("/dev/null").ok(),
        accept_paused_until: None,
    };
    w.run();
    w.stats
}

impl Worker {
    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        let mut touched = Vec::with_capacity(1024);
        let mut next_tick = Instant::now() + TICK;
        let mut drain_deadline: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let mut timeout = next_tick.saturating_duration_since(now);
            if let Some(t) = self.accept_paused_until {
                timeout = timeout.min(t.saturating_duration_since(now));
            }
            if !self.again.is_empty() {
                timeout = Duration::ZERO;
            }
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    eprintln!("mtqpd: worker poll failed: {e}");
                    return;
                }
            }
            for event in events.iter() {
                let token = event.token();
                if token == WAKER {
                    continue;
                }
                if token.0 >= usize::MAX - self.listeners.len() {
                    self.accept_all(usize::MAX - 1 - token.0, &mut touched);
                    continue;
                }
                if let Some(Some(conn)) = self.conns.get_mut(token.0) {
                    conn.on_event(
                        event.is_readable() || event.is_read_closed() || event.is_error(),
                    );
                    touched.push(token.0);
                }
            }
            if self.shared.shutdown.load(Ordering::Acquire) && drain_deadline.is_none() {
                drain_deadline = Some(Instant::now() + DRAIN_DEADLINE);
                self.begin_drain(&mut touched);
            }
            let now_unix = unix_now();
            for id in touched.drain(..) {
                self.drive(id, now_unix);
            }
            for _ in 0..self.again.len() {
                let Some(id) = self.again.pop_front() else {
                    break;
                };
                if let Some(Some(c)) = self.conns.get_mut(id) {
                    c.scheduled = false;
                }
                self.drive(id, now_unix);
            }
            let now = Instant::now();
            if self.accept_paused_until.is_some_and(|t| t <= now) {
                self.accept_paused_until = None;
                for i in 0..self.listeners.len() {
                    self.accept_all(i, &mut touched);
                }
            }
            if now >= next_tick {
                next_tick = now + TICK;
                self.close_idle(now);
            }
            if let Some(deadline) = drain_deadline {
                let open = self.conns.iter().any(Option::is_some);
                if !open || now >= deadline {
                    for id in 0..self.conns.len() {
                        self.close(id);
                    }
                    return;
                }
            }
        }
    }

    fn drive(&mut self, id: usize, now_unix: i64) {
        let Some(Some(conn)) = self.conns.get_mut(id) else {
            return;
        };
        match conn.drive(&mut self.scratch, &self.shared, &mut self.stats, now_unix) {
            Next::Wait => {}
            Next::Again => {
                if !conn.scheduled {
                    conn.scheduled = true;
                    self.again.push_back(id);
                }
            }
            Next::Close => self.close(id),
        }
    }

    fn accept_all(&mut self, listener: usize, touched: &mut Vec<usize>) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let Some(Some(l)) = self.listeners.get(listener) else {
                return;
            };
            match listen::accept(l) {
                Accepted::Client(stream, peer) => {
                    self.stats.counters.accepted.add(1);
                    if let Some(id) = self.admit(stream, peer.ip()) {
                        touched.push(id);
                    }
                }
                Accepted::Drained => return,
                Accepted::OutOfDescriptors(_) => {
                    self.stats.counters.accept_errors.add(1);
                    self.refuse_one_without_descriptors(listener);
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                    return;
                }
                Accepted::ClientFailed(_) => self.stats.counters.accept_errors.add(1),
            }
        }
    }

    /// Out of descriptors: free the reserve one, accept a client just to tell it, and close it,
    /// so it does not wait in the backlog for nothing.
    fn refuse_one_without_descriptors(&mut self, listener: usize) {
        self.reserve_fd = None;
        if let Some(Some(l)) = self.listeners.get(listener) {
            if let Ok((mut stream, _)) = l.accept() {
                let _ = stream.write(reply::TOO_MANY_CONNECTIONS);
                self.stats.counters.refused_over_limit.add(1);
            }
        }
        self.reserve_fd = File::open("/dev/null").ok();
    }

    fn admit(&mut self, mut stream: mio::net::TcpStream, peer: IpAddr) -> Option<usize> {
        let open = &self.shared.open_connections;
        if open.fetch_add(1, Ordering::AcqRel) >= self.shared.limits.max_connections {
            open.fetch_sub(1, Ordering::AcqRel);
            let _ = stream.write(reply::TOO_MANY_CONNECTIONS);
            self.stats.counters.refused_over_limit.add(1);
            return None;
        }
        let Some(client) = self.shared.per_address.admit(peer) else {
            open.fetch_sub(1, Ordering::AcqRel);
            let _ = stream.write(reply::TOO_MANY_FROM_ADDRESS);
            self.stats.counters.refused_per_address.add(1);
            return None;
        };
        // TCP_NODELAY comes from the listener (see `listen::bind_group`).
        let id = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        let interest = Interest::READABLE | Interest::WRITABLE;
        if self
            .poll
            .registry()
            .register(&mut stream, Token(id), interest)
            .is_err()
        {
            open.fetch_sub(1, Ordering::AcqRel);
            self.shared.per_address.release(client);
            self.free.push(id);
            return None;
        }
        self.stats.counters.admitted.add(1);
        self.conns[id] = Some(Conn::new(stream, client, &self.shared, Instant::now()));
        Some(id)
    }

    fn close(&mut self, id: usize) {
        if let Some(mut conn) = self.conns.get_mut(id).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            self.shared.open_connections.fetch_sub(1, Ordering::AcqRel);
            self.shared.per_address.release(conn.client);
            self.free.push(id);
        }
    }

    /// Closes the connections past a deadline: a TLS handshake that is not done in time
    /// (closed at once: nothing can be said inside a half-made TLS session), no first command
    /// in time, or no complete command for the idle timeout (told why, then closed).
    fn close_idle(&mut self, now: Instant) {
        let shared = Arc::clone(&self.shared);
        let limits = &shared.limits;
        for id in 0..self.conns.len() {
            let Some(Some(conn)) = self.conns.get_mut(id) else {
                continue;
            };
            let handshake_late = conn
                .handshake_started
                .is_some_and(|t| now.saturating_duration_since(t) >= limits.tls_handshake_timeout);
            if handshake_late {
                self.stats.counters.closed_handshake_timeout.add(1);
                self.close(id);
                continue;
            }
            let limit = match conn.commands_seen {
                false => limits.first_command_timeout.min(limits.idle_timeout),
                true => limits.idle_timeout,
            };
            if now.saturating_duration_since(conn.last_activity) < limit {
                continue;
            }
            self.stats.counters.closed_idle.add(1);
            if conn.pending_output() > 0 {
                // A client that reads nothing while answers wait is as idle as a silent one.
                self.close(id);
            } else {
                conn.close_with(reply::IDLE_TIMEOUT);
                self.drive(id, unix_now());
            }
        }
    }

    fn begin_drain(&mut self, touched: &mut Vec<usize>) {
        for slot in &mut self.listeners {
            if let Some(mut l) = slot.take() {
                let _ = self.poll.registry().deregister(&mut l);
            }
        }
        for (id, conn) in self.conns.iter_mut().enumerate() {
            if let Some(conn) = conn {
                conn.drain();
                touched.push(id);
            }
        }
    }
}
