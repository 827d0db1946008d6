//! The admin endpoint's HTTP: one request per connection, its head at most [`MAX_HEAD`] octets
//! and complete within [`DEADLINE`], GET or HEAD only, answered with `Connection: close`.
//! Anything else gets its status code and a one-line body: 400 for a head that is not
//! HTTP/1.x, 404 for an unknown path, 405 for another method, 408 when the head is late, 431
//! when it is too long.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::Pages;

/// Longest request head (request line and headers) read.
pub const MAX_HEAD: usize = 8 * 1024;
/// How long a client has to send its request head, and then to take the answer.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// The media type of Prometheus' text format.
const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// HEAD: the same answer without its body.
    pub head_only: bool,
    /// The path, without a query.
    pub path: &'a str,
}

/// A status and its one-line body, for requests that get no page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: &'static str,
}

const BAD_REQUEST: Refusal = Refusal {
    status: 400,
    reason: "Bad Request",
};
const NOT_FOUND: Refusal = Refusal {
    status: 404,
    reason: "Not Found",
};
const METHOD_NOT_ALLOWED: Refusal = Refusal {
    status: 405,
    reason: "Method Not Allowed",
};
const TIMEOUT: Refusal = Refusal {
    status: 408,
    reason: "Request Timeout",
};
const TOO_LARGE: Refusal = Refusal {
    status: 431,
    reason: "Request Header Fields Too Large",
};

/// Parses a complete request head (up to, not including, its blank line).
pub fn parse(head: &[u8]) -> Result<Request<'_>, Refusal> {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = std::str::from_utf8(&head[..line_end]).map_err(|_| BAD_REQUEST)?;
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BAD_REQUEST);
    };
    if !matches!(version, "HTTP/1.0" | "HTTP/1.1") || !target.starts_with('/') {
        return Err(BAD_REQUEST);
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        m if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => {
            return Err(METHOD_NOT_ALLOWED)
        }
        _ => return Err(BAD_REQUEST),
    };
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    Ok(Request { head_only, path })
}

/// Where the head ends: the index just past its blank line.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Reads the request head within the deadline.
fn read_head(stream: &mut TcpStream, buf: &mut [u8; MAX_HEAD]) -> Result<usize, Refusal> {
    let started = Instant::now();
    let mut len = 0;
    loop {
        if let Some(end) = head_end(&buf[..len]) {
            return Ok(end);
        }
        if len == buf.len() {
            return Err(TOO_LARGE);
        }
        let left = DEADLINE.checked_sub(started.elapsed()).ok_or(TIMEOUT)?;
        // A zero timeout means none to set_read_timeout.
        let _ = stream.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match stream.read(&mut buf[len..]) {
            Ok(0) => return Err(BAD_REQUEST),
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(TIMEOUT),
        }
    }
}

/// Reads one request from `stream`, answers it and returns (the caller closes).
pub fn serve_one(stream: &mut TcpStream, pages: &dyn Pages) {
    let _ = stream.set_write_timeout(Some(DEADLINE));
    let mut buf = [0u8; MAX_HEAD];
    let answer = read_head(stream, &mut buf).and_then(|end| {
        let request = parse(&buf[..end])?;
        let (status, content_type, body) = match request.path {
            "/metrics" => {
                let mut body = String::with_capacity(16 * 1024);
                pages.metrics(&mut body);
                (200, METRICS_TYPE, body)
            }
            "/healthz" => {
                let h = pages.health();
                let status = if h.ok { 200 } else { 503 };
                (status, "text/plain; charset=utf-8", h.reason + "\n")
            }
            _ => return Err(NOT_FOUND),
        };
        Ok((request.head_only, status, content_type, body))
    });
    let (head_only, status, content_type, body) = match answer {
        Ok(a) => a,
        Err(r) => (
            false,
            r.status,
            "text/plain; charset=utf-8",
            format!("{}\n", r.reason),
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        reason_phrase(status),
        body.len()
    );
    if status == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    if !head_only {
        out.push_str(&body);
    }
    if stream.write_all(out.as_bytes()).is_ok() {
        linger(stream);
    }
}

/// Octets of unread input discarded after answering.
const DRAIN: usize = 64 * 1024;
/// How long the discarding may take.
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// Ends the answer and discards what the client still sends (up to [`DRAIN`] octets for
/// [`DRAIN_TIME`]), so that closing with unread input (the rest of an oversized head) does not
/// reset the connection before the client has read its answer.
fn linger(stream: &mut TcpStream) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(DRAIN_TIME));
    let started = Instant::now();
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < DRAIN && started.elapsed() < DRAIN_TIME {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(n) => drained += n,
        }
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        503 => "Service Unavailable",
        s => [
            BAD_REQUEST,
            NOT_FOUND,
            METHOD_NOT_ALLOWED,
            TIMEOUT,
            TOO_LARGE,
        ]
        .iter()
        .find(|r| r.status == s)
        .map_or("", |r| r.reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_get_and_head_and_drops_the_query() {
        let r = parse(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n").expect("valid");
        assert_eq!(
            r,
            Request {
                head_only: false,
                path: "/metrics"
            }
        );
        assert!(parse(b"HEAD /healthz HTTP/1.0").expect("valid").head_only);
    }

    #[test]
    fn refuses_other_methods_and_malformed_heads() {
        assert_eq!(parse(b"POST /metrics HTTP/1.1"), Err(METHOD_NOT_ALLOWED));
        for bad in [
            &b"GET /metrics"[..],
            b"GET metrics HTTP/1.1",
            b"GET /metrics HTTP/2",
            b"get /metrics HTTP/1.1",
            b"GET  /metrics HTTP/1.1",
            b"\xff / HTTP/1.1",
        ] {
            assert_eq!(parse(bad), Err(BAD_REQUEST), "{bad:?}");
        }
    }

    #[test]
    fn the_head_ends_at_the_first_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
    }
}
