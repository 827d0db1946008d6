//! Time zones for log timestamps that carry none (classic syslog `Mmm dd HH:MM:SS`, Postfix
//! `maillog_file`): which UTC offset was in force at a local wall-clock time.
//!
//! This module owns what a zone setting means (`UTC`, a fixed offset, an IANA name, `local` and
//! the `TZ` variable), which files a setting may make the daemon read, and how a local time
//! that a change skips or repeats is read. The zone data itself — TZif files (RFC 8536) and
//! POSIX TZ rules — is decoded by `jiff`. It must not parse log lines, infer years or know any
//! log format; [`super::syslog`] does that. It reads files only when a zone is built, never per
//! line.

use std::path::Path;

use jiff::tz::{AmbiguousOffset, Offset, TimeZone};
use jiff::Timestamp;

/// Largest zoneinfo file read: real ones are a few KiB, so anything bigger is not one.
const MAX_TZIF: u64 = 256 * 1024;
/// Where IANA zone names are looked up.
const ZONEINFO: &str = "/usr/share/zoneinfo";
/// Largest offset magnitude a [`crate::protocol::date::Timestamp`] accepts, in seconds.
const MAX_OFFSET: i32 = 24 * 3600 - 60;

/// A time zone: the UTC offsets in force over time.
#[derive(Clone, Debug)]
pub struct Zone {
    /// What the zone was built from, for messages.
    name: Box<str>,
    tz: TimeZone,
}

impl Zone {
    /// Coordinated Universal Time.
    pub fn utc() -> Zone {
        Zone {
            name: "UTC".into(),
            tz: TimeZone::UTC,
        }
    }

