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
