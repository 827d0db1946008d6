//! RFC 3886 rendering: a [`Message`] becomes the complete TRACK answer as it goes on the wire —
//! status line, `multipart/related` of `message/tracking-status`, CRLF line ends, dot-stuffed,
//! `.` terminated — so that answering a query is a lookup and a write.
//!
//! Every line of a body part starts with a field name this module writes, or is empty, so no
//! line can start with the boundary delimiter `--mtqp-boundary` (RFC 2046 section 5.1.1);
//! values are sanitised so that no octet outside printable ASCII (and so no line break) reaches the wire.
//! For the same reason the only line that can begin with `.` is an operator's extra header
//! line: it is dot-stuffed as it is written, and everything else goes out as written, CRLF and
//! all, with no second pass over the bytes.
//!
//! Rendering runs once per changed message at ingest, so it is written for speed: the buffer
//! is allocated once at a size computed up front that it cannot outgrow (see
//! [`capacity_bound`]), and values are copied in runs of printable octets, not octet by octet.

use std::sync::Arc;

use super::message::{Message, Recipient};
use crate::protocol::date::Timestamp;
use crate::protocol::dotstuff::TERMINATOR;
use crate::protocol::xtext;

/// The multipart boundary. Safe for every body this module writes (see the module doc).
pub const BOUNDARY: &str = "mtqp-boundary";

const STATUS_LINE: &[u8] = b"+OK+ Tracking information follows\r\n";

/// How every answer without extra header lines begins, up to the value of its first field
/// (the envid): the index keeps it once rather than in every record (see
/// [`crate::index::entry`]).
pub const FRAME_PREFIX: &[u8] = b"+OK+ Tracking information follows\r\n\
Content-Type: multipart/related; boundary=mtqp-boundary; type=\"message/tracking-status\"\r\n\
\r\n--mtqp-boundary\r\nContent-Type: message/tracking-status\r\n\r\nOriginal-Envelope-Id: ";

/// How every answer ends.
pub const FRAME_SUFFIX: &[u8] = b"\r\n--mtqp-boundary--\r\n.\r\n";

const CRLF: &[u8] = b"\r\n";

/// A value octet becomes at most this many octets on the wire (`+XX`).
const ESCAPED_MAX: usize = 3;

/// The most [`Timestamp::write_rfc5322`] writes, for any value the type can hold, not only
/// the ones logs give: `Www, DD Mmm ` (12), a year of up to 12 digits and a sign (13; an `i64`
/// of seconds spans about 2.9e11 years), ` HH:MM:SS ` (10) and an offset of sign and up to
/// five digits (6; `i16` minutes reach 546 hours).
const DATE_MAX: usize = 12 + 13 + 10 + 6;

/// A `Name: type; value` field (RFC 3464) and the type written when the log gave none.
struct Typed {
    /// `Name: `.
    head: &'static [u8],
    /// `type; `.
    default_type: &'static [u8],
    /// Whether the text before a value's first `;` is a type of this field, rather than part
    /// of the value: an address's local part may hold a `;` (`"a;b"@relay.test`, which Exim
    /// even logs unquoted).
    is_type: fn(&[u8]) -> bool,
}

/// An RFC 3464 `address-type` mtqpd knows (`rfc822`, `utf-8` of RFC 6533, `x400`, `unknown`)
/// or an `X-` extension.
fn is_address_type(t: &[u8]) -> bool {
    [&b"rfc822"[..], b"utf-8", b"x400", b"unknown"]
        .iter()
        .any(|k| t.eq_ignore_ascii_case(k))
        || (t.len() > 2 && t[..2].eq_ignore_ascii_case(b"x-") && is_atom_type(t))
}

/// An `mta-name-type` or `diagnostic-type`: an atom (`dns`, `smtp`, `x-unix`).
fn is_atom_type(t: &[u8]) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
}

impl Typed {
    /// The most [`push_typed`] writes for a value of `len` octets. A value with a `;` loses
    /// that octet to `; ` and gets no default type, so the bound with the default covers it.
    fn bound(&self, len: usize) -> usize {
        self.head.len() + self.default_type.len() + ESCAPED_MAX * len + CRLF.len()
    }
}

