//! `type = "threadpool"`: the thread pool's configuration and registration.

use std::sync::Arc;

use apscheduler_core::component::{ComponentRegistry, ConfigTable, Registration};
use apscheduler_core::{Error, Executor};
use serde::{Deserialize, Serialize};

use crate::{ThreadPoolExecutor, DEFAULT_MAX_WORKERS};

/// The thread pool's options, as a configuration file gives them
/// (`[executors.default] type = "threadpool"  max_workers = 20`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreadPoolConfig {
    /// Worker threads (default [`DEFAULT_MAX_WORKERS`], 10; at least 1).
    pub max_workers: Option<usize>,
    /// Whether the scheduler's loop thread may run jobs itself
    /// ([`ThreadPoolExecutor::lend_runs`]; default `true`).
    pub lend_runs: Option<bool>,
}

impl ThreadPoolConfig {
    /// Reads the options of a configured component.
    ///
    /// # Errors
    /// `InvalidInput` naming the option and the value.
    pub fn from_table(table: &ConfigTable) -> Result<Self, Error> {
        Ok(ThreadPoolConfig {
            max_workers: table.get_positive("max_workers")?,
            lend_runs: table.get_bool("lend_runs")?,
        })
    }

    /// The executor these options describe.
    pub fn build(&self) -> ThreadPoolExecutor {
        ThreadPoolExecutor::new(self.max_workers.unwrap_or(DEFAULT_MAX_WORKERS))
            .lend_runs(self.lend_runs.unwrap_or(true))
    }
}

/// Registers `threadpool` (also `thread`, `pool` and APScheduler's class string).
pub fn register(registry: &mut ComponentRegistry) {
    registry.register_executor(
        &[
            "threadpool",
            "thread",
            "pool",
            "apscheduler.executors.pool:ThreadPoolExecutor",
        ],
        |table| -> Result<Arc<dyn Executor>, Error> {
            Ok(Arc::new(ThreadPoolConfig::from_table(table)?.build()))
        },
    );
}

apscheduler_core::inventory::submit! { Registration::new(env!("CARGO_PKG_NAME"), register) }
