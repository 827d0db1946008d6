//! Sendmail's syslog lines (docs/mta-logs.md, section 3): `from=` arrivals, `to=` deliveries with
//! their `stat=`, the MSP → MTA hop and the DSNs sendmail generates, turned into [`MtaEvent`]s.
//!
//! This module owns the meaning of the text after a sendmail tag. It must not correlate queue
//! ids with tracked messages, fill in retry deadlines or keep per-message state: the tracker
//! does that. The only state kept between lines is the syslog clock's year.

use super::event::{Event, LineParser, MtaEvent, NextHop, Outcome};
use super::mta::{next_hop_queue_id, status_class, RecipientFields};
use super::native::{self, NativeTags};
use super::syslog::{parse_prefix, Prefix, SyslogClock};
use crate::index::message::Action;
use crate::protocol::date::Timestamp;

/// Programs whose lines are sendmail's: the daemon under its usual names, the MSP queue
/// runner, and the names Debian's init script gives its queue runs.
const PROGRAMS: [&[u8]; 8] = [
    b"sendmail",
    b"sm-mta",
    b"sm-msp-queue",
    // Debian's init script (`/etc/init.d/sendmail runq`, its queue runners).
    b"sm-mta-runq",
    b"sm-mta-queue",
    b"sm-msp",
    b"sm-que",
    b"sm-que-runq",
];

/// Mailers that hand the message to a mailbox on this host.
const LOCAL_MAILERS: [&[u8]; 4] = [b"local", b"lmtp", b"prog", b"dovecot"];

/// Mailers that pass the message to another MTA.
const REMOTE_MAILERS: [&[u8]; 5] = [b"esmtp", b"smtp", b"relay", b"dsmtp", b"smtp8"];

/// What the MTA sendmail relays to answers when the MSP hands it a message.
const ACCEPTED: &[u8] = b" Message accepted for delivery";

/// Texts after `QID: NEWQID: ` with which sendmail logs a notification it created
/// (savemail.c `returntosender`): a DSN to the sender or a copy to the postmaster.
const NOTIFY_MARKERS: [&[u8]; 4] = [
    b"DSN:",
    b"postmaster notify:",
    b"return to sender:",
    b"sender notify:",
];

/// A program tag sendmail logs under.
pub fn is_sendmail_program(program: &[u8]) -> bool {
    PROGRAMS.contains(&program)
}

/// Parses sendmail lines from a syslog file, and the native lines of allowed program tags.
#[derive(Debug, Clone)]
pub struct SendmailParser {
    clock: SyslogClock,
    native_tags: NativeTags,
}

impl SendmailParser {
    /// A parser whose classic timestamps are read with `clock`, taking native lines only under
    /// `native_tags`.
    pub fn new(clock: SyslogClock, native_tags: NativeTags) -> SendmailParser {
        SendmailParser { clock, native_tags }
    }
}

impl LineParser for SendmailParser {
    fn parse(&mut self, line: &[u8], emit: &mut dyn FnMut(Event)) -> Outcome {
        let Some(prefix) = parse_prefix(line, &mut self.clock) else {
            return Outcome::Rejected("no syslog prefix");
        };
        self.parse_prefixed(&prefix, line, emit)
    }

    fn parse_prefixed(
        &mut self,
        prefix: &Prefix<'_>,
        _line: &[u8],
        emit: &mut dyn FnMut(Event),
    ) -> Outcome {
        if let Some(parsed) = native::from_syslog(prefix, &self.native_tags) {
            return native::outcome(parsed, emit);
        }
        if !is_sendmail_program(prefix.program) {
            return Outcome::Ignored;
        }
        parse_text(prefix.text, prefix.time, emit)
    }
}

/// A sendmail queue id: 8 chars of date and sequence plus a pid of 6 or more digits, so at
/// least 14 alphanumerics in practice; 8 to 32 are accepted, which keeps `NOQUEUE`,
/// `STARTTLS=server` and other words out.
fn is_queue_id(s: &[u8]) -> bool {
    (8..=32).contains(&s.len()) && s.iter().all(u8::is_ascii_alphanumeric)
}

/// Splits `QID: rest`.
fn split_queue_id(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = s.iter().position(|&b| b == b':')?;
    let (qid, rest) = s.split_at(n);
    let rest = rest.strip_prefix(b": ")?;
    is_queue_id(qid).then_some((qid, rest))
}

/// The `key=value` fields of a `from=` or `to=` line. A field ends at a comma followed by
/// optional spaces and a lower-case `key=`; so commas inside a recipient list or a relay's
/// text do not split it, and `dsn=5.0.0,stat=` without a space still does. `stat=` is always
/// last and may hold anything, so it runs to the end of the line.
struct Fields<'a> {
    rest: &'a [u8],
}

/// Length of a field key (`[a-z_]+`) followed by `=` at the start of `s`.
fn key_len(s: &[u8]) -> Option<usize> {
    let n = s
        .iter()
        .take_while(|&&b| b.is_ascii_lowercase() || b == b'_')
        .count();
    (n > 0 && s.get(n) == Some(&b'=')).then_some(n)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r'] = s {
        s = rest;
    }
    s
}

