//! Server status lines (RFC 3887 section 2.3): the fixed responses, built once, and the
//! greeting. Tracking bodies are rendered by the index, not here.

use super::command::BadCommand;

/// `QUIT`'s answer.
pub const BYE: &[u8] = b"+OK Bye\r\n";
/// `COMMENT`'s answer.
pub const COMMENT_OK: &[u8] = b"+OK\r\n";
/// TRACK for an unknown envid and TRACK with a wrong secret: one answer, so that TRACK does not
/// tell which envids exist.
pub const NOINFO: &[u8] = b"-ERR/noinfo No tracking information is available\r\n";
/// STARTTLS when no certificate is configured.
pub const TLS_UNSUPPORTED: &[u8] = b"-ERR/unsupported TLS is not available on this server\r\n";
/// STARTTLS accepted: the TLS handshake starts after this line.
pub const TLS_GO_AHEAD: &[u8] = b"+OK Begin TLS negotiation\r\n";
/// STARTTLS under TLS.
pub const TLS_IN_PROGRESS: &[u8] = b"-BAD/tls-in-progress TLS is already active\r\n";
/// STARTTLS naming a host no certificate is for.
pub const TLS_BAD_FQDN: &[u8] = b"-BAD/bad-fqdn No certificate for that name\r\n";
/// TRACK before STARTTLS when `--tls-required`.
pub const TLS_REQUIRED: &[u8] = b"-ERR/tls-required Use STARTTLS before TRACK\r\n";
/// The last answer to a client that sent too many bad commands in a row.
pub const TOO_MANY_ERRORS: &[u8] = b"-ERR/too-many-errors Too many bad commands, closing\r\n";
/// The greeting to a connection over the connection limit, before it is closed.
pub const TOO_MANY_CONNECTIONS: &[u8] =
    b"-TEMP/MTQP/unavailable Too many connections, try again later\r\n";
/// The greeting to a connection whose address has too many open, before it is closed.
pub const TOO_MANY_FROM_ADDRESS: &[u8] =
    b"-TEMP/MTQP/unavailable Too many connections from your address, try again later\r\n";
/// Sent to idle connections that the server closes.
pub const IDLE_TIMEOUT: &[u8] = b"-TEMP/unavailable Idle for too long, closing\r\n";

/// The `-BAD` answer for a line that is not a valid command.
pub fn bad(reason: BadCommand) -> &'static [u8] {
    match reason {
        BadCommand::LineTooLong => b"-BAD/line-too-long Command line longer than 998 octets\r\n",
        BadCommand::InvalidOctet => b"-BAD/invalid-octet Commands are printable ASCII\r\n",
        BadCommand::UnknownCommand => b"-BAD/unknown-command Unrecognized command\r\n",
        BadCommand::WrongArguments => b"-BAD/syntax Wrong number of arguments\r\n",
        BadCommand::BadEnvid => b"-BAD/syntax Envid is not xtext of 1 to 100 octets\r\n",
        BadCommand::BadSecret => b"-BAD/syntax Secret is not base64\r\n",
        BadCommand::BadFqdn => b"-BAD/syntax Parameter is not a fully qualified domain name\r\n",
    }
}

/// The initial status response (RFC 3887 section 3): `+OK/MTQP` without options, `+OK+/MTQP`
/// followed by one option a line and `.` with them.
pub fn greeting(hostname: &str, options: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + hostname.len());
    if options.is_empty() {
        out.extend_from_slice(b"+OK/MTQP ");
    } else {
        out.extend_from_slice(b"+OK+/MTQP ");
    }
    out.extend_from_slice(hostname.as_bytes());
    out.extend_from_slice(b" MTQP server ready\r\n");
    if !options.is_empty() {
        let mut body = Vec::new();
        for option in options {
            body.extend_from_slice(option.as_bytes());
            body.extend_from_slice(b"\r\n");
        }
        super::dotstuff::stuff_append(&body, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::{parse_status, Indicator};

    #[test]
    fn greeting_without_and_with_options() {
        assert_eq!(
            greeting("mx.example", &[]),
            b"+OK/MTQP mx.example MTQP server ready\r\n"
        );
        assert_eq!(
            greeting("mx.example", &["STARTTLS required"]),
            b"+OK+/MTQP mx.example MTQP server ready\r\nSTARTTLS required\r\n.\r\n"
        );
    }

    #[test]
    fn every_fixed_line_is_a_well_formed_status_line() {
        let all = [
            BYE,
            COMMENT_OK,
            NOINFO,
            TLS_UNSUPPORTED,
            TLS_GO_AHEAD,
            TLS_IN_PROGRESS,
            TLS_BAD_FQDN,
            TLS_REQUIRED,
            TOO_MANY_ERRORS,
            TOO_MANY_CONNECTIONS,
            TOO_MANY_FROM_ADDRESS,
            IDLE_TIMEOUT,
            bad(BadCommand::LineTooLong),
            bad(BadCommand::InvalidOctet),
            bad(BadCommand::UnknownCommand),
            bad(BadCommand::WrongArguments),
            bad(BadCommand::BadEnvid),
            bad(BadCommand::BadSecret),
            bad(BadCommand::BadFqdn),
        ];
        for line in all {
            let text = line.strip_suffix(b"\r\n").expect("CRLF");
            assert!(text.len() <= crate::MAX_LINE);
            let status = parse_status(text).expect("parses");
            assert_ne!(status.indicator, Indicator::OkMulti);
        }
        assert!(parse_status(NOINFO.strip_suffix(b"\r\n").unwrap())
            .unwrap()
            .has_code("noinfo"));
    }
}
