//! One shard of the index: an open-addressing table (linear probing) of 8-octet slots over a
//! dense vector of [`Entry`]s.
//!
//! Why not a `HashMap<Box<[u8]>, …>`: a miss in a swiss table reads only its control bytes
//! while a wrong secret also reads the stored key and record, so on a cold cache an unknown
//! envid answered measurably faster than a wrong secret. Here every TRACK reads exactly one
//! record: the matching one, or on a miss a decoy picked from the entries, compared the same
//! way. The slots also cost 8 octets a record instead of a key allocation and a bucket.
//!
//! A slot holds the record's [`Key`] — a 24-bit tag of its envid's keyed hash, which places
//! it, and a 16-bit mark of its (envid, hash) — and its position. The records of one envid (up
//! to 8: senders may reuse an envid, each with a secret of their own) sit on one probe path,
//! so that the ingest thread can find them all by envid; a TRACK compares only the record whose
//! mark matches, so it reads one record however many share the envid, and a wrong secret for a
//! known envid costs what an unknown envid costs. The probe start is derived from the tag
//! alone, so the table grows without reading any entry.

use super::entry::Entry;
use crate::protocol::secret::{hashes_equal, Hash};

/// Most entries one shard holds (positions are 24-bit; 16 shards a thread make that 268
/// million records on one thread).
const MAX_ENTRIES: usize = (1 << 24) - 2;

/// Where a record goes and how it is recognised without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// 24 bits of the envid's keyed hash: the probe path of every record of the envid.
    pub tag: u32,
    /// 16 bits of the keyed hash of (envid, hash): which record of the envid it is, nearly
    /// always.
    pub mark: u16,
}

/// A shard's table.
#[derive(Default)]
pub struct Table {
    /// 0: empty; otherwise `tag << 40 | mark << 24 | (position in entries + 1)`.
    slots: Vec<u64>,
    entries: Vec<Entry>,
}

fn tag_of(slot: u64) -> u32 {
    (slot >> 40) as u32
}

fn key_of(slot: u64) -> Key {
    Key {
        tag: tag_of(slot),
        mark: (slot >> 24) as u16,
    }
}

fn position_of(slot: u64) -> usize {
    (slot & 0xff_ffff) as usize - 1
}

fn slot(key: Key, position: usize) -> u64 {
    u64::from(key.tag & 0xff_ffff) << 40 | u64::from(key.mark) << 24 | (position as u64 + 1)
}

/// True when `query` equals `stored`, in a time that depends only on `query`'s length (the
/// one the client chose), not on where or whether they differ.
fn same_envid(query: &[u8], stored: &[u8]) -> bool {
    let mut diff = u8::from(query.len() != stored.len());
    for (i, &c) in query.iter().enumerate() {
        diff |= c ^ stored.get(i).copied().unwrap_or(!c);
    }
    std::hint::black_box(diff) == 0
}

/// Whether `e` answers a TRACK of (`envid`, `hash`) at `now`, by the same work whatever the
/// outcome.
fn answers(e: &Entry, envid: &[u8], hash: &Hash, now: i64) -> bool {
    let envid_ok = same_envid(envid, e.envid());
    let hash_ok = hashes_equal(e.hash(), hash);
    envid_ok & hash_ok & (e.expires_at() > now)
}

impl Table {
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// Where the probe for `tag` starts: Fibonacci hashing of the tag.
    fn home(&self, tag: u32) -> usize {
        let tag = tag & 0xff_ffff;
        let bits = self.slots.len().trailing_zeros();
        ((u64::from(tag).wrapping_mul(0x9e37_79b9_7f4a_7c15)) >> (64 - bits)) as usize
    }

    /// The live entry of (`envid`, `hash`). Reads and compares exactly one entry whatever the
    /// outcome (see the module doc), unless the table is empty or tags collide.
    pub fn lookup(&self, key: Key, envid: &[u8], hash: &Hash, now: i64) -> Option<Entry> {
        if self.entries.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut i = self.home(key.tag);
        let mut found = None;
        let mut compared = false;
        // Every slot read, folded: the decoy's position depends on it, so that its load waits
        // for the probe as a real entry's does (else the CPU fetches it in parallel with the
        // probe and a miss answers a cache miss sooner on a cold cache).
        let mut probed = u64::from(key.tag);
        loop {
            // Opaque, so that the compiler cannot drop the fold of the empty slot that ends the
            // probe (it knows that slot is 0), which would free the decoy from waiting for it.
            let s = std::hint::black_box(self.slots[i]);
            probed ^= s;
            if s == 0 {
                break;
            }
            if key_of(s) == key {
                let e = &self.entries[position_of(s)];
                compared = true;
                if answers(e, envid, hash, now) {
                    found = Some(e);
                }
            }
            i = (i + 1) & mask;
        }
        if !compared {
            let decoy =
                &self.entries[(probed as usize ^ (probed >> 32) as usize) % self.entries.len()];
            std::hint::black_box(answers(decoy, envid, hash, now));
        }
        found.cloned()
    }

