//! Client commands (RFC 3887 sections 4–7 and 12), parsed in place: a [`Command`] borrows from
//! the line it came from and parsing never allocates.

use super::secret::{hash_secret, Hash};
use super::{MAX_ENVID, MAX_LINE};

/// One parsed client command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// `TRACK unique-envid mtrk-secret`. `envid` is the xtext form without surrounding `<>`;
    /// `secret_hash` is the SHA-1 of the decoded secret, ready to compare with the stored hash.
    Track { envid: &'a [u8], secret_hash: Hash },
    /// `STARTTLS domain`.
    Starttls { fqdn: &'a [u8] },
    /// `COMMENT [text]`; the text is ignored.
    Comment,
    /// `QUIT`.
    Quit,
}

/// Why a line is not a valid command. Each maps to one `-BAD` response (see [`super::reply`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadCommand {
    /// Longer than [`MAX_LINE`] octets before the line end.
    LineTooLong,
    /// NUL, another control octet, or a non-ASCII octet.
    InvalidOctet,
    /// An empty line or an unknown keyword.
    UnknownCommand,
    /// A known keyword with the wrong number of arguments.
    WrongArguments,
    /// TRACK with an envid that is not xtext of 1 to 100 octets.
    BadEnvid,
    /// TRACK with a secret that is not base64.
    BadSecret,
    /// STARTTLS with a parameter that is not a fully qualified domain name.
    BadFqdn,
}

impl BadCommand {
    /// Every reason, in the order statistics print them.
    pub const ALL: [BadCommand; 7] = [
        BadCommand::LineTooLong,
        BadCommand::InvalidOctet,
        BadCommand::UnknownCommand,
        BadCommand::WrongArguments,
        BadCommand::BadEnvid,
        BadCommand::BadSecret,
        BadCommand::BadFqdn,
    ];

    /// A short name for counters.
    pub fn name(self) -> &'static str {
        match self {
            BadCommand::LineTooLong => "line-too-long",
            BadCommand::InvalidOctet => "invalid-octet",
            BadCommand::UnknownCommand => "unknown-command",
            BadCommand::WrongArguments => "wrong-arguments",
            BadCommand::BadEnvid => "bad-envid",
            BadCommand::BadSecret => "bad-secret",
            BadCommand::BadFqdn => "bad-fqdn",
        }
    }
}

/// The kind of a command, for statistics; `Bad` covers every line that did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    Track,
    Starttls,
    Comment,
    Quit,
    Bad,
}

impl CommandKind {
    /// Every kind, in the order statistics print them.
    pub const ALL: [CommandKind; 5] = [
        CommandKind::Track,
        CommandKind::Starttls,
        CommandKind::Comment,
        CommandKind::Quit,
        CommandKind::Bad,
    ];

    /// The keyword, as statistics print it.
    pub fn name(self) -> &'static str {
        match self {
            CommandKind::Track => "TRACK",
            CommandKind::Starttls => "STARTTLS",
            CommandKind::Comment => "COMMENT",
            CommandKind::Quit => "QUIT",
            CommandKind::Bad => "(bad)",
        }
    }
}

impl Command<'_> {
    /// The kind of this command.
    pub fn kind(&self) -> CommandKind {
        match self {
            Command::Track { .. } => CommandKind::Track,
            Command::Starttls { .. } => CommandKind::Starttls,
            Command::Comment => CommandKind::Comment,
            Command::Quit => CommandKind::Quit,
        }
    }
}

fn is_wsp(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// Splits on runs of SP/TAB without allocating.
struct Words<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let start = self.rest.iter().position(|&c| !is_wsp(c))?;
        let rest = &self.rest[start..];
        let end = rest.iter().position(|&c| is_wsp(c)).unwrap_or(rest.len());
        self.rest = &rest[end..];
        Some(&rest[..end])
    }
}

