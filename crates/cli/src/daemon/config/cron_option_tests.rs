//! The checks of the options that take over a server's cron: `user`, `group`,
//! `shell`, `stdin`, `at_start` and `dst`.

use serde_json::{json, Map, Value};

use super::job::{apply_dst, AT_START_ONLY};
use super::*;

fn check(text: &str) -> Result<Config, String> {
    parse(Path::new("/etc/aps/aps.toml"), text, true).map_err(|e| e.0)
}

fn job(extra: &str) -> String {
    format!("[[jobs]]\nid = \"j\"\ncommand = \"true\"\ncron = \"* * * * *\"\n{extra}")
}

fn command_of(cfg: &Config) -> &Action {
    &cfg.jobs[0].action
}

#[test]
fn process_options_are_read_with_their_defaults() {
    let cfg = check(&job(
        "user = \"root\"\ngroup = \"root\"\nshell = \"/bin/sh\"\nstdin = \"a\\nb\\n\"\n",
    ))
    .unwrap();
    let Action::Command {
        user,
        group,
        shell,
        stdin,
        ..
    } = command_of(&cfg)
    else {
        panic!("a command job")
    };
    assert_eq!(user.as_deref(), Some("root"));
    assert_eq!(group.as_deref(), Some("root"));
    assert_eq!(shell.as_deref(), Some("/bin/sh"));
    assert_eq!(stdin.as_deref(), Some("a\nb\n"));

    let cfg = check(&format!(
        "[job_defaults]\nuser = \"root\"\nshell = \"/bin/sh\"\n{}",
        job("")
    ))
    .unwrap();
    let Action::Command { user, shell, .. } = command_of(&cfg) else {
        panic!("a command job")
    };
    assert_eq!(
        (user.as_deref(), shell.as_deref()),
        (Some("root"), Some("/bin/sh"))
    );
    // A job's own value wins over the default.
    let cfg = check(&format!(
        "[job_defaults]\nshell = \"/no/such/shell\"\n{}",
        job("shell = \"/bin/sh\"\n")
    ));
    // The bad default is reported where it is written, before any job.
    let e = cfg.unwrap_err();
    assert!(
        e.contains("aps.toml:2:")
            && e.contains("job_defaults.shell")
            && e.contains("/no/such/shell"),
        "{e}"
    );
}

#[test]
fn stored_definitions_without_the_new_options_are_unchanged() {
    let cfg = check(&job("")).unwrap();
    let kw = cfg.jobs[0].to_kwargs();
    let stored = kw["aps"].as_object().unwrap();
    assert!(!stored.contains_key("at_start"), "{stored:?}");
    let action = stored["action"]["command"].as_object().unwrap();
    for key in ["user", "group", "shell", "stdin"] {
        assert!(!action.contains_key(key), "{key} in {action:?}");
    }
    assert!(!cfg.jobs[0]
        .trigger_args
        .as_object()
        .unwrap()
        .contains_key("dst"));
    // A definition written before these options existed reads as today's.
    let old = json!({"aps": {"id": "j", "name": "j",
        "action": {"command": {"command": "true"}},
        "trigger_kind": "crontab", "trigger_args": {"expr": "* * * * *", "timezone": "UTC"},
        "trigger_text": "cron \"* * * * *\"", "misfire_grace_time": 1.0, "coalesce": true,
        "max_instances": 1, "origin": "config"}});
    let def = JobDef::from_kwargs(old.as_object().unwrap()).unwrap();
    assert!(!def.at_start);
    assert_eq!(def.to_kwargs()["aps"], old["aps"]);
}

#[test]
fn bad_process_options_name_the_job_and_field() {
    let cases = [
        (job("user = \"aps-no-such-user\"\n"), &["jobs[0] (id 'j')", "user:", "no user 'aps-no-such-user'"][..]),
        (job("user = \"root\"\ngroup = \"aps-no-such-group\"\n"), &["(id 'j')", "group:", "no group 'aps-no-such-group'"]),
        (job("group = \"root\"\n"), &["(id 'j')", "group:", "needs `user`"]),
        (job("shell = \"/no/such/shell\"\n"), &["(id 'j')", "shell:", "'/no/such/shell'"]),
        (job("shell = \"bash\"\n"), &["(id 'j')", "shell:", "not an absolute path"]),
        (job("shell = \"/etc/passwd\"\n"), &["(id 'j')", "shell:", "not executable"]),
        (job("user = \"\"\n"), &["(id 'j')", "user:", "must not be empty"]),
        (
            "[[jobs]]\nid = \"h\"\nhttp = { url = \"http://h/\" }\ncron = \"* * * * *\"\nuser = \"root\"\n".into(),
            &["(id 'h')", "user:", "`command` jobs only"],
        ),
        (
            "[[jobs]]\nid = \"h\"\nhttp = { url = \"http://h/\" }\ncron = \"* * * * *\"\nstdin = \"x\"\n".into(),
            &["(id 'h')", "stdin:", "`command` jobs only"],
        ),
        ("[job_defaults]\nuser = \"aps-no-such-user\"\n".into(), &["aps.toml:2:", "job_defaults.user", "no user"]),
        ("[job_defaults]\ngroup = \"aps-no-such-group\"\n".into(), &["job_defaults.group", "no group"]),
    ];
    for (text, wanted) in cases {
        let err = check(&text).expect_err(&text);
        for w in wanted {
            assert!(err.contains(w), "{err:?} should contain {w:?}");
        }
    }
}

