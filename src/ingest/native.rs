//! The native `mtqp:` line format (docs/ARCHITECTURE.md, "The native log format"): `key=value`
//! pairs with xtext values. Lines are parsed into [`Event`]s; nothing is applied here.
//!
//! This module also owns where a native line may come from (docs/ARCHITECTURE.md, "Trust
//! boundary"): a `native:` file, whose every line is the enabling component's; or, in an MTA's
//! log, a syslog line whose program tag is on the allow-list ([`NativeTags`]) and whose text
//! begins with `mtqp:`. A native line is never looked for inside another line: an MTA copies
//! addresses, HELO names and remote replies into its lines, and those may spell anything.

use std::sync::Arc;

use super::event::{Accept, Event, LineParser, MessageRef, Orcpt, Outcome, RcptUpdate};
use super::hosts::check_host_name;
use super::queue_id::QueueId;
use super::syslog::{parse_prefix, Prefix, SyslogClock};
use crate::index::message::{Action, Recipient};
use crate::protocol::date::Timestamp;
use crate::protocol::secret::{decode_hash, Hash};
use crate::protocol::{xtext, MAX_ENVID, MAX_LINE};

/// The token a native line starts at.
pub const MARKER: &[u8] = b"mtqp:";

/// Most extra header lines one message may carry.
const MAX_HEADERS: usize = 8;
/// Longest decoded value of any other key.
const MAX_VALUE: usize = MAX_LINE;

/// Why a native line was rejected. The text is what the ingest log shows (rate-limited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeError {
    NotKeyValue,
    DuplicateKey,
    BadXtext,
    UnknownEvent,
    MissingEvent,
    MissingTime,
    BadTime,
    MissingEnvid,
    BadEnvid,
    MissingMtrk,
    BadMtrk,
    BadTimeout,
    BadHost,
    BadHeader,
    TooManyHeaders,
    MissingMessageRef,
    MissingRcpt,
    MissingAction,
    BadAction,
    MissingStatus,
    BadStatus,
    BadRetryUntil,
    BadAddress,
    MissingRecipientEnvid,
    MissingRecipientMtrk,
    MissingRecipientRcpt,
    BadOrcpt,
}

impl NativeError {
    /// A short reason, stable for counters and logs.
    pub fn reason(self) -> &'static str {
        use NativeError::*;
        match self {
            NotKeyValue => "token is not key=value",
            DuplicateKey => "key given twice",
            BadXtext => "value is not valid xtext",
            UnknownEvent => "unknown event",
            MissingEvent => "no event=",
            MissingTime => "no time=",
            BadTime => "time= is not RFC 3339",
            MissingEnvid => "accept without envid=",
            BadEnvid => "envid= is not 1 to 100 octets of xtext",
            MissingMtrk => "accept without mtrk=",
            BadMtrk => "mtrk= is not a base64 SHA-1 hash",
            BadTimeout => "timeout= is not 1 to 9 digits",
            BadHost => "host= is not a host name",
            BadHeader => "header= is not a valid header line",
            TooManyHeaders => "more than 8 header= keys",
            MissingMessageRef => "rcpt without envid=, queue= or msgid=",
            MissingRcpt => "rcpt without rcpt=",
            MissingAction => "rcpt without action=",
            BadAction => "action= is not an RFC 3886 action",
            MissingStatus => "rcpt without status=",
            BadStatus => "status= is not class.subject.detail",
            BadRetryUntil => "retry-until= is not RFC 3339",
            BadAddress => "address value empty or too long",
            MissingRecipientEnvid => "recipient without envid=",
            MissingRecipientMtrk => "recipient without mtrk=",
            MissingRecipientRcpt => "recipient without rcpt=",
            BadOrcpt => "orcpt= is not addr-type;address",
        }
    }
}

/// What a native line means: an event; nothing for tracking (a well-formed line that changes
/// nothing, counted as ignored); or why it was refused.
pub type Parsed = Result<Option<Event>, NativeError>;

