//! The `mtqpd` binary: parse the command line, hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    mtqpd::cli::run(mtqpd::cli::Cli::parse())
}
