//! Snapshots: the whole correlation state in the state directory's format, so that a restart
//! loses nothing and reads no line twice. Messages are written whole ([`super::codec`]), those
//! the tracker forgot included; references as positions in that list.

use std::collections::HashMap;

use super::codec::{get_message_rest, get_recipient, put_key, put_message, put_recipient};
use super::hasher::FxBuildHasher;
use super::refs::{EnvidIds, MessageIdClaim, QueueInfo};
use super::stored::{pack, unpack, Stored, SIDECAR_WHOLE};
use super::{Id, Tracker};
use crate::index::message::Retention;
use crate::index::render::render;
use crate::index::{Entry, Index};
use crate::ingest::event::{MessageRef, RcptUpdate};
use crate::ingest::hosts::HostId;
use crate::ingest::queue_id::QueueId;
use crate::ingest::state::{Corrupt, Decoder, Encoder};

/// A message's encoding from its index record: the key from the header, then the rest as
/// the sidecar holds it or as the answer gives it back.
pub(super) fn put_entry(enc: &mut Encoder, entry: &Entry) {
    match entry.sidecar().split_first() {
        Some((&SIDECAR_WHOLE, rest)) => {
            put_key(enc, entry.envid(), entry.hash());
            enc.buf.extend_from_slice(rest);
        }
        // Every packed record decodes (it was checked when packed): a message that did not
        // would be left out of the snapshot and rebuilt from the logs.
        _ => {
            if let Some(m) = unpack(entry) {
                put_message(enc, &m);
            }
        }
    }
}

/// A length-prefixed record written in place by `put`.
fn put_record(enc: &mut Encoder, put: impl FnOnce(&mut Encoder)) {
    let at = enc.buf.len();
    enc.u32(0);
    put(enc);
    let len = (enc.buf.len() - at - 4) as u32;
    enc.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

/// A queue id: its host's number (two octets), then its octets.
fn put_queue(enc: &mut Encoder, q: &QueueId) {
    enc.u16(q.host().0);
    enc.bytes(q);
}

/// Reads what [`put_queue`] wrote; the host must be one of the `hosts` restored, or host 0 (this
/// machine, which a tracker that read no file yet has not named).
fn get_queue(dec: &mut Decoder<'_>, hosts: usize) -> Result<QueueId, Corrupt> {
    let host = dec.u16()?;
    if host != 0 && usize::from(host) >= hosts {
        return Err(Corrupt(format!("queue id of host {host} of {hosts}")));
    }
    Ok(QueueId::from(dec.bytes()?).on_host(HostId(host)))
}

fn put_ref(enc: &mut Encoder, r: &MessageRef) {
    let (tag, bytes) = match r {
        MessageRef::Envid(b) => (0, &b[..]),
        MessageRef::Queue(q) => {
            enc.u8(1);
            put_queue(enc, q);
            return;
        }
        MessageRef::MessageId(b) => (2, &b[..]),
    };
    enc.u8(tag);
    enc.bytes(bytes);
}

fn get_ref(dec: &mut Decoder<'_>, hosts: usize) -> Result<MessageRef, Corrupt> {
    match dec.u8()? {
        0 => Ok(MessageRef::Envid(dec.bytes()?)),
        1 => Ok(MessageRef::Queue(get_queue(dec, hosts)?)),
        2 => Ok(MessageRef::MessageId(dec.bytes()?)),
        t => Err(Corrupt(format!("bad reference tag {t}"))),
    }
}

/// One message of a state file, decoded and ready to be tracked and served.
struct Restored {
    envid: Box<[u8]>,
    stored: Stored,
    /// The rendered answer (publish() skips it if it expired while we were down).
    answer: Option<Entry>,
}

/// Decodes and renders the message records of a state file on every core: at a million
/// messages this is most of a restart, and the workers are not busy yet.
fn restore_messages(
    records: &[&[u8]],
    reporting_mta: &str,
    retention: Retention,
) -> Result<Vec<Restored>, Corrupt> {
    let one = |bytes: &[u8]| -> Result<Restored, Corrupt> {
        let mut dec = Decoder::new(bytes);
        let envid = dec.bytes()?;
        let hash = dec.hash()?;
        let m = get_message_rest(&mut dec, envid, hash)?;
        if !dec.is_done() {
            return Err(Corrupt("message record longer than its message".into()));
        }
        let expires_at = m.expires_at(retention);
        let finished = m.is_finished();
        let wire = render(&m, reporting_mta);
        let mut sidecar = Vec::new();
        pack(&m, &wire, &mut sidecar);
        let answer = Entry::new(&m.envid, &m.hash, expires_at, &wire, &sidecar);
        let envid = m.envid.clone();
        let stored = match &answer {
            Some(entry) => Stored::Packed {
                entry: entry.clone(),
                last_event: m.last_event,
                finished,
            },
            _ => Stored::Live(Box::new(m)),
        };
        Ok(Restored {
            envid,
            stored,
            answer,
        })
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .max(1);
    let chunk = records.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = records
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || part.iter().map(|b| one(b)).collect::<Result<Vec<_>, _>>())
            })
            .collect();
        let mut all = Vec::with_capacity(records.len());
        for w in workers {
            all.extend(
                w.join()
                    .map_err(|_| Corrupt("a restore thread failed".into()))??,
            );
        }
        Ok(all)
    })
}

