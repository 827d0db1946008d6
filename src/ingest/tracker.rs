//! Correlation: applies [`Event`]s from every log to the messages they belong to, and publishes
//! changed messages to the index — rendered once per batch, however many lines changed them.
//!
//! Owned by the ingest thread alone. Every map here is bounded: messages leave when they
//! expire, recipient updates that arrive before their message wait in a bounded queue.

use std::collections::{HashMap, HashSet, VecDeque};

use super::event::{Accept, Event, MessageRef, RcptUpdate};
use crate::index::record::{Message, Retention};
use crate::index::render::render;
use crate::index::{Entry, Index};
use crate::protocol::secret::Hash;

/// A message is known by its envid and the hash of its secret.
type Key = (Box<[u8]>, Hash);

/// Most recipient updates held while waiting for their message's accept line.
const MAX_ORPHANS: usize = 100_000;

/// The correlation state.
pub struct Tracker {
    reporting_mta: String,
    retention: Retention,
    messages: HashMap<Key, Message>,
    /// The hash of the latest message of each envid, for updates that name only the envid.
    by_envid: HashMap<Box<[u8]>, Hash>,
    by_queue: HashMap<Box<[u8]>, Key>,
    by_message_id: HashMap<Box<[u8]>, Key>,
    /// Updates whose message is not known yet, by the reference they wait for...
    orphans: HashMap<MessageRef, Vec<RcptUpdate>>,
    /// ...and those references, oldest first, for eviction when full.
    orphan_order: VecDeque<MessageRef>,
    orphan_count: usize,
    dirty: HashSet<Key>,
    dropped_orphans: u64,
}

impl Tracker {
    /// An empty tracker. `reporting_mta` names this hub in every answer.
    pub fn new(reporting_mta: String, retention: Retention) -> Tracker {
        Tracker {
            reporting_mta,
            retention,
            messages: HashMap::new(),
            by_envid: HashMap::new(),
            by_queue: HashMap::new(),
            by_message_id: HashMap::new(),
            orphans: HashMap::new(),
            orphan_order: VecDeque::new(),
            orphan_count: 0,
            dirty: HashSet::new(),
            dropped_orphans: 0,
        }
    }

    /// Applies one event. Changes reach the index at the next [`Tracker::publish`].
    pub fn apply(&mut self, event: Event) {
        match event {
            Event::Accept(a) => self.accept(a),
            Event::Rcpt(r) => self.rcpt(r),
        }
    }

    fn accept(&mut self, a: Accept) {
        let key: Key = (a.envid.clone(), a.hash);
        let mut refs = vec![MessageRef::Envid(a.envid.clone())];
        refs.extend(a.queue.iter().cloned().map(MessageRef::Queue));
        refs.extend(a.message_id.iter().cloned().map(MessageRef::MessageId));
        let msg = self.messages.entry(key.clone()).or_insert_with(|| Message {
            envid: a.envid.clone(),
            hash: a.hash,
            arrival: a.time,
            timeout: a.timeout,
            headers: Vec::new(),
            recipients: Vec::new(),
            last_event: a.time.unix,
        });
        msg.arrival = a.time;
        msg.timeout = a.timeout;
        msg.headers = a.headers;
        msg.last_event = msg.last_event.max(a.time.unix);
        self.by_envid.insert(a.envid, a.hash);
        if let Some(q) = a.queue {
            self.by_queue.insert(q, key.clone());
        }
        if let Some(m) = a.message_id {
            self.by_message_id.insert(m, key.clone());
        }
        self.dirty.insert(key);
        for r in refs {
            if let Some(waiting) = self.orphans.remove(&r) {
                self.orphan_count -= waiting.len();
                waiting.into_iter().for_each(|u| self.rcpt(u));
            }
        }
    }

    fn resolve(&self, message: &MessageRef, hash: Option<Hash>) -> Option<Key> {
        match message {
            MessageRef::Queue(q) => self.by_queue.get(q).cloned(),
            MessageRef::MessageId(m) => self.by_message_id.get(m).cloned(),
            MessageRef::Envid(e) => {
                let hash = hash.or_else(|| self.by_envid.get(e).copied())?;
                let key = (e.clone(), hash);
                self.messages.contains_key(&key).then_some(key)
            }
        }
    }

    fn rcpt(&mut self, mut r: RcptUpdate) {
        let Some(key) = self.resolve(&r.message, r.hash) else {
            self.hold_orphan(r);
            return;
        };
        let Some(msg) = self.messages.get_mut(&key) else {
            return;
        };
        if r.recipient.action.is_pending() && r.recipient.will_retry_until.is_none() {
            r.recipient.will_retry_until = Some(msg.arrival.plus(self.retention.queue_lifetime));
        }
        if msg.update_recipient(r.recipient) {
            self.dirty.insert(key);
        }
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
        for key in self.dirty.drain() {
            let Some(msg) = self.messages.get(&key) else {
                continue;
            };
            let expires_at = msg.expires_at(self.retention);
            if expires_at <= now {
                index.remove(&key.0, &key.1);
                continue;
            }
            let answer = render(msg, &self.reporting_mta);
            index.upsert(
                &key.0,
                Entry {
                    hash: key.1,
                    expires_at,
                    answer,
                },
            );
            rendered += 1;
        }
        rendered
    }

    /// Forgets every expired message and every reference to it, and sweeps the index.
    pub fn expire(&mut self, index: &Index, now: i64) -> usize {
        let retention = self.retention;
        let before = self.messages.len();
        self.messages.retain(|_, m| m.expires_at(retention) > now);
        let messages = &self.messages;
        self.by_queue.retain(|_, k| messages.contains_key(k));
        self.by_message_id.retain(|_, k| messages.contains_key(k));
        self.by_envid
            .retain(|e, h| messages.contains_key(&(e.clone(), *h)));
        index.sweep(now);
        before - self.messages.len()
    }

    /// How many messages are tracked.
    pub fn messages(&self) -> usize {
        self.messages.len()
    }

    /// How many updates wait for their message, and how many were dropped for lack of room.
    pub fn orphans(&self) -> (usize, u64) {
        (self.orphan_count, self.dropped_orphans)
    }
}
