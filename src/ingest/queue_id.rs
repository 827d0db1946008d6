//! An MTA's queue id, held inline when short, as nearly all are (Postfix short ids are 10 to
//! 12 characters, long ids about 15, sendmail's 14, Exim's 16 or 23).
//!
//! Every MTA log line names one, and the tracker keys three maps by them: as boxed slices each
//! line cost an allocation for its event and each new id one per map, and every probe of a map
//! followed a pointer to compare keys. Inline, an id is copied, hashed and compared where it
//! lies. Longer ids (a parser accepts up to 64 octets, a native line more) are boxed.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};

/// Octets held inline; with the length octet and the tag the type is 24 octets, the size of
/// the boxed slice and its tag.
const INLINE: usize = 22;

/// A queue id. Equal ids have equal representations (inline exactly when at most [`INLINE`]
/// octets), and it hashes as its octets do, so maps keyed by it are searched with `&[u8]`.
#[derive(Clone, PartialEq, Eq)]
pub struct QueueId(Repr);

#[derive(Clone, PartialEq, Eq)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Boxed(Box<[u8]>),
}

impl QueueId {
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Boxed(b) => b,
        }
    }
}

impl From<&[u8]> for QueueId {
    fn from(id: &[u8]) -> QueueId {
        QueueId(match u8::try_from(id.len()) {
            Ok(len) if id.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..id.len()].copy_from_slice(id);
                Repr::Inline { len, bytes }
            }
            _ => Repr::Boxed(id.into()),
        })
    }
}

impl From<Box<[u8]>> for QueueId {
    fn from(id: Box<[u8]>) -> QueueId {
        if id.len() <= INLINE {
            QueueId::from(&id[..])
        } else {
            QueueId(Repr::Boxed(id))
        }
    }
}

impl std::ops::Deref for QueueId {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Borrow<[u8]> for QueueId {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Hash for QueueId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::QueueId;
    use std::collections::hash_map::DefaultHasher;
    use std::hash::{Hash, Hasher};

    fn hash<T: Hash + ?Sized>(t: &T) -> u64 {
        let mut h = DefaultHasher::new();
        t.hash(&mut h);
        h.finish()
    }

    #[test]
    fn short_and_long_ids_round_trip_and_hash_as_their_octets() {
        for len in [0, 1, 12, 21, 22, 23, 64, 300] {
            let id: Vec<u8> = (0..len).map(|i| b'A' + (i % 26) as u8).collect();
            let q = QueueId::from(&id[..]);
            assert_eq!(q.as_bytes(), &id[..]);
            assert_eq!(hash(&q), hash(&id[..]), "{len}");
            assert_eq!(QueueId::from(Box::<[u8]>::from(&id[..])), q, "{len}");
        }
        assert_eq!(std::mem::size_of::<QueueId>(), 24);
    }

    #[test]
    fn maps_keyed_by_ids_are_searched_with_slices() {
        let mut m = std::collections::HashMap::new();
        m.insert(QueueId::from(&b"3sJNsv1dH5z2vPj"[..]), 1);
        m.insert(QueueId::from(&[b'x'; 40][..]), 2);
        assert_eq!(m.get(&b"3sJNsv1dH5z2vPj"[..]), Some(&1));
        assert_eq!(m.get(&[b'x'; 40][..]), Some(&2));
        assert_eq!(m.get(&b"3sJNsv1dH5z2vP"[..]), None);
    }
}
