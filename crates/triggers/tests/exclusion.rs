//! Exclusion calendars and the `excluding` trigger: rules, DST, union/except, Skip vs
//! NextAllowed, check_runs and persistence. Every time is given explicitly (no clock).

mod exclusion_support;

use apscheduler_core::Trigger;
use apscheduler_triggers::{
    decode_trigger, decode_trigger_text, AnyTrigger, CalendarAction, CronTrigger, DateTrigger,
    ExcludingTrigger, ExclusionCalendar, IntervalTrigger,
};
use chrono::{Duration, Weekday};
use chrono_tz::Tz;
use exclusion_support::*;
use serde_json::json;

#[test]
fn a_holiday_on_a_weekday_excludes_that_whole_local_day_only() {
    let berlin = tz("Europe/Berlin");
    // Thursday 2026-12-24.
    let cal = ExclusionCalendar::new(berlin).dates([day(2026, 12, 24)]);
    for (t, excluded) in [
        ("2026-12-23T23:59:59+01:00", false),
        ("2026-12-24T00:00:00+01:00", true),
        ("2026-12-24T12:00:00+01:00", true),
        ("2026-12-24T23:59:59.999+01:00", true),
        ("2026-12-25T00:00:00+01:00", false),
        // Another zone is converted to the calendar's: 23:30 UTC is 00:30 in Berlin.
        ("2026-12-23T23:30:00+00:00", true),
        ("2026-12-24T23:30:00+00:00", false),
    ] {
        assert_eq!(cal.excludes(&at(chrono_tz::UTC, t)), excluded, "{t}");
    }
    let next = cal.next_allowed(&at(chrono_tz::UTC, "2026-12-24T09:00:00+00:00"));
    // In the zone of the instant asked about.
    assert_eq!(rfc(next), "2026-12-24T23:00:00+00:00");
}

#[test]
fn weekends_are_excluded_until_monday_midnight() {
    let utc = chrono_tz::UTC;
    let cal = ExclusionCalendar::new(utc).weekdays([Weekday::Sat, Weekday::Sun]);
    // 2026-03-07 is a Saturday.
    assert!(!cal.excludes(&at(utc, "2026-03-06T23:59:59Z")));
    assert!(cal.excludes(&at(utc, "2026-03-07T00:00:00Z")));
    assert!(cal.excludes(&at(utc, "2026-03-08T23:59:59Z")));
    assert!(!cal.excludes(&at(utc, "2026-03-09T00:00:00Z")));
    assert_eq!(
        rfc(cal.next_allowed(&at(utc, "2026-03-07T10:00:00Z"))),
        "2026-03-09T00:00:00+00:00"
    );
    // An allowed instant is its own next allowed instant.
    assert_eq!(
        rfc(cal.next_allowed(&at(utc, "2026-03-06T10:00:00Z"))),
        "2026-03-06T10:00:00+00:00"
    );
}

#[test]
fn a_night_window_is_wall_clock_time_across_berlin_dst_changes() {
    let berlin = tz("Europe/Berlin");
    let cal = ExclusionCalendar::new(berlin)
        .window("22:00-06:00")
        .unwrap();

    // Spring forward, 2026-03-29 02:00 -> 03:00: the night lasts 7 real hours.
    let start = at(berlin, "2026-03-28T22:00:00+01:00");
    assert!(!cal.excludes(&at(berlin, "2026-03-28T21:59:59+01:00")));
    for t in [
        "2026-03-28T22:00:00+01:00",
        "2026-03-29T01:59:59+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T05:59:59+02:00",
    ] {
        assert!(cal.excludes(&at(berlin, t)), "{t}");
    }
    let end = cal.next_allowed(&start).unwrap();
    assert_eq!(end.to_rfc3339(), "2026-03-29T06:00:00+02:00");
    assert_eq!(end - start, Duration::hours(7));

    // Fall back, 2026-10-25 03:00 -> 02:00: 9 real hours, both passes of 02:30 inside.
    let start = at(berlin, "2026-10-24T22:00:00+02:00");
    assert!(cal.excludes(&at(berlin, "2026-10-25T02:30:00+02:00")));
    assert!(cal.excludes(&at(berlin, "2026-10-25T02:30:00+01:00")));
    let end = cal.next_allowed(&start).unwrap();
    assert_eq!(end.to_rfc3339(), "2026-10-25T06:00:00+01:00");
    assert_eq!(end - start, Duration::hours(9));

    // A window inside the skipped hour excludes nothing that night.
    let gap = ExclusionCalendar::new(berlin)
        .window("02:00-03:00")
        .unwrap();
    assert!(!gap.excludes(&at(berlin, "2026-03-29T01:59:59+01:00")));
    assert!(!gap.excludes(&at(berlin, "2026-03-29T03:00:00+02:00")));
    assert!(gap.excludes(&at(berlin, "2026-03-30T02:00:00+02:00")));
}

