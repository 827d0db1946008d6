//! A set of the tracker's message ids for one sweep: a bitmap over the span of the ids it
//! holds.
//!
//! The tracker numbers messages in order of arrival, so the ids a sweep collects (the messages
//! a live queue id refers to, the messages it forgets) lie in the span of the messages it
//! holds, and one bit each covers them. A sweep tests every message and every map entry
//! against such a set: a bit test where a hash set costs a hash, a probe and a cache miss, and
//! building it allocates once rather than growing a table.

/// Ids as bits from the smallest one up.
pub struct IdSet {
    lo: u64,
    words: Vec<u64>,
}

impl IdSet {
    /// The set of `ids` (duplicates allowed).
    pub fn new(ids: &[u64]) -> IdSet {
        let (Some(&lo), Some(&hi)) = (ids.iter().min(), ids.iter().max()) else {
            return IdSet {
                lo: 0,
                words: Vec::new(),
            };
        };
        let mut words = vec![0u64; ((hi - lo) / 64 + 1) as usize];
        for &id in ids {
            let bit = id - lo;
            words[(bit / 64) as usize] |= 1 << (bit % 64);
        }
        IdSet { lo, words }
    }

    pub fn contains(&self, id: u64) -> bool {
        let Some(bit) = id.checked_sub(self.lo) else {
            return false;
        };
        self.words
            .get((bit / 64) as usize)
            .is_some_and(|w| w & (1 << (bit % 64)) != 0)
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::IdSet;

    #[test]
    fn holds_exactly_its_ids() {
        let ids = [1_000_000, 1_000_063, 1_000_064, 1_000_200, 1_000_063];
        let set = IdSet::new(&ids);
        for id in 999_990..1_000_300 {
            assert_eq!(set.contains(id), ids.contains(&id), "{id}");
        }
        assert!(!set.contains(0) && !set.contains(u64::MAX));
    }

    #[test]
    fn empty() {
        let set = IdSet::new(&[]);
        assert!(set.is_empty() && !set.contains(0) && !set.contains(7));
    }
}
