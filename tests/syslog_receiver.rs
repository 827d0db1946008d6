//! The syslog receiver over real sockets on 127.0.0.1 (port 0): framing across writes,
//! refusal by address, UDP, TLS with and without client certificates, backpressure and the
//! drain at stop. Every check is on exact lines; waits are bounded by deadlines, never timed.

mod common;
use common::wait_acked;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::pki::Pki;
use common::DEADLINE;
use crossbeam_channel::{bounded, Receiver as Lines};
use mtqpd::ingest::receiver::{
    spawn, Cidr, Receiver, ReceiverConfig, ReceiverTls, SyslogListen, MAX_CONNECTIONS,
};
use mtqpd::ingest::stream::{Batch, CHANNEL_BATCHES};
use mtqpd::server::live_certs::LiveCerts;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned};

/// A receiver on `listen` (PROTO:127.0.0.1:0 specs) admitting `allow`.
fn start(listen: &[&str], allow: &[&str], tls: Option<ReceiverTls>) -> (Receiver, Lines<Batch>) {
    let config = ReceiverConfig {
        listen: listen.iter().map(|s| s.parse().unwrap()).collect(),
        allow: allow.iter().map(|s| s.parse::<Cidr>().unwrap()).collect(),
        tls,
        max_connections: MAX_CONNECTIONS,
    };
    let (tx, rx) = bounded(CHANNEL_BATCHES);
    (spawn(config, tx).expect("binds"), rx)
}

fn addr(receiver: &Receiver, i: usize) -> SocketAddr {
    let SyslogListen { addr, .. } = receiver.local_addrs()[i];
    addr
}

/// The next `n` lines.
fn take(rx: &Lines<Batch>, n: usize) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    while lines.len() < n {
        let batch = rx
            .recv_timeout(DEADLINE)
            .expect("lines within the deadline");
        lines.extend(batch.lines().map(<[u8]>::to_vec));
    }
    assert_eq!(lines.len(), n, "more lines than expected");
    lines
}

/// Stops the receiver and returns every line it still sends.
fn stop(receiver: Receiver, rx: &Lines<Batch>) -> Vec<Vec<u8>> {
    receiver.begin_stop();
    let mut lines = Vec::new();
    while let Ok(batch) = rx.recv_timeout(DEADLINE) {
        lines.extend(batch.lines().map(<[u8]>::to_vec));
    }
    assert!(rx.is_empty(), "the channel disconnected");
    receiver.join();
    lines
}

/// Waits for the server to close `stream`.
fn wait_closed(stream: &mut TcpStream) {
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut buf = [0; 64];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("not closed: {other:?}"),
    }
}

fn octet(message: &[u8]) -> Vec<u8> {
    let mut frame = format!("{} ", message.len()).into_bytes();
    frame.extend_from_slice(message);
    frame
}

fn text(lines: &[Vec<u8>]) -> Vec<String> {
    lines
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}

const A: &[u8] =
    b"<22>Dec  3 08:00:00 mx1 postfix/smtpd[17]: 4D1A2B3C: client=c.example[192.0.2.1]";
const B: &[u8] = b"<22>2026-12-03T08:00:00.123+01:00 mx1 postfix/qmgr[5]: 4D1A2B3C: removed";
/// RFC 5424 with an LF inside MSG and rsyslog's trailing LF.
const C: &[u8] = b"<22>1 2026-12-03T08:00:00Z mx1 postfix/smtp 9 - - two\nlines\n";

