//! An MTA's queue id on one host, held inline when short, as nearly all are (Postfix short ids
//! are 10 to 12 characters, long ids about 15, sendmail's 14, Exim's 16 or 23).
//!
//! Every MTA log line names one, and the tracker keys three maps by them: as boxed slices each
//! line cost an allocation for its event and each new id one per map, and every probe of a map
//! followed a pointer to compare keys. Inline, an id is copied, hashed and compared where it
//! lies. Longer ids (a parser accepts up to 64 octets, a native line more) are boxed.
//!
//! Queue ids are unique on one host only (Postfix's short ids collide across a cluster), so an
//! id carries the [`HostId`] of the host whose MTA gave it: parsers make ids on host 0, and the
//! ingest pipeline puts each line's ids on that line's host ([`QueueId::on_host`]).

use std::fmt;
use std::hash::{Hash, Hasher};

use super::hosts::HostId;

/// Octets held inline; with the host, the length octet and the tag the type is 32 octets.
const INLINE: usize = 28;

/// A queue id on a host. Equal ids have equal representations (inline exactly when at most
/// [`INLINE`] octets).
#[derive(Clone, PartialEq, Eq)]
pub struct QueueId(Repr);

#[derive(Clone, PartialEq, Eq)]
enum Repr {
    Inline {
        host: HostId,
        len: u8,
        bytes: [u8; INLINE],
    },
    Boxed {
        host: HostId,
        bytes: Box<[u8]>,
    },
}

impl QueueId {
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes, .. } => &bytes[..usize::from(*len)],
            Repr::Boxed { bytes, .. } => bytes,
        }
    }

    /// The host whose MTA gave the id.
    pub fn host(&self) -> HostId {
        match &self.0 {
            Repr::Inline { host, .. } | Repr::Boxed { host, .. } => *host,
        }
    }

    /// The same id on `to`.
    pub fn on_host(mut self, to: HostId) -> QueueId {
        match &mut self.0 {
            Repr::Inline { host, .. } | Repr::Boxed { host, .. } => *host = to,
        }
        self
    }

    /// Puts the id on `to`, in place.
    pub fn set_host(&mut self, to: HostId) {
        match &mut self.0 {
            Repr::Inline { host, .. } | Repr::Boxed { host, .. } => *host = to,
        }
    }
}

impl From<&[u8]> for QueueId {
    /// The id on host 0.
    fn from(id: &[u8]) -> QueueId {
        let host = HostId::default();
        QueueId(match u8::try_from(id.len()) {
            Ok(len) if id.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..id.len()].copy_from_slice(id);
                Repr::Inline { host, len, bytes }
            }
            _ => Repr::Boxed {
                host,
                bytes: id.into(),
            },
        })
    }
}

impl From<Box<[u8]>> for QueueId {
    /// The id on host 0.
    fn from(id: Box<[u8]>) -> QueueId {
        if id.len() <= INLINE {
            QueueId::from(&id[..])
        } else {
            QueueId(Repr::Boxed {
                host: HostId::default(),
                bytes: id,
            })
        }
    }
}

impl std::ops::Deref for QueueId {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Hash for QueueId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.host().hash(state);
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{:?}",
            self.host().0,
            String::from_utf8_lossy(self.as_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{HostId, QueueId};

    #[test]
    fn short_and_long_ids_round_trip() {
        for len in [0, 1, 12, 23, 28, 29, 64, 300] {
            let id: Vec<u8> = (0..len).map(|i| b'A' + (i % 26) as u8).collect();
            let q = QueueId::from(&id[..]).on_host(HostId(7));
            assert_eq!(q.as_bytes(), &id[..]);
            assert_eq!(q.host(), HostId(7));
            let boxed = QueueId::from(Box::<[u8]>::from(&id[..])).on_host(HostId(7));
            assert_eq!(boxed, q, "{len}");
        }
        assert_eq!(std::mem::size_of::<QueueId>(), 32);
    }

    #[test]
    fn the_same_id_on_two_hosts_is_two_keys() {
        let mut m = std::collections::HashMap::new();
        let id = &b"3sJNsv1dH5z2vPj"[..];
        m.insert(QueueId::from(id), 1);
        m.insert(QueueId::from(id).on_host(HostId(1)), 2);
        assert_eq!(m.get(&QueueId::from(id)), Some(&1));
        assert_eq!(m.get(&QueueId::from(id).on_host(HostId(1))), Some(&2));
        assert_eq!(m.get(&QueueId::from(id).on_host(HostId(2))), None);
    }
}
