//! `MAIL FROM:<…> … MTRK=…`: the RFC 3885 parameter that no stock MTA accepts. The gate reads
//! the parameters at byte level, cuts the MTRK token out and forwards every other byte as the
//! client sent it (ENVID, RET, SIZE, SMTPUTF8 …), remembering what the accept line needs.

use super::command::{params, split_path};
use crate::protocol::secret::{decode_hash, Hash};
use crate::protocol::{xtext, MAX_ENVID};

/// What a tracked transaction is enabled with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracking {
    /// The ENVID value as the client sent it: xtext, as the native format writes it.
    pub envid: Box<[u8]>,
    /// Hash B, decoded from the certifier.
    pub hash: Hash,
    /// The MTRK timeout, seconds.
    pub timeout: Option<u32>,
}

/// Why a MAIL with MTRK flows untracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untracked {
    /// MTRK without ENVID: nothing to track it by.
    NoEnvid,
    /// An ENVID that is not 1 to 100 octets of xtext.
    BadEnvid,
    /// A certifier that does not decode to the 20 octets of a SHA-1 hash.
    BadCertifier,
}

impl Untracked {
    pub const ALL: [Untracked; 3] = [
        Untracked::NoEnvid,
        Untracked::BadEnvid,
        Untracked::BadCertifier,
    ];

    /// A short stable name, for counters and the log.
    pub fn name(self) -> &'static str {
        match self {
            Untracked::NoEnvid => "mtrk-without-envid",
            Untracked::BadEnvid => "bad-envid",
            Untracked::BadCertifier => "certifier-not-20-octets",
        }
    }
}

/// What to do with a MAIL line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mail {
    /// No MTRK (or no path the gate can read, which the MTA judges): forward the line as it is.
    Unchanged,
    /// Forward `line`, the MTRK token cut out; the transaction is tracked or, with the reason,
    /// not.
    Spliced {
        line: Vec<u8>,
        tracking: Result<Tracking, Untracked>,
    },
    /// `501 5.5.4`: an MTRK that breaks RFC 3885's syntax, or two of them. Nothing is forwarded.
    Malformed(&'static str),
}

/// The certifier and timeout of `MTRK=certifier[:timeout]`, checked against RFC 3885's ABNF
/// (`1*base64 [":" 1*9DIGIT]`, base64 being letters, digits, `+` and `/`: `=` padding cannot
/// appear in an ESMTP value).
fn mtrk_value(value: &[u8]) -> Result<(&[u8], Option<u32>), &'static str> {
    let (certifier, timeout) = match memchr::memchr(b':', value) {
        Some(colon) => (&value[..colon], Some(&value[colon + 1..])),
        None => (value, None),
    };
    let base64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    if certifier.is_empty() || !certifier.iter().all(base64) {
        return Err("MTRK certifier is not base64 without padding");
    }
    let timeout = match timeout {
        None => None,
        Some(t) if (1..=9).contains(&t.len()) && t.iter().all(u8::is_ascii_digit) => Some(
            t.iter()
                .fold(0u32, |acc, &c| acc * 10 + u32::from(c - b'0')),
        ),
        Some(_) => return Err("MTRK timeout is not 1 to 9 digits"),
    };
    Ok((certifier, timeout))
}

fn is_envid(v: &[u8]) -> bool {
    let mut out = [0u8; MAX_ENVID];
    !v.is_empty() && v.len() <= MAX_ENVID && xtext::decode_into(v, &mut out).is_ok()
}

