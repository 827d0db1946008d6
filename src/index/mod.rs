//! The in-memory index of tracking records: N shards of `RwLock<HashMap>` keyed by envid, each
//! record holding the hash B of its secret, its expiry and its answer already rendered for the
//! wire. Event-loop workers only read it; the ingest thread is its one writer.
//!
//! It owns no I/O and no log format; rendering lives in [`render`], the message model in
//! [`record`].

pub mod date;
pub mod record;
pub mod render;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::protocol::secret::{hashes_equal, Hash};

/// A TRACK answer as the index keeps it. Most answers begin and end with the same octets
/// ([`render::FRAME_PREFIX`], [`render::FRAME_SUFFIX`]); those are kept once, statically, and
/// go on the wire as extra slices of the same vectored write, saving about 180 octets a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The frame was cut off and must be sent around `body`.
    pub framed: bool,
    pub body: Arc<[u8]>,
}

impl Answer {
    /// Keeps `wire` (a complete answer), without its frame when it has the usual one.
    pub fn new(wire: &[u8]) -> Answer {
        match wire
            .strip_prefix(render::FRAME_PREFIX)
            .and_then(|w| w.strip_suffix(render::FRAME_SUFFIX))
        {
            Some(body) => Answer {
                framed: true,
                body: body.into(),
            },
            None => Answer {
                framed: false,
                body: wire.into(),
            },
        }
    }

    /// The answer's octets, in three slices (the first and last empty when not framed).
    pub fn pieces(&self) -> [&[u8]; 3] {
        if self.framed {
            [render::FRAME_PREFIX, &self.body, render::FRAME_SUFFIX]
        } else {
            [&[], &self.body, &[]]
        }
    }

    /// The whole answer, as one buffer (for tests and tools; the server sends the pieces).
    pub fn to_vec(&self) -> Vec<u8> {
        self.pieces().concat()
    }
}

/// One servable record: what a TRACK hit needs and nothing more.
#[derive(Debug, Clone)]
pub struct Entry {
    /// SHA-1 of the tracking secret.
    pub hash: Hash,
    /// Unix time after which it is not served.
    pub expires_at: i64,
    /// The wire answer (see [`render::render`]).
    pub answer: Answer,
}

/// The records of one envid. Nearly always one; more when two senders chose the same envid,
/// which must not let the second take over the first's record (each keeps its own secret).
#[derive(Debug)]
struct Slot {
    first: Entry,
    more: Vec<Entry>,
}

type Shard = RwLock<HashMap<Box<[u8]>, Slot>>;

/// The sharded index.
pub struct Index {
    shards: Box<[Shard]>,
    records: AtomicUsize,
}

/// Compared against on a miss, so that an unknown envid costs what a wrong secret costs.
const DECOY: Hash = [0x5a; 20];

/// FNV-1a: picks the shard. The maps inside use SipHash with a random key, so an attacker who
/// chooses envids can crowd a shard but cannot degrade a map.
fn shard_of(envid: &[u8], n: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &c in envid {
        h = (h ^ u64::from(c)).wrapping_mul(0x0100_0000_01b3);
    }
    (h % n as u64) as usize
}

impl Index {
    /// An empty index with `shards` shards (at least one).
    pub fn new(shards: usize) -> Index {
        let shards = (0..shards.max(1))
            .map(|_| RwLock::new(HashMap::new()))
            .collect();
        Index {
            shards,
            records: AtomicUsize::new(0),
        }
    }

    fn shard(&self, envid: &[u8]) -> &Shard {
        &self.shards[shard_of(envid, self.shards.len())]
    }

    /// The answer for `envid` (decoded) when `secret_hash` matches a live record. Every record
    /// of the envid is compared, and a decoy when there is none, so that the time taken does
    /// not tell a wrong secret from an unknown envid.
    pub fn lookup(&self, envid: &[u8], secret_hash: &Hash, now: i64) -> Option<Answer> {
        let shard = self.shard(envid).read();
        let Some(slot) = shard.get(envid) else {
            std::hint::black_box(hashes_equal(&DECOY, secret_hash));
            return None;
        };
        let mut found = None;
        for e in std::iter::once(&slot.first).chain(&slot.more) {
            if hashes_equal(&e.hash, secret_hash) && e.expires_at > now {
                found = Some(&e.answer);
            }
        }
        found.cloned()
    }

