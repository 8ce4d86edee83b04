//! End-to-end tests of the options that take over a server's cron: a job's `user` and
//! `group` (the daemon runs as root), its `shell`, its `stdin`, `at_start` (cron's
//! `@reboot`), and the config checks of these options. Real processes, real users.
//!
//! The tests that switch users need root: elsewhere they print a skip notice, and in
//! CI (`CI` set) they fail, since CI runs as root.

mod support;

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::time::Duration;

use apscheduler_testkit::server::{in_ci, skip_notice};
use serde_json::Value;
use support::*;

const HEAD: &str = "[scheduler]\ntimezone = \"UTC\"\npoll_interval = \"200ms\"\nshutdown_grace = \"5s\"\nkill_grace = \"1s\"\n";

/// A schedule that does not fire while a test runs.
const NEVER_SOON: &str = "0 0 1 1 *";

/// Whether this process is root; when not, a notice (or, in CI, a failure).
fn root_or_skip(test: &str) -> bool {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        assert!(
            !in_ci(),
            "{test}: CI runs as root, and this test needs it (it runs jobs as other users)"
        );
        skip_notice(&format!("{test}: needs root (it runs jobs as other users)"));
    }
    root
}

/// The one finished run of `job`, waited for.
fn one_run(dir: &Dir, job: &str) -> Value {
    wait_for(
        &format!("a finished run of {job}"),
        Duration::from_secs(30),
        || dir.history(job).iter().any(|r| r["outcome"] != "running"),
    );
    let runs = dir.history(job);
    assert_eq!(runs.len(), 1, "{job}: {runs:?}");
    runs.into_iter().next().unwrap()
}

