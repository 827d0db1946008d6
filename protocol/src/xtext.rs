//! xtext (RFC 3461 section 4): the encoding of ENVID, ORCPT and of every value of the native log
//! format. Printable US-ASCII `!`..`~` stands for itself except `+` and `=`; any other octet is
//! `+` followed by two upper-case hex digits.

use std::fmt;

/// Why an xtext string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XtextError {
    /// An octet that may not appear in xtext (space, control, `=`, or 8-bit).
    InvalidOctet,
    /// A `+` not followed by two hex digits.
    BadEscape,
    /// The decoded value does not fit the output buffer.
    TooLong,
}

impl fmt::Display for XtextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XtextError::InvalidOctet => "octet not allowed in xtext",
            XtextError::BadEscape => "'+' not followed by two hex digits",
            XtextError::TooLong => "value too long",
        })
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        // RFC 3461 says upper case, but lower case costs nothing to accept and real software
        // emits it.
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// True for an octet that stands for itself in xtext.
fn is_plain(c: u8) -> bool {
    matches!(c, b'!'..=b'~') && c != b'+' && c != b'='
}

/// Decodes `input` into `out`, returning the decoded length. No allocation: the caller's buffer
/// bounds the result. Octets that stand for themselves are copied as runs, one copy each
/// rather than a check and a store each: a value is nearly always one run (every accept line
/// the ingest thread reads has three or four).
pub fn decode_into(input: &[u8], out: &mut [u8]) -> Result<usize, XtextError> {
    let mut len = 0;
    let mut rest = input;
    loop {
        let run = rest
            .iter()
            .position(|&c| !is_plain(c))
            .unwrap_or(rest.len());
        out.get_mut(len..len + run)
            .ok_or(XtextError::TooLong)?
            .copy_from_slice(&rest[..run]);
        len += run;
        let Some((&c, after)) = rest[run..].split_first() else {
            return Ok(len);
        };
        if c != b'+' {
            return Err(XtextError::InvalidOctet);
        }
        let [hi, lo, tail @ ..] = after else {
            return Err(XtextError::BadEscape);
        };
        let (Some(hi), Some(lo)) = (hex_value(*hi), hex_value(*lo)) else {
            return Err(XtextError::BadEscape);
        };
        *out.get_mut(len).ok_or(XtextError::TooLong)? = hi << 4 | lo;
        len += 1;
        rest = tail;
    }
}

