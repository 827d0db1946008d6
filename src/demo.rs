//! `mtqpd demo`: writes a small native log of made-up messages (delivered, relayed, delayed,
//! failed, two recipients), prints TRACK lines to paste into `nc` or `telnet`, and serves it.
//! A minute later it appends the delayed message's delivery, to show live ingest.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{DemoArgs, Unknown};
use crate::clock::unix_now;
use crate::index::message::Retention;
use crate::ingest::native::NativeTags;
use crate::ingest::timezone::Zone;
use crate::ingest::{LogFormat, LogSource};
use crate::protocol::date::Timestamp;
use crate::protocol::secret::{encode, sha1};
use crate::protocol::xtext;
use crate::server::Limits;
use crate::settings::Settings;

const HOST: &str = "demo.mtqpd.example";

/// One demo message: envid, secret, recipient lines (`rcpt action status remote`).
struct DemoMessage {
    envid: &'static str,
    secret: &'static str,
    what: &'static str,
    rcpts: &'static [(&'static str, &'static str, &'static str, &'static str)],
}

const MESSAGES: &[DemoMessage] = &[
    DemoMessage {
        envid: "demo-1@example.org",
        secret: "demo secret one",
        what: "delivered locally",
        rcpts: &[("alice@demo.mtqpd.example", "delivered", "2.0.0", "")],
    },
    DemoMessage {
        envid: "demo-2@example.org",
        secret: "demo secret two",
        what: "relayed to a remote MX",
        rcpts: &[("bob@example.net", "relayed", "2.0.0", "dns;mx1.example.net")],
    },
    DemoMessage {
        envid: "demo-3@example.org",
        secret: "demo secret three",
        what: "delayed (delivered one minute after the demo starts)",
        rcpts: &[(
            "carol@example.com",
            "delayed",
            "4.4.1+20(Connection+20timed+20out)",
            "dns;mx.example.com",
        )],
    },
    DemoMessage {
        envid: "demo-4@example.org",
        secret: "demo secret four",
        what: "two recipients: one relayed, one failed",
        rcpts: &[
            (
                "dave@example.net",
                "relayed",
                "2.0.0",
                "dns;mx1.example.net",
            ),
            (
                "erin@example.net",
                "failed",
                "5.2.2+20(Mailbox+20full)",
                "dns;mx1.example.net",
            ),
        ],
    },
];

fn rfc3339(unix: i64) -> String {
    let mut s = String::new();
    Timestamp {
        unix,
        offset_minutes: 0,
    }
    .write_rfc3339_utc(&mut s);
    s
}

fn demo_log(start: i64) -> String {
    let mut log = String::new();
    for (i, m) in MESSAGES.iter().enumerate() {
        let t = start + 60 * i as i64;
        let hash = encode(&sha1(m.secret.as_bytes()));
        let _ = writeln!(
            log,
            "{} {HOST} demo-submit[{}]: mtqp: event=accept time={} envid={} mtrk={} queue=DEMO{i}",
            rfc3339(t),
            100 + i,
            rfc3339(t),
            m.envid,
            xtext::encode(hash.trim_end_matches('=').as_bytes())
        );
        for (rcpt, action, status, remote) in m.rcpts {
            let remote = if remote.is_empty() {
                String::new()
            } else {
                format!(" remote-mta={remote}")
            };
            let _ = writeln!(
                log,
                "{} {HOST} demo-mta[{}]: mtqp: event=rcpt time={} queue=DEMO{i} orcpt=rfc822;{rcpt} rcpt={rcpt} action={action} status={status}{remote}",
                rfc3339(t + 5),
                200 + i,
                rfc3339(t + 5),
            );
        }
    }
    log
}

/// A fresh directory for the demo's log: a name nobody could have guessed and planted (a
/// symlink, a directory of theirs), created exclusively, 0700.
fn private_dir() -> Result<PathBuf, String> {
    use std::hash::{BuildHasher, Hasher};
    use std::os::unix::fs::DirBuilderExt;
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let dir = std::env::temp_dir().join(format!("mtqpd-demo-{:016x}", h.finish()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write demo log {}: {e}", path.display()))
}

/// Writes the demo log and serves it until SIGINT or SIGTERM.
pub fn run(args: &DemoArgs) -> Result<(), String> {
    let dir = private_dir()?;
    let log = dir.join("mail.log");
    let start = unix_now() - 3600;
    write_file(&log, &demo_log(start))?;
    let addr = args.listen;
    println!("mtqpd demo: serving {} on {addr}", log.display());
    println!(
        "Try (nc -C {} {}, or telnet), one line at a time:",
        addr.ip(),
        addr.port()
    );
    for m in MESSAGES {
        println!(
            "  TRACK <{}> {}    # {}",
            m.envid,
            encode(m.secret.as_bytes()),
            m.what
        );
    }
    println!(
        "  TRACK <demo-1@example.org> {}    # wrong secret: same answer as unknown",
        encode(b"wrong")
    );
    println!("  QUIT");
    let delayed = &MESSAGES[2];
    let later_log = log.clone();
    let late_line = format!(
        "{} {HOST} demo-mta[300]: mtqp: event=rcpt time={} queue=DEMO2 orcpt=rfc822;{} rcpt={} action=relayed status=2.0.0 remote-mta=dns;mx.example.com\n",
        rfc3339(unix_now()),
        rfc3339(unix_now() + 60),
        delayed.rcpts[0].0,
        delayed.rcpts[0].0
    );
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&later_log) {
            let _ = f.write_all(late_line.as_bytes());
        }
    });
    let settings = Settings {
        listen: vec![addr],
        threads: 1,
        user: None,
        logs: vec![LogSource::file(LogFormat::Native, log)],
        log_zone: Zone::utc(),
        native_tags: NativeTags::default(),
        stream_native_tags: NativeTags::new::<&str>(&[]),
        cluster_hosts: Vec::new(),
        hostname: HOST.into(),
        unknown: Unknown::Noinfo,
        retention: Retention {
            after_last_event: 8 * 86_400,
            queue_lifetime: 5 * 86_400,
        },
        limits: Limits {
            max_connections: 1000,
            ..Limits::default()
        },
        tls: Vec::new(),
        tls_required: false,
        state_dir: None,
        snapshot_interval: Duration::from_secs(30),
        syslog: Default::default(),
        admin_listen: None,
        healthz_max_lag: Duration::from_secs(60),
        warnings: Vec::new(),
    };
    let result = crate::serve::serve(&settings);
    let _ = std::fs::remove_dir_all(&dir);
    result
}
