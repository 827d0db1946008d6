//! One MTQP session as the client runs it: greeting and options (RFC 3887 section 3), STARTTLS
//! when offered or forced (section 6), TRACK (section 4), QUIT (section 7).
//!
//! The client keeps no state between runs: each run decides about TLS from the greeting it gets
//! now (and `--starttls`), never from what a server offered before. Once TLS is attempted there
//! is no way back to plaintext: a refused or failed STARTTLS ends the run with an error.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, RootCertStore};

use super::connection::{printable, Connection};
use super::tls;
use mtqp_protocol::command::is_fqdn;
use mtqp_protocol::response::{parse_status, Indicator, Response};
use mtqp_protocol::uri::TrackUri;
use mtqp_protocol::MAX_LINE;

/// What TRACK produced, short of an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `+OK+`: the MIME body, dot-stuffing undone, lines ending in CRLF.
    Tracking(Vec<u8>),
    /// `-ERR/noinfo`: the server has nothing for this envid and secret. Holds the status line.
    NoInfo(String),
}

/// Whether the greeting's options offer STARTTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsOffer {
    /// No `STARTTLS` option.
    No,
    /// `STARTTLS`.
    Offered,
    /// `STARTTLS required`.
    Required,
}

/// Reads the STARTTLS option from the data lines of a `+OK+` greeting. Option specifications
/// are one a line, continued on lines that start with white space; identifiers and the
/// `required` parameter are case-insensitive (RFC 3887 section 3).
pub fn tls_offer(options: &[u8]) -> TlsOffer {
    let mut offer = TlsOffer::No;
    // Unfold continuation lines into the option they continue.
    let mut specs: Vec<Vec<u8>> = Vec::new();
    for line in options.split(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match (line.first(), specs.last_mut()) {
            (Some(b' ' | b'\t'), Some(spec)) => {
                spec.push(b' ');
                spec.extend_from_slice(line);
            }
            _ if line.is_empty() => {}
            _ => specs.push(line.to_vec()),
        }
    }
    for spec in &specs {
        let mut words = spec
            .split(|&c| c == b' ' || c == b'\t')
            .filter(|w| !w.is_empty());
        if words
            .next()
            .is_some_and(|id| id.eq_ignore_ascii_case(b"STARTTLS"))
        {
            let required = words.any(|w| w.eq_ignore_ascii_case(b"required"));
            offer = match (offer, required) {
                (TlsOffer::Required, _) | (_, true) => TlsOffer::Required,
                _ => TlsOffer::Offered,
            };
        }
    }
    offer
}

/// The name to send with STARTTLS and to check the certificate against, or None to stay in
/// plaintext. `--starttls` wins; otherwise an offer is taken up with the URI's host, which then
/// has to be a fully qualified name (RFC 3887 section 6 sends one, and certificates name hosts,
/// not addresses).
///
/// A server named by a host name that offers no STARTTLS is refused unless `plaintext` allows
/// it: anyone on the path can remove the offer from the greeting, and the secret would then
/// cross the network in clear. A URI with an address names no certificate, so it is plaintext
/// unless the server offers STARTTLS (and then `--starttls` must name the host).
pub fn tls_name(
    uri_host: &str,
    forced: Option<&str>,
    offer: TlsOffer,
    plaintext: bool,
) -> Result<Option<String>, String> {
    if let Some(name) = forced {
        return Ok(Some(name.to_string()));
    }
    let is_address = uri_host.parse::<IpAddr>().is_ok();
    if offer == TlsOffer::No {
        if is_address || plaintext {
            return Ok(None);
        }
        return Err(format!(
            "{uri_host} does not offer STARTTLS: the secret would cross the network in clear, \
             where anyone on the path can read it (or remove the offer); give --plaintext to \
             send it anyway"
        ));
    }
    let name = uri_host.strip_suffix('.').unwrap_or(uri_host);
    if is_address || !is_fqdn(name.as_bytes()) {
        let what = if offer == TlsOffer::Required {
            "requires"
        } else {
            "offers"
        };
        return Err(format!(
            "the server {what} STARTTLS, which needs its fully qualified name, and the URI \
             names it '{uri_host}'; give --starttls FQDN"
        ));
    }
    Ok(Some(name.to_string()))
}