#[test]
fn a_window_across_new_york_dst_changes_ends_at_the_wall_clock_end() {
    let ny = tz("America/New_York");
    let cal = ExclusionCalendar::new(ny).window("01:00-03:00").unwrap();
    // 2026-03-08: 02:00 EST jumps to 03:00 EDT, so the window lasts one real hour.
    let start = at(ny, "2026-03-08T01:00:00-05:00");
    let end = cal.next_allowed(&start).unwrap();
    assert_eq!(end.to_rfc3339(), "2026-03-08T03:00:00-04:00");
    assert_eq!(end - start, Duration::hours(1));
    // 2026-11-01: 02:00 EDT falls back to 01:00 EST, so it lasts three.
    let start = at(ny, "2026-11-01T01:00:00-04:00");
    assert!(cal.excludes(&at(ny, "2026-11-01T01:30:00-05:00")));
    let end = cal.next_allowed(&start).unwrap();
    assert_eq!(end.to_rfc3339(), "2026-11-01T03:00:00-05:00");
    assert_eq!(end - start, Duration::hours(3));
    // From the second pass of 01:30 as well.
    assert_eq!(
        rfc(cal.next_allowed(&at(ny, "2026-11-01T01:30:00-05:00"))),
        "2026-11-01T03:00:00-05:00"
    );
}

#[test]
fn union_adds_and_except_takes_away() {
    let utc = chrono_tz::UTC;
    let holidays = ExclusionCalendar::new(utc).dates([
        day(2026, 12, 24),
        day(2026, 12, 25),
        day(2026, 12, 31),
    ]);
    let company_days = ExclusionCalendar::new(utc).dates([day(2026, 12, 31)]);
    let weekends = ExclusionCalendar::new(utc).weekdays([Weekday::Sat, Weekday::Sun]);
    let cal = ExclusionCalendar::new(utc)
        .union(named("holidays", holidays))
        .union(named("weekends", weekends))
        .except(named("company-days", company_days));
    for (t, excluded) in [
        ("2026-12-23T12:00:00Z", false), // Wednesday
        ("2026-12-24T12:00:00Z", true),  // holiday
        ("2026-12-26T12:00:00Z", true),  // Saturday
        ("2026-12-28T12:00:00Z", false), // Monday
        ("2026-12-31T12:00:00Z", false), // holiday, but a company day
    ] {
        assert_eq!(cal.excludes(&at(utc, t)), excluded, "{t}");
    }
    // From Christmas Eve: 24, 25 holidays, 26, 27 the weekend.
    assert_eq!(
        rfc(cal.next_allowed(&at(utc, "2026-12-24T08:00:00Z"))),
        "2026-12-28T00:00:00+00:00"
    );
    // An except member in another zone starts its own allowance at its own midnight.
    let berlin = tz("Europe/Berlin");
    let all_week = ExclusionCalendar::new(utc).weekdays([
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ]);
    let open = ExclusionCalendar::new(berlin).dates([day(2026, 7, 1)]);
    let cal = all_week.except(named("open", open));
    assert_eq!(
        rfc(cal.next_allowed(&at(utc, "2026-06-01T00:00:00Z"))),
        "2026-06-30T22:00:00+00:00"
    );
}

