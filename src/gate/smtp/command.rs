//! Client command lines: the verb, and the path and ORCPT of RCPT. A line here is one command
//! without its line end.

/// The verbs the gate knows. Everything else is [`Verb::Other`], answered `502` by the gate and
/// never forwarded: the MTA trusts the gate, so an XCLIENT or XFORWARD that reached it would let
/// any client claim any address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Helo,
    Ehlo,
    Mail,
    Rcpt,
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    StartTls,
    Other,
}

impl Verb {
    /// The verb of a command line (case-insensitive; a verb ends at a space or the line end).
    pub fn of(line: &[u8]) -> Verb {
        let end = memchr::memchr(b' ', line).unwrap_or(line.len());
        let word = &line[..end];
        const VERBS: [(&[u8], Verb); 12] = [
            (b"HELO", Verb::Helo),
            (b"EHLO", Verb::Ehlo),
            (b"MAIL", Verb::Mail),
            (b"RCPT", Verb::Rcpt),
            (b"DATA", Verb::Data),
            (b"RSET", Verb::Rset),
            (b"NOOP", Verb::Noop),
            (b"QUIT", Verb::Quit),
            (b"VRFY", Verb::Vrfy),
            (b"EXPN", Verb::Expn),
            (b"HELP", Verb::Help),
            (b"STARTTLS", Verb::StartTls),
        ];
        VERBS
            .iter()
            .find(|(name, _)| word.eq_ignore_ascii_case(name))
            .map_or(Verb::Other, |(_, verb)| *verb)
    }

    /// The name the statistics use.
    pub fn name(self) -> &'static str {
        match self {
            Verb::Helo => "HELO",
            Verb::Ehlo => "EHLO",
            Verb::Mail => "MAIL",
            Verb::Rcpt => "RCPT",
            Verb::Data => "DATA",
            Verb::Rset => "RSET",
            Verb::Noop => "NOOP",
            Verb::Quit => "QUIT",
            Verb::Vrfy => "VRFY",
            Verb::Expn => "EXPN",
            Verb::Help => "HELP",
            Verb::StartTls => "STARTTLS",
            Verb::Other => "other",
        }
    }
}

/// True when a command line holds only octets a command may: no control characters but tab
/// (a bare CR inside a line is where two SMTP implementations start to disagree), no DEL.
/// Octets above 127 pass: SMTPUTF8 addresses are UTF-8.
pub fn is_clean(line: &[u8]) -> bool {
    line.iter().all(|&c| c == b'\t' || (c >= b' ' && c != 0x7f))
}

/// The end (exclusive) of the path that starts `s` with `<`: the matching `>`, skipping what a
/// quoted local part (`"a>b"@x`, with `\` escapes) holds. None when `s` holds no whole path.
pub fn path_end(s: &[u8]) -> Option<usize> {
    if s.first() != Some(&b'<') {
        return None;
    }
    let mut quoted = false;
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'>' if !quoted => return Some(i + 1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The argument of `MAIL FROM:` or `RCPT TO:` after `prefix` (`FROM:` or `TO:`, matched without
/// regard to case, spaces allowed after the colon as Postfix allows): the path with its angle
/// brackets, and the parameters after it with their start in `line`.
pub fn split_path<'a>(line: &'a [u8], prefix: &[u8]) -> Option<(&'a [u8], usize)> {
    // "MAIL " / "RCPT ": both verbs are four letters.
    let rest = line.get(5..)?;
    if rest.len() < prefix.len() || !rest[..prefix.len()].eq_ignore_ascii_case(prefix) {
        return None;
    }
    let start = 5
        + prefix.len()
        + rest[prefix.len()..]
            .iter()
            .take_while(|&&c| c == b' ')
            .count();
    let end = start + path_end(&line[start..])?;
    Some((&line[start..end], end))
}

/// One `keyword[=value]` parameter after a path, with where it starts and ends in the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    pub keyword: &'a [u8],
    pub value: Option<&'a [u8]>,
    pub start: usize,
    pub end: usize,
}

/// The parameters of a command line from `from` on, split at spaces.
pub fn params(line: &[u8], from: usize) -> impl Iterator<Item = Param<'_>> {
    let mut at = from;
    std::iter::from_fn(move || {
        while line.get(at) == Some(&b' ') {
            at += 1;
        }
        if at >= line.len() {
            return None;
        }
        let start = at;
        let end = start + memchr::memchr(b' ', &line[start..]).unwrap_or(line.len() - start);
        at = end;
        let token = &line[start..end];
        let (keyword, value) = match memchr::memchr(b'=', token) {
            Some(eq) => (&token[..eq], Some(&token[eq + 1..])),
            None => (token, None),
        };
        Some(Param {
            keyword,
            value,
            start,
            end,
        })
    })
}

