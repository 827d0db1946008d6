//! SMTP for the gate's tests: a client that reads whole replies, and a scripted MTA on
//! 127.0.0.1 port 0 (or on a UNIX-domain socket) that records every octet the gate sends it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use super::DEADLINE;

/// The length of the complete SMTP reply at the start of `buf`, if there is one.
pub fn reply_len(buf: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(nl) = buf[at..].iter().position(|&c| c == b'\n') {
        let line = &buf[at..at + nl + 1];
        at += nl + 1;
        if line.get(3) != Some(&b'-') {
            return Some(at);
        }
    }
    None
}

/// A test SMTP client, over TCP or anything else (TLS after STARTTLS).
pub struct Smtp<S = TcpStream> {
    pub stream: S,
    pub buf: Vec<u8>,
}

impl Smtp {
    pub fn connect(addr: SocketAddr) -> Smtp {
        Smtp::over(TcpStream::connect(addr).expect("connect"))
    }

    /// A client over a connection made elsewhere (from another source address, say).
    pub fn over(stream: TcpStream) -> Smtp {
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        Smtp::wrap(stream)
    }
}

impl<S: Read + Write> Smtp<S> {
    /// A client over `stream` (whose read timeout the caller has set).
    pub fn wrap(stream: S) -> Smtp<S> {
        Smtp {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// One whole reply, as text.
    pub fn reply(&mut self) -> String {
        loop {
            if let Some(n) = reply_len(&self.buf) {
                let r: Vec<u8> = self.buf.drain(..n).collect();
                return String::from_utf8(r).expect("utf-8 reply");
            }
            let mut chunk = [0u8; 16384];
            let n = self.stream.read(&mut chunk).expect("read (timed out?)");
            assert!(
                n > 0,
                "closed mid-reply: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends a command line (CRLF added) and returns the reply.
    pub fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Reads until the other side closes; what came before.
    pub fn read_to_close(&mut self) -> String {
        let mut chunk = [0u8; 16384];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("read (timed out?): {e}"),
            }
        }
        String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned()
    }
}

/// The scripted MTA's end of one connection, on either transport the gate speaks.
pub enum MtaSocket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl MtaSocket {
    fn set_read_timeout(&self, wait: Option<Duration>) {
        match self {
            MtaSocket::Tcp(s) => s.set_read_timeout(wait),
            MtaSocket::Unix(s) => s.set_read_timeout(wait),
        }
        .unwrap();
    }
}

impl Read for MtaSocket {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            MtaSocket::Tcp(s) => s.read(buf),
            MtaSocket::Unix(s) => s.read(buf),
        }
    }
}

impl Write for MtaSocket {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            MtaSocket::Tcp(s) => s.write(buf),
            MtaSocket::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One connection to the scripted MTA: the script reads what the gate sends and answers.
pub struct MtaConn {
    pub stream: MtaSocket,
    /// Every octet the gate sent on this connection, in order.
    pub received: Vec<u8>,
    pending: Vec<u8>,
}

impl MtaConn {
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16384];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.received.extend_from_slice(&chunk[..n]);
                self.pending.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The PROXY v2 header the gate sends first (16 octets plus the address block).
    pub fn proxy_header(&mut self) -> Vec<u8> {
        while self.pending.len() < 16 {
            assert!(self.fill(), "closed before the PROXY header");
        }
        let len = 16 + usize::from(u16::from_be_bytes([self.pending[14], self.pending[15]]));
        while self.pending.len() < len {
            assert!(self.fill(), "closed inside the PROXY header");
        }
        self.pending.drain(..len).collect()
    }

    /// The next line the gate sends, with its CRLF.
    pub fn line(&mut self) -> String {
        loop {
            if let Some(nl) = self.pending.iter().position(|&c| c == b'\n') {
                let l: Vec<u8> = self.pending.drain(..=nl).collect();
                return String::from_utf8_lossy(&l).into_owned();
            }
            assert!(
                self.fill(),
                "closed; had {:?}",
                String::from_utf8_lossy(&self.pending)
            );
        }
    }

    /// The message data up to and including the `CRLF . CRLF` (or the `.` CRLF of an empty one).
    pub fn data(&mut self) -> Vec<u8> {
        loop {
            let end = if self.pending.starts_with(b".\r\n") {
                Some(3)
            } else {
                self.pending
                    .windows(5)
                    .position(|w| w == b"\r\n.\r\n")
                    .map(|p| p + 5)
            };
            if let Some(end) = end {
                return self.pending.drain(..end).collect();
            }
            assert!(self.fill(), "closed inside the data");
        }
    }

    /// True when nothing more arrives within `wait` (the gate holds what it has not sent).
    pub fn quiet_for(&mut self, wait: Duration) -> bool {
        if !self.pending.is_empty() {
            return false;
        }
        self.stream.set_read_timeout(Some(wait));
        let mut chunk = [0u8; 1024];
        let quiet = match self.stream.read(&mut chunk) {
            Ok(n) => {
                self.received.extend_from_slice(&chunk[..n]);
                self.pending.extend_from_slice(&chunk[..n]);
                false
            }
            Err(_) => true,
        };
        self.stream.set_read_timeout(Some(DEADLINE));
        quiet
    }

    pub fn send(&mut self, bytes: &str) {
        self.stream.write_all(bytes.as_bytes()).expect("mta send");
    }

    /// Reads until the gate closes this connection.
    pub fn until_closed(&mut self) {
        while self.fill() {}
    }
}

/// An MTA on 127.0.0.1 (or a UNIX-domain socket) that runs `script` on each connection in
/// turn, on its own thread, and hands back each connection once its script returns.
pub struct FakeMta {
    /// What `mtqpd gate --mta` names it by.
    mta_arg: String,
    done: mpsc::Receiver<MtaConn>,
}

impl FakeMta {
    pub fn start(script: impl Fn(&mut MtaConn) + Send + 'static) -> FakeMta {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mta_arg = listener.local_addr().unwrap().to_string();
        let connections =
            std::iter::from_fn(move || listener.accept().ok()).map(|(s, _)| MtaSocket::Tcp(s));
        Self::serve(mta_arg, connections, script)
    }

    /// The same MTA listening on the UNIX-domain socket `path` (`--mta unix:PATH`).
    pub fn start_unix(path: &Path, script: impl Fn(&mut MtaConn) + Send + 'static) -> FakeMta {
        let listener = UnixListener::bind(path).unwrap();
        let mta_arg = format!("unix:{}", path.display());
        let connections =
            std::iter::from_fn(move || listener.accept().ok()).map(|(s, _)| MtaSocket::Unix(s));
        Self::serve(mta_arg, connections, script)
    }

    fn serve(
        mta_arg: String,
        connections: impl Iterator<Item = MtaSocket> + Send + 'static,
        script: impl Fn(&mut MtaConn) + Send + 'static,
    ) -> FakeMta {
        let (tx, done) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in connections {
                stream.set_read_timeout(Some(DEADLINE));
                let mut conn = MtaConn {
                    stream,
                    received: Vec::new(),
                    pending: Vec::new(),
                };
                script(&mut conn);
                if tx.send(conn).is_err() {
                    return;
                }
            }
        });
        FakeMta { mta_arg, done }
    }

    /// The next connection whose script has finished.
    pub fn finished(&self) -> MtaConn {
        self.done
            .recv_timeout(DEADLINE)
            .expect("the MTA script did not finish")
    }

    pub fn mta_arg(&self) -> String {
        self.mta_arg.clone()
    }
}
