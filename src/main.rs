//! The `mtqpd` binary: parse the command line (merging `serve --config FILE`), hand over to the
//! library.

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::CommandFactory;
use mtqpd::config::Error;

fn main() -> ExitCode {
    let parsed = mtqpd::cli::Cli::command()
        .try_get_matches()
        .map_err(Error::Usage)
        .and_then(|matches| mtqpd::config::cli_from_matches(&matches));
    match parsed {
        Ok(cli) => mtqpd::cli::run(cli),
        // A bad config file is a bad setting: one line and status 1, like those `run` reports.
        Err(Error::Config(e)) => {
            eprintln!("mtqpd: {e}");
            ExitCode::FAILURE
        }
        Err(Error::Usage(e))
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) =>
        {
            e.exit()
        }
        Err(Error::Usage(e)) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            e.exit()
        }
        Err(Error::Usage(e)) => {
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
