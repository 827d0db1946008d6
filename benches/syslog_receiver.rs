//! Syslog receiver throughput: a real Postfix log (tests/data/real-logs, rsyslog's RFC 3339
//! forward format, `<22>` before each line) written over one TCP connection on loopback, framed
//! by the receiver thread and taken out of the channel as batches. Items/s are lines per
//! second through the receiver; B/s octets of the stream. The receiver is one thread; the
//! writer and the consumer run on others.
//! Run: `cargo bench --bench syslog_receiver` (a few seconds once built).
//! Why divan: see benches/protocol.rs.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use crossbeam_channel::bounded;
use divan::counter::{BytesCount, ItemsCount};
use divan::Bencher;
use mtqpd::ingest::receiver::{spawn, ReceiverConfig, MAX_CONNECTIONS};
use mtqpd::ingest::stream::CHANNEL_BATCHES;

fn main() {
    divan::Divan::default()
        .max_time(Duration::from_secs(3))
        .config_with_args()
        .main();
}

/// Lines a sample sends.
const LINES: usize = 200_000;

/// The stream: the real log's lines again and again, each as a forwarding rsyslog frames it.
fn stream(framing: &str) -> Vec<u8> {
    let log = include_str!("../tests/data/real-logs/postfix-rfc3339-helga-excerpt.log");
    let mut out = Vec::new();
    for line in log.lines().cycle().take(LINES) {
        let message = format!("<22>{line}");
        match framing {
            "lf" => {
                out.extend_from_slice(message.as_bytes());
                out.push(b'\n');
            }
            _ => out.extend_from_slice(format!("{} {message}", message.len()).as_bytes()),
        }
    }
    out
}

#[divan::bench(args = ["octet-counting", "lf"], sample_count = 10, sample_size = 1)]
fn tcp_to_channel(bencher: Bencher<'_, '_>, framing: &str) {
    let data = stream(framing);
    let (tx, rx) = bounded(CHANNEL_BATCHES);
    let receiver = spawn(
        ReceiverConfig {
            listen: vec!["tcp:127.0.0.1:0".parse().unwrap()],
            allow: vec!["127.0.0.0/8".parse().unwrap()],
            tls: None,
            max_connections: MAX_CONNECTIONS,
        },
        tx,
    )
    .expect("binds");
    let mut client = TcpStream::connect(receiver.local_addrs()[0].addr).unwrap();
    let (go, wait) = bounded::<()>(0);
    let writer = {
        let data = data.clone();
        std::thread::spawn(move || {
            while wait.recv().is_ok() {
                client.write_all(&data).unwrap();
            }
        })
    };
    bencher
        .counter(ItemsCount::new(LINES))
        .counter(BytesCount::new(data.len()))
        .bench_local(|| {
            go.send(()).unwrap();
            let mut lines = 0;
            while lines < LINES {
                lines += rx.recv().unwrap().ends.len();
            }
            assert_eq!(lines, LINES);
        });
    drop(go);
    writer.join().unwrap();
    receiver.begin_stop();
    while rx.recv().is_ok() {}
    receiver.join();
}
