//! STARTTLS (RFC 3887 section 6) against the real server, with certificates made at test time.

mod common;
use common::*;

use std::io::{Read, Write};

use common::pki::{Leaf, Pki};
use common::tls::{handshake, tls_response};

fn serve_args<'a>(leaves: &'a [&'a Leaf], extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--hostname", "example2.com"];
    for l in leaves {
        args.extend(["--tls-cert", l.cert.as_str(), "--tls-key", l.key.as_str()]);
    }
    args.extend_from_slice(extra);
    args
}

#[test]
fn greeting_lists_starttls_only_with_certificates_and_only_before_tls() {
    let (pki, ca, ca_key) = Pki::new("tls-greeting");
    let leaf = pki.leaf(&ca, &ca_key, "a", &["mtqp.example.com"]);
    let s = Server::start(&serve_args(&[&leaf], &[]));
    let mut c = s.connect();
    assert_eq!(
        c.response_bytes(),
        b"+OK+/MTQP example2.com MTQP server ready\r\nSTARTTLS\r\n.\r\n"
    );
    assert_eq!(
        c.roundtrip("STARTTLS mtqp.example.com"),
        b"+OK Begin TLS negotiation\r\n"
    );
    let (mut tls, greeting, _, mut buf) = handshake(c, &pki, "mtqp.example.com");
    assert_eq!(greeting, b"+OK/MTQP example2.com MTQP server ready\r\n");
    tls.write_all(b"STARTTLS mtqp.example.com\r\nCOMMENT\r\n")
        .unwrap();
    assert_eq!(
        tls_response(&mut tls, &mut buf),
        b"-BAD/tls-in-progress TLS is already active\r\n"
    );
    assert_eq!(tls_response(&mut tls, &mut buf), b"+OK\r\n");

    let s2 = Server::start(&serve_args(&[&leaf], &["--tls-required"]));
    let mut c = s2.connect();
    assert_eq!(
        c.response_bytes(),
        b"+OK+/MTQP example2.com MTQP server ready\r\nSTARTTLS required\r\n.\r\n"
    );
}

#[test]
fn certificate_is_chosen_by_the_starttls_name_wildcards_per_rfc_6125() {
    let (pki, ca, ca_key) = Pki::new("tls-choice");
    let a = pki.leaf(
        &ca,
        &ca_key,
        "a",
        &["mtqp.example.com", "track.example.com"],
    );
    let b = pki.leaf(&ca, &ca_key, "b", &["*.wild.example.org"]);
    let s = Server::start(&serve_args(&[&a, &b], &[]));
    for (fqdn, want) in [
        ("mtqp.example.com", &a),
        ("TRACK.example.com", &a),
        ("x.wild.example.org", &b),
        ("mtqp.example.com.", &a),
    ] {
        let mut c = s.client();
        assert_eq!(
            c.roundtrip(&format!("STARTTLS {fqdn}")),
            b"+OK Begin TLS negotiation\r\n",
            "{fqdn}"
        );
        let verify_as = fqdn.trim_end_matches('.').to_ascii_lowercase();
        let (_, greeting, peer, _) = handshake(c, &pki, &verify_as);
        assert_eq!(greeting, b"+OK/MTQP example2.com MTQP server ready\r\n");
        assert_eq!(peer, want.der, "{fqdn} got the wrong certificate");
    }
    for fqdn in [
        "nope.example.com",
        "y.x.wild.example.org",
        "wild.example.org",
        "example.com",
    ] {
        let mut c = s.client();
        assert_eq!(
            c.roundtrip(&format!("STARTTLS {fqdn}")),
            b"-BAD/bad-fqdn No certificate for that name\r\n",
            "{fqdn}"
        );
        assert_eq!(c.roundtrip("COMMENT still plaintext"), b"+OK\r\n");
    }
    let mut c = s.client();
    assert_eq!(
        c.roundtrip("STARTTLS not_a_name"),
        b"-BAD/syntax Parameter is not a fully qualified domain name\r\n"
    );
    assert_eq!(
        c.roundtrip("STARTTLS"),
        b"-BAD/syntax Wrong number of arguments\r\n"
    );
}

