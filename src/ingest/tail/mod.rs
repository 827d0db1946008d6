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
mod tests;
