//! Configuring the scheduler, method 2: one configuration map (the seeds' 方法二), as
//! APScheduler's flat dictionary, as TOML, and from environment variables.
//!
//! ```python
//! from apscheduler.schedulers.background import BackgroundScheduler
//!
//! # The "apscheduler." prefix is hard coded
//! aBackgroundScheduler = BackgroundScheduler({
//!     'apscheduler.jobstores.mongo': {
//!          'type': 'mongodb'
//!     },
//!     'apscheduler.jobstores.sql': {
//!         'type': 'sqlalchemy',
//!         'url': 'sqlite:///jobs.sqlite'
//!     },
//!     'apscheduler.executors.thread': {
//!         'class': 'apscheduler.executors.pool:ThreadPoolExecutor',
//!         'max_workers': '20'
//!     },
//!     'apscheduler.executors.process': {
//!         'type': 'processpool',
//!         'max_workers': '5'
//!     },
//!     'apscheduler.job_defaults.coalesce': 'false',
//!     'apscheduler.job_defaults.max_instances': '3',
//!     'apscheduler.timezone': 'UTC',
//! })
//! ```
//!
//! NOTE: the `mongodb` and `sqlalchemy` job stores and the `processpool` executor are not
//! part of this build yet. The seed's dictionary is read as is and the typed error it
//! gives is printed; the configuration that runs uses `memory` stores under both aliases
//! and the `asyncio` executor (5 at a time) in place of the process pool.
//!
//! Run: `cargo run -p apscheduler --example config_map`

use std::sync::mpsc;
use std::time::Duration;

use apscheduler::prelude::*;
use apscheduler::scheduler::SchedulerConfig;
use serde_json::json;

const TOML: &str = r#"
timezone = "UTC"

[job_defaults]
coalesce = false
max_instances = 3

[jobstores.mongo]
type = "memory"          # the seed: type = "mongodb"

[jobstores.sql]
type = "memory"          # the seed: type = "sqlalchemy", url = "sqlite:///jobs.sqlite"

[executors.thread]
type = "threadpool"      # or class = "apscheduler.executors.pool:ThreadPoolExecutor"
max_workers = 20

[executors.process]
type = "asyncio"         # the seed: type = "processpool", max_workers = 5
max_concurrency = 5
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The seed's dictionary, as is: it parses, but this build has no MongoDB store.
    let seed = SchedulerConfig::from_flat([
        ("apscheduler.jobstores.mongo", json!({"type": "mongodb"})),
        (
            "apscheduler.jobstores.sql",
            json!({"type": "sqlalchemy", "url": "sqlite:///jobs.sqlite"}),
        ),
        (
            "apscheduler.executors.thread",
            json!({"class": "apscheduler.executors.pool:ThreadPoolExecutor", "max_workers": "20"}),
        ),
        (
            "apscheduler.executors.process",
            json!({"type": "processpool", "max_workers": "5"}),
        ),
        ("apscheduler.job_defaults.coalesce", json!("false")),
        ("apscheduler.job_defaults.max_instances", json!("3")),
        ("apscheduler.timezone", json!("UTC")),
    ])?;
    if let Err(e) = Engine::from_config(&seed) {
        println!("the seed's configuration: {e} [{:?}]", e.kind());
    }

    // The same shape with the components this build has, in the flat form ...
    let flat = SchedulerConfig::from_flat([
        ("apscheduler.jobstores.mongo", json!({"type": "memory"})),
        ("apscheduler.jobstores.sql", json!({"type": "memory"})),
        (
            "apscheduler.executors.thread",
            json!({"class": "apscheduler.executors.pool:ThreadPoolExecutor", "max_workers": "20"}),
        ),
        (
            "apscheduler.executors.process",
            json!({"type": "asyncio", "max_concurrency": "5"}),
        ),
        ("apscheduler.job_defaults.coalesce", json!("false")),
        ("apscheduler.job_defaults.max_instances", json!("3")),
        ("apscheduler.timezone", json!("UTC")),
    ])?;
    // ... as TOML ...
    let toml = SchedulerConfig::from_toml_str(TOML)?;
    // ... and as environment variables (a list here; SchedulerConfig::from_env() reads
    // the process environment).
    let env = SchedulerConfig::from_env_vars([
        ("APSCHEDULER_TIMEZONE", "UTC"),
        ("APSCHEDULER_JOB_DEFAULTS__COALESCE", "false"),
        ("APSCHEDULER_JOB_DEFAULTS__MAX_INSTANCES", "3"),
        ("APSCHEDULER_JOBSTORES__MONGO__TYPE", "memory"),
        ("APSCHEDULER_JOBSTORES__SQL__TYPE", "memory"),
        ("APSCHEDULER_EXECUTORS__THREAD__TYPE", "threadpool"),
        ("APSCHEDULER_EXECUTORS__THREAD__MAX_WORKERS", "20"),
        ("APSCHEDULER_EXECUTORS__PROCESS__TYPE", "asyncio"),
        ("APSCHEDULER_EXECUTORS__PROCESS__MAX_CONCURRENCY", "5"),
    ])?;
    println!(
        "flat == TOML: {}, TOML == environment: {}",
        flat == toml,
        toml == env
    );
    println!("configuration: {}", toml.to_value());

    // Bad values are typed errors naming the field and the value.
    if let Err(e) =
        SchedulerConfig::from_flat([("apscheduler.job_defaults.coalesce", json!("maybe"))])
    {
        println!("coalesce = 'maybe': {e}");
    }

    // BackgroundScheduler({...})
    let scheduler = BackgroundScheduler::from_builder(Engine::builder().config(&toml)?)?;
    println!(
        "timezone: {}, job defaults: {:?}",
        scheduler.engine().timezone(),
        scheduler.engine().job_defaults()
    );
    scheduler.register_task("job_func", |_ctx| {
        println!("job ran in the 'sql' store on the 'thread' executor");
        Ok(json!(null))
    });
    scheduler.add_job(JobSpec::task("job_func").jobstore("sql").executor("thread"))?;
    let (done_tx, done_rx) = mpsc::channel();
    scheduler.add_listener(
        move |_event| {
            let _ = done_tx.send(());
        },
        EVENT_JOB_EXECUTED | EVENT_JOB_ERROR,
    );
    scheduler.start(false)?;
    done_rx.recv_timeout(Duration::from_secs(3))?;
    scheduler.shutdown(true)?;
    Ok(())
}
