//! The MTA behind the gate: where its SMTP listener is (`--mta HOST:PORT`, or `--mta
//! unix:PATH` for a Postfix `smtpd` on a UNIX-domain socket) and a session's connection to it.
//!
//! A UNIX-domain socket is the cheaper hop: every command and reply a session relays crosses
//! it, and on loopback TCP each one also runs the TCP stack twice (segment and acknowledgement,
//! in softirq) where a UNIX socket only queues the octets for the peer; it also keeps other
//! local users from reaching an `smtpd` that believes PROXY headers, by the socket's
//! permissions (docs/deployment.md). Postfix serves it with a `unix` service in master.cf; Exim
//! and sendmail listen on TCP only.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

use mio::event::Source;
use mio::net::{TcpStream, UnixStream};
use mio::{Interest, Registry, Token};

/// The longest path a UNIX-domain socket address holds on Linux (`sun_path`, less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Where the MTA listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MtaAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl MtaAddr {
    /// `unix:/absolute/path`, or `HOST:PORT` (resolved once, now: the first address).
    pub fn parse(text: &str) -> Result<MtaAddr, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(format!("--mta {text}: the socket's path must be absolute"));
            }
            if path.len() > MAX_SOCKET_PATH {
                return Err(format!(
                    "--mta {text}: a UNIX-domain socket's path holds at most {MAX_SOCKET_PATH} \
                     octets"
                ));
            }
            return Ok(MtaAddr::Unix(PathBuf::from(path)));
        }
        text.to_socket_addrs()
            .map_err(|e| format!("--mta {text}: {e}"))?
            .next()
            .map(MtaAddr::Tcp)
            .ok_or_else(|| format!("--mta {text}: the name has no address"))
    }

    /// For a UNIX-domain socket the gate cannot see (or that is not a socket), what is wrong,
    /// said at start-up so that an operator need not wait for the first client's 421 to learn
    /// that the gate's user cannot enter Postfix's `public/` (the group postdrop can). Not an
    /// error: the MTA may start after the gate, and each session tries again.
    pub fn unix_socket_problem(&self) -> Option<String> {
        let MtaAddr::Unix(path) = self else {
            return None;
        };
        match std::fs::metadata(path) {
            Ok(m) if m.file_type().is_socket() => None,
            Ok(_) => Some("not a socket".into()),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Some(format!(
                "{e}: the gate's user cannot reach the socket (for Postfix's public/, the group \
                 postdrop can)"
            )),
            Err(e) => Some(format!("{e}; every session is told 421 until it is there")),
        }
    }
}

impl fmt::Display for MtaAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MtaAddr::Tcp(addr) => addr.fmt(f),
            MtaAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A session's connection to the MTA, non-blocking.
#[derive(Debug)]
pub enum MtaStream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl MtaStream {
    /// Starts connecting. A TCP connection is made in the background (the first write or event
    /// tells how it went); a UNIX one is made at once or fails at once — with `WouldBlock` when
    /// the MTA's listen backlog is full, which the gate answers with a 421 as Postfix's
    /// postscreen does when every smtpd is busy.
    pub fn connect(addr: &MtaAddr) -> io::Result<MtaStream> {
        match addr {
            MtaAddr::Tcp(addr) => {
                let stream = TcpStream::connect(*addr)?;
                // Commands and replies are whole writes; none should wait for an ACK.
                let _ = stream.set_nodelay(true);
                Ok(MtaStream::Tcp(stream))
            }
            MtaAddr::Unix(path) => UnixStream::connect(path).map(MtaStream::Unix),
        }
    }

    /// The socket's pending error, if any (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            MtaStream::Tcp(s) => s.take_error(),
            MtaStream::Unix(s) => s.take_error(),
        }
    }

    fn source(&mut self) -> &mut dyn Source {
        match self {
            MtaStream::Tcp(s) => s,
            MtaStream::Unix(s) => s,
        }
    }
}

impl Read for MtaStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            MtaStream::Tcp(s) => s.read(buf),
            MtaStream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for MtaStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            MtaStream::Tcp(s) => s.write(buf),
            MtaStream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Source for MtaStream {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.source().register(registry, token, interest)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.source().reregister(registry, token, interest)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.source().deregister(registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tcp_and_unix_addresses() {
        assert_eq!(
            MtaAddr::parse("127.0.0.1:10025").unwrap(),
            MtaAddr::Tcp("127.0.0.1:10025".parse().unwrap())
        );
        let unix = MtaAddr::parse("unix:/var/spool/postfix/public/mtqpd-smtpd").unwrap();
        assert_eq!(
            unix,
            MtaAddr::Unix("/var/spool/postfix/public/mtqpd-smtpd".into())
        );
        assert_eq!(
            unix.to_string(),
            "unix:/var/spool/postfix/public/mtqpd-smtpd"
        );
    }

    #[test]
    fn refuses_relative_and_overlong_socket_paths() {
        let e = MtaAddr::parse("unix:public/smtpd").unwrap_err();
        assert_eq!(
            e,
            "--mta unix:public/smtpd: the socket's path must be absolute"
        );
        let long = format!("unix:/{}", "a".repeat(MAX_SOCKET_PATH));
        let e = MtaAddr::parse(&long).unwrap_err();
        assert!(e.ends_with("holds at most 107 octets"), "{e}");
        assert!(MtaAddr::parse(&format!("unix:/{}", "a".repeat(106))).is_ok());
        assert!(MtaAddr::parse("no-port-here").is_err());
    }
}
