//! A mail cluster's logs through the real server: queue ids are qualified by the host that
//! logged them (the same id on two hosts names two messages), a message one host relays to
//! another host of the cluster is followed there (`--cluster-host`), and a stranger's MX whose
//! reply names a cluster host's queue id is not. Lines are the forms Postfix writes, dated from
//! the clock the test runs under.

mod common;
use common::*;

use std::path::Path;

/// `host`'s Postfix line `program: text`, logged `ago` seconds before now (rsyslog's RFC 3339
/// file format, which carries each line's host).
fn line(ago: i64, host: &str, program: &str, text: &str) -> String {
    format!(
        "{} {host} postfix/{program}[{}]: {text}\n",
        rfc3339(unix_now() - ago),
        100 + program.len()
    )
}

/// The gate's accept line for `envid`, naming its queue id on `host`.
fn accepted(envid: &str, queue: &str, host: &str) -> String {
    accept_line(
        &rfc3339(unix_now() - 60),
        envid,
        "s3cret",
        &format!("queue={queue} host={host}"),
    )
}

/// hub1's lines: `queue` arrives and its recipients go to `relay`, which says `queued as next`.
fn relayed_by_hub1(queue: &str, rcpts: &[&str], relay: &str, next: &str) -> String {
    let mut s = line(
        59,
        "hub1",
        "smtpd",
        &format!("{queue}: client=c.example[192.0.2.1]"),
    );
    s += &line(
        59,
        "hub1",
        "qmgr",
        &format!("{queue}: from=<s@example.org>, size=300, nrcpt=2 (queue active)"),
    );
    for r in rcpts {
        s += &line(
            58,
            "hub1",
            "smtp",
            &format!(
                "{queue}: to=<{r}>, relay={relay}, delay=1, delays=0/0/0/1, dsn=2.0.0, \
                 status=sent (250 2.0.0 Ok: queued as {next})"
            ),
        );
    }
    s + &line(58, "hub1", "qmgr", &format!("{queue}: removed"))
}

/// `host`'s lines: `queue` arrives from `client` and `outcomes` (recipient, local(8)'s
/// `dsn=…, status=…`) are logged.
fn delivered_on(host: &str, queue: &str, outcomes: &[(&str, &str)]) -> String {
    let mut s = line(
        57,
        host,
        "smtpd",
        &format!("{queue}: client=localhost[127.0.0.1]"),
    );
    for (r, outcome) in outcomes {
        s += &line(
            56,
            host,
            "local",
            &format!("{queue}: to=<{r}>, relay=local, delay=1, delays=0/0/0/1, {outcome}"),
        );
    }
    s + &line(56, host, "qmgr", &format!("{queue}: removed"))
}

const DELIVERED: &str = "dsn=2.0.0, status=sent (delivered to mailbox)";
const BOUNCED: &str = "dsn=5.1.1, status=bounced (unknown user: \"b\")";

fn track(s: &Server, envid: &str) -> Vec<String> {
    recipients(
        &s.client()
            .roundtrip(&format!("TRACK <{envid}> {}", secret_b64("s3cret"))),
    )
}

fn start(logs: &[String], extra: &[&str]) -> Server {
    let mut args = vec!["--hostname", "hub.example"];
    for l in logs {
        args.extend(["--log", l]);
    }
    args.extend(extra);
    Server::start_caught_up(&args)
}

fn log_arg(format: &str, path: &Path, host: &str) -> String {
    format!("{format}:{},host={host}", path.display())
}

