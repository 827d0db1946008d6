//! Reading a TRACK answer's body: the RFC 3886 `message/tracking-status` parts inside the
//! `multipart/related` (RFC 3887 section 4), reduced to one [`RecipientStatus`] per recipient
//! block — for `--summary` and for the exit status. The body is never changed here; what is
//! printed in full is the body as received.
//!
//! The reader is lenient where servers are known to slip (the RFC 3887 examples themselves have
//! `Status:2.4.0` and `Status 5.2.2`): field names are case-insensitive, white space around
//! values is ignored, folded fields are unfolded and lines that are not fields are skipped. It
//! is strict about structure: no tracking-status part, or a multipart without its closing
//! delimiter, is an error.

use std::fmt;

use super::Exit;

/// One recipient block of a tracking-status part, as `--summary` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientStatus {
    /// The Final-Recipient address (the Original-Recipient when there is none), without its
    /// address type (`rfc822;`).
    pub recipient: Option<String>,
    /// The Action, lower-cased: `delivered`, `relayed`, `transferred`, `expanded`, `delayed`,
    /// `failed`, `opaque`, or whatever else the server sent.
    pub action: Option<String>,
    /// The Status value as sent, e.g. `4.4.1 (No answer from host)`.
    pub status: Option<String>,
    /// The Remote-MTA name, without its type (`dns;`).
    pub remote_mta: Option<String>,
    /// The Last-Attempt-Date, or else the message's Arrival-Date, as sent (RFC 5322 form).
    pub date: Option<String>,
}

impl RecipientStatus {
    /// The `--summary` line: recipient, action, status, remote MTA, date, separated by TAB;
    /// `-` for a missing field. Values never contain a TAB or a line break (see [`fields`]).
    pub fn summary_line(&self) -> String {
        let column = |v: &Option<String>| match v.as_deref() {
            None | Some("") => "-".to_string(),
            Some(v) => v.to_string(),
        };
        [
            column(&self.recipient),
            column(&self.action),
            column(&self.status),
            column(&self.remote_mta),
            column(&self.date),
        ]
        .join("\t")
    }
}

/// Why a body is not a readable tracking status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SummaryError {
    /// The body has no Content-Type header.
    NoContentType,
    /// The body is neither multipart nor message/tracking-status; holds the media type.
    NotTracking(String),
    /// A multipart body without a boundary parameter.
    NoBoundary,
    /// The multipart body does not end with its closing delimiter.
    Unterminated,
    /// No message/tracking-status part in the body.
    NoTrackingPart,
}

impl fmt::Display for SummaryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SummaryError::NoContentType => f.write_str("the answer has no Content-Type"),
            SummaryError::NotTracking(t) => {
                write!(f, "the answer is {t}, not a tracking status")
            }
            SummaryError::NoBoundary => f.write_str("the multipart answer has no boundary"),
            SummaryError::Unterminated => {
                f.write_str("the multipart answer lacks its closing delimiter")
            }
            SummaryError::NoTrackingPart => {
                f.write_str("the answer holds no message/tracking-status part")
            }
        }
    }
}

impl std::error::Error for SummaryError {}

