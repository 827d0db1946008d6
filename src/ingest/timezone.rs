//! Time zones for log timestamps that carry none (classic syslog `Mmm dd HH:MM:SS`, Postfix
//! `maillog_file`): which UTC offset was in force at a local wall-clock time.
//!
//! This module owns zone lookup: fixed offsets, a small TZif (RFC 8536) reader for the system's
//! zoneinfo files and the POSIX TZ rule that TZif v2+ files carry in their footer. It must not
//! parse log lines, infer years or know any log format; [`super::syslog`] does that. It reads
//! files only when a zone is built, never per line.

use crate::index::date::{civil_from_days, days_from_civil};
use std::path::Path;

/// Largest zoneinfo file read: real ones are a few KiB, so anything bigger is not one.
const MAX_TZIF: u64 = 256 * 1024;
/// Where IANA zone names are looked up.
const ZONEINFO: &str = "/usr/share/zoneinfo";
/// Seconds in a day.
const DAY: i64 = 86_400;
/// Largest offset magnitude a [`crate::index::date::Timestamp`] accepts, in seconds.
const MAX_OFFSET: i32 = 24 * 3600 - 60;

/// A time zone: the UTC offsets in force over time.
#[derive(Clone, Debug)]
pub struct Zone {
    /// What the zone was built from, for messages.
    name: Box<str>,
    /// UTC instants at which the offset changes, strictly ascending.
    times: Box<[i64]>,
    /// The offset (seconds east of UTC) from the matching `times` entry on.
    offsets: Box<[i32]>,
    /// The offset before the first transition (RFC 8536: time type 0).
    initial: i32,
    /// The offsets after the last transition, or always when there is none.
    tail: Tail,
    /// Every offset the zone ever uses, deduplicated: the candidates tried when a local time
    /// is turned back into UTC.
    candidates: Box<[i32]>,
}

/// What holds after the last listed transition.
#[derive(Clone, Debug)]
enum Tail {
    /// One offset for ever (no footer, or a footer without daylight saving time).
    Fixed(i32),
    /// A POSIX TZ rule with daylight saving time, e.g. `CET-1CEST,M3.5.0,M10.5.0/3`.
    Rule(Rule),
}

/// A POSIX TZ rule with daylight saving time (POSIX.1-2017 section 8.3, RFC 8536 section 3.3).
#[derive(Clone, Debug)]
struct Rule {
    /// Standard offset, seconds east of UTC.
    std: i32,
    /// Daylight saving offset, seconds east of UTC.
    dst: i32,
    /// When daylight saving time starts, as local standard time.
    start: (RuleDay, i32),
    /// When it ends, as local daylight saving time.
    end: (RuleDay, i32),
}

/// The day of a rule change in a year.
#[derive(Clone, Copy, Debug)]
enum RuleDay {
    /// `Jn`: day 1 to 365, February 29 never counted.
    Julian1(u16),
    /// `n`: day 0 to 365, February 29 counted in leap years.
    Julian0(u16),
    /// `Mm.w.d`: weekday `d` (0 = Sunday) of week `w` (1 to 5, 5 = last) of month `m`.
    Month(u8, u8, u8),
}

impl Zone {
    /// Coordinated Universal Time.
    pub fn utc() -> Zone {
        Zone::fixed("UTC", 0)
    }

    /// A zone with one offset for ever (seconds east of UTC).
    fn fixed(name: &str, offset: i32) -> Zone {
        Zone {
            name: name.into(),
            times: Box::new([]),
            offsets: Box::new([]),
            initial: offset,
            tail: Tail::Fixed(offset),
            candidates: Box::new([offset]),
        }
    }

    /// What the zone was built from (`UTC`, `+01:00`, `Europe/Berlin`, a file path…).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Parses an operator's zone setting: `UTC` or `Z`; a fixed offset `+01:00`, `-0500`,
    /// `+0100` or `+01`; `local` (see [`Zone::local`], whose warning is dropped here: call it
    /// directly to show it); or an IANA name such as `Europe/Berlin`, read from
    /// `/usr/share/zoneinfo`. Names with `..` components or absolute paths are refused, so that
    /// the setting cannot make the daemon read arbitrary files.
    pub fn parse(spec: &str) -> Result<Zone, String> {
        match spec {
            "UTC" | "utc" | "Z" | "z" => return Ok(Zone::utc()),
            "local" => return Ok(Zone::local().0),
            _ => {}
        }
        if let Some(offset) = parse_fixed_offset(spec.as_bytes()) {
            return Ok(Zone::fixed(spec, offset));
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
        // The operator's own environment may name any file, unlike a `--zone` setting.
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
            Err(e) => match parse_posix_tz(name.as_bytes()) {
                Some(tail) => (Zone::from_parts(name, Vec::new(), Vec::new(), None, tail), None),
                None => (
                    Zone::utc(),
                    Some(format!(
                        "TZ={tz} is neither a readable zone ({e}) nor a POSIX rule; classic syslog times are taken as UTC"
                    )),
                ),
            },
        }
    }

