//! `mtqpd track`: the command line of the MTQP client (the `mtqp-client` crate, `client/`):
//! its flags ([`TrackArgs`]), what it prints, and its exit status.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::clock::parse_duration;
use crate::protocol::command::is_fqdn;
use crate::protocol::secret::hash_secret;
use crate::protocol::uri::{self, TrackUri};
use mtqp_client::session::{self, Answer, Settings};
use mtqp_client::{summary, tls, Exit};

/// The exit statuses of `mtqpd track`, as `--help` lists them.
const EXIT_STATUS_HELP: &str = "\
Exit status:
  0   every recipient was delivered, relayed, transferred or expanded
  10  some recipient is still delayed (delivery in progress), none failed
  11  some recipient failed
  12  no information: -ERR/noinfo (unknown message or wrong secret), an opaque
      answer, or no recipient in the answer
  13  protocol, network or TLS error (one line on stderr)
  2   bad command line, or no usable secret
When recipients differ, the first that applies of 11, 10, 12, 0 is the status.

--summary prints one line per recipient, fields separated by a TAB:
  RECIPIENT  ACTION  STATUS  REMOTE-MTA  DATE
RECIPIENT is the Final-Recipient (else Original-Recipient) address without its
'rfc822;' type, ACTION is lower-cased, REMOTE-MTA is the name without 'dns;',
DATE is the Last-Attempt-Date, else the message's Arrival-Date; '-' marks a
missing field.

