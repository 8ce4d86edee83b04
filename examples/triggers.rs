//! The trigger examples of the APScheduler documents, in Rust, with their next fire times.
//!
//! Run: `cargo run -p apscheduler --example triggers`

use apscheduler::core::chrono::{Duration, NaiveDate};
use apscheduler::core::time::{parse_datetime, to_rfc3339};
use apscheduler::prelude::*;
use serde_json::json;

fn show(label: &str, trigger: &dyn Trigger, now: &apscheduler::core::chrono::DateTime<Tz>) {
    let mut fires = Vec::new();
    let mut previous = None;
    for _ in 0..3 {
        let next = match &previous {
            None => trigger.next_fire_time(None, now),
            Some(p) => trigger.next_fire_time(Some(p), p),
        };
        let Some(t) = next else { break };
        fires.push(to_rfc3339(&t));
        previous = Some(t);
    }
    println!("{label}\n  {trigger}\n  {}", fires.join(", "));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tz: Tz = "UTC".parse()?;
    let now = parse_datetime("now", "2024-01-01 00:00:00", tz)?;

    // add_job(my_job, 'date', run_date=date(2024, 1, 15), args=['text'])
    show("date", &DateTrigger::parse("2024-01-15", tz)?, &now);
    // run_date='2009-11-06 16:30:05'
    show(
        "date string",
        &DateTrigger::parse("2009-11-06 16:30:05", tz)?,
        &now,
    );

    // add_job(job_function, 'interval', hours=2)
    let every_two_hours = IntervalTrigger::builder(Duration::hours(2))
        .now(now)
        .build()?;
    show("interval", &every_two_hours, &now);
    // hours=2, start_date='2024-01-01 00:00:00', end_date='2024-01-02 00:00:00'
    let bounded = AnyTrigger::from_args(
        "interval",
        &json!({"hours": 2, "start_date": "2024-01-01 00:00:00", "end_date": "2024-01-02 00:00:00"}),
        tz,
        now,
    )?;
    show("interval with start/end", &bounded, &now);
    // hours=1, jitter=120
    let jittered = IntervalTrigger::builder(Duration::hours(1))
        .start_date(now)
        .jitter(120.0)
        .build()?;
    show("interval with jitter", &jittered, &now);

    // 'cron', hour=19, minute=36 (the quick start)
    show(
        "cron 19:36",
        &CronTrigger::builder().hour(19).minute(36).build()?,
        &now,
    );
    // 'cron', month='6-8,11-12', day='3rd fri', hour='0-3'
    let third_friday = CronTrigger::builder()
        .month("6-8,11-12")
        .day("3rd fri")
        .hour("0-3")
        .build()?;
    show("cron 3rd friday", &third_friday, &now);
    // 'cron', day_of_week='mon-fri', hour=5, minute=30, end_date='2014-05-30'
    let weekday_mornings = CronTrigger::builder()
        .day_of_week("mon-fri")
        .hour(5)
        .minute(30)
        .end_date(parse_datetime("end_date", "2014-05-30", tz)?)
        .build()?;
    show(
        "cron until 2014",
        &weekday_mornings,
        &parse_datetime("now", "2014-05-27", tz)?,
    );
    // 'cron', day='last sun'
    show(
        "cron last sunday",
        &CronTrigger::builder().day("last sun").build()?,
        &now,
    );
    // CronTrigger.from_crontab('0 0 1-15 may-aug *')
    show(
        "crontab",
        &CronTrigger::from_crontab("0 0 1-15 may-aug *", tz)?,
        &now,
    );
    // 'cron', hour='*', jitter=120
    show(
        "cron with jitter",
        &CronTrigger::builder().hour("*").jitter(120.0).build()?,
        &now,
    );
    // 'cron', hour=3, minute=30 in a zone with DST: fires once on change-over nights
    let helsinki: Tz = "Europe/Helsinki".parse()?;
    let daily = CronTrigger::builder()
        .hour(3)
        .minute(30)
        .timezone(helsinki)
        .build()?;
    show(
        "cron 03:30 over fall-back",
        &daily,
        &parse_datetime("now", "2024-10-26 12:00:00", helsinki)?,
    );

    // APScheduler 4's calendar interval: monthly on the 31st skips short months.
    let start = NaiveDate::from_ymd_opt(2024, 1, 31).ok_or("bad date")?;
    let monthly = CalendarIntervalTrigger::builder(start, tz)
        .months(1)
        .time(10, 0, 0)
        .build()?;
    show("calendarinterval", &monthly, &now);

    // Friday the 13th: AND of two crons.
    let fri = CronTrigger::builder().day_of_week("fri").hour(0).build()?;
    let thirteenth = CronTrigger::builder().day(13).hour(0).build()?;
    show(
        "and",
        &AndTrigger::new(vec![fri.into(), thirteenth.into()])?,
        &now,
    );
    Ok(())
}