    /// Reads a TZif file.
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

    /// Parses the bytes of a TZif file (RFC 8536), versions 1 to 4. The 64-bit section is used
    /// when present. After the last transition the footer's POSIX rule applies when it parses;
    /// otherwise the last transition's offset holds for ever. Leap-second records are skipped:
    /// log times are POSIX times, which have no leap seconds.
    pub fn from_tzif(data: &[u8], name: &str) -> Result<Zone, String> {
        let v1 = Header::parse(data)?;
        let v1_len = v1.data_len(4).ok_or("counts overflow")?;
        if v1.version == 0 {
            let body = data.get(44..).ok_or("truncated")?;
            let (times, offsets, initial, last) = v1.read(body, 4)?;
            let tail = Tail::Fixed(last);
            return Ok(Zone::from_parts(name, times, offsets, Some(initial), tail));
        }
        let rest = data
            .get(44usize.saturating_add(v1_len)..)
            .ok_or("truncated v1 section")?;
        let v2 = Header::parse(rest)?;
        let v2_len = v2.data_len(8).ok_or("counts overflow")?;
        let body = rest.get(44..).ok_or("truncated")?;
        let (times, offsets, initial, last) = v2.read(body, 8)?;
        let footer = body.get(v2_len..).unwrap_or(&[]);
        let rule = footer
            .strip_prefix(b"\n")
            .and_then(|f| f.iter().position(|&b| b == b'\n').and_then(|n| f.get(..n)))
            .and_then(parse_posix_tz);
        let tail = rule.unwrap_or(Tail::Fixed(last));
        Ok(Zone::from_parts(name, times, offsets, Some(initial), tail))
    }

    /// Assembles a zone, clamping offsets to what a timestamp can carry.
    fn from_parts(
        name: &str,
        times: Vec<i64>,
        offsets: Vec<i32>,
        initial: Option<i32>,
        tail: Tail,
    ) -> Zone {
        let clamp = |o: i32| o.clamp(-MAX_OFFSET, MAX_OFFSET);
        let tail = match tail {
            Tail::Fixed(o) => Tail::Fixed(clamp(o)),
            Tail::Rule(r) => Tail::Rule(Rule {
                std: clamp(r.std),
                dst: clamp(r.dst),
                ..r
            }),
        };
        let tail_first = match &tail {
            Tail::Fixed(o) => *o,
            Tail::Rule(r) => r.std,
        };
        let initial = clamp(initial.unwrap_or(tail_first));
        let offsets: Vec<i32> = offsets.into_iter().map(clamp).collect();
        let mut candidates: Vec<i32> = offsets.clone();
        candidates.push(initial);
        match &tail {
            Tail::Fixed(o) => candidates.push(*o),
            Tail::Rule(r) => candidates.extend([r.std, r.dst]),
        }
        candidates.sort_unstable();
        candidates.dedup();
        Zone {
            name: name.into(),
            times: times.into(),
            offsets: offsets.into(),
            initial,
            tail,
            candidates: candidates.into(),
        }
    }

    /// The offset (seconds east of UTC) in force at a UTC instant.
    pub fn offset_at_utc(&self, unix: i64) -> i32 {
        // Index of the first transition after `unix`.
        let n = self.times.partition_point(|&t| t <= unix);
        if n == 0 && !self.times.is_empty() {
            return self.initial;
        }
        if n < self.times.len() {
            return self.offsets.get(n - 1).copied().unwrap_or(self.initial);
        }
        match &self.tail {
            Tail::Rule(r) => r.offset_at(unix),
            // The footer's offset, or the last transition's when there is no usable footer.
            Tail::Fixed(o) => *o,
        }
    }

