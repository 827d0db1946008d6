//! Recipient updates that arrived before their message: lines of one message may come from
//! different files, in either order, so an update naming a queue id, Message-ID or envid that
//! no accept line has claimed yet waits here, in bounded numbers.

use std::collections::{HashMap, VecDeque};

use crate::ingest::event::{MessageRef, RcptUpdate};

/// Most updates held; past it the oldest reference's updates are dropped (and counted).
const MAX_ORPHANS: usize = 1_000_000;

/// The waiting updates, by the reference they wait for.
#[derive(Default)]
pub(super) struct Orphans {
    waiting: HashMap<MessageRef, Vec<RcptUpdate>>,
    /// The references, oldest first, for dropping when full. A reference whose updates were
    /// taken stays until popped or compacted away.
    order: VecDeque<MessageRef>,
    /// Updates held, in every list of `waiting`.
    count: usize,
    /// Updates dropped for lack of room.
    dropped: u64,
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

    /// Updates dropped for lack of room, since the state began.
    pub(super) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Restores the count of dropped updates (from a snapshot).
    pub(super) fn set_dropped(&mut self, dropped: u64) {
        self.dropped = dropped;
    }

    /// Every update held, in no particular order.
    pub(super) fn updates(&self) -> impl Iterator<Item = &RcptUpdate> {
        self.waiting.values().flatten()
    }

    /// Keeps `r` until [`Orphans::take`] claims its reference, dropping the oldest reference's
    /// updates when full.
    pub(super) fn hold(&mut self, r: RcptUpdate) {
        while self.count >= MAX_ORPHANS {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            let dropped = self.remove(&oldest);
            self.dropped += dropped.len() as u64;
        }
        if !self.waiting.contains_key(&r.message) {
            // Compact before the references whose updates were taken outnumber the live ones.
            if self.order.len() >= 2 * MAX_ORPHANS {
                let live = &self.waiting;
                self.order.retain(|m| live.contains_key(m));
            }
            self.order.push_back(r.message.clone());
        }
        self.waiting.entry(r.message.clone()).or_default().push(r);
        self.count += 1;
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

    fn remove(&mut self, r: &MessageRef) -> Vec<RcptUpdate> {
        let updates = self.waiting.remove(r).unwrap_or_default();
        self.count -= updates.len();
        updates
    }
}
