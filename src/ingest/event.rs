//! The events every log format is turned into: a message was accepted with a tracking secret,
//! one recipient's state changed, or the SMTP gate declared a recipient's ORCPT. Parsers
//! produce them; [`super::tracker`] applies them.

use super::hosts::HostId;
use super::queue_id::QueueId;
use super::syslog::Prefix;
use crate::index::message::Recipient;
use crate::protocol::date::Timestamp;
use crate::protocol::secret::Hash;

/// How an event names the message it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MessageRef {
    /// The envid, decoded from xtext.
    Envid(Box<[u8]>),
    /// The MTA's queue id.
    Queue(QueueId),
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
    pub queue: Option<QueueId>,
    /// The host whose MTA gave `queue`, when the line names it (native `host=`); else the
    /// host the line's source belongs to.
    pub host: Option<Box<[u8]>>,
    pub message_id: Option<Box<[u8]>>,
    /// Extra outer-header lines for the tracking answer.
    pub headers: Vec<Box<[u8]>>,
}

/// One recipient's state changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptUpdate {
    /// Which message; when it names the envid, `hash` may pick among messages sharing it.
    pub message: MessageRef,
    /// The host of a queue id in `message`, when the line names it (native `host=`).
    pub host: Option<Box<[u8]>>,
    pub hash: Option<Hash>,
    /// The new state; `at` is the event time. A `delayed` state without Will-Retry-Until gets
    /// one from the message's arrival and the queue lifetime when applied.
    pub recipient: Recipient,
    /// True for a native line that gave its own `orcpt=`: the recipient keeps that ORCPT,
    /// where an MTA's original (the address before aliasing) gives way to the one the SMTP
    /// gate declared ([`Orcpt`]).
    pub keeps_original: bool,
    /// A hand-off's `relayed` ([`MtaEvent::HandedOff`]): it sets a recipient the message does
    /// not have yet or one still delayed, never one already final (the follow-up queue's own
    /// delivery may be logged before the hand-off line, in the same second).
    pub provisional: bool,
}

/// The SMTP gate declared the ORCPT a client gave with one RCPT TO of a tracked message
/// (native `event=recipient`): no MTA logs ORCPT, so the gate is its only source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orcpt {
    /// The message, by its exact identity: the gate saw its MAIL FROM.
    pub envid: Box<[u8]>,
    pub hash: Hash,
    /// The RCPT TO address, as the client gave it between `<` and `>`.
    pub rcpt: Box<[u8]>,
    /// The ORCPT as `addr-type;address`, xtext-decoded.
    pub original: Box<[u8]>,
    pub time: Timestamp,
}

/// What an MTA's own log line says about one of its queue ids. Queue ids name a message only
/// between its arrival and its [`MtaEvent::Done`]; Postfix reuses short ids after that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MtaEvent {
    /// A message entered the queue (Postfix smtpd `client=` / pickup / qmgr `from=`, Exim `<=`,
    /// sendmail `from=`). `message_id` when the line gives it (Exim `id=`, sendmail `msgid=`).
    Arrival {
        queue: QueueId,
        time: Timestamp,
        message_id: Option<Box<[u8]>>,
    },
    /// The Message-ID header of a queued message (Postfix cleanup), without angle brackets.
    MessageId {
        queue: QueueId,
        message_id: Box<[u8]>,
    },
    /// One recipient's state changed (`to=... status=`, Exim `=>`, `->`, `**`, `==`).
    Recipient {
        queue: QueueId,
        recipient: Recipient,
    },
    /// The message went on under another queue id of this host (a content filter's `queued as`,
    /// a local `forwarded as`, sendmail's MSP→MTA hop): the new id is the same message.
    Handoff { queue: QueueId, new_queue: QueueId },
    /// A recipient was handed to a next hop that queued it as `new_queue` (Postfix
    /// `relay=hub2[10.0.0.2]:25 … queued as NEW`). When the hop is a host of the cluster
    /// ([`super::hosts::Hosts::next_hop`]) — this host's content filter re-injecting, another
    /// instance, another hub whose lines come in the stream — the message goes on as
    /// `new_queue` there: the recipient shows `relayed` to that hop until the lines of
    /// `new_queue` give it a state, and never replaces one they gave
    /// ([`RcptUpdate::provisional`]). Otherwise the recipient is simply `relayed`.
    HandedOff {
        queue: QueueId,
        new_queue: QueueId,
        recipient: Recipient,
        hop: NextHop,
    },
    /// The MTA gave up (Postfix `status=expired`): every recipient still delayed has failed.
    Expired { queue: QueueId, time: Timestamp },
    /// The queue id is finished and may be reused (Postfix `removed`, Exim `Completed`).
    Done { queue: QueueId, time: Timestamp },
    /// `queue` is a notification the MTA generated (a bounce, a delay warning): not a message of
    /// the sender, so none of its lines is tracked.
    Notification { queue: QueueId },
}