#[test]
fn next_allowed_jumps_whole_days_and_gives_up_after_ten_years() {
    let utc = chrono_tz::UTC;
    // Everything but Wednesday: from Thursday 2026-03-05 to Wednesday 2026-03-11.
    let cal = ExclusionCalendar::new(utc)
        .weekdays([
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ])
        .window("12:00-13:00")
        .unwrap();
    assert_eq!(
        rfc(cal.next_allowed(&at(utc, "2026-03-05T10:00:00Z"))),
        "2026-03-11T00:00:00+00:00"
    );
    assert_eq!(
        rfc(cal.next_allowed(&at(utc, "2026-03-11T12:30:00Z"))),
        "2026-03-11T13:00:00+00:00"
    );
    let never = ExclusionCalendar::new(utc).weekdays([
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ]);
    let started = std::time::Instant::now();
    assert_eq!(never.next_allowed(&at(utc, "2026-03-05T10:00:00Z")), None);
    // Ten years of days, a step each: well under a second even unoptimized on a busy
    // machine (a second-by-second search would take hours).
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

fn hourly(zone: Tz) -> CronTrigger {
    CronTrigger::builder()
        .minute(0)
        .timezone(zone)
        .build()
        .unwrap()
}

#[test]
fn skip_keeps_the_fire_times_and_names_the_calendar_next_allowed_moves_them() {
    let utc = chrono_tz::UTC;
    let night = named(
        "night",
        ExclusionCalendar::new(utc).window("22:00-02:00").unwrap(),
    );
    let now = at(utc, "2026-06-01T20:30:00Z");

    let skip = ExcludingTrigger::new(hourly(utc), night.clone(), CalendarAction::Skip);
    assert_eq!(
        sequence(&skip, &now, 7),
        [
            "06-01 21:00",
            "06-01 22:00 excluded by night",
            "06-01 23:00 excluded by night",
            "06-02 00:00 excluded by night",
            "06-02 01:00 excluded by night",
            "06-02 02:00",
            "06-02 03:00",
        ]
    );
    // What a listing shows for the excluded 22:00: the 02:00 run.
    assert_eq!(
        rfc(skip.first_allowed(&at(utc, "2026-06-01T22:00:00Z"))),
        "2026-06-02T02:00:00+00:00"
    );

    let moved = ExcludingTrigger::new(hourly(utc), night, CalendarAction::NextAllowed);
    assert_eq!(
        sequence(&moved, &now, 4),
        ["06-01 21:00", "06-02 02:00", "06-02 03:00", "06-02 04:00"]
    );
    assert_eq!(moved.excluded_by(&at(utc, "2026-06-01T22:00:00Z")), None);
}

#[test]
fn next_allowed_collapses_fire_times_of_one_window_into_one_run() {
    let utc = chrono_tz::UTC;
    let every_15 = CronTrigger::builder()
        .minute("*/15")
        .timezone(utc)
        .build()
        .unwrap();
    let lunch = named(
        "lunch",
        ExclusionCalendar::new(utc).window("12:00-12:50").unwrap(),
    );
    let trigger = ExcludingTrigger::new(every_15, lunch, CalendarAction::NextAllowed);
    // 12:00, 12:15, 12:30 and 12:45 run once, at 12:50; then the cron goes on.
    assert_eq!(
        sequence(&trigger, &at(utc, "2026-06-01T11:40:00Z"), 4),
        ["06-01 11:45", "06-01 12:50", "06-01 13:00", "06-01 13:15"]
    );
    // Asked with an earlier `now` after the moved run, it still goes forward.
    let moved = at(utc, "2026-06-01T12:50:00Z");
    assert_eq!(
        rfc(trigger.next_fire_time(Some(&moved), &at(utc, "2026-06-01T11:00:00Z"))),
        "2026-06-01T13:00:00+00:00"
    );
}

#[test]
fn an_interval_trigger_skips_by_whole_intervals() {
    let utc = chrono_tz::UTC;
    let every_7_min = IntervalTrigger::builder(Duration::minutes(7))
        .start_date(at(utc, "2026-06-01T00:00:00Z"))
        .timezone(utc)
        .build()
        .unwrap();
    let cal = named(
        "night",
        ExclusionCalendar::new(utc).window("00:10-01:00").unwrap(),
    );
    let trigger = ExcludingTrigger::new(every_7_min, cal, CalendarAction::Skip);
    // 00:14 is excluded; the grid point at or after 01:00 is 01:03 (9 × 7 min).
    assert_eq!(
        rfc(trigger.first_allowed(&at(utc, "2026-06-01T00:14:00Z"))),
        "2026-06-01T01:03:00+00:00"
    );
}

#[test]
fn check_runs_reports_a_calendar_that_excludes_every_fire_time() {
    let utc = chrono_tz::UTC;
    let now = at(utc, "2026-03-01T00:00:00Z");
    let every_day = ExclusionCalendar::new(utc).weekdays([
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ]);
    for action in [CalendarAction::Skip, CalendarAction::NextAllowed] {
        let t = ExcludingTrigger::new(hourly(utc), named("always", every_day.clone()), action);
        let err = t.check_runs(&now).unwrap_err();
        assert_eq!(err.field(), "calendar");
        let msg = err.to_string();
        assert!(
            msg.contains("'always'") && msg.contains("excludes every fire time"),
            "{msg}"
        );
    }

    // A date trigger on a holiday: skipped, it never runs; moved, it runs the day after.
    let holiday = named(
        "holidays",
        ExclusionCalendar::new(utc).dates([day(2026, 12, 25)]),
    );
    let xmas = DateTrigger::new(at(utc, "2026-12-25T09:00:00Z"));
    let skip = ExcludingTrigger::new(xmas.clone(), holiday.clone(), CalendarAction::Skip);
    let err = skip.check_runs(&now).unwrap_err();
    assert!(err.to_string().contains("no fire time left"), "{err}");
    let moved = ExcludingTrigger::new(xmas, holiday, CalendarAction::NextAllowed);
    moved.check_runs(&now).unwrap();
    assert_eq!(
        rfc(moved.next_fire_time(None, &now)),
        "2026-12-26T00:00:00+00:00"
    );

    // Weekday mornings with a weekend calendar run; weekend mornings never do.
    let weekends = named(
        "weekends",
        ExclusionCalendar::new(utc).weekdays([Weekday::Sat, Weekday::Sun]),
    );
    let weekdays = CronTrigger::builder()
        .day_of_week("mon-fri")
        .hour(9)
        .timezone(utc)
        .build()
        .unwrap();
    ExcludingTrigger::new(weekdays, weekends.clone(), CalendarAction::Skip)
        .check_runs(&now)
        .unwrap();
    let saturdays = CronTrigger::builder()
        .day_of_week("sat,sun")
        .hour(9)
        .timezone(utc)
        .build()
        .unwrap();
    let err = ExcludingTrigger::new(saturdays, weekends, CalendarAction::Skip)
        .check_runs(&now)
        .unwrap_err();
    assert!(err.to_string().contains("within ten years"), "{err}");
}

fn full_trigger() -> ExcludingTrigger {
    let berlin = tz("Europe/Berlin");
    let cal = ExclusionCalendar::new(berlin)
        .dates([day(2026, 12, 24)])
        .weekdays([Weekday::Sun])
        .window("22:00-06:00:30")
        .unwrap()
        .ics(HOLIDAYS_ICS)
        .unwrap()
        .ics("BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20261126\nRRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=4TH;COUNT=5\nEXDATE;VALUE=DATE:20271125\nEND:VEVENT\nEND:VCALENDAR\n")
        .unwrap()
        .union(named(
            "bridge-days",
            ExclusionCalendar::new(berlin).dates([day(2026, 5, 15)]),
        ))
        .except(named(
            "open-sundays",
            ExclusionCalendar::new(tz("UTC")).dates([day(2026, 12, 6)]),
        ));
    let cron = CronTrigger::builder()
        .hour("*/3")
        .timezone(berlin)
        .build()
        .unwrap();
    ExcludingTrigger::new(cron, named("holidays", cal), CalendarAction::NextAllowed)
}

#[test]
fn the_excluding_trigger_round_trips_through_its_stored_form() {
    let trigger = full_trigger();
    let state = trigger.to_state().unwrap();
    assert_eq!(state["type"], "excluding");
    assert_eq!(state["action"], "next_allowed");
    assert_eq!(state["calendar"]["name"], "holidays");
    // The ICS text is not stored: its events are.
    assert_eq!(
        state["calendar"]["calendar"]["events"][0]["start"],
        "2024-02-29"
    );
    assert_eq!(
        state["calendar"]["calendar"]["windows"][0],
        "22:00-06:00:30"
    );
    assert_eq!(state["calendar"]["calendar"]["weekdays"][0], "sun");

    let any: AnyTrigger = serde_json::from_value(state.clone()).unwrap();
    assert_eq!(any, AnyTrigger::from(trigger.clone()));
    assert_eq!(any.kind(), "excluding");
    for decoded in [
        decode_trigger(&state).unwrap(),
        decode_trigger_text(&state.to_string()).unwrap(),
    ] {
        assert_eq!(decoded.to_state().unwrap(), state);
        assert_eq!(decoded.to_string(), trigger.to_string());
        let now = at(tz("Europe/Berlin"), "2026-12-23T10:00:00+01:00");
        assert_eq!(
            decoded.next_fire_time(None, &now),
            trigger.next_fire_time(None, &now)
        );
    }
    assert_eq!(
        trigger.to_string(),
        "excluding[cron[hour='*/3'], calendar='holidays', action='next_allowed']"
    );
}

#[test]
fn a_stored_calendar_with_bad_values_is_refused_naming_the_field() {
    let bad_weekday = json!({"type": "excluding", "trigger": {"type": "date", "run_date": "2026-01-01T00:00:00+00:00", "timezone": "UTC"},
        "calendar": {"name": "c", "calendar": {"timezone": "UTC", "weekdays": ["funday"]}}});
    let err = decode_trigger(&bad_weekday).unwrap_err();
    assert!(err.to_string().contains("funday"), "{err}");
    let bad_window = json!({"type": "excluding", "trigger": {"type": "date", "run_date": "2026-01-01T00:00:00+00:00", "timezone": "UTC"},
        "calendar": {"name": "c", "calendar": {"timezone": "UTC", "windows": ["25:00-01:00"]}}});
    let err = decode_trigger(&bad_window).unwrap_err();
    assert!(err.to_string().contains("25:00-01:00"), "{err}");
}

#[test]
fn from_args_builds_an_excluding_trigger_and_names_bad_values() {
    let utc = chrono_tz::UTC;
    let now = at(utc, "2026-06-01T00:00:00Z");
    let calendar =
        json!({"name": "weekends", "calendar": {"timezone": "UTC", "weekdays": ["sat", "sun"]}});
    let args = json!({"trigger": "cron", "args": {"hour": 9}, "calendar": calendar, "action": "next_allowed"});
    let t = AnyTrigger::from_args("excluding", &args, utc, now).unwrap();
    assert_eq!(
        t.to_string(),
        "excluding[cron[hour='9'], calendar='weekends', action='next_allowed']"
    );
    // Saturday 2026-06-06 09:00 moves to Monday midnight.
    let friday = at(utc, "2026-06-05T09:00:00Z");
    assert_eq!(
        rfc(t.next_fire_time(Some(&friday), &friday)),
        "2026-06-08T00:00:00+00:00"
    );

    let bad =
        json!({"trigger": "cron", "args": {"hour": 9}, "calendar": calendar, "action": "later"});
    let err = AnyTrigger::from_args("excluding", &bad, utc, now).unwrap_err();
    assert_eq!(err.field(), "action");
    assert!(err.to_string().contains("'later'"), "{err}");
    let err =
        AnyTrigger::from_args("excluding", &json!({"trigger": "cron"}), utc, now).unwrap_err();
    assert_eq!(err.field(), "calendar");
}

#[test]
fn calendar_action_names() {
    assert_eq!(
        "skip".parse::<CalendarAction>().unwrap(),
        CalendarAction::Skip
    );
    assert_eq!(
        "next_allowed".parse::<CalendarAction>().unwrap(),
        CalendarAction::NextAllowed
    );
    let err = "Skip".parse::<CalendarAction>().unwrap_err();
    assert!(err.to_string().contains("'Skip'"), "{err}");
    assert_eq!(CalendarAction::default(), CalendarAction::Skip);
    assert_eq!(
        serde_json::to_value(CalendarAction::NextAllowed).unwrap(),
        "next_allowed"
    );
    assert_eq!(CalendarAction::NextAllowed.to_string(), "next_allowed");
}

#[test]
fn the_calendar_reports_its_rules() {
    let berlin = tz("Europe/Berlin");
    let cal = ExclusionCalendar::new(berlin)
        .weekdays([Weekday::Sun, Weekday::Sat])
        .dates([day(2026, 12, 25), day(2026, 12, 24)])
        .window("22:00-06:00")
        .unwrap()
        .ics(HOLIDAYS_ICS)
        .unwrap()
        .union(named("bridge", ExclusionCalendar::new(berlin)));
    assert_eq!(cal.timezone(), berlin);
    assert_eq!(cal.excluded_weekdays(), [Weekday::Sat, Weekday::Sun]);
    assert_eq!(
        cal.excluded_dates().collect::<Vec<_>>(),
        [day(2026, 12, 24), day(2026, 12, 25)]
    );
    assert_eq!(cal.window_texts(), ["22:00-06:00"]);
    assert_eq!(cal.event_count(), 2);
    assert_eq!(cal.union_members()[0].name, "bridge");
    assert!(cal.except_members().is_empty());
    assert_eq!(
        cal.to_string(),
        "calendar[timezone='Europe/Berlin', weekdays='sat,sun', windows='22:00-06:00', dates=2, events=2, union='bridge']"
    );
}

#[test]
fn a_calendar_inside_a_calendar_both_apply() {
    let utc = chrono_tz::UTC;
    let weekends = named(
        "weekends",
        ExclusionCalendar::new(utc).weekdays([Weekday::Sat, Weekday::Sun]),
    );
    let holidays = named(
        "holidays",
        ExclusionCalendar::new(utc).dates([day(2026, 3, 9)]),
    );
    let inner = ExcludingTrigger::new(
        CronTrigger::builder()
            .hour(9)
            .timezone(utc)
            .build()
            .unwrap(),
        weekends,
        CalendarAction::Skip,
    );
    let outer = ExcludingTrigger::new(inner, holidays, CalendarAction::Skip);
    // Saturday 7, Sunday 8 (weekends), Monday 9 (holiday): the first run is Tuesday.
    assert_eq!(
        sequence(&outer, &at(utc, "2026-03-07T00:00:00Z"), 4),
        [
            "03-07 09:00 excluded by weekends",
            "03-08 09:00 excluded by weekends",
            "03-09 09:00 excluded by holidays",
            "03-10 09:00",
        ]
    );
    assert_eq!(
        rfc(outer.first_allowed(&at(utc, "2026-03-07T09:00:00Z"))),
        "2026-03-10T09:00:00+00:00"
    );
}

#[test]
fn a_shared_trigger_answers_first_allowed_and_check_runs() {
    let utc = chrono_tz::UTC;
    let now = at(utc, "2026-03-01T00:00:00Z");
    let saturday = at(utc, "2026-03-07T09:00:00Z");
    let weekends = named(
        "weekends",
        ExclusionCalendar::new(utc).weekdays([Weekday::Sat, Weekday::Sun]),
    );
    let daily = CronTrigger::builder()
        .hour(9)
        .timezone(utc)
        .build()
        .unwrap();
    let shared = through_store(ExcludingTrigger::new(
        daily.clone(),
        weekends.clone(),
        CalendarAction::Skip,
    ));
    assert_eq!(
        rfc(shared.first_allowed(&saturday)),
        "2026-03-09T09:00:00+00:00"
    );
    shared.check_runs(&now).unwrap();
    let weekend_only = CronTrigger::builder()
        .day_of_week("sat")
        .hour(9)
        .timezone(utc)
        .build()
        .unwrap();
    let never = AnyTrigger::from(ExcludingTrigger::new(
        weekend_only,
        weekends,
        CalendarAction::Skip,
    ))
    .into_shared();
    assert_eq!(never.first_allowed(&saturday), None);
    assert_eq!(never.check_runs(&now).unwrap_err().field(), "calendar");
    // A trigger without a calendar: every fire time runs.
    let plain = AnyTrigger::from(daily).into_shared();
    assert_eq!(plain.first_allowed(&saturday), Some(saturday));
    plain.check_runs(&now).unwrap();
    assert_eq!(plain.excluded_by(&saturday), None);
}

/// `trigger` as a job store reads it back: a shared trait object from its stored form.
fn through_store(trigger: ExcludingTrigger) -> std::sync::Arc<dyn Trigger> {
    decode_trigger(&trigger.to_state().unwrap()).unwrap()
}