    /// Inserts or replaces the record of (`envid`, `entry.hash`).
    pub fn upsert(&self, envid: &[u8], entry: Entry) {
        let mut shard = self.shard(envid).write();
        match shard.get_mut(envid) {
            Some(slot) => {
                if slot.first.hash == entry.hash {
                    slot.first = entry;
                } else if let Some(e) = slot.more.iter_mut().find(|e| e.hash == entry.hash) {
                    *e = entry;
                } else {
                    slot.more.push(entry);
                    self.records.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                shard.insert(
                    envid.into(),
                    Slot {
                        first: entry,
                        more: Vec::new(),
                    },
                );
                self.records.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Removes the record of (`envid`, `hash`), if any.
    pub fn remove(&self, envid: &[u8], hash: &Hash) {
        let mut shard = self.shard(envid).write();
        let Some(slot) = shard.get_mut(envid) else {
            return;
        };
        if let Some(i) = slot.more.iter().position(|e| e.hash == *hash) {
            slot.more.swap_remove(i);
        } else if slot.first.hash == *hash {
            match slot.more.pop() {
                Some(next) => slot.first = next,
                None => {
                    shard.remove(envid);
                }
            }
        } else {
            return;
        }
        self.records.fetch_sub(1, Ordering::Relaxed);
    }

    /// Drops every record that expired at or before `now`, one shard at a time so that readers
    /// wait for at most one shard's sweep. Returns how many were dropped.
    pub fn sweep(&self, now: i64) -> usize {
        let mut dropped = 0;
        for shard in self.shards.iter() {
            let mut map = shard.write();
            map.retain(|_, slot| {
                let before = 1 + slot.more.len();
                slot.more.retain(|e| e.expires_at > now);
                if slot.first.expires_at <= now {
                    match slot.more.pop() {
                        Some(next) => slot.first = next,
                        None => {
                            dropped += before;
                            return false;
                        }
                    }
                }
                dropped += before - (1 + slot.more.len());
                true
            });
        }
        self.records.fetch_sub(dropped, Ordering::Relaxed);
        dropped
    }

    /// Makes room for `records` more records spread over the shards, so that loading many at
    /// once does not rehash them while growing.
    pub fn reserve(&self, records: usize) {
        let per_shard = records / self.shards.len() + 1;
        for shard in self.shards.iter() {
            shard.write().reserve(per_shard);
        }
    }

    /// How many records the index holds.
    pub fn len(&self) -> usize {
        self.records.load(Ordering::Relaxed)
    }

    /// True when the index holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::secret::sha1;

    fn entry(secret: &[u8], expires_at: i64, answer: &[u8]) -> Entry {
        let answer = Answer::new(answer);
        Entry {
            hash: sha1(secret),
            expires_at,
            answer,
        }
    }

    #[test]
    fn hit_needs_the_right_secret_and_a_live_record() {
        let ix = Index::new(4);
        ix.upsert(b"e@x", entry(b"s", 100, b"A"));
        assert_eq!(
            ix.lookup(b"e@x", &sha1(b"s"), 99)
                .map(|a| a.to_vec())
                .as_deref(),
            Some(&b"A"[..])
        );
        assert_eq!(ix.lookup(b"e@x", &sha1(b"t"), 99), None);
        assert_eq!(ix.lookup(b"e@x", &sha1(b"s"), 100), None);
        assert_eq!(ix.lookup(b"f@x", &sha1(b"s"), 99), None);
    }

    #[test]
    fn same_envid_different_secrets_are_separate_records() {
        let ix = Index::new(1);
        ix.upsert(b"e@x", entry(b"s1", 100, b"A"));
        ix.upsert(b"e@x", entry(b"s2", 100, b"B"));
        ix.upsert(b"e@x", entry(b"s1", 100, b"A2"));
        assert_eq!(ix.len(), 2);
        assert_eq!(
            ix.lookup(b"e@x", &sha1(b"s1"), 0)
                .map(|a| a.to_vec())
                .as_deref(),
            Some(&b"A2"[..])
        );
        assert_eq!(
            ix.lookup(b"e@x", &sha1(b"s2"), 0)
                .map(|a| a.to_vec())
                .as_deref(),
            Some(&b"B"[..])
        );
        ix.remove(b"e@x", &sha1(b"s1"));
        assert_eq!(ix.lookup(b"e@x", &sha1(b"s1"), 0), None);
        assert_eq!(
            ix.lookup(b"e@x", &sha1(b"s2"), 0)
                .map(|a| a.to_vec())
                .as_deref(),
            Some(&b"B"[..])
        );
        ix.remove(b"e@x", &sha1(b"s2"));
        assert!(ix.is_empty());
    }

    #[test]
    fn sweep_drops_only_expired_records() {
        let ix = Index::new(3);
        for i in 0..100i64 {
            ix.upsert(format!("m{i}@x").as_bytes(), entry(b"s", i, b"A"));
        }
        ix.upsert(b"m99@x", entry(b"other", 10, b"B"));
        assert_eq!(ix.len(), 101);
        assert_eq!(ix.sweep(50), 52);
        assert_eq!(ix.len(), 49);
        assert_eq!(
            ix.lookup(b"m99@x", &sha1(b"s"), 60)
                .map(|a| a.to_vec())
                .as_deref(),
            Some(&b"A"[..])
        );
        assert_eq!(ix.lookup(b"m20@x", &sha1(b"s"), 0), None);
    }
}