/// The field names this module writes, as their lines begin (`ingest::tracker::read_back`
/// reads them).
pub(crate) const ORIGINAL_RECIPIENT_HEAD: &[u8] = b"Original-Recipient: ";
pub(crate) const FINAL_RECIPIENT_HEAD: &[u8] = b"Final-Recipient: ";
pub(crate) const REMOTE_MTA_HEAD: &[u8] = b"Remote-MTA: ";
pub(crate) const DIAGNOSTIC_CODE_HEAD: &[u8] = b"Diagnostic-Code: ";
pub(crate) const REPORTING_MTA_HEAD: &[u8] = b"Reporting-MTA: ";
pub(crate) const ACTION: &[u8] = b"Action: ";
pub(crate) const STATUS: &[u8] = b"Status: ";
pub(crate) const ARRIVAL_DATE: &[u8] = b"Arrival-Date: ";
pub(crate) const LAST_ATTEMPT_DATE: &[u8] = b"Last-Attempt-Date: ";
pub(crate) const WILL_RETRY_UNTIL: &[u8] = b"Will-Retry-Until: ";
const ORIGINAL_ENVELOPE_ID: &[u8] = b"Original-Envelope-Id: ";

const ORIGINAL_RECIPIENT: Typed = Typed {
    head: ORIGINAL_RECIPIENT_HEAD,
    default_type: b"rfc822; ",
    is_type: is_address_type,
};
const FINAL_RECIPIENT: Typed = Typed {
    head: FINAL_RECIPIENT_HEAD,
    default_type: b"rfc822; ",
    is_type: is_address_type,
};
const REMOTE_MTA: Typed = Typed {
    head: REMOTE_MTA_HEAD,
    default_type: b"dns; ",
    is_type: is_atom_type,
};
const DIAGNOSTIC_CODE: Typed = Typed {
    head: DIAGNOSTIC_CODE_HEAD,
    default_type: b"smtp; ",
    is_type: is_atom_type,
};
const REPORTING_MTA: Typed = Typed {
    head: REPORTING_MTA_HEAD,
    default_type: b"dns; ",
    is_type: is_atom_type,
};

/// The most [`push_field`] writes for a value of `len` octets.
fn field_bound(head: &[u8], len: usize) -> usize {
    head.len() + ESCAPED_MAX * len + CRLF.len()
}

/// The most [`push_date`] writes.
fn date_bound(head: &[u8]) -> usize {
    head.len() + DATE_MAX + CRLF.len()
}

/// The most [`render`] writes for `msg`: the field by field sum of the bounds above, so that
/// one allocation holds the answer whatever octets the values hold. It over-counts only the
/// escapes the values do not need; the index copies the answer into its own record and drops
/// this buffer, so the slack is never kept.
fn capacity_bound(msg: &Message, reporting_mta: &str) -> usize {
    // A header line may get a `.` in front (dot-stuffing).
    let headers: usize = msg
        .headers
        .iter()
        .map(|h| 1 + field_bound(b"", h.len()))
        .sum();
    let recipients: usize = msg.recipients.iter().map(recipient_bound).sum();
    FRAME_PREFIX.len()
        + headers
        + field_bound(ORIGINAL_ENVELOPE_ID, msg.envid.len())
        + REPORTING_MTA.bound(reporting_mta.len())
        + date_bound(ARRIVAL_DATE)
        + recipients
        + FRAME_SUFFIX.len()
}

fn recipient_bound(r: &Recipient) -> usize {
    CRLF.len()
        + r.original
            .as_ref()
            .map_or(0, |o| ORIGINAL_RECIPIENT.bound(o.len()))
        + FINAL_RECIPIENT.bound(r.final_rcpt.len())
        + field_bound(ACTION, r.action.name().len())
        + field_bound(STATUS, r.status.len())
        + r.remote_mta
            .as_ref()
            .map_or(0, |m| REMOTE_MTA.bound(m.len()))
        + r.diagnostic
            .as_ref()
            .map_or(0, |d| DIAGNOSTIC_CODE.bound(d.len()))
        + r.last_attempt.map_or(0, |_| date_bound(LAST_ATTEMPT_DATE))
        + r.will_retry_until
            .map_or(0, |_| date_bound(WILL_RETRY_UNTIL))
}

fn is_printable(c: u8) -> bool {
    // One subtraction and one unsigned compare (a range test is two compares), which keeps the
    // 16-octet steps of `printable_prefix` to a few vector instructions.
    c.wrapping_sub(b' ') <= b'~' - b' '
}

