//! `type = "processpool"`: the process pool's configuration and registration.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::component::{seconds, ComponentRegistry, ConfigTable, Registration};
use apscheduler_core::{Error, Executor};
use serde::{Deserialize, Serialize};

use crate::ProcessPoolExecutor;

/// The process pool's options, one per builder method
/// (`type = "processpool"  max_workers = 5  timeout = 30`). Durations are seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessPoolConfig {
    /// Worker processes (default 10; at least 1).
    pub max_workers: Option<usize>,
    /// Kill a run that takes longer ([`ProcessPoolExecutor::with_timeout`]; default none).
    #[serde(default, with = "seconds")]
    pub timeout: Option<Duration>,
    /// How long a new worker may take to start
    /// ([`ProcessPoolExecutor::with_start_timeout`]).
    #[serde(default, with = "seconds")]
    pub start_timeout: Option<Duration>,
    /// `shutdown(false)` kills running workers
    /// ([`ProcessPoolExecutor::with_kill_on_shutdown`]; default false).
    pub kill_on_shutdown: Option<bool>,
    /// The program started as a worker ([`ProcessPoolExecutor::with_program`]; default
    /// this program).
    pub program: Option<PathBuf>,
}

impl ProcessPoolConfig {
    /// Reads the options of a configured component.
    ///
    /// # Errors
    /// `InvalidInput` naming the option and the value.
    pub fn from_table(table: &ConfigTable) -> Result<Self, Error> {
        Ok(ProcessPoolConfig {
            max_workers: table.get_positive("max_workers")?,
            timeout: table.get_seconds("timeout")?,
            start_timeout: table.get_seconds("start_timeout")?,
            kill_on_shutdown: table.get_bool("kill_on_shutdown")?,
            program: table.get_str("program")?.map(PathBuf::from),
        })
    }

    /// The executor these options describe.
    pub fn build(&self) -> ProcessPoolExecutor {
        let mut pool = ProcessPoolExecutor::new(self.max_workers.unwrap_or(10));
        if let Some(timeout) = self.timeout {
            pool = pool.with_timeout(timeout);
        }
        if let Some(timeout) = self.start_timeout {
            pool = pool.with_start_timeout(timeout);
        }
        if let Some(kill) = self.kill_on_shutdown {
            pool = pool.with_kill_on_shutdown(kill);
        }
        if let Some(program) = &self.program {
            pool = pool.with_program(program);
        }
        pool
    }
}

fn factory(table: &ConfigTable) -> Result<Arc<dyn Executor>, Error> {
    Ok(Arc::new(ProcessPoolConfig::from_table(table)?.build()))
}

/// Registers `processpool` (also `process` and APScheduler's class string).
pub fn register(registry: &mut ComponentRegistry) {
    registry.register_executor(
        &[
            "processpool",
            "process",
            "apscheduler.executors.pool:ProcessPoolExecutor",
        ],
        factory,
    );
}

apscheduler_core::inventory::submit! { Registration::new(env!("CARGO_PKG_NAME"), register) }
