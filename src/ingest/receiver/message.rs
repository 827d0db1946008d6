//! One received syslog message to the line the ingest thread reads (what
//! [`crate::ingest::syslog::parse_prefix`] takes): RFC 5424 whole, `<PRI>` included; RFC 3164
//! and rsyslog's RFC 3339 forward format without their `<PRI>`. The facility and severity are
//! not needed: the program tag says which MTA wrote the line.

/// The largest PRI: facility 23, severity 7 (RFC 5424 section 6.2.1).
const MAX_PRI: u32 = 191;

/// The line in `message`, or None when it does not start with a valid `<PRI>` (1 to 3
/// digits, at most 191). One trailing LF and then one CR are removed: syslog-ng and rsyslog's
/// RFC 5424 template end octet-counted frames with LF, and LF-framed senders may use CR LF.
pub fn line_of(message: &[u8]) -> Option<&[u8]> {
    let message = message.strip_suffix(b"\n").unwrap_or(message);
    let message = message.strip_suffix(b"\r").unwrap_or(message);
    let inner = message.strip_prefix(b"<")?;
    let digits = inner
        .iter()
        .take(4)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if !(1..=3).contains(&digits) || inner.get(digits) != Some(&b'>') {
        return None;
    }
    let pri = inner[..digits]
        .iter()
        .fold(0, |a, &d| a * 10 + u32::from(d - b'0'));
    if pri > MAX_PRI {
        return None;
    }
    let rest = &inner[digits + 1..];
    Some(if is_rfc5424_version(rest) {
        message
    } else {
        rest
    })
}

