//! What the fuzz targets share: feeding a log through its parser into the tracker, and a
//! message built from the fuzzer's octets.

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use mtqpd::index::message::{Action, Message, Recipient, Retention};
use mtqpd::index::Index;
use mtqpd::ingest::native::NativeTags;
use mtqpd::ingest::state::{Decoder, Encoder};
use mtqpd::ingest::timezone::Zone;
use mtqpd::ingest::tracker::Tracker;
use mtqpd::ingest::{parser_for, LogFormat};
use mtqpd::protocol::date::Timestamp;

const RETENTION: Retention = Retention {
    after_last_event: 8 * 86_400,
    queue_lifetime: 5 * 86_400,
};

/// Reads `log` as a file of `format` (native lines allowed under the tag `mtqp`), applies what
/// it says, publishes, then checks that the correlation state it leaves is saved and restored.
pub fn ingest(format: LogFormat, log: &[u8]) {
    let mut parser = parser_for(format, &Zone::utc(), &NativeTags::new(&["mtqp"]));
    let index = Index::new(2);
    let mut tracker = Tracker::new("hub.example".into(), RETENTION);
    for line in log.split(|&b| b == b'\n') {
        parser.parse(line, &mut |event| {
            let _ = tracker.apply(event, &index);
        });
    }
    let now = mtqpd::clock::unix_now();
    tracker.publish(&index, now);
    tracker.expire(&index, now);
    let mut enc = Encoder::default();
    tracker.encode(&mut enc, &index);
    let mut dec = Decoder::new(&enc.buf);
    let restored = Tracker::decode(&mut dec, "hub.example".into(), RETENTION, i64::MAX)
        .expect("the tracker's own snapshot decodes");
    assert!(dec.is_done(), "the snapshot decodes to its end");
    assert_eq!(restored.messages(), tracker.messages());
}

/// Some octets, fewer than `max`.
fn bytes(u: &mut Unstructured<'_>, max: usize) -> Result<Box<[u8]>> {
    let n = u.int_in_range(0..=max)?;
    Ok(u.bytes(n)?.into())
}

/// A time from 1970 to 9999, east of UTC by -23:59 to +23:59.
fn time(u: &mut Unstructured<'_>) -> Result<Timestamp> {
    Ok(Timestamp {
        unix: u.int_in_range(0..=253_402_300_799)?,
        offset_minutes: u.int_in_range(-1439..=1439)?,
    })
}

/// A message of any octets: the property must hold for values the renderer escapes or trims
/// too (those are stored whole).
pub fn message(u: &mut Unstructured<'_>) -> Result<Message> {
    let arrival = time(u)?;
    let mut m = Message {
        envid: bytes(u, 100)?,
        hash: u.arbitrary()?,
        arrival,
        timeout: u.arbitrary()?,
        headers: Vec::new(),
        recipients: Vec::new(),
        last_event: arrival.unix + u.int_in_range(0..=10_000_000)?,
        lookup: Default::default(),
        orcpts: Default::default(),
    };
    for _ in 0..u.int_in_range(0..=2)? {
        m.headers.push(bytes(u, 60)?);
    }
    for _ in 0..u.int_in_range(0..=40)? {
        let action = Action::ALL[u.choose_index(Action::ALL.len())?];
        m.update_recipient(Recipient {
            original: u.arbitrary::<bool>()?.then(|| bytes(u, 40)).transpose()?,
            final_rcpt: bytes(u, 40)?,
            action,
            status: bytes(u, 20)?,
            remote_mta: u.arbitrary::<bool>()?.then(|| bytes(u, 40)).transpose()?,
            diagnostic: u.arbitrary::<bool>()?.then(|| bytes(u, 60)).transpose()?,
            last_attempt: u.arbitrary::<bool>()?.then(|| time(u)).transpose()?,
            will_retry_until: u.arbitrary::<bool>()?.then(|| time(u)).transpose()?,
            at: m.last_event - u.int_in_range(-1000..=1_000_000)?,
        });
    }
    // The SMTP gate's ORCPTs: some as a recipient shows them (carried as its position), some
    // of any octets (carried whole). Ones the message refuses (an address twice) are left out.
    for _ in 0..u.int_in_range(0..=4)? {
        let (rcpt, original) = match u.choose(&m.recipients).ok() {
            Some(r) if r.original.is_some() && u.arbitrary::<bool>()? => {
                (r.final_rcpt.clone(), r.original.clone().unwrap_or_default())
            }
            _ => (bytes(u, 40)?, bytes(u, 40)?),
        };
        let _ = m.orcpts.insert(rcpt, original);
    }
    Ok(m)
}
