//! Jobs given equal run policies share one allocation of it (a job's policy is then a
//! reference count, not two allocations to free when the job ends), whether the policy
//! comes with `add_job` or with `modify_job`; the default policy stays the shared one.

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{default_policy, ManualClock, Overlap, RetryPolicy, RunPolicy};
use apscheduler_engine::{Engine, JobChanges, JobSpec};
use serde_json::json;

mod common;
use common::at;

fn policy(overlap: Overlap) -> RunPolicy {
    RunPolicy {
        retry: Some(RetryPolicy::new(3, Duration::from_secs(10))),
        overlap,
        ..RunPolicy::default()
    }
}

#[tokio::test]
async fn equal_policies_share_one_allocation() {
    let engine = Engine::builder()
        .clock(Arc::new(ManualClock::new(at(10, 0, 0))))
        .timezone(chrono_tz::UTC)
        .build();
    engine.register_task("noop", |_| Ok(json!(null)));
    engine.start(false).await.unwrap();
    let add = |id: &str, p: Option<RunPolicy>| {
        let spec = JobSpec::task("noop")
            .id(id)
            .trigger_args("interval", json!({"hours": 1}));
        let spec = match p {
            Some(p) => spec.policy(p),
            None => spec,
        };
        let engine = engine.clone();
        async move { engine.add_job(spec).await.unwrap() }
    };
    let get = |id: &'static str| {
        let engine = engine.clone();
        async move { engine.get_job(id, None).await.unwrap().unwrap().policy }
    };
    add("a", Some(policy(Overlap::BufferOne))).await;
    add("b", Some(policy(Overlap::BufferOne))).await;
    add("c", None).await;
    add("d", Some(policy(Overlap::Skip))).await;
    let (a, b, c, d) = (
        get("a").await,
        get("b").await,
        get("c").await,
        get("d").await,
    );
    assert!(Arc::ptr_eq(&a, &b), "equal policies: one allocation");
    assert_eq!(*a, policy(Overlap::BufferOne));
    assert!(Arc::ptr_eq(&c, &default_policy()));
    assert!(!Arc::ptr_eq(&a, &d), "a different policy: its own");
    assert_eq!(*d, policy(Overlap::Skip));

    // A modified policy equal to the last one given shares it; back to the default, the
    // shared default.
    engine
        .modify_job("c", None, JobChanges::new().policy(policy(Overlap::Skip)))
        .await
        .unwrap();
    assert!(Arc::ptr_eq(&get("c").await, &d));
    engine
        .modify_job("a", None, JobChanges::new().policy(RunPolicy::default()))
        .await
        .unwrap();
    assert!(Arc::ptr_eq(&get("a").await, &default_policy()));
    assert_eq!(*get("b").await, policy(Overlap::BufferOne));
    engine.shutdown(false).await.unwrap();
}
