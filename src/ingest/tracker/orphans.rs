//! Recipient updates that arrived before their message: lines of one message may come from
//! different files, in either order, so an update naming a queue id, Message-ID or envid that
//! no accept line has claimed yet waits here.
//!
//! Most mail of a hub is never tracked, and its lines are orphans until dropped: so the store is
//! bounded in octets, keeps one update per (reference, recipient) — the latest, as a message
//! keeps its recipients' states — and forgets a queue id's updates once the grace period after
//! its first one has passed without an accept line naming it.

use std::collections::{HashMap, VecDeque};

use crate::ingest::event::{MessageRef, RcptUpdate};

/// Most octets the held updates may take (an estimate: their values and a fixed overhead); past
/// it the oldest reference's updates are dropped, and counted.
const MAX_BYTES: usize = 64 << 20;
/// What an update costs besides its values: the structs, the vector slot, the map entry.
const OVERHEAD: usize = 256;

/// The updates that wait for one reference.
#[derive(Debug)]
struct Waiting {
    updates: Vec<RcptUpdate>,
    /// Log time of the first of them.
    since: i64,
}

/// The waiting updates, by the reference they wait for.
#[derive(Default)]
pub(super) struct Orphans {
    waiting: HashMap<MessageRef, Waiting>,
    /// The references, oldest first, for dropping when full. A reference whose updates were
    /// taken stays until popped or compacted away.
    order: VecDeque<MessageRef>,
    /// Updates held, in every list of `waiting`.
    count: usize,
    /// Their estimated octets.
    bytes: usize,
    /// Updates dropped for lack of room or time.
    dropped: u64,
}

/// The estimated octets of one held update.
fn size(u: &RcptUpdate) -> usize {
    let r = &u.recipient;
    let opt = |v: &Option<Box<[u8]>>| v.as_ref().map_or(0, |b| b.len());
    let reference = match &u.message {
        MessageRef::Envid(b) | MessageRef::MessageId(b) => b.len(),
        MessageRef::Queue(_) => 0,
    };
    OVERHEAD
        + reference
        + r.final_rcpt.len()
        + r.status.len()
        + opt(&r.original)
        + opt(&r.remote_mta)
        + opt(&r.diagnostic)
}

impl Orphans {
    /// No update waits.
    pub(super) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Updates held.
    pub(super) fn len(&self) -> usize {
        self.count
    }

    /// Updates dropped for lack of room or time, since the state began.
    pub(super) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Restores the count of dropped updates (from a snapshot).
    pub(super) fn set_dropped(&mut self, dropped: u64) {
        self.dropped = dropped;
    }

    /// Every update held, in no particular order.
    pub(super) fn updates(&self) -> impl Iterator<Item = &RcptUpdate> {
        self.waiting.values().flat_map(|w| &w.updates)
    }

    /// Keeps `r` until [`Orphans::take`] claims its reference, in place of an older update of the
    /// same recipient; drops the oldest references' updates when over the bound.
    pub(super) fn hold(&mut self, r: RcptUpdate) {
        let cost = size(&r);
        if let Some(w) = self.waiting.get_mut(&r.message) {
            let same = |u: &RcptUpdate| {
                u.recipient.final_rcpt == r.recipient.final_rcpt
                    && u.recipient.original == r.recipient.original
            };
            if let Some(old) = w.updates.iter_mut().find(|u| same(u)) {
                if r.recipient.at >= old.recipient.at {
                    self.bytes = self.bytes - size(old) + cost;
                    *old = r;
                }
                self.trim();
                return;
            }
        } else {
            // Compact before the references whose updates were taken outnumber the live ones.
            if self.order.len() >= 2 * self.waiting.len() + 1024 {
                let live = &self.waiting;
                self.order.retain(|m| live.contains_key(m));
            }
            self.order.push_back(r.message.clone());
        }
        let since = r.recipient.at;
        let w = self.waiting.entry(r.message.clone()).or_insert(Waiting {
            updates: Vec::new(),
            since,
        });
        w.since = w.since.min(since);
        w.updates.push(r);
        self.count += 1;
        self.bytes += cost;
        self.trim();
    }