/// How many octets at the start of `value` are printable. Values are nearly always printable
/// end to end, so this scan is what [`push_value`] costs: it tests 16 octets per step without
/// an early exit inside the step, which the compiler turns into a few SIMD instructions, and
/// goes octet by octet only through the last, partial step or the step that failed.
fn printable_prefix(value: &[u8]) -> usize {
    const STEP: usize = 16;
    let mut n = 0;
    for chunk in value.chunks_exact(STEP) {
        if !chunk.iter().fold(true, |ok, &c| ok & is_printable(c)) {
            break;
        }
        n += STEP;
    }
    let rest = &value[n..];
    n + rest
        .iter()
        .position(|&c| !is_printable(c))
        .unwrap_or(rest.len())
}

/// Appends `value` with every octet outside printable ASCII and space written as xtext `+XX`,
/// so that a value from a log line can neither break a line nor leave 7-bit. Printable runs
/// go in with one copy each.
fn push_value(out: &mut Vec<u8>, mut value: &[u8]) {
    loop {
        let run = printable_prefix(value);
        out.extend_from_slice(&value[..run]);
        let Some((&c, rest)) = value[run..].split_first() else {
            return;
        };
        // Not printable, so not xtext-safe either: this writes `+XX`.
        xtext::encode_append(&[c], out);
        value = rest;
    }
}

/// `type;value` (as logged) → `type; value` (as RFC 3464 examples write it).
fn push_typed(out: &mut Vec<u8>, field: &Typed, typed: &[u8]) {
    out.extend_from_slice(field.head);
    match memchr::memchr(b';', typed).filter(|&i| (field.is_type)(typed[..i].trim_ascii())) {
        Some(i) => {
            push_value(out, typed[..i].trim_ascii());
            out.extend_from_slice(b"; ");
            push_value(out, typed[i + 1..].trim_ascii());
        }
        None => {
            out.extend_from_slice(field.default_type);
            push_value(out, typed.trim_ascii());
        }
    }
    out.extend_from_slice(CRLF);
}

fn push_field(out: &mut Vec<u8>, head: &[u8], value: &[u8]) {
    out.extend_from_slice(head);
    push_value(out, value);
    out.extend_from_slice(CRLF);
}

fn push_date(out: &mut Vec<u8>, head: &[u8], t: &Timestamp) {
    out.extend_from_slice(head);
    t.write_rfc5322(out);
    out.extend_from_slice(CRLF);
}

fn push_outer_header(body: &mut Vec<u8>, headers: &[Box<[u8]>]) {
    body.extend_from_slice(b"Content-Type: multipart/related; boundary=");
    body.extend_from_slice(BOUNDARY.as_bytes());
    body.extend_from_slice(b"; type=\"message/tracking-status\"\r\n");
    for h in headers {
        if h.first() == Some(&b'.') {
            body.push(b'.');
        }
        push_value(body, h);
        body.extend_from_slice(CRLF);
    }
    body.extend_from_slice(b"\r\n--");
    body.extend_from_slice(BOUNDARY.as_bytes());
    body.extend_from_slice(b"\r\nContent-Type: message/tracking-status\r\n\r\n");
}

fn push_recipient(body: &mut Vec<u8>, r: &Recipient) {
    body.extend_from_slice(CRLF);
    if let Some(orcpt) = &r.original {
        push_typed(body, &ORIGINAL_RECIPIENT, orcpt);
    }
    push_typed(body, &FINAL_RECIPIENT, &r.final_rcpt);
    push_field(body, ACTION, r.action.name().as_bytes());
    push_field(body, STATUS, &r.status);
    if let Some(mta) = &r.remote_mta {
        push_typed(body, &REMOTE_MTA, mta);
    }
    if let Some(diag) = &r.diagnostic {
        push_typed(body, &DIAGNOSTIC_CODE, diag);
    }
    if let Some(t) = &r.last_attempt {
        push_date(body, LAST_ATTEMPT_DATE, t);
    }
    if let Some(t) = &r.will_retry_until {
        push_date(body, WILL_RETRY_UNTIL, t);
    }
}

/// Renders the complete TRACK answer for `msg`. `reporting_mta` is this hub's name.
pub fn render(msg: &Message, reporting_mta: &str) -> Vec<u8> {
    let mut out = Vec::new();
    render_into(msg, reporting_mta, &mut out);
    out
}

