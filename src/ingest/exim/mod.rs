//! Exim's main log (docs/mta-logs.md, section 2), turned into [`MtaEvent`]s
//! about its message ids: arrivals `<=`, bounce notifications `<= <> R=`, deliveries `=>` `->`
//! `>>`, failures `**`, deferrals `==` and `Completed`.
//!
//! This module owns the grammar of an Exim line — `YYYY-MM-DD HH:MM:SS[.mmm] [+ZZZZ] [[pid]]
//! MSGID FLAG …`, directly in `mainlog` or behind a syslog prefix — and the choice of the RFC
//! 3886 action and status for each flag. The syslog prefix itself is [`super::syslog`]'s, zone
//! rules are [`super::timezone`]'s. It must not correlate: it keeps no state about message ids
//! (a bounce's own deliveries are emitted like any other; the tracker drops them) and never
//! guesses retry deadlines. It must not panic on any input, and it allocates nothing for a line
//! beyond the owned fields of the event it emits.

use std::borrow::Cow;

use memchr::{memchr, memchr2_iter, memchr_iter, memmem};

use super::event::{Event, LineParser, MtaEvent, NextHop, Outcome};
use super::mta::{next_hop_queue_id, RecipientFields, MAX_ADDRESS, MAX_HOST, MAX_MESSAGE_ID};
use super::native::{self, NativeTags};
use super::syslog::{parse_prefix, SyslogClock};
use super::timezone::Zone;
use crate::gate::smtp::reply;
use crate::index::message::Action;
use crate::protocol::date::Timestamp;

/// What one line meant: `Ok(Some)` an event, `Ok(None)` nothing to track, `Err` a rejection
/// reason.
type Parsed = Result<Option<MtaEvent>, &'static str>;

/// Parser of Exim main log lines, directly from `mainlog` or behind a syslog prefix, and of the
/// native lines in the same file: an ACL's `logwrite` (the text right after Exim's timestamp,
/// or after its message id, begins with `mtqp:` — Exim's own lines never do, and only the
/// operator's configuration writes `logwrite`), or a syslog line of an allowed program tag.
pub struct EximParser {
    /// The zone of Exim timestamps that carry no `+ZZZZ` (Exim logs local time by default).
    zone: Zone,
    /// Dates the syslog prefix when Exim's own timestamp is off (`syslog_timestamp = false`).
    clock: SyslogClock,
    native_tags: NativeTags,
}

impl EximParser {
    /// A parser whose offset-less timestamps are local time in `zone`; `clock` dates lines
    /// that only carry a syslog timestamp; native lines count only as said above.
    pub fn new(zone: Zone, clock: SyslogClock, native_tags: NativeTags) -> EximParser {
        EximParser {
            zone,
            clock,
            native_tags,
        }
    }

    /// The native line `line` is, if it is one (see [`EximParser`]).
    fn native(&mut self, line: &[u8]) -> Option<native::Parsed> {
        if let Ok(Some((_, rest))) = exim_header(line, &self.zone) {
            let after_id = next_token(rest)
                .filter(|(id, _)| is_message_id(id))
                .and_then(|(_, after)| after.strip_prefix(b" "));
            return native::parse_text(rest).or_else(|| after_id.and_then(native::parse_text));
        }
        let prefix = parse_prefix(line, &mut self.clock)?;
        native::from_syslog(&prefix, &self.native_tags)
    }

    fn line(&mut self, line: &[u8]) -> Parsed {
        // Exim writes the later lines of a multi-line entry (`Warning: No server certificate
        // defined …` at every daemon start on Debian) indented: they continue an entry that
        // names no message.
        if matches!(line.first(), None | Some(b' ' | b'\t')) {
            return Ok(None);
        }
        if let Some((time, rest)) = exim_header(line, &self.zone)? {
            // `2019-10-22 03:39:17 mx1 exim[29786]: …`: a syslog daemon that writes ISO dates.
            if let Some(text) = syslog_tail(rest) {
                return self.inner(text, Some(time));
            }
            return body(time, rest, false);
        }
        if let Some(prefix) = parse_prefix(line, &mut self.clock) {
            if !is_exim_program(prefix.program) {
                // Another daemon's line in a shared mail log.
                return Ok(None);
            }
            return self.inner(prefix.text, Some(prefix.time));
        }
        // `mail.example.com exim[3751842]: 2021-07-17 23:20:49 …`: a prefix without a time.
        if let Some(text) = syslog_tail(line) {
            return self.inner(text, None);
        }
        Err("not an Exim or syslog line")
    }

