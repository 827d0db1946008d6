//! What mtqpd knows about one tracked message: the per-message facts and one state per
//! recipient, as RFC 3886 reports them. Built and changed by the ingest thread only.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash as _, Hasher};

use crate::protocol::date::Timestamp;
use crate::protocol::secret::Hash;

/// RFC 3886 Action values (section 3.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Delivered,
    Expanded,
    Relayed,
    Transferred,
    Delayed,
    Failed,
    Opaque,
}

impl Action {
    /// Every action, in a fixed order (the state directory stores the position).
    pub const ALL: [Action; 7] = [
        Action::Delivered,
        Action::Expanded,
        Action::Relayed,
        Action::Transferred,
        Action::Delayed,
        Action::Failed,
        Action::Opaque,
    ];

    /// The value as written in a body and in the native log format.
    pub fn name(self) -> &'static str {
        match self {
            Action::Delivered => "delivered",
            Action::Expanded => "expanded",
            Action::Relayed => "relayed",
            Action::Transferred => "transferred",
            Action::Delayed => "delayed",
            Action::Failed => "failed",
            Action::Opaque => "opaque",
        }
    }

    /// Parses an action name (case-insensitive, as RFC 3464 allows).
    pub fn parse(s: &[u8]) -> Option<Action> {
        Action::ALL
            .into_iter()
            .find(|a| a.name().as_bytes().eq_ignore_ascii_case(s))
    }

    /// True while the MTA still holds the message for this recipient.
    pub fn is_pending(self) -> bool {
        self == Action::Delayed
    }
}

/// The state of one recipient of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// ORCPT as `addr-type;address`, e.g. `rfc822;user1@example1.com`.
    pub original: Option<Box<[u8]>>,
    /// The address the MTA delivered (or tried to deliver) to.
    pub final_rcpt: Box<[u8]>,
    pub action: Action,
    /// `class.subject.detail`, optionally followed by a comment: `4.4.1 (No answer from host)`.
    pub status: Box<[u8]>,
    /// `mta-type;name`, e.g. `dns;example3.com`.
    pub remote_mta: Option<Box<[u8]>>,
    /// `diagnostic-type;text`, e.g. `smtp;552 Mailbox full`.
    pub diagnostic: Option<Box<[u8]>>,
    pub last_attempt: Option<Timestamp>,
    pub will_retry_until: Option<Timestamp>,
    /// When the event that set this state happened (unix seconds): a state is only replaced by
    /// a newer one, so lines read out of order cannot move a recipient backwards.
    pub at: i64,
}

/// Everything known about one tracked message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The envid, decoded from xtext.
    pub envid: Box<[u8]>,
    /// SHA-1 of the tracking secret (hash B of RFC 3885).
    pub hash: Hash,
    pub arrival: Timestamp,
    /// The MTRK timeout, seconds after arrival, when the sender gave one.
    pub timeout: Option<u32>,
    /// Extra header fields of the outer MIME header, each a whole `Name: value` line.
    pub headers: Vec<Box<[u8]>>,
    /// In order of first appearance.
    pub recipients: Vec<Recipient>,
    /// The latest event time seen for this message (unix seconds).
    pub last_event: i64,
    /// Finds recipients without scanning once a message has many.
    pub lookup: RecipientIndex,
    /// The ORCPTs the SMTP gate declared for the message's RCPT TOs; empty for nearly every
    /// message.
    pub orcpts: DeclaredOrcpts,
}

/// Most ORCPTs the SMTP gate may declare for one message: a message of more RCPT TOs keeps
/// the first ones, and the lines of the others are refused.
pub const MAX_DECLARED_ORCPTS: usize = 1000;
/// Most octets (RCPT TO addresses and ORCPTs together) the declarations of one message hold.
pub const MAX_DECLARED_BYTES: usize = 128 * 1024;

/// One Original-Recipient the SMTP gate declared (a native `event=recipient` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredOrcpt {
    /// The RCPT TO address, as the client gave it between `<` and `>`.
    pub rcpt: Box<[u8]>,
    /// The ORCPT the client gave with it, as `addr-type;address` (xtext-decoded).
    pub original: Box<[u8]>,
}

/// Why a declaration was not added to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclareRefused {
    /// The message has [`MAX_DECLARED_ORCPTS`] declarations.
    TooMany,
    /// It would take the message's declarations past [`MAX_DECLARED_BYTES`].
    TooLarge,
    /// Its RCPT TO address already has another ORCPT.
    Conflict,
}

