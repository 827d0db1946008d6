//! `mtqpd serve --config FILE` (README.md, "Serving a hub"): the same settings as the flags, as a
//! TOML file, merged into [`ServeArgs`] under the command line.
//!
//! It owns reading and checking the file and the precedence rule: a flag given on the command
//! line wins, else the file's value, else the flag's built-in default. Whether a flag was given is
//! asked of clap ([`ArgMatches::value_source`]), never inferred from the value, so that
//! `--unknown noinfo` overrides a file's `unknown = "opaque"` although `noinfo` is the default.
//! A repeatable flag given on the command line replaces the file's whole list.
//!
//! Every value goes through the flag's own parser (`clock::parse_duration`, `LogSource`'s and
//! `SocketAddr`'s `FromStr`, `Unknown`'s `ValueEnum`), even one a flag overrides, and the merged
//! settings through [`Settings::from_args`]. It must not add settings of its own: a key exists
//! because a flag does.
//!
//! Every problem with the file is one [`ConfigError`], printed as one line
//! `mtqpd: config FILE: …`; the binary then exits with status 1, as for every other bad setting
//! (2 stays reserved for clap's usage errors).

use std::fmt;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, ValueEnum};
use serde::Deserialize;
use toml::Spanned;

use crate::cli::{Cli, Command, ServeArgs, Unknown};
use crate::clock::parse_duration;
use crate::ingest::hosts::ClusterHost;
use crate::ingest::LogSource;
use crate::settings::Settings;

/// Largest config file read. A real one is a few KiB; the bound keeps `--config /dev/zero`
/// from eating memory before any error can be shown.
const MAX_FILE: u64 = 1 << 20;

/// Why a command line could not become a [`Cli`].
#[derive(Debug)]
pub enum Error {
    /// The command line itself is wrong; shown the way clap errors are (exit status 2).
    Usage(clap::Error),
    /// `--config` FILE is unreadable or wrong (exit status 1).
    Config(ConfigError),
}

/// A problem with a config file, displayed as one line `config FILE: …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file as given to `--config`.
    pub path: PathBuf,
    /// What is wrong, with the line and column when there is one; never contains a newline.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config {}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The file's keys: those of `mtqpd serve`'s flags with `_` for `-`, except that the
/// `--tls-cert`/`--tls-key` pairs are one array of tables `tls`. Everything is optional; a key
/// left out keeps the flag's default. Values that the flags parse from text stay text here (and
/// keep their position in the file) so that they go through the very same parser.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<Vec<Spanned<String>>>,
    threads: Option<usize>,
    user: Option<String>,
    log: Option<Vec<Spanned<String>>>,
    log_timezone: Option<String>,
    native_tags: Option<Vec<String>>,
    cluster_hosts: Option<Vec<Spanned<String>>>,
    hostname: Option<String>,
    unknown: Option<Spanned<String>>,
    retention: Option<Spanned<String>>,
    queue_lifetime: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
    first_command_timeout: Option<Spanned<String>>,
    tls_handshake_timeout: Option<Spanned<String>>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    tls: Option<Vec<TlsPair>>,
    tls_required: Option<bool>,
    state_dir: Option<PathBuf>,
    snapshot_interval: Option<Spanned<String>>,
    syslog_listen: Option<Vec<Spanned<String>>>,
    syslog_allow: Option<Vec<Spanned<String>>>,
    syslog_client_ca: Option<PathBuf>,
    admin_listen: Option<Spanned<String>>,
    healthz_max_lag: Option<Spanned<String>>,
    /// `mtqpd gate`'s table ([`crate::gate::settings`]), so that one file may set up both.
    #[serde(rename = "gate")]
    _gate: Option<toml::Table>,
}

