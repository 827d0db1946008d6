//! One servable record in one allocation: the header a TRACK needs to verify (expiry, the hash
//! B of the secret, the envid), the answer pre-encoded for the wire, and a sidecar: octets the
//! record's writer keeps beside the answer for itself, which the index stores and never reads.
//! What every answer shares — the MIME frame, and the hub's `Reporting-MTA` line with the head
//! of the `Arrival-Date` field ([`shared_head`]) — is kept once, not in every record.
//!
//! One allocation rather than a key, a struct and a body apart: a record is read by one
//! pointer (a TRACK touches the same memory whether the secret is right or wrong), and at a
//! million records the separate allocations and their headers cost more than the answers.

use std::sync::Arc;

use super::{render, shared_head};
use crate::protocol::secret::Hash;

const EXPIRES: usize = 0;
const HASH: usize = 8;
const FRAMED: usize = HASH + 20;
const ENVID_LEN: usize = FRAMED + 1;
const SIDECAR_LEN: usize = ENVID_LEN + 2;
const SIDECAR: usize = SIDECAR_LEN + 4;

/// The `frame` octet: the answer is the body.
const WHOLE: u8 = 0;
/// The body goes between the static frame slices.
const FRAMED_KEPT: u8 = 1;
/// Plus n: the body goes between the static frame slices, shared head n after its envid.
const FRAMED_SHARED: u8 = 2;

/// Longest envid a record can hold (the protocol allows 100 octets; logs are not trusted to).
pub const MAX_ENVID: usize = u16::MAX as usize;

/// A record: `[expires_at: i64][hash: 20][frame: u8][envid length: u16][sidecar length: u32]
/// [sidecar][envid][body]`, all little-endian. `frame` is 0 for an answer kept whole, 1 for
/// one kept between the static frame slices, 2 + n for one whose body also goes on the wire
/// around shared head n (see [`Entry::wire`]). Cheap to clone (one reference count), immutable
/// once built: its writer replaces a record rather than changing it, so a worker writing one
/// never sees it change.
///
/// A framed answer's first value is the envid itself ([`render::FRAME_PREFIX`] ends with
/// `Original-Envelope-Id: `): the envid is stored once, right before the rest of the body, so
/// that envid and body go on the wire as one slice, or as two around the shared head.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry(Arc<[u8]>);

impl Entry {
    /// The record of `envid` for the secret whose hash is `hash`, served until `expires_at`,
    /// answering `wire` (a complete answer), carrying `sidecar` for its writer. The usual
    /// MIME frame of an answer ([`render::FRAME_PREFIX`], [`render::FRAME_SUFFIX`]) is kept
    /// once, statically, not in every record: it goes on the wire as extra slices of the same
    /// vectored write. None when the envid is longer than [`MAX_ENVID`] or the sidecar than 4 GiB.
    pub fn new(
        envid: &[u8],
        hash: &Hash,
        expires_at: i64,
        wire: &[u8],
        sidecar: &[u8],
    ) -> Option<Entry> {
        Entry::build(&mut Vec::new(), envid, hash, expires_at, wire, sidecar)
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
        sidecar: &[u8],
    ) -> Option<Entry> {
        let envid_len = u16::try_from(envid.len()).ok()?;
        let sidecar_len = u32::try_from(sidecar.len()).ok()?;
        // (frame, what follows the envid in the record)
        let (frame, rest) = match framed_part(envid, wire) {
            Some(envid_and_body) => {
                let after = &envid_and_body[envid.len()..];
                match shared_head::find(after) {
                    Some((n, len)) => (FRAMED_SHARED + n, &after[len..]),
                    None => (FRAMED_KEPT, after),
                }
            }
            None => (WHOLE, wire),
        };
        let bytes = scratch;
        bytes.clear();
        bytes.extend_from_slice(&expires_at.to_le_bytes());
        bytes.extend_from_slice(hash);
        bytes.push(frame);
        bytes.extend_from_slice(&envid_len.to_le_bytes());
        bytes.extend_from_slice(&sidecar_len.to_le_bytes());
        bytes.extend_from_slice(sidecar);
        bytes.extend_from_slice(envid);
        bytes.extend_from_slice(rest);
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
        let at = SIDECAR + self.sidecar_len();
        &self.0[at..at + self.envid_len()]
    }