    /// The text after a syslog prefix: Exim's own line, with its timestamp unless
    /// `syslog_timestamp = false`, in which case the prefix's `time` is the line's.
    fn inner(&self, text: &[u8], time: Option<Timestamp>) -> Parsed {
        let (text, split) = match split_marker(text) {
            // A later piece of a line Exim split for syslog: its start is in an earlier line
            // and nothing here names a message.
            Some((_, false)) => return Ok(None),
            Some((rest, true)) => (rest, true),
            None => (text, false),
        };
        if let Some((own, rest)) = exim_header(text, &self.zone)? {
            return body(own, rest, split);
        }
        let time = time.ok_or("syslog prefix without a time before a line without one")?;
        body(time, skip_pid(text)?, split)
    }
}

impl LineParser for EximParser {
    fn parse(&mut self, line: &[u8], emit: &mut dyn FnMut(Event)) -> Outcome {
        if let Some(parsed) = self.native(line) {
            return native::outcome(parsed, emit);
        }
        match self.line(line) {
            Ok(Some(event)) => {
                emit(Event::Mta(event));
                Outcome::Parsed
            }
            Ok(None) => Outcome::Ignored,
            Err(reason) => Outcome::Rejected(reason),
        }
    }
}

/// The shape of Exim's timestamp; `d` is any digit.
const STAMP: &[u8; 19] = b"dddd-dd-dd dd:dd:dd";

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 9 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |acc, &c| acc * 10 + u32::from(c - b'0')))
}

fn skip_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| c == b' ').count();
    &s[n..]
}

/// Reads `YYYY-MM-DD HH:MM:SS[.mmm] [+ZZZZ] [[pid]] ` at the start of `s`. `Ok(None)` when `s`
/// does not start like one (so it may be a syslog prefix); an error when it does but is cut
/// short or names no real instant.
fn exim_header<'a>(
    s: &'a [u8],
    zone: &Zone,
) -> Result<Option<(Timestamp, &'a [u8])>, &'static str> {
    let shaped = s.iter().zip(STAMP).all(|(&c, &p)| {
        if p == b'd' {
            c.is_ascii_digit()
        } else {
            c == p
        }
    });
    if !shaped {
        return Ok(None);
    }
    if s.len() < STAMP.len() {
        return Err("truncated Exim timestamp");
    }
    let field = |from: usize, to: usize| digits(&s[from..to]).unwrap_or(0);
    let (year, month, day) = (field(0, 4), field(5, 7), field(8, 10));
    let hms = (field(11, 13), field(14, 16), field(17, 19));
    let mut rest = &s[STAMP.len()..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return Err("bad fraction in Exim timestamp");
        }
        rest = &frac[n..];
    }
    if !rest.is_empty() && rest[0] != b' ' {
        return Err("bad Exim timestamp");
    }
    rest = skip_spaces(rest);
    // `log_timezone = true` appends the offset; then the line says which zone it is in.
    let mut offset = None;
    if let [sign @ (b'+' | b'-'), h1, h2, m1, m2, tail @ ..] = rest {
        let zone_shaped = [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit());
        if zone_shaped && tail.first().map_or(true, |&c| c == b' ') {
            let (h, m) = (
                u32::from(*h1 - b'0') * 10 + u32::from(*h2 - b'0'),
                u32::from(*m1 - b'0') * 10 + u32::from(*m2 - b'0'),
            );
            if h > 23 || m > 59 {
                return Err("bad UTC offset");
            }
            let v = (h * 60 + m) as i16;
            offset = Some(if *sign == b'-' { -v } else { v });
            rest = skip_spaces(tail);
        }
    }
    let offset = match offset {
        Some(o) => o,
        None => {
            let local = Timestamp::from_civil(i64::from(year), month, day, hms, 0)
                .ok_or("invalid date or time in Exim timestamp")?;
            zone.offset_for_local(local.unix)
        }
    };
    let time = Timestamp::from_civil(i64::from(year), month, day, hms, offset)
        .ok_or("invalid date or time in Exim timestamp")?;
    if rest.is_empty() {
        return Err("nothing after the Exim timestamp");
    }
    Ok(Some((time, skip_pid(rest)?)))
}