    /// The UTC offset, in minutes east, in force at a local wall-clock time given as seconds
    /// since 1970-01-01T00:00:00 local. A local time that occurs twice (clocks going back)
    /// takes the offset in force before the change, the earlier instant (in the northern
    /// summer-time switch: summer time). A local time that never occurs (clocks going forward)
    /// also takes the offset in force before the change (standard time), so it is read as the
    /// instant that many minutes after the change. Seconds of historical offsets are dropped.
    pub fn offset_for_local(&self, local_seconds: i64) -> i16 {
        let mut valid: Option<i32> = None;
        let mut gap: Option<i32> = None;
        for &c in self.candidates.iter() {
            let actual = self.offset_at_utc(local_seconds.saturating_sub(i64::from(c)));
            if actual == c {
                // The largest valid offset is the earliest instant.
                valid = Some(valid.map_or(c, |v| v.max(c)));
            }
            // In a gap the offset rises, so the smaller of the offsets seen around the local
            // time is the one before the change.
            gap = Some(gap.map_or(actual, |g| g.min(actual)));
        }
        let seconds = valid.or(gap).unwrap_or(self.initial);
        (seconds / 60) as i16
    }
}

/// The 44-byte TZif header's counts.
struct Header {
    version: u8,
    isutcnt: usize,
    isstdcnt: usize,
    leapcnt: usize,
    timecnt: usize,
    typecnt: usize,
    charcnt: usize,
}

/// A big-endian 32-bit value at `at`.
fn be32(data: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = data.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// A big-endian 64-bit value at `at`.
fn be64(data: &[u8], at: usize) -> Option<i64> {
    let b: [u8; 8] = data.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(i64::from_be_bytes(b))
}

/// The (seconds since epoch, offset) lists of a TZif data block, the initial offset and the
/// offset of the last transition (or the initial one).
type Block = (Vec<i64>, Vec<i32>, i32, i32);

impl Header {
    fn parse(data: &[u8]) -> Result<Header, String> {
        if data.get(..4) != Some(b"TZif") {
            return Err("no TZif magic".into());
        }
        let version = match data.get(4) {
            Some(0) => 0,
            Some(v @ b'2'..=b'9') => *v,
            _ => return Err("unknown TZif version".into()),
        };
        let count = |i: usize| -> Result<usize, String> {
            be32(data, 20 + 4 * i)
                .map(|v| v as usize)
                .ok_or_else(|| "truncated header".to_string())
        };
        let h = Header {
            version,
            isutcnt: count(0)?,
            isstdcnt: count(1)?,
            leapcnt: count(2)?,
            timecnt: count(3)?,
            typecnt: count(4)?,
            charcnt: count(5)?,
        };
        if h.typecnt == 0 {
            return Err("no local time types".into());
        }
        Ok(h)
    }

    /// Length of the data block that follows the header, with `size`-byte times.
    fn data_len(&self, size: usize) -> Option<usize> {
        let t = self.timecnt.checked_mul(size + 1)?;
        let ty = self.typecnt.checked_mul(6)?;
        let leap = self.leapcnt.checked_mul(size + 4)?;
        t.checked_add(ty)?
            .checked_add(self.charcnt)?
            .checked_add(leap)?
            .checked_add(self.isstdcnt)?
            .checked_add(self.isutcnt)
    }

    /// Reads the transitions and types of the data block `body` (times of `size` bytes).
    fn read(&self, body: &[u8], size: usize) -> Result<Block, String> {
        let len = self.data_len(size).ok_or("counts overflow")?;
        if body.len() < len {
            return Err("truncated data block".into());
        }
        let types_at = self.timecnt * (size + 1);
        let ty = |i: usize| -> Result<i32, String> {
            if i >= self.typecnt {
                return Err("transition names an unknown type".into());
            }
            be32(body, types_at + 6 * i)
                .map(|v| v as i32)
                .ok_or_else(|| "truncated types".to_string())
        };
        let mut times = Vec::with_capacity(self.timecnt);
        let mut offsets = Vec::with_capacity(self.timecnt);
        for i in 0..self.timecnt {
            let t = if size == 8 {
                be64(body, 8 * i)
            } else {
                be32(body, 4 * i).map(|v| i64::from(v as i32))
            }
            .ok_or("truncated transitions")?;
            if times.last().is_some_and(|&last| t <= last) {
                return Err("transitions out of order".into());
            }
            let idx = body
                .get(self.timecnt * size + i)
                .copied()
                .ok_or("truncated indices")?;
            times.push(t);
            offsets.push(ty(usize::from(idx))?);
        }
        let initial = ty(0)?;
        let last = offsets.last().copied().unwrap_or(initial);
        Ok((times, offsets, initial, last))
    }
}

/// Parses `+01:00`, `-0500`, `+0100`, `+01` into seconds east of UTC.
fn parse_fixed_offset(s: &[u8]) -> Option<i32> {
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
    Some(sign * (h * 3600 + m * 60))
}

/// A small cursor over a POSIX TZ string.
struct Cursor<'a> {
    s: &'a [u8],
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.first().copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.s = self.s.get(1..).unwrap_or(&[]);
            true
        } else {
            false
        }
    }

    /// A zone abbreviation: three or more letters, or `<...>` with letters, digits and signs.
    fn name(&mut self) -> Option<()> {
        if self.eat(b'<') {
            let n = self.s.iter().position(|&b| b == b'>')?;
            self.s = self.s.get(n + 1..)?;
            return (n >= 3).then_some(());
        }
        let n = self
            .s
            .iter()
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
        self.s = self.s.get(n..)?;
        (n >= 3).then_some(())
    }

    fn number(&mut self, max_digits: usize) -> Option<i32> {
        let n = self
            .s
            .iter()
            .take(max_digits)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if n == 0 {
            return None;
        }
        let digits = self.s.get(..n)?;
        self.s = self.s.get(n..)?;
        Some(digits.iter().fold(0, |a, &d| a * 10 + i32::from(d - b'0')))
    }

    /// `[+-]hh[:mm[:ss]]` as signed seconds; hours up to 167 (RFC 8536 extension).
    fn hms(&mut self) -> Option<i32> {
        let sign = if self.eat(b'-') {
            -1
        } else {
            self.eat(b'+');
            1
        };
        let h = self.number(3)?;
        let mut secs = h.checked_mul(3600)?;
        if self.eat(b':') {
            secs += self.number(2)? * 60;
            if self.eat(b':') {
                secs += self.number(2)?;
            }
        }
        (h <= 167).then_some(sign * secs)
    }

    /// `Jn`, `n` or `Mm.w.d`, then an optional `/time` (default 02:00:00).
    fn rule_day(&mut self) -> Option<(RuleDay, i32)> {
        let day = if self.eat(b'J') {
            let n = self.number(3)?;
            (1..=365)
                .contains(&n)
                .then_some(RuleDay::Julian1(n as u16))?
        } else if self.eat(b'M') {
            let m = self.number(2)?;
            self.eat(b'.').then_some(())?;
            let w = self.number(1)?;
            self.eat(b'.').then_some(())?;
            let d = self.number(1)?;
            let ok = (1..=12).contains(&m) && (1..=5).contains(&w) && d <= 6;
            ok.then_some(RuleDay::Month(m as u8, w as u8, d as u8))?
        } else {
            let n = self.number(3)?;
            (n <= 365).then_some(RuleDay::Julian0(n as u16))?
        };
        let time = if self.eat(b'/') { self.hms()? } else { 7200 };
        Some((day, time))
    }
}