/// The raw fields of one line, before meaning is given to them.
#[derive(Default)]
struct Fields<'a> {
    event: Option<&'a [u8]>,
    time: Option<&'a [u8]>,
    envid: Option<&'a [u8]>,
    mtrk: Option<&'a [u8]>,
    timeout: Option<&'a [u8]>,
    queue: Option<&'a [u8]>,
    host: Option<&'a [u8]>,
    msgid: Option<&'a [u8]>,
    orcpt: Option<&'a [u8]>,
    rcpt: Option<&'a [u8]>,
    action: Option<&'a [u8]>,
    status: Option<&'a [u8]>,
    remote_mta: Option<&'a [u8]>,
    diag: Option<&'a [u8]>,
    retry_until: Option<&'a [u8]>,
    headers: Vec<&'a [u8]>,
}

fn set<'a>(slot: &mut Option<&'a [u8]>, v: &'a [u8]) -> Result<(), NativeError> {
    if slot.replace(v).is_some() {
        return Err(NativeError::DuplicateKey);
    }
    Ok(())
}

fn split_fields(text: &[u8]) -> Result<Fields<'_>, NativeError> {
    let mut f = Fields::default();
    for token in text
        .split(|&c| c == b' ' || c == b'\t')
        .filter(|t| !t.is_empty())
    {
        let eq = memchr::memchr(b'=', token).ok_or(NativeError::NotKeyValue)?;
        let (key, value) = (&token[..eq], &token[eq + 1..]);
        match key {
            b"event" => set(&mut f.event, value)?,
            b"time" => set(&mut f.time, value)?,
            b"envid" => set(&mut f.envid, value)?,
            b"mtrk" => set(&mut f.mtrk, value)?,
            b"timeout" => set(&mut f.timeout, value)?,
            b"queue" => set(&mut f.queue, value)?,
            b"host" => set(&mut f.host, value)?,
            b"msgid" => set(&mut f.msgid, value)?,
            b"orcpt" => set(&mut f.orcpt, value)?,
            b"rcpt" => set(&mut f.rcpt, value)?,
            b"action" => set(&mut f.action, value)?,
            b"status" => set(&mut f.status, value)?,
            b"remote-mta" => set(&mut f.remote_mta, value)?,
            b"diag" => set(&mut f.diag, value)?,
            b"retry-until" => set(&mut f.retry_until, value)?,
            b"header" if f.headers.len() == MAX_HEADERS => return Err(NativeError::TooManyHeaders),
            b"header" => f.headers.push(value),
            // Keys from newer writers (and `from=`, which RFC 3886 does not report) are
            // ignored, so that the format can grow without breaking older readers.
            _ => {}
        }
    }
    Ok(f)
}

fn decode(v: &[u8]) -> Result<Box<[u8]>, NativeError> {
    let mut out = Vec::new();
    xtext::decode_append(v, &mut out, MAX_VALUE).map_err(|_| NativeError::BadXtext)?;
    Ok(out.into())
}

fn decode_opt(v: Option<&[u8]>) -> Result<Option<Box<[u8]>>, NativeError> {
    v.map(decode).transpose()
}

fn address(v: &[u8]) -> Result<Box<[u8]>, NativeError> {
    let a = decode(v)?;
    if a.is_empty() || a.len() > 512 {
        return Err(NativeError::BadAddress);
    }
    Ok(a)
}

/// An ORCPT value, `addr-type;address` (RFC 3461: the address part is xtext, decoded with the
/// rest), within the bounds of an address: a type of printable octets and an address, both
/// non-empty.
fn orcpt(v: &[u8]) -> Result<Box<[u8]>, NativeError> {
    let o = address(v)?;
    let semi = memchr::memchr(b';', &o).ok_or(NativeError::BadOrcpt)?;
    let (kind, addr) = (&o[..semi], &o[semi + 1..]);
    if kind.is_empty() || !kind.iter().all(|c| c.is_ascii_graphic()) || addr.is_empty() {
        return Err(NativeError::BadOrcpt);
    }
    Ok(o)
}

fn envid(v: &[u8]) -> Result<Box<[u8]>, NativeError> {
    if v.is_empty() || v.len() > MAX_ENVID {
        return Err(NativeError::BadEnvid);
    }
    decode(v).map_err(|_| NativeError::BadEnvid)
}

/// `class.subject.detail` (RFC 3463: class 2, 4 or 5; 1–3 digits each) and an optional comment.
fn is_status(s: &[u8]) -> bool {
    let code_end = s.iter().position(|&c| c == b' ').unwrap_or(s.len());
    let mut parts = s[..code_end].split(|&c| c == b'.');
    let class_ok = matches!(parts.next(), Some([b'2' | b'4' | b'5']));
    let rest_ok = (0..2).all(|_| {
        matches!(parts.next(), Some(p) if (1..=3).contains(&p.len()) && p.iter().all(u8::is_ascii_digit))
    });
    class_ok && rest_ok && parts.next().is_none()
}

