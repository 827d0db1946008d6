//! End to end through a mail cluster of two real Postfix hosts on one machine, their real syslog,
//! and two mtqpd replicas: `.ci/cluster-setup.sh` starts Postfix instances hub1 and hub2 (Debian's
//! package, configuration directories of their own) and a real rsyslogd that forwards both
//! hosts' lines (host names `hub1`, `hub2`; tags `postfix-hub1/…`, `postfix-hub2/…`) over TCP
//! to 127.0.0.1:10514 and 127.0.0.1:10515, queueing them while nothing listens.
//!
//! The tests start `mtqpd gate` in front of hub1 (its native lines naming hub1's host,
//! `--mta-host`) and two `mtqpd serve` replicas, one on each forwarding target
//! (`--syslog-listen`), both reading the gate's accept log and knowing hub2 by the address hub1
//! relays to (`--cluster-host hub2=127.0.0.1:10036`). A message with ENVID and
//! MTRK crosses both hosts — hub1 takes it from the gate and relays it (`relay=127.0.0.1
//! [127.0.0.1]:10036 … queued as QID2`), hub2 delivers one recipient, bounces one and defers one
//! — and each recipient must show its outcome on hub2, not the hand-off; a message whose
//! recipients hub1 keeps (delivered locally, deferred) must show hub1's outcomes and nothing of
//! hub2. Both replicas, fed the same stream, must answer TRACK with the same bytes.
//!
//! It runs only when `MTQPD_REAL_CLUSTER=1` (what `.ci/run` exports after the setup script
//! succeeded); otherwise it says it was skipped, except under CI (`CI` set), where a missing
//! cluster is a failure. Envids, secrets and Message-IDs are unique per run: the rsyslogd's
//! queue holds earlier runs' lines and hands them to the replicas first.

mod common;
use common::cluster::{self, QueueCleanup, HUB1, HUB1_CONFIG, HUB1_GATE, HUB2_CONFIG};
use common::real_mta::{self, native_fields, queue_id, track_until, Session};
use common::*;

use std::net::{IpAddr, Ipv4Addr};

use mtqpd::protocol::secret::{encode, sha1};

/// The client's address, announced to hub1 by the gate's PROXY v2 header.
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// A mailbox on hub2, where the bounce of a failed recipient goes.
const SENDER: &str = "sender@cluster.example";
/// On hub2: a mailbox (virtual(8) delivers it), no mailbox (bounced after acceptance, 5.1.1),
/// and a mailbox routed to 127.0.0.1:9, where nothing listens (deferred, 4.4.1).
const OK: &str = "ok@cluster.example";
const BOUNCE: &str = "bounce@cluster.example";
const LATER: &str = "later@cluster.example";
/// Kept by hub1: a local user (local(8) delivers it) and a domain routed to 127.0.0.1:9.
const HUB1_LOCAL: &str = "mtqpdtest@hub1.mtqpd-ci.example";
const HUB1_DEFERRED: &str = "someone@deferred.example";
/// How hub1 and hub2 report the refused connection to 127.0.0.1:9.
const REFUSED: &str =
    "Diagnostic-Code: smtp; connect to 127.0.0.1[127.0.0.1]:9: Connection refused";

/// What one test runs: the gate, its accept log, and the two replicas.
struct Cluster {
    _dir: TempDir,
    accept_log: std::path::PathBuf,
    gate: Server,
    replicas: [Server; 2],
}

impl Cluster {
    fn start(name: &str) -> Cluster {
        let dir = TempDir::new(name);
        let accept_log = dir.path("accept.log");
        let accept = accept_log.display().to_string();
        let gate = Server::start_gate(&[
            "--mta",
            HUB1_GATE,
            "--accept-log",
            &accept,
            "--hostname",
            "gate.mtqpd-ci.example",
            // The host name hub1's lines carry is `hub1`: the FQDN names it too.
            "--mta-host",
            HUB1,
        ]);
        let replicas = cluster::REPLICAS.map(|syslog| cluster::replica(syslog, &accept_log));
        Cluster {
            _dir: dir,
            accept_log,
            gate,
            replicas,
        }
    }

