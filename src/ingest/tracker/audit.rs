//! An offline audit for `mtqpd ingest-check`: every recipient an MTA line names for a queue id
//! of a tracked message must be in that message's answer. The parsers' rejections are counted
//! apart; this finds what correlation, hand-offs, packing or the answer's own read-back lost.
//! It keeps every address it is told, so it is for a bounded replay, never for `serve`.

use std::collections::HashMap;

use crate::index::message::Message;
use crate::ingest::queue_id::QueueId;
use crate::protocol::secret::Hash;

/// A message: its envid and the hash of its secret.
type Owner = (Box<[u8]>, Hash);
/// The addresses named as recipients under one queue id.
type Named = Vec<Box<[u8]>>;

/// What the MTA lines named, and which message each queue id turned out to be.
#[derive(Debug, Default)]
pub struct Audit {
    /// The addresses the lines of each queue id named as a recipient's final address.
    named: HashMap<QueueId, Named>,
    /// The message (envid, hash of its secret) each queue id was linked to.
    owner: HashMap<QueueId, Owner>,
    /// What earlier messages under a queue id the MTA reused named.
    retired: Vec<(QueueId, Named, Owner)>,
}

/// A recipient an MTA line named that its message's answer lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub envid: String,
    pub queue: String,
    pub address: String,
}

impl Audit {
    pub(super) fn named(&mut self, queue: &QueueId, address: &[u8]) {
        let list = self.named.entry(queue.clone()).or_default();
        if !list.iter().any(|a| a.eq_ignore_ascii_case(address)) {
            list.push(address.into());
        }
    }

    /// `queue` names a new message from now on (Postfix reuses queue ids).
    pub(super) fn reused(&mut self, queue: &QueueId) {
        let named = self.named.remove(queue);
        if let (Some(named), Some(owner)) = (named, self.owner.remove(queue)) {
            self.retired.push((queue.clone(), named, owner));
        }
    }

    pub(super) fn linked(&mut self, queue: &QueueId, envid: &[u8], hash: &Hash) {
        self.owner.insert(queue.clone(), (envid.into(), *hash));
    }

    /// The named recipients of linked queue ids that are not among `messages`' recipients (by
    /// final address, ignoring ASCII case), sorted.
    pub fn missing(&self, messages: &[Message]) -> Vec<Missing> {
        let by_key: HashMap<(&[u8], &Hash), &Message> =
            messages.iter().map(|m| ((&*m.envid, &m.hash), m)).collect();
        let mut missing = Vec::new();
        let current = self
            .named
            .iter()
            .filter_map(|(q, named)| Some((q, named, self.owner.get(q)?)));
        let retired = self
            .retired
            .iter()
            .map(|(q, named, owner)| (q, named, owner));
        for (queue, addresses, (envid, hash)) in current.chain(retired) {
            let message = by_key.get(&(&**envid, hash));
            for a in addresses {
                let present = message.is_some_and(|m| {
                    m.recipients
                        .iter()
                        .any(|r| r.final_rcpt.eq_ignore_ascii_case(a))
                });
                if !present {
                    missing.push(Missing {
                        envid: String::from_utf8_lossy(envid).into_owned(),
                        queue: String::from_utf8_lossy(queue).into_owned(),
                        address: String::from_utf8_lossy(a).into_owned(),
                    });
                }
            }
        }
        missing.sort_by(|a, b| {
            (&a.envid, &a.queue, &a.address).cmp(&(&b.envid, &b.queue, &b.address))
        });
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::message::{Action, Recipient, RecipientIndex};
    use crate::protocol::date::Timestamp;

    fn message(envid: &str, rcpts: &[&str]) -> Message {
        Message {
            envid: envid.as_bytes().into(),
            hash: [1; 20],
            arrival: Timestamp {
                unix: 0,
                offset_minutes: 0,
            },
            timeout: None,
            headers: Vec::new(),
            recipients: rcpts
                .iter()
                .map(|r| Recipient {
                    original: None,
                    final_rcpt: r.as_bytes().into(),
                    action: Action::Delivered,
                    status: b"2.0.0"[..].into(),
                    remote_mta: None,
                    diagnostic: None,
                    last_attempt: None,
                    will_retry_until: None,
                    at: 0,
                })
                .collect(),
            last_event: 0,
            lookup: RecipientIndex::default(),
            orcpts: Default::default(),
        }
    }

    #[test]
    fn a_named_recipient_absent_from_its_answer_is_missing() {
        let mut a = Audit::default();
        let (q1, q2, q3) = (b"Q1"[..].into(), b"Q2"[..].into(), b"Q3"[..].into());
        a.named(&q1, b"a@x");
        a.named(&q1, b"B@x");
        a.named(&q2, b"c@x");
        a.linked(&q1, b"e1", &[1; 20]);
        a.linked(&q2, b"e1", &[1; 20]);
        // Q3 is no tracked message's: not counted.
        a.named(&q3, b"z@x");
        // Q1 reused for another message, which names d@x.
        a.reused(&q1);
        a.named(&q1, b"d@x");
        a.linked(&q1, b"e2", &[1; 20]);
        let messages = [message("e1", &["a@x", "b@x"]), message("e2", &[])];
        let missing: Vec<_> = a
            .missing(&messages)
            .into_iter()
            .map(|m| format!("{} {} {}", m.envid, m.queue, m.address))
            .collect();
        assert_eq!(missing, ["e1 Q2 c@x", "e2 Q1 d@x"]);
    }
}
