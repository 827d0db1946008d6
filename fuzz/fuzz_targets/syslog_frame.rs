//! The syslog receiver's RFC 6587 framer and message-to-line step, fed a TCP stream of any
//! octets cut into reads at places the fuzzer chooses: it must never panic, never hold more
//! than one message, and frame the same whatever the cuts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtqpd::ingest::receiver::frame::{Framer, Piece, MAX_MESSAGE};
use mtqpd::ingest::receiver::message::line_of;

/// What framing `stream`, cut after each of `cuts` octets, hands out (lines as the ingest
/// thread would get them, None for a skipped message) and whether it ended in an error.
fn frame(stream: &[u8], cuts: &[u8]) -> (Vec<Option<Vec<u8>>>, bool) {
    let mut framer = Framer::default();
    let mut got = Vec::new();
    let mut out = |piece: Piece<'_>| {
        got.push(match piece {
            Piece::Message(m) => {
                assert!(m.len() <= MAX_MESSAGE);
                line_of(m).map(<[u8]>::to_vec)
            }
            Piece::TooLong => None,
        })
    };
    let mut rest = stream;
    for &cut in cuts {
        let (now, later) = rest.split_at(usize::from(cut).min(rest.len()));
        if framer.feed(now, &mut out).is_err() {
            return (got, true);
        }
        assert!(framer.held() <= MAX_MESSAGE);
        rest = later;
    }
    if framer.feed(rest, &mut out).is_err() {
        return (got, true);
    }
    framer.finish(&mut out);
    (got, false)
}

fuzz_target!(|data: &[u8]| {
    // The first octets choose the cuts; the rest is the stream.
    let (cuts, stream) = data.split_at(data.len().min(4));
    assert_eq!(frame(stream, cuts), frame(stream, &[]));
});
