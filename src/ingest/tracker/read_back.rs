//! Reads a rendered answer back into the message it was rendered from, so that a message's
//! index record need not carry a second copy of the message for the tracker (see
//! [`super::stored`]): the answer already says nearly everything the tracker knows.
//!
//! Only what [`crate::index::render`] writes is read, and not every message survives the trip: a
//! value with octets the renderer escaped or trimmed, an address whose type is not the one this
//! module assumes, an answer with extra header lines. So the caller renders, reads back, and
//! keeps the answer as the message only when the two are equal (see [`round_trips`]); what
//! the answer does not show (each recipient's event time, the MTRK timeout, the time of the
//! last event, the ORCPTs the SMTP gate declared) travels beside it in [`Extras`].

use crate::index::message::{Action, DeclaredOrcpt, Message, Recipient};
use crate::index::render::{
    ACTION, ARRIVAL_DATE, DIAGNOSTIC_CODE_HEAD, FINAL_RECIPIENT_HEAD, LAST_ATTEMPT_DATE,
    ORIGINAL_RECIPIENT_HEAD, REMOTE_MTA_HEAD, REPORTING_MTA_HEAD, STATUS, WILL_RETRY_UNTIL,
};
use crate::protocol::date::{month_number, Timestamp};
use crate::protocol::secret::Hash;

/// What a message holds that its answer does not show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extras {
    pub timeout: Option<u32>,
    pub last_event: i64,
    /// Each recipient's `at`, in the order of the answer.
    pub recipient_times: Vec<i64>,
    /// The declared ORCPTs, in the message's order.
    pub orcpts: Vec<CarriedOrcpt>,
}

/// How [`Extras`] carry one ORCPT the SMTP gate declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CarriedOrcpt {
    /// Written out.
    Whole(DeclaredOrcpt),
    /// As the recipient at this position of the answer shows it: its final address is the
    /// RCPT TO address and its original the ORCPT. The usual case (no alias in between), which
    /// costs the record an octet or two rather than both values again.
    Recipient(usize),
}

#[cfg(test)]
impl Extras {
    /// The extras of `m`.
    pub fn of(m: &Message) -> Extras {
        Extras {
            timeout: m.timeout,
            last_event: m.last_event,
            recipient_times: m.recipients.iter().map(|r| r.at).collect(),
            orcpts: m.orcpts.iter().cloned().map(CarriedOrcpt::Whole).collect(),
        }
    }
}

/// The message of `body`, an answer without its usual frame, which begins with the value of
/// its first field, the envid (what [`super::Entry::body`] holds for a framed answer), for
/// `envid` and `hash` (which the record's header holds). `shared_head` is the record's
/// [`super::Entry::shared_head`]: when not empty, the body holds the envid and then the rest
/// after that head. None when the body is not one the renderer wrote for `envid`, or the
/// extras do not fit it.
pub fn read_back(
    body: &[u8],
    shared_head: &[u8],
    envid: &[u8],
    hash: Hash,
    extras: &Extras,
) -> Option<Message> {
    let mut m = Message {
        envid: envid.into(),
        hash,
        arrival: Timestamp {
            unix: 0,
            offset_minutes: 0,
        },
        timeout: extras.timeout,
        headers: Vec::new(),
        recipients: Vec::new(),
        last_event: extras.last_event,
        lookup: Default::default(),
        orcpts: Default::default(),
    };
    let mut times = extras.recipient_times.iter();
    m.arrival = parse(body, shared_head, envid, |r| {
        m.update_recipient(r.to_owned(*times.next()?));
        Some(())
    })?;
    if times.next().is_some() {
        return None;
    }
    for carried in &extras.orcpts {
        let (rcpt, original) = match carried {
            CarriedOrcpt::Whole(d) => (d.rcpt.clone(), d.original.clone()),
            CarriedOrcpt::Recipient(i) => {
                let r = m.recipients.get(*i)?;
                (r.final_rcpt.clone(), r.original.clone()?)
            }
        };
        // A record this module's caller wrote holds each once, within the bounds.
        if m.orcpts.insert(rcpt, original) != Ok(true) {
            return None;
        }
    }
    Some(m)
}