impl DeclareRefused {
    /// A short reason, stable for counters and logs.
    pub fn reason(self) -> &'static str {
        match self {
            DeclareRefused::TooMany => "recipient line: its message already has 1000 ORCPTs",
            DeclareRefused::TooLarge => "recipient line: its message's ORCPTs would pass 128 KiB",
            DeclareRefused::Conflict => "recipient line: its rcpt= already has another orcpt=",
        }
    }
}

/// The ORCPTs the SMTP gate declared for a message, one per RCPT TO address, sorted by that
/// address ignoring ASCII case. No MTA logs ORCPT: the gate is the only source, and its
/// declarations are matched against the addresses the MTA's lines give
/// ([`DeclaredOrcpts::apply`]). An empty list allocates nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeclaredOrcpts(Vec<DeclaredOrcpt>);

/// `a` against `b` with ASCII letters folded to lower case.
fn cmp_ignore_case(a: &[u8], b: &[u8]) -> Ordering {
    a.iter()
        .map(u8::to_ascii_lowercase)
        .cmp(b.iter().map(u8::to_ascii_lowercase))
}

/// The address of an `addr-type;address` value (a value without a type is all address).
fn address_of(typed: &[u8]) -> &[u8] {
    match memchr::memchr(b';', typed) {
        Some(i) => typed[i + 1..].trim_ascii(),
        None => typed.trim_ascii(),
    }
}

impl DeclaredOrcpts {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The declarations, sorted by RCPT TO address ignoring ASCII case.
    pub fn iter(&self) -> std::slice::Iter<'_, DeclaredOrcpt> {
        self.0.iter()
    }

    /// Adds the ORCPT `original` declared for the RCPT TO address `rcpt`. Ok(false) when that
    /// address already has it (a line read again), an error when it has another or the
    /// message holds as many declarations as it may.
    pub fn insert(&mut self, rcpt: Box<[u8]>, original: Box<[u8]>) -> Result<bool, DeclareRefused> {
        let at = match self.0.binary_search_by(|d| cmp_ignore_case(&d.rcpt, &rcpt)) {
            Ok(i) if self.0[i].original == original => return Ok(false),
            Ok(_) => return Err(DeclareRefused::Conflict),
            Err(at) => at,
        };
        if self.0.len() >= MAX_DECLARED_ORCPTS {
            return Err(DeclareRefused::TooMany);
        }
        let held: usize = self.0.iter().map(|d| d.rcpt.len() + d.original.len()).sum();
        if held + rcpt.len() + original.len() > MAX_DECLARED_BYTES {
            return Err(DeclareRefused::TooLarge);
        }
        self.0.insert(at, DeclaredOrcpt { rcpt, original });
        Ok(true)
    }

    /// The declaration of the RCPT TO address `rcpt` (ignoring ASCII case).
    fn of_rcpt(&self, rcpt: &[u8]) -> Option<&DeclaredOrcpt> {
        let i = self
            .0
            .binary_search_by(|d| cmp_ignore_case(&d.rcpt, rcpt))
            .ok()?;
        self.0.get(i)
    }

    /// The declared ORCPT a recipient of original address `original` (`addr-type;address`)
    /// and final address `final_rcpt` gets, if any:
    /// - an original that is one of the declared ORCPTs (ignoring ASCII case) gets that one,
    ///   as written in the declaration: so that applying the rule to a recipient it already
    ///   changed changes nothing (see [`Message::declare_orcpt`]);
    /// - else an original whose address is a declared RCPT TO address (ignoring ASCII case)
    ///   gets that address's ORCPT;
    /// - a recipient without an original, the ORCPT of its final address.
    ///
    /// A recipient with an original is not matched by its final address: Postfix
    /// (`orig_to=`) and Exim (`<address>`) log an original only when the address the client
    /// gave is not the one delivered to, so a declaration of the final address belongs to
    /// another RCPT TO (the mailbox an alias leads to, given as well), and taking its ORCPT
    /// would make the two recipients one.
    pub fn original_for(&self, original: Option<&[u8]>, final_rcpt: &[u8]) -> Option<&[u8]> {
        if self.0.is_empty() {
            return None;
        }
        let declared = match original {
            Some(o) => self
                .0
                .iter()
                .find(|d| d.original.eq_ignore_ascii_case(o))
                .or_else(|| self.of_rcpt(address_of(o)))?,
            None => self.of_rcpt(final_rcpt)?,
        };
        Some(&declared.original)
    }

    /// Gives `r` the ORCPT declared for it ([`DeclaredOrcpts::original_for`]). True when that
    /// changed its original.
    pub fn apply(&self, r: &mut Recipient) -> bool {
        match self.original_for(r.original.as_deref(), &r.final_rcpt) {
            Some(o) if r.original.as_deref() != Some(o) => {
                r.original = Some(o.into());
                true
            }
            _ => false,
        }
    }
}