    fn envid_len(&self) -> usize {
        usize::from(u16::from_le_bytes([
            self.0[ENVID_LEN],
            self.0[ENVID_LEN + 1],
        ]))
    }

    fn sidecar_len(&self) -> usize {
        let mut b = [0; 4];
        b.copy_from_slice(&self.0[SIDECAR_LEN..SIDECAR]);
        u32::from_le_bytes(b) as usize
    }

    /// The octets the record's writer keeps beside the answer (opaque to the index).
    pub fn sidecar(&self) -> &[u8] {
        &self.0[SIDECAR..SIDECAR + self.sidecar_len()]
    }

    /// The stored part of the answer: for a framed one the envid, then the rest of the body
    /// without the frame and without the shared head (see [`Entry::wire`]); otherwise the
    /// whole answer.
    pub fn body(&self) -> &[u8] {
        let at = SIDECAR + self.sidecar_len();
        if self.framed() {
            &self.0[at..]
        } else {
            &self.0[at + self.envid_len()..]
        }
    }

    /// The shared head that a framed answer has right after its envid and its body does not
    /// hold; empty when the body holds it, or the answer is kept whole.
    pub fn shared_head(&self) -> &'static [u8] {
        match self.0[FRAMED].checked_sub(FRAMED_SHARED) {
            Some(n) => shared_head::get(n),
            None => &[],
        }
    }

    /// The answer as it goes on the wire, in order, some slices possibly empty: the frame's
    /// prefix, the envid, the shared head, the rest of the body, the frame's suffix. The
    /// server hands them to one vectored write, copying nothing.
    pub fn wire(&self) -> [&[u8]; 5] {
        let body = self.body();
        if !self.framed() {
            return [body, &[], &[], &[], &[]];
        }
        let (envid, rest) = body.split_at(self.envid_len());
        [
            render::FRAME_PREFIX,
            envid,
            self.shared_head(),
            rest,
            render::FRAME_SUFFIX,
        ]
    }

    /// True when the answer goes out between the static frame slices.
    pub fn framed(&self) -> bool {
        self.0[FRAMED] != WHOLE
    }

    /// The whole answer, as one buffer (for tests and tools; the server sends the slices).
    pub fn to_vec(&self) -> Vec<u8> {
        self.wire().concat()
    }

    /// Octets the record occupies, header included.
    pub fn size(&self) -> usize {
        self.0.len()
    }
}

