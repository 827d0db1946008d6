//! Framing and checking of answers, without allocating: the status line is read with mtqpd's
//! own [`parse_status`], and a `+OK+` body is walked line by line in place, by the same rules
//! as [`mtqp_protocol::response::parse_response`] (LF-terminated lines, one CR stripped, a
//! lone `.` ends the body, a leading `.` is unstuffed), which the tests hold it to.

use mtqp_protocol::response::{parse_status, Indicator};
use mtqp_protocol::MAX_LINE;

/// What a request asks for, and so what its answer must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// TRACK of a real envid with its secret: a tracking body for that envid.
    Hit,
    /// TRACK of an envid that does not exist: `-ERR/noinfo` (or an opaque body).
    Miss,
    /// TRACK of a real envid with a wrong secret: as a miss.
    BadSecret,
    /// COMMENT: `+OK`.
    Comment,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Hit, Kind::Miss, Kind::BadSecret, Kind::Comment];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Hit => "hit",
            Kind::Miss => "miss",
            Kind::BadSecret => "badsecret",
            Kind::Comment => "comment",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// A wrong answer, or a request that got none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrong {
    /// Not a status line where an answer should start (the connection is closed: framing lost).
    Garbled,
    /// An answer no request was waiting for.
    Unsolicited,
    /// `-ERR/noinfo` to a hit.
    NoinfoForHit,
    /// A tracking body (not opaque) for a miss or a wrong secret.
    InfoForMiss,
    /// `-TEMP`: the server refused for now (overload, shutdown).
    Temp,
    /// Another status than the one expected.
    UnexpectedStatus,
    /// A hit's body does not end with the closing boundary `--mtqp-boundary--`.
    Truncated,
    /// A body without `Original-Envelope-Id: <the envid asked for>`.
    OtherEnvid,
    /// An opaque body (`Action: opaque`) for a hit.
    OpaqueForHit,
    /// The server closed the connection with this request in flight.
    Closed,
    /// A read, write or TLS error with this request in flight.
    Io,
    /// Still unanswered when the drain time after the run ran out.
    NoAnswer,
}