/// Positions of recipients by (original, final) address, built once a message has
/// [`RecipientIndex::THRESHOLD`] recipients, so that a message to 10,000 recipients does not
/// cost a scan of all of them per log line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipientIndex {
    by_hash: Option<HashMap<u64, Vec<u32>>>,
}

/// A recipient's identity, (original, final) address, hashed as [`same_recipient`] compares.
fn address_hash(original: Option<&[u8]>, final_rcpt: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    let mut folded = |a: &[u8]| {
        a.len().hash(&mut h);
        a.iter().for_each(|c| c.to_ascii_lowercase().hash(&mut h));
    };
    match original {
        Some(o) => folded(o),
        None => usize::MAX.hash(&mut h),
    }
    final_rcpt
        .iter()
        .for_each(|c| c.to_ascii_lowercase().hash(&mut h));
    h.finish()
}

/// Whether a line's (original, final) addresses name this recipient: equal but for ASCII
/// case. MTAs write one address in several cases across the lines of one message (Exim prints
/// the local part as its router folded it beside the address as the sender wrote it, and
/// Postfix compares `orig_to` ignoring case), and every MTA a hub runs treats local parts
/// case-insensitively by default; so a deferral and the later delivery update one recipient.
fn same_recipient(r: &Recipient, original: Option<&[u8]>, final_rcpt: &[u8]) -> bool {
    r.final_rcpt.eq_ignore_ascii_case(final_rcpt)
        && match (r.original.as_deref(), original) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            (None, None) => true,
            _ => false,
        }
}

impl RecipientIndex {
    /// Recipients below this count are found by scanning, which is faster and costs nothing.
    pub const THRESHOLD: usize = 32;

    fn find(
        &self,
        recipients: &[Recipient],
        original: Option<&[u8]>,
        final_rcpt: &[u8],
    ) -> Option<usize> {
        let matches = |r: &Recipient| same_recipient(r, original, final_rcpt);
        match &self.by_hash {
            None => recipients.iter().position(matches),
            Some(map) => map
                .get(&address_hash(original, final_rcpt))?
                .iter()
                .map(|&i| i as usize)
                .find(|&i| recipients.get(i).is_some_and(matches)),
        }
    }

    fn added(&mut self, recipients: &[Recipient]) {
        match &mut self.by_hash {
            Some(map) => {
                if let Some(r) = recipients.last() {
                    let i = (recipients.len() - 1) as u32;
                    map.entry(address_hash(r.original.as_deref(), &r.final_rcpt))
                        .or_default()
                        .push(i);
                }
            }
            None if recipients.len() >= Self::THRESHOLD => {
                let mut map: HashMap<u64, Vec<u32>> = HashMap::with_capacity(recipients.len() * 2);
                for (i, r) in recipients.iter().enumerate() {
                    map.entry(address_hash(r.original.as_deref(), &r.final_rcpt))
                        .or_default()
                        .push(i as u32);
                }
                self.by_hash = Some(map);
            }
            None => {}
        }
    }
}

/// How long records are kept, from the operator's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Keep a finished record this long after its last event (seconds).
    pub after_last_event: i64,
    /// How long the MTA keeps retrying (seconds after arrival) before it gives up: bounds how
    /// long a record whose recipients are still delayed is kept.
    pub queue_lifetime: i64,
}

impl Message {
    /// True while some recipient is still queued at this hub.
    pub fn is_pending(&self) -> bool {
        self.recipients.iter().any(|r| r.action.is_pending())
    }

    /// True once it has recipients and none is still queued here: few log lines come after.
    pub fn is_finished(&self) -> bool {
        !self.recipients.is_empty() && !self.is_pending()
    }

