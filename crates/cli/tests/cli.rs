//! End-to-end tests of the `aps` binary.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

fn aps() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aps"))
}

fn run_eval(input: &str) -> Vec<Value> {
    let mut child = aps()
        .args(["trigger", "eval"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn aps");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("aps output");
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "aps trigger eval failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON output line"))
        .collect()
}

/// Error vectors deliberately accepted, as in crates/triggers/tests/vectors.rs (docs/triggers.md,
/// "Where we differ from APScheduler 3.x"): `@daily` in the crontab trigger, read as cron
/// reads it; six crontab fields, read with seconds first.
const ACCEPTED_ON_PURPOSE: &[&str] = &["p-err-032", "p-err-031"];

#[test]
fn eval_answers_every_public_vector() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/conformance/triggers.jsonl"
    );
    let input = std::fs::read_to_string(path).unwrap();
    let vectors: Vec<Value> = input
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let answers = run_eval(&input);
    assert_eq!(answers.len(), vectors.len());
    for (v, a) in vectors.iter().zip(&answers) {
        assert_eq!(a["id"], v["id"]);
        if ACCEPTED_ON_PURPOSE.contains(&v["id"].as_str().unwrap_or("")) {
            assert!(
                a["fires"].is_array(),
                "{}: should be accepted: {a}",
                v["id"]
            );
            continue;
        }
        if v.get("error") == Some(&Value::Bool(true)) {
            assert!(a["error"].is_string(), "{}: expected an error", v["id"]);
            continue;
        }
        let expected: Vec<_> = v["fires"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| chrono::DateTime::parse_from_rfc3339(f.as_str().unwrap()).unwrap())
            .collect();
        let got: Vec<_> = a["fires"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: {}", v["id"], a))
            .iter()
            .map(|f| chrono::DateTime::parse_from_rfc3339(f.as_str().unwrap()).unwrap())
            .collect();
        assert_eq!(got, expected, "{}", v["id"]);
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(g.offset(), e.offset(), "{}", v["id"]);
        }
    }
}

#[test]
fn eval_survives_malformed_lines() {
    let input = concat!(
        "{not json\n",
        "{\"id\": \"a\", \"trigger\": \"cron\", \"args\": {\"hour\": 9}, \"timezone\": \"UTC\", \"now\": \"2024-01-01T00:00:00+00:00\", \"count\": 1}\n",
        "[1, 2, 3]\n",
        "{\"id\": \"b\", \"trigger\": \"nope\", \"args\": {}, \"timezone\": \"UTC\", \"now\": \"2024-01-01T00:00:00+00:00\"}\n",
        "{\"id\": \"c\", \"trigger\": \"cron\", \"args\": {\"minute\": 60}, \"timezone\": \"UTC\", \"now\": \"2024-01-01T00:00:00+00:00\"}\n",
        "{\"id\": \"d\", \"trigger\": \"cron\", \"args\": {\"hour\": 1}, \"timezone\": \"UTC\", \"now\": \"2024-01-01T00:00:00+00:00\", \"count\": 1e99}\n",
        "{\"id\": \"e\", \"trigger\": \"interval\", \"args\": {\"seconds\": 1e300}, \"timezone\": \"UTC\", \"now\": \"2024-01-01T00:00:00+00:00\"}\n",
        "{\"id\": \"f\", \"trigger\": \"cron\", \"args\": {\"hour\": 9}, \"timezone\": \"UTC\", \"now\": \"2024-01-01T00:00:00+00:00\", \"count\": 1}\n",
    );
    let answers = run_eval(input);
    assert_eq!(answers.len(), 8);
    assert!(answers[0]["error"].is_string());
    assert_eq!(answers[1]["fires"][0], "2024-01-01T09:00:00+00:00");
    assert!(answers[2]["error"].is_string());
    for answer in &answers[3..7] {
        assert!(answer["error"].is_string(), "{answer}");
    }
    assert!(answers[4]["error"].as_str().unwrap().contains("minute"));
    assert_eq!(answers[7]["fires"][0], "2024-01-01T09:00:00+00:00");
}

#[test]
fn next_previews_and_refuses_bad_input() {
    let out = aps()
        .args([
            "next",
            "0 9 * * mon-fri",
            "--tz",
            "Europe/Helsinki",
            "-n",
            "3",
            "--after",
            "2024-06-01T00:00:00+03:00",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(
        lines[0],
        "cron[month='*', day='*', day_of_week='mon-fri', hour='9', minute='0'] (Europe/Helsinki)"
    );
    assert!(
        lines[1].starts_with("2024-06-03 09:00:00 EEST (+03:00)"),
        "{text}"
    );
    assert_eq!(lines.len(), 4);

    let out = aps().args(["next", "61 * * * *"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("minute") && err.contains("61"), "{err}");

    let out = aps()
        .args(["next", "0 9 * * *", "--tz", "Mars/Base"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("Mars/Base"));
}

/// Runs `aps next` with `args` and returns its standard output (it must succeed).
fn next_output(args: &[&str]) -> String {
    let out = aps().arg("next").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn next_reads_crontab_text_as_cron_does() {
    let after = ["--after", "2024-03-01T10:17:00Z", "-n", "2"];
    // A macro.
    let text = next_output(&[&["@daily"][..], &after].concat());
    assert!(text.contains("2024-03-02 00:00:00 UTC"), "{text}");
    // A step wider than the field: the first value, once an hour.
    let text = next_output(&[&["*/60 * * * *"][..], &after].concat());
    let lines: Vec<_> = text.lines().collect();
    assert!(lines[1].starts_with("2024-03-01 11:00:00"), "{text}");
    assert!(lines[2].starts_with("2024-03-01 12:00:00"), "{text}");
    // A weekday range ending in 0: Saturday and Sunday.
    let text = next_output(&[&["0 9 * * sat-0"][..], &after].concat());
    assert!(
        text.contains("2024-03-02 09:00:00 UTC (+00:00)  Sat"),
        "{text}"
    );
    assert!(
        text.contains("2024-03-03 09:00:00 UTC (+00:00)  Sun"),
        "{text}"
    );

    // `@reboot` is refused, saying what to use.
    let out = aps().args(["next", "@reboot"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("at_start"));
}

#[test]
fn next_with_dst_cron_follows_cronie() {
    let base = [
        "30 2 * * *",
        "--tz",
        "America/New_York",
        "-n",
        "1",
        "--after",
        "2024-03-10T00:00:00-05:00",
    ];
    // Default policy: 02:30 does not exist and fires at 03:30 EDT.
    let text = next_output(&base);
    assert!(text.contains("2024-03-10 03:30:00 EDT"), "{text}");
    // cron: at the jump, 03:00 EDT.
    let text = next_output(&[&base[..], &["--dst", "cron"]].concat());
    assert!(text.contains("2024-03-10 03:00:00 EDT"), "{text}");
    assert!(text.contains("dst='cron'"), "{text}");

    let out = aps()
        .args(["next", "0 0 * * *", "--dst", "vixie"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("vixie"));
}
