//! RFC 3886 rendering: a [`Message`] becomes the complete TRACK answer as it goes on the wire —
//! status line, `multipart/related` of `message/tracking-status`, CRLF line ends, dot-stuffed,
//! `.` terminated — so that answering a query is a lookup and a write.
//!
//! Every line of a body part starts with a field name this module writes, or is empty, so no
//! line can start with the boundary delimiter `--%%%%` (RFC 2046 section 5.1.1); values are
//! sanitised so that no octet outside printable ASCII (and so no line break) reaches the wire.
//! For the same reason the only line that can begin with `.` is an operator's extra header
//! line: it is dot-stuffed as it is written, and everything else goes out as written, CRLF and
//! all, with no second pass over the bytes.

use std::sync::Arc;

use super::record::{Message, Recipient};
use crate::protocol::dotstuff::TERMINATOR;
use crate::protocol::xtext;

/// The multipart boundary. Safe for every body this module writes (see the module doc).
pub const BOUNDARY: &str = "%%%%";

const STATUS_LINE: &[u8] = b"+OK+ Tracking information follows\r\n";

/// How every answer without extra header lines begins, up to its first field: the index keeps
/// it once rather than in every record (see [`crate::index::Answer`]).
pub const FRAME_PREFIX: &[u8] = b"+OK+ Tracking information follows\r\n\
Content-Type: multipart/related; boundary=%%%%; type=\"message/tracking-status\"\r\n\
\r\n--%%%%\r\nContent-Type: message/tracking-status\r\n\r\n";

/// How every answer ends.
pub const FRAME_SUFFIX: &[u8] = b"\r\n--%%%%--\r\n.\r\n";

/// Appends `value` with every octet outside printable ASCII and space written as xtext `+XX`,
/// so that a value from a log line can neither break a line nor leave 7-bit.
fn push_value(out: &mut Vec<u8>, value: &[u8]) {
    for &c in value {
        if (b' '..=b'~').contains(&c) {
            out.push(c);
        } else {
            xtext::encode_append(&[c], out);
        }
    }
}

/// `type;value` (as logged) → `type; value` (as RFC 3464 examples write it).
fn push_typed(out: &mut Vec<u8>, name: &str, typed: &[u8], default_type: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    match typed.iter().position(|&c| c == b';') {
        Some(i) => {
            push_value(out, typed[..i].trim_ascii());
            out.extend_from_slice(b"; ");
            push_value(out, typed[i + 1..].trim_ascii());
        }
        None => {
            out.extend_from_slice(default_type.as_bytes());
            out.extend_from_slice(b"; ");
            push_value(out, typed.trim_ascii());
        }
    }
    out.extend_from_slice(b"\r\n");
}

fn push_field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    push_value(out, value);
    out.extend_from_slice(b"\r\n");
}

fn push_date(out: &mut Vec<u8>, name: &str, t: &super::date::Timestamp) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    t.write_rfc5322(out);
    out.extend_from_slice(b"\r\n");
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
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"\r\n--");
    body.extend_from_slice(BOUNDARY.as_bytes());
    body.extend_from_slice(b"\r\nContent-Type: message/tracking-status\r\n\r\n");
}

fn push_recipient(body: &mut Vec<u8>, r: &Recipient) {
    body.extend_from_slice(b"\r\n");
    if let Some(orcpt) = &r.original {
        push_typed(body, "Original-Recipient", orcpt, "rfc822");
    }
    push_typed(body, "Final-Recipient", &r.final_rcpt, "rfc822");
    push_field(body, "Action", r.action.name().as_bytes());
    push_field(body, "Status", &r.status);
    if let Some(mta) = &r.remote_mta {
        push_typed(body, "Remote-MTA", mta, "dns");
    }
    if let Some(diag) = &r.diagnostic {
        push_typed(body, "Diagnostic-Code", diag, "smtp");
    }
    if let Some(t) = &r.last_attempt {
        push_date(body, "Last-Attempt-Date", t);
    }
    if let Some(t) = &r.will_retry_until {
        push_date(body, "Will-Retry-Until", t);
    }
}