/// True when `body` reads back as exactly `m` (given its [`Extras`]). Compares in place: it
/// runs for every message the ingest thread publishes.
pub fn round_trips(body: &[u8], m: &Message) -> bool {
    if !m.headers.is_empty() || m.recipients.iter().any(|r| r.at > m.last_event) {
        return false;
    }
    let mut recipients = m.recipients.iter();
    let arrival = parse(body, &[], &m.envid, |shown| {
        shown.is(recipients.next()?).then_some(())
    });
    arrival == Some(m.arrival) && recipients.next().is_none()
}

/// A value as the answer shows it.
#[derive(Clone, Copy)]
enum Shown<'a> {
    /// Stored as shown.
    Plain(&'a [u8]),
    /// `type; value` on the wire, stored as `type;value`.
    Typed(&'a [u8], &'a [u8]),
}

impl Shown<'_> {
    fn is(self, stored: &[u8]) -> bool {
        match self {
            Shown::Plain(v) => v == stored,
            Shown::Typed(t, v) => {
                stored.len() == t.len() + 1 + v.len()
                    && stored.starts_with(t)
                    && stored[t.len()] == b';'
                    && stored.ends_with(v)
            }
        }
    }

    fn to_box(self) -> Box<[u8]> {
        match self {
            Shown::Plain(v) => v.into(),
            Shown::Typed(t, v) => [t, b";", v].concat().into(),
        }
    }
}

/// One recipient's fields as the answer shows them.
struct ShownRecipient<'a> {
    original: Option<Shown<'a>>,
    final_rcpt: Shown<'a>,
    action: Action,
    status: &'a [u8],
    remote_mta: Option<Shown<'a>>,
    diagnostic: Option<Shown<'a>>,
    last_attempt: Option<Timestamp>,
    will_retry_until: Option<Timestamp>,
}

impl ShownRecipient<'_> {
    fn to_owned(&self, at: i64) -> Recipient {
        Recipient {
            original: self.original.map(Shown::to_box),
            final_rcpt: self.final_rcpt.to_box(),
            action: self.action,
            status: self.status.into(),
            remote_mta: self.remote_mta.map(Shown::to_box),
            diagnostic: self.diagnostic.map(Shown::to_box),
            last_attempt: self.last_attempt,
            will_retry_until: self.will_retry_until,
            at,
        }
    }

    fn is(&self, r: &Recipient) -> bool {
        let same = |shown: Option<Shown>, stored: &Option<Box<[u8]>>| match (shown, stored) {
            (None, None) => true,
            (Some(s), Some(v)) => s.is(v),
            _ => false,
        };
        self.final_rcpt.is(&r.final_rcpt)
            && self.action == r.action
            && *self.status == *r.status
            && self.last_attempt == r.last_attempt
            && self.will_retry_until == r.will_retry_until
            && same(self.original, &r.original)
            && same(self.remote_mta, &r.remote_mta)
            && same(self.diagnostic, &r.diagnostic)
    }
}

