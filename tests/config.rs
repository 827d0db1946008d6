//! `mtqpd serve --config FILE` against the real binary: settings from the file reach the wire
//! (exact bytes), flags given on the command line override the file, a bad file is one line on
//! stderr and exit status 1, and `mtqpd.example.toml` loads. The expected answers are those of
//! tests/wire.rs (RFC 3887 example #6 and docs/ARCHITECTURE.md's `opaque` answer).

mod common;
use common::*;

use std::path::{Path, PathBuf};

const HOST: &str = "example2.com";
const ENVID: &str = "12345-20010101@example.com";
const SECRET: &str = "our own secret for the RFC 3887 examples";
/// Arrival and attempt times of the RFC's examples.
const ARRIVAL: &str = "2001-01-01T15:15:15-05:00";
const ATTEMPT: &str = "2001-01-01T19:15:03-05:00";
/// The servers' clock: 18 days after the examples, so that their records are served only
/// because the file's `retention = "30d"` applies (the default 8d would have expired them).
const NOW: &str = "2001-01-20T00:00:00Z";

const NOINFO: &[u8] = b"-ERR/noinfo No tracking information is available\r\n";
const TOO_MANY_CONNECTIONS: &[u8] =
    b"-TEMP/MTQP/unavailable Too many connections, try again later\r\n";
const CONTENT_TYPE: &str =
    "Content-Type: multipart/related; boundary=mtqp-boundary; type=\"message/tracking-status\"";

/// Lines as they go on the wire: each followed by CRLF.
fn wire(lines: &[&str]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| [l.as_bytes(), b"\r\n"])
        .flatten()
        .copied()
        .collect()
}

/// Asserts exact bytes, showing both sides as text on failure.
#[track_caller]
fn assert_wire(got: &[u8], want: &[u8]) {
    assert_eq!(
        String::from_utf8_lossy(got),
        String::from_utf8_lossy(want),
        "wire bytes differ"
    );
    assert_eq!(got, want);
}

/// A native log in which `envid` was delivered to `rcpt`.
fn delivered_log(envid: &str, rcpt: &str) -> String {
    accept_line(ARRIVAL, envid, SECRET, "")
        + &format!(
            "mtqp: event=rcpt time={ATTEMPT} envid={envid} orcpt=rfc822;{rcpt} rcpt={rcpt} \
             action=delivered status=2.5.0\n"
        )
}

/// The answer for [`delivered_log`], reported by `host`.
fn delivered_answer(host: &str, envid: &str, rcpt: &str) -> Vec<u8> {
    wire(&[
        "+OK+ Tracking information follows",
        CONTENT_TYPE,
        "",
        "--mtqp-boundary",
        "Content-Type: message/tracking-status",
        "",
        &format!("Original-Envelope-Id: {envid}"),
        &format!("Reporting-MTA: dns; {host}"),
        "Arrival-Date: Mon, 1 Jan 2001 15:15:15 -0500",
        "",
        &format!("Original-Recipient: rfc822; {rcpt}"),
        &format!("Final-Recipient: rfc822; {rcpt}"),
        "Action: delivered",
        "Status: 2.5.0",
        "",
        "--mtqp-boundary--",
        ".",
    ])
}

/// The `unknown = "opaque"` answer for `envid`, reported by `host`.
fn opaque_answer(host: &str, envid: &str) -> Vec<u8> {
    wire(&[
        "+OK+ Tracking information follows",
        CONTENT_TYPE,
        "",
        "--mtqp-boundary",
        "Content-Type: message/tracking-status",
        "",
        &format!("Original-Envelope-Id: {envid}"),
        &format!("Reporting-MTA: dns; {host}"),
        "",
        "Final-Recipient: rfc822; unknown",
        "Action: opaque",
        "Status: 5.0.0",
        "",
        "--mtqp-boundary--",
        ".",
    ])
}

fn track(envid: &str) -> String {
    format!("TRACK <{envid}> {}", secret_b64(SECRET))
}

/// Writes `text` as `name` in `dir` and returns its path as text, for `--config`.
fn write_config(dir: &TempDir, name: &str, text: &str) -> String {
    let path = dir.path(name);
    std::fs::write(&path, text).expect("write config");
    path.display().to_string()
}

