//! The `mtqpd` binary: parse the command line (merging `serve --config FILE`), check the
//! settings once, and hand each subcommand to the library. Every bad setting ends here as one
//! line on stderr and a non-zero exit.

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::CommandFactory;
use mtqpd::cli::{Cli, Command};
use mtqpd::config::Error;
use mtqpd::settings::Settings;

/// mimalloc rather than glibc's malloc. Ingest allocates and frees a few small fields a log
/// line, most of which outlive many others (a held message's addresses, its record): glibc spent
/// a third of the ingest thread in `_int_malloc`, `malloc_consolidate` and `unlink_chunk`,
/// mimalloc's size-class pages under a tenth. The ingest bench (1 M messages, interleaved
/// runs) gives 330,000 lines/s against 200,000-318,000, and 662-668 bytes a tracked message
/// against 677 (README, performance table).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    die_with_any_thread();
    let parsed = Cli::command()
        .try_get_matches()
        .map_err(Error::Usage)
        .and_then(|matches| mtqpd::config::cli_from_matches(&matches));
    match parsed {
        Ok(cli) => run(cli),
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

/// A panic in any thread ends the whole process, with the panic's message and SIGABRT: a server
/// whose ingest thread or one of whose workers died would otherwise go on half-alive and exit
/// 0 at the next SIGTERM, and its supervisor would never restart it.
fn die_with_any_thread() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::abort();
    }));
}

/// Runs a parsed command line.
fn run(cli: Cli) -> ExitCode {
    match mtqpd::clock::pin_from_env() {
        Ok(None) => {}
        Ok(Some(at)) => {
            let mut shown = String::new();
            at.write_rfc3339_utc(&mut shown);
            eprintln!(
                "mtqpd: clock: {} starts the clock at {shown} (a test seam)",
                mtqpd::clock::PIN_VARIABLE
            );
        }
        Err(e) => {
            eprintln!("mtqpd: {e}");
            return ExitCode::FAILURE;
        }
    }
    let result = match cli.command {
        Command::Serve(cmd) => Settings::from_args(&cmd.args).and_then(|s| mtqpd::serve::serve(&s)),
        Command::Gate(cmd) => mtqpd::gate::settings::GateSettings::from_args(&cmd.args)
            .and_then(|s| mtqpd::gate::run(&s)),
        Command::Demo(args) => mtqpd::demo::run(&args),
        Command::IngestCheck(args) => mtqpd::check::run(&args),
        Command::Generate(args) => mtqpd::generate::run(&args),
        // The client has exit statuses of its own (how the message fares), so it reports
        // its errors itself.
        Command::Track(args) => return mtqpd::track::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mtqpd: {e}");
            ExitCode::FAILURE
        }
    }
}
