//! `mtqp-load gen`: a synthetic log of `--messages` messages with `--recipients` recipients
//! each, in the native format or as Postfix writes it (classic syslog prefix, smtpd / cleanup /
//! qmgr / smtp / local / bounce lines) with the native accept line a milter would add, and a
//! secrets file of `envid<TAB>base64 secret` lines to query it with.
//!
//! Outcomes per recipient: 80% relayed, 8% delivered locally, 6% deferred then relayed, 3%
//! still deferred, 3% bounced. Messages overlap: each one's deliveries are written a few
//! messages after its arrival, so queue ids interleave as on a busy hub.
//!
//! Times: about 11 messages arrive a second (a million span a day). By default the latest
//! line is logged now, so that a server with its default retention serves every message; `--start`
//! pins the first arrival instead, for files that are the same byte for byte on every run.
//! Classic syslog stamps carry no year and are written in UTC (serve them with
//! `--log-timezone UTC`).
//!
//! `--hosts N` writes the log of a cluster as a collector keeps it (serve it with
//! `--log postfix:PATH,host=*`): message i is host `hub{i mod N}`'s, the host name in the
//! syslog prefix (classic, or RFC 3339 with `--stamp rfc3339`) and in the accept line's
//! `host=`. Each host numbers its own queue ids, so ids collide across hosts (the n-th
//! messages of two hosts share their id one time in 256: 75,289 of a million messages on 50
//! hosts), as Postfix short ids do in a cluster.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use mtqp_protocol::date::{civil_from_days, Timestamp, MONTHS};
use mtqp_protocol::secret::{encode, sha1};
use mtqp_protocol::xtext;

use crate::rng::Rng;

/// The log format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Native,
    Postfix,
}

/// How a syslog line of `--hosts` is stamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Stamp {
    /// `Dec  2 07:50:26` (UTC, no year).
    Classic,
    /// rsyslog's `2026-12-02T07:50:26Z`.
    Rfc3339,
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
    /// Seed of the generator: the same seed (and --start) writes the same files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Arrival of the first message, RFC 3339 (e.g. 2026-11-24T00:00:00Z). Default: early
    /// enough that the latest line of the log is logged now.
    #[arg(long, value_parser = parse_start)]
    start: Option<i64>,
    /// Write the log of this many hosts, hub0 … hubN-1, each with its own queue ids (default:
    /// one host, `hub`, whose lines name no host=).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    hosts: Option<u32>,
    /// The syslog stamp of the Postfix lines of `--hosts`.
    #[arg(long, value_enum, default_value = "classic", requires = "hosts")]
    stamp: Stamp,
}

fn parse_start(s: &str) -> Result<i64, String> {
    Timestamp::parse_rfc3339(s.as_bytes())
        .map(|t| t.unix)
        .ok_or_else(|| format!("'{s}' is not an RFC 3339 time (e.g. 2026-11-24T00:00:00Z)"))
}

/// How far behind its arrival a message's deliveries are written.
const LAG: usize = 8;
/// Messages arriving per second.
const PER_SECOND: u64 = 11;
/// Seconds from a message's arrival to its first delivery attempt.
const FIRST_ATTEMPT: i64 = 2;
/// Seconds from the first attempt to the retry of a deferred recipient.
const RETRY: i64 = 300;
/// Seconds from the first attempt to the queue manager's last word (bounce, removed).
const FINISHED: i64 = RETRY + 1;

/// Arrival of message `i`.
fn arrival(start: i64, i: u64) -> i64 {
    start + (i / PER_SECOND) as i64
}

impl Format {
    /// Seconds from a message's arrival to its latest line.
    fn last_line_after_arrival(self) -> i64 {
        match self {
            Format::Native => FIRST_ATTEMPT,
            Format::Postfix => FIRST_ATTEMPT + FINISHED,
        }
    }
}

