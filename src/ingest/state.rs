//! The state directory (`--state-dir`): one snapshot file holding where every log was read up
//! to and the correlation state built from those lines, written together so that a restart
//! reads every later line exactly once and finds every record.
//!
//! The file is `state.bin`: a magic, a version, the payload's length, the payload and its
//! FNV-1a 64 checksum. It is written to a fresh temporary file (`state.<random>.tmp`, created
//! exclusively, never through a symlink), synced and renamed over the old one, and the directory
//! is synced, so a crash leaves the old snapshot or the new one, never half of one. Anything
//! that does not check out (truncation, a flipped bit, another version) is reported and the
//! caller rebuilds from the logs; decoding never trusts a length it has not bounded.
//!
//! The state holds every tracked message's recipients, diagnostics and hash B: the files are
//! 0600, and a state directory that another user owns or that group or others may write to is
//! refused (they could plant links, or read and replace the state).

use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::tail::Position;

const MAGIC: &[u8; 8] = b"MTQPDST\x01";
/// 2: each message record is preceded by its length, so a restore can split the work.
/// 3: a Message-ID of an accept line keeps its time and whether it tied a queue id.
/// 4: a message keeps the ORCPTs the SMTP gate declared; a waiting update, whether it keeps
///    the ORCPT its native line gave.
/// 5: the hosts of the cluster, and every queue id with the number of its host; after the
///    files' positions, the journal sources' cursors.
const VERSION: u32 = 5;
const FILE: &str = "state.bin";

/// Appends primitive values to a payload.
#[derive(Default)]
pub struct Encoder {
    pub buf: Vec<u8>,
}

impl Encoder {
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i16(&mut self, v: i16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.buf.extend_from_slice(v);
    }
    pub fn opt_bytes(&mut self, v: Option<&[u8]>) {
        match v {
            None => self.u8(0),
            Some(b) => {
                self.u8(1);
                self.bytes(b);
            }
        }
    }
    /// A collection length.
    pub fn count(&mut self, n: usize) {
        self.u32(n as u32);
    }
    /// LEB128: seven bits an octet, low first; small numbers take one octet.
    pub fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }
    /// A signed number zigzagged (0, -1, 1, -2… become 0, 1, 2, 3…), then [`Encoder::varint`].
    pub fn zigzag(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }
}

/// Why a snapshot was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corrupt(pub String);

/// Reads primitive values back, refusing to read past the end.
pub struct Decoder<'a> {
    buf: &'a [u8],
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Decoder<'a> {
        Decoder { buf }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], Corrupt> {
        if self.buf.len() < n {
            return Err(Corrupt("payload ends early".into()));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Corrupt> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    pub fn u8(&mut self) -> Result<u8, Corrupt> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, Corrupt> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, Corrupt> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, Corrupt> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64, Corrupt> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    pub fn i16(&mut self) -> Result<i16, Corrupt> {
        Ok(i16::from_le_bytes(self.array()?))
    }
    pub fn hash(&mut self) -> Result<[u8; 20], Corrupt> {
        self.array()
    }
    /// A length-prefixed run of octets, borrowed from the payload.
    pub fn slice(&mut self) -> Result<&'a [u8], Corrupt> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    pub fn bytes(&mut self) -> Result<Box<[u8]>, Corrupt> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.into())
    }
    pub fn opt_bytes(&mut self) -> Result<Option<Box<[u8]>>, Corrupt> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.bytes()?)),
            t => Err(Corrupt(format!("bad option tag {t}"))),
        }
    }
    /// A collection length, bounded by what is left (every element takes at least one octet),
    /// so that a corrupt length cannot make the caller reserve memory it will never fill.
    pub fn count(&mut self) -> Result<usize, Corrupt> {
        let n = self.u32()? as usize;
        if n > self.buf.len() {
            return Err(Corrupt(format!("length {n} exceeds the payload")));
        }
        Ok(n)
    }
    /// What [`Encoder::varint`] wrote; more than ten octets, or bits past 64, are corrupt.
    pub fn varint(&mut self) -> Result<u64, Corrupt> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            let bits = u64::from(b & 0x7f);
            if i == 9 && bits > 1 {
                return Err(Corrupt("varint longer than 64 bits".into()));
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Corrupt("varint longer than ten octets".into()))
    }
    /// What [`Encoder::zigzag`] wrote.
    pub fn zigzag(&mut self) -> Result<i64, Corrupt> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }
    /// The octets not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }
    /// True when every octet was read.
    pub fn is_done(&self) -> bool {
        self.buf.is_empty()
    }
}

