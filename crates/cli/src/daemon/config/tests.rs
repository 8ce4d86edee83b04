//! The config checks: each field's errors and defaults.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;

fn check(text: &str) -> Result<Config, String> {
    parse(Path::new("/etc/aps/aps.toml"), text, true).map_err(|e| e.0)
}

#[test]
fn recover_is_a_job_option_with_a_default() {
    let job =
        |extra: &str| format!("[[jobs]]\nid = \"j\"\ncommand = \"true\"\ninterval = 5\n{extra}");
    let recover = |text: &str| check(text).unwrap().jobs[0].recover;
    assert!(!recover(&job("")));
    assert!(recover(&job("recover = true\n")));
    assert!(recover(&format!(
        "[job_defaults]\nrecover = true\n{}",
        job("")
    )));
    assert!(!recover(&format!(
        "[job_defaults]\nrecover = true\n{}",
        job("recover = false\n")
    )));
    let err = check(&job("recover = \"yes\"\n")).unwrap_err();
    assert!(err.contains("'recover': \"yes\""), "{err}");
    let err = check("[job_defaults]\nrecover = 1\n").unwrap_err();
    assert!(err.contains("'recover': 1"), "{err}");
    // Stored definitions of ordinary jobs are unchanged (no reload sees a change).
    let def = &check(&job("")).unwrap().jobs[0];
    assert!(!def.to_kwargs()["aps"]
        .as_object()
        .unwrap()
        .contains_key("recover"));
}

#[test]
fn leased_runs_are_on_unless_turned_off() {
    assert!(check("").unwrap().leased_runs);
    assert!(
        !check("[scheduler]\nleased_runs = false\n")
            .unwrap()
            .leased_runs
    );
    let e = check("[scheduler]\nleased_runs = 1\n").unwrap_err();
    assert!(e.contains("leased_runs"), "{e}");
}

#[test]
fn record_starts_is_on_unless_turned_off() {
    assert!(check("").unwrap().record_starts);
    assert!(
        !check("[scheduler]\nrecord_starts = false\n")
            .unwrap()
            .record_starts
    );
    let e = check("[scheduler]\nrecord_starts = \"no\"\n").unwrap_err();
    assert!(e.contains("record_starts"), "{e}");
}

#[test]
fn heartbeat_and_node_timeout_are_read_and_checked() {
    let cfg = check("[scheduler]\nheartbeat = \"250ms\"\nnode_timeout = 3\n").unwrap();
    assert_eq!(
        (cfg.heartbeat, cfg.node_timeout),
        (Duration::from_millis(250), Duration::from_secs(3))
    );
    let cfg = check("").unwrap();
    assert_eq!(
        (cfg.heartbeat, cfg.node_timeout),
        (Duration::from_secs(1), Duration::from_secs(10))
    );
    let e = check("[scheduler]\nnode_timeout = \"1s\"\n").unwrap_err();
    assert!(
        e.contains("scheduler.node_timeout") && e.contains("(1s)") && e.contains("aps.toml:2:"),
        "{e}"
    );
    let e = check("[scheduler]\nheartbeat = 0\n").unwrap_err();
    assert!(
        e.contains("scheduler.heartbeat") && e.contains("must not be 0"),
        "{e}"
    );
}

#[test]
fn each_trigger_form_and_duration_form_is_read() {
    let cfg = check(
        r#"
[scheduler]
timezone = "Europe/Helsinki"
[[jobs]]
id = "a"
command = "echo a"
cron = "*/5 * * * *"
timeout = "1h30m"
[[jobs]]
id = "b"
command = "echo b"
interval = 90
[[jobs]]
id = "c"
http = { url = "http://127.0.0.1:1/", expect_status = [200, 204] }
date = "2099-12-01 09:00:00"
[[jobs]]
id = "d"
command = "true"
trigger = { type = "cron", day = "last sun", hour = 3 }
jitter = "10s"
misfire_grace_time = "2m"
[[jobs]]
id = "e"
command = "true"
cron = "@daily"
"#,
    )
    .unwrap();
    let kinds: Vec<_> = cfg.jobs.iter().map(|j| j.trigger_kind.as_str()).collect();
    assert_eq!(kinds, ["crontab", "interval", "date", "cron", "crontab"]);
    assert_eq!(
        cfg.jobs[0].action,
        Action::Command {
            command: "echo a".into(),
            cwd: None,
            env: BTreeMap::new(),
            timeout: Some(5400.0),
            kill_grace: None,
            user: None,
            group: None,
            shell: None,
            stdin: None,
        }
    );
    assert_eq!(
        cfg.jobs[1].trigger_args,
        json!({"seconds": 90.0, "timezone": "Europe/Helsinki"})
    );
    assert_eq!(cfg.jobs[3].misfire_grace_time, Some(120.0));
    assert_eq!(cfg.jobs[3].trigger_args["jitter"], json!(10.0));
    assert_eq!(cfg.jobs[4].trigger_args["expr"], json!("0 0 * * *"));
    assert!(
        cfg.store_url.ends_with("/etc/aps/aps.db"),
        "{}",
        cfg.store_url
    );
    assert_eq!(cfg.timezone, chrono_tz::Europe::Helsinki);
}

