//! Exclusion calendars from ICS text: the supported subset, leap days, multi-day events
//! and errors that name the line.

mod exclusion_support;

use apscheduler_triggers::{
    CalendarAction, CalendarError, CronTrigger, ExcludingTrigger, ExclusionCalendar,
};
use exclusion_support::*;

#[test]
fn an_ics_yearly_event_on_feb_29_excludes_leap_years_only() {
    let utc = chrono_tz::UTC;
    let cal = ExclusionCalendar::new(utc).ics(HOLIDAYS_ICS).unwrap();
    let noon = CronTrigger::builder()
        .hour(12)
        .timezone(utc)
        .build()
        .unwrap();
    let trigger = ExcludingTrigger::new(noon, named("holidays", cal), CalendarAction::Skip);
    // Every noon from 2027-02-20 to 2028-03-10: only 2028-02-29 is excluded.
    let excluded: Vec<String> = sequence(&trigger, &at(utc, "2027-02-20T00:00:00Z"), 385)
        .into_iter()
        .filter(|s| s.contains("excluded"))
        .collect();
    assert_eq!(excluded, ["02-29 12:00 excluded by holidays"]);
    let cal = &trigger.calendar().calendar;
    for (t, excluded) in [
        ("2024-02-29T12:00:00Z", true),
        ("2028-02-28T12:00:00Z", false),
        ("2028-02-29T00:00:00Z", true),
        ("2028-03-01T00:00:00Z", false),
        ("2032-02-29T12:00:00Z", true),
        // 2100 is not a leap year: no Feb 29, and neither neighbour is excluded.
        ("2100-02-28T12:00:00Z", false),
        ("2100-03-01T12:00:00Z", false),
        // Before the first occurrence.
        ("2020-02-29T12:00:00Z", false),
    ] {
        assert_eq!(cal.excludes(&at(utc, t)), excluded, "{t}");
    }
}

#[test]
fn an_ics_multi_day_event_covers_every_day_up_to_its_exclusive_end() {
    let utc = chrono_tz::UTC;
    let cal = ExclusionCalendar::new(utc).ics(HOLIDAYS_ICS).unwrap();
    assert!(!cal.excludes(&at(utc, "2026-12-22T23:59:59Z")));
    assert!(cal.excludes(&at(utc, "2026-12-23T00:00:00Z")));
    assert!(cal.excludes(&at(utc, "2027-01-01T23:59:59Z")));
    assert!(!cal.excludes(&at(utc, "2027-01-02T00:00:00Z")));
    // It does not recur.
    assert!(!cal.excludes(&at(utc, "2027-12-24T12:00:00Z")));
    assert_eq!(
        rfc(cal.next_allowed(&at(utc, "2026-12-24T09:00:00Z"))),
        "2027-01-02T00:00:00+00:00"
    );
}

