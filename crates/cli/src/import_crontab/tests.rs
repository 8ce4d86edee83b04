//! Whole crontabs through [`translate`] and [`render`](super::render), and `run_with`'s
//! files, folders, reports and exit status.

use super::*;
use crate::import_crontab::translate::{Job, Report, Translated};

fn user_source() -> Source {
    Source {
        id_prefix: "f".into(),
        system: false,
        owner: None,
    }
}

fn system_source() -> Source {
    Source {
        system: true,
        ..user_source()
    }
}

/// The name of the user running the tests: a user the checks accept as root or not.
fn me() -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::effective())
        .unwrap()
        .expect("the tests' user has a name")
        .name
}

fn left_out(t: &Translated) -> Vec<(usize, String)> {
    t.reports
        .iter()
        .filter(|r| r.severity == Severity::LeftOut)
        .map(|r| (r.line, r.reason.clone()))
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn system_crontab_user_column_becomes_user() {
    let text = "\
SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/bin
17 *\t* * *\tME\tcd / && run-parts --report /etc/cron.hourly
25 6 * * * aps-no-such-user echo hi
SHELL=/no/such/shell
0 0 * * * ME echo lost
SHELL=/bin/sh
MAILTO=two words
0 0 * * * ME echo lost too
"
    .replace("ME", &me());
    let t = translate(&text, &system_source());
    assert_eq!(t.jobs.len(), 1);
    // What `aps config check` would refuse is left out, saying why.
    let reasons = left_out(&t);
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert_eq!(reasons[0].0, 4);
    assert!(
        reasons[0].1.starts_with("user 'aps-no-such-user': "),
        "{reasons:?}"
    );
    assert_eq!(reasons[1].0, 6);
    assert!(
        reasons[1].1.starts_with("SHELL=/no/such/shell (line 5): "),
        "{reasons:?}"
    );
    assert_eq!(reasons[2].0, 9);
    assert!(
        reasons[2].1.starts_with("MAILTO=two words (line 8): "),
        "{reasons:?}"
    );
    let job = &t.jobs[0];
    assert_eq!(job.id, "f-3");
    assert_eq!(job.user, Some(me()));
    assert_eq!(job.command, "cd / && run-parts --report /etc/cron.hourly");
    assert_eq!(job.cron.as_deref(), Some("17 * * * *"));
    assert_eq!(job.shell.as_deref(), Some("/bin/sh"));
    // No MAILTO: cron mails the job's user.
    assert_eq!(job.mailto, Some(me()));
    assert_eq!(job.env, pairs(&[("PATH", "/usr/local/sbin:/usr/bin")]));
}

#[test]
fn environment_lines_apply_to_later_jobs_only() {
    let text = "\
0 1 * * * first
SHELL=/bin/bash
PATH=/usr/bin:/bin
MAILTO=ops@example.com
CRON_TZ=Europe/Paris
0 2 * * * second
MAILTO=\"\"
PATH = /opt/bin
CRON_TZ=
HOME=/srv
0 3 * * * third
";
    let t = translate(text, &user_source());
    assert_eq!(t.reports, []);
    let [first, second, third] = &t.jobs[..] else {
        panic!("{:?}", t.jobs)
    };
    assert_eq!(
        (&first.shell, &first.timezone, &first.mailto, &first.env),
        (&None, &None, &None, &vec![])
    );
    assert_eq!(second.shell.as_deref(), Some("/bin/bash"));
    assert_eq!(second.timezone.as_deref(), Some("Europe/Paris"));
    assert_eq!(second.mailto.as_deref(), Some("ops@example.com"));
    // MAILTO, SHELL and CRON_TZ are job keys, not environment variables.
    assert_eq!(second.env, pairs(&[("PATH", "/usr/bin:/bin")]));
    assert_eq!(third.shell.as_deref(), Some("/bin/bash"));
    assert_eq!(
        third.timezone, None,
        "an empty CRON_TZ is the daemon's zone"
    );
    assert_eq!(third.mailto.as_deref(), Some(""), "MAILTO=\"\": no mail");
    assert_eq!(third.env, pairs(&[("PATH", "/opt/bin"), ("HOME", "/srv")]));
}

#[test]
fn bad_cron_tz_leaves_out_the_jobs_it_governs() {
    let text = "CRON_TZ=Mars/Olympus\n0 0 * * * a\nCRON_TZ=UTC\n0 0 * * * b\n";
    let t = translate(text, &user_source());
    assert_eq!(
        left_out(&t),
        [
            (
                1,
                "CRON_TZ=Mars/Olympus is not a known time zone: the job lines after it are \
                 left out"
                    .to_owned()
            ),
            (
                2,
                "CRON_TZ=Mars/Olympus (line 1) is not a known time zone".to_owned()
            )
        ]
    );
    assert_eq!(t.jobs.len(), 1);
    assert_eq!(t.jobs[0].timezone.as_deref(), Some("UTC"));
}

#[test]
fn tz_sets_the_zone_and_the_env_and_logname_is_left_out() {
    let text = "TZ=Asia/Tokyo\nLOGNAME=someone\n0 0 * * * a\n";
    let t = translate(text, &user_source());
    assert_eq!(t.jobs[0].timezone.as_deref(), Some("Asia/Tokyo"));
    assert_eq!(t.jobs[0].env, pairs(&[("TZ", "Asia/Tokyo")]));
    assert_eq!(t.reports.len(), 2);
    assert_eq!(t.reports[0].severity, Severity::Note);
    assert!(t.reports[0].reason.contains("CRON_TZ only"));
    assert_eq!(
        left_out(&t),
        [(
            2,
            "cron sets LOGNAME to the job's user: this line has no effect".to_owned()
        )]
    );
}

#[test]
fn reboot_macros_and_percent() {
    let text = "\
@reboot /usr/bin/startup
@daily backup
0 22 * * 1-5 mail -s \"It's 10pm\" joe%Joe,%%Where are your kids?%
CRON_TZ=UTC
@reboot again
";
    let t = translate(text, &user_source());
    assert_eq!(t.reports, []);
    let start = &t.jobs[0];
    assert_eq!(
        (start.cron.as_deref(), start.stdin.as_deref()),
        (None, None)
    );
    assert_eq!(t.jobs[1].cron.as_deref(), Some("@daily"));
    assert_eq!(t.jobs[2].command, "mail -s \"It's 10pm\" joe");
    assert_eq!(
        t.jobs[2].stdin.as_deref(),
        Some("Joe,\n\nWhere are your kids?\n")
    );
    assert_eq!(t.jobs[2].name, "mail -s \"It's 10pm\" joe");
    assert_eq!(t.jobs[3].timezone, None, "no schedule, no zone");
}

#[test]
fn bad_lines_are_reported_and_the_rest_converted() {
    let text = "\
0 0 * * * ok
61 * * * * bad-minute
0 0 * * echo four fields
@fortnightly x
FOO=\"unterminated
0 0 * * * also-ok
0 0 * * * no newline at the end";
    let t = translate(text, &user_source());
    let ids: Vec<&str> = t.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["f-1", "f-6"]);
    let lines: Vec<usize> = left_out(&t).iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [2, 3, 4, 5, 7]);
    assert!(t.reports[0]
        .reason
        .starts_with("invalid time fields `61 * * * *`"));
    assert_eq!(t.reports[1].text, "0 0 * * echo four fields");
    assert!(t.reports[4].reason.starts_with("no newline at the end"));
}

