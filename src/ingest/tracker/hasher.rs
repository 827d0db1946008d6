//! The hasher of the tracker's maps keyed by numbers it hands out and by queue ids.
//!
//! rustc-hash's FxHasher was tried in its place: as fast (1 M-message Postfix log, interleaved:
//! 214,000-253,000 lines/s against 206,000-237,000), but 4 more octets of RSS per tracked
//! message (701 against 697: the maps free in another order). Kept, for the memory.

/// FxHash (rustc's): for maps keyed by numbers the tracker hands out and by queue ids, which
/// the MTA generates; maps keyed by what senders choose (envids, Message-IDs) keep std's keyed
/// SipHash against collision flooding.
#[derive(Default, Clone, Copy)]
pub(super) struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Whole words by value; a variable-length copy into a zeroed word (the obvious way to
        // take the rest) compiles to a memcpy call, which cost more than the hashing itself.
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.write_u64(u64::from_le_bytes(word.try_into().expect("8 octets")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let word = rest
                .iter()
                .rev()
                .fold(0u64, |w, &c| (w << 8) | u64::from(c));
            self.write_u64(word);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Builds [`FxHasher`]s for the tracker's maps.
pub(super) type FxBuildHasher = std::hash::BuildHasherDefault<FxHasher>;
