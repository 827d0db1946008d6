//! What refers to a tracked message besides its envid and hash: the MTA's queue ids, with what
//! the MTA said about each, the Message-IDs accept lines gave, and the list of messages one
//! envid names.

use super::Id;
use crate::ingest::queue_id::QueueId;

/// What the MTA said about one of its queue ids.
#[derive(Debug, Default)]
pub(super) struct QueueInfo {
    pub(super) message_id: Option<Box<[u8]>>,
    /// Queue ids this one handed the message on to, to link when this one is linked.
    pub(super) handoffs: Vec<QueueId>,
    /// A notification the MTA generated (a bounce): none of its lines is tracked.
    pub(super) notification: bool,
    /// The MTA is done with it; a later arrival under the same id is a new message.
    pub(super) done: bool,
    /// Log time of the latest line about it.
    pub(super) seen: i64,
}

/// The message a Message-ID of an accept line names, and whether an MTA queue id may still be
/// tied to it by that Message-ID. Any recipient of a message has its `Message-ID:` header and may
/// send another message with it: so at most one queue id is tied, the first to log it within
/// the grace period after the accept line, and none when the accept line named its queue id.
#[derive(Debug, Clone, Copy)]
pub(super) struct MessageIdClaim {
    pub(super) id: Id,
    /// Log time of the accept line.
    pub(super) at: i64,
    /// A queue id was tied by the Message-ID, or the accept named its queue: no other will be.
    pub(super) settled: bool,
}

/// The ids of the messages of one envid, the latest last. Nearly always one, held inline.
#[derive(Debug)]
pub(super) enum EnvidIds {
    One(Id),
    Many(Box<[Id]>),
}

impl EnvidIds {
    pub(super) fn all(&self) -> &[Id] {
        match self {
            EnvidIds::One(id) => std::slice::from_ref(id),
            EnvidIds::Many(ids) => ids,
        }
    }

    pub(super) fn latest(&self) -> Option<Id> {
        self.all().last().copied()
    }

    /// Adds `id` as the oldest.
    pub(super) fn add_oldest(&mut self, id: Id) {
        let mut ids = vec![id];
        ids.extend(self.all().iter().copied().filter(|&i| i != id));
        *self = EnvidIds::from_vec(ids);
    }

    /// Makes `id` the latest, adding it if new.
    pub(super) fn make_latest(&mut self, id: Id) {
        if self.latest() == Some(id) {
            return;
        }
        let mut ids: Vec<Id> = self.all().iter().copied().filter(|&i| i != id).collect();
        ids.push(id);
        *self = EnvidIds::from_vec(ids);
    }

    pub(super) fn from_vec(ids: Vec<Id>) -> EnvidIds {
        match ids[..] {
            [one] => EnvidIds::One(one),
            _ => EnvidIds::Many(ids.into()),
        }
    }

    /// Keeps the ids for which `keep` holds; false when none is left.
    /// The common case, one id, allocates nothing: every sweep calls this for every envid.
    pub(super) fn retain(&mut self, keep: impl Fn(Id) -> bool) -> bool {
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
