//! What the Debian package ships, against the real binary: the manual page and the shell
//! completions `mtqpd generate` writes (dist/build-deb.sh packages its output), and the default
//! configuration dist/mtqpd.toml, which both `serve` and `gate` must start with.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use clap::CommandFactory;
use mtqpd::cli::Cli;

/// `mtqpd generate WHAT`'s standard output; the command must succeed with nothing on stderr.
fn generate(what: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mtqpd"))
        .args(["generate", what])
        .stdin(Stdio::null())
        .output()
        .expect("run mtqpd generate");
    assert!(out.status.success(), "{what}: status {}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{what}: stderr");
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// `--flag` as roff writes it in bold: `\fB\-\-flag\fR`.
fn roff_flag(long: &str) -> String {
    format!("\\fB\\-\\-{}\\fR", long.replace('-', "\\-"))
}

#[test]
fn the_manual_page_has_every_subcommand_and_its_flags() {
    let page = generate("man");
    assert!(
        page.starts_with(".TH MTQPD 1 \"\" \"mtqpd "),
        "not mtqpd(1):\n{}",
        &page[..page.len().min(200)]
    );
    let cli = Cli::command();
    let visible: Vec<_> = cli.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    assert!(visible.len() >= 5, "serve, demo, gate, track, ingest-check");
    for sub in visible {
        let heading = format!(".SH \"MTQPD {}\"\n", sub.get_name().to_uppercase());
        let at = page
            .find(&heading)
            .unwrap_or_else(|| panic!("no section {heading:?}"));
        // The subcommand's section runs to the next .SH.
        let section = &page[at + heading.len()..];
        let section = &section[..section.find("\n.SH ").unwrap_or(section.len())];
        assert!(
            section.contains(&format!(
                "\\fBmtqpd {}\\fR",
                sub.get_name().replace('-', "\\-")
            )),
            "{heading:?}: no synopsis"
        );
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                assert!(
                    section.contains(&roff_flag(long)),
                    "{heading:?} lacks --{long}"
                );
            }
        }
    }
    // The hidden generator is no subcommand of the page, and the page's own sections follow.
    assert!(!page.contains("MTQPD GENERATE"));
    for tail in [
        ".SH FILES",
        ".SH SIGNALS",
        ".SH EXIT STATUS",
        ".SH SEE ALSO",
    ] {
        assert!(page.contains(tail), "no {tail}");
    }
    // roff's apostrophe string is defined once, after the title.
    assert_eq!(page.matches(".ds Aq \\(aq").count(), 1);
}

#[test]
fn the_completions_know_the_subcommands_and_flags() {
    let bash = generate("complete-bash");
    assert!(bash.contains("complete -F _mtqpd"), "{bash}");
    for word in [
        "serve",
        "gate",
        "ingest-check",
        "--listen",
        "--state-dir",
        "--accept-log",
    ] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    let zsh = generate("complete-zsh");
    assert!(zsh.starts_with("#compdef mtqpd\n"), "{zsh}");
    assert!(zsh.contains("--listen"));
    let fish = generate("complete-fish");
    assert!(fish.contains("complete -c mtqpd"), "{fish}");
    assert!(fish.contains("-l listen"));
}

#[test]
fn generate_names_what_it_makes() {
    let (status, stderr) = run_to_exit(&["generate", "manual"]);
    assert_eq!(status.code(), Some(2), "stderr:\n{stderr}");
    assert_eq!(stderr.lines().count(), 1, "stderr:\n{stderr}");
    assert!(stderr.contains("'manual'"), "{stderr}");
}

/// dist/mtqpd.toml with its absolute paths moved under `root`.
fn packaged_config(root: &Path) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dist/mtqpd.toml");
    let text = std::fs::read_to_string(path).expect("read dist/mtqpd.toml");
    let text = text
        .replace("\"/var/log/", &format!("\"{}/log/", root.display()))
        .replace(":/var/log/", &format!(":{}/log/", root.display()))
        .replace(
            "\"/var/lib/mtqpd\"",
            &format!("\"{}/state\"", root.display()),
        );
    // Every path a setting (not a comment) names is one of those.
    let settings: String = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(
        !settings.contains("/var/") && !settings.contains("/etc/"),
        "dist/mtqpd.toml has a path this test does not move:\n{text}"
    );
    text
}

#[test]
fn serve_starts_with_the_packaged_config() {
    let dir = TempDir::new("package-serve");
    std::fs::create_dir_all(dir.path("log/mtqpd")).expect("mkdir");
    std::fs::create_dir(dir.path("state")).expect("mkdir");
    let config = dir.path("mtqpd.toml");
    std::fs::write(&config, packaged_config(&dir.0)).expect("write config");
    append(
        &dir.path("log/mtqpd/accept.log"),
        &accept_line(&rfc3339(unix_now()), "pkg@example.com", "s3cret", ""),
    );

    // The harness's --listen 127.0.0.1:0 replaces the file's port 1038; --hostname pins the
    // greeting's name.
    let s = Server::start(&[
        "--config",
        config.to_str().expect("UTF-8 path"),
        "--hostname",
        "mx.test",
    ]);
    let mut c = s.connect();
    assert_eq!(
        c.response_bytes(),
        b"+OK/MTQP mx.test MTQP server ready\r\n"
    );
    s.wait_for_stderr("2 log(s)");
    s.wait_for_stderr("ingest caught up: 1 lines");
    drop(c);
    let (status, stderr) = s.stop("TERM");
    assert!(status.success(), "status {status}; stderr:\n{stderr}");
    // state_dir took effect: the state is saved there at shutdown.
    assert!(dir.path("state/state.bin").is_file(), "stderr:\n{stderr}");
}

#[test]
fn the_gate_starts_with_the_packaged_config() {
    let dir = TempDir::new("package-gate");
    std::fs::create_dir_all(dir.path("log/mtqpd")).expect("mkdir");
    let config = dir.path("mtqpd.toml");
    std::fs::write(&config, packaged_config(&dir.0)).expect("write config");

    let s = Server::start_gate(&["--config", config.to_str().expect("UTF-8 path")]);
    s.wait_for_stderr("MTA 127.0.0.1:10025, accept log ");
    let (status, stderr) = s.stop("TERM");
    assert!(status.success(), "status {status}; stderr:\n{stderr}");
    assert!(
        dir.path("log/mtqpd/accept.log").is_file(),
        "stderr:\n{stderr}"
    );
}
