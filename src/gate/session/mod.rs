//! One SMTP session through the gate: the client's socket, the MTA's socket, and what passes
//! between them. Owned by one event loop for its whole life.
//!
//! The gate relays one command at a time: a command goes to the MTA only once the reply to
//! the previous one has been relayed to the client, so that the gate always knows which reply
//! answers which command (commands a client pipelines wait in its input buffer). The MTA's
//! output is therefore always exactly one reply, and anything else is a desynchronised MTA,
//! which ends the session. How commands and replies are handled is [`flow`]; this module moves
//! the octets and keeps every buffer within its bound.

mod flow;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::client_io::{ClientIo, Got};
use super::smtp::command::Rcpt;
use super::smtp::data::{DataScanner, Fed};
use super::smtp::mail::{Tracking, Untracked};
use super::smtp::proxy;
use super::smtp::reply::MAX_REPLY;
use super::stats::GateStats;
use super::transaction::Transaction;
use super::upstream::MtaStream;
use super::GateShared;
use crate::server::per_address::AddressKey;

/// Client input held while it waits (pipelined commands); past it, the client is not read.
const MAX_CLIENT_IN: usize = 16 * 1024;
/// Longest command line (Postfix's `line_length_limit` is 2048).
const MAX_COMMAND_LINE: usize = 4096;
/// Message data queued for the MTA; past it, the client is not read (backpressure).
const DATA_HIGH_WATER: usize = 64 * 1024;
/// Replies queued for the client; past it, no further command is taken.
const CLIENT_OUT_HIGH_WATER: usize = 16 * 1024;
/// Buffers larger than this are released when they empty, so idle sessions cost little.
const KEEP_BUFFER: usize = 4 * 1024;
/// Steps one session may take per turn before the others get theirs.
const STEPS_PER_TURN: usize = 64;

/// RFC 5321 section 4.5.3.2: how long the gate waits, as a client of the MTA, for each reply;
/// and as a server, for the client's next command or data.
pub mod timeouts {
    use std::time::Duration;
    pub const CONNECT: Duration = Duration::from_secs(30);
    pub const BANNER: Duration = Duration::from_secs(300);
    pub const COMMAND_REPLY: Duration = Duration::from_secs(300);
    pub const DATA_REPLY: Duration = Duration::from_secs(120);
    pub const DATA_END_REPLY: Duration = Duration::from_secs(600);
    pub const CLIENT: Duration = Duration::from_secs(300);
    pub const TLS_HANDSHAKE: Duration = Duration::from_secs(10);
    /// How long a 250 waits for the accept log before it is relayed regardless.
    pub const DURABLE: Duration = Duration::from_secs(30);
}

/// What the worker should do with a session after driving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Wait,
    /// It used its turn with work left: drive it again after the others.
    Again,
    Close,
}

/// The reply a forwarded command waits for.
#[derive(Debug)]
enum Pending {
    Banner,
    Ehlo,
    Helo,
    Mail(Option<Result<Tracking, Untracked>>),
    Rcpt(Option<Rcpt>),
    Data,
    DataEnd,
    Rset,
    Quit,
    Other,
}

#[derive(Debug)]
enum Phase {
    /// The MTA connection is being made.
    Connecting,
    /// A command (or the connection) went to the MTA; its reply is awaited.
    Reply(Pending),
    /// The next client command is awaited.
    Command,
    /// Message data is streamed to the MTA.
    Data(DataScanner),
    /// The MTA's 250 waits for the accept log to make the native lines durable.
    Durable(Vec<u8>),
    /// The last reply is being written; then both sockets close.
    Closing,
}

/// What one drive needs from its worker.
pub struct Ctx<'a> {
    pub shared: &'a GateShared,
    pub stats: &'a mut GateStats,
    pub scratch: &'a mut [u8],
    pub worker: usize,
    pub slot: usize,
    pub now: Instant,
}

