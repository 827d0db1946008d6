//! How the tracker holds a message between the lines that change it: whole ([`Stored::Live`])
//! or only as its index record ([`Stored::Packed`]), whose answer doubles as the message.
//!
//! An index record carries, beside its answer, a sidecar of octets the index does not read.
//! The tracker writes there what it needs to get the message back ([`pack`]): nearly always the
//! few numbers the answer does not show ([`Extras`]), the rest being read back from the answer
//! itself ([`super::read_back`]); the message's whole encoding ([`super::codec`]) only when the
//! answer does not read back exactly (a value the renderer escaped or trimmed, extra header
//! lines). [`pack`] checks which, for every message it packs.

use std::borrow::Cow;

use super::codec::{get_message_rest, put_message_rest};
use super::read_back::{self, read_back, CarriedOrcpt, Extras};
use crate::index::entry::framed_part;
use crate::index::message::{DeclaredOrcpt, Message, Retention, MAX_DECLARED_ORCPTS};
use crate::index::Entry;
use crate::ingest::state::{Corrupt, Decoder, Encoder};
use crate::protocol::secret::Hash;

/// A message as the tracker holds it: whole while lines about it are being applied; once
/// published, only as its index record, from which the message is unpacked when a later line
/// changes it. A mail hub's queue holds many messages that wait hours for a retry: they cost
/// their record and not a second, whole copy. Boxed, so that the map of a million messages
/// holds 24 octets a message rather than a whole `Message`.
///
/// A finished message no queue id refers to any more leaves the tracker altogether (see
/// [`super::Tracker::evict_finished`]): its record in the index is all that is kept, and a
/// late line naming its envid takes it back from there.
#[derive(Debug)]
pub(super) enum Stored {
    Live(Box<Message>),
    /// With the log time of the message's latest event, and whether it was finished (it had
    /// recipients and none was pending).
    Packed {
        entry: Entry,
        last_event: i64,
        finished: bool,
    },
}

/// How a record's sidecar carries its message (its first octet): the answer reads back into
/// the message, and the sidecar holds only the [`Extras`]...
pub(super) const SIDECAR_EXTRAS: u8 = 1;
/// ...or the sidecar holds the message's whole encoding after its envid and hash.
pub(super) const SIDECAR_WHOLE: u8 = 0;

/// Writes into `buf` the sidecar of the record of message `m`, whose answer is `wire`.
pub(super) fn pack(m: &Message, wire: &[u8], buf: &mut Vec<u8>) {
    let mut enc = Encoder {
        buf: std::mem::take(buf),
    };
    enc.buf.clear();
    // Only a record that keeps the framed part has the answer to read back from.
    if framed_part(&m.envid, wire).is_some_and(|body| read_back::round_trips(body, m)) {
        enc.u8(SIDECAR_EXTRAS);
        put_extras(&mut enc, m);
    } else {
        enc.u8(SIDECAR_WHOLE);
        put_message_rest(&mut enc, m);
    }
    *buf = enc.buf;
}

/// The [`Extras`] of `m` in a few octets (written from the message, not through an `Extras`:
/// this runs for every message published): the timeout plus one (0 for none), the last event's
/// time, the count, and how long before the last event each recipient's state was set (nearly
/// always 0). Then, only when the SMTP gate declared ORCPTs (so that the usual record gains
/// nothing), their count and each one: 0 and both values, or the position plus one of the
/// recipient that shows it ([`CarriedOrcpt::Recipient`]).
fn put_extras(enc: &mut Encoder, m: &Message) {
    enc.varint(m.timeout.map_or(0, |t| u64::from(t) + 1));
    enc.zigzag(m.last_event);
    enc.varint(m.recipients.len() as u64);
    for r in &m.recipients {
        enc.zigzag(m.last_event.wrapping_sub(r.at));
    }
    if m.orcpts.is_empty() {
        return;
    }
    enc.varint(m.orcpts.len() as u64);
    for d in m.orcpts.iter() {
        match m.recipient_position(Some(&d.original), &d.rcpt) {
            Some(i) => enc.varint(i as u64 + 1),
            None => {
                enc.varint(0);
                enc.bytes(&d.rcpt);
                enc.bytes(&d.original);
            }
        }
    }
}

