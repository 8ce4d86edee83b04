//! The run contract's compact steps on PostgreSQL and MySQL/MariaDB
//! (`APS_TEST_POSTGRES_URL`, `APS_TEST_MYSQL_URL`): a step's statements go as text,
//! `BEGIN` and `COMMIT` among them, its values as literals. These tests check what that
//! changes: large values (states of hundreds of KiB, on MySQL over a script's budget,
//! written with bound statements instead) arrive intact; a step the server stops midway
//! fails as a whole and leaves no run, no lock and the caller's claim in place (its
//! connection is closed, so the server rolls its transaction back); the store works
//! again afterwards.

mod support;

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::{Job, JobRelease, JobStore, Overlap, RunState, RunStore, StartReply};
use apscheduler_testkit::store::runs::{claimed_run, run_rules};
use apscheduler_testkit::store::{at, interval_trigger, sample_job, utc, LEASE};
use serde_json::json;
use support::{server_url, Raw, Tables, MYSQL_ENV, POSTGRES_ENV};

/// Makes the server refuse every update of a row of `table`.
async fn refuse_updates(raw: &Raw, table: &str) {
    let t = raw.quote(table);
    let name = raw.quote(&format!("{table}_refuse"));
    match raw {
        Raw::MySql(_) => {
            raw.exec(&format!(
                "CREATE TRIGGER {name} BEFORE UPDATE ON {t} FOR EACH ROW \
                 SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'updates refused by the test'"
            ))
            .await;
        }
        _ => {
            raw.exec(&format!(
                "CREATE FUNCTION {name}() RETURNS trigger AS $f$ BEGIN \
                 RAISE EXCEPTION 'updates refused by the test'; END $f$ LANGUAGE plpgsql"
            ))
            .await;
            raw.exec(&format!(
                "CREATE TRIGGER {name} BEFORE UPDATE ON {t} FOR EACH ROW EXECUTE FUNCTION {name}()"
            ))
            .await;
        }
    }
}

async fn allow_updates(raw: &Raw, table: &str) {
    let name = raw.quote(&format!("{table}_refuse"));
    match raw {
        Raw::MySql(_) => raw.exec(&format!("DROP TRIGGER {name}")).await,
        _ => {
            raw.exec(&format!("DROP TRIGGER {name} ON {}", raw.quote(table)))
                .await;
            raw.exec(&format!("DROP FUNCTION {name}()")).await;
        }
    }
}

/// Waits until another session can lock row `id` of `table` without waiting: the
/// transaction of a closed session is rolled back once the server has seen the
/// connection go, which is not at once.
async fn wait_unlocked(raw: &Raw, table: &str, id: &str) {
    let sql = format!(
        "SELECT COUNT(*) FROM (SELECT id FROM {} WHERE id = '{id}' FOR UPDATE NOWAIT) AS l",
        raw.quote(table)
    );
    let mut last = None;
    for _ in 0..300 {
        match raw.try_exec(&sql).await {
            Ok(()) => return,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("row {id} of {table} is still locked 30 s after the failed step: {last:?}");
}

/// Each job released to `seconds` with a run for its fire time at 1 s.
fn pass(jobs: &[Job], seconds: i64) -> Vec<(JobRelease, Vec<apscheduler_core::NewRun>)> {
    jobs.iter()
        .map(|j| {
            let run = claimed_run(&j.id, utc(1), run_rules(1, Overlap::Skip));
            let moved = Job {
                next_run_time: Some(at(seconds)),
                ..j.clone()
            };
            (JobRelease::Update(moved), vec![run])
        })
        .collect()
}

async fn large_or_stopped_midway(tables: &Tables) {
    let table = tables.table();
    let store = tables.store_on(&table);
    store.start("default").await.unwrap();
    // 1.2 MiB of states: over a MySQL script's budget.
    let big = "x'$a$\\".repeat(100 << 10);
    for id in ["a", "b", "c"] {
        let mut job = sample_job(id, Some(at(1)), interval_trigger(60));
        job.args = Arc::new(vec![json!(big)]);
        store.add_job(job, false).await.unwrap();
    }
    let claimed = store
        .acquire_due_jobs("s1", utc(10), 10, LEASE)
        .await
        .unwrap();
    assert_eq!(claimed.jobs.len(), 3, "{:?}", claimed.corrupt);
    let both = store
        .end_release_and_start("s1", Vec::new(), pass(&claimed.jobs, 40), utc(10), LEASE)
        .await
        .expect("a step with large states");
    let starts = both.starts.expect("the starts");
    assert_eq!(starts.len(), 3, "{starts:?}");
    assert!(
        starts
            .iter()
            .all(|s| matches!(s, StartReply::Started { .. })),
        "{starts:?}"
    );
    for id in ["a", "b", "c"] {
        let job = store.lookup_job(id).await.unwrap().expect("still stored");
        assert_eq!(job.next_run_time, Some(at(40)));
        assert_eq!(job.args[0], json!(big));
        let runs = store.runs_of_job(id).await.unwrap();
        assert!(
            matches!(runs[..], [ref r] if matches!(r.state, RunState::Started { .. })),
            "{id}: {runs:?}"
        );
    }

    store
        .add_job(sample_job("d", Some(at(2)), interval_trigger(60)), false)
        .await
        .unwrap();
    let claimed = store
        .acquire_due_jobs("s1", utc(10), 10, LEASE)
        .await
        .unwrap();
    assert_eq!(claimed.jobs.len(), 1, "{claimed:?}");
    let raw = Raw::connect(tables.url()).await;
    refuse_updates(&raw, &table).await;
    let failed = store
        .end_release_and_start("s1", Vec::new(), pass(&claimed.jobs, 40), utc(10), LEASE)
        .await;
    let e = failed.expect_err("the trigger refuses the step's update");
    assert!(e.to_string().contains("refused by the test"), "{e}");
    wait_unlocked(&raw, &table, "d").await;
    assert!(store.runs_of_job("d").await.unwrap().is_empty());
    assert_eq!(
        raw.int(&format!(
            "SELECT COUNT(*) FROM {} WHERE id = 'd' AND lease_holder = 's1'",
            raw.quote(&table)
        ))
        .await,
        Some(1),
        "the failed step dropped the claim"
    );
    allow_updates(&raw, &table).await;
    let both = store
        .end_release_and_start("s1", Vec::new(), pass(&claimed.jobs, 40), utc(10), LEASE)
        .await
        .expect("the step once the trigger is gone");
    assert!(
        matches!(both.starts.as_deref(), Ok([StartReply::Started { .. }])),
        "{:?}",
        both.starts
    );
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_run_steps_with_large_values_or_stopped_midway() {
    let Some(url) = server_url(
        POSTGRES_ENV,
        "postgres_run_steps_with_large_values_or_stopped_midway",
    ) else {
        return;
    };
    large_or_stopped_midway(&Tables::new(&url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_run_steps_with_large_values_or_stopped_midway() {
    let Some(url) = server_url(
        MYSQL_ENV,
        "mysql_run_steps_with_large_values_or_stopped_midway",
    ) else {
        return;
    };
    large_or_stopped_midway(&Tables::new(&url)).await;
}
