//! Follows one log file by name, the way `tail -F` does, and hands out its
//! complete lines.
//!
//! This module owns the file side of ingestion for one path: opening the file
//! there (or waiting until one appears), reading new bytes in bounded slices,
//! cutting them into lines, and noticing when the path's file was rotated away
//! (rename, or delete and recreate) or truncated in place (copytruncate). It
//! reports where it stands ([`Position`]) so the caller can checkpoint, and can
//! start again from such a checkpoint ([`Follower::resume`]).
//!
//! What it must not do:
//! - know anything about log formats: a line is the bytes before a b'\n',
//!   nothing more (a b'\r' before it is left for the caller); parsing, time
//!   stamps and correlation across files belong to the caller;
//! - block or sleep: it never waits for data, the caller decides when to poll;
//! - hold memory in proportion to the file or to a line: one fixed read buffer
//!   and one partial-line buffer capped at `max_line`, whatever the file holds;
//! - panic on anything a file or the OS can throw at it.
//!
//! Unix only: a file's identity is (st_dev, st_ino), and reads are positional
//! (`pread`), so there is no shared file cursor to keep in step after an error
//! or a truncation.

use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Size of the per-follower read buffer, so also the largest single read.
const READ_BUF: usize = 64 * 1024;
/// How many leading bytes stand for a file's content when we check that a
/// file was not truncated and rewritten behind our back.
const HEAD_LEN: usize = 64;
/// Truncations plus rotations one poll acts on before it hands control back:
/// a path that is renamed over and over must not keep one poll spinning.
const MAX_EVENTS_PER_POLL: u32 = 4;

/// Where a follower stands in its current file, for checkpoints.
///
/// `head` covers the first `min(64, offset)` bytes rather than whatever the
/// file holds now, so that whoever checks a checkpoint knows exactly which
/// bytes to hash, and a checkpoint only vouches for bytes that were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// Device number of the file (`st_dev`).
    pub dev: u64,
    /// Inode number of the file (`st_ino`).
    pub ino: u64,
    /// Byte offset just past the last complete line handed out (or skipped
    /// as too long); a held-back partial line is not included.
    pub offset: u64,
    /// Fingerprint (64-bit FNV-1a) of the first `min(64, offset)` bytes of
    /// the file; 0 when `offset` is 0 (nothing to vouch for yet).
    pub head: u64,
}

/// What one `poll` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollStats {
    /// Complete lines handed to `on_line`.
    pub lines: u64,
    /// Bytes read from files, including bytes of skipped over-long lines.
    pub bytes: u64,
    /// Lines longer than `max_line` that were skipped (once per line).
    pub too_long: u64,
    /// Switches to a new file at the path (rename rotation, or delete and
    /// recreate), each after the old file was read to its end.
    pub rotations: u64,
    /// Restarts at offset 0 because the file was truncated in place.
    pub truncations: u64,
}

/// Follows the file at one path with `tail -F` semantics and hands out its
/// complete lines, in file order, exactly once per file generation.
///
/// Rotation: when the path names another file than the one open, the old one
/// is first read to its end, then the new one from offset 0. The switch waits
/// until the new file has data: logrotate's `create` makes the new file
/// before the writer is told to reopen, and until the writer writes to the
/// new file it may still be appending to the old one.
///
/// Truncation: a file shorter than our offset, or whose first bytes changed
/// (truncated and regrown past our offset between two polls), is read again
/// from offset 0; a held-back partial line is dropped. The head is checked
/// when new data appears after an end of file, before that data is read.
///
/// An unterminated last line in a file we switch away from is dropped: the
/// writer has moved on, so it is the torn end of a crash, not a line.
pub struct Follower {
    path: PathBuf,
    /// Reused for every read; lines that lie wholly inside it are handed out
    /// as slices of it, so there is no allocation per line.
    buf: Box<[u8]>,
    cur: Option<Current>,
    split: Splitter,
    has_more: bool,
    /// Set once any file was opened: a later open is then a rotation.
    had_file: bool,
    /// A checkpoint to apply to the first file opened, if it still matches.
    resume: Option<Position>,
}

/// The file currently being read.
struct Current {
    file: File,
    dev: u64,
    ino: u64,
    /// Next byte to read.
    read_at: u64,
    /// Just past the last line end consumed: what a checkpoint may claim.
    line_start: u64,
    /// The first `min(64, read_at)` bytes of the file, as read.
    head: [u8; HEAD_LEN],
    /// The last read found end of file. Only after that can new bytes belong
    /// to a rewritten file, so only then is the head compared again.
    at_eof: bool,
}

/// Cuts a byte stream into lines, holding back at most `max_line` bytes of
/// an unfinished line.
struct Splitter {
    max_line: usize,
    partial: Vec<u8>,
    /// The current line already proved too long; skip to its newline.
    discarding: bool,
}

impl Follower {
    /// Starts following `path` from the beginning of the file currently there
    /// (or of the first file that appears there later). Never fails: a
    /// missing file is waited for. Lines longer than `max_line` bytes are
    /// skipped and counted.
    pub fn new(path: PathBuf, max_line: usize) -> Follower {
        Follower {
            path,
            buf: vec![0u8; READ_BUF].into_boxed_slice(),
            cur: None,
            split: Splitter {
                max_line,
                partial: Vec::new(),
                discarding: false,
            },
            has_more: false,
            had_file: false,
            resume: None,
        }
    }

