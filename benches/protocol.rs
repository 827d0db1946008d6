//! Micro-benchmarks of the query side, without sockets: command parsing, and the TRACK path
//! (parse, base64 + SHA-1 of the secret, xtext decode, index lookup, constant-time compare)
//! against an index of 100,000 rendered records.
//! Run: `cargo bench --bench protocol` (under a second once built; `-- --help` lists divan's
//! options, `-- track_path` filters).
//!
//! The three micro-bench files (protocol, render, logparse) use divan rather than criterion:
//! divan is one small crate (plus clap, which mtqpd already builds), compiles in seconds,
//! needs no HTML/plotting/serde stack, and has what these benches need — byte and item
//! throughput counters, per-input setup excluded from timing, and `--test` to run each
//! bench once. Criterion's statistics and saved baselines would matter for regression
//! gating, which these benches are not meant for; the end-to-end benches stay plain binaries.

use std::hint::black_box;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use divan::counter::{BytesCount, ItemsCount};
use divan::Bencher;
use mtqpd::index::message::{Action, Message, Recipient, RecipientIndex};
use mtqpd::index::render::render;
use mtqpd::index::{Entry, Index};
use mtqpd::protocol::command::{parse, Command};
use mtqpd::protocol::date::Timestamp;
use mtqpd::protocol::secret::{encode, hash_secret, sha1};
use mtqpd::protocol::{xtext, MAX_ENVID};

fn main() {
    divan::Divan::default()
        .max_time(Duration::from_secs(1))
        .config_with_args()
        .main();
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--test" || a == "--list") {
        track_cost_summary();
    }
}

// ---------------------------------------------------------------------------------------------
// Command parsing.

/// `gen-NNNNNNNNNN@client.example` (29 octets, as `mtqp-load gen` writes them) and the
/// 24-character base64 of a 16-octet secret.
const TRACK: &str = "TRACK gen-0000054321@client.example q83vEjRWeJCrze8SNFZ4kA==";
const COMMENT: &str = "COMMENT checking on the report to the list, ticket 4711";

fn bad_line(kind: &str) -> &'static str {
    match kind {
        "unknown-command" => "HELO client.example",
        "bad-secret" => "TRACK gen-0000054321@client.example q83vEjRWeJCrze8SNFZ4k!==",
        "bad-envid" => "TRACK gen-0000054321@client.example=x q83vEjRWeJCrze8SNFZ4kA==",
        "invalid-octet" => "TRACK gen-0000054321@client.example q83vEjRWeJCr\u{7f}SNFZ4kA==",
        _ => unreachable!("{kind}"),
    }
}

#[divan::bench]
fn parse_track(bencher: Bencher) {
    let line = TRACK.as_bytes();
    assert!(matches!(parse(line), Ok(Command::Track { .. })));
    bencher
        .counter(BytesCount::new(line.len()))
        .bench(|| parse(black_box(line)));
}

#[divan::bench]
fn parse_comment(bencher: Bencher) {
    let line = COMMENT.as_bytes();
    assert_eq!(parse(line), Ok(Command::Comment));
    bencher
        .counter(BytesCount::new(line.len()))
        .bench(|| parse(black_box(line)));
}

#[divan::bench(args = ["unknown-command", "bad-envid", "bad-secret", "invalid-octet"])]
fn parse_bad(bencher: Bencher, kind: &str) {
    let line = bad_line(kind).as_bytes();
    assert!(parse(line).is_err(), "{kind}");
    bencher
        .counter(BytesCount::new(line.len()))
        .bench(|| parse(black_box(line)));
}

/// The part of a TRACK parse that is not parsing: base64-decode the secret and SHA-1 it.
#[divan::bench]
fn hash_secret_24(bencher: Bencher) {
    let secret = b"q83vEjRWeJCrze8SNFZ4kA==";
    assert!(hash_secret(secret).is_some());
    bencher.bench(|| hash_secret(black_box(secret)));
}

// ---------------------------------------------------------------------------------------------
// The TRACK path against a full index.

const RECORDS: usize = 100_000;
/// Lines per case the benches cycle through, so that lookups touch different records (and
/// miss the cache as a server's do) rather than one hot entry.
const LINES: usize = 4096;
const NOW: i64 = 1_795_500_000;
/// As `serve` sizes it on this 2-core machine: 16 shards per worker thread.
const SHARDS: usize = 32;

fn envid(i: usize) -> String {
    format!("gen-{i:010}@client.example")
}

fn secret(i: usize) -> [u8; 16] {
    let a = (i as u64 ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let b = a.rotate_left(29).wrapping_mul(0x94d0_49bb_1331_11eb);
    let mut s = [0u8; 16];
    s[..8].copy_from_slice(&a.to_le_bytes());
    s[8..].copy_from_slice(&b.to_le_bytes());
    s
}

fn recipient(i: usize, r: usize) -> Recipient {
    let addr = format!("user{r}.{i}@dest{}.example", i % 113);
    Recipient {
        original: Some(format!("rfc822;{addr}").into_bytes().into()),
        final_rcpt: addr.into_bytes().into(),
        action: Action::Relayed,
        status: b"2.0.0"[..].into(),
        remote_mta: Some(
            format!("dns;mx.dest{}.example", i % 113)
                .into_bytes()
                .into(),
        ),
        diagnostic: Some(b"smtp;250 2.0.0 Ok: queued as 4XYZ"[..].into()),
        last_attempt: Some(Timestamp {
            unix: NOW - 60,
            offset_minutes: 60,
        }),
        will_retry_until: None,
        at: NOW - 60,
    }
}

/// A two-recipient message as the tracker would hold it.
fn message(i: usize) -> Message {
    Message {
        envid: envid(i).into_bytes().into(),
        hash: sha1(&secret(i)),
        arrival: Timestamp {
            unix: NOW - 62,
            offset_minutes: 60,
        },
        timeout: None,
        headers: Vec::new(),
        recipients: vec![recipient(i, 0), recipient(i, 1)],
        last_event: NOW - 60,
        lookup: RecipientIndex::default(),
        orcpts: Default::default(),
    }
}

static INDEX: LazyLock<Index> = LazyLock::new(|| {
    let index = Index::new(SHARDS);
    for i in 0..RECORDS {
        let m = message(i);
        let wire = render(&m, "hub.example");
        index.upsert(Entry::new(&m.envid, &m.hash, NOW + 86_400, &wire, b"").unwrap());
    }
    assert_eq!(index.len(), RECORDS);
    index
});

#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    Hit,
    WrongSecret,
    UnknownEnvid,
}