impl Wrong {
    pub const ALL: [Wrong; 12] = [
        Wrong::Garbled,
        Wrong::Unsolicited,
        Wrong::NoinfoForHit,
        Wrong::InfoForMiss,
        Wrong::Temp,
        Wrong::UnexpectedStatus,
        Wrong::Truncated,
        Wrong::OtherEnvid,
        Wrong::OpaqueForHit,
        Wrong::Closed,
        Wrong::Io,
        Wrong::NoAnswer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Wrong::Garbled => "garbled",
            Wrong::Unsolicited => "unsolicited",
            Wrong::NoinfoForHit => "noinfo-for-hit",
            Wrong::InfoForMiss => "info-for-miss",
            Wrong::Temp => "temp",
            Wrong::UnexpectedStatus => "wrong-status",
            Wrong::Truncated => "truncated-body",
            Wrong::OtherEnvid => "wrong-envid",
            Wrong::OpaqueForHit => "opaque-for-hit",
            Wrong::Closed => "closed",
            Wrong::Io => "io-error",
            Wrong::NoAnswer => "no-answer",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// What the start of a buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// Not a whole answer yet.
    Incomplete,
    /// Not an answer at all: the stream cannot be followed any further.
    Garbled,
    /// One whole answer of `len` octets; `Err` when it is not the expected one.
    Answer {
        len: usize,
        verdict: Result<(), Wrong>,
    },
}

/// The closing boundary every tracking body ends with (mtqpd's `BOUNDARY` is `mtqp-boundary`).
const CLOSING: &[u8] = b"--mtqp-boundary--";
const ENVID_FIELD: &[u8] = b"Original-Envelope-Id: ";
const OPAQUE: &[u8] = b"Action: opaque";

/// Where the first LF of `s` is, eight octets at a time: finding line ends is most of the work
/// of checking an answer, and a search an octet at a time was a quarter of the driver's time at
/// 300,000 answers/s.
fn find_lf(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const LFS: u64 = ONES * b'\n' as u64;
    let mut words = s.chunks_exact(8);
    let mut at = 0;
    for w in &mut words {
        // An octet of `x` is zero where `w` has a LF; the lowest flagged octet (the first in
        // memory, little-endian) is always a true one: a borrow only flags octets above it.
        let x = u64::from_le_bytes(w.try_into().expect("eight octets")) ^ LFS;
        let zeros = x.wrapping_sub(ONES) & !x & HIGHS;
        if zeros != 0 {
            return Some(at + (zeros.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&c| c == b'\n')
        .map(|p| at + p)
}

/// The next line of `buf` from `pos`: (line without CR LF, position after the LF).
fn line_at(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = &buf[pos..];
    let lf = find_lf(rest)?;
    let line = &rest[..lf];
    Some((line.strip_suffix(b"\r").unwrap_or(line), pos + lf + 1))
}

/// Frames the answer at the start of `buf` and checks it against a request of `kind` for
/// `envid` (the envid as sent; empty for COMMENT). `opaque`: the server answers unknown envids
/// and wrong secrets with an opaque body instead of `-ERR/noinfo`.
pub fn scan(buf: &[u8], kind: Kind, envid: &[u8], opaque: bool) -> Scan {
    let Some((first, mut pos)) = line_at(buf, 0) else {
        // A status line is at most MAX_LINE octets; far more without a LF is not MTQP.
        return if buf.len() > 2 * MAX_LINE {
            Scan::Garbled
        } else {
            Scan::Incomplete
        };
    };
    let Some(status) = parse_status(first) else {
        return Scan::Garbled;
    };
    let mut body = Body::default();
    if status.indicator == Indicator::OkMulti {
        loop {
            let Some((line, next)) = line_at(buf, pos) else {
                return Scan::Incomplete;
            };
            pos = next;
            if line == b"." {
                break;
            }
            let data = line.strip_prefix(b".").unwrap_or(line);
            body.see(data, envid);
        }
    }
    let verdict = judge(
        kind,
        status.indicator,
        status.has_code("noinfo"),
        &body,
        opaque,
    );
    Scan::Answer { len: pos, verdict }
}

/// What was seen in a body.
#[derive(Default)]
struct Body<'a> {
    last: &'a [u8],
    envid_ok: bool,
    opaque: bool,
}

impl<'a> Body<'a> {
    fn see(&mut self, data: &'a [u8], envid: &[u8]) {
        if let Some(v) = data.strip_prefix(ENVID_FIELD) {
            self.envid_ok = v == envid;
        } else if data == OPAQUE {
            self.opaque = true;
        }
        self.last = data;
    }

    /// A complete tracking body about `envid`.
    fn whole(&self) -> Result<(), Wrong> {
        if self.last != CLOSING {
            Err(Wrong::Truncated)
        } else if !self.envid_ok {
            Err(Wrong::OtherEnvid)
        } else {
            Ok(())
        }
    }
}

fn judge(kind: Kind, ind: Indicator, noinfo: bool, body: &Body, opaque: bool) -> Result<(), Wrong> {
    if ind == Indicator::Temp {
        return Err(Wrong::Temp);
    }
    match kind {
        Kind::Hit => match ind {
            Indicator::OkMulti => {
                body.whole()?;
                if body.opaque {
                    Err(Wrong::OpaqueForHit)
                } else {
                    Ok(())
                }
            }
            Indicator::Err if noinfo => Err(Wrong::NoinfoForHit),
            _ => Err(Wrong::UnexpectedStatus),
        },
        Kind::Miss | Kind::BadSecret => match ind {
            Indicator::OkMulti if !body.opaque => Err(Wrong::InfoForMiss),
            Indicator::OkMulti if opaque => body.whole(),
            Indicator::Err if noinfo && !opaque => Ok(()),
            _ => Err(Wrong::UnexpectedStatus),
        },
        Kind::Comment => match ind {
            Indicator::Ok => Ok(()),
            _ => Err(Wrong::UnexpectedStatus),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mtqp_protocol::response::parse_response;

    const ENVID: &[u8] = b"gen-0000000001@client.example";

    fn hit() -> Vec<u8> {
        b"+OK+ Tracking information follows\r\n\
          Content-Type: multipart/related; boundary=mtqp-boundary; type=\"message/tracking-status\"\r\n\
          \r\n--mtqp-boundary\r\nContent-Type: message/tracking-status\r\n\r\n\
          Original-Envelope-Id: gen-0000000001@client.example\r\n\
          Reporting-MTA: dns; hub.example\r\n\r\n\
          Final-Recipient: rfc822; a@b.example\r\nAction: relayed\r\nStatus: 2.0.0\r\n\
          ..dot-stuffed line\r\n\r\n--mtqp-boundary--\r\n.\r\n"
            .to_vec()
    }

    fn opaque() -> Vec<u8> {
        String::from_utf8(hit())
            .unwrap()
            .replace("Action: relayed", "Action: opaque")
            .into_bytes()
    }

    const NOINFO: &[u8] = b"-ERR/noinfo No tracking information is available\r\n";

    fn verdict(wire: &[u8], kind: Kind, opaque: bool) -> Result<(), Wrong> {
        match scan(wire, kind, ENVID, opaque) {
            Scan::Answer { len, verdict } => {
                assert_eq!(len, wire.len());
                verdict
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn find_lf_agrees_with_a_plain_search() {
        // Every octet value beside and around a LF at every offset of a few words, and
        // neighbours of LF (0x0b, 0x8a...) that a word-wise trick could take for one.
        for len in 0..40 {
            for lf_at in (0..len).map(Some).chain([None]) {
                for fill in [0u8, 0x01, 0x09, 0x0b, 0x0d, 0x7f, 0x80, 0x8a, 0xff] {
                    let mut s = vec![fill; len];
                    if let Some(i) = lf_at {
                        s[i] = b'\n';
                        if i + 1 < len {
                            s[i + 1] = b'\n';
                        }
                    }
                    let want = s.iter().position(|&c| c == b'\n');
                    assert_eq!(find_lf(&s), want, "{s:?}");
                }
            }
        }
        for v in 0..=255u8 {
            let s = [v, v, v, v, v, v, v, v, v];
            assert_eq!(find_lf(&s), s.iter().position(|&c| c == b'\n'), "{v}");
        }
    }

    #[test]
    fn framing_agrees_with_parse_response() {
        let mut cases = vec![
            hit(),
            opaque(),
            NOINFO.to_vec(),
            b"+OK\r\n".to_vec(),
            b"+OK+ x\n.\n".to_vec(),
            b"+OK+ x\r\n..\r\n.\r\n".to_vec(),
        ];
        cases.push([hit(), NOINFO.to_vec()].concat());
        for wire in cases {
            let want = parse_response(&wire).unwrap().unwrap().wire_len;
            match scan(&wire, Kind::Hit, ENVID, false) {
                Scan::Answer { len, .. } => assert_eq!(len, want),
                other => panic!("{other:?}"),
            }
            // Every strict prefix is incomplete, for both.
            for cut in 0..want {
                assert_eq!(parse_response(&wire[..cut]), Ok(None));
                assert_eq!(
                    scan(&wire[..cut], Kind::Hit, ENVID, false),
                    Scan::Incomplete
                );
            }
        }
    }

    #[test]
    fn right_answers() {
        assert_eq!(verdict(&hit(), Kind::Hit, false), Ok(()));
        assert_eq!(verdict(NOINFO, Kind::Miss, false), Ok(()));
        assert_eq!(verdict(NOINFO, Kind::BadSecret, false), Ok(()));
        assert_eq!(verdict(&opaque(), Kind::Miss, true), Ok(()));
        assert_eq!(verdict(&opaque(), Kind::BadSecret, true), Ok(()));
        assert_eq!(verdict(b"+OK\r\n", Kind::Comment, false), Ok(()));
    }

    #[test]
    fn wrong_answers() {
        let truncated = String::from_utf8(hit())
            .unwrap()
            .replace("\r\n--mtqp-boundary--", "")
            .into_bytes();
        assert_eq!(verdict(&truncated, Kind::Hit, false), Err(Wrong::Truncated));
        let other = String::from_utf8(hit())
            .unwrap()
            .replace("0000000001", "0000000002")
            .into_bytes();
        assert_eq!(verdict(&other, Kind::Hit, false), Err(Wrong::OtherEnvid));
        assert_eq!(verdict(NOINFO, Kind::Hit, false), Err(Wrong::NoinfoForHit));
        assert_eq!(
            verdict(&opaque(), Kind::Hit, false),
            Err(Wrong::OpaqueForHit)
        );
        assert_eq!(verdict(&hit(), Kind::Miss, false), Err(Wrong::InfoForMiss));
        assert_eq!(verdict(&hit(), Kind::Miss, true), Err(Wrong::InfoForMiss));
        assert_eq!(
            verdict(&opaque(), Kind::BadSecret, false),
            Err(Wrong::UnexpectedStatus)
        );
        assert_eq!(
            verdict(NOINFO, Kind::Miss, true),
            Err(Wrong::UnexpectedStatus)
        );
        assert_eq!(
            verdict(b"-TEMP/MTQP/unavailable busy\r\n", Kind::Hit, false),
            Err(Wrong::Temp)
        );
        assert_eq!(
            verdict(b"-BAD/syntax x\r\n", Kind::Comment, false),
            Err(Wrong::UnexpectedStatus)
        );
        assert_eq!(
            verdict(b"-ERR/other x\r\n", Kind::Hit, false),
            Err(Wrong::UnexpectedStatus)
        );
    }

    #[test]
    fn garbage_is_garbled() {
        assert_eq!(
            scan(b"HTTP/1.1 200 OK\r\n", Kind::Hit, ENVID, false),
            Scan::Garbled
        );
        assert_eq!(scan(&[b'x'; 3000], Kind::Hit, ENVID, false), Scan::Garbled);
        assert_eq!(scan(b"", Kind::Hit, ENVID, false), Scan::Incomplete);
    }
}