impl<'a> Iterator for Fields<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let n = key_len(self.rest)?;
        let key = self.rest.get(..n)?;
        let after = self.rest.get(n + 1..)?;
        if key == b"stat" {
            self.rest = &[];
            return Some((key, trim(after)));
        }
        let mut i = 0;
        while let Some(comma) = after.get(i..)?.iter().position(|&b| b == b',') {
            let at = i + comma;
            let next = after.get(at + 1..)?;
            let next = trim(next);
            if key_len(next).is_some() {
                self.rest = next;
                return Some((key, trim(after.get(..at)?)));
            }
            i = at + 1;
        }
        self.rest = &[];
        Some((key, trim(after)))
    }
}

/// An address without its angle brackets.
fn unbracket(s: &[u8]) -> &[u8] {
    let s = trim(s);
    s.strip_prefix(b"<")
        .and_then(|s| s.strip_suffix(b">"))
        .unwrap_or(s)
}

/// Interprets the text after the tag.
fn parse_text(text: &[u8], time: Timestamp, emit: &mut dyn FnMut(Event)) -> Outcome {
    let Some((queue, rest)) = split_queue_id(text) else {
        return Outcome::Ignored;
    };
    if rest.starts_with(b"from=") {
        return from_line(queue, rest, time, emit);
    }
    if rest.starts_with(b"to=") {
        return to_line(queue, rest, time, emit);
    }
    if let Some((new_queue, what)) = split_queue_id(rest) {
        if NOTIFY_MARKERS.iter().any(|m| what.starts_with(m)) {
            emit(Event::Mta(MtaEvent::Notification {
                queue: new_queue.into(),
            }));
            return Outcome::Parsed;
        }
    }
    // Milter, lost input channel, timeouts, STARTTLS…: nothing about delivery.
    Outcome::Ignored
}

/// `from=ADDR, size=N, …, msgid=<ID>, …`: an arrival, or a notification for the null sender.
fn from_line(queue: &[u8], rest: &[u8], time: Timestamp, emit: &mut dyn FnMut(Event)) -> Outcome {
    let mut from = None;
    let mut msgid = None;
    for (key, value) in (Fields { rest }) {
        match key {
            b"from" => from = Some(value),
            b"msgid" => msgid = Some(unbracket(value)),
            _ => {}
        }
    }
    let event = match from {
        None | Some([]) => return Outcome::Rejected("from= without an address"),
        Some(f) if unbracket(f).is_empty() => MtaEvent::Notification {
            queue: queue.into(),
        },
        Some(_) => MtaEvent::Arrival {
            queue: queue.into(),
            time,
            message_id: msgid.filter(|m| !m.is_empty()).map(Box::from),
        },
    };
    emit(Event::Mta(event));
    Outcome::Parsed
}

/// The addresses of a `to=` list: split at commas outside double quotes and angle brackets
/// (a program's command may hold commas: `to="|/usr/bin/x a,b"`).
struct List<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for List<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let (mut quoted, mut angle) = (false, false);
        let mut end = self.rest.len();
        for (i, &c) in self.rest.iter().enumerate() {
            match c {
                b'"' => quoted = !quoted,
                b'<' if !quoted => angle = true,
                b'>' if !quoted => angle = false,
                b',' if !quoted && !angle => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let item = &self.rest[..end];
        self.rest = self.rest.get(end + 1..).unwrap_or(&[]);
        Some(item)
    }
}

/// A `to=` entry that is a program (`"|cmd"`), a file (`/path`) or an `:include:` list.
fn is_program_or_file(a: &[u8]) -> bool {
    let a = a.strip_prefix(b"\"").unwrap_or(a);
    a.starts_with(b"|") || a.starts_with(b"/") || a.starts_with(b":include:")
}

/// The address of `ctladdr=<addr> (uid/gid)`.
fn controlling_address(v: &[u8]) -> &[u8] {
    let v = trim(v);
    let v = match v.iter().rposition(|&c| c == b'(') {
        Some(open) if v.ends_with(b")") => &v[..open],
        _ => v,
    };
    unbracket(v)
}

/// The relay's host name (the first word of `relay=`), without a trailing dot.
fn relay_host(relay: &[u8]) -> &[u8] {
    let host = relay.split(|&b| b == b' ').next().unwrap_or(relay);
    host.strip_suffix(b".").unwrap_or(host)
}

/// True when `relay=` names this host (the MSP's hop to the local MTA).
fn is_loopback(relay: &[u8]) -> bool {
    relay.split(|&b| b == b' ').any(|w| {
        w.starts_with(b"[127.")
            || matches!(w, b"[::1]" | b"[IPv6:::1]" | b"localhost" | b"localhost.")
    })
}

