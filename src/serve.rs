//! `mtqpd serve`: builds the index, starts the ingest thread and the workers, waits for SIGINT
//! or SIGTERM, then shuts down in order and prints the statistics.

use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::cli::{ServeArgs, Unknown};
use crate::index::render::OpaqueAnswer;
use crate::index::Index;
use crate::ingest::{self, IngestConfig};
use crate::server::tls::TlsCerts;
use crate::server::{self, ServerConfig, UnknownAnswer};

/// Shards per worker thread: enough that the ingest thread's writes rarely meet a reader.
const SHARDS_PER_THREAD: usize = 16;

/// Runs the server until SIGINT or SIGTERM.
pub fn serve(args: &ServeArgs) -> Result<(), String> {
    args.validate()?;
    // Registered before anything runs, so that a signal at any later moment shuts down cleanly.
    let mut signals =
        Signals::new([SIGINT, SIGTERM]).map_err(|e| format!("cannot handle signals: {e}"))?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let hostname = args.hostname();
    let index = Arc::new(Index::new(threads * SHARDS_PER_THREAD));
    let unknown = match args.unknown {
        Unknown::Noinfo => UnknownAnswer::Noinfo,
        Unknown::Opaque => UnknownAnswer::Opaque(OpaqueAnswer::new(&hostname)),
    };
    let pairs: Vec<_> = args
        .tls_cert
        .iter()
        .map(|c| c.as_path())
        .zip(args.tls_key.iter().map(|k| k.as_path()))
        .collect();
    let tls = if pairs.is_empty() {
        None
    } else {
        Some(Arc::new(TlsCerts::load(&pairs)?))
    };
    let running = server::start(
        ServerConfig {
            listen: args.listen.clone(),
            threads,
            hostname: hostname.clone(),
            unknown,
            limits: args.limits(),
            tls,
            tls_required: args.tls_required,
        },
        Arc::clone(&index),
    )?;
    let ingest = ingest::spawn(
        IngestConfig {
            sources: args.log.clone(),
            reporting_mta: hostname,
            retention: args.retention(),
            state_dir: args.state_dir.clone(),
            snapshot_interval: args.snapshot_interval,
            log_zone: args.log_zone()?,
        },
        Arc::clone(&index),
    )
    .map_err(|e| format!("cannot start ingest thread: {e}"))?;
    for addr in &running.local_addrs {
        eprintln!("mtqpd: listening on {addr}");
    }
    eprintln!(
        "mtqpd: {threads} worker thread(s), {} log(s)",
        args.log.len()
    );
    if let Some(sig) = signals.forever().next() {
        let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
        eprintln!("mtqpd: {name}: shutting down");
    }
    let stats = running.shutdown();
    let ingest_stats = Arc::clone(&ingest.stats);
    ingest.stop();
    eprint!("{}", stats.report());
    // How many records carry their message as the answer itself, and how many hold it whole
    // beside the answer (a value the renderer changes): see ingest::tracker::stored.
    let (read_back, whole) = ingest::tracker::stored::carried(&index);
    eprintln!(
        "mtqpd: ingest: {ingest_stats}; records {} read-back {read_back} stored-whole {whole}",
        index.len()
    );
    Ok(())
}
