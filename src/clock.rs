//! The wall clock: what "now" is for retention, expiry, the MTRK timeout and the year of
//! classic syslog timestamps. [`unix_now`] is the only place mtqpd reads it.
//!
//! **Test seam.** `MTQPD_NOW=<RFC 3339 time>` in the environment of `serve`, `demo` or
//! `ingest-check` starts the clock at that instant; from there it advances with the real
//! clock. Tests use it for logs whose dates are fixed — the RFC 3887 examples of 2001, real MTA
//! logs whose syslog stamps carry no year — so that their answers are the same whatever the
//! calendar says. Tests of logs they write themselves build their times from the real clock
//! instead. The process says on stderr when the clock is pinned; operators have no use for it.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::index::date::Timestamp;

/// The environment variable of the test seam.
pub const PIN_VARIABLE: &str = "MTQPD_NOW";

/// Seconds added to the system clock: set once, by [`pin_from_env`], before any thread starts.
static OFFSET: OnceLock<i64> = OnceLock::new();

fn system_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    system_now().saturating_add(OFFSET.get().copied().unwrap_or(0))
}

/// Pins the clock to `MTQPD_NOW` when it is set (see the module doc); the first pin holds.
/// Returns the instant it was pinned to, or an error naming the bad value.
pub fn pin_from_env() -> Result<Option<Timestamp>, String> {
    let Some(value) = std::env::var_os(PIN_VARIABLE) else {
        return Ok(None);
    };
    let at = value
        .to_str()
        .and_then(|v| Timestamp::parse_rfc3339(v.as_bytes()))
        .ok_or_else(|| {
            format!(
                "{PIN_VARIABLE}={}: not an RFC 3339 time (e.g. 2001-01-02T00:00:00Z)",
                value.to_string_lossy()
            )
        })?;
    let _ = OFFSET.set(at.unix.saturating_sub(system_now()));
    Ok(Some(at))
}
