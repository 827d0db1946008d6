//! SIGHUP: `serve` and the gate read their certificates and keys again from the same files.
//! A client that connects afterwards is shown the new certificate (MTQP's STARTTLS, the syslog
//! receiver's TLS, the gate's STARTTLS); a connection opened before goes on; a broken set is
//! refused with one line and the last good one stays. Waits are bounded polls.

mod common;
use common::pki::{Leaf, Pki};
use common::smtp::Smtp;
use common::tls::{handshake, tls_response};
use common::*;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};

/// The name every certificate here serves.
const NAME: &str = "mtqp.example.com";

/// Puts `leaf`'s certificate and key in the files the server reads.
fn install(leaf: &Leaf, cert: &Path, key: &Path) {
    std::fs::copy(&leaf.cert, cert).unwrap();
    std::fs::copy(&leaf.key, key).unwrap();
}

/// The certificate MTQP's STARTTLS shows a new client.
fn mtqp_shows(s: &Server, pki: &Pki) -> Vec<u8> {
    let mut c = s.client();
    let go = c.roundtrip(&format!("STARTTLS {NAME}"));
    assert_eq!(go, b"+OK Begin TLS negotiation\r\n");
    handshake(c, pki, NAME).2
}

/// The certificate a new TLS client of the syslog receiver at `addr` is shown.
fn syslog_shows(addr: SocketAddr, pki: &Pki) -> Vec<u8> {
    let name = ServerName::try_from(NAME).unwrap();
    let mut conn = ClientConnection::new(pki.client_config(), name).unwrap();
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).expect("handshake");
    }
    conn.peer_certificates().expect("peer certificates")[0].to_vec()
}

/// The stderr lines that contain `needle`, once there are `n` of them.
fn lines_with(s: &Server, needle: &str, n: usize) -> Vec<String> {
    eventually(&format!("{n} lines with '{needle}'"), || {
        let lines: Vec<String> = s
            .stderr()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect();
        (lines.len() >= n).then_some(lines)
    })
}

#[test]
fn serve_reloads_its_certificates_and_keeps_open_connections_and_a_good_set() {
    let (pki, ca, ca_key) = Pki::new("reload-serve");
    let old = pki.leaf(&ca, &ca_key, "old", &[NAME]);
    let new = pki.leaf(&ca, &ca_key, "new", &[NAME]);
    let (cert, key) = (pki.dir.path("served.pem"), pki.dir.path("served.key"));
    install(&old, &cert, &key);
    let log = log_with_one_message(&pki.dir);
    let s = Server::start_caught_up(&[
        "--hostname",
        "hub.example",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--log",
        &log,
        "--syslog-listen",
        "tls:127.0.0.1:0",
    ]);
    let syslog: SocketAddr = s
        .wait_for_stderr("mtqpd: syslog on tls:")
        .rsplit("tls:")
        .next()
        .and_then(|a| a.parse().ok())
        .expect("the syslog listener's address");
    assert_eq!(syslog_shows(syslog, &pki), old.der);

    // Connection A: under TLS with the old certificate, answering TRACK.
    let mut a = s.client();
    let go = a.roundtrip(&format!("STARTTLS {NAME}"));
    assert_eq!(go, b"+OK Begin TLS negotiation\r\n");
    let (mut a, _, shown, mut buf) = handshake(a, &pki, NAME);
    assert_eq!(shown, old.der);
    let track = format!("TRACK <tls-1@example.org> {}\r\n", secret_b64("s3cret"));
    a.write_all(track.as_bytes()).unwrap();
    let answer = tls_response(&mut a, &mut buf);
    assert!(
        answer.starts_with(b"+OK+ Tracking information follows\r\n")
            && answer
                .ends_with(b"Action: delivered\r\nStatus: 2.0.0\r\n\r\n--mtqp-boundary--\r\n.\r\n"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    install(&new, &cert, &key);
    s.signal("HUP");
    eventually("a new client shown the new certificate", || {
        (mtqp_shows(&s, &pki) == new.der).then_some(())
    });
    assert_eq!(
        lines_with(&s, "SIGHUP", 1),
        ["mtqpd: SIGHUP: reloaded 1 certificate(s)"]
    );
    assert_eq!(syslog_shows(syslog, &pki), new.der);
    // A goes on with what it had.
    a.write_all(track.as_bytes()).unwrap();
    assert_eq!(tls_response(&mut a, &mut buf), answer);

    // Each broken set is refused with one line naming the file, and the last good set stays.
    let refused = "mtqpd: SIGHUP: certificates refused, keeping those in use: ";
    std::fs::write(&cert, "not a certificate\n").unwrap();
    s.signal("HUP");
    assert_eq!(
        lines_with(&s, "SIGHUP", 2)[1],
        format!("{refused}{} holds no certificate", cert.display())
    );
    // The new certificate with the old key.
    std::fs::copy(&new.cert, &cert).unwrap();
    std::fs::copy(&old.key, &key).unwrap();
    s.signal("HUP");
    let mismatch = format!(
        "{refused}key {} does not fit certificate {}: ",
        key.display(),
        cert.display()
    );
    let line = &lines_with(&s, "SIGHUP", 3)[2];
    assert!(line.starts_with(&mismatch), "{line}");
    // A key that is not one: the line names the file, never what it holds.
    let material = "c2VjcmV0LWtleS1tYXRlcmlhbA";
    std::fs::write(
        &key,
        format!("-----BEGIN PRIVATE KEY-----\n{material}==\n-----END PRIVATE KEY-----\n"),
    )
    .unwrap();
    s.signal("HUP");
    let line = &lines_with(&s, "SIGHUP", 4)[3];
    let unusable = format!("{refused}key {} cannot be used: ", key.display());
    assert!(line.starts_with(&unusable), "{line}");
    assert!(
        !line.contains(material) && !line.contains("secret-key"),
        "{line}"
    );

    assert_eq!(mtqp_shows(&s, &pki), new.der);
    assert_eq!(syslog_shows(syslog, &pki), new.der);
    a.write_all(track.as_bytes()).unwrap();
    assert_eq!(tls_response(&mut a, &mut buf), answer);
    let (status, stderr) = s.stop("TERM");
    assert!(status.success(), "{stderr}");
    assert_eq!(stderr.matches("SIGHUP").count(), 4, "{stderr}");
}

/// An MTA on 127.0.0.1 that serves every connection at once, each on its own thread (the
/// gate holds one MTA connection per session, and the test keeps a session open while it
/// starts others): a banner, then 250 to every command and 221 to QUIT.
fn concurrent_mta() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer_smtp(stream));
        }
    });
    addr
}

