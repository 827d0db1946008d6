//! Correlation: applies [`Event`]s from every log to the messages they belong to, and publishes
//! changed messages to the index — rendered once per batch, however many lines changed them.
//!
//! Owned by the ingest thread alone. Every map here is bounded: messages leave when they
//! expire, queue ids when the MTA is done with them or they never finish in time, recipient
//! updates that arrive before their message wait in a bounded queue ([`orphans`]).
//!
//! A message's life in the tracker ([`stored::Stored`]):
//!
//! ```text
//!   accept or recipient line            publish (end of each batch of lines)
//!  ─────────────────────────► Live ──────────────────────────────────────► Packed
//!                              ▲   ◄──────────────────────────────────────  │ │
//!                              │        a later line about it unpacks it    │ │ finished, no MTA
//!                              │                                            │ │ queue id refers to
//!                              │   a late line or a repeated accept naming  │ │ it, quiet for the
//!                              │   its envid takes it back (as Packed)      │ ▼ grace period
//!                              └────────────────────────────────────── Forgotten: only its
//!                                                                      index record is kept
//!  Live, Packed or Forgotten ── retention or MTRK timeout runs out ──► gone (record removed)
//! ```
//!
//! - Live: the whole [`Message`], while lines are applied to it.
//! - Packed: only its index record; the answer doubles as the message ([`stored`],
//!   [`read_back`]), so a message waiting hours for a retry costs one record, not two copies.
//! - Forgotten: not in the tracker at all; [`Tracker::for_each_message`] and snapshots still
//!   see it through the index.
//!
//! Files: correlation of lines into messages ([`correlate`]), the waiting updates
//! ([`orphans`]), what refers to a message ([`refs`]), how a message is held and packed
//! ([`stored`], [`read_back`], [`codec`]), snapshots ([`snapshot`]), the maps' hasher
//! ([`hasher`]).

pub mod audit;
mod codec;
mod correlate;
mod hasher;
mod orphans;
pub mod read_back;
mod refs;
mod snapshot;
pub mod stored;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

use super::event::{Event, MessageRef, RcptUpdate};
use super::hosts::Hosts;
use super::idset::IdSet;
use super::queue_id::QueueId;
use crate::index::message::{Message, Retention};
use crate::index::render::render_into;
use crate::index::{Entry, Index};
use crate::protocol::secret::Hash;
use hasher::FxBuildHasher;
use orphans::Orphans;
use refs::{EnvidIds, MessageIdClaim, QueueInfo};
use stored::{pack, unpack, Stored};

/// Why a recipient line (the SMTP gate's ORCPT) is refused when its message is not known.
const UNKNOWN_MESSAGE: &str = "recipient line names no known message (envid= and mtrk=)";

/// Why an update naming only an envid is refused.
const SHARED_ENVID: &str = "rcpt line names only an envid that more than one message shares";

/// Most messages (secrets) one envid may have at once. Any sender may reuse an ENVID with a
/// new MTRK; without a bound, each message of a reused envid would make the next accept, and
/// every TRACK of that envid, cost more (20,000 of them: 4.6 s of ingest, 0.8 ms a TRACK).
pub const MAX_SECRETS_PER_ENVID: usize = 8;

/// Why an accept line is refused when its envid has [`MAX_SECRETS_PER_ENVID`] messages.
const TOO_MANY_SECRETS: &str = "accept line: its envid already has 8 messages, each its own secret";

/// A message is known by its envid and the hash of its secret, and inside the tracker by a
/// number, cheap to copy into every map that refers to it.
type Id = u64;

/// How long (in log time) a finished queue id that no accept line claimed is remembered, for an
/// accept line that arrives late from another file; and how long a finished message stays in
/// the tracker after its latest event.
const UNCLAIMED_GRACE: i64 = 600;