/// Reads a `MAIL FROM:` line (without its line end) and says what to forward.
pub fn splice(line: &[u8]) -> Mail {
    let Some((_, after_path)) = split_path(line, b"FROM:") else {
        return Mail::Unchanged;
    };
    let mut mtrk = None;
    let mut envid = None;
    for p in params(line, after_path) {
        if p.keyword.eq_ignore_ascii_case(b"MTRK") {
            if mtrk.is_some() {
                return Mail::Malformed("MTRK given twice");
            }
            let Some(value) = p.value else {
                return Mail::Malformed("MTRK without a value");
            };
            match mtrk_value(value) {
                Ok(v) => mtrk = Some((p.start, p.end, v)),
                Err(why) => return Mail::Malformed(why),
            }
        } else if p.keyword.eq_ignore_ascii_case(b"ENVID") {
            envid = p.value;
        }
    }
    let Some((start, end, (certifier, timeout))) = mtrk else {
        return Mail::Unchanged;
    };
    // The spaces before the token go with it, so that nothing is left where it was.
    let cut_from = line[..start]
        .iter()
        .rposition(|&c| c != b' ')
        .map_or(0, |i| i + 1);
    let mut spliced = Vec::with_capacity(line.len());
    spliced.extend_from_slice(&line[..cut_from]);
    if end < line.len() {
        // A parameter follows: keep one separator (the first of those before MTRK).
        spliced.extend_from_slice(&line[cut_from..start.min(cut_from + 1)]);
        let rest = &line[end..];
        let skip = rest.iter().take_while(|&&c| c == b' ').count();
        spliced.extend_from_slice(&rest[skip..]);
    }
    let tracking = match (envid, decode_hash(certifier)) {
        (None, _) => Err(Untracked::NoEnvid),
        (Some(e), _) if !is_envid(e) => Err(Untracked::BadEnvid),
        (_, None) => Err(Untracked::BadCertifier),
        (Some(e), Some(hash)) => Ok(Tracking {
            envid: e.into(),
            hash,
            timeout,
        }),
    };
    Mail::Spliced {
        line: spliced,
        tracking,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::secret::{encode, sha1};

    /// The certifier of `secret` as RFC 3885 writes it: base64 of the hash, without `=`.
    fn certifier(secret: &[u8]) -> String {
        encode(&sha1(secret)).trim_end_matches('=').to_string()
    }

    fn spliced(line: &str) -> (String, Result<Tracking, Untracked>) {
        match splice(line.as_bytes()) {
            Mail::Spliced { line, tracking } => (String::from_utf8(line).unwrap(), tracking),
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn mtrk_first_middle_and_last_is_cut_and_nothing_else_changes() {
        let c = certifier(b"s3cret");
        let want = Tracking {
            envid: b"QQ314159".as_slice().into(),
            hash: sha1(b"s3cret"),
            timeout: Some(3600),
        };
        for (line, forwarded) in [
            (
                format!("MAIL FROM:<a@example.org> MTRK={c}:3600 ENVID=QQ314159 RET=HDRS"),
                "MAIL FROM:<a@example.org> ENVID=QQ314159 RET=HDRS",
            ),
            (
                format!("MAIL FROM:<a@example.org> ENVID=QQ314159 MTRK={c}:3600 RET=HDRS"),
                "MAIL FROM:<a@example.org> ENVID=QQ314159 RET=HDRS",
            ),
            (
                format!("MAIL FROM:<a@example.org> ENVID=QQ314159 RET=HDRS MTRK={c}:3600"),
                "MAIL FROM:<a@example.org> ENVID=QQ314159 RET=HDRS",
            ),
            (
                format!("mail from:<a@example.org>  size=10  mtrk={c}:3600  envid=QQ314159"),
                "mail from:<a@example.org>  size=10 envid=QQ314159",
            ),
        ] {
            let (got, tracking) = spliced(&line);
            assert_eq!(got, forwarded, "{line}");
            assert_eq!(tracking, Ok(want.clone()), "{line}");
        }
    }

    #[test]
    fn an_utf8_address_and_every_other_parameter_pass_byte_for_byte() {
        let c = certifier(b"x");
        let line = format!(
            "MAIL FROM:<j\u{f6}rg@b\u{fc}cher.example> SMTPUTF8 BODY=8BITMIME MTRK={c} ENVID=a+2Bb"
        );
        let (got, tracking) = spliced(&line);
        assert_eq!(
            got,
            "MAIL FROM:<j\u{f6}rg@b\u{fc}cher.example> SMTPUTF8 BODY=8BITMIME ENVID=a+2Bb"
        );
        let t = tracking.unwrap();
        assert_eq!(&*t.envid, b"a+2Bb");
        assert_eq!(t.timeout, None);
    }

    #[test]
    fn a_quoted_path_holding_mtrk_is_not_a_parameter() {
        assert_eq!(
            splice(b"MAIL FROM:<\"MTRK=AAAA x\"@example.org> SIZE=1"),
            Mail::Unchanged
        );
    }

    #[test]
    fn malformed_or_repeated_mtrk_is_refused() {
        let c = certifier(b"x");
        for line in [
            format!("MAIL FROM:<a@b> ENVID=x MTRK={c} MTRK={c}"),
            format!("MAIL FROM:<a@b> ENVID=x MTRK={c} mtrk={c}"),
            format!("MAIL FROM:<a@b> ENVID=x MTRK={c}="),
            "MAIL FROM:<a@b> ENVID=x MTRK=".to_string(),
            "MAIL FROM:<a@b> ENVID=x MTRK".to_string(),
            "MAIL FROM:<a@b> ENVID=x MTRK=ab-c".to_string(),
            format!("MAIL FROM:<a@b> ENVID=x MTRK={c}:"),
            format!("MAIL FROM:<a@b> ENVID=x MTRK={c}:1234567890"),
            format!("MAIL FROM:<a@b> ENVID=x MTRK={c}:12a"),
            format!("MAIL FROM:<a@b> ENVID=x MTRK=:{c}"),
        ] {
            assert!(
                matches!(splice(line.as_bytes()), Mail::Malformed(_)),
                "{line}"
            );
        }
    }

    #[test]
    fn untracked_reasons() {
        let c = certifier(b"x");
        assert_eq!(
            spliced(&format!("MAIL FROM:<a@b> MTRK={c}")),
            ("MAIL FROM:<a@b>".to_string(), Err(Untracked::NoEnvid))
        );
        assert_eq!(
            spliced("MAIL FROM:<a@b> ENVID=e MTRK=QUJD").1,
            Err(Untracked::BadCertifier)
        );
        let long = "e".repeat(101);
        assert_eq!(
            spliced(&format!("MAIL FROM:<a@b> ENVID={long} MTRK={c}")).1,
            Err(Untracked::BadEnvid)
        );
        assert_eq!(
            spliced(&format!("MAIL FROM:<a@b> ENVID=a+ MTRK={c}")).1,
            Err(Untracked::BadEnvid)
        );
    }

    #[test]
    fn no_mtrk_or_no_readable_path_forwards_unchanged() {
        assert_eq!(splice(b"MAIL FROM:<a@b> ENVID=x RET=FULL"), Mail::Unchanged);
        assert_eq!(splice(b"MAIL FROM:a@b MTRK=x"), Mail::Unchanged);
        assert_eq!(splice(b"MAIL"), Mail::Unchanged);
    }
}