    /// What the zone was built from (`UTC`, `+01:00`, `Europe/Berlin`, a file path…).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Parses an operator's zone setting: `UTC` or `Z`; a fixed offset `+01:00`, `-0500`,
    /// `+0100` or `+01`; `local` (see [`Zone::local`], whose warning is dropped here: call
    /// [`Zone::from_setting`] to show it); or an IANA name such as `Europe/Berlin`, read from
    /// `/usr/share/zoneinfo`. Names with `..` components or absolute paths are refused, so that
    /// the setting cannot make the daemon read arbitrary files.
    pub fn parse(spec: &str) -> Result<Zone, String> {
        match spec {
            "UTC" | "utc" | "Z" | "z" => return Ok(Zone::utc()),
            "local" => return Ok(Zone::local().0),
            _ => {}
        }
        if let Some(offset) = parse_fixed_offset(spec.as_bytes()) {
            return Ok(Zone {
                name: spec.into(),
                tz: TimeZone::fixed(offset),
            });
        }
        let valid_name = !spec.is_empty()
            && !spec.starts_with('/')
            && spec
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..")
            && spec.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+' | b'.')
            });
        if !valid_name {
            return Err(format!(
                "'{spec}' is not a time zone (UTC, +HH:MM, local or an IANA name such as Europe/Berlin)"
            ));
        }
        let path = Path::new(ZONEINFO).join(spec);
        Zone::from_file(&path, spec)
    }

    /// The zone of a setting, as [`Zone::parse`], but with the warning of `local` kept for
    /// the caller to show.
    pub fn from_setting(spec: &str) -> Result<(Zone, Option<String>), String> {
        match spec {
            "local" => Ok(Zone::local()),
            _ => Zone::parse(spec).map(|zone| (zone, None)),
        }
    }

    /// The host's zone: the `TZ` environment variable when set (a zoneinfo name, `:`-prefixed
    /// name or absolute path, or a POSIX rule such as `CET-1CEST,M3.5.0,M10.5.0/3`; empty means
    /// UTC, as in POSIX), else `/etc/localtime`. When neither can be read the zone is UTC and
    /// the second value says why, for the caller to print.
    pub fn local() -> (Zone, Option<String>) {
        match std::env::var("TZ") {
            Ok(tz) => Zone::from_tz_var(&tz),
            Err(std::env::VarError::NotUnicode(_)) => (
                Zone::utc(),
                Some("TZ is not valid UTF-8; classic syslog times are taken as UTC".into()),
            ),
            Err(std::env::VarError::NotPresent) => {
                match Zone::from_file(Path::new("/etc/localtime"), "localtime") {
                    Ok(z) => (z, None),
                    Err(e) => (
                        Zone::utc(),
                        Some(format!("{e}; classic syslog times are taken as UTC")),
                    ),
                }
            }
        }
    }

    /// The zone a `TZ` value names; see [`Zone::local`].
    fn from_tz_var(tz: &str) -> (Zone, Option<String>) {
        let name = tz.strip_prefix(':').unwrap_or(tz);
        if name.is_empty() {
            return (Zone::utc(), None);
        }
        // The operator's own environment may name any file, unlike a `--log-timezone` setting.
        let path = if name.starts_with('/') {
            Path::new(name).to_path_buf()
        } else if name.split('/').any(|c| c == "..") {
            return (
                Zone::utc(),
                Some(format!(
                    "TZ={tz} climbs out of the zoneinfo directory; classic syslog times are taken as UTC"
                )),
            );
        } else {
            Path::new(ZONEINFO).join(name)
        };
        match Zone::from_file(&path, name) {
            Ok(z) => (z, None),
            Err(e) => match TimeZone::posix(name) {
                Ok(tz) => (
                    Zone {
                        name: name.into(),
                        tz,
                    },
                    None,
                ),
                Err(_) => (
                    Zone::utc(),
                    Some(format!(
                        "TZ={tz} is neither a readable zone ({e}) nor a POSIX rule; classic syslog times are taken as UTC"
                    )),
                ),
            },
        }
    }

    /// Reads a TZif file, at most [`MAX_TZIF`] octets of it.
    fn from_file(path: &Path, name: &str) -> Result<Zone, String> {
        use std::io::Read as _;
        let file = std::fs::File::open(path)
            .map_err(|e| format!("cannot read time zone {}: {e}", path.display()))?;
        let mut data = Vec::new();
        file.take(MAX_TZIF)
            .read_to_end(&mut data)
            .map_err(|e| format!("cannot read time zone {}: {e}", path.display()))?;
        Zone::from_tzif(&data, name)
            .map_err(|e| format!("time zone {} is not a TZif file: {e}", path.display()))
    }

    /// The zone of the bytes of a TZif file (RFC 8536, versions 1 to 4).
    fn from_tzif(data: &[u8], name: &str) -> Result<Zone, String> {
        let tz = TimeZone::tzif(name, data).map_err(|e| e.to_string())?;
        Ok(Zone {
            name: name.into(),
            tz,
        })
    }

    /// The offset (seconds east of UTC) in force at a UTC instant.
    pub fn offset_at_utc(&self, unix: i64) -> i32 {
        self.tz.to_offset(timestamp(unix)).seconds()
    }

    /// The UTC offset, in minutes east, in force at a local wall-clock time given as seconds
    /// since 1970-01-01T00:00:00 local. A local time that occurs twice (clocks going back)
    /// takes the offset in force before the change, the earlier instant (in the northern
    /// summer-time switch: summer time). A local time that never occurs (clocks going forward)
    /// also takes the offset in force before the change (standard time), so it is read as the
    /// instant that many minutes after the change. Seconds of historical offsets are dropped.
    pub fn offset_for_local(&self, local_seconds: i64) -> i16 {
        let civil = Offset::UTC.to_datetime(timestamp(local_seconds));
        let offset = match self.tz.to_ambiguous_timestamp(civil).offset() {
            AmbiguousOffset::Unambiguous { offset } => offset,
            AmbiguousOffset::Gap { before, .. } | AmbiguousOffset::Fold { before, .. } => before,
        };
        (offset.seconds().clamp(-MAX_OFFSET, MAX_OFFSET) / 60) as i16
    }
}