/// Parses one command line, given without its line end (the caller strips LF and one CR).
pub fn parse(line: &[u8]) -> Result<Command<'_>, BadCommand> {
    if line.len() > MAX_LINE {
        return Err(BadCommand::LineTooLong);
    }
    if line
        .iter()
        .any(|&c| !(c == b'\t' || (b' '..=b'~').contains(&c)))
    {
        return Err(BadCommand::InvalidOctet);
    }
    let mut words = Words { rest: line };
    let keyword = words.next().ok_or(BadCommand::UnknownCommand)?;
    if keyword.eq_ignore_ascii_case(b"TRACK") {
        let (Some(envid), Some(secret), None) = (words.next(), words.next(), words.next()) else {
            return Err(BadCommand::WrongArguments);
        };
        let envid = strip_angle_brackets(envid);
        if !is_envid(envid) {
            return Err(BadCommand::BadEnvid);
        }
        let secret_hash = hash_secret(secret).ok_or(BadCommand::BadSecret)?;
        Ok(Command::Track { envid, secret_hash })
    } else if keyword.eq_ignore_ascii_case(b"STARTTLS") {
        let (Some(fqdn), None) = (words.next(), words.next()) else {
            return Err(BadCommand::WrongArguments);
        };
        if !is_fqdn(fqdn) {
            return Err(BadCommand::BadFqdn);
        }
        Ok(Command::Starttls { fqdn })
    } else if keyword.eq_ignore_ascii_case(b"COMMENT") {
        Ok(Command::Comment)
    } else if keyword.eq_ignore_ascii_case(b"QUIT") {
        match words.next() {
            None => Ok(Command::Quit),
            Some(_) => Err(BadCommand::WrongArguments),
        }
    } else {
        Err(BadCommand::UnknownCommand)
    }
}

/// The RFC 3887 examples send `<envid>`; the brackets are not part of the envid.
pub fn strip_angle_brackets(envid: &[u8]) -> &[u8] {
    match envid {
        [b'<', inner @ .., b'>'] => inner,
        _ => envid,
    }
}

/// True for a syntactically valid unique-envid: 1 to 100 octets of well-formed xtext.
pub fn is_envid(envid: &[u8]) -> bool {
    let mut buf = [0u8; MAX_ENVID];
    !envid.is_empty()
        && envid.len() <= MAX_ENVID
        && super::xtext::decode_into(envid, &mut buf).is_ok()
}

