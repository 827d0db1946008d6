//! `mtqp-load run`: the open-loop load driver (wrk2's schedule and coordinated-omission
//! correction, memtier's pipelining and answer checking) — flags, the threads, the progress
//! line and the final report.

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Args;
use rustls::pki_types::ServerName;

use crate::conn::Tls;
use crate::report::{self, Report};
use crate::sys;
use crate::worker::{worker, Clock, Gate, Plan, Stats, Tick};
use crate::workload::{parse_mix, read_secrets, Mix, Workload};

/// `run` flags.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The server, HOST:PORT.
    #[arg(long)]
    addr: String,
    /// The (envid, TAB, base64 secret) lines to query, as `gen --secrets` writes them.
    #[arg(long, value_name = "FILE")]
    secrets: PathBuf,
    /// Connections, over all threads.
    #[arg(long, default_value_t = 50)]
    connections: u64,
    /// Threads, each with its own event loop and its share of the connections.
    #[arg(long, default_value_t = 1)]
    threads: u64,
    /// Requests in flight per connection at most.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Requests per second over all connections, sent on a fixed schedule whatever the server
    /// does (open loop; latency counts from each request's scheduled time). 0: as fast as the
    /// pipeline window allows (closed loop; latency from the actual send).
    #[arg(long)]
    rate: u64,
    /// Measured time (e.g. 30s, 500ms, 2m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Load sent before the measured time and not counted (errors still are).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// How long to wait after the end for answers still in flight (then they count as
    /// no-answer errors).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    drain: Duration,
    /// Weights of the kinds of request: hit (a real envid and its secret), miss (an envid that
    /// does not exist), badsecret (a real envid, a wrong secret), comment (COMMENT).
    #[arg(long, default_value = "hit=100", value_parser = parse_mix)]
    mix: Mix,
    /// The server answers unknown envids and wrong secrets with an opaque body (`serve
    /// --unknown opaque`) rather than -ERR/noinfo.
    #[arg(long)]
    expect_opaque: bool,
    /// Do STARTTLS with this name on every connection before the run.
    #[arg(long, value_name = "FQDN")]
    starttls: Option<String>,
    /// PEM bundle of the CAs to trust for STARTTLS [default: the system's].
    #[arg(long, value_name = "PEM", requires = "starttls")]
    ca: Option<PathBuf>,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the latency-from-intended-time histogram in HdrHistogram's percentile-spectrum
    /// format (milliseconds), as wrk2 prints it, to this file.
    #[arg(long, value_name = "FILE")]
    hgrm: Option<PathBuf>,
    /// The same for the service time (from the actual send).
    #[arg(long, value_name = "FILE")]
    hgrm_service: Option<PathBuf>,
    /// Print the progress line every second even when stderr is not a terminal.
    #[arg(long)]
    progress: bool,
    /// Seed of the request mix: the same seed sends the same requests in the same order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How long connecting and the greeting (and STARTTLS) may take per connection.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    connect_timeout: Duration,
}

