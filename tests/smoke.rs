//! The harness itself works: a server starts, greets, answers and exits on SIGTERM.

mod common;
use common::*;

#[test]
fn greets_and_quits() {
    let s = Server::start(&["--hostname", "mx.example.com"]);
    let mut c = s.connect();
    assert_eq!(
        c.response_bytes(),
        b"+OK/MTQP mx.example.com MTQP server ready\r\n"
    );
    assert_eq!(c.roundtrip("QUIT"), b"+OK Bye\r\n");
    assert_eq!(c.read_to_close(), b"");
}
