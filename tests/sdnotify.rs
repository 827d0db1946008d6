//! systemd's readiness protocol (sd_notify): the test plays the service manager, a Unix
//! datagram socket named by `NOTIFY_SOCKET`, and reads what `serve` and the gate send it.

mod common;
use common::*;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::process::{Command, Stdio};

/// The next notification, as text.
fn next(manager: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = manager
        .recv(&mut buf)
        .expect("a notification within the deadline");
    String::from_utf8(buf[..n].to_vec()).expect("UTF-8")
}

#[test]
fn serve_is_ready_once_ingest_has_caught_up_and_says_when_it_stops() {
    let dir = TempDir::new("notify-serve");
    let socket = dir.path("notify");
    let manager = UnixDatagram::bind(&socket).unwrap();
    manager.set_read_timeout(Some(DEADLINE)).unwrap();
    let log = log_with_one_message(&dir);
    let s = Server::start_with(&["--log", &log, "--hostname", "hub.example"], |cmd| {
        cmd.env("NOTIFY_SOCKET", &socket);
    });
    // The first notification, and only after both lines of the log were read.
    assert_eq!(
        next(&manager),
        "READY=1\nSTATUS=ingest caught up: 2 lines, 1 records"
    );
    // Ready means caught up: the log's message is answered at once.
    assert_one_message_delivered(&s);
    let (status, stderr) = s.stop("TERM");
    assert!(status.success(), "{stderr}");
    assert_eq!(next(&manager), "STOPPING=1\nSTATUS=shutting down");
}

#[test]
fn the_gate_is_ready_once_listening_on_an_abstract_socket() {
    let dir = TempDir::new("notify-gate");
    let name = format!("mtqpd-test-notify-{}", std::process::id());
    let manager =
        UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
    manager.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtqpd"));
    cmd.args(["gate", "--listen", "127.0.0.1:0", "--mta", "127.0.0.1:25"])
        .arg("--accept-log")
        .arg(dir.path("accept.log"))
        .env("NOTIFY_SOCKET", format!("@{name}"))
        .stdout(Stdio::null());
    let gate = Server::spawn_until(cmd, "mtqpd gate: listening on ");
    assert_eq!(next(&manager), "READY=1\nSTATUS=relaying to 127.0.0.1:25");
    let (status, stderr) = gate.stop("TERM");
    assert!(status.success(), "{stderr}");
    assert_eq!(next(&manager), "STOPPING=1\nSTATUS=shutting down");
}

#[test]
fn a_notify_socket_that_is_no_socket_name_is_one_line() {
    let (status, stderr) = run_to_exit_with(&["serve", "--listen", "127.0.0.1:0"], |cmd| {
        cmd.env("NOTIFY_SOCKET", "run/notify");
    });
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr,
        "mtqpd: NOTIFY_SOCKET=run/notify: neither an absolute path nor an @abstract name\n"
    );
}
