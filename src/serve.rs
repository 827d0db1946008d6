//! `mtqpd serve`: binds its listeners and gives up root (`--user`), builds the index, starts the
//! ingest thread and the workers, tells systemd when ingest has caught up, reloads its
//! certificates at SIGHUP until SIGINT or SIGTERM, then shuts down in order and prints the
//! statistics.

use std::sync::Arc;

use signal_hook::iterator::Signals;

use crate::admin::{self, serve::ServePages};
use crate::cli::Unknown;
use crate::index::render::OpaqueAnswer;
use crate::index::Index;
use crate::ingest::receiver::{self, ReceiverConfig};
use crate::ingest::{self, IngestConfig};
use crate::sdnotify::Notifier;
use crate::server::live_certs::LiveCerts;
use crate::server::{self, Bound, ServerConfig, UnknownAnswer};
use crate::settings::Settings;
use crate::{privilege, reload};

/// Shards per worker thread: enough that the ingest thread's writes rarely meet a reader.
const SHARDS_PER_THREAD: usize = 16;

/// Runs the server until SIGINT or SIGTERM, reloading its certificates at SIGHUP.
pub fn serve(settings: &Settings) -> Result<(), String> {
    // Registered before anything runs, so that a signal at any later moment is handled.
    let mut signals =
        Signals::new(reload::SIGNALS).map_err(|e| format!("cannot handle signals: {e}"))?;
    // Taken out of the environment while no other thread runs.
    let notify = Notifier::from_env()?;
    for warning in &settings.warnings {
        eprintln!("mtqpd: {warning}");
    }
    let (threads, hostname) = (settings.threads, settings.hostname.clone());
    let index = Arc::new(Index::new(threads * SHARDS_PER_THREAD));
    let unknown = match settings.unknown {
        Unknown::Noinfo => UnknownAnswer::Noinfo,
        Unknown::Opaque => UnknownAnswer::Opaque(OpaqueAnswer::new(&hostname)),
    };
    let Sockets {
        listeners,
        syslog: syslog_sockets,
        admin: admin_listener,
    } = bind_then_drop_root(settings)?;
    // Everything from here on is done as --user: what it cannot read now (a key, a log, the
    // state directory) fails start-up, not the first SIGHUP or log rotation.
    let as_user = |e: String| match &settings.user {
        Some(user) => format!("{e} (as --user {})", user.name),
        None => e,
    };
    if settings.user.is_some() {
        ingest::check_sources(&settings.logs).map_err(as_user)?;
        if let Some(dir) = &settings.state_dir {
            ingest::state::check_dir(dir).map_err(as_user)?;
        }
    }
    let tls = if settings.tls.is_empty() {
        None
    } else {
        Some(LiveCerts::load(&settings.tls).map_err(as_user)?)
    };
    let mut received = Vec::new();
    let receiver = match (
        syslog_sockets,
        ReceiverConfig::new(&settings.syslog, tls.as_ref())?,
    ) {
        (Some(sockets), Some(config)) => {
            let (tx, batches) = crossbeam_channel::bounded(ingest::stream::CHANNEL_BATCHES);
            let r = receiver::start(sockets, config, tx).map_err(|e| e.to_string())?;
            received.push(ingest::Received {
                name: "syslog receiver".into(),
                batches,
            });
            Some(r)
        }
        _ => None,
    };
    let running = server::start_on(
        listeners,
        ServerConfig {
            listen: settings.listen.clone(),
            threads,
            hostname: hostname.clone(),
            unknown,
            limits: settings.limits.clone(),
            tls: tls.clone(),
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
            notify: notify.clone(),
        },
        received,
        Arc::clone(&index),
    )
    .map_err(|e| format!("cannot start ingest thread: {e}"))?;
    let admin_addr = match admin_listener {
        Some(listener) => {
            let pages = ServePages {
                server: running.view(),
                ingest: Arc::clone(&ingest.stats),
                index: Arc::clone(&index),
                max_lag: settings.healthz_max_lag,
            };
            Some(admin::start(listener, Arc::new(pages))?)
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
    reload::wait_for_stop(&mut signals, tls.as_deref(), "mtqpd");
    if let Some(notify) = &notify {
        notify.stopping();
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

/// Every socket serve listens on, bound while the process may still be root.
struct Sockets {
    listeners: Bound,
    syslog: Option<receiver::Sockets>,
    admin: Option<std::net::TcpListener>,
}

/// Binds every socket serve listens on, then gives up root for `--user`: the one place where
/// the process is still what it was started as. Nothing else runs yet (no thread, no file
/// opened), so a listener added later belongs here, before the switch.
fn bind_then_drop_root(settings: &Settings) -> Result<Sockets, String> {
    // Bound before anything starts, so that a port in use stays a one-line start-up error.
    let listeners = server::bind_all(&settings.listen, settings.threads)?;
    let syslog = if settings.syslog.listen.is_empty() {
        None
    } else {
        Some(receiver::bind(&settings.syslog.listen).map_err(|e| e.to_string())?)
    };
    let admin = settings.admin_listen.map(admin::bind).transpose()?;
    privilege::drop_to(settings.user.as_ref(), "mtqpd")?;
    Ok(Sockets {
        listeners,
        syslog,
        admin,
    })
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
