//! One event loop of the gate: a `mio::Poll` on one thread, its own listeners (SO_REUSEPORT)
//! and every session they accept, each with its client socket and its MTA socket, for their
//! whole life. A session's two sockets are tokens `2 × slot` (client) and `2 × slot + 1` (MTA).
//! The accept-log writer answers through a channel and this loop's waker.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use super::accept_log::Done;
use super::session::{Ctx, Next, Session};
use super::stats::GateStats;
use super::upstream::MtaStream;
use super::GateShared;
use crate::server::listen::{self, Accepted};

/// The waker's token; listeners count down from just below it.
const WAKER: Token = Token(usize::MAX);
/// Input read from a socket at once.
const SCRATCH: usize = 16 * 1024;
/// How often deadlines are looked at.
const TICK: Duration = Duration::from_secs(1);
/// How long accepting pauses after it failed (out of descriptors, say): the listener's readiness
/// is edge-triggered, so the loop must come back to the backlog by itself.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

fn listener_token(i: usize) -> Token {
    Token(usize::MAX - 1 - i)
}

/// What a worker needs to start.
pub struct WorkerSetup {
    pub poll: Poll,
    pub waker: Arc<Waker>,
    pub listeners: Vec<TcpListener>,
    /// The address each listener is bound to, in the same order.
    pub listen_addrs: Vec<SocketAddr>,
    pub answers: Receiver<Done>,
}

impl WorkerSetup {
    /// A poll with its waker and the listeners registered.
    pub fn new(
        mut listeners: Vec<TcpListener>,
        listen_addrs: Vec<SocketAddr>,
        answers: Receiver<Done>,
    ) -> io::Result<Self> {
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
            listen_addrs,
            answers,
        })
    }
}

struct Worker {
    id: usize,
    shared: Arc<GateShared>,
    poll: Poll,
    listeners: Vec<Option<TcpListener>>,
    listen_addrs: Vec<SocketAddr>,
    answers: Receiver<Done>,
    sessions: Vec<Option<Session>>,
    free: Vec<usize>,
    again: VecDeque<usize>,
    next_generation: u64,
    scratch: Box<[u8]>,
    stats: GateStats,
    accept_paused_until: Option<Instant>,
    accept_failures: u64,
}