/// `NEWQID` of `Sent (NEWQID Message accepted for delivery)`.
fn accepted_as(stat: &[u8]) -> Option<&[u8]> {
    let inner = stat.strip_prefix(b"Sent (")?.strip_suffix(b")")?;
    let qid = inner.strip_suffix(ACCEPTED)?;
    is_queue_id(qid).then_some(qid)
}

/// `to=LIST, … [mailer=M], … [relay=HOST [IP]], [dsn=X.Y.Z], stat=STATUS`: one recipient
/// event per address, or the hand-off of the MSP to the local MTA.
fn to_line(queue: &[u8], rest: &[u8], time: Timestamp, emit: &mut dyn FnMut(Event)) -> Outcome {
    let (mut to, mut mailer, mut relay, mut dsn, mut stat) = (None, None, None, None, None);
    let mut ctladdr = None;
    for (key, value) in (Fields { rest }) {
        match key {
            b"to" => to = Some(value),
            b"ctladdr" => ctladdr = Some(controlling_address(value)),
            b"mailer" => mailer = Some(value),
            b"relay" => relay = Some(value),
            b"dsn" => dsn = Some(value),
            b"stat" => stat = Some(value),
            _ => {}
        }
    }
    let Some(stat) = stat else {
        return Outcome::Rejected("to= without stat=");
    };
    // `[more]` marks a list split over several lines, each with the full delivery fields.
    let listed = List {
        rest: to.unwrap_or(&[]),
    }
    .map(unbracket)
    .filter(|a| !a.is_empty() && *a != b"[more]");
    // A program, a file or an :include: list stands for the address that led there, the
    // controlling address (sendmail's own DSNs name it, the program going in
    // X-Actual-Recipient): the hub's alias commands are not shown, and one alias with several
    // such targets is one recipient. A local user an alias named is logged by name alone, its
    // controlling address being the user's own (`to=alice, ctladdr=<alice@hub> (1000/1000)`)
    // or, for a name that is no user, the alias (`to=gone, ctladdr=<ghost@hub> (8/0)`, which
    // sendmail's bounce names as Final-Recipient): that address is the recipient.
    let mut addresses: Vec<&[u8]> = Vec::new();
    for a in listed {
        let controlling = ctladdr.filter(|c| !c.is_empty());
        let a = if is_program_or_file(a) {
            match controlling {
                Some(c) => c,
                None => return Outcome::Rejected("program or file delivery without ctladdr="),
            }
        } else {
            match controlling {
                Some(c)
                    if memchr::memchr(b'@', a).is_none() && memchr::memchr(b'@', c).is_some() =>
                {
                    c
                }
                _ => a,
            }
        };
        if !addresses.contains(&a) {
            addresses.push(a);
        }
    }
    if addresses.is_empty() {
        return Outcome::Rejected("to= without an address");
    }
    let mailer = mailer.unwrap_or(&[]);
    if mailer == b"relay" && relay.is_some_and(is_loopback) {
        if let Some(new_queue) = accepted_as(stat) {
            emit(Event::Mta(MtaEvent::Handoff {
                queue: queue.into(),
                new_queue: new_queue.into(),
            }));
            return Outcome::Parsed;
        }
    }
    let local = LOCAL_MAILERS.contains(&mailer) || mailer.starts_with(b"cyrus");
    let remote = REMOTE_MAILERS.contains(&mailer) || (!local && relay.is_some());
    let dsn_class = dsn.and_then(status_class);
    let action = if stat.starts_with(b"Sent") {
        if remote {
            Action::Relayed
        } else {
            Action::Delivered
        }
    } else if stat.starts_with(b"Deferred") || stat == b"queued" || dsn_class == Some(b'4') {
        Action::Delayed
    } else {
        Action::Failed
    };
    let remote_host = match relay {
        Some(r) if remote && action != Action::Delivered => Some(relay_host(r)),
        _ => None,
    };
    // Every address is checked before any is emitted: a line is taken whole or refused.
    let recipients = addresses
        .into_iter()
        .map(|address| {
            RecipientFields {
                final_rcpt: address,
                original: None,
                action,
                status: dsn,
                remote_host,
                reply: Some(stat),
                time,
            }
            .recipient()
        })
        .collect::<Result<Vec<_>, _>>();
    let recipients = match recipients {
        Ok(r) => r,
        Err(reason) => return Outcome::Rejected(reason),
    };
    // The next hop's reply names the id it queued the message as: a hand-off, which the
    // tracker follows when the hop is a host of the cluster.
    let next = stat
        .strip_prefix(b"Sent (")
        .and_then(|s| s.strip_suffix(b")"))
        .filter(|_| action == Action::Relayed)
        .and_then(next_hop_queue_id);
    for recipient in recipients {
        let event = match (next, relay) {
            (Some(next), Some(r)) => MtaEvent::HandedOff {
                queue: queue.into(),
                new_queue: next.into(),
                recipient,
                hop: NextHop::new(relay_host(r), relay_address(r), None),
            },
            _ => MtaEvent::Recipient {
                queue: queue.into(),
                recipient,
            },
        };
        emit(Event::Mta(event));
    }
    Outcome::Parsed
}

