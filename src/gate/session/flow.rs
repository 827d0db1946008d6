//! What a session does with each client command and each MTA reply: the verb allow-list,
//! STARTTLS, the MTRK splice, the recipients and their ORCPT, the end of data, and the native
//! lines that must be durable before the client sees the MTA's 250.

use std::time::Instant;

use super::{
    release_if_empty, timeouts, Ctx, Pending, Phase, Session, CLIENT_OUT_HIGH_WATER,
    MAX_COMMAND_LINE,
};
use crate::gate::accept_log::{Done, Request};
use crate::gate::smtp::command::{self, Verb};
use crate::gate::smtp::data::{DataScanner, Fed};
use crate::gate::smtp::mail::{self, Mail, Untracked};
use crate::gate::smtp::{ehlo, reply};
use crate::gate::stats::Timed;
use crate::gate::transaction::Transaction;
use crate::protocol::date::Timestamp;

/// Errors the gate answers itself before it ends a session (Postfix's `smtpd_hard_error_limit`).
const MAX_ERRORS: u32 = 20;

impl Session {
    /// Handles what the MTA sent: the reply awaited, or anything unasked for.
    pub(super) fn take_mta_output(&mut self, ctx: &mut Ctx<'_>) -> bool {
        if matches!(self.phase, Phase::Connecting | Phase::Closing) {
            return false;
        }
        let complete = reply::complete(&self.mta_in);
        let waiting = matches!(self.phase, Phase::Reply(_));
        match complete {
            Ok(Some(n)) if waiting && n == self.mta_in.len() => {
                let Phase::Reply(pending) = std::mem::replace(&mut self.phase, Phase::Command)
                else {
                    return false;
                };
                let text = std::mem::take(&mut self.mta_in);
                self.on_reply(ctx, pending, text);
                true
            }
            // A 421 may come at any time: the MTA is closing the channel.
            Ok(Some(n)) if !waiting && self.mta_in.starts_with(b"421") => {
                self.client_out.extend_from_slice(&self.mta_in[..n]);
                self.mta_in.clear();
                self.phase = Phase::Closing;
                true
            }
            Ok(Some(_)) | Err(_) => {
                // More than one reply, or not a reply: the gate no longer knows which reply
                // answers which command, and says so rather than guess.
                ctx.stats.counters.desyncs.add(1);
                self.close_with(
                    ctx,
                    "421 4.4.0",
                    "Error: the mail server's reply was not understood",
                );
                true
            }
            Ok(None) if self.mta_eof => {
                self.mta_lost(ctx, &std::io::ErrorKind::UnexpectedEof.into());
                true
            }
            Ok(None) => false,
        }
    }

    /// Relays the MTA's reply to `pending`, and follows the transaction by it.
    fn on_reply(&mut self, ctx: &mut Ctx<'_>, pending: Pending, text: Vec<u8>) {
        let nanos = ctx.now.saturating_duration_since(self.sent_at).as_nanos() as u64;
        let ok = reply::class(&text) == b'2';
        self.deadline = ctx.now + timeouts::CLIENT;
        let timed = match pending {
            Pending::Banner => Timed::Banner,
            Pending::Ehlo | Pending::Helo => Timed::Ehlo,
            Pending::Mail(_) => Timed::Mail,
            Pending::Rcpt(_) => Timed::Rcpt,
            Pending::DataEnd => Timed::DataEnd,
            _ => Timed::Other,
        };
        ctx.stats.record(timed, nanos);
        if text.starts_with(b"421") {
            self.client_out.extend_from_slice(&text);
            self.phase = Phase::Closing;
            return;
        }
        match pending {
            Pending::Ehlo if ok => {
                self.need_helo = false;
                self.transaction = None;
                let starttls = ctx.shared.tls.is_some() && !self.client.is_tls();
                self.client_out
                    .extend_from_slice(&ehlo::edit(&text, starttls));
                return;
            }
            Pending::Helo if ok => {
                self.need_helo = false;
                self.transaction = None;
            }
            Pending::Mail(tracking) => {
                self.transaction = None;
                if ok {
                    if let Some(Err(why)) = &tracking {
                        self.note_untracked(ctx, *why);
                    }
                    self.transaction = Some(Transaction::new(tracking));
                }
            }
            Pending::Rcpt(Some(rcpt)) if ok => {
                if let Some(t) = &mut self.transaction {
                    t.add(rcpt);
                }
            }
            Pending::Data if reply::class(&text) == b'3' => {
                self.client_out.extend_from_slice(&text);
                self.start_data(ctx);
                return;
            }
            Pending::DataEnd => {
                if ok && self.hand_over(ctx, &text) {
                    self.phase = Phase::Durable(text);
                    self.deadline = ctx.now + timeouts::DURABLE;
                    return;
                }
                self.transaction = None;
            }
            Pending::Rset if ok => self.transaction = None,
            Pending::Quit => {
                self.client_out.extend_from_slice(&text);
                self.phase = Phase::Closing;
                return;
            }
            _ => {}
        }
        self.client_out.extend_from_slice(&text);
    }

