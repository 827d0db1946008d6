//! The events every log format is turned into: a message was accepted with a tracking secret,
//! or one recipient's state changed. Parsers produce them; [`super::tracker`] applies them.

use crate::index::date::Timestamp;
use crate::index::record::Recipient;
use crate::protocol::secret::Hash;

/// How an event names the message it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MessageRef {
    /// The envid, decoded from xtext.
    Envid(Box<[u8]>),
    /// The MTA's queue id.
    Queue(Box<[u8]>),
    /// The Message-ID header, without angle brackets.
    MessageId(Box<[u8]>),
}

/// A message was accepted for tracking (RFC 3885 MAIL FROM with ENVID and MTRK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    pub time: Timestamp,
    pub envid: Box<[u8]>,
    pub hash: Hash,
    pub timeout: Option<u32>,
    pub queue: Option<Box<[u8]>>,
    pub message_id: Option<Box<[u8]>>,
    /// Extra outer-header lines for the tracking answer.
    pub headers: Vec<Box<[u8]>>,
}

/// One recipient's state changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptUpdate {
    /// Which message; when it names the envid, `hash` may pick among messages sharing it.
    pub message: MessageRef,
    pub hash: Option<Hash>,
    /// The new state; `at` is the event time. A `delayed` state without Will-Retry-Until gets
    /// one from the message's arrival and the queue lifetime when applied.
    pub recipient: Recipient,
}

/// What a log line meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Accept(Accept),
    Rcpt(RcptUpdate),
}