/// One session.
pub struct Session {
    pub client: ClientIo,
    pub mta: MtaStream,
    pub peer: SocketAddr,
    local: SocketAddr,
    pub address_key: AddressKey,
    /// Tells this session's accept-log answers from a previous one's in the same slot.
    pub generation: u64,
    phase: Phase,
    client_in: Vec<u8>,
    client_out: Vec<u8>,
    mta_in: Vec<u8>,
    mta_out: Vec<u8>,
    mta_connected: bool,
    /// While connecting: the MTA socket has reported an event, and whether it was an error.
    mta_event: bool,
    mta_failed: bool,
    client_readable: bool,
    mta_readable: bool,
    client_eof: bool,
    mta_eof: bool,
    transaction: Option<Transaction>,
    /// After STARTTLS: no MAIL before a new EHLO or HELO (RFC 3207 section 4.2).
    need_helo: bool,
    /// STARTTLS was accepted: TLS starts once its 220 is written.
    upgrade: bool,
    /// Errors the gate answered itself; too many end the session.
    errors: u32,
    /// When the current wait (for the client or the MTA) times out.
    pub deadline: Instant,
    /// When the command now awaited went to the MTA.
    sent_at: Instant,
    /// An untracked MTRK has been logged for this session.
    untracked_logged: bool,
    /// The gate is shutting down: end the session at its next pause.
    draining: bool,
    /// Queued in the worker's list of sessions to drive again.
    pub scheduled: bool,
    /// Which sockets epoll also watches for writability (see [`Session::wants_writable`]).
    pub watching_writable: Sides,
}

/// One flag for each of a session's two sockets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sides {
    pub client: bool,
    pub mta: bool,
}

impl Session {
    /// A session for an accepted client (`peer` connected to `local`) whose MTA connection
    /// has been started.
    ///
    /// Neither socket counts as readable until epoll says so: registering a socket that
    /// already holds input reports it, and a read now would only find nothing (two system
    /// calls a session saved).
    pub fn new(
        client: TcpStream,
        mta: MtaStream,
        (peer, local): (SocketAddr, SocketAddr),
        address_key: AddressKey,
        generation: u64,
        now: Instant,
    ) -> Session {
        Session {
            client: ClientIo::new(client),
            mta,
            peer,
            local,
            address_key,
            generation,
            phase: Phase::Connecting,
            client_in: Vec::new(),
            client_out: Vec::new(),
            mta_in: Vec::new(),
            mta_out: Vec::new(),
            mta_connected: false,
            mta_event: false,
            mta_failed: false,
            client_readable: false,
            mta_readable: false,
            client_eof: false,
            mta_eof: false,
            transaction: None,
            need_helo: false,
            upgrade: false,
            errors: 0,
            deadline: now + timeouts::CONNECT,
            sent_at: now,
            untracked_logged: false,
            draining: false,
            scheduled: false,
            watching_writable: Sides::default(),
        }
    }

    /// The sockets whose writability the session now waits for: one holding output that would
    /// not go (an SMTP reply or command is one write, so nearly never), a TLS client (rustls'
    /// records), the MTA socket while its connection is made. Both sockets are registered for
    /// readability only, which spares the writable event each would report at once: two of the
    /// ~16 wake-ups a message costs; the worker adds writability when this first asks for it.
    pub fn wants_writable(&self) -> Sides {
        Sides {
            client: self.client.is_tls() || !self.client_out.is_empty(),
            mta: !self.mta_out.is_empty(),
        }
    }

    /// Notes readiness of one side; `failed`: the event reports an error on the socket.
    pub fn on_event(&mut self, mta_side: bool, readable: bool, failed: bool) {
        if mta_side {
            self.mta_readable |= readable;
            self.mta_event = true;
            self.mta_failed |= failed;
        } else {
            self.client_readable |= readable;
        }
    }

    /// Moves octets and handles what they complete, as far as the turn allows.
    pub fn drive(&mut self, ctx: &mut Ctx<'_>) -> Next {
        if matches!(self.phase, Phase::Connecting)
            && !self.check_connected(ctx)
            && !matches!(self.phase, Phase::Closing)
        {
            // Still connecting (a failure went to Closing, whose 421 is written below).
            return self.after_turn();
        }
        for _ in 0..STEPS_PER_TURN {
            match self.step(ctx) {
                Ok(true) => {}
                Ok(false) => return self.after_turn(),
                Err(_) => return Next::Close,
            }
        }
        Next::Again
    }

    fn after_turn(&self) -> Next {
        let done = match self.phase {
            Phase::Closing => self.client_out.is_empty(),
            _ => false,
        };
        if done {
            Next::Close
        } else {
            Next::Wait
        }
    }

