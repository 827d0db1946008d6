//! Lines that reach ingest from a stream rather than from a file: the syslog receiver and the
//! systemd journal. Each stream source runs on its own thread and hands the ingest thread
//! [`Batch`]es of whole syslog lines over a bounded channel; a full channel stops the source
//! from reading, which is how backpressure reaches a TCP sender.
//!
//! A line in a batch is what [`super::syslog::parse_prefix`] reads: RFC 5424 with its `<PRI>`,
//! or an RFC 3164 / RFC 3339 line with its `<PRI>` removed. Which MTA's parser reads it is
//! chosen by its program tag, on the ingest thread.

/// Most octets of lines one batch carries (a source sends a batch when it is this full or has
/// nothing more to read).
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Batches a stream source may have in flight: with [`MAX_BATCH_BYTES`], bounds the memory
/// between a source and the ingest thread at 4 MiB.
pub const CHANNEL_BATCHES: usize = 16;

/// Whole syslog lines, in the order the source received them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The lines, one after another, without line ends.
    pub bytes: Vec<u8>,
    /// Where each line ends in `bytes` (the first starts at 0, each next one at the end before).
    pub ends: Vec<u32>,
    /// For the journal: the cursor of the last entry in this batch, to resume after it once the
    /// batch is applied and saved in the state directory. None for the syslog receiver.
    pub cursor: Option<Box<str>>,
}

impl Batch {
    /// Appends one line. The caller keeps `bytes` within [`MAX_BATCH_BYTES`] plus one line.
    pub fn push(&mut self, line: &[u8]) {
        self.bytes.extend_from_slice(line);
        // Bounded by MAX_BATCH_BYTES plus one line of at most 64 KiB: far below u32::MAX.
        self.ends.push(self.bytes.len() as u32);
    }

    /// The lines, in order.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| &self.bytes[start as usize..end as usize])
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// True once the batch should be sent.
    pub fn is_full(&self) -> bool {
        self.bytes.len() >= MAX_BATCH_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_back_as_pushed() {
        let mut b = Batch::default();
        assert!(b.is_empty());
        for line in [
            &b"Dec  3 08:00:00 hub postfix/qmgr[1]: A: removed"[..],
            b"",
            b"x",
        ] {
            b.push(line);
        }
        let lines: Vec<_> = b.lines().collect();
        assert_eq!(
            lines,
            [
                &b"Dec  3 08:00:00 hub postfix/qmgr[1]: A: removed"[..],
                b"",
                b"x"
            ]
        );
        assert!(!b.is_full());
    }
}
