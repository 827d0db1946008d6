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

use memchr::{memchr, memchr2_iter, memchr_iter, memmem};

use super::event::{Event, LineParser, MtaEvent, Outcome};
use super::mta::{RecipientFields, MAX_ADDRESS, MAX_HOST, MAX_MESSAGE_ID};
use super::syslog::{parse_prefix, SyslogClock};
use super::timezone::Zone;
use crate::index::date::Timestamp;
use crate::index::record::Action;

/// Substrings of a transport name that mean the message left Exim for a mailbox or a program
/// on this host (LMTP included): a delivery through one of them is final, not a relay.
const LOCAL_TRANSPORTS: [&[u8]; 6] = [
    b"lmtp",
    b"local",
    b"appendfile",
    b"pipe",
    b"maildir",
    b"virtual",
];

/// What one line meant: `Ok(Some)` an event, `Ok(None)` nothing to track, `Err` a rejection
/// reason.
type Parsed = Result<Option<MtaEvent>, &'static str>;

/// Parser of Exim main log lines, directly from `mainlog` or behind a syslog prefix.
pub struct EximParser {
    /// The zone of Exim timestamps that carry no `+ZZZZ` (Exim logs local time by default).
    zone: Zone,
    /// Dates the syslog prefix when Exim's own timestamp is off (`syslog_timestamp = false`).
    clock: SyslogClock,
}

impl EximParser {
    /// A parser whose offset-less timestamps are local time in `zone`; `clock` dates lines
    /// that only carry a syslog timestamp.
    pub fn new(zone: Zone, clock: SyslogClock) -> EximParser {
        EximParser { zone, clock }
    }

