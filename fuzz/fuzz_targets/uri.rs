//! The mtqp:// URI parser of `mtqpd track` (RFC 3887 section 4): any text a user pastes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = mtqpd::protocol::uri::parse(text);
    }
});
