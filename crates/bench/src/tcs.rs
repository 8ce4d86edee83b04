//! The same scenarios against tokio-cron-scheduler 0.15 (its in-memory default store),
//! where it can express them.
//!
//! What limits it here: a job's next run time is stored as a whole Unix second
//! (`JobStoredData::next_tick: u64`), a repeated job's period in whole seconds, and one
//! ticker task wakes every 500 ms to scan every job for due ones.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

use crate::measure::{
    cpu_time, next_whole_second, percentile, rss_bytes, sorted_ms, to_ns, wall_ns, Report,
};
use crate::sizes::Sizes;

type BenchResult = Result<Report, Box<dyn std::error::Error>>;

const WHOLE_SECONDS: &str = "run times are whole seconds and a 500 ms ticker polls for due jobs";

fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
}

fn err(e: JobSchedulerError) -> Box<dyn std::error::Error> {
    format!("tokio-cron-scheduler: {e:?}").into()
}

/// A repeated job doing nothing.
fn noop_repeated(every: Duration) -> Result<Job, JobSchedulerError> {
    Job::new_repeated_async(every, |_id, _sched| Box::pin(async {}))
}

async fn add_noop_jobs(
    sched: &JobScheduler,
    n: usize,
    every: Duration,
) -> Result<f64, JobSchedulerError> {
    let started = Instant::now();
    for _ in 0..n {
        sched.add(noop_repeated(every)?).await?;
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / n as f64)
}

/// Adding repeated jobs before `start`.
pub(crate) fn add_before_start(s: &Sizes) -> BenchResult {
    let rt = runtime(2)?;
    let per_add = rt.block_on(async {
        let sched = JobScheduler::new().await?;
        add_noop_jobs(&sched, s.add_jobs, Duration::from_secs(3600)).await
    });
    let mut r = Report::default();
    r.num("add_before_start_us", per_add.map_err(err)?);
    r.note(format!(
        "{} jobs Job::new_repeated_async(1 h) before start",
        s.add_jobs
    ));
    Ok(r)
}

/// Adding repeated jobs to a started scheduler, and their resident memory.
pub(crate) fn add_running(s: &Sizes) -> BenchResult {
    let rt = runtime(2)?;
    let (per_add, rss0, rss1) = rt
        .block_on(async {
            let sched = JobScheduler::new().await?;
            sched.start().await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
            let rss0 = rss_bytes();
            let per_add = add_noop_jobs(&sched, s.add_jobs, Duration::from_secs(3600)).await?;
            Ok::<_, JobSchedulerError>((per_add, rss0, rss_bytes()))
        })
        .map_err(err)?;
    let mut r = Report::default();
    r.num("add_running_us", per_add);
    r.num(
        "mem_per_job_bytes",
        rss1.saturating_sub(rss0) as f64 / s.add_jobs as f64,
    );
    r.note(format!(
        "RSS {:.1} MiB -> {:.1} MiB for {} jobs",
        rss0 as f64 / 1048576.0,
        rss1 as f64 / 1048576.0,
        s.add_jobs
    ));
    Ok(r)
}

/// One-shot jobs all due at the same whole second, on a runtime of 20 worker threads.
pub(crate) fn burst(s: &Sizes) -> BenchResult {
    let n = s.burst_jobs;
    let rt = runtime(20)?;
    let ran = Arc::new(AtomicUsize::new(0));
    let late: Arc<Vec<AtomicI64>> = Arc::new((0..n).map(|_| AtomicI64::new(0)).collect());
    let last_end = Arc::new(AtomicI64::new(0));
    // A whole second, since that is all the store keeps; far enough for the adds.
    let due = next_whole_second(s.burst_lead + Duration::from_secs(1));
    let due_ns = to_ns(&due);
    let mut r = Report::default();
    rt.block_on(async {
        let sched = JobScheduler::new().await?;
        sched.start().await?;
        for _ in 0..n {
            let (ran, late, last_end) = (ran.clone(), late.clone(), last_end.clone());
            let mut job =
                Job::new_one_shot_async(Duration::from_secs(3600), move |_id, _sched| {
                    let start = wall_ns();
                    let k = ran.fetch_add(1, Ordering::Relaxed);
                    if let Some(slot) = late.get(k) {
                        slot.store(start - due_ns, Ordering::Relaxed);
                    }
                    last_end.fetch_max(wall_ns(), Ordering::Relaxed);
                    Box::pin(async {})
                })?;
            // Due at `due` instead of in an hour.
            let mut data = job.job_data()?;
            data.next_tick = u64::try_from(due.timestamp()).unwrap_or(0);
            job.set_job_data(data)?;
            sched.add(job).await?;
        }
        Ok::<_, JobSchedulerError>(())
    })
    .map_err(err)?;
    if Utc::now() >= due {
        r.note("adding the jobs took longer than the lead: the burst started early");
    }
    // It never reports completion as such: wait until it has stopped running jobs.
    let deadline =
        Instant::now() + (due - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(10);
    let mut seen = usize::MAX;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1000));
        let now_ran = ran.load(Ordering::Relaxed);
        if now_ran >= n || (now_ran > 0 && now_ran == seen && Utc::now() > due) {
            break;
        }
        seen = now_ran;
    }
    let count = ran.load(Ordering::Relaxed).min(n);
    let lat = sorted_ms(late[..count].iter().map(|a| a.load(Ordering::Relaxed)));
    r.num("burst_ran", count as f64);
    if count > 0 {
        r.num(
            "burst_total_ms",
            (last_end.load(Ordering::Relaxed) - due_ns) as f64 / 1e6,
        );
    }
    r.num("burst_p50_ms", percentile(&lat, 50.0));
    r.num("burst_p99_ms", percentile(&lat, 99.0));
    r.note(format!(
        "{count} of {n} one-shot jobs ran (due at a whole second; its job channels hold 200 messages)"
    ));
    rt.shutdown_timeout(Duration::from_millis(500));
    Ok(r)
}