/// What the gate keeps of an accepted RCPT: the address between the angle brackets, and the
/// ORCPT value as the client gave it (`type;xtext`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rcpt {
    pub address: Box<[u8]>,
    pub orcpt: Option<Box<[u8]>>,
}

/// Longest address or ORCPT value the gate keeps (RFC 5321 allows a 256-octet path; ORCPT's
/// xtext may triple an address).
pub const MAX_RCPT_VALUE: usize = 1024;

/// The recipient of a `RCPT TO:<…> [params]` line, or None when the line has no path the gate
/// can read (the MTA judges such a line itself).
pub fn rcpt(line: &[u8]) -> Option<Rcpt> {
    let (path, after) = split_path(line, b"TO:")?;
    let address = &path[1..path.len() - 1];
    if address.is_empty() || address.len() > MAX_RCPT_VALUE {
        return None;
    }
    let orcpt = params(line, after)
        .find(|p| p.keyword.eq_ignore_ascii_case(b"ORCPT"))
        .and_then(|p| p.value)
        .filter(|v| !v.is_empty() && v.len() <= MAX_RCPT_VALUE && memchr::memchr(b';', v).is_some())
        .map(Box::from);
    Some(Rcpt {
        address: address.into(),
        orcpt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_are_case_insensitive_and_whole_words() {
        assert_eq!(Verb::of(b"ehlo client.example"), Verb::Ehlo);
        assert_eq!(Verb::of(b"MAIL FROM:<a@b>"), Verb::Mail);
        assert_eq!(Verb::of(b"StartTLS"), Verb::StartTls);
        assert_eq!(Verb::of(b"XCLIENT ADDR=1.2.3.4"), Verb::Other);
        assert_eq!(Verb::of(b"XFORWARD NAME=x"), Verb::Other);
        assert_eq!(Verb::of(b"BDAT 10 LAST"), Verb::Other);
        assert_eq!(Verb::of(b"DATAX"), Verb::Other);
        assert_eq!(Verb::of(b""), Verb::Other);
    }

    #[test]
    fn control_characters_make_a_line_unclean() {
        assert!(is_clean(b"MAIL FROM:<\xc3\xa9@example.org> SMTPUTF8"));
        assert!(is_clean(b"NOOP\tx"));
        assert!(!is_clean(b"MAIL FROM:<a@b>\rRCPT TO:<c@d>"));
        assert!(!is_clean(b"NOOP \x00"));
        assert!(!is_clean(b"NOOP \x7f"));
    }

    #[test]
    fn a_quoted_local_part_may_hold_an_angle_bracket() {
        assert_eq!(path_end(b"<a@b> SIZE=1"), Some(5));
        assert_eq!(path_end(b"<\"x>y\"@b> X"), Some(9));
        assert_eq!(path_end(b"<\"x\\\">y\"@b>"), Some(11));
        assert_eq!(path_end(b"<a@b"), None);
        assert_eq!(path_end(b"a@b>"), None);
    }

    #[test]
    fn rcpt_keeps_the_address_and_orcpt() {
        let r =
            rcpt(b"RCPT TO:<User@Example.org> NOTIFY=SUCCESS ORCPT=rfc822;user+2Bx@example.org")
                .unwrap();
        assert_eq!(&*r.address, b"User@Example.org");
        assert_eq!(
            r.orcpt.as_deref(),
            Some(&b"rfc822;user+2Bx@example.org"[..])
        );
        let r = rcpt(b"rcpt to: <\"a b\"@example.org>").unwrap();
        assert_eq!(&*r.address, b"\"a b\"@example.org");
        assert_eq!(r.orcpt, None);
        assert_eq!(
            rcpt(b"RCPT TO:<a@b> ORCPT=nosemicolon").unwrap().orcpt,
            None
        );
        assert_eq!(rcpt(b"RCPT TO:a@b"), None);
        assert_eq!(rcpt(b"RCPT TO:<>"), None);
        assert_eq!(rcpt(b"RCPT"), None);
    }
}
