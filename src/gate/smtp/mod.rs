//! SMTP as the gate reads it, without I/O: which verb a client line is ([`command`]), the
//! MAIL parameters and the MTRK splice ([`mail`]), the MTA's replies and the queue id in the
//! last one ([`reply`]), the EHLO keywords the gate passes on ([`ehlo`]), where message data
//! ends ([`data`]) and the PROXY v2 header that tells the MTA who the client is ([`proxy`]).
//!
//! Everything here works on borrowed bytes and is unit-tested apart from the event loop
//! (fuzzed by `fuzz/fuzz_targets/gate_smtp.rs`).

pub mod command;
pub mod data;
pub mod ehlo;
pub mod mail;
pub mod proxy;
pub mod reply;