/// The next hop of a hand-off, as the delivery line names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextHop {
    /// The host name (`relay=NAME[…]`, `H=NAME`), without a trailing dot.
    pub name: Box<[u8]>,
    pub addr: Option<std::net::IpAddr>,
    pub port: Option<u16>,
}

impl NextHop {
    /// A hop named `name` at `addr` (an IP address as a line writes it, possibly `IPv6:`
    /// prefixed) and `port`, when they parse.
    pub fn new(name: &[u8], addr: &[u8], port: Option<&[u8]>) -> NextHop {
        let addr = addr.strip_prefix(b"IPv6:").unwrap_or(addr);
        fn parse<T: std::str::FromStr>(b: &[u8]) -> Option<T> {
            std::str::from_utf8(b).ok()?.parse().ok()
        }
        NextHop {
            name: name.strip_suffix(b".").unwrap_or(name).into(),
            addr: parse(addr),
            port: port.and_then(parse),
        }
    }
}

/// What a log line meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Accept(Accept),
    Rcpt(RcptUpdate),
    Orcpt(Orcpt),
    Mta(MtaEvent),
}

impl Event {
    /// Puts every queue id the line names on `host`, the host that logged it (a hand-off's new
    /// id too: the tracker moves it when the hop was another host). An accept or update line
    /// that names its own host is qualified by the caller, before.
    pub fn qualify(&mut self, host: HostId) {
        match self {
            Event::Accept(Accept { queue, .. }) => {
                if let Some(q) = queue {
                    q.set_host(host);
                }
            }
            Event::Rcpt(r) => {
                if let MessageRef::Queue(q) = &mut r.message {
                    q.set_host(host);
                }
            }
            Event::Orcpt(_) => {}
            Event::Mta(m) => match m {
                MtaEvent::Arrival { queue, .. }
                | MtaEvent::MessageId { queue, .. }
                | MtaEvent::Recipient { queue, .. }
                | MtaEvent::Expired { queue, .. }
                | MtaEvent::Done { queue, .. }
                | MtaEvent::Notification { queue } => queue.set_host(host),
                MtaEvent::Handoff { queue, new_queue }
                | MtaEvent::HandedOff {
                    queue, new_queue, ..
                } => {
                    queue.set_host(host);
                    new_queue.set_host(host);
                }
            },
        }
    }

    /// The host a line names for its queue id (native `host=`), if any.
    pub fn declared_host(&self) -> Option<&[u8]> {
        match self {
            Event::Accept(a) => a.host.as_deref(),
            Event::Rcpt(r) => r.host.as_deref(),
            _ => None,
        }
    }

    /// When it happened (unix seconds), for the events that say.
    pub fn time(&self) -> Option<i64> {
        match self {
            Event::Accept(a) => Some(a.time.unix),
            Event::Rcpt(r) => Some(r.recipient.at),
            Event::Orcpt(o) => Some(o.time.unix),
            Event::Mta(MtaEvent::Arrival { time, .. })
            | Event::Mta(MtaEvent::Expired { time, .. })
            | Event::Mta(MtaEvent::Done { time, .. }) => Some(time.unix),
            Event::Mta(
                MtaEvent::Recipient { recipient, .. } | MtaEvent::HandedOff { recipient, .. },
            ) => Some(recipient.at),
            Event::Mta(
                MtaEvent::MessageId { .. }
                | MtaEvent::Handoff { .. }
                | MtaEvent::Notification { .. },
            ) => None,
        }
    }
}

/// How a parser judged one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The line meant something; its events were emitted.
    Parsed,
    /// A well-formed line that carries nothing for tracking (connects, TLS, anvil…); counted
    /// apart from rejections so that operators can tell noise from damage.
    Ignored,
    /// A line that looks like this format but cannot be understood; the reason is for counters
    /// and the rate-limited log.
    Rejected(&'static str),
}

/// A parser of one log format. It may keep state between lines (the year of syslog
/// timestamps, say); it never sees other files' lines.
pub trait LineParser {
    /// Parses one line (without its line end) and emits its events, in order.
    fn parse(&mut self, line: &[u8], emit: &mut dyn FnMut(Event)) -> Outcome;

    /// The same for a line whose syslog prefix the caller already parsed (a stream, which
    /// reads it for the line's host and program): a parser that reads that prefix itself
    /// takes it from here rather than parsing it again.
    fn parse_prefixed(
        &mut self,
        _prefix: &Prefix<'_>,
        line: &[u8],
        emit: &mut dyn FnMut(Event),
    ) -> Outcome {
        self.parse(line, emit)
    }
}