/// Walks `body` (see [`read_back`]), handing each recipient to `each`, which may stop the walk
/// with None. Returns the arrival date when the whole body is one the renderer wrote for
/// `envid` and `each` never stopped.
fn parse<'a>(
    body: &'a [u8],
    shared_head: &[u8],
    envid: &[u8],
    mut each: impl FnMut(ShownRecipient<'a>) -> Option<()>,
) -> Option<Timestamp> {
    let mut lines = Lines(body);
    if shared_head.is_empty() {
        if lines.next()? != envid {
            return None;
        }
        lines.next()?.strip_prefix(REPORTING_MTA_HEAD)?;
        lines = Lines(lines.0.strip_prefix(ARRIVAL_DATE)?);
    } else {
        // The shared head is the Reporting-MTA line and `Arrival-Date: ` (see
        // `crate::index::shared_head`): what follows the envid is the date.
        lines = Lines(body.strip_prefix(envid)?);
    }
    let arrival = parse_date(lines.next()?)?;
    let mut line = lines.next();
    while let Some(blank) = line {
        if !blank.is_empty() {
            return None;
        }
        let mut r = ShownRecipient {
            original: None,
            final_rcpt: Shown::Plain(b""),
            action: Action::Opaque,
            status: b"",
            remote_mta: None,
            diagnostic: None,
            last_attempt: None,
            will_retry_until: None,
        };
        let (mut has_final, mut has_action, mut has_status) = (false, false, false);
        line = lines.next();
        while let Some(field) = line.filter(|l| !l.is_empty()) {
            let (name, value) = split_field(field)?;
            match name {
                ORIGINAL_RECIPIENT_HEAD => r.original = Some(typed(value)?),
                FINAL_RECIPIENT_HEAD => {
                    r.final_rcpt = address(value)?;
                    has_final = true;
                }
                ACTION => {
                    r.action = Action::parse(value)?;
                    has_action = true;
                }
                STATUS => {
                    r.status = value;
                    has_status = true;
                }
                REMOTE_MTA_HEAD => r.remote_mta = Some(typed(value)?),
                DIAGNOSTIC_CODE_HEAD => r.diagnostic = Some(typed(value)?),
                LAST_ATTEMPT_DATE => r.last_attempt = Some(parse_date(value)?),
                WILL_RETRY_UNTIL => r.will_retry_until = Some(parse_date(value)?),
                _ => return None,
            }
            line = lines.next();
        }
        if !(has_final && has_action && has_status) {
            return None;
        }
        each(r)?;
    }
    lines.0.is_empty().then_some(arrival)
}

/// The CRLF-terminated lines of a body; what is left when one is not.
struct Lines<'a>(&'a [u8]);

impl<'a> Lines<'a> {
    fn next(&mut self) -> Option<&'a [u8]> {
        let end = memchr::memchr(b'\n', self.0)?;
        let line = self.0[..end].strip_suffix(b"\r")?;
        self.0 = &self.0[end + 1..];
        Some(line)
    }
}

/// `Name: value` as (`Name: `, `value`), the way the renderer's field heads are written.
fn split_field(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = memchr::memchr(b':', line)?;
    (line.get(colon + 1) == Some(&b' ')).then(|| line.split_at(colon + 2))
}

/// `type; value`, stored as `type;value` by the log parsers.
fn typed(value: &[u8]) -> Option<Shown<'_>> {
    let semi = memchr::memchr(b';', value)?;
    Some(Shown::Typed(
        &value[..semi],
        value[semi + 1..].strip_prefix(b" ")?,
    ))
}

/// A Final-Recipient: parsers store the bare address for the default `rfc822` type.
fn address(value: &[u8]) -> Option<Shown<'_>> {
    match value.strip_prefix(b"rfc822; ") {
        Some(bare) => Some(Shown::Plain(bare)),
        None => typed(value),
    }
}

/// The RFC 5322 date [`Timestamp::write_rfc5322`] writes: `Www, D Mmm YYYY HH:MM:SS +HHMM`,
/// and only in that form (no leading zero in the day, the weekday of the date).
fn parse_date(s: &[u8]) -> Option<Timestamp> {
    let (weekday, rest) = (s.get(..3)?, s.get(3..)?.strip_prefix(b", ")?);
    let mut parts = rest.split(|&c| c == b' ');
    let day = parts
        .next()
        .filter(|d| d.len() <= 2 && d.first() != Some(&b'0'))?;
    let month = parts.next()?;
    let month = month_number(month)?;
    let year = parts.next().filter(|y| y.len() == 4).and_then(number)?;
    let time = parts
        .next()
        .filter(|t| t.len() == 8 && t[2] == b':' && t[5] == b':')?;
    let offset = parts.next().filter(|o| o.len() == 5)?;
    if parts.next().is_some() {
        return None;
    }
    let hms = (
        number(&time[0..2])?,
        number(&time[3..5])?,
        number(&time[6..8])?,
    );
    let minutes = (number(&offset[1..3])? * 60 + number(&offset[3..5])?) as i16;
    let offset_minutes = match offset[0] {
        b'+' => minutes,
        b'-' => -minutes,
        _ => return None,
    };
    let t = Timestamp::from_civil(i64::from(year), month, number(day)?, hms, offset_minutes)?;
    (hms.2 < 60 && weekday == t.weekday()).then_some(t)
}

