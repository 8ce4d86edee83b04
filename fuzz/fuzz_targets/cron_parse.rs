//! Fuzzes the cron field parser (through `CronTrigger::builder`) and crontab text
//! (`CronTrigger::from_crontab`): no input may panic, hang, or yield a trigger whose
//! fire times go backwards or that does not survive a serde round trip.
//!
//! Input layout: byte 0 picks the timezone, byte 1 is a bit mask of the given cron fields
//! (bit 0 = year .. bit 7 = second), bytes 2..6 are the "now" instant (seconds since
//! 1970, little endian); the rest is text, split on `|` into the given fields in order.
//! The whole text, and its `|`-separated parts joined by spaces, are also read as crontab.

#![no_main]

use apscheduler_triggers::{CronTrigger, Trigger};
use chrono::{DateTime, TimeZone};
use chrono_tz::Tz;
use libfuzzer_sys::fuzz_target;

const FIELDS: [&str; 8] = [
    "year",
    "month",
    "day",
    "week",
    "day_of_week",
    "hour",
    "minute",
    "second",
];

const CRONTAB_FIELDS: [&str; 6] = ["crontab", "minute", "hour", "day", "month", "day_of_week"];

/// Fixed-offset zones and zones with DST gaps and overlaps (Lord Howe: 30 minutes).
const ZONES: [&str; 8] = [
    "UTC",
    "Etc/GMT+5",
    "Asia/Kolkata",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/Santiago",
];

/// A few fire times in a chain: each strictly after the previous one, the first at or
/// after `now`, all in the trigger's zone; and the trigger survives serde unchanged.
fn exercise(trigger: &CronTrigger, tz: Tz, now: DateTime<Tz>) {
    let json = serde_json::to_value(trigger).expect("serialize");
    let back: CronTrigger = serde_json::from_value(json.clone())
        .unwrap_or_else(|e| panic!("{trigger}: {json} does not deserialize: {e}"));
    assert_eq!(&back, trigger, "serde round trip changed {trigger}");
    assert_eq!(back.to_string(), trigger.to_string());

    let mut prev: Option<DateTime<Tz>> = None;
    for _ in 0..4 {
        let next = trigger.next_fire_time(prev.as_ref(), prev.as_ref().unwrap_or(&now));
        let Some(next) = next else { break };
        assert_eq!(next.timezone(), tz);
        match prev {
            Some(p) => assert!(next > p, "{trigger} in {tz}: {next} after {p}"),
            None => assert!(next >= now, "{trigger} in {tz}: {next} before now {now}"),
        }
        prev = Some(next);
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let tz: Tz = ZONES[usize::from(data[0]) % ZONES.len()]
        .parse()
        .expect("zone");
    let mask = data[1];
    let secs = i64::from(u32::from_le_bytes([data[2], data[3], data[4], data[5]]));
    let Some(now) = tz.timestamp_opt(secs, 0).single() else {
        return;
    };
    let text = String::from_utf8_lossy(&data[6..]);

    // Keyword-argument cron through the builder.
    let mut parts = text.split('|');
    let mut builder = CronTrigger::builder().timezone(tz);
    for (i, name) in FIELDS.iter().enumerate() {
        if mask & (1 << i) != 0 {
            let part = parts.next().unwrap_or("");
            builder = builder.field(name, part).expect("known field name");
        }
    }
    match builder.build() {
        Ok(trigger) => exercise(&trigger, tz, now),
        Err(e) => assert!(FIELDS.contains(&e.field()), "error names no field: {e}"),
    }

    // Crontab text, as given and with `|` as the field separator.
    for expr in [text.to_string(), text.replace('|', " ")] {
        match CronTrigger::from_crontab(&expr, tz) {
            Ok(trigger) => exercise(&trigger, tz, now),
            Err(e) => assert!(
                CRONTAB_FIELDS.contains(&e.field()),
                "error names no field: {e}"
            ),
        }
    }
});
