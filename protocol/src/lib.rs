//! The MTQP wire format (RFC 3887), and nothing else: command parsing, status lines, xtext,
//! dot-stuffing, secret decoding, the client-side response parser, the `mtqp://` URI, and the
//! two forms of an instant (RFC 3339 in logs, RFC 5322 in answers).
//!
//! Nothing here touches a socket, a clock or a file; every function works on byte slices so that
//! the server (`mtqpd`, which re-exports this crate as `mtqpd::protocol`), the client, the tests
//! and the load driver share one definition of the protocol — and the load driver depends on
//! this crate, not on the server.

#![forbid(unsafe_code)]

pub mod command;
pub mod date;
pub mod dotstuff;
pub mod reply;
pub mod response;
pub mod secret;
pub mod uri;
pub mod xtext;

/// The longest command or response line, in octets before the CRLF (RFC 3887 section 2.2).
pub const MAX_LINE: usize = 998;

/// The longest unique-envid, in octets of its xtext form (RFC 3885, after RFC 3461 ENVID).
pub const MAX_ENVID: usize = 100;
