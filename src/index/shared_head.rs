//! The head that every answer of this hub has right after its envid,
//! `\r\nReporting-MTA: dns; <this hub>\r\nArrival-Date: `, kept once per process instead of in
//! every record.
//!
//! Why: the line names the hub, so it is the same in every answer a server gives, and a record
//! is mostly its answer — at a million records this head (49 octets for `hub.example`, more
//! for a real host name) was a tenth of the index. A record says which head it goes with by
//! its number; the answer goes on the wire as one more static slice of the same vectored
//! write, so nothing is copied per TRACK.
//!
//! The heads are interned in a small fixed table that only grows: a server renders with one
//! hub name, so it uses one slot; a process that renders with other names (tests, tools) uses
//! one a name. When the table is full a record keeps its head itself, as records did before,
//! so the table's bound never changes an answer. Reading a slot is one atomic load and never
//! blocks the event loops.

use std::sync::OnceLock;

use crate::index::render::{ARRIVAL_DATE, REPORTING_MTA_HEAD};

/// Heads one process can share.
const SLOTS: usize = 16;

/// Longest head shared (a host name is at most 255 octets, escaped at most three times over).
const MAX_HEAD: usize = 1024;

/// An interning table of heads.
struct Heads<const N: usize>([OnceLock<Box<[u8]>>; N]);

impl<const N: usize> Heads<N> {
    const fn new() -> Self {
        Heads([const { OnceLock::new() }; N])
    }

    /// The slot holding `head`, taking a free one if none does; None when all are taken by
    /// other heads. Slots are taken in order and never given back, so two threads interning
    /// the same head agree on its slot.
    fn intern(&self, head: &[u8]) -> Option<u8> {
        self.0.iter().enumerate().find_map(|(n, slot)| {
            let held = slot.get_or_init(|| head.into());
            (**held == *head).then_some(n as u8)
        })
    }

    fn get(&self, n: u8) -> &[u8] {
        self.0
            .get(usize::from(n))
            .and_then(OnceLock::get)
            .map_or(&[], |h| &h[..])
    }
}

static HEADS: Heads<SLOTS> = Heads::new();

/// The usual head `after_envid` begins with, `\r\nReporting-MTA: …\r\n` up to and including
/// `Arrival-Date: `, as its length. `after_envid` is a framed answer's body after its envid.
fn head_len(after_envid: &[u8]) -> Option<usize> {
    let line = after_envid
        .strip_prefix(b"\r\n")?
        .strip_prefix(REPORTING_MTA_HEAD)?;
    let end = memchr::memchr(b'\n', line)?;
    let len = after_envid.len() - line.len() + end + 1 + ARRIVAL_DATE.len();
    let head = after_envid.get(..len)?;
    (head.ends_with(ARRIVAL_DATE) && line[..end].last() == Some(&b'\r') && len <= MAX_HEAD)
        .then_some(len)
}

/// The number of the shared head `after_envid` begins with, and the head's length, when it
/// begins with the usual head (see [`head_len`]) and this process shares it or still has room
/// to. `after_envid` is a framed answer's body after its envid.
pub fn find(after_envid: &[u8]) -> Option<(u8, usize)> {
    let len = head_len(after_envid)?;
    Some((HEADS.intern(&after_envid[..len])?, len))
}

/// The shared head numbered `n` by [`find`] (empty for a number it never gave).
pub fn get(n: u8) -> &'static [u8] {
    HEADS.get(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_up_to_the_arrival_date_is_found_and_shared() {
        let body = b"\r\nReporting-MTA: dns; shared-head-a.test\r\nArrival-Date: Thu, 3 Dec 2026 14:45:54 +0000\r\n\r\nFinal-Recipient: rfc822; a@b\r\n";
        let (n, len) = find(body).expect("a head");
        assert_eq!(
            get(n),
            b"\r\nReporting-MTA: dns; shared-head-a.test\r\nArrival-Date: "
        );
        assert_eq!(&body[..len], get(n));
        // The same head again: the same slot, whatever follows.
        let other = b"\r\nReporting-MTA: dns; shared-head-a.test\r\nArrival-Date: Fri";
        assert_eq!(find(other), Some((n, len)));
        // Another hub's name: another slot.
        let b = find(b"\r\nReporting-MTA: dns; shared-head-b.test\r\nArrival-Date: x").unwrap();
        assert_ne!(b.0, n);
    }

    #[test]
    fn a_body_without_the_usual_head_shares_nothing() {
        for body in [
            &b""[..],
            b"\r\nReporting-MTA: dns; h",
            b"\r\nReporting-MTA: dns; h\r\n",
            b"\r\nReporting-MTA: dns; h\nArrival-Date: x",
            b"\r\nReporting-MTA: dns; h\r\nArrival-Dat",
            b"\r\nArrival-Date: x\r\n",
            b"Reporting-MTA: dns; h\r\nArrival-Date: x",
        ] {
            assert_eq!(find(body), None, "{:?}", String::from_utf8_lossy(body));
        }
        assert_eq!(get(SLOTS as u8), b"");
    }

    #[test]
    fn a_full_table_shares_no_new_head_and_keeps_the_ones_it_has() {
        let heads = Heads::<2>::new();
        assert_eq!(heads.intern(b"a"), Some(0));
        assert_eq!(heads.intern(b"b"), Some(1));
        assert_eq!(heads.intern(b"c"), None);
        assert_eq!(heads.intern(b"a"), Some(0));
        assert_eq!(
            (heads.get(0), heads.get(1), heads.get(2)),
            (&b"a"[..], &b"b"[..], &b""[..])
        );
    }
}