/// Starts `mtqpd serve --listen 127.0.0.1:0 --config FILE` with FILE = `text` and expects exit
/// status 1 with exactly one stderr line, which it returns.
fn config_fails(dir: &TempDir, text: &str) -> (String, String) {
    let path = write_config(dir, "bad.toml", text);
    let (status, stderr) = run_to_exit(&["serve", "--listen", "127.0.0.1:0", "--config", &path]);
    assert_eq!(
        status.code(),
        Some(1),
        "{text:?}: status {status}; stderr:\n{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{text:?}: stderr:\n{stderr}");
    (path, stderr.trim_end().to_string())
}

#[test]
fn settings_from_the_file_reach_the_wire() {
    let dir = TempDir::new("config-wire");
    let log = dir.path("mail.log");
    append(&log, &delivered_log(ENVID, "user1@example1.com"));
    let config = write_config(
        &dir,
        "mtqpd.toml",
        &format!(
            "hostname = \"{HOST}\"\nunknown = \"opaque\"\nretention = \"30d\"\n\
             max_connections = 1\nlog = [\"native:{}\"]\n",
            log.display()
        ),
    );
    let s = Server::start_caught_up_at(NOW, &["--config", &config]);
    let mut c = s.connect();
    assert_wire(
        &c.response_bytes(),
        b"+OK/MTQP example2.com MTQP server ready\r\n",
    );
    assert_wire(
        &c.roundtrip(&track(ENVID)),
        &delivered_answer(HOST, ENVID, "user1@example1.com"),
    );
    assert_wire(
        &c.roundtrip(&track("nobody@example.com")),
        &opaque_answer(HOST, "nobody@example.com"),
    );
    // max_connections = 1: a second client is refused while the first is open.
    assert_wire(&s.connect().read_to_close(), TOO_MANY_CONNECTIONS);
}

#[test]
fn flags_override_the_file_even_at_their_default_values() {
    let dir = TempDir::new("config-override");
    let (from_file, from_flag) = (dir.path("file.log"), dir.path("flag.log"));
    append(
        &from_file,
        &delivered_log("file-envid@example.com", "a@example1.com"),
    );
    append(
        &from_flag,
        &delivered_log("flag-envid@example.com", "b@example1.com"),
    );
    let config = write_config(
        &dir,
        "mtqpd.toml",
        &format!(
            "hostname = \"file.example\"\nunknown = \"opaque\"\nretention = \"30d\"\n\
             log = [\"native:{}\"]\n",
            from_file.display()
        ),
    );
    let flag_log = format!("native:{}", from_flag.display());
    // `--unknown noinfo` is the default, and still beats the file's `opaque`.
    let s = Server::start_caught_up_at(
        NOW,
        &[
            "--config",
            &config,
            "--hostname",
            HOST,
            "--unknown",
            "noinfo",
            "--log",
            &flag_log,
        ],
    );
    let mut c = s.connect();
    assert_wire(
        &c.response_bytes(),
        b"+OK/MTQP example2.com MTQP server ready\r\n",
    );
    assert_wire(&c.roundtrip(&track("nobody@example.com")), NOINFO);
    // --log replaced the file's list: only the flag's log was read. The file's retention still
    // applies: without it the examples' record would have expired.
    assert_wire(&c.roundtrip(&track("file-envid@example.com")), NOINFO);
    assert_wire(
        &c.roundtrip(&track("flag-envid@example.com")),
        &delivered_answer(HOST, "flag-envid@example.com", "b@example1.com"),
    );
    assert!(s.stderr().contains(", 1 log(s)"), "{}", s.stderr());
}

#[test]
fn unknown_key_is_one_line_naming_it() {
    let dir = TempDir::new("config-unknown-key");
    let (path, line) = config_fails(&dir, "hostname = \"x.example\"\nhostnme = \"y\"\n");
    let want = format!("mtqpd: config {path}: line 2, column 1: unknown field `hostnme`");
    assert!(line.starts_with(&want), "{line}");
}

#[test]
fn syntax_error_is_one_line_with_its_position() {
    let dir = TempDir::new("config-syntax");
    let (path, line) = config_fails(&dir, "hostname = \"x.example\"\nthreads = = 2\n");
    // The second `=` is the 11th character of line 2.
    let want = format!("mtqpd: config {path}: line 2, column 11: ");
    assert!(line.starts_with(&want), "{line}");
}