/// Parses `90`, `1.5s`, `500ms`, `250us`, `2m`, `1h` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 10s, 500ms, 2m"))?;
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (us, ms, s, m or h)")),
    };
    let secs = n * scale;
    if !(0.0..=1e7).contains(&secs) {
        return Err(format!("'{s}' is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn tls_settings(args: &RunArgs) -> Result<Option<Tls>, String> {
    let Some(fqdn) = &args.starttls else {
        return Ok(None);
    };
    let roots = match &args.ca {
        Some(p) => mtqp_client::tls::load_ca(p)?,
        None => mtqp_client::tls::system_roots()?,
    };
    let name = ServerName::try_from(fqdn.clone())
        .map_err(|_| format!("--starttls '{fqdn}' is not a host name"))?;
    Ok(Some(Tls {
        config: mtqp_client::tls::client_config(roots)?,
        name,
        fqdn: fqdn.clone(),
    }))
}

/// Checks RLIMIT_NOFILE against the connections, raising the soft limit when it can.
fn check_nofile(conns: u64) {
    // Connections, plus stdio, the polls, the timers and some slack.
    let needed = conns + 64;
    match sys::raise_nofile(needed) {
        Ok(n) if n.soft < needed => eprintln!(
            "mtqp-load: warning: at most {} open files (hard limit {}), {conns} connections \
             need about {needed}: connections will fail (raise it with `ulimit -n`)",
            n.soft, n.hard
        ),
        Ok(n) if n.soft != n.soft_before => eprintln!(
            "mtqp-load: raised the open-files limit from {} to {} for {conns} connections",
            n.soft_before, n.soft
        ),
        Ok(_) => {}
        Err(e) => eprintln!("mtqp-load: warning: cannot read the open-files limit: {e}"),
    }
}

/// Per-second progress, as every thread reports it.
struct Progress {
    threads: u64,
    warmup_secs: f64,
    show: bool,
    pending: std::collections::BTreeMap<u64, (u64, Tick)>,
}

impl Progress {
    fn add(&mut self, t: Tick) {
        let second = t.second;
        let entry = self.pending.entry(second);
        match entry {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert((1, t));
            }
            std::collections::btree_map::Entry::Occupied(mut o) => {
                let (n, sum) = o.get_mut();
                *n += 1;
                sum.answered += t.answered;
                sum.errors += t.errors;
                sum.behind = sum.behind.max(t.behind);
                let _ = sum.latency.add(&t.latency);
            }
        }
        if self
            .pending
            .get(&second)
            .is_some_and(|(n, _)| *n == self.threads)
        {
            let (_, t) = self.pending.remove(&second).expect("present");
            if self.show {
                let warm = if ((second + 1) as f64) <= self.warmup_secs {
                    "  (warm-up)"
                } else {
                    ""
                };
                let behind = if t.behind >= 1_000_000 {
                    format!(", BEHIND by {:.1} ms", t.behind as f64 / 1e6)
                } else {
                    String::new()
                };
                eprintln!(
                    "[{:>4}s] {:>9} answers/s, errors {}, p99 {:.3} ms{behind}{warm}",
                    second + 1,
                    t.answered,
                    t.errors,
                    t.latency.value_at_quantile(0.99) as f64 / 1000.0,
                );
            }
        }
    }
}

/// Runs the load. Ok(true): every answer was right; Ok(false): some were not.
pub fn run(args: &RunArgs) -> Result<bool, String> {
    let addr: SocketAddr = args
        .addr
        .to_socket_addrs()
        .map_err(|e| format!("--addr {}: {e}", args.addr))?
        .next()
        .ok_or_else(|| format!("--addr {}: no address", args.addr))?;
    if args.connections == 0 || args.threads == 0 || args.pipeline == 0 {
        return Err("--connections, --threads and --pipeline must be at least 1".into());
    }
    if args.duration.is_zero() {
        return Err("--duration must be more than 0".into());
    }
    let threads = args.threads.min(args.connections);
    let secrets = read_secrets(&args.secrets)?;
    let wl = Workload::new(&secrets, args.mix)?;
    drop(secrets);
    let plan = Plan {
        addr,
        tls: tls_settings(args)?,
        conns: args.connections,
        threads,
        pipeline: args.pipeline,
        rate: args.rate,
        warmup: args.warmup.as_nanos() as u64,
        duration: args.duration.as_nanos() as u64,
        drain: args.drain.as_nanos() as u64,
        opaque: args.expect_opaque,
        seed: args.seed,
        connect_timeout: args.connect_timeout,
    };
    check_nofile(args.connections);
    let clock = Clock(Instant::now());
    let gate = Gate::new(threads as usize);
    let (tx, rx) = crossbeam_channel::unbounded::<Tick>();
    let mut progress = Progress {
        threads,
        warmup_secs: args.warmup.as_secs_f64(),
        show: args.progress || std::io::stderr().is_terminal(),
        pending: Default::default(),
    };
    let results: Vec<Result<Stats, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (plan, wl, gate, tx) = (&plan, &wl, &gate, tx.clone());
                std::thread::Builder::new()
                    .name(format!("mtqp-load-{t}"))
                    .spawn_scoped(scope, move || worker(plan, wl, t, clock, gate, tx))
                    .expect("spawn a driver thread")
            })
            .collect();
        drop(tx);
        gate.barrier.wait();
        if !gate.failed.load(Ordering::Relaxed) && progress.show {
            eprintln!(
                "mtqp-load: {} connections open, running {:.1}s + {:.1}s warm-up",
                args.connections,
                args.duration.as_secs_f64(),
                args.warmup.as_secs_f64()
            );
        }
        // Start a little ahead so every thread is waiting when the schedule begins.
        gate.t0.store(clock.now() + 1_000_000, Ordering::Relaxed);
        gate.barrier.wait();
        for tick in rx.iter() {
            progress.add(tick);
        }
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a driver thread panicked".into()))
            })
            .collect()
    });
    let mut total = Stats::new();
    for r in &results {
        match r {
            Ok(s) => total.merge(s),
            Err(e) if e.is_empty() => {}
            Err(e) => return Err(e.clone()),
        }
    }
    if let Some(e) = gate.error.lock().expect("gate").clone() {
        return Err(e);
    }
    let rep = Report {
        addr: &args.addr,
        connections: args.connections,
        threads,
        pipeline: args.pipeline,
        rate: args.rate,
        duration: args.duration,
        warmup: args.warmup,
        mix: args.mix,
        tls: args.starttls.is_some(),
        stats: &total,
    };
    print!("{}", report::text(&rep));
    let write = |path: &PathBuf, text: String| {
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    if let Some(p) = &args.json {
        write(p, report::json(&rep))?;
    }
    if let Some(p) = &args.hgrm {
        write(p, crate::hgrm::format(&total.intended, 1000.0))?;
    }
    if let Some(p) = &args.hgrm_service {
        write(p, crate::hgrm::format(&total.service, 1000.0))?;
    }
    Ok(total.error_total() == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
