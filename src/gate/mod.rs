//! `mtqpd gate`: the SMTP front end that lets a stock Postfix or Exim accept RFC 3885's MTRK.
//! It sits on port 25 before the MTA, relays every session to it (telling it the client's real
//! address with PROXY v2), cuts MTRK out of MAIL, and once the MTA has queued a tracked message,
//! appends the native lines that make it trackable to the accept log, which `mtqpd serve`
//! reads. It runs as its own process: a crash of the tracking server never stops mail, and
//! the reverse. Deployment: docs/deployment.md.
//!
//! Thread model, as `serve`'s: [`run`] binds every listener and gives up root (`--user`), then
//! [`start`] starts one [`worker`] per `--threads`, each a mio event loop with its own
//! SO_REUSEPORT listeners; a session (client socket and MTA socket, [`session`]) lives on the
//! worker that accepted it. One more thread owns the accept log ([`accept_log`]) and makes the
//! lines of all sessions durable together.
//! The SMTP pieces without I/O are in [`smtp`]; a tracked transaction is a [`transaction`].

pub mod accept_log;
mod client_io;
pub mod session;
pub mod settings;
pub mod smtp;
pub mod stats;
pub mod transaction;
pub mod upstream;
mod worker;

use std::fs::File;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use rustls::ServerConfig;
use signal_hook::iterator::Signals;

use crate::sdnotify::Notifier;
use crate::server::live_certs::LiveCerts;
use crate::server::per_address::AddressCounts;
use crate::server::{bind_all, Bound};
use crate::{privilege, reload};
use accept_log::{Answers, Request, Writer};
use settings::GateSettings;
use smtp::reply::QueueIdPattern;
use stats::{Counters, GateStats};
use upstream::MtaAddr;

/// Read-only state every worker shares.
pub struct GateShared {
    /// The gate's name in its own replies.
    pub hostname: String,
    /// The MTA's SMTP listener.
    pub mta: MtaAddr,
    /// The host name the MTA's log lines carry (`--mta-host`), for the native lines.
    pub mta_host: Option<String>,
    /// Send the PROXY v2 header to the MTA.
    pub proxy_v2: bool,
    /// STARTTLS, when certificates were given.
    pub tls: Option<Arc<ServerConfig>>,
    pub queue_id_patterns: Vec<QueueIdPattern>,
    pub accept_log: Sender<Request>,
    pub max_sessions: usize,
    /// Shared with the admin endpoint's [`GateView`], which must not hold the rest: the accept
    /// log's writer ends when the last sender, this struct's, is dropped.
    pub open_sessions: Arc<AtomicUsize>,
    pub per_address: AddressCounts,
    /// How long sessions may go on after SIGTERM.
    pub drain_timeout: Duration,
    pub shutdown: AtomicBool,
}

/// A running gate.
pub struct Running {
    /// The addresses bound (port 0 resolved), in `--listen` order.
    pub local_addrs: Vec<SocketAddr>,
    /// The certificates STARTTLS offers, which SIGHUP reloads.
    pub certs: Option<Arc<LiveCerts>>,
    shared: Arc<GateShared>,
    wakers: Vec<Arc<mio::Waker>>,
    threads: Vec<JoinHandle<GateStats>>,
    writer: Writer,
    live: Vec<Arc<Counters>>,
}

/// What the admin server reads of a running gate: each worker's counters and the sessions
/// open now.
#[derive(Clone)]
pub struct GateView {
    pub workers: Vec<Arc<Counters>>,
    open_sessions: Arc<AtomicUsize>,
}

impl GateView {
    /// Sessions open now, across the workers.
    pub fn open_sessions(&self) -> usize {
        self.open_sessions.load(Ordering::Relaxed)
    }
}

/// Starts the workers and the writer on the listeners [`bind_all`] bound, with the accept log
/// ([`accept_log::open`]) and the certificates `run` opened once it had given up root.
pub fn start(
    bound: Bound,
    file: File,
    certs: Option<Arc<LiveCerts>>,
    settings: &GateSettings,
) -> Result<Running, String> {
    let tls = certs.as_ref().map(LiveCerts::by_sni).transpose()?;
    let Bound {
        local_addrs,
        per_worker,
    } = bound;
    let mut setups = Vec::new();
    let mut answers = Vec::new();
    for listeners in per_worker {
        let (sender, receiver) = crossbeam_channel::unbounded();
        let setup = worker::WorkerSetup::new(listeners, local_addrs.clone(), receiver)
            .map_err(|e| format!("cannot start worker: {e}"))?;
        answers.push(Answers {
            sender,
            waker: Arc::clone(&setup.waker),
        });
        setups.push(setup);
    }
    let wakers = answers.iter().map(|a| Arc::clone(&a.waker)).collect();
    let writer = Writer::spawn(file, answers)?;
    let shared = Arc::new(GateShared {
        hostname: settings.hostname.clone(),
        mta: settings.mta.clone(),
        mta_host: settings.mta_host.clone(),
        proxy_v2: settings.proxy_v2,
        tls,
        queue_id_patterns: settings.queue_id_patterns.clone(),
        accept_log: writer.requests.clone(),
        max_sessions: settings.max_sessions,
        open_sessions: Arc::new(AtomicUsize::new(0)),
        per_address: AddressCounts::new(settings.max_sessions_per_ip),
        drain_timeout: settings.drain_timeout,
        shutdown: AtomicBool::new(false),
    });
    let mut handles = Vec::new();
    let mut live = Vec::new();
    for (i, setup) in setups.into_iter().enumerate() {
        let shared = Arc::clone(&shared);
        let stats = GateStats::default();
        live.push(Arc::clone(&stats.counters));
        let handle = std::thread::Builder::new()
            .name(format!("mtqpd-gate-{i}"))
            .spawn(move || worker::run(i, setup, shared, stats))
            .map_err(|e| format!("cannot start worker thread: {e}"))?;
        handles.push(handle);
    }
    Ok(Running {
        local_addrs,
        certs,
        shared,
        wakers,
        threads: handles,
        writer,
        live,
    })
}