#[test]
fn an_at_start_job_needs_no_trigger() {
    let cfg = check("[[jobs]]\nid = \"boot\"\ncommand = \"true\"\nat_start = true\n").unwrap();
    let def = &cfg.jobs[0];
    assert!(def.at_start && def.runs_only_at_start());
    assert_eq!(def.trigger_text, AT_START_ONLY);
    // Its stored trigger never fires (the daemon's start runs it).
    let trigger = def.build_trigger(chrono_tz::UTC).unwrap();
    let now = chrono::Utc::now().with_timezone(&chrono_tz::UTC);
    use apscheduler_core::Trigger as _;
    assert!(trigger.next_fire_time(None, &now).unwrap() < now);

    let cfg = check(&job("at_start = true\n")).unwrap();
    assert!(cfg.jobs[0].at_start && !cfg.jobs[0].runs_only_at_start());
    assert_eq!(cfg.jobs[0].trigger_kind, "crontab");
    assert!(cfg.jobs[0].to_kwargs()["aps"]["at_start"] == json!(true));

    let e = check("[[jobs]]\nid = \"x\"\ncommand = \"true\"\n").unwrap_err();
    assert!(e.contains("no trigger") && e.contains("at_start"), "{e}");
    let e = check("[[jobs]]\nid = \"x\"\ncommand = \"true\"\nat_start = false\n").unwrap_err();
    assert!(e.contains("no trigger"), "{e}");
    let e = check("[[jobs]]\nid = \"x\"\ncommand = \"true\"\nat_start = true\njitter = 5\n")
        .unwrap_err();
    assert!(e.contains("(id 'x'): jitter: needs a trigger"), "{e}");
    let e = check("[[jobs]]\nid = \"x\"\ncommand = \"true\"\nat_start = \"yes\"\n").unwrap_err();
    assert!(
        e.contains("aps.toml:4:") && e.contains("'at_start': \"yes\""),
        "{e}"
    );
}

