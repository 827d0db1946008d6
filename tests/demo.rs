//! `mtqpd demo`, the README's first command: it serves a log it writes itself (from the clock it
//! runs under) and prints TRACK lines that show all four outcomes, and a wrong secret that looks
//! like an unknown envid.

mod common;
use common::*;

use std::io::{BufRead, BufReader};

/// The `Action:` lines of an answer, in order.
fn actions(answer: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(answer)
        .lines()
        .filter_map(|l| l.strip_prefix("Action: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_printed_track_lines_show_every_outcome() {
    let (s, stdout) = Server::start_demo();
    let printed: Vec<String> = BufReader::new(stdout)
        .lines()
        .map(|l| l.expect("demo stdout"))
        .take_while(|l| l.trim() != "QUIT")
        .collect();
    // Its log lives in a fresh private directory, not at a name others could plant first.
    let log = printed[0]
        .strip_prefix("mtqpd demo: serving ")
        .and_then(|rest| rest.split(" on ").next())
        .expect("the log's path");
    let dir = std::path::Path::new(log).parent().expect("its directory");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(dir).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700, "{}", dir.display());
    assert_ne!(
        dir.file_name().unwrap().to_string_lossy(),
        format!("mtqpd-demo-{}", s.pid()),
        "a predictable name"
    );
    let tracks: Vec<(String, String)> = printed
        .iter()
        .filter_map(|l| {
            let (command, what) = l.trim().split_once("    # ")?;
            command
                .starts_with("TRACK ")
                .then(|| (command.to_string(), what.to_string()))
        })
        .collect();
    let mut c = s.client();
    let answers: Vec<(Vec<String>, &str)> = tracks
        .iter()
        .map(|(command, what)| (actions(&c.roundtrip(command)), what.as_str()))
        .collect();
    let got: Vec<(Vec<&str>, &str)> = answers
        .iter()
        .map(|(a, what)| (a.iter().map(String::as_str).collect(), *what))
        .collect();
    assert_eq!(
        got,
        [
            (vec!["delivered"], "delivered locally"),
            (vec!["relayed"], "relayed to a remote MX"),
            (
                vec!["delayed"],
                "delayed (delivered one minute after the demo starts)"
            ),
            (
                vec!["relayed", "failed"],
                "two recipients: one relayed, one failed"
            ),
            (vec![], "wrong secret: same answer as unknown"),
        ]
    );
    let wrong = &tracks[4].0;
    let unknown = "TRACK <nobody@example.org> bm90IGEgc2VjcmV0";
    assert_eq!(c.roundtrip(wrong), c.roundtrip(unknown));
    assert_eq!(
        c.roundtrip(unknown),
        b"-ERR/noinfo No tracking information is available\r\n"
    );
    drop(c);
    let (status, stderr) = s.stop("TERM");
    assert!(status.success(), "{stderr}");
}