#[test]
fn commands_pipelined_after_starttls_are_discarded_never_executed() {
    let (pki, ca, ca_key) = Pki::new("tls-injection");
    let leaf = pki.leaf(&ca, &ca_key, "a", &["mtqp.example.com"]);
    let log = log_with_one_message(&pki.dir);
    let s = Server::start_caught_up(&serve_args(&[&leaf], &["--log", &log]));
    let mut c = s.client();
    let track = format!("TRACK <tls-1@example.org> {}", secret_b64("s3cret"));
    c.send(format!("STARTTLS mtqp.example.com\r\n{track}\r\nCOMMENT injected\r\n").as_bytes());
    assert_eq!(c.response_bytes(), b"+OK Begin TLS negotiation\r\n");
    let (mut tls, greeting, _, mut buf) = handshake(c, &pki, "mtqp.example.com");
    assert_eq!(greeting, b"+OK/MTQP example2.com MTQP server ready\r\n");
    // The first answer after the new greeting must be to this QUIT, not to anything injected.
    tls.write_all(b"QUIT\r\n").unwrap();
    assert_eq!(tls_response(&mut tls, &mut buf), b"+OK Bye\r\n");
    let (status, stderr) = s.stop("TERM");
    assert!(status.success());
    let row = |kind: &str| {
        stderr
            .lines()
            .find(|l| l.trim_start().starts_with(kind))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(|n| n.to_string())
    };
    assert_eq!(row("TRACK").as_deref(), Some("0"), "{stderr}");
    assert_eq!(row("COMMENT").as_deref(), Some("0"), "{stderr}");
    assert_eq!(row("STARTTLS").as_deref(), Some("1"), "{stderr}");
}

#[test]
fn tls_required_refuses_track_in_plaintext_and_serves_it_under_tls_in_order() {
    let (pki, ca, ca_key) = Pki::new("tls-required");
    let leaf = pki.leaf(&ca, &ca_key, "a", &["mtqp.example.com"]);
    let log = log_with_one_message(&pki.dir);
    let s = Server::start_caught_up(&serve_args(&[&leaf], &["--tls-required", "--log", &log]));
    let mut c = s.client();
    let track = format!("TRACK <tls-1@example.org> {}", secret_b64("s3cret"));
    assert_eq!(
        c.roundtrip(&track),
        b"-ERR/tls-required Use STARTTLS before TRACK\r\n"
    );
    assert_eq!(c.roundtrip("COMMENT fine"), b"+OK\r\n");
    assert_eq!(
        c.roundtrip("STARTTLS mtqp.example.com"),
        b"+OK Begin TLS negotiation\r\n"
    );
    let (mut tls, _, _, mut buf) = handshake(c, &pki, "mtqp.example.com");
    tls.write_all(format!("{track}\r\n").as_bytes()).unwrap();
    let hit = tls_response(&mut tls, &mut buf);
    assert!(
        hit.starts_with(b"+OK+ Tracking information follows\r\n"),
        "{}",
        String::from_utf8_lossy(&hit)
    );
    assert!(hit.ends_with(b"Action: delivered\r\nStatus: 2.0.0\r\n\r\n--mtqp-boundary--\r\n.\r\n"));
    // 300 commands in one write under TLS: answered in order.
    let wrong = format!("TRACK <tls-1@example.org> {}", secret_b64("wrong"));
    let mut batch = String::new();
    for i in 0..300 {
        batch.push_str(match i % 3 {
            0 => &track,
            1 => &wrong,
            _ => "COMMENT x",
        });
        batch.push_str("\r\n");
    }
    tls.write_all(batch.as_bytes()).unwrap();
    for i in 0..300 {
        let r = tls_response(&mut tls, &mut buf);
        match i % 3 {
            0 => assert_eq!(r, hit, "answer {i}"),
            1 => assert_eq!(
                r, b"-ERR/noinfo No tracking information is available\r\n",
                "answer {i}"
            ),
            _ => assert_eq!(r, b"+OK\r\n", "answer {i}"),
        }
    }
}

