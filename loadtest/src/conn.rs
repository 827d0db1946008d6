//! One driver connection: opened and brought to the point of sending commands (greeting read,
//! STARTTLS and the TLS handshake done) with blocking I/O before the run, then driven
//! non-blocking by a thread's event loop.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mtqp_protocol::response::{parse_response, Response};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

use crate::check::Kind;
use crate::rng::Rng;

/// STARTTLS settings.
pub struct Tls {
    pub config: Arc<ClientConfig>,
    pub name: ServerName<'static>,
    pub fqdn: String,
}

/// Reads one whole response from a blocking reader; `buf` keeps what follows it.
fn read_response(r: &mut impl Read, buf: &mut Vec<u8>, what: &str) -> Result<Response, String> {
    let mut chunk = [0u8; 4096];
    loop {
        match parse_response(buf) {
            Ok(Some(resp)) => {
                buf.drain(..resp.wire_len);
                return Ok(resp);
            }
            Ok(None) => {}
            Err(_) => {
                return Err(format!(
                    "{what}: not an MTQP status line: {:?}",
                    String::from_utf8_lossy(&buf[..buf.len().min(80)])
                ))
            }
        }
        match r.read(&mut chunk) {
            Ok(0) => return Err(format!("{what}: the server closed the connection")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
}

fn expect_ok(resp: &Response, what: &str) -> Result<(), String> {
    if resp.status.starts_with(b"+OK") {
        Ok(())
    } else {
        Err(format!("{what}: {}", String::from_utf8_lossy(&resp.status)))
    }
}

/// Connects, reads the greeting and, with `tls`, does STARTTLS, the handshake and reads the
/// greeting again; returns the stream ready for commands.
pub fn open(
    addr: SocketAddr,
    tls: Option<&Tls>,
    timeout: Duration,
) -> Result<(std::net::TcpStream, Option<ClientConnection>), String> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    expect_ok(&read_response(&mut s, &mut buf, "greeting")?, "greeting")?;
    let mut session = None;
    if let Some(tls) = tls {
        s.write_all(format!("STARTTLS {}\r\n", tls.fqdn).as_bytes())
            .map_err(|e| format!("STARTTLS: {e}"))?;
        expect_ok(&read_response(&mut s, &mut buf, "STARTTLS")?, "STARTTLS")?;
        let mut c = ClientConnection::new(Arc::clone(&tls.config), tls.name.clone())
            .map_err(|e| format!("TLS: {e}"))?;
        while c.is_handshaking() {
            c.complete_io(&mut s)
                .map_err(|e| format!("TLS handshake: {e}"))?;
        }
        let mut stream = rustls::Stream::new(&mut c, &mut s);
        expect_ok(
            &read_response(&mut stream, &mut buf, "greeting under TLS")?,
            "greeting under TLS",
        )?;
        session = Some(c);
    }
    if !buf.is_empty() {
        return Err("the server sent more than its greeting before any command".into());
    }
    s.set_read_timeout(None).map_err(|e| e.to_string())?;
    s.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok((s, session))
}

/// A request sent and not yet answered.
#[derive(Debug, Clone, Copy)]
pub struct InFlight {
    pub kind: Kind,
    pub cmd: u32,
    /// Intended send time (schedule), ns.
    pub intended: u64,
    /// Actual send time, ns.
    pub sent: u64,
}

/// A connection in the event loop.
pub struct Conn {
    pub stream: mio::net::TcpStream,
    pub tls: Option<Box<ClientConnection>>,
    /// Requests in flight, oldest first (answers come in order).
    pub fifo: VecDeque<InFlight>,
    /// Received octets not yet a whole answer.
    pub rbuf: Vec<u8>,
    /// Plaintext command octets not yet written (plain TCP only).
    pub out: Vec<u8>,
    /// Requests due by the schedule and not yet sent (window full).
    pub due: u64,
    /// Requests sent so far: the schedule index of the next one.
    pub sent: u64,
    pub rng: Rng,
    /// Closed after an error; sends nothing more.
    pub dead: bool,
}

impl Conn {
    pub fn new(
        stream: std::net::TcpStream,
        tls: Option<ClientConnection>,
        pipeline: usize,
        seed: u64,
    ) -> Conn {
        Conn {
            stream: mio::net::TcpStream::from_std(stream),
            tls: tls.map(Box::new),
            fifo: VecDeque::with_capacity(pipeline),
            rbuf: Vec::new(),
            out: Vec::with_capacity(pipeline * 80),
            due: 0,
            sent: 0,
            rng: Rng::new(seed),
            dead: false,
        }
    }

    /// Queues command octets in `out`; [`Conn::flush`] sends them (through rustls under TLS).
    pub fn queue(&mut self, line: &[u8]) {
        self.out.extend_from_slice(line);
    }

    /// Writes what is queued, as far as the socket takes it.
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.tls {
            None => {
                let mut done = 0;
                while done < self.out.len() {
                    match self.stream.write(&self.out[done..]) {
                        Ok(0) => return Err(ErrorKind::WriteZero.into()),
                        Ok(n) => done += n,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                self.out.drain(..done);
            }
            Some(tls) => {
                if !self.out.is_empty() {
                    // One write of the whole batch: pipelined commands share TLS records.
                    tls.writer().write_all(&self.out)?;
                    self.out.clear();
                }
                while tls.wants_write() {
                    match tls.write_tls(&mut self.stream) {
                        Ok(_) => {}
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads what is available and calls `take` with the plaintext not yet taken, as one slice
    /// at the start of `scratch`: what an earlier call left over (an answer cut by the end of a
    /// read), then what was just read. `take` returns how many octets it used; the rest is kept
    /// for the next call. Returns Ok(false) when the server closed the connection. `closed`: the
    /// readiness event said the peer closed, so read on to the end.
    pub fn read(
        &mut self,
        scratch: &mut Vec<u8>,
        closed: bool,
        mut take: impl FnMut(&mut Self, &[u8]) -> usize,
    ) -> io::Result<bool> {
        loop {
            let left = self.make_room(scratch);
            match &mut self.tls {
                None => match self.stream.read(&mut scratch[left..]) {
                    Ok(0) => return Ok(false),
                    Ok(n) => {
                        let short = n < scratch.len() - left;
                        self.hand(scratch, n, &mut take);
                        if short && !closed {
                            // A short read emptied the socket: on Linux, epoll (edge-triggered)
                            // reports anything that arrives from now on as a new event, so the
                            // read that would only say WouldBlock is saved. Not when the event
                            // already carried the close: that will not be reported again.
                            return Ok(true);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(true),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                },
                Some(tls) => {
                    let eof = match tls.read_tls(&mut self.stream) {
                        Ok(0) => true,
                        Ok(_) => false,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(true),
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    };
                    tls.process_new_packets()
                        .map_err(|e| io::Error::new(ErrorKind::InvalidData, e))?;
                    loop {
                        let left = self.make_room(scratch);
                        let tls = self.tls.as_mut().expect("tls");
                        match tls.reader().read(&mut scratch[left..]) {
                            Ok(0) => return Ok(false),
                            Ok(n) => self.hand(scratch, n, &mut take),
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            Err(e) => return Err(e),
                        }
                    }
                    if eof {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// Makes room in `scratch` after the octets left over, at least as much as they take (an
    /// answer may be longer than the scratch); returns where reading goes.
    fn make_room(&self, scratch: &mut Vec<u8>) -> usize {
        let left = self.rbuf.len();
        if scratch.len() < 2 * left {
            scratch.resize(2 * left, 0);
        }
        left
    }

    /// Puts the left-over octets before the `n` just read into `scratch`, hands them all to
    /// `take` and keeps what it did not use. Only the left-over part is copied (usually less
    /// than one answer), not every read.
    fn hand(
        &mut self,
        scratch: &mut [u8],
        n: usize,
        take: &mut impl FnMut(&mut Self, &[u8]) -> usize,
    ) {
        let left = self.rbuf.len();
        scratch[..left].copy_from_slice(&self.rbuf);
        self.rbuf.clear();
        let data = &scratch[..left + n];
        let used = take(self, data);
        self.rbuf.extend_from_slice(&data[used..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::time::Instant;

    /// A connection whose peer is `peer`, with nothing to say before the test writes.
    fn pair() -> (Conn, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        s.set_nonblocking(true).unwrap();
        (Conn::new(s, None, 1, 0), peer)
    }

    /// Reads until the peer has closed, taking whole lines only; returns them.
    fn lines_until_closed(c: &mut Conn, scratch: &mut Vec<u8>) -> Vec<u8> {
        let mut got = Vec::new();
        let start = Instant::now();
        loop {
            let open = c
                .read(scratch, false, |_, data| {
                    let end = data.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
                    got.extend_from_slice(&data[..end]);
                    end
                })
                .unwrap();
            if !open {
                return got;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "no end");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn what_is_left_comes_first_and_long_lines_grow_the_scratch() {
        let (mut c, mut peer) = pair();
        let mut text = Vec::new();
        for n in 0..200 {
            text.resize(text.len() + n * 7, b'a' + (n % 26) as u8);
            text.push(b'\n');
        }
        let mut scratch = vec![0u8; 16];
        let writer = {
            let text = text.clone();
            std::thread::spawn(move || {
                for piece in text.chunks(333) {
                    peer.write_all(piece).unwrap();
                    std::thread::sleep(Duration::from_micros(200));
                }
                peer.write_all(b"cut short").unwrap();
            })
        };
        let got = lines_until_closed(&mut c, &mut scratch);
        writer.join().unwrap();
        assert_eq!(got, text);
        // The longest line (1,393 octets and its LF) was taken whole, from a scratch grown for it.
        assert!(scratch.len() >= 1393, "{}", scratch.len());
        // What the close cut short stays for the caller to report.
        assert_eq!(c.rbuf, b"cut short");
    }
}
