//! `[calendars.NAME]` and a job's `calendar`: what they build, and each error, named
//! with the file, line, field and value.

use super::*;

/// A config at `dir/aps.toml` with `text`, checked.
fn check_in(dir: &Path, text: &str) -> Result<Config, String> {
    parse(&dir.join("aps.toml"), text, true).map_err(|e| e.0)
}

fn check(text: &str) -> Result<Config, String> {
    check_in(Path::new("/etc/aps"), text)
}

const JOB: &str = "[[jobs]]\nid = \"j\"\ncommand = \"true\"\ncron = \"0 9 * * *\"\n";

#[test]
fn a_job_names_a_calendar_and_stores_it_whole_with_its_action() {
    let cfg = check(&format!(
        "[scheduler]\ntimezone = \"Europe/Berlin\"\n\
         [calendars.holidays]\ndates = [\"2026-12-24\", \"2026-12-25\"]\n\
         [calendars.quiet]\nweekdays = [\"sat\", \"Sunday\"]\nwindows = [\"22:00-06:00\"]\ntimezone = \"UTC\"\nunion = [\"holidays\"]\n\
         {JOB}calendar = \"quiet\"\ncalendar_action = \"next_allowed\"\n"
    ))
    .unwrap();
    let def = &cfg.jobs[0];
    let calendar = def.calendar.as_ref().unwrap();
    assert_eq!(calendar.name, "quiet");
    assert_eq!(calendar, &cfg.defaults.calendars["quiet"]);
    assert_eq!(
        def.calendar_action,
        apscheduler_triggers::CalendarAction::NextAllowed
    );
    // The stored definition carries the rules, and reads back equal (a reload of the
    // same file changes nothing).
    let kwargs = def.to_kwargs();
    assert_eq!(kwargs["aps"]["calendar"]["name"], "quiet");
    assert_eq!(kwargs["aps"]["calendar_action"], "next_allowed");
    assert_eq!(JobDef::from_kwargs(&kwargs).as_ref(), Some(def));
    // The union member's days are excluded, in the calendar's zone.
    let berlin: Tz = "Europe/Berlin".parse().unwrap();
    use chrono::TimeZone as _;
    let christmas = berlin.with_ymd_and_hms(2026, 12, 24, 12, 0, 0).unwrap();
    assert!(calendar.calendar.excludes(&christmas));
    let monday_noon = berlin.with_ymd_and_hms(2026, 12, 21, 12, 0, 0).unwrap();
    assert!(!calendar.calendar.excludes(&monday_noon));
    // The built trigger applies it.
    let trigger = def.build_trigger(cfg.timezone).unwrap();
    assert!(trigger.to_string().contains("quiet"), "{trigger}");
    // A job without one stores none, and its definition has no calendar keys.
    let plain = check(JOB).unwrap();
    assert!(plain.jobs[0].calendar.is_none());
    let aps = plain.jobs[0].to_kwargs()["aps"].clone();
    assert!(aps.get("calendar").is_none() && aps.get("calendar_action").is_none());
}

#[test]
fn job_defaults_give_a_calendar_that_a_job_turns_off_with_an_empty_name() {
    let text = |job_extra: &str| {
        format!(
            "[job_defaults]\ncalendar = \"h\"\ncalendar_action = \"next_allowed\"\n\
             [calendars.h]\ndates = [\"2026-12-24\"]\n{JOB}{job_extra}"
        )
    };
    let cfg = check(&text("")).unwrap();
    assert_eq!(cfg.jobs[0].calendar.as_ref().unwrap().name, "h");
    assert_eq!(
        cfg.jobs[0].calendar_action,
        apscheduler_triggers::CalendarAction::NextAllowed
    );
    let cfg = check(&text("calendar = \"\"\n")).unwrap();
    assert!(cfg.jobs[0].calendar.is_none());
    // A job that runs only at start takes no default calendar (it has no trigger).
    let cfg = check(
        "[job_defaults]\ncalendar = \"h\"\n[calendars.h]\ndates = [\"2026-12-24\"]\n\
         [[jobs]]\nid = \"boot\"\ncommand = \"true\"\nat_start = true\n",
    )
    .unwrap();
    assert!(cfg.jobs[0].calendar.is_none());
    let e = check(
        "[calendars.h]\ndates = [\"2026-12-24\"]\n\
         [[jobs]]\nid = \"boot\"\ncommand = \"true\"\nat_start = true\ncalendar = \"h\"\n",
    )
    .unwrap_err();
    assert!(e.contains("(id 'boot'): calendar: needs a trigger"), "{e}");
    let e = check("[job_defaults]\ncalendar = \"nope\"\n").unwrap_err();
    assert!(
        e.contains("aps.toml:2:") && e.contains("job_defaults.calendar") && e.contains("'nope'"),
        "{e}"
    );
    let e = check("[job_defaults]\ncalendar_action = \"later\"\n").unwrap_err();
    assert!(
        e.contains("job_defaults.calendar_action") && e.contains("later"),
        "{e}"
    );
}