    /// Like [`Follower::new`], but continues at `from.offset` if the first
    /// file opened at `path` is still the one `from` was taken in: same
    /// inode, at least `from.offset` bytes long, and the same head
    /// fingerprint. Otherwise that file is read from offset 0, which may
    /// hand out lines again but never skips any. The device number is not
    /// compared: some filesystems renumber devices across reboots. Lines
    /// written to a file rotated away while nothing was following it are
    /// not found here (this follower only knows its path).
    ///
    /// When the path now holds another file and the checkpoint's file was renamed beside it (a
    /// rotation while nothing followed), that file is finished first, from the checkpoint, and
    /// the file at the path is read from its start after it, as after any rotation.
    pub fn resume(path: PathBuf, max_line: usize, from: Position) -> Follower {
        let mut follower = Follower::new(path, max_line);
        if let Some((mut cur, size)) = follower.rotated_away(&from) {
            cur.try_resume(&from, size);
            if cur.read_at == from.offset {
                follower.cur = Some(cur);
                follower.had_file = true;
                return follower;
            }
        }
        follower.resume = Some(from);
        follower
    }

    /// The checkpoint's file when it is no longer at the path but in the same directory under
    /// another name. Only renames within the directory are found (what logrotate and `postfix
    /// logrotate` do); a file rotated twice while down, or compressed, is not.
    fn rotated_away(&self, from: &Position) -> Option<(Current, u64)> {
        if from.offset == 0 {
            return None;
        }
        if fs::metadata(&self.path).is_ok_and(|m| m.ino() == from.ino) {
            return None;
        }
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        for entry in fs::read_dir(dir).ok()?.flatten() {
            let same = entry
                .metadata()
                .is_ok_and(|m| m.is_file() && m.ino() == from.ino);
            if !same {
                continue;
            }
            let file = File::open(entry.path()).ok()?;
            let meta = file.metadata().ok()?;
            if meta.ino() == from.ino && meta.is_file() {
                return Some((Current::new(file, &meta), meta.len()));
            }
        }
        None
    }

    /// Reads everything new (bounded per call by `budget` bytes so one busy
    /// file cannot starve the others; a budget of 0 counts as 1) and calls
    /// `on_line` once per complete line, in file order, with the line's
    /// bytes without the terminating b'\n' (a preceding b'\r' is kept;
    /// callers strip it). Returns what it did. An Err is only for unexpected
    /// I/O errors (not for a missing file) and the follower stays usable
    /// after it. An error met after some work was done is not returned:
    /// the work is, with [`Follower::has_more`] set, and a persisting error
    /// comes out of the next poll.
    pub fn poll(&mut self, budget: usize, on_line: &mut dyn FnMut(&[u8])) -> io::Result<PollStats> {
        let mut stats = PollStats::default();
        self.has_more = false;
        match self.poll_inner(budget.max(1), on_line, &mut stats) {
            Ok(()) => Ok(stats),
            // Lines already handed out must be counted, or the caller's
            // bookkeeping drifts from what it was given.
            Err(_) if stats != PollStats::default() => {
                self.has_more = true;
                Ok(stats)
            }
            Err(e) => Err(e),
        }
    }

    /// True when the last poll stopped at its budget rather than at end of
    /// file (the caller polls again at once instead of sleeping).
    pub fn has_more(&self) -> bool {
        self.has_more
    }

    /// The path being followed, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Position after the last complete line handed out (None when no file
    /// is open).
    pub fn position(&self) -> Option<Position> {
        let cur = self.cur.as_ref()?;
        let n = cur.line_start.min(HEAD_LEN as u64) as usize;
        Some(Position {
            dev: cur.dev,
            ino: cur.ino,
            offset: cur.line_start,
            head: fingerprint(&cur.head[..n]),
        })
    }

    fn poll_inner(
        &mut self,
        budget: usize,
        on_line: &mut dyn FnMut(&[u8]),
        stats: &mut PollStats,
    ) -> io::Result<()> {
        let mut left = budget;
        let mut events = 0u32;
        loop {
            if self.cur.is_none() && !self.open_path(stats)? {
                return Ok(());
            }
            if self.truncated()? {
                self.restart_at_zero();
                stats.truncations += 1;
                events += 1;
            }
            let at_eof = match self.drain(&mut left, on_line, stats) {
                Ok(at_eof) => at_eof,
                Err(e) => {
                    self.drop_if_replaced();
                    return Err(e);
                }
            };
            if !at_eof || events >= MAX_EVENTS_PER_POLL {
                self.has_more = true;
                return Ok(());
            }
            // Only at end of file: switching earlier would lose the old
            // file's tail, which nobody else will ever read.
            let Some((new, size)) = self.rotated_file()? else {
                return Ok(());
            };
            // The new file has data, so the writer has moved on to it; what
            // it wrote to the old file before that may have landed after the
            // end of file met above. Read it now, or it is lost.
            match self.drain(&mut left, on_line, stats) {
                Ok(true) => {}
                Ok(false) => {
                    self.has_more = true;
                    return Ok(());
                }
                Err(e) => {
                    self.drop_if_replaced();
                    return Err(e);
                }
            }
            self.adopt(new, size, stats);
            events += 1;
        }
    }