/// One `--tls-cert`/`--tls-key` pair.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Builds the [`Cli`] from parsed command-line matches and, for `serve --config FILE`, merges
/// FILE's settings under the flags given on the command line (see the module doc).
pub fn cli_from_matches(matches: &ArgMatches) -> Result<Cli, Error> {
    let mut cli = Cli::from_arg_matches(matches)
        // As `Parser::try_parse` does, so that the message names the right command.
        .map_err(|e| Error::Usage(e.format(&mut Cli::command())))?;
    match (&mut cli.command, matches.subcommand()) {
        (Command::Serve(serve), Some(("serve", sub))) => {
            if let Some(path) = &serve.config {
                merge_file(path, sub, &mut serve.args).map_err(Error::Config)?;
            }
        }
        (Command::Gate(gate), Some(("gate", sub))) => {
            if let Some(path) = &gate.config {
                crate::gate::settings::merge_file(path, sub, &mut gate.args)
                    .map_err(Error::Config)?;
            }
        }
        _ => {}
    }
    Ok(cli)
}

/// Reads `path` and sets every setting it has that `matches` did not get from the command line.
/// `args` is what clap made of the command line, defaults included.
pub fn merge_file(
    path: &Path,
    matches: &ArgMatches,
    args: &mut ServeArgs,
) -> Result<(), ConfigError> {
    let fail = |message: String| ConfigError {
        path: path.to_path_buf(),
        message,
    };
    let text = read_bounded(path).map_err(fail)?;
    let flags_only = args.clone();
    merge_text(&text, matches, args).map_err(fail)?;
    // The merged settings are checked here, not only later by `serve`, to tell whose fault a
    // failure is: when the command line alone passes (or fails differently), the file's values
    // caused it. A failure the command line causes by itself is left to `serve` to report as it
    // always has.
    if let Err(e) = Settings::from_args(args) {
        if Settings::from_args(&flags_only).err().as_ref() != Some(&e) {
            return Err(fail(e));
        }
    }
    Ok(())
}

/// The file's text, or why it cannot be had.
pub(crate) fn read_bounded(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let mut text = String::new();
    file.take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if text.len() as u64 > MAX_FILE {
        return Err(format!("longer than {MAX_FILE} bytes; not a config file?"));
    }
    Ok(text)
}