#[test]
fn frames_split_at_every_byte_boundary() {
    let (receiver, rx) = start(&["tcp:127.0.0.1:0"], &["127.0.0.0/8"], None);
    let mut stream = octet(A);
    stream.extend_from_slice(B);
    stream.extend_from_slice(b"\r\n");
    stream.extend_from_slice(&octet(C));
    stream.extend_from_slice(A);
    stream.push(b'\n');
    let want = vec![
        A[4..].to_vec(),
        B[4..].to_vec(),
        b"<22>1 2026-12-03T08:00:00Z mx1 postfix/smtp 9 - - two\nlines".to_vec(),
        A[4..].to_vec(),
    ];
    for cut in 0..=stream.len() {
        let mut client = TcpStream::connect(addr(&receiver, 0)).unwrap();
        client.set_nodelay(true).unwrap();
        client.write_all(&stream[..cut]).unwrap();
        client.flush().unwrap();
        client.write_all(&stream[cut..]).unwrap();
        assert_eq!(text(&take(&rx, 4)), text(&want), "cut at {cut}");
    }
    let stats = receiver.stats().snapshot();
    assert_eq!(stats.connections, stream.len() as u64 + 1);
    assert_eq!(stats.lines, 4 * (stream.len() as u64 + 1));
    assert_eq!(stats.bytes, stream.len() as u64 * (stream.len() as u64 + 1));
    assert_eq!(stop(receiver, &rx), Vec::<Vec<u8>>::new());
}

#[test]
fn oversize_frames_are_skipped_and_garbage_closes() {
    let (receiver, rx) = start(&["tcp:127.0.0.1:0"], &["127.0.0.0/8"], None);
    let mut big = b"<22>Dec  3 08:00:00 mx1 p: ".to_vec();
    big.resize(64 * 1024 + 1, b'x');
    let mut client = TcpStream::connect(addr(&receiver, 0)).unwrap();
    let mut stream = octet(&big);
    stream.extend_from_slice(&octet(A));
    stream.extend_from_slice(&big);
    stream.push(b'\n');
    stream.extend_from_slice(B);
    stream.push(b'\n');
    // A message without PRI is skipped; the connection lives on.
    stream.extend_from_slice(&octet(b"no pri"));
    stream.extend_from_slice(&octet(A));
    client.write_all(&stream).unwrap();
    assert_eq!(
        text(&take(&rx, 3)),
        text(&[A[4..].to_vec(), B[4..].to_vec(), A[4..].to_vec()])
    );
    // Garbage where a frame starts: the connection is closed; what came before is kept.
    client.write_all(&octet(B)).unwrap();
    client.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    wait_closed(&mut client);
    assert_eq!(text(&take(&rx, 1)), text(&[B[4..].to_vec()]));
    // LEN of ten digits.
    let mut client = TcpStream::connect(addr(&receiver, 0)).unwrap();
    client.write_all(b"1000000000 <1>x").unwrap();
    wait_closed(&mut client);
    let stats = receiver.stats().snapshot();
    assert_eq!((stats.too_long, stats.malformed), (2, 1));
    assert_eq!(stats.framing_errors, 2);
    assert_eq!(stop(receiver, &rx), Vec::<Vec<u8>>::new());
}

#[test]
fn senders_outside_the_allow_list_are_refused() {
    // 127.0.0.1 is not in it.
    let (receiver, rx) = start(
        &["tcp:127.0.0.1:0", "udp:127.0.0.1:0"],
        &["127.0.0.2/32", "::1/128"],
        None,
    );
    let mut client = TcpStream::connect(addr(&receiver, 0)).unwrap();
    let _ = client.write_all(&octet(A));
    wait_closed(&mut client);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(A, addr(&receiver, 1)).unwrap();
    // From 127.0.0.2 (in the list) it is taken; after the refused datagram, as sent.
    let allowed = UdpSocket::bind("127.0.0.2:0").unwrap();
    allowed.send_to(B, addr(&receiver, 1)).unwrap();
    assert_eq!(text(&take(&rx, 1)), text(&[B[4..].to_vec()]));
    let stats = receiver.stats().snapshot();
    assert_eq!((stats.refused, stats.connections, stats.lines), (2, 0, 1));
    assert_eq!(stop(receiver, &rx), Vec::<Vec<u8>>::new());
}

