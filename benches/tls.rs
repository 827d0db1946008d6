//! TLS on one server worker thread (pinned to CPU 0), driven from this process (CPU 1):
//! full STARTTLS handshakes per second (TLS 1.3, ECDSA P-256 certificate, X25519), then TRACK
//! hits per second over 50 TLS connections with 8 commands in flight each.
//! Run: `cargo bench --bench tls` (MTQPD_BENCH_SECS to change the duration).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use memchr::memmem;
use mio::{Events, Interest, Poll, Token};
use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

const FQDN: &str = "mtqp.bench.example";

fn read_line(s: &mut TcpStream) -> Vec<u8> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "closed");
        line.push(b[0]);
    }
    line
}

/// Connects, does STARTTLS and the handshake, and reads the TLS greeting.
fn tls_connect(
    addr: std::net::SocketAddr,
    config: &Arc<ClientConfig>,
) -> (TcpStream, ClientConnection) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    while read_line(&mut s) != b".\r\n" {}
    s.write_all(format!("STARTTLS {FQDN}\r\n").as_bytes())
        .unwrap();
    assert!(read_line(&mut s).starts_with(b"+OK"));
    let mut tls =
        ClientConnection::new(Arc::clone(config), ServerName::try_from(FQDN).unwrap()).unwrap();
    while tls.is_handshaking() {
        tls.complete_io(&mut s).unwrap();
    }
    let mut greeting = [0u8; 256];
    let mut stream = rustls::Stream::new(&mut tls, &mut s);
    let n = stream.read(&mut greeting).unwrap();
    assert!(greeting[..n].starts_with(b"+OK/MTQP"));
    (s, tls)
}

fn main() {
    let secs: u64 = std::env::var("MTQPD_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![FQDN.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let bench = common::start_with("tls", 10_000, Some(0), |dir| {
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        vec![
            "--tls-cert".into(),
            c.display().to_string(),
            "--tls-key".into(),
            k.display().to_string(),
        ]
    });
    common::pin_self(1);
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(cert.der().to_vec()))
        .unwrap();
    let config = Arc::new(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );

    let start = Instant::now();
    let mut handshakes = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        let (mut s, mut tls) = tls_connect(bench.addr, &config);
        tls.send_close_notify();
        let _ = tls.complete_io(&mut s);
        handshakes += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!("STARTTLS handshakes (connect + greeting + STARTTLS + TLS 1.3 handshake + greeting), one client thread: {:.0}/s", handshakes as f64 / elapsed);

    let (conns, depth) = (50usize, 8usize);
    let commands: Vec<Vec<u8>> = (0..10_000)
        .map(|i| {
            let (envid, secret) = common::message(i);
            format!("TRACK <{envid}> {secret}\r\n").into_bytes()
        })
        .collect();
    let mut poll = Poll::new().unwrap();
    let mut all: Vec<(mio::net::TcpStream, ClientConnection, usize, usize, Vec<u8>)> = (0..conns)
        .map(|i| {
            let (s, tls) = tls_connect(bench.addr, &config);
            s.set_nonblocking(true).unwrap();
            let mut s = mio::net::TcpStream::from_std(s);
            poll.registry()
                .register(&mut s, Token(i), Interest::READABLE | Interest::WRITABLE)
                .unwrap();
            (s, tls, 0, i * 97, Vec::new())
        })
        .collect();
    let terminator = memmem::Finder::new(b"\r\n.\r\n");
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    let top_up = |tls: &mut ClientConnection, in_flight: &mut usize, next: &mut usize| {
        while *in_flight < depth {
            tls.writer()
                .write_all(&commands[*next % commands.len()])
                .unwrap();
            *next += 1;
            *in_flight += 1;
        }
    };
    for (s, tls, in_flight, next, _) in &mut all {
        top_up(tls, in_flight, next);
        while tls.wants_write() {
            tls.write_tls(s).unwrap();
        }
    }
    let start = Instant::now();
    let mut measured: Option<(Instant, u64)> = None;
    while start.elapsed() < Duration::from_secs(secs + 1) {
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .unwrap();
        if measured.is_none() && start.elapsed() >= Duration::from_secs(1) {
            measured = Some((Instant::now(), done));
        }
        for ev in events.iter() {
            let (s, tls, in_flight, next, tail) = &mut all[ev.token().0];
            loop {
                match tls.read_tls(s) {
                    Ok(0) => panic!("server closed"),
                    Ok(_) => {
                        tls.process_new_packets().unwrap();
                        loop {
                            match tls.reader().read(&mut buf) {
                                Ok(n) if n > 0 => {
                                    let mut scan = std::mem::take(tail);
                                    scan.extend_from_slice(&buf[..n]);
                                    let k = terminator.find_iter(&scan).count();
                                    *tail = scan[scan.len().saturating_sub(4)..].to_vec();
                                    *in_flight -= k;
                                    done += k as u64;
                                }
                                _ => break,
                            }
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("read: {e}"),
                }
            }
            top_up(tls, in_flight, next);
            while tls.wants_write() {
                match tls.write_tls(s) {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("write: {e}"),
                }
            }
        }
    }
    let (t0, d0) = measured.expect("ran past warm-up");
    println!(
        "TRACK hits under TLS, {conns} connections x pipeline {depth}: {:.0}/s",
        (done - d0) as f64 / t0.elapsed().as_secs_f64()
    );
}