#[test]
fn bad_configs_name_the_file_line_job_and_field() {
    let cases = [
        (
            "[[jobs]]\nid = \"x\"\ncommand = \"true\"\ncron = \"61 * * * *\"\n",
            &["/etc/aps/aps.toml:1:1", "id 'x'", "minute", "61"][..],
        ),
        ("[[jobs]]\nid = \"x\"\ncomand = \"true\"\n", &["/etc/aps/aps.toml:3:1", "comand"]),
        (
            "[[jobs]]\nid = \"x\"\ncommand = \"a\"\ncron = \"* * * * *\"\n[[jobs]]\nid = \"x\"\ncommand = \"b\"\ncron = \"* * * * *\"\n",
            &[":5:1", "duplicate job id 'x'"],
        ),
        ("[[jobs]]\nid = \"x\"\ncommand = \"a\"\nhttp = { url = \"http://h/\" }\ncron = \"* * * * *\"\n", &["id 'x'", "two actions"]),
        ("[[jobs]]\nid = \"x\"\ncron = \"* * * * *\"\n", &["id 'x'", "no action"]),
        ("[store]\nurl = \"oracle://db\"\n", &[":2:7", "store.url", "'oracle'"]),
        ("[[jobs]]\nid = \"x\"\ncommand = \"a\"\ninterval = \"5 parsecs\"\n", &["id 'x'", "interval", "'5 parsecs'"]),
        ("[[jobs]]\nid = \"x\"\ncommand = \"a\"\ncron = \"* * * * *\"\ninterval = 5\n", &["several triggers"]),
        ("[[jobs]]\nid = \"x\"\ncommand = \"a\"\ncron = \"@reboot\"\n", &["cron", "'@reboot'"]),
        ("[[jobs]]\nid = \"x\"\ncommand = \"a\"\ncron = \"* * * * *\"\ntimezone = \"Mars/Base\"\n", &["timezone", "Mars/Base"]),
        ("[scheduler]\nshutdown_grace = \"soon\"\n", &[":2:18", "scheduler.shutdown_grace", "'soon'"]),
    ];
    for (text, wanted) in cases {
        let err = check(text).expect_err(text);
        for w in wanted {
            assert!(err.contains(w), "{err:?} should contain {w:?}");
        }
    }
}

#[test]
fn a_relative_sqlite_store_lies_beside_the_config_and_none_means_no_grace() {
    let cfg = check("[store]\nurl = \"sqlite:data/jobs.db?mode=rwc\"\n[[jobs]]\nid = \"x\"\ncommand = \"a\"\ncron = \"* * * * *\"\nmisfire_grace_time = \"none\"\n").unwrap();
    assert_eq!(cfg.store_url, "sqlite:/etc/aps/data/jobs.db?mode=rwc");
    assert_eq!(cfg.jobs[0].misfire_grace_time, None);
    let cfg = check("[store]\nurl = \"sqlite:/var/aps.db\"\n").unwrap();
    assert_eq!(cfg.store_url, "sqlite:/var/aps.db");
    let err = check("[[jobs]]\nid = \"x\"\ncommand = \"a\"\ninterval = true\n").unwrap_err();
    assert!(err.contains("a duration: seconds"), "{err}");
}

#[test]
fn a_definition_round_trips_through_kwargs() {
    let cfg =
        check("[[jobs]]\nid = \"x\"\ncommand = \"a\"\ncron = \"* * * * *\"\nenv = { A = \"1\" }\n")
            .unwrap();
    let kw = cfg.jobs[0].to_kwargs();
    assert_eq!(JobDef::from_kwargs(&kw).unwrap(), cfg.jobs[0]);
}

#[test]
fn settings_leased_runs_replaced_load_with_a_warning_naming_where_and_what() {
    let cfg = check("[scheduler]\nrecord_starts = false\ncluster_max_instances = true\n").unwrap();
    assert_eq!(cfg.warnings.len(), 2, "{:?}", cfg.warnings);
    assert!(
        cfg.warnings[0].contains(":2:17: scheduler.record_starts: has no effect with leased runs")
            && cfg.warnings[0].contains("set leased_runs = false"),
        "{}",
        cfg.warnings[0]
    );
    assert!(
        cfg.warnings[1].contains(":3:25: scheduler.cluster_max_instances: has no effect")
            && cfg.warnings[1].contains("every daemon toward max_instances"),
        "{}",
        cfg.warnings[1]
    );
    // Without leased runs they act, and say nothing.
    let cfg = check("[scheduler]\nleased_runs = false\nrecord_starts = false\n").unwrap();
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    assert!(!cfg.record_starts);
    assert!(check("").unwrap().warnings.is_empty());
}
