//! The settings of `mtqpd serve`, typed and checked: made once from the command line (merged
//! with `--config FILE`) by [`Settings::from_args`], or built directly by `mtqpd demo`.
//! Everything that can be wrong with a setting is found here, as one line naming the flag;
//! nothing downstream parses a setting again.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{ServeArgs, Unknown};
use crate::index::message::Retention;
use crate::ingest::hosts::ClusterHost;
use crate::ingest::native::NativeTags;
use crate::ingest::receiver::{Cidr, SyslogListen, Transport};
use crate::ingest::timezone::Zone;
use crate::ingest::LogSource;
use crate::privilege::RunAs;
use crate::server::Limits;

/// The syslog receiver's settings ([`crate::ingest::receiver::ReceiverConfig::new`] makes
/// the receiver's configuration of them).
#[derive(Debug, Clone, Default)]
pub struct SyslogSettings {
    /// Empty: no receiver.
    pub listen: Vec<SyslogListen>,
    pub allow: Vec<Cidr>,
    /// Required client certificates on `tls:` listeners are signed by a CA in this file.
    pub client_ca: Option<PathBuf>,
}

/// What `mtqpd serve` runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: Vec<SocketAddr>,
    /// Event-loop threads.
    pub threads: usize,
    /// `--user`: who the process becomes once the listeners are bound.
    pub user: Option<RunAs>,
    pub logs: Vec<LogSource>,
    /// The zone of log timestamps that carry none.
    pub log_zone: Zone,
    /// The program tags whose lines in an MTA's log may be native lines.
    pub native_tags: NativeTags,
    /// The same for the syslog receiver's lines: only the tags given (none by default).
    pub stream_native_tags: NativeTags,
    /// `--cluster-host`: where the other hosts of the cluster take mail.
    pub cluster_hosts: Vec<ClusterHost>,
    /// The greeting's name and every answer's Reporting-MTA.
    pub hostname: String,
    pub unknown: Unknown,
    pub retention: Retention,
    pub limits: Limits,
    /// Certificate chain and key files, in pairs.
    pub tls: Vec<(PathBuf, PathBuf)>,
    pub tls_required: bool,
    pub state_dir: Option<PathBuf>,
    pub snapshot_interval: Duration,
    pub syslog: SyslogSettings,
    /// `--admin-listen`: where /metrics and /healthz are served; None: nowhere.
    pub admin_listen: Option<SocketAddr>,
    /// `--healthz-max-lag`.
    pub healthz_max_lag: Duration,
    /// Said on stderr as the server starts (a local time zone that could not be determined).
    pub warnings: Vec<String>,
}

impl Settings {
    /// Checks and converts the flags (and the config file merged into them) in one pass.
    pub fn from_args(args: &ServeArgs) -> Result<Settings, String> {
        if args.retention < Duration::from_secs(86_400) {
            return Err("--retention must be at least 1d (RFC 3885)".into());
        }
        if args.idle_timeout < Duration::from_secs(600) {
            return Err("--idle-timeout must be at least 10m (RFC 3887 section 2.5)".into());
        }
        if args.threads == Some(0) {
            return Err("--threads must be at least 1".into());
        }
        if args.max_connections == 0 {
            return Err("--max-connections must be at least 1".into());
        }
        if args.max_connections_per_ip == 0 {
            return Err("--max-connections-per-ip must be at least 1".into());
        }
        if args.first_command_timeout < Duration::from_secs(1)
            || args.tls_handshake_timeout < Duration::from_secs(1)
        {
            return Err(
                "--first-command-timeout and --tls-handshake-timeout must be at least 1s".into(),
            );
        }
        if args.tls_cert.len() != args.tls_key.len() {
            return Err("--tls-cert and --tls-key must come in pairs".into());
        }
        if args.tls_required && args.tls_cert.is_empty() {
            return Err("--tls-required needs at least one --tls-cert/--tls-key pair".into());
        }
        let syslog = syslog_settings(args)?;
        let hostname = hostname_or_system(args.hostname.as_deref())?;
        let user = args.user.as_deref().map(RunAs::lookup).transpose()?;
        // With --user the directory is checked once the process is that user (serve.rs):
        // checked as root, the user's own directory would belong to "another user".
        if let (Some(dir), None) = (&args.state_dir, &user) {
            crate::ingest::state::check_dir(dir)?;
        }
        let (log_zone, zone_warning) =
            Zone::from_setting(&args.log_timezone).map_err(|e| format!("--log-timezone: {e}"))?;
        crate::ingest::check_sources(&args.log)?;
        let given_tags = args.native_tags.as_deref();
        if let Some(bad) = given_tags
            .into_iter()
            .flatten()
            .find(|t| !is_program_tag(t))
        {
            return Err(format!(
                "--native-tag: '{bad}' is not a syslog program tag (printable, no space, ':' or '[')"
            ));
        }
        Ok(Settings {
            listen: args.listen.clone(),
            threads: args
                .threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)),
            user,
            logs: args.log.clone(),
            log_zone,
            native_tags: given_tags.map_or_else(NativeTags::default, NativeTags::new),
            stream_native_tags: NativeTags::new(given_tags.unwrap_or_default()),
            cluster_hosts: args.cluster_hosts.clone(),
            hostname,
            unknown: args.unknown,
            retention: Retention {
                after_last_event: args.retention.as_secs() as i64,
                queue_lifetime: args.queue_lifetime.as_secs() as i64,
            },
            limits: Limits {
                max_connections: args.max_connections,
                max_connections_per_ip: args.max_connections_per_ip,
                idle_timeout: args.idle_timeout,
                first_command_timeout: args.first_command_timeout,
                tls_handshake_timeout: args.tls_handshake_timeout,
                ..Limits::default()
            },
            tls: args
                .tls_cert
                .iter()
                .cloned()
                .zip(args.tls_key.iter().cloned())
                .collect(),
            tls_required: args.tls_required,
            state_dir: args.state_dir.clone(),
            snapshot_interval: args.snapshot_interval,
            syslog,
            admin_listen: args.admin_listen,
            healthz_max_lag: args.healthz_max_lag,
            warnings: zone_warning.into_iter().collect(),
        })
    }
}

