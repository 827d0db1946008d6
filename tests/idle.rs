//! The idle timeout, through the library API: the command line will not accept less than the
//! RFC's 10 minutes, so this test starts the server in-process with a one-second limit.

mod common;

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use mtqpd::index::Index;
use mtqpd::server::{self, Limits, ServerConfig, UnknownAnswer};

/// A one-worker server whose idle timeout is `idle`.
fn start_with_idle_timeout(idle: Duration) -> server::Running {
    server::start(
        ServerConfig {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            threads: 1,
            hostname: "hub.example".into(),
            unknown: UnknownAnswer::Noinfo,
            limits: Limits {
                idle_timeout: idle,
                ..Limits::default()
            },
            tls: None,
            tls_required: false,
        },
        Arc::new(Index::new(1)),
    )
    .expect("start")
}

#[test]
fn silent_connection_is_told_and_closed_active_one_is_not() {
    let running = start_with_idle_timeout(Duration::from_secs(1));
    let addr = running.local_addrs[0];
    let mut silent = common::Client::connect(addr);
    let mut active = common::Client::connect(addr);
    silent.response();
    active.response();
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(active.roundtrip("COMMENT still here"), b"+OK\r\n");
    }
    assert_eq!(
        silent.read_to_close(),
        b"-TEMP/unavailable Idle for too long, closing\r\n"
    );
    assert_eq!(active.roundtrip("QUIT"), b"+OK Bye\r\n");
    let mut rest = Vec::new();
    let _ = active.stream.read_to_end(&mut rest);
    let stats = running.shutdown();
    assert_eq!(stats.counters.closed_idle.get(), 1);
}

/// Octets that complete no command are not activity: a client that trickles a byte now and
/// then after its last command is closed at the idle timeout all the same.
#[test]
fn bytes_that_complete_no_command_do_not_keep_a_connection_alive() {
    let running = start_with_idle_timeout(Duration::from_secs(2));
    let mut c = common::Client::connect(running.local_addrs[0]);
    c.response();
    assert_eq!(c.roundtrip("COMMENT one whole command"), b"+OK\r\n");
    let started = std::time::Instant::now();
    let writer = c.trickle(b"COMMENT but never its end", Duration::from_millis(300));
    assert_eq!(
        c.read_to_close(),
        b"-TEMP/unavailable Idle for too long, closing\r\n"
    );
    // 25 octets at 300 ms take 7.5 s: the trickle did not hold the connection open.
    assert!(started.elapsed() < Duration::from_secs(6));
    let _ = writer.join();
    assert_eq!(running.shutdown().counters.closed_idle.get(), 1);
}
