//! `mtqpd ingest-check`: reads logs once, offline, with the parsers and correlation the server
//! uses, and prints what the server would track (one block per message) and what it could not
//! read (counts by reason), so that operators can check their logs before deploying.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Args;

use crate::index::message::{Message, Retention};
use crate::index::Index;
use crate::ingest::hosts::ClusterHost;
use crate::ingest::native::NativeTags;
use crate::ingest::{replay, IngestConfig, LogSource};

/// How many missing recipients the report names (it counts them all).
const MISSING_SHOWN: usize = 20;

/// `mtqpd ingest-check` flags.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// A log to read, FORMAT:PATH (repeatable). FORMAT: native, postfix, exim or sendmail.
    #[arg(long, value_name = "FORMAT:PATH", required = true)]
    pub log: Vec<LogSource>,
    /// Time zone of timestamps that carry none (as for `serve`).
    #[arg(long, value_name = "ZONE", default_value = "local")]
    pub log_timezone: String,
    /// A syslog program tag whose `mtqp:` lines in an MTA's log are native lines (as for
    /// `serve`; repeatable).
    #[arg(long = "native-tag", value_name = "TAG", default_values_t = NativeTags::DEFAULT.map(String::from))]
    pub native_tags: Vec<String>,
    /// A host of the mail cluster, `NAME=ADDR[:PORT]` (as for `serve`; repeatable).
    #[arg(long = "cluster-host", value_name = "NAME=ADDR[:PORT]")]
    pub cluster_hosts: Vec<ClusterHost>,
    /// Print only the counts, not one block per message.
    #[arg(long)]
    pub counts_only: bool,
}

fn message_block(out: &mut String, m: &Message) {
    let mut arrival = Vec::new();
    m.arrival.write_rfc5322(&mut arrival);
    let _ = writeln!(
        out,
        "message {} (arrived {})",
        String::from_utf8_lossy(&m.envid),
        String::from_utf8_lossy(&arrival)
    );
    for r in &m.recipients {
        let remote = r
            .remote_mta
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {}\t{}\t{}\t{}",
            String::from_utf8_lossy(&r.final_rcpt),
            r.action.name(),
            String::from_utf8_lossy(&r.status),
            remote
        );
    }
}

/// Reads the logs and prints the report to stdout.
pub fn run(args: &CheckArgs) -> Result<(), String> {
    if let Some(s) = args.log.iter().find(|s| s.path().is_none()) {
        return Err(format!(
            "ingest-check reads files; a {:?} journal source is followed by `serve` only",
            s.format
        ));
    }
    crate::ingest::check_sources(&args.log)?;
    let (log_zone, _) = crate::ingest::timezone::Zone::from_setting(&args.log_timezone)
        .map_err(|e| format!("--log-timezone: {e}"))?;
    let config = IngestConfig {
        sources: args.log.clone(),
        reporting_mta: "ingest-check".into(),
        // Offline, nothing expires: the report shows every message the logs describe.
        retention: Retention {
            after_last_event: 100 * 365 * 86_400,
            queue_lifetime: 5 * 86_400,
        },
        state_dir: None,
        snapshot_interval: Duration::from_secs(30),
        log_zone,
        native_tags: NativeTags::new(&args.native_tags),
        stream_native_tags: NativeTags::new(&args.native_tags),
        local_host: crate::settings::system_hostname(),
        cluster_hosts: args.cluster_hosts.clone(),
        notify: None,
    };
    let index = Index::new(1);
    let r = replay(&config, &index);
    let mut out = String::new();
    let mut messages: Vec<Message> = Vec::new();
    r.tracker
        .for_each_message(&index, |m| messages.push(m.clone()));
    if !args.counts_only {
        messages.sort_by(|a, b| (a.arrival.unix, &a.envid).cmp(&(b.arrival.unix, &b.envid)));
        for m in &messages {
            message_block(&mut out, m);
        }
    }
    let g = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let s = &r.stats;
    let _ = writeln!(
        out,
        "lines {}: parsed {}, ignored {}, rejected {}, too long {}",
        g(&s.lines),
        g(&s.applied),
        g(&s.ignored),
        g(&s.rejected),
        g(&s.too_long)
    );
    for (why, n) in &r.rejected {
        let _ = writeln!(out, "  rejected: {why}: {n}");
    }
    let _ = writeln!(
        out,
        "tracked messages {}; queue ids without an accept line (not trackable) {}",
        messages.len(),
        r.tracker.unclaimed_queues()
    );
    let missing = r
        .tracker
        .audit()
        .map(|a| a.missing(&messages))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "recipients missing {} (named by an MTA line of a tracked message, absent from its answer)",
        missing.len()
    );
    for m in missing.iter().take(MISSING_SHOWN) {
        let _ = writeln!(
            out,
            "  missing: {} (queue {}) of {}",
            m.address, m.queue, m.envid
        );
    }
    let (read_back, whole) = crate::ingest::tracker::stored::carried(&index);
    let _ = writeln!(
        out,
        "index records {}: {read_back} read back from their answers, {whole} stored whole",
        index.len()
    );
    print!("{out}");
    Ok(())
}
