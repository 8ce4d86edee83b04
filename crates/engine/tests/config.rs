//! Configuration: the TOML, JSON, flat `apscheduler.` and environment forms agree; the
//! registry builds components by type alias; `configure_with` before and after start.
//! Bad values are in `config_errors.rs`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{Error, ErrorKind, JobStore};
use apscheduler_engine::{
    ComponentConfig, ComponentRegistry, ConfigTable, Engine, InlineExecutor, JobDefaults, JobSpec,
    SchedulerConfig, SchedulerState,
};
use common::assert_err;
use serde_json::json;

/// APScheduler's "method 2" example (the seeds), as every form should read it.
fn expected() -> SchedulerConfig {
    SchedulerConfig::new()
        .with_timezone(chrono_tz::UTC)
        .with_jobstore("mongo", ComponentConfig::new("mongodb"))
        .with_jobstore(
            "sql",
            ComponentConfig::new("sqlalchemy").option("url", "sqlite:///jobs.sqlite"),
        )
        .with_executor(
            "thread",
            ComponentConfig::new("threadpool").option("max_workers", 20),
        )
        .with_executor(
            "process",
            ComponentConfig::new("processpool").option("max_workers", 5),
        )
        .merged({
            let mut c = SchedulerConfig::new();
            c.job_defaults.coalesce = Some(false);
            c.job_defaults.max_instances = Some(3);
            c
        })
}

const TOML: &str = r#"
timezone = "UTC"

[job_defaults]
coalesce = false
max_instances = 3

[jobstores.mongo]
type = "mongodb"

[jobstores.sql]
type = "sqlalchemy"
url = "sqlite:///jobs.sqlite"

[executors.thread]
type = "threadpool"
max_workers = 20

[executors.process]
type = "processpool"
max_workers = 5
"#;

fn flat() -> Vec<(&'static str, serde_json::Value)> {
    vec![
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
    ]
}

fn env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("APSCHEDULER_TIMEZONE", "UTC"),
        ("APSCHEDULER_JOB_DEFAULTS__COALESCE", "false"),
        ("APSCHEDULER_JOB_DEFAULTS__MAX_INSTANCES", "3"),
        ("APSCHEDULER_JOBSTORES__MONGO__TYPE", "mongodb"),
        ("APSCHEDULER_JOBSTORES__SQL__TYPE", "sqlalchemy"),
        ("APSCHEDULER_JOBSTORES__SQL__URL", "sqlite:///jobs.sqlite"),
        (
            "APSCHEDULER_EXECUTORS__THREAD__CLASS",
            "apscheduler.executors.pool:ThreadPoolExecutor",
        ),
        ("APSCHEDULER_EXECUTORS__THREAD__MAX_WORKERS", "20"),
        ("APSCHEDULER_EXECUTORS__PROCESS__TYPE", "processpool"),
        ("APSCHEDULER_EXECUTORS__PROCESS__MAX_WORKERS", "5"),
        ("PATH", "/usr/bin"),
        ("APSCHEDULERX", "not ours"),
    ]
}

/// A configuration that this build can build: memory stores, thread pool, async and
/// inline executors.
fn buildable() -> SchedulerConfig {
    SchedulerConfig::from_toml_str(
        r#"
        timezone = "Europe/Helsinki"
        [job_defaults]
        coalesce = false
        max_instances = 3
        misfire_grace_time = 30
        [jobstores.default]
        type = "memory"
        [jobstores.sql]
        type = "memory"
        [executors.default]
        type = "threadpool"
        max_workers = 20
        [executors.async]
        type = "asyncio"
        max_concurrency = 4
        [executors.debug]
        type = "inline"
        "#,
    )
    .unwrap()
}

// ------------------------------------------------------------------ the forms agree