/// Writes a reference map as (key, position of its message) pairs, leaving out references to
/// messages that are gone.
fn put_refs<'a>(
    enc: &mut Encoder,
    map: impl Iterator<Item = (&'a [u8], Id)>,
    position: &HashMap<Id, u32, FxBuildHasher>,
) {
    let live: Vec<(&[u8], u32)> = map
        .filter_map(|(k, id)| Some((k, *position.get(&id)?)))
        .collect();
    enc.count(live.len());
    for (k, at) in live {
        enc.bytes(k);
        enc.u32(at);
    }
}

/// Reads what [`put_refs`] wrote: a restored message's id is its position.
fn get_refs(
    dec: &mut Decoder<'_>,
    messages: u64,
    mut insert: impl FnMut(Box<[u8]>, Id),
) -> Result<(), Corrupt> {
    for _ in 0..dec.count()? {
        let k = dec.bytes()?;
        let at = u64::from(dec.u32()?);
        if at >= messages {
            return Err(Corrupt(format!("reference to message {at} of {messages}")));
        }
        insert(k, at);
    }
    Ok(())
}

impl Tracker {
    /// Writes the whole correlation state (for the state directory), with the finished
    /// messages only `index` keeps.
    pub fn encode(&self, enc: &mut Encoder, index: &Index) {
        enc.count(self.hosts.len());
        for (name, logs) in self.hosts.names() {
            enc.bytes(name);
            enc.u8(u8::from(logs));
        }
        enc.i64(self.log_clock);
        enc.u64(self.orphans.dropped());
        enc.u64(self.dropped_queues);
        let forgotten = self.forgotten(index);
        enc.count(self.messages.len() + forgotten.len());
        // References are saved as the position of their message in this list: ids are this
        // process's own, and positions cost a restore neither a key nor a lookup.
        let mut position: HashMap<Id, u32, FxBuildHasher> =
            HashMap::with_capacity_and_hasher(self.messages.len(), FxBuildHasher::default());
        for (i, (id, stored)) in self.messages.iter().enumerate() {
            position.insert(*id, i as u32);
            match stored {
                Stored::Live(m) => put_record(enc, |enc| put_message(enc, m)),
                Stored::Packed { entry, .. } => put_record(enc, |enc| put_entry(enc, entry)),
            }
        }
        // Not referred to by anything: after the others, so positions stay as numbered.
        for entry in &forgotten {
            put_record(enc, |enc| put_entry(enc, entry));
        }
        let latest = self
            .by_envid
            .iter()
            .filter_map(|(envid, ids)| Some((&**envid, ids.latest()?)));
        put_refs(enc, latest, &position);
        let claims: Vec<_> = self
            .by_message_id
            .iter()
            .filter_map(|(m, c)| Some((m, c, *position.get(&c.id)?)))
            .collect();
        enc.count(claims.len());
        for (m, c, at) in claims {
            enc.bytes(m);
            enc.u32(at);
            enc.i64(c.at);
            enc.u8(u8::from(c.settled));
        }
        let by_queue: Vec<_> = self
            .by_queue
            .iter()
            .filter_map(|(q, id)| Some((q, *position.get(id)?)))
            .collect();
        enc.count(by_queue.len());
        for (q, at) in by_queue {
            put_queue(enc, q);
            enc.u32(at);
        }
        enc.count(self.queues.len());
        for (q, info) in &self.queues {
            put_queue(enc, q);
            enc.opt_bytes(info.message_id.as_deref());
            enc.count(info.handoffs.len());
            info.handoffs.iter().for_each(|h| put_queue(enc, h));
            enc.u8(u8::from(info.notification) | u8::from(info.done) << 1);
            enc.i64(info.seen);
        }
        enc.count(self.queue_of_message_id.len());
        for (m, q) in &self.queue_of_message_id {
            enc.bytes(m);
            put_queue(enc, q);
        }
        enc.count(self.orphans.len());
        for r in self.orphans.updates() {
            put_ref(enc, &r.message);
            match &r.hash {
                None => enc.u8(0),
                Some(h) => {
                    enc.u8(1);
                    enc.buf.extend_from_slice(h);
                }
            }
            enc.u8(u8::from(r.keeps_original) | u8::from(r.provisional) << 1);
            put_recipient(enc, &r.recipient);
        }
    }

