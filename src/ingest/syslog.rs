//! Syslog line prefixes: the time, host and program tag that syslog daemons (or Postfix's
//! `maillog_file`) put before an MTA's own text, and the year of classic timestamps, which
//! carry none.
//!
//! This module owns the prefix forms of docs/mta-logs.md, section 1.1: classic `Mmm dd HH:MM:SS`
//! (space- or zero-padded day, one or two spaces), rsyslog RFC 3339 high precision and
//! RFC 5424. It must not interpret the text after the tag: the MTA parsers do that. It never
//! allocates: a [`Prefix`] borrows from the line.

use super::timezone::Zone;
use crate::protocol::date::Timestamp;
use crate::protocol::date::{civil_from_days, month_number};

/// The parts of a syslog line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix<'a> {
    /// When the line was logged; classic times are read in the clock's zone.
    pub time: Timestamp,
    /// The host name as logged (empty for an RFC 5424 `-`).
    pub host: &'a [u8],
    /// The whole tag before `[pid]:` or `:`, e.g. `postfix/submission/smtpd`, `sm-mta`. Empty
    /// when the line has no tag (`last message repeated 3 times`, `-- MARK --`), so that MTA
    /// parsers can ignore such lines rather than reject them.
    pub program: &'a [u8],
    /// The number in `[pid]`, when there is one and it is a number.
    pub pid: Option<u32>,
    /// What follows `]: ` or `: ` (for a line without a tag: everything after the host).
    pub text: &'a [u8],
}

/// The state needed to give classic syslog timestamps a year: the zone they are in, the
/// current date, and the year and month of the last classic line read.
#[derive(Debug, Clone)]
pub struct SyslogClock {
    zone: Zone,
    now_year: i64,
    now_month: u32,
    /// (year, month) of the last classic line that parsed.
    last: Option<(i64, u32)>,
    /// The last classic time read, (year, month, day, hms), and its instant: a busy log writes
    /// many lines a second, and the zone's offset is the costly part of reading one.
    recent: Option<(LocalTime, Timestamp)>,
}

/// A classic time with its year: (year, month, day, (hour, minute, second)).
type LocalTime = (i64, u32, u32, (u32, u32, u32));

impl SyslogClock {
    /// A clock for lines logged in `zone`, read at `now_unix` (the year of the first classic
    /// line is inferred from it).
    pub fn new(zone: Zone, now_unix: i64) -> SyslogClock {
        let local = now_unix.saturating_add(i64::from(zone.offset_at_utc(now_unix)));
        let (now_year, now_month, _) = civil_from_days(local.div_euclid(86_400));
        SyslogClock {
            zone,
            now_year,
            now_month,
            last: None,
            recent: None,
        }
    }

    /// The zone classic times are read in.
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// The year of a classic line logged in `month` (1 to 12). The first line takes the current
    /// year, unless its month is more than one ahead of the current one: then it is last
    /// year's (a log read shortly after New Year; one month ahead is allowed for a host whose
    /// clock or zone is slightly ahead). After that, the month falling by six or more (December
    /// → January) moves on a year and rising by six or more moves back one, so that a log
    /// crossing New Year keeps its order, and a stray old line does not shift later ones.
    fn year_for(&self, month: u32) -> i64 {
        match self.last {
            None if month > self.now_month + 1 => self.now_year - 1,
            None => self.now_year,
            Some((year, last)) if month + 6 <= last => year + 1,
            Some((year, last)) if month >= last + 6 => year - 1,
            Some((year, _)) => year,
        }
    }

    /// The instant of a classic local time, which is then remembered for the next line's year.
    fn classic(&mut self, month: u32, day: u32, hms: (u32, u32, u32)) -> Option<Timestamp> {
        let year = self.year_for(month);
        let key = (year, month, day, hms);
        let time = match self.recent {
            Some((recent, time)) if recent == key => time,
            _ => {
                let local = Timestamp::from_civil(year, month, day, hms, 0)?.unix;
                let offset = self.zone.offset_for_local(local);
                let time = Timestamp {
                    unix: local - i64::from(offset) * 60,
                    offset_minutes: offset,
                };
                self.recent = Some((key, time));
                time
            }
        };
        self.last = Some((year, month));
        Some(time)
    }
}