#[test]
fn ics_count_until_interval_and_exdate_shape_a_yearly_rule() {
    let utc = chrono_tz::UTC;
    let ics = |rule: &str, extra: &str| {
        format!(
            "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20240229\n{rule}\n{extra}END:VEVENT\nEND:VCALENDAR\n"
        )
    };
    let leap = |text: &str, year: i32| {
        ExclusionCalendar::new(utc)
            .ics(text)
            .unwrap()
            .excludes(&at(utc, &format!("{year}-02-29T12:00:00Z")))
    };
    // COUNT counts only years that have the day: 2024 and 2028, not 2032.
    let count = ics("RRULE:FREQ=YEARLY;COUNT=2", "");
    assert!(leap(&count, 2024) && leap(&count, 2028) && !leap(&count, 2032));
    // UNTIL (a date-time: its day counts) includes an occurrence on that day.
    let until = ics("RRULE:FREQ=YEARLY;UNTIL=20320229T235959Z", "");
    assert!(leap(&until, 2032) && !leap(&until, 2036));
    // INTERVAL=4 from 2024: 2028 is the fourth year, so it recurs every leap year here;
    // INTERVAL=8 skips 2028.
    let every8 = ics("RRULE:FREQ=YEARLY;INTERVAL=8", "");
    assert!(leap(&every8, 2024) && !leap(&every8, 2028) && leap(&every8, 2032));
    // EXDATE takes one occurrence out.
    let ex = ics("RRULE:FREQ=YEARLY", "EXDATE;VALUE=DATE:20280229\n");
    assert!(leap(&ex, 2024) && !leap(&ex, 2028) && leap(&ex, 2032));
    // BYMONTH/BYMONTHDAY naming the start's own day are accepted.
    let by = ics("RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "");
    assert!(leap(&by, 2028));
    // DURATION instead of DTEND.
    let two_days = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20261224\nDURATION:P2D\nEND:VEVENT\nEND:VCALENDAR\n";
    let cal = ExclusionCalendar::new(utc).ics(two_days).unwrap();
    assert!(cal.excludes(&at(utc, "2026-12-25T12:00:00Z")));
    assert!(!cal.excludes(&at(utc, "2026-12-26T00:00:00Z")));
}

fn ics_error(text: &str) -> CalendarError {
    ExclusionCalendar::new(chrono_tz::UTC)
        .ics(text)
        .expect_err("the ICS text should be refused")
}

#[test]
fn ics_errors_name_the_line_of_the_text_as_given() {
    // Line 6 (after a summary folded over lines 4 and 5): a timed event.
    let timed = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:1\nSUMMARY:a summary that is\n  folded\nDTSTART:20261225T100000Z\nEND:VEVENT\nEND:VCALENDAR\n";
    let err = ics_error(timed);
    assert_eq!(err.line(), 6, "{err}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("line 6: DTSTART '20261225T100000Z'"),
        "{msg}"
    );
    assert!(msg.contains("timed events are not supported"), "{msg}");

    let monthly = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20260101\r\nRRULE:FREQ=MONTHLY\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let err = ics_error(monthly);
    assert_eq!(err.line(), 4, "{err}");
    assert!(
        err.to_string().contains("FREQ=MONTHLY is not supported"),
        "{err}"
    );

    // Weekday lists (every Monday and Tuesday of a month) are not all-day holidays.
    let byday = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20261102\nRRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=MO,TU\nEND:VEVENT\nEND:VCALENDAR\n";
    let err = ics_error(byday);
    assert_eq!(err.line(), 4, "{err}");
    assert!(
        err.to_string()
            .contains("BYDAY=MO,TU: expected one weekday"),
        "{err}"
    );
    let weekno = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20261102\nRRULE:FREQ=YEARLY;BYWEEKNO=45\nEND:VEVENT\nEND:VCALENDAR\n";
    assert!(ics_error(weekno)
        .to_string()
        .contains("BYWEEKNO=45 is not supported"));

    let no_start =
        "BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\nSUMMARY:x\nEND:VEVENT\nEND:VCALENDAR\n";
    let err = ics_error(no_start);
    assert_eq!(err.line(), 3, "{err}");
    assert!(err.to_string().contains("without DTSTART"), "{err}");

    let backwards = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20260105\nDTEND;VALUE=DATE:20260101\nEND:VEVENT\nEND:VCALENDAR\n";
    assert_eq!(ics_error(backwards).line(), 4);

    let both = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20260105\nDTEND;VALUE=DATE:20260106\nDURATION:P1D\nEND:VEVENT\nEND:VCALENDAR\n";
    assert_eq!(ics_error(both).line(), 5);

    let rdate = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20260105\nRDATE;VALUE=DATE:20260201\nEND:VEVENT\nEND:VCALENDAR\n";
    assert_eq!(ics_error(rdate).line(), 4);

    let bad_date =
        "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20261332\nEND:VEVENT\nEND:VCALENDAR\n";
    let err = ics_error(bad_date);
    assert_eq!(err.line(), 3, "{err}");
    assert!(err.to_string().contains("'20261332'"), "{err}");
}

#[test]
fn ics_syntax_errors_name_a_line() {
    let err = ics_error("this is not a calendar\n");
    assert!(matches!(err, CalendarError::Syntax { .. }), "{err:?}");
    assert_eq!(err.line(), 1, "{err}");
    // A line that is not NAME:VALUE inside an event, after a folded line.
    let bad_line = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:folded\r\n  here\r\nDTSTART;VALUE=DATE:20260105\r\nX Y Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let err = ics_error(bad_line);
    assert_eq!(err.line(), 6, "{err}");
    assert!(err.to_string().contains("'X Y Z'"), "{err}");
    assert_eq!(ics_error("").line(), 1);
    // An event that is never closed: the parser stops at the END that does not match.
    let unclosed = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20260105\nEND:VCALENDAR\n";
    let err = ics_error(unclosed);
    assert!(matches!(err, CalendarError::Syntax { .. }), "{err:?}");
    assert_eq!(err.line(), 4, "{err}");
    // It converts to the crate's trigger error, naming the line.
    let trigger_err: apscheduler_core::TriggerError = err.clone().into();
    assert_eq!(trigger_err.field(), "ics");
    assert!(trigger_err
        .to_string()
        .contains(&format!("line {}", err.line())));
}

#[test]
fn ics_yearly_nth_weekday_rules_follow_the_weekday() {
    let utc = chrono_tz::UTC;
    // US Thanksgiving (4th Thursday of November) and Memorial Day (last Monday of May).
    let text = "BEGIN:VCALENDAR\r
BEGIN:VEVENT\r
DTSTART;VALUE=DATE:20261126\r
RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=4TH\r
SUMMARY:Thanksgiving\r
END:VEVENT\r
BEGIN:VEVENT\r
DTSTART;VALUE=DATE:20260525\r
RRULE:FREQ=YEARLY;BYMONTH=5;BYDAY=-1MO;COUNT=2\r
SUMMARY:Memorial Day\r
END:VEVENT\r
END:VCALENDAR\r
";
    let cal = ExclusionCalendar::new(utc).ics(text).unwrap();
    for (t, excluded) in [
        ("2026-11-26T12:00:00Z", true),
        ("2027-11-25T12:00:00Z", true),
        ("2027-11-26T12:00:00Z", false),
        ("2030-11-28T12:00:00Z", true),
        ("2025-11-27T12:00:00Z", false), // before the start
        ("2026-05-25T12:00:00Z", true),
        ("2027-05-31T12:00:00Z", true),
        ("2028-05-29T12:00:00Z", false), // COUNT=2 ended in 2027
    ] {
        assert_eq!(cal.excludes(&at(utc, t)), excluded, "{t}");
    }
    // A start that is not the rule's own day is refused, naming the line.
    let off = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20261127\nRRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=4TH\nEND:VEVENT\nEND:VCALENDAR\n";
    let err = ics_error(off);
    assert_eq!(err.line(), 4, "{err}");
    assert!(err.to_string().contains("not an occurrence"), "{err}");
}

#[test]
fn a_byte_order_mark_is_skipped_and_cancelled_events_exclude_nothing() {
    let utc = chrono_tz::UTC;
    let text = "\u{feff}BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20261224\nTRANSP:TRANSPARENT\nEND:VEVENT\nBEGIN:VEVENT\nSTATUS:CANCELLED\nDTSTART;VALUE=DATE:20261231\nEND:VEVENT\nEND:VCALENDAR\n";
    let cal = ExclusionCalendar::new(utc).ics(text).unwrap();
    assert_eq!(cal.event_count(), 1);
    assert!(cal.excludes(&at(utc, "2026-12-24T12:00:00Z")));
    assert!(!cal.excludes(&at(utc, "2026-12-31T12:00:00Z")));
}

/// The shape of a public-holiday calendar exported by a calendar service: calendar
/// properties, a VTIMEZONE (whose own RRULE is not an event), an escaped and folded
/// description, status and transparency.
const EXPORTED: &str = "BEGIN:VCALENDAR\r
PRODID:-//Example Calendar//EN\r
VERSION:2.0\r
CALSCALE:GREGORIAN\r
METHOD:PUBLISH\r
X-WR-CALNAME:Holidays in Germany\r
X-WR-TIMEZONE:UTC\r
BEGIN:VTIMEZONE\r
TZID:Europe/Berlin\r
BEGIN:DAYLIGHT\r
TZOFFSETFROM:+0100\r
TZOFFSETTO:+0200\r
TZNAME:CEST\r
DTSTART:19700329T020000\r
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r
END:DAYLIGHT\r
END:VTIMEZONE\r
BEGIN:VEVENT\r
DTSTART;VALUE=DATE:20261003\r
DTEND;VALUE=DATE:20261004\r
DTSTAMP:20261101T120000Z\r
UID:20261003_de@example.com\r
CLASS:PUBLIC\r
DESCRIPTION:Public holiday\\, nationwide. To hide observances\\, go to the\r
  calendar settings\r
STATUS:CONFIRMED\r
SUMMARY:Day of German Unity\r
TRANSP:TRANSPARENT\r
END:VEVENT\r
END:VCALENDAR\r
";

#[test]
fn an_exported_holiday_calendar_reads() {
    let berlin = tz("Europe/Berlin");
    let cal = ExclusionCalendar::new(berlin).ics(EXPORTED).unwrap();
    assert_eq!(cal.event_count(), 1);
    assert!(cal.excludes(&at(berlin, "2026-10-03T00:00:00+02:00")));
    assert!(!cal.excludes(&at(berlin, "2026-10-02T23:59:59+02:00")));
    assert!(!cal.excludes(&at(berlin, "2026-10-04T00:00:00+02:00")));
}
