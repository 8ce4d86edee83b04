//! Round trips: triggers of every kind, arguments of every JSON type, job options.

use super::helpers::*;
use super::*;

/// The trigger cases of [`check_trigger_round_trip`]: `(kind, args)` for
/// [`AnyTrigger::from_args`], built at [`base_time`] in UTC.
pub fn trigger_cases() -> Vec<(&'static str, Value)> {
    let cron_weekdays = json!({
        "day_of_week": "mon-fri",
        "hour": "9-17/2",
        "minute": 30,
        "second": "15,45",
        "timezone": "Europe/Helsinki",
    });
    let cron_bounded = json!({
        "year": "2100-2102",
        "month": "6-8,11-12",
        "day": "3rd fri",
        "hour": 4,
        "start_date": "2100-02-01 00:00:00",
        "end_date": "2102-12-31 23:59:59",
        "jitter": 30,
    });
    let crontab = json!({"expr": "*/5 9-17 * * mon-fri", "timezone": "America/New_York"});
    let interval_bounded = json!({
        "hours": 2,
        "minutes": 30,
        "start_date": "2100-01-01 08:00:00.250000",
        "end_date": "2101-01-01",
        "timezone": "Asia/Kolkata",
    });
    let interval_jitter = json!({"weeks": 1, "days": 2, "seconds": 0.5, "jitter": 2.5});
    let date = json!({
        "run_date": "2100-03-01 12:00:00.123456",
        "timezone": "Australia/Lord_Howe",
    });
    let calendar_monthly = json!({
        "months": 1,
        "hour": 3,
        "minute": 15,
        "start_date": "2100-01-31",
        "timezone": "Europe/London",
    });
    let calendar_mixed = json!({
        "years": 1,
        "weeks": 2,
        "days": 3,
        "second": 59,
        "start_date": "2100-02-28",
        "end_date": "2110-01-01",
    });
    let and = json!({
        "triggers": [
            {"trigger": "cron", "args": {"hour": 9}},
            {"trigger": "interval", "args": {"hours": 3, "start_date": "2100-01-01"}},
        ],
        "timezone": "America/Sao_Paulo",
    });
    let or = json!({
        "triggers": [
            {"trigger": "date", "args": {"run_date": "2100-02-01 10:00"}},
            {"trigger": "crontab", "args": {"expr": "0 12 * * *"}},
            {"trigger": "and", "args": {"triggers": [
                {"trigger": "cron", "args": {"minute": "*/10"}},
                {"trigger": "calendarinterval", "args": {"days": 1, "start_date": "2100-01-01"}},
            ]}},
        ],
        "timezone": "Asia/Tokyo",
        "jitter": 1,
    });
    // An exclusion calendar with every kind of rule, stored inside the trigger.
    let excluding = json!({
        "trigger": "cron",
        "args": {"hour": "*/5", "minute": 10},
        "calendar": {"name": "maintenance", "calendar": {
            "timezone": "Europe/Berlin",
            "dates": ["2100-01-05"],
            "weekdays": ["sun"],
            "windows": ["22:00-06:00"],
            "events": [{"start": "2096-02-29", "days": 1, "yearly": {"interval": 1}}],
            "union": [{"name": "bridge", "calendar": {"timezone": "UTC", "dates": ["2100-01-07"]}}],
            "except": [{"name": "open-sunday", "calendar": {"timezone": "Europe/Berlin", "dates": ["2100-01-10"]}}],
        }},
        "action": "next_allowed",
        "timezone": "Europe/Berlin",
    });
    vec![
        ("cron", cron_weekdays),
        ("cron", cron_bounded),
        ("crontab", crontab),
        ("interval", interval_bounded),
        ("interval", interval_jitter),
        ("date", date),
        ("calendarinterval", calendar_monthly),
        ("calendarinterval", calendar_mixed),
        ("and", and),
        ("or", or),
        ("excluding", excluding),
    ]
}

