//! Postfix's own log lines (docs/mta-logs.md, section 1), turned into
//! [`MtaEvent`]s about its queue ids: arrivals, Message-IDs, per-recipient results, content
//! filter and `.forward` hand-offs, bounce notifications, expiry and removal.
//!
//! This module owns the meaning of the message text after the syslog prefix (`QID: to=<…>,
//! relay=…, status=…`) and the choice of the RFC 3886 action for each Postfix status. The
//! prefix itself (timestamp, host, tag) is [`super::syslog`]'s. It must not correlate: it keeps
//! no state about queue ids and never decides which message a queue id belongs to; that is the
//! tracker's. It must not panic or allocate for lines that carry nothing (most of a mail log),
//! and it never uses regular expressions: the parser runs at over a million lines a second.

use std::sync::LazyLock;

use memchr::{memchr, memmem, memrchr};

use super::event::{Event, LineParser, MtaEvent, NextHop, Outcome};
use super::mta::{status_class, RecipientFields, MAX_ADDRESS, MAX_MESSAGE_ID};
use super::native::{self, NativeTags};
use super::syslog::{parse_prefix, Prefix, SyslogClock};
use crate::index::message::{Action, Recipient};
use crate::protocol::date::Timestamp;

/// Longest queue id accepted. Postfix's own are at most about 20 characters; the bound keeps
/// the search for the `: ` after the id short on lines that have none.
const MAX_QUEUE_ID: usize = 64;

/// Parses Postfix log lines with a syslog prefix, and the native lines of allowed program tags
/// in the same file. Lines of other programs (amavis, dovecot, opendkim…) are ignored.
pub struct PostfixParser {
    clock: SyslogClock,
    native_tags: NativeTags,
}

impl PostfixParser {
    /// A parser whose prefix timestamps are read with `clock` (its zone and year guess), taking
    /// native lines only under `native_tags`.
    pub fn new(clock: SyslogClock, native_tags: NativeTags) -> PostfixParser {
        PostfixParser { clock, native_tags }
    }

    /// Parses the message text of one Postfix line, without its syslog prefix. `time` is the
    /// line's time; `daemon` is the last `/` component of the program tag (`smtp`, `qmgr`…),
    /// which decides the RFC 3886 action of a successful delivery.
    pub fn parse_text(
        &mut self,
        time: Timestamp,
        daemon: &[u8],
        text: &[u8],
        emit: &mut dyn FnMut(Event),
    ) -> Outcome {
        parse_text(time, daemon, text, emit)
    }
}

impl LineParser for PostfixParser {
    fn parse(&mut self, line: &[u8], emit: &mut dyn FnMut(Event)) -> Outcome {
        let Some(prefix) = parse_prefix(line, &mut self.clock) else {
            return Outcome::Rejected("no syslog prefix");
        };
        self.parse_prefixed(&prefix, line, emit)
    }

    fn parse_prefixed(
        &mut self,
        prefix: &Prefix<'_>,
        _line: &[u8],
        emit: &mut dyn FnMut(Event),
    ) -> Outcome {
        if let Some(parsed) = native::from_syslog(prefix, &self.native_tags) {
            return native::outcome(parsed, emit);
        }
        // `postfix`, `postfix-incoming`, `postfix-smo/submission`… are all `syslog_name`s of
        // Postfix instances; anything else shares the file but is not ours.
        if !prefix.program.starts_with(b"postfix") {
            return Outcome::Ignored;
        }
        let daemon = match memrchr(b'/', prefix.program) {
            Some(i) => &prefix.program[i + 1..],
            None => prefix.program,
        };
        parse_text(prefix.time, daemon, prefix.text, emit)
    }
}

