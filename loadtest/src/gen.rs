//! `mtqp-load gen`: a synthetic log of `--messages` messages with `--recipients` recipients
//! each, in the native format or as Postfix writes it (classic syslog prefix, smtpd / cleanup /
//! qmgr / smtp / local / bounce lines) with the native accept line a milter would add, and a
//! secrets file of `envid<TAB>base64 secret` lines to query it with.
//!
//! Outcomes per recipient: 80% relayed, 8% delivered locally, 6% deferred then relayed, 3%
//! still deferred, 3% bounced. Messages overlap: each one's deliveries are written a few
//! messages after its arrival, so queue ids interleave as on a busy hub.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use mtqpd::protocol::secret::{encode, sha1};

use crate::rng::Rng;

/// The log format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Native,
    Postfix,
}

/// `gen` flags.
#[derive(Debug, Args)]
pub struct GenArgs {
    /// Messages to write.
    #[arg(long, default_value_t = 10_000)]
    messages: u64,
    /// Recipients per message.
    #[arg(long, default_value_t = 2)]
    recipients: u32,
    #[arg(long, value_enum, default_value = "native")]
    format: Format,
    /// The log file to write.
    #[arg(long)]
    out: PathBuf,
    /// The secrets file to write (envid, TAB, base64 secret, one message a line).
    #[arg(long)]
    secrets: PathBuf,
    /// Seed of the generator: the same seed writes the same files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// How far behind its arrival a message's deliveries are written.
const LAG: usize = 8;
/// 2026-11-24T00:00:00Z: the synthetic day starts here.
const DAY_START: i64 = 1_795_478_400;

#[derive(Clone, Copy)]
enum Outcome {
    Relayed,
    Local,
    DeferredThenRelayed,
    Deferred,
    Bounced,
}

fn outcome(rng: &mut Rng) -> Outcome {
    match rng.below(100) {
        0..=79 => Outcome::Relayed,
        80..=87 => Outcome::Local,
        88..=93 => Outcome::DeferredThenRelayed,
        94..=96 => Outcome::Deferred,
        _ => Outcome::Bounced,
    }
}

/// `Nov 24 10:00:00`-style prefix time (classic syslog: no year, here UTC).
fn syslog_time(unix: i64) -> String {
    let secs = unix.rem_euclid(86_400);
    let day = 24 + (unix - DAY_START).div_euclid(86_400);
    format!(
        "Nov {day:>2} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn rfc3339(unix: i64) -> String {
    let secs = unix.rem_euclid(86_400);
    let day = 24 + (unix - DAY_START).div_euclid(86_400);
    format!(
        "2026-11-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

struct Message {
    i: u64,
    at: i64,
    queue: String,
    outcomes: Vec<Outcome>,
}

struct Writer<W: Write> {
    out: W,
    format: Format,
}

impl<W: Write> Writer<W> {
    fn arrival(&mut self, m: &Message, hash: &str) -> std::io::Result<()> {
        let (i, q, t) = (m.i, &m.queue, syslog_time(m.at));
        let envid = format!("gen-{i:010}@client.example");
        match self.format {
            Format::Native => writeln!(
                self.out,
                "mtqp: event=accept time={} envid={envid} mtrk={hash} queue={q}",
                rfc3339(m.at)
            ),
            Format::Postfix => {
                let pid = 1000 + i % 9000;
                writeln!(
                    self.out,
                    "{t} hub postfix/smtpd[{pid}]: {q}: client=client{}.example[192.0.2.{}]",
                    i % 997,
                    i % 250 + 1
                )?;
                writeln!(
                    self.out,
                    "{t} hub postfix/cleanup[{}]: {q}: message-id=<m{i}@client.example>",
                    pid + 1
                )?;
                writeln!(self.out, "{t} hub mtqp-milter[77]: mtqp: event=accept time={} envid={envid} mtrk={hash} msgid=m{i}@client.example", rfc3339(m.at))?;
                writeln!(self.out, "{t} hub postfix/qmgr[500]: {q}: from=<sender{i}@client.example>, size={}, nrcpt={} (queue active)", 2000 + i % 50_000, m.outcomes.len())
            }
        }
    }

    fn deliveries(&mut self, m: &Message) -> std::io::Result<()> {
        let (i, q) = (m.i, &m.queue);
        let t = m.at + 2;
        for (r, o) in m.outcomes.iter().enumerate() {
            let to = format!("user{r}.{i}@dest{}.example", i % 113);
            let local = format!("local{r}.{i}@hub.example");
            match self.format {
                Format::Native => {
                    let (rcpt, action, status, remote) = match o {
                        Outcome::Relayed | Outcome::DeferredThenRelayed => {
                            (&to, "relayed", "2.0.0", " remote-mta=dns;mx.dest.example")
                        }
                        Outcome::Local => (&local, "delivered", "2.0.0", ""),
                        Outcome::Deferred => {
                            (&to, "delayed", "4.4.1", " remote-mta=dns;mx.dest.example")
                        }
                        Outcome::Bounced => {
                            (&to, "failed", "5.1.1", " remote-mta=dns;mx.dest.example")
                        }
                    };
                    writeln!(self.out, "mtqp: event=rcpt time={} queue={q} orcpt=rfc822;{rcpt} rcpt={rcpt} action={action} status={status}{remote}", rfc3339(t))?;
                }
                Format::Postfix => {
                    let ts = syslog_time(t);
                    let pid = 2000 + (i + r as u64) % 9000;
                    match o {
                        Outcome::Relayed => writeln!(self.out, "{ts} hub postfix/smtp[{pid}]: {q}: to=<{to}>, relay=mx.dest{}.example[198.51.100.{}]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as X{i:X})", i % 113, i % 250 + 1)?,
                        Outcome::Local => writeln!(self.out, "{ts} hub postfix/local[{pid}]: {q}: to=<{local}>, relay=local, delay=0.3, delays=0.1/0/0/0.2, dsn=2.0.0, status=sent (delivered to mailbox)")?,
                        Outcome::DeferredThenRelayed => {
                            writeln!(self.out, "{ts} hub postfix/smtp[{pid}]: {q}: to=<{to}>, relay=none, delay=30, delays=0.1/0/30/0, dsn=4.4.1, status=deferred (connect to mx.dest.example[198.51.100.7]:25: Connection timed out)")?;
                            writeln!(self.out, "{} hub postfix/smtp[{pid}]: {q}: to=<{to}>, relay=mx.dest{}.example[198.51.100.{}]:25, delay=330, delays=300/0/20/10, dsn=2.0.0, status=sent (250 2.0.0 Ok)", syslog_time(t + 300), i % 113, i % 250 + 1)?;
                        }
                        Outcome::Deferred => writeln!(self.out, "{ts} hub postfix/smtp[{pid}]: {q}: to=<{to}>, relay=none, delay=30, delays=0.1/0/30/0, dsn=4.4.1, status=deferred (connect to mx.dest.example[198.51.100.7]:25: Connection timed out)")?,
                        Outcome::Bounced => writeln!(self.out, "{ts} hub postfix/smtp[{pid}]: {q}: to=<{to}>, relay=mx.dest{}.example[198.51.100.{}]:25, delay=0.9, delays=0.1/0/0.4/0.4, dsn=5.1.1, status=bounced (host mx.dest.example[198.51.100.{}] said: 550 5.1.1 <{to}>: Recipient address rejected: User unknown (in reply to RCPT TO command))", i % 113, i % 250 + 1, i % 250 + 1)?,
                    }
                }
            }
        }
        if self.format == Format::Postfix {
            let done = m.outcomes.iter().all(|o| !matches!(o, Outcome::Deferred));
            let bounced = m.outcomes.iter().any(|o| matches!(o, Outcome::Bounced));
            let ts = syslog_time(t + 301);
            if bounced {
                writeln!(
                    self.out,
                    "{ts} hub postfix/cleanup[600]: N{i:X}: message-id=<{}.N{i:X}@hub.example>",
                    t
                )?;
                writeln!(
                    self.out,
                    "{ts} hub postfix/bounce[601]: {q}: sender non-delivery notification: N{i:X}"
                )?;
                writeln!(self.out, "{ts} hub postfix/qmgr[500]: N{i:X}: from=<>, size=3000, nrcpt=1 (queue active)")?;
            }
            if done {
                writeln!(self.out, "{ts} hub postfix/qmgr[500]: {q}: removed")?;
            }
        }
        Ok(())
    }
}

/// Writes the log and the secrets file.
pub fn run(args: &GenArgs) -> Result<(), String> {
    let open = |p: &PathBuf| {
        File::create(p)
            .map(BufWriter::new)
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let mut w = Writer {
        out: open(&args.out)?,
        format: args.format,
    };
    let mut secrets = open(&args.secrets)?;
    let mut rng = Rng::new(args.seed);
    let mut waiting: VecDeque<Message> = VecDeque::with_capacity(LAG + 1);
    let io = |e: std::io::Error| e.to_string();
    for i in 0..args.messages {
        let secret: [u8; 16] = {
            let (a, b) = (rng.next_u64(), rng.next_u64());
            let mut s = [0u8; 16];
            s[..8].copy_from_slice(&a.to_le_bytes());
            s[8..].copy_from_slice(&b.to_le_bytes());
            s
        };
        let hash = encode(&sha1(&secret));
        writeln!(secrets, "gen-{i:010}@client.example\t{}", encode(&secret)).map_err(io)?;
        let m = Message {
            i,
            // About 11 messages a second: a million messages span a day of log.
            at: DAY_START + (i / 11) as i64,
            queue: format!("{:010X}", (i << 8) | (rng.below(256))),
            outcomes: (0..args.recipients).map(|_| outcome(&mut rng)).collect(),
        };
        w.arrival(&m, hash.trim_end_matches('=')).map_err(io)?;
        waiting.push_back(m);
        if waiting.len() > LAG {
            if let Some(old) = waiting.pop_front() {
                w.deliveries(&old).map_err(io)?;
            }
        }
    }
    for m in waiting {
        w.deliveries(&m).map_err(io)?;
    }
    w.out.flush().map_err(io)?;
    secrets.flush().map_err(io)
}