/// Jobs with every trigger kind (cron, crontab, interval, date, calendarinterval, and,
/// or, excluding; with time zones, start/end dates and jitter) come back with the same trigger:
/// same `to_string()`, `to_state()`, time zone, and (without jitter) the same next
/// fire times; the run time comes back as the same instant in the same zone.
pub async fn check_trigger_round_trip(store: &dyn JobStore) {
    const CHECK: &str = "check_trigger_round_trip";
    assert_empty(store, CHECK).await;
    let now = base_time();
    let mut originals = Vec::new();
    for (i, (kind, args)) in trigger_cases().into_iter().enumerate() {
        let any = AnyTrigger::from_args(kind, &args, Tz::UTC, now)
            .unwrap_or_else(|e| panic!("{CHECK}: trigger {kind} {args}: {e}"));
        let jittered = any.jitter().is_some();
        let trigger = any.into_shared();
        // A jittered first fire time is random; use a fixed one in the trigger's zone.
        let first = if jittered {
            Some(at(3600).with_timezone(&trigger.timezone()))
        } else {
            trigger.next_fire_time(None, &now.with_timezone(&trigger.timezone()))
        };
        assert!(
            first.is_some(),
            "{CHECK}: trigger {kind} {args} never fires"
        );
        let job = sample_job(&format!("trigger-{i:02}-{kind}"), first, trigger);
        add(store, job.clone()).await;
        originals.push((job, jittered));
    }

    let listed = store.get_all_jobs().await.expect("get_all_jobs");
    assert_eq!(listed.len(), originals.len(), "{CHECK}: get_all_jobs count");
    for (original, jittered) in &originals {
        let stored = lookup(store, &original.id).await;
        let listed = listed
            .iter()
            .find(|j| j.id == original.id)
            .unwrap_or_else(|| panic!("{CHECK}: {} missing from get_all_jobs", original.id));
        for (how, job) in [("lookup_job", &stored), ("get_all_jobs", listed)] {
            let what = format!("{CHECK}: {} via {how}", original.id);
            let (a, b) = (&original.trigger, &job.trigger);
            assert_eq!(a.to_string(), b.to_string(), "{what}: trigger to_string");
            assert_eq!(a.to_state(), b.to_state(), "{what}: trigger to_state");
            assert_eq!(a.timezone(), b.timezone(), "{what}: trigger time zone");
            assert_same_time(original.next_run_time, job.next_run_time, &what);
            if !jittered {
                let mut prev = original.next_run_time;
                for step in 0..5 {
                    let Some(p) = prev else { break };
                    let expected = a.next_fire_time(Some(&p), &p);
                    let got = b.next_fire_time(Some(&p), &p);
                    assert_eq!(expected, got, "{what}: next fire time, step {step}");
                    prev = expected;
                }
            }
        }
    }
}

#[track_caller]
fn assert_same_time(expected: Option<DateTime<Tz>>, got: Option<DateTime<Tz>>, what: &str) {
    assert_eq!(expected, got, "{what}: next_run_time instant");
    assert_eq!(
        expected.map(|t| t.to_rfc3339()),
        got.map(|t| t.to_rfc3339()),
        "{what}: next_run_time zone/offset"
    );
}

/// Positional arguments of every JSON type: null, booleans, integers (0, -1,
/// `i64::MIN`, `i64::MAX`, `u64::MAX`), floats (including -0.0, the extremes and
/// values that need 17 digits), strings (empty, unicode, quotes, backslashes, control
/// characters), nested arrays and objects.
pub fn sample_args() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(false),
        json!(0),
        json!(-1),
        json!(i64::MIN),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(1.5),
        json!(-0.0),
        json!(0.1),
        json!(0.30000000000000004),
        json!(1e300),
        json!(5e-324),
        json!(f64::MAX),
        json!(f64::MIN),
        json!(""),
        json!("héllo wörld ✓ 日本語 🎉 \u{202e}rtl"),
        json!("quotes \" and 'single' and `back`, backslash \\ and \\\" escaped"),
        json!("control \n\r\t\u{0}\u{1f} chars; sql ' ; DROP TABLE jobs; --"),
        json!([]),
        json!({}),
        json!([[], [1, [2, [3, [4.5, "deep", null]]]], {"k": [true]}]),
        json!({"nested": {"a": [1, {"b": null, "c": {"d": [false, -7, "x"]}}], "e": {}}}),
    ]
}

/// Keyword arguments with every JSON type (the values of [`sample_args`]) under keys
/// that are empty, unicode, or full of quotes.
pub fn sample_kwargs() -> Map<String, Value> {
    let mut map = Map::new();
    for (i, v) in sample_args().into_iter().enumerate() {
        map.insert(format!("arg{i:02}"), v);
    }
    map.insert(String::new(), json!("empty key"));
    map.insert("ключ 🔑".into(), json!({"ü": ["ß"]}));
    map.insert("with \"quotes\" and 'apostrophes' and \\".into(), json!(42));
    map
}

