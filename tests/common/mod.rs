//! Test harness: starts the real `mtqpd` binary on 127.0.0.1 port 0, talks to it over TCP and
//! reads its stderr. Waits are bounded by deadlines and never assert on timing.
//!
//! Times: a test that writes its own log builds its times from the clock it runs under
//! ([`unix_now`], [`rfc3339`]); a test of a log with fixed dates (the RFC's examples, real MTA
//! logs) starts the server's clock just after them ([`Server::start_caught_up_at`]). No test
//! holds a date that is true only this month: CI also runs them with the clock moved.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod cluster;
pub mod pki;
pub mod postfix;
pub mod real_mta;
pub mod smtp;
pub mod tls;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mtqpd::clock::PIN_VARIABLE;
use mtqpd::protocol::date::Timestamp;
use mtqpd::protocol::response::{parse_response, Response};
use mtqpd::protocol::secret::{encode, sha1};
use mtqpd::protocol::xtext;

/// How long any wait in a test may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A fresh directory for one test, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("mtqpd-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Appends text to a file (creating it), as an MTA's logger would.
pub fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log");
    f.write_all(text.as_bytes()).expect("append log");
}

/// A native log of one delivered message, logged a minute ago: `TRACK <tls-1@example.org>`
/// with secret `s3cret` finds it delivered. Returns the `--log` value.
pub fn log_with_one_message(dir: &TempDir) -> String {
    let log = dir.path("mail.log");
    let now = unix_now();
    append(
        &log,
        &accept_line(
            &rfc3339(now - 60),
            "tls-1@example.org",
            "s3cret",
            "queue=Q1",
        ),
    );
    append(
        &log,
        &format!(
            "mtqp: event=rcpt time={} queue=Q1 rcpt=u@example.net action=delivered status=2.0.0\n",
            rfc3339(now - 59)
        ),
    );
    format!("native:{}", log.display())
}

