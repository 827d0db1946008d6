//! The exim log parser, fed a file's worth of lines, and the tracker fed what it emits:
//! any line an MTA (or a stranger, through the MTA) can log.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|log: &[u8]| {
    mtqpd_fuzz::ingest(mtqpd::ingest::LogFormat::Exim, log);
});