/// Whether `rest` (what follows the PRI) starts with RFC 5424's VERSION and its SP: one or
/// two digits, the first not 0. rsyslog's RFC 3339 stamp starts with four digits and `-`.
fn is_rfc5424_version(rest: &[u8]) -> bool {
    matches!(
        rest,
        [b'1'..=b'9', b' ', ..] | [b'1'..=b'9', b'0'..=b'9', b' ', ..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::syslog::{parse_prefix, SyslogClock};
    use crate::ingest::timezone::Zone;

    /// 2026-12-04T00:00:00Z, the day after the lines below.
    const NOW: i64 = 1_796_342_400;

    /// `line_of(message)` and what the ingest thread's prefix parser makes of it: host,
    /// program, pid and text.
    fn read(message: &[u8]) -> (Vec<u8>, String, String, Option<u32>, String) {
        let line = line_of(message).expect("a PRI");
        let mut clock = SyslogClock::new(Zone::utc(), NOW);
        let p = parse_prefix(line, &mut clock)
            .unwrap_or_else(|| panic!("{:?} does not parse", String::from_utf8_lossy(line)));
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (line.to_vec(), s(p.host), s(p.program), p.pid, s(p.text))
    }

    const TEXT: &str = "3D74ADB7400B: to=<a@example.com>, relay=mx.example.com[192.0.2.1]:25, \
                        delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 Ok)";

    #[test]
    fn rsyslog_traditional_forward_format() {
        // RSYSLOG_TraditionalForwardFormat:
        // "<%PRI%>%TIMESTAMP% %HOSTNAME% %syslogtag:1:32%%msg:::sp-if-no-1st-sp%%msg%"
        let msg = format!("<22>Dec  3 08:00:00 mx1 postfix/smtp[4711]: {TEXT}");
        let (line, host, program, pid, text) = read(msg.as_bytes());
        assert_eq!(line, &msg.as_bytes()[4..]);
        assert_eq!(
            (host.as_str(), program.as_str(), pid),
            ("mx1", "postfix/smtp", Some(4711))
        );
        assert_eq!(text, TEXT);
    }

    #[test]
    fn rsyslog_forward_format() {
        // RSYSLOG_ForwardFormat: the same with "%TIMESTAMP:::date-rfc3339%".
        let msg = format!(
            "<22>2026-12-03T08:00:00.123456+01:00 mx1 postfix/submission/smtpd[303]: {TEXT}"
        );
        let (line, host, program, pid, text) = read(msg.as_bytes());
        assert_eq!(line, &msg.as_bytes()[4..]);
        assert_eq!(
            (host.as_str(), program.as_str(), pid),
            ("mx1", "postfix/submission/smtpd", Some(303))
        );
        assert_eq!(text, TEXT);
    }

    #[test]
    fn rsyslog_syslog_protocol23_format() {
        // RSYSLOG_SyslogProtocol23Format: "<%PRI%>1 %TIMESTAMP:::date-rfc3339% %HOSTNAME%
        // %APP-NAME% %PROCID% %MSGID% %STRUCTURED-DATA% %msg%\n": the LF is inside the
        // octet-counted frame; the msg property keeps the space after the tag's colon.
        let msg =
            format!("<22>1 2026-12-03T08:00:00.123456+01:00 mx1 postfix/smtp 4711 - -  {TEXT}\n");
        let (line, host, program, pid, text) = read(msg.as_bytes());
        assert_eq!(line, msg.trim_end_matches('\n').as_bytes());
        assert_eq!(
            (host.as_str(), program.as_str(), pid),
            ("mx1", "postfix/smtp", Some(4711))
        );
        // The msg property's leading space (rsyslog keeps it) is not the MTA's text.
        assert_eq!(text, TEXT);
        // Debian's rsyslog without parser.permitSlashInProgramName cuts APP-NAME at '/'.
        let cut = format!("<22>1 2026-12-03T08:00:00.123456+01:00 mx1 postfix 4711 - -  {TEXT}\n");
        assert_eq!(read(cut.as_bytes()).2, "postfix");
    }

    #[test]
    fn syslog_ng_syslog_driver() {
        // syslog-ng's syslog() destination: RFC 5424, SP before MSG, the BOM optional.
        for bom in ["", "\u{feff}"] {
            let msg =
                format!("<22>1 2026-12-03T08:00:00+01:00 mx1 postfix/qmgr 500 - - {bom}{TEXT}\n");
            let (_, host, program, pid, text) = read(msg.as_bytes());
            assert_eq!(
                (host.as_str(), program.as_str(), pid),
                ("mx1", "postfix/qmgr", Some(500))
            );
            assert_eq!(text, TEXT);
        }
        let sd = format!(
            "<22>1 2026-12-03T08:00:00+01:00 mx1 postfix/qmgr 500 - [meta sequenceId=\"7\"] {TEXT}"
        );
        assert_eq!(read(sd.as_bytes()).4, TEXT);
        // syslog-ng's network() destination: RFC 3164 with an LF, framed by it.
        let msg = format!("<22>Dec  3 08:00:00 mx1 postfix/qmgr[500]: {TEXT}\r\n");
        assert_eq!(read(msg.as_bytes()).4, TEXT);
    }

    #[test]
    fn pri_is_checked() {
        for good in [
            &b"<0>Dec  3 08:00:00 h p: t"[..],
            b"<191>Dec  3 08:00:00 h p: t",
            b"<013>x",
        ] {
            assert!(line_of(good).is_some(), "{}", String::from_utf8_lossy(good));
        }
        for bad in [
            &b""[..],
            b"<",
            b"<>",
            b"<192>x",
            b"<999>x",
            b"<1000>x",
            b"<1x>",
            b"13>x",
            b"<13",
            b"Dec  3 08:00:00 h p: t",
            b"\n",
            b"<-1>x",
        ] {
            assert_eq!(line_of(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        // A version is one or two digits and SP; anything else after PRI is kept as it is.
        assert_eq!(line_of(b"<1>1 x"), Some(&b"<1>1 x"[..]));
        assert_eq!(line_of(b"<1>12 x"), Some(&b"<1>12 x"[..]));
        assert_eq!(line_of(b"<1>123 x"), Some(&b"123 x"[..]));
        assert_eq!(line_of(b"<1>0 x"), Some(&b"0 x"[..]));
        assert_eq!(line_of(b"<1>"), Some(&b""[..]));
    }
}
