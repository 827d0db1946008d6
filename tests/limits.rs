//! Running out of file descriptors: the server must neither spin on a listener it cannot
//! accept from nor stop serving once descriptors are free again.

mod common;
use common::*;

use std::time::Duration;

#[test]
fn out_of_descriptors_refuses_without_spinning_and_recovers() {
    let s = Server::start_with_fd_limit(32, &["--hostname", "hub.example"]);
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