/// The address in `relay=HOST. [ADDR]` (or `relay=[ADDR]`), as written between the brackets.
fn relay_address(relay: &[u8]) -> &[u8] {
    relay
        .split(|&b| b == b' ')
        .filter_map(|w| w.strip_prefix(b"[")?.strip_suffix(b"]"))
        .next_back()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::message::Recipient;
    use crate::ingest::timezone::Zone;

    /// 2026-11-22T12:00:00Z: July lines are this year's.
    const NOW: i64 = 1_795_348_800;

    fn parse(line: &str) -> (Outcome, Vec<Event>) {
        let mut p = SendmailParser::new(SyslogClock::new(Zone::utc(), NOW), NativeTags::default());
        let mut events = Vec::new();
        let outcome = p.parse(line.as_bytes(), &mut |e| events.push(e));
        (outcome, events)
    }

    fn time(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s.as_bytes()).unwrap()
    }

    fn b(s: &str) -> Box<[u8]> {
        s.as_bytes().into()
    }

    fn qid(s: &str) -> crate::ingest::queue_id::QueueId {
        s.as_bytes().into()
    }

    fn rcpt(queue: &str, recipient: Recipient) -> Event {
        Event::Mta(MtaEvent::Recipient {
            queue: qid(queue),
            recipient,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn state(
        addr: &str,
        action: Action,
        status: &str,
        remote: Option<&str>,
        diag: Option<&str>,
        t: Timestamp,
    ) -> Recipient {
        Recipient {
            original: None,
            final_rcpt: b(addr),
            action,
            status: b(status),
            remote_mta: remote.map(b),
            diagnostic: diag.map(b),
            last_attempt: (action != Action::Delivered).then_some(t),
            will_retry_until: None,
            at: t.unix,
        }
    }

    #[test]
    fn arrival_with_message_id() {
        let (o, e) = parse("Jul 19 13:28:35 vs184010 sm-mta[11380]: m6JDSZoG011380: from=<monit@blindgaenger.net>, size=553, class=0, nrcpts=1, msgid=<1216474115@vs184010.vserver.de>, proto=SMTP, daemon=MTA-v4, relay=localhost.localdomain [127.0.0.1]");
        assert_eq!(o, Outcome::Parsed);
        assert_eq!(
            e,
            [Event::Mta(MtaEvent::Arrival {
                queue: qid("m6JDSZoG011380"),
                time: time("2026-07-19T13:28:35Z"),
                message_id: Some(b("1216474115@vs184010.vserver.de")),
            })]
        );
    }

    /// Sendmail's fields are bounded like every MTA's (src/ingest/mta.rs): an address past
    /// 512 octets refuses the line, a long `stat=` is cut to fit the Diagnostic-Code.
    #[test]
    fn addresses_and_diagnostics_are_bounded() {
        let long = format!("Jul 19 13:28:36 h sm-mta[1]: m6JDSZoG011380: to=<{}@x.example>, mailer=esmtp, relay=mx.example. [192.0.2.1], dsn=5.1.1, stat=User unknown", "a".repeat(600));
        assert_eq!(
            parse(&long).0,
            Outcome::Rejected("recipient address empty or longer than 512 octets")
        );
        let chatty = format!("Jul 19 13:28:36 h sm-mta[1]: m6JDSZoG011380: to=<a@x.example>, mailer=esmtp, relay=mx.example. [192.0.2.1], dsn=4.0.0, stat=Deferred: {}", "x".repeat(2000));
        let (o, e) = parse(&chatty);
        assert_eq!(o, Outcome::Parsed);
        let Event::Mta(MtaEvent::Recipient { recipient, .. }) = &e[0] else {
            panic!("{e:?}");
        };
        assert_eq!(recipient.diagnostic.as_ref().map(|d| d.len()), Some(512));
    }

    #[test]
    fn relayed_by_esmtp() {
        let (o, e) = parse("Jul 19 13:28:36 vs184010 sm-mta[11383]: m6JDSZoG011380: to=<mail@wzuup.com>, delay=00:00:01, xdelay=00:00:01, mailer=esmtp, pri=120553, relay=gmail-smtp-in.l.google.com. [209.85.129.27], dsn=2.0.0, stat=Sent (OK 1216474116 13si6851157fks.6)");
        assert_eq!(o, Outcome::Parsed);
        let t = time("2026-07-19T13:28:36Z");
        assert_eq!(
            e,
            [rcpt(
                "m6JDSZoG011380",
                state(
                    "mail@wzuup.com",
                    Action::Relayed,
                    "2.0.0",
                    Some("dns;gmail-smtp-in.l.google.com"),
                    None,
                    t
                )
            )]
        );
    }

    #[test]
    fn a_reply_naming_the_next_hop_s_queue_id_is_a_hand_off() {
        for (stat, next) in [
            ("Sent (Ok: queued as 4ZxY1k2Hq3z6)", "4ZxY1k2Hq3z6"),
            (
                "Sent (6B36ZJnG031684 Message accepted for delivery)",
                "6B36ZJnG031684",
            ),
            (
                "Sent (OK id=1smkL5-00000000e65-24eQ)",
                "1smkL5-00000000e65-24eQ",
            ),
        ] {
            let line = format!("Jul 19 13:28:36 hub1 sm-mta[11383]: m6JDSZoG011380: to=<a@cluster.example>, <b@cluster.example>, delay=00:00:01, mailer=esmtp, pri=120553, relay=hub2.example.com. [10.0.0.2], dsn=2.0.0, stat={stat}");
            let (o, e) = parse(&line);
            assert_eq!(o, Outcome::Parsed);
            assert_eq!(e.len(), 2, "one hand-off a recipient: {e:?}");
            for event in e {
                let Event::Mta(MtaEvent::HandedOff {
                    new_queue,
                    hop,
                    recipient,
                    ..
                }) = event
                else {
                    panic!("not a hand-off: {event:?}");
                };
                assert_eq!(new_queue.as_bytes(), next.as_bytes());
                assert_eq!(&*hop.name, b"hub2.example.com");
                assert_eq!(hop.addr, Some("10.0.0.2".parse().unwrap()));
                assert_eq!(recipient.action, Action::Relayed);
            }
        }
    }

    #[test]
    fn deferred() {
        let (o, e) = parse("Apr 10 08:47:25 andrejs sm-mta[593]: r39G922P001173: to=<v**e@inbox.lv>, ctladdr=<www-data@andrejs.domain.lt> (33/33), delay=20:38:23, xdelay=00:00:00, mailer=esmtp, pri=11550899, relay=b.mx.inbox.lv. [89.111.3.74], dsn=4.1.8, stat=Deferred: 450 4.1.8 <www-data@andrejs.domain.lt>: Sender address rejected: Domain not found");
        assert_eq!(o, Outcome::Parsed);
        let t = time("2026-04-10T08:47:25Z");
        assert_eq!(
            e,
            [rcpt(
                "r39G922P001173",
                state(
                    "v**e@inbox.lv",
                    Action::Delayed,
                    "4.1.8",
                    Some("dns;b.mx.inbox.lv"),
                    Some("smtp;Deferred: 450 4.1.8 <www-data@andrejs.domain.lt>: Sender address rejected: Domain not found"),
                    t
                )
            )]
        );
    }

    #[test]
    fn msp_to_mta_hop() {
        let (o, e) = parse("Apr 15 19:44:31 localmachine sm-mta[16699]: m3FMiVh2016699: to=<enrico.luzi@companydomain>, ctladdr=<oi@localmachine.company.net.br> (1000/1000), delay=00:00:00, xdelay=00:00:00, mailer=esmtp, pri=30391, relay=smtp.companydomain. [200.222.3.99], dsn=2.0.0, stat=Sent (ok:  Message 16044892 accepted)");
        assert_eq!(o, Outcome::Parsed);
        let t = time("2026-04-15T19:44:31Z");
        assert_eq!(
            e,
            [rcpt(
                "m3FMiVh2016699",
                state(
                    "enrico.luzi@companydomain",
                    Action::Relayed,
                    "2.0.0",
                    Some("dns;smtp.companydomain"),
                    None,
                    t
                )
            )]
        );
        let (o, e) = parse("Apr 15 19:44:31 localmachine sendmail[16698]: m3FMiGem016698: to=enrico.luzi@companydomain, ctladdr=oi (1000/1000), delay=00:00:15, xdelay=00:00:00, mailer=relay, pri=30072, relay=[127.0.0.1] [127.0.0.1], dsn=2.0.0, stat=Sent (m3FMiVh2016699 Message accepted for delivery)");
        assert_eq!(o, Outcome::Parsed);
        assert_eq!(
            e,
            [Event::Mta(MtaEvent::Handoff {
                queue: qid("m3FMiGem016698"),
                new_queue: qid("m3FMiVh2016699"),
            })]
        );
    }

    #[test]
    fn failure_then_dsn_then_its_local_delivery() {
        let (o, e) = parse("Jun 26 07:24:25 MyVPS1976 sendmail[31762]: q5PNOMeP031760: to=<admin@centos.bz>, ctladdr=<www@MyVPS1976> (501/501), delay=00:00:02, xdelay=00:00:02, mailer=esmtp, pri=121393, relay=mxdomain.qq.com. [64.71.138.90], dsn=5.0.0,stat=Service unavailable");
        assert_eq!(o, Outcome::Parsed);
        let t = time("2026-06-26T07:24:25Z");
        assert_eq!(
            e,
            [rcpt(
                "q5PNOMeP031760",
                state(
                    "admin@centos.bz",
                    Action::Failed,
                    "5.0.0",
                    Some("dns;mxdomain.qq.com"),
                    Some("smtp;Service unavailable"),
                    t
                )
            )]
        );
        let (o, e) = parse("Jun 26 07:24:25 MyVPS1976 sendmail[31762]: q5PNOMeP031760: q5PNOPeP031762: DSN: Service unavailable");
        assert_eq!(o, Outcome::Parsed);
        assert_eq!(
            e,
            [Event::Mta(MtaEvent::Notification {
                queue: qid("q5PNOPeP031762")
            })]
        );
        let (o, e) = parse("Jun 26 07:24:25 MyVPS1976 sendmail[31762]: q5PNOPeP031762: to=root, delay=00:00:00, xdelay=00:00:00, mailer=local, pri=32578, dsn=2.0.0, stat=Sent");
        assert_eq!(o, Outcome::Parsed);
        assert_eq!(
            e,
            [rcpt(
                "q5PNOPeP031762",
                state("root", Action::Delivered, "2.0.0", None, None, t)
            )]
        );
    }

    #[test]
    fn several_recipients_and_continuations() {
        let (o, e) = parse("Jun 26 07:24:25 h sm-mta[1]: q5PNOMeP031760: to=<a@x.example>,b@y.example, <c@z.example>, [more], delay=00:00:02, mailer=esmtp, pri=1, relay=mx.example. [192.0.2.1], dsn=4.4.1, stat=Deferred: Connection timed out with mx.example.");
        assert_eq!(o, Outcome::Parsed);
        let t = time("2026-06-26T07:24:25Z");
        let expect: Vec<Event> = ["a@x.example", "b@y.example", "c@z.example"]
            .iter()
            .map(|a| {
                rcpt(
                    "q5PNOMeP031760",
                    state(
                        a,
                        Action::Delayed,
                        "4.4.1",
                        Some("dns;mx.example"),
                        Some("smtp;Deferred: Connection timed out with mx.example."),
                        t,
                    ),
                )
            })
            .collect();
        assert_eq!(e, expect);
    }

    #[test]
    fn a_program_file_or_include_is_its_controlling_address() {
        let t = time("2026-06-26T07:24:25Z");
        let deferred = |addr: &str| {
            rcpt(
                "q5PNOMeP031760",
                state(
                    addr,
                    Action::Delayed,
                    "4.0.0",
                    None,
                    Some("smtp;Deferred: 75"),
                    t,
                ),
            )
        };
        // The alias command is never the recipient, nor shown; two commands of one alias are
        // one recipient; a command with a comma is one entry.
        for to in [
            r#"to="|/usr/bin/handler --queue=general""#,
            r#"to="|/usr/bin/handler a,b","|/usr/bin/other""#,
            r#"to=/var/spool/tickets"#,
            r#"to=:include:/etc/mail/tickets.list"#,
        ] {
            let (o, e) = parse(&format!("Jun 26 07:24:25 h sm-mta[1]: q5PNOMeP031760: {to}, ctladdr=<deferrer@hub.example.test> (8/0), delay=00:00:00, xdelay=00:00:00, mailer=prog, pri=30833, dsn=4.0.0, stat=Deferred: 75"));
            assert_eq!(o, Outcome::Parsed, "{to}");
            assert_eq!(e, [deferred("deferrer@hub.example.test")], "{to}");
        }
        // A user beside the command keeps its own address.
        let (_, e) = parse(
            r#"Jun 26 07:24:25 h sm-mta[1]: q5PNOMeP031760: to=alice,"|/usr/bin/handler", ctladdr=staff (8/0), delay=00:00:00, mailer=prog, pri=1, dsn=4.0.0, stat=Deferred: 75"#,
        );
        assert_eq!(e, [deferred("alice"), deferred("staff")]);
        // A local user an alias named, by name alone: its controlling address, the alias when
        // the name is no user.
        let (_, e) = parse("Dec  3 06:35:19 vm sm-mta[31673]: 6B36ZJTZ031671: to=mtqpdgone, ctladdr=<ghost@mtqpd-sm.example> (8/0), delay=00:00:00, mailer=local, pri=120168, dsn=5.1.1, reply=550 5.1.1 User unknown, stat=User unknown");
        let Event::Mta(MtaEvent::Recipient { recipient, .. }) = &e[0] else {
            panic!("{e:?}");
        };
        assert_eq!(&*recipient.final_rcpt, b"ghost@mtqpd-sm.example");
        let (_, e) = parse("Dec  3 06:35:19 vm sm-mta[31706]: 6B36ZJDc031705: to=mtqpdtest, ctladdr=<mtqpdtest@mtqpd-sm.example> (1001/1001), delay=00:00:00, xdelay=00:00:00, mailer=local, pri=60449, dsn=2.0.0, stat=Sent");
        let Event::Mta(MtaEvent::Recipient { recipient, .. }) = &e[0] else {
            panic!("{e:?}");
        };
        assert_eq!(&*recipient.final_rcpt, b"mtqpdtest@mtqpd-sm.example");
        // A full address keeps its own domain, whoever the controlling user is.
        let (_, e) = parse("Dec  3 06:35:19 vm sm-mta[31704]: 6B36ZJdp031697: to=<someone@dead.example>, ctladdr=<mtqpdtest@mtqpd-sm.example> (1001/1001), delay=00:00:00, xdelay=00:00:00, mailer=esmtp, pri=30167, relay=[127.0.2.9], dsn=4.4.1, stat=Deferred: Connection refused by [127.0.2.9]");
        let Event::Mta(MtaEvent::Recipient { recipient, .. }) = &e[0] else {
            panic!("{e:?}");
        };
        assert_eq!(&*recipient.final_rcpt, b"someone@dead.example");
        // Debian's queue run (`/etc/init.d/sendmail runq`) logs under its own tag.
        let (o, e) = parse("Dec  3 06:37:30 vm sm-mta-runq[5556]: 6B36bUwc005548: to=<someone@later.example>, ctladdr=<mtqpdtest@mtqpd-sm.example> (1001/1001), delay=00:00:00, xdelay=00:00:00, mailer=esmtp, pri=120167, relay=[127.0.2.77] [127.0.2.77], dsn=2.0.0, stat=Sent (Ok)");
        assert_eq!(o, Outcome::Parsed);
        let Event::Mta(MtaEvent::Recipient { recipient, .. }) = &e[0] else {
            panic!("{e:?}");
        };
        assert_eq!(
            (&*recipient.final_rcpt, recipient.action),
            (&b"someone@later.example"[..], Action::Relayed)
        );
        // Without its controlling address, a command is refused rather than shown.
        let (o, e) = parse(
            r#"Jun 26 07:24:25 h sm-mta[1]: q5PNOMeP031760: to="|/usr/bin/handler", delay=00:00:00, mailer=prog, pri=1, stat=Sent"#,
        );
        assert!(matches!(o, Outcome::Rejected(_)), "{o:?}");
        assert!(e.is_empty());
    }

    #[test]
    fn status_defaults_and_mailers() {
        let t = time("2026-06-26T07:24:25Z");
        // No dsn=: the class of the action; unknown failures fail.
        let (_, e) = parse("Jun 26 07:24:25 h sendmail[1]: q5PNOMeP031760: to=<u@h>, delay=00:00:00, mailer=local, pri=1, stat=User unknown");
        assert_eq!(
            e,
            [rcpt(
                "q5PNOMeP031760",
                state(
                    "u@h",
                    Action::Failed,
                    "5.0.0",
                    None,
                    Some("smtp;User unknown"),
                    t
                )
            )]
        );
        let (_, e) = parse("Jun 26 07:24:25 h sendmail[1]: q5PNOMeP031760: to=<u@h>, delay=00:00:00, mailer=cyrusv2, pri=1, stat=Sent");
        assert_eq!(
            e,
            [rcpt(
                "q5PNOMeP031760",
                state("u@h", Action::Delivered, "2.0.0", None, None, t)
            )]
        );
        let (_, e) = parse("Jun 26 07:24:25 h sm-msp-queue[1]: q5PNOMeP031760: to=<u@h>, delay=00:00:00, mailer=relay, pri=1, relay=[127.0.0.1], stat=queued");
        assert_eq!(
            e,
            [rcpt(
                "q5PNOMeP031760",
                state(
                    "u@h",
                    Action::Delayed,
                    "4.0.0",
                    Some("dns;[127.0.0.1]"),
                    Some("smtp;queued"),
                    t
                )
            )]
        );
        // A code contradicting the stat is replaced by the action's.
        let (_, e) = parse("Jun 26 07:24:25 h sendmail[1]: q5PNOMeP031760: to=<u@h>, mailer=smtp, relay=mx. [192.0.2.1], dsn=2.0.0, stat=Service unavailable");
        assert_eq!(
            e,
            [rcpt(
                "q5PNOMeP031760",
                state(
                    "u@h",
                    Action::Failed,
                    "5.0.0",
                    Some("dns;mx"),
                    Some("smtp;Service unavailable"),
                    t
                )
            )]
        );
    }

    #[test]
    fn null_sender_is_a_notification() {
        let (o, e) = parse("Jun 26 07:24:25 h sendmail[1]: q5PNOPeP031762: from=<>, size=1234, class=0, nrcpts=1, msgid=<x@h>, proto=ESMTP, relay=mx.example [192.0.2.1]");
        assert_eq!(o, Outcome::Parsed);
        assert_eq!(
            e,
            [Event::Mta(MtaEvent::Notification {
                queue: qid("q5PNOPeP031762")
            })]
        );
        let (_, e) = parse("Jun 26 07:24:25 h sendmail[1]: q5PNOPeP031762: from=u@h, size=1, class=0, nrcpts=1, relay=root@localhost");
        assert_eq!(
            e,
            [Event::Mta(MtaEvent::Arrival {
                queue: qid("q5PNOPeP031762"),
                time: time("2026-06-26T07:24:25Z"),
                message_id: None,
            })]
        );
    }

    /// A sender's quoted local part spelling sendmail's fields (`ctladdr=`, another queue id):
    /// only its own message's recipient changes, never another message's.
    #[test]
    fn a_to_address_spelling_fields_names_only_its_own_message() {
        let (_, e) = parse(
            r#"Dec  3 06:35:19 vm sm-mta[1]: 6B36ZJTZ031671: to=<"x, ctladdr=<victim@hub> (8/0), 6B36ZJRh031661: to=victim"@relay.test>, ctladdr=<s@hub> (1001/1001), delay=00:00:00, mailer=esmtp, pri=1, relay=mx. [192.0.2.1], dsn=2.0.0, stat=Sent (ok)"#,
        );
        assert!(!e.is_empty());
        for event in &e {
            let Event::Mta(MtaEvent::Recipient { queue, recipient }) = event else {
                panic!("{event:?}");
            };
            assert_eq!(&**queue, b"6B36ZJTZ031671");
            assert_ne!(&*recipient.final_rcpt, b"victim@hub");
        }
    }

    #[test]
    fn ignored_and_rejected_lines() {
        for (line, outcome) in [
            ("Jun 26 07:24:25 h postfix/smtpd[1]: q5PNOMeP031760: to=<a@b>, stat=Sent", Outcome::Ignored),
            ("Jun 26 07:24:25 h sendmail[1]: q5PNOMeP031760: Milter: no active filter", Outcome::Ignored),
            ("Jun 26 07:24:25 h sendmail[1]: q5PNOMeP031760: lost input channel from x [192.0.2.1] to MTA after rcpt", Outcome::Ignored),
            ("Jun 26 07:24:25 h sendmail[1]: NOQUEUE: connect from x [192.0.2.1]", Outcome::Ignored),
            ("Jun 26 07:24:25 h sendmail[1]: STARTTLS=server, relay=x, version=TLSv1.3", Outcome::Ignored),
            ("Jun 26 07:24:25 h sendmail[1]: starting daemon (8.17.1.9): SMTP+queueing@00:15:00", Outcome::Ignored),
            ("Jun 26 07:24:25 h last message repeated 2 times", Outcome::Ignored),
            ("Jun 26 07:24:25 h sendmail[1]: q5PNOMeP031760: q5PNOPeP031762: something else", Outcome::Ignored),
            ("Jun 26 07:24:25 h sendmail[1]: q5PNOMeP031760: to=<a@b>, delay=00:00:00", Outcome::Rejected("to= without stat=")),
            ("Jun 26 07:24:25 h sendmail[1]: q5PNOMeP031760: to=, stat=Sent", Outcome::Rejected("to= without an address")),
            ("Jun 26 07:24:25 h sendmail[1]: q5PNOMeP031760: to=<>, [more], stat=Sent", Outcome::Rejected("to= without an address")),
            ("Jun 26 07:24:25 h sendmail[1]: q5PNOMeP031760: from=", Outcome::Rejected("from= without an address")),
            ("garbage", Outcome::Rejected("no syslog prefix")),
            ("", Outcome::Rejected("no syslog prefix")),
        ] {
            let (o, e) = parse(line);
            assert_eq!(o, outcome, "{line}");
            assert!(e.is_empty(), "{line}");
        }
    }

    #[test]
    fn truncated_and_random_lines_never_panic() {
        let lines = [
            "Jul 19 13:28:35 vs184010 sm-mta[11380]: m6JDSZoG011380: from=<monit@blindgaenger.net>, size=553, class=0, nrcpts=1, msgid=<1216474115@vs184010.vserver.de>, proto=SMTP, daemon=MTA-v4, relay=localhost.localdomain [127.0.0.1]",
            "Apr 15 19:44:31 localmachine sendmail[16698]: m3FMiGem016698: to=enrico.luzi@companydomain, ctladdr=oi (1000/1000), delay=00:00:15, xdelay=00:00:00, mailer=relay, pri=30072, relay=[127.0.0.1] [127.0.0.1], dsn=2.0.0, stat=Sent (m3FMiVh2016699 Message accepted for delivery)",
            "Jun 26 07:24:25 MyVPS1976 sendmail[31762]: q5PNOMeP031760: q5PNOPeP031762: DSN: Service unavailable",
        ];
        let mut p = SendmailParser::new(SyslogClock::new(Zone::utc(), NOW), NativeTags::default());
        let mut sink = |_: Event| {};
        for line in lines {
            for n in 0..=line.len() {
                let _ = p.parse(&line.as_bytes()[..n], &mut sink);
            }
        }
        let mut rng = fastrand::Rng::with_seed(0x2545_F491_4F6C_DD1D);
        let specials = b",  =<>():[]\xff";
        for _ in 0..20_000 {
            let mut v = lines[rng.usize(..lines.len())].as_bytes().to_vec();
            for _ in 0..4 {
                let i = rng.usize(..v.len());
                v[i] = specials[rng.usize(..specials.len())];
            }
            let _ = p.parse(&v, &mut sink);
        }
    }
}
