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
}

impl ThreadPoolConfig {
    /// Reads the options of a configured component.
    ///
    /// # Errors
    /// `InvalidInput` naming the option and the value.
    pub fn from_table(table: &ConfigTable) -> Result<Self, Error> {
        Ok(ThreadPoolConfig {
            max_workers: table.get_positive("max_workers")?,
        })
    }

    /// The executor these options describe.
    pub fn build(&self) -> ThreadPoolExecutor {
        ThreadPoolExecutor::new(self.max_workers.unwrap_or(DEFAULT_MAX_WORKERS))
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
