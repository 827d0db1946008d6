//! The MTQP command parser (RFC 3887 section 3): any line from the network.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    if let Ok(command) = mtqpd::protocol::command::parse(line) {
        let _ = command.kind().name();
    }
});
