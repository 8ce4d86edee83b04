//! Configuration maps naming every backend type this build enables, with no set-up call:
//! each enabled backend registers itself when linked.

use apscheduler::prelude::*;
use apscheduler::scheduler::SchedulerConfig;

#[test]
fn configuration_names_every_backend_type() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
timezone = "UTC"
[job_defaults]
coalesce = false
max_instances = 3
[jobstores.default]
type = "sqlalchemy"
url = "sqlite:///{}/jobs.sqlite"
[jobstores.cache]
type = "redis"
url = "redis://127.0.0.1:1/"
[jobstores.mongo]
type = "mongodb"
[executors.default]
type = "threadpool"
max_workers = 20
[executors.processpool]
type = "processpool"
max_workers = 5
"#,
        dir.path().display()
    );
    let config = SchedulerConfig::from_toml_str(&toml).unwrap();
    // Building connects nothing: stores connect when the scheduler starts.
    let engine = Engine::builder().config(&config).unwrap().build();
    assert_eq!(engine.timezone(), Tz::UTC);
    assert!(!engine.job_defaults().coalesce);
}

#[test]
fn backend_options_are_checked() {
    let bad = SchedulerConfig::from_toml_str(
        "[jobstores.default]\ntype = \"sqlalchemy\"\nurl = \"sqlite::memory:\"\ntablename = \"jobs; drop table x\"\n",
    )
    .unwrap();
    let err = Engine::builder().config(&bad).unwrap_err();
    assert!(err.to_string().contains("drop table"), "{err}");

    let missing = SchedulerConfig::from_toml_str("[jobstores.default]\ntype = \"sql\"\n").unwrap();
    let err = Engine::builder().config(&missing).unwrap_err();
    assert!(err.to_string().contains("url"), "{err}");
}

#[test]
fn a_scheduler_runs_jobs_from_a_configured_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[jobstores.default]\ntype = \"sqlalchemy\"\nurl = \"sqlite:///{}/jobs.sqlite\"\n",
        dir.path().display()
    );
    let config = SchedulerConfig::from_toml_str(&toml).unwrap();
    let scheduler =
        BackgroundScheduler::from_builder(Engine::builder().config(&config).unwrap()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    scheduler.register_task("ping", move |_| {
        let _ = tx.lock().unwrap().send(());
        Ok(serde_json::json!(null))
    });
    scheduler.start(false).unwrap();
    scheduler.add_job(JobSpec::task("ping").id("p")).unwrap();
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .expect("the stored job ran");
    scheduler.shutdown(true).unwrap();
}

#[test]
fn a_configured_rayon_executor_runs_jobs() {
    let config =
        SchedulerConfig::from_toml_str("[executors.cpu]\ntype = \"rayon\"\nnum_threads = 2\n")
            .unwrap();
    let scheduler =
        BackgroundScheduler::from_builder(Engine::builder().config(&config).unwrap()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    scheduler.register_task("where", move |_| {
        let name = std::thread::current().name().unwrap_or_default().to_owned();
        let _ = tx.lock().unwrap().send(name);
        Ok(serde_json::json!(null))
    });
    scheduler.start(false).unwrap();
    scheduler
        .add_job(JobSpec::task("where").id("w").executor("cpu"))
        .unwrap();
    let thread = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the job ran");
    assert!(thread.starts_with("aps-rayon-"), "ran on {thread:?}");
    scheduler.shutdown(true).unwrap();

    let bad =
        SchedulerConfig::from_toml_str("[executors.cpu]\ntype = \"rayon\"\nnum_threads = 0\n")
            .unwrap();
    let err = Engine::builder().config(&bad).unwrap_err();
    assert!(err.to_string().contains("num_threads"), "{err}");
}

/// Every builder option of every backend can be given in a configuration file: a table
/// with all of them builds, and a bad value names its option.
#[test]
fn every_backend_option_is_accepted_and_checked() {
    use apscheduler::scheduler::{ComponentConfig, ComponentRegistry};

    let registry = ComponentRegistry::global();
    let stores = [
        ComponentConfig::new("memory").option("capacity", 1000),
        ComponentConfig::new("sqlalchemy")
            .option("url", "sqlite::memory:")
            .option("tablename", "jobs2")
            .option("max_connections", 4)
            .option("min_connections", 1)
            .option("acquire_timeout", 2.5)
            .option("idle_timeout", "none")
            .option("max_lifetime", 600)
            .option("test_before_acquire", false)
            .option("sqlite_busy_timeout", 1)
            .option("max_state_bytes", 65536),
        ComponentConfig::new("redis")
            .option("url", "redis://127.0.0.1:1/")
            .option("prefix", "test.")
            .option("max_state_bytes", 65536)
            .option("connection_timeout", 1)
            .option("response_timeout", 2)
            .option("reconnect_retries", 0),
        ComponentConfig::new("mongodb")
            .option("host", "mongodb://127.0.0.1:1/")
            .option("database", "db")
            .option("collection", "jobs")
            .option("max_state_bytes", 65536)
            .option("server_selection_timeout", 1),
    ];
    for config in &stores {
        registry
            .create_store("s", config)
            .unwrap_or_else(|e| panic!("{config:?}: {e}"));
    }
    let executors = [
        ComponentConfig::new("threadpool").option("max_workers", 3),
        ComponentConfig::new("asyncio").option("max_concurrency", 3),
        ComponentConfig::new("rayon").option("num_threads", 3),
        ComponentConfig::new("debug"),
        ComponentConfig::new("processpool")
            .option("max_workers", 2)
            .option("timeout", 30)
            .option("start_timeout", 5)
            .option("kill_on_shutdown", true)
            .option("program", "/bin/true"),
    ];
    for config in &executors {
        registry
            .create_executor("e", config)
            .unwrap_or_else(|e| panic!("{config:?}: {e}"));
    }
    for (config, option) in [
        (
            ComponentConfig::new("sql")
                .option("url", "sqlite::memory:")
                .option("max_connections", "many"),
            "'max_connections': 'many'",
        ),
        (
            ComponentConfig::new("redis").option("response_timeout", -1),
            "'response_timeout': '-1'",
        ),
        (
            ComponentConfig::new("mongodb").option("max_state_bytes", 0),
            "'max_state_bytes': '0'",
        ),
        (
            ComponentConfig::new("memory").option("capasity", 3),
            "unknown option 'capasity'",
        ),
    ] {
        let err = registry.create_store("s", &config).unwrap_err();
        assert!(err.to_string().contains(option), "{err}");
    }
    let err = registry
        .create_executor(
            "e",
            &ComponentConfig::new("processpool").option("kill_on_shutdown", "maybe"),
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("'kill_on_shutdown': 'maybe'"),
        "{err}"
    );
}