impl Running {
    /// What the admin server reads while the gate runs.
    pub fn view(&self) -> GateView {
        GateView {
            workers: self.live.clone(),
            open_sessions: Arc::clone(&self.shared.open_sessions),
        }
    }

    /// Stops accepting, lets sessions finish within the drain timeout (then tells the rest
    /// 421), waits for the accept log to write what it was given, and returns the statistics.
    pub fn shutdown(self) -> GateStats {
        self.shared.shutdown.store(true, Ordering::Release);
        for w in &self.wakers {
            let _ = w.wake();
        }
        let mut total = GateStats::default();
        for t in self.threads {
            if let Ok(stats) = t.join() {
                total.merge(&stats);
            }
        }
        // The workers are gone; the last sender is the one in `shared`.
        drop(self.shared);
        self.writer.finish();
        total
    }
}

/// Runs the gate until SIGINT or SIGTERM (reloading its certificates at SIGHUP), then prints
/// its statistics.
pub fn run(settings: &GateSettings) -> Result<(), String> {
    let mut signals =
        Signals::new(reload::SIGNALS).map_err(|e| format!("cannot handle signals: {e}"))?;
    // Taken out of the environment while no other thread runs.
    let notify = Notifier::from_env()?;
    if !settings.proxy_v2 {
        eprintln!(
            "mtqpd gate: WARNING: --proxy-protocol none: the MTA sees every session come from \
             the gate's own address; if that address is in its trusted networks (Postfix's \
             default mynetworks includes 127.0.0.1) the MTA is an OPEN RELAY. Use v2 \
             (docs/deployment.md)."
        );
    }
    // Bind everything, then give up root: nothing else has run yet, so the accept log and the
    // certificates are opened as --user, as a SIGHUP will read them.
    let bound = bind_all(&settings.listen, settings.threads)?;
    let admin_listener = settings.admin_listen.map(crate::admin::bind).transpose()?;
    privilege::drop_to(settings.user.as_ref(), "mtqpd gate")?;
    let as_user = |e: String| match &settings.user {
        Some(user) => format!("{e} (as --user {})", user.name),
        None => e,
    };
    let file = accept_log::open(&settings.accept_log).map_err(as_user)?;
    let certs = if settings.tls.is_empty() {
        None
    } else {
        Some(LiveCerts::load(&settings.tls).map_err(as_user)?)
    };
    if let Some(warning) = settings.mta.unix_socket_problem() {
        eprintln!(
            "mtqpd gate: warning: --mta {}: {}",
            settings.mta,
            as_user(warning)
        );
    }
    let running = start(bound, file, certs, settings)?;
    let admin_addr = match admin_listener {
        Some(listener) => {
            let pages = crate::admin::gate::GatePages {
                gate: running.view(),
            };
            Some(crate::admin::start(listener, Arc::new(pages))?)
        }
        None => None,
    };
    raise_open_files(settings);
    for addr in &running.local_addrs {
        eprintln!("mtqpd gate: listening on {addr}");
    }
    if let Some(addr) = admin_addr {
        eprintln!("mtqpd gate: admin on {addr}");
    }
    eprintln!(
        "mtqpd gate: {} worker thread(s), MTA {}, accept log {}",
        settings.threads,
        settings.mta,
        settings.accept_log.display()
    );
    if let Some(notify) = &notify {
        notify.ready(&format!("relaying to {}", settings.mta));
    }
    reload::wait_for_stop(&mut signals, running.certs.as_deref(), "mtqpd gate");
    if let Some(notify) = &notify {
        notify.stopping();
    }
    let stats = running.shutdown();
    eprint!("{}", stats.report());
    Ok(())
}

/// Raises the soft open-files limit to the hard one: each session takes two descriptors (the
/// client's and the MTA's), so `--max-sessions`, not the descriptor limit, should be what caps
/// them; warns when even the hard limit allows fewer.
fn raise_open_files(settings: &GateSettings) {
    let own = 16 + settings.threads * (2 + settings.listen.len()) + 2;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => {
            let room = usize::try_from(soft)
                .unwrap_or(usize::MAX)
                .saturating_sub(own)
                / 2;
            if room < settings.max_sessions {
                eprintln!(
                    "mtqpd gate: warning: the open-files limit ({soft}, raised to the hard limit) \
                     leaves room for about {room} sessions (two descriptors each), fewer than \
                     --max-sessions {}; raise the hard limit (LimitNOFILE= in a systemd unit, \
                     ulimit -Hn)",
                    settings.max_sessions
                );
            }
        }
        Err(e) => eprintln!("mtqpd gate: warning: cannot raise the open-files limit: {e}"),
    }
}
