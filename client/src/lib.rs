//! The MTQP client (RFC 3887): one session against a server named by an `mtqp://` URI —
//! greeting, STARTTLS, TRACK, QUIT — and the reading of its answer. `mtqpd track` is its
//! command line; the load driver uses its TLS settings.
//!
//! - [`session`]: greeting, STARTTLS, TRACK, QUIT — the order of the conversation.
//! - [`connection`]: the TCP connection, plain or TLS, with timeouts and a bounded buffer.
//! - [`tls`]: trusted roots and the rustls client configuration.
//! - [`summary`]: reading the tracking-status body, one line per recipient, and the outcome.
//!
//! The wire format (status lines, dot-stuffing, the URI) is `mtqp-protocol`'s, shared with the
//! server and the tests; nothing here is used by the server.

#![forbid(unsafe_code)]

pub mod connection;
pub mod session;
pub mod summary;
pub mod tls;

use std::process::ExitCode;

/// How the tracked message fares, as the exit status of a client (`mtqpd track`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every recipient delivered, relayed, transferred or expanded.
    Done,
    /// Some recipient still delayed.
    Delayed,
    /// Some recipient failed.
    Failed,
    /// No information: `-ERR/noinfo`, `opaque`, or no recipient.
    NoInfo,
    /// A protocol, network or TLS error.
    Error,
}

impl Exit {
    /// The process exit status.
    pub fn code(self) -> u8 {
        match self {
            Exit::Done => 0,
            Exit::Delayed => 10,
            Exit::Failed => 11,
            Exit::NoInfo => 12,
            Exit::Error => 13,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}
