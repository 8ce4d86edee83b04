//! A job written by one store and read by another keeps its next run time to the
//! microsecond: every persistent store indexes a run time rounded up to the microsecond
//! (core's `time::micros`, one rule for all), so handing a job from store to store never
//! moves it, and none makes it due early; in either state format (JSON, bincode).
//!
//! Needs the Redis and MongoDB-wire test servers (`APS_TEST_REDIS_URL`,
//! `APS_TEST_MONGODB_URL`; skipped with a notice outside CI without them).

use std::sync::Arc;

use apscheduler::core::codec::StateFormat;
use apscheduler::core::time::micros;
use apscheduler::core::{Job, JobStore};
use apscheduler::stores::memory::MemoryJobStore;
use apscheduler::stores::mongodb::MongoDbJobStore;
use apscheduler::stores::redis::RedisJobStore;
use apscheduler::stores::sql::SqlJobStore;
use apscheduler_testkit::server::{random_namespace, server_url};
use apscheduler_testkit::store::{at, interval_trigger, sample_job};
use chrono::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_keeps_its_run_time_to_the_microsecond_from_store_to_store() {
    let test = "a_job_keeps_its_run_time_to_the_microsecond_from_store_to_store";
    let Some(redis) = server_url("APS_TEST_REDIS_URL", "redis://127.0.0.1:6379/", test) else {
        return;
    };
    let Some(mongo) = server_url(
        "APS_TEST_MONGODB_URL",
        "mongodb://127.0.0.1:27117/?directConnection=true",
        test,
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ns = random_namespace();
    let stores: Vec<(&str, Arc<dyn JobStore>)> = vec![
        ("memory", Arc::new(MemoryJobStore::new())),
        (
            "sqlite",
            Arc::new(
                SqlJobStore::builder(format!("sqlite:///{}/jobs.sqlite", dir.path().display()))
                    .table_name(ns.clone())
                    .build()
                    .unwrap(),
            ),
        ),
        (
            "redis",
            Arc::new(
                RedisJobStore::builder(redis.clone())
                    .prefix(format!("{ns}."))
                    .build()
                    .unwrap(),
            ),
        ),
        (
            "mongodb",
            Arc::new(
                MongoDbJobStore::builder(mongo.clone())
                    .database(ns.clone())
                    .build()
                    .unwrap(),
            ),
        ),
        // The same stores writing the bincode format.
        (
            "sqlite, bincode",
            Arc::new(
                SqlJobStore::builder(format!("sqlite:///{}/again.sqlite", dir.path().display()))
                    .state_format(StateFormat::Bincode)
                    .build()
                    .unwrap(),
            ),
        ),
        (
            "redis, bincode",
            Arc::new(
                RedisJobStore::builder(redis)
                    .prefix(format!("{ns}.bin."))
                    .state_format(StateFormat::Bincode)
                    .build()
                    .unwrap(),
            ),
        ),
        (
            "mongodb, bincode",
            Arc::new(
                MongoDbJobStore::builder(mongo)
                    .database(format!("{ns}_bin"))
                    .state_format(StateFormat::Bincode)
                    .build()
                    .unwrap(),
            ),
        ),
        ("sqlite again", {
            let store =
                SqlJobStore::builder(format!("sqlite:///{}/last.sqlite", dir.path().display()))
                    .build()
                    .unwrap();
            Arc::new(store)
        }),
    ];
    for (_, store) in &stores {
        store.start("default").await.unwrap();
    }
    // 1 ns past a whole microsecond: every persistent store must round it up alike.
    let t = at(5) + Duration::nanoseconds(123_457_001);
    let expected = at(5) + Duration::microseconds(123_458);
    let mut job: Job = sample_job("handed-over", Some(t), interval_trigger(10));
    let mut seen = Vec::new();
    for (name, store) in &stores {
        store.add_job(job.clone(), false).await.unwrap();
        job = store
            .lookup_job("handed-over")
            .await
            .unwrap()
            .expect("stored");
        let run_time = job.next_run_time.expect("still scheduled");
        seen.push((*name, run_time));
        // The state may keep the instant to the nanosecond; to the microsecond (rounded
        // up, as the stores index it) it never moves.
        assert_eq!(
            micros::run_time(&run_time),
            micros::run_time(&t),
            "{name}: {seen:?}"
        );
        if *name != "memory" {
            assert_eq!(
                store.get_next_run_time().await.unwrap(),
                Some(expected.with_timezone(&chrono::Utc)),
                "{name}'s index"
            );
        }
    }
    for (_, store) in &stores {
        store.remove_all_jobs().await.unwrap();
        store.shutdown().await.unwrap();
    }
}