/// [`render`] into `out`, replacing what it held: the ingest thread renders every changed
/// message into the same buffer, sparing an allocation of the largest size class (which makes
/// the allocator consolidate its free lists) per message.
pub fn render_into(msg: &Message, reporting_mta: &str, out: &mut Vec<u8>) {
    let bound = capacity_bound(msg, reporting_mta);
    out.clear();
    out.reserve(bound);
    let start = out.capacity();
    out.extend_from_slice(STATUS_LINE);
    push_outer_header(out, &msg.headers);
    out.extend_from_slice(ORIGINAL_ENVELOPE_ID);
    xtext::encode_append(&msg.envid, out);
    out.extend_from_slice(CRLF);
    push_typed(out, &REPORTING_MTA, reporting_mta.as_bytes());
    push_date(out, ARRIVAL_DATE, &msg.arrival);
    for r in &msg.recipients {
        push_recipient(out, r);
    }
    out.extend_from_slice(FRAME_SUFFIX);
    debug_assert!(out.len() <= bound, "capacity_bound undercounts");
    debug_assert_eq!(out.capacity(), start, "rendering reallocated");
}

/// The `opaque` answer (RFC 3887 section 4, `--unknown opaque`), in two halves that go on the
/// wire around the envid exactly as the client sent it (already checked to be xtext), so that
/// an unknown envid and a wrong secret give the same bytes.
#[derive(Debug, Clone)]
pub struct OpaqueAnswer {
    pub before_envid: Arc<[u8]>,
    pub after_envid: Arc<[u8]>,
}

impl OpaqueAnswer {
    /// Renders the two halves for this hub.
    pub fn new(reporting_mta: &str) -> OpaqueAnswer {
        let mut before = STATUS_LINE.to_vec();
        push_outer_header(&mut before, &[]);
        before.extend_from_slice(b"Original-Envelope-Id: ");
        let mut after = b"\r\n".to_vec();
        push_typed(&mut after, &REPORTING_MTA, reporting_mta.as_bytes());
        after.extend_from_slice(
            b"\r\nFinal-Recipient: rfc822; unknown\r\nAction: opaque\r\nStatus: 5.0.0\r\n\r\n--",
        );
        after.extend_from_slice(BOUNDARY.as_bytes());
        after.extend_from_slice(b"--\r\n");
        after.extend_from_slice(TERMINATOR);
        OpaqueAnswer {
            before_envid: before.into(),
            after_envid: after.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::message::Action;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s.as_bytes()).unwrap()
    }

    fn msg(recipients: Vec<Recipient>) -> Message {
        Message {
            envid: b"12345-20010101@example.com"[..].into(),
            hash: [0; 20],
            arrival: ts("2001-01-01T15:15:15-05:00"),
            timeout: None,
            headers: Vec::new(),
            recipients,
            last_event: 0,
            lookup: Default::default(),
            orcpts: Default::default(),
        }
    }

    fn rcpt(addr: &str, action: Action, status: &str) -> Recipient {
        Recipient {
            original: Some(format!("rfc822;{addr}").into_bytes().into()),
            final_rcpt: addr.as_bytes().into(),
            action,
            status: status.as_bytes().into(),
            remote_mta: None,
            diagnostic: None,
            last_attempt: None,
            will_retry_until: None,
            at: 0,
        }
    }

    /// RFC 2046 section 5.1.1: 1 to 70 of `bcharsnospace`; and a parameter token (RFC 2045
    /// section 5.1), so that `boundary=` needs no quotes. The RFC 3887 examples' `%%%%` fails.
    #[test]
    fn the_boundary_is_a_valid_mime_boundary_and_token() {
        let bchars = |c: u8| c.is_ascii_alphanumeric() || b"'()+_,-./:=?".contains(&c);
        let tspecial = |c: u8| b"()<>@,;:\\\"/[]?=".contains(&c);
        assert!((1..=70).contains(&BOUNDARY.len()));
        for c in BOUNDARY.bytes() {
            assert!(
                bchars(c) && !tspecial(c),
                "{:?} in the boundary",
                char::from(c)
            );
        }
        let head = format!("boundary={BOUNDARY}; type=");
        assert!(FRAME_PREFIX
            .windows(head.len())
            .any(|w| w == head.as_bytes()));
    }