fn get_extras(dec: &mut Decoder<'_>) -> Result<Extras, Corrupt> {
    let timeout = match dec.varint()? {
        0 => None,
        t => Some(u32::try_from(t - 1).map_err(|_| Corrupt("bad timeout".into()))?),
    };
    let last_event = dec.zigzag()?;
    let count = dec.varint()?;
    // Every time takes at least one octet: a corrupt count cannot reserve memory.
    if count > dec.rest().len() as u64 {
        return Err(Corrupt("recipient count exceeds the sidecar".into()));
    }
    let recipient_times = (0..count)
        .map(|_| Ok(last_event.wrapping_sub(dec.zigzag()?)))
        .collect::<Result<_, Corrupt>>()?;
    let mut orcpts = Vec::new();
    if !dec.is_done() {
        let count = dec.varint()?;
        if count > MAX_DECLARED_ORCPTS as u64 || count > dec.rest().len() as u64 {
            return Err(Corrupt(format!("{count} declared ORCPTs")));
        }
        for _ in 0..count {
            orcpts.push(match dec.varint()? {
                0 => CarriedOrcpt::Whole(DeclaredOrcpt {
                    rcpt: dec.bytes()?,
                    original: dec.bytes()?,
                }),
                i => CarriedOrcpt::Recipient(
                    usize::try_from(i - 1).map_err(|_| Corrupt("bad recipient".into()))?,
                ),
            });
        }
    }
    Ok(Extras {
        timeout,
        last_event,
        recipient_times,
        orcpts,
    })
}

/// The message of an index record, from its header, sidecar and answer. None for a record
/// without a sidecar (a message the tracker holds) or one that does not decode, which cannot
/// happen for records this module wrote.
pub(super) fn unpack(entry: &Entry) -> Option<Message> {
    let (&kind, sidecar) = entry.sidecar().split_first()?;
    let mut dec = Decoder::new(sidecar);
    let m = match kind {
        SIDECAR_EXTRAS if entry.framed() => {
            let extras = get_extras(&mut dec).ok()?;
            read_back(
                entry.body(),
                entry.shared_head(),
                entry.envid(),
                *entry.hash(),
                &extras,
            )?
        }
        SIDECAR_WHOLE => get_message_rest(&mut dec, entry.envid().into(), *entry.hash()).ok()?,
        _ => return None,
    };
    dec.is_done().then_some(m)
}

/// The message the tracker gets back from the record it would publish for `m`, and whether
/// that record carries it read back from its answer (true) or stored whole (false). None when
/// `m` gets no record (an envid longer than 65,535 octets). The property the tracker relies
/// on, checked by a unit test and a fuzz target: it is always `m` itself.
pub fn republished(m: &Message, reporting_mta: &str) -> Option<(Message, bool)> {
    let wire = crate::index::render::render(m, reporting_mta);
    let mut sidecar = Vec::new();
    pack(m, &wire, &mut sidecar);
    let entry = Entry::new(&m.envid, &m.hash, i64::MAX, &wire, &sidecar)?;
    Some((unpack(&entry)?, sidecar[0] == SIDECAR_EXTRAS))
}

/// How the records of `index` carry their messages: (read back from the answer, stored whole).
/// Records without a sidecar (none the tracker writes) are in neither.
pub fn carried(index: &crate::index::Index) -> (usize, usize) {
    let (mut answer, mut whole) = (0, 0);
    index.for_each(|e| match e.sidecar().first() {
        Some(&SIDECAR_EXTRAS) => answer += 1,
        Some(&SIDECAR_WHOLE) => whole += 1,
        _ => {}
    });
    (answer, whole)
}

impl Stored {
    /// The message, unpacked for change.
    pub(super) fn message_mut(&mut self) -> Option<&mut Message> {
        if let Stored::Packed { entry, .. } = self {
            *self = Stored::Live(Box::new(unpack(entry)?));
        }
        match self {
            Stored::Live(m) => Some(m),
            Stored::Packed { .. } => None,
        }
    }

