//! Correlation: applies [`Event`]s from every log to the messages they belong to, and publishes
//! changed messages to the index — rendered once per batch, however many lines changed them.
//!
//! Owned by the ingest thread alone. Every map here is bounded: messages leave when they
//! expire, recipient updates that arrive before their message wait in a bounded queue.

use std::collections::{HashMap, HashSet, VecDeque};

use super::event::{Accept, Event, MessageRef, MtaEvent, RcptUpdate};
use super::idset::IdSet;
use super::queue_id::QueueId;
use super::state::{Corrupt, Decoder, Encoder};
use crate::index::date::Timestamp;
use crate::index::entry::framed_part;
use crate::index::read_back::{self, read_back, Extras};
use crate::index::record::{Action, Recipient, RecipientIndex};
use crate::index::record::{Message, Retention};
use crate::index::render::{render, render_into};
use crate::index::{Entry, Index};
use crate::protocol::secret::Hash;

/// A message is known by its envid and the hash of its secret, and inside the tracker by a
/// number, cheap to copy into every map that refers to it.
type Id = u64;

/// FxHash (rustc's): for maps keyed by numbers the tracker hands out and by queue ids, which
/// the MTA generates; maps keyed by what senders choose (envids, Message-IDs) keep std's keyed
/// SipHash against collision flooding.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Whole words by value; a variable-length copy into a zeroed word (the obvious way to
        // take the rest) compiles to a memcpy call, which cost more than the hashing itself.
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.write_u64(u64::from_le_bytes(word.try_into().expect("8 octets")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let word = rest
                .iter()
                .rev()
                .fold(0u64, |w, &c| (w << 8) | u64::from(c));
            self.write_u64(word);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type Fast = std::hash::BuildHasherDefault<FxHasher>;

/// A message as the tracker holds it: whole while lines about it are being applied; once
/// published, only as its index record, from whose answer and tail the message is read back
/// when a later line changes it (see [`pack_tail`]). A mail hub's queue holds many messages
/// that wait hours for a retry: they cost their record and not a second, whole copy. Boxed,
/// so that the map of a million messages holds 24 octets a message rather than a whole
/// `Message`.
///
/// A finished message no queue id refers to any more leaves the tracker altogether (see
/// [`Tracker::evict_finished`]): its record in the index is all that is kept, and a late line
/// naming its envid takes it back from there.
#[derive(Debug)]
enum Stored {
    Live(Box<Message>),
    /// With the log time of the message's latest event, and whether it was finished (it had
    /// recipients and none was pending).
    Packed {
        entry: Entry,
        last_event: i64,
        finished: bool,
    },
}

/// How a message's index record carries the message (the first octet of its tail).
/// Nearly always the answer itself says it all but a few numbers ([`read_back`]), so the tail
/// holds only those: the record is the answer, not the answer and a copy of the message.
const TAIL_EXTRAS: u8 = 1;
/// ...otherwise (a value the renderer escaped, an answer with extra header lines) the tail is
/// the message's whole encoding after its envid and hash.
const TAIL_WHOLE: u8 = 0;

/// The tail of the index record of message `m`, whose answer is `wire`, into `buf`.
fn pack_tail(m: &Message, wire: &[u8], buf: &mut Vec<u8>) {
    let mut enc = Encoder {
        buf: std::mem::take(buf),
    };
    enc.buf.clear();
    // Only a record that keeps the framed part has the answer to read back from.
    if framed_part(&m.envid, wire).is_some_and(|body| read_back::round_trips(body, m)) {
        enc.u8(TAIL_EXTRAS);
        put_extras(&mut enc, m);
    } else {
        enc.u8(TAIL_WHOLE);
        put_message_rest(&mut enc, m);
    }
    *buf = enc.buf;
}

/// The [`Extras`] of `m` in a few octets (written from the message, not through an `Extras`:
/// this runs for every message published): the timeout plus one (0 for none), the last event's
/// time, the count, and how long before the last event each recipient's state was set (nearly
/// always 0).
fn put_extras(enc: &mut Encoder, m: &Message) {
    enc.varint(m.timeout.map_or(0, |t| u64::from(t) + 1));
    enc.zigzag(m.last_event);
    enc.varint(m.recipients.len() as u64);
    for r in &m.recipients {
        enc.zigzag(m.last_event.wrapping_sub(r.at));
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
        return Err(Corrupt("recipient count exceeds the tail".into()));
    }
    let recipient_times = (0..count)
        .map(|_| Ok(last_event.wrapping_sub(dec.zigzag()?)))
        .collect::<Result<_, Corrupt>>()?;
    Ok(Extras {
        timeout,
        last_event,
        recipient_times,
    })
}

/// The message of an index record, from its header, tail and answer. None for a record
/// without a tail (a message the tracker holds) or one that does not decode, which cannot
/// happen for records this module wrote.
fn unpack(entry: &Entry) -> Option<Message> {
    let (&kind, tail) = entry.tail().split_first()?;
    let mut dec = Decoder::new(tail);
    let m = match kind {
        TAIL_EXTRAS if entry.framed() => {
            let extras = get_extras(&mut dec).ok()?;
            read_back(entry.body(), entry.envid(), *entry.hash(), &extras)?
        }
        TAIL_WHOLE => get_message_rest(&mut dec, entry.envid().into(), *entry.hash()).ok()?,
        _ => return None,
    };
    dec.is_done().then_some(m)
}

impl Stored {
    /// The message, unpacked for change.
    fn live(&mut self) -> Option<&mut Message> {
        if let Stored::Packed { entry, .. } = self {
            *self = Stored::Live(Box::new(unpack(entry)?));
        }
        match self {
            Stored::Live(m) => Some(m),
            Stored::Packed { .. } => None,
        }
    }

    /// The message, decoded if packed, for reading.
    fn read(&self) -> Option<std::borrow::Cow<'_, Message>> {
        match self {
            Stored::Live(m) => Some(std::borrow::Cow::Borrowed(m)),
            Stored::Packed { entry, .. } => unpack(entry).map(std::borrow::Cow::Owned),
        }
    }

    /// The hash of the message's secret.
    fn hash(&self) -> &Hash {
        match self {
            Stored::Live(m) => &m.hash,
            Stored::Packed { entry, .. } => entry.hash(),
        }
    }

    fn expires_at(&self, retention: Retention) -> i64 {
        match self {
            Stored::Live(m) => m.expires_at(retention),
            Stored::Packed { entry, .. } => entry.expires_at(),
        }
    }
}

/// Most recipient updates held while waiting for their message's accept line.
const MAX_ORPHANS: usize = 1_000_000;

/// How long (in log time) a finished queue id that no accept line claimed is remembered, for an
/// accept line that arrives late from another file.
const UNCLAIMED_GRACE: i64 = 600;

/// Longest chain of hand-offs followed (content filter, forwarding): guards against loops.
const MAX_HANDOFF_DEPTH: u32 = 16;

/// What the MTA said about one of its queue ids.
#[derive(Debug, Default)]
struct QueueInfo {
    message_id: Option<Box<[u8]>>,
    /// Queue ids this one handed the message on to, to link when this one is linked.
    handoffs: Vec<QueueId>,
    /// A notification the MTA generated (a bounce): none of its lines is tracked.
    notification: bool,
    /// The MTA is done with it; a later arrival under the same id is a new message.
    done: bool,
    /// Log time of the latest line about it.
    seen: i64,
}

/// The ids of the messages of one envid, the latest last. Nearly always one, held inline.
#[derive(Debug)]
enum EnvidIds {
    One(Id),
    Many(Box<[Id]>),
}

impl EnvidIds {
    fn all(&self) -> &[Id] {
        match self {
            EnvidIds::One(id) => std::slice::from_ref(id),
            EnvidIds::Many(ids) => ids,
        }
    }

    fn latest(&self) -> Option<Id> {
        self.all().last().copied()
    }

    /// Adds `id` as the oldest.
    fn add_oldest(&mut self, id: Id) {
        let mut ids = vec![id];
        ids.extend(self.all().iter().copied().filter(|&i| i != id));
        *self = EnvidIds::from_vec(ids);
    }

    /// Makes `id` the latest, adding it if new.
    fn make_latest(&mut self, id: Id) {
        if self.latest() == Some(id) {
            return;
        }
        let mut ids: Vec<Id> = self.all().iter().copied().filter(|&i| i != id).collect();
        ids.push(id);
        *self = EnvidIds::from_vec(ids);
    }

    fn from_vec(ids: Vec<Id>) -> EnvidIds {
        match ids[..] {
            [one] => EnvidIds::One(one),
            _ => EnvidIds::Many(ids.into()),
        }
    }

    /// Keeps the ids for which `keep` holds; false when none is left.
    /// The common case, one id, allocates nothing: every sweep calls this for every envid.
    fn retain(&mut self, keep: impl Fn(Id) -> bool) -> bool {
        if let EnvidIds::One(id) = self {
            return keep(*id);
        }
        let ids: Vec<Id> = self.all().iter().copied().filter(|&i| keep(i)).collect();
        if ids.is_empty() {
            return false;
        }
        *self = EnvidIds::from_vec(ids);
        true
    }
}

/// The correlation state.
pub struct Tracker {
    reporting_mta: String,
    retention: Retention,
    messages: HashMap<Id, Stored, Fast>,
    next_id: Id,
    /// The messages of each envid (one, unless senders reuse envids), the latest last: for
    /// updates that name only the envid, and with the hash for those that name both.
    by_envid: HashMap<Box<[u8]>, EnvidIds>,
    by_queue: HashMap<QueueId, Id, Fast>,
    by_message_id: HashMap<Box<[u8]>, Id>,
    /// Updates whose message is not known yet, by the reference they wait for...
    orphans: HashMap<MessageRef, Vec<RcptUpdate>>,
    /// ...and those references, oldest first, for eviction when full.
    orphan_order: VecDeque<MessageRef>,
    orphan_count: usize,
    dirty: HashSet<Id, Fast>,
    /// Answers rendered while restoring, for the next [`Tracker::publish`] to put in the index.
    ready: Vec<Entry>,
    dropped_orphans: u64,
    /// Queue ids of the MTAs' logs, tracked or not yet known to be.
    queues: HashMap<QueueId, QueueInfo, Fast>,
    /// The queue id of each Message-ID that no accept line has claimed yet.
    queue_of_message_id: HashMap<Box<[u8]>, QueueId>,
    /// How many queue ids were forgotten because they never finished in time.
    dropped_queues: u64,
    /// How many queue ids were forgotten without an accept line ever claiming them.
    unclaimed_forgotten: u64,
    /// The latest event time seen: the clock that ages correlation state, so that replaying
    /// old logs ages it as the hub did.
    log_clock: i64,
    /// Queue ids held after the last sweep; the next comes when they have doubled.
    queues_after_sweep: usize,
    /// Messages held after the last sweep; the next comes when they have doubled (finished
    /// ones are forgotten then: see [`Tracker::evict_finished`]).
    messages_after_sweep: usize,
    /// Forget a queue id this long after its last line when it never finishes.
    correlation_timeout: i64,
    /// Where [`Tracker::publish`] renders answers, packs tails and lays out records, reused.
    wire_buf: Vec<u8>,
    tail_buf: Vec<u8>,
    entry_buf: Vec<u8>,
}

impl Tracker {
    /// An empty tracker. `reporting_mta` names this hub in every answer.
    pub fn new(reporting_mta: String, retention: Retention) -> Tracker {
        Tracker {
            reporting_mta,
            retention,
            messages: HashMap::default(),
            next_id: 0,
            by_envid: HashMap::new(),
            by_queue: HashMap::default(),
            by_message_id: HashMap::new(),
            orphans: HashMap::new(),
            orphan_order: VecDeque::new(),
            orphan_count: 0,
            dirty: HashSet::default(),
            ready: Vec::new(),
            dropped_orphans: 0,
            queues: HashMap::default(),
            queue_of_message_id: HashMap::new(),
            dropped_queues: 0,
            unclaimed_forgotten: 0,
            log_clock: i64::MIN,
            queues_after_sweep: 0,
            messages_after_sweep: 0,
            correlation_timeout: retention.queue_lifetime.saturating_add(86_400),
            wire_buf: Vec::new(),
            tail_buf: Vec::new(),
            entry_buf: Vec::new(),
        }
    }

    /// Applies one event. Changes reach the index at the next [`Tracker::publish`]. A message
    /// the event names by envid that the tracker forgot is taken back from `index` first.
    pub fn apply(&mut self, event: Event, index: &Index) {
        match &event {
            Event::Accept(a) => self.take_back(index, &a.envid, Some(&a.hash)),
            Event::Rcpt(RcptUpdate {
                message: MessageRef::Envid(envid),
                hash,
                ..
            }) => self.take_back(index, envid, hash.as_ref()),
            _ => {}
        }
        match event {
            Event::Accept(a) => self.accept(a),
            Event::Rcpt(r) => self.rcpt(r),
            Event::Mta(m) => self.mta(m),
        }
    }

    /// Takes back from `index` the message of (`envid`, `hash`), or the latest of `envid` when
    /// no hash is given, if the tracker forgot it (see [`Stored`]).
    fn take_back(&mut self, index: &Index, envid: &[u8], hash: Option<&Hash>) {
        let known = match hash {
            Some(h) => self.id_of(envid, h).is_some(),
            None => self.by_envid.contains_key(envid),
        };
        if known {
            return;
        }
        let latest = index
            .records_of(envid)
            .into_iter()
            .filter(|e| hash.map_or(true, |h| e.hash() == h))
            .filter_map(|e| Some((unpack(&e)?, e)))
            .max_by_key(|(m, _)| m.arrival.unix);
        let Some((m, entry)) = latest else { return };
        let id = self.next_id;
        self.next_id += 1;
        let (last_event, finished) = (m.last_event, m.is_finished());
        self.messages.insert(
            id,
            Stored::Packed {
                entry,
                last_event,
                finished,
            },
        );
        match self.by_envid.get_mut(envid) {
            Some(ids) => ids.add_oldest(id),
            None => {
                self.by_envid.insert(envid.into(), EnvidIds::One(id));
            }
        }
    }

    /// Forgets the finished messages whose index records can keep them (see [`Stored`]): those
    /// no queue id of an MTA log refers to any more (Postfix, Exim and sendmail say when they
    /// are done with one), and whose latest event is older than the grace period, since a
    /// queue id only native lines name is never reported done.
    fn evict_finished(&mut self) {
        let queues = &self.queues;
        let referenced: Vec<Id> = self
            .by_queue
            .iter()
            .filter(|(q, _)| queues.contains_key(*q))
            .map(|(_, id)| *id)
            .collect();
        let referenced = IdSet::new(&referenced);
        let recent = self.log_clock.saturating_sub(UNCLAIMED_GRACE);
        let mut evicted = Vec::new();
        self.messages.retain(|&id, s| {
            let keep = match s {
                Stored::Packed {
                    last_event,
                    finished: true,
                    ..
                } => *last_event >= recent || referenced.contains(id),
                _ => true,
            };
            if !keep {
                evicted.push(id);
            }
            keep
        });
        let gone = IdSet::new(&evicted);
        if gone.is_empty() {
            return;
        }
        self.by_queue.retain(|_, id| !gone.contains(*id));
        self.by_message_id.retain(|_, id| !gone.contains(*id));
        self.by_envid
            .retain(|_, ids| ids.retain(|id| !gone.contains(id)));
        // After a restart or a burst the maps were sized for far more than they now hold.
        if self.messages.capacity() > 4 * self.messages.len() + 4096 {
            self.messages.shrink_to_fit();
            self.by_message_id.shrink_to_fit();
            self.by_envid.shrink_to_fit();
        }
    }

    fn tick(&mut self, unix: i64) {
        self.log_clock = self.log_clock.max(unix);
    }

    /// Notes a line about `queue`, remembering it if new. Looks up before inserting: the
    /// common case is a known queue id, and `entry` would allocate its key on every line.
    fn touch_queue(&mut self, queue: &[u8]) {
        let seen = self.log_clock;
        match self.queues.get_mut(queue) {
            Some(info) => info.seen = info.seen.max(seen),
            None => {
                self.queues.insert(
                    queue.into(),
                    QueueInfo {
                        seen,
                        ..QueueInfo::default()
                    },
                );
            }
        }
    }

    /// Notes a line about `queue` and changes its state.
    fn with_queue(&mut self, queue: &[u8], change: impl FnOnce(&mut QueueInfo)) {
        self.touch_queue(queue);
        if let Some(info) = self.queues.get_mut(queue) {
            change(info);
        }
    }

    fn mta(&mut self, event: MtaEvent) {
        match event {
            MtaEvent::Arrival {
                queue,
                time,
                message_id,
            } => {
                self.tick(time.unix);
                if self.queues.get(&queue).is_some_and(|q| q.done) {
                    // Postfix reuses short queue ids: this is a new message.
                    self.forget_queue(&queue);
                }
                self.touch_queue(&queue);
                if let Some(m) = message_id {
                    self.note_message_id(queue, m);
                }
            }
            MtaEvent::MessageId { queue, message_id } => {
                self.note_message_id(queue, message_id);
            }
            MtaEvent::Recipient { queue, recipient } => {
                self.tick(recipient.at);
                self.touch_queue(&queue);
                if self.queues.get(&queue).is_some_and(|q| q.notification) {
                    return;
                }
                self.rcpt(RcptUpdate {
                    message: MessageRef::Queue(queue),
                    hash: None,
                    recipient,
                });
            }
            MtaEvent::Handoff { queue, new_queue } => {
                self.touch_queue(&new_queue);
                match self.by_queue.get(&queue).copied() {
                    Some(id) => self.link_queue(new_queue, id, 0),
                    None => self.with_queue(&queue, |q| q.handoffs.push(new_queue)),
                }
            }
            MtaEvent::Expired { queue, time } => {
                self.tick(time.unix);
                self.touch_queue(&queue);
                let Some(id) = self.by_queue.get(&queue).copied() else {
                    return;
                };
                // A finished message has no pending recipient: nothing to fail.
                let stored = self.messages.get_mut(&id);
                if matches!(stored, Some(Stored::Packed { finished: true, .. })) {
                    return;
                }
                let Some(msg) = stored.and_then(Stored::live) else {
                    return;
                };
                // Unpacked: published (and packed) again whether it changes or not.
                self.dirty.insert(id);
                let mut changed = false;
                for r in msg.recipients.iter_mut().filter(|r| r.action.is_pending()) {
                    // The MTA gave up: the last deferral's status and remote MTA stand.
                    r.action = Action::Failed;
                    r.at = r.at.max(time.unix);
                    r.last_attempt = Some(time);
                    r.will_retry_until = None;
                    changed = true;
                }
                if changed {
                    msg.last_event = msg.last_event.max(time.unix);
                }
            }
            MtaEvent::Done { queue, time } => {
                self.tick(time.unix);
                self.with_queue(&queue, |q| q.done = true);
            }
            MtaEvent::Notification { queue } => {
                self.with_queue(&queue, |q| q.notification = true);
                self.drop_orphans(&MessageRef::Queue(queue));
            }
        }
    }

    fn note_message_id(&mut self, queue: QueueId, message_id: Box<[u8]>) {
        self.with_queue(&queue, |q| q.message_id = Some(message_id.clone()));
        match self.by_message_id.get(&message_id).copied() {
            Some(id) => self.link_queue(queue, id, 0),
            None => {
                self.queue_of_message_id.insert(message_id, queue);
            }
        }
    }

    /// Ties a queue id (and every id it handed the message on to) to a tracked message, and
    /// applies the updates that waited for it.
    fn link_queue(&mut self, queue: QueueId, id: Id, depth: u32) {
        if depth > MAX_HANDOFF_DEPTH || self.by_queue.get(&queue) == Some(&id) {
            return;
        }
        self.by_queue.insert(queue.clone(), id);
        let handoffs = self
            .queues
            .get_mut(&queue)
            .map(|q| std::mem::take(&mut q.handoffs))
            .unwrap_or_default();
        if let Some(waiting) = self.orphans.remove(&MessageRef::Queue(queue)) {
            self.orphan_count -= waiting.len();
            waiting.into_iter().for_each(|u| self.rcpt(u));
        }
        for next in handoffs {
            self.link_queue(next, id, depth + 1);
        }
    }

    fn drop_orphans(&mut self, r: &MessageRef) {
        if let Some(dropped) = self.orphans.remove(r) {
            self.orphan_count -= dropped.len();
        }
    }

    fn forget_queue(&mut self, queue: &[u8]) {
        let info = self.queues.remove(queue);
        self.unlink_queue(queue, info.as_ref());
    }

    /// Drops what refers to a queue id being forgotten, whose entry `info` was taken out of
    /// `queues`: its message link, its Message-ID, the updates that waited for it.
    fn unlink_queue(&mut self, queue: &[u8], info: Option<&QueueInfo>) {
        if let Some(info) = info {
            if !info.notification && !self.by_queue.contains_key(queue) {
                self.unclaimed_forgotten += 1;
            }
            if let Some(m) = &info.message_id {
                if self
                    .queue_of_message_id
                    .get(m)
                    .is_some_and(|q| **q == *queue)
                {
                    self.queue_of_message_id.remove(m);
                }
            }
        }
        self.by_queue.remove(queue);
        if !self.orphans.is_empty() {
            self.drop_orphans(&MessageRef::Queue(queue.into()));
        }
    }

    /// Forgets queue ids the MTA finished long enough ago, and those that never finished within
    /// the correlation timeout (counted), with every update that waited for them.
    fn sweep_queues(&mut self) {
        let now = self.log_clock;
        let timeout = self.correlation_timeout;
        // Taken out, so that forgetting one can change the other maps in the same pass
        // without copying the keys of those forgotten.
        let mut queues = std::mem::take(&mut self.queues);
        queues.retain(|queue, info| {
            let finished = info.done && info.seen.saturating_add(UNCLAIMED_GRACE) < now;
            let abandoned = !info.done && info.seen.saturating_add(timeout) < now;
            if !(finished || abandoned) {
                return true;
            }
            self.dropped_queues += u64::from(abandoned);
            self.unlink_queue(queue, Some(info));
            false
        });
        self.queues = queues;
        self.queues_after_sweep = self.queues.len();
        self.evict_finished();
        self.messages_after_sweep = self.messages.len();
    }

    fn accept(&mut self, a: Accept) {
        // What updates waiting for this message may be filed under; usually none wait.
        let mut refs = Vec::new();
        if !self.orphans.is_empty() {
            refs.push(MessageRef::Envid(a.envid.clone()));
            refs.extend(a.queue.iter().cloned().map(MessageRef::Queue));
            refs.extend(a.message_id.iter().cloned().map(MessageRef::MessageId));
        }
        let id = match self.id_of(&a.envid, &a.hash) {
            Some(id) => id,
            None => {
                let id = self.next_id;
                self.next_id += 1;
                id
            }
        };
        let stored = self.messages.entry(id).or_insert_with(|| {
            Stored::Live(Box::new(Message {
                envid: a.envid.clone(),
                hash: a.hash,
                arrival: a.time,
                timeout: a.timeout,
                headers: Vec::new(),
                recipients: Vec::new(),
                last_event: a.time.unix,
                lookup: Default::default(),
            }))
        });
        let Some(msg) = stored.live() else { return };
        msg.arrival = a.time;
        msg.timeout = a.timeout;
        msg.headers = a.headers;
        msg.last_event = msg.last_event.max(a.time.unix);
        match self.by_envid.get_mut(&a.envid) {
            Some(ids) => ids.make_latest(id),
            None => {
                self.by_envid.insert(a.envid, EnvidIds::One(id));
            }
        }
        self.tick(a.time.unix);
        self.dirty.insert(id);
        if let Some(q) = a.queue {
            self.link_queue(q, id, 0);
        }
        if let Some(m) = a.message_id {
            let waiting = self.queue_of_message_id.remove(&m);
            self.by_message_id.insert(m, id);
            if let Some(q) = waiting {
                self.link_queue(q, id, 0);
            }
        }
        for r in refs {
            if let Some(waiting) = self.orphans.remove(&r) {
                self.orphan_count -= waiting.len();
                waiting.into_iter().for_each(|u| self.rcpt(u));
            }
        }
    }

    /// The message of (`envid`, `hash`).
    fn id_of(&self, envid: &[u8], hash: &Hash) -> Option<Id> {
        let ids = self.by_envid.get(envid)?;
        ids.all()
            .iter()
            .copied()
            .find(|id| self.messages.get(id).is_some_and(|m| m.hash() == hash))
    }

    fn resolve(&self, message: &MessageRef, hash: Option<Hash>) -> Option<Id> {
        match message {
            MessageRef::Queue(q) => self.by_queue.get(q).copied(),
            MessageRef::MessageId(m) => self.by_message_id.get(m).copied(),
            MessageRef::Envid(e) => match hash {
                Some(h) => self.id_of(e, &h),
                None => self.by_envid.get(e).and_then(EnvidIds::latest),
            },
        }
    }

    fn rcpt(&mut self, mut r: RcptUpdate) {
        let Some(id) = self.resolve(&r.message, r.hash) else {
            self.hold_orphan(r);
            return;
        };
        let Some(msg) = self.messages.get_mut(&id).and_then(Stored::live) else {
            return;
        };
        if r.recipient.action.is_pending() && r.recipient.will_retry_until.is_none() {
            r.recipient.will_retry_until = Some(msg.arrival.plus(self.retention.queue_lifetime));
        }
        msg.update_recipient(r.recipient);
        // Unpacked: published (and packed) again whether it changed or not.
        self.dirty.insert(id);
    }

    /// Keeps an update until its message's accept line arrives (lines of one message may come
    /// from different files, in either order), dropping the oldest when full.
    fn hold_orphan(&mut self, r: RcptUpdate) {
        while self.orphan_count >= MAX_ORPHANS {
            let Some(oldest) = self.orphan_order.pop_front() else {
                break;
            };
            if let Some(dropped) = self.orphans.remove(&oldest) {
                self.orphan_count -= dropped.len();
                self.dropped_orphans += dropped.len() as u64;
            }
        }
        if !self.orphans.contains_key(&r.message) {
            // References whose updates were adopted stay in the queue until popped; compact
            // it before they outnumber the live ones.
            if self.orphan_order.len() >= 2 * MAX_ORPHANS {
                let live = &self.orphans;
                self.orphan_order.retain(|m| live.contains_key(m));
            }
            self.orphan_order.push_back(r.message.clone());
        }
        self.orphans.entry(r.message.clone()).or_default().push(r);
        self.orphan_count += 1;
    }

    /// Renders every message changed since the last call and puts it in the index (or takes it
    /// out when it has already expired). Returns how many were rendered.
    pub fn publish(&mut self, index: &Index, now: i64) -> usize {
        let mut rendered = 0;
        for entry in self.ready.drain(..) {
            if entry.expires_at() > now {
                index.upsert(entry);
                rendered += 1;
            }
        }
        for id in self.dirty.drain() {
            let Some(stored) = self.messages.get_mut(&id) else {
                continue;
            };
            let Some(msg) = stored.live() else { continue };
            let expires_at = msg.expires_at(self.retention);
            if expires_at <= now {
                index.remove(&msg.envid, &msg.hash);
                continue;
            }
            let (wire, tail) = (&mut self.wire_buf, &mut self.tail_buf);
            render_into(msg, &self.reporting_mta, wire);
            pack_tail(msg, wire, tail);
            let (last_event, finished) = (msg.last_event, msg.is_finished());
            // None only for an envid no TRACK command can name (longer than 65,535 octets).
            let built = Entry::build(
                &mut self.entry_buf,
                &msg.envid,
                &msg.hash,
                expires_at,
                wire,
                tail,
            );
            let Some(entry) = built else {
                continue;
            };
            index.upsert(entry.clone());
            rendered += 1;
            *stored = Stored::Packed {
                entry,
                last_event,
                finished,
            };
        }
        // After the batch, so that the messages it finished can be forgotten at once.
        if self.queues.len() > 2 * self.queues_after_sweep + 10_000
            || self.messages.len() > 2 * self.messages_after_sweep + 10_000
        {
            self.sweep_queues();
        }
        rendered
    }

    /// Forgets every expired message and every reference to it, and sweeps the index.
    pub fn expire(&mut self, index: &Index, now: i64) -> usize {
        self.sweep_queues();
        let retention = self.retention;
        let before = self.messages.len();
        self.messages.retain(|_, m| m.expires_at(retention) > now);
        let messages = &self.messages;
        self.by_queue.retain(|_, id| messages.contains_key(id));
        self.by_message_id.retain(|_, id| messages.contains_key(id));
        self.by_envid
            .retain(|_, ids| ids.retain(|id| messages.contains_key(&id)));
        index.sweep(now);
        before - self.messages.len()
    }

    /// How many messages the tracker holds (finished ones it forgot are only in the index).
    pub fn messages(&self) -> usize {
        self.messages.len()
    }

    /// How many records a restore rendered that the next [`Tracker::publish`] will index.
    pub fn restored_records(&self) -> usize {
        self.ready.len()
    }

    /// Calls `f` with every tracked message, those only `index` keeps included, in no
    /// particular order.
    pub fn for_each_message(&self, index: &Index, mut f: impl FnMut(&Message)) {
        for m in self.messages.values().filter_map(Stored::read) {
            f(&m);
        }
        for m in self.forgotten(index).iter().filter_map(unpack) {
            f(&m);
        }
    }

    /// The records of finished messages the tracker forgot (see [`Stored`]).
    fn forgotten(&self, index: &Index) -> Vec<Entry> {
        let mut all = Vec::new();
        index.for_each(|e| {
            if !e.tail().is_empty() && self.id_of(e.envid(), e.hash()).is_none() {
                all.push(e.clone());
            }
        });
        all
    }

    /// Queue ids held that no accept line claimed: messages the MTA handled that cannot be
    /// tracked (no `mtqp:` accept line names them).
    pub fn unclaimed_queues(&self) -> usize {
        self.queues
            .keys()
            .filter(|q| !self.by_queue.contains_key(*q))
            .count()
    }

    /// Queue ids held, and how many were dropped because they never finished in time.
    pub fn queues(&self) -> (usize, u64) {
        (self.queues.len(), self.dropped_queues)
    }

    /// How many updates wait for their message, and how many were dropped for lack of room.
    pub fn orphans(&self) -> (usize, u64) {
        (self.orphan_count, self.dropped_orphans)
    }
}

fn put_time(enc: &mut Encoder, t: &Timestamp) {
    enc.i64(t.unix);
    enc.i16(t.offset_minutes);
}

fn get_time(dec: &mut Decoder<'_>) -> Result<Timestamp, Corrupt> {
    Ok(Timestamp {
        unix: dec.i64()?,
        offset_minutes: dec.i16()?,
    })
}

fn put_opt_time(enc: &mut Encoder, t: &Option<Timestamp>) {
    match t {
        None => enc.u8(0),
        Some(t) => {
            enc.u8(1);
            put_time(enc, t);
        }
    }
}

fn get_opt_time(dec: &mut Decoder<'_>) -> Result<Option<Timestamp>, Corrupt> {
    match dec.u8()? {
        0 => Ok(None),
        1 => Ok(Some(get_time(dec)?)),
        t => Err(Corrupt(format!("bad time tag {t}"))),
    }
}

fn put_recipient(enc: &mut Encoder, r: &Recipient) {
    enc.opt_bytes(r.original.as_deref());
    enc.bytes(&r.final_rcpt);
    enc.u8(Action::ALL.iter().position(|a| *a == r.action).unwrap_or(0) as u8);
    enc.bytes(&r.status);
    enc.opt_bytes(r.remote_mta.as_deref());
    enc.opt_bytes(r.diagnostic.as_deref());
    put_opt_time(enc, &r.last_attempt);
    put_opt_time(enc, &r.will_retry_until);
    enc.i64(r.at);
}

fn get_recipient(dec: &mut Decoder<'_>) -> Result<Recipient, Corrupt> {
    Ok(Recipient {
        original: dec.opt_bytes()?,
        final_rcpt: dec.bytes()?,
        action: *Action::ALL
            .get(usize::from(dec.u8()?))
            .ok_or_else(|| Corrupt("bad action".into()))?,
        status: dec.bytes()?,
        remote_mta: dec.opt_bytes()?,
        diagnostic: dec.opt_bytes()?,
        last_attempt: get_opt_time(dec)?,
        will_retry_until: get_opt_time(dec)?,
        at: dec.i64()?,
    })
}

fn put_message(enc: &mut Encoder, m: &Message) {
    put_key(enc, &m.envid, &m.hash);
    put_message_rest(enc, m);
}

/// A message's encoding from its index record: the key from the header, then the rest as
/// the tail holds it or as the answer gives it back.
fn put_entry(enc: &mut Encoder, entry: &Entry) {
    match entry.tail().split_first() {
        Some((&TAIL_WHOLE, rest)) => {
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

fn put_key(enc: &mut Encoder, envid: &[u8], hash: &Hash) {
    enc.bytes(envid);
    enc.buf.extend_from_slice(hash);
}

fn put_message_rest(enc: &mut Encoder, m: &Message) {
    put_time(enc, &m.arrival);
    match m.timeout {
        None => enc.u8(0),
        Some(t) => {
            enc.u8(1);
            enc.u32(t);
        }
    }
    enc.count(m.headers.len());
    m.headers.iter().for_each(|h| enc.bytes(h));
    enc.count(m.recipients.len());
    m.recipients.iter().for_each(|r| put_recipient(enc, r));
    enc.i64(m.last_event);
}

fn get_message_rest(
    dec: &mut Decoder<'_>,
    envid: Box<[u8]>,
    hash: Hash,
) -> Result<Message, Corrupt> {
    let arrival = get_time(dec)?;
    let timeout = match dec.u8()? {
        0 => None,
        1 => Some(dec.u32()?),
        t => return Err(Corrupt(format!("bad timeout tag {t}"))),
    };
    let headers = (0..dec.count()?)
        .map(|_| dec.bytes())
        .collect::<Result<_, _>>()?;
    let mut m = Message {
        envid,
        hash,
        arrival,
        timeout,
        headers,
        recipients: Vec::new(),
        last_event: 0,
        lookup: RecipientIndex::default(),
    };
    for _ in 0..dec.count()? {
        m.update_recipient(get_recipient(dec)?);
    }
    m.last_event = dec.i64()?;
    Ok(m)
}

fn put_ref(enc: &mut Encoder, r: &MessageRef) {
    let (tag, bytes) = match r {
        MessageRef::Envid(b) => (0, &b[..]),
        MessageRef::Queue(q) => (1, q.as_bytes()),
        MessageRef::MessageId(b) => (2, &b[..]),
    };
    enc.u8(tag);
    enc.bytes(bytes);
}

fn get_ref(dec: &mut Decoder<'_>) -> Result<MessageRef, Corrupt> {
    let tag = dec.u8()?;
    let bytes = dec.bytes()?;
    match tag {
        0 => Ok(MessageRef::Envid(bytes)),
        1 => Ok(MessageRef::Queue(bytes.into())),
        2 => Ok(MessageRef::MessageId(bytes)),
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
        let mut tail = Vec::new();
        pack_tail(&m, &wire, &mut tail);
        let answer = Entry::new(&m.envid, &m.hash, expires_at, &wire, &tail);
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
    position: &HashMap<Id, u32, Fast>,
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
    /// Writes the whole correlation state (for the state directory).
    /// Writes the whole correlation state (for the state directory), with the finished
    /// messages only `index` keeps.
    pub fn encode(&self, enc: &mut Encoder, index: &Index) {
        enc.i64(self.log_clock);
        enc.u64(self.dropped_orphans);
        enc.u64(self.dropped_queues);
        let forgotten = self.forgotten(index);
        enc.count(self.messages.len() + forgotten.len());
        // References are saved as the position of their message in this list: ids are this
        // process's own, and positions cost a restore neither a key nor a lookup.
        let mut position: HashMap<Id, u32, Fast> =
            HashMap::with_capacity_and_hasher(self.messages.len(), Fast::default());
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
        put_refs(
            enc,
            self.by_message_id.iter().map(|(m, id)| (&**m, *id)),
            &position,
        );
        put_refs(
            enc,
            self.by_queue.iter().map(|(q, id)| (&**q, *id)),
            &position,
        );
        enc.count(self.queues.len());
        for (q, info) in &self.queues {
            enc.bytes(q);
            enc.opt_bytes(info.message_id.as_deref());
            enc.count(info.handoffs.len());
            info.handoffs.iter().for_each(|h| enc.bytes(h));
            enc.u8(u8::from(info.notification) | u8::from(info.done) << 1);
            enc.i64(info.seen);
        }
        enc.count(self.queue_of_message_id.len());
        for (m, q) in &self.queue_of_message_id {
            enc.bytes(m);
            enc.bytes(q);
        }
        enc.count(self.orphan_count);
        for r in self.orphans.values().flatten() {
            put_ref(enc, &r.message);
            match &r.hash {
                None => enc.u8(0),
                Some(h) => {
                    enc.u8(1);
                    enc.buf.extend_from_slice(h);
                }
            }
            put_recipient(enc, &r.recipient);
        }
    }

    /// Reads what [`Tracker::encode`] wrote. Every message is marked changed, so the next
    /// [`Tracker::publish`] puts them all in the index.
    pub fn decode(
        dec: &mut Decoder<'_>,
        reporting_mta: String,
        retention: Retention,
    ) -> Result<Tracker, Corrupt> {
        let mut t = Tracker::new(reporting_mta, retention);
        t.log_clock = dec.i64()?;
        t.dropped_orphans = dec.u64()?;
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
        get_refs(dec, n, |k, id| {
            t.by_message_id.insert(k, id);
        })?;
        get_refs(dec, n, |k, id| {
            t.by_queue.insert(k.into(), id);
        })?;
        for _ in 0..dec.count()? {
            let q = QueueId::from(dec.bytes()?);
            let message_id = dec.opt_bytes()?;
            let handoffs = (0..dec.count()?)
                .map(|_| dec.bytes().map(QueueId::from))
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
            t.queue_of_message_id
                .insert(dec.bytes()?, dec.bytes()?.into());
        }
        for _ in 0..dec.count()? {
            let message = get_ref(dec)?;
            let hash = match dec.u8()? {
                0 => None,
                1 => Some(dec.hash()?),
                x => return Err(Corrupt(format!("bad hash tag {x}"))),
            };
            let recipient = get_recipient(dec)?;
            t.hold_orphan(RcptUpdate {
                message,
                hash,
                recipient,
            });
        }
        t.queues_after_sweep = t.queues.len();
        t.evict_finished();
        t.messages_after_sweep = t.messages.len();
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::date::Timestamp;
    use crate::index::record::Recipient;
    use crate::protocol::secret::sha1;

    const DAY: i64 = 86_400;

    fn t(unix: i64) -> Timestamp {
        Timestamp {
            unix,
            offset_minutes: 0,
        }
    }

    /// A tracker and the index it takes forgotten messages back from.
    struct Fixture {
        tr: Tracker,
        ix: Index,
    }

    impl Fixture {
        fn apply(&mut self, e: Event) {
            self.tr.apply(e, &self.ix);
        }
    }

    impl std::ops::Deref for Fixture {
        type Target = Tracker;
        fn deref(&self) -> &Tracker {
            &self.tr
        }
    }

    impl std::ops::DerefMut for Fixture {
        fn deref_mut(&mut self) -> &mut Tracker {
            &mut self.tr
        }
    }

    fn tracker() -> Fixture {
        Fixture {
            tr: Tracker::new(
                "hub.example".into(),
                Retention {
                    after_last_event: 30 * DAY,
                    queue_lifetime: 5 * DAY,
                },
            ),
            ix: Index::new(1),
        }
    }

    fn accept(envid: &str, queue: Option<&str>, msgid: Option<&str>, at: i64) -> Event {
        Event::Accept(Accept {
            time: t(at),
            envid: envid.as_bytes().into(),
            hash: sha1(envid.as_bytes()),
            timeout: None,
            queue: queue.map(|q| q.as_bytes().into()),
            message_id: msgid.map(|m| m.as_bytes().into()),
            headers: Vec::new(),
        })
    }

    fn mta_rcpt(queue: &str, to: &str, action: Action, at: i64) -> Event {
        Event::Mta(MtaEvent::Recipient {
            queue: queue.as_bytes().into(),
            recipient: Recipient {
                original: None,
                final_rcpt: to.as_bytes().into(),
                action,
                status: b"2.0.0"[..].into(),
                remote_mta: None,
                diagnostic: None,
                last_attempt: None,
                will_retry_until: None,
                at,
            },
        })
    }

    fn mta(e: MtaEvent) -> Event {
        Event::Mta(e)
    }

    fn q(s: &str) -> Box<[u8]> {
        s.as_bytes().into()
    }

    fn qid(s: &str) -> QueueId {
        s.as_bytes().into()
    }

    /// The recipients of `envid` as (address, action).
    fn state(tr: &Tracker, envid: &str) -> Vec<(String, Action)> {
        tr.id_of(envid.as_bytes(), &sha1(envid.as_bytes()))
            .and_then(|id| tr.messages.get(&id))
            .and_then(Stored::read)
            .map(|m| {
                m.recipients
                    .iter()
                    .map(|r| {
                        (
                            String::from_utf8_lossy(&r.final_rcpt).into_owned(),
                            r.action,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn mta_lines_before_and_after_the_accept_by_queue_id() {
        let mut tr = tracker();
        tr.apply(mta(MtaEvent::Arrival {
            queue: qid("Q1"),
            time: t(100),
            message_id: None,
        }));
        tr.apply(mta_rcpt("Q1", "a@x", Action::Delayed, 101));
        tr.apply(accept("e1@x", Some("Q1"), None, 100));
        tr.apply(mta_rcpt("Q1", "b@x", Action::Relayed, 102));
        assert_eq!(
            state(&tr, "e1@x"),
            vec![
                ("a@x".into(), Action::Delayed),
                ("b@x".into(), Action::Relayed)
            ]
        );
        let id = tr.id_of(b"e1@x", &sha1(b"e1@x")).unwrap();
        let will_retry = tr.messages[&id].read().unwrap().recipients[0]
            .will_retry_until
            .map(|w| w.unix);
        assert_eq!(will_retry, Some(100 + 5 * DAY), "arrival + queue lifetime");
    }

    #[test]
    fn accept_by_message_id_in_either_order() {
        let mut tr = tracker();
        tr.apply(mta(MtaEvent::Arrival {
            queue: qid("Q1"),
            time: t(100),
            message_id: None,
        }));
        tr.apply(mta(MtaEvent::MessageId {
            queue: qid("Q1"),
            message_id: q("m1@x"),
        }));
        tr.apply(mta_rcpt("Q1", "a@x", Action::Delivered, 101));
        tr.apply(accept("e1@x", None, Some("m1@x"), 100));
        assert_eq!(state(&tr, "e1@x"), vec![("a@x".into(), Action::Delivered)]);

        tr.apply(accept("e2@x", None, Some("m2@x"), 200));
        tr.apply(mta(MtaEvent::MessageId {
            queue: qid("Q2"),
            message_id: q("m2@x"),
        }));
        tr.apply(mta_rcpt("Q2", "b@x", Action::Failed, 201));
        assert_eq!(state(&tr, "e2@x"), vec![("b@x".into(), Action::Failed)]);
    }

    #[test]
    fn handoffs_follow_content_filters_and_forwarding_either_order() {
        let mut tr = tracker();
        tr.apply(accept("e1@x", Some("Q1"), None, 100));
        tr.apply(mta(MtaEvent::Handoff {
            queue: qid("Q1"),
            new_queue: qid("Q2"),
        }));
        tr.apply(mta(MtaEvent::Handoff {
            queue: qid("Q2"),
            new_queue: qid("Q3"),
        }));
        tr.apply(mta_rcpt("Q3", "a@x", Action::Delivered, 105));
        assert_eq!(state(&tr, "e1@x"), vec![("a@x".into(), Action::Delivered)]);

        // The hand-off and the new id's lines before the accept that links the first id.
        tr.apply(mta(MtaEvent::Handoff {
            queue: qid("R1"),
            new_queue: qid("R2"),
        }));
        tr.apply(mta_rcpt("R2", "b@x", Action::Relayed, 201));
        tr.apply(accept("e2@x", Some("R1"), None, 200));
        assert_eq!(state(&tr, "e2@x"), vec![("b@x".into(), Action::Relayed)]);

        // A loop of hand-offs ends.
        tr.apply(mta(MtaEvent::Handoff {
            queue: qid("R2"),
            new_queue: qid("R1"),
        }));
    }

    #[test]
    fn notifications_are_not_tracked_and_expiry_fails_pending_recipients() {
        let mut tr = tracker();
        tr.apply(accept("e1@x", Some("Q1"), None, 100));
        tr.apply(mta_rcpt("Q1", "a@x", Action::Delayed, 101));
        tr.apply(mta_rcpt("Q1", "b@x", Action::Relayed, 101));
        tr.apply(mta(MtaEvent::Expired {
            queue: qid("Q1"),
            time: t(100 + 5 * DAY),
        }));
        assert_eq!(
            state(&tr, "e1@x"),
            vec![
                ("a@x".into(), Action::Failed),
                ("b@x".into(), Action::Relayed)
            ]
        );
        tr.apply(mta(MtaEvent::Notification { queue: qid("N1") }));
        tr.apply(mta_rcpt("N1", "sender@x", Action::Delivered, 102));
        assert_eq!(tr.orphans().0, 0, "a bounce's own lines are not held");
    }

    #[test]
    fn a_queued_message_waits_packed_and_later_lines_unpack_it() {
        let mut tr = tracker();
        tr.apply(accept("e1@x", Some("Q1"), None, 100));
        tr.apply(mta_rcpt("Q1", "a@x", Action::Delayed, 101));
        tr.apply(mta_rcpt("Q1", "b@x", Action::Delayed, 101));
        let packed = |tr: &Fixture| {
            tr.messages.values().all(|s| {
                matches!(
                    s,
                    Stored::Packed {
                        finished: false,
                        ..
                    }
                )
            })
        };
        let Fixture { tr: inner, ix } = &mut tr;
        inner.publish(ix, 0);
        assert!(answer(ix, "e1@x").contains("b@x\r\nAction: delayed"));
        assert!(packed(&tr), "waiting for a retry, as its record only");
        tr.apply(mta_rcpt("Q1", "a@x", Action::Relayed, 3600));
        let Fixture { tr: inner, ix } = &mut tr;
        inner.publish(ix, 0);
        assert!(answer(ix, "e1@x").contains("a@x\r\nAction: relayed"));
        assert!(packed(&tr));
        tr.apply(mta(MtaEvent::Expired {
            queue: qid("Q1"),
            time: t(100 + 5 * DAY),
        }));
        let Fixture { tr: inner, ix } = &mut tr;
        inner.publish(ix, 0);
        let after = answer(ix, "e1@x");
        assert!(after.contains("a@x\r\nAction: relayed"), "{after}");
        assert!(after.contains("b@x\r\nAction: failed"), "{after}");
        assert!(matches!(
            tr.messages.values().next(),
            Some(Stored::Packed { finished: true, .. })
        ));
    }

    #[test]
    fn a_reused_queue_id_is_a_new_message() {
        let mut tr = tracker();
        tr.apply(accept("e1@x", Some("Q1"), None, 100));
        tr.apply(mta_rcpt("Q1", "a@x", Action::Delivered, 101));
        tr.apply(mta(MtaEvent::Done {
            queue: qid("Q1"),
            time: t(102),
        }));
        tr.apply(mta(MtaEvent::Arrival {
            queue: qid("Q1"),
            time: t(500),
            message_id: None,
        }));
        tr.apply(mta_rcpt("Q1", "z@x", Action::Delivered, 501));
        assert_eq!(state(&tr, "e1@x"), vec![("a@x".into(), Action::Delivered)]);
        assert_eq!(
            tr.orphans().0,
            1,
            "the new message's line waits for an accept"
        );
    }

    #[test]
    fn untracked_queue_ids_are_forgotten_and_never_finished_ones_counted() {
        let mut tr = tracker();
        let index = Index::new(1);
        for i in 0..50_000i64 {
            let queue = format!("U{i}");
            tr.apply(mta(MtaEvent::Arrival {
                queue: qid(&queue),
                time: t(i),
                message_id: None,
            }));
            tr.apply(mta_rcpt(&queue, "a@x", Action::Relayed, i));
            if i % 10 != 0 {
                tr.apply(mta(MtaEvent::Done {
                    queue: qid(&queue),
                    time: t(i),
                }));
            }
            tr.publish(&index, 0);
        }
        // Log time has moved on by far more than the grace: the finished ones are gone.
        assert!(tr.queues().0 < 20_000, "{} queue ids held", tr.queues().0);
        tr.apply(mta(MtaEvent::Arrival {
            queue: qid("late"),
            time: t(50_000 + 7 * DAY),
            message_id: None,
        }));
        tr.expire(&index, 0);
        assert_eq!(
            tr.queues(),
            (1, 5_000),
            "the unfinished ones were dropped and counted"
        );
        assert_eq!(tr.orphans().0, 0, "with the updates that waited for them");
    }

    #[test]
    fn state_round_trips_through_encode_and_decode() {
        let mut tr = tracker();
        tr.apply(accept("e1@x", Some("Q1"), Some("m1@x"), 100));
        tr.apply(mta_rcpt("Q1", "a@x", Action::Delayed, 101));
        tr.apply(mta(MtaEvent::Handoff {
            queue: qid("P1"),
            new_queue: qid("P2"),
        }));
        tr.apply(mta(MtaEvent::MessageId {
            queue: qid("P1"),
            message_id: q("m9@x"),
        }));
        tr.apply(mta_rcpt("P2", "b@x", Action::Relayed, 102));
        tr.apply(mta(MtaEvent::Notification { queue: qid("N1") }));
        let mut enc = Encoder::default();
        tr.encode(&mut enc, &tr.ix);
        let mut dec = Decoder::new(&enc.buf);
        let mut back = Fixture {
            tr: Tracker::decode(&mut dec, "hub.example".into(), tr.retention).unwrap(),
            ix: Index::new(1),
        };
        assert!(dec.is_done());
        assert_eq!(state(&back, "e1@x"), state(&tr, "e1@x"));
        assert_eq!(
            (back.queues().0, back.orphans().0),
            (tr.queues().0, tr.orphans().0)
        );
        // The restored state goes on correlating: the accept for m9 claims P1 and, through the
        // hand-off, P2's waiting line.
        back.apply(accept("e9@x", None, Some("m9@x"), 103));
        assert_eq!(state(&back, "e9@x"), vec![("b@x".into(), Action::Relayed)]);
        for cut in 0..enc.buf.len() {
            let mut dec = Decoder::new(&enc.buf[..cut]);
            assert!(
                Tracker::decode(&mut dec, "h".into(), tr.retention).map(|_| dec.is_done())
                    != Ok(true)
            );
        }
    }

    fn envid_rcpt(envid: &str, to: &str, action: Action, at: i64) -> Event {
        let Event::Mta(MtaEvent::Recipient { recipient, .. }) = mta_rcpt("-", to, action, at)
        else {
            unreachable!()
        };
        Event::Rcpt(RcptUpdate {
            message: MessageRef::Envid(q(envid)),
            hash: None,
            recipient,
        })
    }

    fn answer(ix: &Index, envid: &str) -> String {
        let e = ix
            .lookup(envid.as_bytes(), &sha1(envid.as_bytes()), 0)
            .expect("served");
        String::from_utf8(e.to_vec()).unwrap()
    }

    /// Delivers e1 through queue Q1, then lets log time pass and sweeps, so that the tracker
    /// forgets it: only its index record keeps it.
    fn forgotten_e1() -> Fixture {
        let mut tr = tracker();
        tr.apply(accept("e1@x", Some("Q1"), Some("m1@x"), 100));
        tr.apply(mta_rcpt("Q1", "a@x", Action::Delivered, 101));
        tr.apply(mta(MtaEvent::Done {
            queue: qid("Q1"),
            time: t(102),
        }));
        let Fixture { tr: inner, ix } = &mut tr;
        inner.publish(ix, 0);
        assert!(
            !state(inner, "e1@x").is_empty(),
            "held while Q1 may log more"
        );
        inner.expire(ix, 0);
        assert!(
            !state(inner, "e1@x").is_empty(),
            "Q1 is remembered for a grace period"
        );
        tr.apply(accept("e2@x", None, None, 102 + UNCLAIMED_GRACE + 1));
        let Fixture { tr: inner, ix } = &mut tr;
        inner.expire(ix, 0);
        assert!(state(inner, "e1@x").is_empty(), "forgotten by the tracker");
        assert!(inner.by_message_id.is_empty() && !inner.by_envid.contains_key(&q("e1@x")[..]));
        tr
    }

    #[test]
    fn a_forgotten_message_is_served_and_taken_back_by_a_late_line() {
        let mut tr = forgotten_e1();
        let before = answer(&tr.ix, "e1@x");
        assert!(before.contains("Final-Recipient: rfc822; a@x\r\nAction: delivered"));
        tr.apply(envid_rcpt("e1@x", "b@x", Action::Failed, 5000));
        assert_eq!(
            state(&tr, "e1@x"),
            vec![
                ("a@x".into(), Action::Delivered),
                ("b@x".into(), Action::Failed)
            ]
        );
        let Fixture { tr: inner, ix } = &mut tr;
        inner.publish(ix, 0);
        let after = answer(ix, "e1@x");
        assert!(after.starts_with(&before[..before.find("\r\n\r\nFinal-Recipient").unwrap()]));
        assert!(after.contains("Final-Recipient: rfc822; a@x\r\nAction: delivered"));
        assert!(after.contains("Final-Recipient: rfc822; b@x\r\nAction: failed"));
    }

    #[test]
    fn a_record_carries_its_message_as_the_answer_when_that_reads_back_and_whole_otherwise() {
        // An octet the renderer escapes cannot be read back from the answer.
        for (to, kind) in [("a@x", TAIL_EXTRAS), ("a\u{1}@x", TAIL_WHOLE)] {
            let mut tr = tracker();
            tr.apply(accept("e1@x", Some("Q1"), Some("m1@x"), 100));
            tr.apply(mta_rcpt("Q1", to, Action::Delivered, 101));
            tr.apply(mta_rcpt("Q1", "b@x", Action::Delivered, 102));
            let Fixture { tr: inner, ix } = &mut tr;
            let live = inner.messages.values().find_map(|s| match s {
                Stored::Live(m) => Some(m.as_ref().clone()),
                Stored::Packed { .. } => None,
            });
            inner.publish(ix, 0);
            let entry = ix.records_of(b"e1@x").pop().expect("indexed");
            assert_eq!(entry.tail()[0], kind, "{to:?}");
            assert_eq!(unpack(&entry), live, "{to:?}");
            if kind == TAIL_EXTRAS {
                assert!(entry.tail().len() < 16, "{}", entry.tail().len());
            }
            let mut enc = Encoder::default();
            put_entry(&mut enc, &entry);
            let mut dec = Decoder::new(&enc.buf);
            let (envid, hash) = (dec.bytes().unwrap(), dec.hash().unwrap());
            let whole = get_message_rest(&mut dec, envid, hash).unwrap();
            assert!(dec.is_done());
            assert_eq!(Some(whole), live, "the snapshot's encoding, {to:?}");
        }
    }

    #[test]
    fn a_repeated_accept_takes_a_forgotten_message_back_rather_than_starting_over() {
        let mut tr = forgotten_e1();
        tr.apply(accept("e1@x", None, None, 100));
        assert_eq!(state(&tr, "e1@x"), vec![("a@x".into(), Action::Delivered)]);
    }

    #[test]
    fn forgotten_messages_are_saved_in_the_state_and_listed() {
        let tr = forgotten_e1();
        let mut listed = Vec::new();
        tr.for_each_message(&tr.ix, |m| listed.push(m.envid.clone()));
        listed.sort();
        assert_eq!(listed, vec![q("e1@x"), q("e2@x")]);
        let mut enc = Encoder::default();
        tr.encode(&mut enc, &tr.ix);
        let mut dec = Decoder::new(&enc.buf);
        let mut back = Tracker::decode(&mut dec, "hub.example".into(), tr.retention).unwrap();
        assert!(dec.is_done());
        assert_eq!(back.restored_records(), 2);
        assert!(state(&back, "e1@x").is_empty(), "forgotten again at once");
        let ix = Index::new(1);
        back.publish(&ix, 0);
        assert_eq!(answer(&ix, "e1@x"), answer(&tr.ix, "e1@x"));
        let mut listed = Vec::new();
        back.for_each_message(&ix, |m| listed.push(m.envid.clone()));
        listed.sort();
        assert_eq!(listed, vec![q("e1@x"), q("e2@x")]);
    }

    #[test]
    fn a_queue_id_only_native_lines_name_holds_a_finished_message_for_the_grace_period() {
        let rcpt = |at| {
            let Event::Mta(MtaEvent::Recipient { recipient, .. }) =
                mta_rcpt("-", "a@x", Action::Delivered, at)
            else {
                unreachable!()
            };
            Event::Rcpt(RcptUpdate {
                message: MessageRef::Queue(qid("N7")),
                hash: None,
                recipient,
            })
        };
        let mut tr = tracker();
        tr.apply(accept("e7@x", Some("N7"), None, 100));
        tr.apply(rcpt(101));
        let Fixture { tr: inner, ix } = &mut tr;
        inner.publish(ix, 0);
        inner.expire(ix, 0);
        assert!(
            !state(inner, "e7@x").is_empty(),
            "a line naming N7 may follow"
        );
        tr.apply(accept("e8@x", None, None, 101 + UNCLAIMED_GRACE + 1));
        let Fixture { tr: inner, ix } = &mut tr;
        inner.expire(ix, 0);
        assert!(
            state(inner, "e7@x").is_empty(),
            "forgotten after the grace period"
        );
        assert!(inner.by_queue.is_empty(), "with its queue id");
        assert!(answer(ix, "e7@x").contains("Final-Recipient: rfc822; a@x\r\nAction: delivered"));
    }
}
