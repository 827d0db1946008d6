//! One mail transaction as the gate follows it, from the MTA's 2xx to MAIL to its reply to the
//! data: whether it is tracked, and the recipients the MTA accepted with the ORCPT each was
//! given. At the final 250 a tracked transaction becomes native lines (docs/ARCHITECTURE.md,
//! "The native log format"): one accept line and one recipient line per accepted recipient.

use std::net::IpAddr;

use super::smtp::command::Rcpt;
use super::smtp::mail::{Tracking, Untracked};
use crate::protocol::date::Timestamp;
use crate::protocol::secret::encode;
use crate::protocol::xtext;

/// Most recipients remembered per transaction (Postfix's default `smtpd_recipient_limit`);
/// more still reach the MTA, but their ORCPT is not written.
pub const MAX_RECIPIENTS: usize = 1000;
/// Most octets of addresses and ORCPTs remembered per transaction.
pub const MAX_RECIPIENT_BYTES: usize = 256 * 1024;

/// A transaction the MTA accepted MAIL for.
#[derive(Debug, Default)]
pub struct Transaction {
    /// None without MTRK; the reason when MTRK was given but cannot be tracked.
    pub tracking: Option<Result<Tracking, Untracked>>,
    recipients: Vec<Rcpt>,
    recipient_bytes: usize,
    /// Accepted recipients beyond the bounds, not remembered.
    pub recipients_dropped: u64,
}

impl Transaction {
    pub fn new(tracking: Option<Result<Tracking, Untracked>>) -> Transaction {
        Transaction {
            tracking,
            ..Transaction::default()
        }
    }

    /// Remembers a recipient the MTA accepted. An ORCPT that is not valid xtext is not kept
    /// (the native line must parse); the recipient is.
    pub fn add(&mut self, mut rcpt: Rcpt) {
        if !matches!(self.tracking, Some(Ok(_))) {
            return;
        }
        let size = rcpt.address.len() + rcpt.orcpt.as_ref().map_or(0, |o| o.len());
        if self.recipients.len() >= MAX_RECIPIENTS
            || self.recipient_bytes + size > MAX_RECIPIENT_BYTES
        {
            self.recipients_dropped += 1;
            return;
        }
        if let Some(o) = &rcpt.orcpt {
            let mut sink = Vec::new();
            if xtext::decode_append(o, &mut sink, o.len()).is_err() {
                rcpt.orcpt = None;
            }
        }
        self.recipient_bytes += size;
        self.recipients.push(rcpt);
    }