/// Parses `text` as a config file and applies it to `args` under the command line.
fn merge_text(text: &str, matches: &ArgMatches, args: &mut ServeArgs) -> Result<(), String> {
    let file: File = toml::from_str(text).map_err(|e| {
        let message = one_line(e.message());
        match e.span() {
            Some(span) => format!("{}: {message}", position(text, span.start)),
            None => message,
        }
    })?;
    // A bad value is reported with its key and its place in the file.
    let bad = |key: &str, v: &Spanned<String>, why: String| {
        format!("{}: {key}: {why}", position(text, v.span().start))
    };
    let duration = |key: &str, v: Option<Spanned<String>>| {
        v.map(|v| parse_duration(v.get_ref()).map_err(|e| bad(key, &v, e)))
            .transpose()
    };

    // Every value is parsed, even one that a flag overrides, so that a broken file is found
    // now and not on the day the flag is dropped from the command line.
    let listen = match file.listen {
        // The flag cannot be given without a value; an empty list would listen nowhere.
        Some(list) if list.is_empty() => return Err("listen: needs at least one ADDR:PORT".into()),
        Some(list) => Some(
            list.iter()
                .map(|v| {
                    SocketAddr::from_str(v.get_ref()).map_err(|e| {
                        let why = format!("'{}' is not ADDR:PORT ({e})", v.get_ref());
                        bad("listen", v, why)
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    let log = file
        .log
        .map(|list| {
            list.iter()
                .map(|v| LogSource::from_str(v.get_ref()).map_err(|e| bad("log", v, e)))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let cluster_hosts = file
        .cluster_hosts
        .map(|list| {
            list.iter()
                .map(|v| ClusterHost::from_str(v.get_ref()).map_err(|e| bad("cluster_hosts", v, e)))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let unknown = file
        .unknown
        .map(|v| {
            // clap's own matching for the flag: exact, case-sensitive names.
            Unknown::from_str(v.get_ref(), false).map_err(|_| {
                let names: Vec<_> = Unknown::value_variants()
                    .iter()
                    .filter_map(|u| u.to_possible_value())
                    .map(|p| p.get_name().to_string())
                    .collect();
                let why = format!("'{}' is not one of {}", v.get_ref(), names.join(", "));
                bad("unknown", &v, why)
            })
        })
        .transpose()?;
    let retention = duration("retention", file.retention)?;
    let queue_lifetime = duration("queue_lifetime", file.queue_lifetime)?;
    let idle_timeout = duration("idle_timeout", file.idle_timeout)?;
    let first_command_timeout = duration("first_command_timeout", file.first_command_timeout)?;
    let tls_handshake_timeout = duration("tls_handshake_timeout", file.tls_handshake_timeout)?;
    let snapshot_interval = duration("snapshot_interval", file.snapshot_interval)?;
    let healthz_max_lag = duration("healthz_max_lag", file.healthz_max_lag)?;
    let admin_listen = file
        .admin_listen
        .map(|v| {
            SocketAddr::from_str(v.get_ref()).map_err(|e| {
                let why = format!("'{}' is not ADDR:PORT ({e})", v.get_ref());
                bad("admin_listen", &v, why)
            })
        })
        .transpose()?;
    let syslog_listen = parsed_list("syslog_listen", file.syslog_listen, text)?;
    // An empty list is allowed: with --syslog-client-ca, certificates alone admit senders.
    let syslog_allow = parsed_list("syslog_allow", file.syslog_allow, text)?;

    // Only a flag typed on the command line beats the file; a default does not.
    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    set(&mut args.listen, listen, given("listen"));
    set(&mut args.threads, file.threads.map(Some), given("threads"));
    set(&mut args.user, file.user.map(Some), given("user"));
    set(&mut args.log, log, given("log"));
    set(
        &mut args.log_timezone,
        file.log_timezone,
        given("log_timezone"),
    );
    set(
        &mut args.native_tags,
        file.native_tags.map(Some),
        given("native_tags"),
    );
    set(
        &mut args.cluster_hosts,
        cluster_hosts,
        given("cluster_hosts"),
    );
    set(
        &mut args.hostname,
        file.hostname.map(Some),
        given("hostname"),
    );
    set(&mut args.unknown, unknown, given("unknown"));
    set(&mut args.retention, retention, given("retention"));
    set(
        &mut args.queue_lifetime,
        queue_lifetime,
        given("queue_lifetime"),
    );
    set(&mut args.idle_timeout, idle_timeout, given("idle_timeout"));
    set(
        &mut args.first_command_timeout,
        first_command_timeout,
        given("first_command_timeout"),
    );
    set(
        &mut args.tls_handshake_timeout,
        tls_handshake_timeout,
        given("tls_handshake_timeout"),
    );
    set(
        &mut args.max_connections,
        file.max_connections,
        given("max_connections"),
    );
    set(
        &mut args.max_connections_per_ip,
        file.max_connections_per_ip,
        given("max_connections_per_ip"),
    );
    // The pairs are one setting: either flag on the command line replaces all of the file's.
    if let Some(pairs) = file.tls.filter(|_| !given("tls_cert") && !given("tls_key")) {
        (args.tls_cert, args.tls_key) = pairs.into_iter().map(|p| (p.cert, p.key)).unzip();
    }
    set(
        &mut args.tls_required,
        file.tls_required,
        given("tls_required"),
    );
    set(
        &mut args.state_dir,
        file.state_dir.map(Some),
        given("state_dir"),
    );
    set(
        &mut args.snapshot_interval,
        snapshot_interval,
        given("snapshot_interval"),
    );
    set(
        &mut args.syslog_listen,
        syslog_listen,
        given("syslog_listen"),
    );
    set(&mut args.syslog_allow, syslog_allow, given("syslog_allow"));
    set(
        &mut args.syslog_client_ca,
        file.syslog_client_ca.map(Some),
        given("syslog_client_ca"),
    );
    set(
        &mut args.admin_listen,
        admin_listen.map(Some),
        given("admin_listen"),
    );
    set(
        &mut args.healthz_max_lag,
        healthz_max_lag,
        given("healthz_max_lag"),
    );
    Ok(())
}

/// A list of values that the flag `key` parses with `T`'s `FromStr`, each error naming its
/// place in the file.
fn parsed_list<T: FromStr<Err = String>>(
    key: &str,
    list: Option<Vec<Spanned<String>>>,
    text: &str,
) -> Result<Option<Vec<T>>, String> {
    list.map(|list| {
        list.iter()
            .map(|v| {
                T::from_str(v.get_ref())
                    .map_err(|e| format!("{}: {key}: {e}", position(text, v.span().start)))
            })
            .collect()
    })
    .transpose()
}

/// Takes the file's value, if it has one and the command line did not give the flag.
pub(crate) fn set<T>(setting: &mut T, from_file: Option<T>, given_as_flag: bool) {
    if let (Some(value), false) = (from_file, given_as_flag) {
        *setting = value;
    }
}

/// `line L, column C` of byte offset `at`, counted as toml's own error messages count them:
/// both from 1, the column in characters.
pub(crate) fn position(text: &str, at: usize) -> String {
    let at = at.min(text.len());
    // Spans fall on character boundaries; should one not, count up to the boundary before it.
    let at = (0..=at)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..at].chars().count() + 1;
    format!("line {line}, column {column}")
}

/// A message on one line: the error must stay the single line on stderr that scripts expect.
pub(crate) fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// `mtqpd serve ARGS` with `FILE`'s text merged in.
    fn merged(text: &str, argv: &[&str]) -> Result<ServeArgs, String> {
        let matches = Cli::command()
            .try_get_matches_from(["mtqpd", "serve"].iter().chain(argv))
            .map_err(|e| e.to_string())?;
        let cli = Cli::from_arg_matches(&matches).map_err(|e| e.to_string())?;
        let (Command::Serve(mut serve), Some(("serve", sub))) = (cli.command, matches.subcommand())
        else {
            unreachable!("parsed serve")
        };
        merge_text(text, sub, &mut serve.args)?;
        Ok(serve.args)
    }

    #[test]
    fn every_flag_has_a_key() {
        let mut cmd = Cli::command();
        let serve = cmd.find_subcommand_mut("serve").expect("serve");
        // A TOML with every key once; deny_unknown_fields rejects a misspelt one.
        let every: Vec<String> = serve
            .get_arguments()
            .map(|a| a.get_id().as_str())
            .filter(|id| !matches!(*id, "config" | "help" | "tls_key"))
            .map(|id| match id {
                "tls_cert" => "tls = []".to_string(),
                "threads" | "max_connections" | "max_connections_per_ip" => format!("{id} = 1"),
                "tls_required" => format!("{id} = false"),
                "listen" | "log" | "native_tags" | "cluster_hosts" | "syslog_listen"
                | "syslog_allow" => format!("{id} = []"),
                _ => format!("{id} = \"x\""),
            })
            .collect();
        let parsed: Result<File, _> = toml::from_str(&every.join("\n"));
        assert!(parsed.is_ok(), "a flag without a key: {parsed:?}");
    }

    #[test]
    fn the_example_sets_every_key() {
        let file: File = toml::from_str(include_str!("../mtqpd.example.toml")).expect("parses");
        // No `..`: a new key fails to compile here until the example shows it.
        let File {
            listen: Some(_),
            threads: Some(_),
            user: Some(_),
            log: Some(_),
            log_timezone: Some(_),
            native_tags: Some(_),
            cluster_hosts: Some(_),
            hostname: Some(_),
            unknown: Some(_),
            retention: Some(_),
            queue_lifetime: Some(_),
            idle_timeout: Some(_),
            first_command_timeout: Some(_),
            tls_handshake_timeout: Some(_),
            max_connections: Some(_),
            max_connections_per_ip: Some(_),
            tls: Some(_),
            tls_required: Some(_),
            state_dir: Some(_),
            snapshot_interval: Some(_),
            syslog_listen: Some(_),
            syslog_allow: Some(_),
            syslog_client_ca: Some(_),
            admin_listen: Some(_),
            healthz_max_lag: Some(_),
            _gate: Some(_),
        } = file
        else {
            panic!("the example leaves a key out: {file:?}")
        };
    }

    #[test]
    fn file_beats_default_and_flag_beats_file() {
        let text = "unknown = \"opaque\"\nretention = \"9d\"\nlisten = [\"127.0.0.1:1\"]\n\
                    tls = [{ cert = \"c1\", key = \"k1\" }, { cert = \"c2\", key = \"k2\" }]\n\
                    tls_required = true\nthreads = 3\n";
        let a = merged(text, &[]).expect("merges");
        assert_eq!(a.unknown, Unknown::Opaque);
        assert_eq!(a.retention, Duration::from_secs(9 * 86_400));
        assert_eq!(a.listen, vec![SocketAddr::from(([127, 0, 0, 1], 1))]);
        assert_eq!(a.tls_cert, vec![PathBuf::from("c1"), PathBuf::from("c2")]);
        assert_eq!(a.tls_key, vec![PathBuf::from("k1"), PathBuf::from("k2")]);
        assert!(a.tls_required);
        assert_eq!(a.threads, Some(3));
        // Flags equal to their defaults still win.
        let b = merged(
            text,
            &[
                "--unknown",
                "noinfo",
                "--retention",
                "8d",
                "--listen",
                "0.0.0.0:1038",
                "--tls-cert",
                "c3",
                "--tls-key",
                "k3",
            ],
        )
        .expect("merges");
        assert_eq!(b.unknown, Unknown::Noinfo);
        assert_eq!(b.retention, Duration::from_secs(8 * 86_400));
        assert_eq!(b.listen, vec![SocketAddr::from(([0, 0, 0, 0], 1038))]);
        assert_eq!(b.tls_cert, vec![PathBuf::from("c3")]);
        assert_eq!(b.tls_key, vec![PathBuf::from("k3")]);
        assert_eq!(b.threads, Some(3));
        // An empty file changes nothing.
        let c = merged("", &[]).expect("merges");
        assert_eq!(c.unknown, Unknown::Noinfo);
        assert_eq!(c.threads, None);
    }

    #[test]
    fn errors_are_one_line_with_key_and_position() {
        let cases = [
            (
                "colour = \"blue\"\n",
                "line 1, column 1: unknown field `colour`",
            ),
            (
                "threads = \"4\"\n",
                "line 1, column 11: invalid type: string \"4\"",
            ),
            (
                "\nretention = \"8x\"\n",
                "line 2, column 13: retention: '8x': unknown unit",
            ),
            ("log = [\"mbox:/x\"]\n", "line 1, column 8: log: "),
            (
                "listen = [\"nowhere\"]\n",
                "line 1, column 11: listen: 'nowhere' is not",
            ),
            (
                "unknown = \"maybe\"\n",
                "unknown: 'maybe' is not one of noinfo, opaque",
            ),
            ("tls = [{ cert = \"c\" }]\n", "missing field `key`"),
            ("hostname = \"a\"\nhostname = \"b\"\n", "line 2, column 1: "),
            ("listen = []\n", "listen: needs at least one"),
            (
                "\nsyslog_listen = [\"tcp:127.0.0.1:514\", \"tcp:nowhere\"]\n",
                "line 2, column 39: syslog_listen: 'tcp:nowhere' is not tcp:ADDR:PORT",
            ),
            (
                "syslog_allow = [\"10.0.0.1/8\"]\n",
                "line 1, column 17: syslog_allow: '10.0.0.1/8' is not a network",
            ),
        ];
        for (text, want) in cases {
            let e = merged(text, &[]).expect_err(text);
            assert!(e.contains(want), "{text:?}: {e:?} lacks {want:?}");
            assert!(!e.contains('\n'), "{text:?}: {e:?}");
        }
        // A flag overriding a bad value does not hide it.
        let e = merged("retention = \"8x\"\n", &["--retention", "9d"]).expect_err("8x");
        assert!(e.contains("retention: '8x'"), "{e}");
    }

    #[test]
    fn positions_count_characters_from_one() {
        assert_eq!(position("", 0), "line 1, column 1");
        assert_eq!(position("ab\ncd", 4), "line 2, column 2");
        // Offset 2 is the space after the two-byte é: the second character.
        assert_eq!(position("é = 1", 2), "line 1, column 2");
        assert_eq!(position("ab", 99), "line 1, column 3");
    }
}