/// Asks `server` for [`log_with_one_message`]'s message and asserts it is answered delivered.
pub fn assert_one_message_delivered(server: &Server) {
    let answer = server.client().roundtrip(&format!(
        "TRACK <tls-1@example.org> {}",
        secret_b64("s3cret")
    ));
    assert!(
        answer.ends_with(b"Action: delivered\r\nStatus: 2.0.0\r\n\r\n--mtqp-boundary--\r\n.\r\n"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

/// Unix seconds now, by the clock the test runs under.
pub fn unix_now() -> i64 {
    mtqpd::clock::unix_now()
}

/// `unix` in RFC 3339, UTC (`2026-11-24T10:00:00Z`), as native lines carry it.
pub fn rfc3339(unix: i64) -> String {
    let mut s = String::new();
    Timestamp {
        unix,
        offset_minutes: 0,
    }
    .write_rfc3339_utc(&mut s);
    s
}

/// `unix` as a tracking answer shows a UTC date (`Tue, 24 Nov 2026 10:00:00 +0000`).
pub fn rfc5322(unix: i64) -> String {
    let mut v = Vec::new();
    Timestamp {
        unix,
        offset_minutes: 0,
    }
    .write_rfc5322(&mut v);
    String::from_utf8(v).expect("ASCII")
}

/// The base64 secret a client sends for `secret`.
pub fn secret_b64(secret: &str) -> String {
    encode(secret.as_bytes())
}

/// The base64 hash B, unpadded as RFC 3885 carries it, as xtext: the value of a native accept
/// line's `mtrk=`.
pub fn mtrk(secret: &str) -> String {
    let b64 = encode(&sha1(secret.as_bytes()));
    xtext::encode(b64.trim_end_matches('=').as_bytes())
}

/// A native accept line.
pub fn accept_line(time: &str, envid: &str, secret: &str, extra: &str) -> String {
    format!(
        "mtqp: event=accept time={time} envid={envid} mtrk={} {extra}\n",
        mtrk(secret)
    )
    .replace(" \n", "\n")
}

/// The recipient blocks of an answer: the `Final-Recipient` .. `Status` lines of each.
pub fn recipients(answer: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(answer);
    text.split("\r\n\r\n")
        .filter(|block| {
            block.starts_with("Original-Recipient") || block.starts_with("Final-Recipient")
        })
        .map(|block| {
            block
                .lines()
                .filter(|l| {
                    l.starts_with("Final-Recipient")
                        || l.starts_with("Action")
                        || l.starts_with("Status")
                        || l.starts_with("Remote-MTA")
                })
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect()
}

/// Waits until the receiver's kernel has acknowledged every octet written on `client`: then
/// they are in the receiver's socket (or read already), which is what a stop must drain.
/// Loopback delivers in a softirq that a busy machine may defer, so a returned `write` alone
/// does not say that.
pub fn wait_acked(client: &TcpStream) {
    let hex = |addr: SocketAddr| {
        let SocketAddr::V4(a) = addr else {
            panic!("IPv4 only")
        };
        format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(a.ip().octets()),
            a.port()
        )
    };
    // The connection's row by both ends and the ESTABLISHED state (01): a closed connection
    // that used the same local port may still be listed (TIME_WAIT, nothing queued), and
    // reading its row would return before anything was acknowledged.
    let (local, remote) = (
        hex(client.local_addr().unwrap()),
        hex(client.peer_addr().unwrap()),
    );
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        // Fields: sl local rem st tx_queue:rx_queue ...
        let unacked = table.lines().skip(1).find_map(|row| {
            let f: Vec<&str> = row.split_whitespace().collect();
            (f.get(1) == Some(&local.as_str())
                && f.get(2) == Some(&remote.as_str())
                && f.get(3) == Some(&"01"))
            .then(|| f[4].split(':').next().map(str::to_string))?
        });
        match unacked.as_deref() {
            Some("00000000") => return,
            Some(_) => {}
            None => panic!("no established /proc/net/tcp row for {local} -> {remote}"),
        }
        assert!(std::time::Instant::now() < deadline, "never acknowledged");
        std::thread::yield_now();
    }
}

/// The running server.
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `mtqpd serve --listen 127.0.0.1:0 ARGS…` and waits until it listens.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with(args, |_| {})
    }

    /// Like [`Server::start`], letting the caller adjust the command (e.g. wrap it).
    pub fn start_with(args: &[&str], adjust: impl FnOnce(&mut Command)) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtqpd"));
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null());
        adjust(&mut cmd);
        Server::spawn(cmd)
    }

    /// Starts `mtqpd demo --listen 127.0.0.1:0` and waits until it serves its log; returns it
    /// with its standard output, where it prints the TRACK lines to try.
    pub fn start_demo() -> (Server, ChildStdout) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtqpd"));
        cmd.args(["demo", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped());
        let mut s = Server::spawn(cmd);
        s.wait_for_stderr("ingest caught up");
        let stdout = s.child.as_mut().and_then(|c| c.stdout.take());
        (s, stdout.expect("demo stdout"))
    }

    /// Starts `mtqpd gate --listen 127.0.0.1:0 ARGS…` and waits until it listens.
    pub fn start_gate(args: &[&str]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtqpd"));
        cmd.arg("gate")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null());
        Server::spawn_until(cmd, "mtqpd gate: listening on ")
    }

    /// Spawns `cmd` and waits until it listens.
    fn spawn(cmd: Command) -> Server {
        Server::spawn_until(cmd, "mtqpd: listening on ")
    }

    /// Spawns `cmd` and waits for its stderr line `listening` ADDR.
    pub fn spawn_until(mut cmd: Command, listening: &str) -> Server {
        cmd.stdin(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn mtqpd");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let mut server = Server {
            child: Some(child),
            addr: "127.0.0.1:0".parse().unwrap(),
            stderr,
        };
        let line = server.wait_for_stderr(listening);
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|a| a.trim().parse().ok())
            .expect("listening address");
        server.addr = addr;
        server
    }

    /// Starts the server with the open-files limits `soft` and `hard` (via the shell's
    /// `ulimit`).
    pub fn start_with_fd_limits(soft: u32, hard: u32, args: &[&str]) -> Server {
        let exe = env!("CARGO_BIN_EXE_mtqpd");
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!(
                "ulimit -Sn {soft} && ulimit -Hn {hard} && exec \"$0\" \"$@\""
            ))
            .arg(exe)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null());
        Server::spawn(cmd)
    }

    /// Starts the server and waits until its ingest has read every log to the end once.
    pub fn start_caught_up(args: &[&str]) -> Server {
        let s = Server::start(args);
        s.wait_for_stderr("ingest caught up");
        s
    }

    /// Like [`Server::start_caught_up`], with the server's clock started at `now` (RFC 3339)
    /// through the test seam of `src/clock.rs`: for logs whose dates are fixed.
    pub fn start_caught_up_at(now: &str, args: &[&str]) -> Server {
        let s = Server::start_with(args, |cmd| {
            cmd.env(PIN_VARIABLE, now);
        });
        s.wait_for_stderr("ingest caught up");
        s
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until a stderr line contains `needle` and returns that line.
    pub fn wait_for_stderr(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self.stderr().lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no '{needle}' on stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// CPU time the server process has used so far (user + system), in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("proc stat");
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let after = &stat[stat.rfind(')').expect("comm") + 2..];
        let fields: Vec<&str> = after.split(' ').collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    /// Resident set size of the server process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// A connected client whose greeting has been read.
    pub fn client(&self) -> Client {
        let mut c = self.connect();
        let greeting = c.response();
        assert!(
            greeting.status.starts_with(b"+OK"),
            "greeting: {greeting:?}"
        );
        c
    }

    /// Sends a signal (by name, e.g. "HUP") and returns at once.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{signal} failed");
    }

    /// Sends a signal (by name, e.g. "TERM") and waits for the exit; returns status and stderr.
    pub fn stop(mut self, signal: &str) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{signal} failed");
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "server did not exit after SIG{signal}"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        // Let the stderr reader take the last lines.
        std::thread::sleep(Duration::from_millis(100));
        let stderr = self.stderr();
        (status, stderr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A test client over plain TCP.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::from_stream(TcpStream::connect(addr).expect("connect"))
    }

    /// A client over a connection made elsewhere (from another source address, say).
    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 65536];
        let n = self.stream.read(&mut chunk).expect("read (timed out?)");
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Reads one whole response.
    pub fn response(&mut self) -> Response {
        loop {
            if let Some(r) = parse_response(&self.buf).expect("a status line") {
                self.buf.drain(..r.wire_len);
                return r;
            }
            assert!(
                self.fill() > 0,
                "connection closed mid-response: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// Reads one whole response and returns its exact wire bytes.
    pub fn response_bytes(&mut self) -> Vec<u8> {
        loop {
            if let Some(r) = parse_response(&self.buf).expect("a status line") {
                return self.buf.drain(..r.wire_len).collect();
            }
            assert!(
                self.fill() > 0,
                "connection closed mid-response: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// Sends one command line (CRLF added) and returns the response's wire bytes.
    pub fn roundtrip(&mut self, line: &str) -> Vec<u8> {
        self.send(format!("{line}\r\n").as_bytes());
        self.response_bytes()
    }

    /// Sends `bytes` one octet every `interval` from another thread, until they are all sent
    /// or the connection fails: a client that keeps sending but never completes a command.
    pub fn trickle(&self, bytes: &'static [u8], interval: Duration) -> std::thread::JoinHandle<()> {
        let mut stream = self.stream.try_clone().expect("clone");
        std::thread::spawn(move || {
            for b in bytes {
                if stream.write_all(std::slice::from_ref(b)).is_err() {
                    return;
                }
                std::thread::sleep(interval);
            }
        })
    }

    /// Reads until the server closes; returns what came before the close. A server that
    /// closes while octets we sent are still unread in its socket closes with a reset after
    /// what it wrote (a trickling client's last byte can arrive just after the server's last
    /// read): that ends the stream too.
    pub fn read_to_close(&mut self) -> Vec<u8> {
        let mut chunk = [0u8; 65536];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("read (timed out?): {e}"),
            }
        }
        std::mem::take(&mut self.buf)
    }
}

/// A TCP connection to `addr` from the local address `source` (another loopback address, say:
/// 127.0.0.2 is on the loopback interface too), bound before connecting, as std cannot.
pub fn connect_from(source: std::net::IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .expect("socket");
    socket
        .bind(&SocketAddr::new(source, 0).into())
        .unwrap_or_else(|e| panic!("bind {source}: {e}"));
    socket
        .connect(&addr.into())
        .unwrap_or_else(|e| panic!("connect from {source} to {addr}: {e}"));
    socket.into()
}

/// True when `strace` runs here (CI installs it: .ci/run).
pub fn strace_usable() -> bool {
    Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `mtqpd ARGS…` to its exit (killing it after the deadline); returns status and stderr.
pub fn run_to_exit(args: &[&str]) -> (ExitStatus, String) {
    run_to_exit_with(args, |_| {})
}

/// Like [`run_to_exit`], letting the caller adjust the command (its environment, say).
pub fn run_to_exit_with(args: &[&str], adjust: impl FnOnce(&mut Command)) -> (ExitStatus, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtqpd"));
    adjust(&mut cmd);
    let mut child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mtqpd");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mtqpd {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    (status, stderr)
}

/// Polls `f` until it returns Some, within the deadline; None when it never did (for a
/// failure message that shows what was last seen).
pub fn eventually_or_none<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() >= DEADLINE {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `f` until it returns Some, within the deadline.
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
