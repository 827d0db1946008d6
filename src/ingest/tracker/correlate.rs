//! Correlation proper: what each event does to the messages, the queue ids and the links
//! between them (content filters and forwarding hand a message on to a new queue id; an accept
//! line claims a queue id or a Message-ID, before or after the MTA's own lines).

use std::collections::hash_map::Entry;

use super::refs::{EnvidIds, MessageIdClaim, QueueInfo};
use super::stored::Stored;
use super::{Id, Tracker, UNCLAIMED_GRACE, UNKNOWN_MESSAGE};
use crate::index::message::{Action, Message, Recipient};
use crate::ingest::event::{Accept, MessageRef, MtaEvent, Orcpt, RcptUpdate};
use crate::ingest::queue_id::QueueId;
use crate::protocol::secret::Hash;

/// How many seconds before its hand-off line the next hop's lines of the same message may be
/// logged (one SMTP reply's time, across a second boundary).
const HANDOFF_RACE: i64 = 2;

/// Longest chain of hand-offs followed (content filter, forwarding): guards against loops.
const MAX_HANDOFF_DEPTH: u32 = 16;

impl Tracker {
    /// Moves the log clock (the latest event time seen) on to `unix`.
    fn advance_log_clock(&mut self, unix: i64) {
        self.log_clock = self.log_clock.max(unix);
    }

    /// Notes a line about `queue` logged at `seen` (the line's own time; the log clock for lines
    /// that carry none), remembering the queue id if new, and gives what is known of it. One
    /// probe of the map: an inline queue id is copied, not allocated, for the key.
    fn touch_queue(&mut self, queue: &QueueId, seen: i64) -> &mut QueueInfo {
        let info = self
            .queues
            .entry(queue.clone())
            .or_insert_with(|| QueueInfo {
                seen,
                ..QueueInfo::default()
            });
        info.seen = info.seen.max(seen);
        info
    }

    /// Notes a line about `queue` logged at `seen` and changes its state.
    fn with_queue(&mut self, queue: &QueueId, seen: i64, change: impl FnOnce(&mut QueueInfo)) {
        change(self.touch_queue(queue, seen));
    }

