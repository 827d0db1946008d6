//! One sender's TCP connection, plain or TLS: reading it (rustls driven by hand over the
//! non-blocking socket, as `src/server/conn.rs` does), framing what it sends, and handing the
//! messages to the [`Sink`]. Syslog flows one way: the only octets written back are TLS's
//! own (handshake, tickets, alerts).

use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::{ServerConfig, ServerConnection};

use super::frame::{FrameError, Framer};
use super::sink::Sink;
use super::stats::ReceiverStats;
use crate::server::tls::TLS_BUFFER_LIMIT;

/// Why a connection ended.
#[derive(Debug)]
pub enum Close {
    /// The sender closed it.
    Eof,
    /// A socket error (reset, ...).
    Io(io::Error),
    /// Octets that cannot be framed.
    Framing(FrameError),
    /// TLS failed: the handshake (counted as a TLS failure) or a later record.
    Tls(rustls::Error),
}

/// How far a read went.
#[derive(Debug)]
pub enum Outcome {
    /// Everything readable was read (WouldBlock).
    Drained,
    /// The budget ran out first: there may be more.
    Budget,
    /// The connection is over.
    Closed(Close),
}

/// One accepted, admitted connection.
pub struct Conn {
    pub stream: mio::net::TcpStream,
    pub peer: SocketAddr,
    tls: Option<Box<ServerConnection>>,
    framer: Framer,
    /// Unique among the receiver's connections, so that a stale reference to a reused slot
    /// (a handshake deadline) is recognised.
    pub serial: u64,
    /// Waiting in the event loop's ready queue.
    pub queued: bool,
}

impl Conn {
    pub fn new(
        stream: mio::net::TcpStream,
        peer: SocketAddr,
        tls: Option<&Arc<ServerConfig>>,
        serial: u64,
    ) -> Result<Conn, rustls::Error> {
        let tls = match tls {
            Some(config) => {
                let mut tls = ServerConnection::new(Arc::clone(config))?;
                tls.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
                Some(Box::new(tls))
            }
            None => None,
        };
        Ok(Conn {
            stream,
            peer,
            tls,
            framer: Framer::default(),
            serial,
            queued: false,
        })
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// True while a TLS handshake is under way.
    pub fn is_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.is_handshaking())
    }

    /// Reads until the socket has nothing more or about `budget` octets came in, framing
    /// everything into `sink`. `scratch` is where octets are read to.
    pub fn read(
        &mut self,
        scratch: &mut [u8],
        budget: usize,
        sink: &mut Sink,
        stats: &ReceiverStats,
    ) -> Outcome {
        let mut total = 0;
        while total < budget {
            let got = match &mut self.tls {
                None => read_plain(&mut self.stream, scratch),
                Some(tls) => read_tls(tls, &mut self.stream, scratch, stats),
            };
            let n = match got {
                Ok(Some(0)) => return Outcome::Closed(self.finish(sink, stats)),
                Ok(Some(n)) => n,
                // Handshake records only: read on.
                Ok(None) => continue,
                Err(Close::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Outcome::Drained
                }
                Err(close) => return Outcome::Closed(close),
            };
            total += n;
            ReceiverStats::add(&stats.bytes, n as u64);
            let framed = self
                .framer
                .feed(&scratch[..n], &mut |piece| sink.take(piece, stats));
            if let Err(e) = framed {
                return Outcome::Closed(Close::Framing(e));
            }
        }
        Outcome::Budget
    }

    /// The sender closed the stream: its last LF-framed message may lack its LF.
    fn finish(&mut self, sink: &mut Sink, stats: &ReceiverStats) -> Close {
        if self.framer.finish(&mut |piece| sink.take(piece, stats)) {
            ReceiverStats::add(&stats.malformed, 1);
        }
        Close::Eof
    }

    /// Writes what TLS has queued (after the handshake: nothing, or a ticket or an alert).
    pub fn flush_tls(&mut self) -> Result<(), Close> {
        if let Some(tls) = &mut self.tls {
            write_tls(tls, &mut self.stream)?;
        }
        Ok(())
    }
}

/// Octets read into `scratch`: Some(0) at the end of the stream.
fn read_plain(
    stream: &mut mio::net::TcpStream,
    scratch: &mut [u8],
) -> Result<Option<usize>, Close> {
    loop {
        match stream.read(scratch) {
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Close::Io(e)),
        }
    }
}

/// Reads ciphertext, processes it and moves the plaintext into `scratch`: Some(0) at the end
/// of the stream (close_notify or a close without it), None when the records held no
/// plaintext (the handshake).
fn read_tls(
    tls: &mut ServerConnection,
    stream: &mut mio::net::TcpStream,
    scratch: &mut [u8],
    stats: &ReceiverStats,
) -> Result<Option<usize>, Close> {
    // Plaintext left from the last call (the scratch was full) comes first: rustls reads no
    // more ciphertext while it waits.
    if let Some(n) = plaintext(tls, scratch)? {
        return Ok(Some(n));
    }
    let read = loop {
        match tls.read_tls(stream) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // WouldBlock included: the handshake may owe the peer an answer.
                write_tls(tls, stream)?;
                return Err(Close::Io(e));
            }
            Ok(n) => break n,
        }
    };
    if read == 0 {
        return Ok(Some(0));
    }
    let was_handshaking = tls.is_handshaking();
    if let Err(e) = tls.process_new_packets() {
        if was_handshaking {
            ReceiverStats::add(&stats.tls_failures, 1);
        }
        // Send the alert rustls queued, then give up on the connection.
        let _ = tls.write_tls(stream);
        return Err(Close::Tls(e));
    }
    write_tls(tls, stream)?;
    plaintext(tls, scratch)
}

/// Decrypted octets into `scratch`: Some(0) after the peer's close_notify, None when there
/// are none yet.
fn plaintext(tls: &mut ServerConnection, scratch: &mut [u8]) -> Result<Option<usize>, Close> {
    match tls.reader().read(scratch) {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        // The peer closed the TCP stream without close_notify: an end all the same (what
        // it sent before was authenticated record by record).
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Some(0)),
        Err(e) => Err(Close::Io(e)),
    }
}

/// Writes TLS's queued records until done or the socket is full (a WRITABLE event resumes).
fn write_tls(tls: &mut ServerConnection, stream: &mut mio::net::TcpStream) -> Result<(), Close> {
    while tls.wants_write() {
        match tls.write_tls(stream) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Close::Io(e)),
        }
    }
    Ok(())
}