#[test]
fn owner_of_a_user_crontab() {
    let source = Source {
        owner: Some(me()),
        ..user_source()
    };
    let t = translate("0 0 * * * a\nMAILTO=bob\n0 0 * * * b\n", &source);
    assert_eq!(t.jobs[0].user, Some(me()));
    assert_eq!(t.jobs[0].mailto, Some(me()));
    assert_eq!(t.jobs[1].mailto.as_deref(), Some("bob"));
    // Without an owner, no user and no mail: the daemon's own user runs the job.
    let t = translate("0 0 * * * a\n", &user_source());
    assert_eq!((&t.jobs[0].user, &t.jobs[0].mailto), (&None, &None));
}

#[test]
fn exact_output_shape() {
    let text = "SHELL=/bin/bash\nX=1\n*/5 * * * * ME cat%a\n@reboot ME /bin/start\n";
    let t = translate(&text.replace("ME", &me()), &system_source());
    let jobs: Vec<(String, Job)> = t.jobs.into_iter().map(|j| ("f".into(), j)).collect();
    let toml = render::render(&["f".into()], &jobs);
    let body = toml.split_once("\n\n").expect("a header, a blank line").1;
    assert_eq!(
        body,
        "# f:3\n\
         [[jobs]]\n\
         id = \"f-3\"\n\
         name = \"cat\"\n\
         cron = \"*/5 * * * *\"\n\
         dst = \"cron\"\n\
         user = \"ME\"\n\
         shell = \"/bin/bash\"\n\
         command = \"cat\"\n\
         stdin = \"\"\"\na\n\"\"\"\n\
         mailto = \"ME\"\n\
         env = { X = \"1\" }\n\
         \n\
         # f:4\n\
         [[jobs]]\n\
         id = \"f-4\"\n\
         name = \"/bin/start\"\n\
         at_start = true\n\
         user = \"ME\"\n\
         shell = \"/bin/bash\"\n\
         command = \"/bin/start\"\n\
         mailto = \"ME\"\n\
         env = { X = \"1\" }\n"
            .replace("ME", &me())
    );
    assert!(toml.starts_with("# Imported by `aps import crontab` from:\n#   f\n"));
}

