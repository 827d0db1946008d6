//! The syslog receiver: `--syslog-listen tcp:|udp:|tls:ADDR:PORT`. MTA hosts forward their
//! logs to it with rsyslog or syslog-ng (docs/cluster.md, "Forwarding logs to mtqpd"); it
//! hands the lines to the ingest thread as [`Batch`]es over a bounded channel.
//!
//! - [`spec`]: the `--syslog-listen` values; [`cidr`]: `--syslog-allow`, who may send.
//! - [`socket`]: binding ([`bind`], then [`start`]; or both: [`spawn`]); [`event_loop`]: the
//!   thread's mio loop (accept, admit, read, drain); [`conn`]: one TCP or TLS connection.
//! - [`frame`]: RFC 6587 framing; [`message`]: a message to the line ingest reads;
//!   [`sink`]: lines into batches onto the channel, where backpressure comes from.
//! - [`stats`]: the counters; [`udp_drops`]: the kernel's count of UDP datagrams lost.
//!
//! Anyone who can write to the receiver can write log lines, and log lines decide what TRACK
//! answers: senders are admitted by address (`--syslog-allow`, loopback by default) or, on a
//! TLS listener with `--syslog-client-ca`, by a client certificate. Memory is bounded: at most
//! [`MAX_CONNECTIONS`] connections, each holding at most one partial message
//! ([`frame::MAX_MESSAGE`]) and rustls' bounded buffers, and [`CHANNEL_BATCHES`] batches in the
//! channel.
//!
//! [`CHANNEL_BATCHES`]: crate::ingest::stream::CHANNEL_BATCHES

pub mod cidr;
mod conn;
mod event_loop;
pub mod frame;
pub mod message;
mod sink;
mod socket;
pub mod spec;
pub mod stats;
mod udp_drops;

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use mio::{Poll, Waker};
use rustls::ServerConfig;

pub use cidr::Cidr;
pub use spec::{SyslogListen, Transport};
pub use stats::{ReceiverStats, StatsSnapshot};

use crate::ingest::stream::Batch;
use crate::server::live_certs::LiveCerts;
use event_loop::{EventLoop, Listener, Parts, Source, WAKER};
use sink::Sink;
use udp_drops::UdpDrops;

/// Most connections at once. A forwarding rsyslog or syslog-ng keeps one connection per
/// destination, so a cluster of a few hundred hosts needs a few hundred; 1,024 leaves room
/// for reconnects and fits the common default descriptor limit, while bounding the
/// receiver's memory (a partial message of up to 64 KiB and rustls' buffers per connection:
/// about 100 MiB at worst).
pub const MAX_CONNECTIONS: usize = 1024;

/// The receiver's settings, as `serve` gets them from [`crate::settings::SyslogSettings`].
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    pub listen: Vec<SyslogListen>,
    /// Who may send over TCP and UDP, and over TLS unless client certificates are required.
    pub allow: Vec<Cidr>,
    /// For `tls:` listeners.
    pub tls: Option<ReceiverTls>,
    pub max_connections: usize,
}

/// TLS for the receiver (RFC 5425).
#[derive(Debug, Clone)]
pub struct ReceiverTls {
    /// serve's certificates, chosen by SNI, and the client-certificate check, if any.
    pub config: Arc<ServerConfig>,
    /// A client certificate verified against `--syslog-client-ca` is required, and admits its
    /// sender whatever its address.
    pub client_certificates: bool,
}

impl ReceiverConfig {
    /// The receiver `settings` ask for, None when there is no `--syslog-listen`. `certs` are
    /// serve's `--tls-cert/--tls-key` pairs, needed by `tls:` listeners (settings checked
    /// that they are there).
    pub fn new(
        settings: &crate::settings::SyslogSettings,
        certs: Option<&Arc<LiveCerts>>,
    ) -> Result<Option<ReceiverConfig>, String> {
        if settings.listen.is_empty() {
            return Ok(None);
        }
        let wants_tls = settings
            .listen
            .iter()
            .any(|l| l.transport == Transport::Tls);
        let tls = match certs {
            Some(certs) if wants_tls => Some(ReceiverTls::new(certs, settings.client_ca.clone())?),
            None if wants_tls => {
                return Err("--syslog-listen tls: needs --tls-cert and --tls-key".into())
            }
            _ => None,
        };
        Ok(Some(ReceiverConfig {
            listen: settings.listen.clone(),
            allow: settings.allow.clone(),
            tls,
            max_connections: MAX_CONNECTIONS,
        }))
    }
}

impl ReceiverTls {
    /// `certs`, with client certificates required and checked against `client_ca` when given.
    pub fn new(certs: &Arc<LiveCerts>, client_ca: Option<PathBuf>) -> Result<ReceiverTls, String> {
        let config = certs
            .for_syslog(client_ca.as_deref())
            .map_err(|e| format!("--syslog-client-ca: {e}"))?;
        Ok(ReceiverTls {
            config,
            client_certificates: client_ca.is_some(),
        })
    }
}

