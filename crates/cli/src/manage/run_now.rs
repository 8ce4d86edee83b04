//! `aps jobs run`: a job's action now, in this process or (with `--daemon`) in the running daemon.

use apscheduler_core::{
    CancelSignal, EndReply, Held, JobStore, NewRun, Run, RunEnd, RunKey, RunOrigin, RunProtocol,
    RunRules, RunState, RunStore, StartReply, SKIPPED_AT_MAX,
};
use chrono::SubsecRound;

use super::*;

/// `aps jobs run ID --daemon`: the daemon's run-now (`POST /api/jobs/{id}/run`), which
/// the job's overlap policy governs; prints the run id the daemon started.
pub(super) fn run_on_daemon(
    store_args: &StoreArgs,
    id: &str,
    url: Option<&str>,
    token: Option<&str>,
) -> ExitCode {
    let fail = |(code, message): crate::daemon_api::Failure| {
        eprintln!("error: {message}");
        ExitCode::from(code)
    };
    let api = match crate::daemon_api::DaemonApi::locate(
        url,
        store_args.config.as_deref(),
        token,
        "aps jobs run --daemon",
    ) {
        Ok(api) => api,
        Err(e) => return fail(e),
    };
    let path = format!("/api/jobs/{}/run", crate::daemon_api::path_segment(id));
    match api.post(&path, &serde_json::json!({})) {
        Ok((status, answer)) if status < 300 => {
            let run = answer["run_id"].as_str().unwrap_or("?");
            eprintln!("the daemon started run {run} of job '{id}' (follow it with: aps history --job {id})");
            ExitCode::SUCCESS
        }
        Ok((status, answer)) => fail((
            1,
            format!(
                "the daemon refused to run job '{id}' ({status}): {}",
                answer["message"].as_str().unwrap_or_default()
            ),
        )),
        Err(e) => fail(e),
    }
}