    /// Sends one message with ENVID and MTRK through the gate to hub1; returns hub1's queue id.
    fn send(&self, envid: &str, secret: &str, rcpts: &[&str], message_id: &str) -> String {
        let certifier = encode(&sha1(secret.as_bytes()))
            .trim_end_matches('=')
            .to_string();
        let mut smtp = Session::connect(connect_from(CLIENT, self.gate.addr));
        // hub1's banner, relayed: the gate is in front of hub1.
        assert!(
            smtp.banner.starts_with(&format!("220 {HUB1} ")),
            "not hub1's banner: {:?}",
            smtp.banner
        );
        smtp.command("EHLO client.example", 250);
        let reply = smtp.transaction(
            &format!("MAIL FROM:<{SENDER}> ENVID={envid} MTRK={certifier}"),
            &rcpts
                .iter()
                .map(|r| format!("RCPT TO:<{r}>"))
                .collect::<Vec<_>>(),
            message_id,
        );
        smtp.quit();
        eprintln!("real_cluster: {envid}: {}", reply.trim_end());
        queue_id(&reply)
    }

    /// The gate's native lines for hub1's queue `qid`: an accept line and one per recipient,
    /// each naming hub1 (`--mta-host`) as the host of that queue id.
    fn check_accept_log(&self, qid: &str, rcpts: &[&str]) {
        let log = std::fs::read_to_string(&self.accept_log).expect("read the accept log");
        let lines: Vec<_> = log
            .lines()
            .filter(|l| native_fields(l).get("queue") == Some(&qid))
            .collect();
        assert_eq!(lines.len(), 1 + rcpts.len(), "{log}");
        for line in &lines {
            assert_eq!(
                native_fields(line).get("host"),
                Some(&HUB1),
                "a native line that does not name hub1: {line}"
            );
        }
    }

    /// Polls TRACK on both replicas until they answer with the same bytes (the second may not
    /// have received the last line yet when the first has); returns that answer.
    fn same_answer(&self, envid: &str, secret: &str) -> String {
        let track = |s: &Server| {
            let mut c = s.client();
            c.roundtrip(&format!("TRACK {envid} {}", secret_b64(secret)))
        };
        let mut last = (Vec::new(), Vec::new());
        let same = eventually_or_none(|| {
            last = (track(&self.replicas[0]), track(&self.replicas[1]));
            (last.0 == last.1).then(|| last.0.clone())
        });
        let answer = same.unwrap_or_else(|| {
            panic!(
                "the replicas never answered TRACK {envid} with the same bytes\n\
                 {}:\n{}\n{}:\n{}\nreplica stderr:\n{}\n{}",
                cluster::REPLICAS[0],
                String::from_utf8_lossy(&last.0),
                cluster::REPLICAS[1],
                String::from_utf8_lossy(&last.1),
                self.replicas[0].stderr(),
                self.replicas[1].stderr()
            )
        });
        String::from_utf8(answer).expect("an ASCII answer")
    }
}

/// The hub2 queue id under which hub1's smtp client handed `rcpt` of hub1's queue `qid` to
/// hub2, from hub1's log: `QID: to=<RCPT>, relay=127.0.0.1[127.0.0.1]:10036, … status=sent (250
/// 2.0.0 Ok: queued as QID2)`.
fn handed_to_hub2(qid: &str, rcpt: &str) -> Option<String> {
    let head = format!(" {qid}: to=<{rcpt}>, relay=127.0.0.1[127.0.0.1]:10036, ");
    real_mta::log_lines_with(cluster::HUB1_LOG, &head)
        .into_iter()
        .filter(|l| l.contains(" postfix-hub1/smtp["))
        .find_map(|l| {
            l.split_once(", status=sent (250 2.0.0 Ok: queued as ")
                .and_then(|(_, rest)| rest.strip_suffix(')'))
                .map(str::to_string)
        })
}