fn lines(run: &Value) -> Vec<String> {
    run["output"]
        .as_str()
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `id OPTION nobody`'s answer, as root sees it.
fn id_of_nobody(option: &str) -> String {
    let out = Command::new("id")
        .args([option, "nobody"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A group that lists `nobody` as a member, made when missing, so the supplementary
/// groups a job gets are more than its primary group.
const MEMBER_GROUP: &str = "aps-test-cron";

fn ensure_member_group() {
    if id_of_nobody("-Gn").split(' ').any(|g| g == MEMBER_GROUP) {
        return;
    }
    let made = Command::new("groupadd")
        .args(["-f", MEMBER_GROUP])
        .status()
        .unwrap();
    assert!(made.success(), "groupadd -f {MEMBER_GROUP}");
    let added = Command::new("gpasswd")
        .args(["-a", "nobody", MEMBER_GROUP])
        .output()
        .unwrap();
    assert!(added.status.success(), "gpasswd -a nobody {MEMBER_GROUP}");
}

#[test]
fn a_root_daemon_runs_a_job_as_its_user_with_cron_s_environment() {
    if !root_or_skip("a_root_daemon_runs_a_job_as_its_user_with_cron_s_environment") {
        return;
    }
    ensure_member_group();
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = shared.path().join("made-by-nobody");
    let report = format!(
        "id -un; id -gn; id -G; echo HOME=$HOME; echo LOGNAME=$LOGNAME; echo USER=$USER; echo SHELL=$SHELL; touch {}",
        out.display()
    );
    let dir = Dir::new(&format!(
        "{HEAD}[[jobs]]\nid = \"as-nobody\"\nuser = \"nobody\"\nat_start = true\ncommand = '{report}'\n\
         [[jobs]]\nid = \"in-group\"\nuser = \"nobody\"\ngroup = \"{MEMBER_GROUP}\"\nat_start = true\ncommand = \"id -gn; id -G\"\n\
         [[jobs]]\nid = \"env-wins\"\nuser = \"nobody\"\nat_start = true\nenv = {{ HOME = \"/tmp\", SHELL = \"/bin/dash\" }}\ncommand = 'echo HOME=$HOME SHELL=$SHELL USER=$USER'\n\
         [[jobs]]\nid = \"as-root\"\nat_start = true\ncommand = \"id -un\"\n"
    ));
    let _daemon = dir.start();

    let run = one_run(&dir, "as-nobody");
    assert_eq!(run["outcome"], "success", "{run}");
    assert_eq!(run["exit_code"], 0);
    let got = lines(&run);
    assert_eq!(got[0], "nobody", "{got:?}");
    assert_eq!(
        got[1],
        id_of_nobody("-gn"),
        "the user's primary group: {got:?}"
    );
    // Exactly the user's groups: root's own are dropped, the member group is there.
    let mut want: Vec<&str> = Vec::new();
    let nobody_groups = id_of_nobody("-G");
    want.extend(nobody_groups.split(' '));
    let mut seen: Vec<&str> = got[2].split(' ').collect();
    want.sort_unstable();
    want.dedup();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen, want, "supplementary groups: {got:?}");
    assert!(nobody_groups.split(' ').count() >= 2, "{nobody_groups}");
    let home = id_home("nobody");
    assert_eq!(
        got[3..7],
        [
            format!("HOME={home}"),
            "LOGNAME=nobody".into(),
            "USER=nobody".into(),
            "SHELL=/bin/sh".into()
        ],
        "{got:?}"
    );
    let made = std::fs::metadata(&out).unwrap();
    assert_eq!(made.uid(), 65534, "the file the job made belongs to nobody");

    let run = one_run(&dir, "in-group");
    assert_eq!(run["outcome"], "success", "{run}");
    let got = lines(&run);
    assert_eq!(got[0], MEMBER_GROUP, "{got:?}");

    let run = one_run(&dir, "env-wins");
    assert_eq!(
        lines(&run),
        ["HOME=/tmp SHELL=/bin/dash USER=nobody"],
        "the job's env overrides cron's variables"
    );
    let run = one_run(&dir, "as-root");
    assert_eq!(lines(&run), ["root"], "without `user`, the daemon's user");
}

/// The home directory of `user` in the passwd database.
fn id_home(user: &str) -> String {
    let out = Command::new("getent")
        .args(["passwd", user])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .split(':')
        .nth(5)
        .unwrap()
        .to_owned()
}

#[test]
fn shell_runs_the_command_and_stdin_reaches_it() {
    let big = "x".repeat(300_000);
    let dir = Dir::new(&format!(
        "{HEAD}[[jobs]]\nid = \"bash\"\nshell = \"/bin/bash\"\nat_start = true\ncommand = '[[ x == x ]] && echo ok $SHELL'\n\
         [[jobs]]\nid = \"sh\"\nat_start = true\ncommand = '[[ x == x ]] && echo ok'\n\
         [[jobs]]\nid = \"stdin\"\nat_start = true\nstdin = \"line 1\\nline 2\\n\"\ncommand = \"cat; echo end\"\n\
         [[jobs]]\nid = \"no-stdin\"\nat_start = true\ncommand = \"cat; echo end\"\n\
         [[jobs]]\nid = \"big-stdin\"\nat_start = true\nstdin = \"{big}\"\ncommand = \"wc -c\"\n\
         [[jobs]]\nid = \"unread-stdin\"\nat_start = true\nstdin = \"{big}\"\ncommand = \"echo done\"\n"
    ));
    let _daemon = dir.start();
    let run = one_run(&dir, "bash");
    assert_eq!(run["outcome"], "success", "{run}");
    assert_eq!(lines(&run), ["ok /bin/bash"]);
    let run = one_run(&dir, "sh");
    assert_eq!(run["outcome"], "failure", "dash has no [[: {run}");

    let run = one_run(&dir, "stdin");
    assert_eq!(lines(&run), ["line 1", "line 2", "end"], "{run}");
    let run = one_run(&dir, "no-stdin");
    assert_eq!(lines(&run), ["end"], "no stdin: /dev/null");
    let run = one_run(&dir, "big-stdin");
    assert_eq!(lines(&run), ["300000"], "all of a text larger than a pipe");
    let run = one_run(&dir, "unread-stdin");
    assert_eq!(run["outcome"], "success", "{run}");
}

#[test]
fn at_start_runs_once_per_start_not_on_reload() {
    let config = format!(
        "{HEAD}[[jobs]]\nid = \"boot\"\nat_start = true\ncommand = \"echo booted\"\n\
         [[jobs]]\nid = \"both\"\nat_start = true\ncron = \"{NEVER_SOON}\"\ncommand = \"echo both\"\n\
         [[jobs]]\nid = \"plain\"\ncron = \"{NEVER_SOON}\"\ncommand = \"echo plain\"\n"
    );
    let dir = Dir::new(&config);
    let mut daemon = dir.start();
    let run = one_run(&dir, "boot");
    assert_eq!(
        (run["outcome"].as_str(), run["exit_code"].as_i64()),
        (Some("success"), Some(0)),
        "{run}"
    );
    assert_eq!(run["output"], "booted\n");
    assert_eq!(one_run(&dir, "both")["output"], "both\n");
    assert!(dir.history("plain").is_empty());

    // Listed: the start-only job as "at start", the other with its next fire time.
    let jobs = dir.jobs();
    let boot = jobs.iter().find(|j| j["id"] == "boot").unwrap();
    assert_eq!(boot["trigger"], "at start", "{boot}");
    let both = jobs.iter().find(|j| j["id"] == "both").unwrap();
    assert!(both["next_run_time"].is_string(), "{both}");
    let table = dir.aps(&["jobs", "list"]);
    let table = String::from_utf8_lossy(&table.stdout);
    let boot_row = table.lines().find(|l| l.starts_with("boot ")).unwrap();
    assert_eq!(boot_row.matches("at start").count(), 2, "{table}");

    // A reload (even of a changed file) runs nothing at start.
    dir.write(&config.replace("echo both", "echo both again"));
    daemon.signal("HUP");
    wait_for("the reload", Duration::from_secs(20), || {
        daemon.log().contains("config reloaded")
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(dir.history("boot").len(), 1);
    assert_eq!(dir.history("both").len(), 1);
    let jobs = dir.jobs();
    let both = jobs.iter().find(|j| j["id"] == "both").unwrap();
    assert!(
        both["next_run_time"].is_string(),
        "the changed job keeps its schedule: {both}"
    );

    // The next start runs them again.
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(30)), Some(0));
    let _daemon = dir.start();
    wait_for("a second run of each", Duration::from_secs(30), || {
        ["boot", "both"].iter().all(|j| {
            let runs = dir.history(j);
            runs.len() == 2 && runs.iter().all(|r| r["outcome"] == "success")
        })
    });
    assert_eq!(dir.history("both")[0]["output"], "both again\n");
    assert!(dir.history("plain").is_empty());
}

/// `aps config check` on `config`: its exit code and standard error.
fn config_check(dir: &Dir, as_nobody: bool) -> (Option<i32>, String) {
    let mut cmd = Command::new(if as_nobody {
        dir.dir.path().join("aps")
    } else {
        APS.into()
    });
    cmd.args(["config", "check"]).arg(dir.config());
    if as_nobody {
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_check_refuses_a_missing_user_group_or_shell() {
    let job = |extra: &str| {
        format!("{HEAD}[[jobs]]\nid = \"x\"\ncommand = \"true\"\ncron = \"* * * * *\"\n{extra}")
    };
    let cases = [
        (
            "user = \"aps-no-such-user\"\n",
            "user: no user 'aps-no-such-user'",
        ),
        (
            "user = \"root\"\ngroup = \"aps-no-such-group\"\n",
            "group: no group 'aps-no-such-group'",
        ),
        (
            "shell = \"/bin/aps-no-such-shell\"\n",
            "shell: '/bin/aps-no-such-shell'",
        ),
        ("stdin = 5\n", "stdin"),
    ];
    for (extra, wanted) in cases {
        let dir = Dir::new(&job(extra));
        let (code, err) = config_check(&dir, false);
        assert_eq!(code, Some(2), "{extra}: {err}");
        assert!(err.contains("aps.toml:"), "{err}");
        assert!(err.contains(wanted), "{err} should contain {wanted}");
        if !extra.starts_with("stdin") {
            assert!(err.contains("jobs[0] (id 'x')"), "{err}");
        }
    }
    let dir = Dir::new(&job("user = \"root\"\nshell = \"/bin/bash\"\n"));
    let (code, err) = config_check(&dir, false);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn a_daemon_not_running_as_root_refuses_another_user() {
    if !root_or_skip("a_daemon_not_running_as_root_refuses_another_user") {
        return;
    }
    let dir = Dir::new(&format!(
        "{HEAD}[[jobs]]\nid = \"other\"\nuser = \"root\"\ncommand = \"true\"\ncron = \"* * * * *\"\n"
    ));
    // nobody must reach the binary and the config: a copy in the readable directory.
    std::fs::copy(APS, dir.dir.path().join("aps")).unwrap();
    std::fs::set_permissions(dir.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, err) = config_check(&dir, true);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("jobs[0] (id 'other'): user:") && err.contains("not as root"),
        "{err}"
    );
    // Its own user is fine: nothing to switch.
    dir.write(&format!(
        "{HEAD}[[jobs]]\nid = \"own\"\nuser = \"nobody\"\ncommand = \"true\"\ncron = \"* * * * *\"\n"
    ));
    let (code, err) = config_check(&dir, true);
    assert_eq!(code, Some(0), "{err}");
}

/// `METHOD path` on the daemon's API (loopback, no tokens): the status and body.
fn api(port: u16, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    http_call(
        method,
        &format!("http://127.0.0.1:{port}{path}"),
        None,
        body,
    )
}

#[test]
fn the_api_adds_and_changes_jobs_with_these_options_and_keeps_them() {
    let port = free_port();
    let dir = Dir::new(&format!("{HEAD}[http]\nlisten = \"127.0.0.1:{port}\"\n"));
    let _daemon = dir.start();
    let (status, body) = api(
        port,
        "POST",
        "/api/jobs",
        Some(
            r#"{"id": "boot", "at_start": true, "shell": "/bin/bash", "stdin": "in\n", "command": "[[ -n $SHELL ]] && echo $SHELL; cat"}"#,
        ),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = api(
        port,
        "POST",
        "/api/jobs",
        Some(r#"{"id": "bad", "shell": "/no/shell", "command": "true", "at_start": true}"#),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains(r#""field":"shell""#) && body.contains("'/no/shell'"),
        "{body}"
    );
    // A change of name keeps the shell, the input and the start-only trigger.
    let (status, body) = api(
        port,
        "PATCH",
        "/api/jobs/boot",
        Some(r#"{"name": "renamed"}"#),
    );
    assert_eq!(status, 200, "{body}");
    let jobs = dir.jobs();
    let boot = jobs.iter().find(|j| j["id"] == "boot").unwrap();
    assert_eq!(
        (boot["name"].as_str(), boot["trigger"].as_str()),
        (Some("renamed"), Some("at start")),
        "{boot}"
    );
    assert!(boot["next_run_time"].is_null(), "{boot}");
    let (status, body) = api(port, "POST", "/api/jobs/boot/run", None);
    assert_eq!(status, 202, "{body}");
    let run = one_run(&dir, "boot");
    assert_eq!(run["outcome"], "success", "{run}");
    assert_eq!(lines(&run), ["/bin/bash", "in"]);
}

/// A job added through the API while the daemon starts is not one present at start:
/// the set of jobs run at start is fixed before the management plane answers. Many
/// configured jobs make the start long enough for the API call, sent as soon as the
/// daemon answers, to land within it.
#[test]
fn a_job_added_while_the_daemon_starts_is_not_run_at_start() {
    let port = free_port();
    let mut config = format!("{HEAD}[http]\nlisten = \"127.0.0.1:{port}\"\n");
    config.push_str("[[jobs]]\nid = \"present\"\nat_start = true\ncommand = \"true\"\n");
    for i in 0..1500 {
        config.push_str(&format!(
            "[[jobs]]\nid = \"filler-{i}\"\ncron = \"{NEVER_SOON}\"\ncommand = \"true\"\n"
        ));
    }
    let dir = Dir::new(&config);
    let mut daemon = dir.spawn();
    // Asked as often as the daemon answers: the first answer is where the race was.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while http_status(port, "/health") != Some(200) {
        assert!(
            daemon.child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline,
            "the daemon did not answer: {}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let (status, body) = api(
        port,
        "POST",
        "/api/jobs",
        Some(r#"{"id": "late", "at_start": true, "command": "true"}"#),
    );
    assert_eq!(status, 201, "{body}");
    wait_for("the runs at start", Duration::from_secs(60), || {
        daemon.log().contains("runs at start: ")
    });
    assert_eq!(one_run(&dir, "present")["outcome"], "success");
    assert!(
        dir.history("late").is_empty(),
        "a job added after the daemon answered ran at its start: {:?}\n{}",
        dir.history("late"),
        daemon.log()
    );
}

#[test]
fn dst_cron_reaches_the_trigger() {
    // 2027-03-14 02:30 does not exist in New York (the clocks go from 2:00 to 3:00).
    let dir = Dir::new(
        "[scheduler]\ntimezone = \"America/New_York\"\ndst = \"cron\"\n\
         [[jobs]]\nid = \"cronie\"\ncommand = \"true\"\ncron = \"30 2 * * *\"\nstart_date = \"2027-03-14\"\n\
         [[jobs]]\nid = \"own\"\ncommand = \"true\"\ncron = \"30 2 * * *\"\nstart_date = \"2027-03-14\"\ndst = \"default\"\n\
         [[jobs]]\nid = \"every\"\ncommand = \"true\"\ninterval = 60\n",
    );
    let out = dir.config_check();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let section = |id: &str| {
        let start = text.find(&format!("[[jobs]] {id}\n")).unwrap();
        let rest = &text[start + 1..];
        rest[..rest.find("\n[[jobs]]").unwrap_or(rest.len())].to_owned()
    };
    let cronie = section("cronie");
    assert!(cronie.contains(r#""dst":"cron""#), "{cronie}");
    assert!(
        cronie.contains("next:    2027-03-14T03:00:00-04:00"),
        "cronie runs the skipped 2:30 at 3:00: {cronie}"
    );
    assert!(!section("own").contains("dst"), "{}", section("own"));
    assert!(!section("every").contains("dst"), "{}", section("every"));
}