/// Skips the `[pid] ` that the `pid` log selector puts before the message id.
fn skip_pid(s: &[u8]) -> Result<&[u8], &'static str> {
    let Some(inner) = s.strip_prefix(b"[") else {
        return Ok(s);
    };
    let Some(close) = memchr(b']', inner) else {
        return Err("unterminated [pid]");
    };
    if digits(&inner[..close]).is_none() {
        // Not a pid: leave the text to the line's own grammar.
        return Ok(s);
    }
    let rest = skip_spaces(&inner[close + 1..]);
    if rest.is_empty() {
        return Err("nothing after the [pid]");
    }
    Ok(rest)
}

/// A program name Exim logs to syslog under (`exim`, Debian's `exim4`, …).
pub fn is_exim_program(p: &[u8]) -> bool {
    p.len() >= 4 && p[..4].eq_ignore_ascii_case(b"exim")
}

/// `HOST exim[pid]: TEXT` → `TEXT`: a syslog prefix whose time, if any, came before `s`.
fn syslog_tail(s: &[u8]) -> Option<&[u8]> {
    let (host, rest) = next_token(s)?;
    let (tag, text) = next_token(rest)?;
    if host.ends_with(b":") {
        return None;
    }
    let tag = tag.strip_suffix(b":")?;
    let name = match memchr(b'[', tag) {
        Some(open) => {
            digits(tag[open + 1..].strip_suffix(b"]")?)?;
            &tag[..open]
        }
        None => tag,
    };
    let plain = name
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'/'));
    (plain && is_exim_program(name)).then(|| skip_spaces(text))
}

/// Exim splits syslog lines longer than 870 bytes into pieces marked `[n/m] ` (or `[n\m] `).
/// Returns the text after the marker and whether this is the first piece.
fn split_marker(s: &[u8]) -> Option<(&[u8], bool)> {
    let inner = s.strip_prefix(b"[")?;
    let close = memchr(b']', inner)?;
    let sep = inner[..close]
        .iter()
        .position(|&c| c == b'/' || c == b'\\')?;
    let n = digits(&inner[..sep])?;
    digits(&inner[sep + 1..close])?;
    let rest = inner.get(close + 1..)?.strip_prefix(b" ")?;
    Some((rest, n == 1))
}

/// An Exim message id: `XXXXXX-YYYYYY-ZZ` before 4.97, `XXXXXX-YYYYYYYYYYY-ZZZZ` since.
fn is_message_id(s: &[u8]) -> bool {
    let shape = |a: usize, b: usize, c: usize| {
        s.len() == a + b + c + 2
            && s[a] == b'-'
            && s[a + b + 1] == b'-'
            && s.iter()
                .enumerate()
                .all(|(i, &ch)| i == a || i == a + b + 1 || ch.is_ascii_alphanumeric())
    };
    shape(6, 6, 2) || shape(6, 11, 4)
}

/// A token that is the start of a message id cut off by the end of the line.
fn is_truncated_message_id(s: &[u8]) -> bool {
    let fits = |b: usize, c: usize| {
        s.len() > 6
            && s.len() < 6 + b + c + 2
            && s.iter().enumerate().all(|(i, &ch)| {
                if i == 6 || i == 6 + b + 1 {
                    ch == b'-'
                } else {
                    ch.is_ascii_alphanumeric()
                }
            })
    };
    fits(6, 2) || fits(11, 4)
}

