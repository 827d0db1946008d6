//! The journal's export format (`journalctl --output=export`), as the journal follower reads it
//! from journalctl's pipe: the first octet picks the size of the pieces the rest is fed in.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtqpd::ingest::journal::export::{Parser, MAX_LINE};
use mtqpd::ingest::syslog::{parse_prefix, SyslogClock};
use mtqpd::ingest::timezone::Zone;

/// Every entry: its cursor and its line (or why none), owned.
fn entries(data: &[u8], piece: usize) -> Vec<(Option<String>, Result<Vec<u8>, String>)> {
    let mut parser = Parser::new();
    let mut out = Vec::new();
    for chunk in data.chunks(piece) {
        parser.feed(chunk, &mut |e| {
            out.push((
                e.cursor.map(str::to_owned),
                e.line.map(<[u8]>::to_vec).map_err(|why| format!("{why:?}")),
            ))
        });
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, data)) = data.split_first() else {
        return;
    };
    let whole = entries(data, data.len().max(1));
    // However the pipe cuts the stream, the same entries come out.
    assert_eq!(entries(data, usize::from(first) + 1), whole);
    let mut clock = SyslogClock::new(Zone::utc(), 0);
    for (cursor, line) in &whole {
        if let Ok(line) = line {
            assert!(cursor.is_some(), "a line always has a cursor to resume after");
            assert!(line.len() <= MAX_LINE && !line.contains(&b'\n'));
            let p = parse_prefix(line, &mut clock).expect("the syslog parser reads every line");
            assert_eq!(p.time.offset_minutes, 0);
            assert!(!p.host.is_empty() && !p.program.is_empty());
        }
    }
});