#[test]
fn udp_takes_one_message_a_datagram() {
    let (receiver, rx) = start(&["udp:127.0.0.1:0"], &["127.0.0.0/8"], None);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = addr(&receiver, 0);
    let with_lf = [B, b"\n"].concat();
    let with_crlf = [A, b"\r\n"].concat();
    for datagram in [A, &with_lf, b"no pri\n", &with_crlf, C] {
        udp.send_to(datagram, to).unwrap();
    }
    let want = [
        A[4..].to_vec(),
        B[4..].to_vec(),
        A[4..].to_vec(),
        b"<22>1 2026-12-03T08:00:00Z mx1 postfix/smtp 9 - - two\nlines".to_vec(),
    ];
    assert_eq!(text(&take(&rx, 4)), text(&want));
    let stats = receiver.stats().snapshot();
    assert_eq!((stats.malformed, stats.udp_drops), (1, 0));
    assert!(stats.to_string().starts_with("syslog receiver: 4 lines"));
    assert_eq!(stop(receiver, &rx), Vec::<Vec<u8>>::new());
}

/// A TLS client of `server` trusting `pki`'s CA, with a client certificate if given.
fn tls_client(
    server: SocketAddr,
    pki: &Pki,
    client_cert: Option<(&str, &str)>,
) -> StreamOwned<ClientConnection, TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    let config = match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    let name = ServerName::try_from("syslog.example").unwrap();
    let conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(server).unwrap();
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    StreamOwned::new(conn, tcp)
}

fn receiver_tls(pki: &Pki, leaf: &common::pki::Leaf, client_ca: Option<&Path>) -> ReceiverTls {
    let certs = LiveCerts::load(&[(leaf.cert.clone().into(), leaf.key.clone().into())]).unwrap();
    ReceiverTls::new(&certs, client_ca.map(Path::to_path_buf))
        .unwrap_or_else(|e| panic!("{e} ({})", pki.dir.0.display()))
}

#[test]
fn tls_carries_frames() {
    let (pki, ca, ca_key) = Pki::new("recv-tls");
    let leaf = pki.leaf(&ca, &ca_key, "server", &["syslog.example"]);
    let tls = receiver_tls(&pki, &leaf, None);
    let (receiver, rx) = start(&["tls:127.0.0.1:0"], &["127.0.0.0/8"], Some(tls));
    let mut client = tls_client(addr(&receiver, 0), &pki, None);
    let mut stream = octet(A);
    stream.extend_from_slice(B);
    stream.push(b'\n');
    client.write_all(&stream).unwrap();
    client.flush().unwrap();
    assert_eq!(
        text(&take(&rx, 2)),
        text(&[A[4..].to_vec(), B[4..].to_vec()])
    );
    // Written, then the stop: the drain reads it through TLS.
    client.write_all(&octet(C)).unwrap();
    client.flush().unwrap();
    wait_acked(client.get_ref());
    let rest = stop(receiver, &rx);
    assert_eq!(
        text(&rest),
        ["<22>1 2026-12-03T08:00:00Z mx1 postfix/smtp 9 - - two\nlines"]
    );
}

#[test]
fn tls_client_certificates_admit_senders_by_certificate() {
    let (pki, ca, ca_key) = Pki::new("recv-mtls");
    let leaf = pki.leaf(&ca, &ca_key, "server", &["syslog.example"]);
    let client_leaf = pki.leaf(&ca, &ca_key, "client", &["mx1.example"]);
    let (other, other_ca, other_key) = Pki::new("recv-mtls-other");
    let stranger = other.leaf(&other_ca, &other_key, "stranger", &["mx1.example"]);
    let tls = receiver_tls(&pki, &leaf, Some(&pki.dir.path("ca.pem")));
    // The allow list excludes 127.0.0.1: only the certificate can admit.
    let (receiver, rx) = start(&["tls:127.0.0.1:0"], &["10.0.0.0/8"], Some(tls));
    let server = addr(&receiver, 0);
    for cert in [None, Some((stranger.cert.as_str(), stranger.key.as_str()))] {
        let mut client = tls_client(server, &pki, cert);
        // TLS 1.3: the client may finish before the server has checked its certificate.
        let _ = client.write_all(&octet(A)).and_then(|()| client.flush());
        let mut buf = [0; 16];
        assert!(!matches!(client.read(&mut buf), Ok(n) if n > 0));
    }
    let mut client = tls_client(server, &pki, Some((&client_leaf.cert, &client_leaf.key)));
    client.write_all(&octet(B)).unwrap();
    client.flush().unwrap();
    assert_eq!(text(&take(&rx, 1)), text(&[B[4..].to_vec()]));
    let stats = receiver.stats().snapshot();
    assert_eq!((stats.tls_failures, stats.lines, stats.refused), (2, 1, 0));
    assert_eq!(stop(receiver, &rx), Vec::<Vec<u8>>::new());
}