/// RFC 3887 `domain = sub-domain 1*("." sub-domain)`, sub-domain as in RFC 5321: letters,
/// digits and inner hyphens, at most 63 octets a label, 253 in all.
pub fn is_fqdn(name: &[u8]) -> bool {
    let name = name.strip_suffix(b".").unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let mut labels = 0;
    for label in name.split(|&c| c == b'.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || c == b'-')
            && label[0] != b'-'
            && label[label.len() - 1] != b'-';
        if !ok {
            return false;
        }
        labels += 1;
    }
    labels >= 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::sha1;

    #[test]
    fn track_with_and_without_brackets() {
        let want = Command::Track {
            envid: b"12345-20010101@example.com",
            secret_hash: sha1(b"abcdefgh\n"),
        };
        assert_eq!(
            parse(b"TRACK <12345-20010101@example.com> YWJjZGVmZ2gK"),
            Ok(want)
        );
        assert_eq!(
            parse(b"TRACK 12345-20010101@example.com YWJjZGVmZ2gK"),
            Ok(want)
        );
    }

    #[test]
    fn keywords_are_case_insensitive_and_wsp_runs_separate() {
        let want = Command::Track {
            envid: b"a@b",
            secret_hash: sha1(b"ABC"),
        };
        assert_eq!(parse(b"track a@b QUJD"), Ok(want));
        assert_eq!(parse(b"TrAcK\t\ta@b \t QUJD  "), Ok(want));
        assert_eq!(parse(b"  TRACK a@b QUJD"), Ok(want));
        assert_eq!(parse(b"quit"), Ok(Command::Quit));
        assert_eq!(parse(b"QUIT \t"), Ok(Command::Quit));
        assert_eq!(parse(b"comment"), Ok(Command::Comment));
        assert_eq!(
            parse(b"COMMENT anything at all: 1 2 3"),
            Ok(Command::Comment)
        );
        assert_eq!(parse(b"Comment\tx"), Ok(Command::Comment));
        assert_eq!(
            parse(b"starttls mtqp.example.com"),
            Ok(Command::Starttls {
                fqdn: b"mtqp.example.com"
            })
        );
        assert_eq!(
            parse(b"STARTTLS mtqp.example.com. "),
            Ok(Command::Starttls {
                fqdn: b"mtqp.example.com."
            })
        );
    }

    #[test]
    fn wrong_argument_counts() {
        assert_eq!(parse(b"TRACK"), Err(BadCommand::WrongArguments));
        assert_eq!(parse(b"TRACK a@b"), Err(BadCommand::WrongArguments));
        assert_eq!(
            parse(b"TRACK a@b QUJD extra"),
            Err(BadCommand::WrongArguments)
        );
        assert_eq!(parse(b"QUIT now"), Err(BadCommand::WrongArguments));
        assert_eq!(parse(b"STARTTLS"), Err(BadCommand::WrongArguments));
        assert_eq!(
            parse(b"STARTTLS a.example b.example"),
            Err(BadCommand::WrongArguments)
        );
    }

    #[test]
    fn unknown_and_empty() {
        assert_eq!(parse(b""), Err(BadCommand::UnknownCommand));
        assert_eq!(parse(b"   "), Err(BadCommand::UnknownCommand));
        assert_eq!(parse(b"HELO x"), Err(BadCommand::UnknownCommand));
        assert_eq!(parse(b"TRACKX a b"), Err(BadCommand::UnknownCommand));
        assert_eq!(parse(b"COMMENTS"), Err(BadCommand::UnknownCommand));
    }

    #[test]
    fn octets_outside_printable_ascii() {
        assert_eq!(parse(b"QUIT\0"), Err(BadCommand::InvalidOctet));
        assert_eq!(parse(b"COMMENT a\rb"), Err(BadCommand::InvalidOctet));
        assert_eq!(parse(b"COMMENT \x1b[2J"), Err(BadCommand::InvalidOctet));
        assert_eq!(parse("COMMENT é".as_bytes()), Err(BadCommand::InvalidOctet));
        assert_eq!(parse(b"COMMENT \x7f"), Err(BadCommand::InvalidOctet));
    }

    #[test]
    fn line_length_limit() {
        let mut line = b"COMMENT ".to_vec();
        line.resize(MAX_LINE, b'x');
        assert_eq!(parse(&line), Ok(Command::Comment));
        line.push(b'x');
        assert_eq!(parse(&line), Err(BadCommand::LineTooLong));
    }

    #[test]
    fn bad_envids() {
        assert_eq!(parse(b"TRACK <> QUJD"), Err(BadCommand::BadEnvid));
        assert_eq!(parse(b"TRACK a=b QUJD"), Err(BadCommand::BadEnvid));
        assert_eq!(parse(b"TRACK a+2 QUJD"), Err(BadCommand::BadEnvid));
        let long = format!("TRACK {} QUJD", "x".repeat(101));
        assert_eq!(parse(long.as_bytes()), Err(BadCommand::BadEnvid));
        let max = format!("TRACK {} QUJD", "x".repeat(100));
        assert!(parse(max.as_bytes()).is_ok());
        assert_eq!(
            parse(b"TRACK a+20b QUJD"),
            Ok(Command::Track {
                envid: b"a+20b",
                secret_hash: sha1(b"ABC")
            })
        );
    }

    #[test]
    fn bad_secrets() {
        assert_eq!(parse(b"TRACK a@b QU!D"), Err(BadCommand::BadSecret));
        assert_eq!(parse(b"TRACK a@b Q"), Err(BadCommand::BadSecret));
        assert_eq!(parse(b"TRACK a@b QU=D"), Err(BadCommand::BadSecret));
    }

    #[test]
    fn fqdns() {
        for good in [
            &b"a.b"[..],
            b"mtqp.example.com",
            b"x-1.example",
            b"example.com.",
        ] {
            assert!(is_fqdn(good), "{}", String::from_utf8_lossy(good));
        }
        for bad in [
            &b"localhost"[..],
            b"",
            b".",
            b"a..b",
            b"-a.b",
            b"a-.b",
            b"a_b.c",
            b"*.example.com",
        ] {
            assert!(!is_fqdn(bad), "{}", String::from_utf8_lossy(bad));
        }
        let long_label = format!("{}.com", "a".repeat(64));
        assert!(!is_fqdn(long_label.as_bytes()));
        assert_eq!(parse(b"STARTTLS localhost"), Err(BadCommand::BadFqdn));
    }
}
