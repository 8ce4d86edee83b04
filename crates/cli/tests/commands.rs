//! End-to-end tests of what `aps` does without a daemon running: `aps run` refusing a
//! bad config (saying where and why), `aps config check`, shell completions and
//! `--version`, `aps jobs list` with every field in order, and `aps jobs show` with its
//! last run's output.

mod support;

use std::process::{Command, Output};

use serde_json::Value;
use support::*;

const HEAD: &str = "[scheduler]\ntimezone = \"UTC\"\npoll_interval = \"200ms\"\nshutdown_grace = \"5s\"\nkill_grace = \"1s\"\n";

fn run_bad(config: &str) -> (Option<i32>, String) {
    let dir = Dir::new(config);
    let out = dir.aps(&["run"]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_config_starts_nothing_and_says_where_and_why() {
    let cases: &[(&str, &[&str])] = &[
        ("[[jobs]]\nid = \"x\"\ncommand = \"true\"\ncron = \"*/5 25 * * *\"\n", &["aps.toml:1:1", "id 'x'", "hour"]),
        ("[[jobs]]\nid = \"x\"\ncomand = \"true\"\ncron = \"* * * * *\"\n", &["aps.toml:3:1", "comand"]),
        (
            "[[jobs]]\nid = \"x\"\ncommand = \"a\"\ncron = \"* * * * *\"\n[[jobs]]\nid = \"x\"\ncommand = \"b\"\ncron = \"* * * * *\"\n",
            &["aps.toml:5:1", "duplicate job id 'x'"],
        ),
        ("[[jobs]]\nid = \"x\"\ncommand = \"a\"\nhttp = { url = \"http://127.0.0.1/\" }\ncron = \"* * * * *\"\n", &["id 'x'", "two actions"]),
        ("[[jobs]]\nid = \"x\"\ncron = \"* * * * *\"\n", &["id 'x'", "no action"]),
        // The schemes come from the store crates' registrations; the URL (it may hold a
        // password) is not repeated.
        (
            "[store]\nurl = \"oracle://scott:tiger@db/x\"\n",
            &["aps.toml:2:7", "store.url", "unknown store URL scheme 'oracle' (known schemes: mariadb, mongodb, mongodb+srv, mysql, postgres, postgresql, redis, redis+cluster, redis+sentinel, rediss, sqlite, zk, zookeeper)"],
        ),
        (
            "[store]\nurl = \"postgres://nobody@127.0.0.1:1/none\"\n",
            &["cannot reach the PostgreSQL store at 127.0.0.1:1", "connection refused"],
        ),
    ];
    for (config, wanted) in cases {
        let (code, stderr) = run_bad(config);
        assert!(code.is_some_and(|c| c != 0), "{config}: exit {code:?}");
        for w in *wanted {
            assert!(
                stderr.contains(w),
                "{config}: {stderr:?} should contain {w:?}"
            );
        }
        assert!(!stderr.contains("aps daemon started"), "{stderr}");
        assert!(!stderr.contains("tiger"), "the password is shown: {stderr}");
    }
}

#[test]
fn config_check_and_completions() {
    let dir = Dir::new(&format!(
        "{HEAD}[[jobs]]\nid = \"x\"\ncommand = \"true\"\ncron = \"0 9 * * mon-fri\"\n"
    ));
    let out = Command::new(APS)
        .args(["config", "check"])
        .arg(dir.config())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("  next:    ").count(), 3, "{text}");

    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(APS)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success() && !out.stdout.is_empty());
    }
    let out = Command::new(APS).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("aps "));
}

