//! `aps`: the apscheduler-rs command line.
//!
//! - `aps next <expression>`: preview the fire times of a crontab line or cron fields.
//! - `aps trigger eval`: evaluate conformance vectors (JSON lines) from standard input.
//! - `aps engine replay`: replay a scheduler scenario from standard input.

#![forbid(unsafe_code)]

mod engine_replay;
mod next;
mod trigger_eval;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// apscheduler-rs: advanced job scheduling for Rust.
#[derive(Debug, Parser)]
#[command(name = "aps", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Preview the next fire times of a cron expression.
    Next(next::NextArgs),
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Next(args) => next::run(&args),
        Command::Engine {
            command: EngineCommand::Replay,
        } => engine_replay::run(),
        Command::Trigger {
            command: TriggerCommand::Eval,
        } => trigger_eval::run(),
    }
}
