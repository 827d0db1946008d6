//! The gate's SMTP pieces (src/gate/smtp/) on any bytes: a client's command line through the
//! verb, MAIL splice and RCPT readers; the MTA's output through the reply framer, the queue-id
//! patterns and the EHLO editor; a client's message data through the data scanner, in pieces,
//! checking what the gate relies on: the MTA gets no bare line end and a lone `.` line only as
//! the end the gate saw, however the data is split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtqpd::gate::smtp::data::{DataScanner, Fed};
use mtqpd::gate::smtp::mail::{splice, Mail};
use mtqpd::gate::smtp::reply::{complete, queue_id, QueueIdPattern};
use mtqpd::gate::smtp::{command, ehlo};

fuzz_target!(|input: &[u8]| {
    let Some((&split, bytes)) = input.split_first() else {
        return;
    };
    let _ = command::Verb::of(bytes);
    let _ = command::rcpt(bytes);
    if let Mail::Spliced { line, .. } = splice(bytes) {
        assert!(line.len() < bytes.len(), "the splice only cuts");
    }
    if let Ok(Some(n)) = complete(bytes) {
        let reply = &bytes[..n];
        let _ = queue_id(reply, &QueueIdPattern::built_in());
        let edited = ehlo::edit(reply, split & 1 == 1);
        // Each line gains at most its CR; the first its separator; then STARTTLS and MTRK.
        assert!(edited.len() <= reply.len() + reply.len() / 4 + 48);
    }
    let step = usize::from(split).max(1);
    let mut whole = DataScanner::default();
    let mut out_whole = Vec::new();
    let end_whole = match whole.feed(bytes, &mut out_whole) {
        Fed::End(n) => Some(n),
        Fed::More => None,
    };
    let mut pieces = DataScanner::default();
    let mut out = Vec::new();
    let mut end = None;
    let mut at = 0;
    for piece in bytes.chunks(step) {
        if let Fed::End(n) = pieces.feed(piece, &mut out) {
            end = Some(at + n);
            break;
        }
        at += piece.len();
    }
    assert_eq!((end, &out), (end_whole, &out_whole), "the split changed the result");
    for (i, &c) in out.iter().enumerate() {
        if c == b'\n' {
            assert_eq!(out.get(i.wrapping_sub(1)), Some(&b'\r'));
        }
        if c == b'\r' {
            assert_eq!(out.get(i + 1), Some(&b'\n'));
        }
    }
    let lines: Vec<&[u8]> = out.split_inclusive(|&c| c == b'\n').collect();
    let lone = lines.iter().position(|l| *l == b".\r\n");
    match end {
        Some(_) => assert_eq!(lone, Some(lines.len() - 1)),
        None => assert_eq!(lone, None),
    }
});
