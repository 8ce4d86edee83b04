//! The asyncio scheduler (the seeds' AsyncIOScheduler, "for applications that use
//! asyncio"): the main loop is a tokio task and async jobs run on the same runtime.
//!
//! ```python
//! import asyncio
//! from apscheduler.schedulers.asyncio import AsyncIOScheduler
//!
//! async def tick():
//!     print('Tick!')
//!
//! scheduler = AsyncIOScheduler()
//! scheduler.add_job(tick, 'interval', seconds=1)
//! scheduler.start()
//! asyncio.get_event_loop().run_forever()
//! ```
//!
//! (The seeds name AsyncIOScheduler without code; this is APScheduler's own example.)
//! The example stops after two ticks.
//!
//! Run: `cargo run -p apscheduler --example async_scheduler`

use std::time::Duration;

use apscheduler::prelude::*;
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scheduler = AsyncScheduler::new()?;
    let (tick_tx, mut tick_rx) = tokio::sync::mpsc::unbounded_channel();
    scheduler.register_async_task("tick", move |_ctx| {
        let tick_tx = tick_tx.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            println!("Tick!");
            let _ = tick_tx.send(());
            Ok(json!(null))
        }
    });
    // scheduler.add_job(tick, 'interval', seconds=1)
    scheduler
        .add_job(JobSpec::task("tick").trigger_args("interval", json!({"seconds": 1})))
        .await?;
    scheduler.start(false).await?;
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(3), tick_rx.recv()).await?;
    }
    scheduler.shutdown(true).await?;
    Ok(())
}