    /// The message, decoded if packed, for reading.
    pub(super) fn message(&self) -> Option<Cow<'_, Message>> {
        match self {
            Stored::Live(m) => Some(Cow::Borrowed(m)),
            Stored::Packed { entry, .. } => unpack(entry).map(Cow::Owned),
        }
    }

    /// The message's envid.
    pub(super) fn envid(&self) -> &[u8] {
        match self {
            Stored::Live(m) => &m.envid,
            Stored::Packed { entry, .. } => entry.envid(),
        }
    }

    /// The hash of the message's secret.
    pub(super) fn hash(&self) -> &Hash {
        match self {
            Stored::Live(m) => &m.hash,
            Stored::Packed { entry, .. } => entry.hash(),
        }
    }

    pub(super) fn expires_at(&self, retention: Retention) -> i64 {
        match self {
            Stored::Live(m) => m.expires_at(retention),
            Stored::Packed { entry, .. } => entry.expires_at(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::message::{Action, Recipient};
    use crate::protocol::date::Timestamp;

    /// Some octets of `alphabet`, as many as `len` says.
    fn word(rng: &mut fastrand::Rng, alphabet: &[u8], len: std::ops::Range<usize>) -> String {
        let n = rng.usize(len);
        (0..n)
            .map(|_| char::from(alphabet[rng.usize(..alphabet.len())]))
            .collect()
    }

    fn address(rng: &mut fastrand::Rng) -> String {
        const LOCAL: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789.+-_";
        const HOST: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-";
        format!(
            "{}@{}.{}",
            word(rng, LOCAL, 1..20),
            word(rng, HOST, 1..20),
            word(rng, HOST, 2..6)
        )
    }

    /// A time from 1970 to 2100 in a whole-quarter-hour offset from -12:00 to +14:00.
    fn time(rng: &mut fastrand::Rng) -> Timestamp {
        Timestamp {
            unix: rng.i64(0..4_102_444_800),
            offset_minutes: rng.i16(-48..=56) * 15,
        }
    }

    /// A message as the MTA parsers and native lines produce them: printable values the
    /// renderer writes as they are.
    fn message(rng: &mut fastrand::Rng) -> Message {
        const TEXT: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJ 0123456789.,:<>[]()-";
        let arrival = time(rng);
        let mut m = Message {
            // xtext writes '+' as "+2B": such an envid keeps its answer whole.
            envid: address(rng).replace('+', "-").into_bytes().into(),
            hash: [rng.u8(..); 20],
            arrival,
            timeout: rng.bool().then(|| rng.u32(86_400..=30 * 86_400)),
            headers: Vec::new(),
            recipients: Vec::new(),
            last_event: arrival.unix + rng.i64(0..1_000_000),
            lookup: Default::default(),
            orcpts: Default::default(),
        };
        for _ in 0..rng.usize(1..6) {
            let action = Action::ALL[rng.usize(..Action::ALL.len() - 1)];
            let to = address(rng);
            let status = format!("{}.{}.{}", rng.u8(2..=5), rng.u8(0..8), rng.u8(0..10));
            let status = match rng.bool() {
                true => format!(
                    "{status} ({})",
                    word(rng, b"abcdefghij klmnop", 1..12).trim()
                ),
                false => status,
            };
            let diagnostic = format!("smtp;{} {}", rng.u16(200..600), word(rng, TEXT, 1..30));
            m.update_recipient(Recipient {
                original: rng
                    .bool()
                    .then(|| format!("rfc822;{to}").into_bytes().into()),
                final_rcpt: to.into_bytes().into(),
                action,
                status: status.into_bytes().into(),
                remote_mta: rng.bool().then(|| {
                    format!("dns;mx.{}", address(rng).replace('@', "."))
                        .into_bytes()
                        .into()
                }),
                diagnostic: rng.bool().then(|| diagnostic.trim_end().as_bytes().into()),
                last_attempt: rng.bool().then(|| time(rng)),
                will_retry_until: action.is_pending().then(|| time(rng)),
                at: m.last_event - rng.i64(0..100_000),
            });
        }
        // The SMTP gate's ORCPTs: most as a recipient shows them (its final address the RCPT
        // TO, its original the ORCPT), some for an alias or an address no line named yet.
        let shown: Vec<_> = m
            .recipients
            .iter()
            .filter(|r| r.original.is_some() && rng.bool())
            .map(|r| (r.final_rcpt.clone(), r.original.clone().unwrap_or_default()))
            .collect();
        for (rcpt, original) in shown {
            let _ = m.orcpts.insert(rcpt, original);
        }
        for _ in 0..rng.usize(0..3) {
            let (rcpt, original) = (address(rng), address(rng));
            let _ = m.orcpts.insert(
                rcpt.into_bytes().into(),
                format!("rfc822;{original}").into_bytes().into(),
            );
        }
        m
    }

    /// The saving that makes a record cost one answer, not an answer and a message: every
    /// message of the kind the parsers produce is carried by its answer, and reads back whole,
    /// the SMTP gate's ORCPTs included. A change to the renderer that breaks this fails here,
    /// not only in a memory benchmark.
    #[test]
    fn rendered_messages_read_back_from_their_answers() {
        let mut rng = fastrand::Rng::with_seed(0x5eed_0001);
        let mut with_orcpts = 0;
        for _ in 0..2_000 {
            let m = message(&mut rng);
            with_orcpts += usize::from(!m.orcpts.is_empty());
            let (back, read_back) = republished(&m, "hub.example").expect("a record");
            assert!(read_back, "stored whole: {m:?}");
            assert_eq!(back, m);
        }
        assert!(with_orcpts > 1_000, "{with_orcpts}");
    }

    /// A message stored whole (here, for an extra header line) keeps its ORCPTs too.
    #[test]
    fn messages_stored_whole_keep_their_orcpts() {
        let mut rng = fastrand::Rng::with_seed(0x5eed_0002);
        for _ in 0..200 {
            let mut m = message(&mut rng);
            m.headers.push(b"X-Note: whole"[..].into());
            let (back, read_back) = republished(&m, "hub.example").expect("a record");
            assert!(!read_back);
            assert_eq!(back, m);
        }
    }
}
