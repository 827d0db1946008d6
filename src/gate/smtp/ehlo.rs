//! The EHLO reply the client sees: the MTA's, with only the extensions the gate carries. An
//! allow-list, not a block-list: an extension the gate does not know (CHUNKING, XCLIENT,
//! XFORWARD, AUTH, ETRN, a new one) is one whose commands it would answer `502`, so it must not
//! be offered. STARTTLS is the gate's own (the MTA's TLS cannot work through a gate that reads
//! the commands), and MTRK is added where the MTA offers DSN, which MTRK needs (RFC 3885).

/// The MTA's extensions the gate passes on.
const CARRIED: [&[u8]; 7] = [
    b"SIZE",
    b"8BITMIME",
    b"SMTPUTF8",
    b"PIPELINING",
    b"ENHANCEDSTATUSCODES",
    b"DSN",
    b"VRFY",
];

/// Rewrites a complete `250` EHLO reply: the first line as the MTA sent it, then the carried
/// extensions in the MTA's order, then `STARTTLS` when `starttls`, then `MTRK` when DSN was
/// among them. Every line ends with CRLF. A reply that is not `250` is returned as it is.
pub fn edit(reply: &[u8], starttls: bool) -> Vec<u8> {
    if !reply.starts_with(b"250") {
        return reply.to_vec();
    }
    let mut lines = reply
        .split(|&c| c == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or(b"250");
    let mut keep: Vec<&[u8]> = Vec::new();
    let mut dsn = false;
    for line in lines {
        let text = line.get(4..).unwrap_or(b"");
        let keyword = text.split(|&c| c == b' ').next().unwrap_or(b"");
        if CARRIED.iter().any(|k| keyword.eq_ignore_ascii_case(k)) {
            dsn |= keyword.eq_ignore_ascii_case(b"DSN");
            keep.push(text);
        }
    }
    if starttls {
        keep.push(b"STARTTLS");
    }
    if dsn {
        keep.push(b"MTRK");
    }
    let mut out = Vec::with_capacity(reply.len() + 16);
    out.extend_from_slice(b"250");
    out.push(if keep.is_empty() { b' ' } else { b'-' });
    out.extend_from_slice(first.get(4..).unwrap_or(b""));
    out.extend_from_slice(b"\r\n");
    for (i, text) in keep.iter().enumerate() {
        out.extend_from_slice(if i + 1 == keep.len() {
            b"250 "
        } else {
            b"250-"
        });
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const POSTFIX: &[u8] = b"250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n\
        250-VRFY\r\n250-ETRN\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250-XCLIENT NAME ADDR\r\n\
        250-XFORWARD NAME ADDR\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n\
        250-SMTPUTF8\r\n250 CHUNKING\r\n";

    #[test]
    fn postfix_s_reply_keeps_the_carried_and_gains_mtrk() {
        assert_eq!(
            String::from_utf8(edit(POSTFIX, false)).unwrap(),
            "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n\
             250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 MTRK\r\n"
        );
        let with_tls = String::from_utf8(edit(POSTFIX, true)).unwrap();
        assert!(with_tls.ends_with("250-SMTPUTF8\r\n250-STARTTLS\r\n250 MTRK\r\n"));
    }

    #[test]
    fn no_dsn_no_mtrk() {
        assert_eq!(
            edit(b"250-mx\r\n250-SIZE\r\n250 CHUNKING\r\n", false),
            b"250-mx\r\n250 SIZE\r\n"
        );
        assert_eq!(
            edit(b"250-mx\r\n250 XCLIENT ADDR\r\n", false),
            b"250 mx\r\n"
        );
        assert_eq!(edit(b"250 mx\r\n", true), b"250-mx\r\n250 STARTTLS\r\n");
    }

    #[test]
    fn keywords_match_without_case_and_only_whole() {
        assert_eq!(
            edit(b"250-mx\r\n250-dsn\r\n250-DSNX\r\n250 size 1\n", false),
            b"250-mx\r\n250-dsn\r\n250-size 1\r\n250 MTRK\r\n"
        );
    }

    #[test]
    fn a_refusal_passes_as_it_is() {
        assert_eq!(edit(b"550 go away\r\n", true), b"550 go away\r\n");
    }
}
