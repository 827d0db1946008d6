//! The command line (DESIGN.md, "Command line"): flags, their checks, and the dispatch to
//! [`crate::serve`], [`crate::demo`] and [`crate::client`]. Every bad setting ends here as one
//! line on stderr and a non-zero exit. `serve --config FILE` is merged in by [`crate::config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::index::record::Retention;
use crate::ingest::LogSource;
use crate::server::Limits;

/// mtqpd — a Message Tracking Query Protocol (RFC 3887) server for mail hubs.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MTQP from the tracking records found in MTA logs.
    Serve(ServeCommand),
    /// Serve a generated demo log on 127.0.0.1 and print TRACK lines to try.
    Demo(DemoArgs),
    /// Query an MTQP server for one message, named by an mtqp:// URI, and print its status.
    Track(crate::client::TrackArgs),
    /// Read logs once, offline, and print the messages they track and the lines they could not
    /// read, to check a hub's logs before deploying.
    IngestCheck(crate::check::CheckArgs),
}

/// What to answer for an unknown envid or a wrong secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Unknown {
    /// `-ERR/noinfo`.
    Noinfo,
    /// A tracking body whose Action is `opaque`.
    Opaque,
}

/// `mtqpd serve`: where the settings come from, and the settings.
#[derive(Debug, Clone, Args)]
pub struct ServeCommand {
    /// Read the settings from this TOML file (keys as the flags, `_` for `-`; see
    /// mtqpd.example.toml); a flag given here overrides the file, the file overrides the
    /// default. A bad file is one line on stderr and exit status 1.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The settings: the command line's, merged with `--config` FILE's by
    /// [`crate::config::cli_from_matches`].
    #[command(flatten)]
    pub args: ServeArgs,
}

/// `mtqpd serve` flags. Kept apart from `--config` because they are the settings themselves,
/// which [`crate::demo`] builds without any command line.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (repeatable; given here, replaces the config file's list).
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:1038")]
    pub listen: Vec<SocketAddr>,
    /// Event-loop threads [default: number of cores].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// A log to follow, FORMAT:PATH (repeatable; given here, replaces the config file's list).
    /// FORMAT: native, postfix, exim or sendmail; `mtqp:` native lines are recognised in every
    /// format.
    #[arg(long, value_name = "FORMAT:PATH")]
    pub log: Vec<LogSource>,
    /// Time zone of log timestamps that carry none (classic syslog, Exim without +ZZZZ): local,
    /// UTC, an offset like +01:00, or a zone name like Europe/Berlin.
    #[arg(long, value_name = "ZONE", default_value = "local")]
    pub log_timezone: String,
    /// Name in the greeting and the Reporting-MTA of answers [default: this host's name].
    #[arg(long)]
    pub hostname: Option<String>,
    /// Answer for an unknown envid or a wrong secret (both look the same).
    #[arg(long, value_enum, default_value = "noinfo")]
    pub unknown: Unknown,
    /// Keep a finished record this long after its last event (s, m, h, d, w; at least 1d).
    #[arg(long, value_name = "DURATION", default_value = "8d", value_parser = parse_duration)]
    pub retention: Duration,
    /// How long the MTA retries a deferred message (Will-Retry-Until when the log lacks it).
    #[arg(long, value_name = "DURATION", default_value = "5d", value_parser = parse_duration)]
    pub queue_lifetime: Duration,
    /// Close a connection silent this long (at least 10m, the RFC 3887 minimum).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Most open connections; more are told -TEMP and closed.
    #[arg(long, value_name = "N", default_value_t = 50_000)]
    pub max_connections: usize,
    /// A PEM certificate chain for STARTTLS (repeatable, each with a --tls-key; given here, the
    /// pairs replace the config file's `tls` list); the names it serves are its subjectAltName
    /// dNSNames.
    #[arg(long, value_name = "PEM")]
    pub tls_cert: Vec<PathBuf>,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) of the --tls-cert in the same position.
    #[arg(long, value_name = "PEM")]
    pub tls_key: Vec<PathBuf>,
    /// Answer TRACK only under TLS (-ERR/tls-required before STARTTLS).
    #[arg(long)]
    pub tls_required: bool,
    /// Keep log positions and tracking state here, so a restart loses nothing and reads no
    /// line twice [default: none, every log is read from its start].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// How often the state is saved while lines keep coming (and always at shutdown).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub snapshot_interval: Duration,
}