/// Jobs whose args/kwargs hold every JSON type ([`sample_args`], [`sample_kwargs`])
/// come back identical, to the byte of their JSON form (so `-0.0`, `u64::MAX` and
/// integer/float distinctions survive); empty arguments come back empty; an update
/// of the arguments is stored.
pub async fn check_argument_round_trip(store: &dyn JobStore) {
    const CHECK: &str = "check_argument_round_trip";
    assert_empty(store, CHECK).await;
    let args = sample_args();
    let kwargs = sample_kwargs();
    let job = Job {
        args: Arc::new(args.clone()),
        kwargs: Arc::new(kwargs.clone()),
        ..sample_job("args", Some(at(10)), interval_trigger(10))
    };
    add(store, job.clone()).await;
    add(
        store,
        sample_job("no-args", Some(at(10)), interval_trigger(10)),
    )
    .await;

    let assert_args = |got: &Job, args: &Vec<Value>, kwargs: &Map<String, Value>, what: &str| {
        assert_eq!(*got.args, *args, "{CHECK}: {what}: args");
        assert_eq!(*got.kwargs, *kwargs, "{CHECK}: {what}: kwargs");
        assert_eq!(
            serde_json::to_string(&*got.args).unwrap(),
            serde_json::to_string(args).unwrap(),
            "{CHECK}: {what}: args JSON"
        );
        assert_eq!(
            serde_json::to_string(&*got.kwargs).unwrap(),
            serde_json::to_string(kwargs).unwrap(),
            "{CHECK}: {what}: kwargs JSON"
        );
    };
    assert_args(&lookup(store, "args").await, &args, &kwargs, "lookup_job");
    let listed = store.get_all_jobs().await.expect("get_all_jobs");
    let listed = listed.iter().find(|j| &*j.id == "args").expect("listed");
    assert_args(listed, &args, &kwargs, "get_all_jobs");
    let empty = lookup(store, "no-args").await;
    assert_args(&empty, &Vec::new(), &Map::new(), "no arguments");

    let claimed = claim(store, "s1", utc(10), 10).await;
    let claimed = claimed.iter().find(|j| &*j.id == "args").expect("claimed");
    assert_args(claimed, &args, &kwargs, "acquire_due_jobs");

    let new_args = vec![json!("only"), json!({"one": 1})];
    let mut new_kwargs = Map::new();
    new_kwargs.insert("k".into(), json!([null]));
    let updated = Job {
        args: Arc::new(new_args.clone()),
        kwargs: Arc::new(new_kwargs.clone()),
        ..job
    };
    store.update_job(updated).await.expect("update_job");
    assert_args(
        &lookup(store, "args").await,
        &new_args,
        &new_kwargs,
        "after update_job",
    );
}

/// Name (unicode), executor, misfire grace time (fractional and `None`), coalesce,
/// max instances, recover and the run time's zone and microseconds come back unchanged; a
/// paused job stays paused.
pub async fn check_job_options_round_trip(store: &dyn JobStore) {
    const CHECK: &str = "check_job_options_round_trip";
    assert_empty(store, CHECK).await;
    let new_york: Tz = "America/New_York".parse().unwrap();
    let precise = (at(90) + chrono::Duration::microseconds(654_321)).with_timezone(&new_york);
    let first = Job {
        name: "Ünïcode “name” 🎉 'with' \"quotes\"".into(),
        executor: "processpool".into(),
        misfire_grace_time: Some(Duration::from_millis(2500)),
        coalesce: true,
        max_instances: 7,
        recover: true,
        ..sample_job("options-1", Some(precise), interval_trigger(30))
    };
    let second = Job {
        name: "".into(),
        executor: "default".into(),
        misfire_grace_time: None,
        coalesce: false,
        max_instances: 1,
        ..sample_job("options-2", None, interval_trigger(30))
    };
    for job in [&first, &second] {
        add(store, job.clone()).await;
        let got = lookup(store, &job.id).await;
        let what = format!("{CHECK}: {}", job.id);
        assert_eq!(got.id, job.id, "{what}: id");
        assert_eq!(got.name, job.name, "{what}: name");
        assert_eq!(got.task.name(), job.task.name(), "{what}: task");
        assert_eq!(got.executor, job.executor, "{what}: executor");
        assert_eq!(
            got.misfire_grace_time, job.misfire_grace_time,
            "{what}: misfire_grace_time"
        );
        assert_eq!(got.coalesce, job.coalesce, "{what}: coalesce");
        assert_eq!(got.recover, job.recover, "{what}: recover");
        assert_eq!(got.policy, job.policy, "{what}: policy");
        assert_eq!(
            got.paused_reason, job.paused_reason,
            "{what}: paused_reason"
        );
        assert_eq!(
            got.max_instances, job.max_instances,
            "{what}: max_instances"
        );
        assert_same_time(job.next_run_time, got.next_run_time, &what);
    }
}