/// The first arrival that makes the latest line of the log fall on `end`.
fn start_ending_at(end: i64, messages: u64, format: Format) -> i64 {
    end - arrival(0, messages.saturating_sub(1)) - format.last_line_after_arrival()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

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

/// A classic syslog stamp, `Nov  4 10:00:00` (no year), in UTC.
fn syslog_time(unix: i64) -> String {
    let (_, month, day) = civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    let month = MONTHS[month as usize - 1].map(char::from);
    format!(
        "{}{}{} {day:>2} {:02}:{:02}:{:02}",
        month[0],
        month[1],
        month[2],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn rfc3339(unix: i64) -> String {
    let mut s = String::new();
    Timestamp {
        unix,
        offset_minutes: 0,
    }
    .write_rfc3339_utc(&mut s);
    s
}

struct Message {
    i: u64,
    at: i64,
    queue: String,
    /// The name of its host in the syslog prefix.
    host: String,
    /// ` host=NAME` on its native lines, or nothing (one host).
    declared: String,
    outcomes: Vec<Outcome>,
}

struct Writer<W: Write> {
    out: W,
    format: Format,
    stamp: Stamp,
}

impl<W: Write> Writer<W> {
    /// A syslog line's stamp.
    fn stamp(&self, unix: i64) -> String {
        match self.stamp {
            Stamp::Classic => syslog_time(unix),
            Stamp::Rfc3339 => rfc3339(unix),
        }
    }

    fn arrival(&mut self, m: &Message, hash: &str) -> std::io::Result<()> {
        let (i, q, t, hub, declared) = (m.i, &m.queue, self.stamp(m.at), &m.host, &m.declared);
        let envid = format!("gen-{i:010}@client.example");
        match self.format {
            Format::Native => writeln!(
                self.out,
                "mtqp: event=accept time={} envid={envid} mtrk={hash} queue={q}{declared}",
                rfc3339(m.at)
            ),
            Format::Postfix => {
                let pid = 1000 + i % 9000;
                writeln!(
                    self.out,
                    "{t} {hub} postfix/smtpd[{pid}]: {q}: client=client{}.example[192.0.2.{}]",
                    i % 997,
                    i % 250 + 1
                )?;
                writeln!(
                    self.out,
                    "{t} {hub} postfix/cleanup[{}]: {q}: message-id=<m{i}@client.example>",
                    pid + 1
                )?;
                writeln!(self.out, "{t} {hub} mtqp-milter[77]: mtqp: event=accept time={} envid={envid} mtrk={hash} msgid=m{i}@client.example{declared}", rfc3339(m.at))?;
                writeln!(self.out, "{t} {hub} postfix/qmgr[500]: {q}: from=<sender{i}@client.example>, size={}, nrcpt={} (queue active)", 2000 + i % 50_000, m.outcomes.len())
            }
        }
    }

    fn deliveries(&mut self, m: &Message) -> std::io::Result<()> {
        let (i, q, hub, declared) = (m.i, &m.queue, &m.host, &m.declared);
        let t = m.at + FIRST_ATTEMPT;
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
                    writeln!(self.out, "mtqp: event=rcpt time={} queue={q} orcpt=rfc822;{rcpt} rcpt={rcpt} action={action} status={status}{remote}{declared}", rfc3339(t))?;
                }
                Format::Postfix => {
                    let ts = self.stamp(t);
                    let pid = 2000 + (i + r as u64) % 9000;
                    match o {
                        Outcome::Relayed => writeln!(self.out, "{ts} {hub} postfix/smtp[{pid}]: {q}: to=<{to}>, relay=mx.dest{}.example[198.51.100.{}]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as X{i:X})", i % 113, i % 250 + 1)?,
                        Outcome::Local => writeln!(self.out, "{ts} {hub} postfix/local[{pid}]: {q}: to=<{local}>, relay=local, delay=0.3, delays=0.1/0/0/0.2, dsn=2.0.0, status=sent (delivered to mailbox)")?,
                        Outcome::DeferredThenRelayed => {
                            writeln!(self.out, "{ts} {hub} postfix/smtp[{pid}]: {q}: to=<{to}>, relay=none, delay=30, delays=0.1/0/30/0, dsn=4.4.1, status=deferred (connect to mx.dest.example[198.51.100.7]:25: Connection timed out)")?;
                            writeln!(self.out, "{} {hub} postfix/smtp[{pid}]: {q}: to=<{to}>, relay=mx.dest{}.example[198.51.100.{}]:25, delay=330, delays=300/0/20/10, dsn=2.0.0, status=sent (250 2.0.0 Ok)", self.stamp(t + RETRY), i % 113, i % 250 + 1)?;
                        }
                        Outcome::Deferred => writeln!(self.out, "{ts} {hub} postfix/smtp[{pid}]: {q}: to=<{to}>, relay=none, delay=30, delays=0.1/0/30/0, dsn=4.4.1, status=deferred (connect to mx.dest.example[198.51.100.7]:25: Connection timed out)")?,
                        Outcome::Bounced => writeln!(self.out, "{ts} {hub} postfix/smtp[{pid}]: {q}: to=<{to}>, relay=mx.dest{}.example[198.51.100.{}]:25, delay=0.9, delays=0.1/0/0.4/0.4, dsn=5.1.1, status=bounced (host mx.dest.example[198.51.100.{}] said: 550 5.1.1 <{to}>: Recipient address rejected: User unknown (in reply to RCPT TO command))", i % 113, i % 250 + 1, i % 250 + 1)?,
                    }
                }
            }
        }
        if self.format == Format::Postfix {
            let done = m.outcomes.iter().all(|o| !matches!(o, Outcome::Deferred));
            let bounced = m.outcomes.iter().any(|o| matches!(o, Outcome::Bounced));
            let ts = self.stamp(t + FINISHED);
            if bounced {
                writeln!(
                    self.out,
                    "{ts} {hub} postfix/cleanup[600]: N{i:X}: message-id=<{}.N{i:X}@hub.example>",
                    t
                )?;
                writeln!(
                    self.out,
                    "{ts} {hub} postfix/bounce[601]: {q}: sender non-delivery notification: N{i:X}"
                )?;
                writeln!(self.out, "{ts} {hub} postfix/qmgr[500]: N{i:X}: from=<>, size=3000, nrcpt=1 (queue active)")?;
            }
            if done {
                writeln!(self.out, "{ts} {hub} postfix/qmgr[500]: {q}: removed")?;
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
        stamp: args.stamp,
    };
    let hosts = u64::from(args.hosts.unwrap_or(1));
    let mut secrets = open(&args.secrets)?;
    let mut rng = Rng::new(args.seed);
    let start = args
        .start
        .unwrap_or_else(|| start_ending_at(unix_now(), args.messages, args.format));
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
        let (host, declared) = match args.hosts {
            Some(_) => (
                format!("hub{}", i % hosts),
                format!(" host=hub{}", i % hosts),
            ),
            None => ("hub".to_owned(), String::new()),
        };
        let m = Message {
            i,
            at: arrival(start, i),
            // Each host's own sequence; the random low octet makes some collide across hosts.
            queue: format!("{:010X}", ((i / hosts) << 8) | (rng.below(256))),
            host,
            declared,
            outcomes: (0..args.recipients).map(|_| outcome(&mut rng)).collect(),
        };
        w.arrival(&m, &xtext::encode(hash.trim_end_matches('=').as_bytes()))
            .map_err(io)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(format: Format, start: Option<i64>, dir: &std::path::Path) -> GenArgs {
        GenArgs {
            messages: 300,
            recipients: 2,
            format,
            out: dir.join(format!("{format:?}.log")),
            secrets: dir.join(format!("{format:?}.secrets")),
            seed: 7,
            start,
            hosts: None,
            stamp: Stamp::Classic,
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mtqp-load-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn unix(rfc3339: &str) -> i64 {
        Timestamp::parse_rfc3339(rfc3339.as_bytes()).unwrap().unix
    }

    #[test]
    fn classic_stamps_cross_new_year_with_the_calendar() {
        let eve = unix("2027-12-31T23:59:59Z");
        assert_eq!(syslog_time(eve), "Dec 31 23:59:59");
        assert_eq!(syslog_time(eve + 1), "Jan  1 00:00:00");
        assert_eq!(syslog_time(unix("2028-02-29T12:00:00Z")), "Feb 29 12:00:00");
        assert_eq!(syslog_time(unix("2028-03-01T00:00:00Z")), "Mar  1 00:00:00");
    }

    #[test]
    fn by_default_the_latest_line_is_logged_now() {
        let dir = temp_dir("now");
        let before = unix_now();
        let a = args(Format::Native, None, &dir);
        run(&a).unwrap();
        let after = unix_now();
        let log = std::fs::read_to_string(&a.out).unwrap();
        let latest = log
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("time="))
            .map(unix)
            .max()
            .unwrap();
        assert!(
            (before..=after).contains(&latest),
            "{before} {latest} {after}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_pinned_start_writes_the_same_files_on_every_run() {
        let dir = temp_dir("pinned");
        let start = Some(unix("2027-12-31T23:50:00Z"));
        for format in [Format::Native, Format::Postfix] {
            let a = args(format, start, &dir);
            run(&a).unwrap();
            let first = (
                std::fs::read(&a.out).unwrap(),
                std::fs::read(&a.secrets).unwrap(),
            );
            run(&a).unwrap();
            let again = (
                std::fs::read(&a.out).unwrap(),
                std::fs::read(&a.secrets).unwrap(),
            );
            assert!(first == again, "{format:?}");
            let log = String::from_utf8(first.0).unwrap();
            let first_line = log.lines().next().unwrap();
            assert!(
                first_line.starts_with("Dec 31 23:50:00 ")
                    || first_line.contains(" time=2027-12-31T23:50:00Z "),
                "{first_line}"
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn hosts_have_their_own_queue_ids_some_of_them_alike() {
        let dir = temp_dir("hosts");
        let mut a = args(Format::Postfix, Some(unix("2027-06-01T00:00:00Z")), &dir);
        a.messages = 3000;
        a.hosts = Some(3);
        run(&a).unwrap();
        let log = std::fs::read_to_string(&a.out).unwrap();
        let mut ids = std::collections::HashMap::<&str, Vec<&str>>::new();
        for line in log.lines() {
            let host = line.split_whitespace().nth(3).unwrap();
            assert!(["hub0", "hub1", "hub2"].contains(&host), "{line}");
            if line.contains(" mtqp: event=accept ") {
                assert!(line.ends_with(&format!(" host={host}")), "{line}");
            }
            if let Some(q) = line.strip_suffix(": removed") {
                ids.entry(q.rsplit(' ').next().unwrap())
                    .or_default()
                    .push(host);
            }
        }
        let shared = ids.values().filter(|hosts| hosts.len() > 1).count();
        assert!(
            shared > 0 && shared < 100,
            "{shared} queue ids on more than one host"
        );
        assert!(ids.values().all(|h| h.windows(2).all(|w| w[0] != w[1])));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