/// Settings for one run.
pub struct Settings<'a> {
    /// Where to connect and what to track.
    pub uri: &'a TrackUri,
    /// The base64 secret A (from the URI, a file, stdin or the environment).
    pub secret: &'a str,
    /// `--plaintext`: a server named by a host name may be asked without TLS.
    pub plaintext: bool,
    /// `--starttls`: use STARTTLS regardless of the greeting, with this name.
    pub starttls: Option<&'a str>,
    /// `--ca`, already loaded; None for the system's roots.
    pub ca: Option<&'a RootCertStore>,
    /// Connect and read timeout.
    pub timeout: Duration,
}

/// Runs the session: connect, greeting, STARTTLS if offered or forced, TRACK, QUIT.
pub fn track(settings: &Settings<'_>) -> Result<Answer, String> {
    let uri = settings.uri;
    let track_line = format!("TRACK {} {}", uri.envid, settings.secret);
    if track_line.len() > MAX_LINE {
        return Err(format!(
            "the secret is too long: a TRACK line is at most {MAX_LINE} octets"
        ));
    }
    let mut conn = Connection::connect(&uri.host, uri.port, settings.timeout)?;
    let greeting = read_greeting(&mut conn)?;
    let offer = tls_offer(&greeting.body);

    if let Some(name) = tls_name(&uri.host, settings.starttls, offer, settings.plaintext)? {
        conn.send_line(&format!("STARTTLS {name}"))?;
        let reply = conn.read_response()?;
        expect_starttls_ok(&conn, &reply, &name, offer)?;
        // Anything that arrived after the +OK came in plaintext, outside the coming TLS session:
        // accepting it would let an attacker on the path inject answers (the STARTTLS
        // command-injection bug class, here on the client's side).
        if conn.has_unread_input() {
            return Err(format!(
                "{} sent data after accepting STARTTLS; not continuing",
                conn.peer()
            ));
        }
        let config = client_config(settings.ca)?;
        conn = conn.start_tls(config, &name)?;
        // RFC 3887 section 6.2: everything learnt before TLS is forgotten, the server greets
        // again, and STARTTLS must not be among its options now.
        let greeting = read_greeting(&mut conn)?;
        if tls_offer(&greeting.body) != TlsOffer::No {
            return Err(format!(
                "{} offers STARTTLS again inside TLS (RFC 3887 section 6.2)",
                conn.peer()
            ));
        }
    }

    conn.send_line(&track_line)?;
    let reply = conn.read_response()?;
    let answer = track_answer(&conn, reply)?;
    conn.quit();
    Ok(answer)
}

fn client_config(ca: Option<&RootCertStore>) -> Result<Arc<ClientConfig>, String> {
    let roots = match ca {
        Some(roots) => roots.clone(),
        None => tls::system_roots()?,
    };
    tls::client_config(roots)
}

/// Reads the greeting; anything but `+OK`/`+OK+` means no service.
fn read_greeting(conn: &mut Connection) -> Result<Response, String> {
    let greeting = conn.read_response()?;
    let status = parse_status(&greeting.status);
    match status.map(|s| s.indicator) {
        Some(Indicator::Ok | Indicator::OkMulti) => Ok(greeting),
        Some(Indicator::Temp) => Err(format!(
            "{} is temporarily unavailable: {}",
            conn.peer(),
            printable(&greeting.status)
        )),
        _ => Err(format!(
            "{} refuses service: {}",
            conn.peer(),
            printable(&greeting.status)
        )),
    }
}

fn expect_starttls_ok(
    conn: &Connection,
    reply: &Response,
    name: &str,
    offer: TlsOffer,
) -> Result<(), String> {
    let Some(status) = parse_status(&reply.status) else {
        return Err(format!("{}: unreadable answer to STARTTLS", conn.peer()));
    };
    let line = printable(&reply.status);
    match status.indicator {
        Indicator::Ok => Ok(()),
        // A multi-line +OK+ has no place here: the next octets must be the TLS handshake.
        Indicator::OkMulti => Err(format!(
            "{}: multi-line answer to STARTTLS: {line}",
            conn.peer()
        )),
        _ if status.has_code("bad-fqdn") => Err(format!(
            "{} has no certificate for {name}: {line}",
            conn.peer()
        )),
        _ if offer == TlsOffer::No => Err(format!(
            "{} refused STARTTLS (forced with --starttls): {line}",
            conn.peer()
        )),
        _ => Err(format!("{} refused STARTTLS: {line}", conn.peer())),
    }
}