    /// The unix time after which the record is no longer served. RFC 3885: never while the
    /// message is still queued; otherwise the earlier of the MTRK timeout and the operator's
    /// retention. A message still "queued" past its queue lifetime is one whose final event
    /// never reached us; it is kept one retention period past that, so memory stays bounded.
    pub fn expires_at(&self, retention: Retention) -> i64 {
        if self.is_pending() {
            let retry_end = self
                .recipients
                .iter()
                .filter_map(|r| r.will_retry_until.map(|t| t.unix))
                .fold(
                    self.arrival.unix.saturating_add(retention.queue_lifetime),
                    i64::max,
                );
            return retry_end.saturating_add(retention.after_last_event);
        }
        let kept = self.last_event.saturating_add(retention.after_last_event);
        match self.timeout {
            Some(t) => kept.min(self.arrival.unix.saturating_add(i64::from(t))),
            None => kept,
        }
    }

    /// Sets the state of the recipient identified by (original, final) address, adding it if
    /// new. Returns false when the update changed nothing: a replayed line, or an older state
    /// than the one held (at equal times a final state wins over a pending one).
    pub fn update_recipient(&mut self, r: Recipient) -> bool {
        self.last_event = self.last_event.max(r.at);
        let found = self
            .lookup
            .find(&self.recipients, r.original.as_deref(), &r.final_rcpt);
        match found.and_then(|i| self.recipients.get_mut(i)) {
            Some(old) if *old == r => false,
            Some(old) if (r.at, !r.action.is_pending()) < (old.at, !old.action.is_pending()) => {
                false
            }
            Some(old) => {
                *old = r;
                true
            }
            None => {
                self.recipients.push(r);
                self.lookup.added(&self.recipients);
                true
            }
        }
    }

    /// The position of the recipient of (`original`, `final_rcpt`), if the message has it.
    pub fn recipient_position(&self, original: Option<&[u8]>, final_rcpt: &[u8]) -> Option<usize> {
        self.lookup.find(&self.recipients, original, final_rcpt)
    }

    /// Adds the ORCPT the SMTP gate declared for the RCPT TO address `rcpt`, and gives it to
    /// the recipients MTA lines already created (files are read in any order), as a later
    /// line's recipient gets it when applied ([`DeclaredOrcpts::apply`]). Ok(false) when the
    /// message already had this declaration.
    pub fn declare_orcpt(
        &mut self,
        rcpt: Box<[u8]>,
        original: Box<[u8]>,
    ) -> Result<bool, DeclareRefused> {
        if !self.orcpts.insert(rcpt, original)? {
            return Ok(false);
        }
        let mut changed = false;
        for r in &mut self.recipients {
            changed |= self.orcpts.apply(r);
        }
        if changed {
            self.reindex();
        }
        Ok(true)
    }