fn answer_smtp(stream: TcpStream) {
    let mut out = stream.try_clone().unwrap();
    if out.write_all(b"220 mta.test ESMTP\r\n").is_err() {
        return;
    }
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-mta.test\r\n250 8BITMIME\r\n",
            "QUIT" => b"221 2.0.0 Bye\r\n",
            _ => b"250 2.0.0 Ok\r\n",
        };
        if out.write_all(reply).is_err() || verb == "QUIT" {
            return;
        }
    }
}

/// A gate session taken through STARTTLS; returns it with the certificate shown.
fn gate_tls(gate: &Server, pki: &Pki) -> (Smtp<StreamOwned<ClientConnection, TcpStream>>, Vec<u8>) {
    let mut c = Smtp::connect(gate.addr);
    assert_eq!(c.reply(), "220 mta.test ESMTP\r\n");
    assert_eq!(
        c.command("EHLO client.test"),
        "250-mta.test\r\n250-8BITMIME\r\n250 STARTTLS\r\n"
    );
    assert_eq!(c.command("STARTTLS"), "220 2.0.0 Ready to start TLS\r\n");
    let name = ServerName::try_from(NAME).unwrap();
    let conn = ClientConnection::new(pki.client_config(), name).unwrap();
    let mut tls = StreamOwned::new(conn, c.stream);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("handshake");
    }
    let shown = tls.conn.peer_certificates().expect("peer certificates")[0].to_vec();
    (Smtp::wrap(tls), shown)
}

#[test]
fn the_gate_reloads_its_certificates_and_keeps_open_sessions() {
    let (pki, ca, ca_key) = Pki::new("reload-gate");
    let old = pki.leaf(&ca, &ca_key, "old", &[NAME]);
    let new = pki.leaf(&ca, &ca_key, "new", &[NAME]);
    let (cert, key) = (pki.dir.path("served.pem"), pki.dir.path("served.key"));
    install(&old, &cert, &key);
    let mta = concurrent_mta().to_string();
    let accept_log = pki.dir.path("accept.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtqpd"));
    cmd.args([
        "gate",
        "--listen",
        "127.0.0.1:0",
        "--proxy-protocol",
        "none",
    ])
    .args(["--mta", &mta, "--hostname", "gate.test", "--threads", "2"])
    .arg("--accept-log")
    .arg(&accept_log)
    .arg("--tls-cert")
    .arg(&cert)
    .arg("--tls-key")
    .arg(&key)
    .stdout(Stdio::null());
    let gate = Server::spawn_until(cmd, "mtqpd gate: listening on ");

    let (mut a, shown) = gate_tls(&gate, &pki);
    assert_eq!(shown, old.der);
    assert_eq!(
        a.command("EHLO client.test"),
        "250-mta.test\r\n250 8BITMIME\r\n"
    );

    install(&new, &cert, &key);
    gate.signal("HUP");
    eventually("a new session shown the new certificate", || {
        (gate_tls(&gate, &pki).1 == new.der).then_some(())
    });
    assert_eq!(
        lines_with(&gate, "SIGHUP", 1),
        ["mtqpd gate: SIGHUP: reloaded 1 certificate(s)"]
    );
    // Session A goes on under the old certificate, through to the MTA.
    assert_eq!(a.command("MAIL FROM:<a@example.net>"), "250 2.0.0 Ok\r\n");

    std::fs::write(&cert, "not a certificate\n").unwrap();
    gate.signal("HUP");
    assert_eq!(
        lines_with(&gate, "SIGHUP", 2)[1],
        format!(
            "mtqpd gate: SIGHUP: certificates refused, keeping those in use: {} holds no certificate",
            cert.display()
        )
    );
    assert_eq!(gate_tls(&gate, &pki).1, new.der);
    assert_eq!(a.command("QUIT"), "221 2.0.0 Bye\r\n");
    let (status, stderr) = gate.stop("TERM");
    assert!(status.success(), "{stderr}");
}