/// Every recipient block of every tracking-status part of `body` (a TRACK answer's data lines,
/// CRLF or LF line ends), in order.
pub fn parse(body: &[u8]) -> Result<Vec<RecipientStatus>, SummaryError> {
    let lines: Vec<&[u8]> = body
        .split(|&c| c == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect();
    // split() yields an empty piece after the last line end; it is not a line.
    let lines = match lines.split_last() {
        Some((&[], rest)) => rest,
        _ => &lines[..],
    };
    let (headers, content) = header_block(lines);
    let content_type = field(&headers, "content-type").ok_or(SummaryError::NoContentType)?;
    let (media_type, params) = media_type(content_type);
    if media_type == "message/tracking-status" {
        return Ok(tracking_status(content));
    }
    if !media_type.starts_with("multipart/") {
        return Err(SummaryError::NotTracking(media_type));
    }
    let boundary = params
        .iter()
        .find(|(k, _)| k == "boundary")
        .map(|(_, v)| v.as_str())
        .filter(|b| !b.is_empty())
        .ok_or(SummaryError::NoBoundary)?;
    let delimiter = format!("--{boundary}");
    let close = format!("--{boundary}--");
    let mut recipients = Vec::new();
    let mut found = false;
    let mut part: Option<Vec<&[u8]>> = None;
    for &line in content {
        // RFC 2046 section 5.1.1: a delimiter line may carry trailing white space.
        let trimmed = line.trim_ascii_end();
        let is_close = trimmed == close.as_bytes();
        if is_close || trimmed == delimiter.as_bytes() {
            if let Some(lines) = part.take() {
                found |= read_part(&lines, &mut recipients);
            }
            if is_close {
                return if found {
                    Ok(recipients)
                } else {
                    Err(SummaryError::NoTrackingPart)
                };
            }
            part = Some(Vec::new());
        } else if let Some(lines) = part.as_mut() {
            lines.push(line);
        }
        // Lines before the first delimiter are the preamble, ignored (RFC 2046).
    }
    Err(SummaryError::Unterminated)
}

/// Reads one body part; true when it was a tracking-status part.
fn read_part(lines: &[&[u8]], recipients: &mut Vec<RecipientStatus>) -> bool {
    let (headers, content) = header_block(lines);
    // RFC 2045: a part without Content-Type is text/plain.
    let media = field(&headers, "content-type").map(|ct| media_type(ct).0);
    if media.as_deref() != Some("message/tracking-status") {
        return false;
    }
    recipients.extend(tracking_status(content));
    true
}

/// The per-message block and the recipient blocks after it (RFC 3886 section 3: groups of
/// fields separated by blank lines).
fn tracking_status(lines: &[&[u8]]) -> Vec<RecipientStatus> {
    let mut groups = lines
        .split(|l| l.is_empty())
        .filter(|g| !g.is_empty())
        .map(fields);
    let Some(per_message) = groups.next() else {
        return Vec::new();
    };
    let arrival = field(&per_message, "arrival-date").map(str::to_string);
    groups
        .map(|g| RecipientStatus {
            recipient: field(&g, "final-recipient")
                .or_else(|| field(&g, "original-recipient"))
                .map(untyped),
            action: field(&g, "action").map(|a| a.to_ascii_lowercase()),
            status: field(&g, "status").map(str::to_string),
            remote_mta: field(&g, "remote-mta").map(untyped),
            date: field(&g, "last-attempt-date")
                .map(str::to_string)
                .or_else(|| arrival.clone()),
        })
        .collect()
}

/// Splits `lines` at the first blank line into header fields and what follows.
fn header_block<'l, 'a>(lines: &'l [&'a [u8]]) -> (Vec<(String, String)>, &'l [&'a [u8]]) {
    let end = lines
        .iter()
        .position(|l| l.is_empty())
        .unwrap_or(lines.len());
    let rest_start = (end + 1).min(lines.len());
    (fields(&lines[..end]), &lines[rest_start..])
}

/// Fields of a block: `Name: value`, names lower-cased, continuation lines (starting with white
/// space) unfolded into the field before, lines that are not `name:` fields skipped. Control
/// characters, TABs included, become spaces so that a value fits a TAB-separated line.
fn fields(lines: &[&[u8]]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in lines {
        let text = clean(line);
        if matches!(line.first(), Some(b' ' | b'\t')) {
            if let Some((_, value)) = out.last_mut() {
                value.push(' ');
                value.push_str(text.trim());
            }
            continue;
        }
        match text.split_once(':') {
            // A field name is a run of printable characters without spaces (RFC 5322 2.2).
            Some((name, value)) if !name.is_empty() && !name.contains(' ') => {
                out.push((name.to_ascii_lowercase(), value.trim().to_string()));
            }
            _ => {}
        }
    }
    out
}

fn clean(line: &[u8]) -> String {
    String::from_utf8_lossy(line)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The first value of field `name` (lower case).
fn field<'f>(fields: &'f [(String, String)], name: &str) -> Option<&'f str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// `multipart/related; boundary=mtqp-boundary; type="message/tracking-status"` → the
/// lower-cased media type and the parameters (names lower-cased, quotes removed).
fn media_type(value: &str) -> (String, Vec<(String, String)>) {
    let mut parts = split_params(value).into_iter();
    let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let params = parts
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            Some((k.trim().to_ascii_lowercase(), v.to_string()))
        })
        .collect();
    (media, params)
}

