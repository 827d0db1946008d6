//! The follower's tests: appends, rotation by rename, copytruncate, delete and recreate, torn
//! lines, resume from a checkpoint, and errors.

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
    let mut rng = fastrand::Rng::with_seed(0x9e37_79b9_7f4a_7c15);
    let mut f = Follower::new(log.clone(), 200);
    let mut written = Vec::new();
    let mut got = Vec::new();
    let mut pending = Vec::new();
    let mut too_long = 0;
    for step in 0..3000 {
        if rng.u8(..3) > 0 {
            let len = rng.usize(..260);
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
        let cut = rng.usize(..=pending.len());
        append(&log, &pending[..cut]);
        pending.drain(..cut);
        let budget = rng.usize(1..=500);
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
