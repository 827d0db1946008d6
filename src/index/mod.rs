//! The in-memory index of tracking records: N shards, each an `RwLock` over an
//! open-addressing [`table`] of [`Entry`]s — one allocation per record holding the hash B of
//! its secret, its expiry, its envid and its answer already rendered for the wire.
//! Event-loop workers only read it; the ingest thread is its one writer.
//!
//! It owns no I/O and no log format; rendering lives in [`render`], the message model in
//! [`message`].

pub mod entry;
pub mod message;
pub mod render;
pub mod shared_head;
mod table;

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::RwLock;

pub use self::entry::Entry;
use self::table::{Key, Table};
use crate::protocol::secret::Hash;

/// The sharded index.
pub struct Index {
    shards: Box<[RwLock<Table>]>,
    /// SipHash with a random key: an attacker who chooses envids cannot predict their tags, so
    /// can neither crowd one probe sequence nor learn anything from timing.
    keys: std::hash::RandomState,
    records: AtomicUsize,
}

/// Where the records of an envid live: their shard, and the envid's hash, from which the
/// [`Key`] of each of its records is made.
#[derive(Clone, Copy)]
struct Place {
    shard: usize,
    envid_hash: u64,
}

impl Place {
    /// The envid's tag: the probe path of all its records.
    fn tag(self) -> u32 {
        (self.envid_hash >> 40) as u32
    }

    /// The key of the record of (this envid, `hash`): the envid's tag, and a mark mixed from
    /// the envid's keyed hash and the secret's hash (keyed, so nobody can aim two secrets at
    /// one mark).
    fn key(self, hash: &Hash) -> Key {
        let h = u64::from_le_bytes([
            hash[0], hash[1], hash[2], hash[3], hash[4], hash[5], hash[6], hash[7],
        ]);
        let mixed = (h ^ self.envid_hash).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Key {
            tag: self.tag(),
            mark: (mixed >> 48) as u16,
        }
    }
}

impl Index {
    /// An empty index with `shards` shards (at least one).
    pub fn new(shards: usize) -> Index {
        let shards = (0..shards.max(1))
            .map(|_| RwLock::new(Table::default()))
            .collect();
        Index {
            shards,
            keys: std::hash::RandomState::new(),
            records: AtomicUsize::new(0),
        }
    }

    fn place(&self, envid: &[u8]) -> Place {
        let h = self.keys.hash_one(envid);
        Place {
            shard: ((h as u32 as u64 * self.shards.len() as u64) >> 32) as usize,
            envid_hash: h,
        }
    }

    fn key(&self, e: &Entry) -> Key {
        self.place(e.envid()).key(e.hash())
    }

    /// The record for `envid` (decoded) when `secret_hash` matches a live one. The same work
    /// is done, and the same amount of record memory read, for a wrong secret as for an
    /// unknown envid (see [`table`]).
    pub fn lookup(&self, envid: &[u8], secret_hash: &Hash, now: i64) -> Option<Entry> {
        let at = self.place(envid);
        self.shards[at.shard]
            .read()
            .lookup(at.key(secret_hash), envid, secret_hash, now)
    }

    /// Every record of `envid`, expired or not: for the ingest thread, which takes messages
    /// back from here (see [`entry`]). Not for answering queries: it is not timing-safe.
    pub fn records_of(&self, envid: &[u8]) -> Vec<Entry> {
        let at = self.place(envid);
        self.shards[at.shard].read().all_of(at.tag(), envid)
    }

    /// Calls `f` with every record, one shard at a time.
    pub fn for_each(&self, mut f: impl FnMut(&Entry)) {
        for shard in self.shards.iter() {
            shard.read().entries().iter().for_each(&mut f);
        }
    }

    /// Inserts `entry`, or replaces the record of the same envid and hash.
    pub fn upsert(&self, entry: Entry) {
        let at = self.place(entry.envid());
        let key = at.key(entry.hash());
        if self.shards[at.shard].write().upsert(key, entry) {
            self.records.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Removes the record of (`envid`, `hash`), if any.
    pub fn remove(&self, envid: &[u8], hash: &Hash) {
        let at = self.place(envid);
        let removed = self.shards[at.shard]
            .write()
            .remove(at.key(hash), envid, hash, |e| self.key(e));
        if removed {
            self.records.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Drops every record that expired at or before `now`, one shard at a time so that readers
    /// wait for at most one shard's sweep. Returns how many were dropped.
    pub fn sweep(&self, now: i64) -> usize {
        let mut dropped = 0;
        for shard in self.shards.iter() {
            dropped += shard
                .write()
                .retain(|e| self.key(e), |e| e.expires_at() > now);
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

    fn entry(envid: &[u8], secret: &[u8], expires_at: i64, answer: &[u8]) -> Entry {
        Entry::new(envid, &sha1(secret), expires_at, answer, b"").unwrap()
    }

    #[test]
    fn hit_needs_the_right_secret_and_a_live_record() {
        let ix = Index::new(4);
        ix.upsert(entry(b"e@x", b"s", 100, b"A"));
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
        ix.upsert(entry(b"e@x", b"s1", 100, b"A"));
        ix.upsert(entry(b"e@x", b"s2", 100, b"B"));
        ix.upsert(entry(b"e@x", b"s1", 100, b"A2"));
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
            ix.upsert(entry(format!("m{i}@x").as_bytes(), b"s", i, b"A"));
        }
        ix.upsert(entry(b"m99@x", b"other", 10, b"B"));
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