#[test]
fn awkward_strings_round_trip() {
    let text = "QUOTE = it's \"odd\" \\ here\n0 0 * * * echo \"a\\b\" '\u{e9}' \\% done\ttab\n";
    let t = translate(text, &user_source());
    let jobs: Vec<(String, Job)> = t.jobs.into_iter().map(|j| ("x\ny".into(), j)).collect();
    let toml = render::render(&["x\ny".into()], &jobs);
    let doc: toml::Table = toml::from_str(&toml).expect("valid TOML");
    let job = doc["jobs"].as_array().unwrap()[0].as_table().unwrap();
    assert_eq!(
        job["command"].as_str(),
        Some("echo \"a\\b\" '\u{e9}' % done\ttab")
    );
    assert_eq!(job["env"]["QUOTE"].as_str(), Some("it's \"odd\" \\ here"));
    assert!(toml.contains("#   x?y\n"), "{toml}");
}

#[test]
fn long_names_are_cut_on_char_boundaries() {
    let command = "\u{e9}".repeat(70);
    let t = translate(&format!("0 0 * * * {command}\n"), &user_source());
    assert_eq!(t.jobs[0].name, "\u{e9}".repeat(60));
    assert_eq!(t.jobs[0].command, command);
}

#[test]
fn a_report_keeps_the_line_and_its_text() {
    // Each report names its line and keeps the line's text.
    let t = translate("  bad line here  \n", &user_source());
    assert_eq!(
        t.reports,
        [Report {
            line: 1,
            text: "bad line here".into(),
            reason: "expected five time fields and a command, found 3 field(s)".into(),
            severity: Severity::LeftOut,
        }]
    );
}

