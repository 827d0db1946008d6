//! Micro-benchmarks of RFC 3886 rendering (`index::render`) and of recipient updates on a
//! message with many recipients. Throughput is in bytes of wire answer produced.
//! Run: `cargo bench --bench render` (under a second once built).
//! Why divan: see benches/protocol.rs.

use std::hint::black_box;
use std::time::Duration;

use divan::counter::BytesCount;
use divan::Bencher;
use mtqpd::index::message::{Action, Message, Recipient, RecipientIndex};
use mtqpd::index::render::{render, OpaqueAnswer};
use mtqpd::protocol::date::Timestamp;
use mtqpd::protocol::secret::sha1;

fn main() {
    divan::Divan::default()
        .max_time(Duration::from_secs(1))
        .config_with_args()
        .main();
}

const NOW: i64 = 1_795_500_000;
const HUB: &str = "hub.example";

/// Recipient `r`, in the mix `mtqp-load gen` writes: mostly relayed, some delivered locally,
/// some delayed, some failed with a long diagnostic.
fn recipient(r: usize, at: i64) -> Recipient {
    let addr = format!("user{r}@dest{}.example", r % 113);
    let t = Timestamp {
        unix: at,
        offset_minutes: 60,
    };
    let (action, status, diagnostic): (_, &[u8], &[u8]) = match r % 20 {
        0 => (
            Action::Delivered,
            b"2.0.0",
            b"smtp;250 2.0.0 delivered to mailbox",
        ),
        1 => (
            Action::Delayed,
            b"4.4.1",
            b"smtp;connect to mx.dest.example[198.51.100.7]:25: Connection timed out",
        ),
        2 => (
            Action::Failed,
            b"5.1.1",
            b"smtp;550 5.1.1 <user2@dest.example>: Recipient address rejected: User unknown",
        ),
        _ => (
            Action::Relayed,
            b"2.0.0",
            b"smtp;250 2.0.0 Ok: queued as 4XYZ",
        ),
    };
    Recipient {
        original: Some(format!("rfc822;{addr}").into_bytes().into()),
        final_rcpt: addr.into_bytes().into(),
        action,
        status: status.into(),
        remote_mta: Some(
            format!("dns;mx.dest{}.example", r % 113)
                .into_bytes()
                .into(),
        ),
        diagnostic: Some(diagnostic.into()),
        last_attempt: Some(t),
        will_retry_until: (action == Action::Delayed).then_some(t.plus(5 * 86_400)),
        at,
    }
}

/// A message with `n` recipients, built through `update_recipient` as the tracker builds it
/// (so that the recipient index exists once there are many).
fn message(n: usize) -> Message {
    let mut m = Message {
        envid: b"gen-0000054321@client.example"[..].into(),
        hash: sha1(b"secret"),
        arrival: Timestamp {
            unix: NOW - 120,
            offset_minutes: 60,
        },
        timeout: None,
        headers: Vec::new(),
        recipients: Vec::new(),
        last_event: 0,
        lookup: RecipientIndex::default(),
        orcpts: Default::default(),
    };
    for r in 0..n {
        m.update_recipient(recipient(r, NOW - 60));
    }
    assert_eq!(m.recipients.len(), n);
    m
}

#[divan::bench(args = [2, 10_000])]
fn render_message(bencher: Bencher, recipients: usize) {
    let m = message(recipients);
    let len = render(&m, HUB).len();
    bencher
        .counter(BytesCount::new(len))
        .bench(|| render(black_box(&m), HUB));
}

/// The same two-recipient answer with 8-bit text in every diagnostic, as remote servers send
/// in their own language (UTF-8 here): the octets that must be escaped as `+XX`.
#[divan::bench]
fn render_message_8bit(bencher: Bencher) {
    let mut m = message(2);
    for r in &mut m.recipients {
        r.diagnostic = Some(
            "smtp;550 5.1.1 <müller@dest.example>: Empfänger unbekannt, Adresse prüfen"
                .as_bytes()
                .into(),
        );
    }
    let len = render(&m, HUB).len();
    bencher
        .counter(BytesCount::new(len))
        .bench(|| render(black_box(&m), HUB));
}

/// Built once per server start; here for scale against a real answer.
#[divan::bench]
fn opaque_answer_halves(bencher: Bencher) {
    bencher.bench(|| OpaqueAnswer::new(black_box(HUB)));
}

/// A newer state for one recipient of a 10,000-recipient message, found through the
/// recipient index (a log line about one recipient of a big list).
#[divan::bench]
fn update_recipient_10k_newer(bencher: Bencher) {
    let mut m = message(10_000);
    let mut k = 0usize;
    let mut at = NOW;
    bencher
        .with_inputs(|| {
            k = (k + 7919) % 10_000;
            at += 1;
            recipient(k, at)
        })
        .bench_local_values(|r| assert!(m.update_recipient(r)));
}

/// The same state again (a replayed line): found, compared, nothing changes.
#[divan::bench]
fn update_recipient_10k_replay(bencher: Bencher) {
    let mut m = message(10_000);
    let mut k = 0usize;
    bencher
        .with_inputs(|| {
            k = (k + 7919) % 10_000;
            recipient(k, NOW - 60)
        })
        .bench_local_values(|r| assert!(!m.update_recipient(r)));
}