/// The shape-by-shape dispatch. Shapes are recognised by the text after `QID: ` rather than by
/// the daemon, because each text is logged by one daemon only and the daemon names of
/// multi-instance setups vary; the daemon only chooses between `delivered` and `relayed`.
fn parse_text(time: Timestamp, daemon: &[u8], text: &[u8], emit: &mut dyn FnMut(Event)) -> Outcome {
    let Some((queue, rest)) = split_queue_id(text) else {
        // connect/disconnect, TLS, postscreen, anvil, statistics…: no queue id.
        return Outcome::Ignored;
    };
    // Not queue ids, although they look like one: severities (`warning: QID: …`), the
    // pre-queue `NOQUEUE`, and the summaries of anvil, scache and postsuper.
    if matches!(
        queue,
        b"NOQUEUE" | b"warning" | b"error" | b"fatal" | b"panic" | b"info" | b"statistics"
    ) {
        return Outcome::Ignored;
    }
    let mut emit_mta = |e: MtaEvent| emit(Event::Mta(e));
    match rest.first() {
        Some(b't') if rest.starts_with(b"to=") => {
            delivery(time, daemon, queue, rest, &mut emit_mta)
        }
        Some(b'c') if rest.starts_with(b"client=") => {
            emit_mta(MtaEvent::Arrival {
                queue: queue.into(),
                time,
                message_id: None,
            });
            Outcome::Parsed
        }
        Some(b'u') if rest.starts_with(b"uid=") => pickup(time, queue, rest, &mut emit_mta),
        Some(b'm') if rest.starts_with(b"message-id=") => {
            message_id(queue, &rest[b"message-id=".len()..], &mut emit_mta)
        }
        Some(b'f') if rest.starts_with(b"from=") => qmgr_from(time, queue, rest, &mut emit_mta),
        // qmgr and postsuper `removed`; cleanup (Postfix >= 3.10) `removed (canceled)` and
        // `removed (discarded)`.
        Some(b'r') if rest == b"removed" || rest.starts_with(b"removed (") => {
            emit_mta(MtaEvent::Done {
                queue: queue.into(),
                time,
            });
            Outcome::Parsed
        }
        Some(b's' | b'p') if rest.starts_with(b"sender ") || rest.starts_with(b"postmaster ") => {
            notification(rest, &mut emit_mta)
        }
        _ => Outcome::Ignored,
    }
}

/// Splits `QID: rest`. The id is `[0-9A-Za-z_]+`: short ids are hex, long ids base 51, and a
/// patched Postfix seen in the wild adds `_`.
fn split_queue_id(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let head = &text[..text.len().min(MAX_QUEUE_ID + 1)];
    let colon = memchr(b':', head)?;
    let queue = &text[..colon];
    let rest = text[colon + 1..].strip_prefix(b" ")?;
    is_queue_id(queue).then_some((queue, rest))
}

fn is_queue_id(s: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= MAX_QUEUE_ID
        && s.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_')
}

/// The queue id at the start of `s`, up to the first byte that cannot be in one.
fn leading_queue_id(s: &[u8]) -> Option<&[u8]> {
    let n = s
        .iter()
        .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_'))
        .unwrap_or(s.len());
    let id = &s[..n];
    is_queue_id(id).then_some(id)
}

/// pickup: `uid=N from=<sender>`, with ` orig_id=OLDQID` when `postsuper -r` requeued the
/// message: then the old id goes on under the new one. Each field is read where pickup writes
/// it: the sender is the local user's choice and may spell ` orig_id=` itself.
fn pickup(time: Timestamp, queue: &[u8], rest: &[u8], emit: &mut dyn FnMut(MtaEvent)) -> Outcome {
    let uid = &rest[b"uid=".len()..];
    let digits = uid.iter().take_while(|c| c.is_ascii_digit()).count();
    let Some(from) = uid[digits..].strip_prefix(b" from=") else {
        return Outcome::Ignored;
    };
    let after = match take_address(from, SPACE) {
        Ok((_, after)) => after,
        Err(reason) => return Outcome::Rejected(reason),
    };
    emit(MtaEvent::Arrival {
        queue: queue.into(),
        time,
        message_id: None,
    });
    // Unlike smtpd's XFORWARD `orig_queue_id=`, which another host may have sent, `orig_id=`
    // always names a queue file of this Postfix.
    if let Some(old) = after.strip_prefix(b" orig_id=").and_then(leading_queue_id) {
        if old != queue {
            emit(MtaEvent::Handoff {
                queue: old.into(),
                new_queue: queue.into(),
            });
        }
    }
    Outcome::Parsed
}

/// cleanup: `message-id=<ID>`. Angle brackets are dropped; values without them (MIME-encoded
/// junk from broken senders) are kept verbatim, as they are what the client may quote back.
fn message_id(queue: &[u8], value: &[u8], emit: &mut dyn FnMut(MtaEvent)) -> Outcome {
    let id = match value {
        [b'<', inner @ .., b'>'] => inner,
        _ => value,
    };
    if id.is_empty() {
        // `message-id=<>`: the message has none and Postfix added none.
        return Outcome::Ignored;
    }
    if id.len() > MAX_MESSAGE_ID {
        return Outcome::Rejected("message-id longer than 998 octets");
    }
    emit(MtaEvent::MessageId {
        queue: queue.into(),
        message_id: id.into(),
    });
    Outcome::Parsed
}

