//! `aps import crontab` end to end: Debian's own `/etc/crontab` and `/etc/cron.d` files
//! (tests/fixtures, see its README), a user crontab using every line kind, and an imported
//! crontab run by `aps run` as the user `nobody`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use support::{wait_for, Dir, APS};

const HEAD: &str = "[scheduler]\ntimezone = \"UTC\"\npoll_interval = \"200ms\"\nshutdown_grace = \"5s\"\nkill_grace = \"1s\"\n";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn import(args: &[&str]) -> Output {
    Command::new(APS)
        .args(["import", "crontab"])
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The `[[jobs]]` tables of an imported config.
fn jobs_of(toml_text: &str) -> Vec<toml::Table> {
    let doc: toml::Table = toml::from_str(toml_text).unwrap_or_else(|e| panic!("{e}\n{toml_text}"));
    doc["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j.as_table().unwrap().clone())
        .collect()
}

fn get<'a>(job: &'a toml::Table, key: &str) -> Option<&'a str> {
    job.get(key).and_then(toml::Value::as_str)
}

/// `aps config check` on `HEAD` + `jobs`: asserts it passes.
fn assert_config_ok(jobs: &str) {
    let dir = Dir::new(&format!("{HEAD}{jobs}"));
    let out = Command::new(APS)
        .args(["config", "check"])
        .arg(dir.config())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "config check failed: {}\n{jobs}",
        text(&out.stderr)
    );
}