    /// Reads the open file until end of file or until `left` runs out.
    /// Returns whether it stopped at end of file.
    fn drain(
        &mut self,
        left: &mut usize,
        on_line: &mut dyn FnMut(&[u8]),
        stats: &mut PollStats,
    ) -> io::Result<bool> {
        let Some(cur) = self.cur.as_mut() else {
            return Ok(true);
        };
        while *left > 0 {
            let want = (*left).min(self.buf.len());
            let n = match cur.file.read_at(&mut self.buf[..want], cur.read_at) {
                Ok(0) => {
                    cur.at_eof = true;
                    return Ok(true);
                }
                Ok(n) => n.min(want),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            cur.at_eof = false;
            let data = &self.buf[..n];
            cur.remember_head(data);
            if let Some(end) = self.split.feed(data, cur.read_at, on_line, stats) {
                cur.line_start = end;
            }
            cur.read_at += n as u64;
            *left -= n;
            stats.bytes += n as u64;
        }
        Ok(false)
    }

    /// Whether the open file was truncated since we last met its end.
    fn truncated(&self) -> io::Result<bool> {
        let Some(cur) = self.cur.as_ref() else {
            return Ok(false);
        };
        if !cur.at_eof {
            return Ok(false);
        }
        let size = cur.file.metadata()?.len();
        if size < cur.read_at {
            return Ok(true);
        }
        // Nothing new to read means nothing wrong to read either; a file
        // rewritten to exactly our size is caught once it grows further.
        if size == cur.read_at {
            return Ok(false);
        }
        // New bytes after an end of file: before reading them, make sure the
        // file did not shrink and regrow past our offset in between, in which
        // case they would be the middle of someone else's lines.
        let n = cur.head_len();
        let mut now = [0u8; HEAD_LEN];
        match cur.file.read_exact_at(&mut now[..n], 0) {
            Ok(()) => Ok(now[..n] != cur.head[..n]),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(true),
            Err(e) => Err(e),
        }
    }

    fn restart_at_zero(&mut self) {
        if let Some(cur) = self.cur.as_mut() {
            cur.read_at = 0;
            cur.line_start = 0;
            cur.at_eof = false;
        }
        self.split.reset();
    }

    /// Opens whatever regular file is at the path now; Ok(false) when there
    /// is none yet.
    fn open_path(&mut self, stats: &mut PollStats) -> io::Result<bool> {
        match self.open_at_path()? {
            Some((cur, size)) => {
                self.adopt(cur, size, stats);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Called at end of file: opens the new file at the path, if there is
    /// one and it has data. The caller switches to it after one more read of
    /// the old file.
    fn rotated_file(&self) -> io::Result<Option<(Current, u64)>> {
        let Some((dev, ino)) = self.cur.as_ref().map(|c| (c.dev, c.ino)) else {
            return Ok(None);
        };
        // A missing path is a deletion or the gap inside a rotation: the open
        // file may still be written to, so keep it.
        let meta = match fs::metadata(&self.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if (meta.dev(), meta.ino()) == (dev, ino) {
            return Ok(None);
        }
        check_regular(&meta, &self.path)?;
        // Until the writer writes to the new file it may still be writing to
        // the old one (logrotate `create` runs before `postrotate`).
        if meta.len() == 0 {
            return Ok(None);
        }
        let Some((new, size)) = self.open_at_path()? else {
            return Ok(None);
        };
        if (new.dev, new.ino) == (dev, ino) {
            return Ok(None);
        }
        Ok(Some((new, size)))
    }

    /// Opens the file at the path, with its size at open time.
    fn open_at_path(&self) -> io::Result<Option<(Current, u64)>> {
        // stat before open: opening a FIFO for reading would block until a
        // writer shows up, and a poll must never block.
        let meta = match fs::metadata(&self.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        check_regular(&meta, &self.path)?;
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        // Identity comes from the descriptor, not the earlier stat: the path
        // may have changed hands between the two calls.
        let meta = file.metadata()?;
        check_regular(&meta, &self.path)?;
        Ok(Some((Current::new(file, &meta), meta.len())))
    }

    fn adopt(&mut self, mut cur: Current, size: u64, stats: &mut PollStats) {
        if let Some(from) = self.resume.take() {
            cur.try_resume(&from, size);
        }
        // A partial line of the old file can never be completed now.
        self.split.reset();
        if self.had_file {
            stats.rotations += 1;
        }
        self.had_file = true;
        self.cur = Some(cur);
    }

    /// After a read error (EIO on a failing disk, ESTALE on NFS) the old
    /// descriptor may never read again; if the path has moved on to another
    /// file, keeping the old one would stall this follower for good, so let
    /// it go and reopen by name on the next poll.
    fn drop_if_replaced(&mut self) {
        let Some(cur) = self.cur.as_ref() else {
            return;
        };
        if let Ok(meta) = fs::metadata(&self.path) {
            if (meta.dev(), meta.ino()) != (cur.dev, cur.ino) {
                self.cur = None;
                self.split.reset();
            }
        }
    }
}

impl Current {
    fn new(file: File, meta: &Metadata) -> Current {
        Current {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            read_at: 0,
            line_start: 0,
            head: [0u8; HEAD_LEN],
            at_eof: false,
        }
    }

    fn head_len(&self) -> usize {
        self.read_at.min(HEAD_LEN as u64) as usize
    }

    /// Keeps the file's first bytes as they go by, so the truncation check
    /// costs one small pread and no extra read at open.
    fn remember_head(&mut self, data: &[u8]) {
        let start = self.head_len();
        if start < HEAD_LEN {
            let take = (HEAD_LEN - start).min(data.len());
            self.head[start..start + take].copy_from_slice(&data[..take]);
        }
    }

    fn try_resume(&mut self, from: &Position, size: u64) {
        if from.offset == 0 || from.ino != self.ino || size < from.offset {
            return;
        }
        let n = from.offset.min(HEAD_LEN as u64) as usize;
        let mut head = [0u8; HEAD_LEN];
        // Any doubt means reading from 0: duplicates can be absorbed
        // downstream, skipped lines cannot.
        if self.file.read_exact_at(&mut head[..n], 0).is_err()
            || fingerprint(&head[..n]) != from.head
        {
            return;
        }
        self.head = head;
        self.read_at = from.offset;
        self.line_start = from.offset;
    }
}

impl Splitter {
    fn reset(&mut self) {
        self.partial.clear();
        self.discarding = false;
    }

    /// Hands out every line ended inside `data`, which starts at file offset
    /// `base`. Returns the file offset just past the last b'\n' in `data`.
    fn feed(
        &mut self,
        data: &[u8],
        base: u64,
        on_line: &mut dyn FnMut(&[u8]),
        stats: &mut PollStats,
    ) -> Option<u64> {
        let mut pos = 0usize;
        let mut end = None;
        while pos < data.len() {
            let rest = &data[pos..];
            let Some(i) = memchr::memchr(b'\n', rest) else {
                if !self.discarding {
                    if self.partial.len().saturating_add(rest.len()) > self.max_line {
                        self.start_discarding(stats);
                    } else {
                        self.hold(rest, stats);
                    }
                }
                break;
            };
            let piece = &rest[..i];
            if self.discarding {
                self.discarding = false;
            } else if self.partial.is_empty() {
                if piece.len() > self.max_line {
                    stats.too_long += 1;
                } else {
                    on_line(piece);
                    stats.lines += 1;
                }
            } else if self.partial.len().saturating_add(piece.len()) > self.max_line {
                stats.too_long += 1;
                self.partial.clear();
            } else {
                self.hold(piece, stats);
                if !self.discarding {
                    on_line(&self.partial);
                    stats.lines += 1;
                }
                self.partial.clear();
                self.discarding = false;
            }
            pos += i + 1;
            end = Some(base + pos as u64);
        }
        end
    }

    /// Appends to the partial line; the caller has checked that the result
    /// fits in `max_line`.
    fn hold(&mut self, bytes: &[u8], stats: &mut PollStats) {
        let need = self.partial.len() + bytes.len();
        if need > self.partial.capacity() {
            // Grow by doubling like Vec would, but never past max_line, so
            // the buffer's size stays bounded by the limit, not by 2x it.
            let target = need
                .max(self.partial.capacity().saturating_mul(2))
                .min(self.max_line);
            // A huge max_line must not abort the process when memory runs
            // out: the line is treated as too long instead.
            if self
                .partial
                .try_reserve_exact(target - self.partial.len())
                .is_err()
            {
                self.start_discarding(stats);
                return;
            }
        }
        self.partial.extend_from_slice(bytes);
    }

    fn start_discarding(&mut self, stats: &mut PollStats) {
        // Counted when first known, so a line whose newline never comes is
        // still counted, and only once.
        stats.too_long += 1;
        self.partial.clear();
        self.discarding = true;
    }
}

fn check_regular(meta: &Metadata, path: &Path) -> io::Result<()> {
    if meta.is_file() {
        Ok(())
    } else {
        // Offsets, truncation and rotation only mean something for regular
        // files; a FIFO or device would also block or never end.
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a regular file", path.display()),
        ))
    }
}

/// 64-bit FNV-1a: defined by the algorithm, not by the std version, so
/// checkpoints written by one build are understood by the next.
fn fingerprint(bytes: &[u8]) -> u64 {
    use std::hash::Hasher as _;
    if bytes.is_empty() {
        return 0;
    }
    let mut h = fnv::FnvHasher::default();
    h.write(bytes);
    // 0 means "nothing read"; a real head must never look like that.
    h.finish().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    /// A fresh directory under the system temp dir, removed on drop.
    struct Scratch {
        dir: PathBuf,
    }

    impl Scratch {
        fn new(name: &str) -> Scratch {
            static SEQ: AtomicU64 = AtomicU64::new(0);
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let dir = std::env::temp_dir().join(format!(
                "mtqpd-tail-{name}-{}-{nanos}-{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            ));
            fs::create_dir_all(&dir).expect("create scratch dir");
            Scratch { dir }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.join(name)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }

    fn append(path: &Path, bytes: &[u8]) {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open for append")
            .write_all(bytes)
            .expect("append");
    }

    fn add(total: &mut PollStats, s: &PollStats) {
        total.lines += s.lines;
        total.bytes += s.bytes;
        total.too_long += s.too_long;
        total.rotations += s.rotations;
        total.truncations += s.truncations;
    }

    /// Polls with `budget` until the follower has nothing more right now.
    fn poll_with(f: &mut Follower, budget: usize) -> (Vec<String>, PollStats) {
        let mut lines = Vec::new();
        let mut total = PollStats::default();
        for _ in 0..1_000_000 {
            let s = f
                .poll(budget, &mut |l: &[u8]| {
                    lines.push(String::from_utf8_lossy(l).into_owned())
                })
                .expect("poll");
            add(&mut total, &s);
            if !f.has_more() {
                return (lines, total);
            }
        }
        panic!("follower never ran out of work");
    }

    fn poll_all(f: &mut Follower) -> (Vec<String>, PollStats) {
        poll_with(f, 1 << 20)
    }

    #[test]
    fn appends_come_out_once() {
        let s = Scratch::new("appends");
        let log = s.path("log");
        append(&log, b"one\ntwo\n");
        let mut f = Follower::new(log.clone(), 1024);
        let (lines, st) = poll_all(&mut f);
        assert_eq!(lines, ["one", "two"]);
        assert_eq!((st.lines, st.bytes), (2, 8));
        assert_eq!(poll_all(&mut f).0, Vec::<String>::new());
        append(&log, b"three\n");
        assert_eq!(poll_all(&mut f).0, ["three"]);
        append(&log, b"four\nfive\n");
        assert_eq!(poll_all(&mut f).0, ["four", "five"]);
        assert_eq!(poll_all(&mut f).0, Vec::<String>::new());
        assert_eq!(f.path(), log.as_path());
    }

    #[test]
    fn partial_last_line_waits_for_its_newline() {
        let s = Scratch::new("partial");
        let log = s.path("log");
        append(&log, b"whole\r\nhal");
        let mut f = Follower::new(log.clone(), 1024);
        assert_eq!(poll_all(&mut f).0, ["whole\r"]);
        append(&log, b"f a li");
        assert_eq!(poll_all(&mut f).0, Vec::<String>::new());
        append(&log, b"ne\nnext\n");
        assert_eq!(poll_all(&mut f).0, ["half a line", "next"]);
    }

    #[test]
    fn position_is_after_last_complete_line() {
        let s = Scratch::new("position");
        let log = s.path("log");
        let mut f = Follower::new(log.clone(), 1024);
        assert_eq!(f.position(), None);
        fs::write(&log, b"").expect("create");
        poll_all(&mut f);
        let p = f.position().expect("open");
        assert_eq!((p.offset, p.head), (0, 0));
        let meta = fs::metadata(&log).expect("stat");
        assert_eq!((p.dev, p.ino), (meta.dev(), meta.ino()));
        append(&log, b"abc\ndef");
        poll_all(&mut f);
        let p = f.position().expect("open");
        assert_eq!(p.offset, 4);
        assert_eq!(p.head, fingerprint(b"abc\n"));
        let long: Vec<u8> = (0..100u8).map(|i| b'a' + i % 26).collect();
        append(&log, b"\n");
        append(&log, &long);
        append(&log, b"\n");
        poll_all(&mut f);
        let p = f.position().expect("open");
        let all = fs::read(&log).expect("read");
        assert_eq!(p.offset, all.len() as u64);
        assert_eq!(p.head, fingerprint(&all[..64]));
    }

    #[test]
    fn budget_bounds_each_poll_and_sets_has_more() {
        let s = Scratch::new("budget");
        let log = s.path("log");
        append(&log, b"aaaa\nbbbb\ncccc\n");
        let mut f = Follower::new(log.clone(), 1024);
        let mut got = Vec::new();
        let st = f
            .poll(7, &mut |l: &[u8]| got.push(l.to_vec()))
            .expect("poll");
        assert_eq!(st.bytes, 7);
        assert!(f.has_more());
        assert_eq!(got, [b"aaaa".to_vec()]);
        let (rest, _) = poll_with(&mut f, 3);
        assert_eq!(rest, ["bbbb", "cccc"]);
        assert!(!f.has_more());
        // A budget of 0 still makes progress.
        append(&log, b"d\n");
        let st = f.poll(0, &mut |_: &[u8]| {}).expect("poll");
        assert_eq!(st.bytes, 1);
        assert!(f.has_more());
    }

    #[test]
    fn lines_straddling_the_read_buffer_come_out_whole() {
        let s = Scratch::new("straddle");
        let log = s.path("log");
        let mut content = Vec::new();
        let mut want = Vec::new();
        let mut i = 0u32;
        while content.len() < 3 * READ_BUF {
            let line = format!("line {i} {}", "x".repeat((i as usize * 7919) % 3000));
            content.extend_from_slice(line.as_bytes());
            content.push(b'\n');
            want.push(line);
            i += 1;
        }
        fs::write(&log, &content).expect("write");
        let mut f = Follower::new(log.clone(), 4096);
        let (lines, st) = poll_all(&mut f);
        assert_eq!(lines, want);
        assert_eq!(st.bytes, content.len() as u64);
        assert!(f.split.partial.capacity() <= 4096);
    }

    #[test]
    fn rename_rotation_drains_old_file_then_switches() {
        let s = Scratch::new("rename");
        let log = s.path("log");
        let mut writer = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open");
        writer.write_all(b"a\nb\n").expect("write");
        let mut f = Follower::new(log.clone(), 1024);
        assert_eq!(poll_all(&mut f).0, ["a", "b"]);
        let old_ino = f.position().expect("open").ino;

        fs::rename(&log, s.path("log.1")).expect("rename");
        // The writer has not reopened yet: it still appends to log.1.
        writer.write_all(b"c\nd").expect("write");
        writer.write_all(b"\n").expect("write");
        append(&log, b"e\nf\n");
        let (lines, st) = poll_all(&mut f);
        assert_eq!(lines, ["c", "d", "e", "f"]);
        assert_eq!(st.rotations, 1);
        let p = f.position().expect("open");
        assert_ne!(p.ino, old_ino);
        assert_eq!(p.offset, 4);
        assert_eq!(poll_all(&mut f), (vec![], PollStats::default()));
        append(&log, b"g\n");
        assert_eq!(poll_all(&mut f).0, ["g"]);
    }

    #[test]
    fn rotation_waits_until_the_new_file_has_data() {
        let s = Scratch::new("create");
        let log = s.path("log");
        let mut writer = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open");
        writer.write_all(b"a\n").expect("write");
        let mut f = Follower::new(log.clone(), 1024);
        assert_eq!(poll_all(&mut f).0, ["a"]);
        // logrotate `create`: rename, make an empty file, and only later
        // tell the writer, which meanwhile still writes to the old file.
        fs::rename(&log, s.path("log.1")).expect("rename");
        fs::write(&log, b"").expect("create");
        let (lines, st) = poll_all(&mut f);
        assert!(lines.is_empty());
        assert_eq!(st.rotations, 0);
        writer.write_all(b"late\n").expect("write");
        let (lines, st) = poll_all(&mut f);
        assert_eq!(lines, ["late"]);
        assert_eq!(st.rotations, 0);
        drop(writer);
        append(&log, b"new\n");
        let (lines, st) = poll_all(&mut f);
        assert_eq!(lines, ["new"]);
        assert_eq!(st.rotations, 1);
    }

    #[test]
    fn rotation_under_a_small_budget_loses_and_doubles_nothing() {
        let s = Scratch::new("rotbudget");
        let log = s.path("log");
        append(&log, b"1\n2\n3\n");
        let mut f = Follower::new(log.clone(), 1024);
        let mut got = poll_with(&mut f, 3).0;
        append(&log, b"4\n5\n");
        fs::rename(&log, s.path("log.1")).expect("rename");
        append(&log, b"6\n7\n");
        let (more, st) = poll_with(&mut f, 3);
        got.extend(more);
        assert_eq!(got, ["1", "2", "3", "4", "5", "6", "7"]);
        assert_eq!(st.rotations, 1);
    }

    #[test]
    fn torn_last_line_of_a_rotated_file_is_not_glued_to_the_new_one() {
        let s = Scratch::new("torn");
        let log = s.path("log");
        append(&log, b"a\ntorn");
        let mut f = Follower::new(log.clone(), 1024);
        assert_eq!(poll_all(&mut f).0, ["a"]);
        fs::rename(&log, s.path("log.1")).expect("rename");
        append(&log, b"b\n");
        let (lines, st) = poll_all(&mut f);
        assert_eq!(lines, ["b"]);
        assert_eq!(st.rotations, 1);
    }

    #[test]
    fn copytruncate_to_a_shorter_file_restarts_at_zero() {
        let s = Scratch::new("truncshort");
        let log = s.path("log");
        append(&log, b"first line\nsecond line\n");
        let mut f = Follower::new(log.clone(), 1024);
        assert_eq!(poll_all(&mut f).0.len(), 2);
        let file = OpenOptions::new().write(true).open(&log).expect("open");
        file.set_len(0).expect("truncate");
        append(&log, b"x\n");
        let (lines, st) = poll_all(&mut f);
        assert_eq!(lines, ["x"]);
        assert_eq!((st.truncations, st.rotations), (1, 0));
        assert_eq!(f.position().expect("open").offset, 2);
        append(&log, b"y\n");
        assert_eq!(poll_all(&mut f).0, ["y"]);
    }

    #[test]
    fn copytruncate_regrown_past_offset_is_caught_by_head() {
        let s = Scratch::new("truncregrow");
        let log = s.path("log");
        append(&log, b"aaaa\n");
        let mut f = Follower::new(log.clone(), 1024);
        assert_eq!(poll_all(&mut f).0, ["aaaa"]);
        let ino = fs::metadata(&log).expect("stat").ino();
        // Truncate and regrow past our offset between two polls.
        fs::write(&log, b"bbbbbbbbbb\ncc\n").expect("rewrite");
        assert_eq!(fs::metadata(&log).expect("stat").ino(), ino);
        let (lines, st) = poll_all(&mut f);
        assert_eq!(lines, ["bbbbbbbbbb", "cc"]);
        assert_eq!((st.truncations, st.rotations), (1, 0));
        // Same for a file longer than the 64 head bytes.
        let old: String = (0..10).map(|i| format!("old line {i}\n")).collect();
        fs::write(&log, &old).expect("rewrite");
        let (lines, st) = poll_all(&mut f);
        assert_eq!(lines.len(), 10);
        assert_eq!(st.truncations, 1);
        let new: String = (0..20).map(|i| format!("NEW line {i}\n")).collect();
        fs::write(&log, &new).expect("rewrite");
        let (lines, st) = poll_all(&mut f);
        assert_eq!(lines.len(), 20);
        assert_eq!(lines[0], "NEW line 0");
        assert_eq!(st.truncations, 1);
        // Ordinary appends do not look like truncations.
        append(&log, b"more\n");
        let (lines, st) = poll_all(&mut f);
        assert_eq!(lines, ["more"]);
        assert_eq!(st.truncations, 0);
    }

    #[test]
    fn truncation_keeping_the_same_head_is_caught_by_size() {
        let s = Scratch::new("truncsamehead");
        let log = s.path("log");
        let header = format!(
            "# log file header, the same in every generation {}\n",
            "-".repeat(30)
        );
        let old: String = (0..10).map(|i| format!("old {i}\n")).collect();
        fs::write(&log, format!("{header}{old}")).expect("write");
        let mut f = Follower::new(log.clone(), 1024);
        assert_eq!(poll_all(&mut f).0.len(), 11);
        fs::write(&log, format!("{header}new\n")).expect("rewrite");
        let (lines, st) = poll_all(&mut f);
        assert_eq!(lines, [header.trim_end(), "new"]);
        assert_eq!(st.truncations, 1);
    }

    #[test]
    fn truncation_drops_the_held_back_partial_line() {
        let s = Scratch::new("truncpartial");
        let log = s.path("log");
        append(&log, b"a\npartial");
        let mut f = Follower::new(log.clone(), 1024);
        assert_eq!(poll_all(&mut f).0, ["a"]);
        let file = OpenOptions::new().write(true).open(&log).expect("open");
        file.set_len(0).expect("truncate");
        append(&log, b"new\n");
        let (lines, st) = poll_all(&mut f);
        assert_eq!(lines, ["new"]);
        assert_eq!(st.truncations, 1);
    }

    #[test]
    fn delete_keeps_draining_then_switches_to_recreated_file() {
        let s = Scratch::new("delete");
        let log = s.path("log");
        let mut writer = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open");
        writer.write_all(b"a\n").expect("write");
        let mut f = Follower::new(log.clone(), 1024);
        assert_eq!(poll_all(&mut f).0, ["a"]);
        fs::remove_file(&log).expect("delete");
        assert_eq!(poll_all(&mut f), (vec![], PollStats::default()));
        assert!(f.position().is_some());
        // Still written through the open descriptor after the unlink.
        writer.write_all(b"b\n").expect("write");
        assert_eq!(poll_all(&mut f).0, ["b"]);
        writer.write_all(b"c\n").expect("write");
        drop(writer);
        append(&log, b"d\n");
        let (lines, st) = poll_all(&mut f);
        assert_eq!(lines, ["c", "d"]);
        assert_eq!(st.rotations, 1);
    }

    #[test]
    fn missing_file_at_start_is_waited_for() {
        let s = Scratch::new("missing");
        let log = s.path("log");
        let mut f = Follower::new(log.clone(), 1024);
        assert_eq!(poll_all(&mut f), (vec![], PollStats::default()));
        assert_eq!(f.position(), None);
        append(&log, b"hello\n");
        let (lines, st) = poll_all(&mut f);
        assert_eq!(lines, ["hello"]);
        assert_eq!(st.rotations, 0);
    }

    #[test]
    fn ten_megabyte_line_is_skipped_in_bounded_memory() {
        let s = Scratch::new("longline");
        let log = s.path("log");
        let mut content = b"before\n".to_vec();
        content.resize(content.len() + 10 * 1024 * 1024, b'x');
        content.extend_from_slice(b"\nafter\n");
        fs::write(&log, &content).expect("write");
        for budget in [1 << 20, 4096, 100_000] {
            let mut f = Follower::new(log.clone(), 1000);
            let (lines, st) = poll_with(&mut f, budget);
            assert_eq!(lines, ["before", "after"]);
            assert_eq!(st.too_long, 1);
            assert_eq!(st.bytes, content.len() as u64);
            assert!(f.split.partial.capacity() <= 1000);
            assert_eq!(f.buf.len(), READ_BUF);
        }
        // The same line arriving in pieces, across polls, without its
        // newline for a while, is still counted once.
        let log2 = s.path("log2");
        append(&log2, b"one\n");
        let mut f = Follower::new(log2.clone(), 1000);
        assert_eq!(poll_all(&mut f).0, ["one"]);
        let chunk = vec![b'y'; 700];
        let mut too_long = 0;
        for _ in 0..50 {
            append(&log2, &chunk);
            too_long += poll_all(&mut f).1.too_long;
        }
        append(&log2, b"\ntwo\n");
        let (lines, st) = poll_all(&mut f);
        assert_eq!(lines, ["two"]);
        assert_eq!(too_long + st.too_long, 1);
        assert!(f.split.partial.capacity() <= 1000);
    }

    #[test]
    fn max_line_is_inclusive() {
        let s = Scratch::new("maxline");
        let log = s.path("log");
        append(&log, b"12345\n123456\n\n1234\n");
        let mut f = Follower::new(log.clone(), 5);
        let (lines, st) = poll_all(&mut f);
        assert_eq!(lines, ["12345", "", "1234"]);
        assert_eq!(st.too_long, 1);
        // Same through the partial-line path, one byte per poll.
        let mut f = Follower::new(log.clone(), 5);
        let (lines, st) = poll_with(&mut f, 1);
        assert_eq!(lines, ["12345", "", "1234"]);
        assert_eq!(st.too_long, 1);
    }

    #[test]
    fn os_error_leaves_the_follower_usable() {
        let s = Scratch::new("error");
        let log = s.path("log");
        fs::create_dir(&log).expect("mkdir");
        let mut f = Follower::new(log.clone(), 1024);
        assert!(f.poll(1024, &mut |_: &[u8]| {}).is_err());
        assert!(f.poll(1024, &mut |_: &[u8]| {}).is_err());
        fs::remove_dir(&log).expect("rmdir");
        append(&log, b"fine\n");
        assert_eq!(poll_all(&mut f).0, ["fine"]);
        // An error while a file is open (a directory replacing it) is
        // reported, and the open file is still followed afterwards.
        fs::rename(&log, s.path("log.1")).expect("rename");
        fs::create_dir(&log).expect("mkdir");
        assert!(f.poll(1024, &mut |_: &[u8]| {}).is_err());
        append(&s.path("log.1"), b"old\n");
        let mut got = Vec::new();
        let st = f
            .poll(1024, &mut |l: &[u8]| got.push(l.to_vec()))
            .expect("work done before the error is returned");
        assert_eq!(got, [b"old".to_vec()]);
        assert_eq!(st.lines, 1);
        assert!(f.has_more());
        fs::remove_dir(&log).expect("rmdir");
        append(&log, b"new\n");
        let (lines, st) = poll_all(&mut f);
        assert_eq!(lines, ["new"]);
        assert_eq!(st.rotations, 1);
    }

    #[test]
    fn read_error_on_a_replaced_file_lets_go_of_it() {
        let s = Scratch::new("readerror");
        let log = s.path("log");
        let dir = s.path("dir");
        fs::create_dir(&dir).expect("mkdir");
        // A descriptor whose reads fail (EISDIR), standing in for EIO/ESTALE.
        let bad = File::open(&dir).expect("open dir");
        let meta = bad.metadata().expect("fstat");
        let mut f = Follower::new(log.clone(), 1024);
        f.cur = Some(Current::new(bad, &meta));
        f.had_file = true;
        // While nothing else is at the path, the descriptor is kept.
        assert!(f.poll(1024, &mut |_: &[u8]| {}).is_err());
        assert!(f.cur.is_some());
        append(&log, b"x\n");
        assert!(f.poll(1024, &mut |_: &[u8]| {}).is_err());
        let (lines, st) = poll_all(&mut f);
        assert_eq!(lines, ["x"]);
        assert_eq!(st.rotations, 1);
    }

    #[test]
    fn resume_finishes_a_file_rotated_while_nothing_followed() {
        let s = Scratch::new("resume-rotated");
        let log = s.path("mail.log");
        fs::write(&log, "one\ntwo\n").unwrap();
        let mut f = Follower::new(log.clone(), 1024);
        let mut got = Vec::new();
        f.poll(1 << 20, &mut |l| got.push(l.to_vec())).unwrap();
        let at = f.position().unwrap();
        drop(f);
        // While down: more lines, rotation, a new file.
        let mut old = fs::OpenOptions::new().append(true).open(&log).unwrap();
        old.write_all(b"three\n").unwrap();
        fs::rename(&log, s.path("mail.log.1")).unwrap();
        old.write_all(b"four\n").unwrap();
        fs::write(&log, "five\n").unwrap();
        let mut g = Follower::resume(log.clone(), 1024, at);
        let mut after = Vec::new();
        for _ in 0..4 {
            g.poll(1 << 20, &mut |l| {
                after.push(String::from_utf8_lossy(l).into_owned())
            })
            .unwrap();
        }
        assert_eq!(after, ["three", "four", "five"]);
    }

    #[test]
    fn resume_continues_after_the_checkpoint() {
        let s = Scratch::new("resume");
        let log = s.path("log");
        let body: String = (0..30).map(|i| format!("line {i}\n")).collect();
        append(&log, body.as_bytes());
        append(&log, b"partial");
        let mut f = Follower::new(log.clone(), 1024);
        assert_eq!(poll_all(&mut f).0.len(), 30);
        let at = f.position().expect("open");
        assert_eq!(at.offset, body.len() as u64);
        drop(f);
        append(&log, b" done\nlast\n");
        let mut g = Follower::resume(log.clone(), 1024, at.clone());
        assert_eq!(poll_all(&mut g).0, ["partial done", "last"]);

        // A short checkpoint (offset below 64) resumes too.
        let log2 = s.path("log2");
        append(&log2, b"ab\ncd\n");
        let mut f = Follower::new(log2.clone(), 1024);
        poll_all(&mut f);
        let at2 = f.position().expect("open");
        append(&log2, b"ef\n");
        let mut g = Follower::resume(log2.clone(), 1024, at2);
        assert_eq!(poll_all(&mut g).0, ["ef"]);
        append(&log2, b"gh\n");
        assert_eq!(poll_all(&mut g).0, ["gh"]);

        // A stale checkpoint (file rewritten in place) reads from 0.
        fs::write(&log, b"other content entirely\n").expect("rewrite");
        let mut g = Follower::resume(log.clone(), 1024, at.clone());
        assert_eq!(poll_all(&mut g).0, ["other content entirely"]);
        // And so does one for another inode.
        fs::remove_file(&log).expect("delete");
        append(&log, body.as_bytes());
        append(&log, b"x\n");
        let mut g = Follower::resume(log.clone(), 1024, at);
        assert_eq!(poll_all(&mut g).0.len(), 31);
    }

    #[test]
    fn random_writes_and_budgets_round_trip() {
        let s = Scratch::new("random");
        let log = s.path("log");
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        let mut f = Follower::new(log.clone(), 200);
        let mut written = Vec::new();
        let mut got = Vec::new();
        let mut pending = Vec::new();
        let mut too_long = 0;
        for step in 0..3000 {
            if next(3) > 0 {
                let len = next(260) as usize;
                let line: Vec<u8> = (0..len).map(|i| b"abc\r \t"[(i + step) % 6]).collect();
                if len > 200 {
                    too_long += 1;
                } else {
                    written.push(line.clone());
                }
                pending.extend_from_slice(&line);
                pending.push(b'\n');
            }
            // Write a random prefix of what is pending, so lines arrive torn.
            let cut = next(pending.len() as u64 + 1) as usize;
            append(&log, &pending[..cut]);
            pending.drain(..cut);
            let budget = 1 + next(500) as usize;
            let st = f
                .poll(budget, &mut |l: &[u8]| got.push(l.to_vec()))
                .expect("poll");
            too_long -= st.too_long as i64;
        }
        append(&log, &pending);
        let (rest, st) = poll_all(&mut f);
        too_long -= st.too_long as i64;
        got.extend(rest.into_iter().map(String::into_bytes));
        assert_eq!(got, written);
        assert_eq!(too_long, 0);
    }

    #[test]
    fn fingerprint_is_stable_and_never_zero_for_data() {
        assert_eq!(fingerprint(b""), 0);
        // Published FNV-1a 64 test vector.
        assert_eq!(fingerprint(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(fingerprint(b"\0"), 0);
    }
}