/// Splits off the next space-separated token. A `KEY="…"` value runs to a closing quote that
/// ends the token (followed by a space or the end of the line): Exim does not escape quotes
/// inside `C="…"` or `DN="…"`, so a quote followed by other text is part of the value. An
/// unclosed quote runs to the end of the line.
fn next_token(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let s = skip_spaces(s);
    if s.is_empty() {
        return None;
    }
    let space = memchr(b' ', s).unwrap_or(s.len());
    let end = match memchr(b'=', &s[..space]) {
        Some(eq) if s.get(eq + 1) == Some(&b'"') => {
            let open = eq + 2;
            memchr_iter(b'"', &s[open..])
                .map(|q| open + q + 1)
                .find(|&after| after == s.len() || s[after] == b' ')
                .unwrap_or(s.len())
        }
        _ => space,
    };
    Some((&s[..end], &s[end..]))
}

/// The value of `KEY=value` or `KEY="value"` when `tok` is that field.
fn field<'a>(tok: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let v = tok.strip_prefix(key)?.strip_prefix(b"=")?;
    Some(match v.strip_prefix(b"\"") {
        Some(q) => q.strip_suffix(b"\"").unwrap_or(q),
        None => v,
    })
}

/// The line after `MSGID`: what the flag says about that message.
fn body(time: Timestamp, text: &[u8], split: bool) -> Parsed {
    let Some((id, rest)) = next_token(text) else {
        return Err("nothing after the Exim timestamp");
    };
    if !is_message_id(id) {
        if rest.is_empty() && is_truncated_message_id(id) {
            return Err("truncated Exim message id");
        }
        // `Start queue run`, `SMTP connection from`, rejections, authenticator failures: no
        // message was queued.
        return Ok(None);
    }
    let Some((flag, args)) = next_token(rest) else {
        return Err("Exim message line ends after the message id");
    };
    match flag {
        b"<=" => arrival(id, time, args),
        b"=>" | b"->" | b">>" => delivery(id, time, args, split),
        b"**" => failure(id, time, args, Action::Failed),
        b"==" => failure(id, time, args, Action::Delayed),
        // `*>`: delivery suppressed by -N (testing); `(=`: a fake reject, which the sender was
        // told failed. Neither is a delivery the sender could track.
        b"*>" | b"(=" => Ok(None),
        b"Completed" => Ok(Some(MtaEvent::Done {
            queue: id.into(),
            time,
        })),
        // `removed by USER`: an administrator removed the message (exim -Mrm). Exim logs no
        // outcome for the recipients not yet final, so they stay as they are; the `Completed`
        // that follows closes the message id. Other texts (`Frozen`, `H=… Network is
        // unreachable`, `SMTP error from …` before a retry) carry no recipient state.
        _ => Ok(None),
    }
}

/// `<= SENDER … [R=ORIGID] … [id=MESSAGE-ID] … [T="subject"] …`.
fn arrival(queue: &[u8], time: Timestamp, args: &[u8]) -> Parsed {
    let Some((sender, mut rest)) = next_token(args) else {
        return Err("Exim arrival line without a sender");
    };
    let mut reference = false;
    let mut message_id = None;
    while let Some((tok, after)) = next_token(rest) {
        rest = after;
        // Exim writes `R=` and `id=` before the subject; what follows `T=` is the sender's
        // text, which could spell `id=` itself.
        if tok.starts_with(b"T=") {
            break;
        }
        if field(tok, b"R").is_some() {
            reference = true;
        } else if let Some(v) = field(tok, b"id").or_else(|| field(tok, b"id*")) {
            message_id.get_or_insert(v);
        }
    }
    if sender == b"<>" && reference {
        // A bounce or delay warning Exim generated about message `R=`.
        return Ok(Some(MtaEvent::Notification {
            queue: queue.into(),
        }));
    }
    let message_id = message_id
        .map(|v| {
            v.strip_prefix(b"<")
                .and_then(|v| v.strip_suffix(b">"))
                .unwrap_or(v)
        })
        .filter(|v| !v.is_empty() && v.len() <= MAX_MESSAGE_ID)
        .map(Box::from);
    Ok(Some(MtaEvent::Arrival {
        queue: queue.into(),
        time,
        message_id,
    }))
}