/// Splits off the first space-separated token (non-empty), returning it and what follows the
/// single space after it (empty at the end of the line).
fn token(s: &[u8]) -> Option<(&[u8], &[u8])> {
    match s.iter().position(|&b| b == b' ') {
        Some(0) => None,
        Some(n) => Some((s.get(..n)?, s.get(n + 1..)?)),
        None if s.is_empty() => None,
        None => Some((s, &[])),
    }
}

/// A decimal number of 1 to 9 digits.
fn number(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 9 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |a, &d| a * 10 + u32::from(d - b'0')))
}

/// Two digits.
fn two(s: &[u8], at: usize) -> Option<u32> {
    number(s.get(at..at + 2)?)
}

/// Splits `tag[pid]: text` or `tag: text`. A line whose text does not start with a tag gives an
/// empty program and the whole text.
fn split_tag(s: &[u8]) -> (&[u8], Option<u32>, &[u8]) {
    let untagged = (&s[..0], None, s);
    let Some(n) = s.iter().position(|&b| matches!(b, b'[' | b':' | b' ')) else {
        return untagged;
    };
    let (program, after) = s.split_at(n);
    if program.is_empty() {
        return untagged;
    }
    let (pid, after) = match after.split_first() {
        Some((b'[', inner)) => {
            let Some(close) = inner.iter().position(|&b| b == b']') else {
                return untagged;
            };
            let (pid, after) = inner.split_at(close);
            (number(pid), after.get(1..).unwrap_or(&[]))
        }
        _ => (None, after),
    };
    match after.split_first() {
        Some((b':', text)) => (program, pid, text.strip_prefix(b" ").unwrap_or(text)),
        _ => untagged,
    }
}

/// Classic `Mmm dd HH:MM:SS host tag[pid]: text`.
fn parse_classic<'a>(line: &'a [u8], clock: &mut SyslogClock) -> Option<Prefix<'a>> {
    // `strftime("%b")` in the C locale: the names of RFC 5322.
    let month = month_number(line.get(..3)?)?;
    let rest = line.get(3..)?.strip_prefix(b" ")?;
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if !(1..=2).contains(&digits) {
        return None;
    }
    let day = number(rest.get(..digits)?)?;
    let t = rest.get(digits..)?.strip_prefix(b" ")?;
    if t.get(2) != Some(&b':') || t.get(5) != Some(&b':') || t.get(8) != Some(&b' ') {
        return None;
    }
    let hms = (two(t, 0)?, two(t, 3)?, two(t, 6)?);
    let (host, rest) = token(t.get(9..)?)?;
    // Only a complete prefix moves the clock's year.
    let time = clock.classic(month, day, hms)?;
    let (program, pid, text) = split_tag(rest);
    Some(Prefix {
        time,
        host,
        program,
        pid,
        text,
    })
}

/// rsyslog high precision: `2023-03-14T00:31:06.621091+01:00 host tag[pid]: text`.
fn parse_rfc3339(line: &[u8]) -> Option<Prefix<'_>> {
    let (stamp, rest) = token(line)?;
    let time = Timestamp::parse_rfc3339(stamp)?;
    let (host, rest) = token(rest)?;
    let (program, pid, text) = split_tag(rest);
    Some(Prefix {
        time,
        host,
        program,
        pid,
        text,
    })
}