/// FNV-1a 64 over 8-octet words (the tail zero-padded), with the length folded in: a checksum
/// defined by the algorithm, the same in every build, and twice as fast as byte-wise FNV (the
/// `fnv` crate) on a state of hundreds of megabytes (287 MB: 160-200 ms against 400 ms).
fn checksum(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ bytes.len() as u64;
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The positions of every followed file, as saved.
pub type Positions = Vec<(PathBuf, Position)>;

/// Encodes file positions (the first part of every payload).
pub fn encode_positions(enc: &mut Encoder, positions: &[(PathBuf, Position)]) {
    use std::os::unix::ffi::OsStrExt;
    enc.count(positions.len());
    for (path, p) in positions {
        enc.bytes(path.as_os_str().as_bytes());
        enc.u64(p.dev);
        enc.u64(p.ino);
        enc.u64(p.offset);
        enc.u64(p.head);
    }
}

/// Decodes what [`encode_positions`] wrote.
pub fn decode_positions(dec: &mut Decoder<'_>) -> Result<Positions, Corrupt> {
    use std::os::unix::ffi::OsStrExt;
    let n = dec.count()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(&dec.bytes()?));
        let p = Position {
            dev: dec.u64()?,
            ino: dec.u64()?,
            offset: dec.u64()?,
            head: dec.u64()?,
        };
        out.push((path, p));
    }
    Ok(out)
}

/// Where each journal source stands: its `--log` and the cursor of the last entry applied.
pub type Cursors = Vec<(String, String)>;

/// Writes the journal sources' cursors.
pub fn encode_cursors(enc: &mut Encoder, cursors: &[(String, String)]) {
    enc.count(cursors.len());
    for (source, cursor) in cursors {
        enc.bytes(source.as_bytes());
        enc.bytes(cursor.as_bytes());
    }
}

/// Decodes what [`encode_cursors`] wrote.
pub fn decode_cursors(dec: &mut Decoder<'_>) -> Result<Cursors, Corrupt> {
    let text = |b: Box<[u8]>| {
        String::from_utf8(b.into_vec()).map_err(|_| Corrupt("a cursor is not UTF-8".into()))
    };
    (0..dec.count()?)
        .map(|_| Ok((text(dec.bytes()?)?, text(dec.bytes()?)?)))
        .collect()
}

/// Creates a new file in the state directory: 0600, exclusively (an existing file or a
/// planted symlink of that name is an error, never opened).
fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// A temporary name no other file of the directory has, so that none can be planted for it.
fn temporary_name(dir: &Path) -> PathBuf {
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    dir.join(format!("state.{:016x}.tmp", h.finish()))
}

/// Writes `payload` as the new snapshot, atomically.
pub fn save(dir: &Path, payload: &[u8]) -> io::Result<()> {
    let tmp = temporary_name(dir);
    let written = (|| {
        let mut f = create_private(&tmp)?;
        f.write_all(MAGIC)?;
        f.write_all(&VERSION.to_le_bytes())?;
        f.write_all(&(payload.len() as u64).to_le_bytes())?;
        f.write_all(payload)?;
        f.write_all(&checksum(payload).to_le_bytes())?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, dir.join(FILE))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    // The rename itself must reach the disk before the snapshot counts as written.
    File::open(dir)?.sync_all()
}

/// Reads the snapshot's payload. Ok(None) when there is none yet.
pub fn load(dir: &Path) -> Result<Option<Vec<u8>>, Corrupt> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join(FILE));
    let mut raw = Vec::new();
    match opened.and_then(|mut f| f.read_to_end(&mut raw)) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Corrupt(format!("cannot read: {e}"))),
    };
    let mut dec = Decoder::new(&raw);
    if dec.take(MAGIC.len())? != MAGIC {
        return Err(Corrupt("not an mtqpd state file".into()));
    }
    let version = dec.u32()?;
    if version != VERSION {
        return Err(Corrupt(format!(
            "version {version}, this build reads {VERSION}"
        )));
    }
    let len = dec.u64()?;
    let len = usize::try_from(len).map_err(|_| Corrupt("length too large".into()))?;
    let payload = dec.take(len)?;
    let sum = dec.u64()?;
    if !dec.is_done() {
        return Err(Corrupt("trailing bytes".into()));
    }
    if checksum(payload) != sum {
        return Err(Corrupt("checksum mismatch".into()));
    }
    // Hand back the payload in the buffer it was read into: a copy of a state of hundreds of
    // megabytes would cost time and double the memory at start-up.
    let start = MAGIC.len() + 4 + 8;
    raw.truncate(start + len);
    raw.drain(..start);
    Ok(Some(raw))
}

