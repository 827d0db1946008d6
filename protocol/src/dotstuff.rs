//! Dot-stuffing of multi-line responses (RFC 3887 section 2.3): a line that begins with `.` is
//! sent with a second `.` in front, and `.CRLF` ends the response.

/// The line that ends a multi-line response.
pub const TERMINATOR: &[u8] = b".\r\n";

/// Appends `body` to `out` as the data lines of a multi-line response: every line ends in CRLF
/// (a bare LF in `body` becomes CRLF, a stray CR is dropped), every line that begins with `.` is
/// dot-stuffed, and the terminating `.CRLF` follows. A last line without LF is completed.
pub fn stuff_append(body: &[u8], out: &mut Vec<u8>) {
    for line in body.split_inclusive(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend(line.iter().copied().filter(|&c| c != b'\r'));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(TERMINATOR);
}

/// Outcome of feeding one received line to [`unstuff_line`].
#[derive(Debug, PartialEq, Eq)]
pub enum Unstuffed<'a> {
    /// A data line, with the stuffing dot removed and without its line end.
    Data(&'a [u8]),
    /// The `.` line: the response is complete.
    End,
}

/// Undoes dot-stuffing, one received line (without CRLF) at a time.
pub fn unstuff_line(line: &[u8]) -> Unstuffed<'_> {
    match line {
        b"." => Unstuffed::End,
        [b'.', rest @ ..] => Unstuffed::Data(rest),
        _ => Unstuffed::Data(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuff(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        stuff_append(body, &mut out);
        out
    }

    #[test]
    fn lines_beginning_with_a_dot_get_a_second_dot() {
        assert_eq!(
            stuff(b"a\r\n.b\r\n..c\r\n.\r\n"),
            b"a\r\n..b\r\n...c\r\n..\r\n.\r\n"
        );
    }

    #[test]
    fn bare_lf_and_missing_final_newline_become_crlf() {
        assert_eq!(stuff(b"a\nb"), b"a\r\nb\r\n.\r\n");
        assert_eq!(stuff(b""), b".\r\n");
    }

    #[test]
    fn stray_cr_cannot_end_a_line_early() {
        assert_eq!(stuff(b"a\rb\r\n"), b"ab\r\n.\r\n");
    }

    #[test]
    fn unstuffing_inverts_stuffing() {
        let body = b"x\r\n.y\r\n..z\r\n\r\n.\r\n";
        let wire = stuff(body);
        let mut lines = Vec::new();
        for line in wire.split(|&c| c == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            match unstuff_line(line) {
                Unstuffed::Data(d) => lines.push(d.to_vec()),
                Unstuffed::End => break,
            }
        }
        assert_eq!(
            lines,
            vec![
                b"x".to_vec(),
                b".y".to_vec(),
                b"..z".to_vec(),
                b"".to_vec(),
                b".".to_vec()
            ]
        );
    }
}