/// Not expressible: sub-second run times.
pub(crate) fn steady(_s: &Sizes) -> BenchResult {
    let mut r = Report::default();
    r.na("steady_p50_ms", WHOLE_SECONDS);
    r.na("steady_p99_ms", WHOLE_SECONDS);
    r.na("steady_cpu_pct", WHOLE_SECONDS);
    Ok(r)
}

/// A 100 ms period is not expressible; the closest is a cron job every second, whose
/// lateness is measured instead (scheduled time = the whole second it fired for).
pub(crate) fn every_100ms(s: &Sizes) -> BenchResult {
    let rt = runtime(2)?;
    let secs = s.every_secs.max(3);
    let samples: Arc<std::sync::Mutex<Vec<i64>>> = Arc::default();
    let rec = samples.clone();
    rt.block_on(async {
        let sched = JobScheduler::new().await?;
        sched
            .add(Job::new_async("* * * * * *", move |_id, _sched| {
                let now = wall_ns();
                // Lateness stays below the 500 ms tick, so the run is for this second.
                rec.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(now.rem_euclid(1_000_000_000));
                Box::pin(async {})
            })?)
            .await?;
        sched.start().await?;
        Ok::<_, JobSchedulerError>(())
    })
    .map_err(err)?;
    std::thread::sleep(Duration::from_secs(u64::from(secs)));
    let late = sorted_ms(samples.lock().unwrap_or_else(|e| e.into_inner()).clone());
    let mut r = Report::default();
    r.na("every100_p50_ms", WHOLE_SECONDS);
    r.na("every100_p99_ms", WHOLE_SECONDS);
    r.num("every1s_p50_ms", percentile(&late, 50.0));
    r.num("every1s_p99_ms", percentile(&late, 99.0));
    r.note(format!(
        "instead: cron '* * * * * *' for {secs} s, {} runs",
        late.len()
    ));
    rt.shutdown_timeout(Duration::from_millis(500));
    Ok(r)
}

/// An idle scheduler holding many jobs due far in the future: CPU time.
pub(crate) fn idle(s: &Sizes) -> BenchResult {
    let rt = runtime(2)?;
    rt.block_on(async {
        let sched = JobScheduler::new().await?;
        sched.start().await?;
        add_noop_jobs(&sched, s.idle_jobs, Duration::from_secs(7 * 86_400)).await?;
        Ok::<_, JobSchedulerError>(())
    })
    .map_err(err)?;
    std::thread::sleep(Duration::from_millis(500));
    let cpu0 = cpu_time();
    let w0 = Instant::now();
    std::thread::sleep(Duration::from_secs(u64::from(s.idle_secs)));
    let cpu = cpu_time() - cpu0;
    let elapsed = w0.elapsed();
    let mut r = Report::default();
    r.num("idle_cpu_ms", cpu.as_secs_f64() * 1e3);
    r.num(
        "idle_cpu_pct",
        cpu.as_secs_f64() * 100.0 / elapsed.as_secs_f64(),
    );
    r.note(format!(
        "{} jobs repeated every 7 days, CPU over {} s",
        s.idle_jobs, s.idle_secs
    ));
    rt.shutdown_timeout(Duration::from_millis(500));
    Ok(r)
}
