//! The tracker's own tests: correlation orders, hand-offs, expiry, packing and snapshots.

use super::codec::get_message_rest;
use super::snapshot::put_entry;
use super::stored::{SIDECAR_EXTRAS, SIDECAR_WHOLE};
use super::*;
use crate::index::message::{
    Action, DeclareRefused, DeclaredOrcpt, Recipient, RecipientIndex, MAX_DECLARED_BYTES,
    MAX_DECLARED_ORCPTS,
};
use crate::index::render::render;
use crate::ingest::event::{Accept, MtaEvent, NextHop, Orcpt};
use crate::ingest::state::{Decoder, Encoder};
use crate::protocol::date::Timestamp;
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
        self.tr.apply(e, &self.ix).expect("applied");
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
        host: None,
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
        .and_then(Stored::message)
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
    let will_retry = tr.messages[&id].message().unwrap().recipients[0]
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

/// Postfix's `relay=127.0.0.1[127.0.0.1]:N … queued as NEW`, for `to` at `at`.
fn handed_off(queue: &str, new_queue: &str, to: &str, at: i64) -> Event {
    let Event::Mta(MtaEvent::Recipient { recipient, .. }) =
        mta_rcpt(queue, to, Action::Relayed, at)
    else {
        unreachable!()
    };
    mta(MtaEvent::HandedOff {
        queue: qid(queue),
        new_queue: qid(new_queue),
        recipient,
        hop: NextHop::new(b"127.0.0.1", b"127.0.0.1", Some(b"10025")),
    })
}

#[test]
fn the_next_hop_s_deferral_in_the_hand_off_s_second_is_the_state_whatever_the_order() {
    let mut tr = tracker();
    // The hand-off line, then the next host's deferral in the same second.
    tr.apply(accept("e1@x", Some("Q1"), None, 100));
    tr.apply(handed_off("Q1", "Q2", "a@x", 102));
    tr.apply(mta_rcpt("Q2", "a@x", Action::Delayed, 102));
    assert_eq!(state(&tr, "e1@x"), vec![("a@x".into(), Action::Delayed)]);
    // The next host's deferral read first (another stream), a second before.
    tr.apply(accept("e2@x", Some("R1"), None, 200));
    tr.apply(mta(MtaEvent::Handoff {
        queue: qid("R1"),
        new_queue: qid("R2"),
    }));
    tr.apply(mta_rcpt("R2", "b@x", Action::Delayed, 201));
    tr.apply(handed_off("R1", "R2", "b@x", 202));
    assert_eq!(state(&tr, "e2@x"), vec![("b@x".into(), Action::Delayed)]);
    // The message's own deferral, minutes before its hand-off: relayed.
    tr.apply(accept("e3@x", Some("S1"), None, 300));
    tr.apply(mta_rcpt("S1", "c@x", Action::Delayed, 301));
    tr.apply(handed_off("S1", "S2", "c@x", 900));
    assert_eq!(state(&tr, "e3@x"), vec![("c@x".into(), Action::Relayed)]);
}

