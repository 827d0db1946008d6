//! Message data between `354` and the end of data, streamed to the MTA without buffering the
//! message, so that the gate and the MTA always agree on where it ends (the 2023 "SMTP
//! smuggling" class: a sender hides a second message after an end of data that one server sees
//! and the other does not).
//!
//! The rule: only `CRLF . CRLF` ends the data at the gate, and the MTA never gets octets it could
//! take for an end the gate did not see. Bare LF and bare CR are normalised, not refused: each
//! ends a line, forwarded as CRLF (what Postfix's `smtpd_forbid_bare_newline = normalize` does);
//! and a line that is a lone `.` but was not framed by a CRLF on both sides is forwarded
//! dot-stuffed (`..`), so the MTA reads it as a line holding `.` and not as the end. The MTA
//! thus sees only CRLF line ends, and a lone `.` only where the gate saw the end itself.

/// Counts of what the normaliser changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Normalised {
    /// Bare LF or bare CR line ends, forwarded as CRLF.
    pub bare_line_ends: u64,
    /// Lone `.` lines without CRLF on both sides, forwarded as `..`.
    pub dots_stuffed: u64,
}

/// The state of one message's data between reads.
#[derive(Debug, Clone)]
pub struct DataScanner {
    /// At the start of a line (nothing of it forwarded or held yet).
    line_start: bool,
    /// The previous line ended with a real CRLF (true at the start of the data).
    after_crlf: bool,
    /// The line so far is a `.` not yet forwarded (it may be the end, or need stuffing).
    held_dot: bool,
    /// A CR was read; the next octet says whether it was half of a CRLF.
    held_cr: bool,
    pub normalised: Normalised,
}

impl Default for DataScanner {
    fn default() -> Self {
        DataScanner {
            line_start: true,
            after_crlf: true,
            held_dot: false,
            held_cr: false,
            normalised: Normalised::default(),
        }
    }
}

/// How far a call to [`DataScanner::feed`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    /// All the input was message data.
    More,
    /// The end of data was the octet before this offset; what follows is commands.
    End(usize),
}