impl Case {
    const ALL: [Case; 3] = [Case::Hit, Case::WrongSecret, Case::UnknownEnvid];

    fn name(self) -> &'static str {
        match self {
            Case::Hit => "hit",
            Case::WrongSecret => "wrong-secret",
            Case::UnknownEnvid => "unknown-envid",
        }
    }

    fn from_name(name: &str) -> Case {
        Case::ALL.into_iter().find(|c| c.name() == name).unwrap()
    }

    /// `LINES` TRACK lines of this case, spread over the index. All have the same length.
    fn lines(self) -> Vec<Vec<u8>> {
        (0..LINES)
            .map(|k| {
                let i = (k * 7919 + 13) % RECORDS;
                let (id, s) = match self {
                    Case::Hit => (i, secret(i)),
                    Case::WrongSecret => (i, secret(i + RECORDS)),
                    Case::UnknownEnvid => (i + RECORDS, secret(i)),
                };
                format!("TRACK {} {}", envid(id), encode(&s)).into_bytes()
            })
            .collect()
    }
}

/// What the server does with a TRACK line up to choosing the answer (session.rs `track`):
/// parse (which hashes the secret), decode the envid, look it up.
fn track(index: &Index, line: &[u8]) -> Option<Entry> {
    let Ok(Command::Track { envid, secret_hash }) = parse(line) else {
        panic!("not a TRACK line");
    };
    let mut raw = [0u8; MAX_ENVID];
    let n = xtext::decode_into(envid, &mut raw).expect("xtext");
    index.lookup(&raw[..n], &secret_hash, NOW)
}

/// The three cases should cost the same: a miss reads and compares a decoy record so that
/// timing does not tell an unknown envid from a wrong secret (see `track_cost_summary`).
#[divan::bench(args = ["hit", "wrong-secret", "unknown-envid"])]
fn track_path(bencher: Bencher, case: &str) {
    let case = Case::from_name(case);
    let index = &*INDEX;
    let lines = case.lines();
    for line in &lines {
        assert_eq!(track(index, line).is_some(), case == Case::Hit);
    }
    let mut k = 0;
    bencher
        .counter(ItemsCount::new(1usize))
        .counter(BytesCount::new(lines[0].len()))
        .bench_local(|| {
            k = (k + 1) % LINES;
            track(index, black_box(&lines[k]))
        });
}

/// Reads 64 MiB, so that what the index left in the caches is gone.
fn flush_caches() {
    static JUNK: LazyLock<Vec<u64>> = LazyLock::new(|| vec![1; 8 << 20]);
    black_box(JUNK.iter().step_by(8).sum::<u64>());
}

/// Times the three TRACK cases interleaved, in rounds, and prints the best per-call time of
/// each and their spread: the number the timing side channel is about. Three ways: with the
/// caches flushed before each case (an attacker's probe of records nobody asked for lately),
/// over 4096 records left warm by earlier rounds, and on one record (hot: the work done, not
/// memory). The first column is the honest one for a server; in the second a miss reads
/// decoy records that hits and wrong secrets never warm, so it pays more cache misses.
fn track_cost_summary() {
    let index = &*INDEX;
    let spread: Vec<Vec<Vec<u8>>> = Case::ALL.iter().map(|c| c.lines()).collect();
    let hot: Vec<Vec<Vec<u8>>> = spread.iter().map(|l| vec![l[0].clone(); LINES]).collect();
    println!("\nTRACK path, {RECORDS} records, best of 15 interleaved rounds of {LINES} lookups:");
    println!(
        "  {:<14} {:>15} {:>15} {:>15}",
        "", "cold caches", "4096 records", "one record"
    );
    let mut best = [[f64::MAX; 3]; 3];
    for (mode, lines) in [&spread, &spread, &hot].into_iter().enumerate() {
        for _round in 0..15 {
            for (c, lines) in lines.iter().enumerate() {
                if mode == 0 {
                    flush_caches();
                }
                let start = Instant::now();
                for line in lines {
                    black_box(track(index, black_box(line)));
                }
                let ns = start.elapsed().as_nanos() as f64 / LINES as f64;
                best[mode][c] = best[mode][c].min(ns);
            }
        }
    }
    for (c, case) in Case::ALL.iter().enumerate() {
        println!(
            "  {:<14} {:>12.0} ns {:>12.0} ns {:>12.0} ns",
            case.name(),
            best[0][c],
            best[1][c],
            best[2][c]
        );
    }
    let spread_of = |b: &[f64; 3]| {
        let (lo, hi) = b
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), &t| (lo.min(t), hi.max(t)));
        (hi - lo) / lo * 100.0
    };
    println!(
        "  {:<14} {:>13.0} % {:>13.0} % {:>13.0} %   (the three should cost the same)",
        "spread",
        spread_of(&best[0]),
        spread_of(&best[1]),
        spread_of(&best[2])
    );
}