#[test]
fn toml_json_flat_and_env_forms_agree() {
    let want = expected();
    let toml = SchedulerConfig::from_toml_str(TOML).unwrap();
    assert_eq!(toml, want);

    let nested_json = serde_json::to_string(&want.to_value()).unwrap();
    assert_eq!(SchedulerConfig::from_json_str(&nested_json).unwrap(), want);

    let flat_json =
        serde_json::Value::Object(flat().into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
    assert_eq!(
        SchedulerConfig::from_json_str(&flat_json.to_string()).unwrap(),
        want
    );

    let mut with_foreign_keys = flat();
    with_foreign_keys.push(("sqlalchemy.url", json!("belongs to another library")));
    assert_eq!(SchedulerConfig::from_flat(with_foreign_keys).unwrap(), want);

    assert_eq!(SchedulerConfig::from_env_vars(env()).unwrap(), want);

    let deserialized: SchedulerConfig = serde_json::from_value(want.to_value()).unwrap();
    assert_eq!(deserialized, want);
    assert_eq!(TOML.parse::<SchedulerConfig>().unwrap(), want);
}

#[test]
fn flat_keys_may_split_a_component_into_options() {
    let split = SchedulerConfig::from_flat([
        ("apscheduler.jobstores.sql.type", json!("sqlalchemy")),
        (
            "apscheduler.jobstores.sql.url",
            json!("sqlite:///jobs.sqlite"),
        ),
    ])
    .unwrap();
    let whole = SchedulerConfig::from_flat([(
        "apscheduler.jobstores.sql",
        json!({"type": "sqlalchemy", "url": "sqlite:///jobs.sqlite"}),
    )])
    .unwrap();
    assert_eq!(split, whole);
    assert_eq!(split.jobstores["sql"].type_name(), "sqlalchemy");
}

#[test]
fn class_strings_become_type_aliases() {
    let c = ComponentConfig::new("apscheduler.jobstores.mongodb:MongoDBJobStore");
    assert_eq!(c.type_name(), "mongodb");
    let c = ComponentConfig::new("apscheduler.executors.pool:ThreadPoolExecutor");
    assert_eq!(c.type_name(), "threadpool");
    let c = ComponentConfig::new("my.crate:Custom");
    assert_eq!(c.type_name(), "my.crate:Custom");
}

#[test]
fn misfire_grace_time_forms() {
    let grace = |toml: &str| {
        SchedulerConfig::from_toml_str(toml)
            .unwrap()
            .job_defaults
            .misfire_grace_time
    };
    assert_eq!(
        grace("[job_defaults]\nmisfire_grace_time = 30"),
        Some(Some(Duration::from_secs(30)))
    );
    assert_eq!(
        grace("[job_defaults]\nmisfire_grace_time = 0.5"),
        Some(Some(Duration::from_millis(500)))
    );
    assert_eq!(
        grace("[job_defaults]\nmisfire_grace_time = \"none\""),
        Some(None)
    );
    assert_eq!(grace("[job_defaults]\ncoalesce = true"), None);

    let json = SchedulerConfig::from_json_str(r#"{"job_defaults": {"misfire_grace_time": null}}"#)
        .unwrap();
    assert_eq!(json.job_defaults.misfire_grace_time, Some(None));
    let env =
        SchedulerConfig::from_env_vars([("APSCHEDULER_JOB_DEFAULTS__MISFIRE_GRACE_TIME", "None")])
            .unwrap();
    assert_eq!(env.job_defaults.misfire_grace_time, Some(None));
    let flat =
        SchedulerConfig::from_flat([("apscheduler.job_defaults.misfire_grace_time", json!("30"))])
            .unwrap();
    assert_eq!(
        flat.job_defaults.misfire_grace_time,
        Some(Some(Duration::from_secs(30)))
    );

    // Left out: APScheduler's default of 1 s; "none": however late.
    assert_eq!(
        SchedulerConfig::new()
            .job_defaults
            .apply_to(JobDefaults::default())
            .misfire_grace_time,
        Some(Duration::from_secs(1))
    );
    assert_eq!(
        env.job_defaults
            .apply_to(JobDefaults::default())
            .misfire_grace_time,
        None
    );
}

#[test]
fn booleans_accept_apscheduler_spellings() {
    for (text, want) in [
        ("true", true),
        ("Yes", true),
        ("on", true),
        ("1", true),
        ("false", false),
        ("NO", false),
        ("off", false),
        ("0", false),
    ] {
        let c =
            SchedulerConfig::from_env_vars([("APSCHEDULER_JOB_DEFAULTS__COALESCE", text)]).unwrap();
        assert_eq!(c.job_defaults.coalesce, Some(want), "{text}");
    }
}

#[test]
fn merge_layers_environment_over_file() {
    let file = SchedulerConfig::from_toml_str(TOML).unwrap();
    let env = SchedulerConfig::from_env_vars([
        ("APSCHEDULER_TIMEZONE", "Europe/Helsinki"),
        ("APSCHEDULER_JOB_DEFAULTS__MAX_INSTANCES", "7"),
        ("APSCHEDULER_EXECUTORS__THREAD__TYPE", "threadpool"),
        ("APSCHEDULER_EXECUTORS__THREAD__MAX_WORKERS", "50"),
    ])
    .unwrap();
    let merged = file.merged(env);
    assert_eq!(merged.timezone, Some(chrono_tz::Europe::Helsinki));
    assert_eq!(merged.job_defaults.max_instances, Some(7));
    assert_eq!(merged.job_defaults.coalesce, Some(false));
    assert_eq!(
        merged.executors["thread"].options()["max_workers"],
        json!("50")
    );
    assert_eq!(merged.executors.len(), 2);
}

#[test]
fn from_file_reads_toml_and_json() {
    let dir = std::env::temp_dir().join(format!("aps-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml_path = dir.join("scheduler.toml");
    let json_path = dir.join("scheduler.json");
    std::fs::write(&toml_path, TOML).unwrap();
    std::fs::write(&json_path, expected().to_value().to_string()).unwrap();
    assert_eq!(SchedulerConfig::from_file(&toml_path).unwrap(), expected());
    assert_eq!(SchedulerConfig::from_file(&json_path).unwrap(), expected());
    assert_err(
        SchedulerConfig::from_file(dir.join("scheduler.yaml")),
        ErrorKind::InvalidInput,
        &["scheduler.yaml"],
    );
    assert_err(
        SchedulerConfig::from_file(dir.join("missing.toml")),
        ErrorKind::NotFound,
        &["missing.toml"],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `from_env()` reads the real environment: checked in a child process so this test
/// never changes its own environment.
#[test]
fn from_env_reads_the_process_environment() {
    if std::env::var_os("APS_CONFIG_TEST_CHILD").is_some() {
        assert_eq!(SchedulerConfig::from_env().unwrap(), expected());
        return;
    }
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "from_env_reads_the_process_environment",
        "--test-threads=1",
    ])
    .env("APS_CONFIG_TEST_CHILD", "1");
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(|k| k.starts_with("APSCHEDULER_")) {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env() {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}

// ------------------------------------------------------------------ building

#[tokio::test]
async fn builder_config_builds_the_components() {
    let engine = Engine::builder().config(&buildable()).unwrap().build();
    assert_eq!(engine.timezone(), chrono_tz::Europe::Helsinki);
    assert_eq!(
        engine.job_defaults(),
        JobDefaults {
            misfire_grace_time: Some(Duration::from_secs(30)),
            coalesce: false,
            max_instances: 3,
            retry: None,
        }
    );
    // Every configured executor exists: adding another under its alias conflicts.
    for alias in ["default", "async", "debug"] {
        assert_err(
            engine.add_executor(Arc::new(InlineExecutor::new()), alias),
            ErrorKind::Conflict,
            &[alias],
        );
    }
    engine.register_task("tick", |_| Ok(json!(null)));
    engine.start(true).await.unwrap();
    for (store, executor) in [("default", "default"), ("sql", "async"), ("sql", "debug")] {
        engine
            .add_job(
                JobSpec::task("tick")
                    .trigger_args("interval", json!({"seconds": 60}))
                    .jobstore(store)
                    .executor(executor),
            )
            .await
            .unwrap();
    }
    assert_eq!(engine.get_jobs(Some("sql")).await.unwrap().len(), 2);
    engine.shutdown(false).await.unwrap();
}

#[test]
fn from_config_equals_builder_arguments() {
    let a = Engine::from_config(&buildable()).unwrap();
    let b = Engine::builder()
        .timezone(chrono_tz::Europe::Helsinki)
        .job_defaults(JobDefaults {
            misfire_grace_time: Some(Duration::from_secs(30)),
            coalesce: false,
            max_instances: 3,
            retry: None,
        })
        .build();
    assert_eq!(a.timezone(), b.timezone());
    assert_eq!(a.job_defaults(), b.job_defaults());
}

#[tokio::test]
async fn configure_with_before_start_then_invalid_state_after() {
    let engine = Engine::builder().timezone(chrono_tz::Asia::Tokyo).build();
    engine.register_task("tick", |_| Ok(json!(null)));
    // A job added before configure stays pending and lands in the configured store.
    engine
        .add_job(
            JobSpec::task("tick")
                .trigger_args("interval", json!({"hours": 2}))
                .id("early")
                .jobstore("sql"),
        )
        .await
        .unwrap();
    engine.configure_with(&buildable()).unwrap();
    assert_eq!(engine.timezone(), chrono_tz::Europe::Helsinki);
    assert_eq!(engine.job_defaults().max_instances, 3);

    // Job defaults left out keep their current value.
    let mut only_coalesce = SchedulerConfig::new();
    only_coalesce.job_defaults.coalesce = Some(true);
    engine.configure_with(&only_coalesce).unwrap();
    assert!(engine.job_defaults().coalesce);
    assert_eq!(engine.job_defaults().max_instances, 3);
    assert_eq!(engine.timezone(), chrono_tz::Europe::Helsinki);

    engine.start(false).await.unwrap();
    assert_eq!(engine.get_jobs(Some("sql")).await.unwrap().len(), 1);
    assert_err(
        engine.configure_with(&SchedulerConfig::new().with_timezone(chrono_tz::UTC)),
        ErrorKind::InvalidState,
        &["running"],
    );
    assert_eq!(engine.timezone(), chrono_tz::Europe::Helsinki);
    engine.shutdown(false).await.unwrap();
    assert_eq!(engine.state(), SchedulerState::Stopped);
}

#[test]
fn configure_with_is_all_or_nothing() {
    let engine = Engine::builder().timezone(chrono_tz::Asia::Tokyo).build();
    let bad = SchedulerConfig::new()
        .with_timezone(chrono_tz::UTC)
        .with_executor("a", ComponentConfig::new("threadpool"))
        .with_executor(
            "b",
            ComponentConfig::new("threadpool").option("max_workers", "abc"),
        );
    assert_err(
        engine.configure_with(&bad),
        ErrorKind::InvalidInput,
        &["max_workers", "abc"],
    );
    assert_eq!(engine.timezone(), chrono_tz::Asia::Tokyo);
    // Nothing was added: 'a' is still free.
    engine
        .add_executor(Arc::new(InlineExecutor::new()), "a")
        .unwrap();
}

#[test]
fn configure_with_replaces_components_by_alias() {
    let engine = Engine::builder()
        .executor("thread", Arc::new(InlineExecutor::new()))
        .build();
    let config = SchedulerConfig::new().with_executor(
        "thread",
        ComponentConfig::new("threadpool").option("max_workers", 2),
    );
    engine.configure_with(&config).unwrap();
    // Still exactly one executor under that alias.
    engine.remove_executor("thread", false).unwrap();
    assert_err(
        engine.remove_executor("thread", false),
        ErrorKind::NotFound,
        &["thread"],
    );
}

// ------------------------------------------------------------------ registry

fn custom_store(table: &ConfigTable) -> Result<Arc<dyn JobStore>, Error> {
    let _ = table.require_str("path")?;
    let _ = table.get_bool("compress")?;
    Ok(Arc::new(apscheduler_store_memory::MemoryJobStore::new()))
}

#[test]
fn crates_plug_in_through_the_registry() {
    let mut registry = ComponentRegistry::with_builtins();
    let config = SchedulerConfig::new().with_jobstore(
        "files",
        ComponentConfig::new("File-Store")
            .option("path", "/tmp/jobs")
            .option("compress", true),
    );
    assert_err(
        Engine::builder().config_with_registry(&config, &registry),
        ErrorKind::InvalidInput,
        &["job store 'files'", "unknown type 'File-Store'", "memory"],
    );
    registry.register_store(&["file-store", "my_crate.stores:FileStore"], custom_store);
    assert!(registry.store_types().contains(&"file-store"));
    Engine::builder()
        .config_with_registry(&config, &registry)
        .unwrap();

    // The factory's own checks name the component and the option.
    let missing = SchedulerConfig::new().with_jobstore("files", ComponentConfig::new("file-store"));
    assert_err(
        Engine::builder().config_with_registry(&missing, &registry),
        ErrorKind::InvalidInput,
        &["job store 'files'", "missing required option 'path'"],
    );
    let bad = SchedulerConfig::new().with_jobstore(
        "files",
        ComponentConfig::new("file-store")
            .option("path", "/x")
            .option("compress", "sometimes"),
    );
    assert_err(
        Engine::builder().config_with_registry(&bad, &registry),
        ErrorKind::InvalidInput,
        &["job store 'files'", "'compress'", "'sometimes'"],
    );

    // The process-wide registry serves configure_with.
    ComponentRegistry::register_global_store(&["config-test-global-store"], custom_store);
    let engine = Engine::builder().build();
    engine
        .configure_with(&SchedulerConfig::new().with_jobstore(
            "g",
            ComponentConfig::new("config-test-global-store").option("path", "/y"),
        ))
        .unwrap();
}

#[test]
fn builtin_type_aliases() {
    let registry = ComponentRegistry::with_builtins();
    for t in [
        "threadpool",
        "thread",
        "apscheduler.executors.pool:ThreadPoolExecutor",
        "asyncio",
        "async",
        "debug",
        "inline",
    ] {
        registry
            .create_executor("x", &ComponentConfig::new(t))
            .unwrap_or_else(|e| panic!("{t}: {e}"));
    }
    registry
        .create_store("x", &ComponentConfig::new("memory"))
        .unwrap();
    registry
        .create_store(
            "x",
            &ComponentConfig::new("apscheduler.jobstores.memory:MemoryJobStore"),
        )
        .unwrap();
    // A store type where an executor is expected is named as such.
    assert_err(
        registry.create_executor("x", &ComponentConfig::new("memory")),
        ErrorKind::InvalidInput,
        &["executor 'x'", "'memory'", "job store type"],
    );
}

#[tokio::test]
async fn a_default_retry_policy_reaches_jobs_without_their_own() {
    use apscheduler_core::{RetryPolicy, RunPolicy};
    let config = SchedulerConfig::from_toml_str(
        "[job_defaults]\nretry = { attempts = 3, delay = 10, backoff = 2.0 }",
    )
    .unwrap();
    let want = RetryPolicy::new(3, Duration::from_secs(10)).backoff(2.0);
    assert_eq!(config.job_defaults.retry, Some(Some(want.clone())));
    // The flat and environment forms take the table as JSON text.
    let env = SchedulerConfig::from_env_vars([(
        "APSCHEDULER_JOB_DEFAULTS__RETRY",
        r#"{"attempts": 3, "delay": 10, "backoff": 2.0}"#,
    )])
    .unwrap();
    assert_eq!(env.job_defaults.retry, config.job_defaults.retry);

    let engine = Engine::builder().config(&config).unwrap().build();
    engine.register_task("tick", |_| Ok(json!(null)));
    let every_minute = || JobSpec::task("tick").trigger_args("interval", json!({"seconds": 60}));
    let plain = engine.add_job(every_minute().id("plain")).await.unwrap();
    assert_eq!(plain.policy.retry, Some(want));
    let own = RetryPolicy::new(5, Duration::from_secs(1));
    let mine = engine
        .add_job(every_minute().id("own").retry(own.clone()))
        .await
        .unwrap();
    assert_eq!(mine.policy.retry, Some(own));
    let whole = engine
        .add_job(every_minute().id("whole").policy(RunPolicy::default()))
        .await
        .unwrap();
    assert_eq!(whole.policy.retry, None, "a whole policy takes no default");

    for (value, needle) in [
        ("{ attempts = 0, delay = 1 }", "retry.attempts"),
        (
            "{ attempts = 2, delay = 1, backoff = 0.1 }",
            "retry.backoff",
        ),
        ("{ attempts = 2 }", "delay"),
        ("7", "job_defaults.retry"),
    ] {
        let err = SchedulerConfig::from_toml_str(&format!("[job_defaults]\nretry = {value}"))
            .unwrap_err();
        assert!(err.message().contains(needle), "{value}: {err}");
    }
}
