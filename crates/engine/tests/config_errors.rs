//! Configuration errors: every bad value and every unknown key is a typed error naming
//! the field and the value; a missing backend says what is missing.

mod common;

use apscheduler_core::ErrorKind;
use apscheduler_engine::{ComponentConfig, Engine, SchedulerConfig};
use common::assert_err;
use serde_json::json;

#[test]
fn bad_values_are_typed_errors_naming_field_and_value() {
    // max_workers = "abc"
    let c = SchedulerConfig::from_toml_str(
        "[executors.default]\ntype = \"threadpool\"\nmax_workers = \"abc\"",
    )
    .unwrap();
    assert_err(
        Engine::from_config(&c),
        ErrorKind::InvalidInput,
        &["executor 'default'", "max_workers", "'abc'"],
    );
    let c = SchedulerConfig::from_env_vars([
        ("APSCHEDULER_EXECUTORS__DEFAULT__TYPE", "threadpool"),
        ("APSCHEDULER_EXECUTORS__DEFAULT__MAX_WORKERS", "0"),
    ])
    .unwrap();
    assert_err(
        Engine::from_config(&c),
        ErrorKind::InvalidInput,
        &["max_workers", "'0'", "positive"],
    );
    let c = SchedulerConfig::new().with_executor(
        "a",
        ComponentConfig::new("asyncio").option("max_concurrency", -1),
    );
    assert_err(
        Engine::from_config(&c),
        ErrorKind::InvalidInput,
        &["executor 'a'", "max_concurrency", "'-1'"],
    );

    // coalesce = "maybe"
    assert_err(
        SchedulerConfig::from_toml_str("[job_defaults]\ncoalesce = \"maybe\""),
        ErrorKind::InvalidInput,
        &["job_defaults.coalesce", "'maybe'"],
    );
    assert_err(
        SchedulerConfig::from_flat([("apscheduler.job_defaults.coalesce", json!("maybe"))]),
        ErrorKind::InvalidInput,
        &["apscheduler.job_defaults.coalesce", "'maybe'"],
    );
    assert_err(
        SchedulerConfig::from_env_vars([("APSCHEDULER_JOB_DEFAULTS__COALESCE", "maybe")]),
        ErrorKind::InvalidInput,
        &["APSCHEDULER_JOB_DEFAULTS__COALESCE", "'maybe'"],
    );

    // timezone = "Mars/Base"
    assert_err(
        SchedulerConfig::from_toml_str("timezone = \"Mars/Base\""),
        ErrorKind::InvalidInput,
        &["timezone", "'Mars/Base'"],
    );
    assert_err(
        SchedulerConfig::from_env_vars([("APSCHEDULER_TIMEZONE", "Mars/Base")]),
        ErrorKind::InvalidInput,
        &["APSCHEDULER_TIMEZONE", "'Mars/Base'"],
    );

    // max_instances
    for v in ["0", "-1", "abc", "1.5"] {
        assert_err(
            SchedulerConfig::from_env_vars([("APSCHEDULER_JOB_DEFAULTS__MAX_INSTANCES", v)]),
            ErrorKind::InvalidInput,
            &["APSCHEDULER_JOB_DEFAULTS__MAX_INSTANCES", &format!("'{v}'")],
        );
    }
    assert_err(
        SchedulerConfig::from_toml_str("[job_defaults]\nmisfire_grace_time = \"soon\""),
        ErrorKind::InvalidInput,
        &["job_defaults.misfire_grace_time", "soon"],
    );
    assert_err(
        SchedulerConfig::from_toml_str("[job_defaults]\nmisfire_grace_time = -5"),
        ErrorKind::InvalidInput,
        &["job_defaults.misfire_grace_time", "-5"],
    );

    // unknown type
    let c = SchedulerConfig::from_toml_str("[executors.default]\ntype = \"quantum\"").unwrap();
    assert_err(
        Engine::from_config(&c),
        ErrorKind::InvalidInput,
        &["executor 'default'", "unknown type 'quantum'", "threadpool"],
    );
    let c = SchedulerConfig::from_toml_str("[jobstores.default]\ntype = \"cassandra\"").unwrap();
    assert_err(
        Engine::from_config(&c),
        ErrorKind::InvalidInput,
        &["job store 'default'", "unknown type 'cassandra'", "memory"],
    );
}

