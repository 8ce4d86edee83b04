//! `ExclusionCalendar::next_allowed` against a minute-by-minute scan, around DST changes
//! (including Lord Howe's half-hour one), with random weekdays, dates, windows and an
//! `except` member in another zone. The seed is fixed: the run is the same every time.

use apscheduler_triggers::{ExclusionCalendar, NamedCalendar};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

const ZONES: [&str; 4] = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "UTC",
];

/// For each zone, the days (UTC) before its 2026 DST changes: a search started then
/// crosses the change.
const STARTS: [[(i32, u32, u32); 2]; 4] = [
    [(2026, 3, 28), (2026, 10, 24)],
    [(2026, 3, 7), (2026, 10, 31)],
    [(2026, 4, 4), (2026, 10, 3)],
    [(2026, 6, 1), (2026, 12, 31)],
];

/// How far the scan looks; a longer answer is only checked to be past it.
const SCAN_MINUTES: i64 = 8 * 24 * 60;

#[derive(Debug, Clone)]
struct Model {
    zone: usize,
    weekdays: Vec<u8>,
    dates: Vec<u32>,
    windows: Vec<(u32, u32)>,
    except: Option<(usize, u32)>,
    start: usize,
    offset_minutes: i64,
}

fn model() -> impl Strategy<Value = Model> {
    (
        0..ZONES.len(),
        proptest::collection::vec(0u8..7, 0..4),
        proptest::collection::vec(0u32..6, 0..4),
        proptest::collection::vec((0u32..48, 0u32..48), 0..3),
        proptest::option::of((0..ZONES.len(), 0u32..6)),
        0usize..2,
        0i64..(2 * 24 * 60),
    )
        .prop_map(
            |(zone, weekdays, dates, windows, except, start, offset_minutes)| Model {
                zone,
                weekdays,
                dates,
                windows: windows.into_iter().filter(|(a, b)| a != b).collect(),
                except,
                start,
                offset_minutes,
            },
        )
}

fn zone(i: usize) -> Tz {
    ZONES[i].parse().unwrap()
}

impl Model {
    fn base_day(&self) -> NaiveDate {
        let (y, m, d) = STARTS[self.zone][self.start];
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn calendar(&self) -> ExclusionCalendar {
        let day = |n: u32| self.base_day() + Duration::days(i64::from(n));
        let half_hour = |n: u32| format!("{:02}:{:02}", n / 2, (n % 2) * 30);
        let mut cal = ExclusionCalendar::new(zone(self.zone))
            .weekdays(self.weekdays.iter().map(|&w| Weekday::try_from(w).unwrap()))
            .dates(self.dates.iter().map(|&n| day(n)));
        for (a, b) in &self.windows {
            cal = cal
                .window(&format!("{}-{}", half_hour(*a), half_hour(*b)))
                .unwrap();
        }
        if let Some((z, n)) = self.except {
            cal = cal.except(NamedCalendar::new(
                "open",
                ExclusionCalendar::new(zone(z)).dates([day(n)]),
            ));
        }
        cal
    }

    fn start(&self) -> DateTime<Tz> {
        let base = Utc.from_utc_datetime(&self.base_day().and_hms_opt(0, 0, 0).unwrap());
        (base + Duration::minutes(self.offset_minutes)).with_timezone(&zone(self.zone))
    }
}

proptest! {
    #![proptest_config(Config {
        cases: 512,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(20_260_329),
        ..Config::default()
    })]

    /// Every rule edge and DST change falls on a whole minute here, so the first allowed
    /// instant is the first allowed minute a scan finds.
    #[test]
    fn next_allowed_is_the_first_allowed_minute(m in model()) {
        let cal = m.calendar();
        let t = m.start();
        let expected = (0..SCAN_MINUTES)
            .map(|k| t + Duration::minutes(k))
            .find(|c| !cal.excludes(c));
        let got = cal.next_allowed(&t);
        match expected {
            Some(e) => prop_assert_eq!(got, Some(e), "calendar {}", cal),
            None => prop_assert!(
                got.is_none_or(|g| g >= t + Duration::minutes(SCAN_MINUTES)),
                "calendar {}: {:?} inside the scanned range, which is all excluded",
                cal,
                got
            ),
        }
        if let Some(g) = got {
            prop_assert_eq!(g.timezone(), t.timezone());
        }
    }
}