/// The running receiver.
pub struct Receiver {
    thread: JoinHandle<()>,
    waker: Waker,
    stop: Arc<AtomicBool>,
    stats: Arc<ReceiverStats>,
    bound: Vec<SyslogListen>,
}

/// The receiver's sockets, bound and registered, before its thread runs: `serve` binds, gives up
/// root (`--user`), then starts the thread with [`start`].
pub struct Sockets {
    poll: Poll,
    waker: Waker,
    listeners: Vec<Listener>,
    bound: Vec<SyslogListen>,
    udp: Vec<UdpDrops>,
}

/// Binds every listener, then starts the receiver thread, which sends batches on `tx` (made by
/// the caller, with capacity [`crate::ingest::stream::CHANNEL_BATCHES`]). A listener that
/// cannot be bound is the error, naming it; nothing is started then.
pub fn spawn(config: ReceiverConfig, tx: Sender<Batch>) -> io::Result<Receiver> {
    let sockets = bind(&config.listen)?;
    start(sockets, config, tx)
}

/// Binds every listener of `listen`; the error names the one that could not be bound.
pub fn bind(listen: &[SyslogListen]) -> io::Result<Sockets> {
    let poll = Poll::new()?;
    let waker = Waker::new(poll.registry(), WAKER)?;
    let mut listeners = Vec::with_capacity(listen.len());
    let mut bound = Vec::with_capacity(listen.len());
    let mut udp = Vec::new();
    for (i, spec) in listen.iter().enumerate() {
        let named = |e: io::Error| io::Error::new(e.kind(), format!("--syslog-listen {spec}: {e}"));
        let token = mio::Token(i);
        let (addr, source) = match spec.transport {
            Transport::Tcp | Transport::Tls => {
                let (addr, mut listener) = socket::tcp(spec.addr).map_err(named)?;
                poll.registry()
                    .register(&mut listener, token, mio::Interest::READABLE)?;
                let tls = spec.transport == Transport::Tls;
                (addr, Source::Tcp { listener, tls })
            }
            Transport::Udp => {
                let (addr, mut socket) = socket::udp(spec.addr).map_err(named)?;
                udp.push(UdpDrops::of(&socket).map_err(named)?);
                poll.registry()
                    .register(&mut socket, token, mio::Interest::READABLE)?;
                (addr, Source::Udp(socket))
            }
        };
        listeners.push(Listener::new(source));
        bound.push(SyslogListen {
            transport: spec.transport,
            addr,
        });
    }
    Ok(Sockets {
        poll,
        waker,
        listeners,
        bound,
        udp,
    })
}

/// Starts the receiver thread on `sockets` (see [`spawn`]); `config.listen` is not looked at.
pub fn start(sockets: Sockets, config: ReceiverConfig, tx: Sender<Batch>) -> io::Result<Receiver> {
    let Sockets {
        poll,
        waker,
        listeners,
        bound,
        udp,
    } = sockets;
    if let (Some(spec), None) = (
        bound.iter().find(|l| l.transport == Transport::Tls),
        &config.tls,
    ) {
        return Err(io::Error::other(format!(
            "--syslog-listen {spec}: no TLS certificates"
        )));
    }
    let stats = Arc::new(ReceiverStats {
        udp,
        ..ReceiverStats::default()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let event_loop = EventLoop::new(Parts {
        poll,
        listeners,
        sink: Sink::new(tx),
        stats: Arc::clone(&stats),
        allow: config.allow,
        tls: config.tls,
        max_connections: config.max_connections,
        stop: Arc::clone(&stop),
    });
    let thread = std::thread::Builder::new()
        .name("syslog-receiver".into())
        .spawn(move || event_loop.run())?;
    Ok(Receiver {
        thread,
        waker,
        stop,
        stats,
        bound,
    })
}

impl Receiver {
    /// The listeners as bound, in `--syslog-listen` order (port 0 replaced by the real one).
    pub fn local_addrs(&self) -> &[SyslogListen] {
        &self.bound
    }

    /// The counters, live.
    pub fn stats(&self) -> Arc<ReceiverStats> {
        Arc::clone(&self.stats)
    }

    /// Stops accepting and reading new data: the thread reads what every socket still holds,
    /// sends it (waiting while the channel is full: keep receiving until it disconnects),
    /// then drops its sender and exits.
    pub fn begin_stop(&self) {
        self.stop.store(true, Ordering::Release);
        // A failed wake (never seen: an eventfd write) would leave the thread waiting for the
        // next socket event; say so rather than hang silently.
        if let Err(e) = self.waker.wake() {
            eprintln!("mtqpd: syslog receiver: cannot wake it to stop: {e}");
        }
    }

    /// Waits for the thread to end (after [`Receiver::begin_stop`], or once the channel's
    /// receiving end is gone).
    pub fn join(self) {
        if self.thread.join().is_err() {
            eprintln!("mtqpd: syslog receiver: the thread panicked");
        }
    }
}