#[test]
fn unknown_keys_are_errors_naming_key_and_value() {
    assert_err(
        SchedulerConfig::from_toml_str("jobstore_retry_interval = 10"),
        ErrorKind::InvalidInput,
        &["unknown configuration key 'jobstore_retry_interval'", "10"],
    );
    assert_err(
        SchedulerConfig::from_toml_str("[job_defaults]\ncoalesc = true"),
        ErrorKind::InvalidInput,
        &["'job_defaults.coalesc'", "(value true)"],
    );
    assert_err(
        SchedulerConfig::from_flat([("apscheduler.timezon", json!("UTC"))]),
        ErrorKind::InvalidInput,
        &["'apscheduler.timezon'", "'UTC'"],
    );
    assert_err(
        SchedulerConfig::from_env_vars([("APSCHEDULER_JOB_DEFAULT__COALESCE", "true")]),
        ErrorKind::InvalidInput,
        &["APSCHEDULER_JOB_DEFAULT", "coalesce"],
    );
    assert_err(
        SchedulerConfig::from_env_vars([("APSCHEDULER_", "x")]),
        ErrorKind::InvalidInput,
        &["APSCHEDULER_", "'x'"],
    );
    // Options a component does not know.
    let c = SchedulerConfig::from_toml_str(
        "[executors.default]\ntype = \"threadpool\"\nmax_wokers = 20",
    )
    .unwrap();
    assert_err(
        Engine::from_config(&c),
        ErrorKind::InvalidInput,
        &[
            "executor 'default'",
            "unknown option 'max_wokers' = '20'",
            "threadpool",
        ],
    );
    let c = SchedulerConfig::from_toml_str("[jobstores.default]\ntype = \"memory\"\nurl = \"x\"")
        .unwrap();
    assert_err(
        Engine::from_config(&c),
        ErrorKind::InvalidInput,
        &["job store 'default'", "'url' = 'x'"],
    );
    // No type, both type and class.
    assert_err(
        SchedulerConfig::from_toml_str("[executors.thread]\nmax_workers = 20"),
        ErrorKind::InvalidInput,
        &[
            "executor 'thread'",
            "executors.thread",
            "either 'type' or 'class'",
        ],
    );
    assert_err(
        SchedulerConfig::from_json_str(
            r#"{"executors": {"thread": {"type": "threadpool", "class": "apscheduler.executors.pool:ThreadPoolExecutor"}}}"#,
        ),
        ErrorKind::InvalidInput,
        &["executor 'thread'", "not both"],
    );
    assert_err(
        SchedulerConfig::from_json_str(r#"{"executors": {"thread": 20}}"#),
        ErrorKind::InvalidInput,
        &["executors.thread", "20"],
    );
    assert_err(
        SchedulerConfig::from_json_str("[1, 2]"),
        ErrorKind::InvalidInput,
        &["[1,2]"],
    );
    assert_err(
        SchedulerConfig::from_toml_str("timezone = "),
        ErrorKind::InvalidInput,
        &["TOML"],
    );
    // A flat key that is both a value and a table.
    assert_err(
        SchedulerConfig::from_flat([
            ("apscheduler.jobstores.sql", json!("sqlite")),
            ("apscheduler.jobstores.sql.url", json!("x")),
        ]),
        ErrorKind::InvalidInput,
        &["apscheduler.jobstores.sql"],
    );
}

#[test]
fn missing_backends_say_what_is_missing() {
    // Python-only types say so. (Which Cargo feature brings a backend type is the
    // facade's to say: see crates/apscheduler/src/components.rs.)
    let cases = [
        ("jobstores", "r", "rethinkdb", "no such job store"),
        ("executors", "g", "gevent", "Python"),
    ];
    for (section, alias, type_name, remedy) in cases {
        let c = SchedulerConfig::from_json_str(
            &json!({ section: { alias: { "type": type_name } } }).to_string(),
        )
        .unwrap();
        let kind = if section == "jobstores" {
            "job store"
        } else {
            "executor"
        };
        assert_err(
            Engine::from_config(&c),
            ErrorKind::NotFound,
            &[
                &format!("{kind} '{alias}'"),
                &format!("type '{type_name}'"),
                remedy,
            ],
        );
    }
    // A backend this program does not link is an unknown type that lists the known ones.
    let c =
        SchedulerConfig::from_flat([("apscheduler.jobstores.mongo", json!({"type": "mongodb"}))])
            .unwrap();
    let err = Engine::from_config(&c).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string()
            .starts_with("job store 'mongo': unknown type 'mongodb' (known job store types:"),
        "{err}"
    );
    // The class string form names the type alias.
    let c = SchedulerConfig::new().with_executor(
        "p",
        ComponentConfig::new("apscheduler.executors.pool:ProcessPoolExecutor"),
    );
    assert_err(
        Engine::from_config(&c),
        ErrorKind::InvalidInput,
        &["executor 'p'", "unknown type 'processpool'"],
    );
}
