//! `mtqpd gate`'s command line, its `[gate]` table in `--config FILE` (merged under the flags
//! as `serve`'s settings are: a flag typed on the command line wins, then the file, then the
//! default), and the checked settings the gate runs with.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, ValueEnum};
use serde::Deserialize;

use super::smtp::reply::QueueIdPattern;
use super::upstream::MtaAddr;
use crate::clock::parse_duration;
use crate::config::{one_line, position, read_bounded, set, ConfigError, TlsPair};
use crate::ingest::hosts::check_host_name;
use crate::privilege::RunAs;

/// How the MTA learns the client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProxyProtocol {
    /// The PROXY protocol version 2 header (Postfix `smtpd_upstream_proxy_protocol = haproxy`,
    /// Exim `hosts_proxy`).
    V2,
    /// None: the MTA sees the gate's address. Only safe when the MTA trusts that address for
    /// nothing (docs/deployment.md).
    None,
}

/// `mtqpd gate`: where the settings come from, and the settings.
#[derive(Debug, Clone, Args)]
pub struct GateCommand {
    /// Read the settings from this TOML file's `[gate]` table (keys as the flags, `_` for `-`;
    /// see mtqpd.example.toml); a flag given here overrides the file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub args: GateArgs,
}

/// `mtqpd gate` flags.
#[derive(Debug, Clone, Args)]
pub struct GateArgs {
    /// Address to accept SMTP on (repeatable).
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:25")]
    pub listen: Vec<SocketAddr>,
    /// The MTA's SMTP listener behind the gate (required): HOST:PORT, or unix:PATH for a
    /// Postfix smtpd on a UNIX-domain socket, the cheaper hop (docs/deployment.md).
    #[arg(long, value_name = "HOST:PORT|unix:PATH")]
    pub mta: Option<String>,
    /// How the MTA learns the client's address.
    #[arg(long, value_enum, default_value = "v2")]
    pub proxy_protocol: ProxyProtocol,
    /// Where the native lines of tracked messages go; `mtqpd serve --log native:PATH` reads it
    /// (required; created 0640, appended to).
    #[arg(long, value_name = "PATH")]
    pub accept_log: Option<PathBuf>,
    /// The gate's name in its own replies [default: this host's name].
    #[arg(long)]
    pub hostname: Option<String>,
    /// The host name the MTA's log lines carry, written as `host=` on every native line so
    /// that a cluster's `mtqpd serve` puts the queue id on that host [default: none: the
    /// accept log's lines belong to the host whose log `serve` reads it as].
    #[arg(long, value_name = "NAME")]
    pub mta_host: Option<String>,
    /// A PEM certificate chain for STARTTLS (repeatable, each with a --tls-key); chosen by the
    /// client's SNI, the first when none fits.
    #[arg(long, value_name = "PEM")]
    pub tls_cert: Vec<PathBuf>,
    /// The PEM private key of the --tls-cert in the same position.
    #[arg(long, value_name = "PEM")]
    pub tls_key: Vec<PathBuf>,
    /// Event-loop threads [default: half the cores, at least one: the MTA on the same host
    /// needs the others, and a relaying loop costs less a message the more sessions it holds;
    /// docs/deployment.md].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Once every listener is bound, give up root for this user: its uid, group and
    /// supplementary groups, with no capability left. The certificates (re-read at SIGHUP) and
    /// the accept log are then opened as this user (docs/operations.md) [default: stay as
    /// started].
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Most sessions at once; more are told 421.
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    pub max_sessions: usize,
    /// Most sessions at once from one client address (IPv6: one /64); more are told 421.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub max_sessions_per_ip: usize,
    /// Where the queue id is in the MTA's reply to a message's data, for an MTA other than
    /// Postfix, Exim and sendmail (repeatable; tried after theirs): the reply's text after its
    /// code and enhanced status, with {id} for the id, e.g. "queued as {id}".
    #[arg(long, value_name = "PATTERN")]
    pub queue_id_pattern: Vec<QueueIdPattern>,
    /// After SIGTERM, how long sessions may go on before they are told 421 (at most 10s).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Serve Prometheus metrics at /metrics (and /healthz) on this address (plain HTTP, no
    /// authentication: keep it on loopback; docs/metrics.md) [default: none].
    #[arg(long, value_name = "ADDR:PORT")]
    pub admin_listen: Option<SocketAddr>,
}