The secret: the URI's last segment, or else --secret-file FILE (its first line;
'-' reads standard input), or else the MTQP_SECRET environment variable. A
command line can be read by every user of the host (ps): keep the secret out of
it, with a URI that ends at the envid (mtqp://HOST/track/ENVID).

TLS: when the server offers STARTTLS, it is used, with the URI's host as the
name the certificate must match; --starttls uses it even when not offered.
A server named by a host name that offers no STARTTLS is not asked (the secret
would cross the network in clear) unless --plaintext is given; a server named by
an address is asked in plaintext unless it offers STARTTLS. A failed or refused
STARTTLS is an error, never a fall-back to plaintext.

The body is printed with every octet outside printable ASCII and TAB written
as \\xHH (a hostile server's terminal escapes stay inert) unless --raw.";

/// The environment variable `mtqpd track` reads the secret from when neither the URI nor
/// `--secret-file` gives it.
pub const SECRET_ENV: &str = "MTQP_SECRET";

/// The most a secret file is read of: a secret is at most a TRACK line long.
const MAX_SECRET_FILE: u64 = 4096;

/// `mtqpd track` flags.
#[derive(Debug, Clone, Args)]
#[command(after_help = EXIT_STATUS_HELP)]
// The field docs are clap's help text, written for a terminal, not markdown.
#[allow(rustdoc::broken_intra_doc_links)]
pub struct TrackArgs {
    /// The message: mtqp://HOST[:PORT]/track/ENVID[/SECRET] (RFC 3887 section 9; a '/', '?' or
    /// '%' in ENVID or SECRET is written %2F, %3F, %25). Without SECRET, see below.
    #[arg(value_name = "URI", value_parser = parse_uri)]
    pub uri: TrackUri,
    /// Use STARTTLS even if the server does not offer it, and check the certificate against
    /// this name [default: when offered, with the URI's host].
    #[arg(long, value_name = "FQDN", value_parser = parse_fqdn)]
    pub starttls: Option<String>,
    /// Trust the CA certificates in this PEM file instead of the system's roots.
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Read the base64 secret from the first line of this file ('-': standard input).
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Ask a server named by a host name even when it offers no STARTTLS (the secret then
    /// crosses the network in clear).
    #[arg(long, conflicts_with = "starttls")]
    pub plaintext: bool,
    /// Print one line per recipient instead of the tracking body (format below).
    #[arg(long)]
    pub summary: bool,
    /// Print the body as received, control characters and all.
    #[arg(long)]
    pub raw: bool,
    /// Give up connecting, or waiting for the server, after this long (s, m, h; at least 2m,
    /// the RFC 3887 section 2.5 minimum for clients).
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_timeout)]
    pub timeout: Duration,
}

fn parse_uri(text: &str) -> Result<TrackUri, String> {
    uri::parse(text).map_err(|e| e.to_string())
}

fn parse_fqdn(text: &str) -> Result<String, String> {
    // An address would pass is_fqdn's label check, but STARTTLS names a host and a
    // certificate is checked against a DNS name.
    if text.parse::<std::net::IpAddr>().is_ok() || !is_fqdn(text.as_bytes()) {
        return Err(format!("'{text}' is not a fully qualified domain name"));
    }
    Ok(text.strip_suffix('.').unwrap_or(text).to_string())
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d < Duration::from_secs(120) {
        return Err("must be at least 2m (RFC 3887 section 2.5)".into());
    }
    Ok(d)
}

/// Runs `mtqpd track`: one session, then the body or the summary on stdout. Errors are one
/// line on stderr; the exit status says how the message fares (see [`Exit`]).
pub fn run(args: &TrackArgs) -> ExitCode {
    let secret = match secret(args, std::env::var(SECRET_ENV).ok()) {
        Ok(secret) => secret,
        Err(problem) => {
            eprintln!("mtqpd track: {problem}");
            return ExitCode::from(2);
        }
    };
    let (exit, problem) = track(args, &secret);
    if let Some(problem) = problem {
        eprintln!("mtqpd track: {problem}");
    }
    exit.into()
}

/// The secret, from the URI, `--secret-file` or `env` (the environment's [`SECRET_ENV`]), in
/// that order; the URI and the file together are a usage error.
fn secret(args: &TrackArgs, env: Option<String>) -> Result<String, String> {
    let (secret, from) = match (&args.uri.secret, &args.secret_file) {
        (Some(_), Some(_)) => {
            return Err("the URI has a secret and --secret-file gives another: give one".into())
        }
        (Some(secret), None) => (secret.clone(), "the URI"),
        (None, Some(path)) => (read_secret_file(path)?, "--secret-file"),
        (None, None) => match env {
            Some(secret) => (secret, SECRET_ENV),
            None => {
                return Err(format!(
                    "no secret: the URI has none; give --secret-file FILE (- for standard \
                     input) or set {SECRET_ENV}"
                ))
            }
        },
    };
    if hash_secret(secret.as_bytes()).is_none() {
        return Err(format!("the secret from {from} is not base64"));
    }
    Ok(secret)
}

/// The first line of `path` (standard input for `-`), without its line end.
fn read_secret_file(path: &Path) -> Result<String, String> {
    let mut text = Vec::new();
    let read = if path == Path::new("-") {
        std::io::stdin()
            .take(MAX_SECRET_FILE)
            .read_to_end(&mut text)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(MAX_SECRET_FILE).read_to_end(&mut text))
    };
    read.map_err(|e| format!("cannot read the secret from {}: {e}", path.display()))?;
    let line = text.split(|&c| c == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8(line.to_vec())
        .map_err(|_| format!("the secret in {} is not base64", path.display()))
}

fn track(args: &TrackArgs, secret: &str) -> (Exit, Option<String>) {
    // Load --ca before connecting, so a bad bundle is reported as itself even when the server
    // turns out not to offer TLS.
    let ca = match args.ca.as_deref().map(tls::load_ca).transpose() {
        Ok(ca) => ca,
        Err(e) => return (Exit::Error, Some(e)),
    };
    let settings = Settings {
        uri: &args.uri,
        secret,
        plaintext: args.plaintext,
        starttls: args.starttls.as_deref(),
        ca: ca.as_ref(),
        timeout: args.timeout,
    };
    let body = match session::track(&settings) {
        Ok(Answer::Tracking(body)) => body,
        Ok(Answer::NoInfo(line)) => {
            return (
                Exit::NoInfo,
                Some(format!(
                    "no tracking information for {} ({line})",
                    args.uri.envid
                )),
            )
        }
        Err(e) => return (Exit::Error, Some(e)),
    };
    let recipients = summary::parse(&body);
    let mut out = Vec::new();
    if args.summary {
        if let Ok(recipients) = &recipients {
            for r in recipients {
                out.extend_from_slice(r.summary_line().as_bytes());
                out.extend_from_slice(NEWLINE.as_bytes());
            }
        }
    } else {
        // The body as received, whether or not it reads as a tracking status: it is what the
        // server said, and the user may make more of it than this client can.
        out = platform_newlines(&body, !args.raw);
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(&out).and_then(|()| stdout.flush()) {
        return (Exit::Error, Some(format!("cannot write the answer: {e}")));
    }
    match recipients {
        Ok(recipients) => (summary::outcome(&recipients), None),
        Err(e) => (
            Exit::Error,
            Some(format!("unreadable tracking status in the answer: {e}")),
        ),
    }
}

/// The platform's line end, for what goes to stdout.
const NEWLINE: &str = if cfg!(windows) { "\r\n" } else { "\n" };

/// The body's CRLF line ends (every line has one: see [`crate::protocol::response`]) as
/// [`NEWLINE`]; with `escape`, every other octet outside printable ASCII and TAB as `\xHH`, so
/// that nothing a server sends is taken by the terminal as a control sequence.
fn platform_newlines(body: &[u8], escape: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    for line in body.split_inclusive(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if escape {
            for &c in line {
                match c {
                    b'\t' | b' '..=b'~' => out.push(c),
                    _ => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
                }
            }
        } else {
            out.extend_from_slice(line);
        }
        out.extend_from_slice(NEWLINE.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        let codes: Vec<u8> = [
            Exit::Done,
            Exit::Delayed,
            Exit::Failed,
            Exit::NoInfo,
            Exit::Error,
        ]
        .iter()
        .map(|e| e.code())
        .collect();
        assert_eq!(codes, [0, 10, 11, 12, 13]);
    }

    #[test]
    fn starttls_names_are_fqdns() {
        assert_eq!(
            parse_fqdn("mtqp.example.com"),
            Ok("mtqp.example.com".into())
        );
        assert_eq!(
            parse_fqdn("mtqp.example.com."),
            Ok("mtqp.example.com".into())
        );
        assert!(parse_fqdn("localhost").is_err());
        assert!(parse_fqdn("127.0.0.1").is_err());
        assert!(parse_fqdn("a_b.example").is_err());
    }

    #[test]
    fn timeouts_respect_the_rfc_minimum() {
        assert_eq!(parse_timeout("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_timeout("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_timeout("119s").is_err());
        assert!(parse_timeout("soon").is_err());
    }

    #[test]
    fn crlf_becomes_the_platform_newline() {
        let want = format!("a{NEWLINE}{NEWLINE}.b{NEWLINE}");
        assert_eq!(platform_newlines(b"a\r\n\r\n.b\r\n", true), want.as_bytes());
    }

    #[test]
    fn control_octets_are_escaped_unless_raw() {
        let body = "Status: 5.0.0\x1b]0;owned\x07\t\u{e9}\rx\r\n".as_bytes();
        let want = format!("Status: 5.0.0\\x1b]0;owned\\x07\t\\xc3\\xa9\\x0dx{NEWLINE}");
        assert_eq!(platform_newlines(body, true), want.as_bytes());
        let raw = platform_newlines(body, false);
        assert_eq!(&raw[..raw.len() - NEWLINE.len()], &body[..body.len() - 2]);
    }
}
