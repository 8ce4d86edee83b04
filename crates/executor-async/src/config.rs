//! `type = "asyncio"`: the async executor's configuration and registration.

use std::sync::Arc;

use apscheduler_core::component::{ComponentRegistry, ConfigTable, Registration};
use apscheduler_core::{Error, Executor};
use serde::{Deserialize, Serialize};

use crate::AsyncExecutor;

/// The async executor's options (`type = "asyncio"  max_concurrency = 100`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsyncExecutorConfig {
    /// The most runs in flight at once (default: unbounded; at least 1).
    pub max_concurrency: Option<usize>,
}

impl AsyncExecutorConfig {
    /// Reads the options of a configured component.
    ///
    /// # Errors
    /// `InvalidInput` naming the option and the value.
    pub fn from_table(table: &ConfigTable) -> Result<Self, Error> {
        Ok(AsyncExecutorConfig {
            max_concurrency: table.get_positive("max_concurrency")?,
        })
    }

    /// The executor these options describe.
    pub fn build(&self) -> AsyncExecutor {
        AsyncExecutor::new(self.max_concurrency)
    }
}

fn factory(table: &ConfigTable) -> Result<Arc<dyn Executor>, Error> {
    Ok(Arc::new(AsyncExecutorConfig::from_table(table)?.build()))
}

/// Registers `asyncio` (also `async` and APScheduler's class string).
pub fn register(registry: &mut ComponentRegistry) {
    registry.register_executor(
        &[
            "asyncio",
            "async",
            "apscheduler.executors.asyncio:AsyncIOExecutor",
        ],
        factory,
    );
}

apscheduler_core::inventory::submit! { Registration::new(env!("CARGO_PKG_NAME"), register) }