/// A header line for the outer MIME header: `Name: value`, the name a letter then letters,
/// digits and `-` (a name beginning with `-` or `.` could pass for a MIME delimiter or a
/// dot-stuffed line), no line breaks, not one of the Content- fields mtqpd writes itself.
fn is_header_line(h: &[u8]) -> bool {
    let Some(colon) = memchr::memchr(b':', h) else {
        return false;
    };
    let (name, value) = (&h[..colon], &h[colon + 1..]);
    name.first().is_some_and(u8::is_ascii_alphabetic)
        && name.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
        && !name.to_ascii_lowercase().starts_with(b"content-")
        && !name.eq_ignore_ascii_case(b"mime-version")
        && value
            .iter()
            .all(|&c| c == b'\t' || (b' '..=b'~').contains(&c))
        && h.len() <= MAX_LINE
}

fn time(v: Option<&[u8]>) -> Result<Timestamp, NativeError> {
    Timestamp::parse_rfc3339(v.ok_or(NativeError::MissingTime)?).ok_or(NativeError::BadTime)
}

/// The hash B, base64 in xtext like every other value (a writer may encode `+` as `+2B`).
fn mtrk(v: &[u8]) -> Result<Hash, NativeError> {
    let raw = decode(v).map_err(|_| NativeError::BadMtrk)?;
    decode_hash(&raw).ok_or(NativeError::BadMtrk)
}

/// `host=`: the host whose MTA gave `queue=` (the SMTP gate's `--mta-host`), a host name.
fn host(v: Option<&[u8]>) -> Result<Option<Box<[u8]>>, NativeError> {
    let Some(v) = v else { return Ok(None) };
    let name = std::str::from_utf8(v).map_err(|_| NativeError::BadHost)?;
    check_host_name(name).map_err(|_| NativeError::BadHost)?;
    Ok(Some(v.into()))
}

fn accept(f: Fields<'_>) -> Parsed {
    let time = time(f.time)?;
    let envid = envid(f.envid.ok_or(NativeError::MissingEnvid)?)?;
    let hash = mtrk(f.mtrk.ok_or(NativeError::MissingMtrk)?)?;
    let timeout = match f.timeout {
        None => None,
        Some(t) if (1..=9).contains(&t.len()) && t.iter().all(u8::is_ascii_digit) => Some(
            t.iter()
                .fold(0u32, |acc, &c| acc * 10 + u32::from(c - b'0')),
        ),
        Some(_) => return Err(NativeError::BadTimeout),
    };
    let mut headers = Vec::with_capacity(f.headers.len());
    for h in f.headers {
        let h = decode(h).map_err(|_| NativeError::BadHeader)?;
        if !is_header_line(&h) {
            return Err(NativeError::BadHeader);
        }
        headers.push(h);
    }
    Ok(Some(Event::Accept(Accept {
        time,
        envid,
        hash,
        timeout,
        queue: decode_opt(f.queue)?.map(QueueId::from),
        host: host(f.host)?,
        message_id: decode_opt(f.msgid)?,
        headers,
    })))
}

fn rcpt(f: Fields<'_>) -> Parsed {
    let at = time(f.time)?;
    let message = if let Some(q) = f.queue {
        MessageRef::Queue(decode(q)?.into())
    } else if let Some(m) = f.msgid {
        MessageRef::MessageId(decode(m)?)
    } else if let Some(e) = f.envid {
        MessageRef::Envid(envid(e)?)
    } else {
        return Err(NativeError::MissingMessageRef);
    };
    let action =
        Action::parse(f.action.ok_or(NativeError::MissingAction)?).ok_or(NativeError::BadAction)?;
    let status = decode(f.status.ok_or(NativeError::MissingStatus)?)?;
    if !is_status(&status) {
        return Err(NativeError::BadStatus);
    }
    let remote_mta = decode_opt(f.remote_mta)?;
    let will_retry_until = f
        .retry_until
        .map(|v| Timestamp::parse_rfc3339(v).ok_or(NativeError::BadRetryUntil))
        .transpose()?;
    // RFC 3464 Last-Attempt-Date: an attempt to hand the message on, or one that did not
    // succeed; a plain local delivery reports none (as RFC 3887 example #6 shows).
    let attempted = remote_mta.is_some() || matches!(action, Action::Delayed | Action::Failed);
    let recipient = Recipient {
        original: f.orcpt.map(address).transpose()?,
        final_rcpt: address(f.rcpt.ok_or(NativeError::MissingRcpt)?)?,
        action,
        status,
        remote_mta,
        diagnostic: decode_opt(f.diag)?,
        last_attempt: attempted.then_some(at),
        will_retry_until,
        at: at.unix,
    };
    let hash = f.mtrk.map(mtrk).transpose()?;
    Ok(Some(Event::Rcpt(RcptUpdate {
        message,
        host: host(f.host)?,
        hash,
        keeps_original: recipient.original.is_some(),
        provisional: false,
        recipient,
    })))
}