    #[test]
    fn a_semicolon_in_a_local_part_is_not_an_address_type() {
        for (logged, shown) in [
            ("\"a;b\"@relay.test", "rfc822; \"a;b\"@relay.test"),
            ("a;b@relay.test", "rfc822; a;b@relay.test"),
            ("rfc822;x@relay.test", "rfc822; x@relay.test"),
            ("UTF-8;x@relay.test", "UTF-8; x@relay.test"),
            ("x-custom;x@relay.test", "x-custom; x@relay.test"),
        ] {
            let mut r = rcpt("x@y", Action::Relayed, "2.0.0");
            r.original = None;
            r.final_rcpt = logged.as_bytes().into();
            let wire = render(&msg(vec![r]), "example2.com");
            let want = format!("\r\nFinal-Recipient: {shown}\r\nAction: relayed\r\n");
            assert!(
                wire.windows(want.len()).any(|w| w == want.as_bytes()),
                "{logged}: {}",
                String::from_utf8_lossy(&wire)
            );
        }
    }

    #[test]
    fn rfc3887_example_6_delivered() {
        let m = msg(vec![rcpt("user1@example1.com", Action::Delivered, "2.5.0")]);
        let wire = render(&m, "example2.com");
        assert_eq!(
            std::str::from_utf8(&wire).unwrap(),
            "+OK+ Tracking information follows\r\n\
             Content-Type: multipart/related; boundary=mtqp-boundary; type=\"message/tracking-status\"\r\n\
             \r\n\
             --mtqp-boundary\r\n\
             Content-Type: message/tracking-status\r\n\
             \r\n\
             Original-Envelope-Id: 12345-20010101@example.com\r\n\
             Reporting-MTA: dns; example2.com\r\n\
             Arrival-Date: Mon, 1 Jan 2001 15:15:15 -0500\r\n\
             \r\n\
             Original-Recipient: rfc822; user1@example1.com\r\n\
             Final-Recipient: rfc822; user1@example1.com\r\n\
             Action: delivered\r\n\
             Status: 2.5.0\r\n\
             \r\n\
             --mtqp-boundary--\r\n\
             .\r\n"
        );
    }

    #[test]
    fn hostile_values_cannot_break_lines_or_fake_the_boundary() {
        let mut r = rcpt("a@b", Action::Failed, "5.1.1");
        r.final_rcpt = b"x@y\r\n--mtqp-boundary--\r\n.\r\nEvil: 1"[..].into();
        r.diagnostic = Some(b"smtp;550 \x00\xff"[..].into());
        let wire = render(&msg(vec![r]), "example2.com");
        let text = std::str::from_utf8(&wire).unwrap();
        assert!(text.contains(
            "Final-Recipient: rfc822; x@y+0D+0A--mtqp-boundary--+0D+0A.+0D+0AEvil: 1\r\n"
        ));
        assert!(text.contains("Diagnostic-Code: smtp; 550 +00+FF\r\n"));
        assert_eq!(text.matches("\r\n--mtqp-boundary").count(), 2);
        assert!(text.ends_with("\r\n--mtqp-boundary--\r\n.\r\n"));
    }

    #[test]
    fn frame_constants_are_what_render_writes() {
        let wire = render(
            &msg(vec![rcpt("a@b", Action::Delivered, "2.0.0")]),
            "h.example",
        );
        assert!(wire.starts_with(FRAME_PREFIX));
        assert!(wire.ends_with(FRAME_SUFFIX));
    }

    #[test]
    fn extra_header_starting_with_a_dot_is_stuffed() {
        let mut m = msg(vec![rcpt("user1@example1.com", Action::Delivered, "2.5.0")]);
        m.headers
            .push(b".Dot-Stuffed-Header: as an example"[..].into());
        let wire = render(&m, "example2.com");
        assert!(std::str::from_utf8(&wire)
            .unwrap()
            .contains("type=\"message/tracking-status\"\r\n..Dot-Stuffed-Header: as an example\r\n\r\n--mtqp-boundary\r\n"));
    }

    #[test]
    fn opaque_halves_surround_the_envid() {
        let o = OpaqueAnswer::new("example2.com");
        let mut wire = o.before_envid.to_vec();
        wire.extend_from_slice(b"x+2By@example.com");
        wire.extend_from_slice(&o.after_envid);
        assert_eq!(
            std::str::from_utf8(&wire).unwrap(),
            "+OK+ Tracking information follows\r\n\
             Content-Type: multipart/related; boundary=mtqp-boundary; type=\"message/tracking-status\"\r\n\
             \r\n\
             --mtqp-boundary\r\n\
             Content-Type: message/tracking-status\r\n\
             \r\n\
             Original-Envelope-Id: x+2By@example.com\r\n\
             Reporting-MTA: dns; example2.com\r\n\
             \r\n\
             Final-Recipient: rfc822; unknown\r\n\
             Action: opaque\r\n\
             Status: 5.0.0\r\n\
             \r\n\
             --mtqp-boundary--\r\n\
             .\r\n"
        );
    }