    /// Rebuilds the recipients' lookup after their originals, part of their identity, changed;
    /// two that now have the same identity become one, the newer state kept (as
    /// [`Message::update_recipient`] keeps it).
    fn reindex(&mut self) {
        let recipients = std::mem::take(&mut self.recipients);
        self.lookup = RecipientIndex::default();
        for r in recipients {
            self.update_recipient(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rcpt(i: usize, action: Action, at: i64) -> Recipient {
        Recipient {
            original: (i % 2 == 0).then(|| format!("rfc822;o{i}@x").into_bytes().into()),
            final_rcpt: format!("u{i}@x").into_bytes().into(),
            action,
            status: b"2.0.0"[..].into(),
            remote_mta: None,
            diagnostic: None,
            last_attempt: None,
            will_retry_until: None,
            at,
        }
    }

    fn message() -> Message {
        Message {
            envid: b"e@x"[..].into(),
            hash: [0; 20],
            arrival: Timestamp {
                unix: 0,
                offset_minutes: 0,
            },
            timeout: None,
            headers: Vec::new(),
            recipients: Vec::new(),
            last_event: 0,
            lookup: RecipientIndex::default(),
            orcpts: Default::default(),
        }
    }

    #[test]
    fn one_recipient_whatever_the_case_of_its_address() {
        // Below and above the count where the lookup switches from a scan to a hash.
        for others in [0, RecipientIndex::THRESHOLD + 5] {
            let mut m = message();
            for i in 0..others {
                m.update_recipient(rcpt(i, Action::Delivered, 1));
            }
            let mut deferred = rcpt(1, Action::Delayed, 2);
            deferred.final_rcpt = b"Carol@Hub.Example"[..].into();
            deferred.original = Some(b"rfc822;Alias@Hub.Example"[..].into());
            assert!(m.update_recipient(deferred));
            let mut delivered = rcpt(1, Action::Delivered, 3);
            delivered.final_rcpt = b"carol@hub.example"[..].into();
            delivered.original = Some(b"rfc822;alias@hub.example"[..].into());
            assert!(m.update_recipient(delivered.clone()));
            assert_eq!(m.recipients.len(), others + 1, "others {others}");
            assert_eq!(m.recipients.last(), Some(&delivered));
            // An original on one line and none on the other are two recipients.
            let mut bare = delivered.clone();
            bare.original = None;
            assert!(m.update_recipient(bare));
            assert_eq!(m.recipients.len(), others + 2);
        }
    }

    #[test]
    fn many_recipients_are_updated_in_place_not_duplicated() {
        let mut m = message();
        for i in 0..10_000 {
            assert!(m.update_recipient(rcpt(i, Action::Delayed, 1)));
        }
        for i in (0..10_000).rev() {
            assert!(m.update_recipient(rcpt(i, Action::Delivered, 2)));
            assert!(
                !m.update_recipient(rcpt(i, Action::Delivered, 2)),
                "replay changes nothing"
            );
        }
        assert_eq!(m.recipients.len(), 10_000);
        assert!(m.recipients.iter().all(|r| r.action == Action::Delivered));
        assert!(!m.is_pending());
    }

    #[test]
    fn an_older_state_never_replaces_a_newer_one() {
        let mut m = message();
        assert!(m.update_recipient(rcpt(1, Action::Delivered, 10)));
        assert!(!m.update_recipient(rcpt(1, Action::Delayed, 9)));
        assert!(
            !m.update_recipient(rcpt(1, Action::Delayed, 10)),
            "final wins at equal times"
        );
        assert_eq!(m.recipients[0].action, Action::Delivered);
        assert!(m.update_recipient(rcpt(1, Action::Failed, 11)));
    }

    #[test]
    fn expiry_follows_rfc_3885() {
        let retention = Retention {
            after_last_event: 100,
            queue_lifetime: 1000,
        };
        let mut m = message();
        m.update_recipient(rcpt(1, Action::Delayed, 50));
        assert_eq!(
            m.expires_at(retention),
            1000 + 100,
            "never while queued, bounded by the queue lifetime"
        );
        m.update_recipient(rcpt(1, Action::Delivered, 60));
        assert_eq!(m.expires_at(retention), 160);
        m.timeout = Some(30);
        assert_eq!(m.expires_at(retention), 30, "the MTRK timeout shortens it");
    }

    #[test]
    fn declared_orcpts_match_by_original_then_address_ignoring_case() {
        let mut d = DeclaredOrcpts::default();
        for (rcpt, orcpt) in [
            ("b@X", "rfc822;B@orcpt"),
            ("A@x", "rfc822;a@orcpt"),
            ("c@x", "rfc822;A@X"),
        ] {
            assert_eq!(
                d.insert(rcpt.as_bytes().into(), orcpt.as_bytes().into()),
                Ok(true)
            );
        }
        let rcpts: Vec<&[u8]> = d.iter().map(|o| &*o.rcpt).collect();
        assert_eq!(rcpts, [&b"A@x"[..], b"b@X", b"c@x"], "sorted ignoring case");
        let get = |original: Option<&str>, final_rcpt: &str| {
            d.original_for(original.map(str::as_bytes), final_rcpt.as_bytes())
                .map(|o| String::from_utf8_lossy(o).into_owned())
        };
        assert_eq!(get(None, "B@x").as_deref(), Some("rfc822;B@orcpt"));
        assert_eq!(get(None, "d@x"), None);
        // An original that is a declared ORCPT keeps it (as the declaration writes it), before
        // an address match: the rule applied twice changes nothing.
        assert_eq!(
            get(Some("rfc822;a@x"), "z@x").as_deref(),
            Some("rfc822;A@X")
        );
        assert_eq!(
            get(Some("rfc822;B@ORCPT"), "z@x").as_deref(),
            Some("rfc822;B@orcpt")
        );
        assert_eq!(
            get(Some("rfc822; b@x"), "z@x").as_deref(),
            Some("rfc822;B@orcpt")
        );
        // An original matches by its address only, never by the final one.
        assert_eq!(get(Some("rfc822;d@x"), "b@x"), None);
    }
}
