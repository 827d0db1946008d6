//! The journal export format (<https://systemd.io/JOURNAL_EXPORT_FORMATS/>), as
//! `journalctl --output=export` prints it, read incrementally and turned into syslog lines.
//!
//! An entry is a run of fields ended by an empty line. A field is `NAME=value\n` when its value
//! is printable UTF-8, otherwise `NAME\n`, its length as a 64-bit little-endian number, the
//! value and `\n` (journalctl uses this form for a MESSAGE holding a newline or a control
//! character). [`Parser::feed`] takes the output in pieces of any size, cut anywhere, and
//! reports each complete entry as the line [`super::super::syslog::parse_prefix`] reads in its
//! RFC 3339 form, `2026-12-03T08:00:00.123456+00:00 HOST IDENT[PID]: MESSAGE`, or as the reason
//! it was skipped.
//!
//! Memory is bounded whatever the input: only the fields a line needs are kept, each up to a
//! bound, and a longer value, text or binary, is passed over without being buffered (its entry
//! is then skipped and counted). Input that is not the export format marks the entry it falls
//! in as malformed; reading resumes at the next line.

use std::io::Write as _;

use crate::protocol::date::civil_from_days;

/// Longest line handed to ingest (the limit ingest applies to a file's lines), and so the
/// longest MESSAGE kept.
pub const MAX_LINE: usize = 64 * 1024;
/// Longest value kept of any other field: host names, identifiers, cursors (about 130 octets)
/// and numbers are far shorter.
const MAX_FIELD: usize = 512;
/// Longest field name: the journal allows 64 characters.
const MAX_NAME: usize = 64;
/// The last second of the year 9999: the RFC 3339 form has four digits of year.
const MAX_UNIX: u64 = 253_402_300_799;

/// The fields a line is made of. `journalctl --output-fields` asks for these (the cursor and the
/// timestamp always come).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Cursor,
    Realtime,
    Hostname,
    Identifier,
    Comm,
    SyslogPid,
    Pid,
    Message,
}

/// How many [`Field`]s there are.
const FIELDS: usize = 8;

/// The names of the fields other than the cursor and the timestamp, for `--output-fields`.
pub const OUTPUT_FIELDS: &str = "_HOSTNAME,SYSLOG_IDENTIFIER,_COMM,SYSLOG_PID,_PID,MESSAGE";

impl Field {
    fn from_name(name: &[u8]) -> Option<Field> {
        Some(match name {
            b"__CURSOR" => Field::Cursor,
            b"__REALTIME_TIMESTAMP" => Field::Realtime,
            b"_HOSTNAME" => Field::Hostname,
            b"SYSLOG_IDENTIFIER" => Field::Identifier,
            b"_COMM" => Field::Comm,
            b"SYSLOG_PID" => Field::SyslogPid,
            b"_PID" => Field::Pid,
            b"MESSAGE" => Field::Message,
            _ => return None,
        })
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }

    fn bound(self) -> usize {
        match self {
            Field::Message => MAX_LINE,
            _ => MAX_FIELD,
        }
    }
}

/// Why an entry gave no line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not in the export format, or without a usable `__CURSOR`.
    Malformed,
    /// No MESSAGE field.
    NoMessage,
    /// MESSAGE, or the whole line, longer than [`MAX_LINE`].
    TooLong,
    /// No `__REALTIME_TIMESTAMP`, or not a time the line can carry.
    NoTime,
    /// No `_HOSTNAME`, or one that is not a single syslog token.
    BadHost,
    /// Neither SYSLOG_IDENTIFIER nor `_COMM`, or one that is not a syslog program tag.
    BadIdentifier,
}

/// One complete entry, as [`Parser::feed`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The entry's `__CURSOR`, when it has a usable one: where to resume after it.
    pub cursor: Option<&'a str>,
    /// The syslog line, without a line end.
    pub line: Result<&'a [u8], Skip>,
}

/// Where the parser is within the export stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At or in a field name, gathered in `Parser::name`.
    Name,
    /// In a text value up to its `\n`: kept into this field, or passed over (None).
    Value(Option<Field>),
    /// Reading the 8 octets of a binary field's length.
    Size {
        field: Option<Field>,
        len: [u8; 8],
        got: u8,
    },
    /// In a binary value with this many octets left: kept or passed over.
    Data { field: Option<Field>, left: u64 },
    /// After a binary value, where its `\n` must be.
    DataEnd,
}

