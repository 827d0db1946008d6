//! What every MTA log parser shares: the bounds on the fields it keeps, the RFC 3463 status
//! code, and the one way a recipient's state is built from the fields of a line
//! ([`RecipientFields::recipient`]).
//!
//! A parser's job is to find each field at its position in its MTA's line (the addresses, the
//! remote host, the status code, the SMTP reply) and to choose the RFC 3886 action; every rule
//! about what is kept of those fields lives here, so that a parser for another MTA inherits
//! them by construction: addresses and host names are bounded, a status contradicting the
//! action gives way to `class.0.0`, a diagnostic is the reply's text (bounded, never cut inside
//! a UTF-8 sequence or an escape) and only for recipients still queued or failed.

use std::sync::LazyLock;

use crate::gate::smtp::reply::QueueIdPattern;
use crate::index::message::{Action, Recipient};
use crate::protocol::date::Timestamp;

/// Longest address kept (RFC 5321 allows 256 octets in a path; the native format 512).
pub const MAX_ADDRESS: usize = 512;
/// Longest host name kept as a Remote-MTA (a DNS name is at most 253 octets).
pub const MAX_HOST: usize = 255;
/// Longest Message-ID kept: an RFC 5322 line.
pub const MAX_MESSAGE_ID: usize = 998;
/// Longest Diagnostic-Code value kept, `smtp;` included: enough for a multi-line SMTP reply,
/// short enough that one record stays small.
pub const MAX_DIAGNOSTIC: usize = 512;

/// The class (`b'2'`, `b'4'` or `b'5'`) of an RFC 3463 status code `class.subject.detail`
/// (1 to 3 digits each); None when `s` is not one.
pub fn status_class(s: &[u8]) -> Option<u8> {
    let mut parts = s.split(|&b| b == b'.');
    let class = match parts.next()? {
        [c @ (b'2' | b'4' | b'5')] => *c,
        _ => return None,
    };
    let digits = |p: &[u8]| (1..=3).contains(&p.len()) && p.iter().all(u8::is_ascii_digit);
    let rest_ok = parts.next().is_some_and(digits) && parts.next().is_some_and(digits);
    (rest_ok && parts.next().is_none()).then_some(class)
}

/// The class a recipient's status must have in `action`.
fn class_of(action: Action) -> u8 {
    match action {
        Action::Delayed => b'4',
        Action::Failed => b'5',
        _ => b'2',
    }
}

/// The status of a recipient in `action`: `code` when it is a status code of the class the
/// action calls for (a code contradicting the action would make an inconsistent report), else
/// `class.0.0`.
pub fn status_for(action: Action, code: Option<&[u8]>) -> Box<[u8]> {
    let class = class_of(action);
    match code {
        Some(c) if status_class(c) == Some(class) => c.into(),
        _ => [class, b'.', b'0', b'.', b'0'][..].into(),
    }
}

/// `prefix` followed by `value`, as one owned field (`rfc822;addr`, `dns;host`).
pub fn prefixed(prefix: &[u8], value: &[u8]) -> Box<[u8]> {
    let mut v = Vec::with_capacity(prefix.len() + value.len());
    v.extend_from_slice(prefix);
    v.extend_from_slice(value);
    v.into()
}

/// At most `max` octets of `s`, not cutting a UTF-8 sequence or a `\`-escape in two.
pub fn capped(s: &[u8], max: usize) -> &[u8] {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && s[end] & 0xC0 == 0x80 {
        end -= 1;
    }
    // Exim writes the line breaks of a multi-line reply as `\n`: do not keep half of one.
    if end > 0 && s[end - 1] == b'\\' {
        end -= 1;
    }
    &s[..end]
}

/// The forms in which a next hop's reply names the id it queued a message as: Postfix's
/// `Ok: queued as X`, Exim's `OK id=X`, sendmail's `X Message accepted for delivery`.
static QUEUE_ID_PATTERNS: LazyLock<Vec<QueueIdPattern>> = LazyLock::new(QueueIdPattern::built_in);

/// The queue id a next hop's reply `text` (after its code and enhanced status) names, for a
/// hand-off ([`crate::ingest::event::MtaEvent::HandedOff`]).
pub fn next_hop_queue_id(text: &[u8]) -> Option<&[u8]> {
    QUEUE_ID_PATTERNS.iter().find_map(|p| p.find(text))
}

/// One recipient's new state as the fields of an MTA line give it, before the shared rules.
#[derive(Debug, Clone, Copy)]
pub struct RecipientFields<'a> {
    /// The address delivered (or tried) to.
    pub final_rcpt: &'a [u8],
    /// The address the sender gave, when the MTA logs it apart (an alias or `.forward`).
    pub original: Option<&'a [u8]>,
    pub action: Action,
    /// The status code the line gives, if any.
    pub status: Option<&'a [u8]>,
    /// The host the message was handed to or tried, if any.
    pub remote_host: Option<&'a [u8]>,
    /// The remote server's reply or the MTA's reason, if any.
    pub reply: Option<&'a [u8]>,
    /// When the line was logged.
    pub time: Timestamp,
}

/// The diagnostic type of every MTA reply.
const SMTP: &[u8] = b"smtp;";

