//! Crontab text with Jenkins' `H` given as trigger arguments: the job id is the hash key
//! unless the arguments name one, so the job's values are the same on every node and reload.

use std::sync::Arc;

use apscheduler_core::{ManualClock, Trigger};
use apscheduler_engine::{Engine, InlineExecutor, JobSpec};
use apscheduler_triggers::CronTrigger;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::json;

mod common;
use common::at;

fn engine() -> (Engine, tokio::runtime::Runtime) {
    let engine = Engine::builder()
        .clock(Arc::new(ManualClock::new(at(10, 0, 0))))
        .timezone(chrono_tz::UTC)
        .executor("default", Arc::new(InlineExecutor::new()))
        .build();
    engine.register_task("noop", |_| Ok(json!("done")));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (engine, rt)
}

/// The next fire time of `expr` hashed from `key`, after the tests' clock.
fn expected(expr: &str, key: &str) -> DateTime<Utc> {
    let now = at(10, 0, 0).with_timezone(&Tz::UTC);
    CronTrigger::from_crontab_hashed(expr, Tz::UTC, key)
        .unwrap()
        .next_fire_time(None, &now)
        .unwrap()
        .to_utc()
}

fn hash_key(trigger: &dyn Trigger) -> Option<String> {
    trigger.to_state()?["hash_key"].as_str().map(str::to_owned)
}

#[test]
fn the_job_id_is_the_hash_key() {
    let (engine, rt) = engine();
    rt.block_on(engine.start(false)).unwrap();
    let job = rt
        .block_on(
            engine.add_job(
                JobSpec::task("noop")
                    .id("backup")
                    .trigger_args("crontab", json!({"expr": "H H * * *"})),
            ),
        )
        .unwrap();
    assert_eq!(hash_key(job.trigger.as_ref()).as_deref(), Some("backup"));
    assert_eq!(
        job.next_run_time.map(|t| t.to_utc()),
        Some(expected("H H * * *", "backup"))
    );

    // Rescheduling with `H` text keeps hashing from the id.
    let job = rt
        .block_on(engine.reschedule_job(
            "backup",
            None,
            "crontab",
            &json!({"expr": "H(0-29) 3 * * *"}),
        ))
        .unwrap()
        .unwrap();
    assert_eq!(hash_key(job.trigger.as_ref()).as_deref(), Some("backup"));
    assert_eq!(
        job.next_run_time.map(|t| t.to_utc()),
        Some(expected("H(0-29) 3 * * *", "backup"))
    );
}

#[test]
fn a_given_key_wins_and_a_generated_id_is_used() {
    let (engine, rt) = engine();
    rt.block_on(engine.start(false)).unwrap();
    let job = rt
        .block_on(engine.add_job(JobSpec::task("noop").id("a").trigger_args(
            "crontab",
            json!({"expr": "H/15 * * * *", "hash_key": "nightly-report"}),
        )))
        .unwrap();
    assert_eq!(
        hash_key(job.trigger.as_ref()).as_deref(),
        Some("nightly-report")
    );
    // No id given: the generated one is the key, kept with the trigger.
    let job = rt
        .block_on(
            engine.add_job(
                JobSpec::task("noop")
                    .jitter(1.0)
                    .trigger_args("crontab", json!({"expr": "H * * * *"})),
            ),
        )
        .unwrap();
    assert_eq!(
        hash_key(job.trigger.as_ref()).as_deref(),
        Some(job.id.as_ref())
    );
    // Text without `H` gets no key.
    let job = rt
        .block_on(
            engine.add_job(
                JobSpec::task("noop")
                    .id("plain")
                    .trigger_args("crontab", json!({"expr": "0 3 * * *"})),
            ),
        )
        .unwrap();
    assert_eq!(hash_key(job.trigger.as_ref()), None);
}