    /// One round of writing, reading and handling; true when anything moved.
    fn step(&mut self, ctx: &mut Ctx<'_>) -> io::Result<bool> {
        let mut moved = false;
        if !self.client_out.is_empty() || self.client.is_tls() {
            let before = self.client_out.len();
            let flushed = self.client.write(&mut self.client_out)?;
            moved |= self.client_out.len() != before;
            if flushed && self.upgrade {
                self.begin_tls(ctx);
                moved = true;
            }
        }
        release_if_empty(&mut self.client_out);
        if matches!(self.phase, Phase::Closing) {
            // Nothing more is read or relayed; the worker closes once the last reply is out.
            return Ok(false);
        }
        if self.mta_connected && !self.mta_out.is_empty() {
            let before = self.mta_out.len();
            if let Err(e) = write_some(&mut self.mta, &mut self.mta_out) {
                self.mta_lost(ctx, &e);
                return Ok(true);
            }
            moved |= self.mta_out.len() != before;
            release_if_empty(&mut self.mta_out);
        }
        moved |= self.read_mta(ctx);
        moved |= self.take_mta_output(ctx);
        moved |= self.read_client(ctx)?;
        moved |= self.next_command(ctx);
        Ok(moved)
    }

    /// Whether the MTA connection is made; on failure the client is told, as the banner.
    ///
    /// Asks the kernel nothing of its own. With PROXY v2 the header's write tells: it would
    /// block while the handshake runs and fails once the handshake has failed (a loopback
    /// connect is usually made before the session's first turn, so the header goes out at
    /// once). Without, the MTA socket's first event tells: writable once connected, an error
    /// event when not.
    fn check_connected(&mut self, ctx: &mut Ctx<'_>) -> bool {
        let failed = if ctx.shared.proxy_v2 {
            if self.mta_out.is_empty() {
                self.mta_out = proxy::header(self.peer, self.local);
            }
            let before = self.mta_out.len();
            match write_some(&mut self.mta, &mut self.mta_out) {
                Ok(()) if self.mta_out.len() == before => return false,
                Ok(()) => None,
                Err(e) => Some(e),
            }
        } else if !self.mta_event {
            return false;
        } else if self.mta_failed {
            Some(match self.mta.take_error() {
                Ok(Some(e)) | Err(e) => e,
                Ok(None) => io::ErrorKind::ConnectionRefused.into(),
            })
        } else {
            None
        };
        if let Some(e) = failed {
            self.mta_unreachable(ctx, &e);
            return false;
        }
        self.mta_connected = true;
        self.await_reply(Pending::Banner, timeouts::BANNER, ctx.now);
        true
    }

    fn mta_unreachable(&mut self, ctx: &mut Ctx<'_>, e: &io::Error) {
        ctx.stats.counters.count_mta_unreachable(&ctx.shared.mta, e);
        self.close_with(
            ctx,
            "421 4.3.2",
            "Service not available, closing transmission channel",
        );
    }

