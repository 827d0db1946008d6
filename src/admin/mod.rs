//! The admin endpoint (`--admin-listen ADDR:PORT`, for `serve` and `gate`): Prometheus metrics
//! at `/metrics` ([`metrics`] renders the text format, [`serve`] and [`gate`] fill it) and a
//! health check at `/healthz`, over a deliberately small HTTP/1.x ([`http`]).
//!
//! It runs beside the event loops and never touches them: one thread accepts (blocking std
//! sockets) and hands each connection to one of [`HANDLERS`] threads through a queue of
//! [`QUEUED`]; a connection that finds the queue full is closed at once. Each connection gets
//! one request, a deadline and `Connection: close`, so a slow or hostile client holds one
//! handler for [`http::DEADLINE`] (and a second of lingering) at most, and the workers not
//! at all. What it reads, the
//! workers publish as single-writer relaxed counters ([`crate::stats::Counter`]): scraping
//! takes no lock a worker could wait on. The threads live as long as the process.

pub mod gate;
pub mod http;
pub mod metrics;
pub mod serve;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, TrySendError};

/// Threads that answer admin requests.
pub const HANDLERS: usize = 2;
/// Accepted admin connections that may wait for a handler; more are closed unanswered.
pub const QUEUED: usize = 8;
/// How long accepting pauses after a failed accept.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The answer to `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// 200 when true, 503 when false.
    pub ok: bool,
    /// One line saying why.
    pub reason: String,
}

/// What a process serves on its admin endpoint.
pub trait Pages: Send + Sync + 'static {
    /// Appends the `/metrics` page, in Prometheus text format 0.0.4.
    fn metrics(&self, out: &mut String);
    /// The `/healthz` verdict.
    fn health(&self) -> Health;
}

/// Binds the admin endpoint's address: apart from [`start`], so that it is bound, like every
/// listener, before `--user` gives up root.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr} (admin): {e}"))
}

/// Starts the admin threads on a listener [`bind`] bound; returns its address (port 0
/// resolved).
pub fn start(listener: TcpListener, pages: Arc<dyn Pages>) -> Result<SocketAddr, String> {
    let local = listener
        .local_addr()
        .map_err(|e| format!("admin listener: {e}"))?;
    let (tx, rx) = crossbeam_channel::bounded::<TcpStream>(QUEUED);
    for i in 0..HANDLERS {
        let (rx, pages) = (rx.clone(), Arc::clone(&pages));
        std::thread::Builder::new()
            .name(format!("mtqpd-admin-{i}"))
            .spawn(move || handle_all(&rx, &*pages))
            .map_err(|e| format!("cannot start admin thread: {e}"))?;
    }
    std::thread::Builder::new()
        .name("mtqpd-admin".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    // A full queue closes the connection by dropping it.
                    Ok(s) => {
                        if let Err(TrySendError::Disconnected(_)) = tx.try_send(s) {
                            return;
                        }
                    }
                    // The peer gone, or out of descriptors: a pause, so that a failure that
                    // lasts does not spin.
                    Err(_) => std::thread::sleep(ACCEPT_PAUSE),
                }
            }
        })
        .map_err(|e| format!("cannot start admin thread: {e}"))?;
    Ok(local)
}

fn handle_all(rx: &Receiver<TcpStream>, pages: &dyn Pages) {
    for mut stream in rx {
        http::serve_one(&mut stream, pages);
    }
}
