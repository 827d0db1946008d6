//! RFC 6587 framing of syslog over a byte stream (TCP, TLS): octet counting (`LEN SP MSG`) and
//! non-transparent framing (`MSG LF`), decided per frame by its first octet as rsyslog and
//! syslog-ng send them: a digit starts a length, `<` (a PRI) starts an LF-terminated message.
//!
//! The framer is incremental: it is fed whatever each read returned, and a message split
//! across reads is completed later. Memory is bounded: a message contained in one read is
//! handed out in place, only a message cut by the end of a read is copied, and a message
//! longer than [`MAX_MESSAGE`] is skipped as it streams past, never held whole.

use memchr::memchr;

/// The longest message handed on: an octet-counted frame's LEN, or the octets before the LF
/// of a non-transparent one. Longer ones are skipped and counted. rsyslog's default maximum
/// is 8 KiB and syslog-ng's 64 KiB; MTA lines are far shorter.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Octets of LEN: RFC 6587 allows any number, but nine digits already exceed any message
/// we take, so more is garbage rather than a length.
const MAX_LEN_DIGITS: u8 = 9;

/// A partial message's buffer grows as needed; past this capacity it is freed once handed
/// on, so that one long message does not keep a connection's memory high.
const KEEP_CAPACITY: usize = 16 * 1024;

/// What the framer hands out.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// One whole message, its framing removed (an LF-framed message's CR, if any, is kept:
    /// it is part of what [`super::message::line_of`] trims).
    Message(&'a [u8]),
    /// A message longer than [`MAX_MESSAGE`] began; it is being skipped.
    TooLong,
}

/// Where the stream stopped making sense: the connection cannot be resynchronised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// An octet that cannot start a frame (neither a digit 1-9 nor `<`).
    BadStart(u8),
    /// A LEN with more than nine digits, or a digit-run not ended by SP.
    BadLength,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::BadStart(b) => write!(f, "octet 0x{b:02x} where a frame must start"),
            FrameError::BadLength => write!(f, "a frame length that is not 1 to 9 digits and SP"),
        }
    }
}

/// Where the framer is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames.
    Start,
    /// Inside LEN: its value so far and how many digits it had.
    Length { value: u32, digits: u8 },
    /// Inside an octet-counted message, `remaining` octets to go.
    Counted { remaining: usize },
    /// Inside an octet-counted message too long to keep.
    SkipCounted { remaining: usize },
    /// Inside an LF-framed message.
    Line,
    /// Inside an LF-framed message too long to keep.
    SkipLine,
}

/// The framing state of one connection.
#[derive(Debug)]
pub struct Framer {
    state: State,
    /// The beginning of a message cut by the end of a read; at most [`MAX_MESSAGE`] octets.
    partial: Vec<u8>,
}

impl Default for Framer {
    fn default() -> Framer {
        Framer {
            state: State::Start,
            partial: Vec::new(),
        }
    }
}

