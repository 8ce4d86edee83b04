//! The short path of a service: a job every 5 minutes and one at 02:30 Berlin time, in
//! PostgreSQL, in as many replicas as you run, with tracing, stopped by SIGTERM. Every
//! replica runs this same program on the same store; each fire time is started by one of
//! them, at most once (docs/cluster.md, "N replicas of your service").
//!
//! Run it in two terminals (`--features store-sql-postgres` in your own crate):
//! `DATABASE_URL=postgres://user@host/db cargo run -p apscheduler --example replicas`.
//! With `REPLICAS_DEMO=1` it also runs a job every second that prints its fire time:
//! `scripts/run-replicas.sh` runs it so, as two replicas, and checks that no fire time
//! ran twice and none was lost.

use apscheduler::prelude::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt::init();
    let scheduler = AsyncScheduler::connect(&std::env::var("DATABASE_URL")?)?;
    scheduler.register_async_task("refresh", |_ctx| async {
        println!("refreshing the cache");
        Ok(json!(null))
    });
    scheduler.register_async_task("report", |ctx| async move {
        println!("the report of {}", ctx.scheduled_run_time);
        Ok(json!(null))
    });
    // Declared at every start, by every replica: an unchanged job keeps its schedule.
    let refresh = JobSpec::declare("refresh", "interval", json!({"minutes": 5}));
    scheduler.add_job(refresh).await?;
    let at_0230_berlin = json!({"hour": 2, "minute": 30, "timezone": "Europe/Berlin"});
    let report = JobSpec::declare("report", "cron", at_0230_berlin);
    scheduler.add_job(report).await?;
    if std::env::var_os("REPLICAS_DEMO").is_some() {
        scheduler.register_async_task("tick", |ctx| async move {
            println!("tick {}", ctx.scheduled_run_time.to_rfc3339());
            Ok(json!(null))
        });
        let every_second = JobSpec::declare("tick", "interval", json!({"seconds": 1}));
        // A grace longer than the claim's lease: a replica's death loses no fire time.
        let grace = Some(std::time::Duration::from_secs(30));
        scheduler
            .add_job(every_second.misfire_grace_time(grace))
            .await?;
    }
    // Until SIGTERM or Ctrl-C; then the running jobs end, and nothing more starts here.
    scheduler.run_until_signal().await?;
    Ok(())
}
