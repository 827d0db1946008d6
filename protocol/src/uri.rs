//! The `mtqp` URI scheme (RFC 3887 section 9): `mtqp://<mserver>[:<port>]/track/<envid>/<secret>`
//! parsed into what a client needs to connect and send TRACK. The secret may be left out
//! (`.../track/<envid>`): a URI is often a command-line argument, which other users of the host
//! can read, so a client takes the secret from elsewhere then.
//!
//! Parsing is strict: anything this module accepts is a TRACK the server can parse (the envid is
//! xtext of 1 to 100 octets, the secret is base64), so a typo is reported against the URI, not
//! discovered as a `-BAD` from the server. No name resolution happens here.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::command::{is_envid, strip_angle_brackets};
use super::secret::hash_secret;

/// The MTQP port (RFC 3887 section 10), used when the URI names none.
pub const DEFAULT_PORT: u16 = 1038;

/// A parsed `mtqp://` URI.
///
/// `Debug` leaves the secret out: it is a bearer credential for the message's tracking
/// information and must not end up in logs by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct TrackUri {
    /// The server: a host name, an IPv4 address, or an IPv6 address (without its brackets).
    pub host: String,
    /// The TCP port; [`DEFAULT_PORT`] when the URI has none.
    pub port: u16,
    /// The unique-envid in its xtext form, percent-decoded, without surrounding `<>`.
    pub envid: String,
    /// The base64 secret A, percent-decoded; None when the URI leaves it out.
    pub secret: Option<String>,
}

impl fmt::Debug for TrackUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackUri")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("envid", &self.envid)
            .field("secret", &"(hidden)")
            .finish()
    }
}

/// Why a string is not a usable `mtqp://` URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriError {
    /// A space, a control character or a non-ASCII character (they must be `%XX`).
    InvalidCharacter,
    /// The URI does not start with `mtqp://`.
    Scheme,
    /// Nothing between `mtqp://` and the path.
    EmptyHost,
    /// The server is neither a host name, nor an IPv4 address, nor a bracketed IPv6 address.
    BadHost,
    /// User information (`user@`) before the host, which MTQP has no use for.
    UserInfo,
    /// The port is not a number from 1 to 65535.
    BadPort,
    /// The path does not start with `/track/`.
    BadPath,
    /// Not `<envid>` or `<envid>/<secret>` (non-empty segments) after `/track/`.
    Segments,
    /// A raw `?`: RFC 3887 section 9.4 has it written `%3F` inside the envid or the secret.
    Query,
    /// A raw `#`, which would start a fragment; `%23` is the way to write it.
    Fragment,
    /// A `%` not followed by two hexadecimal digits.
    BadEscape,
    /// The envid is not xtext of 1 to 100 octets (RFC 3885).
    BadEnvid,
    /// The secret is not base64.
    BadSecret,
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UriError::InvalidCharacter => {
                "spaces, control and non-ASCII characters must be written as %XX"
            }
            UriError::Scheme => "the URI must start with mtqp://",
            UriError::EmptyHost => "the URI names no server",
            UriError::BadHost => {
                "the server must be a host name, an IPv4 address or an [IPv6] address"
            }
            UriError::UserInfo => "user information (user@) is not part of an mtqp URI",
            UriError::BadPort => "the port must be a number from 1 to 65535",
            UriError::BadPath => "the path must start with /track/",
            UriError::Segments => "the path must be /track/<envid>[/<secret>]",
            UriError::Query => "a '?' in the envid or the secret must be written %3F",
            UriError::Fragment => "a '#' in the envid or the secret must be written %23",
            UriError::BadEscape => "'%' must be followed by two hexadecimal digits",
            UriError::BadEnvid => "the envid must be xtext of 1 to 100 octets",
            UriError::BadSecret => "the secret must be base64",
        })
    }
}

impl std::error::Error for UriError {}