#[test]
fn bad_values_are_one_line_each() {
    let dir = TempDir::new("config-values");
    // Not a duration: the key and the value's position (the opening quote, column 16).
    let (path, line) = config_fails(&dir, "idle_timeout = \"10 minutes\"\n");
    let want = format!("mtqpd: config {path}: line 1, column 16: idle_timeout: '10 minutes': ");
    assert!(line.starts_with(&want), "{line}");
    // A duration, but under the flag's minimum: the flag's own check, blamed on the file.
    let (path, line) = config_fails(&dir, "retention = \"1h\"\n");
    assert_eq!(
        line,
        format!("mtqpd: config {path}: --retention must be at least 1d (RFC 3885)")
    );
    // The wrong type.
    let (path, line) = config_fails(&dir, "threads = \"4\"\n");
    let want = format!("mtqpd: config {path}: line 1, column 11: invalid type: string \"4\"");
    assert!(line.starts_with(&want), "{line}");
    // A bad log source, through LogSource's parser.
    let (path, line) = config_fails(&dir, "log = [\"mbox:/var/mail/x\"]\n");
    let want = format!("mtqpd: config {path}: line 1, column 8: log: ");
    assert!(line.starts_with(&want), "{line}");
    // A bad value is an error even where a flag overrides it.
    let path = write_config(&dir, "overridden.toml", "retention = \"8x\"\n");
    let (status, stderr) = run_to_exit(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        &path,
        "--retention",
        "9d",
    ]);
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    assert!(stderr.contains("retention: '8x'"), "{stderr}");
}

#[test]
fn unreadable_file_is_one_line() {
    let dir = TempDir::new("config-missing");
    let path = dir.path("absent.toml").display().to_string();
    let (status, stderr) = run_to_exit(&["serve", "--listen", "127.0.0.1:0", "--config", &path]);
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    assert_eq!(stderr.lines().count(), 1, "stderr:\n{stderr}");
    let want = format!("mtqpd: config {path}: cannot open it: ");
    assert!(stderr.starts_with(&want), "{stderr}");
}

/// The name of the user this test runs as.
fn current_user() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .expect("id -un");
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim()
        .to_string()
}

/// The example's paths, and where this test puts them.
fn redirect(example: &str, root: &Path) -> String {
    let text = example
        .replace("/var/log/", &format!("{}/log/", root.display()))
        .replace("/var/lib/mtqpd", &format!("{}/state", root.display()))
        .replace("/etc/mtqpd/", &format!("{}/tls/", root.display()))
        // The example's syslog listeners are on a hub's own network.
        .replace("10.0.0.1:6514", "127.0.0.1:0")
        .replace("10.0.0.1:6515", "127.0.0.1:0")
        // The user this test runs as: becoming it changes nothing (tests/privilege.rs drops).
        .replace(
            "user = \"mtqpd\"",
            &format!("user = \"{}\"", current_user()),
        );
    assert!(
        !text.contains("\"/var/") && !text.contains("\"/etc/"),
        "the example has a path this test does not redirect:\n{text}"
    );
    text
}

#[test]
fn the_example_file_loads() {
    let dir = TempDir::new("config-example");
    let example_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mtqpd.example.toml");
    let example = std::fs::read_to_string(example_path).expect("read the example");
    for sub in ["log", "state", "tls"] {
        std::fs::create_dir_all(dir.path(sub)).expect("mkdir");
    }
    // The example's certificate, made for the name it serves.
    let made = rcgen::generate_simple_self_signed(vec!["mx1.example.com".to_string()])
        .expect("certificate");
    std::fs::write(dir.path("tls/mx1.example.com.pem"), made.cert.pem()).expect("write cert");
    std::fs::write(
        dir.path("tls/mx1.example.com.key"),
        made.key_pair.serialize_pem(),
    )
    .expect("write key");
    // Any certificate will do as the CA of syslog clients' certificates.
    std::fs::write(dir.path("tls/syslog-clients-ca.pem"), made.cert.pem()).expect("write CA");
    let config = write_config(&dir, "mtqpd.toml", &redirect(&example, &dir.0));

    // The harness's --listen 127.0.0.1:0 replaces the example's 0.0.0.0:1038.
    let s = Server::start(&["--config", &config]);
    let mut c = s.connect();
    assert_wire(
        &c.response_bytes(),
        b"+OK+/MTQP mx1.example.com MTQP server ready\r\nSTARTTLS\r\n.\r\n",
    );
    s.wait_for_stderr("mtqpd: 4 worker thread(s), 2 log(s)");
    drop(c);
    let (status, stderr) = s.stop("TERM");
    assert!(status.success(), "status {status}; stderr:\n{stderr}");
    // state_dir took effect: the state is saved there at shutdown.
    assert!(dir.path("state/state.bin").is_file(), "stderr:\n{stderr}");
}