    /// The native lines of a tracked transaction the MTA (whose lines name it `host`, when
    /// given) queued as `queue`, each ending in LF.
    pub fn native_lines(
        &self,
        tracking: &Tracking,
        queue: &[u8],
        host: Option<&str>,
        client: IpAddr,
        at: &Timestamp,
    ) -> Vec<u8> {
        let mut common = Vec::with_capacity(256);
        let mut time = String::new();
        at.write_rfc3339_utc(&mut time);
        common.extend_from_slice(b" time=");
        common.extend_from_slice(time.as_bytes());
        common.extend_from_slice(b" envid=");
        common.extend_from_slice(&tracking.envid);
        common.extend_from_slice(b" mtrk=");
        xtext::encode_append(encode(&tracking.hash).as_bytes(), &mut common);
        common.extend_from_slice(b" queue=");
        xtext::encode_append(queue, &mut common);
        if let Some(h) = host {
            // A host name (checked at start-up): nothing to encode.
            common.extend_from_slice(b" host=");
            common.extend_from_slice(h.as_bytes());
        }

        let mut out = Vec::with_capacity(common.len() * (1 + self.recipients.len()) + 128);
        out.extend_from_slice(b"mtqp: event=accept");
        out.extend_from_slice(&common);
        if let Some(t) = tracking.timeout {
            out.extend_from_slice(format!(" timeout={t}").as_bytes());
        }
        out.extend_from_slice(b" client=");
        xtext::encode_append(client.to_string().as_bytes(), &mut out);
        out.push(b'\n');
        for r in &self.recipients {
            out.extend_from_slice(b"mtqp: event=recipient");
            out.extend_from_slice(&common);
            out.extend_from_slice(b" rcpt=");
            xtext::encode_append(&r.address, &mut out);
            if let Some(o) = &r.orcpt {
                out.extend_from_slice(b" orcpt=");
                out.extend_from_slice(o);
            }
            out.push(b'\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::event::Event;
    use crate::ingest::native::parse_text;
    use crate::protocol::secret::sha1;

    fn tracking() -> Tracking {
        Tracking {
            envid: b"env+2B1".as_slice().into(),
            hash: sha1(b"secret"),
            timeout: Some(600),
        }
    }

    #[test]
    fn the_mta_s_host_names_the_queue_id_s_host() {
        let t = Transaction::new(Some(Ok(tracking())));
        let at = Timestamp::parse_rfc3339(b"2030-01-02T03:04:05Z").unwrap();
        let ip = "192.0.2.7".parse().unwrap();
        let lines = t.native_lines(&tracking(), b"4ZxY", Some("hub1"), ip, &at);
        let first = lines.split(|&c| c == b'\n').next().unwrap();
        match parse_text(first) {
            Some(Ok(Some(Event::Accept(a)))) => {
                assert_eq!(a.queue.as_deref(), Some(&b"4ZxY"[..]));
                assert_eq!(a.host.as_deref(), Some(&b"hub1"[..]));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_lines_parse_as_native_lines() {
        let mut t = Transaction::new(Some(Ok(tracking())));
        t.add(Rcpt {
            address: b"a b@example.org".as_slice().into(),
            orcpt: Some(b"rfc822;user+2Bx@example.org".as_slice().into()),
        });
        t.add(Rcpt {
            address: b"c@example.org".as_slice().into(),
            orcpt: Some(b"rfc822;bad+zz".as_slice().into()),
        });
        let at = Timestamp::parse_rfc3339(b"2030-01-02T03:04:05Z").unwrap();
        let lines = t.native_lines(
            &tracking(),
            b"4ZxY",
            None,
            "192.0.2.7".parse().unwrap(),
            &at,
        );
        let text = String::from_utf8(lines.clone()).unwrap();
        let mtrk = xtext::encode(encode(&sha1(b"secret")).as_bytes());
        assert_eq!(
            text,
            format!(
                "mtqp: event=accept time=2030-01-02T03:04:05Z envid=env+2B1 mtrk={mtrk} \
                 queue=4ZxY timeout=600 client=192.0.2.7\n\
                 mtqp: event=recipient time=2030-01-02T03:04:05Z envid=env+2B1 mtrk={mtrk} \
                 queue=4ZxY rcpt=a+20b@example.org orcpt=rfc822;user+2Bx@example.org\n\
                 mtqp: event=recipient time=2030-01-02T03:04:05Z envid=env+2B1 mtrk={mtrk} \
                 queue=4ZxY rcpt=c@example.org\n"
            )
        );
        let first = lines.split(|&c| c == b'\n').next().unwrap();
        match parse_text(first) {
            Some(Ok(Some(Event::Accept(a)))) => {
                assert_eq!(&*a.envid, b"env+1");
                assert_eq!(a.hash, sha1(b"secret"));
                assert_eq!(a.timeout, Some(600));
                assert_eq!(a.queue.as_deref(), Some(&b"4ZxY"[..]));
            }
            other => panic!("{other:?}"),
        }
        for line in lines
            .split(|&c| c == b'\n')
            .skip(1)
            .filter(|l| !l.is_empty())
        {
            assert!(
                matches!(parse_text(line), Some(Ok(Some(Event::Orcpt(_))) | Ok(None))),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    /// A client chooses the RCPT address (a quoted local part may hold spaces and `=`) and the
    /// ORCPT: neither can add a key to the line, nor name another message's queue or envid.
    #[test]
    fn a_client_s_address_and_orcpt_cannot_forge_keys() {
        let mut t = Transaction::new(Some(Ok(tracking())));
        let forged = b"\"x queue=VICTIM envid=other mtrk=AAAA\"@example.org";
        t.add(Rcpt {
            address: forged.as_slice().into(),
            orcpt: Some(b"rfc822;y@example.org queue=VICTIM".as_slice().into()),
        });
        let at = Timestamp::parse_rfc3339(b"2030-01-02T03:04:05Z").unwrap();
        let lines = t.native_lines(&tracking(), b"Q1", None, "192.0.2.7".parse().unwrap(), &at);
        let recipient = lines.split(|&c| c == b'\n').nth(1).unwrap();
        match parse_text(recipient) {
            // The ORCPT holding a space is not xtext: dropped, so the line declares nothing.
            Some(Ok(None)) => {}
            other => panic!("{other:?}"),
        }
        let mut t = Transaction::new(Some(Ok(tracking())));
        t.add(Rcpt {
            address: forged.as_slice().into(),
            orcpt: Some(b"rfc822;y@example.org".as_slice().into()),
        });
        let lines = t.native_lines(&tracking(), b"Q1", None, "192.0.2.7".parse().unwrap(), &at);
        let recipient = lines.split(|&c| c == b'\n').nth(1).unwrap();
        match parse_text(recipient) {
            Some(Ok(Some(Event::Orcpt(o)))) => {
                assert_eq!(&*o.rcpt, forged.as_slice());
                assert_eq!(&*o.envid, b"env+1");
                assert_eq!(o.hash, sha1(b"secret"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn recipients_are_bounded_and_only_kept_when_tracked() {
        let rcpt = || Rcpt {
            address: b"r@example.org".as_slice().into(),
            orcpt: None,
        };
        let mut untracked = Transaction::new(None);
        untracked.add(rcpt());
        assert!(untracked.recipients.is_empty());
        let mut t = Transaction::new(Some(Ok(tracking())));
        for _ in 0..MAX_RECIPIENTS + 5 {
            t.add(rcpt());
        }
        assert_eq!(t.recipients.len(), MAX_RECIPIENTS);
        assert_eq!(t.recipients_dropped, 5);
    }
}