/// The largest value of a `/proc/sys/net/ipv4/tcp_[rw]mem` triple.
fn buffer_max(name: &str) -> usize {
    let text = std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}")).unwrap_or_default();
    text.split_whitespace()
        .last()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8 << 20)
}

#[test]
fn a_full_channel_stops_reading_and_loses_nothing() {
    let (receiver, rx) = start(&["tcp:127.0.0.1:0"], &["127.0.0.0/8"], None);
    // More than the channel, a batch, and both sockets' buffers can hold: the writer must
    // block while nobody takes batches.
    let room =
        5 * 256 * 1024 * CHANNEL_BATCHES / 4 + buffer_max("tcp_rmem") + buffer_max("tcp_wmem");
    let line = |i: usize| {
        format!("<22>Dec  3 08:00:00 mx1 postfix/smtp[9]: {i:010}: to=<u@example.com>, status=sent (250 ok)\n")
    };
    let count = room / line(0).len() + 10_000;
    let done = Arc::new(AtomicBool::new(false));
    let mut client = TcpStream::connect(addr(&receiver, 0)).unwrap();
    let writer = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut chunk = String::new();
            for i in 0..count {
                chunk.push_str(&line(i));
                if chunk.len() > 60_000 {
                    client.write_all(chunk.as_bytes()).unwrap();
                    chunk.clear();
                }
            }
            client.write_all(chunk.as_bytes()).unwrap();
            done.store(true, Ordering::SeqCst);
        })
    };
    let deadline = std::time::Instant::now() + DEADLINE;
    while !rx.is_full() {
        assert!(
            std::time::Instant::now() < deadline,
            "the channel never filled"
        );
        std::thread::yield_now();
    }
    assert!(
        !done.load(Ordering::SeqCst),
        "the writer was never held back"
    );
    let mut next = 0;
    while next < count {
        let batch = rx
            .recv_timeout(DEADLINE)
            .expect("lines within the deadline");
        for got in batch.lines() {
            let want = line(next);
            assert_eq!(got, &want.as_bytes()[4..want.len() - 1], "line {next}");
            next += 1;
        }
    }
    writer.join().unwrap();
    assert_eq!(stop(receiver, &rx), Vec::<Vec<u8>>::new());
}

#[test]
fn stop_drains_what_was_written_before_it() {
    let (receiver, rx) = start(&["tcp:127.0.0.1:0"], &["127.0.0.0/8"], None);
    let mut clients: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(addr(&receiver, 0)).unwrap())
        .collect();
    let mut want = Vec::new();
    for round in 0..100 {
        for (i, client) in clients.iter_mut().enumerate() {
            let msg = format!("<22>Dec  3 08:00:00 mx{i} postfix/qmgr[1]: Q{round}: removed");
            client.write_all(&octet(msg.as_bytes())).unwrap();
            want.push(msg[4..].to_string());
        }
    }
    for client in &clients {
        wait_acked(client);
    }
    let mut got = text(&stop(receiver, &rx));
    // Each sender's lines in its order; the senders interleaved as read.
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