/// Splits at `;` outside double quotes.
fn split_params(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in value.chars() {
        if c == ';' && !quoted {
            out.push(std::mem::take(&mut current));
            continue;
        }
        if c == '"' {
            quoted = !quoted;
        }
        current.push(c);
    }
    out.push(current);
    out
}

/// `rfc822; user@example.com` → `user@example.com`.
fn untyped(value: &str) -> String {
    match value.split_once(';') {
        Some((_, v)) => v.trim().to_string(),
        None => value.trim().to_string(),
    }
}

/// The exit status the recipients call for: some failed → [`Exit::Failed`]; else some delayed
/// → [`Exit::Delayed`]; else some opaque, unknown or missing action, or no recipient at all →
/// [`Exit::NoInfo`]; else every one delivered, relayed, transferred or expanded →
/// [`Exit::Done`].
pub fn outcome(recipients: &[RecipientStatus]) -> Exit {
    let (mut failed, mut delayed, mut unknown) = (false, false, recipients.is_empty());
    for r in recipients {
        match r.action.as_deref() {
            Some("delivered" | "relayed" | "transferred" | "expanded") => {}
            Some("failed") => failed = true,
            Some("delayed") => delayed = true,
            _ => unknown = true,
        }
    }
    if failed {
        Exit::Failed
    } else if delayed {
        Exit::Delayed
    } else if unknown {
        Exit::NoInfo
    } else {
        Exit::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(lines: &[&str]) -> Vec<u8> {
        lines
            .iter()
            .flat_map(|l| format!("{l}\r\n").into_bytes())
            .collect()
    }

    /// RFC 3887 example #9 as mtqpd sends it (colon restored, close delimiter `--mtqp-boundary--`).
    fn example_9() -> Vec<u8> {
        body(&[
            "Content-Type: multipart/related; boundary=mtqp-boundary; type=\"message/tracking-status\"",
            "",
            "--mtqp-boundary",
            "Content-Type: message/tracking-status",
            "",
            "Original-Envelope-Id: 12345-20010101@example.com",
            "Reporting-MTA: dns; example2.com",
            "Arrival-Date: Mon, 1 Jan 2001 15:15:15 -0500",
            "",
            "Original-Recipient: rfc822; user1@example1.com",
            "Final-Recipient: rfc822; user1@example1.com",
            "Action: relayed",
            "Status: 2.1.9",
            "Remote-MTA: dns; example3.com",
            "Last-Attempt-Date: Mon, 1 Jan 2001 19:15:03 -0500",
            "",
            "Original-Recipient: rfc822; user2@example1.com",
            "Final-Recipient: rfc822; user2@example1.com",
            "Action: failed",
            "Status: 5.2.2 (Mailbox full)",
            "Remote-MTA: dns; example3.com",
            "Last-Attempt-Date: Mon, 1 Jan 2001 19:15:03 -0500",
            "",
            "--mtqp-boundary--",
        ])
    }

    #[test]
    fn example_9_two_recipients() {
        let r = parse(&example_9()).unwrap();
        assert_eq!(
            r.iter().map(|r| r.summary_line()).collect::<Vec<_>>(),
            vec![
                "user1@example1.com\trelayed\t2.1.9\texample3.com\tMon, 1 Jan 2001 19:15:03 -0500",
                "user2@example1.com\tfailed\t5.2.2 (Mailbox full)\texample3.com\t\
                 Mon, 1 Jan 2001 19:15:03 -0500",
            ]
        );
        assert_eq!(outcome(&r), Exit::Failed);
    }

    #[test]
    fn missing_fields_are_dashes_and_the_arrival_date_stands_in() {
        let b = body(&[
            "Content-Type: multipart/related; boundary=\"b; x\"; type=\"message/tracking-status\"",
            "",
            "preamble",
            "--b; x",
            "content-type: Message/Tracking-Status",
            "",
            "Arrival-Date: Mon, 1 Jan 2001 15:15:15 -0500",
            "",
            "",
            "final-recipient: rfc822;u@x",
            "ACTION: Delivered",
            "Status:2.5.0",
            "--b; x-- ",
            "epilogue",
        ]);
        let r = parse(&b).unwrap();
        assert_eq!(
            r[0].summary_line(),
            "u@x\tdelivered\t2.5.0\t-\tMon, 1 Jan 2001 15:15:15 -0500"
        );
        assert_eq!(outcome(&r), Exit::Done);
    }

    #[test]
    fn folded_fields_unfold_and_tabs_cannot_break_columns() {
        let b = body(&[
            "Content-Type: message/tracking-status",
            "",
            "Reporting-MTA: dns; h",
            "",
            "Final-Recipient: rfc822; u@x",
            "Action: delayed",
            "Status: 4.4.1",
            "\t(No answer\tfrom host)",
            "Status 4.0.0 (skipped: not a field)",
        ]);
        let r = parse(&b).unwrap();
        assert_eq!(r[0].status.as_deref(), Some("4.4.1 (No answer from host)"));
        assert_eq!(r[0].summary_line().matches('\t').count(), 4);
        assert_eq!(outcome(&r), Exit::Delayed);
    }

    #[test]
    fn firewall_answer_with_two_parts() {
        // RFC 3887 example #10: one part per hop; every recipient block counts.
        let b = body(&[
            "Content-Type: multipart/related; boundary=mtqp-boundary; type=\"message/tracking-status\"",
            "",
            "--mtqp-boundary",
            "Content-Type: message/tracking-status",
            "",
            "Reporting-MTA: dns; example2.com",
            "",
            "Final-Recipient: rfc822; user1@example1.com",
            "Action: relayed",
            "Status: 2.1.9",
            "",
            "--mtqp-boundary",
            "Content-Type: message/tracking-status",
            "",
            "Reporting-MTA: dns; smtp.example3.com",
            "",
            "Original-Recipient: rfc822; user2@example1.com",
            "Action: delivered",
            "Status: 2.5.0",
            "",
            "--mtqp-boundary--",
        ]);
        let r = parse(&b).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].recipient.as_deref(), Some("user2@example1.com"));
        assert_eq!(outcome(&r), Exit::Done);
    }

    #[test]
    fn outcomes() {
        let with = |actions: &[&str]| {
            actions
                .iter()
                .map(|a| RecipientStatus {
                    recipient: None,
                    action: Some(a.to_string()),
                    status: None,
                    remote_mta: None,
                    date: None,
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(outcome(&[]), Exit::NoInfo);
        assert_eq!(
            outcome(&with(&["delivered", "relayed", "transferred", "expanded"])),
            Exit::Done
        );
        assert_eq!(outcome(&with(&["opaque"])), Exit::NoInfo);
        assert_eq!(outcome(&with(&["delivered", "mystery"])), Exit::NoInfo);
        assert_eq!(outcome(&with(&["opaque", "delayed"])), Exit::Delayed);
        assert_eq!(outcome(&with(&["delayed", "failed"])), Exit::Failed);
    }

    #[test]
    fn structural_errors() {
        assert_eq!(parse(b"\r\nbody\r\n"), Err(SummaryError::NoContentType));
        assert_eq!(
            parse(&body(&["Content-Type: text/plain", "", "hello"])),
            Err(SummaryError::NotTracking("text/plain".into()))
        );
        assert_eq!(
            parse(&body(&["Content-Type: multipart/related", "", "--x"])),
            Err(SummaryError::NoBoundary)
        );
        let mut unterminated = example_9();
        unterminated.truncate(unterminated.len() - b"--mtqp-boundary--\r\n".len());
        assert_eq!(parse(&unterminated), Err(SummaryError::Unterminated));
        assert_eq!(
            parse(&body(&[
                "Content-Type: multipart/related; boundary=b",
                "",
                "--b",
                "",
                "just text",
                "--b--",
            ])),
            Err(SummaryError::NoTrackingPart)
        );
    }
}