#[test]
fn debian_crontab_and_cron_d_import_and_check() {
    // Their user column says root: only a root daemon (and import) may run them as root.
    if !root_or_skip("Debian's crontabs run their jobs as root") {
        return;
    }
    let crond = fixture("cron.d");
    let out = import(&[
        "--system",
        fixture("crontab").to_str().unwrap(),
        "--dir",
        crond.to_str().unwrap(),
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // The two names cron does not read are reported, nothing else.
    let mut reported: Vec<&str> = stderr.lines().collect();
    reported.sort_unstable();
    assert_eq!(
        reported,
        [
            format!(
                "{}: skipped file: a hidden file (name starts with `.`): cron skips it",
                crond.join(".placeholder").display()
            ),
            format!(
                "{}: skipped file: a package manager's leftover (`.dpkg-*`): cron skips it",
                crond.join("certbot.dpkg-old").display()
            ),
        ]
    );
    let jobs = jobs_of(&stdout);
    let ids: Vec<&str> = jobs.iter().map(|j| get(j, "id").unwrap()).collect();
    assert_eq!(
        ids,
        [
            "crontab-18",
            "crontab-19",
            "crontab-20",
            "crontab-21",
            "anacron-6",
            "certbot-17",
            "e2scrub_all-1",
            "e2scrub_all-2",
            "mdadm-12",
            "php-14",
            "sysstat-6",
            "sysstat-9",
        ]
    );
    for job in &jobs {
        // Every line of these files names root in its user column.
        assert_eq!(get(job, "user"), Some("root"), "{job:?}");
        assert_eq!(get(job, "mailto"), Some("root"), "{job:?}");
        assert_eq!(get(job, "dst"), Some("cron"), "{job:?}");
        assert!(!get(job, "command").unwrap().starts_with("root"), "{job:?}");
    }
    let by_id = |id: &str| jobs.iter().find(|j| get(j, "id") == Some(id)).unwrap();
    let hourly = by_id("crontab-18");
    assert_eq!(get(hourly, "cron"), Some("17 * * * *"));
    assert_eq!(
        get(hourly, "command"),
        Some("cd / && run-parts --report /etc/cron.hourly")
    );
    assert_eq!(get(hourly, "shell"), Some("/bin/sh"));
    assert_eq!(
        hourly["env"]["PATH"].as_str(),
        Some("/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin")
    );
    // mdadm's `\%d` is a literal `%` for the shell; no standard input.
    let mdadm = by_id("mdadm-12");
    assert!(get(mdadm, "command").unwrap().contains("$(date +%d) -le 7"));
    assert_eq!(get(mdadm, "stdin"), None);
    assert_eq!(get(by_id("php-14"), "cron"), Some("09,39 * * * *"));
    assert_eq!(get(by_id("sysstat-6"), "cron"), Some("5-55/10 * * * *"));
    // A file without SHELL or PATH lines: no shell, no env.
    assert_eq!(get(by_id("e2scrub_all-1"), "shell"), None);
    assert!(by_id("e2scrub_all-1").get("env").is_none());
    let anacron = format!("\n# {}:6\n[[jobs]]\n", crond.join("anacron").display());
    assert!(stdout.contains(&anacron), "{stdout}");
    assert!(
        stdout.contains("`dst = \"cron\"` keeps cron's rule"),
        "{stdout}"
    );

    assert_config_ok(&stdout);
    // Imported again: the same text (ids are stable).
    let again = import(&[
        "--system",
        fixture("crontab").to_str().unwrap(),
        "--dir",
        crond.to_str().unwrap(),
    ]);
    assert_eq!(text(&again.stdout), stdout);
}

#[test]
fn user_crontab_with_every_line_kind() {
    let me = whoami();
    let out = import(&["--user", &me, fixture("user-crontab").to_str().unwrap()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!((out.status.code(), stderr.as_str()), (Some(0), ""));
    let jobs = jobs_of(&stdout);
    let ids: Vec<&str> = jobs.iter().map(|j| get(j, "id").unwrap()).collect();
    assert_eq!(
        ids,
        [
            "user-crontab-8",
            "user-crontab-9",
            "user-crontab-10",
            "user-crontab-11",
            "user-crontab-14"
        ]
    );
    let [bash, reboot, mail, date, weekly] = &jobs[..] else {
        unreachable!()
    };
    for job in &jobs {
        assert_eq!(get(job, "user"), Some(me.as_str()));
        assert_eq!(get(job, "shell"), Some("/bin/bash"));
        assert_eq!(
            job["env"]["PATH"].as_str(),
            Some("/usr/local/bin:/usr/bin:/bin")
        );
        assert!(job["env"].get("MAILTO").is_none() && job["env"].get("SHELL").is_none());
    }
    assert_eq!(get(bash, "cron"), Some("30 2 * * *"));
    assert_eq!(get(bash, "timezone"), Some("America/New_York"));
    assert_eq!(get(bash, "mailto"), Some("ops@example.com"));
    assert_eq!(
        get(bash, "command"),
        Some("[[ -d /var/tmp ]] && echo $'tab\\there' >> /var/tmp/bash.log")
    );
    assert_eq!(reboot.get("at_start").and_then(|v| v.as_bool()), Some(true));
    assert!(reboot.get("cron").is_none() && reboot.get("dst").is_none());
    assert!(reboot.get("timezone").is_none());
    assert_eq!(get(mail, "command"), Some("mail -s \"Daily report\" ops"));
    assert_eq!(
        get(mail, "stdin"),
        Some("Good morning,\n\nthe report is 100% attached.\n")
    );
    assert_eq!(
        get(date, "command"),
        Some("date +%Y-%m-%d > /var/tmp/today")
    );
    assert_eq!(get(weekly, "cron"), Some("@weekly"));
    assert_eq!(get(weekly, "timezone"), None, "CRON_TZ= ends the zone");
    assert_eq!(get(weekly, "mailto"), Some(""), "MAILTO=\"\": no mail");
    assert_config_ok(&stdout);
}

#[test]
fn bad_lines_are_left_out_reported_and_the_rest_still_checks() {
    let dir = tempfile::tempdir().unwrap();
    let crontab = dir.path().join("mixed");
    std::fs::write(
        &crontab,
        "0 * * * * /bin/ok\n61 * * * * /bin/bad-minute\n* * 0 * * /bin/bad-day\n\
         CRON_TZ=Nowhere/Land\n0 0 * * * /bin/lost-zone\nCRON_TZ=UTC\n@fortnightly /bin/x\n\
         0 1 * * * /bin/also-ok%in\n",
    )
    .unwrap();
    let out = import(&[crontab.to_str().unwrap()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1));
    let file = crontab.display().to_string();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 5, "{stderr}");
    for (report, (line, what)) in lines.iter().zip([
        (2, "left out: invalid time fields `61 * * * *`"),
        (3, "left out: invalid time fields `* * 0 * *`"),
        (4, "left out: CRON_TZ=Nowhere/Land is not a known time zone"),
        (
            5,
            "left out: CRON_TZ=Nowhere/Land (line 4) is not a known time zone",
        ),
        (7, "left out: unknown macro `@fortnightly`"),
    ]) {
        assert!(
            report.starts_with(&format!("{file}:{line}: {what}")),
            "{report}"
        );
    }
    let ids: Vec<String> = jobs_of(&stdout)
        .iter()
        .map(|j| get(j, "id").unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["mixed-1", "mixed-8"]);
    assert_config_ok(&stdout);
}

/// The name of the user running the tests (`aps config check` accepts it as `user`).
fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    text(&out.stdout).trim().to_owned()
}

/// Whether this process runs as root (uid 0), from /proc.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Whether the test can go on: true as root; otherwise it fails in CI (which must run
/// these tests as root) and is skipped with a notice elsewhere.
fn root_or_skip(why: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        !apscheduler_testkit::server::in_ci(),
        "{why}: CI must run this test as root"
    );
    eprintln!("skipped: not root ({why})");
    false
}

/// An imported crontab under `aps run`, as root: its @reboot jobs run at start as `nobody`
/// with bash, their `%` text on standard input and cron's environment; its scheduled jobs
/// (a CRON_TZ zone, a macro, `dst = "cron"`) are loaded with a next run time.
#[test]
fn imported_crontab_runs_under_the_daemon_as_nobody() {
    if !root_or_skip("this test runs jobs as `nobody`") {
        return;
    }
    let dir = Dir::new(HEAD);
    let out_dir = dir.dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    // The job runs as nobody: it must reach and write the output folder.
    let open = |p: &Path, mode: u32| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    open(dir.dir.path(), 0o755);
    open(&out_dir, 0o777);
    let out = out_dir.display();
    let crontab = dir.dir.path().join("crontab");
    std::fs::write(
        &crontab,
        format!(
            "SHELL=/bin/bash\nMAILTO=\"\"\nGREETING = 'hello there'\n\
             @reboot [[ $(id -un) == nobody ]] && cat > {out}/stdin-$(id -un)%line one%100\\% sure\n\
             @reboot echo \"$GREETING|$LOGNAME|$SHELL\" > {out}/env\n\
             CRON_TZ=Europe/Paris\n17 3 * * * echo scheduled\n@daily echo daily\n"
        ),
    )
    .unwrap();
    let imported = import(&["--user", "nobody", crontab.to_str().unwrap()]);
    assert_eq!(
        imported.status.code(),
        Some(0),
        "{}",
        text(&imported.stderr)
    );
    dir.write(&format!("{HEAD}{}", text(&imported.stdout)));
    let daemon = dir.start();
    let stdin_file = out_dir.join("stdin-nobody");
    let env_file = out_dir.join("env");
    wait_for("the @reboot jobs to run", Duration::from_secs(30), || {
        env_file.exists() && std::fs::read_to_string(&stdin_file).is_ok_and(|s| s.ends_with('\n'))
    });
    assert_eq!(
        std::fs::read_to_string(&stdin_file).unwrap(),
        "line one\n100% sure\n"
    );
    assert_eq!(
        std::fs::read_to_string(&env_file).unwrap(),
        "hello there|nobody|/bin/bash\n",
        "daemon log:\n{}",
        daemon.log()
    );
    let jobs = dir.jobs();
    for id in ["crontab-7", "crontab-8"] {
        let job = jobs
            .iter()
            .find(|j| j["id"] == id)
            .unwrap_or_else(|| panic!("{id} not loaded: {jobs:?}"));
        assert!(job["next_run_time"].is_string(), "{job}");
    }
}
