//! What the tests against the two-host Postfix cluster of `.ci/cluster-setup.sh` share
//! (`tests/real_cluster.rs`): its addresses and host names, the logs each instance writes, the
//! mtqpd replicas its rsyslogd forwards to, and cleaning the instances' queues.
//!
//! hub1 takes mail from `mtqpd gate` (PROXY protocol) and relays `cluster.example` to hub2 on
//! loopback; hub2 holds cluster.example's mailboxes. Both log through a real rsyslogd that sends
//! every line, host names `hub1` and `hub2`, to [`REPLICAS`] over TCP, holding lines in a
//! disk-assisted queue while nothing listens there.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};

use super::{real_mta, Server};

/// hub1's smtpd for the gate: PROXY protocol required.
pub const HUB1_GATE: &str = "127.0.0.1:10035";
/// hub2's smtpd, where hub1 relays cluster.example.
pub const HUB2_SMTP: &str = "127.0.0.1:10036";
/// The instances' `myhostname`s; their log lines carry the first labels (`hub1`, `hub2`).
pub const HUB1: &str = "hub1.mtqpd-ci.example";
pub const HUB2: &str = "hub2.mtqpd-ci.example";
/// What each instance's postlogd writes (`maillog_file`), and its rsyslogd reads.
pub const HUB1_LOG: &str = "/var/log/mtqpd-hub1.log";
pub const HUB2_LOG: &str = "/var/log/mtqpd-hub2.log";
/// The instances' configuration directories (`postfix -c`, `postsuper -c`).
pub const HUB1_CONFIG: &str = "/etc/postfix-hub1";
pub const HUB2_CONFIG: &str = "/etc/postfix-hub2";
/// Where the rsyslogd forwards every line: one mtqpd replica listens on each.
pub const REPLICAS: [&str; 2] = ["127.0.0.1:10514", "127.0.0.1:10515"];
/// `mtqpd serve --hostname` of every replica (the same: they must answer the same bytes).
pub const HOSTNAME: &str = "mtqpd-ci.example";

/// Whether the cluster test `test` should run (see [`real_mta::enabled`]).
pub fn enabled(test: &str) -> bool {
    real_mta::enabled("MTQPD_REAL_CLUSTER", test, ".ci/cluster-setup.sh")
}

/// The replicas' syslog ports are fixed (the rsyslogd's targets), so the tests of one binary
/// take turns: hold this while replicas run.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static CLUSTER: Mutex<()> = Mutex::new(());
    CLUSTER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An mtqpd replica: `mtqpd serve` receiving the cluster's syslog stream on `syslog`
/// (`tcp:ADDR:PORT`), following hand-offs to hub2 by its address, and reading the gate's accept
/// log `native`.
pub fn replica(syslog: &str, native: &Path) -> Server {
    let native = format!("native:{}", native.display());
    let hub2 = format!("hub2={HUB2_SMTP}");
    Server::start(&[
        "--syslog-listen",
        &format!("tcp:{syslog}"),
        "--cluster-host",
        &hub2,
        "--log",
        &native,
        "--hostname",
        HOSTNAME,
        "--threads",
        "1",
    ])
}

/// The lines of both instances' logs that contain `needle`, each after its log's name.
pub fn lines_with(needle: &str) -> Vec<String> {
    [HUB1_LOG, HUB2_LOG]
        .iter()
        .flat_map(|log| {
            real_mta::log_lines_with(log, needle)
                .into_iter()
                .map(move |l| format!("{log}: {l}"))
        })
        .collect()
}

/// Deletes queue ids from an instance's queue when dropped (a deferred recipient's message
/// would be retried for days), whether the test passed or not.
pub struct QueueCleanup {
    config: &'static str,
    ids: Vec<String>,
}

impl QueueCleanup {
    /// For the instance whose configuration directory is `config`.
    pub fn new(config: &'static str) -> QueueCleanup {
        QueueCleanup {
            config,
            ids: Vec::new(),
        }
    }

    pub fn add(&mut self, qid: &str) {
        self.ids.push(qid.to_string());
    }
}

impl Drop for QueueCleanup {
    fn drop(&mut self) {
        for qid in &self.ids {
            let _ = Command::new("postsuper")
                .args(["-c", self.config, "-d", qid])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