fn track_answer(conn: &Connection, reply: Response) -> Result<Answer, String> {
    let line = printable(&reply.status);
    let Some(status) = parse_status(&reply.status) else {
        return Err(format!("{}: unreadable answer to TRACK", conn.peer()));
    };
    match status.indicator {
        Indicator::OkMulti => Ok(Answer::Tracking(reply.body)),
        // RFC 3887 section 4: a successful TRACK response MUST be multi-line.
        Indicator::Ok => Err(format!(
            "{} answered TRACK without tracking information: {line}",
            conn.peer()
        )),
        Indicator::Err if status.has_code("noinfo") => Ok(Answer::NoInfo(line)),
        Indicator::Err if status.has_code("tls-required") && !conn.is_tls() => Err(format!(
            "{} requires TLS but did not offer STARTTLS; try --starttls FQDN: {line}",
            conn.peer()
        )),
        Indicator::Temp => Err(format!("{} cannot answer now: {line}", conn.peer())),
        _ => Err(format!("{} refused TRACK: {line}", conn.peer())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_as_rfc3887_example_5() {
        let body =
            b"starttls\r\nvnd.com.example.option2 with parameters private to example.com\r\n\
                     vnd.com.example.option3 with a very long\r\n list of parameters\r\n";
        assert_eq!(tls_offer(body), TlsOffer::Offered);
    }

    #[test]
    fn required_is_a_case_insensitive_parameter_and_may_be_continued() {
        assert_eq!(tls_offer(b"STARTTLS required\r\n"), TlsOffer::Required);
        assert_eq!(tls_offer(b"StartTLS \t REQUIRED\r\n"), TlsOffer::Required);
        assert_eq!(tls_offer(b"STARTTLS\r\n\trequired\r\n"), TlsOffer::Required);
        assert_eq!(tls_offer(b"vnd.x\r\nSTARTTLS\r\n"), TlsOffer::Offered);
    }

    #[test]
    fn no_starttls_option() {
        assert_eq!(tls_offer(b""), TlsOffer::No);
        assert_eq!(tls_offer(b"vnd.example.starttls\r\n"), TlsOffer::No);
        // A continuation line is part of the option before it, not an option of its own.
        assert_eq!(
            tls_offer(b"vnd.example.x with\r\n STARTTLS\r\n"),
            TlsOffer::No
        );
        assert_eq!(tls_offer(b"STARTTLSX\r\n"), TlsOffer::No);
    }

    #[test]
    fn tls_name_choice() {
        let name = |host, forced, offer| tls_name(host, forced, offer, false);
        let e = name("mx.example.com", None, TlsOffer::No).unwrap_err();
        assert!(e.contains("--plaintext"), "{e}");
        assert_eq!(
            tls_name("mx.example.com", None, TlsOffer::No, true),
            Ok(None)
        );
        assert_eq!(
            tls_name("mx.example.com", None, TlsOffer::Offered, true),
            Ok(Some("mx.example.com".into()))
        );
        assert_eq!(
            name("mx.example.com", None, TlsOffer::Offered),
            Ok(Some("mx.example.com".into()))
        );
        assert_eq!(
            name("mx.example.com.", None, TlsOffer::Required),
            Ok(Some("mx.example.com".into()))
        );
        assert_eq!(
            name("127.0.0.1", Some("mtqp.example.com"), TlsOffer::No),
            Ok(Some("mtqp.example.com".into()))
        );
        assert_eq!(
            name(
                "mx.example.com",
                Some("other.example.com"),
                TlsOffer::Offered
            ),
            Ok(Some("other.example.com".into()))
        );
        assert_eq!(name("127.0.0.1", None, TlsOffer::No), Ok(None));
        for host in ["127.0.0.1", "::1", "localhost"] {
            let e = name(host, None, TlsOffer::Offered).unwrap_err();
            assert!(e.contains("--starttls"), "{e}");
        }
        assert!(name("10.0.0.1", None, TlsOffer::Required)
            .unwrap_err()
            .contains("requires"));
    }
}
