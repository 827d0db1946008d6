//! Instants as log lines give them (RFC 3339) and as tracking bodies show them (RFC 5322).
//! An instant keeps the UTC offset it was logged with, so that a body shows the hub's local
//! time, as the RFC 3887 examples do.

use std::fmt::Write as _;

/// The months as RFC 5322 names them.
pub const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// The number (1 to 12) of the month `name` names as [`MONTHS`] does. Compares whole 3-octet
/// arrays, not slices: a slice comparison is a call to `memcmp`, twelve of them for December,
/// on every classic syslog line.
pub fn month_number(name: &[u8]) -> Option<u32> {
    let name: [u8; 3] = name.try_into().ok()?;
    let i = MONTHS.iter().position(|m| **m == name)?;
    Some(i as u32 + 1)
}

/// A point in time with the UTC offset it is shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub unix: i64,
    /// Minutes east of UTC.
    pub offset_minutes: i16,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u32, |acc, &c| {
        acc.checked_mul(10)?.checked_add(u32::from(c - b'0'))
    })
}

impl Timestamp {
    /// The instants a date with a four-digit year can name (0000-01-01 to 9999-12-31, a day's
    /// offset either side): every timestamp the parsers build is in this range.
    const RANGE: std::ops::RangeInclusive<i64> =
        -62_167_219_200 - 86_400..=253_402_300_799 + 86_400;

    /// True for a timestamp a parser could have built (see [`Timestamp::RANGE`]), with an
    /// offset of less than a day: what a decoder of saved timestamps accepts, so that rendering
    /// one can never overflow.
    pub fn is_plausible(&self) -> bool {
        Self::RANGE.contains(&self.unix) && self.offset_minutes.unsigned_abs() < 24 * 60
    }

    /// Builds a timestamp from civil date and time in the given offset, checking every field.
    pub fn from_civil(
        year: i64,
        month: u32,
        day: u32,
        (hour, minute, second): (u32, u32, u32),
        offset_minutes: i16,
    ) -> Option<Timestamp> {
        let valid = (1..=12).contains(&month)
            && (1..=days_in_month(year, month)).contains(&day)
            && hour < 24
            && minute < 60
            && second < 61
            && offset_minutes.unsigned_abs() < 24 * 60;
        if !valid {
            return None;
        }
        let local = days_from_civil(year, month, day) * 86_400
            + i64::from(hour * 3600 + minute * 60 + second.min(59));
        Some(Timestamp {
            unix: local - i64::from(offset_minutes) * 60,
            offset_minutes,
        })
    }

