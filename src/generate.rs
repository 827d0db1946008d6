//! `mtqpd generate man|complete-bash|complete-zsh|complete-fish` (hidden from `--help`): the
//! manual page and the shell completion scripts, made from the command line's own clap
//! definitions and written to standard output, as `rg --generate` does. The Debian package
//! (dist/build-deb.sh) ships them, and they cannot disagree with `--help`.
//!
//! The manual is one page, mtqpd(1), with a section for each subcommand and its flags: an
//! operator reads or searches one page instead of finding mtqpd-serve(1) and its siblings.

use std::io::{self, Write};

use clap::{Args, Command, CommandFactory, ValueEnum};
use clap_complete::Shell;
use clap_mangen::Man;

use crate::cli::Cli;

/// `mtqpd generate` flags.
#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    /// What to write to standard output.
    #[arg(value_enum)]
    pub what: Artifact,
}

/// The files `mtqpd generate` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Artifact {
    /// The manual page mtqpd(1), in roff.
    Man,
    /// The bash completion script.
    CompleteBash,
    /// The zsh completion script (`_mtqpd`).
    CompleteZsh,
    /// The fish completion script.
    CompleteFish,
}

/// The page's sections after the subcommands', which no flag's help carries: where the packaged
/// files are and what the signals do. Roff, written by hand (`\-` is a minus sign).
const TRAILER: &str = r#".SH FILES
.TP
\fI/etc/mtqpd/mtqpd.toml\fR
The settings of \fBmtqpd serve \-\-config\fR, and in its \fB[gate]\fR table those of
\fBmtqpd gate \-\-config\fR, as the Debian package installs them (keys as the flags, \fB_\fR for
\fB\-\fR).
.TP
\fI/var/lib/mtqpd\fR
The state directory of the package's \fBmtqpd.service\fR (\fB\-\-state\-dir\fR): log positions and
tracking records, so that a restart loses nothing.
.TP
\fI/var/log/mtqpd/accept.log\fR
The accept log the package's \fBmtqpd\-gate.service\fR writes and \fBmtqpd serve\fR reads.
.SH SIGNALS
SIGTERM and SIGINT stop \fBserve\fR and \fBgate\fR in order: no new connections, the answers
owed finished, the state saved, the latency histograms printed to standard error. SIGHUP
(\fBsystemctl reload mtqpd\fR) reloads the certificates and keys.
.SH EXIT STATUS
0 on a clean stop; 1 for a bad setting or configuration file (one line on standard error);
2 for a bad command line. \fBmtqpd track\fR has statuses of its own (\fBmtqpd track \-\-help\fR).
.SH SEE ALSO
\fBsystemctl\fR(1), \fBpostfix\fR(1); README.md and docs/ in \fI/usr/share/doc/mtqpd\fR.
"#;

/// The roff that every clap_mangen render begins with: `\*(Aq`, the apostrophe it writes, defined
/// for groff and for other formatters.
const APOSTROPHE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

/// Writes `args.what` to standard output.
pub fn run(args: &GenerateArgs) -> Result<(), String> {
    let mut out = io::stdout().lock();
    write(args.what, &mut out)
        .and_then(|()| out.flush())
        .map_err(|e| format!("generate: cannot write to standard output: {e}"))
}

/// Writes `what` to `out`.
fn write(what: Artifact, out: &mut dyn Write) -> io::Result<()> {
    let shell = match what {
        Artifact::Man => return manual(out),
        Artifact::CompleteBash => Shell::Bash,
        Artifact::CompleteZsh => Shell::Zsh,
        Artifact::CompleteFish => Shell::Fish,
    };
    // A buffer: clap_complete's generator panics on a failed write, and a closed pipe must be
    // an error line like any other.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "mtqpd", &mut script);
    out.write_all(&script)
}

/// mtqpd(1): a title line, clap_mangen's name, synopsis, description and options of `mtqpd`, a
/// section per visible subcommand with its synopsis, description and flags, then [`TRAILER`].
fn manual(out: &mut dyn Write) -> io::Result<()> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Gives each subcommand its full name, `mtqpd serve`, in its synopsis.
    cmd.build();
    let mut body = Vec::new();
    let top = Man::new(cmd.clone());
    top.render_name_section(&mut body)?;
    top.render_synopsis_section(&mut body)?;
    top.render_description_section(&mut body)?;
    top.render_options_section(&mut body)?;
    let subcommands: Vec<&Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    writeln!(body, ".SH COMMANDS")?;
    for sub in &subcommands {
        writeln!(body, ".TP\n\\fBmtqpd {}\\fR", sub.get_name())?;
        if let Some(about) = sub.get_about() {
            writeln!(body, "{}", escape(&about.to_string()))?;
        }
    }
    for sub in subcommands {
        writeln!(body, ".SH \"MTQPD {}\"", sub.get_name().to_uppercase())?;
        let mut text = Vec::new();
        let man = Man::new(sub.clone());
        man.render_synopsis_section(&mut text)?;
        man.render_description_section(&mut text)?;
        man.render_options_section(&mut text)?;
        body.extend(demoted(&String::from_utf8_lossy(&text)).into_bytes());
    }
    // Written by hand: clap_mangen's leaves the date out (an empty argument), which shifts the
    // source and manual into the wrong places. No date: the page is the same on every build.
    let version = env!("CARGO_PKG_VERSION");
    writeln!(out, ".TH MTQPD 1 \"\" \"mtqpd {version}\" \"mtqpd manual\"")?;
    // Each render above begins with the same definition of the apostrophe string; once is enough.
    out.write_all(APOSTROPHE.as_bytes())?;
    let body = String::from_utf8_lossy(&body).replace(APOSTROPHE, "");
    out.write_all(body.as_bytes())?;
    out.write_all(TRAILER.as_bytes())
}

/// A subcommand's sections as subsections of its own (`.SH` to `.SS`). Only a request line
/// starts with `.`: clap_mangen escapes a text line that would.
fn demoted(roff: &str) -> String {
    roff.lines()
        .map(|line| match line.strip_prefix(".SH ") {
            Some(heading) => format!(".SS {heading}\n"),
            None => format!("{line}\n"),
        })
        .collect()
}

/// `text` as one roff text line: backslashes and minus signs escaped, and a leading `.` or `'`
/// kept from being read as a request.
fn escape(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    if text.starts_with(['.', '\'']) {
        format!("\\&{text}")
    } else {
        text
    }
}