#[test]
fn each_bad_calendar_value_is_named_with_its_line() {
    let cases: &[(&str, &str)] = &[
        (
            "[calendars.c]\nweekdays = [\"sat\", \"caturday\"]\n",
            "/etc/aps/aps.toml:2:20: calendars.c.weekdays: unknown weekday 'caturday'",
        ),
        (
            "[calendars.c]\ndates = [\"2026-02-30\"]\n",
            "/etc/aps/aps.toml:2:10: calendars.c.dates: invalid date '2026-02-30'",
        ),
        (
            "[calendars.c]\nwindows = [\"22:00-25:00\"]\n",
            "/etc/aps/aps.toml:2:12: calendars.c.windows: invalid window '22:00-25:00'",
        ),
        (
            "[calendars.c]\ntimezone = \"Mars/Olympus\"\n",
            "/etc/aps/aps.toml:2:12: calendars.c.timezone:",
        ),
        (
            "[calendars.c]\nunion = [\"d\"]\n",
            "/etc/aps/aps.toml:2:10: calendars.c.union: unknown calendar 'd' (defined: c)",
        ),
        (
            "[calendars.c]\nexcept = [\"d\"]\n[calendars.d]\nunion = [\"c\"]\n",
            "calendars.d.union: 'c' makes a cycle (c -> d -> c)",
        ),
        (
            "[calendars.c]\nunion = [\"c\"]\n",
            "calendars.c.union: 'c' makes a cycle (c -> c)",
        ),
        (
            "[calendars.c]\nmonths = [1]\n",
            "unknown field `months`",
        ),
        (
            &format!("{JOB}calendar = \"nope\"\n"),
            "jobs[0] (id 'j'): calendar: unknown calendar 'nope' (defined: none",
        ),
        (
            &format!("{JOB}calendar_action = \"skip\"\n"),
            "(id 'j'): calendar_action: needs a calendar",
        ),
        (
            &format!("[calendars.c]\ndates = [\"2026-12-24\"]\n{JOB}calendar = \"c\"\ncalendar_action = \"later\"\n"),
            "(id 'j'): calendar_action:",
        ),
    ];
    for (text, want) in cases {
        let e = check(text).unwrap_err();
        assert!(e.contains(want), "for\n{text}\nwant '{want}' in: {e}");
    }
    // The unknown action's message names the value.
    let e = check(&format!(
        "[calendars.c]\ndates = [\"2026-12-24\"]\n{JOB}calendar = \"c\"\ncalendar_action = \"later\"\n"
    ))
    .unwrap_err();
    assert!(e.contains("later"), "{e}");
}

#[test]
fn a_calendar_that_excludes_every_fire_time_is_refused_at_load() {
    let e = check(&format!(
        "[calendars.always]\nweekdays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]\n\
         {JOB}calendar = \"always\"\n"
    ))
    .unwrap_err();
    assert!(
        e.contains("jobs[0] (id 'j'): calendar: job j would never run:"),
        "{e}"
    );
    // A one-off run on an excluded day.
    let e = check(
        "[calendars.h]\ndates = [\"2099-06-01\"]\n\
         [[jobs]]\nid = \"once\"\ncommand = \"true\"\ndate = \"2099-06-01 09:00:00\"\ncalendar = \"h\"\n",
    )
    .unwrap_err();
    assert!(e.contains("job once would never run"), "{e}");
}

#[test]
fn an_ics_file_is_read_beside_the_config_and_its_errors_name_file_and_line() {
    let dir = std::env::temp_dir().join(format!("aps-ics-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("holidays.ics"),
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;VALUE=DATE:20261225\r\nSUMMARY:Christmas\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    )
    .unwrap();
    let cfg = check_in(
        &dir,
        "[calendars.h]\nics = \"holidays.ics\"\ntimezone = \"UTC\"\n",
    )
    .unwrap();
    use chrono::TimeZone as _;
    let christmas = chrono_tz::UTC
        .with_ymd_and_hms(2026, 12, 25, 9, 0, 0)
        .unwrap();
    assert!(cfg.defaults.calendars["h"].calendar.excludes(&christmas));
    let boxing_day = chrono_tz::UTC
        .with_ymd_and_hms(2026, 12, 26, 9, 0, 0)
        .unwrap();
    assert!(!cfg.defaults.calendars["h"].calendar.excludes(&boxing_day));

    let e = check_in(&dir, "[calendars.h]\nics = \"missing.ics\"\n").unwrap_err();
    assert!(
        e.contains("aps.toml:2:7: calendars.h.ics: cannot read")
            && e.contains(&dir.join("missing.ics").display().to_string()),
        "{e}"
    );
    std::fs::write(
        dir.join("bad.ics"),
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:1\r\nDTSTART:20261225T090000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    )
    .unwrap();
    let e = check_in(&dir, "[calendars.h]\nics = \"bad.ics\"\n").unwrap_err();
    assert!(
        e.contains("calendars.h.ics") && e.contains("bad.ics") && e.contains("line"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