#[test]
fn a_hand_off_shows_relayed_until_the_next_queue_says_more() {
    let mut tr = tracker();
    // The next hop's lines never come (another MTA on loopback): relayed, for good.
    tr.apply(accept("e1@x", Some("Q1"), None, 100));
    tr.apply(mta_rcpt("Q1", "a@x", Action::Delayed, 101));
    tr.apply(handed_off("Q1", "Q2", "a@x", 402));
    assert_eq!(state(&tr, "e1@x"), vec![("a@x".into(), Action::Relayed)]);
    // A content filter: the re-injected queue's delivery replaces it.
    tr.apply(mta_rcpt("Q2", "a@x", Action::Delivered, 403));
    assert_eq!(state(&tr, "e1@x"), vec![("a@x".into(), Action::Delivered)]);

    // The re-injected queue delivered, or deferred, before the hand-off line was logged (later
    // in the same second, or the next): its state stands.
    tr.apply(accept("e2@x", Some("R1"), None, 200));
    tr.apply(mta(MtaEvent::Handoff {
        queue: qid("R1"),
        new_queue: qid("R2"),
    }));
    tr.apply(mta_rcpt("R2", "b@x", Action::Delivered, 201));
    tr.apply(mta_rcpt("R2", "c@x", Action::Delayed, 201));
    tr.apply(handed_off("R1", "R2", "b@x", 202));
    tr.apply(handed_off("R1", "R2", "c@x", 202));
    assert_eq!(
        state(&tr, "e2@x"),
        vec![
            ("b@x".into(), Action::Delivered),
            ("c@x".into(), Action::Delayed)
        ]
    );

    // Held before its accept line, and through a snapshot: still only provisional.
    tr.apply(mta_rcpt("S2", "d@x", Action::Delivered, 301));
    tr.apply(handed_off("S1", "S2", "d@x", 302));
    let mut enc = Encoder::default();
    tr.encode(&mut enc, &tr.ix);
    let mut back = Fixture {
        tr: Tracker::decode(
            &mut Decoder::new(&enc.buf),
            "hub.example".into(),
            tr.retention,
            i64::MAX,
        )
        .unwrap(),
        ix: Index::new(1),
    };
    back.apply(accept("e3@x", Some("S1"), None, 300));
    assert_eq!(
        state(&back, "e3@x"),
        vec![("d@x".into(), Action::Delivered)]
    );
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

/// A state saved with a clock ahead of now would age every queue id as if that time had come:
/// it is refused (and the logs are read again).
#[test]
fn a_state_whose_clock_is_ahead_of_now_is_refused() {
    let mut tr = tracker();
    tr.apply(accept("e1@x", Some("Q1"), None, 5_000));
    let mut enc = Encoder::default();
    tr.encode(&mut enc, &tr.ix);
    let decode = |latest| {
        Tracker::decode(
            &mut Decoder::new(&enc.buf),
            "h".into(),
            tr.retention,
            latest,
        )
        .is_ok()
    };
    assert!(decode(5_000));
    assert!(!decode(4_999));
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
        tr: Tracker::decode(&mut dec, "hub.example".into(), tr.retention, i64::MAX).unwrap(),
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
            Tracker::decode(&mut dec, "h".into(), tr.retention, i64::MAX).map(|_| dec.is_done())
                != Ok(true)
        );
    }
}