    fn note_untracked(&mut self, ctx: &mut Ctx<'_>, why: Untracked) {
        ctx.stats.counters.count_untracked(why);
        if !std::mem::replace(&mut self.untracked_logged, true) {
            eprintln!(
                "mtqpd gate: client {}: MAIL with MTRK flows untracked: {}",
                self.peer.ip(),
                why.name()
            );
        }
    }

    /// After the MTA's 2xx to the data: hands a tracked transaction's native lines to the
    /// accept log. True when the reply must now wait for them to be durable.
    fn hand_over(&mut self, ctx: &mut Ctx<'_>, text: &[u8]) -> bool {
        ctx.stats.counters.transactions.add(1);
        let Some(tx) = self.transaction.take() else {
            return false;
        };
        let Some(Ok(tracking)) = &tx.tracking else {
            return false;
        };
        ctx.stats
            .counters
            .recipients_dropped
            .add(tx.recipients_dropped);
        let Some(queue) = reply::queue_id(text, &ctx.shared.queue_id_patterns) else {
            ctx.stats.counters.untracked_no_queue_id.add(1);
            if !std::mem::replace(&mut self.untracked_logged, true) {
                eprintln!(
                    "mtqpd gate: no queue id in the MTA's reply {:?}: the message is not \
                     tracked (see --queue-id-pattern)",
                    String::from_utf8_lossy(reply::last_text(text))
                );
            }
            return false;
        };
        let at = Timestamp {
            unix: crate::clock::unix_now(),
            offset_minutes: 0,
        };
        let host = ctx.shared.mta_host.as_deref();
        let lines = tx.native_lines(tracking, queue, host, self.peer.ip(), &at);
        let sent = ctx.shared.accept_log.send(Request {
            worker: ctx.worker,
            session: ctx.slot,
            generation: self.generation,
            lines,
            handed_over: Instant::now(),
        });
        if sent.is_err() {
            ctx.stats.counters.accept_log_failures.add(1);
            return false;
        }
        true
    }

    /// The accept log answered (or its wait ran out: `durable` false): the 250 goes out.
    pub(super) fn durable(&mut self, ctx: &mut Ctx<'_>, durable: bool) {
        let Phase::Durable(text) = std::mem::replace(&mut self.phase, Phase::Command) else {
            return;
        };
        if durable {
            ctx.stats.counters.tracked.add(1);
        } else {
            ctx.stats.counters.accept_log_failures.add(1);
        }
        self.client_out.extend_from_slice(&text);
        self.deadline = ctx.now + timeouts::CLIENT;
    }

    /// The writer's answer for this session.
    pub fn on_durable(&mut self, ctx: &mut Ctx<'_>, done: &Done) {
        if done.generation != self.generation || !matches!(self.phase, Phase::Durable(_)) {
            return;
        }
        let nanos = ctx
            .now
            .saturating_duration_since(done.handed_over)
            .as_nanos() as u64;
        ctx.stats.record(Timed::AcceptLog, nanos);
        self.durable(ctx, done.durable);
    }

    /// The MTA said 354: what the client already sent is data, the rest comes as it is read.
    fn start_data(&mut self, ctx: &mut Ctx<'_>) {
        let mut scanner = DataScanner::default();
        let held = std::mem::take(&mut self.client_in);
        let fed = scanner.feed(&held, &mut self.mta_out);
        self.phase = Phase::Data(scanner);
        self.deadline = ctx.now + timeouts::CLIENT;
        if let Fed::End(used) = fed {
            self.client_in.extend_from_slice(&held[used..]);
            self.end_of_data(ctx);
        }
    }

    /// The client's `CRLF . CRLF` was forwarded: the MTA's verdict is awaited.
    pub(super) fn end_of_data(&mut self, ctx: &mut Ctx<'_>) {
        if let Phase::Data(scanner) = &self.phase {
            let n = scanner.normalised;
            let c = &ctx.stats.counters;
            c.bare_line_ends.add(n.bare_line_ends);
            c.dots_stuffed.add(n.dots_stuffed);
        }
        self.await_reply(Pending::DataEnd, timeouts::DATA_END_REPLY, ctx.now);
    }