/// The receiver's flags, checked against each other and against `--tls-cert`.
fn syslog_settings(args: &ServeArgs) -> Result<SyslogSettings, String> {
    let tls_listener = args
        .syslog_listen
        .iter()
        .find(|l| l.transport == Transport::Tls);
    if let (Some(l), true) = (tls_listener, args.tls_cert.is_empty()) {
        return Err(format!(
            "--syslog-listen {l} needs a --tls-cert/--tls-key pair (the same as STARTTLS's)"
        ));
    }
    if args.syslog_client_ca.is_some() && tls_listener.is_none() {
        return Err("--syslog-client-ca needs a --syslog-listen tls:ADDR:PORT".into());
    }
    // TCP and TLS share the port space; UDP has its own. A port bound twice fails at bind
    // anyway, but with a less clear message.
    let stream = |l: &SyslogListen| l.transport != Transport::Udp;
    let specs = &args.syslog_listen;
    let twice = (1..specs.len()).find(|&i| {
        specs[..i]
            .iter()
            // Port 0 asks the kernel for a free port: never the same twice.
            .any(|m| {
                m.addr == specs[i].addr && m.addr.port() != 0 && stream(m) == stream(&specs[i])
            })
    });
    if let Some(i) = twice {
        return Err(format!(
            "--syslog-listen {}: that address is given twice",
            specs[i]
        ));
    }
    Ok(SyslogSettings {
        listen: args.syslog_listen.clone(),
        allow: args.syslog_allow.clone(),
        client_ca: args.syslog_client_ca.clone(),
    })
}

/// A tag as syslog writes it before `[pid]:` or `:`.
fn is_program_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag
            .bytes()
            .all(|c| c.is_ascii_graphic() && c != b':' && c != b'[' && c != b']')
}

/// `--hostname` as given (printable ASCII without spaces), or else the system's host name.
pub(crate) fn hostname_or_system(given: Option<&str>) -> Result<String, String> {
    match given {
        Some(h) if h.is_empty() || !h.bytes().all(|c| c.is_ascii_graphic()) => {
            Err("--hostname must be printable ASCII without spaces".into())
        }
        Some(h) => Ok(h.to_string()),
        None => Ok(system_hostname()),
    }
}

pub(crate) fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h.bytes().all(|c| c.is_ascii_graphic()))
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn syslog(argv: &[&str]) -> Result<SyslogSettings, String> {
        let cli = Cli::try_parse_from(["mtqpd", "serve"].iter().chain(argv))
            .map_err(|e| e.to_string())?;
        let Command::Serve(serve) = cli.command else {
            unreachable!("serve")
        };
        syslog_settings(&serve.args)
    }

    #[test]
    fn syslog_flags() {
        let s = syslog(&[]).unwrap();
        assert!(s.listen.is_empty() && s.client_ca.is_none());
        let allow: Vec<String> = s.allow.iter().map(ToString::to_string).collect();
        assert_eq!(allow, ["127.0.0.0/8", "::1/128"]);
        let s = syslog(&[
            "--syslog-listen",
            "tcp:127.0.0.1:514",
            "--syslog-listen",
            "udp:127.0.0.1:514",
            "--syslog-allow",
            "10.0.0.0/8",
        ])
        .unwrap();
        assert_eq!(s.listen.len(), 2);
        assert_eq!(s.allow.len(), 1);
        let tls = ["--syslog-listen", "tls:[::1]:6514"];
        let e = syslog(&tls).unwrap_err();
        assert_eq!(
            e,
            "--syslog-listen tls:[::1]:6514 needs a --tls-cert/--tls-key pair (the same as STARTTLS's)"
        );
        let e = syslog(&["--syslog-client-ca", "ca.pem"]).unwrap_err();
        assert_eq!(
            e,
            "--syslog-client-ca needs a --syslog-listen tls:ADDR:PORT"
        );
        let twice = [
            "--syslog-listen",
            "tcp:127.0.0.1:514",
            "--syslog-listen",
            "tls:127.0.0.1:514",
        ];
        let e = syslog(&[&twice[..], &["--tls-cert", "c", "--tls-key", "k"]].concat()).unwrap_err();
        assert_eq!(
            e,
            "--syslog-listen tls:127.0.0.1:514: that address is given twice"
        );
        for bad in [
            ["--syslog-listen", "tcp:nowhere"],
            ["--syslog-allow", "10.0.0.1/8"],
        ] {
            let e = syslog(&bad).unwrap_err();
            assert!(e.contains(bad[1]), "{e}");
        }
    }
}
