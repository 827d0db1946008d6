//! The client's side of the wire: status lines and complete responses, as the `track` client,
//! the tests and the load driver read them.

use super::dotstuff::{unstuff_line, Unstuffed};

/// The status indicator that starts every response line (RFC 3887 section 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indicator {
    /// `+OK`
    Ok,
    /// `+OK+`: data lines and `.` follow.
    OkMulti,
    /// `-TEMP`
    Temp,
    /// `-ERR`
    Err,
    /// `-BAD`
    Bad,
}

/// One parsed status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusLine<'a> {
    pub indicator: Indicator,
    /// The response information, e.g. `/MTQP/admin`, with its leading slash; empty if none.
    pub info: &'a [u8],
    /// The human-readable text after the white space.
    pub text: &'a [u8],
}

impl StatusLine<'_> {
    /// True when the response information contains `code` (case-insensitive).
    pub fn has_code(&self, code: &str) -> bool {
        self.info
            .split(|&c| c == b'/')
            .any(|part| part.eq_ignore_ascii_case(code.as_bytes()))
    }
}

/// Parses a status line given without its CRLF.
pub fn parse_status(line: &[u8]) -> Option<StatusLine<'_>> {
    let (indicator, rest) = if let Some(rest) = line.strip_prefix(b"+OK+") {
        (Indicator::OkMulti, rest)
    } else if let Some(rest) = line.strip_prefix(b"+OK") {
        (Indicator::Ok, rest)
    } else if let Some(rest) = line.strip_prefix(b"-TEMP") {
        (Indicator::Temp, rest)
    } else if let Some(rest) = line.strip_prefix(b"-ERR") {
        (Indicator::Err, rest)
    } else if let Some(rest) = line.strip_prefix(b"-BAD") {
        (Indicator::Bad, rest)
    } else {
        return None;
    };
    let info_len = rest
        .iter()
        .position(|&c| c == b' ' || c == b'\t')
        .unwrap_or(rest.len());
    let (info, text) = rest.split_at(info_len);
    if !info.is_empty() && info[0] != b'/' {
        return None;
    }
    let text_start = text
        .iter()
        .position(|&c| c != b' ' && c != b'\t')
        .unwrap_or(text.len());
    Some(StatusLine {
        indicator,
        info,
        text: &text[text_start..],
    })
}

/// A whole response found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status line, without CRLF.
    pub status: Vec<u8>,
    /// For `+OK+`: the data lines with dot-stuffing undone, each followed by CRLF.
    pub body: Vec<u8>,
    /// How many octets of the buffer the response took, terminator included.
    pub wire_len: usize,
}

/// Why a buffer does not start with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseError {
    /// The first line is not a status line.
    NotAStatusLine,
}

/// Looks for one complete response at the start of `buf`. Ok(None): not complete yet.
pub fn parse_response(buf: &[u8]) -> Result<Option<Response>, ResponseError> {
    let mut lines = Lines { buf, pos: 0 };
    let Some(first) = lines.next() else {
        return Ok(None);
    };
    let status = parse_status(first).ok_or(ResponseError::NotAStatusLine)?;
    let mut body = Vec::new();
    if status.indicator == Indicator::OkMulti {
        loop {
            let Some(line) = lines.next() else {
                return Ok(None);
            };
            match unstuff_line(line) {
                Unstuffed::End => break,
                Unstuffed::Data(data) => {
                    body.extend_from_slice(data);
                    body.extend_from_slice(b"\r\n");
                }
            }
        }
    }
    Ok(Some(Response {
        status: first.to_vec(),
        body,
        wire_len: lines.pos,
    }))
}

/// Complete lines of a buffer, without their CRLF (or bare LF).
struct Lines<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = &self.buf[self.pos..];
        let lf = memchr::memchr(b'\n', rest)?;
        self.pos += lf + 1;
        let line = &rest[..lf];
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let s = parse_status(b"-TEMP/MTQP/admin Service down for admin, call back later").unwrap();
        assert_eq!(s.indicator, Indicator::Temp);
        assert_eq!(s.info, b"/MTQP/admin");
        assert!(s.has_code("mtqp") && s.has_code("ADMIN") && !s.has_code("noinfo"));
        assert_eq!(s.text, b"Service down for admin, call back later");
        let s = parse_status(b"+OK+ Tracking information follows").unwrap();
        assert_eq!((s.indicator, s.info), (Indicator::OkMulti, &b""[..]));
        assert_eq!(parse_status(b"+OK").unwrap().indicator, Indicator::Ok);
        assert_eq!(parse_status(b"OK"), None);
        assert_eq!(parse_status(b"+OKAY"), None);
    }

    #[test]
    fn multi_line_response_is_unstuffed_and_measured() {
        let wire = b"+OK+ x\r\na\r\n..b\r\n\r\n.\r\n+OK\r\n";
        let r = parse_response(wire).unwrap().unwrap();
        assert_eq!(r.status, b"+OK+ x");
        assert_eq!(r.body, b"a\r\n.b\r\n\r\n");
        assert_eq!(r.wire_len, wire.len() - 5);
        let next = parse_response(&wire[r.wire_len..]).unwrap().unwrap();
        assert_eq!(next.status, b"+OK");
    }

    #[test]
    fn incomplete_and_garbage() {
        assert_eq!(parse_response(b"+OK+ x\r\na\r\n"), Ok(None));
        assert_eq!(parse_response(b"+OK"), Ok(None));
        assert_eq!(
            parse_response(b"hello\r\n"),
            Err(ResponseError::NotAStatusLine)
        );
    }
}
