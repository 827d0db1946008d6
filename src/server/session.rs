//! The protocol state of one connection: turns complete command lines into queued answers.
//! It reads the index and the shared settings; it never touches the socket (the connection
//! feeds it bytes and writes what it queues).

use std::sync::Arc;
use std::time::Instant;

use memchr::memchr;

use super::output::{Bytes, Output};
use super::Shared;
use crate::protocol::command::{parse, BadCommand, Command, CommandKind};
use crate::protocol::{reply, xtext, MAX_ENVID, MAX_LINE};
use crate::stats::WorkerStats;

/// What the server answers for an unknown envid or a wrong secret (`--unknown`).
#[derive(Debug, Clone)]
pub enum UnknownAnswer {
    /// `-ERR/noinfo`.
    Noinfo,
    /// A tracking body with Action `opaque`.
    Opaque(crate::index::render::OpaqueAnswer),
}

/// The protocol state of one connection.
#[derive(Debug, Default)]
pub struct Session {
    pub out: Output,
    /// Inside a line longer than the limit: octets are dropped up to the next LF.
    discarding: bool,
    /// Bad commands in a row.
    bad_streak: u32,
    /// No more commands are read or answered; the connection closes once `out` is written.
    pub closing: bool,
    /// STARTTLS was accepted with this configuration: nothing more is answered in plaintext,
    /// and everything the client sent after the STARTTLS line is discarded.
    pub upgrade: Option<Arc<rustls::ServerConfig>>,
    /// The session runs under TLS.
    pub tls_active: bool,
}

/// What the session needs from its surroundings for one batch of lines.
pub struct Turn<'a> {
    pub shared: &'a Shared,
    pub stats: &'a mut WorkerStats,
    /// When the octets being answered were read, for latency.
    pub read_at: Instant,
    /// Unix seconds, for record expiry.
    pub now_unix: i64,
    /// Commands this connection may still answer before yielding to the others.
    pub budget: usize,
}

impl Session {
    /// True when the unsent output is above the high-water mark: stop answering (and so
    /// reading) until the client has taken some.
    pub fn output_full(&self, shared: &Shared) -> bool {
        self.out.pending_bytes() >= shared.limits.output_high_water
            || self.out.pending_pieces() >= shared.limits.output_max_pieces
    }

    /// Answers the complete lines at the front of `data`, in order, and returns how many octets
    /// were consumed. Stops early at the end of the budget, at the high-water mark or when the
    /// session closes; an incomplete last line is left unconsumed unless it is already too long,
    /// in which case it is answered `-BAD` at once and discarded as it streams in.
    pub fn answer_lines(&mut self, data: &[u8], turn: &mut Turn<'_>) -> usize {
        let mut pos = 0;
        while pos < data.len() {
            if self.closing || self.upgrade.is_some() {
                // After QUIT nothing more is answered; after STARTTLS, whatever the client
                // pipelined in plaintext must never be executed (CVE-2011-0411's class).
                return data.len();
            }
            let rest = &data[pos..];
            if self.discarding {
                match memchr(b'\n', rest) {
                    Some(i) => {
                        pos += i + 1;
                        self.discarding = false;
                        continue;
                    }
                    None => return data.len(),
                }
            }
            if turn.budget == 0 || self.output_full(turn.shared) {
                break;
            }
            match memchr(b'\n', rest) {
                Some(i) => {
                    let line = &rest[..i];
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    pos += i + 1;
                    turn.budget -= 1;
                    self.answer(line, turn);
                }
                // One more octet than a line may hold, for the CR of the CRLF.
                None if rest.len() > MAX_LINE + 1 => {
                    turn.stats.counters.lines_too_long.add(1);
                    turn.budget = turn.budget.saturating_sub(1);
                    self.reject(BadCommand::LineTooLong, turn);
                    self.discarding = !self.closing;
                    return data.len();
                }
                None => break,
            }
        }
        pos
    }

    /// True when `data` holds a complete line that [`Session::answer_lines`] would answer.
    pub fn has_complete_line(&self, data: &[u8]) -> bool {
        !self.closing && self.upgrade.is_none() && memchr(b'\n', data).is_some()
    }

