//! `aps history`, `aps nodes` and `aps config check`.

use super::*;

/// `aps history`.
pub(crate) fn history_command(store_args: &StoreArgs, args: HistoryArgs) -> ExitCode {
    on_store(store_args, move |target, opened| async move {
        let history = opened.history.ok_or("this store keeps no run history")?;
        let outcome = args
            .outcome
            .as_deref()
            .map(str::parse::<RunOutcome>)
            .transpose()
            .map_err(|e| format!("--outcome: {e}"))?;
        let since = args
            .since
            .as_deref()
            .map(|s| parse_since(s, target.tz))
            .transpose()?;
        let runs = history
            .query_runs(&RunQuery {
                job_id: args.job.clone(),
                outcome,
                since,
                until: None,
                node: None,
                limit: args.limit,
            })
            .await
            .map_err(|e| e.to_string())?;
        if args.json {
            let rows: Vec<Value> = runs.iter().map(run_json).collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&rows).unwrap_or_default()
            );
        } else {
            print_runs(&runs);
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `aps nodes`.
pub(crate) fn nodes_command(store_args: &StoreArgs, json: bool) -> ExitCode {
    on_store(store_args, move |target, opened| async move {
        let history = opened
            .history
            .ok_or("this store keeps no run history, and so no node registry")?;
        let registry = history
            .nodes()
            .ok_or("this store's run history keeps no node registry")?;
        let nodes = registry.list_nodes().await.map_err(|e| e.to_string())?;
        let now = Utc::now();
        if json {
            let rows: Vec<NodeView> = nodes
                .iter()
                .map(|n| NodeView::new(n, now, target.node_timeout))
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&rows).unwrap_or_default()
            );
        } else {
            let rows: Vec<Vec<String>> = nodes
                .iter()
                .map(|n| {
                    let age = (now - n.heartbeat_at).num_milliseconds() as f64 / 1e3;
                    vec![
                        n.node.clone(),
                        n.host.clone(),
                        n.pid.to_string(),
                        n.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        format!("{age:.1}s ago"),
                        n.running.to_string(),
                        NodeView::new(n, now, target.node_timeout).state,
                        n.protocol.to_string(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "NODE",
                    "HOST",
                    "PID",
                    "STARTED (UTC)",
                    "HEARTBEAT",
                    "RUNNING",
                    "STATE",
                    "PROTOCOL",
                ],
                &rows,
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub(super) fn parse_since(s: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    if let Ok(age) = humantime::parse_duration(s) {
        return Ok(Utc::now() - chrono::Duration::from_std(age).map_err(|e| e.to_string())?);
    }
    apscheduler_core::time::parse_datetime("since", s, tz)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("--since: {e}"))
}

/// `aps config check FILE`.
pub(crate) fn config_check(path: &std::path::Path) -> ExitCode {
    let cfg = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    println!("{}: ok", path.display());
    for warning in &cfg.warnings {
        eprintln!("warning: {warning}");
    }
    println!("store:    {}", crate::daemon::redact(&cfg.store_url));
    println!("timezone: {}", cfg.timezone.name());
    match &cfg.http {
        Some(h) if h.tokens.is_empty() => println!(
            "http:     http://{}/ (no tokens: loopback clients only; metrics {})",
            h.listen,
            if h.metrics { "on" } else { "off" }
        ),
        Some(h) => println!(
            "http:     http://{}/ (tokens: {}; metrics {})",
            h.listen,
            h.tokens
                .iter()
                .map(|t| format!("{} ({})", t.name, t.role))
                .collect::<Vec<_>>()
                .join(", "),
            if h.metrics { "on" } else { "off" }
        ),
        None => println!("http:     off (no [http] table)"),
    }
    if !cfg.notifications.webhooks.is_empty() {
        println!(
            "webhooks: {} (at most {} per webhook per job an hour, {} attempts each)",
            cfg.notifications.webhooks.len(),
            cfg.notifications.flood_cap_per_hour,
            cfg.notifications.max_attempts
        );
    }
    for calendar in cfg.defaults.calendars.values() {
        println!("calendar: {}: {}", calendar.name, calendar.calendar);
    }
    println!("jobs:     {}", cfg.jobs.len());
    let now = Utc::now().with_timezone(&cfg.timezone);
    for def in &cfg.jobs {
        println!();
        println!("[[jobs]] {}", def.id);
        if def.name != def.id {
            println!("  name:    {}", def.name);
        }
        println!("  action:  {}", def.action.summary());
        if def.runs_only_at_start() {
            println!("  trigger: {}", def.trigger_text);
        } else {
            println!(
                "  trigger: {} ({} {})",
                def.trigger_text, def.trigger_kind, def.trigger_args
            );
        }
        println!(
            "  options: misfire_grace_time={}, coalesce={}, max_instances={}, recover={}",
            def.misfire_grace_time
                .map_or("none".into(), |s| format!("{s}s")),
            def.coalesce,
            def.max_instances,
            def.recover
        );
        if !def.mailto.is_empty() {
            println!(
                "  mail:    to {}, mail_when = {}",
                def.mailto.join(", "),
                def.mail_when.as_str()
            );
        }
        if let Action::Command {
            user: Some(user),
            group,
            ..
        } = &def.action
        {
            let group = group.as_deref().map_or_else(
                || "the user's primary group".to_owned(),
                |g| format!("group {g}"),
            );
            println!("  runs as: {user} ({group})");
        }
        if let Some(calendar) = &def.calendar {
            println!(
                "  calendar: {} (calendar_action = {})",
                calendar.name, def.calendar_action
            );
        }
        if def.runs_only_at_start() {
            println!("  next:    at each daemon start only");
            continue;
        }
        if def.at_start {
            println!("  next:    at each daemon start, and:");
        }
        let trigger = match def.build_trigger(cfg.timezone) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: job '{}': {e}", def.id);
                return ExitCode::from(2);
            }
        };
        use apscheduler_core::Trigger as _;
        let mut prev = None;
        let mut shown = 0;
        // With the calendar applied: fire times it excludes are not shown (bounded,
        // for a calendar that excludes nearly all of them).
        let mut looked = 0;
        while shown < 3 && looked < 10_000 {
            looked += 1;
            // After the first, each fire time is strictly after the previous one.
            let after = prev.unwrap_or(now);
            let Some(t) = trigger.next_fire_time(prev.as_ref(), &after) else {
                break;
            };
            prev = Some(t);
            if trigger.excluded_by(&t).is_some() {
                continue;
            }
            println!("  next:    {}", apscheduler_core::time::to_rfc3339(&t));
            shown += 1;
        }
        if shown == 0 {
            println!("  next:    never (no fire time left)");
        }
    }
    ExitCode::SUCCESS
}