/// Parses an `mtqp://` URI (RFC 3887 section 9).
pub fn parse(uri: &str) -> Result<TrackUri, UriError> {
    // Only printable ASCII can appear in a URI; everything else has to arrive percent-encoded.
    if !uri.bytes().all(|c| c.is_ascii_graphic()) {
        return Err(UriError::InvalidCharacter);
    }
    const SCHEME: &str = "mtqp://";
    // Schemes are case-insensitive (RFC 3986 section 3.1). The URI is ASCII, so byte
    // positions are character positions and the slicing below cannot split a character.
    if uri.len() < SCHEME.len() || !uri[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return Err(UriError::Scheme);
    }
    let rest = &uri[SCHEME.len()..];
    // A raw '?' or '#' ends the path in RFC 3986, so it cannot be part of envid or secret; say
    // so rather than silently dropping what follows.
    if rest.contains('?') {
        return Err(UriError::Query);
    }
    if rest.contains('#') {
        return Err(UriError::Fragment);
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = parse_authority(authority)?;

    const TRACK: &str = "/track/";
    if path.len() < TRACK.len() || !path[..TRACK.len()].eq_ignore_ascii_case(TRACK) {
        return Err(UriError::BadPath);
    }
    let mut segments = path[TRACK.len()..].split('/');
    let (Some(envid), secret, None) = (segments.next(), segments.next(), segments.next()) else {
        return Err(UriError::Segments);
    };
    if envid.is_empty() || secret.is_some_and(str::is_empty) {
        return Err(UriError::Segments);
    }

    let envid = percent_decode(envid)?;
    let envid = strip_angle_brackets(&envid);
    if !is_envid(envid) {
        return Err(UriError::BadEnvid);
    }
    let secret = secret.map(percent_decode).transpose()?;
    if secret.as_ref().is_some_and(|s| hash_secret(s).is_none()) {
        return Err(UriError::BadSecret);
    }
    Ok(TrackUri {
        host,
        port,
        // Both checks above admit printable ASCII only, so these conversions cannot fail.
        envid: String::from_utf8(envid.to_vec()).map_err(|_| UriError::BadEnvid)?,
        secret: secret
            .map(String::from_utf8)
            .transpose()
            .map_err(|_| UriError::BadSecret)?,
    })
}

/// `host[:port]` or `[ipv6][:port]`.
fn parse_authority(authority: &str) -> Result<(String, u16), UriError> {
    if authority.is_empty() {
        return Err(UriError::EmptyHost);
    }
    if authority.contains('@') {
        return Err(UriError::UserInfo);
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let close = bracketed.find(']').ok_or(UriError::BadHost)?;
        let literal = &bracketed[..close];
        // Zone identifiers (`%25eth0`) and IPvFuture are not accepted: the parse below refuses
        // anything but a plain IPv6 address.
        let addr: Ipv6Addr = literal.parse().map_err(|_| UriError::BadHost)?;
        let after = &bracketed[close + 1..];
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(UriError::BadHost)?),
        };
        (addr.to_string(), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err(UriError::EmptyHost);
        }
        if host.parse::<Ipv4Addr>().is_err() && !is_host_name(host) {
            return Err(UriError::BadHost);
        }
        (host.to_string(), port)
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => parse_port(p)?,
    };
    Ok((host, port))
}

fn parse_port(text: &str) -> Result<u16, UriError> {
    // `u16::from_str` would accept a leading '+'; a URI port is digits only.
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|c| c.is_ascii_digit()) {
        return Err(UriError::BadPort);
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(UriError::BadPort),
        Ok(port) => Ok(port),
    }
}