    /// Takes the next client command, when the previous one is answered.
    pub(super) fn next_command(&mut self, ctx: &mut Ctx<'_>) -> bool {
        if !matches!(self.phase, Phase::Command)
            || self.upgrade
            || self.client_out.len() > CLIENT_OUT_HIGH_WATER
        {
            return false;
        }
        if self.draining && self.transaction.is_none() {
            self.close_with(
                ctx,
                "421 4.3.2",
                "Service shutting down, closing transmission channel",
            );
            return true;
        }
        let Some(nl) = memchr::memchr(b'\n', &self.client_in) else {
            if self.client_in.len() > MAX_COMMAND_LINE {
                self.close_with(ctx, "500 5.5.2", "Error: line too long");
                return true;
            }
            if self.client_eof {
                self.phase = Phase::Closing;
                return true;
            }
            return false;
        };
        let input = std::mem::take(&mut self.client_in);
        let line = &input[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.command(ctx, line);
        if self.upgrade {
            // Whatever was sent behind STARTTLS is dropped, unread (see `begin_tls`).
            self.client_in = Vec::new();
        } else {
            self.client_in = input;
            self.client_in.drain(..=nl);
            release_if_empty(&mut self.client_in);
        }
        true
    }

    fn command(&mut self, ctx: &mut Ctx<'_>, line: &[u8]) {
        if line.len() > MAX_COMMAND_LINE {
            return self.error(ctx, "500 5.5.2", "Error: line too long");
        }
        if line.is_empty() || !command::is_clean(line) {
            return self.error(ctx, "500 5.5.2", "Error: bad syntax");
        }
        let verb = Verb::of(line);
        let pending = match verb {
            Verb::StartTls => return self.starttls(ctx, line),
            Verb::Other => {
                ctx.stats.counters.refused_verbs.add(1);
                return self.error(ctx, "502 5.5.1", "Error: command not implemented");
            }
            Verb::Mail if self.need_helo => {
                return self.error(ctx, "503 5.5.1", "Error: send HELO/EHLO first");
            }
            Verb::Mail => match mail::splice(line) {
                Mail::Malformed(why) => {
                    ctx.stats.counters.mtrk_malformed.add(1);
                    self.errors += 1;
                    let text = format!("501 5.5.4 Malformed MTRK parameter: {why}\r\n");
                    self.client_out.extend_from_slice(text.as_bytes());
                    return;
                }
                Mail::Unchanged => Pending::Mail(None),
                Mail::Spliced { line, tracking } => {
                    self.forward(ctx, &line, Pending::Mail(Some(tracking)));
                    return;
                }
            },
            Verb::Rcpt => Pending::Rcpt(command::rcpt(line)),
            Verb::Data => Pending::Data,
            Verb::Ehlo => Pending::Ehlo,
            Verb::Helo => Pending::Helo,
            Verb::Rset => Pending::Rset,
            Verb::Quit => Pending::Quit,
            Verb::Noop | Verb::Vrfy | Verb::Expn | Verb::Help => Pending::Other,
        };
        self.forward(ctx, line, pending);
    }

    fn forward(&mut self, ctx: &Ctx<'_>, line: &[u8], pending: Pending) {
        self.mta_out.extend_from_slice(line);
        self.mta_out.extend_from_slice(b"\r\n");
        let timeout = match pending {
            Pending::Data => timeouts::DATA_REPLY,
            _ => timeouts::COMMAND_REPLY,
        };
        self.await_reply(pending, timeout, ctx.now);
    }

    /// STARTTLS is the gate's: the MTA's TLS cannot work through a gate that reads commands.
    fn starttls(&mut self, ctx: &mut Ctx<'_>, line: &[u8]) {
        if ctx.shared.tls.is_none() {
            ctx.stats.counters.refused_verbs.add(1);
            return self.error(ctx, "502 5.5.1", "Error: command not implemented");
        }
        if self.client.is_tls() {
            return self.error(ctx, "554 5.5.1", "Error: TLS already active");
        }
        if line.len() != b"STARTTLS".len() {
            return self.error(ctx, "501 5.5.4", "Syntax: STARTTLS");
        }
        if self.transaction.is_some() {
            return self.error(ctx, "503 5.5.1", "Error: MAIL transaction in progress");
        }
        self.client_out
            .extend_from_slice(b"220 2.0.0 Ready to start TLS\r\n");
        self.upgrade = true;
    }

    /// A reply of the gate's own to a bad command; too many of them end the session.
    fn error(&mut self, ctx: &mut Ctx<'_>, code_status: &str, text: &str) {
        self.errors += 1;
        if self.errors >= MAX_ERRORS {
            return self.close_with(ctx, "421 4.7.0", "Error: too many errors");
        }
        self.reply(ctx, code_status, text);
    }
}