fn envid_rcpt(envid: &str, to: &str, action: Action, at: i64) -> Event {
    let Event::Mta(MtaEvent::Recipient { recipient, .. }) = mta_rcpt("-", to, action, at) else {
        unreachable!()
    };
    Event::Rcpt(RcptUpdate {
        host: None,
        message: MessageRef::Envid(q(envid)),
        hash: None,
        recipient,
        keeps_original: false,
        provisional: false,
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
    for (to, kind) in [("a@x", SIDECAR_EXTRAS), ("a\u{1}@x", SIDECAR_WHOLE)] {
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
        assert_eq!(entry.sidecar()[0], kind, "{to:?}");
        assert_eq!(unpack(&entry), live, "{to:?}");
        if kind == SIDECAR_EXTRAS {
            assert!(entry.sidecar().len() < 16, "{}", entry.sidecar().len());
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
    let mut back = Tracker::decode(&mut dec, "hub.example".into(), tr.retention, i64::MAX).unwrap();
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
            host: None,
            message: MessageRef::Queue(qid("N7")),
            hash: None,
            recipient,
            keeps_original: false,
            provisional: false,
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

// The SMTP gate's ORCPTs (native `event=recipient`).

/// The gate's declaration: `rcpt` was given ORCPT `orcpt` in e's transaction.
fn declare(envid: &str, rcpt: &str, orcpt: &str, at: i64) -> Event {
    Event::Orcpt(Orcpt {
        envid: envid.as_bytes().into(),
        hash: sha1(envid.as_bytes()),
        rcpt: rcpt.as_bytes().into(),
        original: orcpt.as_bytes().into(),
        time: t(at),
    })
}

/// An MTA line for `to` that logs the address the client gave as `orig_to`.
fn aliased_rcpt(queue: &str, orig_to: &str, to: &str, action: Action, at: i64) -> Event {
    let Event::Mta(MtaEvent::Recipient {
        queue,
        mut recipient,
    }) = mta_rcpt(queue, to, action, at)
    else {
        unreachable!()
    };
    recipient.original = Some(format!("rfc822;{orig_to}").into_bytes().into());
    Event::Mta(MtaEvent::Recipient { queue, recipient })
}

/// The recipients of `envid` as (original, final address, action).
fn originals(tr: &Tracker, envid: &str) -> Vec<(Option<String>, String, Action)> {
    let id = tr.id_of(envid.as_bytes(), &sha1(envid.as_bytes()));
    let m = id.and_then(|id| tr.messages.get(&id)?.message());
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    m.map(|m| {
        m.recipients
            .iter()
            .map(|r| {
                (
                    r.original.as_deref().map(text),
                    text(&r.final_rcpt),
                    r.action,
                )
            })
            .collect()
    })
    .unwrap_or_default()
}

fn o(s: &str) -> Option<String> {
    Some(s.into())
}

#[test]
fn a_declared_orcpt_goes_to_the_later_mta_lines_of_its_address() {
    let mut tr = tracker();
    tr.apply(accept("e1@x", Some("Q1"), None, 100));
    tr.apply(declare("e1@x", "user+x@x", "rfc822;user+x@x", 100));
    tr.apply(declare("e1@x", "other@x", "rfc822;first@y", 100));
    tr.apply(mta_rcpt("Q1", "user+x@x", Action::Delayed, 101));
    tr.apply(mta_rcpt("Q1", "plain@x", Action::Delivered, 101));
    tr.apply(mta_rcpt("Q1", "user+x@x", Action::Delivered, 102));
    assert_eq!(
        originals(&tr, "e1@x"),
        vec![
            (o("rfc822;user+x@x"), "user+x@x".into(), Action::Delivered),
            (None, "plain@x".into(), Action::Delivered),
        ],
        "one recipient across its lines; no ORCPT for an address the gate gave none"
    );
    let Fixture { tr: inner, ix } = &mut tr;
    inner.publish(ix, 0);
    assert!(answer(ix, "e1@x").contains(
        "\r\n\r\nOriginal-Recipient: rfc822; user+x@x\r\nFinal-Recipient: rfc822; user+x@x\r\n\
         Action: delivered\r\n"
    ));
}

#[test]
fn a_declaration_after_the_mta_lines_fixes_up_their_recipients() {
    let mut tr = tracker();
    tr.apply(accept("e1@x", Some("Q1"), None, 100));
    // Enough recipients that the message finds them through its RecipientIndex.
    let n = RecipientIndex::THRESHOLD + 8;
    for i in 0..n {
        tr.apply(mta_rcpt("Q1", &format!("u{i}@x"), Action::Delayed, 101));
    }
    let Fixture { tr: inner, ix } = &mut tr;
    inner.publish(ix, 0);
    for i in 0..n {
        tr.apply(declare(
            "e1@x",
            &format!("U{i}@X"),
            &format!("rfc822;o{i}@y"),
            100,
        ));
    }
    for i in 0..n {
        tr.apply(mta_rcpt("Q1", &format!("u{i}@x"), Action::Relayed, 200));
    }
    let want: Vec<_> = (0..n)
        .map(|i| {
            (
                o(&format!("rfc822;o{i}@y")),
                format!("u{i}@x"),
                Action::Relayed,
            )
        })
        .collect();
    assert_eq!(originals(&tr, "e1@x"), want);
    let Fixture { tr: inner, ix } = &mut tr;
    inner.publish(ix, 0);
    let e = ix.records_of(b"e1@x").pop().expect("indexed");
    assert_eq!(e.sidecar()[0], SIDECAR_EXTRAS, "read back from the answer");
    let back = unpack(&e).expect("unpacks");
    assert_eq!(back.orcpts.len(), n);
    assert_eq!(originals(&tr, "e1@x"), want);
}

#[test]
fn addresses_match_ignoring_ascii_case_and_through_orig_to() {
    let mut tr = tracker();
    tr.apply(accept("e1@x", Some("Q1"), None, 100));
    tr.apply(declare(
        "e1@x",
        "Alias@Example.ORG",
        "rfc822;Alias@Example.ORG",
        100,
    ));
    tr.apply(declare("e1@x", "MiXed@x", "rfc822;orig@y", 100));
    tr.apply(aliased_rcpt(
        "Q1",
        "alias@example.org",
        "box@x",
        Action::Delivered,
        101,
    ));
    tr.apply(mta_rcpt("Q1", "mixed@X", Action::Delivered, 101));
    tr.apply(aliased_rcpt(
        "Q1",
        "nobody@x",
        "box@x",
        Action::Delivered,
        101,
    ));
    assert_eq!(
        originals(&tr, "e1@x"),
        vec![
            (
                o("rfc822;Alias@Example.ORG"),
                "box@x".into(),
                Action::Delivered
            ),
            (o("rfc822;orig@y"), "mixed@X".into(), Action::Delivered),
            (o("rfc822;nobody@x"), "box@x".into(), Action::Delivered),
        ]
    );
}

/// Two RCPT TOs that the MTA delivers to one mailbox (an alias of it, and the mailbox itself)
/// stay two recipients, each with its own ORCPT, in whichever order the lines come: the
/// mailbox's ORCPT is not given to the alias's recipient, which has an original of its own.
#[test]
fn an_alias_and_its_target_keep_their_own_orcpts_in_any_order() {
    let want = vec![
        (o("rfc822;a@orcpt"), "box@x".into(), Action::Delivered),
        (o("rfc822;box@orcpt"), "box@x".into(), Action::Delivered),
    ];
    let lines = |tr: &mut Fixture| {
        tr.apply(aliased_rcpt(
            "Q1",
            "alias@x",
            "box@x",
            Action::Delivered,
            101,
        ));
        tr.apply(mta_rcpt("Q1", "box@x", Action::Delivered, 101));
    };
    let declarations = |tr: &mut Fixture, box_first: bool| {
        let alias = declare("e1@x", "alias@x", "rfc822;a@orcpt", 100);
        let mailbox = declare("e1@x", "box@x", "rfc822;box@orcpt", 100);
        let (first, second) = if box_first {
            (mailbox, alias)
        } else {
            (alias, mailbox)
        };
        tr.apply(first);
        tr.apply(second);
    };
    for (declared_first, box_first) in [(true, true), (true, false), (false, true), (false, false)]
    {
        let mut tr = tracker();
        tr.apply(accept("e1@x", Some("Q1"), None, 100));
        if declared_first {
            declarations(&mut tr, box_first);
            lines(&mut tr);
        } else {
            lines(&mut tr);
            declarations(&mut tr, box_first);
        }
        let mut got = originals(&tr, "e1@x");
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            got, want,
            "declared first {declared_first}, box first {box_first}"
        );
    }
}

#[test]
fn a_fix_up_that_makes_two_recipients_one_keeps_the_newer_state() {
    let mut tr = tracker();
    tr.apply(accept("e1@x", Some("Q1"), None, 100));
    // A native line gave the ORCPT the gate declares later; the MTA's line came without.
    tr.apply(Event::Rcpt(RcptUpdate {
        host: None,
        message: MessageRef::Envid(q("e1@x")),
        hash: None,
        keeps_original: true,
        provisional: false,
        ..match envid_rcpt("e1@x", "a@x", Action::Delayed, 101) {
            Event::Rcpt(mut r) => {
                r.recipient.original = Some(q("rfc822;a@orcpt"));
                r
            }
            _ => unreachable!(),
        }
    }));
    tr.apply(mta_rcpt("Q1", "a@x", Action::Delivered, 102));
    assert_eq!(originals(&tr, "e1@x").len(), 2);
    tr.apply(declare("e1@x", "a@x", "rfc822;a@orcpt", 100));
    assert_eq!(
        originals(&tr, "e1@x"),
        vec![(o("rfc822;a@orcpt"), "a@x".into(), Action::Delivered)]
    );
}

#[test]
fn a_native_rcpt_line_keeps_its_own_orcpt_and_one_without_gets_the_declared() {
    let mut tr = tracker();
    tr.apply(accept("e1@x", Some("Q1"), None, 100));
    tr.apply(declare("e1@x", "a@x", "rfc822;declared@y", 100));
    tr.apply(declare("e1@x", "b@x", "rfc822;declared-b@y", 100));
    let native = |to: &str, own: Option<&str>| {
        let Event::Rcpt(mut r) = envid_rcpt("e1@x", to, Action::Delivered, 101) else {
            unreachable!()
        };
        r.recipient.original = own.map(q);
        r.keeps_original = own.is_some();
        Event::Rcpt(r)
    };
    tr.apply(native("a@x", Some("rfc822;own@y")));
    tr.apply(native("b@x", None));
    assert_eq!(
        originals(&tr, "e1@x"),
        vec![
            (o("rfc822;own@y"), "a@x".into(), Action::Delivered),
            (o("rfc822;declared-b@y"), "b@x".into(), Action::Delivered),
        ]
    );
}

#[test]
fn declarations_are_bounded_and_refused_with_a_reason() {
    let mut tr = tracker();
    tr.apply(accept("e1@x", Some("Q1"), None, 100));
    let apply = |tr: &mut Fixture, e| tr.tr.apply(e, &tr.ix);
    for i in 0..MAX_DECLARED_ORCPTS {
        let rcpt = format!("u{i}@x");
        apply(
            &mut tr,
            declare("e1@x", &rcpt, &format!("rfc822;{rcpt}"), 100),
        )
        .unwrap();
    }
    assert_eq!(
        apply(
            &mut tr,
            declare("e1@x", "one-more@x", "rfc822;one-more@x", 100)
        ),
        Err(DeclareRefused::TooMany.reason())
    );
    assert_eq!(
        apply(&mut tr, declare("e1@x", "u7@x", "rfc822;u7@x", 100)),
        Ok(()),
        "a line read again changes nothing"
    );
    assert_eq!(
        apply(&mut tr, declare("e1@x", "U7@X", "rfc822;other@x", 100)),
        Err(DeclareRefused::Conflict.reason())
    );
    tr.apply(accept("e2@x", Some("Q2"), None, 100));
    let long = "a".repeat(500);
    let mut refused = None;
    for i in 0..MAX_DECLARED_ORCPTS {
        let rcpt = format!("{i}{long}");
        if let Err(why) = apply(
            &mut tr,
            declare("e2@x", &rcpt, &format!("rfc822;{rcpt}"), 100),
        ) {
            refused = Some((i, why));
            break;
        }
    }
    let (held, why) = refused.expect("refused before 1000");
    assert_eq!(why, DeclareRefused::TooLarge.reason());
    assert!(held * 1000 <= MAX_DECLARED_BYTES && (held + 1) * 1016 > MAX_DECLARED_BYTES);
}

#[test]
fn a_declaration_for_an_unknown_message_is_refused() {
    let mut tr = tracker();
    tr.apply(accept("e1@x", Some("Q1"), None, 100));
    let mut wrong_hash = declare("e1@x", "a@x", "rfc822;a@x", 100);
    if let Event::Orcpt(o) = &mut wrong_hash {
        o.hash = sha1(b"another secret");
    }
    for e in [declare("e9@x", "a@x", "rfc822;a@x", 100), wrong_hash] {
        assert_eq!(tr.tr.apply(e, &tr.ix), Err(UNKNOWN_MESSAGE));
    }
}

#[test]
fn declarations_survive_packing_snapshots_and_being_forgotten() {
    let mut tr = forgotten_e1();
    // A late recipient line takes the forgotten message back from the index.
    tr.apply(declare("e1@x", "a@x", "rfc822;a+x@y", 5000));
    tr.apply(declare("e1@x", "b@x", "rfc822;b@y", 5000));
    tr.apply(declare("e1@x", "c@x", "x400;/c=us/", 5000));
    let want = vec![(o("rfc822;a+x@y"), "a@x".into(), Action::Delivered)];
    assert_eq!(originals(&tr, "e1@x"), want);
    let Fixture { tr: inner, ix } = &mut tr;
    inner.publish(ix, 0);
    assert!(answer(ix, "e1@x")
        .contains("Original-Recipient: rfc822; a+x@y\r\nFinal-Recipient: rfc822; a@x\r\n"));
    let entry = ix.records_of(b"e1@x").pop().expect("indexed");
    assert_eq!(entry.sidecar()[0], SIDECAR_EXTRAS);
    let packed = unpack(&entry).expect("unpacks");
    assert_eq!(packed.orcpts.len(), 3);
    // The ORCPT the recipient shows costs the record two octets, not both values again.
    let mut without = packed.clone();
    without.orcpts = Default::default();
    let mut sidecar = Vec::new();
    stored::pack(&without, &render(&without, "hub.example"), &mut sidecar);
    let literal = |d: &DeclaredOrcpt| 1 + 8 + d.rcpt.len() + d.original.len();
    let others: usize = packed.orcpts.iter().skip(1).map(literal).sum();
    assert_eq!(entry.sidecar().len(), sidecar.len() + 1 + 1 + others);
    // Whole in a snapshot, and again in the index after a restore.
    let mut enc = Encoder::default();
    tr.encode(&mut enc, &tr.ix);
    let mut dec = Decoder::new(&enc.buf);
    let mut back = Fixture {
        tr: Tracker::decode(&mut dec, "hub.example".into(), tr.retention, i64::MAX).unwrap(),
        ix: Index::new(1),
    };
    assert!(dec.is_done());
    let Fixture { tr: inner, ix } = &mut back;
    inner.publish(ix, 0);
    assert_eq!(answer(ix, "e1@x"), answer(&tr.ix, "e1@x"));
    let restored = unpack(&ix.records_of(b"e1@x").pop().unwrap()).unwrap();
    assert_eq!(restored, packed);
    // And still applied to later lines.
    back.apply(envid_rcpt("e1@x", "B@X", Action::Delivered, 5001));
    assert_eq!(
        originals(&back, "e1@x")[1],
        (o("rfc822;b@y"), "B@X".into(), Action::Delivered)
    );
}

/// A waiting MTA line gets the declaration when its queue id is tied to the message; a waiting
/// update's flag survives a snapshot.
#[test]
fn waiting_updates_get_the_declarations_and_keep_their_flag_across_a_snapshot() {
    let mut tr = tracker();
    tr.apply(mta_rcpt("Q1", "a@x", Action::Delivered, 101));
    tr.apply(Event::Rcpt(RcptUpdate {
        host: None,
        message: MessageRef::Queue(qid("Q1")),
        hash: None,
        keeps_original: true,
        provisional: false,
        ..match envid_rcpt("e1@x", "b@x", Action::Delivered, 101) {
            Event::Rcpt(mut r) => {
                r.recipient.original = Some(q("rfc822;own@y"));
                r
            }
            _ => unreachable!(),
        }
    }));
    let mut enc = Encoder::default();
    tr.encode(&mut enc, &tr.ix);
    let mut back = Fixture {
        tr: Tracker::decode(
            &mut Decoder::new(&enc.buf),
            "h".into(),
            tr.retention,
            i64::MAX,
        )
        .unwrap(),
        ix: Index::new(1),
    };
    assert_eq!(back.orphans().0, 2);
    // An accept that names no queue id, so that the waiting lines stay waiting until the
    // declarations are in; then one that names it.
    back.apply(accept("e1@x", None, None, 100));
    back.apply(declare("e1@x", "a@x", "rfc822;a@orcpt", 100));
    back.apply(declare("e1@x", "b@x", "rfc822;b@orcpt", 100));
    back.apply(accept("e1@x", Some("Q1"), None, 100));
    assert_eq!(
        originals(&back, "e1@x"),
        vec![
            (o("rfc822;a@orcpt"), "a@x".into(), Action::Delivered),
            (o("rfc822;own@y"), "b@x".into(), Action::Delivered),
        ]
    );
}
