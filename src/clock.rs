//! Time: the wall clock — what "now" is for retention, expiry, the MTRK timeout and the year
//! of classic syslog timestamps; [`unix_now`] is the only place mtqpd reads it — and durations
//! as settings write them ([`parse_duration`]).
//!
//! **Test seam.** `MTQPD_NOW=<RFC 3339 time>` in the environment of `serve`, `demo` or
//! `ingest-check` starts the clock at that instant; from there it advances with the real
//! clock. Tests use it for logs whose dates are fixed — the RFC 3887 examples of 2001, real MTA
//! logs whose syslog stamps carry no year — so that their answers are the same whatever the
//! calendar says. Tests of logs they write themselves build their times from the real clock
//! instead. The process says on stderr when the clock is pinned; operators have no use for it.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::protocol::date::Timestamp;

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