/// Renders the complete TRACK answer for `msg`. `reporting_mta` is this hub's name.
pub fn render(msg: &Message, reporting_mta: &str) -> Vec<u8> {
    let per_recipient: usize = msg
        .recipients
        .iter()
        .map(|r| {
            200 + r.final_rcpt.len()
                + r.original.as_ref().map_or(0, |o| o.len())
                + r.remote_mta.as_ref().map_or(0, |m| m.len())
                + r.diagnostic.as_ref().map_or(0, |d| d.len())
        })
        .sum();
    let mut out =
        Vec::with_capacity(300 + msg.envid.len() * 3 + reporting_mta.len() + per_recipient);
    out.extend_from_slice(STATUS_LINE);
    push_outer_header(&mut out, &msg.headers);
    out.extend_from_slice(b"Original-Envelope-Id: ");
    xtext::encode_append(&msg.envid, &mut out);
    out.extend_from_slice(b"\r\n");
    push_typed(&mut out, "Reporting-MTA", reporting_mta.as_bytes(), "dns");
    push_date(&mut out, "Arrival-Date", &msg.arrival);
    for r in &msg.recipients {
        push_recipient(&mut out, r);
    }
    out.extend_from_slice(b"\r\n--");
    out.extend_from_slice(BOUNDARY.as_bytes());
    out.extend_from_slice(b"--\r\n");
    out.extend_from_slice(TERMINATOR);
    out
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
        push_typed(&mut after, "Reporting-MTA", reporting_mta.as_bytes(), "dns");
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
    use crate::index::date::Timestamp;
    use crate::index::record::Action;

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

    #[test]
    fn rfc3887_example_6_delivered() {
        let m = msg(vec![rcpt("user1@example1.com", Action::Delivered, "2.5.0")]);
        let wire = render(&m, "example2.com");
        assert_eq!(
            std::str::from_utf8(&wire).unwrap(),
            "+OK+ Tracking information follows\r\n\
             Content-Type: multipart/related; boundary=%%%%; type=\"message/tracking-status\"\r\n\
             \r\n\
             --%%%%\r\n\
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
             --%%%%--\r\n\
             .\r\n"
        );
    }

    #[test]
    fn hostile_values_cannot_break_lines_or_fake_the_boundary() {
        let mut r = rcpt("a@b", Action::Failed, "5.1.1");
        r.final_rcpt = b"x@y\r\n--%%%%--\r\n.\r\nEvil: 1"[..].into();
        r.diagnostic = Some(b"smtp;550 \x00\xff"[..].into());
        let wire = render(&msg(vec![r]), "example2.com");
        let text = std::str::from_utf8(&wire).unwrap();
        assert!(text.contains("Final-Recipient: rfc822; x@y+0D+0A--%%%%--+0D+0A.+0D+0AEvil: 1\r\n"));
        assert!(text.contains("Diagnostic-Code: smtp; 550 +00+FF\r\n"));
        assert_eq!(text.matches("\r\n--%%%%").count(), 2);
        assert!(text.ends_with("\r\n--%%%%--\r\n.\r\n"));
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
            .contains("type=\"message/tracking-status\"\r\n..Dot-Stuffed-Header: as an example\r\n\r\n--%%%%\r\n"));
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
             Content-Type: multipart/related; boundary=%%%%; type=\"message/tracking-status\"\r\n\
             \r\n\
             --%%%%\r\n\
             Content-Type: message/tracking-status\r\n\
             \r\n\
             Original-Envelope-Id: x+2By@example.com\r\n\
             Reporting-MTA: dns; example2.com\r\n\
             \r\n\
             Final-Recipient: rfc822; unknown\r\n\
             Action: opaque\r\n\
             Status: 5.0.0\r\n\
             \r\n\
             --%%%%--\r\n\
             .\r\n"
        );
    }
}