/// Checks, for a clear error at start-up, that the state directory exists, is ours (its owner
/// is the owner of a file we create in it) and that group and others cannot write to it; and
/// removes the temporary files a crash may have left.
pub fn check_dir(dir: &Path) -> Result<(), String> {
    let show = dir.display();
    let meta = fs::symlink_metadata(dir)
        .map_err(|e| format!("state directory {show} cannot be used: {e}"))?;
    if !meta.is_dir() {
        return Err(format!("state directory {show} is not a directory"));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "state directory {show} is writable by others (mode {:o}): make it 0700",
            meta.mode() & 0o777
        ));
    }
    let probe = temporary_name(dir);
    let ours = create_private(&probe)
        .and_then(|f| f.metadata())
        .map(|m| m.uid());
    let _ = fs::remove_file(&probe);
    let ours = ours.map_err(|e| format!("state directory {show} is not writable: {e}"))?;
    if meta.uid() != ours {
        return Err(format!(
            "state directory {show} belongs to another user (uid {}, we are {ours})",
            meta.uid()
        ));
    }
    for entry in fs::read_dir(dir).map_err(|e| format!("state directory {show}: {e}"))? {
        let name = entry
            .map_err(|e| format!("state directory {show}: {e}"))?
            .file_name();
        let name = name.to_string_lossy();
        if name.starts_with("state.") && name.ends_with(".tmp") {
            let _ = fs::remove_file(dir.join(&*name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_overlong_ones_are_corrupt() {
        let nums = [
            0,
            1,
            127,
            128,
            300,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ];
        let signed = [0, -1, 1, 63, -64, 64, i64::MIN, i64::MAX, 1_795_000_000];
        let mut enc = Encoder::default();
        nums.iter().for_each(|&n| enc.varint(n));
        signed.iter().for_each(|&n| enc.zigzag(n));
        let mut dec = Decoder::new(&enc.buf);
        for n in nums {
            assert_eq!(dec.varint(), Ok(n));
        }
        for n in signed {
            assert_eq!(dec.zigzag(), Ok(n));
        }
        assert!(dec.is_done());
        let mut one = Encoder::default();
        one.varint(5);
        assert_eq!(one.buf, [5]);
        for bad in [
            &[0xff; 11][..],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
            &[0x80],
        ] {
            assert!(Decoder::new(bad).varint().is_err(), "{bad:?}");
        }
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mtqpd-state-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn round_trip_and_every_kind_of_damage() {
        let d = dir("damage");
        assert_eq!(load(&d), Ok(None));
        let mut enc = Encoder::default();
        encode_positions(
            &mut enc,
            &[(
                PathBuf::from("/var/log/mail.log"),
                Position {
                    dev: 1,
                    ino: 2,
                    offset: 3,
                    head: 4,
                },
            )],
        );
        enc.opt_bytes(Some(b"x"));
        save(&d, &enc.buf).unwrap();
        let payload = load(&d).unwrap().unwrap();
        let mut dec = Decoder::new(&payload);
        let pos = decode_positions(&mut dec).unwrap();
        assert_eq!(
            pos[0].1,
            Position {
                dev: 1,
                ino: 2,
                offset: 3,
                head: 4
            }
        );
        assert_eq!(dec.opt_bytes().unwrap().as_deref(), Some(&b"x"[..]));
        assert!(dec.is_done());

        let good = fs::read(d.join(FILE)).unwrap();
        for cut in [0, 5, 12, 20, good.len() - 1] {
            fs::write(d.join(FILE), &good[..cut]).unwrap();
            assert!(load(&d).is_err(), "truncated at {cut}");
        }
        for flip in [0, 9, 21, good.len() - 1] {
            let mut bad = good.clone();
            bad[flip] ^= 0x40;
            fs::write(d.join(FILE), &bad).unwrap();
            assert!(load(&d).is_err(), "bit flipped at {flip}");
        }
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn lengths_are_bounded_by_the_payload() {
        let mut enc = Encoder::default();
        enc.u32(u32::MAX);
        let mut dec = Decoder::new(&enc.buf);
        assert!(dec.count().is_err());
        let mut dec = Decoder::new(&enc.buf);
        assert!(dec.bytes().is_err());
    }
}