    /// What [`push_value`] must write, octet by octet and without xtext's help.
    fn push_value_reference(value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &c in value {
            if (0x20..=0x7e).contains(&c) {
                out.push(c);
            } else {
                out.extend_from_slice(format!("+{c:02X}").as_bytes());
            }
        }
        out
    }

    fn check_push_value(value: &[u8]) {
        // Something already in the buffer must stay as it is.
        let mut out = b"x: ".to_vec();
        push_value(&mut out, value);
        assert_eq!(out[..3], *b"x: ");
        assert_eq!(out[3..], push_value_reference(value), "value {value:?}");
    }

    #[test]
    fn push_value_matches_the_reference() {
        check_push_value(b"");
        for c in 0..=255u8 {
            check_push_value(&[c]);
        }
        let every: Vec<u8> = (0..=255u8).collect();
        check_push_value(&every);
        let unprintable: Vec<u8> = (0..=255u8)
            .filter(|&c| !(0x20..=0x7e).contains(&c))
            .collect();
        check_push_value(&unprintable);
        check_push_value(&unprintable[..40]);
        // One bad octet at every place around the 16-octet steps of the scan.
        for len in 0..70 {
            let mut v = vec![b'a'; len];
            check_push_value(&v);
            for i in 0..len {
                for bad in [0x00, b'\r', 0x1f, 0x7f, 0x80, 0xff] {
                    v[i] = bad;
                    check_push_value(&v);
                }
                v[i] = b'a';
            }
        }
        // Random values, from mostly printable to mostly not.
        let mut rng = fastrand::Rng::with_seed(0x9e37_79b9_7f4a_7c15);
        for _ in 0..5_000 {
            let len = rng.usize(..200);
            let odds = rng.u8(..64);
            let v: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.u8(..64) < odds {
                        rng.u8(..)
                    } else {
                        rng.u8(b' '..=b'~')
                    }
                })
                .collect();
            check_push_value(&v);
        }
    }

    #[test]
    fn date_max_holds_for_any_timestamp() {
        for (unix, offset_minutes) in [
            (i64::MIN / 2, i16::MIN),
            (i64::MIN + 4_000_000, i16::MAX),
            (i64::MAX - 4_000_000, i16::MIN),
            (-62_167_219_200 - 1, -1), // 1 second before year 0
            (253_402_300_800, 0),      // year 10000
        ] {
            let mut out = Vec::new();
            Timestamp {
                unix,
                offset_minutes,
            }
            .write_rfc5322(&mut out);
            assert!(out.len() <= DATE_MAX, "{}", String::from_utf8_lossy(&out));
        }
    }

    #[test]
    fn the_buffer_never_grows() {
        // Every field there, every octet escaped, header lines stuffed, the widest dates.
        let ugly: Box<[u8]> = (0u8..0x20).collect::<Vec<u8>>().into();
        let far = Timestamp {
            unix: i64::MIN / 2,
            offset_minutes: i16::MIN,
        };
        let r = Recipient {
            original: Some(ugly.clone()),
            final_rcpt: ugly.clone(),
            action: Action::Transferred,
            status: ugly.clone(),
            remote_mta: Some(ugly.clone()),
            diagnostic: Some(ugly.clone()),
            last_attempt: Some(far),
            will_retry_until: Some(far),
            at: 0,
        };
        let mut m = msg(vec![r.clone(), r]);
        m.envid = ugly.clone();
        m.arrival = far;
        m.headers = vec![b".\x00\x01"[..].into(), ugly];
        let hub = "\u{1}\u{2}\u{3}";
        let wire = render(&m, hub);
        assert!(wire.len() <= capacity_bound(&m, hub));
        // A plain answer needs no escape: the slack is the two spare octets counted for each
        // value octet and the dates' room for wide years, well under the answer itself.
        let m = msg(vec![rcpt("user1@example1.com", Action::Delivered, "2.5.0")]);
        let wire = render(&m, "example2.com");
        assert!(capacity_bound(&m, "example2.com") < 2 * wire.len());
    }
}