impl RecipientFields<'_> {
    /// The recipient's state by the rules every MTA shares: addresses of 1 to [`MAX_ADDRESS`]
    /// octets and a remote host of at most [`MAX_HOST`] (else the line is refused with the
    /// reason), the status by [`status_for`], a diagnostic only for a delayed or failed
    /// recipient (the reply, [`capped`] to fit [`MAX_DIAGNOSTIC`]), a last attempt for every
    /// action that tried a delivery.
    pub fn recipient(self) -> Result<Recipient, &'static str> {
        let address_ok = |a: &[u8]| !a.is_empty() && a.len() <= MAX_ADDRESS;
        if !address_ok(self.final_rcpt) || !self.original.map_or(true, address_ok) {
            return Err("recipient address empty or longer than 512 octets");
        }
        if self.remote_host.is_some_and(|h| h.len() > MAX_HOST) {
            return Err("remote host longer than 255 octets");
        }
        let action = self.action;
        let unfinished = matches!(action, Action::Delayed | Action::Failed);
        Ok(Recipient {
            original: self.original.map(|a| prefixed(b"rfc822;", a)),
            final_rcpt: self.final_rcpt.into(),
            action,
            status: status_for(action, self.status),
            remote_mta: self
                .remote_host
                .filter(|h| !h.is_empty())
                .map(|h| prefixed(b"dns;", h)),
            diagnostic: self
                .reply
                .filter(|r| unfinished && !r.is_empty())
                .map(|r| prefixed(SMTP, capped(r, MAX_DIAGNOSTIC - SMTP.len()))),
            last_attempt: matches!(action, Action::Relayed | Action::Delayed | Action::Failed)
                .then_some(self.time),
            will_retry_until: None,
            at: self.time.unix,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(action: Action) -> RecipientFields<'static> {
        RecipientFields {
            final_rcpt: b"to@example.net",
            original: None,
            action,
            status: None,
            remote_host: None,
            reply: None,
            time: Timestamp {
                unix: 1_000,
                offset_minutes: 0,
            },
        }
    }

    #[test]
    fn status_codes() {
        for good in ["2.0.0", "4.4.1", "5.1.10", "5.999.999"] {
            assert!(status_class(good.as_bytes()).is_some(), "{good}");
        }
        for bad in [
            "", "3.0.0", "2.0", "2.0.0.0", "2..0", "2.1000.0", "2.a.0", "22.0.0", "2.0.0 ",
        ] {
            assert_eq!(status_class(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn a_status_that_contradicts_the_action_gives_way_to_its_class() {
        assert_eq!(&*status_for(Action::Failed, Some(b"5.1.1")), b"5.1.1");
        assert_eq!(&*status_for(Action::Failed, Some(b"4.4.1")), b"5.0.0");
        assert_eq!(&*status_for(Action::Delayed, Some(b"2.0.0")), b"4.0.0");
        assert_eq!(&*status_for(Action::Relayed, None), b"2.0.0");
        assert_eq!(&*status_for(Action::Delivered, Some(b"junk")), b"2.0.0");
    }

    #[test]
    fn caps_keep_characters_and_escapes_whole() {
        assert_eq!(capped(b"abc", 5), b"abc");
        assert_eq!(capped("aé".as_bytes(), 2), b"a");
        assert_eq!(capped(b"ab\\nc", 3), b"ab");
        let long = vec![b'x'; 2 * MAX_DIAGNOSTIC];
        let f = RecipientFields {
            reply: Some(&long),
            ..fields(Action::Failed)
        };
        let diag = f.recipient().unwrap().diagnostic.unwrap();
        assert_eq!(diag.len(), MAX_DIAGNOSTIC);
    }

    #[test]
    fn every_mta_line_is_bounded_by_the_same_rules() {
        let long = vec![b'a'; MAX_ADDRESS + 1];
        for bad in [
            RecipientFields {
                final_rcpt: &long,
                ..fields(Action::Delivered)
            },
            RecipientFields {
                final_rcpt: b"",
                ..fields(Action::Delivered)
            },
            RecipientFields {
                original: Some(&long),
                ..fields(Action::Delivered)
            },
            RecipientFields {
                remote_host: Some(&long[..MAX_HOST + 1]),
                ..fields(Action::Relayed)
            },
        ] {
            assert!(bad.recipient().is_err(), "{bad:?}");
        }
        let delivered = RecipientFields {
            reply: Some(b"250 ok"),
            remote_host: Some(b""),
            ..fields(Action::Delivered)
        }
        .recipient()
        .unwrap();
        assert_eq!(delivered.diagnostic, None, "only for delayed or failed");
        assert_eq!(delivered.remote_mta, None, "an empty host names none");
        assert_eq!(delivered.last_attempt, None);
        let relayed = RecipientFields {
            original: Some(b"alias@example.org"),
            remote_host: Some(b"mx.example.net"),
            ..fields(Action::Relayed)
        }
        .recipient()
        .unwrap();
        assert_eq!(
            relayed.original.as_deref(),
            Some(&b"rfc822;alias@example.org"[..])
        );
        assert_eq!(
            relayed.remote_mta.as_deref(),
            Some(&b"dns;mx.example.net"[..])
        );
        assert!(relayed.last_attempt.is_some());
    }
}