    pub(super) fn mta(&mut self, event: MtaEvent) {
        match event {
            MtaEvent::Arrival {
                queue,
                time,
                message_id,
            } => {
                self.advance_log_clock(time.unix);
                if self.queues.get(&queue).is_some_and(|q| q.done) {
                    // Postfix reuses short queue ids: this is a new message.
                    self.forget_queue(&queue);
                    if let Some(a) = &mut self.audit {
                        a.reused(&queue);
                    }
                }
                self.touch_queue(&queue, time.unix);
                if let Some(m) = message_id {
                    self.note_message_id(queue, m);
                }
            }
            MtaEvent::MessageId { queue, message_id } => {
                self.note_message_id(queue, message_id);
            }
            MtaEvent::Recipient { queue, recipient } => {
                self.queue_recipient(queue, recipient, false);
            }
            MtaEvent::HandedOff {
                queue,
                new_queue,
                recipient,
                hop,
            } => {
                let to = self
                    .hosts
                    .next_hop(queue.host(), &hop.name, hop.addr, hop.port);
                match to {
                    Some(host) => {
                        self.queue_recipient(queue.clone(), recipient, true);
                        let new_queue = new_queue.on_host(host);
                        self.mta(MtaEvent::Handoff { queue, new_queue });
                    }
                    // Out of the cluster: the hop's reply is a stranger's, its id means nothing.
                    None => self.queue_recipient(queue, recipient, false),
                }
            }
            MtaEvent::Handoff { queue, new_queue } => {
                let now = self.log_clock;
                self.touch_queue(&new_queue, now);
                match self.by_queue.get(&queue).copied() {
                    Some(id) => self.link_queue(new_queue, id, 0),
                    None => self.with_queue(&queue, now, |q| q.handoffs.push(new_queue)),
                }
            }
            MtaEvent::Expired { queue, time } => {
                self.advance_log_clock(time.unix);
                self.touch_queue(&queue, time.unix);
                let Some(id) = self.by_queue.get(&queue).copied() else {
                    return;
                };
                // A finished message has no pending recipient: nothing to fail.
                let stored = self.messages.get_mut(&id);
                if matches!(stored, Some(Stored::Packed { finished: true, .. })) {
                    return;
                }
                let Some(msg) = stored.and_then(Stored::message_mut) else {
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
                self.advance_log_clock(time.unix);
                self.with_queue(&queue, time.unix, |q| q.done = true);
            }
            MtaEvent::Notification { queue } => {
                self.with_queue(&queue, self.log_clock, |q| q.notification = true);
                self.orphans.discard(&MessageRef::Queue(queue));
            }
        }
    }

    /// A recipient's new state from a line of `queue` (not tracked for a notification's own
    /// queue); `provisional` for a hand-off's `relayed` ([`RcptUpdate::provisional`]).
    fn queue_recipient(&mut self, queue: QueueId, recipient: Recipient, provisional: bool) {
        self.advance_log_clock(recipient.at);
        if self.touch_queue(&queue, recipient.at).notification {
            return;
        }
        if let Some(a) = &mut self.audit {
            a.named(&queue, &recipient.final_rcpt);
        }
        self.rcpt(RcptUpdate {
            message: MessageRef::Queue(queue),
            host: None,
            hash: None,
            recipient,
            keeps_original: false,
            provisional,
        });
    }

    fn note_message_id(&mut self, queue: QueueId, message_id: Box<[u8]>) {
        self.with_queue(&queue, self.log_clock, |q| {
            q.message_id = Some(message_id.clone())
        });
        let now = self.log_clock;
        match self.by_message_id.get_mut(&message_id) {
            Some(claim) if !claim.settled && now.abs_diff(claim.at) <= UNCLAIMED_GRACE as u64 => {
                claim.settled = true;
                let id = claim.id;
                self.link_queue(queue, id, 0);
            }
            // Another message with the same header: not the one the accept line named.
            Some(_) => {}
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
        if let (Some(a), Some(m)) = (&mut self.audit, self.messages.get(&id)) {
            a.linked(&queue, m.envid(), m.hash());
        }
        let handoffs = self
            .queues
            .get_mut(&queue)
            .map(|q| std::mem::take(&mut q.handoffs))
            .unwrap_or_default();
        // The queues it went on to first: their lines are later news of the same recipients, and
        // a hand-off's provisional `relayed` held here must not get in before them.
        for next in handoffs {
            self.link_queue(next, id, depth + 1);
        }
        for update in self.orphans.take(&MessageRef::Queue(queue)) {
            self.rcpt(update);
        }
    }

    fn forget_queue(&mut self, queue: &QueueId) {
        let info = self.queues.remove(queue);
        self.unlink_queue(queue, info.as_ref());
    }

    /// Drops what refers to a queue id being forgotten, whose entry `info` was taken out of
    /// `queues`: its message link, its Message-ID, the updates that waited for it.
    fn unlink_queue(&mut self, queue: &QueueId, info: Option<&QueueInfo>) {
        if let Some(m) = info.and_then(|i| i.message_id.as_ref()) {
            if self.queue_of_message_id.get(m).is_some_and(|q| q == queue) {
                self.queue_of_message_id.remove(m);
            }
        }
        self.by_queue.remove(queue);
        if !self.orphans.is_empty() {
            self.orphans.discard(&MessageRef::Queue(queue.clone()));
        }
    }

    /// Forgets queue ids the MTA finished long enough ago, and those that never finished within
    /// the correlation timeout (counted), with every update that waited for them; and the
    /// updates of queue ids no accept line named within the grace period.
    pub(super) fn sweep_queues(&mut self) {
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
        self.orphans
            .expire_queues(now.saturating_sub(UNCLAIMED_GRACE));
        self.queues_after_sweep = self.queues.len();
        self.evict_finished();
        self.messages_after_sweep = self.messages.len();
    }

    /// A message accepted for tracking; `new_envid` when the tracker and the index hold no
    /// message of its envid (so none of its secret either).
    pub(super) fn accept(&mut self, a: Accept, new_envid: bool) {
        // What updates waiting for this message may be filed under; usually none wait.
        let mut refs = Vec::new();
        if !self.orphans.is_empty() {
            refs.push(MessageRef::Envid(a.envid.clone()));
            refs.extend(a.queue.iter().cloned().map(MessageRef::Queue));
            refs.extend(a.message_id.iter().cloned().map(MessageRef::MessageId));
        }
        let held = if new_envid {
            None
        } else {
            self.id_of(&a.envid, &a.hash)
        };
        let id = match held {
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
                orcpts: Default::default(),
            }))
        });
        let Some(msg) = stored.message_mut() else {
            return;
        };
        msg.arrival = a.time;
        msg.timeout = a.timeout;
        msg.headers = a.headers;
        msg.last_event = msg.last_event.max(a.time.unix);
        match self.by_envid.entry(a.envid) {
            Entry::Occupied(mut ids) => ids.get_mut().make_latest(id),
            Entry::Vacant(slot) => {
                slot.insert(EnvidIds::One(id));
            }
        }
        self.advance_log_clock(a.time.unix);
        self.dirty.insert(id);
        let mut claim = MessageIdClaim {
            id,
            at: a.time.unix,
            settled: a.queue.is_some(),
        };
        if let Some(q) = a.queue {
            self.link_queue(q, id, 0);
        }
        if let Some(m) = a.message_id {
            // A queue id that logged the Message-ID shortly before the accept line.
            let waiting = match self.queue_of_message_id.remove(&m) {
                Some(q) if !claim.settled => self
                    .queues
                    .get(&q)
                    .is_some_and(|info| info.seen.abs_diff(a.time.unix) <= UNCLAIMED_GRACE as u64)
                    .then_some(q),
                _ => None,
            };
            claim.settled |= waiting.is_some();
            self.by_message_id.insert(m, claim);
            if let Some(q) = waiting {
                self.link_queue(q, id, 0);
            }
        }
        for r in refs {
            for update in self.orphans.take(&r) {
                self.rcpt(update);
            }
        }
    }

    /// The message of (`envid`, `hash`).
    pub(super) fn id_of(&self, envid: &[u8], hash: &Hash) -> Option<Id> {
        let ids = self.by_envid.get(envid)?;
        ids.all()
            .iter()
            .copied()
            .find(|id| self.messages.get(id).is_some_and(|m| m.hash() == hash))
    }

    fn resolve(&self, message: &MessageRef, hash: Option<Hash>) -> Option<Id> {
        match message {
            MessageRef::Queue(q) => self.by_queue.get(q).copied(),
            MessageRef::MessageId(m) => self.by_message_id.get(m).map(|c| c.id),
            MessageRef::Envid(e) => match hash {
                Some(h) => self.id_of(e, &h),
                None => self.by_envid.get(e).and_then(EnvidIds::latest),
            },
        }
    }

    pub(super) fn rcpt(&mut self, mut r: RcptUpdate) {
        let Some(id) = self.resolve(&r.message, r.hash) else {
            self.orphans.hold(r);
            return;
        };
        let Some(msg) = self.messages.get_mut(&id).and_then(Stored::message_mut) else {
            return;
        };
        if r.recipient.action.is_pending() && r.recipient.will_retry_until.is_none() {
            r.recipient.will_retry_until = Some(msg.arrival.plus(self.retention.queue_lifetime));
        }
        if !r.keeps_original {
            msg.orcpts.apply(&mut r.recipient);
        }
        let settled = |i: usize| {
            msg.recipients
                .get(i)
                .is_some_and(|o| !o.action.is_pending())
        };
        let held = msg.recipient_position(r.recipient.original.as_deref(), &r.recipient.final_rcpt);
        if r.provisional {
            if held.is_some_and(settled) {
                return;
            }
            // The next hop's own lines (another host's, read from another stream) may be
            // logged in the same second as the hand-off line, or just before it: dated a
            // little earlier, the hand-off's `relayed` gives way to them, and still replaces
            // the hop's own earlier deferral, minutes older.
            r.recipient.at = r.recipient.at.saturating_sub(HANDOFF_RACE);
        }
        msg.update_recipient(r.recipient);
        // Unpacked: published (and packed) again whether it changed or not.
        self.dirty.insert(id);
    }

    /// The SMTP gate's ORCPT for one RCPT TO of a message it accepted: kept with the message,
    /// and given to the recipients MTA lines created and will create for that address.
    pub(super) fn declare(&mut self, o: Orcpt) -> Result<(), &'static str> {
        let id = self.id_of(&o.envid, &o.hash).ok_or(UNKNOWN_MESSAGE)?;
        let Some(msg) = self.messages.get_mut(&id).and_then(Stored::message_mut) else {
            return Err(UNKNOWN_MESSAGE);
        };
        // Unpacked: published (and packed) again whether it changes or not.
        self.dirty.insert(id);
        if msg
            .declare_orcpt(o.rcpt, o.original)
            .map_err(|refused| refused.reason())?
        {
            msg.last_event = msg.last_event.max(o.time.unix);
        }
        self.advance_log_clock(o.time.unix);
        Ok(())
    }
}