    /// The TLS handshake finished: RFC 3887 section 6.2 resets the session to its initial state
    /// and the server greets again, now without the STARTTLS option.
    pub fn start_over_under_tls(&mut self, greeting: &Arc<[u8]>) {
        self.upgrade = None;
        self.tls_active = true;
        self.bad_streak = 0;
        self.discarding = false;
        self.out.push(Bytes::Shared(Arc::clone(greeting)), None);
    }

    fn reply(&mut self, bytes: Bytes, kind: CommandKind, turn: &Turn<'_>) {
        self.out.push(bytes, Some((kind, turn.read_at)));
    }

    fn reject(&mut self, why: BadCommand, turn: &mut Turn<'_>) {
        turn.stats.counters.count_bad(why);
        self.reply(Bytes::Static(reply::bad(why)), CommandKind::Bad, turn);
        self.bad_streak += 1;
        if self.bad_streak >= turn.shared.limits.max_bad_commands {
            turn.stats.counters.closed_too_many_errors.add(1);
            self.out.push(Bytes::Static(reply::TOO_MANY_ERRORS), None);
            self.closing = true;
        }
    }

    fn answer(&mut self, line: &[u8], turn: &mut Turn<'_>) {
        let command = match parse(line) {
            Ok(c) => c,
            Err(why) => return self.reject(why, turn),
        };
        self.bad_streak = 0;
        match command {
            Command::Track { .. } if turn.shared.tls_required && !self.tls_active => {
                turn.stats.counters.track_tls_required.add(1);
                self.reply(Bytes::Static(reply::TLS_REQUIRED), CommandKind::Track, turn);
            }
            Command::Track { envid, secret_hash } => self.track(envid, &secret_hash, turn),
            Command::Comment => {
                turn.stats.counters.comments.add(1);
                self.reply(Bytes::Static(reply::COMMENT_OK), CommandKind::Comment, turn)
            }
            Command::Quit => {
                turn.stats.counters.quits.add(1);
                self.reply(Bytes::Static(reply::BYE), CommandKind::Quit, turn);
                self.closing = true;
            }
            Command::Starttls { fqdn } => self.starttls(fqdn, turn),
        }
    }

    fn starttls(&mut self, fqdn: &[u8], turn: &mut Turn<'_>) {
        let answer = if self.tls_active {
            reply::TLS_IN_PROGRESS
        } else {
            match &turn.shared.tls {
                None => reply::TLS_UNSUPPORTED,
                Some(certs) => match certs.current().config_for(fqdn) {
                    None => reply::TLS_BAD_FQDN,
                    Some(config) => {
                        self.upgrade = Some(config);
                        reply::TLS_GO_AHEAD
                    }
                },
            }
        };
        let counter = match self.upgrade {
            Some(_) => &turn.stats.counters.starttls_accepted,
            None => &turn.stats.counters.starttls_refused,
        };
        counter.add(1);
        self.reply(Bytes::Static(answer), CommandKind::Starttls, turn);
    }

    fn track(&mut self, envid: &[u8], secret_hash: &[u8; 20], turn: &mut Turn<'_>) {
        let mut raw = [0u8; MAX_ENVID];
        // The parser accepted the envid as xtext of at most MAX_ENVID octets, so it decodes.
        let raw = match xtext::decode_into(envid, &mut raw) {
            Ok(n) => &raw[..n],
            Err(_) => return self.reject(BadCommand::BadEnvid, turn),
        };
        if let Some(answer) = turn.shared.index.lookup(raw, secret_hash, turn.now_unix) {
            turn.stats.counters.track_hits.add(1);
            return self.reply(Bytes::Record(answer), CommandKind::Track, turn);
        }
        turn.stats.counters.track_misses.add(1);
        match &turn.shared.unknown {
            UnknownAnswer::Noinfo => {
                self.reply(Bytes::Static(reply::NOINFO), CommandKind::Track, turn)
            }
            UnknownAnswer::Opaque(o) => {
                self.out.push(Bytes::Shared(o.before_envid.clone()), None);
                self.out.push(Bytes::Owned(envid.into()), None);
                self.reply(
                    Bytes::Shared(o.after_envid.clone()),
                    CommandKind::Track,
                    turn,
                );
            }
        }
    }
}
