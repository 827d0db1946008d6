//! `--user`: started as root, `serve` and the gate become the user once their listeners are
//! bound, in every thread (real, effective, saved and filesystem ids; no capability), and go
//! on serving; what the user cannot read or write is a one-line start-up error; a user that is
//! not root cannot become another. These tests need root (CI runs them as root) and fail,
//! saying so, without it.

mod common;
use common::*;

use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

/// Output of `id ARGS`, trimmed.
fn id(args: &[&str]) -> String {
    let out = Command::new("id").args(args).output().expect("id");
    assert!(out.status.success(), "id {args:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Fails the test unless it runs as root: dropping privileges cannot be tested without them.
fn require_root() {
    assert_eq!(
        id(&["-u"]),
        "0",
        "tests/privilege.rs needs root (to test --user); run it as root, as CI does"
    );
}

/// nobody's uid, gid and groups (sorted).
fn nobody() -> (u32, u32, Vec<u32>) {
    let number = |s: &str| s.parse::<u32>().unwrap();
    let mut groups: Vec<u32> = id(&["-G", "nobody"]).split(' ').map(number).collect();
    groups.sort_unstable();
    (
        number(&id(&["-u", "nobody"])),
        number(&id(&["-g", "nobody"])),
        groups,
    )
}

/// A directory nobody owns, mode 0700 (a state directory).
fn nobodys_dir(path: &Path) {
    let (uid, gid, _) = nobody();
    std::fs::create_dir(path).unwrap();
    chown(path, Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).unwrap();
}

/// Asserts that process `pid` and each of its threads run as nobody, with no capability;
/// returns how many threads there are.
fn assert_every_thread_is_nobody(pid: u32) -> usize {
    let (uid, gid, groups) = nobody();
    let field = |status: &str, name: &str| -> String {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {status}"))
            .trim()
            .to_string()
    };
    let check = |status: &str, whose: &str| {
        // Real, effective, saved and filesystem ids.
        assert_eq!(
            field(status, "Uid:"),
            format!("{uid}\t{uid}\t{uid}\t{uid}"),
            "{whose}"
        );
        assert_eq!(
            field(status, "Gid:"),
            format!("{gid}\t{gid}\t{gid}\t{gid}"),
            "{whose}"
        );
        let mut held: Vec<u32> = field(status, "Groups:")
            .split_whitespace()
            .map(|g| g.parse().unwrap())
            .collect();
        held.sort_unstable();
        assert_eq!(held, groups, "{whose}: supplementary groups");
        for cap in ["CapPrm:", "CapEff:", "CapAmb:"] {
            assert_eq!(field(status, cap), "0000000000000000", "{whose} {cap}");
        }
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    check(&status, "the process");
    let mut threads = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let status = std::fs::read_to_string(task.join("status")).unwrap();
        check(&status, &task.display().to_string());
        threads += 1;
    }
    threads
}

#[test]
fn serve_as_nobody_in_every_thread_and_still_serving() {
    require_root();
    let dir = TempDir::new("privilege-serve");
    // Written by root, readable by all (0644): nobody reads it, as it would after rotation.
    let log = log_with_one_message(&dir);
    let state = dir.path("state");
    nobodys_dir(&state);
    let s = Server::start_caught_up(&[
        "--user",
        "nobody",
        "--log",
        &log,
        "--state-dir",
        state.to_str().unwrap(),
        "--threads",
        "2",
        "--syslog-listen",
        "tcp:127.0.0.1:0",
    ]);
    let (uid, gid, _) = nobody();
    assert!(
        s.stderr().contains(&format!(
            "mtqpd: running as user nobody (uid {uid}, gid {gid})\n"
        )),
        "{}",
        s.stderr()
    );
    // The main thread, two workers, ingest and the syslog receiver at least.
    let threads = assert_every_thread_is_nobody(s.pid());
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).unwrap();
    assert!(status.contains("\nNoNewPrivs:\t1\n"), "{status}");
    assert!(threads >= 5, "{threads} threads");
    assert_one_message_delivered(&s);
    let (status, stderr) = s.stop("TERM");
    assert!(status.success(), "{stderr}");
    // The state was written, by nobody.
    let saved = std::fs::metadata(state.join("state.bin")).expect("state saved");
    assert_eq!(saved.uid(), uid);
}

#[test]
fn the_gate_as_nobody_writes_its_accept_log_as_nobody() {
    require_root();
    let dir = TempDir::new("privilege-gate");
    let logs = dir.path("logs");
    nobodys_dir(&logs);
    let accept_log = logs.join("accept.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtqpd"));
    cmd.args(["gate", "--listen", "127.0.0.1:0", "--mta", "127.0.0.1:25"])
        .args(["--user", "nobody", "--threads", "2", "--accept-log"])
        .arg(&accept_log)
        .stdout(Stdio::null());
    let gate = Server::spawn_until(cmd, "mtqpd gate: listening on ");
    // The main thread, two workers and the accept log's writer.
    let threads = assert_every_thread_is_nobody(gate.pid());
    assert!(threads >= 4, "{threads} threads");
    let (uid, _, _) = nobody();
    assert_eq!(std::fs::metadata(&accept_log).unwrap().uid(), uid);
    let (status, stderr) = gate.stop("TERM");
    assert!(status.success(), "{stderr}");
}