impl DataScanner {
    /// Forwards `input` into `out` (normalised), up to and including the end of data.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Fed {
        let mut i = 0;
        while i < input.len() {
            if self.held_cr {
                self.held_cr = false;
                if input[i] == b'\n' {
                    i += 1;
                    if self.end_line(true, out) {
                        return Fed::End(i);
                    }
                    continue;
                }
                // The CR was bare; the octet at `i` is read afresh below.
                if self.end_line(false, out) {
                    return Fed::End(i);
                }
            }
            // A run of ordinary octets goes out in one piece.
            let run_end = memchr::memchr2(b'\r', b'\n', &input[i..]).map_or(input.len(), |p| i + p);
            if run_end > i {
                let mut run = &input[i..run_end];
                if self.line_start && run[0] == b'.' && !self.held_dot {
                    self.held_dot = true;
                    self.line_start = false;
                    run = &run[1..];
                }
                if !run.is_empty() {
                    if std::mem::take(&mut self.held_dot) {
                        out.push(b'.');
                    }
                    self.line_start = false;
                    out.extend_from_slice(run);
                }
                i = run_end;
                continue;
            }
            match input[i] {
                b'\r' => self.held_cr = true,
                _ => {
                    if self.end_line(false, out) {
                        return Fed::End(i + 1);
                    }
                }
            }
            i += 1;
        }
        Fed::More
    }

    /// Ends the current line, `crlf` telling whether with a real CRLF. True at the end of data
    /// (the lone `.` between two CRLFs, forwarded as `.` CRLF).
    fn end_line(&mut self, crlf: bool, out: &mut Vec<u8>) -> bool {
        if !crlf {
            self.normalised.bare_line_ends += 1;
        }
        if std::mem::take(&mut self.held_dot) {
            if crlf && self.after_crlf {
                out.extend_from_slice(b".\r\n");
                return true;
            }
            self.normalised.dots_stuffed += 1;
            out.extend_from_slice(b"..");
        }
        out.extend_from_slice(b"\r\n");
        self.after_crlf = crlf;
        self.line_start = true;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` octets; returns what was forwarded, where the end was
    /// found (offset into the whole input) and the counts.
    fn run(input: &[u8], step: usize) -> (Vec<u8>, Option<usize>, Normalised) {
        let mut s = DataScanner::default();
        let mut out = Vec::new();
        let mut at = 0;
        for piece in input.chunks(step) {
            if let Fed::End(n) = s.feed(piece, &mut out) {
                return (out, Some(at + n), s.normalised);
            }
            at += piece.len();
        }
        (out, None, s.normalised)
    }

    fn every_split(input: &[u8]) -> (Vec<u8>, Option<usize>, Normalised) {
        let whole = run(input, input.len().max(1));
        for step in 1..input.len().max(1) {
            assert_eq!(run(input, step), whole, "split every {step}");
        }
        whole
    }

    #[test]
    fn crlf_dot_crlf_ends_and_what_follows_is_left() {
        let input = b"Subject: x\r\n\r\nbody\r\n..dotted\r\n.\r\nQUIT\r\n";
        let (out, end, n) = every_split(input);
        assert_eq!(out, &input[..input.len() - 6]);
        assert_eq!(end, Some(input.len() - 6));
        assert_eq!(n, Normalised::default());
    }

    #[test]
    fn an_empty_message_ends_at_once() {
        assert_eq!(every_split(b".\r\nQUIT\r\n").1, Some(3));
    }

    #[test]
    fn bare_lf_and_cr_become_crlf() {
        let (out, end, n) = every_split(b"a\nb\rc\r\n.\r\n");
        assert_eq!(out, b"a\r\nb\r\nc\r\n.\r\n");
        assert_eq!(end, Some(10));
        assert_eq!(n.bare_line_ends, 2);
    }

    #[test]
    fn smuggled_ends_are_stuffed_not_ended() {
        // Each of these hides a lone dot behind a bare line end: the MTA must not end there.
        for (input, forwarded) in [
            (
                &b"x\n.\nMAIL FROM:<evil>\r\n"[..],
                &b"x\r\n..\r\nMAIL FROM:<evil>\r\n"[..],
            ),
            (b"x\r\n.\nMAIL\r\n", b"x\r\n..\r\nMAIL\r\n"),
            (b"x\n.\r\nMAIL\r\n", b"x\r\n..\r\nMAIL\r\n"),
            (b"x\r.\rMAIL\r\n", b"x\r\n..\r\nMAIL\r\n"),
            (b"x\r\n.\rMAIL\r\n", b"x\r\n..\r\nMAIL\r\n"),
        ] {
            let (out, end, n) = every_split(input);
            assert_eq!(out, forwarded, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(end, None);
            assert_eq!(n.dots_stuffed, 1);
        }
    }

    #[test]
    fn the_forwarded_stream_has_no_bare_line_end_and_one_end() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..2000 {
            let input: Vec<u8> = (0..rng.usize(0..40))
                .map(|_| *rng.choice(b"\r\n.a").unwrap())
                .collect();
            let (out, end, _) = every_split(&input);
            for (i, &c) in out.iter().enumerate() {
                if c == b'\n' {
                    assert_eq!(out.get(i.wrapping_sub(1)), Some(&b'\r'), "{input:?}");
                }
                if c == b'\r' {
                    assert_eq!(out.get(i + 1), Some(&b'\n'), "{input:?}");
                }
            }
            // The MTA's view: a lone "." line (at the start or after CRLF) only as the last line.
            let lone_dot = out
                .split_inclusive(|&c| c == b'\n')
                .position(|l| l == b".\r\n");
            match end {
                Some(_) => {
                    assert_eq!(
                        lone_dot,
                        Some(out.split_inclusive(|&c| c == b'\n').count() - 1)
                    )
                }
                None => assert_eq!(lone_dot, None, "{input:?} -> {out:?}"),
            }
        }
    }
}