    /// Reads what [`Tracker::encode`] wrote. Every message is marked changed, so the next
    /// [`Tracker::publish`] puts them all in the index. A state whose correlation clock is past
    /// `latest` is refused: kept, it would age every queue id as if that time had come.
    pub fn decode(
        dec: &mut Decoder<'_>,
        reporting_mta: String,
        retention: Retention,
        latest: i64,
    ) -> Result<Tracker, Corrupt> {
        let mut t = Tracker::new(reporting_mta, retention);
        for _ in 0..dec.count()? {
            let name = dec.bytes()?;
            let logs = dec.u8()? != 0;
            let before = t.hosts.len();
            if t.hosts.intern(&name, logs).map(|h| usize::from(h.0)) != Some(before) {
                return Err(Corrupt(
                    "host table: a name twice, or beyond the bound".into(),
                ));
            }
        }
        let hosts = t.hosts.len();
        t.log_clock = dec.i64()?;
        if t.log_clock > latest {
            return Err(Corrupt(format!(
                "its correlation clock ({}) is ahead of now",
                t.log_clock
            )));
        }
        t.orphans.set_dropped(dec.u64()?);
        t.dropped_queues = dec.u64()?;
        let n = dec.count()?;
        let records = (0..n).map(|_| dec.slice()).collect::<Result<Vec<_>, _>>()?;
        // Sized up front: growing maps of a million entries rehashes every key several times.
        t.messages.reserve(n);
        t.ready.reserve(n);
        t.by_envid.reserve(n);
        t.by_message_id.reserve(n);
        for r in restore_messages(&records, &t.reporting_mta, retention)? {
            let id = t.next_id;
            t.next_id += 1;
            match t.by_envid.get_mut(&r.envid) {
                Some(ids) => ids.make_latest(id),
                None => {
                    t.by_envid.insert(r.envid, EnvidIds::One(id));
                }
            }
            t.ready.extend(r.answer);
            t.messages.insert(id, r.stored);
        }
        let n = t.next_id;
        get_refs(dec, n, |k, id| match t.by_envid.get_mut(&k) {
            Some(ids) => ids.make_latest(id),
            None => {
                t.by_envid.insert(k, EnvidIds::One(id));
            }
        })?;
        for _ in 0..dec.count()? {
            let m = dec.bytes()?;
            let id = u64::from(dec.u32()?);
            if id >= n {
                return Err(Corrupt(format!("reference to message {id} of {n}")));
            }
            let claim = MessageIdClaim {
                id,
                at: dec.i64()?,
                settled: dec.u8()? != 0,
            };
            t.by_message_id.insert(m, claim);
        }
        for _ in 0..dec.count()? {
            let q = get_queue(dec, hosts)?;
            let id = u64::from(dec.u32()?);
            if id >= n {
                return Err(Corrupt(format!("reference to message {id} of {n}")));
            }
            t.by_queue.insert(q, id);
        }
        for _ in 0..dec.count()? {
            let q = get_queue(dec, hosts)?;
            let message_id = dec.opt_bytes()?;
            let handoffs = (0..dec.count()?)
                .map(|_| get_queue(dec, hosts))
                .collect::<Result<_, _>>()?;
            let flags = dec.u8()?;
            let seen = dec.i64()?;
            t.queues.insert(
                q,
                QueueInfo {
                    message_id,
                    handoffs,
                    notification: flags & 1 != 0,
                    done: flags & 2 != 0,
                    seen,
                },
            );
        }
        for _ in 0..dec.count()? {
            let m = dec.bytes()?;
            t.queue_of_message_id.insert(m, get_queue(dec, hosts)?);
        }
        for _ in 0..dec.count()? {
            let message = get_ref(dec, hosts)?;
            let hash = match dec.u8()? {
                0 => None,
                1 => Some(dec.hash()?),
                x => return Err(Corrupt(format!("bad hash tag {x}"))),
            };
            // Bit 0: keeps_original; bit 1: provisional (a snapshot older than that flag
            // has only bit 0).
            let flags = match dec.u8()? {
                x @ 0..=3 => x,
                x => return Err(Corrupt(format!("bad update flags {x}"))),
            };
            let (keeps_original, provisional) = (flags & 1 != 0, flags & 2 != 0);
            let recipient = get_recipient(dec)?;
            t.orphans.hold(RcptUpdate {
                message,
                host: None,
                hash,
                recipient,
                keeps_original,
                provisional,
            });
        }
        t.queues_after_sweep = t.queues.len();
        t.evict_finished();
        t.messages_after_sweep = t.messages.len();
        Ok(t)
    }
}