/// The parts of a `=>`, `->`, `>>`, `**` or `==` line this parser uses.
#[derive(Default)]
struct RcptLine<'a> {
    /// As the line gives it, or built from its parts (`log_as_local` after an alias).
    final_rcpt: Cow<'a, [u8]>,
    original: Option<&'a [u8]>,
    blackhole: bool,
    router: Option<&'a [u8]>,
    transport: Option<&'a [u8]>,
    host: Option<&'a [u8]>,
    /// The `[ip]` or `[ip]:port` after `H=host`.
    host_addr: Option<&'a [u8]>,
    confirmation: Option<&'a [u8]>,
    /// The text after the fields' `:` (failures and deferrals).
    message: Option<&'a [u8]>,
}

/// `(n)`, `(-n)` and `(n):`: the errno of a deferral, not a parent address.
fn is_errno(tok: &[u8]) -> bool {
    let t = tok.strip_suffix(b":").unwrap_or(tok);
    t.strip_prefix(b"(")
        .and_then(|t| t.strip_suffix(b")"))
        .map(|t| t.strip_prefix(b"-").unwrap_or(t))
        .is_some_and(|t| digits(t).is_some())
}

/// The first of the fields Exim writes after a recipient's address (deliver.c: `F=<sender>`,
/// `Q=queue`, `P=<return path>`, `R=router`, `T=transport`, in that order, each optional).
fn starts_fields(tok: &[u8]) -> bool {
    matches!(tok, [b'F' | b'Q' | b'P' | b'R' | b'T', b'=', ..])
}

/// The space-separated words of `s` with their offsets (runs of spaces make empty words).
fn words(s: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut at = 0;
    s.split(|&c| c == b' ').map(move |w| {
        let start = at;
        at += w.len() + 1;
        (start, w)
    })
}

/// Where the address part of a recipient line ends: (the printed address, the top address of
/// `<…>` if there is one, the rest after them, whether a `:` ended the address part).
///
/// Exim writes `PRINTED [(PARENTS)] [<TOP>] FIELDS` (deliver.c `string_log_address`), and
/// PRINTED is free text: the local part as Exim holds it (unquoted, so `"a b"@x` prints as
/// `a b@x`), or a pipe command or file name from an alias file. The address part therefore ends
/// at the first word that starts the fields, at a deferral's `[routing] defer (N)`, or at a word
/// ending in `:` (the failure message follows); the top address is the `<…>` right before that
/// end, whose words hold no other angle bracket.
fn address_part(args: &[u8]) -> (&[u8], Option<&[u8]>, &[u8], bool) {
    let args = skip_spaces(args);
    let mut top_start = None;
    let mut prev: Option<(usize, &[u8])> = None;
    let mut prev2: Option<(usize, &[u8])> = None;
    for (at, w) in words(args) {
        if at > 0 && starts_fields(w) {
            let (printed, top) = split_top(&args[..at], top_start);
            return (printed, top, &args[at..], false);
        }
        if at > 0 && is_errno(w) {
            if let Some((d, b"defer")) = prev {
                let end = match prev2 {
                    Some((r, b"routing")) => r,
                    _ => d,
                };
                let (printed, top) = split_top(&args[..end], top_start);
                return (printed, top, &args[end..], false);
            }
        }
        if w.starts_with(b"<") {
            top_start = Some(at);
        } else if top_start.is_some()
            && (memchr(b'<', w).is_some() || !(w.ends_with(b">") || w.ends_with(b">:")))
            && memchr(b'>', w).is_some()
        {
            // A `>` that does not end the word, or a second `<`: that was no address.
            top_start = None;
        }
        let closes_top = top_start.is_none() || w.ends_with(b">:");
        if w.ends_with(b":") && w != b":blackhole:" && !is_errno(w) && closes_top {
            let (printed, top) = split_top(&args[..at + w.len() - 1], top_start);
            return (printed, top, args.get(at + w.len()..).unwrap_or(&[]), true);
        }
        prev2 = prev;
        prev = Some((at, w));
    }
    let (printed, top) = split_top(args, top_start);
    (printed, top, &[], false)
}

