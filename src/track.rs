//! `mtqpd track`: the command line of the MTQP client (the `mtqp-client` crate, `client/`):
//! its flags ([`TrackArgs`]), what it prints, and its exit status.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::clock::parse_duration;
use crate::protocol::command::is_fqdn;
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
  2   bad command line
When recipients differ, the first that applies of 11, 10, 12, 0 is the status.

--summary prints one line per recipient, fields separated by a TAB:
  RECIPIENT  ACTION  STATUS  REMOTE-MTA  DATE
RECIPIENT is the Final-Recipient (else Original-Recipient) address without its
'rfc822;' type, ACTION is lower-cased, REMOTE-MTA is the name without 'dns;',
DATE is the Last-Attempt-Date, else the message's Arrival-Date; '-' marks a
missing field.

TLS: when the server offers STARTTLS, it is used, with the URI's host as the
name the certificate must match; --starttls uses it even when not offered.
A failed or refused STARTTLS is an error, never a fall-back to plaintext.";

/// `mtqpd track` flags.
#[derive(Debug, Clone, Args)]
#[command(after_help = EXIT_STATUS_HELP)]
// The field docs are clap's help text, written for a terminal, not markdown.
#[allow(rustdoc::broken_intra_doc_links)]
pub struct TrackArgs {
    /// The message: mtqp://HOST[:PORT]/track/ENVID/SECRET (RFC 3887 section 9; a '/', '?' or
    /// '%' in ENVID or SECRET is written %2F, %3F, %25).
    #[arg(value_name = "URI", value_parser = parse_uri)]
    pub uri: TrackUri,
    /// Use STARTTLS even if the server does not offer it, and check the certificate against
    /// this name [default: when offered, with the URI's host].
    #[arg(long, value_name = "FQDN", value_parser = parse_fqdn)]
    pub starttls: Option<String>,
    /// Trust the CA certificates in this PEM file instead of the system's roots.
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Print one line per recipient instead of the tracking body (format below).
    #[arg(long)]
    pub summary: bool,
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
    let (exit, problem) = track(args);
    if let Some(problem) = problem {
        eprintln!("mtqpd track: {problem}");
    }
    exit.into()
}

fn track(args: &TrackArgs) -> (Exit, Option<String>) {
    // Load --ca before connecting, so a bad bundle is reported as itself even when the server
    // turns out not to offer TLS.
    let ca = match args.ca.as_deref().map(tls::load_ca).transpose() {
        Ok(ca) => ca,
        Err(e) => return (Exit::Error, Some(e)),
    };
    let settings = Settings {
        uri: &args.uri,
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
        out = platform_newlines(&body);
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
/// [`NEWLINE`].
fn platform_newlines(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    for line in body.split_inclusive(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.extend_from_slice(line);
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
        assert_eq!(platform_newlines(b"a\r\n\r\n.b\r\n"), want.as_bytes());
    }
}