/// Skips RFC 5424 STRUCTURED-DATA (`-` or one or more `[id param="value"]` elements, where
/// `\]`, `\"` and `\\` escape inside values), returning what follows.
fn skip_structured_data(s: &[u8]) -> Option<&[u8]> {
    if let Some(rest) = s.strip_prefix(b"-") {
        return Some(rest);
    }
    let mut rest = s;
    if rest.first() != Some(&b'[') {
        return None;
    }
    while let Some(inner) = rest.strip_prefix(b"[") {
        let mut quoted = false;
        let mut escaped = false;
        let mut end = None;
        for (i, &b) in inner.iter().enumerate() {
            match (quoted, escaped, b) {
                (true, true, _) => escaped = false,
                (true, false, b'\\') => escaped = true,
                (true, false, b'"') => quoted = false,
                (false, _, b'"') => quoted = true,
                (false, _, b']') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        rest = inner.get(end? + 1..)?;
    }
    Some(rest)
}

/// An RFC 5424 field, empty for the nil value `-`.
fn nil(s: &[u8]) -> &[u8] {
    if s == b"-" {
        &[]
    } else {
        s
    }
}

/// RFC 5424: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD [MSG]`. A nil (`-`) timestamp gives no
/// prefix: the line cannot be placed in time.
fn parse_rfc5424(line: &[u8]) -> Option<Prefix<'_>> {
    let inner = line.strip_prefix(b"<")?;
    let close = inner.iter().take(4).position(|&b| b == b'>')?;
    if number(inner.get(..close)?)? > 191 {
        return None;
    }
    let (version, rest) = token(inner.get(close + 1..)?)?;
    if version.len() > 2 || number(version)? == 0 {
        return None;
    }
    let (stamp, rest) = token(rest)?;
    let time = Timestamp::parse_rfc3339(stamp)?;
    let (host, rest) = token(rest)?;
    let (app, rest) = token(rest)?;
    let (procid, rest) = token(rest)?;
    let (_msgid, rest) = token(rest)?;
    let text = match skip_structured_data(rest)? {
        [] => &[][..],
        // rsyslog's RFC 5424 template writes its msg property, which keeps the space after the
        // tag's colon: MSG then begins with a space no MTA's text begins with.
        [b' ', msg @ ..] => {
            let msg = msg.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(msg);
            msg.strip_prefix(b" ").unwrap_or(msg)
        }
        _ => return None,
    };
    Some(Prefix {
        time,
        host: nil(host),
        program: nil(app),
        pid: number(procid),
        text,
    })
}

/// Parses the syslog prefix of a line (without its line end): classic, RFC 3339 or RFC 5424,
/// told apart by the first byte. Classic times take their year and offset from `clock`, whose
/// year state advances only on lines that parse. `None` when the line has no such prefix.
pub fn parse_prefix<'a>(line: &'a [u8], clock: &mut SyslogClock) -> Option<Prefix<'a>> {
    match line.first()? {
        b'<' => parse_rfc5424(line),
        b'0'..=b'9' => parse_rfc3339(line),
        _ => parse_classic(line, clock),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-22T12:00:00Z.
    const NOW: i64 = 1_795_348_800;

    fn utc_clock(now: i64) -> SyslogClock {
        SyslogClock::new(Zone::utc(), now)
    }

    fn rfc3339(t: Timestamp) -> String {
        let mut s = String::new();
        t.write_rfc3339_utc(&mut s);
        s
    }

    /// The time of each line, read one after the other on `clock`.
    fn times_read(clock: &mut SyslogClock, lines: &[&[u8]]) -> Vec<String> {
        lines
            .iter()
            .map(|l| rfc3339(parse_prefix(l, clock).unwrap().time))
            .collect()
    }

    fn at(s: &str) -> i64 {
        Timestamp::parse_rfc3339(s.as_bytes()).unwrap().unix
    }

    #[test]
    fn classic_lines_from_the_youyo_fixture() {
        let mut clock = utc_clock(NOW);
        let line = b"Oct 10 15:59:30 mail postfix/smtp[1810]: 3D74ADB7400B: to=<test@example.to>, relay=example.to[192.168.0.20]:25, delay=1.7, delays=0.02/0/1.7/0.06, dsn=2.0.0, status=sent (250 [Sniper] OK 1539154772 snipe-queue 10549)";
        let p = parse_prefix(line, &mut clock).unwrap();
        assert_eq!(rfc3339(p.time), "2026-10-10T15:59:30Z");
        assert_eq!(p.time.offset_minutes, 0);
        assert_eq!(p.host, b"mail");
        assert_eq!(p.program, b"postfix/smtp");
        assert_eq!(p.pid, Some(1810));
        assert!(p
            .text
            .starts_with(b"3D74ADB7400B: to=<test@example.to>, relay="));
        let p = parse_prefix(
            b"Oct 10 15:59:30 mail postfix/qmgr[18719]: 3D74ADB7400B: removed",
            &mut clock,
        )
        .unwrap();
        assert_eq!(
            (p.program, p.pid, p.text),
            (
                &b"postfix/qmgr"[..],
                Some(18719),
                &b"3D74ADB7400B: removed"[..]
            )
        );
    }

    #[test]
    fn classic_day_padding_and_spacing() {
        for (line, date) in [
            (
                &b"Apr  6 13:05:01 server postfix/smtpd[20589]: NOQUEUE: reject"[..],
                "2026-04-06",
            ),
            (
                b"Mar 7 02:09:33 server postfix/smtpd[1]: NOQUEUE: reject",
                "2026-03-07",
            ),
            (
                b"Jan 05 10:00:00 mail postfix/smtpd[1]: NOQUEUE: reject",
                "2026-01-05",
            ),
            (
                b"Dec 31 23:59:59 mail postfix/smtpd[1]: NOQUEUE: reject",
                "2026-12-31",
            ),
        ] {
            // A fresh clock per line: each is a first line.
            let p = parse_prefix(line, &mut utc_clock(NOW)).unwrap();
            assert!(rfc3339(p.time).starts_with(date), "{}", rfc3339(p.time));
            assert_eq!(p.text, b"NOQUEUE: reject");
        }
    }

    #[test]
    fn classic_times_take_the_zone_offset() {
        let zone = Zone::parse("+01:00").unwrap();
        let mut clock = SyslogClock::new(zone, NOW);
        let p = parse_prefix(b"Mar 14 00:31:06 helga postfix/qmgr[3]: x", &mut clock).unwrap();
        assert_eq!(p.time.offset_minutes, 60);
        assert_eq!(p.time.unix, at("2026-03-13T23:31:06Z"));
    }

    #[test]
    fn rfc3339_lines_from_the_helga_fixture() {
        let mut clock = utc_clock(NOW);
        let line = b"2023-03-14T00:31:06.621091+01:00 helga postfix/submission/smtpd[303987]: 4PbCZy4PWKz3tBr: client=unknown[2a02:8109:b240:41c8:9264:99a9:1b0d:15c8], sasl_method=PLAIN, sasl_username=vmail@uhu-banane.net";
        let p = parse_prefix(line, &mut clock).unwrap();
        assert_eq!(p.time.unix, at("2023-03-13T23:31:06Z"));
        assert_eq!(p.time.offset_minutes, 60);
        assert_eq!(p.host, b"helga");
        assert_eq!(p.program, b"postfix/submission/smtpd");
        assert_eq!(p.pid, Some(303_987));
        assert!(p.text.starts_with(b"4PbCZy4PWKz3tBr: client=unknown[2a02:"));
        let line = b"2023-03-14T00:08:35.940347+01:00 helga amavis[237978]: (237978-11) Passed CLEAN {RelayedInbound}";
        let p = parse_prefix(line, &mut clock).unwrap();
        assert_eq!((p.program, p.pid), (&b"amavis"[..], Some(237_978)));
        assert_eq!(p.text, b"(237978-11) Passed CLEAN {RelayedInbound}");
        let p = parse_prefix(b"2023-03-14T00:08:35Z h sm-mta: text", &mut clock).unwrap();
        assert_eq!(
            (p.program, p.pid, p.text),
            (&b"sm-mta"[..], None, &b"text"[..])
        );
        assert_eq!(p.time.unix, at("2023-03-14T00:08:35Z"));
    }

    #[test]
    fn rfc5424_lines() {
        let mut clock = utc_clock(NOW);
        let line = b"<22>1 2023-10-11T22:14:15.003Z mail.example.com postfix/smtpd 4711 - - 3D74ADB7400B: client=x[1.2.3.4]";
        let p = parse_prefix(line, &mut clock).unwrap();
        assert_eq!(p.time.unix, at("2023-10-11T22:14:15Z"));
        assert_eq!(p.host, b"mail.example.com");
        assert_eq!(p.program, b"postfix/smtpd");
        assert_eq!(p.pid, Some(4711));
        assert_eq!(p.text, b"3D74ADB7400B: client=x[1.2.3.4]");
        let line = b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"App]\\\"\"][x@1 a=\"b\"] \xEF\xBB\xBFmsg";
        let p = parse_prefix(line, &mut clock).unwrap();
        assert_eq!(p.time.offset_minutes, -420);
        assert_eq!(
            (p.program, p.pid, p.text),
            (&b"myproc"[..], None, &b"msg"[..])
        );
        let p = parse_prefix(b"<0>1 2023-10-11T22:14:15Z - - - - -", &mut clock).unwrap();
        assert_eq!((p.host, p.program, p.text), (&b""[..], &b""[..], &b""[..]));
        for bad in [
            &b"<22>1 - host app - - - msg"[..],
            b"<192>1 2023-10-11T22:14:15Z h a - - - m",
            b"<22>1 2023-10-11T22:14:15Z h a - - [unclosed m",
            b"<22>1 2023-10-11T22:14:15Z h a - - -x",
            b"<22> 2023-10-11T22:14:15Z h a - - - m",
        ] {
            assert!(
                parse_prefix(bad, &mut clock).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn lines_without_a_tag() {
        let mut clock = utc_clock(NOW);
        let p = parse_prefix(
            b"Oct 10 15:59:30 mail last message repeated 3 times",
            &mut clock,
        )
        .unwrap();
        assert_eq!((p.program, p.pid), (&b""[..], None));
        assert_eq!(p.text, b"last message repeated 3 times");
        let p = parse_prefix(b"Oct 10 15:59:30 mail -- MARK --", &mut clock).unwrap();
        assert_eq!(p.program, b"");
        let p = parse_prefix(b"Oct 10 15:59:30 mail prog[12", &mut clock).unwrap();
        assert_eq!(p.program, b"");
        let p = parse_prefix(b"Oct 10 15:59:30 mail prog[x]: t", &mut clock).unwrap();
        assert_eq!((p.program, p.pid, p.text), (&b"prog"[..], None, &b"t"[..]));
        let p = parse_prefix(b"Oct 10 15:59:30 mail prog[1]:", &mut clock).unwrap();
        assert_eq!(
            (p.program, p.pid, p.text),
            (&b"prog"[..], Some(1), &b""[..])
        );
    }

    #[test]
    fn year_rolls_over_at_new_year() {
        // Read on 2026-01-02: a December line is last year's, the January ones this year's.
        let mut clock = utc_clock(at("2026-01-02T00:00:00Z"));
        let lines: [&[u8]; 5] = [
            b"Dec 31 23:59:58 h p[1]: a",
            b"Dec 31 23:59:59 h p[1]: a",
            b"Jan  1 00:00:00 h p[1]: a",
            b"Dec 31 23:59:59 h p[1]: stray",
            b"Jan  1 00:00:01 h p[1]: a",
        ];
        let got = times_read(&mut clock, &lines);
        assert_eq!(
            got,
            [
                "2025-12-31T23:59:58Z",
                "2025-12-31T23:59:59Z",
                "2026-01-01T00:00:00Z",
                "2025-12-31T23:59:59Z",
                "2026-01-01T00:00:01Z"
            ]
        );
        // A log replayed from one year to the next, read long after.
        let mut clock = utc_clock(at("2026-06-15T00:00:00Z"));
        let t = |l: &[u8], c: &mut SyslogClock| rfc3339(parse_prefix(l, c).unwrap().time);
        assert_eq!(
            t(b"Jun 10 00:00:00 h p: a", &mut clock),
            "2026-06-10T00:00:00Z"
        );
        assert_eq!(
            t(b"Jul 10 00:00:00 h p: a", &mut clock),
            "2026-07-10T00:00:00Z"
        );
        assert_eq!(
            t(b"Dec 10 00:00:00 h p: a", &mut clock),
            "2026-12-10T00:00:00Z"
        );
        assert_eq!(
            t(b"Jan 10 00:00:00 h p: a", &mut clock),
            "2027-01-10T00:00:00Z"
        );
    }

    #[test]
    fn a_future_month_is_last_year() {
        let now = at("2026-03-10T00:00:00Z");
        let t = |l: &[u8]| rfc3339(parse_prefix(l, &mut utc_clock(now)).unwrap().time);
        assert_eq!(t(b"Mar  9 00:00:00 h p: a"), "2026-03-09T00:00:00Z");
        // One month ahead is still this year (a clock slightly ahead), two is last year.
        assert_eq!(t(b"Apr  1 00:00:00 h p: a"), "2026-04-01T00:00:00Z");
        assert_eq!(t(b"May  1 00:00:00 h p: a"), "2025-05-01T00:00:00Z");
        assert_eq!(t(b"Dec 24 00:00:00 h p: a"), "2025-12-24T00:00:00Z");
    }

    #[test]
    fn a_second_read_again_is_the_same_instant_and_any_other_field_is_a_new_one() {
        // The clock keeps the last classic time it read: each field of it must count.
        let mut clock =
            SyslogClock::new(Zone::parse("+02:00").unwrap(), at("2026-01-02T00:00:00Z"));
        let lines: [&[u8]; 9] = [
            b"Dec 31 23:59:59 h p: a",
            b"Dec 31 23:59:59 h p: a",
            b"Jan  1 23:59:59 h p: a",
            b"Jan  1 23:59:59 h p: a",
            b"Jan  2 23:59:59 h p: a",
            b"Feb  2 23:59:59 h p: a",
            b"Feb  2 22:59:59 h p: a",
            b"Feb  2 22:58:59 h p: a",
            b"Feb  2 22:58:58 h p: a",
        ];
        let got = times_read(&mut clock, &lines);
        assert_eq!(
            got,
            [
                "2025-12-31T21:59:59Z",
                "2025-12-31T21:59:59Z",
                "2026-01-01T21:59:59Z",
                "2026-01-01T21:59:59Z",
                "2026-01-02T21:59:59Z",
                "2026-02-02T21:59:59Z",
                "2026-02-02T20:59:59Z",
                "2026-02-02T20:58:59Z",
                "2026-02-02T20:58:58Z",
            ]
        );
    }

    #[test]
    fn bad_lines_do_not_move_the_year() {
        let mut clock = utc_clock(at("2026-01-02T00:00:00Z"));
        assert!(parse_prefix(b"Dec 31 23:59:59 ", &mut clock).is_none());
        let p = parse_prefix(b"Jan  1 00:00:00 h p: a", &mut clock).unwrap();
        assert_eq!(rfc3339(p.time), "2026-01-01T00:00:00Z");
        // February 29 of a year that has none.
        assert!(parse_prefix(b"Feb 29 00:00:00 h p: a", &mut clock).is_none());
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        let mut clock = utc_clock(NOW);
        for bad in [
            &b""[..],
            b" ",
            b"Oct",
            b"Oct 10",
            b"Oct 10 15:59:30",
            b"Oct 10 15:59:30 ",
            b"Oct   10 15:59:30 mail p: t",
            b"Oct 100 15:59:30 mail p: t",
            b"Oct 10 15:5930 mail p: t",
            b"Oct 10 25:59:30 mail p: t",
            b"Oct 32 15:59:30 mail p: t",
            b"Oct 0 15:59:30 mail p: t",
            b"oct 10 15:59:30 mail p: t",
            b"Foo 10 15:59:30 mail p: t",
            b"2023-03-14T00:31:06 helga p: t",
            b"2023-03-14T00:31:06Z",
            b"2023-03-14T00:31:06Z ",
            b"<",
            b"<>1 ",
            b"<99999999999999999999>1 x",
        ] {
            assert!(
                parse_prefix(bad, &mut clock).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let samples: [&[u8]; 3] = [
            b"Oct 10 15:59:30 mail postfix/smtp[1810]: 3D74ADB7400B: to=<a@b>",
            b"2023-03-14T00:31:06.621091+01:00 helga postfix/submission/smtpd[303987]: x",
            b"<165>1 2003-08-24T05:14:15.000003-07:00 h p 1 ID [a b=\"]\\\"\"] msg",
        ];
        for s in samples {
            for n in 0..=s.len() {
                let _ = parse_prefix(&s[..n], &mut clock);
            }
        }
        let mut rng = fastrand::Rng::with_seed(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let len = rng.usize(..80);
            let mut line: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            // Half of them start like a real prefix, to reach the deeper paths.
            if rng.bool() {
                let s = samples[rng.usize(..3)];
                let keep = rng.usize(..s.len());
                line.splice(0..0, s[..keep].iter().copied());
            }
            let _ = parse_prefix(&line, &mut clock);
        }
    }

    #[test]
    fn every_line_of_the_real_fixtures() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/real-logs");
        for name in [
            "postfix-rfc3164-youyo-test.log",
            "postfix-rfc3339-helga-excerpt.log",
        ] {
            let data = std::fs::read(dir.join(name)).expect("fixture in tests/data/real-logs");
            let mut clock = utc_clock(NOW);
            for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let p = parse_prefix(line, &mut clock);
                let p = p.unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(line)));
                assert!(!p.program.is_empty(), "{}", String::from_utf8_lossy(line));
                assert!(p.pid.is_some());
            }
        }
    }
}