/// `unix` as a jiff timestamp, brought into jiff's range (years -9999 to 9999).
fn timestamp(unix: i64) -> Timestamp {
    let unix = unix.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    Timestamp::from_second(unix).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Parses `+01:00`, `-0500`, `+0100`, `+01` into an offset.
fn parse_fixed_offset(s: &[u8]) -> Option<Offset> {
    let (sign, rest) = match s.split_first()? {
        (b'+', r) => (1, r),
        (b'-', r) => (-1, r),
        _ => return None,
    };
    let two = |d: &[u8]| -> Option<i32> {
        match d {
            [a @ b'0'..=b'9', b @ b'0'..=b'9'] => {
                Some(i32::from(a - b'0') * 10 + i32::from(b - b'0'))
            }
            _ => None,
        }
    };
    let (h, m) = match rest.len() {
        2 => (two(rest)?, 0),
        4 => (two(rest.get(..2)?)?, two(rest.get(2..)?)?),
        5 if rest.get(2) == Some(&b':') => (two(rest.get(..2)?)?, two(rest.get(3..)?)?),
        _ => return None,
    };
    if h > 23 || m > 59 {
        return None;
    }
    Offset::from_seconds(sign * (h * 3600 + m * 60)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::date::days_from_civil;

    const DAY: i64 = 86_400;

    /// Unix seconds of a UTC civil time.
    fn utc(y: i64, m: u32, d: u32, h: i64, min: i64) -> i64 {
        days_from_civil(y, m, d) * DAY + h * 3600 + min * 60
    }

    /// The time zone abbreviations of [`tzif`]'s types: standard and daylight saving time.
    const ABBREVIATIONS: &[u8] = b"CET\0CEST\0";

    /// A TZif v2 file with the given transitions (UTC time, type index), types (offset,
    /// is_dst, named CET and CEST) and footer.
    fn tzif(transitions: &[(i64, u8)], types: &[(i32, bool)], footer: &str) -> Vec<u8> {
        let header = |out: &mut Vec<u8>, timecnt: usize| {
            out.extend_from_slice(b"TZif2");
            out.extend_from_slice(&[0; 15]);
            for n in [0, 0, 0, timecnt, types.len(), ABBREVIATIONS.len()] {
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
        };
        let block = |out: &mut Vec<u8>, wide: bool| {
            for (t, _) in transitions {
                if wide {
                    out.extend_from_slice(&t.to_be_bytes());
                } else {
                    out.extend_from_slice(&(*t as i32).to_be_bytes());
                }
            }
            out.extend(transitions.iter().map(|(_, i)| *i));
            for (off, dst) in types {
                out.extend_from_slice(&off.to_be_bytes());
                out.extend_from_slice(&[u8::from(*dst), if *dst { 4 } else { 0 }]);
            }
            out.extend_from_slice(ABBREVIATIONS);
        };
        let mut out = Vec::new();
        // A v1 block that lies (one hour off) proves the 64-bit block is the one read.
        header(&mut out, 0);
        let v1_types: Vec<(i32, bool)> = types.iter().map(|(o, d)| (o + 3600, *d)).collect();
        for (off, dst) in &v1_types {
            out.extend_from_slice(&off.to_be_bytes());
            out.extend_from_slice(&[u8::from(*dst), if *dst { 4 } else { 0 }]);
        }
        out.extend_from_slice(ABBREVIATIONS);
        header(&mut out, transitions.len());
        block(&mut out, true);
        out.push(b'\n');
        out.extend_from_slice(footer.as_bytes());
        out.push(b'\n');
        out
    }

    /// A Berlin-like zone: CET until 2020-03-29 01:00 UTC, CEST until 2020-10-25 01:00 UTC,
    /// then CET; the footer rule after that.
    fn berlin_like(footer: &str) -> Zone {
        let z = tzif(
            &[(utc(2020, 3, 29, 1, 0), 1), (utc(2020, 10, 25, 1, 0), 0)],
            &[(3600, false), (7200, true)],
            footer,
        );
        Zone::from_tzif(&z, "test").unwrap()
    }

    fn local(y: i64, m: u32, d: u32, h: i64, min: i64) -> i64 {
        utc(y, m, d, h, min)
    }

    #[test]
    fn fixed_zones() {
        assert_eq!(Zone::utc().offset_for_local(0), 0);
        for (spec, minutes) in [
            ("UTC", 0),
            ("Z", 0),
            ("+01:00", 60),
            ("-0500", -300),
            ("+0100", 60),
            ("+05:30", 330),
            ("-03", -180),
        ] {
            let z = Zone::parse(spec).unwrap();
            assert_eq!(z.offset_for_local(1_700_000_000), minutes, "{spec}");
            assert_eq!(z.offset_at_utc(0), minutes as i32 * 60, "{spec}");
        }
        for bad in [
            "",
            "+24:00",
            "+1",
            "01:00",
            "+01:60",
            "/etc/passwd",
            "../etc/passwd",
            "Europe/../../etc/passwd",
            "Europe//Berlin",
            "No/Such_Zone",
            "a b",
        ] {
            assert!(Zone::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tzif_transitions_and_64_bit_section() {
        let z = berlin_like("");
        assert_eq!(z.offset_at_utc(utc(2020, 1, 1, 0, 0)), 3600);
        assert_eq!(z.offset_at_utc(utc(2020, 3, 29, 0, 59)), 3600);
        assert_eq!(z.offset_at_utc(utc(2020, 3, 29, 1, 0)), 7200);
        assert_eq!(z.offset_at_utc(utc(2020, 10, 25, 0, 59)), 7200);
        assert_eq!(z.offset_at_utc(utc(2020, 10, 25, 1, 0)), 3600);
        // No footer: the last transition's offset holds for ever.
        assert_eq!(z.offset_at_utc(utc(2030, 7, 1, 0, 0)), 3600);
        assert_eq!(z.offset_for_local(local(2020, 7, 1, 12, 0)), 120);
        assert_eq!(z.offset_for_local(local(2020, 12, 1, 12, 0)), 60);
    }

    #[test]
    fn gap_and_overlap_take_the_offset_before_the_change() {
        let z = berlin_like("");
        // 02:30 on 2020-03-29 never happened in Berlin: read as standard time.
        assert_eq!(z.offset_for_local(local(2020, 3, 29, 2, 30)), 60);
        assert_eq!(z.offset_for_local(local(2020, 3, 29, 1, 59)), 60);
        assert_eq!(z.offset_for_local(local(2020, 3, 29, 3, 0)), 120);
        // 02:30 on 2020-10-25 happened twice: the first one, in summer time.
        assert_eq!(z.offset_for_local(local(2020, 10, 25, 2, 30)), 120);
        assert_eq!(z.offset_for_local(local(2020, 10, 25, 1, 59)), 120);
        assert_eq!(z.offset_for_local(local(2020, 10, 25, 3, 0)), 60);
    }

    #[test]
    fn footer_rule_after_the_last_transition() {
        let z = berlin_like("CET-1CEST,M3.5.0,M10.5.0/3");
        // 2031: last Sunday of March is the 30th, of October the 26th.
        assert_eq!(z.offset_at_utc(utc(2031, 3, 30, 0, 59)), 3600);
        assert_eq!(z.offset_at_utc(utc(2031, 3, 30, 1, 0)), 7200);
        assert_eq!(z.offset_at_utc(utc(2031, 10, 26, 0, 59)), 7200);
        assert_eq!(z.offset_at_utc(utc(2031, 10, 26, 1, 0)), 3600);
        assert_eq!(z.offset_for_local(local(2031, 7, 1, 12, 0)), 120);
        assert_eq!(z.offset_for_local(local(2031, 3, 30, 2, 30)), 60);
        assert_eq!(z.offset_for_local(local(2031, 10, 26, 2, 30)), 120);
        assert_eq!(z.offset_for_local(local(2031, 1, 1, 0, 0)), 60);
    }

    /// POSIX rules, as a `TZ` value gives them.
    fn rule(tz: &str) -> Option<Zone> {
        let (z, warning) = Zone::from_tz_var(tz);
        warning.is_none().then_some(z)
    }

    #[test]
    fn posix_rules() {
        // Southern hemisphere: Sydney, summer time across the new year.
        let z = rule("AEST-10AEDT,M10.1.0,M4.1.0/3").unwrap();
        assert_eq!(z.offset_at_utc(utc(2024, 1, 15, 0, 0)), 11 * 3600);
        assert_eq!(z.offset_at_utc(utc(2024, 7, 15, 0, 0)), 10 * 3600);
        // New York by the US rule, and a rule by Julian days.
        let z = rule("EST5EDT,M3.2.0,M11.1.0").unwrap();
        assert_eq!(z.offset_at_utc(utc(2024, 3, 10, 6, 59)), -5 * 3600);
        assert_eq!(z.offset_at_utc(utc(2024, 3, 10, 7, 0)), -4 * 3600);
        assert_eq!(z.offset_at_utc(utc(2024, 11, 3, 5, 59)), -4 * 3600);
        assert_eq!(z.offset_at_utc(utc(2024, 11, 3, 6, 0)), -5 * 3600);
        assert_eq!(rule("<+03>-3").unwrap().offset_at_utc(0), 10800);
        assert_eq!(rule("UTC0").unwrap().offset_at_utc(0), 0);
        let z = rule("XXX3YYY,J60/1,300").unwrap();
        assert_eq!(z.offset_at_utc(utc(2024, 6, 1, 0, 0)), -2 * 3600);
        for bad in [
            "C",
            "CET-1CEST,M3.5.0",
            "CET-1CEST,M13.5.0,M10.5.0",
            "CET-1CEST,M3.5.0,M10.5.0/3x",
            "<+03",
            "CET-1CEST,J0,J10",
        ] {
            assert!(rule(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn tz_variable_forms() {
        let (z, warn) = Zone::from_tz_var("CET-1CEST,M3.5.0,M10.5.0/3");
        assert!(warn.is_none());
        assert_eq!(z.offset_for_local(local(2024, 7, 1, 12, 0)), 120);
        assert_eq!(z.offset_for_local(local(2024, 1, 1, 12, 0)), 60);
        let (z, warn) = Zone::from_tz_var("");
        assert!(warn.is_none());
        assert_eq!(z.offset_for_local(0), 0);
        let (z, warn) = Zone::from_tz_var("Not a zone");
        assert!(warn.is_some());
        assert_eq!(z.offset_for_local(0), 0);
        let (_, warn) = Zone::from_tz_var("../../etc/passwd");
        assert!(warn.is_some());
    }

    #[test]
    fn damaged_tzif_is_refused_not_panicked_on() {
        let good = tzif(&[(100, 1), (200, 0)], &[(0, false), (3600, true)], "");
        for n in 0..good.len() {
            let _ = Zone::from_tzif(&good[..n], "cut");
        }
        let mut bad_index = good.clone();
        let at = bad_index.len() - 2 - 12 - ABBREVIATIONS.len() - 2;
        bad_index[at] = 9;
        assert!(Zone::from_tzif(&bad_index, "bad").is_err());
        let mut rng = fastrand::Rng::with_seed(0x1234_5678);
        for _ in 0..2000 {
            let mut v = good.clone();
            for _ in 0..4 {
                let i = rng.usize(..v.len());
                v[i] = rng.u8(..);
            }
            if let Ok(z) = Zone::from_tzif(&v, "fuzz") {
                let _ = z.offset_for_local(150);
                let _ = z.offset_for_local(i64::MAX);
                let _ = z.offset_for_local(i64::MIN);
            }
        }
        assert!(Zone::from_tzif(b"TZif2", "short").is_err());
        assert!(Zone::from_tzif(b"", "empty").is_err());
    }

    #[test]
    fn version_1_file() {
        let mut v = Vec::new();
        v.extend_from_slice(b"TZif");
        v.extend_from_slice(&[0; 16]);
        for n in [0u32, 0, 0, 1, 2, 4] {
            v.extend_from_slice(&n.to_be_bytes());
        }
        v.extend_from_slice(&1000i32.to_be_bytes());
        v.push(1);
        v.extend_from_slice(&0i32.to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(&(-18000i32).to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(b"XXX\0");
        let z = Zone::from_tzif(&v, "v1").unwrap();
        assert_eq!(z.offset_at_utc(999), 0);
        assert_eq!(z.offset_at_utc(1000), -18000);
        assert_eq!(z.offset_for_local(1_000_000), -300);
    }

    #[test]
    fn real_berlin_file_when_installed() {
        if !Path::new("/usr/share/zoneinfo/Europe/Berlin").exists() {
            return;
        }
        let z = Zone::parse("Europe/Berlin").unwrap();
        let _ = (z.offset_for_local(i64::MAX), z.offset_for_local(i64::MIN));
        assert_eq!(z.offset_for_local(local(2023, 3, 14, 0, 31)), 60);
        assert_eq!(z.offset_for_local(local(2023, 7, 14, 0, 31)), 120);
        // Beyond 2037, where even "fat" files rely on the footer.
        assert_eq!(z.offset_for_local(local(2050, 7, 1, 12, 0)), 120);
        assert_eq!(z.offset_for_local(local(2050, 12, 1, 12, 0)), 60);
        assert_eq!(z.offset_for_local(local(2024, 3, 31, 2, 30)), 60);
        assert_eq!(z.offset_for_local(local(2024, 10, 27, 2, 30)), 120);
    }
}
