//! `aps`: the apscheduler-rs command line.
//!
//! - `aps run [--config FILE]`: the daemon (a crontab replacement with run history).
//! - `aps jobs list|show|add|pause|resume|remove|run`, `aps history`: manage the jobs
//!   and read the history in the daemon's store, while it runs or not.
//! - `aps config check [FILE]`, `aps import crontab FILE... [--system] [--dir DIR]`: check
//!   a config; turn crontabs (user, `/etc/crontab`, `/etc/cron.d`) into `[[jobs]]` tables.
//! - Without `--config`, the config is `$APS_CONFIG`, else `/etc/aps/aps.toml`
//!   ([`config_path`]).
//! - `aps token new --role ROLE --name NAME`: a token for the HTTP API (`[http]`).
//! - `aps next <expression>`: preview the fire times of a crontab line or cron fields.
//! - `aps completions bash|zsh|fish`: shell completions; `aps generate man|completions
//!   DIR` (hidden) writes the man pages and completion files a package ships.
//! - `aps trigger eval`, `aps engine replay`: the conformance tools.
//!
//! The config format, every command and the history schema: `docs/cli.md`.

mod backfill;
mod config_path;
mod daemon;
mod daemon_api;
mod engine_replay;
mod generate;
mod import_crontab;
mod manage;
mod next;
mod trigger_eval;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

/// apscheduler-rs: advanced job scheduling for Rust.
#[derive(Debug, Parser)]
#[command(name = "aps", version, about)]
struct Cli {
    /// Log level: error, warn, info, debug, trace (or a tracing filter such as
    /// `info,apscheduler=debug`). Default: `info` for `aps run`, `warn` otherwise.
    #[arg(long, global = true)]
    log_level: Option<String>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon on a config file until SIGINT/SIGTERM (SIGHUP reloads the config).
    Run(daemon::RunArgs),
    /// Manage the jobs in the daemon's store.
    Jobs {
        #[command(flatten)]
        store: manage::StoreArgs,
        #[command(subcommand)]
        command: manage::JobsCommand,
    },
    /// Show the run history, newest first.
    History {
        #[command(flatten)]
        store: manage::StoreArgs,
        #[command(flatten)]
        args: manage::HistoryArgs,
    },
    /// Run a job's fire times of a past range on the running daemon (through its HTTP
    /// API), skipping the ones that already succeeded.
    Backfill(backfill::BackfillArgs),
    /// List the nodes (schedulers) sharing the store, with their last heartbeat.
    Nodes {
        #[command(flatten)]
        store: manage::StoreArgs,
        /// An array of JSON objects instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Config file tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Import jobs from other schedulers.
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// Tokens of the management plane's HTTP API (`[http]`).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Preview the next fire times of a cron expression.
    Next(next::NextArgs),
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Engine tools.
    Engine {
        #[command(subcommand)]
        command: EngineCommand,
    },
    /// Trigger tools.
    Trigger {
        #[command(subcommand)]
        command: TriggerCommand,
    },
    /// Write the man pages or the completion files of a package.
    #[command(hide = true)]
    Generate {
        #[command(subcommand)]
        command: generate::GenerateCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check a config: print the normalised jobs and each job's next 3 fire times.
    Check {
        /// The TOML config file (default: $APS_CONFIG, else /etc/aps/aps.toml).
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a token: prints the token (shown once) on the first line, then the
    /// `[[http.tokens]]` table to add to the config (it holds only the token's hash).
    New {
        /// What the token may do: read, operate (also pause, resume, run now) or admin
        /// (also add, modify, remove).
        #[arg(long)]
        role: apscheduler_http::Role,
        /// Who holds it: logged with every change it makes.
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum ImportCommand {
    /// Print `[[jobs]]` tables for crontabs: user crontabs, `/etc/crontab`, cron.d files or
    /// folders (lines left out, and why, go to stderr; exit status 1 if any).
    Crontab(import_crontab::CrontabArgs),
}

#[derive(Debug, Subcommand)]
enum EngineCommand {
    /// Read one scenario (JSON, the format of tests/conformance/engine) on stdin and print
    /// the engine's record of every step as one JSON array.
    Replay,
}

#[derive(Debug, Subcommand)]
enum TriggerCommand {
    /// Read conformance vectors (JSON lines) on stdin; write `{"id", "fires"}` or
    /// `{"id", "error"}` per line.
    Eval,
}

fn init_logging(level: &str, format: LogFormat) -> Result<(), String> {
    let mut filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| format!("--log-level: invalid filter '{level}': {e}"))?;
    // PostgreSQL's notices ("relation ... already exists, skipping" from every
    // `CREATE ... IF NOT EXISTS` at start) are noise unless asked for by name.
    if !level.contains("sqlx") {
        if let Ok(quiet) = "sqlx::postgres::notice=warn".parse() {
            filter = filter.add_directive(quiet);
        }
    }
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
    .map_err(|e| e.to_string())
}

/// `aps jobs list | head -1`: a closed stdout ends the command quietly (exit 141, as
/// SIGPIPE would), not with a panic message. Rust ignores SIGPIPE, so `println!` panics.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    if matches!(cli.command, Command::Jobs { .. } | Command::History { .. }) {
        // Before any thread starts: these read every job or many runs.
        daemon::heap::reexec_with_huge_pages();
    }
    let default_level = match cli.command {
        Command::Run(_) => "info",
        _ => "warn",
    };
    let level = cli.log_level.as_deref().unwrap_or(default_level);
    if let Err(e) = init_logging(level, cli.log_format) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    match cli.command {
        Command::Run(args) => daemon::run(&args),
        Command::Jobs { store, command } => manage::jobs_command(&store, command),
        Command::History { store, args } => manage::history_command(&store, args),
        Command::Nodes { store, json } => manage::nodes_command(&store, json),
        Command::Backfill(args) => backfill::run(&args),
        Command::Config {
            command: ConfigCommand::Check { file },
        } => match config_path::resolve(file.as_deref()) {
            Ok(file) => manage::config_check(&file),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Import {
            command: ImportCommand::Crontab(args),
        } => import_crontab::run(&args),
        Command::Token {
            command: TokenCommand::New { role, name },
        } => {
            if name.trim().is_empty() || name.contains('"') || name.contains('\\') {
                eprintln!("error: --name: invalid value '{name}': give a non-empty name without quotes or backslashes");
                return ExitCode::from(2);
            }
            let (token, entry) = apscheduler_http::new_token(&name, role);
            println!("{token}");
            println!();
            println!("# Add to the config; the token above is shown only now.");
            println!("[[http.tokens]]");
            println!("name = \"{name}\"");
            println!("role = \"{role}\"");
            println!("hash = \"{}\"", entry.hash_text());
            ExitCode::SUCCESS
        }
        Command::Next(args) => next::run(&args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "aps", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Engine {
            command: EngineCommand::Replay,
        } => engine_replay::run(),
        Command::Trigger {
            command: TriggerCommand::Eval,
        } => trigger_eval::run(),
        Command::Generate { command } => generate::run(Cli::command(), &command),
    }
}
