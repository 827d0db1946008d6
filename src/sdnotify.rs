//! Readiness for systemd's `Type=notify` (sd_notify(3)): when the service manager sets
//! `NOTIFY_SOCKET`, `serve` sends `READY=1` once ingest has caught up (TRACK then answers
//! from every log line there was at start-up), the gate once it listens, and both
//! `STOPPING=1` when asked to stop. The protocol is one datagram of `KEY=VALUE` lines to a
//! Unix socket, a path or, starting with `@`, an abstract name; a few lines of std, so no
//! crate.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;

/// The environment variable that names the socket.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Where notifications go.
#[derive(Debug, Clone)]
pub struct Notifier {
    socket: Arc<UnixDatagram>,
    to: SocketAddr,
    /// The socket as the environment named it, for messages.
    name: String,
}

impl Notifier {
    /// The socket `NOTIFY_SOCKET` names, None when it is not set. The variable is removed, so
    /// that no child (journalctl) takes the notifications for its own. Call it before any
    /// other thread starts: changing the environment is not thread-safe.
    pub fn from_env() -> Result<Option<Notifier>, String> {
        let Some(value) = std::env::var_os(NOTIFY_SOCKET) else {
            return Ok(None);
        };
        std::env::remove_var(NOTIFY_SOCKET);
        let name = value.to_string_lossy().into_owned();
        let bad = |why: String| format!("{NOTIFY_SOCKET}={name}: {why}");
        let to = match name.strip_prefix('@') {
            Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes()),
            None if name.starts_with('/') => SocketAddr::from_pathname(&value),
            None => return Err(bad("neither an absolute path nor an @abstract name".into())),
        }
        .map_err(|e| bad(e.to_string()))?;
        let socket = UnixDatagram::unbound().map_err(|e| bad(e.to_string()))?;
        Ok(Some(Notifier {
            socket: Arc::new(socket),
            to,
            name,
        }))
    }

    /// `READY=1`, with a status line for `systemctl status`.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// `STOPPING=1`: shutting down, as asked.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=shutting down");
    }

    /// Sends `message`; a failure is a warning: the service runs on, and the service manager
    /// will say that it never heard.
    fn send(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.to) {
            eprintln!("mtqpd: warning: cannot notify {}: {e}", self.name);
        }
    }
}

/// `text` without line ends, which would start a new `KEY=VALUE` line.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}
