//! The accept log: the file of native lines only the gate writes, which `mtqpd serve` reads as
//! `--log native:PATH`. One writer thread owns it. A session hands over a tracked message's
//! lines and holds the MTA's 250 until the writer says they are on disk; the writer takes every
//! request waiting, appends them in one write and makes them durable with one `fdatasync`
//! (group commit), so a burst of messages costs one disk flush, not one each.
//!
//! A session has at most one request in flight, so the queue is bounded by the number of
//! sessions, and each request by the transaction's bounds ([`super::transaction`]).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

/// Most octets written (and flushed) as one group.
const MAX_GROUP: usize = 4 * 1024 * 1024;

/// A session's lines, to be made durable.
pub struct Request {
    /// The event loop and the session slot that wait for the answer.
    pub worker: usize,
    pub session: usize,
    /// The session's generation: a slot reused by a later session ignores a stale answer.
    pub generation: u64,
    pub lines: Vec<u8>,
    pub handed_over: Instant,
}

/// The writer's answer to one [`Request`].
#[derive(Debug, Clone, Copy)]
pub struct Done {
    pub session: usize,
    pub generation: u64,
    /// The lines are on disk. False: the write or the flush failed (already reported).
    pub durable: bool,
    pub handed_over: Instant,
}

/// Where each event loop takes its answers: a channel and the waker of its poll.
pub struct Answers {
    pub sender: Sender<Done>,
    pub waker: Arc<mio::Waker>,
}

/// Opens (creating it 0640 when new) the accept log for appending. A symbolic link is refused:
/// the file holds what the tracking server trusts most.
pub fn open(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| format!("cannot open the accept log {}: {e}", path.display()))
}

/// The running writer.
pub struct Writer {
    pub requests: Sender<Request>,
    thread: JoinHandle<()>,
}

impl Writer {
    /// Starts the writer thread on `file`.
    pub fn spawn(file: File, answers: Vec<Answers>) -> Result<Writer, String> {
        let (requests, queue) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("mtqpd-accept-log".into())
            .spawn(move || write_loop(file, &queue, &answers))
            .map_err(|e| format!("cannot start the accept-log thread: {e}"))?;
        Ok(Writer { requests, thread })
    }

    /// Waits for every request handed over to be written; call once no session can hand over
    /// another (the event loops have stopped and dropped their senders).
    pub fn finish(self) {
        drop(self.requests);
        let _ = self.thread.join();
    }
}

fn write_loop(mut file: File, queue: &Receiver<Request>, answers: &[Answers]) {
    let mut group: Vec<Request> = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    // After a failed write a partial line may end the file: the next group starts on a new line
    // so that the partial one cannot swallow the next line.
    let mut after_failure = false;
    let mut failures: u64 = 0;
    while let Ok(first) = queue.recv() {
        buf.clear();
        group.clear();
        if after_failure {
            buf.push(b'\n');
        }
        buf.extend_from_slice(&first.lines);
        group.push(first);
        while buf.len() < MAX_GROUP {
            let Ok(next) = queue.try_recv() else { break };
            buf.extend_from_slice(&next.lines);
            group.push(next);
        }
        let result = file.write_all(&buf).and_then(|()| file.sync_data());
        if let Err(e) = &result {
            failures += 1;
            // One line for the first failure and then every thousandth, so a full disk does
            // not flood the log; each loss is counted by the sessions.
            if failures == 1 || failures % 1000 == 0 {
                eprintln!(
                    "mtqpd gate: accept log: cannot write {} tracked message(s): {e} \
                     ({failures} failed write(s) so far; the MTA keeps the mail, which is not \
                     tracked)",
                    group.len()
                );
            }
        }
        after_failure = result.is_err();
        let mut woken = vec![false; answers.len()];
        for r in group.drain(..) {
            if let Some(a) = answers.get(r.worker) {
                woken[r.worker] = true;
                let _ = a.sender.send(Done {
                    session: r.session,
                    generation: r.generation,
                    durable: result.is_ok(),
                    handed_over: r.handed_over,
                });
            }
        }
        for (a, _) in answers.iter().zip(woken).filter(|(_, w)| *w) {
            let _ = a.waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_0640_appended_and_links_refused() {
        let dir = std::env::temp_dir().join(format!("mtqpd-accept-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("accept.log");
        let mut f = open(&path).unwrap();
        f.write_all(b"one\n").unwrap();
        drop(f);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !0o640, 0, "mode {mode:o}");
        open(&path).unwrap().write_all(b"two\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one\ntwo\n");
        std::os::unix::fs::symlink(&path, dir.join("link")).unwrap();
        assert!(open(&dir.join("link")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