/// `aps jobs run ID`: the action now, in this process, with a history record. On a
/// store whose daemons keep every run as a leased row (the live daemons' protocol in
/// the node registry; without one live, `[scheduler] leased_runs`), the run is a row
/// too: the store starts it only while the job is below `max_instances` on every
/// daemon, this process renews its lease while the action runs, and a daemon's sweep
/// records it interrupted if this process dies first.
pub(super) async fn run_now(
    def: &JobDef,
    job: &Job,
    history: Option<Arc<dyn RunHistory>>,
    target: &Target,
    store: Arc<dyn JobStore>,
) -> Result<ExitCode, String> {
    // Microseconds: every store keeps a run's fire time to the microsecond.
    let now = Utc::now().trunc_subsecs(6);
    let holder = format!("aps-jobs-run/{}", store::daemon_node(None));
    let leased = match live_protocol(history.as_deref(), target.node_timeout).await {
        Some(protocol) => protocol == RunProtocol::LeasedRuns,
        None => target.leased_runs,
    };
    let row = match store.runs().filter(|_| leased) {
        Some(runs) => Some(start_row(runs, &holder, job, now, history.as_deref()).await?),
        None => None,
    };
    let run_id = row
        .as_ref()
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), |r| r.id.to_string());
    let mut record = RunRecord::pending(run_id, def.id.as_str(), now, store::daemon_node(None));
    record.started_at = Some(now);
    record.message = Some("run by `aps jobs run`".into());
    if let Some(h) = &history {
        h.record_runs(std::slice::from_ref(&record))
            .await
            .map_err(|e| format!("cannot record the run: {e}"))?;
    }
    let env = RunEnv {
        job_id: def.id.clone(),
        run_id: record.run_id.clone(),
        scheduled_at: now.with_timezone(&target.tz),
        attempt: 1,
        idempotency_key: RunKey::first(def.id.as_str(), now).idempotency_key(),
        fence: row.as_ref().map(|r| r.fence),
        cancel: CancelSignal::new(),
    };
    let renewal = row.as_ref().map(|r| {
        tokio::spawn(keep_leased(
            store.clone(),
            holder.clone(),
            r.held(),
            env.cancel.clone(),
        ))
    });
    let limits = Limits {
        kill_grace: target.kill_grace,
        output_cap: target.output_cap,
    };
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let result = action::run(&def.action, &env, limits, stop_rx).await;
    if let Some(renewal) = renewal {
        renewal.abort();
    }
    record.finished_at = Some(Utc::now());
    record.message = None;
    let result = result.map_err(|e| apscheduler_core::failure_from_task_error(e.as_ref()));
    apscheduler_engine::finish_record(&mut record, &result, target.output_cap);
    if let Some(h) = &history {
        h.record_runs(std::slice::from_ref(&record))
            .await
            .map_err(|e| format!("cannot record the run's end: {e}"))?;
    }
    if let (Some(row), Some(runs)) = (&row, store.runs()) {
        // After its record: a run never ends without one.
        end_row(runs, &holder, row, record.outcome).await;
    }
    print!("{}", record.output);
    eprintln!(
        "run {} of job '{}': {}{}",
        record.run_id,
        def.id,
        record.outcome,
        record
            .message
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    );
    Ok(if record.outcome == RunOutcome::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Creates the run's row (`RunOrigin::RunNow`, no misfire grace) and has the store
/// start it. A run the store does not start (the job at `max_instances`) is recorded
/// missed and ended, and the command fails: it does not wait for room.
async fn start_row(
    runs: &dyn RunStore,
    holder: &str,
    job: &Job,
    now: DateTime<Utc>,
    history: Option<&dyn RunHistory>,
) -> Result<Run, String> {
    let new = NewRun {
        key: RunKey::first(job.id.clone(), now),
        state: RunState::Claimed,
        rules: RunRules {
            max_instances: job.max_instances,
            overlap: job.policy.overlap,
            grace_until: None,
            recover: job.recover,
            batch: None,
        },
        origin: RunOrigin::RunNow,
    };
    let lease = apscheduler_engine::DEFAULT_LEASE;
    let row = runs
        .insert_runs(holder, vec![new], lease)
        .await
        .map_err(|e| format!("cannot create the run in the store: {e}"))?
        .into_iter()
        .next()
        .ok_or_else(|| format!("job '{}' has a run at this very instant already", job.id))?;
    let reply = runs
        .start_runs(holder, &[row.held()], chrono::Utc::now(), lease)
        .await
        .map_err(|e| format!("cannot start the run in the store: {e}"))?;
    let reason = match reply.into_iter().next() {
        Some(StartReply::Started { .. }) => return Ok(row),
        Some(StartReply::Ended { reason, .. }) => reason,
        Some(StartReply::Waiting { .. }) => format!(
            "{SKIPPED_AT_MAX} (max_instances = {}; `aps jobs run` does not wait for room)",
            job.max_instances
        ),
        Some(StartReply::Refused) | None => {
            return Err(format!(
                "the store did not start run {} of job '{}'",
                row.id, job.id
            ))
        }
    };
    if let Some(h) = history {
        let mut record = RunRecord::pending(&*row.id, &*job.id, now, store::daemon_node(None));
        record.finished_at = Some(Utc::now());
        record.outcome = RunOutcome::Missed;
        record.message = Some(reason.clone());
        h.record_runs(std::slice::from_ref(&record))
            .await
            .map_err(|e| format!("cannot record the run: {e}"))?;
    }
    end_row(runs, holder, &row, RunOutcome::Missed).await;
    Err(format!("job '{}' was not run now: {reason}", job.id))
}

/// Renews the run's lease every third of it while the action runs; stops the action
/// when another fire time of a `cancel_other` or `terminate_other` job asks.
async fn keep_leased(store: Arc<dyn JobStore>, holder: String, held: Held, cancel: CancelSignal) {
    let lease = apscheduler_engine::DEFAULT_LEASE;
    let every = lease / 3;
    loop {
        tokio::time::sleep(every).await;
        let Some(runs) = store.runs() else { return };
        match runs
            .renew_runs(&holder, std::slice::from_ref(&held), lease)
            .await
        {
            Ok(renewed) if !renewed.lost.is_empty() => {
                eprintln!(
                    "warning: run {} is no longer this process's: its lease ran out and a \
                     scheduler's sweep recorded it interrupted",
                    held.id
                );
                return;
            }
            Ok(renewed) => {
                if let Some(run) = renewed.held.iter().find(|r| r.stop_requested) {
                    let terminate = run.rules.overlap == apscheduler_core::Overlap::TerminateOther;
                    cancel.cancel(
                        "a newer fire time of the job asked this run to stop",
                        terminate,
                    );
                }
            }
            Err(e) => eprintln!(
                "warning: the lease of run {} could not be renewed ({e}); tried again in {every:?}",
                held.id
            ),
        }
    }
}

/// Ends the run in the store (after its record is written).
async fn end_row(runs: &dyn RunStore, holder: &str, row: &Run, outcome: RunOutcome) {
    let end = RunEnd {
        run: row.held(),
        outcome,
        retry_at: None,
        recorded: true,
    };
    match runs
        .end_runs(holder, vec![end], apscheduler_engine::DEFAULT_LEASE)
        .await
    {
        Ok(replies) if replies.first() == Some(&EndReply::Refused) => eprintln!(
            "warning: run {} was taken over before its end was written: a scheduler's sweep \
             records it interrupted",
            row.id
        ),
        Ok(_) => {}
        Err(e) => eprintln!(
            "warning: the end of run {} was not written ({e}): once its lease runs out a \
             scheduler's sweep records it interrupted",
            row.id
        ),
    }
}

/// The run protocol of the live daemons on the store, as the node registry says (the
/// first live node's: a daemon refuses to start beside one of another protocol).
async fn live_protocol(
    history: Option<&dyn RunHistory>,
    node_timeout: std::time::Duration,
) -> Option<RunProtocol> {
    let listed = history?.nodes()?.list_nodes().await.ok()?;
    let now = Utc::now();
    listed
        .into_iter()
        .find(|n| !n.is_stale(now, node_timeout))
        .map(|n| n.protocol)
}
