//! What the tests against the real Postfix share (`tests/real_postfix.rs`,
//! `tests/gate_postfix.rs`): where `.ci/postfix-setup.sh` makes it log, its name, `mtqpd serve`
//! reading that log, and cleaning its queue.

use std::path::Path;
use std::process::{Command, Stdio};

use super::{real_mta, Server};

/// Where the setup script makes Postfix log (`maillog_file`).
pub const LOG: &str = "/var/log/postfix-mtqpd.log";
/// Postfix's `myhostname`, also mtqpd serve's `--hostname`.
pub const HOSTNAME: &str = "mtqpd-ci.example";

/// Whether the Postfix test `test` should run (see [`real_mta::enabled`]).
pub fn enabled(test: &str) -> bool {
    real_mta::enabled("MTQPD_REAL_POSTFIX", test, ".ci/postfix-setup.sh")
}

/// The lines of Postfix's log that contain `needle`.
pub fn lines_with(needle: &str) -> Vec<String> {
    real_mta::log_lines_with(LOG, needle)
}

/// `mtqpd serve` following Postfix's log (from its start) and the native log `native`.
pub fn serve(native: &Path) -> Server {
    real_mta::serve(&format!("postfix:{LOG}"), native, HOSTNAME)
}

/// Deletes its queue ids from Postfix's queue when dropped (a deferred recipient's message
/// would be retried for days), whether the test passed or not.
pub struct QueueCleanup(pub Vec<String>);

impl Drop for QueueCleanup {
    fn drop(&mut self) {
        for qid in &self.0 {
            let _ = Command::new("postsuper")
                .args(["-d", qid])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