/// Decodes `input`, appending to `out` (at most `limit` decoded octets).
pub fn decode_append(input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), XtextError> {
    let start = out.len();
    out.resize(start + input.len().min(limit), 0);
    match decode_into(input, &mut out[start..]) {
        Ok(n) => {
            out.truncate(start + n);
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// The xtext encoding of `raw`, as a string (xtext is ASCII).
pub fn encode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    encode_append(raw, &mut out);
    out.into_iter().map(char::from).collect()
}

/// Appends the xtext encoding of `raw` to `out`. Octets that stand for themselves go in as
/// runs, one copy each rather than a push each: an envid is nearly always one run
/// (`index::render` writes one per answer it renders).
pub fn encode_append(mut raw: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    while let Some(i) = raw
        .iter()
        .position(|&c| !(b'!'..=b'~').contains(&c) || c == b'+' || c == b'=')
    {
        let c = raw[i];
        out.extend_from_slice(&raw[..i]);
        out.extend_from_slice(&[b'+', HEX[usize::from(c >> 4)], HEX[usize::from(c & 15)]]);
        raw = &raw[i + 1..];
    }
    out.extend_from_slice(raw);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(s: &[u8]) -> Result<Vec<u8>, XtextError> {
        let mut v = Vec::new();
        decode_append(s, &mut v, 1000).map(|()| v)
    }

    #[test]
    fn plain_text_is_itself() {
        assert_eq!(
            decode(b"12345-20010101@example.com").unwrap(),
            b"12345-20010101@example.com"
        );
    }

    #[test]
    fn escapes_decode_in_either_case() {
        assert_eq!(decode(b"a+20b+2Bc+3dd").unwrap(), b"a b+c=d");
    }

    #[test]
    fn bad_forms_are_refused() {
        assert_eq!(decode(b"a+2"), Err(XtextError::BadEscape));
        assert_eq!(decode(b"a+"), Err(XtextError::BadEscape));
        assert_eq!(decode(b"a+zz"), Err(XtextError::BadEscape));
        assert_eq!(decode(b"a=b"), Err(XtextError::InvalidOctet));
        assert_eq!(decode(b"a b"), Err(XtextError::InvalidOctet));
        assert_eq!(decode(b"a\x00b"), Err(XtextError::InvalidOctet));
        assert_eq!(decode("é".as_bytes()), Err(XtextError::InvalidOctet));
    }

    #[test]
    fn output_is_bounded() {
        let mut buf = [0u8; 3];
        assert_eq!(decode_into(b"abcd", &mut buf), Err(XtextError::TooLong));
        assert_eq!(decode_into(b"a+41c", &mut buf), Ok(3));
        assert_eq!(&buf, b"aAc");
        let mut v = b"keep".to_vec();
        assert_eq!(
            decode_append(b"abcdef", &mut v, 3),
            Err(XtextError::TooLong)
        );
        assert_eq!(v, b"keep");
    }

    #[test]
    fn decode_matches_octet_by_octet() {
        // What decode_into did when it went octet by octet: runs change only the speed, not a
        // result, an error or which error comes first.
        fn reference(input: &[u8], out: &mut [u8]) -> Result<usize, XtextError> {
            let (mut len, mut i) = (0, 0);
            while i < input.len() {
                let c = input[i];
                let octet = match c {
                    b'+' => {
                        let hi = input.get(i + 1).copied().and_then(hex_value);
                        let lo = input.get(i + 2).copied().and_then(hex_value);
                        let (Some(hi), Some(lo)) = (hi, lo) else {
                            return Err(XtextError::BadEscape);
                        };
                        i += 2;
                        hi << 4 | lo
                    }
                    b'!'..=b'~' if c != b'=' => c,
                    _ => return Err(XtextError::InvalidOctet),
                };
                *out.get_mut(len).ok_or(XtextError::TooLong)? = octet;
                len += 1;
                i += 1;
            }
            Ok(len)
        }
        // Every string of up to five octets over an alphabet of each kind of octet, into
        // buffers of every size up to six.
        let alphabet = b"a+4F= z\x80";
        let mut inputs: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..5 {
            let longer: Vec<Vec<u8>> = inputs
                .iter()
                .filter(|s| s.len() == inputs.last().map_or(0, Vec::len))
                .flat_map(|s| alphabet.iter().map(move |&c| [&s[..], &[c]].concat()))
                .collect();
            inputs.extend(longer);
        }
        for input in &inputs {
            for size in 0..=6 {
                let (mut got, mut want) = (vec![0; size], vec![0; size]);
                let (g, w) = (decode_into(input, &mut got), reference(input, &mut want));
                assert_eq!(g, w, "{input:?} into {size}");
                if let Ok(n) = g {
                    assert_eq!(got[..n], want[..n], "{input:?}");
                }
            }
        }
    }

    #[test]
    fn encode_round_trips_every_octet() {
        let raw: Vec<u8> = (0..=255u8).collect();
        let mut enc = Vec::new();
        encode_append(&raw, &mut enc);
        assert!(enc.iter().all(|c| (b'!'..=b'~').contains(c) && *c != b'='));
        assert_eq!(decode(&enc).unwrap(), raw);
    }

    #[test]
    fn encode_matches_octet_by_octet() {
        // What encode_append wrote when it went octet by octet: runs change only the speed.
        fn reference(raw: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            for &c in raw {
                if (b'!'..=b'~').contains(&c) && c != b'+' && c != b'=' {
                    out.push(c);
                } else {
                    out.extend_from_slice(format!("+{c:02X}").as_bytes());
                }
            }
            out
        }
        let every: Vec<u8> = (0..=255u8).collect();
        let mut inputs = vec![
            Vec::new(),
            every.clone(),
            b"12345-20010101@example.com".to_vec(),
            b"a+b=c d".to_vec(),
            b"+=+= ".to_vec(),
        ];
        inputs.extend(every.iter().map(|&c| vec![c]));
        inputs.extend(every.iter().map(|&c| [b"ab", &[c][..], b"cd"].concat()));
        for raw in inputs {
            let mut out = b"keep".to_vec();
            encode_append(&raw, &mut out);
            assert_eq!(out[..4], *b"keep");
            assert_eq!(out[4..], reference(&raw), "input {raw:?}");
        }
    }
}
