//! `type = "memory"`: the memory store's configuration and registration.

use std::sync::Arc;

use apscheduler_core::component::{ComponentRegistry, ConfigTable, Registration};
use apscheduler_core::{Error, JobStore};
use serde::{Deserialize, Serialize};

use crate::MemoryJobStore;

/// The memory store's options (`type = "memory"  capacity = 100000`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryStoreConfig {
    /// Jobs to reserve room for up front (default: none; the store grows as needed).
    pub capacity: Option<usize>,
}

impl MemoryStoreConfig {
    /// Reads the options of a configured component.
    ///
    /// # Errors
    /// `InvalidInput` naming the option and the value.
    pub fn from_table(table: &ConfigTable) -> Result<Self, Error> {
        Ok(MemoryStoreConfig {
            capacity: table.get_usize("capacity")?,
        })
    }

    /// The store these options describe.
    pub fn build(&self) -> MemoryJobStore {
        match self.capacity {
            Some(n) => MemoryJobStore::with_capacity(n),
            None => MemoryJobStore::new(),
        }
    }
}

fn factory(table: &ConfigTable) -> Result<Arc<dyn JobStore>, Error> {
    Ok(Arc::new(MemoryStoreConfig::from_table(table)?.build()))
}

/// Registers `memory` (and APScheduler's class string).
pub fn register(registry: &mut ComponentRegistry) {
    registry.register_store(
        &["memory", "apscheduler.jobstores.memory:MemoryJobStore"],
        factory,
    );
}

apscheduler_core::inventory::submit! { Registration::new(env!("CARGO_PKG_NAME"), register) }