/// `part` split into the printed address and the `<…>` top address (without its brackets)
/// that starts at `top_start`, when that runs to the end of `part`.
fn split_top(part: &[u8], top_start: Option<usize>) -> (&[u8], Option<&[u8]>) {
    let part = trim_end_spaces(part);
    let top = top_start
        .filter(|&at| at > 0 && at < part.len())
        .and_then(|at| Some((at, part[at..].strip_prefix(b"<")?.strip_suffix(b">")?)));
    match top {
        Some((at, inner)) => (
            trim_end_spaces(&part[..at]),
            (!inner.is_empty()).then_some(inner),
        ),
        None => (part, None),
    }
}

fn trim_end_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().rev().take_while(|&&c| c == b' ').count();
    &s[..s.len() - n]
}

/// PRINTED without the `(PARENTS)` Exim adds for `all_parents` and for a pipe or file reached
/// through an intermediate address.
fn without_parents(printed: &[u8]) -> &[u8] {
    if !printed.ends_with(b")") {
        return printed;
    }
    let open = words(printed)
        .filter(|(at, w)| *at > 0 && w.starts_with(b"("))
        .map(|(at, _)| at)
        .next();
    match open {
        Some(at) => trim_end_spaces(&printed[..at]),
        None => printed,
    }
}

/// `local@domain` with the domain of `top`: the address a `log_as_local` delivery went to.
fn local_at_domain_of(local: &[u8], top: &[u8]) -> Vec<u8> {
    let domain = memchr::memrchr(b'@', top).map_or(&[][..], |at| &top[at..]);
    [local, domain].concat()
}

/// Reads `PRINTED [(PARENTS)] [<TOP>] fields… [: MESSAGE]` (see [`address_part`]).
///
/// The recipient is identified as in every other line of the message: a pipe, a file, an
/// autoreply or the blackhole (`|cmd <top>`, `/path <top>`) stands for the address that led
/// there, TOP; a `log_as_local` delivery (`alice <alice@hub>`, only the local part printed) is
/// the local part at TOP's domain, which is TOP itself unless an alias changed the local part;
/// otherwise PRINTED is the address delivered to, and TOP the one the sender gave.
fn recipient_line(args: &[u8]) -> Result<RcptLine<'_>, &'static str> {
    let (printed, top, mut rest, mut ended) = address_part(args);
    if printed.is_empty() {
        return Err("Exim delivery line without an address");
    }
    let mut o = RcptLine::default();
    let pfr = printed == b":blackhole:"
        || printed.starts_with(b"|")
        || printed.starts_with(b"/")
        || printed.starts_with(b">")
        || printed.starts_with(b"save ");
    let printed = without_parents(printed);
    if pfr {
        // Delivered to the blackhole, a pipe, a file or an autoreply: the recipient is the
        // address that led there, which Exim writes in `<…>`.
        o.blackhole = printed == b":blackhole:";
        o.final_rcpt =
            Cow::Borrowed(top.ok_or("Exim pipe, file or blackhole delivery without its address")?);
    } else if memchr(b'@', printed).is_none() && top.is_some_and(|t| memchr(b'@', t).is_some()) {
        let top = top.unwrap_or_default();
        let top_local = &top[..memchr::memrchr(b'@', top).unwrap_or(top.len())];
        if top_local.eq_ignore_ascii_case(printed) {
            o.final_rcpt = Cow::Borrowed(top);
        } else {
            o.final_rcpt = Cow::Owned(local_at_domain_of(printed, top));
            o.original = Some(top);
        }
    } else {
        o.final_rcpt = Cow::Borrowed(printed);
        o.original = top;
    }
    let final_len = o.final_rcpt.len();
    if final_len == 0
        || final_len > MAX_ADDRESS
        || o.original.is_some_and(|a| a.len() > MAX_ADDRESS)
    {
        return Err("Exim address empty or longer than 512 bytes");
    }
    // Whether the previous token was the first `H=`, which its `[ip]` follows.
    let mut host_next = false;
    while !ended {
        let Some((tok, after)) = next_token(rest) else {
            break;
        };
        rest = after;
        // A token ending in `:` ends the fields (`T=remote_smtp: SMTP error…`, `[ip]: …`,
        // `defer (-1): …`), except the blackhole written as a router name.
        let quoted = tok.ends_with(b"\"") || tok == b"R=:blackhole:";
        let (tok, last) = match tok.strip_suffix(b":") {
            Some(t) if !quoted => (t, true),
            _ => (tok, false),
        };
        let after_host = std::mem::take(&mut host_next);
        if let Some(v) = field(tok, b"R") {
            o.router.get_or_insert(v);
        } else if let Some(v) = field(tok, b"T") {
            o.transport.get_or_insert(v);
        } else if let Some(v) = field(tok, b"H") {
            host_next = o.host.is_none();
            o.host.get_or_insert(v);
        } else if after_host && tok.starts_with(b"[") {
            o.host_addr = Some(tok);
        } else if let Some(v) = field(tok, b"C") {
            o.confirmation.get_or_insert(v);
        }
        ended = last;
    }
    if ended {
        let m = skip_spaces(rest);
        o.message = (!m.is_empty()).then_some(m);
    }
    if o.host.is_some_and(|h| h.is_empty() || h.len() > MAX_HOST) {
        return Err("Exim H= host empty or longer than 255 bytes");
    }
    Ok(o)
}

