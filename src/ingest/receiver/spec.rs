//! `--syslog-listen PROTO:ADDR:PORT`: where the receiver listens, and how senders frame what
//! they send there (UDP: one message a datagram; TCP and TLS: RFC 6587 framing).

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// The transport of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// RFC 6587 over plain TCP.
    Tcp,
    /// RFC 5426: one message a datagram.
    Udp,
    /// RFC 5425: RFC 6587 framing inside TLS.
    Tls,
}

/// One `--syslog-listen` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyslogListen {
    pub transport: Transport,
    pub addr: SocketAddr,
}

impl FromStr for SyslogListen {
    type Err = String;

    fn from_str(s: &str) -> Result<SyslogListen, String> {
        let bad = || format!("'{s}' is not tcp:ADDR:PORT, udp:ADDR:PORT or tls:ADDR:PORT");
        let (proto, addr) = s.split_once(':').ok_or_else(bad)?;
        let transport = match proto {
            "tcp" => Transport::Tcp,
            "udp" => Transport::Udp,
            "tls" => Transport::Tls,
            _ => return Err(bad()),
        };
        let addr = SocketAddr::from_str(addr).map_err(|_| bad())?;
        Ok(SyslogListen { transport, addr })
    }
}

impl fmt::Display for SyslogListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.transport {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
            Transport::Tls => "tls",
        };
        write!(f, "{proto}:{}", self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_back() {
        for s in [
            "tcp:127.0.0.1:514",
            "udp:0.0.0.0:514",
            "tls:[::1]:6514",
            "tcp:[::]:0",
        ] {
            let spec: SyslogListen = s.parse().unwrap();
            assert_eq!(spec.to_string(), s);
        }
        let spec: SyslogListen = "tls:10.0.0.1:6514".parse().unwrap();
        assert_eq!(spec.transport, Transport::Tls);
        assert_eq!(spec.addr, SocketAddr::from(([10, 0, 0, 1], 6514)));
        for bad in [
            "",
            "tcp",
            "tcp:",
            "127.0.0.1:514",
            "relp:127.0.0.1:514",
            "TCP:127.0.0.1:514",
            "tcp:localhost:514",
            "udp:127.0.0.1",
            "tcp:::1:514",
        ] {
            let e = bad.parse::<SyslogListen>().expect_err(bad);
            assert!(e.contains("is not tcp:ADDR:PORT"), "{e}");
        }
    }
}
