//! Concurrency: claimers and writers racing on one store.

use super::helpers::*;
use super::*;

/// Two claimers (spawned tasks, different scheduler ids) work through 50 due jobs,
/// 10 at a time, releasing each claimed job with a new run time (due again for the
/// first 40 jobs) or removing it, until nothing is left. No (job id, run time) pair is
/// ever handed out twice, every pair is handed out once (90 in all), each batch is
/// ordered, and the store ends up empty.
pub async fn check_concurrent_claimers(store: Arc<dyn JobStore>) {
    const CHECK: &str = "check_concurrent_claimers";
    assert_empty(&*store, CHECK).await;
    let jobs = (0..50)
        .map(|i| sample_job(&format!("job-{i:02}"), Some(at(i)), interval_trigger(60)))
        .collect();
    store.add_jobs(jobs, false).await.expect("add_jobs");
    let now = utc(100);

    let claimers = ["scheduler-a", "scheduler-b"].map(|scheduler| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut seen: Vec<(String, Option<DateTime<Tz>>)> = Vec::new();
            loop {
                let batch = claim(&*store, scheduler, now, 10).await;
                if batch.is_empty() {
                    break;
                }
                let order: Vec<_> = batch
                    .iter()
                    .map(|j| (j.next_run_time, j.id.clone()))
                    .collect();
                let mut sorted = order.clone();
                sorted.sort();
                assert_eq!(order, sorted, "{CHECK}: a batch out of order");
                tokio::task::yield_now().await;
                let releases = batch
                    .iter()
                    .map(|job| {
                        seen.push((job.id.to_string(), job.next_run_time));
                        match job.next_run_time {
                            Some(t) if t < at(40) => JobRelease::Update(rescheduled(
                                job,
                                Some(t + chrono::Duration::seconds(60)),
                            )),
                            _ => JobRelease::Remove(job.id.clone()),
                        }
                    })
                    .collect();
                release(&*store, scheduler, releases).await;
                tokio::task::yield_now().await;
            }
            seen
        })
    });
    let mut all = Vec::new();
    for claimer in claimers {
        all.extend(claimer.await.expect("a claimer task panicked"));
    }
    let mut unique = HashSet::new();
    for pair in &all {
        assert!(
            unique.insert(pair.clone()),
            "{CHECK}: {pair:?} was claimed twice"
        );
    }
    assert_eq!(
        all.len(),
        90,
        "{CHECK}: every (job, run time) is claimed once"
    );
    assert!(all_ids(&*store).await.is_empty(), "{CHECK}: jobs left over");
}

/// Eight tasks add 25 distinct jobs each at the same time (half one by one, half with
/// `add_jobs` in batches); all 200 are present afterwards. Eight tasks adding the same
/// id without `replace_existing`: exactly one succeeds, the others get `Conflict`.
pub async fn check_concurrent_writers(store: Arc<dyn JobStore>) {
    const CHECK: &str = "check_concurrent_writers";
    assert_empty(&*store, CHECK).await;
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let jobs: Vec<Job> = (0..25)
                    .map(|i| sample_job(&format!("w{w}-{i:02}"), Some(at(i)), interval_trigger(60)))
                    .collect();
                if w % 2 == 0 {
                    for job in jobs {
                        add(&*store, job).await;
                        tokio::task::yield_now().await;
                    }
                } else {
                    for chunk in jobs.chunks(5) {
                        store
                            .add_jobs(chunk.to_vec(), false)
                            .await
                            .expect("add_jobs");
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("a writer task panicked");
    }
    let listed: HashSet<String> = all_ids(&*store).await.into_iter().collect();
    assert_eq!(listed.len(), 200, "{CHECK}: jobs lost or duplicated");
    for w in 0..8 {
        for i in 0..25 {
            let id = format!("w{w}-{i:02}");
            assert!(
                listed.contains(&id),
                "{CHECK}: {id} missing from get_all_jobs"
            );
            lookup(&*store, &id).await;
        }
    }

    let contenders: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let job = Job {
                    name: format!("writer {w}").into(),
                    ..sample_job("contested", Some(at(1)), interval_trigger(60))
                };
                store.add_job(job, false).await.map_err(|e| e.kind())
            })
        })
        .collect();
    let mut ok = 0;
    for contender in contenders {
        match contender.await.expect("a writer task panicked") {
            Ok(()) => ok += 1,
            Err(kind) => assert_eq!(kind, ErrorKind::Conflict, "{CHECK}: contested add"),
        }
    }
    assert_eq!(ok, 1, "{CHECK}: a contested id must be added exactly once");
    assert_eq!(
        all_ids(&*store).await.len(),
        201,
        "{CHECK}: after the contested add"
    );
}
