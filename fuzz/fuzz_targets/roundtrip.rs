//! The property the tracker relies on to keep a message as its index record only: the
//! record published for any message gives that message back (read back from its answer, or
//! stored whole when the answer does not show it exactly).
#![no_main]

use libfuzzer_sys::fuzz_target;

use libfuzzer_sys::arbitrary::Unstructured;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = mtqpd_fuzz::message(&mut Unstructured::new(data)) else {
        return;
    };
    if let Some((back, _)) = mtqpd::ingest::tracker::stored::republished(&m, "hub.example") {
        assert_eq!(back, m);
    }
});