/// Runs [`run_with`], returning the exit code, stdout and stderr.
fn run_capture(args: &CrontabArgs, stdin: &str) -> (ExitCode, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_with(args, &mut stdin.as_bytes(), &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn args(files: &[&Path]) -> CrontabArgs {
    CrontabArgs {
        files: files.iter().map(|p| p.to_path_buf()).collect(),
        system: false,
        dir: Vec::new(),
        user: None,
    }
}

#[test]
fn run_files_stdin_folders_and_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    std::fs::write(&good, "0 0 * * * true\n").unwrap();
    let (code, out, err) = run_capture(&args(&[&good]), "");
    assert_eq!((code, err.as_str()), (ExitCode::SUCCESS, ""));
    assert!(out.contains("id = \"good-1\""), "{out}");

    // Standard input, and the same file twice: ids stay unique.
    let (code, out, _) = run_capture(&args(&[Path::new("-"), &good, &good]), "@hourly x\n");
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(out.contains("id = \"stdin-1\""), "{out}");
    assert!(out.contains("#   (standard input)\n"), "{out}");
    assert_eq!(out.matches("id = \"good").count(), 1, "{out}");

    let bad = dir.path().join("bad");
    std::fs::write(&bad, "0 0 * * * true\n  0 0 * *  \n").unwrap();
    let (code, out, err) = run_capture(&args(&[&bad]), "");
    assert_eq!(code, ExitCode::from(1));
    assert!(out.contains("id = \"bad-1\""), "{out}");
    assert_eq!(
        err,
        format!(
            "{}:2: left out: expected five time fields and a command, found 4 field(s): \
             0 0 * *\n",
            bad.display()
        )
    );

    let missing = dir.path().join("missing");
    let (code, out, err) = run_capture(&args(&[&missing]), "");
    assert_eq!((code, out.as_str()), (ExitCode::from(2), ""));
    assert!(err.starts_with(&format!("error: cannot read {}: ", missing.display())));

    // --system on a file outside /etc; --user on a user crontab.
    let sys = dir.path().join("sys");
    std::fs::write(&sys, format!("0 0 * * * {} true\n", me())).unwrap();
    let mut a = args(&[&sys]);
    a.system = true;
    let (code, out, _) = run_capture(&a, "");
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(
        out.contains(&format!("user = \"{}\"\ncommand = \"true\"", me())),
        "{out}"
    );
    let mut a = args(&[&good]);
    a.user = Some(me());
    let (_, out, _) = run_capture(&a, "");
    assert!(out.contains(&format!("user = \"{}\"", me())), "{out}");

    // A cron.d folder: skipped names are reported, exit 0 (cron skips them too).
    let crond = dir.path().join("cron.d");
    std::fs::create_dir(&crond).unwrap();
    std::fs::write(crond.join("job"), format!("0 0 * * * {} true\n", me())).unwrap();
    std::fs::write(crond.join("job.dpkg-old"), "0 0 * * * root old\n").unwrap();
    std::fs::write(crond.join(".placeholder"), "# keep\n").unwrap();
    std::fs::create_dir(crond.join("sub")).unwrap();
    let a = CrontabArgs {
        dir: vec![crond.clone()],
        ..args(&[])
    };
    let (code, out, err) = run_capture(&a, "");
    assert_eq!(code, ExitCode::SUCCESS, "{err}");
    assert!(out.contains("id = \"job-1\"\nname = \"true\""), "{out}");
    assert!(!out.contains("command = \"old\""), "{out}");
    let reported: Vec<&str> = err.lines().collect();
    assert_eq!(reported.len(), 3, "{err}");
    assert!(err.contains(&format!(
        "{}: skipped file: a hidden",
        crond.join(".placeholder").display()
    )));
    assert!(err.contains(&format!(
        "{}: skipped file: a package",
        crond.join("job.dpkg-old").display()
    )));
    assert!(err.contains(&format!(
        "{}: skipped file: not a regular",
        crond.join("sub").display()
    )));
    let a = CrontabArgs {
        dir: vec![dir.path().join("nope")],
        ..args(&[])
    };
    assert_eq!(run_capture(&a, "").0, ExitCode::from(2));
}

#[test]
fn cron_tz_wins_over_tz_and_a_bad_tz_leaves_its_jobs_out() {
    let text = "TZ=Asia/Tokyo\nCRON_TZ=Europe/Paris\n0 0 * * * a\nCRON_TZ=\n0 0 * * * b\nTZ=Nowhere/Land\n0 0 * * * c\n";
    let t = translate(text, &user_source());
    assert_eq!(t.jobs.len(), 2);
    assert_eq!(t.jobs[0].timezone.as_deref(), Some("Europe/Paris"));
    assert_eq!(t.jobs[1].timezone.as_deref(), Some("Asia/Tokyo"));
    assert!(left_out(&t)
        .iter()
        .any(|(line, reason)| *line == 6
            && reason.contains("TZ=Nowhere/Land is not a known time zone")));
}
