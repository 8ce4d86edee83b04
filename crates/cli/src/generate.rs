//! `aps generate man DIR`, `aps generate completions DIR`: the files a package ships,
//! written from the command's own definition so that they never drift from `--help`,
//! and the config file's page from the config reference (`config_page`).

mod config_page;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap_complete::Shell;

/// What `aps generate` writes.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum GenerateCommand {
    /// Write man pages: `aps.1`, one `aps-<command>.1` per (sub)command, and
    /// `aps.toml.5` (the config file).
    Man {
        /// The directory (created if missing).
        dir: PathBuf,
    },
    /// Write shell completions: `aps.bash`, `_aps` (zsh) and `aps.fish`.
    Completions {
        /// The directory (created if missing).
        dir: PathBuf,
    },
}

/// Runs `aps generate ...` for the command definition `cmd`.
pub(crate) fn run(cmd: clap::Command, what: &GenerateCommand) -> ExitCode {
    let result = match what {
        GenerateCommand::Man { dir } => man_pages(cmd, dir),
        GenerateCommand::Completions { dir } => completions(cmd, dir),
    };
    match result {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn create_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create: {e}", dir.display()))
}

fn write(path: PathBuf, bytes: &[u8]) -> Result<PathBuf, String> {
    std::fs::write(&path, bytes).map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
    Ok(path)
}

/// Writes one page per visible command, named as `man` looks them up (`aps-jobs-list`).
fn man_pages(cmd: clap::Command, dir: &Path) -> Result<Vec<PathBuf>, String> {
    create_dir(dir)?;
    let mut cmd = cmd;
    // Builds the subcommands' names and inherited global options before they are read.
    cmd.build();
    let mut written = Vec::new();
    let mut pending = vec![("aps".to_owned(), cmd)];
    while let Some((name, cmd)) = pending.pop() {
        // `help` is clap's own subcommand: `--help` covers it.
        let visible = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help");
        for sub in visible {
            pending.push((format!("{name}-{}", sub.get_name()), sub.clone()));
        }
        // The page's title and NAME, and its references to the subcommands' pages.
        let page = cmd.display_name(name.clone());
        let mut out = Vec::new();
        // Subcommands carry no version of their own: the footer names the program's.
        clap_mangen::Man::new(page)
            .source(format!("aps {}", env!("CARGO_PKG_VERSION")))
            .render(&mut out)
            .map_err(|e| format!("man page {name}: {e}"))?;
        written.push(write(dir.join(format!("{name}.1")), &out)?);
    }
    written.push(write(
        dir.join("aps.toml.5"),
        config_page::page()?.as_bytes(),
    )?);
    written.sort();
    Ok(written)
}

/// Writes the completions of the shells the package supports.
fn completions(cmd: clap::Command, dir: &Path) -> Result<Vec<PathBuf>, String> {
    create_dir(dir)?;
    let mut cmd = cmd;
    let mut written = Vec::new();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd, "aps", &mut out);
        let file = match shell {
            Shell::Zsh => "_aps".to_owned(),
            other => format!("aps.{other}"),
        };
        written.push(write(dir.join(file), &out)?);
    }
    Ok(written)
}