impl Framer {
    /// Frames `data`, the next octets of the stream, handing each message (or the start of
    /// each over-long one) to `out` in order. After an error the connection must be closed:
    /// what follows cannot be framed.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        out: &mut impl FnMut(Piece<'_>),
    ) -> Result<(), FrameError> {
        while let Some(&first) = data.first() {
            match self.state {
                State::Start => match first {
                    b'1'..=b'9' => {
                        self.state = State::Length {
                            value: u32::from(first - b'0'),
                            digits: 1,
                        };
                        data = &data[1..];
                    }
                    // Not consumed: the PRI is the message's first octet.
                    b'<' => self.state = State::Line,
                    // An empty line between frames (some senders end octet-counted frames
                    // with a line end too): nothing to hand on.
                    b'\n' | b'\r' => data = &data[1..],
                    _ => return Err(FrameError::BadStart(first)),
                },
                State::Length { value, digits } => {
                    data = &data[1..];
                    match first {
                        b'0'..=b'9' if digits < MAX_LEN_DIGITS => {
                            self.state = State::Length {
                                value: value * 10 + u32::from(first - b'0'),
                                digits: digits + 1,
                            };
                        }
                        b' ' => {
                            let len = value as usize;
                            self.state = if len > MAX_MESSAGE {
                                out(Piece::TooLong);
                                State::SkipCounted { remaining: len }
                            } else {
                                State::Counted { remaining: len }
                            };
                        }
                        _ => return Err(FrameError::BadLength),
                    }
                }
                State::Counted { remaining } => {
                    if self.partial.is_empty() && data.len() >= remaining {
                        out(Piece::Message(&data[..remaining]));
                        data = &data[remaining..];
                        self.state = State::Start;
                    } else {
                        let take = remaining.min(data.len());
                        self.partial.extend_from_slice(&data[..take]);
                        data = &data[take..];
                        if take == remaining {
                            self.hand_on_partial(out);
                            self.state = State::Start;
                        } else {
                            self.state = State::Counted {
                                remaining: remaining - take,
                            };
                        }
                    }
                }
                State::SkipCounted { remaining } => {
                    let take = remaining.min(data.len());
                    data = &data[take..];
                    self.state = if take == remaining {
                        State::Start
                    } else {
                        State::SkipCounted {
                            remaining: remaining - take,
                        }
                    };
                }
                State::Line => match memchr(b'\n', data) {
                    Some(end) if self.partial.len() + end > MAX_MESSAGE => {
                        out(Piece::TooLong);
                        self.drop_partial();
                        data = &data[end + 1..];
                        self.state = State::Start;
                    }
                    Some(end) if self.partial.is_empty() => {
                        out(Piece::Message(&data[..end]));
                        data = &data[end + 1..];
                        self.state = State::Start;
                    }
                    Some(end) => {
                        self.partial.extend_from_slice(&data[..end]);
                        self.hand_on_partial(out);
                        data = &data[end + 1..];
                        self.state = State::Start;
                    }
                    None if self.partial.len() + data.len() > MAX_MESSAGE => {
                        out(Piece::TooLong);
                        self.drop_partial();
                        data = &[];
                        self.state = State::SkipLine;
                    }
                    None => {
                        self.partial.extend_from_slice(data);
                        data = &[];
                    }
                },
                State::SkipLine => match memchr(b'\n', data) {
                    Some(end) => {
                        data = &data[end + 1..];
                        self.state = State::Start;
                    }
                    None => data = &[],
                },
            }
        }
        Ok(())
    }

    /// The stream ended (the sender closed it). An LF-framed message the sender did not end
    /// with LF is complete all the same and handed on. Returns true when a frame was cut
    /// short (an octet-counted message, or its LEN, incomplete).
    pub fn finish(&mut self, out: &mut impl FnMut(Piece<'_>)) -> bool {
        let state = std::mem::replace(&mut self.state, State::Start);
        match state {
            State::Line if !self.partial.is_empty() => {
                self.hand_on_partial(out);
                false
            }
            State::Length { .. } | State::Counted { .. } | State::SkipCounted { .. } => {
                self.drop_partial();
                true
            }
            State::Start | State::Line | State::SkipLine => false,
        }
    }

    /// Octets held for a message not yet complete.
    pub fn held(&self) -> usize {
        self.partial.len()
    }

    fn hand_on_partial(&mut self, out: &mut impl FnMut(Piece<'_>)) {
        out(Piece::Message(&self.partial));
        self.drop_partial();
    }

    fn drop_partial(&mut self) {
        if self.partial.capacity() > KEEP_CAPACITY {
            self.partial = Vec::new();
        } else {
            self.partial.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What framing `stream` cut at each of `cuts` gives: the messages (`None` for a skipped
    /// one) and the error, if any.
    fn frame(stream: &[u8], cuts: &[usize]) -> (Vec<Option<Vec<u8>>>, Option<FrameError>) {
        let mut framer = Framer::default();
        let mut got = Vec::new();
        let mut out = |p: Piece<'_>| {
            got.push(match p {
                Piece::Message(m) => Some(m.to_vec()),
                Piece::TooLong => None,
            })
        };
        let mut start = 0;
        for &cut in cuts.iter().chain([&stream.len()]) {
            if let Err(e) = framer.feed(&stream[start..cut], &mut out) {
                return (got, Some(e));
            }
            assert!(framer.held() <= MAX_MESSAGE);
            start = cut;
        }
        framer.finish(&mut out);
        (got, None)
    }

    fn msgs(list: &[&[u8]]) -> Vec<Option<Vec<u8>>> {
        list.iter().map(|m| Some(m.to_vec())).collect()
    }

    #[test]
    fn both_framings_split_at_every_boundary() {
        // rsyslog's octet counting (with and without its trailing LF), then LF framing with
        // and without CR, then octet counting again: the framing is decided per frame.
        let a = b"<13>Dec  3 08:00:00 h p: a";
        let b = b"<13>Dec  3 08:00:00 h p: bb\n\n";
        let mut stream = format!("{} ", a.len()).into_bytes();
        stream.extend_from_slice(a);
        stream.extend_from_slice(format!("{} ", b.len()).as_bytes());
        stream.extend_from_slice(b);
        stream.extend_from_slice(
            b"\n<13>Dec  3 08:00:00 h p: c\n<13>Dec  3 08:00:00 h p: d\r\n3 <1>",
        );
        let stream = &stream[..];
        let want = msgs(&[
            b"<13>Dec  3 08:00:00 h p: a",
            b"<13>Dec  3 08:00:00 h p: bb\n\n",
            b"<13>Dec  3 08:00:00 h p: c",
            b"<13>Dec  3 08:00:00 h p: d\r",
            b"<1>",
        ]);
        assert_eq!(frame(stream, &[]), (want.clone(), None));
        for i in 0..=stream.len() {
            assert_eq!(frame(stream, &[i]), (want.clone(), None), "cut at {i}");
        }
        // Every octet its own read.
        let every: Vec<usize> = (1..stream.len()).collect();
        assert_eq!(frame(stream, &every), (want, None));
    }

    #[test]
    fn octet_counting_carries_line_feeds_inside() {
        let (got, err) = frame(b"7 <1>a\nb\n5 <1>cd", &[]);
        assert_eq!((got, err), (msgs(&[b"<1>a\nb\n", b"<1>cd"]), None));
    }

    #[test]
    fn over_long_messages_are_skipped_and_the_next_is_read() {
        let big = vec![b'x'; MAX_MESSAGE + 1];
        let mut counted = format!("{} ", big.len()).into_bytes();
        counted.extend_from_slice(&big);
        counted.extend_from_slice(b"4 <1>a");
        let mut lf = b"<1>".to_vec();
        lf.extend_from_slice(&big);
        lf.extend_from_slice(b"\n<1>b\n");
        for stream in [&counted, &lf] {
            for cuts in [
                vec![],
                vec![100],
                vec![MAX_MESSAGE],
                (1..16).map(|i| i * 4000).collect(),
            ] {
                let (got, err) = frame(stream, &cuts);
                assert_eq!(err, None);
                assert_eq!(got.len(), 2, "{cuts:?}");
                assert_eq!(got[0], None);
                assert!(matches!(&got[1], Some(m) if m.starts_with(b"<1>")));
            }
        }
        // Exactly MAX_MESSAGE is kept, either way.
        let mut exact = format!("{MAX_MESSAGE} ").into_bytes();
        exact.extend_from_slice(&vec![b'y'; MAX_MESSAGE]);
        let (got, _) = frame(&exact, &[10]);
        assert_eq!(got[0].as_ref().map(Vec::len), Some(MAX_MESSAGE));
        let mut exact = vec![b'<'];
        exact.extend_from_slice(&vec![b'y'; MAX_MESSAGE - 1]);
        exact.push(b'\n');
        let (got, _) = frame(&exact, &[10]);
        assert_eq!(got[0].as_ref().map(Vec::len), Some(MAX_MESSAGE));
    }

    #[test]
    fn garbage_where_a_frame_starts_is_an_error() {
        for (stream, err) in [
            (&b"hello\n"[..], FrameError::BadStart(b'h')),
            (b"<1>ok\n05 <1>a", FrameError::BadStart(b'0')),
            (b"1234567890 <1>", FrameError::BadLength),
            (b"12x", FrameError::BadLength),
            (b"12\n", FrameError::BadLength),
            (b"\x16\x03\x01", FrameError::BadStart(0x16)),
        ] {
            let (_, got) = frame(stream, &[]);
            assert_eq!(got, Some(err), "{}", String::from_utf8_lossy(stream));
        }
        // Nine digits are a length (skipped as too long), not an error.
        let mut f = Framer::default();
        let mut n = 0;
        f.feed(b"999999999 <1>", &mut |_| n += 1).unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn the_end_of_the_stream() {
        let mut f = Framer::default();
        let mut got = Vec::new();
        f.feed(b"<1>no line end", &mut |p| got.push(format!("{p:?}")))
            .unwrap();
        assert!(!f.finish(&mut |p| got.push(format!("{p:?}"))));
        assert_eq!(got.len(), 1);
        for cut in [&b"12"[..], b"12 <1>"] {
            let mut f = Framer::default();
            f.feed(cut, &mut |_| panic!("nothing complete")).unwrap();
            assert!(f.finish(&mut |_| panic!("nothing complete")));
        }
    }

    #[test]
    fn random_streams_never_panic_or_hold_more_than_a_message() {
        let mut rng = fastrand::Rng::with_seed(6587);
        let alphabet = b"0123456789 <>\n\rax";
        for _ in 0..2_000 {
            let len = rng.usize(..400);
            let stream: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect();
            let cuts: Vec<usize> = {
                let mut c: Vec<usize> = (0..rng.usize(..5)).map(|_| rng.usize(..=len)).collect();
                c.sort_unstable();
                c
            };
            let whole = frame(&stream, &[]);
            let cut = frame(&stream, &cuts);
            assert_eq!(
                whole,
                cut,
                "{:?} cut at {cuts:?}",
                String::from_utf8_lossy(&stream)
            );
        }
    }
}