    /// The slot index and entry position of every entry of `envid` (for the ingest thread;
    /// not timing-safe).
    fn matches<'t>(
        &'t self,
        tag: u32,
        envid: &'t [u8],
    ) -> impl Iterator<Item = (usize, usize)> + 't {
        let mask = self.slots.len().wrapping_sub(1);
        let start = if self.entries.is_empty() {
            None
        } else {
            Some(self.home(tag))
        };
        std::iter::successors(start, move |&i| Some((i + 1) & mask))
            .map(|i| (i, self.slots[i]))
            .take_while(|&(_, s)| s != 0)
            .filter(move |&(_, s)| {
                tag_of(s) == tag & 0xff_ffff && self.entries[position_of(s)].envid() == envid
            })
            .map(|(i, s)| (i, position_of(s)))
    }

    /// The slot index and entry position of (`envid`, `hash`), if held.
    fn find(&self, key: Key, envid: &[u8], hash: &Hash) -> Option<(usize, usize)> {
        self.matches(key.tag, envid)
            .find(|&(_, p)| self.entries[p].hash() == hash)
    }

    /// Every entry of `envid`, expired or not (for the ingest thread; not timing-safe).
    pub fn all_of(&self, tag: u32, envid: &[u8]) -> Vec<Entry> {
        self.matches(tag, envid)
            .map(|(_, p)| self.entries[p].clone())
            .collect()
    }

    /// Every entry, in no particular order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Inserts `entry`, or replaces the one with the same envid and hash. Returns true when
    /// it was added, false when it replaced one or the shard is full.
    pub fn upsert(&mut self, key: Key, entry: Entry) -> bool {
        if let Some((_, p)) = self.find(key, entry.envid(), entry.hash()) {
            self.entries[p] = entry;
            return false;
        }
        if self.entries.len() >= MAX_ENTRIES {
            return false;
        }
        self.reserve(1);
        let position = self.entries.len();
        self.entries.push(entry);
        self.place(slot(key, position));
        true
    }

    fn place(&mut self, s: u64) {
        let mask = self.mask();
        let mut i = self.home(tag_of(s));
        while self.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = s;
    }

    /// Removes the entry of (`envid`, `hash`). `key_for` gives the key of any record (the
    /// entry moved into the freed position must have its slot found again). Returns true when
    /// one was removed.
    pub fn remove(
        &mut self,
        key: Key,
        envid: &[u8],
        hash: &Hash,
        key_for: impl Fn(&Entry) -> Key,
    ) -> bool {
        let Some((i, p)) = self.find(key, envid, hash) else {
            return false;
        };
        self.clear_slot(i);
        self.entries.swap_remove(p);
        if let Some(moved) = self.entries.get(p) {
            let moved_key = key_for(moved);
            let from = slot(moved_key, self.entries.len());
            let mask = self.mask();
            let mut j = self.home(moved_key.tag);
            // Always found within one turn: every entry has its slot on its probe path.
            for _ in 0..self.slots.len() {
                if self.slots[j] == from {
                    self.slots[j] = slot(moved_key, p);
                    break;
                }
                j = (j + 1) & mask;
            }
        }
        true
    }

    /// Empties slot `i`, shifting back the slots after it that probed past it (deletion
    /// without tombstones, so probes stay short however many records come and go).
    fn clear_slot(&mut self, i: usize) {
        let mask = self.mask();
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let s = self.slots[j];
            if s == 0 {
                break;
            }
            let home = self.home(tag_of(s));
            // `s` may fill the hole when its home is not in the cyclic range (hole, j].
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                self.slots[hole] = s;
                hole = j;
            }
        }
        self.slots[hole] = 0;
    }

    /// Makes room for `more` entries without growing, keeping the load at most 3/4.
    pub fn reserve(&mut self, more: usize) {
        let need = self.entries.len() + more;
        self.entries.reserve(more);
        if need * 4 <= self.slots.len() * 3 {
            return;
        }
        let size = (need * 4 / 3 + 1).next_power_of_two().max(8);
        let old = std::mem::replace(&mut self.slots, vec![0; size]);
        for s in old.into_iter().filter(|&s| s != 0) {
            self.place(s);
        }
    }

    /// Keeps only the entries for which `keep` is true; returns how many were dropped.
    pub fn retain(
        &mut self,
        key_for: impl Fn(&Entry) -> Key,
        keep: impl Fn(&Entry) -> bool,
    ) -> usize {
        let before = self.entries.len();
        self.entries.retain(keep);
        let dropped = before - self.entries.len();
        if dropped > 0 {
            self.slots.iter_mut().for_each(|s| *s = 0);
            for p in 0..self.entries.len() {
                let key = key_for(&self.entries[p]);
                self.place(slot(key, p));
            }
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deliberately poor tag, so that probes collide and wrap, and a mark that two secrets
    /// of one envid share, so that the full comparison decides.
    fn key(envid: &[u8], hash: &Hash) -> Key {
        Key {
            tag: u32::from(envid.iter().fold(0u8, |a, &c| a.wrapping_add(c)) % 4),
            mark: u16::from(hash[0] % 2),
        }
    }

    fn tag(envid: &[u8]) -> u32 {
        key(envid, &[0; 20]).tag
    }

    fn key_of_entry(e: &Entry) -> Key {
        key(e.envid(), e.hash())
    }

    fn entry(envid: &[u8], secret: u8, expires_at: i64) -> Entry {
        Entry::new(envid, &[secret; 20], expires_at, envid, b"").unwrap()
    }

    #[test]
    fn same_envid_is_constant_in_the_stored_length() {
        assert!(same_envid(b"abc", b"abc"));
        assert!(!same_envid(b"abc", b"abd"));
        assert!(!same_envid(b"abc", b"ab"));
        assert!(!same_envid(b"ab", b"abc"));
        assert!(!same_envid(b"", b"a"));
        assert!(same_envid(b"", b""));
    }

    #[test]
    fn colliding_tags_insert_find_and_remove_like_a_map() {
        let mut t = Table::default();
        let mut model = std::collections::HashMap::new();
        let mut rng = fastrand::Rng::with_seed(7);
        for step in 0..20_000u32 {
            let k = format!("e{}", rng.u32(..300)).into_bytes();
            let secret = rng.u8(..4);
            let h = [secret; 20];
            if rng.u8(..3) == 0 {
                let removed = t.remove(key(&k, &h), &k, &h, key_of_entry);
                assert_eq!(removed, model.remove(&(k.clone(), secret)).is_some());
            } else {
                let added = t.upsert(key(&k, &h), entry(&k, secret, i64::from(step)));
                assert_eq!(added, model.insert((k.clone(), secret), step).is_none());
            }
            assert_eq!(t.entries.len(), model.len());
        }
        for ((k, secret), step) in &model {
            let h = [*secret; 20];
            let e = t.lookup(key(k, &h), k, &h, 0).unwrap();
            assert_eq!(e.expires_at(), i64::from(*step));
            assert_eq!(t.lookup(key(k, &[9; 20]), k, &[9; 20], 0), None);
        }
        let dropped = t.retain(key_of_entry, |e| e.expires_at() >= 10_000);
        assert_eq!(t.entries.len(), model.len() - dropped);
        for ((k, secret), step) in &model {
            let h = [*secret; 20];
            let held = t.lookup(key(k, &h), k, &h, i64::MIN).is_some();
            let all = t.all_of(tag(k), k);
            assert_eq!(all.iter().any(|e| e.hash() == &[*secret; 20]), held);
            assert!(all.iter().all(|e| e.envid() == &k[..]));
            assert_eq!(held, *step >= 10_000);
        }
    }

    #[test]
    fn an_expired_entry_is_not_served() {
        let mut t = Table::default();
        let h = [1; 20];
        t.upsert(key(b"e", &h), entry(b"e", 1, 100));
        assert!(t.lookup(key(b"e", &h), b"e", &h, 99).is_some());
        assert!(t.lookup(key(b"e", &h), b"e", &h, 100).is_none());
        assert!(t.lookup(key(b"f", &h), b"f", &h, 0).is_none());
    }
}