    fn read_mta(&mut self, ctx: &mut Ctx<'_>) -> bool {
        if !self.mta_connected || !self.mta_readable || self.mta_eof {
            return false;
        }
        // One reply at most is expected: a little more than that is enough to tell.
        let room = (MAX_REPLY + 1).saturating_sub(self.mta_in.len());
        if room == 0 {
            return false;
        }
        let n = room.min(ctx.scratch.len());
        match self.mta.read(&mut ctx.scratch[..n]) {
            Ok(0) => {
                self.mta_eof = true;
                true
            }
            Ok(got) => {
                self.mta_in.extend_from_slice(&ctx.scratch[..got]);
                // A short read emptied the socket: epoll (edge-triggered) reports what comes
                // next, so the read that would only say WouldBlock is skipped.
                if got < n {
                    self.mta_readable = false;
                }
                true
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.mta_readable = false;
                false
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
            Err(e) => {
                self.mta_lost(ctx, &e);
                true
            }
        }
    }

    /// The MTA's connection broke: the client is told and the session ends.
    fn mta_lost(&mut self, ctx: &mut Ctx<'_>, _e: &io::Error) {
        self.mta_eof = true;
        if !matches!(self.phase, Phase::Closing) {
            self.close_with(
                ctx,
                "421 4.4.2",
                "Error: lost connection to the mail server",
            );
        }
    }

    /// Whether the client may be read now: not while its last reply before TLS is written,
    /// and only while there is room for what it sends.
    fn client_wanted(&self) -> bool {
        if self.upgrade || self.client_eof || !self.client_readable {
            return false;
        }
        match &self.phase {
            Phase::Closing => false,
            Phase::Data(_) => self.mta_out.len() < DATA_HIGH_WATER,
            _ => self.client_in.len() < MAX_CLIENT_IN,
        }
    }

    fn read_client(&mut self, ctx: &mut Ctx<'_>) -> io::Result<bool> {
        if !self.client_wanted() {
            return Ok(false);
        }
        let got = match self.client.read(ctx.scratch) {
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(true),
            Err(e) => {
                if self.client.handshaking() {
                    ctx.stats.counters.tls_failures.add(1);
                }
                return Err(e);
            }
        };
        if self.client.handshake_done() {
            ctx.stats.counters.tls_handshakes.add(1);
            self.need_helo = true;
            self.transaction = None;
            self.deadline = ctx.now + timeouts::CLIENT;
        }
        match got {
            Got::Nothing => {
                self.client_readable = false;
                Ok(false)
            }
            Got::Closed => {
                self.client_eof = true;
                if matches!(self.phase, Phase::Data(_)) {
                    // A message cut short: closing the MTA's connection mid-data makes it
                    // discard what it received.
                    self.phase = Phase::Closing;
                }
                Ok(true)
            }
            Got::Data(n) => {
                if n < ctx.scratch.len() && !self.client.is_tls() {
                    // As for the MTA: the socket is empty until epoll says otherwise.
                    self.client_readable = false;
                }
                if let Phase::Data(scanner) = &mut self.phase {
                    self.deadline = ctx.now + timeouts::CLIENT;
                    if let Fed::End(used) = scanner.feed(&ctx.scratch[..n], &mut self.mta_out) {
                        self.client_in.extend_from_slice(&ctx.scratch[used..n]);
                        self.end_of_data(ctx);
                    }
                } else {
                    self.client_in.extend_from_slice(&ctx.scratch[..n]);
                }
                Ok(true)
            }
        }
    }

    /// The go-ahead for TLS is written: everything from the client is TLS from now on, and
    /// nothing it sent before (a pipelined command injected behind STARTTLS) is run.
    fn begin_tls(&mut self, ctx: &mut Ctx<'_>) {
        self.upgrade = false;
        self.client_in = Vec::new();
        let Some(config) = ctx.shared.tls.clone() else {
            return;
        };
        match self.client.start_tls(config) {
            Ok(()) => {
                self.client_readable = true;
                self.deadline = ctx.now + timeouts::TLS_HANDSHAKE;
            }
            Err(_) => {
                ctx.stats.counters.tls_failures.add(1);
                self.phase = Phase::Closing;
            }
        }
    }

    /// The session's wait ran out.
    pub fn on_timeout(&mut self, ctx: &mut Ctx<'_>) {
        ctx.stats.counters.timeouts.add(1);
        match &self.phase {
            Phase::Connecting => {
                let e = io::Error::new(io::ErrorKind::TimedOut, "connection timed out");
                self.mta_unreachable(ctx, &e);
            }
            Phase::Durable(_) => self.durable(ctx, false),
            Phase::Closing => {}
            _ if self.client.handshaking() => self.phase = Phase::Closing,
            _ => self.close_with(ctx, "421 4.4.2", "Error: timeout exceeded"),
        }
    }

    /// The gate is shutting down: the session ends at its next pause (see [`flow`]).
    pub fn begin_drain(&mut self) {
        self.draining = true;
    }

    /// The drain deadline has passed: the client is told and the session ends now.
    pub fn force_close(&mut self, ctx: &mut Ctx<'_>) {
        if !matches!(self.phase, Phase::Closing) {
            self.close_with(
                ctx,
                "421 4.3.2",
                "Service shutting down, closing transmission channel",
            );
        }
        let _ = self.client.write(&mut self.client_out);
    }

    /// Queues a reply of the gate's own, naming the gate: `CODE STATUS HOSTNAME TEXT`.
    fn reply(&mut self, ctx: &Ctx<'_>, code_status: &str, text: &str) {
        let out = &mut self.client_out;
        out.extend_from_slice(code_status.as_bytes());
        out.push(b' ');
        out.extend_from_slice(ctx.shared.hostname.as_bytes());
        out.push(b' ');
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    /// Queues a last reply of the gate's own; the session ends once it is written.
    fn close_with(&mut self, ctx: &Ctx<'_>, code_status: &str, text: &str) {
        self.reply(ctx, code_status, text);
        self.phase = Phase::Closing;
    }

    fn await_reply(&mut self, pending: Pending, timeout: Duration, now: Instant) {
        self.phase = Phase::Reply(pending);
        self.sent_at = now;
        self.deadline = now + timeout;
    }
}

/// Writes as much of `out` as `w` takes, removing it from `out`.
fn write_some(w: &mut impl Write, out: &mut Vec<u8>) -> io::Result<()> {
    let mut written = 0;
    let result = loop {
        if written == out.len() {
            break Ok(());
        }
        match w.write(&out[written..]) {
            Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    out.drain(..written);
    result
}

fn release_if_empty(buf: &mut Vec<u8>) {
    if buf.is_empty() && buf.capacity() > KEEP_BUFFER {
        *buf = Vec::new();
    }
}