/// What `mtqpd gate` runs with, checked.
#[derive(Debug, Clone)]
pub struct GateSettings {
    pub listen: Vec<SocketAddr>,
    pub mta: MtaAddr,
    pub proxy_v2: bool,
    pub accept_log: PathBuf,
    pub hostname: String,
    pub mta_host: Option<String>,
    pub tls: Vec<(PathBuf, PathBuf)>,
    pub threads: usize,
    /// `--user`: who the gate becomes once its listeners are bound.
    pub user: Option<RunAs>,
    pub max_sessions: usize,
    pub max_sessions_per_ip: usize,
    /// The built-in patterns, then the configured ones.
    pub queue_id_patterns: Vec<QueueIdPattern>,
    pub drain_timeout: Duration,
    /// `--admin-listen`: where /metrics and /healthz are served; None: nowhere.
    pub admin_listen: Option<SocketAddr>,
}

impl GateSettings {
    /// Checks and converts the flags (with the config file merged in).
    pub fn from_args(args: &GateArgs) -> Result<GateSettings, String> {
        let mta = args
            .mta
            .as_deref()
            .ok_or("--mta HOST:PORT is required (the MTA's SMTP listener behind the gate)")?;
        let mta = MtaAddr::parse(mta)?;
        let accept_log = args
            .accept_log
            .clone()
            .ok_or("--accept-log PATH is required (the file mtqpd serve reads as native:PATH)")?;
        if args.threads == Some(0) || args.max_sessions == 0 || args.max_sessions_per_ip == 0 {
            return Err(
                "--threads, --max-sessions and --max-sessions-per-ip must be at least 1".into(),
            );
        }
        if args.tls_cert.len() != args.tls_key.len() {
            return Err("--tls-cert and --tls-key must come in pairs".into());
        }
        if args.drain_timeout > Duration::from_secs(10) {
            return Err("--drain-timeout must be at most 10s".into());
        }
        let hostname = crate::settings::hostname_or_system(args.hostname.as_deref())?;
        if let Some(h) = &args.mta_host {
            check_host_name(h).map_err(|e| format!("--mta-host {e}"))?;
        }
        let user = args.user.as_deref().map(RunAs::lookup).transpose()?;
        let mut queue_id_patterns = QueueIdPattern::built_in();
        queue_id_patterns.extend(args.queue_id_pattern.iter().cloned());
        Ok(GateSettings {
            listen: args.listen.clone(),
            mta,
            proxy_v2: args.proxy_protocol == ProxyProtocol::V2,
            accept_log,
            hostname,
            mta_host: args.mta_host.clone(),
            tls: args
                .tls_cert
                .iter()
                .cloned()
                .zip(args.tls_key.iter().cloned())
                .collect(),
            threads: args
                .threads
                .unwrap_or_else(|| default_threads(std::thread::available_parallelism().ok())),
            user,
            max_sessions: args.max_sessions,
            max_sessions_per_ip: args.max_sessions_per_ip,
            queue_id_patterns,
            drain_timeout: args.drain_timeout,
            admin_listen: args.admin_listen,
        })
    }
}

/// `--threads` when not given: half the cores, at least one. The gate runs beside its MTA, whose
/// work a message is several times the gate's (about 2.4 ms of CPU against 0.3 on the benchmark
/// machine), so the MTA wants the cores more; and a loop relaying more sessions gets more
/// events a wake-up: on 2 cores at 10 sessions one loop took 14% less CPU a message than two,
/// and the throughput through the gate rose from 0.86 to 0.94 of Postfix's direct (medians of
/// 10 interleaved runs). Under TLS (the gate's handshakes replace the MTA's) half the cores is
/// still as much as the MTA keeps.
fn default_threads(cores: Option<std::num::NonZeroUsize>) -> usize {
    cores.map_or(1, |n| (n.get() / 2).max(1))
}

/// The config file as the gate reads it: its `[gate]` table; `serve`'s keys are not its
/// concern.
#[derive(Debug, Default, Deserialize)]
struct File {
    #[serde(default)]
    gate: GateTable,
}

/// The `[gate]` table: the flags' names with `_` for `-`; the certificate pairs are one array
/// of tables `tls`, as in `serve`'s settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GateTable {
    listen: Option<Vec<String>>,
    mta: Option<String>,
    proxy_protocol: Option<String>,
    accept_log: Option<PathBuf>,
    hostname: Option<String>,
    mta_host: Option<String>,
    tls: Option<Vec<TlsPair>>,
    threads: Option<usize>,
    user: Option<String>,
    max_sessions: Option<usize>,
    max_sessions_per_ip: Option<usize>,
    queue_id_pattern: Option<Vec<String>>,
    drain_timeout: Option<String>,
    admin_listen: Option<String>,
}

