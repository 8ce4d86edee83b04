//! `type = "rayon"`: the rayon executor's configuration and registration.

use std::sync::Arc;

use apscheduler_core::component::{ComponentRegistry, ConfigTable, Registration};
use apscheduler_core::{Error, Executor};
use serde::{Deserialize, Serialize};

use crate::RayonExecutor;

/// The rayon executor's options (`type = "rayon"  num_threads = 4`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RayonConfig {
    /// Pool threads (default: one per core; at least 1).
    pub num_threads: Option<usize>,
}

impl RayonConfig {
    /// Reads the options of a configured component.
    ///
    /// # Errors
    /// `InvalidInput` naming the option and the value.
    pub fn from_table(table: &ConfigTable) -> Result<Self, Error> {
        Ok(RayonConfig {
            num_threads: table.get_positive("num_threads")?,
        })
    }

    /// The executor these options describe.
    pub fn build(&self) -> RayonExecutor {
        match self.num_threads {
            Some(n) => RayonExecutor::with_threads(n),
            None => RayonExecutor::new(),
        }
    }
}

fn factory(table: &ConfigTable) -> Result<Arc<dyn Executor>, Error> {
    Ok(Arc::new(RayonConfig::from_table(table)?.build()))
}

/// Registers `rayon`.
pub fn register(registry: &mut ComponentRegistry) {
    registry.register_executor(&["rayon"], factory);
}

apscheduler_core::inventory::submit! { Registration::new(env!("CARGO_PKG_NAME"), register) }
