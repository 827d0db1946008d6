//! MTQP under TLS for tests: the handshake after a STARTTLS the server said `+OK` to, and
//! reading responses from the TLS stream.

use std::io::Read;
use std::net::TcpStream;

use mtqpd::protocol::response::parse_response;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};

use super::pki::Pki;
use super::Client;

/// A client's TLS stream.
pub type Tls = StreamOwned<ClientConnection, TcpStream>;

/// Reads one response from a TLS stream.
pub fn tls_response(tls: &mut Tls, buf: &mut Vec<u8>) -> Vec<u8> {
    loop {
        if let Some(r) = parse_response(buf).expect("status line") {
            return buf.drain(..r.wire_len).collect();
        }
        let mut chunk = [0u8; 16384];
        let n = tls.read(&mut chunk).expect("tls read");
        assert!(n > 0, "closed mid-response");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Handshakes over a client whose STARTTLS was answered `+OK`; returns the TLS stream, the
/// greeting that follows the handshake, and the certificate the server showed.
pub fn handshake(c: Client, pki: &Pki, fqdn: &str) -> (Tls, Vec<u8>, Vec<u8>, Vec<u8>) {
    let name = ServerName::try_from(fqdn.to_string()).unwrap();
    let conn = ClientConnection::new(pki.client_config(), name).unwrap();
    let mut tls = StreamOwned::new(conn, c.stream);
    let mut buf = Vec::new();
    let greeting = tls_response(&mut tls, &mut buf);
    let peer = tls.conn.peer_certificates().expect("peer certs")[0].to_vec();
    (tls, greeting, peer, buf)
}
