//! The MTA's replies: where one ends, its code, and the queue id in the reply to a message's
//! data. The gate sends the MTA one command at a time, so every reply is the answer to the
//! command just sent, and octets beyond it are a desynchronised MTA (or something that is not
//! an MTA), which ends the session.

/// Longest reply the gate takes from the MTA (an EHLO reply is a few hundred octets).
pub const MAX_REPLY: usize = 16 * 1024;

/// Why the MTA's output cannot be a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadReply {
    /// A line that does not start with three digits and a space, a hyphen or its end.
    Malformed,
    /// A continuation line with another code than the first.
    MixedCodes,
    /// Longer than [`MAX_REPLY`].
    TooLong,
}

/// The length of the complete reply at the start of `buf` (with its last line end), None while
/// it is not complete.
pub fn complete(buf: &[u8]) -> Result<Option<usize>, BadReply> {
    let mut at = 0;
    let mut code: Option<&[u8]> = None;
    while let Some(nl) = memchr::memchr(b'\n', &buf[at..]) {
        let line = &buf[at..at + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let this = line.get(..3).filter(|c| c.iter().all(u8::is_ascii_digit));
        let Some(this) = this else {
            return Err(BadReply::Malformed);
        };
        if code.is_some_and(|c| c != this) {
            return Err(BadReply::MixedCodes);
        }
        code = Some(this);
        at += nl + 1;
        match line.get(3) {
            None | Some(b' ') => return Ok(Some(at)),
            Some(b'-') => {}
            Some(_) => return Err(BadReply::Malformed),
        }
    }
    if buf.len() > MAX_REPLY {
        return Err(BadReply::TooLong);
    }
    if buf.len() >= 3 && !buf[..3].iter().all(u8::is_ascii_digit) {
        return Err(BadReply::Malformed);
    }
    Ok(None)
}

/// The code's first digit of a complete reply (`b'2'` for 250).
pub fn class(reply: &[u8]) -> u8 {
    reply.first().copied().unwrap_or(b'5')
}

/// The text of the last line of a complete reply: after the code and its separator, and after
/// an RFC 3463 enhanced status code when one follows.
pub fn last_text(reply: &[u8]) -> &[u8] {
    let body = reply.strip_suffix(b"\n").unwrap_or(reply);
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    let line = match memchr::memrchr(b'\n', body) {
        Some(nl) => &body[nl + 1..],
        None => body,
    };
    let text = line.get(4..).unwrap_or(b"");
    let status_end = text.iter().position(|&c| c == b' ').unwrap_or(text.len());
    let status = &text[..status_end];
    let is_status = status.split(|&c| c == b'.').count() == 3
        && status
            .split(|&c| c == b'.')
            .all(|p| !p.is_empty() && p.len() <= 3 && p.iter().all(u8::is_ascii_digit));
    if is_status {
        &text[(status_end + 1).min(text.len())..]
    } else {
        text
    }
}

/// Longest queue id read from a reply.
const MAX_QUEUE_ID: usize = 64;

/// Where the queue id is in an MTA's reply to a message's data: `TEXT{id}TEXT`, matched at the
/// start of the reply's text (after the code and enhanced status), the literals without regard
/// to case. The id is a run of letters, digits and `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueIdPattern {
    before: Box<[u8]>,
    after: Box<[u8]>,
}

impl QueueIdPattern {
    /// Postfix `250 2.0.0 Ok: queued as 4ZxY1k2Hq3z6`, Exim `250 OK id=1uAbCd-000ABC-12`,
    /// sendmail `250 2.0.0 5B3AbC012345 Message accepted for delivery`.
    pub const BUILT_IN: [&'static str; 3] = [
        "Ok: queued as {id}",
        "OK id={id}",
        "{id} Message accepted for delivery",
    ];

    /// The built-in patterns.
    pub fn built_in() -> Vec<QueueIdPattern> {
        Self::BUILT_IN
            .iter()
            .map(|p| p.parse().expect("built-in patterns parse"))
            .collect()
    }

