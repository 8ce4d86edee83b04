//! Configuration maps naming every backend type this build enables.

use apscheduler::prelude::*;
use apscheduler::scheduler::SchedulerConfig;

#[test]
fn configuration_names_every_backend_type() {
    apscheduler::register_components();
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
    apscheduler::register_components();
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
    apscheduler::register_components();
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
    apscheduler::register_components();
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