    fn line(&mut self, line: &[u8]) -> Parsed {
        if line.iter().all(|&c| c == b' ' || c == b'\t') {
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
fn is_exim_program(p: &[u8]) -> bool {
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
    final_rcpt: &'a [u8],
    original: Option<&'a [u8]>,
    blackhole: bool,
    router: Option<&'a [u8]>,
    transport: Option<&'a [u8]>,
    host: Option<&'a [u8]>,
    confirmation: Option<&'a [u8]>,
    /// The text after the fields' `:` (failures and deferrals).
    message: Option<&'a [u8]>,
}

/// `<address>` (or `<address>:` before a message) → (address, message follows).
fn angle(tok: &[u8]) -> Result<(&[u8], bool), &'static str> {
    let (tok, colon) = match tok.strip_suffix(b":") {
        Some(t) => (t, true),
        None => (tok, false),
    };
    let inner = tok
        .strip_prefix(b"<")
        .and_then(|t| t.strip_suffix(b">"))
        .ok_or("unterminated <address> (truncated line?)")?;
    Ok((inner, colon))
}

/// `(n)`, `(-n)` and `(n):`: the errno of a deferral, not a parent address.
fn is_errno(tok: &[u8]) -> bool {
    let t = tok.strip_suffix(b":").unwrap_or(tok);
    t.strip_prefix(b"(")
        .and_then(|t| t.strip_suffix(b")"))
        .map(|t| t.strip_prefix(b"-").unwrap_or(t))
        .is_some_and(|t| digits(t).is_some())
}

/// Reads `ADDR [(parents)] [<ORIG>] fields… [: MESSAGE]`.
fn recipient_line(args: &[u8]) -> Result<RcptLine<'_>, &'static str> {
    let (first, mut rest) = next_token(args).ok_or("Exim delivery line without an address")?;
    let mut o = RcptLine::default();
    let mut ended = false;
    let special = first == b":blackhole:" || first.starts_with(b"|") || first.starts_with(b"/");
    if special {
        // Delivered to the blackhole, a pipe or a file: the recipient is the address that led
        // there, which Exim writes in `<…>` (a pipe command may hold spaces).
        o.blackhole = first == b":blackhole:";
        while let Some((tok, after)) = next_token(rest) {
            if tok.starts_with(b"<") {
                rest = after;
                let (addr, colon) = angle(tok)?;
                o.final_rcpt = addr;
                ended = colon;
                break;
            }
            if memchr(b'=', tok).is_some() {
                break;
            }
            rest = after;
        }
        if o.final_rcpt.is_empty() {
            return Err("Exim pipe, file or blackhole delivery without its address");
        }
    } else if let Some(addr) = first.strip_suffix(b":") {
        o.final_rcpt = addr;
        ended = true;
    } else {
        o.final_rcpt = first;
        // `all_parents`: the intermediate addresses in parentheses.
        let mut in_parents = false;
        while let Some((tok, after)) = next_token(rest) {
            let opens = tok.starts_with(b"(") && !is_errno(tok);
            if !in_parents && !opens {
                break;
            }
            rest = after;
            in_parents = !(tok.ends_with(b")") || tok.ends_with(b"):"));
            if tok.ends_with(b"):") {
                ended = true;
                break;
            }
        }
        if !ended {
            if let Some((tok, after)) = next_token(rest).filter(|(t, _)| t.starts_with(b"<")) {
                rest = after;
                let (orig, colon) = angle(tok)?;
                o.original = (!orig.is_empty()).then_some(orig);
                ended = colon;
            }
        }
    }
    if o.final_rcpt.is_empty() || o.final_rcpt.len() > MAX_ADDRESS {
        return Err("Exim address empty or longer than 512 bytes");
    }
    if o.original.is_some_and(|a| a.len() > MAX_ADDRESS) {
        return Err("Exim address empty or longer than 512 bytes");
    }
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
        if let Some(v) = field(tok, b"R") {
            o.router.get_or_insert(v);
        } else if let Some(v) = field(tok, b"T") {
            o.transport.get_or_insert(v);
        } else if let Some(v) = field(tok, b"H") {
            o.host.get_or_insert(v);
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
        final_rcpt: o.final_rcpt,
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
    let contains = |hay: Option<&[u8]>, needle: &[u8]| {
        hay.is_some_and(|h| {
            h.windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle))
        })
    };
    let local = o.blackhole
        || o.host.is_none()
        || LOCAL_TRANSPORTS.iter().any(|t| contains(o.transport, t))
        || contains(o.router, b":blackhole:");
    let action = if local {
        Action::Delivered
    } else {
        Action::Relayed
    };
    emit_recipient(queue, time, &o, action)
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
mod tests {
    use super::*;
    use crate::index::record::Recipient;

    /// 1999-03-02 09:44:33 UTC, the time of every line of the Exim test-suite logs.
    const SUITE_TIME: i64 = 920_367_873;
    /// "Now" for the syslog clock's year inference: 2023-11-14 22:13:20 UTC.
    const NOW: i64 = 1_700_000_000;

    fn parser_in(zone: &str) -> EximParser {
        let clock = SyslogClock::new(Zone::parse(zone).unwrap(), NOW);
        EximParser::new(Zone::parse(zone).unwrap(), clock)
    }

    fn parse_with(p: &mut EximParser, line: &[u8]) -> (Outcome, Vec<MtaEvent>) {
        let mut events = Vec::new();
        let outcome = p.parse(line, &mut |e| match e {
            Event::Mta(m) => events.push(m),
            other => panic!("unexpected event {other:?}"),
        });
        match outcome {
            Outcome::Parsed => assert_eq!(events.len(), 1, "{}", String::from_utf8_lossy(line)),
            _ => assert!(events.is_empty()),
        }
        (outcome, events)
    }

    fn parse(line: &str) -> (Outcome, Vec<MtaEvent>) {
        parse_with(&mut parser_in("UTC"), line.as_bytes())
    }

    fn utc(unix: i64) -> Timestamp {
        Timestamp {
            unix,
            offset_minutes: 0,
        }
    }

    fn b(s: &str) -> Box<[u8]> {
        s.as_bytes().into()
    }

    fn qid(s: &str) -> crate::ingest::queue_id::QueueId {
        s.as_bytes().into()
    }

    /// What one line should give, written compactly.
    #[derive(Clone, Copy)]
    enum Want {
        Ignored,
        Arrival(&'static str, Option<&'static str>),
        Notification(&'static str),
        Done(&'static str),
        /// queue, final, original, action, status, remote-mta, diagnostic
        Rcpt(
            &'static str,
            &'static str,
            Option<&'static str>,
            Action,
            &'static str,
            Option<&'static str>,
            Option<&'static str>,
        ),
    }

    fn expected(want: Want, time: Timestamp) -> (Outcome, Vec<MtaEvent>) {
        let event = match want {
            Want::Ignored => return (Outcome::Ignored, vec![]),
            Want::Arrival(q, id) => MtaEvent::Arrival {
                queue: qid(q),
                time,
                message_id: id.map(b),
            },
            Want::Notification(q) => MtaEvent::Notification { queue: qid(q) },
            Want::Done(q) => MtaEvent::Done {
                queue: qid(q),
                time,
            },
            Want::Rcpt(q, final_rcpt, original, action, status, mta, diag) => MtaEvent::Recipient {
                queue: qid(q),
                recipient: Recipient {
                    original: original.map(|o| b(&format!("rfc822;{o}"))),
                    final_rcpt: b(final_rcpt),
                    action,
                    status: b(status),
                    remote_mta: mta.map(|m| b(&format!("dns;{m}"))),
                    diagnostic: diag.map(|d| b(&format!("smtp;{d}"))),
                    last_attempt: (action != Action::Delivered).then_some(time),
                    will_retry_until: None,
                    at: time.unix,
                },
            },
        };
        (Outcome::Parsed, vec![event])
    }

    fn check(lines: &str, wants: &[Want], time: Timestamp) {
        let mut p = parser_in("UTC");
        let lines: Vec<&str> = lines.lines().collect();
        assert_eq!(lines.len(), wants.len());
        for (line, want) in lines.iter().zip(wants) {
            let got = parse_with(&mut p, line.as_bytes());
            assert_eq!(got, expected(*want, time), "{line}");
        }
    }

    use Action::{Delayed, Delivered, Failed, Relayed};

    const Q_X: &str = "10HmaX-000000005vi-0000";
    const Q_Y: &str = "10HmaY-000000005vi-0000";
    const Q_Z: &str = "10HmaZ-000000005vi-0000";
    const Q_BA: &str = "10HmbA-000000005vi-0000";
    const Q_BB: &str = "10HmbB-000000005vi-0000";
    const Q_BC: &str = "10HmbC-000000005vi-0000";
    const Q_BD: &str = "10HmbD-000000005vi-0000";
    const Q_BE: &str = "10HmbE-000000005vi-0000";
    const Q_BF: &str = "10HmbF-000000005vi-0000";
    const Q_BG: &str = "10HmbG-000000005vi-0000";
    const Q_BH: &str = "10HmbH-000000005vi-0000";
    const H: Option<&str> = Some("127.0.0.1");
    const CALLER: &str = "CALLER@myhost.test.ex";
    const DEFER_440: Option<&str> = Some("LMTP error after DATA: 440 Temporary error");
    const FAIL_550: Option<&str> = Some("LMTP error after DATA: 550 Bad user");
    const FAIL_550_ML: Option<&str> =
        Some(r"LMTP error after DATA: 550-I don't like this user\n550 Bad user");
    const RCPT_BAD: &str =
        "SMTP error from remote mail server after RCPT TO:<{}@myhost.test.ex>: 550 Receiver BAD";

    fn ok(q: &'static str, addr: &'static str) -> Want {
        Want::Rcpt(q, addr, None, Delivered, "2.0.0", H, None)
    }

    fn defer(q: &'static str, addr: &'static str, diag: Option<&'static str>) -> Want {
        Want::Rcpt(q, addr, None, Delayed, "4.0.0", H, diag)
    }

    fn fail(q: &'static str, addr: &'static str, diag: Option<&'static str>) -> Want {
        Want::Rcpt(q, addr, None, Failed, "5.0.0", H, diag)
    }

    fn blackhole(q: &'static str) -> Want {
        Want::Rcpt(q, CALLER, None, Delivered, "2.0.0", None, None)
    }

    fn leak(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }

    /// Exim/exim test/log/0215 (GPL-2.0-or-later; see tests/data/real-logs/SOURCES.md).
    const SUITE_0215: &str = include_str!("../../tests/data/real-logs/exim-testsuite-0215.log");

    /// Exim/exim test/log/5102 (GPL-2.0-or-later; see tests/data/real-logs/SOURCES.md).
    const SUITE_5102: &str = include_str!("../../tests/data/real-logs/exim-testsuite-5102.log");

    #[test]
    fn every_line_of_exim_test_0215() {
        let bad = |u: &str| Some(leak(RCPT_BAD.replace("{}", u)));
        let multi = Some(concat!(
            r"LMTP error after DATA: 440-Here's a whole long message, in several lines,\n",
            r"440-just for testing that nothing breaks when\n440-we do this\n",
            r"440 Temporary error"
        ));
        let temp_bad = Some(
            "SMTP error from remote mail server after RCPT TO:<userxy@myhost.test.ex>: \
             450 Receiver temporarily bad",
        );
        let later = Some(
            "SMTP error from remote mail server after RCPT TO:<userx@myhost.test.ex>: 450 LATER",
        );
        let wants = [
            Want::Arrival(Q_X, None),
            ok(Q_X, "userx@myhost.test.ex"),
            Want::Done(Q_X),
            Want::Arrival(Q_Y, None),
            ok(Q_Y, "userx@myhost.test.ex"),
            defer(Q_Y, "userxx@myhost.test.ex", DEFER_440),
            fail(Q_Y, "userxy@myhost.test.ex", FAIL_550),
            ok(Q_Y, "userxz@myhost.test.ex"),
            defer(Q_Y, "useryx@myhost.test.ex", DEFER_440),
            fail(Q_Y, "useryy@myhost.test.ex", FAIL_550),
            Want::Notification(Q_Z),
            blackhole(Q_Z),
            Want::Done(Q_Z),
            Want::Ignored,
            Want::Done(Q_Y),
            Want::Arrival(Q_BA, None),
            ok(Q_BA, "userx@myhost.test.ex"),
            defer(Q_BA, "userxx@myhost.test.ex", DEFER_440),
            fail(Q_BA, "userxy@myhost.test.ex", FAIL_550_ML),
            ok(Q_BA, "userxz@myhost.test.ex"),
            defer(Q_BA, "useryx@myhost.test.ex", multi),
            fail(Q_BA, "useryy@myhost.test.ex", FAIL_550),
            Want::Notification(Q_BB),
            blackhole(Q_BB),
            Want::Done(Q_BB),
            Want::Ignored,
            Want::Done(Q_BA),
            Want::Arrival(Q_BC, None),
            fail(Q_BC, "userx@myhost.test.ex", bad("userx")),
            defer(Q_BC, "userxx@myhost.test.ex", DEFER_440),
            defer(Q_BC, "userxy@myhost.test.ex", temp_bad),
            fail(Q_BC, "userxz@myhost.test.ex", FAIL_550_ML),
            ok(Q_BC, "useryx@myhost.test.ex"),
            fail(Q_BC, "useryy@myhost.test.ex", bad("useryy")),
            Want::Notification(Q_BD),
            blackhole(Q_BD),
            Want::Done(Q_BD),
            Want::Arrival(Q_BE, None),
            ok(Q_BE, "userxx@myhost.test.ex"),
            ok(Q_BE, "userxy@myhost.test.ex"),
            ok(Q_BE, "userxz@myhost.test.ex"),
            Want::Done(Q_BE),
            Want::Arrival(Q_BF, None),
            ok(Q_BF, "userxx@myhost.test.ex"),
            ok(Q_BF, "userxy@myhost.test.ex"),
            ok(Q_BF, "userxz@myhost.test.ex"),
            Want::Done(Q_BF),
            Want::Arrival(Q_BG, None),
            defer(Q_BG, "userx@myhost.test.ex", later),
            Want::Arrival(Q_BH, None),
            defer(Q_BH, "userx@myhost.test.ex", later),
        ];
        check(SUITE_0215, &wants, utc(SUITE_TIME));
    }

    #[test]
    fn every_line_of_exim_test_5102() {
        let local = |q, f, o| Want::Rcpt(q, f, Some(o), Delivered, "2.0.0", None, None);
        let late = |q, a, d| Want::Rcpt(q, a, None, Delayed, "4.0.0", None, Some(d));
        let fail = |q, a, d| Want::Rcpt(q, a, None, Failed, "5.0.0", None, Some(d));
        let wants = [
            Want::Arrival(Q_X, None),
            local(Q_X, "userx", "userx@myhost.test.ex"),
            Want::Done(Q_X),
            Want::Arrival(Q_Y, None),
            late(
                Q_Y,
                "userx@myhost.test.ex",
                "LMTP timeout after initial connection",
            ),
            Want::Ignored,
            late(
                Q_Y,
                "userx@myhost.test.ex",
                "LMTP error after initial connection: 440 Sorry, there's a problem here",
            ),
            Want::Ignored,
            Want::Ignored,
            fail(
                Q_Y,
                "userx@myhost.test.ex",
                "LMTP error after MAIL FROM:<CALLER@myhost.test.ex>: 550 Don't like that sender",
            ),
            Want::Notification(Q_Z),
            blackhole(Q_Z),
            Want::Done(Q_Z),
            Want::Done(Q_Y),
            Want::Ignored,
            Want::Arrival(Q_BA, None),
            local(Q_BA, "lp1", "lp1@myhost.test.ex"),
            late(
                Q_BA,
                "lp2@myhost.test.ex",
                "LMTP error after end of data: 450 Number 2 is now delayed",
            ),
            fail(
                Q_BA,
                "lp3@myhost.test.ex",
                "LMTP error after end of data: 550 Number 3 is now rejected",
            ),
            late(
                Q_BA,
                "lp4@myhost.test.ex",
                "LMTP error after RCPT TO:<lp4@myhost.test.ex>: 450 This one is delayed on RCPT",
            ),
            fail(
                Q_BA,
                "lp5@myhost.test.ex",
                "LMTP error after RCPT TO:<lp5@myhost.test.ex>: 550 This one is unknown on RCPT",
            ),
            local(Q_BA, "lp6", "lp6@myhost.test.ex"),
            Want::Notification(Q_BB),
            blackhole(Q_BB),
            Want::Done(Q_BB),
        ];
        check(SUITE_5102, &wants, utc(SUITE_TIME));
    }

    /// docs/mta-logs.md 2.4: a mailing-list post relayed to vger (Exim 4.92, old ids).
    #[test]
    fn spec_linux_arch_relay() {
        let time = utc(1_570_172_969); // 2019-10-04 07:09:29
        let delivered = utc(1_570_172_977);
        check(
            "2019-10-04 07:09:29 1iGHiT-00007b-Na <= fw@deneb.enyo.de H=(deneb.enyo.de) [172.17.203.2] P=esmtps X=TLS1.2:ECDHE_RSA_AES_256_GCM_SHA384:256 CV=no S=72580 id=87h84pgf6h.fsf@mid.deneb.enyo.de\n",
            &[Want::Arrival(
                "1iGHiT-00007b-Na",
                Some("87h84pgf6h.fsf@mid.deneb.enyo.de"),
            )],
            time,
        );
        let c = r#" R=dnslookup T=remote_smtp_ext H=vger.kernel.org [209.132.180.67] C="250 2.7.1 Looks like Linux source DIFF email.. BF:<S 1>; S1728766AbfJDHJg""#;
        for (flag, addr) in [
            ("=>", "linux-api@vger.kernel.org"),
            ("->", "linux-arch@vger.kernel.org"),
            ("->", "linux-kernel@vger.kernel.org"),
        ] {
            let line = format!("2019-10-04 07:09:37 1iGHiT-00007b-Na {flag} {addr}{c}");
            let want = Want::Rcpt(
                "1iGHiT-00007b-Na",
                leak(addr.into()),
                None,
                Relayed,
                "2.7.1",
                Some("vger.kernel.org"),
                None,
            );
            assert_eq!(parse(&line), expected(want, delivered), "{line}");
        }
        assert_eq!(
            parse("2019-10-04 07:09:37 1iGHiT-00007b-Na Completed"),
            expected(Want::Done("1iGHiT-00007b-Na"), delivered)
        );
    }

    /// docs/mta-logs.md 2.2: Exim 4.98 with a 23-character id, TLS fields and a quoted DN.
    #[test]
    fn spec_new_id_relay() {
        let q = "1smkL5-00000000e65-24eQ";
        let t0 = utc(1_725_672_851); // 2024-09-07 01:34:11
        let t1 = utc(1_725_672_852);
        assert_eq!(
            parse("2024-09-07 01:34:11 1smkL5-00000000e65-24eQ <= nothing@change.this H=(v261955545.local) [43.6.92.12] P=esmtps X=TLS1.3:ECDHE_X25519__RSA_PSS_RSAE_SHA256__AES_256_GCM:256 CV=no S=15813"),
            expected(Want::Arrival(q, None), t0)
        );
        assert_eq!(
            parse("2024-09-07 01:34:11 1smkL5-00000000e65-24eQ H=mx.yandex.ru [2a02:6b8::311] Network is unreachable"),
            (Outcome::Ignored, vec![])
        );
        assert_eq!(
            parse(
                r#"2024-09-07 01:34:12 1smkL5-00000000e65-24eQ => xxxxxxx@ya.ru R=dnslookup T=remote_smtp H=mx.yandex.ru [77.88.21.249] X=TLS1.3:ECDHE_SECP256R1__RSA_PSS_RSAE_SHA256__AES_256_GCM:256 CV=yes DN="C=RU,ST=Moscow,L=Moscow,O=YANDEX LLC,CN=mx.yandex.ru" C="250 2.0.0 Ok: queued on mail-nwsmtp-mxfront-production-main-42.sas.yp-c.yandex.net 1725672891-oYTsOiJLGSw0-m3DSxyvl""#
            ),
            expected(
                Want::Rcpt(
                    q,
                    "xxxxxxx@ya.ru",
                    None,
                    Relayed,
                    "2.0.0",
                    Some("mx.yandex.ru"),
                    None
                ),
                t1
            )
        );
        assert_eq!(
            parse("2024-09-07 01:34:12 1smkL5-00000000e65-24eQ Completed"),
            expected(Want::Done(q), t1)
        );
    }

    /// docs/mta-logs.md 2.3: `[pid]`, ports, interfaces, subjects and recipient lists on arrivals.
    #[test]
    fn spec_arrivals_with_pid_and_subject() {
        assert_eq!(
            parse(
                r#"2010-09-13 05:00:13 [1487] 1Ov4tU-0000Nz-Rm <= mailling.list@domain.com H=mailhost.domain.com [208.42.54.2]:51792 I=[67.215.162.175]:25 P=esmtps X=TLSv1:AES256-SHA:256 CV=no S=21778 id=384a86a39e83be0d9b3a94d1feb3119f@domain.com T="Daily List: Chameleon" for user@example.com"#
            ),
            expected(
                Want::Arrival(
                    "1Ov4tU-0000Nz-Rm",
                    Some("384a86a39e83be0d9b3a94d1feb3119f@domain.com")
                ),
                utc(1_284_354_013)
            )
        );
        assert_eq!(
            parse(
                r#"2014-08-10 11:18:35 [28107] 1gsu1C-003dCu-Hb <= aaron@domain.com H=localhost (10.5.40.204) [127.0.0.1]:39753 I=[127.0.0.1]:25 P=esmtpa A=dovecot_plain:aaron@domain.com S=4315 M8S=0 id=d2b648f00f1a1b0813c483d552778dc6@domain.com T="what's up?!? ;-)" from <aaron@domain.com> for aaron+forward@domain.com"#
            ),
            expected(
                Want::Arrival(
                    "1gsu1C-003dCu-Hb",
                    Some("d2b648f00f1a1b0813c483d552778dc6@domain.com")
                ),
                utc(1_407_669_515)
            )
        );
    }

    /// docs/mta-logs.md 2.4: the examples of Exim's specification.
    #[test]
    fn spec_examples_of_the_exim_manual() {
        assert_eq!(
            parse("2002-12-19 16:20:23 16aiQz-0002Q5-00 == marvin@endrest.example R=dnslookup T=smtp defer (146): Connection refused"),
            expected(
                Want::Rcpt("16aiQz-0002Q5-00", "marvin@endrest.example", None, Delayed, "4.0.0", None, Some("Connection refused")),
                utc(1_040_314_823)
            )
        );
        // No H=: the host comes from the SMTP error text; the code from the reply.
        assert_eq!(
            parse("2002-07-11 07:14:17 17SXDU-000189-00 ** ace400@pb.example R=dnslookup T=remote_smtp: SMTP error from remote mailer after pipelined RCPT TO:<ace400@pb.example>: host pbmail3.py.example [192.168.63.111]: 553 5.3.0 <ace400@pb.example>...Addressee unknown"),
            expected(
                Want::Rcpt(
                    "17SXDU-000189-00",
                    "ace400@pb.example",
                    None,
                    Failed,
                    "5.3.0",
                    Some("pbmail3.py.example"),
                    Some("SMTP error from remote mailer after pipelined RCPT TO:<ace400@pb.example>: host pbmail3.py.example [192.168.63.111]: 553 5.3.0 <ace400@pb.example>...Addressee unknown"),
                ),
                utc(1_026_371_657)
            )
        );
        assert_eq!(
            parse("1995-12-19 16:20:23 0tRiQz-0002Q5-00 ** jim@trek99.example <jim@trek99.example>: unknown mail domain"),
            expected(
                Want::Rcpt("0tRiQz-0002Q5-00", "jim@trek99.example", Some("jim@trek99.example"), Failed, "5.0.0", None, Some("unknown mail domain")),
                utc(819_390_023)
            )
        );
    }

    /// docs/mta-logs.md 2.1: authenticator failures via syslog carry no message id.
    #[test]
    fn spec_fail2ban_syslog_lines_are_ignored() {
        for line in [
            "2019-10-22 03:39:17 mx1.fqdn.local exim[29786]: dovecot_login authenticator failed for (User) [192.0.2.37]: 535 Incorrect authentication data (set_id=test@domain.com)",
            "mail.example.com exim[3751842]: 2021-07-17 23:20:49 plain_server authenticator failed for ([192.0.2.17]) [192.0.2.27]: 535 Incorrect authentication data",
        ] {
            assert_eq!(parse(line), (Outcome::Ignored, vec![]), "{line}");
        }
    }

    #[test]
    fn milliseconds_offset_and_pid() {
        let q = "1iGHiT-00007b-Na";
        // 2021-07-17 23:20:49 +0200 = 21:20:49Z.
        let want = Timestamp {
            unix: 1_626_556_849,
            offset_minutes: 120,
        };
        for line in [
            "2021-07-17 23:20:49 +0200 1iGHiT-00007b-Na Completed",
            "2021-07-17 23:20:49.123 +0200 1iGHiT-00007b-Na Completed",
            "2021-07-17 23:20:49.123 +0200 [4711] 1iGHiT-00007b-Na Completed",
            "2021-07-17 23:20:49 +0200 [4711] 1iGHiT-00007b-Na Completed QT=3s",
        ] {
            assert_eq!(parse(line), expected(Want::Done(q), want), "{line}");
        }
        // Without +ZZZZ the parser's zone decides; an explicit offset wins over it.
        let mut berlin = parser_in("+02:00");
        for line in [
            "2021-07-17 23:20:49.5 [4711] 1iGHiT-00007b-Na Completed",
            "2021-07-17 23:20:49 +0200 1iGHiT-00007b-Na Completed",
        ] {
            assert_eq!(
                parse_with(&mut berlin, line.as_bytes()),
                expected(Want::Done(q), want),
                "{line}"
            );
        }
        let west = Timestamp {
            unix: 1_626_556_849 + 7 * 3600,
            offset_minutes: -300,
        };
        assert_eq!(
            parse_with(
                &mut berlin,
                b"2021-07-17 23:20:49 -0500 1iGHiT-00007b-Na Completed"
            ),
            expected(Want::Done(q), west)
        );
    }

    #[test]
    fn both_id_formats_and_near_misses() {
        assert!(is_message_id(b"1iGHiT-00007b-Na"));
        assert!(is_message_id(b"1smkL5-00000000e65-24eQ"));
        for bad in [
            &b"1iGHiT-00007b-N"[..],
            b"1iGHiT-00007b-Na1",
            b"1iGHiT_00007b-Na",
            b"1iGHi!-00007b-Na",
            b"1smkL5-0000000e65-24eQ",
            b"1smkL5-00000000e65-24eQQ",
            b"",
        ] {
            assert!(!is_message_id(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn syslog_prefixed_lines() {
        let q = "1iGHiT-00007b-Na";
        // Exim's own timestamp behind the prefix: its time is the line's.
        let own = utc(1_626_564_049); // 2021-07-17 23:20:49Z
        for line in [
            "Jul 18 01:20:49 mail exim[3751842]: 2021-07-17 23:20:49 1iGHiT-00007b-Na Completed",
            "mail.example.com exim[3751842]: 2021-07-17 23:20:49 1iGHiT-00007b-Na Completed",
            "2021-07-18T01:20:49.000000+02:00 mail exim4[1]: 2021-07-17 23:20:49 1iGHiT-00007b-Na Completed",
            "2021-07-17 23:20:49 mail exim[1]: 1iGHiT-00007b-Na Completed",
        ] {
            assert_eq!(parse(line), expected(Want::Done(q), own), "{line}");
        }
        // `syslog_timestamp = false`: the prefix's time.
        let clock_time = Timestamp {
            unix: 1_626_564_049,
            offset_minutes: 120,
        };
        let line = r#"2021-07-18T01:20:49+02:00 mail exim[17]: 1iGHiT-00007b-Na => a@b.example R=dnslookup T=remote_smtp H=mx.b.example [192.0.2.1] C="250 2.0.0 Ok""#;
        assert_eq!(
            parse(line),
            expected(
                Want::Rcpt(
                    q,
                    "a@b.example",
                    None,
                    Relayed,
                    "2.0.0",
                    Some("mx.b.example"),
                    None
                ),
                clock_time
            )
        );
        // Classic syslog times have no year; the clock infers it from "now".
        let mut p = parser_in("UTC");
        let (outcome, events) = parse_with(
            &mut p,
            b"Nov 14 22:13:20 mail exim[17]: 1iGHiT-00007b-Na Completed",
        );
        assert_eq!(outcome, Outcome::Parsed);
        assert_eq!(
            events,
            vec![MtaEvent::Done {
                queue: qid(q),
                time: utc(NOW)
            }]
        );
        // Other daemons in a shared mail log.
        for line in [
            "Jul 18 01:20:49 mail dovecot[12]: imap-login: Login: user=<a>",
            "Jul 18 01:20:49 mail postfix/smtpd[12]: connect from x[192.0.2.1]",
        ] {
            assert_eq!(parse(line), (Outcome::Ignored, vec![]), "{line}");
        }
    }

    #[test]
    fn syslog_split_pieces() {
        let q = "1iGHiT-00007b-Na";
        // The first piece of a long line split for syslog: the part that names the recipient
        // is there, the end (and with it C=) may be lost.
        let line = r#"Jul 18 01:20:49 mail exim[17]: [1\2] 2021-07-17 23:20:49 1iGHiT-00007b-Na => a@b.example R=dnslookup T=remote_smtp H=mx.b.example [192.0.2.1] C="250 2.0.0 Ok: queued as"#;
        assert_eq!(
            parse(line),
            expected(
                Want::Rcpt(
                    q,
                    "a@b.example",
                    None,
                    Relayed,
                    "2.0.0",
                    Some("mx.b.example"),
                    None
                ),
                utc(1_626_564_049)
            )
        );
        let cut = "Jul 18 01:20:49 mail exim[17]: [1/2] 2021-07-17 23:20:49 1iGHiT-00007b-Na => a@b.example";
        assert_eq!(parse(cut).0, Outcome::Parsed);
        let rest = r#"Jul 18 01:20:49 mail exim[17]: [2\2]  FOO 1234" QT=4s"#;
        assert_eq!(parse(rest), (Outcome::Ignored, vec![]));
    }

    #[test]
    fn delivery_forms() {
        let q = "1iGHiT-00007b-Na";
        let t = utc(1_626_564_049);
        let at = |rest: &str| format!("2021-07-17 23:20:49 1iGHiT-00007b-Na {rest}");
        // Cutthrough is a delivery.
        assert_eq!(
            parse(&at(
                r#">> a@b.example R=dnslookup T=remote_smtp H=mx.b.example [192.0.2.1]:25 C="250 2.0.0 OK id=1""#
            )),
            expected(
                Want::Rcpt(
                    q,
                    "a@b.example",
                    None,
                    Relayed,
                    "2.0.0",
                    Some("mx.b.example"),
                    None
                ),
                t
            )
        );
        // Suppressed by -N: nothing happened.
        assert_eq!(
            parse(&at(
                "*> a@b.example R=dnslookup T=remote_smtp H=mx.b.example [192.0.2.1]"
            )),
            (Outcome::Ignored, vec![])
        );
        // Local transports are final even with a host; no C= code means 2.0.0; a 4xx/5xx code
        // in C= never becomes a delivered status.
        for (transport, action) in [
            ("local_delivery", Delivered),
            ("dovecot_lmtp", Delivered),
            ("virtual_maildir", Delivered),
            ("remote_smtp", Relayed),
        ] {
            assert_eq!(
                parse(&at(&format!(
                    r#"=> a@b.example R=r T={transport} H=h.example [192.0.2.1] C="250 4.0.0 odd""#
                ))),
                expected(
                    Want::Rcpt(
                        q,
                        "a@b.example",
                        None,
                        action,
                        "2.0.0",
                        Some("h.example"),
                        None
                    ),
                    t
                ),
                "{transport}"
            );
        }
        // The final address <original> form, and all_parents with the intermediate address.
        assert_eq!(
            parse(&at(
                "=> c@x.example (b@x.example) <a@x.example> R=local_user T=local_delivery"
            )),
            expected(
                Want::Rcpt(
                    q,
                    "c@x.example",
                    Some("a@x.example"),
                    Delivered,
                    "2.0.0",
                    None,
                    None
                ),
                t
            )
        );
        assert_eq!(
            parse(&at("=> c@x.example (b@x.example, d@x.example) <a@x.example> R=local_user T=local_delivery")),
            expected(Want::Rcpt(q, "c@x.example", Some("a@x.example"), Delivered, "2.0.0", None, None), t)
        );
        // Pipes and files: the recipient is the address that led there.
        assert_eq!(
            parse(&at(
                "=> |/usr/bin/procmail -d a <a@x.example> R=procmail T=procmail_pipe"
            )),
            expected(
                Want::Rcpt(q, "a@x.example", None, Delivered, "2.0.0", None, None),
                t
            )
        );
        assert_eq!(
            parse(&at(
                "=> /var/mail/a <a@x.example> R=local_user T=local_delivery"
            )),
            expected(
                Want::Rcpt(q, "a@x.example", None, Delivered, "2.0.0", None, None),
                t
            )
        );
        // A blackhole router.
        assert_eq!(
            parse(&at(
                "=> a@x.example R=:blackhole: T=remote_smtp H=h [192.0.2.1]"
            )),
            expected(
                Want::Rcpt(q, "a@x.example", None, Delivered, "2.0.0", Some("h"), None),
                t
            )
        );
    }

    #[test]
    fn failure_and_deferral_codes() {
        let q = "1smkL5-00000000e65-24eQ";
        let t = utc(1_626_564_049);
        let at = |rest: &str| format!("2021-07-17 23:20:49 1smkL5-00000000e65-24eQ {rest}");
        let msg = r"SMTP error from remote mail server after RCPT TO:<a@b.example>: 550-5.1.1 The email account does not exist.\n550 5.1.1 https://support.example/answer";
        assert_eq!(
            parse(&at(&format!(
                "** a@b.example R=dnslookup T=remote_smtp H=mx.b.example [2001:db8::1]: {msg}"
            ))),
            expected(
                Want::Rcpt(
                    q,
                    "a@b.example",
                    None,
                    Failed,
                    "5.1.1",
                    Some("mx.b.example"),
                    Some(msg)
                ),
                t
            )
        );
        // The code behind a `\n` escape is found.
        let msg = r"SMTP error from remote mail server after RCPT TO:<a@b.example>: 450-Greylisted\n450 4.2.0 try later";
        assert_eq!(
            parse(&at(&format!("== a@b.example R=dnslookup T=remote_smtp defer (-44) H=mx.b.example [192.0.2.1]: {msg}"))),
            expected(Want::Rcpt(q, "a@b.example", None, Delayed, "4.2.0", Some("mx.b.example"), Some(msg)), t)
        );
        // A code of the wrong class is not used: a deferral stays 4.x.x.
        assert_eq!(
            parse(&at("== a@b.example R=dnslookup T=remote_smtp defer (-44) H=mx.b.example [192.0.2.1]: SMTP error: 550 5.7.1 nope")),
            expected(
                Want::Rcpt(q, "a@b.example", None, Delayed, "4.0.0", Some("mx.b.example"), Some("SMTP error: 550 5.7.1 nope")),
                t
            )
        );
        // No code next to an IP address or a version number.
        assert_eq!(
            parse(&at("** a@b.example: host 192.0.2.111 1.2.3 said no")),
            expected(
                Want::Rcpt(
                    q,
                    "a@b.example",
                    None,
                    Failed,
                    "5.0.0",
                    None,
                    Some("host 192.0.2.111 1.2.3 said no")
                ),
                t
            )
        );
        // Long diagnostics are cut to 512 bytes, never inside a UTF-8 character.
        let long = format!("550 5.1.1 {}", "é".repeat(400));
        let (outcome, events) = parse(&at(&format!("** a@b.example R=r T=t: {long}")));
        assert_eq!(outcome, Outcome::Parsed);
        let MtaEvent::Recipient { recipient, .. } = &events[0] else {
            panic!("{events:?}");
        };
        let diag = recipient.diagnostic.as_deref().unwrap();
        assert!(diag.len() <= 512 && diag.len() > 500, "{}", diag.len());
        assert!(std::str::from_utf8(diag).is_ok());
        assert_eq!(&*recipient.status, b"5.1.1");
    }

    #[test]
    fn other_message_lines_are_ignored() {
        for rest in [
            "removed by root",
            "Frozen",
            "Message is frozen",
            "Unfrozen by root",
            "SMTP error from remote mail server after RCPT TO:<a@b>: 451 later",
            "H=mx.b.example [192.0.2.1] Connection refused",
            "(= a@b.example H=x [192.0.2.1] P=esmtp S=100",
            "*> a@b.example R=r T=t",
            "no immediate delivery: load average 10.00",
        ] {
            let line = format!("2021-07-17 23:20:49 1iGHiT-00007b-Na {rest}");
            assert_eq!(parse(&line), (Outcome::Ignored, vec![]), "{line}");
        }
        for line in [
            "2021-07-17 23:20:49 Start queue run: pid=1234",
            "2021-07-17 23:20:49 End queue run: pid=1234",
            "2021-07-17 23:20:49 SMTP connection from [192.0.2.1]:4567 (TCP/IP connection count = 1)",
            "2021-07-17 23:20:49 H=(x) [192.0.2.1] F=<a@b> rejected RCPT <c@d>: relay not permitted",
            "2021-07-17 23:20:49 [1234] exim 4.97 daemon started: pid=1234",
            "",
            "   ",
        ] {
            assert_eq!(parse(line), (Outcome::Ignored, vec![]), "{line}");
        }
    }

    #[test]
    fn truncated_and_malformed_lines_are_rejected() {
        for line in [
            "1999-03-02 09:4",
            "1999-03-02",
            "1999-03-02 09:44:33",
            "1999-03-02 09:44:33 ",
            "1999-13-02 09:44:33 10HmaX-000000005vi-0000 Completed",
            "1999-03-02 25:44:33 10HmaX-000000005vi-0000 Completed",
            "1999-03-02 09:44:33x 10HmaX-000000005vi-0000 Completed",
            "1999-03-02 09:44:33. 10HmaX-000000005vi-0000 Completed",
            "1999-03-02 09:44:33 +2500 10HmaX-000000005vi-0000 Completed",
            "1999-03-02 09:44:33 [123",
            "1999-03-02 09:44:33 [123]",
            "1999-03-02 09:44:33 10HmaX-0000",
            "1999-03-02 09:44:33 10HmaX-000000005vi-00",
            "1999-03-02 09:44:33 10HmaX-000000005vi-0000",
            "1999-03-02 09:44:33 10HmaX-000000005vi-0000 ",
            "1999-03-02 09:44:33 10HmaX-000000005vi-0000 <=",
            "1999-03-02 09:44:33 10HmaX-000000005vi-0000 =>",
            "1999-03-02 09:44:33 10HmaX-000000005vi-0000 => userx@myhost.test.ex F=<CALL",
            "1999-03-02 09:44:33 10HmaX-000000005vi-0000 => userx <userx@my",
            "1999-03-02 09:44:33 10HmaX-000000005vi-0000 => :blackhole: <CALL",
            "1999-03-02 09:44:33 10HmaY-000000005vi-0000 == userxx@myhost.test.ex R=smartuser T=lmtp defer (0) H=127.0.0.1 [127.0",
            "1999-03-02 09:44:33 10HmaY-000000005vi-0000 ** userxy@myhost.test.ex F=<CALLER@myhost.test.ex> R=smartuser",
            "1999-03-02 09:44:33 10HmaY-000000005vi-0000 **",
            "Jul 18 01:20:49 mail exim[17]: 1iGHiT-00007b-Na",
            "\u{0}\u{1}binary\u{7f}garbage",
            "not a log line at all",
        ] {
            let (outcome, _) = parse(line);
            assert!(matches!(outcome, Outcome::Rejected(_)), "{line:?}: {outcome:?}");
        }
        let long = format!(
            "1999-03-02 09:44:33 10HmaX-000000005vi-0000 => {}@x R=r T=t",
            "a".repeat(600)
        );
        assert!(matches!(parse(&long).0, Outcome::Rejected(_)));
    }

    #[test]
    fn hostile_input_never_panics() {
        let mut p = parser_in("UTC");
        let mut sink = |_: Event| {};
        // Every prefix of every fixture line, and every line with one byte replaced.
        for line in SUITE_0215.lines().chain(SUITE_5102.lines()) {
            let bytes = line.as_bytes();
            for n in 0..=bytes.len() {
                p.parse(&bytes[..n], &mut sink);
            }
            let mut copy = bytes.to_vec();
            for i in 0..copy.len() {
                let old = copy[i];
                for c in [
                    b' ', b'"', b'<', b'>', b':', b'[', b']', b'=', b'\\', 0xff, 0,
                ] {
                    copy[i] = c;
                    p.parse(&copy, &mut sink);
                }
                copy[i] = old;
            }
        }
        // Pseudo-random bytes, with and without an Exim head.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut buf = Vec::new();
        for round in 0..2000 {
            buf.clear();
            if round % 2 == 0 {
                buf.extend_from_slice(b"2021-07-17 23:20:49 1iGHiT-00007b-Na ");
            }
            for _ in 0..(round % 200) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let alphabet = b" =<>\"*-:[]()\\abc0123456789.\xc3\xa9\x00\xff";
                buf.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            p.parse(&buf, &mut sink);
        }
        // 1 MB lines.
        let mb = 1 << 20;
        let head = "2021-07-17 23:20:49 1iGHiT-00007b-Na ";
        let lines = [
            "a".repeat(mb),
            " ".repeat(mb),
            "\"".repeat(mb),
            format!("{head}=> a@b R=r T=t H=h C=\"{}", "x\"".repeat(mb / 2)),
            format!("{head}** a@b R=r T=t: {}", "550 5.1.1 ".repeat(mb / 10)),
            format!("{head}== a@b {}", "(".repeat(mb)),
            format!("{head}<= a@b {}", "id=".repeat(mb / 3)),
            format!("{head}=> |{} <a@b> R=r", " x".repeat(mb / 2)),
            format!("Jul 18 01:20:49 mail exim[17]: {}", "[1/2] ".repeat(mb / 6)),
        ];
        // Well-formed heads still parse (the tail reader caps lines long before this); noise
        // does not.
        let parsed = [false, false, false, true, true, false, true, true, false];
        for (line, parsed) in lines.iter().zip(parsed) {
            let outcome = p.parse(line.as_bytes(), &mut sink);
            assert_eq!(outcome == Outcome::Parsed, parsed, "{}", &line[..60]);
        }
    }
}
