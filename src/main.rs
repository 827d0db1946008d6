//! The `mtqpd` binary: parse the command line, hand over to the library.

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

fn main() -> ExitCode {
    match mtqpd::cli::Cli::try_parse() {
        Ok(cli) => mtqpd::cli::run(cli),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        Err(e) => {
            // One line, as for every other bad setting; --help has the rest.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid command line");
            eprintln!(
                "mtqpd: {} (see mtqpd --help)",
                first.trim_start_matches("error: ")
            );
            ExitCode::from(2)
        }
    }
}