#[test]
fn a_message_relayed_to_a_cluster_host_is_followed_there_and_its_ids_never_mix() {
    let dir = TempDir::new("cluster-follow");
    let (collector, accept) = (dir.path("mail.log"), dir.path("accept.log"));
    append(&accept, &accepted("e1@envid.example", "4AB1C2", "hub1"));
    // One collector file of both hosts. While hub1's message is in its queue, hub2 delivers a
    // message of its own under the very same id (Postfix's short ids collide across hosts): it
    // must not show in our answer.
    let hub1 = relayed_by_hub1(
        "4AB1C2",
        &["a@cluster.example", "b@cluster.example"],
        "127.0.0.1[127.0.0.1]:10036",
        "7DE8F9",
    );
    let (arrived, went_on) = hub1.split_at(hub1.match_indices('\n').nth(1).unwrap().0 + 1);
    append(
        &collector,
        &(arrived.to_string()
            + &delivered_on("hub2", "4AB1C2", &[("victim@cluster.example", DELIVERED)])
            + went_on
            + &delivered_on(
                "hub2.example.com",
                "7DE8F9",
                &[
                    ("a@cluster.example", DELIVERED),
                    ("b@cluster.example", BOUNCED),
                ],
            )),
    );
    let s = start(
        &[
            log_arg("postfix", &collector, "*"),
            format!("native:{}", accept.display()),
        ],
        &["--cluster-host", "hub2=127.0.0.1:10036"],
    );
    assert_eq!(
        track(&s, "e1@envid.example"),
        [
            "Final-Recipient: rfc822; a@cluster.example | Action: delivered | Status: 2.0.0",
            "Final-Recipient: rfc822; b@cluster.example | Action: failed | Status: 5.1.1"
        ]
    );
}

#[test]
fn until_the_next_host_s_lines_come_the_recipient_is_relayed_and_a_restart_keeps_the_hosts() {
    let dir = TempDir::new("cluster-later");
    let (hub1, hub2, accept) = (
        dir.path("hub1.log"),
        dir.path("hub2.log"),
        dir.path("accept.log"),
    );
    let state = dir.path("state");
    std::fs::create_dir_all(&state).unwrap();
    append(&accept, &accepted("e2@envid.example", "5AB1C2", "hub1"));
    append(
        &hub1,
        &relayed_by_hub1(
            "5AB1C2",
            &["a@cluster.example"],
            "hub2.example.com[10.0.0.2]:25",
            "8DE8F9",
        ),
    );
    // Files of one host each: the names their lines carry do not matter.
    append(
        &hub2,
        &delivered_on("other-name", "5AB1C2", &[("victim@x", DELIVERED)]),
    );
    let logs = [
        log_arg("postfix", &hub1, "hub1"),
        log_arg("postfix", &hub2, "hub2"),
        format!("native:{}", accept.display()),
    ];
    let extra = [
        "--cluster-host",
        "hub2=10.0.0.2",
        "--state-dir",
        state.to_str().unwrap(),
    ];
    let s = start(&logs, &extra);
    assert_eq!(
        track(&s, "e2@envid.example"),
        ["Final-Recipient: rfc822; a@cluster.example | Action: relayed | Status: 2.0.0 | Remote-MTA: dns; hub2.example.com"]
    );
    let (status, _) = s.stop("TERM");
    assert!(status.success());
    append(
        &hub2,
        &delivered_on("other-name", "8DE8F9", &[("a@cluster.example", DELIVERED)]),
    );
    let s = start(&logs, &extra);
    assert_eq!(
        track(&s, "e2@envid.example"),
        ["Final-Recipient: rfc822; a@cluster.example | Action: delivered | Status: 2.0.0"]
    );
}

/// The attack: anyone's domain may have an MX named like a host of the cluster
/// (`hub2.attacker.example`) that answers `queued as` with one of hub2's queue ids. Followed,
/// hub2's message — a stranger's — would show in the attacker's answer.
#[test]
fn a_stranger_s_mx_named_like_a_cluster_host_is_not_followed() {
    let dir = TempDir::new("cluster-stranger");
    let (collector, accept) = (dir.path("mail.log"), dir.path("accept.log"));
    append(&accept, &accepted("e3@envid.example", "6AB1C2", "hub1"));
    append(
        &collector,
        &(delivered_on("hub2", "9DE8F9", &[("secret@cluster.example", DELIVERED)])
            + &relayed_by_hub1(
                "6AB1C2",
                &["c@attacker.example"],
                "hub2.attacker.example[192.0.2.9]:25",
                "9DE8F9",
            )),
    );
    let s = start(
        &[
            log_arg("postfix", &collector, "*"),
            format!("native:{}", accept.display()),
        ],
        &["--cluster-host", "hub2=10.0.0.2:25"],
    );
    assert_eq!(
        track(&s, "e3@envid.example"),
        ["Final-Recipient: rfc822; c@attacker.example | Action: relayed | Status: 2.0.0 | Remote-MTA: dns; hub2.attacker.example"]
    );
}