/// An incremental reader of `journalctl --output=export`.
#[derive(Debug)]
pub struct Parser {
    state: State,
    name: Vec<u8>,
    fields: Fields,
    /// Some field was seen in this entry, so an empty line ends an entry.
    started: bool,
    /// Something in this entry was not the export format.
    malformed: bool,
    line: Vec<u8>,
}

impl Default for Parser {
    fn default() -> Parser {
        Parser::new()
    }
}

impl Parser {
    pub fn new() -> Parser {
        Parser {
            state: State::Name,
            name: Vec::with_capacity(MAX_NAME),
            fields: Fields::default(),
            started: false,
            malformed: false,
            line: Vec::new(),
        }
    }

    /// Reads the next piece of the stream, calling `out` for every entry it completes.
    pub fn feed(&mut self, mut data: &[u8], out: &mut impl FnMut(Entry<'_>)) {
        while !data.is_empty() {
            let used = match self.state {
                State::Name => self.name_octet(data[0], out),
                State::Value(field) => self.value(field, data),
                State::Size { field, len, got } => self.size(field, len, got, data[0]),
                State::Data { field, left } => self.data(field, left, data),
                State::DataEnd => {
                    if data[0] == b'\n' {
                        self.state = State::Name;
                    } else {
                        self.malformed = true;
                        self.state = State::Value(None);
                    }
                    1
                }
            };
            data = &data[used..];
        }
    }

    /// One octet of a field name, or the empty line that ends an entry.
    fn name_octet(&mut self, b: u8, out: &mut impl FnMut(Entry<'_>)) -> usize {
        match b {
            b'\n' if self.name.is_empty() => self.end_entry(out),
            b'\n' => {
                let field = self.wanted();
                self.state = State::Size {
                    field,
                    len: [0; 8],
                    got: 0,
                };
            }
            b'=' if self.name.is_empty() => self.garbage(),
            b'=' => self.state = State::Value(self.wanted()),
            b'A'..=b'Z' | b'0'..=b'9' | b'_' if self.name.len() < MAX_NAME => self.name.push(b),
            _ => self.garbage(),
        }
        1
    }

    /// The field just named, if it is one a line needs and the first of its name in this entry
    /// (its value is then empty: an entry starts with every value cleared). A value over its
    /// bound is found as it is read: a text one as it grows, a binary one from its length.
    fn wanted(&mut self) -> Option<Field> {
        self.started = true;
        let field = Field::from_name(&self.name);
        self.name.clear();
        let field = field?;
        if self.fields.present & field.bit() != 0 {
            return None;
        }
        self.fields.present |= field.bit();
        Some(field)
    }

    /// Not the export format: the entry is malformed, and reading resumes at the next line.
    fn garbage(&mut self) {
        self.started = true;
        self.malformed = true;
        self.name.clear();
        self.state = State::Value(None);
    }

    /// A text value up to its `\n`, or the rest of a line passed over.
    fn value(&mut self, field: Option<Field>, data: &[u8]) -> usize {
        let (chunk, used, done) = match memchr::memchr(b'\n', data) {
            Some(n) => (&data[..n], n + 1, true),
            None => (data, data.len(), false),
        };
        if let Some(f) = field {
            let v = &mut self.fields.values[f as usize];
            if v.len() + chunk.len() > f.bound() {
                self.too_big(f);
                self.state = State::Value(None);
            } else {
                v.extend_from_slice(chunk);
            }
        }
        if done {
            self.state = State::Name;
        }
        used
    }

    /// A field's value is over its bound: what was kept of it goes, and the entry is skipped.
    fn too_big(&mut self, f: Field) {
        self.fields.oversize |= f.bit();
        self.fields.values[f as usize] = Vec::new();
    }

    fn size(&mut self, field: Option<Field>, mut len: [u8; 8], got: u8, b: u8) -> usize {
        len[got as usize] = b;
        let got = got + 1;
        self.state = if got < 8 {
            State::Size { field, len, got }
        } else {
            let left = u64::from_le_bytes(len);
            let field = match field {
                Some(f) if left > f.bound() as u64 => {
                    self.too_big(f);
                    None
                }
                f => f,
            };
            if left == 0 {
                State::DataEnd
            } else {
                State::Data { field, left }
            }
        };
        1
    }

    fn data(&mut self, field: Option<Field>, left: u64, data: &[u8]) -> usize {
        let n = usize::try_from(left).map_or(data.len(), |l| l.min(data.len()));
        if let Some(f) = field {
            self.fields.values[f as usize].extend_from_slice(&data[..n]);
        }
        let left = left - n as u64;
        self.state = if left == 0 {
            State::DataEnd
        } else {
            State::Data { field, left }
        };
        n
    }

    /// The empty line after an entry: reports it and clears it for the next one. Empty lines
    /// between entries are not entries.
    fn end_entry(&mut self, out: &mut impl FnMut(Entry<'_>)) {
        if self.started {
            let line = build_line(&self.fields, self.malformed, &mut self.line);
            out(Entry {
                cursor: self.fields.cursor(),
                line: line.map(|()| &self.line[..]),
            });
        }
        for v in &mut self.fields.values {
            v.clear();
        }
        self.fields.present = 0;
        self.fields.oversize = 0;
        self.started = false;
        self.malformed = false;
    }
}

/// The values of the fields a line needs, of the entry being read.
#[derive(Debug, Default)]
struct Fields {
    values: [Vec<u8>; FIELDS],
    /// The fields seen in this entry (the first of a repeated field counts).
    present: u8,
    /// The fields of this entry whose value was over its bound.
    oversize: u8,
}

impl Fields {
    fn get(&self, f: Field) -> Option<&[u8]> {
        (self.present & f.bit() != 0 && self.oversize & f.bit() == 0)
            .then(|| &self.values[f as usize][..])
    }

    /// The cursor, when it is one journalctl can be given back: printable ASCII.
    fn cursor(&self) -> Option<&str> {
        let c = self.get(Field::Cursor)?;
        if c.is_empty() || !c.iter().all(u8::is_ascii_graphic) {
            return None;
        }
        std::str::from_utf8(c).ok()
    }
}

/// Writes the syslog line of an entry into `line`.
fn build_line(fields: &Fields, malformed: bool, line: &mut Vec<u8>) -> Result<(), Skip> {
    if malformed || fields.cursor().is_none() {
        return Err(Skip::Malformed);
    }
    if fields.oversize & Field::Message.bit() != 0 {
        return Err(Skip::TooLong);
    }
    let message = fields.get(Field::Message).ok_or(Skip::NoMessage)?;
    // Only the first line: an MTA logs one line per message, and a later line must not pass
    // for a log line of its own.
    let message = match memchr::memchr(b'\n', message) {
        Some(n) => &message[..n],
        None => message,
    };
    let micros = fields
        .get(Field::Realtime)
        .and_then(decimal)
        .filter(|us| us / 1_000_000 <= MAX_UNIX)
        .ok_or(Skip::NoTime)?;
    let host = fields
        .get(Field::Hostname)
        .filter(|h| is_token(h))
        .ok_or(Skip::BadHost)?;
    let ident = fields
        .get(Field::Identifier)
        .or_else(|| fields.get(Field::Comm))
        .filter(|i| is_token(i) && !i.iter().any(|&b| matches!(b, b'[' | b':')))
        .ok_or(Skip::BadIdentifier)?;
    // The pid the program logged (syslog), else the one journald saw (stdout, native).
    let pid = fields
        .get(Field::SyslogPid)
        .filter(|p| is_pid(p))
        .or_else(|| fields.get(Field::Pid).filter(|p| is_pid(p)));

    line.clear();
    let secs = micros / 1_000_000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    // Writing to a Vec cannot fail.
    let _ = write!(
        line,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}+00:00 ",
        s / 3600,
        s / 60 % 60,
        s % 60,
        micros % 1_000_000
    );
    line.extend_from_slice(host);
    line.push(b' ');
    line.extend_from_slice(ident);
    if let Some(pid) = pid {
        line.push(b'[');
        line.extend_from_slice(pid);
        line.push(b']');
    }
    line.extend_from_slice(b": ");
    if line.len() + message.len() > MAX_LINE {
        return Err(Skip::TooLong);
    }
    line.extend_from_slice(message);
    Ok(())
}

/// A non-negative decimal number of at most 20 digits that fits in 64 bits.
fn decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |a, &d| {
        a.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// A pid as the syslog parser reads one: 1 to 9 digits.
fn is_pid(s: &[u8]) -> bool {
    (1..=9).contains(&s.len()) && s.iter().all(u8::is_ascii_digit)
}

/// One syslog token: not empty, no space and no control character.
fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| b > b' ' && b != 0x7f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::syslog::{parse_prefix, SyslogClock};
    use crate::ingest::timezone::Zone;

    /// The recording of a real journald (tests/data/journal/record.sh).
    const RECORDED: &[u8] = include_bytes!("../../../tests/data/journal/postfix-debian-ci.export");

    /// An entry as the tests keep it: its cursor, and its line or why it gave none.
    type Owned = (Option<String>, Result<Vec<u8>, Skip>);

    /// Every entry of the stream, fed in these pieces.
    fn parse(pieces: &[&[u8]]) -> Vec<Owned> {
        let mut parser = Parser::new();
        let mut got = Vec::new();
        for piece in pieces {
            parser.feed(piece, &mut |e| {
                got.push((e.cursor.map(str::to_owned), e.line.map(<[u8]>::to_vec)))
            });
        }
        got
    }

    fn lines(data: &[u8]) -> Vec<Result<String, Skip>> {
        parse(&[data])
            .into_iter()
            .map(|(_, l)| l.map(|l| String::from_utf8(l).unwrap()))
            .collect()
    }

    /// A text field.
    fn text(name: &str, value: &str) -> Vec<u8> {
        format!("{name}={value}\n").into_bytes()
    }

    /// A binary field.
    fn binary(name: &str, value: &[u8]) -> Vec<u8> {
        let mut v = format!("{name}\n").into_bytes();
        v.extend_from_slice(&(value.len() as u64).to_le_bytes());
        v.extend_from_slice(value);
        v.push(b'\n');
        v
    }

    /// An entry of the given fields, after a cursor and a time, with its empty line.
    fn entry(n: u32, fields: &[Vec<u8>]) -> Vec<u8> {
        let mut v = text("__CURSOR", &format!("s=abc;i={n:x};b=def;m=1;t=2;x=3"));
        v.extend(text("__REALTIME_TIMESTAMP", "1796287857798467"));
        v.extend(text("__MONOTONIC_TIMESTAMP", "50571426794"));
        for f in fields {
            v.extend_from_slice(f);
        }
        v.push(b'\n');
        v
    }

    fn postfix(n: u32, message: &str) -> Vec<u8> {
        entry(
            n,
            &[
                text("_HOSTNAME", "mx1"),
                text("SYSLOG_IDENTIFIER", "postfix/qmgr"),
                text("SYSLOG_PID", "18719"),
                text("_PID", "3401"),
                text("MESSAGE", message),
            ],
        )
    }

    #[test]
    fn an_entry_becomes_a_line_that_parse_prefix_reads() {
        let got = parse(&[&postfix(1, "3D74ADB7400B: removed")]);
        assert_eq!(got.len(), 1);
        let (cursor, line) = &got[0];
        assert_eq!(cursor.as_deref(), Some("s=abc;i=1;b=def;m=1;t=2;x=3"));
        let line = line.as_ref().unwrap();
        assert_eq!(
            std::str::from_utf8(line).unwrap(),
            "2026-12-03T08:50:57.798467+00:00 mx1 postfix/qmgr[18719]: 3D74ADB7400B: removed"
        );
        let mut clock = SyslogClock::new(Zone::utc(), 0);
        let p = parse_prefix(line, &mut clock).unwrap();
        assert_eq!(p.time.unix, 1_796_287_857);
        assert_eq!(p.time.offset_minutes, 0);
        assert_eq!(
            (p.host, p.program, p.pid, p.text),
            (
                &b"mx1"[..],
                &b"postfix/qmgr"[..],
                Some(18719),
                &b"3D74ADB7400B: removed"[..]
            )
        );
    }

    #[test]
    fn the_recording_of_a_real_journald() {
        let got = parse(&[RECORDED]);
        assert_eq!(got.len(), 29);
        assert!(
            got.iter().all(|(c, _)| c.is_some()),
            "every entry has a cursor"
        );
        let log = include_str!("../../../tests/data/real-logs/postfix-debian-ci.log");
        let mut clock = SyslogClock::new(Zone::utc(), 0);
        // The Postfix lines, in order: tag, pid and text as Postfix logged them.
        for ((_, line), want) in got.iter().zip(log.lines()) {
            let line = line.as_ref().unwrap();
            let want = want.as_bytes();
            let want = parse_prefix(want, &mut SyslogClock::new(Zone::utc(), 0)).unwrap();
            let p = parse_prefix(line, &mut clock).unwrap();
            assert_eq!(
                (p.program, p.pid, p.text),
                (want.program, want.pid, want.text)
            );
            assert_eq!(p.host, b"vm");
        }
        let rest: Vec<_> = got[25..]
            .iter()
            .map(|(_, l)| l.as_ref().map(|l| String::from_utf8_lossy(l).into_owned()))
            .collect();
        // A binary MESSAGE: its first line; a control character stays.
        assert!(rest[0]
            .as_ref()
            .unwrap()
            .ends_with(" vm postfix/pickup[4242]: first line"));
        assert!(rest[1]
            .as_ref()
            .unwrap()
            .ends_with(" vm postfix/pickup[4242]: bell \x07 in it"));
        // From stdout: journald's _PID.
        let stdout = rest[2].as_ref().unwrap();
        assert!(stdout.contains(" vm postfix/postfix-script["), "{stdout}");
        assert!(stdout.ends_with("]: starting the Postfix mail system"));
        assert_eq!(got[28].1, Err(Skip::NoMessage));
    }

    #[test]
    fn every_cut_of_the_stream_gives_the_same_entries() {
        // The first two entries and the last four (binary fields, stdout, no MESSAGE) of the
        // recording: every cut of all of it takes too long unoptimised.
        let starts: Vec<usize> = memchr::memmem::find_iter(RECORDED, b"\n\n__CURSOR=")
            .map(|n| n + 2)
            .collect();
        let mut stream = RECORDED[..starts[1]].to_vec();
        stream.extend_from_slice(&RECORDED[starts[starts.len() - 4]..]);
        stream.extend(postfix(7, "x"));
        assert_eq!(parse(&[&stream]).len(), 7);
        let whole = parse(&[&stream]);
        for cut in 0..=stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(parse(&[a, b]), whole, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(parse(&bytes), whole);
        let threes: Vec<&[u8]> = stream.chunks(3).collect();
        assert_eq!(parse(&threes), whole);
    }

    #[test]
    fn binary_fields_anywhere() {
        let data = entry(
            1,
            &[
                binary("_HOSTNAME", b"mx1"),
                binary("SYSLOG_IDENTIFIER", b"postfix/smtp"),
                binary("EMPTY", b""),
                binary("OTHER", b"\n\n\x00binary\n\n"),
                binary("SYSLOG_PID", b"12"),
                binary("MESSAGE", b"A1: to=<a@b>, status=sent\nsecond\n"),
            ],
        );
        assert_eq!(
            lines(&data),
            [Ok(
                "2026-12-03T08:50:57.798467+00:00 mx1 postfix/smtp[12]: A1: to=<a@b>, status=sent"
                    .to_owned()
            )]
        );
    }

    #[test]
    fn missing_and_unusable_fields_are_skipped_with_their_reason() {
        let base = |extra: Vec<Vec<u8>>| {
            let mut f = vec![
                text("_HOSTNAME", "mx1"),
                text("SYSLOG_IDENTIFIER", "postfix/smtpd"),
            ];
            f.extend(extra);
            f
        };
        let cases: Vec<(Vec<u8>, Result<&str, Skip>)> = vec![
            (entry(1, &base(vec![])), Err(Skip::NoMessage)),
            (
                entry(1, &[text("SYSLOG_IDENTIFIER", "x"), text("MESSAGE", "m")]),
                Err(Skip::BadHost),
            ),
            (
                entry(
                    1,
                    &[
                        binary("_HOSTNAME", b"a b"),
                        text("SYSLOG_IDENTIFIER", "x"),
                        text("MESSAGE", "m"),
                    ],
                ),
                Err(Skip::BadHost),
            ),
            (
                entry(1, &[text("_HOSTNAME", "h"), text("MESSAGE", "m")]),
                Err(Skip::BadIdentifier),
            ),
            (
                entry(
                    1,
                    &[
                        text("_HOSTNAME", "h"),
                        text("SYSLOG_IDENTIFIER", "a:b"),
                        text("MESSAGE", "m"),
                    ],
                ),
                Err(Skip::BadIdentifier),
            ),
            (
                entry(
                    1,
                    &[
                        text("_HOSTNAME", "h"),
                        text("SYSLOG_IDENTIFIER", "a[1]"),
                        text("MESSAGE", "m"),
                    ],
                ),
                Err(Skip::BadIdentifier),
            ),
            // journalctl's own fallback for the identifier: the command name.
            (
                entry(
                    1,
                    &[
                        text("_HOSTNAME", "h"),
                        text("_COMM", "master"),
                        text("_PID", "9"),
                        text("MESSAGE", "m"),
                    ],
                ),
                Ok("h master[9]: m"),
            ),
            // A SYSLOG_PID that is no number gives way to _PID; no pid at all: no brackets.
            (
                entry(
                    1,
                    &base(vec![
                        text("SYSLOG_PID", "x1"),
                        text("_PID", "77"),
                        text("MESSAGE", "m"),
                    ]),
                ),
                Ok("mx1 postfix/smtpd[77]: m"),
            ),
            (
                entry(
                    1,
                    &base(vec![text("SYSLOG_PID", "1234567890"), text("MESSAGE", "m")]),
                ),
                Ok("mx1 postfix/smtpd: m"),
            ),
            (
                entry(1, &base(vec![text("MESSAGE", "")])),
                Ok("mx1 postfix/smtpd: "),
            ),
            // The first of a repeated field counts.
            (
                entry(
                    1,
                    &base(vec![text("MESSAGE", "one"), text("MESSAGE", "two")]),
                ),
                Ok("mx1 postfix/smtpd: one"),
            ),
        ];
        for (data, want) in cases {
            let got = lines(&data);
            assert_eq!(got.len(), 1);
            match (&got[0], want) {
                (Ok(line), Ok(want)) => {
                    let after_time = line.split_once(' ').unwrap().1;
                    assert_eq!(after_time, want, "{line}");
                }
                (got, want) => {
                    assert_eq!(got.as_ref().map(|_| ()).map_err(|e| *e), want.map(|_| ()))
                }
            }
        }
    }

    #[test]
    fn times_the_line_cannot_carry() {
        for (stamp, want) in [
            ("0", Ok("1970-01-01T00:00:00.000000+00:00")),
            ("253402300799999999", Ok("9999-12-31T23:59:59.999999+00:00")),
            ("253402300800000000", Err(Skip::NoTime)),
            ("18446744073709551616", Err(Skip::NoTime)),
            ("-1", Err(Skip::NoTime)),
            ("", Err(Skip::NoTime)),
            ("12a", Err(Skip::NoTime)),
        ] {
            let mut data = text("__CURSOR", "c");
            data.extend(text("__REALTIME_TIMESTAMP", stamp));
            data.extend(text("_HOSTNAME", "h"));
            data.extend(text("SYSLOG_IDENTIFIER", "p"));
            data.extend(text("MESSAGE", "m"));
            data.push(b'\n');
            let got = lines(&data);
            assert_eq!(
                got[0].as_ref().map(|l| &l[..32]).map_err(|e| *e),
                want,
                "{stamp}"
            );
        }
        let mut data = text("__CURSOR", "c");
        data.extend(text("_HOSTNAME", "h"));
        data.extend(text("MESSAGE", "m"));
        data.push(b'\n');
        assert_eq!(lines(&data), [Err(Skip::NoTime)]);
    }

    #[test]
    fn oversize_values_are_passed_over_unbuffered() {
        let big = "x".repeat(MAX_LINE + 1);
        let mut data = postfix(1, &big);
        data.extend(entry(2, &[binary("MESSAGE", big.as_bytes())]));
        // A field we do not keep may be any size: it is not buffered.
        data.extend(entry(
            3,
            &[
                text("OTHER", &big),
                binary("OTHER2", big.as_bytes()),
                text("_HOSTNAME", "h"),
                text("SYSLOG_IDENTIFIER", "p"),
                text("MESSAGE", "ok"),
            ],
        ));
        // A host name over its bound.
        data.extend(entry(
            4,
            &[
                text("_HOSTNAME", &big[..MAX_FIELD + 1]),
                text("SYSLOG_IDENTIFIER", "p"),
                text("MESSAGE", "m"),
            ],
        ));
        // A MESSAGE that fits but whose line does not.
        data.extend(postfix(5, &big[..MAX_LINE - 10]));
        let mut parser = Parser::new();
        let mut got = Vec::new();
        for piece in data.chunks(1000) {
            parser.feed(piece, &mut |e| {
                got.push((e.cursor.map(str::to_owned), e.line.map(|l| l.len())))
            });
            assert!(parser.fields.values.iter().all(|v| v.len() <= MAX_LINE));
            assert!(parser.line.len() <= MAX_LINE && parser.name.len() <= MAX_NAME);
        }
        let reasons: Vec<_> = got.iter().map(|(_, l)| l.map(|_| ())).collect();
        assert_eq!(
            reasons,
            [
                Err(Skip::TooLong),
                Err(Skip::TooLong),
                Ok(()),
                Err(Skip::BadHost),
                Err(Skip::TooLong)
            ]
        );
        // Skipped entries still move the cursor on.
        assert_eq!(got[4].0.as_deref(), Some("s=abc;i=5;b=def;m=1;t=2;x=3"));

        // A binary length of 2^64 - 1 is not believed either: nothing is reserved for it.
        let mut parser = Parser::new();
        let mut data = text("__CURSOR", "c");
        data.extend(b"MESSAGE\n");
        data.extend(u64::MAX.to_le_bytes());
        data.extend(vec![b'y'; 1 << 20]);
        parser.feed(&data, &mut |_| panic!("no entry ends"));
        assert!(parser
            .fields
            .values
            .iter()
            .all(|v| v.capacity() <= MAX_FIELD));
    }

    #[test]
    fn garbage_spoils_only_its_entry() {
        let mut data = b"this is not a field\n\n".to_vec();
        data.extend(postfix(1, "kept"));
        data.extend(b"lower=case\n__CURSOR=c2\nMESSAGE=m\n\n");
        data.extend(b"=no name\n\n");
        // A binary value not followed by its newline.
        let mut bad = binary("MESSAGE", b"abc");
        bad.pop();
        bad.extend(b"X\n");
        data.extend(entry(3, &[bad]));
        data.extend(postfix(4, "kept too"));
        // Empty lines between entries are no entries.
        data.extend(b"\n\n\n");
        let got = parse(&[&data]);
        let reasons: Vec<_> = got
            .iter()
            .map(|(_, l)| l.as_ref().map(|_| ()).map_err(|e| *e))
            .collect();
        assert_eq!(
            reasons,
            [
                Err(Skip::Malformed),
                Ok(()),
                Err(Skip::Malformed),
                Err(Skip::Malformed),
                Err(Skip::Malformed),
                Ok(())
            ]
        );
        // An entry without a cursor cannot be resumed after: it gives none, and no line.
        assert_eq!(got[0].0, None);
        let data = b"_HOSTNAME=h\nSYSLOG_IDENTIFIER=p\n__REALTIME_TIMESTAMP=1\nMESSAGE=m\n\n";
        assert_eq!(parse(&[data]), [(None, Err(Skip::Malformed))]);
        // A cursor journalctl could not be given back.
        let data = b"__CURSOR=a b\n_HOSTNAME=h\nSYSLOG_IDENTIFIER=p\n__REALTIME_TIMESTAMP=1\nMESSAGE=m\n\n";
        assert_eq!(parse(&[data]), [(None, Err(Skip::Malformed))]);
    }

    #[test]
    fn random_input_never_panics_and_stays_bounded() {
        let mut rng = fastrand::Rng::with_seed(15);
        let pieces: Vec<Vec<u8>> = vec![
            postfix(1, "m"),
            binary("MESSAGE", b"a\nb"),
            b"MESSAGE\n".to_vec(),
            b"\n".to_vec(),
            b"=".to_vec(),
            u64::MAX.to_le_bytes().to_vec(),
            5u64.to_le_bytes().to_vec(),
            b"__CURSOR=".to_vec(),
        ];
        for _ in 0..2000 {
            let mut data = Vec::new();
            for _ in 0..rng.usize(1..20) {
                if rng.bool() {
                    data.extend_from_slice(&pieces[rng.usize(..pieces.len())]);
                } else {
                    data.extend((0..rng.usize(0..40)).map(|_| rng.u8(..)));
                }
            }
            let mut parser = Parser::new();
            for piece in data.chunks(rng.usize(1..64)) {
                parser.feed(piece, &mut |e| {
                    if let Ok(line) = e.line {
                        assert!(line.len() <= MAX_LINE);
                        assert!(e.cursor.is_some());
                    }
                });
            }
            assert!(parser.fields.values.iter().all(|v| v.len() <= MAX_LINE));
        }
    }
}