    /// Parses RFC 3339 (`2026-11-22T15:55:35Z`, `2001-01-01T15:15:15-05:00`, with optional
    /// fractional seconds, `t`/space separator and lower-case `z`).
    pub fn parse_rfc3339(s: &[u8]) -> Option<Timestamp> {
        if s.len() < 20 || s[4] != b'-' || s[7] != b'-' || s[13] != b':' || s[16] != b':' {
            return None;
        }
        if !matches!(s[10], b'T' | b't' | b' ') {
            return None;
        }
        let year = digits(&s[0..4])?;
        let month = digits(&s[5..7])?;
        let day = digits(&s[8..10])?;
        let hour = digits(&s[11..13])?;
        let minute = digits(&s[14..16])?;
        let second = digits(&s[17..19])?;
        let mut rest = &s[19..];
        if let Some(frac) = rest.strip_prefix(b".") {
            let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            rest = &frac[n..];
        }
        let offset = match rest {
            b"Z" | b"z" => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let h = digits(&[*h1, *h2])?;
                let m = digits(&[*m1, *m2])?;
                if h > 23 || m > 59 {
                    return None;
                }
                let v = (h * 60 + m) as i16;
                if *sign == b'-' {
                    -v
                } else {
                    v
                }
            }
            _ => return None,
        };
        Timestamp::from_civil(i64::from(year), month, day, (hour, minute, second), offset)
    }

    /// The day of the week in its offset, as RFC 5322 names it (`Mon`).
    pub fn weekday(&self) -> &'static [u8; 3] {
        const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
        let local = self.unix + i64::from(self.offset_minutes) * 60;
        DAYS[local.div_euclid(86_400).rem_euclid(7) as usize]
    }

    /// Appends the RFC 5322 form, e.g. `Mon, 1 Jan 2001 15:15:15 -0500`. Written digit by
    /// digit: it runs for every date of every answer rendered, and `write!` through a
    /// temporary `String` cost more than the rest of the date.
    pub fn write_rfc5322(&self, out: &mut Vec<u8>) {
        fn two(out: &mut Vec<u8>, n: u64) {
            out.extend_from_slice(&[b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]);
        }
        let local = self.unix + i64::from(self.offset_minutes) * 60;
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400) as u64;
        let (y, m, d) = civil_from_days(days);
        out.extend_from_slice(self.weekday());
        out.extend_from_slice(b", ");
        if d >= 10 {
            out.push(b'0' + (d / 10) as u8);
        }
        out.push(b'0' + (d % 10) as u8);
        out.push(b' ');
        out.extend_from_slice(MONTHS[(m - 1) as usize]);
        out.push(b' ');
        if (0..=9999).contains(&y) {
            let y = y as u64;
            two(out, y / 100);
            two(out, y % 100);
        } else {
            out.extend_from_slice(format!("{y:04}").as_bytes());
        }
        out.push(b' ');
        two(out, secs / 3600);
        out.push(b':');
        two(out, secs / 60 % 60);
        out.push(b':');
        two(out, secs % 60);
        out.push(b' ');
        out.push(if self.offset_minutes < 0 { b'-' } else { b'+' });
        let off = u64::from(self.offset_minutes.unsigned_abs());
        if off / 60 < 100 {
            two(out, off / 60);
        } else {
            out.extend_from_slice((off / 60).to_string().as_bytes());
        }
        two(out, off % 60);
    }

    /// Appends the RFC 3339 form in UTC, e.g. `2026-11-22T15:55:35Z` (what native lines carry).
    pub fn write_rfc3339_utc(&self, out: &mut String) {
        let days = self.unix.div_euclid(86_400);
        let secs = self.unix.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let _ = write!(
            out,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
    }

    /// The same instant moved by `seconds`, shown in the same offset.
    pub fn plus(&self, seconds: i64) -> Timestamp {
        Timestamp {
            unix: self.unix.saturating_add(seconds),
            ..*self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(t: Timestamp) -> String {
        let mut v = Vec::new();
        t.write_rfc5322(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn months_by_name_and_nothing_else() {
        for (i, name) in MONTHS.iter().enumerate() {
            assert_eq!(month_number(&name[..]), Some(i as u32 + 1));
        }
        for bad in [&b"jan"[..], b"JAN", b"Ja", b"Janu", b"", b"Dez", b"\xffec"] {
            assert_eq!(month_number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn rfc3887_example_dates() {
        let t = Timestamp::parse_rfc3339(b"2001-01-01T15:15:15-05:00").unwrap();
        assert_eq!(t.unix, 978_380_115);
        assert_eq!(show(t), "Mon, 1 Jan 2001 15:15:15 -0500");
        assert_eq!(show(t.plus(3 * 86_400)), "Thu, 4 Jan 2001 15:15:15 -0500");
        let t = Timestamp::parse_rfc3339(b"2001-01-01T19:15:03-05:00").unwrap();
        assert_eq!(show(t), "Mon, 1 Jan 2001 19:15:03 -0500");
    }

    #[test]
    fn utc_fractions_and_offsets() {
        let t = Timestamp::parse_rfc3339(b"2026-11-22T15:55:35Z").unwrap();
        assert_eq!(show(t), "Sun, 22 Nov 2026 15:55:35 +0000");
        let u = Timestamp::parse_rfc3339(b"2026-11-22T16:55:35.123456+01:00").unwrap();
        assert_eq!(u.unix, t.unix);
        assert_eq!(show(u), "Sun, 22 Nov 2026 16:55:35 +0100");
        let v = Timestamp::parse_rfc3339(b"2026-11-22t15:55:35z").unwrap();
        assert_eq!(v.unix, t.unix);
    }

    #[test]
    fn leap_years_and_day_rollover_across_offsets() {
        let t = Timestamp::parse_rfc3339(b"2024-02-29T23:30:00-01:00").unwrap();
        assert_eq!(show(t), "Thu, 29 Feb 2024 23:30:00 -0100");
        assert_eq!(
            show(Timestamp {
                offset_minutes: 0,
                ..t
            }),
            "Fri, 1 Mar 2024 00:30:00 +0000"
        );
        assert_eq!(
            show(Timestamp {
                unix: 0,
                offset_minutes: 0
            }),
            "Thu, 1 Jan 1970 00:00:00 +0000"
        );
        assert_eq!(
            show(Timestamp {
                unix: -1,
                offset_minutes: 0
            }),
            "Wed, 31 Dec 1969 23:59:59 +0000"
        );
    }

    #[test]
    fn rfc3339_round_trip() {
        let t = Timestamp::parse_rfc3339(b"2001-01-01T15:15:15-05:00").unwrap();
        let mut s = String::new();
        t.write_rfc3339_utc(&mut s);
        assert_eq!(s, "2001-01-01T20:15:15Z");
        assert_eq!(Timestamp::parse_rfc3339(s.as_bytes()).unwrap().unix, t.unix);
    }

    #[test]
    fn invalid_forms() {
        for bad in [
            &b""[..],
            b"2026-11-22",
            b"2026-11-22T15:55:35",
            b"2026-13-22T15:55:35Z",
            b"2026-02-30T15:55:35Z",
            b"2023-02-29T15:55:35Z",
            b"2026-11-22T24:00:00Z",
            b"2026-11-22T15:55:35+24:00",
            b"2026-11-22T15:55:35.Z",
            b"2026-11-22X15:55:35Z",
            b"20x6-11-22T15:55:35Z",
            b"2026-11-22T15:55:35Zjunk",
        ] {
            assert_eq!(
                Timestamp::parse_rfc3339(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn civil_round_trip_over_centuries() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn rfc5322_digits_match_the_formatted_reference() {
        fn reference(t: &Timestamp) -> String {
            const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
            const MONTHS: [&str; 12] = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            let local = t.unix + i64::from(t.offset_minutes) * 60;
            let days = local.div_euclid(86_400);
            let secs = local.rem_euclid(86_400);
            let (y, m, d) = civil_from_days(days);
            let sign = if t.offset_minutes < 0 { '-' } else { '+' };
            let off = t.offset_minutes.unsigned_abs();
            format!(
                "{}, {d} {} {y:04} {:02}:{:02}:{:02} {sign}{:02}{:02}",
                DAYS[days.rem_euclid(7) as usize],
                MONTHS[(m - 1) as usize],
                secs / 3600,
                secs / 60 % 60,
                secs % 60,
                off / 60,
                off % 60
            )
        }
        let mut unix = -70_000_000_000i64;
        let mut offset = i16::MIN;
        for _ in 0..20_000 {
            unix = unix.wrapping_add(7_654_321_987);
            offset = offset.wrapping_add(3_271);
            for t in [
                Timestamp {
                    unix,
                    offset_minutes: offset,
                },
                Timestamp {
                    unix: unix % 4_000_000_000,
                    offset_minutes: offset % 1_440,
                },
            ] {
                let mut v = Vec::new();
                t.write_rfc5322(&mut v);
                assert_eq!(String::from_utf8(v).unwrap(), reference(&t), "{t:?}");
            }
        }
    }
}
