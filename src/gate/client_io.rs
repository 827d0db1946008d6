//! The client's side of a session: plaintext, or TLS after STARTTLS, with rustls driven by hand
//! over the non-blocking socket (`read_tls` / `process_new_packets` / `reader`, `writer` /
//! `write_tls`, as in rustls' `tlsserver-mio` example), within fixed bounds.

use std::io::{self, Read, Write};
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};

use crate::server::tls::TLS_BUFFER_LIMIT;

/// What a read brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Got {
    /// This many plaintext octets, at the start of the buffer.
    Data(usize),
    /// Nothing to read now (or only TLS records without application data).
    Nothing,
    /// The client closed its side.
    Closed,
}

/// The client's connection.
pub struct ClientIo {
    pub stream: TcpStream,
    tls: Option<Box<ServerConnection>>,
    /// The TLS handshake has just completed (taken by [`ClientIo::handshake_done`]).
    handshake_done: bool,
}

impl ClientIo {
    pub fn new(stream: TcpStream) -> ClientIo {
        ClientIo {
            stream,
            tls: None,
            handshake_done: false,
        }
    }

    /// True once STARTTLS has begun.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// True while a TLS handshake is under way.
    pub fn handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.is_handshaking())
    }

    /// Whether the handshake finished since the last call.
    pub fn handshake_done(&mut self) -> bool {
        std::mem::take(&mut self.handshake_done)
    }

    /// Starts TLS: every octet the socket delivers from now on is TLS.
    pub fn start_tls(&mut self, config: Arc<ServerConfig>) -> Result<(), rustls::Error> {
        let mut tls = ServerConnection::new(config)?;
        tls.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
        self.tls = Some(Box::new(tls));
        Ok(())
    }

    /// Reads what is available into `buf`. Under TLS, `Data(0)` means records were read that
    /// held no application data (the handshake): read again.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<Got> {
        let Some(tls) = &mut self.tls else {
            return match self.stream.read(buf) {
                Ok(0) => Ok(Got::Closed),
                Ok(n) => Ok(Got::Data(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Got::Nothing),
                Err(e) => Err(e),
            };
        };
        // Plaintext rustls still holds from an earlier read comes first.
        match plaintext(tls, buf)? {
            Got::Data(0) => {}
            got => return Ok(got),
        }
        let was_handshaking = tls.is_handshaking();
        match tls.read_tls(&mut self.stream) {
            Ok(0) => return Ok(Got::Closed),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Got::Nothing),
            Err(e) => return Err(e),
        }
        if let Err(e) = tls.process_new_packets() {
            // Send the alert rustls queued, then give up.
            let _ = tls.write_tls(&mut self.stream);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        if was_handshaking && !tls.is_handshaking() {
            self.handshake_done = true;
        }
        plaintext(tls, buf)
    }

    /// Writes as much of `out` as the socket (and rustls' bounded buffer) takes, removing it
    /// from `out`. Returns true when everything, TLS records included, reached the socket.
    pub fn write(&mut self, out: &mut Vec<u8>) -> io::Result<bool> {
        let Some(tls) = &mut self.tls else {
            while !out.is_empty() {
                match self.stream.write(out) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        out.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(true);
        };
        loop {
            if !out.is_empty() && !tls.is_handshaking() {
                let n = tls.writer().write(out)?;
                out.drain(..n);
            }
            while tls.wants_write() {
                match tls.write_tls(&mut self.stream) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if out.is_empty() || tls.is_handshaking() {
                return Ok(out.is_empty());
            }
        }
    }
}

/// Moves the plaintext rustls holds into `buf`: `Data(0)` when it holds none, `Closed` after the
/// client's close_notify.
fn plaintext(tls: &mut ServerConnection, buf: &mut [u8]) -> io::Result<Got> {
    let mut total = 0;
    while total < buf.len() {
        match tls.reader().read(&mut buf[total..]) {
            Ok(0) if total == 0 => return Ok(Got::Closed),
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(Got::Data(total))
}
