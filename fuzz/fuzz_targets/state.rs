//! The state decoder: whatever a damaged or planted `state.bin` payload holds. It either
//! decodes or says why; it never panics, and never reserves memory the payload cannot fill.
#![no_main]

use libfuzzer_sys::fuzz_target;

use mtqpd::index::message::Retention;
use mtqpd::ingest::state::{decode_positions, Decoder};
use mtqpd::ingest::tracker::Tracker;

fuzz_target!(|payload: &[u8]| {
    let mut dec = Decoder::new(payload);
    if decode_positions(&mut dec).is_err() {
        return;
    }
    let retention = Retention {
        after_last_event: 8 * 86_400,
        queue_lifetime: 5 * 86_400,
    };
    let _ = Tracker::decode(&mut dec, "hub.example".into(), retention, i64::MAX);
});
