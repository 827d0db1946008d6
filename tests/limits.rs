//! Connection slots: running out of file descriptors (the server must neither spin on a
//! listener it cannot accept from nor stop serving once descriptors are free again), the
//! open-files limit, the per-address limit, and the deadlines that free a slot a client holds
//! without using it.

mod common;
use common::*;

use std::time::Duration;

#[test]
fn out_of_descriptors_refuses_without_spinning_and_recovers() {
    let s = Server::start_with_fd_limits(32, 32, &["--hostname", "hub.example"]);
    // More clients than descriptors: the first ones are greeted, the rest wait in the backlog
    // or are told -TEMP.
    let mut clients: Vec<std::net::TcpStream> = Vec::new();
    for _ in 0..60 {
        clients.push(std::net::TcpStream::connect(s.addr).expect("connect"));
    }
    let mut greeted = 0;
    let mut refused = 0;
    for c in &clients {
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 128];
        if let Ok(n) = std::io::Read::read(&mut &*c, &mut buf) {
            let got = &buf[..n];
            if got.starts_with(b"+OK/MTQP") {
                greeted += 1;
            } else if got.starts_with(b"-TEMP/MTQP/unavailable") {
                refused += 1;
            }
        }
    }
    assert!(greeted > 0 && greeted < 60, "greeted {greeted}");
    assert!(refused > 0, "nobody was told -TEMP");
    // While out of descriptors with clients still waiting, the server must be idle, not
    // spinning: well under half a second of CPU in a second.
    let before = s.cpu_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let used = s.cpu_ticks() - before;
    assert!(
        used < 50,
        "server used {used} ticks of CPU in 1 s while out of descriptors"
    );
    drop(clients);
    let mut c = eventually("a greeting after descriptors are free", || {
        let mut c = Client::connect(s.addr);
        let r = c.response();
        r.status.starts_with(b"+OK/MTQP").then_some(c)
    });
    assert_eq!(c.roundtrip("COMMENT back"), b"+OK\r\n");
}

/// A low soft limit under a higher hard one is raised at start-up; when even the hard limit
/// leaves less room than --max-connections, a warning says so.
#[test]
fn the_open_files_limit_is_raised_to_the_hard_one_and_a_shortfall_is_reported() {
    let s = Server::start_with_fd_limits(64, 300, &["--max-connections", "1000"]);
    let stderr = s.wait_for_stderr("leaves room for about");
    assert!(stderr.contains("open-files limit (300"), "{stderr}");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", s.pid())).expect("limits");
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let numbers: Vec<&str> = open_files.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers, ["300", "300"], "{open_files}");
    // 200 clients at once: more than the old soft limit of 64 descriptors, all served.
    let mut clients: Vec<Client> = (0..200).map(|_| s.client()).collect();
    for c in &mut clients {
        assert_eq!(c.roundtrip("COMMENT"), b"+OK\r\n");
    }
}

/// One address cannot take every slot: past --max-connections-per-ip it is told -TEMP, while
/// another address is served; a closed connection frees its slot.
#[test]
fn one_address_is_limited_and_others_are_not() {
    let s = Server::start(&["--max-connections-per-ip", "2"]);
    let mut first = s.client();
    let mut second = s.client();
    let mut third = Client::connect(s.addr);
    assert_eq!(
        third.read_to_close(),
        b"-TEMP/MTQP/unavailable Too many connections from your address, try again later\r\n"
    );
    // 127.0.0.2 is another address on the loopback interface.
    let other = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    other
        .bind(
            &"127.0.0.2:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .expect("bind 127.0.0.2");
    other
        .connect(&s.addr.into())
        .expect("connect from 127.0.0.2");
    let mut other = Client::from_stream(other.into());
    other.response();
    assert_eq!(other.roundtrip("COMMENT"), b"+OK\r\n");
    assert_eq!(first.roundtrip("QUIT"), b"+OK Bye\r\n");
    first.read_to_close();
    let mut again = eventually("the closed connection's slot to be free", || {
        let mut c = Client::connect(s.addr);
        c.response().status.starts_with(b"+OK").then_some(c)
    });
    assert_eq!(again.roundtrip("COMMENT"), b"+OK\r\n");
    assert_eq!(second.roundtrip("COMMENT"), b"+OK\r\n");
    let (_, stderr) = s.stop("TERM");
    assert!(stderr.contains("refused-per-address 1 "), "{stderr}");
}

/// A client that sends a byte now and then but never a whole command is closed at the
/// first-command deadline: octets that complete no command are not activity.
#[test]
fn a_first_command_trickled_a_byte_at_a_time_is_cut_off() {
    let s = Server::start(&["--first-command-timeout", "1s"]);
    let mut c = s.client();
    let started = std::time::Instant::now();
    let writer = c.trickle(b"COMMENT trickled", Duration::from_millis(250));
    assert_eq!(
        c.read_to_close(),
        b"-TEMP/unavailable Idle for too long, closing\r\n"
    );
    // 16 octets at 250 ms take 4 s: the connection was closed before the command could end.
    assert!(started.elapsed() < Duration::from_secs(4));
    let _ = writer.join();
    // A client that completes its command in time is served.
    let mut prompt = s.client();
    assert_eq!(prompt.roundtrip("COMMENT on time"), b"+OK\r\n");
}