/// A message crossing both hosts: each recipient shows hub2's outcome, and both replicas answer
/// with the same bytes.
#[test]
fn a_message_crossing_two_hosts_shows_each_recipients_final_outcome_on_both_replicas() {
    if !cluster::enabled("real_cluster") {
        return;
    }
    let _turn = cluster::exclusive();
    let run = real_mta::run_id();
    let c = Cluster::start("real-cluster-crossing");
    let (envid, secret) = (
        format!("{run}.crossing@envid.example"),
        format!("secret-crossing-{run}"),
    );
    let message_id = format!("{run}.crossing@mtqpd-test.example");
    let rcpts = [OK, BOUNCE, LATER];
    let qid = c.send(&envid, &secret, &rcpts, &message_id);
    let mut hub1_queue = QueueCleanup::new(HUB1_CONFIG);
    hub1_queue.add(&qid);
    let mut hub2_queue = QueueCleanup::new(HUB2_CONFIG);
    c.check_accept_log(&qid, &rcpts);

    // The message really crossed: hub1 handed every recipient to hub2, in one transaction.
    let hops = eventually_or_none(|| {
        rcpts
            .iter()
            .map(|r| handed_to_hub2(&qid, r))
            .collect::<Option<Vec<_>>>()
    })
    .unwrap_or_else(|| {
        panic!(
            "hub1 never relayed {qid} to hub2:\n{}",
            cluster::lines_with(&qid).join("\n")
        )
    });
    let hub2_qid = hops[0].clone();
    hub2_queue.add(&hub2_qid);
    assert!(hops.iter().all(|h| *h == hub2_qid), "{hops:?}");
    assert_ne!(hub2_qid, qid);
    let log = || {
        // hub1's hand-off lines name both queue ids.
        let mut lines = cluster::lines_with(&qid);
        lines.extend(cluster::lines_with(&hub2_qid));
        lines.dedup();
        lines.join("\n")
    };

    // What hub2 did, over MTQP from the first replica: delivered to the mailbox, bounced after
    // acceptance, deferred; no recipient left `relayed` to hub2.
    let body = track_until(
        &c.replicas[0],
        &envid,
        &secret,
        &[
            (OK, &["Action: delivered", "Status: 2.0.0"]),
            (
                BOUNCE,
                &[
                    "Action: failed",
                    "Status: 5.1.1",
                    "Diagnostic-Code: smtp; unknown user: \"bounce@cluster.example\"",
                ],
            ),
            (
                LATER,
                &[
                    "Action: delayed",
                    "Status: 4.4.1",
                    REFUSED,
                    "Will-Retry-Until: ",
                ],
            ),
        ],
        11, // some recipient failed
        log,
    );
    eprintln!("real_cluster: mtqpd track {envid} ->\n{body}");
    assert!(
        body.contains(&format!("Original-Envelope-Id: {envid}\n")),
        "{body}"
    );
    assert_eq!(body.matches("Final-Recipient:").count(), 3, "{body}");
    assert!(!body.contains("Action: relayed"), "{body}");
    // virtual(8) delivered on hub2 and refused connections name no remote MTA: hub2 is where
    // the message went, not an MTA it was handed to.
    assert!(!body.contains("Remote-MTA:"), "{body}");

    // The second replica, fed the same stream, answers with the same bytes.
    let answer = c.same_answer(&envid, &secret);
    assert!(answer.starts_with("+OK"), "{answer}");
    for line in [
        format!("Final-Recipient: rfc822; {OK}\r\nAction: delivered\r\nStatus: 2.0.0\r\n"),
        format!(
            "Final-Recipient: rfc822; {BOUNCE}\r\nAction: failed\r\nStatus: 5.1.1\r\n\
             Diagnostic-Code: smtp; unknown user: \"{BOUNCE}\"\r\n"
        ),
        format!(
            "Final-Recipient: rfc822; {LATER}\r\nAction: delayed\r\nStatus: 4.4.1\r\n{REFUSED}\r\n"
        ),
    ] {
        assert!(answer.contains(&line), "no {line:?} in\n{answer}");
    }
    // A wrong secret learns nothing from either.
    for r in &c.replicas {
        let mut client = r.client();
        let wrong = client.roundtrip(&format!("TRACK {envid} {}", secret_b64("not the secret")));
        assert!(
            wrong.starts_with(b"-ERR"),
            "{}",
            String::from_utf8_lossy(&wrong)
        );
    }
    stop_all(c);
}