fn args(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn dst_goes_to_cron_triggers_only_when_set() {
    let cron = Some(Dst::Cron);
    let mut a = args(json!({"expr": "30 2 * * *"}));
    apply_dst("crontab", &mut a, Some("cron"), None).unwrap();
    assert_eq!(a["dst"], json!("cron"));
    // From the defaults.
    let mut a = args(json!({"hour": 2}));
    apply_dst("cron", &mut a, None, cron).unwrap();
    assert_eq!(a["dst"], json!("cron"));
    // A job's "default" overrides a default "cron"; unset sets nothing.
    let mut a = args(json!({"expr": "* * * * *"}));
    apply_dst("crontab", &mut a, Some("default"), cron).unwrap();
    apply_dst("crontab", &mut a, None, None).unwrap();
    assert!(!a.contains_key("dst"));
    // A default applies to cron triggers only; a job's own dst on another kind fails.
    let mut a = args(json!({"seconds": 5.0}));
    apply_dst("interval", &mut a, None, cron).unwrap();
    assert!(!a.contains_key("dst"));
    let e = apply_dst("interval", &mut a, Some("cron"), None).unwrap_err();
    assert!(e.contains("cron triggers only"), "{e}");
    let e = apply_dst("crontab", &mut a, Some("summer"), None).unwrap_err();
    assert!(e.contains("'summer'") && e.contains("\"cron\""), "{e}");
}

#[test]
fn dst_is_read_from_the_job_the_defaults_and_the_scheduler() {
    let dst = |text: &str| check(text).map(|c| c.defaults.dst);
    assert_eq!(
        dst("[scheduler]\ndst = \"cron\"\n").unwrap(),
        Some(Dst::Cron)
    );
    assert_eq!(
        dst("[job_defaults]\ndst = \"cron\"\n").unwrap(),
        Some(Dst::Cron)
    );
    assert_eq!(
        dst("[scheduler]\ndst = \"cron\"\n[job_defaults]\ndst = \"default\"\n").unwrap(),
        None
    );
    assert_eq!(dst("").unwrap(), None);
    let e = dst("[scheduler]\ndst = \"local\"\n").unwrap_err();
    assert!(
        e.contains("aps.toml:2:7") && e.contains("scheduler.dst") && e.contains("'local'"),
        "{e}"
    );
    let e = dst("[job_defaults]\ndst = 1\n").unwrap_err();
    assert!(e.contains("aps.toml:2:7"), "{e}");
    // A job's own bad value names the job.
    let e = check(&job("dst = \"summer\"\n")).unwrap_err();
    assert!(e.contains("(id 'j'): dst: invalid value 'summer'"), "{e}");
    let e = check("[[jobs]]\nid = \"i\"\ncommand = \"true\"\ninterval = 5\ndst = \"cron\"\n")
        .unwrap_err();
    assert!(
        e.contains("(id 'i'): dst: applies to cron triggers only"),
        "{e}"
    );
    // An interval job under a scheduler-wide dst is unchanged.
    let cfg = check(
        "[scheduler]\ndst = \"cron\"\n[[jobs]]\nid = \"i\"\ncommand = \"true\"\ninterval = 5\n",
    )
    .unwrap();
    assert!(!cfg.jobs[0]
        .trigger_args
        .as_object()
        .unwrap()
        .contains_key("dst"));
}

#[test]
fn a_value_of_the_wrong_type_is_named_by_its_key() {
    let e = check(&job("stdin = 5\n")).unwrap_err();
    assert!(
        e.contains("aps.toml:5:9: stdin: invalid type: integer `5`"),
        "{e}"
    );
    let e = check(&job("user = [\"a\"]\n")).unwrap_err();
    assert!(e.contains("aps.toml:5:8: user: invalid type"), "{e}");
    let e = check("[[jobs]]\nid = \"h\"\nhttp = { url = 5 }\n").unwrap_err();
    assert!(e.contains(":3:16: url: invalid type"), "{e}");
}

#[test]
fn a_job_with_dst_cron_builds_its_trigger() {
    let cfg = check(&job("dst = \"cron\"\n")).unwrap();
    assert_eq!(cfg.jobs[0].trigger_args["dst"], json!("cron"));
    let cfg = check(&format!(
        "[scheduler]\ndst = \"cron\"\n{}",
        "[[jobs]]\nid = \"t\"\ncommand = \"true\"\ntrigger = { type = \"cron\", hour = 2 }\n"
    ))
    .unwrap();
    assert_eq!(cfg.jobs[0].trigger_args["dst"], json!("cron"));
}

#[test]
fn h_in_cron_hashes_from_the_job_id() {
    use apscheduler_triggers::{AnyTrigger, CronTrigger};
    let text = "[[jobs]]\nid = \"backup\"\ncommand = \"true\"\ncron = \"H H(0-5) * * *\"\n\
                [[jobs]]\nid = \"t\"\ncommand = \"true\"\ntrigger = { type = \"crontab\", expr = \"H/15 * * * *\" }\n\
                [[jobs]]\nid = \"k\"\ncommand = \"true\"\ntrigger = { type = \"crontab\", expr = \"H * * * *\", hash_key = \"other\" }\n";
    let cfg = check(text).unwrap();
    assert_eq!(cfg.jobs[0].trigger_args["hash_key"], json!("backup"));
    // The same values as the library gives that key (the config's zone is UTC here).
    use apscheduler_core::Trigger as _;
    let now = chrono::Utc::now().with_timezone(&chrono_tz::UTC);
    let built: AnyTrigger = cfg.jobs[0].build_trigger(chrono_tz::UTC).unwrap();
    let direct =
        CronTrigger::from_crontab_hashed("H H(0-5) * * *", chrono_tz::UTC, "backup").unwrap();
    assert_eq!(
        built.next_fire_time(None, &now).map(|t| t.to_utc()),
        direct.next_fire_time(None, &now).map(|t| t.to_utc())
    );
    assert_eq!(cfg.jobs[1].trigger_args["hash_key"], json!("t"));
    assert_eq!(cfg.jobs[2].trigger_args["hash_key"], json!("other"));
    // Text without `H` stores no key: definitions read as before.
    let cfg = check(&job("")).unwrap();
    assert!(cfg.jobs[0].trigger_args.get("hash_key").is_none());
}

#[test]
fn extensions_in_cron_are_read() {
    let cfg =
        check("[[jobs]]\nid = \"eom\"\ncommand = \"true\"\ncron = \"0 30 17 LW * ?\"\n").unwrap();
    assert_eq!(cfg.jobs[0].trigger_args["expr"], json!("0 30 17 LW * ?"));
    let e =
        check("[[jobs]]\nid = \"bad\"\ncommand = \"true\"\ncron = \"0 0 * * 1#6\"\n").unwrap_err();
    assert!(
        e.contains("(id 'bad')") && e.contains("day_of_week") && e.contains("1#6"),
        "{e}"
    );
}
