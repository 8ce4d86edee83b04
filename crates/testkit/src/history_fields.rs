//! The run history checks of a record's attempt, backfill mark and due time (the
//! fields of retries, backfills and waiting runs), run by
//! [`history::run_all`](crate::history::run_all), and the check of a record stored
//! before those fields existed, which each store's tests write in its old format.
//!
//! | check | contract |
//! |---|---|
//! | [`check_attempt_backfill_due_at`] | `attempt`, `backfill` and `due_at` round-trip through every read (`query_runs`, `latest_runs`, `interrupt_running`) and are replaced by a second write; a waiting record (running, never started, due) keeps its due time when interrupted |
//! | [`check_old_format_record`] | a record written without the fields reads as attempt 1, not a backfill, no due time |

use apscheduler_core::{RunHistory, RunOutcome, RunQuery, RunRecord};
use chrono::Duration;

use crate::history::{base, record};

fn of_job(job: &str) -> RunQuery {
    RunQuery {
        job_id: Some(job.to_owned()),
        limit: 1000,
        ..RunQuery::default()
    }
}

/// `attempt`, `backfill` and `due_at` come back as written from every read, to the
/// microsecond; a rewrite replaces them; `interrupt_running` hands a waiting record
/// back with its due time and no start.
pub async fn check_attempt_backfill_due_at(history: &dyn RunHistory) {
    let job = "af-job";
    let first = record("af-1", job, 0);
    let mut retry = record("af-2", job, 0);
    retry.attempt = 3;
    retry.outcome = RunOutcome::Failure;
    retry.exit_code = Some(1);
    retry.due_at = Some(base() + Duration::microseconds(2_000_123));
    let mut backfill = record("af-3", job, -3600);
    backfill.backfill = true;
    let mut largest = record("af-4", job, -7200);
    largest.attempt = u32::MAX;
    largest.backfill = true;
    largest.due_at = Some(base() - Duration::microseconds(7_199_999_999));
    // A waiting run: a retry due later, on a node that then dies.
    let mut waiting = record("af-5", job, 10);
    waiting.outcome = RunOutcome::Running;
    waiting.started_at = None;
    waiting.finished_at = None;
    waiting.exit_code = None;
    waiting.output = String::new();
    waiting.attempt = 2;
    waiting.due_at = Some(base() + Duration::seconds(40) + Duration::microseconds(7));
    waiting.node = "af-dead".to_owned();
    let all = vec![
        waiting.clone(),
        retry.clone(),
        first.clone(),
        backfill.clone(),
        largest.clone(),
    ];
    history.record_runs(&all).await.unwrap();
    // Newest first: af-5 (+10 s), then af-2 before af-1 (same time, run id descending).
    let newest_first = vec![
        waiting.clone(),
        retry.clone(),
        first.clone(),
        backfill.clone(),
        largest.clone(),
    ];
    assert_eq!(
        history.query_runs(&of_job(job)).await.unwrap(),
        newest_first,
        "attempt, backfill and due_at come back as written"
    );
    assert_eq!(
        history.latest_runs(&[job.to_owned()]).await.unwrap(),
        vec![waiting.clone()],
        "latest_runs keeps the fields"
    );

    // A rewrite of a run id replaces the fields (a retry record that starts, then ends).
    let mut started = waiting.clone();
    started.started_at = Some(base() + Duration::seconds(41));
    history.record_runs(&[started.clone()]).await.unwrap();
    let mut rewritten = retry.clone();
    rewritten.attempt = 4;
    rewritten.backfill = true;
    rewritten.due_at = None;
    history.record_runs(&[rewritten.clone()]).await.unwrap();
    let found = history.query_runs(&of_job(job)).await.unwrap();
    assert_eq!(
        found,
        vec![started.clone(), rewritten, first, backfill, largest.clone()],
        "a second write replaces attempt, backfill and due_at"
    );

    // Back to waiting, then its node dies: the reaper gets it with its due time.
    history.record_runs(&[waiting.clone()]).await.unwrap();
    let now = base() + Duration::seconds(60);
    let why = "node af-dead stopped heartbeating";
    let handed = history
        .interrupt_running("af-dead", now, why)
        .await
        .unwrap();
    let mut interrupted = waiting.clone();
    interrupted.outcome = RunOutcome::Interrupted;
    interrupted.finished_at = Some(now);
    interrupted.message = Some(why.to_owned());
    assert_eq!(
        handed,
        vec![interrupted.clone()],
        "interrupt_running hands the waiting record back whole"
    );
    let got = history.query_runs(&of_job(job)).await.unwrap();
    assert_eq!(got.first(), Some(&interrupted));
    assert!(
        interrupted.started_at.is_none() && interrupted.due_at.is_some(),
        "a never-started record with a due time is what the reaper starts"
    );
}

/// `stored` (run id `old-1` of job `old-job`, as [`old_format_record`] gives it) was
/// written by the store's tests in the format from before `attempt`, `backfill` and
/// `due_at`: it reads back as a first attempt, not a backfill, with no due time.
pub async fn check_old_format_record(history: &dyn RunHistory) {
    let found = history.query_runs(&of_job("old-job")).await.unwrap();
    assert_eq!(found, vec![old_format_record()]);
    assert_eq!(
        (found[0].attempt, found[0].backfill, found[0].due_at),
        (1, false, None)
    );
    assert_eq!(
        history.latest_runs(&["old-job".to_owned()]).await.unwrap(),
        vec![old_format_record()]
    );
}

/// The record a store's tests write in their old format for
/// [`check_old_format_record`]: a failed run (exit code 2, output and message set),
/// as [`record`] `("old-1", "old-job", 5)` otherwise.
pub fn old_format_record() -> RunRecord {
    let mut r = record("old-1", "old-job", 5);
    r.outcome = RunOutcome::Failure;
    r.exit_code = Some(2);
    r.message = Some("exit status 2".to_owned());
    r
}
