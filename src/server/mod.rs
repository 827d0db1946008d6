//! The network side: thread-per-core event loops that accept MTQP connections and answer them
//! from the index.
//!
//! Thread model: every listener is bound up front ([`bind_all`], so a port in use is
//! reported before anything runs, and `serve` can give up root between binding and
//! [`start_on`]; [`start`] does both), then one [`worker`] thread starts per `--threads`, each
//! with its own `mio::Poll` and its own SO_REUSEPORT listener per address. A connection lives
//! and dies on the worker that accepted it. Workers read the shared [`Index`]; they never write it.
//! [`Running::shutdown`] wakes every worker, which stops accepting, finishes the answers it
//! owes (for a few seconds at most) and returns its statistics for merging.
//!
//! This module knows nothing of log formats; the wire format itself lives in
//! [`crate::protocol`].

mod conn;
pub(crate) mod listen;
pub mod live_certs;
mod output;
pub(crate) mod per_address;
mod session;
pub mod tls;
mod worker;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub use listen::{bind_all, Bound};
pub use session::UnknownAnswer;

use crate::index::Index;
use crate::protocol::reply;
use crate::stats::{LiveStats, WorkerStats};

/// Per-connection and per-server bounds.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections across all workers; more are told `-TEMP` and closed.
    pub max_connections: usize,
    /// Open connections from one client address (an IPv6 /64); more are told `-TEMP`.
    pub max_connections_per_ip: usize,
    /// A connection that has sent no complete command for this long is closed (RFC 3887: at
    /// least 10 minutes). Octets that do not complete a command do not count as activity.
    pub idle_timeout: Duration,
    /// A new connection must complete its first command within this long.
    pub first_command_timeout: Duration,
    /// A TLS handshake must complete within this long of the STARTTLS go-ahead.
    pub tls_handshake_timeout: Duration,
    /// Bad commands in a row before the connection is closed.
    pub max_bad_commands: u32,
    /// Commands one connection may have answered before the others get a turn.
    pub commands_per_turn: usize,
    /// Unsent octets above which a connection's input is no longer read.
    pub output_high_water: usize,
    /// Unsent answers above which a connection's input is no longer read.
    pub output_max_pieces: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 50_000,
            max_connections_per_ip: 256,
            idle_timeout: Duration::from_secs(600),
            first_command_timeout: Duration::from_secs(60),
            tls_handshake_timeout: Duration::from_secs(10),
            max_bad_commands: 10,
            commands_per_turn: 256,
            output_high_water: 256 * 1024,
            output_max_pieces: 4096,
        }
    }
}

/// What the server needs to run.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: Vec<SocketAddr>,
    pub threads: usize,
    /// The name in the greeting.
    pub hostname: String,
    pub unknown: UnknownAnswer,
    pub limits: Limits,
    /// Certificates for STARTTLS; None: STARTTLS answers `-ERR/unsupported`.
    pub tls: Option<Arc<live_certs::LiveCerts>>,
    /// TRACK only under TLS.
    pub tls_required: bool,
}

/// Read-only state every worker shares.
pub struct Shared {
    pub index: Arc<Index>,
    /// The greeting of a new connection (with the STARTTLS option when certificates exist).
    pub greeting: Arc<[u8]>,
    /// The greeting after the TLS handshake (without it).
    pub greeting_tls: Arc<[u8]>,
    pub tls: Option<Arc<live_certs::LiveCerts>>,
    pub tls_required: bool,
    pub unknown: UnknownAnswer,
    pub limits: Limits,
    pub open_connections: AtomicUsize,
    /// Open connections per client address.
    pub per_address: per_address::AddressCounts,
    pub shutdown: AtomicBool,
}

/// What the admin server reads of a running server: each worker's counters and latency
/// buckets, and the connections open now.
#[derive(Clone)]
pub struct ServerView {
    pub workers: Vec<LiveStats>,
    shared: Arc<Shared>,
}

impl ServerView {
    /// Connections open now, across the workers.
    pub fn open_connections(&self) -> usize {
        self.shared.open_connections.load(Ordering::Relaxed)
    }
}

/// A running server.
pub struct Running {
    /// The addresses actually bound (port 0 resolved), in `--listen` order.
    pub local_addrs: Vec<SocketAddr>,
    shared: Arc<Shared>,
    wakers: Vec<Arc<mio::Waker>>,
    threads: Vec<JoinHandle<WorkerStats>>,
    live: Vec<LiveStats>,
}

/// Binds every listener and starts the workers.
pub fn start(config: ServerConfig, index: Arc<Index>) -> Result<Running, String> {
    let bound = bind_all(&config.listen, config.threads)?;
    start_on(bound, config, index)
}

/// Starts the workers on listeners [`bind_all`] bound earlier (`serve` binds, then
/// gives up root, then starts).
pub fn start_on(bound: Bound, config: ServerConfig, index: Arc<Index>) -> Result<Running, String> {
    let Bound {
        local_addrs,
        per_worker,
    } = bound;
    let options: &[&str] = match (&config.tls, config.tls_required) {
        (None, _) => &[],
        (Some(_), false) => &["STARTTLS"],
        (Some(_), true) => &["STARTTLS required"],
    };
    let shared = Arc::new(Shared {
        index,
        greeting: reply::greeting(&config.hostname, options).into(),
        greeting_tls: reply::greeting(&config.hostname, &[]).into(),
        tls: config.tls,
        tls_required: config.tls_required,
        unknown: config.unknown,
        per_address: per_address::AddressCounts::new(config.limits.max_connections_per_ip),
        limits: config.limits,
        open_connections: AtomicUsize::new(0),
        shutdown: AtomicBool::new(false),
    });
    let mut wakers = Vec::new();
    let mut handles = Vec::new();
    let mut live = Vec::new();
    for (i, listeners) in per_worker.into_iter().enumerate() {
        let setup =
            worker::WorkerSetup::new(listeners).map_err(|e| format!("cannot start worker: {e}"))?;
        wakers.push(Arc::clone(&setup.waker));
        let shared = Arc::clone(&shared);
        let stats = WorkerStats::default();
        live.push(stats.live());
        let handle = std::thread::Builder::new()
            .name(format!("mtqpd-worker-{i}"))
            .spawn(move || worker::run(setup, shared, stats))
            .map_err(|e| format!("cannot start worker thread: {e}"))?;
        handles.push(handle);
    }
    Ok(Running {
        local_addrs,
        shared,
        wakers,
        threads: handles,
        live,
    })
}

impl Running {
    /// What the admin server reads while the server runs.
    pub fn view(&self) -> ServerView {
        ServerView {
            workers: self.live.clone(),
            shared: Arc::clone(&self.shared),
        }
    }

    /// Stops accepting, lets every worker finish the answers it owes, and returns the merged
    /// statistics.
    pub fn shutdown(self) -> WorkerStats {
        self.shared.shutdown.store(true, Ordering::Release);
        for w in &self.wakers {
            let _ = w.wake();
        }
        let mut total = WorkerStats::default();
        for t in self.threads {
            if let Ok(stats) = t.join() {
                total.merge(&stats);
            }
        }
        total
    }
}