/// `--mta unix:PATH` in a directory the user may not enter (Postfix's public/ without the
/// group postdrop): said at start-up, and each session is told 421 while the MTA hears nothing.
#[test]
fn the_gate_as_nobody_warns_of_a_unix_socket_it_cannot_reach() {
    require_root();
    let dir = TempDir::new("privilege-gate-socket");
    let private = dir.path("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let socket = private.join("smtpd");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    listener.set_nonblocking(true).unwrap();
    let mta = format!("unix:{}", socket.display());
    let logs = dir.path("logs");
    nobodys_dir(&logs);
    let accept_log = logs.join("accept.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtqpd"));
    cmd.args(["gate", "--listen", "127.0.0.1:0", "--mta", &mta])
        .args([
            "--user",
            "nobody",
            "--hostname",
            "gate.test",
            "--accept-log",
        ])
        .arg(&accept_log)
        .stdout(Stdio::null());
    let gate = Server::spawn_until(cmd, "mtqpd gate: listening on ");
    let mut client = common::smtp::Smtp::connect(gate.addr);
    assert_eq!(
        client.read_to_close(),
        "421 4.3.2 gate.test Service not available, closing transmission channel\r\n"
    );
    assert_eq!(
        listener.accept().map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::WouldBlock),
        "a connection reached the socket"
    );
    let (status, stderr) = gate.stop("TERM");
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "mtqpd gate: warning: --mta {mta}: Permission denied (os error 13): the gate's user \
             cannot reach the socket (for Postfix's public/, the group postdrop can) (as --user \
             nobody)\n"
        )),
        "{stderr}"
    );
}

#[test]
fn what_the_user_cannot_use_is_a_one_line_start_up_error() {
    require_root();
    let dir = TempDir::new("privilege-errors");
    let log = log_with_one_message(&dir);
    let log_path = log.strip_prefix("native:").unwrap();
    // root's own state directory: nobody cannot write it.
    let state = dir.path("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let state = state.to_str().unwrap();
    let serve = |extra: &[&str]| {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--user", "nobody"];
        args.extend_from_slice(extra);
        run_to_exit(&args)
    };
    let (status, stderr) = serve(&["--log", &log, "--state-dir", state]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    let want = format!("mtqpd: state directory {state} is not writable: ");
    assert!(
        stderr.lines().last().unwrap().starts_with(&want),
        "{stderr}"
    );
    assert!(stderr.ends_with(" (as --user nobody)\n"), "{stderr}");

    // A log only root reads.
    std::fs::set_permissions(log_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (status, stderr) = serve(&["--log", &log]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap();
    assert!(
        last.starts_with(&format!(
            "mtqpd: log {log_path} is not readable: Permission denied"
        )),
        "{stderr}"
    );
    assert!(last.ends_with(" (as --user nobody)"), "{stderr}");

    // The gate: an accept log in root's directory.
    let accept_log = dir.path("accept.log");
    let (status, stderr) = run_to_exit(&[
        "gate",
        "--listen",
        "127.0.0.1:0",
        "--mta",
        "127.0.0.1:25",
        "--user",
        "nobody",
        "--accept-log",
        accept_log.to_str().unwrap(),
    ]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.lines().last().unwrap(),
        format!(
            "mtqpd: cannot open the accept log {}: Permission denied (os error 13) (as --user nobody)",
            accept_log.display()
        )
    );

    let (status, stderr) = run_to_exit(&["serve", "--user", "no-such-user-mtqpd"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stderr, "mtqpd: --user no-such-user-mtqpd: no such user\n");
}

#[test]
fn a_user_other_than_root_becomes_no_one_else() {
    require_root();
    let dir = TempDir::new("privilege-unprivileged");
    // Run as nobody from the start (setpriv, util-linux), from a copy nobody may execute.
    let exe = dir.path("mtqpd");
    std::fs::copy(env!("CARGO_BIN_EXE_mtqpd"), &exe).unwrap();
    let (uid, gid, _) = nobody();
    let as_nobody = |user: &str| {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=nobody", &format!("--regid={gid}"), "--init-groups"])
            // Without libfaketime (.ci/shifted-clock): as nobody it cannot open the semaphore
            // its root parent made and says so on stderr, which this test reads to the byte.
            // Nothing here depends on the date.
            .env_remove("LD_PRELOAD")
            .arg(&exe)
            .args(["serve", "--listen", "127.0.0.1:0", "--user", user])
            .stdout(Stdio::null());
        cmd
    };
    let out = as_nobody("root")
        .stderr(Stdio::piped())
        .output()
        .expect("setpriv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "mtqpd: --user root: only root can become another user, and this process is uid \
             {uid} (start it as root, or as root without --user)\n"
        )
    );
    // Naming the user it already is changes nothing.
    let s = Server::spawn_until(as_nobody("nobody"), "mtqpd: listening on ");
    assert_every_thread_is_nobody(s.pid());
    s.client();
    let (status, stderr) = s.stop("TERM");
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("running as user"), "{stderr}");
}
