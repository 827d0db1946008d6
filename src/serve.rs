//! `mtqpd serve`: builds the index, starts the ingest thread and the workers, waits for SIGINT
//! or SIGTERM, then shuts down in order and prints the statistics.

use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::admin::{self, serve::ServePages};
use crate::cli::Unknown;
use crate::index::render::OpaqueAnswer;
use crate::index::Index;
use crate::ingest::receiver::{self, ReceiverConfig};
use crate::ingest::{self, IngestConfig};
use crate::server::tls::TlsCerts;
use crate::server::{self, ServerConfig, UnknownAnswer};
use crate::settings::Settings;

/// Shards per worker thread: enough that the ingest thread's writes rarely meet a reader.
const SHARDS_PER_THREAD: usize = 16;

/// Runs the server until SIGINT or SIGTERM.
pub fn serve(settings: &Settings) -> Result<(), String> {
    // Registered before anything runs, so that a signal at any later moment shuts down cleanly.
    let mut signals =
        Signals::new([SIGINT, SIGTERM]).map_err(|e| format!("cannot handle signals: {e}"))?;
    for warning in &settings.warnings {
        eprintln!("mtqpd: {warning}");
    }
    let (threads, hostname) = (settings.threads, settings.hostname.clone());
    let index = Arc::new(Index::new(threads * SHARDS_PER_THREAD));
    let unknown = match settings.unknown {
        Unknown::Noinfo => UnknownAnswer::Noinfo,
        Unknown::Opaque => UnknownAnswer::Opaque(OpaqueAnswer::new(&hostname)),
    };
    let pairs: Vec<_> = settings
        .tls
        .iter()
        .map(|(cert, key)| (cert.as_path(), key.as_path()))
        .collect();
    let tls = if pairs.is_empty() {
        None
    } else {
        Some(Arc::new(TlsCerts::load(&pairs)?))
    };
    // Bound before the workers start, so that a port in use stays a one-line start-up error.
    let mut received = Vec::new();
    let receiver = match ReceiverConfig::new(&settings.syslog, tls.as_deref())? {
        Some(config) => {
            let (tx, batches) = crossbeam_channel::bounded(ingest::stream::CHANNEL_BATCHES);
            let r = receiver::spawn(config, tx).map_err(|e| e.to_string())?;
            received.push(ingest::Received {
                name: "syslog receiver".into(),
                batches,
            });
            Some(r)
        }
        None => None,
    };
    let running = server::start(
        ServerConfig {
            listen: settings.listen.clone(),
            threads,
            hostname: hostname.clone(),
            unknown,
            limits: settings.limits.clone(),
            tls,
            tls_required: settings.tls_required,
        },
        Arc::clone(&index),
    )?;
    // After everything that can stop start-up (a bad setting, a port in use), so that such an
    // error stays one line; the workers have only just begun to accept.
    raise_open_files(settings);
    let ingest = ingest::spawn(
        IngestConfig {
            sources: settings.logs.clone(),
            reporting_mta: hostname,
            retention: settings.retention,
            state_dir: settings.state_dir.clone(),
            snapshot_interval: settings.snapshot_interval,
            log_zone: settings.log_zone.clone(),
            native_tags: settings.native_tags.clone(),
            stream_native_tags: settings.stream_native_tags.clone(),
            local_host: crate::settings::system_hostname(),
            cluster_hosts: settings.cluster_hosts.clone(),
        },
        received,
        Arc::clone(&index),
    )
    .map_err(|e| format!("cannot start ingest thread: {e}"))?;
    let admin_addr = match settings.admin_listen {
        Some(addr) => {
            let pages = ServePages {
                server: running.view(),
                ingest: Arc::clone(&ingest.stats),
                index: Arc::clone(&index),
                max_lag: settings.healthz_max_lag,
            };
            Some(admin::start(addr, Arc::new(pages))?)
        }
        None => None,
    };
    for addr in &running.local_addrs {
        eprintln!("mtqpd: listening on {addr}");
    }
    for l in receiver.iter().flat_map(|r| r.local_addrs()) {
        eprintln!("mtqpd: syslog on {l}");
    }
    if let Some(addr) = admin_addr {
        eprintln!("mtqpd: admin on {addr}");
    }
    eprintln!(
        "mtqpd: {threads} worker thread(s), {} log(s)",
        settings.logs.len()
    );
    if let Some(sig) = signals.forever().next() {
        let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
        eprintln!("mtqpd: {name}: shutting down");
    }
    let stats = running.shutdown();
    let ingest_stats = Arc::clone(&ingest.stats);
    // The receiver reads what its sockets still hold, then lets go; ingest applies all of it
    // before its snapshot.
    if let Some(r) = &receiver {
        r.begin_stop();
    }
    ingest.stop();
    if let Some(r) = receiver {
        eprintln!("mtqpd: {}", r.stats());
        r.join();
    }
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

/// Raises the soft open-files limit to the hard one, so that `--max-connections`, not the
/// descriptor limit, is what caps the connections; warns when even the hard limit allows fewer
/// (each connection takes a descriptor, and the server needs some of its own).
fn raise_open_files(settings: &Settings) {
    // stdio, each worker's poll and waker and listeners, the logs, the state directory, the
    // reserve descriptor each worker keeps for refusing clients when out of them, and the
    // syslog receiver's listeners, poll, waker and connections.
    let syslog = if settings.syslog.listen.is_empty() {
        0
    } else {
        2 + settings.syslog.listen.len() + receiver::MAX_CONNECTIONS
    };
    let own =
        16 + settings.threads * (3 + settings.listen.len()) + 2 * settings.logs.len() + 4 + syslog;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => {
            let room = usize::try_from(soft)
                .unwrap_or(usize::MAX)
                .saturating_sub(own);
            if room < settings.limits.max_connections {
                eprintln!(
                    "mtqpd: warning: the open-files limit ({soft}, raised to the hard limit) \
                     leaves room for about {room} connections, fewer than --max-connections \
                     {}; raise the hard limit (LimitNOFILE= in a systemd unit, ulimit -Hn)",
                    settings.limits.max_connections
                );
            }
        }
        Err(e) => eprintln!("mtqpd: warning: cannot raise the open-files limit: {e}"),
    }
}