/// Parses a POSIX TZ string such as `CET-1CEST,M3.5.0,M10.5.0/3`, `<+03>-3` or `UTC0`. A DST
/// name without a rule takes the US rule (`M3.2.0,M11.1.0`), as glibc does.
fn parse_posix_tz(s: &[u8]) -> Option<Tail> {
    let mut c = Cursor { s };
    c.name()?;
    // POSIX offsets are west of UTC; zones are kept east.
    let std = -c.hms()?;
    if c.peek().is_none() {
        return Some(Tail::Fixed(std));
    }
    c.name()?;
    let dst = match c.peek() {
        Some(b',') | None => std + 3600,
        Some(_) => -c.hms()?,
    };
    let (start, end) = if c.eat(b',') {
        let start = c.rule_day()?;
        c.eat(b',').then_some(())?;
        (start, c.rule_day()?)
    } else {
        (
            (RuleDay::Month(3, 2, 0), 7200),
            (RuleDay::Month(11, 1, 0), 7200),
        )
    };
    if c.peek().is_some() {
        return None;
    }
    Some(Tail::Rule(Rule {
        std,
        dst,
        start,
        end,
    }))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn month_days(y: i64, m: u32) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl RuleDay {
    /// Days since 1970-01-01 of this day in year `y`.
    fn day_in(self, y: i64) -> i64 {
        let jan1 = days_from_civil(y, 1, 1);
        match self {
            RuleDay::Julian0(n) => jan1 + i64::from(n),
            RuleDay::Julian1(n) => {
                let n = i64::from(n);
                // Day 60 is March 1 in every year: February 29 is not counted.
                jan1 + n - 1 + i64::from(is_leap(y) && n >= 60)
            }
            RuleDay::Month(m, w, d) => {
                let m = u32::from(m);
                let first = days_from_civil(y, m, 1);
                // 1970-01-01 was a Thursday (4).
                let weekday = (first + 4).rem_euclid(7);
                let mut day =
                    first + (i64::from(d) - weekday).rem_euclid(7) + 7 * (i64::from(w) - 1);
                while day >= first + month_days(y, m) {
                    day -= 7;
                }
                day
            }
        }
    }
}

impl Rule {
    /// The offset in force at a UTC instant.
    fn offset_at(&self, unix: i64) -> i32 {
        // Far beyond any log time; keeps the date arithmetic below from overflowing.
        let unix = unix.clamp(-(1 << 40), 1 << 40);
        let (y, _, _) = civil_from_days((unix + i64::from(self.std)).div_euclid(DAY));
        let start = self.start.0.day_in(y) * DAY + i64::from(self.start.1) - i64::from(self.std);
        let end = self.end.0.day_in(y) * DAY + i64::from(self.end.1) - i64::from(self.dst);
        let dst = if start < end {
            (start..end).contains(&unix)
        } else {
            // Southern hemisphere: summer time spans the new year.
            !(end..start).contains(&unix)
        };
        if dst {
            self.dst
        } else {
            self.std
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix seconds of a UTC civil time.
    fn utc(y: i64, m: u32, d: u32, h: i64, min: i64) -> i64 {
        days_from_civil(y, m, d) * DAY + h * 3600 + min * 60
    }

    /// A TZif v2 file with the given transitions (UTC time, type index), types (offset,
    /// is_dst) and footer.
    fn tzif(transitions: &[(i64, u8)], types: &[(i32, bool)], footer: &str) -> Vec<u8> {
        let header = |out: &mut Vec<u8>, timecnt: usize| {
            out.extend_from_slice(b"TZif2");
            out.extend_from_slice(&[0; 15]);
            for n in [0, 0, 0, timecnt, types.len(), 4] {
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
                out.extend_from_slice(&[u8::from(*dst), 0]);
            }
            out.extend_from_slice(b"XXX\0");
        };
        let mut out = Vec::new();
        // A v1 block that lies (one hour off) proves the 64-bit block is the one read.
        header(&mut out, 0);
        let v1_types: Vec<(i32, bool)> = types.iter().map(|(o, d)| (o + 3600, *d)).collect();
        for (off, dst) in &v1_types {
            out.extend_from_slice(&off.to_be_bytes());
            out.extend_from_slice(&[u8::from(*dst), 0]);
        }
        out.extend_from_slice(b"XXX\0");
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

    #[test]
    fn posix_rules() {
        // Southern hemisphere: Sydney, summer time across the new year.
        let Some(Tail::Rule(r)) = parse_posix_tz(b"AEST-10AEDT,M10.1.0,M4.1.0/3") else {
            panic!("Sydney rule");
        };
        assert_eq!(r.offset_at(utc(2024, 1, 15, 0, 0)), 11 * 3600);
        assert_eq!(r.offset_at(utc(2024, 7, 15, 0, 0)), 10 * 3600);
        // New York by the default US rule, and by Julian days.
        let Some(Tail::Rule(r)) = parse_posix_tz(b"EST5EDT") else {
            panic!("default rule");
        };
        assert_eq!(r.offset_at(utc(2024, 3, 10, 6, 59)), -5 * 3600);
        assert_eq!(r.offset_at(utc(2024, 3, 10, 7, 0)), -4 * 3600);
        assert_eq!(r.offset_at(utc(2024, 11, 3, 5, 59)), -4 * 3600);
        assert_eq!(r.offset_at(utc(2024, 11, 3, 6, 0)), -5 * 3600);
        assert!(matches!(
            parse_posix_tz(b"<+03>-3"),
            Some(Tail::Fixed(10800))
        ));
        assert!(matches!(parse_posix_tz(b"UTC0"), Some(Tail::Fixed(0))));
        let Some(Tail::Rule(r)) = parse_posix_tz(b"XXX3YYY,J60/1,300") else {
            panic!("julian rule");
        };
        assert_eq!(r.offset_at(utc(2024, 6, 1, 0, 0)), -2 * 3600);
        for bad in [
            &b""[..],
            b"C",
            b"CET",
            b"CET-1CEST,M3.5.0",
            b"CET-1CEST,M13.5.0,M10.5.0",
            b"CET-1CEST,M3.5.0,M10.5.0/3x",
            b"<+03",
            b"CET-1CEST,J0,J10",
        ] {
            assert!(
                parse_posix_tz(bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
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
        let at = bad_index.len() - 2 - 12 - 4 - 2;
        bad_index[at] = 9;
        assert!(Zone::from_tzif(&bad_index, "bad").is_err());
        let mut state: u32 = 0x1234_5678;
        for _ in 0..2000 {
            let mut v = good.clone();
            for _ in 0..4 {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let i = (state >> 8) as usize % v.len();
                v[i] = (state >> 24) as u8;
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
