//! mtqp-load: the load driver and synthetic log generator for mtqpd.
//!
//! - `gen`: writes a synthetic MTA log (native or Postfix) with a realistic mix of outcomes and
//!   the (envid, secret) pairs to query it with; deterministic for a given `--seed`.
//! - `run`: drives a server with an open-loop schedule (wrk2's coordinated-omission
//!   correction), pipelined connections over threads (memtier's shape), checks every answer
//!   and reports latency from the scheduled and the actual send time.
//! - `send`: sends a log to a syslog receiver over TCP, as fast as it takes it.

mod check;
mod conn;
mod gen;
mod hgrm;
mod report;
mod rng;
mod run;
mod schedule;
mod send;
mod sys;
mod worker;
mod workload;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mtqp-load — load driver and synthetic logs for mtqpd.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once; boxing the larger variant would save nothing worth the noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Write a synthetic log and the secrets that track its messages.
    Gen(gen::GenArgs),
    /// Load a server with TRACK (and COMMENT) requests on an open-loop schedule, check every
    /// answer and report throughput and latency. Exit status: 0 every answer right, 1 some
    /// answers wrong or missing, 2 the run could not start.
    Run(run::RunArgs),
    /// Send a log to `mtqpd serve --syslog-listen tcp:…` as octet-counted syslog messages, as
    /// fast as the receiver takes them, and report the rate.
    Send(send::SendArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Gen(args) => match gen::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mtqp-load: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Send(args) => match send::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mtqp-load: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => match run::run(&args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("mtqp-load: {e}");
                ExitCode::from(2)
            }
        },
    }
}