/// `NAME` of `host NAME [IP]` in an SMTP error text, for failures logged without `H=`.
fn host_in_message(m: &[u8]) -> Option<&[u8]> {
    memmem::find_iter(m, b"host ")
        .filter(|&p| p == 0 || m[p - 1] == b' ')
        .find_map(|p| {
            let (name, rest) = next_token(&m[p + 5..])?;
            let ip = rest.strip_prefix(b" [")?;
            memchr(b']', ip)?;
            (!name.is_empty() && name.len() <= MAX_HOST).then_some(name)
        })
}

/// `C.S.D` at the start of `s` (RFC 3463: class 2, 4 or 5; 1–3 digits each), followed by the
/// end or by anything but a digit or a dot.
fn code_at(s: &[u8]) -> Option<&[u8]> {
    if !matches!(s.first(), Some(b'2' | b'4' | b'5')) || s.get(1) != Some(&b'.') {
        return None;
    }
    let mut at = 2;
    for part in 0..2 {
        let n = s[at..]
            .iter()
            .take(4)
            .take_while(|c| c.is_ascii_digit())
            .count();
        if !(1..=3).contains(&n) {
            return None;
        }
        at += n;
        if part == 0 {
            if s.get(at) != Some(&b'.') {
                return None;
            }
            at += 1;
        }
    }
    match s.get(at) {
        Some(c) if c.is_ascii_digit() || *c == b'.' => None,
        _ => Some(&s[..at]),
    }
}

/// The first enhanced status code that follows an SMTP reply code (`550 5.1.1`, `250-2.0.0`)
/// in `text`, lines of a multi-line reply being separated by a literal `\n`.
fn enhanced_code(text: &[u8]) -> Option<&[u8]> {
    memchr2_iter(b' ', b'-', text).find_map(|p| {
        let reply = text.get(p.checked_sub(3)?..p)?;
        if !reply.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let starts_word = match p.checked_sub(4) {
            None => true,
            Some(b) => {
                let before = text[b];
                !(before.is_ascii_alphanumeric() || before == b'.')
                    || (before == b'n' && b > 0 && text[b - 1] == b'\\')
            }
        };
        if !starts_word {
            return None;
        }
        code_at(&text[p + 1..])
    })
}

