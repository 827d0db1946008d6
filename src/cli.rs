//! The command line: the subcommands and their flags as clap parses them. `serve --config FILE`
//! is merged in by [`crate::config`], and the result checked and typed once by
//! [`crate::settings`]; the binary dispatches (`src/main.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::clock::parse_duration;
use crate::ingest::hosts::ClusterHost;
use crate::ingest::receiver::{Cidr, SyslogListen};
use crate::ingest::LogSource;

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
    /// Accept SMTP before the MTA, so that senders can ask for tracking (RFC 3885 MTRK), and
    /// write the accept log `serve` reads (docs/deployment.md).
    Gate(crate::gate::settings::GateCommand),
    /// Query an MTQP server for one message, named by an mtqp:// URI, and print its status.
    Track(crate::track::TrackArgs),
    /// Read logs once, offline, and print the messages they track and the lines they could not
    /// read, to check a hub's logs before deploying.
    IngestCheck(crate::check::CheckArgs),
    /// Write the manual page or a shell's completion script to standard output, made from
    /// these definitions (for packagers: dist/build-deb.sh).
    #[command(hide = true)]
    Generate(crate::generate::GenerateArgs),
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
/// which [`crate::config`] merges a file into.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (repeatable; given here, replaces the config file's list).
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:1038")]
    pub listen: Vec<SocketAddr>,
    /// Event-loop threads [default: number of cores].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Once every listener is bound, give up root for this user: its uid, group and
    /// supplementary groups, with no capability left. Certificates, logs and the state
    /// directory are then opened as this user, as SIGHUP and log rotation will open them
    /// (docs/operations.md) [default: stay as started].
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// A log to follow, `FORMAT:PATH` or `FORMAT:journal[:UNIT]`, with `,host=NAME` (the host whose
    /// log it is) or `,host=*` (each line names its host) after it (repeatable; given here,
    /// replaces the config file's list). FORMAT: native, postfix, exim or sendmail.
    #[arg(long, value_name = "FORMAT:PATH")]
    pub log: Vec<LogSource>,
    /// Time zone of log timestamps that carry none (classic syslog, Exim without +ZZZZ): local,
    /// UTC, an offset like +01:00, or a zone name like Europe/Berlin.
    #[arg(long, value_name = "ZONE", default_value = "local")]
    pub log_timezone: String,
    /// A syslog program tag whose `mtqp:` lines in an MTA's log are trusted as native lines
    /// (repeatable; given here, replaces the config file's list). Every line of a native: log
    /// is trusted; an MTA's own lines never are. [default: mtqp and mtqp-milter in files and
    /// the journal; none from the syslog receiver, whose senders' local users choose tags]
    #[arg(long = "native-tag", value_name = "TAG")]
    pub native_tags: Option<Vec<String>>,
    /// A host of the mail cluster, `NAME=ADDR[:PORT]` (repeatable; given here, replaces the config
    /// file's list): NAME as its log lines name it, `ADDR[:PORT]` where it takes mail, so that a
    /// message another host relays there is followed on it (docs/cluster.md).
    #[arg(long = "cluster-host", value_name = "NAME=ADDR[:PORT]")]
    pub cluster_hosts: Vec<ClusterHost>,
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
    /// Close a connection that sends no complete command for this long (at least 10m, the RFC
    /// 3887 minimum; octets that complete no command do not count).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Close a new connection whose first command is not complete within this long.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub first_command_timeout: Duration,
    /// Close a connection whose TLS handshake is not done this long after STARTTLS.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub tls_handshake_timeout: Duration,
    /// Most open connections; more are told -TEMP and closed. The open-files limit is raised
    /// to its hard limit at start-up; a warning says when that allows fewer.
    #[arg(long, value_name = "N", default_value_t = 50_000)]
    pub max_connections: usize,
    /// Most open connections from one client address (IPv6: one /64); more are told -TEMP.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub max_connections_per_ip: usize,
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
    /// Receive syslog here: tcp:ADDR:PORT or tls:ADDR:PORT (RFC 6587 octet counting or LF
    /// framing; tls: RFC 5425 with the --tls-cert pairs) or udp:ADDR:PORT (repeatable; given
    /// here, replaces the config file's list) [default: none].
    #[arg(long, value_name = "PROTO:ADDR:PORT")]
    pub syslog_listen: Vec<SyslogListen>,
    /// A network whose hosts may send syslog, ADDR/LEN (repeatable; given here, replaces the
    /// config file's list). Anyone who can send can write log lines.
    #[arg(long, value_name = "CIDR", default_values_t = Cidr::LOOPBACK.map(|c| c.parse::<Cidr>().expect("loopback")))]
    pub syslog_allow: Vec<Cidr>,
    /// On tls: syslog listeners, require a client certificate signed by a CA in this PEM file;
    /// such a certificate admits its sender whatever its address.
    #[arg(long, value_name = "PEM")]
    pub syslog_client_ca: Option<PathBuf>,
    /// Serve Prometheus metrics at /metrics and a health check at /healthz on this address
    /// (plain HTTP, no authentication: keep it on loopback or a management network;
    /// docs/metrics.md) [default: none].
    #[arg(long, value_name = "ADDR:PORT")]
    pub admin_listen: Option<SocketAddr>,
    /// /healthz answers 503 when ingest lags its logs by more than this (and until it has
    /// first caught up).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub healthz_max_lag: Duration,
}

/// `mtqpd demo` flags.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:1038")]
    pub listen: SocketAddr,
}
