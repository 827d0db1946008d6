//! The client's transport: one TCP connection, plain or (after STARTTLS) wrapped in TLS, with
//! the timeouts and a bounded receive buffer. It moves lines and whole responses; what they mean
//! is [`super::session`]'s business, how they are framed is [`mtqp_protocol::response`]'s.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{DnsName, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use mtqp_protocol::response::{parse_response, Response, ResponseError};

/// The most a response may take in the receive buffer. A tracking answer for a message with
/// 10,000 recipients is a few megabytes; anything far beyond that is a broken or hostile server,
/// and stopping beats running out of memory.
pub const MAX_RESPONSE: usize = 64 * 1024 * 1024;

/// Either side of STARTTLS. The TLS stream is boxed because rustls' connection state is large
/// and the plain variant is the common one.
enum Transport {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(s) => s.flush(),
        }
    }
}

/// A connection to an MTQP server.
pub struct Connection {
    transport: Transport,
    /// Received octets not yet consumed as a response.
    buf: Vec<u8>,
    /// For messages: `HOST:PORT` as the user gave it.
    peer: String,
    timeout: Duration,
}

/// A timeout shows up as WouldBlock or TimedOut depending on the platform.
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl Connection {
    /// Connects to `host:port`, trying every address the name resolves to in turn, each within
    /// `timeout`; reads and writes time out after `timeout` of silence too.
    pub fn connect(host: &str, port: u16, timeout: Duration) -> Result<Connection, String> {
        let peer = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect();
        let mut last_error = None;
        for addr in &addrs {
            match TcpStream::connect_timeout(addr, timeout) {
                Ok(stream) => {
                    stream
                        .set_read_timeout(Some(timeout))
                        .and_then(|()| stream.set_write_timeout(Some(timeout)))
                        .map_err(|e| format!("{peer}: cannot set timeouts: {e}"))?;
                    // Commands are single short lines; do not let Nagle hold them back.
                    let _ = stream.set_nodelay(true);
                    return Ok(Connection {
                        transport: Transport::Plain(stream),
                        buf: Vec::new(),
                        peer,
                        timeout,
                    });
                }
                Err(e) => last_error = Some((addr, e)),
            }
        }
        Err(match last_error {
            Some((_, e)) if addrs.len() == 1 => format!("cannot connect to {peer}: {e}"),
            Some((addr, e)) => format!(
                "cannot connect to {peer} (tried {} addresses; last, {addr}: {e})",
                addrs.len()
            ),
            None => format!("{host} resolves to no address"),
        })
    }

    /// `HOST:PORT`, for messages.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// True once STARTTLS has completed.
    pub fn is_tls(&self) -> bool {
        matches!(self.transport, Transport::Tls(_))
    }

    /// Sends one command line; CRLF is added here.
    pub fn send_line(&mut self, line: &str) -> Result<(), String> {
        let mut wire = Vec::with_capacity(line.len() + 2);
        wire.extend_from_slice(line.as_bytes());
        wire.extend_from_slice(b"\r\n");
        self.transport
            .write_all(&wire)
            .and_then(|()| self.transport.flush())
            .map_err(|e| self.io_error("sending to", &e))
    }

    /// Reads one complete response (status line, and for `+OK+` the unstuffed data lines).
    pub fn read_response(&mut self) -> Result<Response, String> {
        // What is buffered already may hold a whole response (the greeting's read can bring
        // more), so the first look is unconditional.
        let mut look = true;
        loop {
            if look {
                match parse_response(&self.buf) {
                    Ok(Some(response)) => {
                        self.buf.drain(..response.wire_len);
                        return Ok(response);
                    }
                    Ok(None) => {}
                    Err(ResponseError::NotAStatusLine) => {
                        let line = self.buf.split(|&c| c == b'\n').next().unwrap_or(&[]);
                        return Err(format!(
                            "{} sent something that is not an MTQP response: {}",
                            self.peer,
                            printable(line)
                        ));
                    }
                }
            }
            if self.buf.len() > MAX_RESPONSE {
                return Err(format!(
                    "{} sent a response longer than {} MiB",
                    self.peer,
                    MAX_RESPONSE >> 20
                ));
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.transport.read(&mut chunk) {
                Ok(0) => {
                    return Err(if self.buf.is_empty() {
                        format!("{} closed the connection", self.peer)
                    } else {
                        format!("{} closed the connection in mid-response", self.peer)
                    })
                }
                Ok(n) => {
                    let old_len = self.buf.len();
                    self.buf.extend_from_slice(&chunk[..n]);
                    look = may_complete(&self.buf, old_len);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => look = false,
                Err(e) => return Err(self.io_error("reading from", &e)),
            }
        }
    }

    /// Octets received beyond the last response read.
    pub fn has_unread_input(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Runs the TLS handshake over this connection, checking the server's certificate against
    /// `name` with `config`'s roots. The caller has had `+OK` to `STARTTLS` and has checked that
    /// nothing else arrived in plaintext.
    pub fn start_tls(self, config: Arc<ClientConfig>, name: &str) -> Result<Connection, String> {
        let Connection {
            transport,
            peer,
            timeout,
            ..
        } = self;
        let Transport::Plain(tcp) = transport else {
            // The session never asks twice; RFC 3887 section 6.2 forbids TLS inside TLS.
            return Err(format!("{peer}: TLS is already active"));
        };
        let dns = DnsName::try_from(name.to_string())
            .map_err(|_| format!("'{name}' is not a DNS name a certificate can be checked for"))?;
        let tls = ClientConnection::new(config, ServerName::DnsName(dns))
            .map_err(|e| format!("TLS setup for {name}: {e}"))?;
        let mut stream = StreamOwned::new(tls, tcp);
        // Drive the handshake to its end here, so that a certificate problem is reported as
        // one, and not as a failure of whatever read would otherwise have triggered it.
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock).map_err(|e| {
                if is_timeout(&e) {
                    format!("TLS handshake with {peer} ({name}) timed out")
                } else {
                    format!("TLS handshake with {peer} ({name}) failed: {e}")
                }
            })?;
        }
        Ok(Connection {
            transport: Transport::Tls(Box::new(stream)),
            buf: Vec::new(),
            peer,
            timeout,
        })
    }

    /// Sends QUIT and closes. The answer is awaited only briefly: RFC 3887 section 7 lets the
    /// client close right after QUIT, and the session's outcome is already known; waiting a
    /// little lets a well-behaved server see an orderly close instead of a reset.
    pub fn quit(mut self) {
        if self.send_line("QUIT").is_err() {
            return;
        }
        let brief = self.timeout.min(Duration::from_secs(5));
        let socket = match &self.transport {
            Transport::Plain(s) => s,
            Transport::Tls(s) => &s.sock,
        };
        if socket.set_read_timeout(Some(brief)).is_ok() {
            let _ = self.read_response();
        }
        if let Transport::Tls(s) = &mut self.transport {
            s.conn.send_close_notify();
            let _ = s.conn.complete_io(&mut s.sock);
        }
    }

    fn io_error(&self, doing: &str, e: &io::Error) -> String {
        if is_timeout(e) {
            format!(
                "no progress {doing} {} for {}s",
                self.peer,
                self.timeout.as_secs()
            )
        } else {
            format!("error {doing} {}: {e}", self.peer)
        }
    }
}

/// Whether the octets from `old_len` on can have completed the response that starts `buf`:
/// a single-line response ends at its first line end, a multi-line one only at a line that
/// starts with `.`. Parsing again only then keeps reading a large answer (a message with
/// thousands of recipients) linear in its size rather than quadratic.
fn may_complete(buf: &[u8], old_len: usize) -> bool {
    // One octet of the old data, in case the new data starts right after its line end.
    let new = &buf[old_len.saturating_sub(1).min(buf.len())..];
    if buf.starts_with(b"+OK+") {
        memchr::memmem::find(new, b"\n.").is_some()
    } else {
        memchr::memchr(b'\n', new).is_some()
    }
}

/// A server's line made safe to print on a terminal: control octets and non-ASCII become `?`,
/// and it is cut at 200 characters.
pub fn printable(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut out: String = line
        .iter()
        .take(200)
        .map(|&c| {
            if c == b' ' || c.is_ascii_graphic() {
                c as char
            } else {
                '?'
            }
        })
        .collect();
    if line.len() > 200 {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_is_looked_for_only_where_it_can_be() {
        assert!(may_complete(b"+OK\r\n", 0));
        assert!(!may_complete(b"+OK fi", 3));
        assert!(may_complete(b"+OK fine\r\n", 6));
        assert!(!may_complete(b"+OK+ x\r\nabc\r\n", 0));
        assert!(may_complete(b"+OK+ x\r\n.\r\n", 0));
        // The line end came with the previous read, the dot with this one.
        assert!(may_complete(b"+OK+ x\r\nabc\r\n.\r\n", 13));
        assert!(!may_complete(b"+OK+ x\r\nabc\r\n.\r\n", 14));
    }

    #[test]
    fn a_large_answer_in_many_reads() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut wire = b"+OK+ Tracking information follows\r\n".to_vec();
        let mut want = Vec::new();
        for i in 0..100_000 {
            let line = if i % 7 == 0 {
                format!(".line {i}")
            } else {
                format!("line {i}")
            };
            want.extend_from_slice(line.as_bytes());
            want.extend_from_slice(b"\r\n");
            if line.starts_with('.') {
                wire.push(b'.');
            }
            wire.extend_from_slice(line.as_bytes());
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b".\r\n+OK\r\n");
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            for piece in wire.chunks(1000) {
                s.write_all(piece).unwrap();
            }
        });
        let mut c = Connection::connect("127.0.0.1", port, Duration::from_secs(5)).unwrap();
        let r = c.read_response().unwrap();
        assert_eq!(r.body.len(), want.len());
        assert!(r.body == want);
        assert_eq!(c.read_response().unwrap().status, b"+OK");
        server.join().unwrap();
    }

    #[test]
    fn printable_neutralises_control_octets() {
        assert_eq!(printable(b"-ERR/x \x1b[31mred\r"), "-ERR/x ?[31mred");
        assert_eq!(printable("é".as_bytes()), "??");
        let long = vec![b'a'; 300];
        assert_eq!(printable(&long).len(), 203);
    }

    #[test]
    fn a_refused_port_is_an_error_with_the_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let e = Connection::connect("127.0.0.1", port, Duration::from_secs(5))
            .err()
            .unwrap();
        assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
    }

    #[test]
    fn responses_are_read_across_reads_and_in_order() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"+OK+/MTQP x\r\nSTART").unwrap();
            std::thread::sleep(Duration::from_millis(50));
            s.write_all(b"TLS\r\n.\r\n+OK\r\n").unwrap();
            let mut line = [0u8; 6];
            s.read_exact(&mut line).unwrap();
            line
        });
        let mut c = Connection::connect("127.0.0.1", port, Duration::from_secs(5)).unwrap();
        let r = c.read_response().unwrap();
        assert_eq!(r.status, b"+OK+/MTQP x");
        assert_eq!(r.body, b"STARTTLS\r\n");
        assert!(c.has_unread_input());
        assert_eq!(c.read_response().unwrap().status, b"+OK");
        assert!(!c.has_unread_input());
        c.send_line("QUIT").unwrap();
        assert_eq!(&server.join().unwrap(), b"QUIT\r\n");
        let e = c.read_response().err().unwrap();
        assert!(e.contains("closed the connection"), "{e}");
    }
}