/// A recipient's state from an Exim line: the status is the enhanced code of the peer's
/// reply (the error for a failure or deferral, the confirmation `C="…"` for a delivery), the
/// remote MTA the `H=` host or the one the error names.
fn emit_recipient(queue: &[u8], time: Timestamp, o: &RcptLine<'_>, action: Action) -> Parsed {
    let unfinished = matches!(action, Action::Failed | Action::Delayed);
    let reply = if unfinished {
        o.message
    } else {
        o.confirmation
    };
    let host = o
        .host
        .or_else(|| o.message.filter(|_| unfinished).and_then(host_in_message));
    let recipient = RecipientFields {
        final_rcpt: &o.final_rcpt,
        original: o.original,
        action,
        status: reply.and_then(enhanced_code),
        remote_host: host,
        reply: o.message,
        time,
    }
    .recipient()?;
    Ok(Some(MtaEvent::Recipient {
        queue: queue.into(),
        recipient,
    }))
}

/// `=> ADDR [<ORIG>] R=… T=… [H=host [ip]] [C="…"]`; `->` and cutthrough `>>` alike.
fn delivery(queue: &[u8], time: Timestamp, args: &[u8], split: bool) -> Parsed {
    let o = recipient_line(args)?;
    // Every delivery names its router or transport; without both, the line was cut short.
    // (The first piece of a split syslog line may have lost them and is still understood.)
    if o.router.is_none() && o.transport.is_none() && !split {
        return Err("Exim delivery line without R= or T= (truncated?)");
    }
    // Exim's local transports (appendfile, pipe, lmtp over a socket, autoreply) never log a
    // host: a line with `H=` went to another server, which is a relay unless that server
    // speaks LMTP, the protocol of final delivery (an smtp transport with `protocol = lmtp`,
    // which the name of the transport is the only sign of in the log).
    let lmtp = o
        .transport
        .is_some_and(|t| t.windows(4).any(|w| w.eq_ignore_ascii_case(b"lmtp")));
    let blackhole = o.blackhole || o.router == Some(b":blackhole:");
    let local = blackhole || o.host.is_none() || lmtp;
    let action = if local {
        Action::Delivered
    } else {
        Action::Relayed
    };
    let event = emit_recipient(queue, time, &o, action)?;
    // The next hop's confirmation names the id it queued the message as (`C="250 OK id=X"`,
    // Postfix's `queued as X`, sendmail's `X Message accepted`): a hand-off, which the tracker
    // follows when the hop is a host of the cluster.
    let next = o
        .confirmation
        .filter(|_| !local)
        .and_then(|c| next_hop_queue_id(reply::last_text(c)));
    match (event, next, o.host) {
        (Some(MtaEvent::Recipient { queue, recipient }), Some(next), Some(host)) => {
            let (addr, port) = bracketed_address(o.host_addr.unwrap_or_default());
            Ok(Some(MtaEvent::HandedOff {
                queue,
                new_queue: next.into(),
                recipient,
                hop: NextHop::new(host, addr, port),
            }))
        }
        (event, _, _) => Ok(event),
    }
}

/// `[ip]` or `[ip]:port` as (ip, port).
fn bracketed_address(s: &[u8]) -> (&[u8], Option<&[u8]>) {
    let inner = s.strip_prefix(b"[").unwrap_or(s);
    match memchr(b']', inner) {
        Some(close) => (&inner[..close], inner[close + 1..].strip_prefix(b":")),
        None => (inner, None),
    }
}

/// `** ADDR … : MESSAGE` (failed) and `== ADDR … defer (N): MESSAGE` (delayed).
fn failure(queue: &[u8], time: Timestamp, args: &[u8], action: Action) -> Parsed {
    let o = recipient_line(args)?;
    if o.message.is_none() {
        return Err("Exim failure or deferral without its message (truncated?)");
    }
    emit_recipient(queue, time, &o, action)
}

#[cfg(test)]
mod tests;