/// The SMTP gate's `event=recipient`: the ORCPT a client gave with one RCPT TO of the message
/// of (`envid`, `mtrk`). A line without `orcpt=` (the client gave none) is checked like any
/// other and changes nothing. `queue=` is checked as xtext and not used: the message is named
/// by its identity, and the accept line already tied its queue id.
fn recipient(f: Fields<'_>) -> Parsed {
    let time = time(f.time)?;
    let envid = envid(f.envid.ok_or(NativeError::MissingRecipientEnvid)?)?;
    let hash = mtrk(f.mtrk.ok_or(NativeError::MissingRecipientMtrk)?)?;
    let rcpt = address(f.rcpt.ok_or(NativeError::MissingRecipientRcpt)?)?;
    decode_opt(f.queue)?;
    let Some(original) = f.orcpt.map(orcpt).transpose()? else {
        return Ok(None);
    };
    Ok(Some(Event::Orcpt(Orcpt {
        envid,
        hash,
        rcpt,
        original,
        time,
    })))
}

/// The program tags under which a syslog line of an MTA's log may be a native line
/// (`--native-tag`): the enabling component's own, which no MTA logs under.
#[derive(Debug, Clone)]
pub struct NativeTags(Arc<[Box<[u8]>]>);

impl NativeTags {
    /// The default allow-list.
    pub const DEFAULT: [&'static str; 2] = ["mtqp", "mtqp-milter"];

    /// An allow-list of these tags (compared whole, without `[pid]`).
    pub fn new<S: AsRef<str>>(tags: &[S]) -> NativeTags {
        NativeTags(tags.iter().map(|t| t.as_ref().as_bytes().into()).collect())
    }

    /// True when `program` may write native lines.
    pub fn allows(&self, program: &[u8]) -> bool {
        self.0.iter().any(|t| **t == *program)
    }
}

impl Default for NativeTags {
    fn default() -> NativeTags {
        NativeTags::new(&NativeTags::DEFAULT)
    }
}

/// Parses `text` when it is a native line: when it begins with `mtqp:`. None otherwise.
pub fn parse_text(text: &[u8]) -> Option<Parsed> {
    let fields = text.strip_prefix(MARKER)?;
    let fields = fields.strip_suffix(b"\r").unwrap_or(fields);
    Some(split_fields(fields).and_then(|f| match f.event {
        Some(b"accept") => accept(f),
        Some(b"rcpt") => rcpt(f),
        Some(b"recipient") => recipient(f),
        Some(_) => Err(NativeError::UnknownEvent),
        None => Err(NativeError::MissingEvent),
    }))
}

/// The native line of a syslog line in an MTA's log: only under an allowed tag.
pub fn from_syslog(prefix: &Prefix<'_>, tags: &NativeTags) -> Option<Parsed> {
    if tags.allows(prefix.program) {
        parse_text(prefix.text)
    } else {
        None
    }
}

/// Emits a parsed native line and says what it was.
pub fn outcome(parsed: Parsed, emit: &mut dyn FnMut(Event)) -> Outcome {
    match parsed {
        Ok(Some(event)) => {
            emit(event);
            Outcome::Parsed
        }
        Ok(None) => Outcome::Ignored,
        Err(e) => Outcome::Rejected(e.reason()),
    }
}

/// The parser of a `--log native:PATH` file, which only the enabling component writes: a
/// native line, bare or behind a syslog prefix of any tag; any other line is noise.
pub struct NativeParser {
    clock: SyslogClock,
}

impl NativeParser {
    /// A parser whose syslog prefixes are read with `clock` (their time is not used: a native
    /// line carries its own).
    pub fn new(clock: SyslogClock) -> NativeParser {
        NativeParser { clock }
    }
}

impl LineParser for NativeParser {
    fn parse(&mut self, line: &[u8], emit: &mut dyn FnMut(Event)) -> Outcome {
        let parsed = match parse_text(line) {
            Some(parsed) => Some(parsed),
            None => parse_prefix(line, &mut self.clock).and_then(|p| parse_text(p.text)),
        };
        match parsed {
            Some(parsed) => outcome(parsed, emit),
            None => Outcome::Ignored,
        }
    }