/// The port of serve's `--syslog-listen tcp:127.0.0.1:0`, from its start-up line.
fn syslog_port(s: &Server) -> u16 {
    let stderr = s.wait_for_stderr("mtqpd: syslog on tcp:");
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("mtqpd: syslog on tcp:"))
        .unwrap();
    line.rsplit(':').next().unwrap().parse().unwrap()
}

/// RFC 6587 octet counting of each line, as rsyslog sends them (its traditional forward format:
/// `<PRI>` then the line).
fn frames(lines: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines.lines() {
        let msg = format!("<22>{l}");
        out.extend_from_slice(format!("{} {msg}", msg.len()).as_bytes());
    }
    out
}

#[test]
fn received_lines_reach_answers_and_sigterm_drains_them_into_the_snapshot() {
    use std::io::Write;
    let dir = TempDir::new("cluster-receiver");
    let (accept, state) = (dir.path("accept.log"), dir.path("state"));
    std::fs::create_dir_all(&state).unwrap();
    append(&accept, &accepted("e4@envid.example", "7AB1C2", "hub1"));
    // A native accept line forged under the default tag, by whoever can send syslog: not
    // trusted from the receiver unless --native-tag says so.
    let forged = accept_line(
        &rfc3339(unix_now() - 60),
        "forged@envid.example",
        "s3cret",
        "queue=7AB1C2 host=hub1",
    );
    let forged = format!(
        "{} hub1 mtqp[9]: {}",
        rfc3339(unix_now() - 60),
        forged.trim_end()
    );
    let args = [
        "--hostname",
        "hub.example",
        "--syslog-listen",
        "tcp:127.0.0.1:0",
        "--log",
        &format!("native:{}", accept.display()),
        "--state-dir",
        state.to_str().unwrap(),
    ];
    let s = Server::start_caught_up(&args);
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", syslog_port(&s))).unwrap();
    let first = line(59, "hub1", "smtpd", "7AB1C2: client=c.example[192.0.2.1]")
        + &forged
        + "\n"
        + &line(
            58,
            "hub1",
            "local",
            &format!(
                "7AB1C2: to=<a@hub1.example>, relay=local, delay=1, delays=0/0/0/1, {DELIVERED}"
            ),
        );
    tcp.write_all(&frames(&first)).unwrap();
    let want_a = "Final-Recipient: rfc822; a@hub1.example | Action: delivered | Status: 2.0.0";
    let got = eventually_or_none(|| {
        let got = track(&s, "e4@envid.example");
        (got == [want_a]).then_some(got)
    });
    assert!(got.is_some(), "{:?}", track(&s, "e4@envid.example"));
    assert_eq!(
        s.client().roundtrip(&format!(
            "TRACK <forged@envid.example> {}",
            secret_b64("s3cret")
        )),
        b"-ERR/noinfo No tracking information is available\r\n"
    );
    // Written, in the server's socket, then SIGTERM at once: drained into the snapshot.
    let second = line(
        57,
        "hub1",
        "local",
        &format!("7AB1C2: to=<b@hub1.example>, relay=local, delay=1, delays=0/0/0/1, {BOUNCED}"),
    );
    tcp.write_all(&frames(&second)).unwrap();
    wait_acked(&tcp);
    let (status, stderr) = s.stop("TERM");
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("mtqpd: syslog receiver: "), "{stderr}");
    let s = Server::start_caught_up(&args);
    assert_eq!(
        track(&s, "e4@envid.example"),
        [
            want_a,
            "Final-Recipient: rfc822; b@hub1.example | Action: failed | Status: 5.1.1"
        ]
    );
}