/// The part of `wire`, the answer for `envid`, that a record keeps when the answer has the
/// usual frame and its first value is `envid` as it is (an envid xtext leaves unchanged):
/// the envid, then the rest of the body. None when the whole answer must be kept.
pub fn framed_part<'w>(envid: &[u8], wire: &'w [u8]) -> Option<&'w [u8]> {
    let inner = wire
        .strip_prefix(render::FRAME_PREFIX)?
        .strip_suffix(render::FRAME_SUFFIX)?;
    inner
        .strip_prefix(envid)?
        .starts_with(b"\r\n")
        .then_some(inner)
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
            b"e@x\r\nReporting-MTA: dns; h\r\n",
            render::FRAME_SUFFIX,
        ]
        .concat();
        let e = Entry::new(b"e@x", &[7; 20], -5, &wire, b"state").unwrap();
        assert_eq!(e.expires_at(), -5);
        assert_eq!(e.hash(), &[7; 20]);
        assert_eq!(e.envid(), b"e@x");
        assert_eq!(e.sidecar(), b"state");
        assert!(e.framed());
        assert_eq!(e.body(), b"e@x\r\nReporting-MTA: dns; h\r\n");
        assert_eq!(e.to_vec(), wire);
        assert_eq!(e.size(), SIDECAR + b"state".len() + e.body().len());
    }

    #[test]
    fn the_shared_head_is_not_stored_and_goes_on_the_wire_in_its_place() {
        let head = &b"\r\nReporting-MTA: dns; entry-test.example\r\nArrival-Date: "[..];
        let rest = &b"Thu, 3 Dec 2026 14:45:54 +0000\r\n\r\nFinal-Recipient: rfc822; a@b\r\n"[..];
        let wire = [
            render::FRAME_PREFIX,
            b"e@x",
            head,
            rest,
            render::FRAME_SUFFIX,
        ]
        .concat();
        let e = Entry::new(b"e@x", &[7; 20], 9, &wire, b"s").unwrap();
        assert_eq!(e.shared_head(), head);
        assert_eq!(e.body(), [&b"e@x"[..], rest].concat());
        assert_eq!(
            e.wire(),
            [
                render::FRAME_PREFIX,
                b"e@x",
                head,
                rest,
                render::FRAME_SUFFIX
            ]
        );
        assert_eq!(e.to_vec(), wire);
        assert_eq!(e.size(), SIDECAR + 1 + 3 + rest.len());
        assert_eq!(
            (e.envid(), e.sidecar(), e.hash()),
            (&b"e@x"[..], &b"s"[..], &[7; 20])
        );
    }

    #[test]
    fn an_envid_that_spells_a_head_shares_nothing_and_reads_back_as_written() {
        // The envid is the sender's: one that spells a head of its own with line breaks is
        // shown xtext-encoded, so its answer is kept whole and never reaches the shared table.
        let envid = &b"a\r\nReporting-MTA: dns; attacker\r\nArrival-Date: "[..];
        let head = &b"\r\nReporting-MTA: dns; entry-hub.example\r\nArrival-Date: "[..];
        let shown = &b"a+0D+0AReporting-MTA:+20dns;+20attacker+0D+0AArrival-Date:+20"[..];
        let rest = &b"Thu, 3 Dec 2026 14:45:54 +0000\r\n"[..];
        let wire = [
            render::FRAME_PREFIX,
            shown,
            head,
            rest,
            render::FRAME_SUFFIX,
        ]
        .concat();
        let e = Entry::new(envid, &[3; 20], 0, &wire, b"").unwrap();
        assert!(!e.framed());
        assert_eq!((e.shared_head(), e.envid()), (&b""[..], envid));
        assert_eq!(e.to_vec(), wire);
    }

    #[test]
    fn an_unusual_answer_is_kept_whole() {
        let e = Entry::new(b"", &[0; 20], i64::MAX, b"+OK+ x\r\n.\r\n", b"").unwrap();
        assert!(!e.framed());
        assert_eq!(e.envid(), b"");
        assert_eq!(e.sidecar(), b"");
        assert_eq!(e.expires_at(), i64::MAX);
        assert_eq!(e.to_vec(), b"+OK+ x\r\n.\r\n");
        assert_eq!(e.wire(), [&b"+OK+ x\r\n.\r\n"[..], b"", b"", b"", b""]);
        assert_eq!(e.shared_head(), b"");
    }

    #[test]
    fn an_envid_the_answer_shows_encoded_is_kept_apart() {
        // xtext writes `+` as `+2B`: the answer's first value is not the envid's octets.
        let wire = [render::FRAME_PREFIX, b"a+2Bb\r\n", render::FRAME_SUFFIX].concat();
        for (envid, framed) in [(&b"a+b"[..], false), (b"a+2B", false), (b"a+2Bb", true)] {
            let e = Entry::new(envid, &[1; 20], 0, &wire, b"t").unwrap();
            assert_eq!(
                (e.framed(), e.envid(), e.sidecar()),
                (framed, envid, &b"t"[..])
            );
            assert_eq!(e.to_vec(), wire);
        }
    }

    #[test]
    fn an_envid_too_long_for_the_header_is_refused() {
        assert!(Entry::new(&vec![b'a'; MAX_ENVID + 1], &[0; 20], 0, b"", b"").is_none());
        assert!(Entry::new(&vec![b'a'; MAX_ENVID], &[0; 20], 0, b"", b"").is_some());
    }
}
