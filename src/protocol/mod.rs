//! The MTQP wire format (RFC 3887), and nothing else: command parsing, status lines, xtext,
//! dot-stuffing, secret decoding, the client-side response parser and the `mtqp://` URI.
//!
//! Nothing here touches a socket, a clock or the index; every function works on byte slices so
//! that the event loop, the tests and the load driver share one definition of the protocol.

pub mod command;
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
