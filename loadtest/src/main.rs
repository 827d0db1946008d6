//! mtqp-load: the load driver and synthetic log generator for mtqpd.
//!
//! - `gen`: writes a synthetic MTA log (native or Postfix) with a realistic mix of outcomes and
//!   the (envid, secret) pairs to query it with; deterministic for a given `--seed`.

mod gen;
mod rng;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mtqp-load — load driver and synthetic logs for mtqpd.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a synthetic log and the secrets that track its messages.
    Gen(gen::GenArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Gen(args) => gen::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mtqp-load: {e}");
            ExitCode::FAILURE
        }
    }
}