/// Every value of a list key parsed as its flag parses it.
fn each<T: FromStr>(key: &str, list: Option<Vec<String>>) -> Result<Option<Vec<T>>, String>
where
    T::Err: std::fmt::Display,
{
    list.map(|l| {
        l.iter()
            .map(|v| v.parse().map_err(|e| format!("gate.{key}: '{v}': {e}")))
            .collect()
    })
    .transpose()
}

/// Reads `path` and sets every `[gate]` setting it has that the command line did not give.
pub fn merge_file(
    path: &Path,
    matches: &ArgMatches,
    args: &mut GateArgs,
) -> Result<(), ConfigError> {
    let fail = |message: String| ConfigError {
        path: path.to_path_buf(),
        message,
    };
    let text = read_bounded(path).map_err(fail)?;
    let file: File = toml::from_str(&text).map_err(|e| {
        let message = one_line(e.message());
        fail(match e.span() {
            Some(span) => format!("{}: {message}", position(&text, span.start)),
            None => message,
        })
    })?;
    let t = file.gate;
    let listen = each::<SocketAddr>("listen", t.listen).map_err(fail)?;
    if listen.as_ref().is_some_and(Vec::is_empty) {
        return Err(fail("gate.listen: needs at least one ADDR:PORT".into()));
    }
    let patterns = each::<QueueIdPattern>("queue_id_pattern", t.queue_id_pattern).map_err(fail)?;
    let proxy = t
        .proxy_protocol
        .map(|v| {
            <ProxyProtocol as ValueEnum>::from_str(&v, false)
                .map_err(|_| fail(format!("gate.proxy_protocol: '{v}' is not one of v2, none")))
        })
        .transpose()?;
    let drain = t
        .drain_timeout
        .map(|v| parse_duration(&v).map_err(|e| fail(format!("gate.drain_timeout: {e}"))))
        .transpose()?;
    let admin = t
        .admin_listen
        .map(|v| {
            v.parse::<SocketAddr>()
                .map_err(|e| fail(format!("gate.admin_listen: '{v}': {e}")))
        })
        .transpose()?;

    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    set(&mut args.listen, listen, given("listen"));
    set(&mut args.mta, t.mta.map(Some), given("mta"));
    set(&mut args.proxy_protocol, proxy, given("proxy_protocol"));
    set(
        &mut args.accept_log,
        t.accept_log.map(Some),
        given("accept_log"),
    );
    set(&mut args.hostname, t.hostname.map(Some), given("hostname"));
    set(&mut args.mta_host, t.mta_host.map(Some), given("mta_host"));
    if let Some(pairs) = t.tls.filter(|_| !given("tls_cert") && !given("tls_key")) {
        (args.tls_cert, args.tls_key) = pairs.into_iter().map(|p| (p.cert, p.key)).unzip();
    }
    set(&mut args.threads, t.threads.map(Some), given("threads"));
    set(&mut args.user, t.user.map(Some), given("user"));
    set(
        &mut args.max_sessions,
        t.max_sessions,
        given("max_sessions"),
    );
    set(
        &mut args.max_sessions_per_ip,
        t.max_sessions_per_ip,
        given("max_sessions_per_ip"),
    );
    set(
        &mut args.queue_id_pattern,
        patterns,
        given("queue_id_pattern"),
    );
    set(&mut args.drain_timeout, drain, given("drain_timeout"));
    set(
        &mut args.admin_listen,
        admin.map(Some),
        given("admin_listen"),
    );
    GateSettings::from_args(args).map_err(fail)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::CommandFactory;

    #[test]
    fn every_flag_has_a_key_and_the_example_sets_every_key() {
        let file: File = toml::from_str(include_str!("../../mtqpd.example.toml")).expect("parses");
        // No `..`: a new key fails to compile here until the example shows it.
        let GateTable {
            listen: Some(_),
            mta: Some(_),
            proxy_protocol: Some(_),
            accept_log: Some(_),
            hostname: Some(_),
            mta_host: Some(_),
            tls: Some(_),
            threads: Some(_),
            user: Some(_),
            max_sessions: Some(_),
            max_sessions_per_ip: Some(_),
            queue_id_pattern: Some(_),
            drain_timeout: Some(_),
            admin_listen: Some(_),
        } = file.gate
        else {
            panic!("the example leaves a [gate] key out: {:?}", file.gate)
        };
        let cli = Cli::command();
        let gate = cli.find_subcommand("gate").expect("gate subcommand");
        let keys: Vec<String> = gate
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .filter(|id| !matches!(id.as_str(), "config" | "help" | "tls_key"))
            .map(|id| match id.as_str() {
                "tls_cert" => "tls = []".to_string(),
                "threads" | "max_sessions" | "max_sessions_per_ip" => format!("{id} = 1"),
                "listen" | "queue_id_pattern" => format!("{id} = []"),
                _ => format!("{id} = \"x\""),
            })
            .collect();
        let parsed: Result<File, _> = toml::from_str(&format!("[gate]\n{}", keys.join("\n")));
        assert!(parsed.is_ok(), "a flag without a key: {parsed:?}");
    }

    fn merged(text: &str, argv: &[&str]) -> Result<GateArgs, String> {
        let dir = std::env::temp_dir().join(format!(
            "mtqpd-gate-config-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::write(&dir, text).unwrap();
        let matches = Cli::command()
            .try_get_matches_from(["mtqpd", "gate"].iter().chain(argv))
            .unwrap();
        let sub = matches.subcommand_matches("gate").unwrap();
        let mut args = <GateArgs as clap::FromArgMatches>::from_arg_matches(sub).unwrap();
        let result = merge_file(&dir, sub, &mut args).map_err(|e| e.message);
        std::fs::remove_file(&dir).unwrap();
        result.map(|()| args)
    }

    #[test]
    fn flags_beat_the_table_and_serve_keys_are_ignored() {
        let text = "listen = [\"0.0.0.0:1038\"]\n[gate]\nmta = \"127.0.0.1:10025\"\n\
                    accept_log = \"/tmp/a\"\nmax_sessions = 7\nproxy_protocol = \"none\"\n";
        let args = merged(text, &["--max-sessions", "9"]).unwrap();
        assert_eq!(args.max_sessions, 9);
        assert_eq!(args.mta.as_deref(), Some("127.0.0.1:10025"));
        assert_eq!(args.proxy_protocol, ProxyProtocol::None);
        assert_eq!(
            args.listen,
            vec!["0.0.0.0:25".parse::<SocketAddr>().unwrap()]
        );
    }

    #[test]
    fn the_default_threads_are_half_the_cores() {
        let cores = |n| std::num::NonZeroUsize::new(n);
        assert_eq!(default_threads(None), 1);
        assert_eq!(default_threads(cores(1)), 1);
        assert_eq!(default_threads(cores(2)), 1);
        assert_eq!(default_threads(cores(3)), 1);
        assert_eq!(default_threads(cores(16)), 8);
    }

    #[test]
    fn the_mta_may_be_a_unix_socket() {
        let text = "[gate]\nmta = \"unix:/var/spool/postfix/public/mtqpd-smtpd\"\n\
                    accept_log = \"/tmp/a\"\nhostname = \"gate.test\"\n";
        let settings = GateSettings::from_args(&merged(text, &[]).unwrap()).unwrap();
        assert_eq!(
            settings.mta,
            MtaAddr::Unix("/var/spool/postfix/public/mtqpd-smtpd".into())
        );
        // The file is checked whole once merged, flags included.
        let e = merged(text, &["--mta", "unix:smtpd"]).unwrap_err();
        assert_eq!(e, "--mta unix:smtpd: the socket's path must be absolute");
    }

    #[test]
    fn bad_values_are_one_line_naming_the_key() {
        let base = "[gate]\nmta = \"127.0.0.1:1\"\naccept_log = \"/tmp/a\"\n";
        for (extra, want) in [
            (
                "proxy_protocol = \"v1\"",
                "gate.proxy_protocol: 'v1' is not one of v2, none",
            ),
            (
                "queue_id_pattern = [\"x\"]",
                "gate.queue_id_pattern: 'x': 'x' must hold {id}",
            ),
            (
                "drain_timeout = \"11s\"",
                "--drain-timeout must be at most 10s",
            ),
            ("listen = []", "gate.listen: needs at least one ADDR:PORT"),
            ("bogus = 1", "unknown field `bogus`"),
        ] {
            let e = merged(&format!("{base}{extra}\n"), &[]).unwrap_err();
            assert!(e.contains(want), "{extra}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
        let e = merged("[gate]\naccept_log = \"/tmp/a\"\n", &[]).unwrap_err();
        assert!(e.contains("--mta HOST:PORT is required"), "{e}");
    }
}