/// `aps jobs list --json` and its table, without a daemon: every field, in its order and
/// of its type, for a job with a run in the history, a paused one and one without runs;
/// the order of the rows (by next run time, then id, paused last).
#[test]
fn jobs_list_prints_every_field_in_order() {
    let dir = Dir::new("[scheduler]\ntimezone = \"UTC\"\n");
    let ok = |out: Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    for (id, trigger) in [
        ("b-ran", ["--cron", "0 3 * * *"]),
        ("a-ran-too", ["--cron", "0 3 * * *"]),
        ("c-paused", ["--interval", "60"]),
    ] {
        ok(dir.aps(&[
            "jobs",
            "add",
            "--id",
            id,
            "--command",
            "true",
            trigger[0],
            trigger[1],
        ]));
    }
    ok(dir.aps(&["jobs", "run", "b-ran"]));
    ok(dir.aps(&["jobs", "pause", "c-paused"]));
    let out = ok(dir.aps(&["jobs", "list", "--json"]));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.ends_with("}\n]\n"), "{text}");
    let list: Vec<serde_json::Map<String, Value>> = serde_json::from_str(&text).unwrap();
    let keys: Vec<&str> = list[0].keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "id",
            "name",
            "trigger",
            "next_run_time",
            "paused",
            "paused_reason",
            "recover",
            "action",
            "origin",
            "last_outcome",
            "last_run_at",
            "calendar",
            "calendar_action",
            "policy"
        ]
    );
    let ids: Vec<&str> = list.iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a-ran-too", "b-ran", "c-paused"]);
    let ran = &list[1];
    assert_eq!(ran["trigger"], "cron \"0 3 * * *\"");
    assert_eq!(ran["action"], "sh: true");
    assert_eq!(ran["origin"], "cli");
    assert_eq!(ran["paused"], false);
    assert_eq!(ran["recover"], false);
    assert!(ran["calendar"].is_null() && ran["calendar_action"].is_null());
    assert_eq!(ran["last_outcome"], "success");
    assert!(
        ran["last_run_at"].as_str().unwrap().ends_with('Z'),
        "{ran:?}"
    );
    assert!(ran["next_run_time"]
        .as_str()
        .unwrap()
        .ends_with("T03:00:00+00:00"));
    let never = &list[0];
    assert_eq!(
        (&never["last_outcome"], &never["last_run_at"]),
        (&Value::Null, &Value::Null)
    );
    let paused = &list[2];
    assert_eq!(
        (&paused["paused"], &paused["next_run_time"]),
        (&Value::Bool(true), &Value::Null)
    );
    // Paused by hand: no reason.
    assert_eq!(paused["paused_reason"], Value::Null);

    let table = String::from_utf8(ok(dir.aps(&["jobs", "list"])).stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].starts_with("ID  "), "{table}");
    assert!(lines[0].ends_with("LAST     FROM"), "{table}");
    assert!(
        lines[2].starts_with("b-ran ") && lines[2].ends_with(" success  cli"),
        "{table}"
    );
    assert!(
        lines[3].contains("- (paused)") && lines[3].ends_with(" -        cli"),
        "{table}"
    );
}

/// `aps jobs show` prints the newest run's whole output under `last output:` (the runs
/// table's note has only its last line), and `(none)` for a job whose run printed
/// nothing; `--json` carries it in the newest of `recent_runs`.
#[test]
fn jobs_show_prints_the_last_runs_output() {
    let dir = Dir::new("[scheduler]\ntimezone = \"UTC\"\n");
    let ok = |out: Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    for (id, command) in [
        ("talks", "echo first line; echo second line"),
        ("quiet", "true"),
    ] {
        ok(dir.aps(&[
            "jobs",
            "add",
            "--id",
            id,
            "--command",
            command,
            "--cron",
            "0 3 * * *",
        ]));
        ok(dir.aps(&["jobs", "run", id]));
    }

    let shown = ok(dir.aps(&["jobs", "show", "talks"]));
    assert!(
        shown.ends_with("last output:\n    first line\n    second line\n"),
        "{shown}"
    );
    let json: Value =
        serde_json::from_str(&ok(dir.aps(&["jobs", "show", "talks", "--json"]))).unwrap();
    assert_eq!(
        json["recent_runs"][0]["output"], "first line\nsecond line\n",
        "{json}"
    );

    let shown = ok(dir.aps(&["jobs", "show", "quiet"]));
    assert!(shown.ends_with("\nlast output: (none)\n"), "{shown}");
}