/// A DNS host name: labels of letters, digits and inner hyphens, at most 63 octets each and 253
/// in all, an optional trailing dot. One label (`localhost`) is allowed here; STARTTLS, which
/// needs a fully qualified name, checks that on its own.
fn is_host_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Undoes `%XX` escapes (either case of hex digit); a `%` without two hex digits is an error.
fn percent_decode(segment: &str) -> Result<Vec<u8>, UriError> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).and_then(|&c| (c as char).to_digit(16));
            let lo = bytes.get(i + 2).and_then(|&c| (c as char).to_digit(16));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(UriError::BadEscape);
            };
            // Two hex digits are at most 0xFF, so the narrowing is exact.
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENVID: &str = "12345-20010101@example.com";
    const SECRET: &str = "YWJjZGVmZ2gK";

    fn uri(host: &str, port: u16, envid: &str, secret: &str) -> TrackUri {
        TrackUri {
            host: host.into(),
            port,
            envid: envid.into(),
            secret: Some(secret.into()),
        }
    }

    #[test]
    fn first_form_uses_the_default_port() {
        assert_eq!(
            parse(&format!("mtqp://example2.com/track/{ENVID}/{SECRET}")),
            Ok(uri("example2.com", 1038, ENVID, SECRET))
        );
    }

    #[test]
    fn second_form_names_the_port() {
        assert_eq!(
            parse(&format!("mtqp://example2.com:10380/track/{ENVID}/{SECRET}")),
            Ok(uri("example2.com", 10380, ENVID, SECRET))
        );
        assert_eq!(
            parse(&format!("mtqp://h.example:1/track/{ENVID}/{SECRET}")),
            Ok(uri("h.example", 1, ENVID, SECRET))
        );
        assert_eq!(
            parse(&format!("mtqp://h.example:65535/track/{ENVID}/{SECRET}")),
            Ok(uri("h.example", 65535, ENVID, SECRET))
        );
    }

    #[test]
    fn hosts_ipv4_ipv6_and_single_labels() {
        assert_eq!(
            parse(&format!("mtqp://127.0.0.1:1039/track/{ENVID}/{SECRET}")),
            Ok(uri("127.0.0.1", 1039, ENVID, SECRET))
        );
        assert_eq!(
            parse(&format!("mtqp://[::1]:1039/track/{ENVID}/{SECRET}")),
            Ok(uri("::1", 1039, ENVID, SECRET))
        );
        assert_eq!(
            parse(&format!("mtqp://[2001:DB8::1]/track/{ENVID}/{SECRET}")),
            Ok(uri("2001:db8::1", 1038, ENVID, SECRET))
        );
        assert_eq!(
            parse(&format!("mtqp://localhost/track/{ENVID}/{SECRET}")),
            Ok(uri("localhost", 1038, ENVID, SECRET))
        );
        assert_eq!(
            parse(&format!("mtqp://mx-1.example.com./track/{ENVID}/{SECRET}")),
            Ok(uri("mx-1.example.com.", 1038, ENVID, SECRET))
        );
    }

    #[test]
    fn scheme_and_track_are_case_insensitive_but_envid_and_secret_are_not() {
        assert_eq!(
            parse("MTQP://Example2.com/TRACK/AbC@Example.com/YWJjZGVmZ2gK"),
            Ok(uri("Example2.com", 1038, "AbC@Example.com", SECRET))
        );
        assert_eq!(
            parse("Mtqp://h.example/TrAcK/x@y/YWJj"),
            Ok(uri("h.example", 1038, "x@y", "YWJj"))
        );
    }

    #[test]
    fn percent_decoding_of_envid_and_secret() {
        // RFC 3887 section 9.4: '/', '?' and '%' are written %XX; either case of hex digit.
        assert_eq!(
            parse("mtqp://h.example/track/a%2Fb%3fc%25d@example.com/ab%2F%2bcd%2Fw"),
            Ok(uri("h.example", 1038, "a/b?c%d@example.com", "ab/+cd/w"))
        );
        // A '+' in the secret stays itself: this is not form encoding.
        assert_eq!(
            parse("mtqp://h.example/track/x@y/++%2F%2FYWJj"),
            Ok(uri("h.example", 1038, "x@y", "++//YWJj"))
        );
        // Unnecessary escapes are fine too.
        assert_eq!(
            parse("mtqp://h.example/track/%78@y/%59WJj"),
            Ok(uri("h.example", 1038, "x@y", "YWJj"))
        );
    }

    #[test]
    fn angle_brackets_around_the_envid_are_dropped() {
        assert_eq!(
            parse(&format!("mtqp://h.example/track/<{ENVID}>/{SECRET}")),
            Ok(uri("h.example", 1038, ENVID, SECRET))
        );
        assert_eq!(
            parse(&format!("mtqp://h.example/track/%3C{ENVID}%3E/{SECRET}")),
            Ok(uri("h.example", 1038, ENVID, SECRET))
        );
    }

    #[test]
    fn xtext_escapes_in_the_envid_stay_as_they_are() {
        // The envid travels in its xtext form; '+2B' is xtext for '+', not something to decode.
        assert_eq!(
            parse("mtqp://h.example/track/a+2Bb@y/YWJj"),
            Ok(uri("h.example", 1038, "a+2Bb@y", "YWJj"))
        );
    }

    #[test]
    fn the_secret_may_be_left_out() {
        let u = parse("mtqp://h.example/track/x@y").unwrap();
        assert_eq!((u.envid.as_str(), u.secret), ("x@y", None));
    }

    #[test]
    fn secret_is_never_printed_by_debug() {
        let u = uri("h.example", 1038, "x@y", "c2VjcmV0");
        assert!(!format!("{u:?}").contains("c2VjcmV0"));
    }

    #[test]
    fn each_error() {
        let cases: &[(&str, UriError)] = &[
            (
                "mtqp://h.example/track/x y@z/YWJj",
                UriError::InvalidCharacter,
            ),
            (
                "mtqp://h.example/track/x@y/YWJj\n",
                UriError::InvalidCharacter,
            ),
            (
                "mtqp://h.example/track/é@y/YWJj",
                UriError::InvalidCharacter,
            ),
            ("http://h.example/track/x@y/YWJj", UriError::Scheme),
            ("mtqp:/h.example/track/x@y/YWJj", UriError::Scheme),
            ("mtqp", UriError::Scheme),
            ("mtqp:///track/x@y/YWJj", UriError::EmptyHost),
            ("mtqp://:1038/track/x@y/YWJj", UriError::EmptyHost),
            ("mtqp://", UriError::EmptyHost),
            ("mtqp://h_x.example/track/x@y/YWJj", UriError::BadHost),
            ("mtqp://-h.example/track/x@y/YWJj", UriError::BadHost),
            ("mtqp://h..example/track/x@y/YWJj", UriError::BadHost),
            ("mtqp://[::1/track/x@y/YWJj", UriError::BadHost),
            ("mtqp://[::1]x/track/x@y/YWJj", UriError::BadHost),
            ("mtqp://[nothost]/track/x@y/YWJj", UriError::BadHost),
            ("mtqp://[fe80::1%25eth0]/track/x@y/YWJj", UriError::BadHost),
            ("mtqp://::1/track/x@y/YWJj", UriError::EmptyHost),
            ("mtqp://user@h.example/track/x@y/YWJj", UriError::UserInfo),
            ("mtqp://h.example:/track/x@y/YWJj", UriError::BadPort),
            ("mtqp://h.example:0/track/x@y/YWJj", UriError::BadPort),
            ("mtqp://h.example:65536/track/x@y/YWJj", UriError::BadPort),
            ("mtqp://h.example:+80/track/x@y/YWJj", UriError::BadPort),
            ("mtqp://h.example:http/track/x@y/YWJj", UriError::BadPort),
            ("mtqp://h.example:1:2/track/x@y/YWJj", UriError::BadPort),
            ("mtqp://[::1]:99999/track/x@y/YWJj", UriError::BadPort),
            ("mtqp://h.example", UriError::BadPath),
            ("mtqp://h.example/", UriError::BadPath),
            ("mtqp://h.example/tracks/x@y/YWJj", UriError::BadPath),
            ("mtqp://h.example/query/x@y/YWJj", UriError::BadPath),
            ("mtqp://h.example/track", UriError::BadPath),
            ("mtqp://h.example/track/", UriError::Segments),
            ("mtqp://h.example/track/x@y/", UriError::Segments),
            ("mtqp://h.example/track//YWJj", UriError::Segments),
            ("mtqp://h.example/track/x@y/YWJj/", UriError::Segments),
            ("mtqp://h.example/track/a/b@y/YWJj", UriError::Segments),
            ("mtqp://h.example/track/x@y/YWJj?x=1", UriError::Query),
            ("mtqp://h.example/track/x?y/YWJj", UriError::Query),
            ("mtqp://h.example/track/x@y/YWJj#top", UriError::Fragment),
            ("mtqp://h.example/track/x%2@y/YWJj", UriError::BadEscape),
            ("mtqp://h.example/track/x@y/YWJj%", UriError::BadEscape),
            ("mtqp://h.example/track/x%zz@y/YWJj", UriError::BadEscape),
            ("mtqp://h.example/track/x%20y/YWJj", UriError::BadEnvid),
            ("mtqp://h.example/track/x=y/YWJj", UriError::BadEnvid),
            ("mtqp://h.example/track/x+zzy/YWJj", UriError::BadEnvid),
            ("mtqp://h.example/track/%3C%3E/YWJj", UriError::BadEnvid),
            ("mtqp://h.example/track/x%00y/YWJj", UriError::BadEnvid),
            ("mtqp://h.example/track/x@y/Y", UriError::BadSecret),
            ("mtqp://h.example/track/x@y/YW!j", UriError::BadSecret),
            ("mtqp://h.example/track/x@y/YW%20Jj", UriError::BadSecret),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Err(*want), "{text}");
        }
        let long = "a".repeat(101);
        assert_eq!(
            parse(&format!("mtqp://h.example/track/{long}/YWJj")),
            Err(UriError::BadEnvid)
        );
        assert_eq!(
            parse(&format!("mtqp://h.example/track/{}/YWJj", &long[..100])),
            Ok(uri("h.example", 1038, &long[..100], "YWJj"))
        );
    }

    #[test]
    fn every_error_has_a_message() {
        for e in [
            UriError::InvalidCharacter,
            UriError::Scheme,
            UriError::EmptyHost,
            UriError::BadHost,
            UriError::UserInfo,
            UriError::BadPort,
            UriError::BadPath,
            UriError::Segments,
            UriError::Query,
            UriError::Fragment,
            UriError::BadEscape,
            UriError::BadEnvid,
            UriError::BadSecret,
        ] {
            assert!(!e.to_string().is_empty());
        }
    }
}
