//! `aps import crontab`: translate crontabs into `[[jobs]]` tables of the daemon config, so
//! that each job runs as it ran under cron.
//!
//! - [`parse`]: one line as cron reads it (environment setting, job line, `%` rules);
//! - [`translate`](mod@translate): a whole crontab, environment lines applying to the job lines after them;
//! - [`inputs`]: which files are read, in which format, and the job id of each line;
//! - [`render`]: the TOML text.
//!
//! Every line is either converted or reported on standard error with its file, line and the
//! reason; the exit status is 1 when some line was left out.

mod inputs;
mod parse;
mod render;
mod translate;

#[cfg(test)]
mod tests;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub(crate) use parse::expand_macro;

use inputs::{dir_inputs, is_system_path, Input, Prefixes};
use translate::{translate, Severity, Source};

/// The arguments of `aps import crontab`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct CrontabArgs {
    /// Crontab files (`-`: standard input). `/etc/crontab` and files in `/etc/cron.d` are
    /// read in the system format (with a user column); others as user crontabs
    /// (`crontab -l` output) unless `--system` is given.
    #[arg(value_name = "FILE", required_unless_present = "dir")]
    pub(crate) files: Vec<PathBuf>,
    /// Read every FILE in the system format: `min hour dom mon dow user command`.
    #[arg(long)]
    pub(crate) system: bool,
    /// A cron.d folder: convert each crontab in it (system format), skipping the file names
    /// cron skips (each reported). May be given more than once.
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Vec<PathBuf>,
    /// The owner of the user crontabs read: their jobs run as this user, who gets their
    /// output by mail when the crontab sets no MAILTO.
    #[arg(long, value_name = "USER", conflicts_with = "system")]
    pub(crate) user: Option<String>,
}

/// Runs `aps import crontab`: prints the TOML on standard output and the reports on standard
/// error. Exit status: 0 when every line was converted, 1 when some line was left out, 2
/// when a named file or folder cannot be read or the output cannot be written.
pub(crate) fn run(args: &CrontabArgs) -> ExitCode {
    run_with(
        args,
        &mut std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )
}

/// Reads a whole input as text (`-`: `stdin`).
fn read_input(path: &Path, stdin: &mut dyn Read) -> std::io::Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        stdin.read_to_string(&mut text)?;
        Ok(text)
    } else {
        std::fs::read_to_string(path)
    }
}

/// [`run`] with its streams passed in (tests capture them).
fn run_with(
    args: &CrontabArgs,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> ExitCode {
    // A failing write to standard error leaves nothing better to do: those are ignored.
    let mut inputs: Vec<(Input, bool)> = args
        .files
        .iter()
        .map(|path| {
            let system = args.system || (path != Path::new("-") && is_system_path(path));
            (
                Input::Read {
                    path: path.clone(),
                    system,
                },
                true,
            )
        })
        .collect();
    for dir in &args.dir {
        match dir_inputs(dir) {
            Ok(found) => inputs.extend(found.into_iter().map(|i| (i, false))),
            Err(e) => {
                let _ = writeln!(err, "error: cannot read the folder {}: {e}", dir.display());
                return ExitCode::from(2);
            }
        }
    }

    let mut prefixes = Prefixes::default();
    let mut files = Vec::new();
    let mut jobs = Vec::new();
    let mut reports = Vec::new();
    let mut left_out = false;
    for (input, named) in inputs {
        let (path, system) = match input {
            Input::Read { path, system } => (path, system),
            Input::Skip { path, reason } => {
                reports.push(format!("{}: skipped file: {reason}", path.display()));
                continue;
            }
        };
        let file = if path == Path::new("-") {
            "(standard input)".to_owned()
        } else {
            path.display().to_string()
        };
        let text = match read_input(&path, stdin) {
            Ok(text) => text,
            Err(e) if named => {
                let _ = writeln!(err, "error: cannot read {file}: {e}");
                return ExitCode::from(2);
            }
            Err(e) => {
                left_out = true;
                reports.push(format!("{file}: left out: cannot read it: {e}"));
                continue;
            }
        };
        if system && args.user.is_some() {
            reports.push(format!(
                "{file}: note: a system crontab: --user is not applied (its user column says \
                 who runs each job)"
            ));
        }
        let source = Source {
            id_prefix: prefixes.prefix_for(&path),
            system,
            owner: if system { None } else { args.user.clone() },
        };
        let translated = translate(&text, &source);
        for r in translated.reports {
            let kind = match r.severity {
                Severity::LeftOut => {
                    left_out = true;
                    "left out"
                }
                Severity::Note => "note",
            };
            reports.push(format!(
                "{file}:{}: {kind}: {}: {}",
                r.line, r.reason, r.text
            ));
        }
        jobs.extend(translated.jobs.into_iter().map(|j| (file.clone(), j)));
        files.push(file);
    }

    let toml = render::render(&files, &jobs);
    if let Err(e) = out.write_all(toml.as_bytes()).and_then(|()| out.flush()) {
        let _ = writeln!(err, "error: cannot write the TOML: {e}");
        return ExitCode::from(2);
    }
    for r in &reports {
        let _ = writeln!(err, "{r}");
    }
    if left_out {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