    /// Drops the oldest references' updates until the held ones fit [`MAX_BYTES`].
    fn trim(&mut self) {
        while self.bytes > MAX_BYTES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            let dropped = self.remove(&oldest);
            self.dropped += dropped.len() as u64;
        }
    }

    /// The updates that wait for `r`, which stop waiting (none: an empty list, no allocation).
    pub(super) fn take(&mut self, r: &MessageRef) -> Vec<RcptUpdate> {
        if self.waiting.is_empty() {
            return Vec::new();
        }
        self.remove(r)
    }

    /// Forgets the updates that wait for `r`: their message will never be tracked.
    pub(super) fn discard(&mut self, r: &MessageRef) {
        self.take(r);
    }

    /// Drops (and counts) the updates of every queue id whose first update is older than
    /// `before`: no accept line named it in time, so its mail is not tracked.
    pub(super) fn expire_queues(&mut self, before: i64) {
        let (mut count, mut bytes, mut dropped) = (0, 0, 0);
        self.waiting.retain(|r, w| {
            let keep = !matches!(r, MessageRef::Queue(_)) || w.since >= before;
            if !keep {
                count += w.updates.len();
                bytes += w.updates.iter().map(size).sum::<usize>();
                dropped += w.updates.len() as u64;
            }
            keep
        });
        self.count -= count;
        self.bytes -= bytes;
        self.dropped += dropped;
    }

    fn remove(&mut self, r: &MessageRef) -> Vec<RcptUpdate> {
        let updates = self.waiting.remove(r).map_or_else(Vec::new, |w| w.updates);
        self.count -= updates.len();
        self.bytes -= updates.iter().map(size).sum::<usize>();
        updates
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::message::{Action, Recipient};

    fn update(queue: &str, to: &str, at: i64, diagnostic_len: usize) -> RcptUpdate {
        RcptUpdate {
            host: None,
            message: MessageRef::Queue(queue.as_bytes().into()),
            hash: None,
            recipient: Recipient {
                original: None,
                final_rcpt: to.as_bytes().into(),
                action: Action::Delayed,
                status: b"4.4.1"[..].into(),
                remote_mta: None,
                diagnostic: Some(vec![b'x'; diagnostic_len].into()),
                last_attempt: None,
                will_retry_until: None,
                at,
            },
            keeps_original: false,
            provisional: false,
        }
    }

    /// Finding: every retry of untracked mail was held (up to a million updates of ~1.2 KB).
    /// Now a recipient's retries are one update, and the whole store is bounded in octets.
    #[test]
    fn retries_are_one_update_and_the_store_is_bounded_in_octets() {
        let mut o = Orphans::default();
        for retry in 0..1_000 {
            o.hold(update("Q1", "a@x", retry, 1000));
        }
        assert_eq!(o.len(), 1);
        assert_eq!(
            o.take(&MessageRef::Queue(b"Q1"[..].into()))[0].recipient.at,
            999
        );
        for i in 0..200_000 {
            o.hold(update(&format!("Q{i}"), "a@x", 0, 1000));
        }
        assert!(o.bytes <= MAX_BYTES, "{} octets held", o.bytes);
        assert!(o.dropped() > 0);
        assert_eq!(o.count, o.updates().count());
    }

    #[test]
    fn a_queues_updates_go_after_the_grace_period() {
        let mut o = Orphans::default();
        o.hold(update("OLD", "a@x", 100, 10));
        o.hold(update("NEW", "a@x", 900, 10));
        o.expire_queues(500);
        assert_eq!(o.len(), 1);
        assert!(o.take(&MessageRef::Queue(b"OLD"[..].into())).is_empty());
        assert_eq!(o.take(&MessageRef::Queue(b"NEW"[..].into())).len(), 1);
        assert_eq!((o.len(), o.bytes, o.dropped()), (0, 0, 1));
    }
}
