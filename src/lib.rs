//! mtqpd: a Message Tracking Query Protocol (RFC 3887) server for mail hubs.
//!
//! - [`protocol`]: the wire format, without I/O (the `mtqp-protocol` crate, `protocol/`).
//! - [`index`]: the sharded in-memory records and their RFC 3886 rendering.
//! - [`ingest`]: the thread that follows MTA logs and feeds the index.
//! - [`server`]: the thread-per-core event loops that answer clients.
//! - [`gate`]: `mtqpd gate`, the SMTP front end that accepts MTRK before the MTA and writes the
//!   accept log.
//! - [`stats`]: latency histograms and counters; [`admin`]: `--admin-listen`, their Prometheus
//!   metrics and `/healthz`.
//! - [`track`]: `mtqpd track`, the command line of the MTQP client (the `mtqp-client` crate,
//!   `client/`).
//! - [`cli`]: the command line as clap parses it; [`config`]: `serve --config FILE`, the
//!   settings as TOML, merged under the flags; [`settings`]: the settings of `serve`, checked
//!   and typed once.
//! - [`serve`], [`demo`] and [`check`] (`ingest-check`, an offline read of logs for
//!   operators): what the subcommands run.
//! - [`clock`]: the wall clock, its test seam, and durations.
//! - [`generate`]: `mtqpd generate` (hidden), the manual page and shell completions for
//!   packagers.
//! - [`privilege`]: `--user`, giving up root once the ports are bound; [`sdnotify`]: telling
//!   systemd that the service is ready; [`reload`]: SIGHUP (docs/operations.md).
//!
//! How the parts fit together is drawn in `docs/ARCHITECTURE.md`.

#![forbid(unsafe_code)]

pub use mtqp_protocol as protocol;

pub mod admin;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod gate;
pub mod generate;
pub mod index;
pub mod ingest;
pub mod privilege;
pub mod reload;
pub mod sdnotify;
pub mod serve;
pub mod server;
pub mod settings;
pub mod stats;
pub mod track;