/// What rsyslogd 8.2302 (Debian 12) sent for two `logger -p mail.info -t postfix/smtpd
/// --id=4711 …` lines through `omfwd protocol="tcp"`, captured byte for byte, for each of
/// the templates docs/cluster.md mentions.
const RSYSLOG_TRADITIONAL_OCTET: &[u8] = b"81 <22>Dec  3 09:16:12 vm postfix/smtpd[4711]: 4D1A2B3C: client=c.example[192.0.2.1]59 <22>Dec  3 09:16:12 vm postfix/qmgr[500]: 4D1A2B3C: removed";
const RSYSLOG_FORWARD_LF: &[u8] = b"<22>2026-12-03T09:16:12.901770+00:00 vm postfix/smtpd[4711]: 4D1A2B3C: client=c.example[192.0.2.1]\n<22>2026-12-03T09:16:12.926048+00:00 vm postfix/qmgr[500]: 4D1A2B3C: removed\n";
/// With `global(parser.permitSlashInProgramName="on")`. rsyslog's msg property keeps the
/// space after the tag's colon, hence two spaces before MSG's text; and an LF ends the frame.
const RSYSLOG_PROTOCOL23_OCTET: &[u8] = b"104 <22>1 2026-12-03T09:16:12.901770+00:00 vm postfix/smtpd 4711 - -  4D1A2B3C: client=c.example[192.0.2.1]\n82 <22>1 2026-12-03T09:16:12.926048+00:00 vm postfix/qmgr 500 - -  4D1A2B3C: removed\n";
/// Without it, as Debian ships rsyslog: APP-NAME cut at the '/'.
const RSYSLOG_PROTOCOL23_NO_SLASH: &[u8] = b"98 <22>1 2026-12-03T09:16:12.930854+00:00 vm postfix 4711 - -  4D1A2B3C: client=c.example[192.0.2.1]\n";

/// A line's program tag, pid and text, as the ingest thread's prefix parser reads them.
type Expected = (&'static str, u32, &'static str);

#[test]
fn what_rsyslog_sends_reaches_ingest_parseable() {
    use mtqpd::ingest::syslog::{parse_prefix, SyslogClock};
    use mtqpd::ingest::timezone::Zone;
    let (receiver, rx) = start(&["tcp:127.0.0.1:0"], &["127.0.0.0/8"], None);
    let cases: [(&[u8], &[Expected]); 4] = [
        (
            RSYSLOG_TRADITIONAL_OCTET,
            &[
                (
                    "postfix/smtpd",
                    4711,
                    "4D1A2B3C: client=c.example[192.0.2.1]",
                ),
                ("postfix/qmgr", 500, "4D1A2B3C: removed"),
            ],
        ),
        (
            RSYSLOG_FORWARD_LF,
            &[
                (
                    "postfix/smtpd",
                    4711,
                    "4D1A2B3C: client=c.example[192.0.2.1]",
                ),
                ("postfix/qmgr", 500, "4D1A2B3C: removed"),
            ],
        ),
        (
            RSYSLOG_PROTOCOL23_OCTET,
            &[
                // rsyslog's msg property keeps the space after the tag: parse_prefix drops it.
                (
                    "postfix/smtpd",
                    4711,
                    "4D1A2B3C: client=c.example[192.0.2.1]",
                ),
                ("postfix/qmgr", 500, "4D1A2B3C: removed"),
            ],
        ),
        (
            RSYSLOG_PROTOCOL23_NO_SLASH,
            &[("postfix", 4711, "4D1A2B3C: client=c.example[192.0.2.1]")],
        ),
    ];
    // 2026-12-04T00:00:00Z: the classic stamps are read as the day before.
    let mut clock = SyslogClock::new(Zone::utc(), 1_796_342_400);
    for (bytes, want) in cases {
        let mut client = TcpStream::connect(addr(&receiver, 0)).unwrap();
        client.write_all(bytes).unwrap();
        let lines = take(&rx, want.len());
        for (line, &(program, pid, text)) in lines.iter().zip(want) {
            let p = parse_prefix(line, &mut clock).expect("parses");
            assert_eq!(p.host, b"vm");
            assert_eq!(
                (p.program, p.pid, p.text),
                (program.as_bytes(), Some(pid), text.as_bytes())
            );
        }
    }
    assert_eq!(receiver.stats().snapshot().malformed, 0);
    assert_eq!(stop(receiver, &rx), Vec::<Vec<u8>>::new());
}
