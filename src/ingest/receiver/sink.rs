//! The receiver's output: messages become lines ([`super::message::line_of`]) in a
//! [`Batch`], sent to the ingest thread when full or when the loop has read everything that
//! was readable. Sending blocks while the channel is full, and with it the whole receiver
//! thread: no socket is read, so TCP senders block in the kernel (backpressure) and UDP
//! datagrams pile up in, then overflow, the socket buffers (counted by the kernel).

use std::sync::atomic::Ordering;

use crossbeam_channel::Sender;

use super::frame::Piece;
use super::message::line_of;
use super::stats::ReceiverStats;
use crate::ingest::stream::Batch;

/// Lines on their way to the ingest thread.
pub struct Sink {
    tx: Sender<Batch>,
    batch: Batch,
    /// The ingest thread is gone (its end of the channel dropped): nothing more can be sent.
    pub disconnected: bool,
}

impl Sink {
    pub fn new(tx: Sender<Batch>) -> Sink {
        Sink {
            tx,
            batch: Batch::default(),
            disconnected: false,
        }
    }

    /// Takes one framed piece: a message becomes a line, or is counted as malformed; an
    /// over-long one is counted.
    pub fn take(&mut self, piece: Piece<'_>, stats: &ReceiverStats) {
        match piece {
            Piece::Message(message) => self.message(message, stats),
            Piece::TooLong => ReceiverStats::add(&stats.too_long, 1),
        }
    }

    /// Takes one whole message.
    pub fn message(&mut self, message: &[u8], stats: &ReceiverStats) {
        let Some(line) = line_of(message) else {
            ReceiverStats::add(&stats.malformed, 1);
            return;
        };
        self.batch.push(line);
        // Counted as handed on: a line in the batch reaches the channel unless the ingest
        // thread is gone, and then nobody reads the counter either.
        stats.lines.fetch_add(1, Ordering::Relaxed);
        if self.batch.is_full() {
            self.send();
        }
    }

    /// Sends the batch if it holds anything, waiting while the channel is full.
    pub fn send(&mut self) {
        if self.batch.is_empty() || self.disconnected {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        // A fresh batch sized like the last avoids regrowing it line by line.
        self.batch.bytes.reserve(batch.bytes.len());
        self.batch.ends.reserve(batch.ends.len());
        if self.tx.send(batch).is_err() {
            self.disconnected = true;
        }
    }
}