/// `mtqpd demo` flags.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:1038")]
    pub listen: SocketAddr,
}

/// Parses `90`, `90s`, `15m`, `12h`, `8d`, `2w`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 90s, 15m, 12h, 8d"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "'{s}': unknown unit '{unit}' (use s, m, h, d or w)"
            ))
        }
    };
    n.checked_mul(scale)
        .filter(|&secs| secs <= 100 * 365 * 86_400)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("'{s}' is longer than a century"))
}

impl ServeArgs {
    /// Checks the settings that clap cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.retention < Duration::from_secs(86_400) {
            return Err("--retention must be at least 1d (RFC 3885)".into());
        }
        if self.idle_timeout < Duration::from_secs(600) {
            return Err("--idle-timeout must be at least 10m (RFC 3887 section 2.5)".into());
        }
        if self.threads == Some(0) {
            return Err("--threads must be at least 1".into());
        }
        if self.max_connections == 0 {
            return Err("--max-connections must be at least 1".into());
        }
        if self.tls_cert.len() != self.tls_key.len() {
            return Err("--tls-cert and --tls-key must come in pairs".into());
        }
        if self.tls_required && self.tls_cert.is_empty() {
            return Err("--tls-required needs at least one --tls-cert/--tls-key pair".into());
        }
        if let Some(h) = &self.hostname {
            if h.is_empty() || !h.bytes().all(|c| c.is_ascii_graphic()) {
                return Err("--hostname must be printable ASCII without spaces".into());
            }
        }
        if let Some(dir) = &self.state_dir {
            crate::ingest::state::check_dir(dir)?;
        }
        if self.log_timezone != "local" {
            crate::ingest::timezone::Zone::parse(&self.log_timezone)
                .map_err(|e| format!("--log-timezone: {e}"))?;
        }
        crate::ingest::check_sources(&self.log)
    }

    /// The zone of log timestamps without one; a warning is printed when "local" cannot be
    /// determined.
    pub fn log_zone(&self) -> Result<crate::ingest::timezone::Zone, String> {
        use crate::ingest::timezone::Zone;
        if self.log_timezone == "local" {
            let (zone, warning) = Zone::local();
            if let Some(w) = warning {
                eprintln!("mtqpd: {w}");
            }
            return Ok(zone);
        }
        Zone::parse(&self.log_timezone).map_err(|e| format!("--log-timezone: {e}"))
    }

    /// The record lifetimes.
    pub fn retention(&self) -> Retention {
        Retention {
            after_last_event: self.retention.as_secs() as i64,
            queue_lifetime: self.queue_lifetime.as_secs() as i64,
        }
    }

    /// The connection limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections,
            idle_timeout: self.idle_timeout,
            ..Limits::default()
        }
    }

    /// The configured host name, or this machine's.
    pub fn hostname(&self) -> String {
        self.hostname.clone().unwrap_or_else(system_hostname)
    }
}

fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h.bytes().all(|c| c.is_ascii_graphic()))
        .unwrap_or_else(|| "localhost".into())
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    match crate::clock::pin_from_env() {
        Ok(None) => {}
        Ok(Some(at)) => {
            let mut shown = String::new();
            at.write_rfc3339_utc(&mut shown);
            eprintln!(
                "mtqpd: clock: {} starts the clock at {shown} (a test seam)",
                crate::clock::PIN_VARIABLE
            );
        }
        Err(e) => {
            eprintln!("mtqpd: {e}");
            return ExitCode::FAILURE;
        }
    }
    let result = match cli.command {
        Command::Serve(cmd) => crate::serve::serve(&cmd.args),
        Command::Demo(args) => crate::demo::run(&args),
        Command::IngestCheck(args) => crate::check::run(&args),
        // The client has exit statuses of its own (how the message fares), so it reports
        // its errors itself.
        Command::Track(args) => return crate::client::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mtqpd: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("8d"), Ok(Duration::from_secs(8 * 86_400)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
        assert!(parse_duration("36500d").is_ok());
        assert!(parse_duration("36501w").is_err());
    }
}