/// qmgr: `from=<S>, size=N, nrcpt=N (queue active)` (on arrival and on every retry) or
/// `from=<S>, status=expired, returned to sender` (`force-expired` after `postsuper -e`).
fn qmgr_from(
    time: Timestamp,
    queue: &[u8],
    rest: &[u8],
    emit: &mut dyn FnMut(MtaEvent),
) -> Outcome {
    let (sender, after) = match take_address(&rest[b"from=".len()..], COMMA) {
        Ok(v) => v,
        Err(reason) => return Outcome::Rejected(reason),
    };
    let Some(after) = after.strip_prefix(b", ") else {
        return Outcome::Ignored;
    };
    if after.starts_with(b"size=") {
        // A null sender is a bounce or delay notice Postfix made itself: its queue id is no
        // message of any sender, even when it arrives before the bounce line naming it.
        let event = if sender.is_empty() {
            MtaEvent::Notification {
                queue: queue.into(),
            }
        } else {
            MtaEvent::Arrival {
                queue: queue.into(),
                time,
                message_id: None,
            }
        };
        emit(event);
        return Outcome::Parsed;
    }
    if after.starts_with(b"status=expired") || after.starts_with(b"status=force-expired") {
        emit(MtaEvent::Expired {
            queue: queue.into(),
            time,
        });
        return Outcome::Parsed;
    }
    Outcome::Ignored
}

/// The notifications the bounce daemon announces, as its lines begin.
const NOTIFICATIONS: [&[u8]; 5] = [
    b"sender non-delivery notification: ",
    b"postmaster non-delivery notification: ",
    b"sender delay notification: ",
    b"postmaster delay notification: ",
    b"sender delivery status notification: ",
];

/// bounce: `sender non-delivery notification: NEWQID` and its siblings (`postmaster
/// non-delivery`, `sender delay`, `sender delivery status`): NEWQID is Postfix's own message.
fn notification(rest: &[u8], emit: &mut dyn FnMut(MtaEvent)) -> Outcome {
    let Some(new) = NOTIFICATIONS.iter().find_map(|n| rest.strip_prefix(*n)) else {
        return Outcome::Ignored;
    };
    if !is_queue_id(new) {
        return Outcome::Rejected("notification without a queue id");
    }
    emit(MtaEvent::Notification { queue: new.into() });
    Outcome::Parsed
}

/// The fields of one delivery agent line (`log_adhoc()`), borrowed from the line.
#[derive(Default)]
struct Delivery<'a> {
    to: &'a [u8],
    orig_to: Option<&'a [u8]>,
    relay: &'a [u8],
    dsn: Option<&'a [u8]>,
    status: &'a [u8],
    /// The parenthesised text after the status, without the parentheses.
    text: &'a [u8],
}

/// Reads `to=<A>[, orig_to=<B>], relay=R, …, dsn=X.Y.Z, status=S (TEXT)` as generic `key=value`
/// pairs: `conn_use=`, `delay=`, `delays=`, Postfix 3.11's `tls=` and whatever comes next are
/// skipped, and pre-2.3 lines without `dsn=` still parse.
fn split_delivery(rest: &[u8]) -> Result<Delivery<'_>, &'static str> {
    let mut d = Delivery::default();
    let mut p = rest;
    loop {
        let Some(eq) = memchr(b'=', p) else {
            return Err("delivery line without status=");
        };
        let (key, value) = (&p[..eq], &p[eq + 1..]);
        if key.is_empty()
            || key.len() > 16
            || !key.iter().all(|&c| c.is_ascii_lowercase() || c == b'_')
        {
            return Err("delivery line field is not key=value");
        }
        let after = match key {
            b"to" | b"orig_to" => {
                let (addr, after) = take_address(value, COMMA)?;
                if key == b"to" {
                    d.to = addr;
                } else {
                    d.orig_to = Some(addr);
                }
                after
            }
            b"status" => {
                // The last field: a word, then ` (TEXT)` up to the end of the line. A line
                // Postfix truncated at 2000 bytes has no closing parenthesis.
                let end = memchr(b' ', value).unwrap_or(value.len());
                d.status = &value[..end];
                let text = value[end..].strip_prefix(b" (").unwrap_or(b"");
                d.text = text.strip_suffix(b")").unwrap_or(text);
                return Ok(d);
            }
            _ => {
                let end = find_separator(value, COMMA).unwrap_or(value.len());
                match key {
                    b"relay" => d.relay = &value[..end],
                    b"dsn" => d.dsn = Some(&value[..end]),
                    _ => {}
                }
                &value[end..]
            }
        };
        p = match after.strip_prefix(b", ") {
            Some(next) => next,
            None if after.is_empty() => return Err("delivery line without status="),
            None => return Err("delivery line field is not key=value"),
        };
    }
}

