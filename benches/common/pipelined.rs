//! A closed-loop pipelined client for the throughput benches: `conns` connections, each keeping
//! `depth` requests in flight, counting answers by their terminator. The same client measures
//! mtqpd and memcached, so that the comparison is of the servers, not of the clients.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use memchr::memmem;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

struct Conn {
    stream: TcpStream,
    /// The last octets of the previous read, so a terminator split across reads is found.
    tail: Vec<u8>,
    in_flight: usize,
    next: usize,
    out: Vec<u8>,
}

/// What one run measured (after a one-second warm-up).
pub struct Measured {
    pub per_second: f64,
    pub bytes_per_answer: u64,
}

/// Drives `commands` (sent round-robin) for `secs` seconds; every answer ends with `terminator`.
pub fn run(
    addr: SocketAddr,
    commands: &[Vec<u8>],
    terminator: &[u8],
    conns: usize,
    depth: usize,
    secs: u64,
) -> Measured {
    let mut poll = Poll::new().unwrap();
    let mut all: Vec<Conn> = (0..conns)
        .map(|i| {
            let std = std::net::TcpStream::connect(addr).unwrap();
            std.set_nodelay(true).unwrap();
            std.set_nonblocking(true).unwrap();
            let mut stream = TcpStream::from_std(std);
            poll.registry()
                .register(&mut stream, Token(i), Interest::READABLE)
                .unwrap();
            Conn {
                stream,
                tail: Vec::new(),
                in_flight: 0,
                next: i * 97,
                out: Vec::new(),
            }
        })
        .collect();
    let finder = memmem::Finder::new(terminator);
    let keep = terminator.len() - 1;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 1 << 20];
    let (mut done, mut bytes) = (0u64, 0u64);
    let fill = |c: &mut Conn| {
        while c.in_flight < depth {
            c.out.extend_from_slice(&commands[c.next % commands.len()]);
            c.next += 1;
            c.in_flight += 1;
        }
        // Small writes into a socket whose buffer the server keeps draining.
        c.stream.write_all(&c.out).unwrap();
        c.out.clear();
    };
    all.iter_mut().for_each(fill);
    let start = Instant::now();
    let warmup = Duration::from_secs(1);
    let mut measured_from = None;
    while start.elapsed() < Duration::from_secs(secs) + warmup {
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .unwrap();
        if measured_from.is_none() && start.elapsed() >= warmup {
            measured_from = Some((Instant::now(), done, bytes));
        }
        for ev in events.iter() {
            let c = &mut all[ev.token().0];
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => panic!("server closed a connection"),
                    Ok(n) => {
                        bytes += n as u64;
                        let mut scan = std::mem::take(&mut c.tail);
                        scan.extend_from_slice(&buf[..n]);
                        let k = finder.find_iter(&scan).count();
                        c.tail = scan[scan.len().saturating_sub(keep)..].to_vec();
                        c.in_flight -= k;
                        done += k as u64;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("read: {e}"),
                }
            }
            fill(c);
        }
    }
    let (t0, d0, b0) = measured_from.expect("ran past warm-up");
    let n = (done - d0).max(1);
    Measured {
        per_second: n as f64 / t0.elapsed().as_secs_f64(),
        bytes_per_answer: (bytes - b0) / n,
    }
}
