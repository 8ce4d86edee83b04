//! The engine's own component type: the inline executor (`type = "debug"` /
//! `"inline"`). The registry itself lives in
//! [`apscheduler_core::component`]; every backend crate registers its own types.

use std::sync::Arc;

use apscheduler_core::component::{ComponentRegistry, ConfigTable, Registration};
use apscheduler_core::{Error, Executor};

use crate::inline::InlineExecutor;

fn inline_executor(_: &ConfigTable) -> Result<Arc<dyn Executor>, Error> {
    Ok(Arc::new(InlineExecutor::new()))
}

/// Registers `debug` / `inline` (APScheduler's `DebugExecutor`, no options).
pub fn register(registry: &mut ComponentRegistry) {
    registry.register_executor(
        &[
            "debug",
            "inline",
            "apscheduler.executors.debug:DebugExecutor",
        ],
        inline_executor,
    );
}

apscheduler_core::inventory::submit! { Registration::new(env!("CARGO_PKG_NAME"), register) }