    fn parse_prefixed(
        &mut self,
        prefix: &Prefix<'_>,
        _line: &[u8],
        emit: &mut dyn FnMut(Event),
    ) -> Outcome {
        match parse_text(prefix.text) {
            Some(parsed) => outcome(parsed, emit),
            None => Outcome::Ignored,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::timezone::Zone;
    use crate::protocol::secret::{encode, sha1};

    /// The event of a native line that has one, or why it was refused.
    fn parse(line: &str) -> Result<Event, NativeError> {
        parse_text(line.as_bytes())
            .expect("native line")
            .map(|e| e.expect("an event"))
    }

    /// What the parser of a `native:` file makes of `line`.
    fn in_native_file(line: &str) -> (Outcome, Vec<Event>) {
        let mut parser = NativeParser::new(SyslogClock::new(Zone::utc(), 1_795_348_800));
        let mut events = Vec::new();
        let outcome = parser.parse(line.as_bytes(), &mut |e| events.push(e));
        (outcome, events)
    }

    #[test]
    fn accept_from_design_doc_behind_a_syslog_prefix() {
        let b = encode(&sha1(b"abcdefgh"));
        let line = format!(
            "Nov 22 15:55:35 hub mtqp-enable[42]: mtqp: event=accept time=2026-11-22T15:55:35Z \
             envid=12345-20010101@example.com mtrk={} timeout=604800 queue=C8E0AB83E9 \
             msgid=m1@example.org from=sender@example.org",
            b.trim_end_matches('=')
        );
        let (outcome, mut events) = in_native_file(&line);
        assert_eq!(outcome, Outcome::Parsed);
        let Some(Event::Accept(a)) = events.pop() else {
            panic!("not accept")
        };
        assert_eq!(&*a.envid, b"12345-20010101@example.com");
        assert_eq!(a.hash, sha1(b"abcdefgh"));
        assert_eq!(a.timeout, Some(604_800));
        assert_eq!(a.queue.as_deref(), Some(&b"C8E0AB83E9"[..]));
        assert_eq!(a.message_id.as_deref(), Some(&b"m1@example.org"[..]));
        assert_eq!(
            a.time,
            Timestamp::parse_rfc3339(b"2026-11-22T15:55:35Z").unwrap()
        );
    }

    #[test]
    fn rcpt_from_design_doc() {
        let line = "mtqp: event=rcpt time=2026-11-22T15:55:36Z envid=12345-20010101@example.com \
                    orcpt=rfc822;user1@example1.com rcpt=user1@example1.com action=delivered \
                    status=2.5.0 remote-mta=dns;example3.com";
        let Event::Rcpt(r) = parse(line).unwrap() else {
            panic!("not rcpt")
        };
        assert_eq!(
            r.message,
            MessageRef::Envid(b"12345-20010101@example.com"[..].into())
        );
        assert_eq!(r.recipient.action, Action::Delivered);
        assert_eq!(
            r.recipient.original.as_deref(),
            Some(&b"rfc822;user1@example1.com"[..])
        );
        assert_eq!(
            r.recipient.remote_mta.as_deref(),
            Some(&b"dns;example3.com"[..])
        );
        assert!(r.recipient.last_attempt.is_some());
    }

    /// `mtrk=` is xtext like every value: base64's `+` written `+2B` (and `=` written `+3D`)
    /// decode to the same hash as the bare form.
    #[test]
    fn mtrk_is_xtext_decoded() {
        let secret = b"a secret whose hash has a plus";
        let bare = (0u8..=255)
            .map(|n| [secret.as_slice(), &[n]].concat())
            .map(|s| (encode(&sha1(&s)), sha1(&s)))
            .find(|(b64, _)| b64.contains('+'))
            .expect("a hash with '+' in base64");
        let xtext = bare.0.replace('+', "+2B").replace('=', "+3D");
        let line = format!("mtqp: event=accept time=2026-11-22T15:55:35Z envid=e@x mtrk={xtext}");
        let Event::Accept(a) = parse(&line).unwrap() else {
            panic!("not accept")
        };
        assert_eq!(a.hash, bare.1);
    }

    #[test]
    fn xtext_values_are_decoded() {
        let line = "mtqp: event=rcpt time=2026-11-22T15:55:36Z queue=Q1 rcpt=a@b action=delayed \
                    status=4.4.1+20(No+20answer+20from+20host) retry-until=2026-11-25T00:00:00Z";
        let Event::Rcpt(r) = parse(line).unwrap() else {
            panic!("not rcpt")
        };
        assert_eq!(&*r.recipient.status, b"4.4.1 (No answer from host)");
        assert_eq!(r.message, MessageRef::Queue(b"Q1"[..].into()));
        assert!(r.recipient.will_retry_until.is_some());
    }

    #[test]
    fn not_a_native_line() {
        let line = "Nov 22 15:55:35 hub postfix/qmgr[1]: ABC: removed";
        assert_eq!(parse_text(line.as_bytes()), None);
        assert_eq!(in_native_file(line), (Outcome::Ignored, Vec::new()));
    }

    /// A native line is never looked for inside a line: only at the start of the text.
    #[test]
    fn mtqp_inside_a_line_is_not_a_native_line() {
        let accept = "mtqp: event=accept time=2026-11-22T15:55:35Z envid=e@x mtrk=2jmj7l5rSw0yVb/vlWAYkK/YBwk";
        for line in [
            format!("garbage {accept}"),
            format!("Nov 22 15:55:35 hub app[1]: said {accept}"),
            format!(" {accept}"),
        ] {
            assert_eq!(
                in_native_file(&line),
                (Outcome::Ignored, Vec::new()),
                "{line}"
            );
        }
        let mut clock = SyslogClock::new(Zone::utc(), 1_795_348_800);
        let tags = NativeTags::default();
        let allowed = format!("Nov 22 15:55:35 hub mtqp-milter[7]: {accept}");
        let prefix = parse_prefix(allowed.as_bytes(), &mut clock).unwrap();
        assert!(matches!(
            from_syslog(&prefix, &tags),
            Some(Ok(Some(Event::Accept(_))))
        ));
        for tag in ["postfix/smtpd", "cron", "mtqp-milter-x", "MTQP"] {
            let line = format!("Nov 22 15:55:35 hub {tag}[7]: {accept}");
            let prefix = parse_prefix(line.as_bytes(), &mut clock).unwrap();
            assert!(from_syslog(&prefix, &tags).is_none(), "{tag}");
        }
    }

    #[test]
    fn every_rejection() {
        let ok_accept =
            "event=accept time=2026-11-22T15:55:35Z envid=e@x mtrk=2jmj7l5rSw0yVb/vlWAYkK/YBwk";
        assert!(parse(&format!("mtqp: {ok_accept}")).is_ok());
        let ok_rcpt =
            "event=rcpt time=2026-11-22T15:55:35Z envid=e@x rcpt=a@b action=failed status=5.1.1";
        assert!(parse(&format!("mtqp: {ok_rcpt}")).is_ok());
        let cases: &[(&str, NativeError)] = &[
            ("mtqp: event=accept junk", NativeError::NotKeyValue),
            ("mtqp: event=accept event=accept", NativeError::DuplicateKey),
            ("mtqp: event=bounce", NativeError::UnknownEvent),
            ("mtqp: time=2026-11-22T15:55:35Z", NativeError::MissingEvent),
            ("mtqp: ", NativeError::MissingEvent),
            ("mtqp: event=accept envid=e@x", NativeError::MissingTime),
            ("mtqp: event=accept time=yesterday envid=e@x", NativeError::BadTime),
            ("mtqp: event=accept time=2026-11-22T15:55:35Z mtrk=x", NativeError::MissingEnvid),
            ("mtqp: event=accept time=2026-11-22T15:55:35Z envid=e=x", NativeError::BadEnvid),
            ("mtqp: event=accept time=2026-11-22T15:55:35Z envid=e@x", NativeError::MissingMtrk),
            ("mtqp: event=accept time=2026-11-22T15:55:35Z envid=e@x mtrk=YWJj", NativeError::BadMtrk),
            ("mtqp: event=rcpt time=2026-11-22T15:55:35Z rcpt=a@b action=failed status=5.1.1", NativeError::MissingMessageRef),
            ("mtqp: event=rcpt time=2026-11-22T15:55:35Z envid=e@x action=failed status=5.1.1", NativeError::MissingRcpt),
            ("mtqp: event=rcpt time=2026-11-22T15:55:35Z envid=e@x rcpt=a@b status=5.1.1", NativeError::MissingAction),
            ("mtqp: event=rcpt time=2026-11-22T15:55:35Z envid=e@x rcpt=a@b action=lost status=5.1.1", NativeError::BadAction),
            ("mtqp: event=rcpt time=2026-11-22T15:55:35Z envid=e@x rcpt=a@b action=failed", NativeError::MissingStatus),
            ("mtqp: event=rcpt time=2026-11-22T15:55:35Z envid=e@x rcpt=a@b action=failed status=3.1.1", NativeError::BadStatus),
            ("mtqp: event=rcpt time=2026-11-22T15:55:35Z envid=e@x rcpt=a@b action=failed status=5.1", NativeError::BadStatus),
            ("mtqp: event=rcpt time=2026-11-22T15:55:35Z envid=e@x rcpt=a@b action=failed status=5.1.1 retry-until=soon", NativeError::BadRetryUntil),
            ("mtqp: event=rcpt time=2026-11-22T15:55:35Z envid=e@x rcpt=a+zz action=failed status=5.1.1", NativeError::BadXtext),
        ];
        for (line, want) in cases {
            assert_eq!(parse(line), Err(*want), "{line}");
        }
        let with = |extra: &str| parse(&format!("mtqp: {ok_accept} {extra}"));
        assert_eq!(with("timeout=1234567890"), Err(NativeError::BadTimeout));
        assert_eq!(with("timeout=-1"), Err(NativeError::BadTimeout));
        assert_eq!(with("header=NoColon"), Err(NativeError::BadHeader));
        assert_eq!(
            with("header=Content-Type:+20text/plain"),
            Err(NativeError::BadHeader)
        );
        assert_eq!(
            with("header=X:+0D+0AEvil:+201"),
            Err(NativeError::BadHeader)
        );
        // A name must begin with a letter: `.` or `-` could pass for a dot-stuffed line or a
        // MIME delimiter in the outer header.
        assert_eq!(
            with("header=.Dot-Stuffed-Header:+20as+20an+20example"),
            Err(NativeError::BadHeader)
        );
        assert_eq!(
            with("header=--mtqp-boundary:+20boundary"),
            Err(NativeError::BadHeader)
        );
        assert!(with("header=X-Tracking-Note:+20as+20an+20example").is_ok());
        let nine = "header=X:+201 ".repeat(9);
        assert_eq!(with(&nine), Err(NativeError::TooManyHeaders));
        assert!(with("future-key=whatever").is_ok());
    }

    /// The SMTP gate's lines: an accept with the client's address (ignored, as every unknown
    /// key is), then one recipient line per RCPT TO, with `orcpt=` when the client gave one.
    #[test]
    fn the_gates_recipient_line() {
        let b = encode(&sha1(b"gate secret"));
        let mtrk = b.trim_end_matches('=').replace('+', "+2B");
        let accept = format!(
            "mtqp: event=accept time=2026-12-03T10:00:00Z envid=gate-1@client.example \
             mtrk={mtrk} timeout=86400 queue=4XYZ client=192.0.2.7"
        );
        assert!(matches!(parse(&accept), Ok(Event::Accept(a)) if a.hash == sha1(b"gate secret")));
        let line = format!(
            "mtqp: event=recipient time=2026-12-03T10:00:01Z envid=gate-1@client.example \
             mtrk={mtrk} queue=4XYZ rcpt=User+2Bx@example.com orcpt=rfc822;user+2Bx@example.com"
        );
        let (outcome, events) = in_native_file(&line);
        assert_eq!(outcome, Outcome::Parsed);
        assert_eq!(
            events,
            vec![Event::Orcpt(Orcpt {
                envid: b"gate-1@client.example"[..].into(),
                hash: sha1(b"gate secret"),
                rcpt: b"User+x@example.com"[..].into(),
                original: b"rfc822;user+x@example.com"[..].into(),
                time: Timestamp::parse_rfc3339(b"2026-12-03T10:00:01Z").unwrap(),
            })]
        );
        // queue= is optional; so is orcpt=, and a line without one is checked but changes
        // nothing.
        let bare = format!(
            "mtqp: event=recipient time=2026-12-03T10:00:01Z envid=gate-1@client.example \
             mtrk={mtrk} rcpt=plain@example.com"
        );
        assert_eq!(in_native_file(&bare), (Outcome::Ignored, Vec::new()));
        assert!(parse_text(bare.as_bytes()).unwrap().unwrap().is_none());
        assert_eq!(
            in_native_file(&bare.replace("rcpt=plain@example.com", "rcpt=")).0,
            Outcome::Rejected(NativeError::BadAddress.reason())
        );
    }

    #[test]
    fn every_rejection_of_a_recipient_line() {
        let ok = "event=recipient time=2026-12-03T10:00:00Z envid=e@x \
                  mtrk=2jmj7l5rSw0yVb/vlWAYkK/YBwk rcpt=a@b orcpt=rfc822;a@b";
        assert!(matches!(parse(&format!("mtqp: {ok}")), Ok(Event::Orcpt(_))));
        let without = |key: &str| {
            let kept: Vec<&str> = ok
                .split_whitespace()
                .filter(|t| !t.starts_with(&format!("{key}=")))
                .collect();
            parse(&format!("mtqp: {}", kept.join(" ")))
        };
        assert_eq!(without("time"), Err(NativeError::MissingTime));
        assert_eq!(without("envid"), Err(NativeError::MissingRecipientEnvid));
        assert_eq!(without("mtrk"), Err(NativeError::MissingRecipientMtrk));
        assert_eq!(without("rcpt"), Err(NativeError::MissingRecipientRcpt));
        let with = |replace: &str, by: &str| {
            assert!(ok.contains(replace), "{replace}");
            parse(&format!("mtqp: {}", ok.replace(replace, by)))
        };
        let long = "a".repeat(510);
        let cases: &[(&str, &str, NativeError)] = &[
            (
                "time=2026-12-03T10:00:00Z",
                "time=today",
                NativeError::BadTime,
            ),
            ("envid=e@x", "envid=e=x", NativeError::BadEnvid),
            ("envid=e@x", "envid=", NativeError::BadEnvid),
            (
                "mtrk=2jmj7l5rSw0yVb/vlWAYkK/YBwk",
                "mtrk=YWJj",
                NativeError::BadMtrk,
            ),
            ("rcpt=a@b", "rcpt=", NativeError::BadAddress),
            (
                "rcpt=a@b",
                &format!("rcpt={long}@bc"),
                NativeError::BadAddress,
            ),
            ("rcpt=a@b", "rcpt=a+zz", NativeError::BadXtext),
            ("orcpt=rfc822;a@b", "orcpt=", NativeError::BadAddress),
            (
                "orcpt=rfc822;a@b",
                &format!("orcpt=rfc822;{long}"),
                NativeError::BadAddress,
            ),
            ("orcpt=rfc822;a@b", "orcpt=a@b", NativeError::BadOrcpt),
            ("orcpt=rfc822;a@b", "orcpt=;a@b", NativeError::BadOrcpt),
            ("orcpt=rfc822;a@b", "orcpt=rfc822;", NativeError::BadOrcpt),
            (
                "orcpt=rfc822;a@b",
                "orcpt=rfc+20822;a@b",
                NativeError::BadOrcpt,
            ),
            (
                "orcpt=rfc822;a@b",
                "orcpt=rfc822;a@b+",
                NativeError::BadXtext,
            ),
            ("rcpt=a@b", "rcpt=a@b queue=Q+1", NativeError::BadXtext),
            ("rcpt=a@b", "rcpt=a@b rcpt=c@d", NativeError::DuplicateKey),
        ];
        for (replace, by, want) in cases {
            assert_eq!(with(replace, by), Err(*want), "{by}");
        }
        // The type ends at the first `;`: the address may hold more (here, xtext-encoded).
        let Ok(Event::Orcpt(o)) = with("orcpt=rfc822;a@b", "orcpt=x400;/c+3Dus/+3B/o+3Dx/") else {
            panic!("not an orcpt")
        };
        assert_eq!(&*o.original, b"x400;/c=us/;/o=x/");
    }
}
