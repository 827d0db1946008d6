//! SIGHUP: what `serve` and the gate change while they run. Only the certificates and keys
//! (`--tls-cert`/`--tls-key`, read again from the same files; see
//! [`crate::server::live_certs`]): every other setting needs a restart. Log files need no
//! signal: rotation is followed as it happens.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::server::live_certs::LiveCerts;

/// The signals [`wait_for_stop`] handles, to register before anything runs: a signal at any
/// later moment is then handled (SIGHUP's default would end the process).
pub const SIGNALS: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

/// Waits for SIGINT or SIGTERM (and says which came, as `who`), reloading `certs` at every
/// SIGHUP meanwhile.
pub fn wait_for_stop(signals: &mut Signals, certs: Option<&LiveCerts>, who: &str) {
    for signal in signals.forever() {
        let name = match signal {
            SIGHUP => {
                reload(certs, who);
                continue;
            }
            SIGINT => "SIGINT",
            _ => "SIGTERM",
        };
        eprintln!("{who}: {name}: shutting down");
        return;
    }
}

/// Reloads the certificates, saying on one line what came of it; a failure keeps the ones in
/// use. The line names the file and the problem, never what the file holds.
fn reload(certs: Option<&LiveCerts>, who: &str) {
    let Some(certs) = certs else {
        eprintln!("{who}: SIGHUP: no certificates to reload");
        return;
    };
    match certs.reload() {
        Ok(n) => eprintln!("{who}: SIGHUP: reloaded {n} certificate(s)"),
        Err(e) => eprintln!(
            "{who}: SIGHUP: certificates refused, keeping those in use: {}",
            crate::config::one_line(&e)
        ),
    }
}
