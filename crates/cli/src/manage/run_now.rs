//! `aps jobs run`: a job's action now, in this process or (with `--daemon`) in the running daemon.

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

/// `aps jobs run ID`: the action now, in this process, with a history record.
pub(super) async fn run_now(
    def: &JobDef,
    history: Option<Arc<dyn RunHistory>>,
    target: &Target,
) -> Result<ExitCode, String> {
    let now = Utc::now();
    let mut record = RunRecord {
        run_id: uuid::Uuid::now_v7().to_string(),
        job_id: def.id.clone(),
        scheduled_at: now,
        started_at: Some(now),
        finished_at: None,
        outcome: RunOutcome::Running,
        exit_code: None,
        http_status: None,
        output: String::new(),
        message: Some("run by `aps jobs run`".into()),
        node: store::daemon_node(None),
        attempt: 1,
        backfill: false,
        due_at: None,
    };
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
        idempotency_key: apscheduler_core::RunKey::first(def.id.as_str(), now).idempotency_key(),
        fence: None,
        cancel: Default::default(),
    };
    let limits = Limits {
        kill_grace: target.kill_grace,
        output_cap: target.output_cap,
    };
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let result = action::run(&def.action, &env, limits, stop_rx).await;
    record.finished_at = Some(Utc::now());
    record.message = None;
    let result = result.map_err(|e| apscheduler_core::failure_from_task_error(e.as_ref()));
    apscheduler_engine::finish_record(&mut record, &result, target.output_cap);
    if let Some(h) = &history {
        h.record_runs(std::slice::from_ref(&record))
            .await
            .map_err(|e| format!("cannot record the run's end: {e}"))?;
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