/// A message whose recipients hub1 keeps — one delivered by hub1's local(8), one deferred by
/// hub1 — shows hub1's outcomes only, and both replicas answer with the same bytes.
#[test]
fn a_message_hub1_keeps_is_not_confused_with_hub2() {
    if !cluster::enabled("real_cluster") {
        return;
    }
    let _turn = cluster::exclusive();
    let run = real_mta::run_id();
    let c = Cluster::start("real-cluster-hub1");
    let (envid, secret) = (
        format!("{run}.hub1@envid.example"),
        format!("secret-hub1-{run}"),
    );
    let message_id = format!("{run}.hub1@mtqpd-test.example");
    let rcpts = [HUB1_LOCAL, HUB1_DEFERRED];
    let qid = c.send(&envid, &secret, &rcpts, &message_id);
    let mut hub1_queue = QueueCleanup::new(HUB1_CONFIG);
    hub1_queue.add(&qid);
    c.check_accept_log(&qid, &rcpts);
    let log = || cluster::lines_with(&qid).join("\n");

    let body = track_until(
        &c.replicas[0],
        &envid,
        &secret,
        &[
            (HUB1_LOCAL, &["Action: delivered", "Status: 2.0.0"]),
            (
                HUB1_DEFERRED,
                &[
                    "Action: delayed",
                    "Status: 4.4.1",
                    REFUSED,
                    "Will-Retry-Until: ",
                ],
            ),
        ],
        10, // some recipient delayed, none failed
        log,
    );
    eprintln!("real_cluster: mtqpd track {envid} ->\n{body}");
    assert_eq!(body.matches("Final-Recipient:").count(), 2, "{body}");
    assert!(!body.contains("Action: relayed"), "{body}");
    assert!(!body.contains("Remote-MTA:"), "{body}");
    // The message never reached hub2.
    let on_hub2 = real_mta::log_lines_with(cluster::HUB2_LOG, &message_id);
    assert!(on_hub2.is_empty(), "hub2 saw {message_id}: {on_hub2:#?}");

    let answer = c.same_answer(&envid, &secret);
    assert!(answer.starts_with("+OK"), "{answer}");
    for line in [
        format!("Final-Recipient: rfc822; {HUB1_LOCAL}\r\nAction: delivered\r\nStatus: 2.0.0\r\n"),
        format!(
            "Final-Recipient: rfc822; {HUB1_DEFERRED}\r\nAction: delayed\r\nStatus: 4.4.1\r\n\
             {REFUSED}\r\n"
        ),
    ] {
        assert!(answer.contains(&line), "no {line:?} in\n{answer}");
    }
    stop_all(c);
}

/// Stops the gate and the replicas with SIGTERM: each must exit cleanly.
fn stop_all(c: Cluster) {
    let Cluster { gate, replicas, .. } = c;
    for (name, server) in [("mtqpd gate", gate)]
        .into_iter()
        .chain(replicas.into_iter().map(|r| ("mtqpd serve", r)))
    {
        let (status, stderr) = server.stop("TERM");
        assert!(status.success(), "{name}: {status}\n{stderr}");
    }
}