/// Runs a worker until shutdown, counting into `stats` (whose counters others may read);
/// returns them.
pub fn run(id: usize, setup: WorkerSetup, shared: Arc<GateShared>, stats: GateStats) -> GateStats {
    let mut w = Worker {
        id,
        shared,
        poll: setup.poll,
        listeners: setup.listeners.into_iter().map(Some).collect(),
        listen_addrs: setup.listen_addrs,
        answers: setup.answers,
        sessions: Vec::new(),
        free: Vec::new(),
        again: VecDeque::new(),
        next_generation: 0,
        scratch: vec![0u8; SCRATCH].into_boxed_slice(),
        stats,
        accept_paused_until: None,
        accept_failures: 0,
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
            let mut timeout = if self.again.is_empty() {
                next_tick.saturating_duration_since(now)
            } else {
                Duration::ZERO
            };
            if let Some(t) = self.accept_paused_until {
                timeout = timeout.min(t.saturating_duration_since(now));
            }
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    eprintln!("mtqpd gate: worker poll failed: {e}");
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
                let (slot, mta_side) = (token.0 / 2, token.0 % 2 == 1);
                if let Some(Some(s)) = self.sessions.get_mut(slot) {
                    let failed = event.is_error();
                    let readable = event.is_readable() || event.is_read_closed() || failed;
                    s.on_event(mta_side, readable, failed);
                    touched.push(slot);
                }
            }
            while let Ok(done) = self.answers.try_recv() {
                if let Some(Some(s)) = self.sessions.get_mut(done.session) {
                    let mut ctx = Ctx {
                        shared: &self.shared,
                        stats: &mut self.stats,
                        scratch: &mut self.scratch,
                        worker: self.id,
                        slot: done.session,
                        now: Instant::now(),
                    };
                    s.on_durable(&mut ctx, &done);
                    touched.push(done.session);
                }
            }
            if self.shared.shutdown.load(Ordering::Acquire) && drain_deadline.is_none() {
                drain_deadline = Some(Instant::now() + self.shared.drain_timeout);
                self.begin_drain(&mut touched);
            }
            for slot in touched.drain(..) {
                self.drive(slot);
            }
            for _ in 0..self.again.len() {
                let Some(slot) = self.again.pop_front() else {
                    break;
                };
                if let Some(Some(s)) = self.sessions.get_mut(slot) {
                    s.scheduled = false;
                }
                self.drive(slot);
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
                self.expire(now);
            }
            if let Some(deadline) = drain_deadline {
                let open = self.sessions.iter().any(Option::is_some);
                if !open || now >= deadline {
                    self.close_all();
                    return;
                }
            }
        }
    }

    fn ctx(&mut self, slot: usize) -> (Option<&mut Session>, Ctx<'_>) {
        let session = self.sessions.get_mut(slot).and_then(Option::as_mut);
        let ctx = Ctx {
            shared: &self.shared,
            stats: &mut self.stats,
            scratch: &mut self.scratch,
            worker: self.id,
            slot,
            now: Instant::now(),
        };
        (session, ctx)
    }

    fn drive(&mut self, slot: usize) {
        let next = {
            let (Some(session), mut ctx) = self.ctx(slot) else {
                return;
            };
            session.drive(&mut ctx)
        };
        if next == Next::Close || self.watch_writable(slot).is_err() {
            self.close(slot);
            return;
        }
        if let (Next::Again, Some(Some(session))) = (next, self.sessions.get_mut(slot)) {
            if !session.scheduled {
                session.scheduled = true;
                self.again.push_back(slot);
            }
        }
    }

    /// Adds writability to what epoll watches of a session's sockets once the session first
    /// asks for it ([`Session::wants_writable`]).
    fn watch_writable(&mut self, slot: usize) -> io::Result<()> {
        let Some(Some(session)) = self.sessions.get_mut(slot) else {
            return Ok(());
        };
        let (wants, watching) = (session.wants_writable(), session.watching_writable);
        let both = Interest::READABLE | Interest::WRITABLE;
        let registry = self.poll.registry();
        if wants.client && !watching.client {
            session.watching_writable.client = true;
            registry.reregister(&mut session.client.stream, Token(2 * slot), both)?;
        }
        if wants.mta && !watching.mta {
            session.watching_writable.mta = true;
            registry.reregister(&mut session.mta, Token(2 * slot + 1), both)?;
        }
        Ok(())
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
                    let local = self.listen_addrs[listener];
                    if let Some(slot) = self.admit(stream, peer, local) {
                        touched.push(slot);
                    }
                }
                Accepted::Drained => return,
                // One client's aborted connection: the next may be fine.
                Accepted::ClientFailed(e) => self.accept_failed(&e),
                Accepted::OutOfDescriptors(e) => {
                    // Come back to the backlog shortly rather than spin on it.
                    self.accept_failed(&e);
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    /// Counts a failed accept and says so, once in a thousand.
    fn accept_failed(&mut self, e: &io::Error) {
        self.accept_failures += 1;
        if self.accept_failures % 1000 == 1 {
            eprintln!(
                "mtqpd gate: accept failed: {e} ({} time(s) on this thread)",
                self.accept_failures
            );
        }
    }

    /// Refuses a client with a 421 of the gate's own, written straight to its socket.
    fn refuse(&self, mut stream: TcpStream, text: &str) {
        let line = format!("421 4.7.0 {} {text}\r\n", self.shared.hostname);
        let _ = stream.write(line.as_bytes());
    }

    /// Takes an accepted client in: starts its MTA connection and registers both sockets.
    /// `local`: the listener's address; when that is a wildcard, the socket is asked.
    fn admit(&mut self, stream: TcpStream, peer: SocketAddr, local: SocketAddr) -> Option<usize> {
        let open = &self.shared.open_sessions;
        if open.fetch_add(1, Ordering::AcqRel) >= self.shared.max_sessions {
            open.fetch_sub(1, Ordering::AcqRel);
            self.stats.counters.refused_over_limit.add(1);
            self.refuse(stream, "Error: too many sessions, try again later");
            return None;
        }
        let Some(key) = self.shared.per_address.admit(peer.ip()) else {
            open.fetch_sub(1, Ordering::AcqRel);
            self.stats.counters.refused_per_address.add(1);
            self.refuse(stream, "Error: too many sessions from your address");
            return None;
        };
        self.stats.counters.sessions.add(1);
        // TCP_NODELAY comes from the listener (see `bind_group`).
        let local = if local.ip().is_unspecified() {
            stream.local_addr().unwrap_or(local)
        } else {
            local
        };
        let mta = match MtaStream::connect(&self.shared.mta) {
            Ok(mta) => mta,
            Err(e) => {
                open.fetch_sub(1, Ordering::AcqRel);
                self.shared.per_address.release(key);
                self.stats
                    .counters
                    .count_mta_unreachable(&self.shared.mta, &e);
                let line = format!(
                    "421 4.3.2 {} Service not available, closing transmission channel\r\n",
                    self.shared.hostname
                );
                let mut stream = stream;
                let _ = stream.write(line.as_bytes());
                return None;
            }
        };
        let slot = self.free.pop().unwrap_or_else(|| {
            self.sessions.push(None);
            self.sessions.len() - 1
        });
        self.next_generation += 1;
        let mut session = Session::new(
            stream,
            mta,
            (peer, local),
            key,
            self.next_generation,
            Instant::now(),
        );
        // Writability is watched only once the session asks (Session::wants_writable), after
        // its first turn.
        let registry = self.poll.registry();
        let registered = registry
            .register(
                &mut session.client.stream,
                Token(2 * slot),
                Interest::READABLE,
            )
            .and_then(|()| {
                registry.register(&mut session.mta, Token(2 * slot + 1), Interest::READABLE)
            });
        self.sessions[slot] = Some(session);
        if registered.is_err() {
            self.close(slot);
            return None;
        }
        Some(slot)
    }

    fn close(&mut self, slot: usize) {
        if let Some(s) = self.sessions.get_mut(slot).and_then(Option::take) {
            // Not deregistered: closing a descriptor no other holds takes it out of the epoll
            // set, which spares two system calls a session (of ~54).
            self.shared.open_sessions.fetch_sub(1, Ordering::AcqRel);
            self.shared.per_address.release(s.address_key);
            self.free.push(slot);
        }
    }

    /// Handles every session whose wait has run out.
    fn expire(&mut self, now: Instant) {
        for slot in 0..self.sessions.len() {
            let (Some(session), mut ctx) = self.ctx(slot) else {
                continue;
            };
            if session.deadline <= now {
                session.on_timeout(&mut ctx);
                self.drive(slot);
            }
        }
    }

    fn begin_drain(&mut self, touched: &mut Vec<usize>) {
        for slot in &mut self.listeners {
            if let Some(mut l) = slot.take() {
                let _ = self.poll.registry().deregister(&mut l);
            }
        }
        for (slot, s) in self.sessions.iter_mut().enumerate() {
            if let Some(s) = s {
                s.begin_drain();
                touched.push(slot);
            }
        }
    }

    fn close_all(&mut self) {
        for slot in 0..self.sessions.len() {
            if let (Some(session), mut ctx) = self.ctx(slot) {
                session.force_close(&mut ctx);
            }
            self.close(slot);
        }
    }
}