fn number(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 4 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0, |n, &d| n * 10 + u32::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::render::{render, FRAME_PREFIX, FRAME_SUFFIX};

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s.as_bytes()).unwrap()
    }

    fn b(s: &str) -> Box<[u8]> {
        s.as_bytes().into()
    }

    fn body(m: &Message) -> Vec<u8> {
        let wire = render(m, "hub.example");
        wire.strip_prefix(FRAME_PREFIX)
            .and_then(|w| w.strip_suffix(FRAME_SUFFIX))
            .expect("framed")
            .to_vec()
    }

    fn rcpt(to: &str, action: Action, at: &str) -> Recipient {
        Recipient {
            original: None,
            final_rcpt: b(to),
            action,
            status: b(if action == Action::Delayed {
                "4.4.1"
            } else {
                "2.0.0"
            }),
            remote_mta: Some(b("dns;mx.example.org")),
            diagnostic: None,
            last_attempt: Some(ts(at)),
            will_retry_until: None,
            at: ts(at).unix + 3,
        }
    }

    fn message(recipients: Vec<Recipient>) -> Message {
        let mut m = Message {
            envid: b("gen-1@client.example"),
            hash: [7; 20],
            arrival: ts("2026-11-24T00:00:00-05:00"),
            timeout: Some(86_400),
            headers: Vec::new(),
            recipients: Vec::new(),
            last_event: ts("2026-11-24T06:00:00Z").unix,
            lookup: Default::default(),
            orcpts: Default::default(),
        };
        recipients.into_iter().for_each(|r| {
            m.update_recipient(r);
        });
        m
    }

    #[test]
    fn what_the_parsers_store_reads_back_exactly() {
        let mut a = rcpt("user@dest.example", Action::Relayed, "2026-11-24T00:00:02Z");
        a.original = Some(b("rfc822;User@Dest.example"));
        let mut d = rcpt("x@y.example", Action::Delayed, "1999-12-31T23:59:59+05:30");
        d.diagnostic = Some(b("smtp;451 4.4.1 try later"));
        d.will_retry_until = Some(ts("2000-01-05T23:59:59+05:30"));
        let mut f = rcpt("z@y.example", Action::Failed, "2026-02-28T12:00:00-09:30");
        f.remote_mta = None;
        f.final_rcpt = b("x400;/c=us/");
        let m = message(vec![a, d, f]);
        let body = body(&m);
        assert_eq!(
            read_back(&body, &[], &m.envid, m.hash, &Extras::of(&m)).as_ref(),
            Some(&m)
        );
        assert!(round_trips(&body, &m));
    }

    /// `round_trips` compares in place; it must agree with reading back and comparing.
    fn agrees_with_reading_back(m: &Message) {
        let body = body(m);
        let back = read_back(&body, &[], &m.envid, m.hash, &Extras::of(m));
        assert_eq!(round_trips(&body, m), back.as_ref() == Some(m), "{m:?}");
    }

    #[test]
    fn messages_the_renderer_changes_do_not_round_trip() {
        let escaped = rcpt(
            "bad\u{1}@y.example",
            Action::Delivered,
            "2026-11-24T00:00:02Z",
        );
        let spaced = Recipient {
            remote_mta: Some(b("dns; mx.example.org")),
            ..rcpt("a@y.example", Action::Delivered, "2026-11-24T00:00:02Z")
        };
        let untyped = Recipient {
            diagnostic: Some(b("250 ok")),
            ..rcpt("b@y.example", Action::Delivered, "2026-11-24T00:00:02Z")
        };
        let typed_final = rcpt(
            "rfc822;c@y.example",
            Action::Delivered,
            "2026-11-24T00:00:02Z",
        );
        for r in [escaped, spaced, untyped, typed_final] {
            let m = message(vec![r.clone()]);
            assert!(!round_trips(&body(&m), &m), "{r:?}");
            agrees_with_reading_back(&m);
            let ok = rcpt("ok@y.example", Action::Delivered, "2026-11-24T00:00:02Z");
            agrees_with_reading_back(&message(vec![ok.clone(), r.clone()]));
            agrees_with_reading_back(&message(vec![r, ok]));
        }
        let many: Vec<_> = (0..40)
            .map(|i| {
                rcpt(
                    &format!("u{i}@y.example"),
                    Action::Relayed,
                    "2026-11-24T00:00:02Z",
                )
            })
            .collect();
        let m = message(many);
        assert!(round_trips(&body(&m), &m));
        agrees_with_reading_back(&m);
        let mut late = m.clone();
        late.last_event = 0;
        assert!(
            !round_trips(&body(&late), &late),
            "a recipient newer than last_event"
        );
        agrees_with_reading_back(&late);
    }

    #[test]
    fn dates_read_back_exactly_as_written_and_only_so() {
        let mut unix = -2_000_000_000i64;
        while unix < 4_000_000_000 {
            for offset_minutes in [0, -300, 330, 765, -1439, 1439] {
                let t = Timestamp {
                    unix,
                    offset_minutes,
                };
                let mut written = Vec::new();
                t.write_rfc5322(&mut written);
                assert_eq!(
                    parse_date(&written),
                    Some(t),
                    "{}",
                    String::from_utf8_lossy(&written)
                );
            }
            unix += 7_919_993;
        }
        for bad in [
            "Tue, 24 Nov 2026 00:00:02 +0000 ",
            "Wed, 24 Nov 2026 00:00:02 +0000",
            "Tue, 024 Nov 2026 00:00:02 +0000",
            "Tue,  24 Nov 2026 00:00:02 +0000",
            "Tue, 24 Nov 2026 00-00-02 +0000",
            "Tue, 24 Nov 2026 00:00:60 +0000",
            "Tue, 24 nov 2026 00:00:02 +0000",
            "Tue, 24 Nov 2026 00:00:02 0000",
            "Tue, 31 Nov 2026 00:00:02 +0000",
        ] {
            assert_eq!(parse_date(bad.as_bytes()), None, "{bad}");
        }
        assert!(parse_date(b"Tue, 24 Nov 2026 00:00:02 +0000").is_some());
    }

    #[test]
    fn extras_must_fit_and_damaged_bodies_are_refused() {
        let m = message(vec![rcpt(
            "a@y.example",
            Action::Delivered,
            "2026-11-24T00:00:02Z",
        )]);
        let body = body(&m);
        let mut short = Extras::of(&m);
        short.recipient_times.clear();
        assert_eq!(read_back(&body, &[], &m.envid, m.hash, &short), None);
        let mut long = Extras::of(&m);
        long.recipient_times.push(0);
        assert_eq!(read_back(&body, &[], &m.envid, m.hash, &long), None);
        for cut in 0..body.len() {
            let back = read_back(&body[..cut], &[], &m.envid, m.hash, &Extras::of(&m));
            assert_ne!(back.as_ref(), Some(&m), "{cut}");
        }
        let mut bad = body.clone();
        let at = bad.windows(4).position(|w| w == b"2026").unwrap();
        bad[at] = b'x';
        assert_eq!(
            read_back(&bad, &[], &m.envid, m.hash, &Extras::of(&m)),
            None
        );
    }
}
