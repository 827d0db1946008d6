//! One servable record in one allocation: the header a TRACK needs to verify (expiry, the hash
//! B of the secret, the envid), the answer pre-encoded for the wire, and for a finished
//! message what the ingest thread needs beside the answer to read the message back (the
//! "tail"), so that the tracker can forget the message and take it back from here if a late
//! log line changes it.
//!
//! One allocation rather than a key, a struct and a body apart: a record is read by one
//! pointer (a TRACK touches the same memory whether the secret is right or wrong), and at a
//! million records the separate allocations and their headers cost more than the answers.

use std::sync::Arc;

use super::render;
use crate::protocol::secret::Hash;

const EXPIRES: usize = 0;
const HASH: usize = 8;
const FRAMED: usize = HASH + 20;
const ENVID_LEN: usize = FRAMED + 1;
const TAIL_LEN: usize = ENVID_LEN + 2;
const ENVID: usize = TAIL_LEN + 4;

/// Longest envid a record can hold (the protocol allows 100 octets; logs are not trusted to).
pub const MAX_ENVID: usize = u16::MAX as usize;

/// A record: `[expires_at: i64][hash: 20][framed: u8][envid length: u16][tail length: u32]
/// [envid][tail][body]`, all little-endian. Cheap to clone (one reference count), immutable once built: the ingest
/// thread replaces a record rather than changing it, so a worker writing one never sees it
/// change.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry(Arc<[u8]>);

impl Entry {
    /// The record of `envid` for the secret whose hash is `hash`, served until `expires_at`,
    /// answering `wire` (a complete answer), carrying `tail` for the ingest thread. The usual
    /// MIME frame of an answer ([`render::FRAME_PREFIX`], [`render::FRAME_SUFFIX`]) is kept
    /// once, statically, not in every record: it goes on the wire as extra slices of the same
    /// vectored write. None when the envid is longer than [`MAX_ENVID`] or the tail than 4 GiB.
    pub fn new(
        envid: &[u8],
        hash: &Hash,
        expires_at: i64,
        wire: &[u8],
        tail: &[u8],
    ) -> Option<Entry> {
        Entry::build(&mut Vec::new(), envid, hash, expires_at, wire, tail)
    }

    /// [`Entry::new`], laying the record out in `scratch` first (its contents are replaced):
    /// with a buffer kept across calls the record costs one allocation, its own, where a fresh
    /// buffer would cost a second one for the layout.
    pub fn build(
        scratch: &mut Vec<u8>,
        envid: &[u8],
        hash: &Hash,
        expires_at: i64,
        wire: &[u8],
        tail: &[u8],
    ) -> Option<Entry> {
        let envid_len = u16::try_from(envid.len()).ok()?;
        let tail_len = u32::try_from(tail.len()).ok()?;
        let (framed, body) = match wire
            .strip_prefix(render::FRAME_PREFIX)
            .and_then(|w| w.strip_suffix(render::FRAME_SUFFIX))
        {
            Some(body) => (true, body),
            None => (false, wire),
        };
        let bytes = scratch;
        bytes.clear();
        bytes.extend_from_slice(&expires_at.to_le_bytes());
        bytes.extend_from_slice(hash);
        bytes.push(u8::from(framed));
        bytes.extend_from_slice(&envid_len.to_le_bytes());
        bytes.extend_from_slice(&tail_len.to_le_bytes());
        bytes.extend_from_slice(envid);
        bytes.extend_from_slice(tail);
        bytes.extend_from_slice(body);
        Some(Entry(Arc::from(&bytes[..])))
    }

    /// Unix time after which it is not served.
    pub fn expires_at(&self) -> i64 {
        let mut b = [0; 8];
        b.copy_from_slice(&self.0[EXPIRES..HASH]);
        i64::from_le_bytes(b)
    }

    /// SHA-1 of the tracking secret.
    pub fn hash(&self) -> &Hash {
        self.0[HASH..FRAMED]
            .try_into()
            .expect("the header has a 20-octet hash")
    }

    /// The envid, decoded.
    pub fn envid(&self) -> &[u8] {
        &self.0[ENVID..ENVID + self.envid_len()]
    }

    fn envid_len(&self) -> usize {
        usize::from(u16::from_le_bytes([
            self.0[ENVID_LEN],
            self.0[ENVID_LEN + 1],
        ]))
    }

    fn tail_len(&self) -> usize {
        let mut b = [0; 4];
        b.copy_from_slice(&self.0[TAIL_LEN..ENVID]);
        u32::from_le_bytes(b) as usize
    }

    /// What the ingest thread keeps here for itself (empty while it holds the message).
    pub fn tail(&self) -> &[u8] {
        let at = ENVID + self.envid_len();
        &self.0[at..at + self.tail_len()]
    }

    /// The stored part of the answer (without the frame when it has the usual one).
    pub fn body(&self) -> &[u8] {
        &self.0[ENVID + self.envid_len() + self.tail_len()..]
    }

    /// The answer's octets, in three slices (the first and last empty when not framed).
    pub fn pieces(&self) -> [&[u8]; 3] {
        if self.0[FRAMED] == 1 {
            [render::FRAME_PREFIX, self.body(), render::FRAME_SUFFIX]
        } else {
            [&[], self.body(), &[]]
        }
    }

    /// True when the answer goes out between the static frame slices.
    pub fn framed(&self) -> bool {
        self.0[FRAMED] == 1
    }

    /// The whole answer, as one buffer (for tests and tools; the server sends the pieces).
    pub fn to_vec(&self) -> Vec<u8> {
        self.pieces().concat()
    }

    /// Octets the record occupies, header included.
    pub fn size(&self) -> usize {
        self.0.len()
    }
}

impl std::fmt::Debug for Entry {
    /// The envid and the answer; never the hash of the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("envid", &String::from_utf8_lossy(self.envid()))
            .field("expires_at", &self.expires_at())
            .field("answer", &String::from_utf8_lossy(&self.to_vec()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_answer_read_back() {
        let wire = [
            render::FRAME_PREFIX,
            b"Original-Envelope-Id: e\r\n",
            render::FRAME_SUFFIX,
        ]
        .concat();
        let e = Entry::new(b"e@x", &[7; 20], -5, &wire, b"state").unwrap();
        assert_eq!(e.expires_at(), -5);
        assert_eq!(e.hash(), &[7; 20]);
        assert_eq!(e.envid(), b"e@x");
        assert_eq!(e.tail(), b"state");
        assert!(e.framed());
        assert_eq!(e.body(), b"Original-Envelope-Id: e\r\n");
        assert_eq!(e.to_vec(), wire);
    }

    #[test]
    fn an_unusual_answer_is_kept_whole() {
        let e = Entry::new(b"", &[0; 20], i64::MAX, b"+OK+ x\r\n.\r\n", b"").unwrap();
        assert!(!e.framed());
        assert_eq!(e.envid(), b"");
        assert_eq!(e.tail(), b"");
        assert_eq!(e.expires_at(), i64::MAX);
        assert_eq!(e.to_vec(), b"+OK+ x\r\n.\r\n");
    }

    #[test]
    fn an_envid_too_long_for_the_header_is_refused() {
        assert!(Entry::new(&vec![b'a'; MAX_ENVID + 1], &[0; 20], 0, b"", b"").is_none());
        assert!(Entry::new(&vec![b'a'; MAX_ENVID], &[0; 20], 0, b"", b"").is_some());
    }
}