#[test]
fn stalled_and_failed_handshakes_hold_neither_the_worker_nor_memory() {
    let (pki, ca, ca_key) = Pki::new("tls-stall");
    let leaf = pki.leaf(&ca, &ca_key, "a", &["mtqp.example.com"]);
    let s = Server::start(&serve_args(&[&leaf], &["--threads", "1"]));
    let before = s.rss_kib();
    let mut stalled = Vec::new();
    for i in 0..200 {
        let mut c = s.client();
        assert_eq!(
            c.roundtrip("STARTTLS mtqp.example.com"),
            b"+OK Begin TLS negotiation\r\n"
        );
        // The first octets of a TLS record header, then silence.
        if i % 2 == 0 {
            c.send(&[0x16, 0x03, 0x01, 0x02]);
        }
        stalled.push(c);
    }
    // The one worker still serves others, in plaintext and in TLS.
    let mut other = s.client();
    assert_eq!(other.roundtrip("COMMENT alive"), b"+OK\r\n");
    assert_eq!(
        other.roundtrip("STARTTLS mtqp.example.com"),
        b"+OK Begin TLS negotiation\r\n"
    );
    let (mut tls, greeting, _, mut buf) = handshake(other, &pki, "mtqp.example.com");
    assert_eq!(greeting, b"+OK/MTQP example2.com MTQP server ready\r\n");
    tls.write_all(b"COMMENT under tls\r\n").unwrap();
    assert_eq!(tls_response(&mut tls, &mut buf), b"+OK\r\n");
    let after = s.rss_kib();
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} to {after} KiB for 200 stalled handshakes"
    );
    // Garbage instead of a ClientHello: the server closes the connection.
    let mut bad = s.client();
    assert_eq!(
        bad.roundtrip("STARTTLS mtqp.example.com"),
        b"+OK Begin TLS negotiation\r\n"
    );
    bad.send(b"TRACK <x@y> QUJD\r\nthis is not TLS at all\r\n");
    let mut rest = Vec::new();
    let _ = bad.stream.read_to_end(&mut rest);
    assert!(
        !rest.windows(3).any(|w| w == b"+OK" || w == b"-ER"),
        "plaintext answer after STARTTLS: {rest:?}"
    );
    drop(stalled);
}

#[test]
fn bad_certificate_settings_stop_startup_with_one_line() {
    let (pki, ca, ca_key) = Pki::new("tls-bad");
    let a = pki.leaf(&ca, &ca_key, "a", &["mtqp.example.com"]);
    let b = pki.leaf(&ca, &ca_key, "b", &["other.example.com"]);
    let garbage = pki.dir.path("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let empty = pki.dir.path("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let garbage = garbage.display().to_string();
    let empty = empty.display().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--tls-cert", "/nonexistent/cert.pem", "--tls-key", &a.key],
            "/nonexistent/cert.pem",
        ),
        (
            vec!["--tls-cert", &a.cert, "--tls-key", "/nonexistent/key.pem"],
            "/nonexistent/key.pem",
        ),
        (
            vec!["--tls-cert", &a.cert, "--tls-key", &b.key],
            "does not fit",
        ),
        (
            vec!["--tls-cert", &garbage, "--tls-key", &a.key],
            "garbage.pem",
        ),
        (vec!["--tls-cert", &empty, "--tls-key", &a.key], "empty.pem"),
        (vec!["--tls-cert", &a.key, "--tls-key", &a.key], "a.key"),
        (vec!["--tls-cert", &a.cert], "pairs"),
        (vec!["--tls-required"], "--tls-required"),
    ];
    for (args, needle) in cases {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mtqpd"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

/// A client that asks for STARTTLS and then never completes the handshake is closed at the
/// handshake deadline, not after the 10-minute idle timeout.
#[test]
fn a_stalled_tls_handshake_is_closed_at_its_deadline() {
    let (pki, ca, ca_key) = Pki::new("tls-deadline");
    let leaf = pki.leaf(&ca, &ca_key, "a", &["mtqp.example.com"]);
    let s = Server::start(&serve_args(&[&leaf], &["--tls-handshake-timeout", "1s"]));
    let mut c = s.client();
    assert_eq!(
        c.roundtrip("STARTTLS mtqp.example.com"),
        b"+OK Begin TLS negotiation\r\n"
    );
    // The first octets of a ClientHello, then silence.
    c.send(&[0x16, 0x03, 0x01, 0x02]);
    assert_eq!(c.read_to_close(), b"");
    let (_, stderr) = s.stop("TERM");
    assert!(stderr.contains("closed-handshake-timeout 1 "), "{stderr}");
}