/// The correlation state.
pub struct Tracker {
    reporting_mta: String,
    retention: Retention,
    messages: HashMap<Id, Stored, FxBuildHasher>,
    next_id: Id,
    /// The messages of each envid (one, unless senders reuse envids), the latest last: for
    /// updates that name only the envid, and with the hash for those that name both.
    by_envid: HashMap<Box<[u8]>, EnvidIds>,
    by_queue: HashMap<QueueId, Id, FxBuildHasher>,
    by_message_id: HashMap<Box<[u8]>, MessageIdClaim>,
    /// Updates whose message is not known yet.
    orphans: Orphans,
    /// Messages changed since the last [`Tracker::publish`].
    dirty: HashSet<Id, FxBuildHasher>,
    /// Answers rendered while restoring, for the next [`Tracker::publish`] to put in the index.
    ready: Vec<Entry>,
    /// Queue ids of the MTAs' logs, tracked or not yet known to be.
    queues: HashMap<QueueId, QueueInfo, FxBuildHasher>,
    /// The queue id of each Message-ID that no accept line has claimed yet.
    queue_of_message_id: HashMap<Box<[u8]>, QueueId>,
    /// How many queue ids were forgotten because they never finished in time.
    dropped_queues: u64,
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
    /// Where [`Tracker::publish`] renders answers, packs sidecars and lays out records, reused.
    wire_buf: Vec<u8>,
    sidecar_buf: Vec<u8>,
    entry_buf: Vec<u8>,
    /// `mtqpd ingest-check`'s audit, when enabled ([`Tracker::enable_audit`]).
    audit: Option<Box<audit::Audit>>,
    /// The hosts whose queue ids the maps hold (snapshotted with them).
    hosts: Hosts,
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
            orphans: Orphans::default(),
            dirty: HashSet::default(),
            ready: Vec::new(),
            queues: HashMap::default(),
            queue_of_message_id: HashMap::new(),
            dropped_queues: 0,
            log_clock: i64::MIN,
            queues_after_sweep: 0,
            messages_after_sweep: 0,
            correlation_timeout: retention.queue_lifetime.saturating_add(86_400),
            wire_buf: Vec::new(),
            sidecar_buf: Vec::new(),
            entry_buf: Vec::new(),
            audit: None,
            hosts: Hosts::default(),
        }
    }

    /// The hosts of the cluster, to qualify each line's queue ids.
    pub fn hosts_mut(&mut self) -> &mut Hosts {
        &mut self.hosts
    }

    /// Records, from now on, every recipient MTA lines name and the message each queue id
    /// turns out to be, for [`audit::Audit::missing`]. Memory grows with the logs read: for
    /// an offline replay only.
    pub fn enable_audit(&mut self) {
        self.audit = Some(Box::default());
    }

    /// The audit, when enabled.
    pub fn audit(&self) -> Option<&audit::Audit> {
        self.audit.as_deref()
    }

    /// Applies one event. Changes reach the index at the next [`Tracker::publish`]. A message
    /// the event names by envid that the tracker forgot is taken back from `index` first. An
    /// update naming only an envid that more than one message shares (senders may reuse an
    /// ENVID, each with its own secret) is refused, with the reason: it could be either's. So
    /// is the SMTP gate's ORCPT for a message neither the tracker nor `index` holds (the gate
    /// writes its accept line first), or one past the bounds of
    /// [`crate::index::message::DeclaredOrcpts`].
    pub fn apply(&mut self, event: Event, index: &Index) -> Result<(), &'static str> {
        let mut new_envid = false;
        match &event {
            Event::Accept(a) => {
                // The usual new message: no other of its envid, held or indexed. One probe of
                // the envid map tells whether it is held (when it is not, neither is the
                // message); the count (another probe of the index) is for reused envids only.
                let held = self.by_envid.contains_key(&a.envid[..]);
                let indexed = if held {
                    self.take_back(index, &a.envid, Some(&a.hash))
                } else {
                    self.take_from_index(index, &a.envid, Some(&a.hash))
                };
                let reused = indexed > 0 || held;
                new_envid = !reused;
                if reused
                    && self.id_of(&a.envid, &a.hash).is_none()
                    && self.hashes_of(index, &a.envid, MAX_SECRETS_PER_ENVID).len()
                        >= MAX_SECRETS_PER_ENVID
                {
                    return Err(TOO_MANY_SECRETS);
                }
            }
            Event::Rcpt(RcptUpdate {
                message: MessageRef::Envid(envid),
                hash,
                ..
            }) => {
                if hash.is_none() && self.hashes_of(index, envid, 2).len() > 1 {
                    return Err(SHARED_ENVID);
                }
                self.take_back(index, envid, hash.as_ref());
            }
            Event::Orcpt(o) => {
                self.take_back(index, &o.envid, Some(&o.hash));
            }
            _ => {}
        }
        match event {
            Event::Accept(a) => self.accept(a, new_envid),
            Event::Rcpt(r) => self.rcpt(r),
            Event::Orcpt(o) => return self.declare(o),
            Event::Mta(m) => self.mta(m),
        }
        Ok(())
    }

    /// The distinct secrets' hashes of the messages of `envid`, held here or only in `index`,
    /// as many as `enough`.
    fn hashes_of(&self, index: &Index, envid: &[u8], enough: usize) -> Vec<Hash> {
        let held = self.by_envid.get(envid).map_or(&[][..], EnvidIds::all);
        let mut hashes: Vec<Hash> = Vec::new();
        let indexed = index.records_of(envid);
        let all = held
            .iter()
            .filter_map(|id| Some(*self.messages.get(id)?.hash()))
            .chain(indexed.iter().map(|e| *e.hash()));
        for h in all {
            if hashes.len() >= enough {
                break;
            }
            if !hashes.contains(&h) {
                hashes.push(h);
            }
        }
        hashes
    }

    /// Takes back from `index` the message of (`envid`, `hash`), or the latest of `envid` when
    /// no hash is given, if the tracker forgot it (see [`Stored`]). Returns how many records of
    /// `envid` the index was found to hold (0 when it was not asked).
    fn take_back(&mut self, index: &Index, envid: &[u8], hash: Option<&Hash>) -> usize {
        let known = match hash {
            Some(h) => self.id_of(envid, h).is_some(),
            None => self.by_envid.contains_key(envid),
        };
        if known {
            return 0;
        }
        self.take_from_index(index, envid, hash)
    }

    /// [`Tracker::take_back`] for a message the tracker does not hold.
    fn take_from_index(&mut self, index: &Index, envid: &[u8], hash: Option<&Hash>) -> usize {
        let records = index.records_of(envid);
        let indexed = records.len();
        let latest = records
            .into_iter()
            .filter(|e| hash.map_or(true, |h| e.hash() == h))
            .filter_map(|e| Some((unpack(&e)?, e)))
            .max_by_key(|(m, _)| m.arrival.unix);
        let Some((m, entry)) = latest else {
            return indexed;
        };
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
        indexed
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
        self.by_message_id.retain(|_, c| !gone.contains(c.id));
        self.by_envid
            .retain(|_, ids| ids.retain(|id| !gone.contains(id)));
        // After a restart or a burst the maps were sized for far more than they now hold.
        if self.messages.capacity() > 4 * self.messages.len() + 4096 {
            self.messages.shrink_to_fit();
            self.by_message_id.shrink_to_fit();
            self.by_envid.shrink_to_fit();
        }
    }

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
            let Some(msg) = stored.message_mut() else {
                continue;
            };
            let expires_at = msg.expires_at(self.retention);
            if expires_at <= now {
                index.remove(&msg.envid, &msg.hash);
                continue;
            }
            let (wire, sidecar) = (&mut self.wire_buf, &mut self.sidecar_buf);
            render_into(msg, &self.reporting_mta, wire);
            pack(msg, wire, sidecar);
            let (last_event, finished) = (msg.last_event, msg.is_finished());
            // None only for an envid no TRACK command can name (longer than 65,535 octets).
            let built = Entry::build(
                &mut self.entry_buf,
                &msg.envid,
                &msg.hash,
                expires_at,
                wire,
                sidecar,
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
        self.by_message_id
            .retain(|_, c| messages.contains_key(&c.id));
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
        for m in self.messages.values().filter_map(Stored::message) {
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
            if !e.sidecar().is_empty() && self.id_of(e.envid(), e.hash()).is_none() {
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
        (self.orphans.len(), self.orphans.dropped())
    }
}