/// What separates the fields of a delivery line and of qmgr's `from=` line.
const COMMA: &[u8] = b", ";
/// What separates the fields of pickup's line.
const SPACE: &[u8] = b" ";

/// The first `separator` in `s`.
fn find_separator(s: &[u8], separator: &[u8]) -> Option<usize> {
    let first = *separator.first()?;
    memchr::memchr_iter(first, s).find(|&i| s[i..].starts_with(separator))
}

/// An address value: `<addr>` (local parts quoted since Postfix 3.5 may hold `>` or the
/// separator) or, tolerated, a bare address up to the next `separator` (`, ` in delivery and
/// qmgr lines, ` ` in pickup's). Returns the address and what follows it.
fn take_address<'a>(v: &'a [u8], separator: &[u8]) -> Result<(&'a [u8], &'a [u8]), &'static str> {
    let (addr, after) = match v.strip_prefix(b"<") {
        Some(inner) => match closing_bracket(inner, separator) {
            Some(i) => (&inner[..i], &inner[i + 1..]),
            None => return Err("address without closing >"),
        },
        None => {
            let end = bare_address_end(v, separator);
            (&v[..end], &v[end..])
        }
    };
    if addr.len() > MAX_ADDRESS {
        return Err("address longer than 512 octets");
    }
    Ok((addr, after))
}

/// Where the `>` closing an address is: the first one outside a quoted string that ends the
/// field (the end of the line, or `separator`, follows it). An unbalanced quote (Postfix's
/// `internal` address format does not quote) falls back to the first `>` that ends the field.
fn closing_bracket(s: &[u8], separator: &[u8]) -> Option<usize> {
    let ends_field = |i: usize| {
        let after = &s[i + 1..];
        after.is_empty() || after.starts_with(separator)
    };
    let mut quoted = false;
    let mut i = 0;
    while let Some(off) = memchr::memchr3(b'"', b'\\', b'>', &s[i..]) {
        let j = i + off;
        match s[j] {
            b'\\' if quoted => i = j + 2,
            b'"' => {
                quoted = !quoted;
                i = j + 1;
            }
            b'>' if !quoted && ends_field(j) => return Some(j),
            _ => i = j + 1,
        }
        if i >= s.len() {
            break;
        }
    }
    memchr::memchr_iter(b'>', s).find(|&j| ends_field(j))
}

/// The end of an address written without angle brackets: the first `separator` outside quotes.
fn bare_address_end(s: &[u8], separator: &[u8]) -> usize {
    let mut quoted = false;
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            _ if !quoted && s[i..].starts_with(separator) => return i,
            _ => {}
        }
        i += 1;
    }
    // An unbalanced quote: the field ends at the first separator after all.
    find_separator(s, separator).unwrap_or(s.len())
}

/// The parts of `relay=HOST[ADDR]:PORT`.
struct Relay<'a> {
    host: &'a [u8],
    addr: &'a [u8],
    port: Option<&'a [u8]>,
}

/// `relay=HOST[ADDR]:PORT` (or `HOST[ADDR]`); `none`, `local`, `virtual` and pipe transport
/// names (`dovecot`) have no brackets.
fn relay_parts(relay: &[u8]) -> Option<Relay<'_>> {
    let open = memchr(b'[', relay)?;
    let close = open + memchr(b']', &relay[open..])?;
    Some(Relay {
        host: &relay[..open],
        addr: &relay[open + 1..close],
        port: relay[close + 1..].strip_prefix(b":"),
    })
}

/// A relay on this host (a content filter such as amavis on 127.0.0.1:10024).
fn is_loopback(host: &[u8], addr: &[u8]) -> bool {
    host.eq_ignore_ascii_case(b"localhost")
        || addr.starts_with(b"127.")
        || addr == b"::1"
        || addr.eq_ignore_ascii_case(b"ipv6:::1")
}

/// The queue id after the last `queued as ` of an SMTP reply (amavis nests the reply of the
/// re-injecting Postfix inside its own, so the last one is the new id).
fn queued_as(text: &[u8]) -> Option<&[u8]> {
    // On every delivery line: the searcher is built once.
    static FINDER: LazyLock<memmem::FinderRev<'static>> =
        LazyLock::new(|| memmem::FinderRev::new(b"queued as "));
    let i = FINDER.rfind(text)?;
    leading_queue_id(&text[i + b"queued as ".len()..])
}

