//! `mtqp-load send`: sends a log to a syslog receiver over TCP, each line an RFC 6587
//! octet-counted message (`<PRI>` then the line, as rsyslog's traditional forward format sends
//! it), as fast as the receiver takes it: with its backpressure, the rate is the rate at which
//! the server ingests.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

/// `mtqp-load send` flags.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// The receiver (`mtqpd serve --syslog-listen tcp:ADDR:PORT`).
    #[arg(long, value_name = "ADDR:PORT")]
    to: SocketAddr,
    /// The log to send, one message a line (e.g. `mtqp-load gen`'s).
    #[arg(long, value_name = "PATH")]
    log: PathBuf,
    /// The PRI of every message (22: mail.info).
    #[arg(long, default_value_t = 22)]
    pri: u8,
}

/// Sends the log, then prints how many lines went and how fast.
pub fn run(args: &SendArgs) -> Result<(), String> {
    let log = File::open(&args.log).map_err(|e| format!("{}: {e}", args.log.display()))?;
    let mut lines = BufReader::with_capacity(1 << 20, log);
    let stream = TcpStream::connect(args.to).map_err(|e| format!("{}: {e}", args.to))?;
    let mut out = BufWriter::with_capacity(1 << 20, stream);
    let pri = format!("<{}>", args.pri);
    let (mut sent, mut octets) = (0u64, 0u64);
    let mut line = Vec::new();
    let started = Instant::now();
    let send_error = |e: std::io::Error| format!("sending to {}: {e}", args.to);
    loop {
        line.clear();
        let n = lines
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("{}: {e}", args.log.display()))?;
        if n == 0 {
            break;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let len = pri.len() + text.len();
        write!(out, "{len} {pri}").map_err(send_error)?;
        out.write_all(text).map_err(send_error)?;
        sent += 1;
        octets += len as u64;
    }
    out.flush().map_err(send_error)?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "sent {sent} lines ({octets} octets) in {secs:.2} s: {:.0} lines/s",
        sent as f64 / secs
    );
    Ok(())
}