    /// The queue id this pattern finds in `text` (see [`last_text`]).
    pub fn find<'a>(&self, text: &'a [u8]) -> Option<&'a [u8]> {
        let before = text.get(..self.before.len())?;
        if !before.eq_ignore_ascii_case(&self.before) {
            return None;
        }
        let rest = &text[self.before.len()..];
        let len = rest
            .iter()
            .take_while(|&&c| c.is_ascii_alphanumeric() || c == b'-')
            .count();
        let after = &rest[len..];
        let fits = after
            .get(..self.after.len())
            .is_some_and(|a| a.eq_ignore_ascii_case(&self.after));
        (len > 0 && len <= MAX_QUEUE_ID && fits).then(|| &rest[..len])
    }
}

impl std::str::FromStr for QueueIdPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (before, after) = s
            .split_once("{id}")
            .filter(|(_, after)| !after.contains("{id}"))
            .ok_or_else(|| format!("'{s}' must hold {{id}} exactly once"))?;
        if !s.is_ascii() || s.bytes().any(|c| c.is_ascii_control()) {
            return Err(format!("'{s}' must be printable ASCII"));
        }
        Ok(QueueIdPattern {
            before: before.as_bytes().into(),
            after: after.as_bytes().into(),
        })
    }
}

/// The queue id in the reply to a message's data, by the first pattern that finds one.
pub fn queue_id<'a>(reply: &'a [u8], patterns: &[QueueIdPattern]) -> Option<&'a [u8]> {
    let text = last_text(reply);
    patterns.iter().find_map(|p| p.find(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_ends_at_its_last_line() {
        assert_eq!(complete(b"250 ok\r\n"), Ok(Some(8)));
        assert_eq!(complete(b"250-a\r\n250-b\r\n250 c\r\nX"), Ok(Some(21)));
        assert_eq!(complete(b"250\r\n"), Ok(Some(5)));
        assert_eq!(complete(b"250 ok\n"), Ok(Some(7)));
        assert_eq!(complete(b"250-a\r\n250 b"), Ok(None));
        assert_eq!(complete(b"25"), Ok(None));
        assert_eq!(complete(b""), Ok(None));
    }

    #[test]
    fn what_is_not_a_reply_is_refused() {
        assert_eq!(complete(b"250-a\r\n354 b\r\n"), Err(BadReply::MixedCodes));
        assert_eq!(complete(b"hello\r\n"), Err(BadReply::Malformed));
        assert_eq!(complete(b"abc"), Err(BadReply::Malformed));
        assert_eq!(complete(b"250x\r\n"), Err(BadReply::Malformed));
        let long = vec![b'2'; MAX_REPLY + 1];
        assert_eq!(complete(&long), Err(BadReply::TooLong));
    }

    #[test]
    fn every_mta_s_queue_id_is_found() {
        let p = QueueIdPattern::built_in();
        let id = |r: &'static [u8]| queue_id(r, &p);
        assert_eq!(
            id(b"250 2.0.0 Ok: queued as 4ZxY1k2Hq3z6\r\n"),
            Some(&b"4ZxY1k2Hq3z6"[..])
        );
        assert_eq!(
            id(b"250 OK id=1uAbCd-000ABC-12\r\n"),
            Some(&b"1uAbCd-000ABC-12"[..])
        );
        assert_eq!(
            id(b"250 2.0.0 5B3AbC012345 Message accepted for delivery\r\n"),
            Some(&b"5B3AbC012345"[..])
        );
        assert_eq!(
            id(b"250-first\r\n250 Ok: queued as ABC\r\n"),
            Some(&b"ABC"[..])
        );
        assert_eq!(id(b"250 2.0.0 Ok\r\n"), None);
        assert_eq!(id(b"250 2.0.0 Ok: queued as \r\n"), None);
        assert_eq!(id(b"250 Message accepted for delivery\r\n"), None);
    }

    #[test]
    fn a_configured_pattern() {
        let p: QueueIdPattern = "Queued! [{id}]".parse().unwrap();
        assert_eq!(
            queue_id(b"250 2.6.0 queued! [AB-12]\r\n", &[p]),
            Some(&b"AB-12"[..])
        );
        assert!("no id".parse::<QueueIdPattern>().is_err());
        assert!("{id}{id}".parse::<QueueIdPattern>().is_err());
    }
}