/// A delivery agent's `to=` line: one recipient's new state, or a hop to another queue id of
/// this host.
fn delivery(
    time: Timestamp,
    daemon: &[u8],
    queue: &[u8],
    rest: &[u8],
    emit: &mut dyn FnMut(MtaEvent),
) -> Outcome {
    let d = match split_delivery(rest) {
        Ok(d) => d,
        Err(reason) => return Outcome::Rejected(reason),
    };
    if d.to.is_empty() {
        return Outcome::Rejected("delivery line with an empty to= address");
    }
    let relay = relay_parts(d.relay);
    let action = match d.status {
        b"sent" => {
            if let Some(new) = d
                .text
                .strip_prefix(b"forwarded as ")
                .and_then(leading_queue_id)
            {
                // local's `.forward` or alias re-injection: this recipient is expanded, and
                // the copies go on under the new id.
                if new != queue {
                    let r = match recipient(time, &d, Action::Expanded, None) {
                        Ok(r) => r,
                        Err(reason) => return Outcome::Rejected(reason),
                    };
                    emit(MtaEvent::Recipient {
                        queue: queue.into(),
                        recipient: r,
                    });
                    emit(MtaEvent::Handoff {
                        queue: queue.into(),
                        new_queue: new.into(),
                    });
                    return Outcome::Parsed;
                }
            }
            if let (Some(Relay { host, addr, port }), Some(new)) = (&relay, queued_as(d.text)) {
                // A next hop queued it: on this host a content filter re-injecting into this
                // Postfix or another instance, elsewhere another hub of the cluster or a
                // stranger's MX. The tracker decides whether the message goes on under the new
                // id ([`crate::ingest::hosts::Hosts::next_hop`]); relayed to that hop until the
                // new id's lines say more. Only the smtp client relays (an lmtp reply that
                // says `queued as` from a remote store is a delivery) unless on this host.
                let here = is_loopback(host, addr);
                if (daemon == b"smtp" || here) && !(here && new == queue) {
                    let r = match recipient(time, &d, Action::Relayed, Some(host)) {
                        Ok(r) => r,
                        Err(reason) => return Outcome::Rejected(reason),
                    };
                    emit(MtaEvent::HandedOff {
                        queue: queue.into(),
                        new_queue: new.into(),
                        recipient: r,
                        hop: NextHop::new(host, addr, *port),
                    });
                    return Outcome::Parsed;
                }
            }
            // Postfix's smtp client reports `relayed` (its DSNs say so); lmtp, local, virtual,
            // pipe and discard deliver.
            if daemon == b"smtp" {
                Action::Relayed
            } else {
                Action::Delivered
            }
        }
        b"deferred" | b"SOFTBOUNCE" => Action::Delayed,
        b"bounced" => Action::Failed,
        s if s.starts_with(b"undeliverable") => Action::Failed,
        // An address verification probe that succeeded: no message was delivered.
        b"deliverable" => return Outcome::Ignored,
        _ => return Outcome::Rejected("unknown delivery status"),
    };
    // A unix-socket relay (`host[private/dovecot-lmtp]`) and the transport names of local
    // deliveries name no remote MTA.
    let remote_host = match relay {
        Some(Relay { host, addr, .. }) if memchr(b'/', addr).is_none() => Some(host),
        _ => None,
    };
    if d.dsn.is_some_and(|dsn| status_class(dsn).is_none()) {
        return Outcome::Rejected("dsn= is not class.subject.detail");
    }
    let r = match recipient(time, &d, action, remote_host) {
        Ok(r) => r,
        Err(reason) => return Outcome::Rejected(reason),
    };
    emit(MtaEvent::Recipient {
        queue: queue.into(),
        recipient: r,
    });
    Outcome::Parsed
}

/// The recipient state of a delivery line. Lines before Postfix 2.3 have no `dsn=`: the
/// status is then the action's class.
fn recipient(
    time: Timestamp,
    d: &Delivery<'_>,
    action: Action,
    remote_host: Option<&[u8]>,
) -> Result<Recipient, &'static str> {
    RecipientFields {
        final_rcpt: d.to,
        original: d.orig_to,
        action,
        status: d.dsn,
        remote_host,
        reply: Some(d.text),
        time,
    }
    .recipient()
}

#[cfg(test)]
mod tests;
