//! Property tests of the cron, crontab and interval triggers against an independent model.
//!
//! The model below re-implements the field semantics from the documentation (APScheduler's
//! `CronTrigger` fields and Vixie crontab rules) without calling the library's parser or
//! matcher. Random valid expressions are rendered to text, built through the public API,
//! and every fire time is checked against the model and against a brute-force scan.
//! All zones used have a fixed UTC offset over 2000..2040, so wall-clock arithmetic equals
//! instant arithmetic and the DST policy does not come into play.

use std::time::{Duration as StdDuration, Instant};

use apscheduler_triggers::{AnyTrigger, CronTrigger, IntervalTrigger, Trigger, TriggerError};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike};
use chrono_tz::Tz;
use proptest::prelude::*;
use serde_json::json;

// ---------------------------------------------------------------------------------------
// The independent model of cron fields.
// ---------------------------------------------------------------------------------------

const FIELD_NAMES: [&str; 8] = [
    "year",
    "month",
    "day",
    "week",
    "day_of_week",
    "hour",
    "minute",
    "second",
];
const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Zones with one UTC offset over 2000..2040 (Kolkata and Kathmandu: non-whole hours).
const FIXED_ZONES: [&str; 8] = [
    "UTC",
    "Etc/GMT+5",
    "Etc/GMT-3",
    "Etc/GMT+12",
    "Etc/GMT-14",
    "Etc/GMT+1",
    "Asia/Kolkata",
    "Asia/Kathmandu",
];

/// Fires checked per chain.
const CHAIN: usize = 20;
/// Length of the brute-force window after `now` and after every fire.
const SCAN_DAYS: i64 = 1500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Year,
    Month,
    Day,
    Week,
    /// Keyword-argument numbering: 0 = Monday .. 6 = Sunday.
    Dow,
    /// Crontab numbering: 0 and 7 = Sunday, 1 = Monday.
    CronDow,
    Hour,
    Minute,
    Second,
}

impl Kind {
    fn bounds(self) -> (u32, u32) {
        match self {
            Kind::Year => (1970, 9999),
            Kind::Month => (1, 12),
            Kind::Day => (1, 31),
            Kind::Week => (1, 53),
            Kind::Dow => (0, 6),
            Kind::CronDow => (0, 7),
            Kind::Hour => (0, 23),
            Kind::Minute | Kind::Second => (0, 59),
        }
    }

    /// The values the generator draws plain values from (years near the test instants).
    fn gen_bounds(self) -> (u32, u32) {
        match self {
            Kind::Year => (1998, 2045),
            k => k.bounds(),
        }
    }

    /// The largest step the generator uses for `*/c` and `a/c`.
    fn max_step(self) -> u32 {
        match self {
            Kind::Year => 40,
            k => k.bounds().1 - k.bounds().0,
        }
    }
}

/// One comma-separated piece of a field expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    Star,
    StarStep(u32),
    Value(u32),
    Range(u32, u32),
    RangeStep(u32, u32, u32),
    /// `a/c`: from `a` to the field's maximum by `c`.
    ValueStep(u32, u32),
    /// Day field: `last`.
    LastDay,
    /// Day field: `xth y` (n = 1..=5, weekday 0 = Monday).
    Nth(u32, u32),
    /// Day field: `last y`.
    LastWeekday(u32),
}

impl Piece {
    /// Whether the numeric value `v` (within the field's bounds) is selected.
    fn contains(self, kind: Kind, v: u32) -> bool {
        let (min, max) = kind.bounds();
        debug_assert!((min..=max).contains(&v));
        match self {
            Piece::Star => true,
            Piece::StarStep(c) => (v - min).is_multiple_of(c),
            Piece::Value(a) => v == a,
            Piece::Range(a, b) => a <= v && v <= b,
            Piece::RangeStep(a, b, c) => a <= v && v <= b && (v - a).is_multiple_of(c),
            Piece::ValueStep(a, c) => a <= v && v <= max && (v - a).is_multiple_of(c),
            Piece::LastDay | Piece::Nth(..) | Piece::LastWeekday(_) => false,
        }
    }

    /// Whether a day-field piece selects `date`.
    fn contains_day(self, date: NaiveDate) -> bool {
        let day = date.day();
        let last = days_in_month(date);
        let weekday = date.weekday().num_days_from_monday();
        match self {
            Piece::LastDay => day == last,
            Piece::Nth(n, w) => weekday == w && (day - 1) / 7 + 1 == n,
            Piece::LastWeekday(w) => weekday == w && day + 7 > last,
            p => p.contains(Kind::Day, day),
        }
    }
}

fn days_in_month(date: NaiveDate) -> u32 {
    let (y, m) = (date.year(), date.month());
    let next = if m == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(y, m + 1, 1)
    };
    next.and_then(|d| d.pred_opt()).map_or(28, |d| d.day())
}

/// How a field's pieces are written.
#[derive(Debug, Clone, Copy)]
struct Style {
    /// 0: numbers only, 1: names where the field has them, 2: names for even values.
    names: u8,
    /// 0: lower case, 1: upper case, 2: capitalized words.
    case: u8,
    /// 0: `,`, 1: `, `, 2: ` , ` between pieces (crontab always uses `,`).
    sep: u8,
}

fn render_value(kind: Kind, v: u32, closes_range: bool, style: Style) -> String {
    let named = match style.names {
        0 => false,
        1 => true,
        _ => v.is_multiple_of(2),
    };
    if named {
        match kind {
            Kind::Month => return MONTHS[v as usize - 1].to_owned(),
            Kind::Dow => return WEEKDAYS[v as usize].to_owned(),
            // `sun` is 0, or 7 when it closes a range that starts after `sun`.
            Kind::CronDow => match (v, closes_range) {
                (0, false) | (7, true) => return "sun".to_owned(),
                (1..=6, _) => return WEEKDAYS[v as usize - 1].to_owned(),
                _ => {}
            },
            _ => {}
        }
    }
    v.to_string()
}

fn render_piece(kind: Kind, piece: Piece, style: Style) -> String {
    let val = |v, closes| render_value(kind, v, closes, style);
    match piece {
        Piece::Star => "*".to_owned(),
        Piece::StarStep(c) => format!("*/{c}"),
        Piece::Value(a) => val(a, false),
        // `sun` closes a range as 7, except after `sun` (`sun-sun` is one day).
        Piece::Range(a, b) => format!("{}-{}", val(a, false), val(b, a != 0)),
        // Not `sun` before a step: cron reads `tue-sun/2` as `2-0/2`, an empty range, and
        // the library refuses it (crontab forms are checked in tests/cron_forms.rs).
        Piece::RangeStep(a, b, c) => format!("{}-{}/{c}", val(a, false), val(b, false)),
        Piece::ValueStep(a, c) => format!("{}/{c}", val(a, false)),
        Piece::LastDay => "last".to_owned(),
        Piece::Nth(n, w) => {
            let suffix = ["st", "nd", "rd", "th", "th"][n as usize - 1];
            format!("{n}{suffix} {}", WEEKDAYS[w as usize])
        }
        Piece::LastWeekday(w) => format!("last {}", WEEKDAYS[w as usize]),
    }
}

fn apply_case(text: &str, case: u8) -> String {
    match case {
        0 => text.to_owned(),
        1 => text.to_ascii_uppercase(),
        _ => {
            let mut out = String::with_capacity(text.len());
            let mut prev_alpha = false;
            for c in text.chars() {
                out.push(if prev_alpha {
                    c
                } else {
                    c.to_ascii_uppercase()
                });
                prev_alpha = c.is_ascii_alphabetic();
            }
            out
        }
    }
}

/// A field expression: its pieces and the text it is written as.
#[derive(Debug, Clone)]
struct FieldExpr {
    kind: Kind,
    pieces: Vec<Piece>,
    text: String,
}

impl FieldExpr {
    fn new(kind: Kind, pieces: Vec<Piece>, style: Style, crontab: bool) -> FieldExpr {
        let sep = match (crontab, style.sep) {
            (true, _) | (false, 0) => ",",
            (false, 1) => ", ",
            _ => " , ",
        };
        let text = pieces
            .iter()
            .map(|p| render_piece(kind, *p, style))
            .collect::<Vec<_>>()
            .join(sep);
        FieldExpr {
            kind,
            pieces,
            text: apply_case(&text, style.case),
        }
    }

    fn contains(&self, v: u32) -> bool {
        self.pieces.iter().any(|p| p.contains(self.kind, v))
    }

    /// Vixie: a field is unrestricted when its text starts with `*`.
    fn starts_with_star(&self) -> bool {
        matches!(self.pieces[0], Piece::Star | Piece::StarStep(_))
    }
}

/// A cron trigger as the model sees it.
#[derive(Debug, Clone)]
struct CronModel {
    /// The fields as given (index as `FIELD_NAMES`).
    given: Vec<Option<FieldExpr>>,
    /// The fields in force after the defaults are applied.
    fields: Vec<FieldExpr>,
    crontab: bool,
}

fn kind_of(index: usize, crontab: bool) -> Kind {
    [
        Kind::Year,
        Kind::Month,
        Kind::Day,
        Kind::Week,
        if crontab { Kind::CronDow } else { Kind::Dow },
        Kind::Hour,
        Kind::Minute,
        Kind::Second,
    ][index]
}

impl CronModel {
    fn new(given: Vec<Option<FieldExpr>>, crontab: bool) -> CronModel {
        // Fields more significant than the least significant given field are `*`, the
        // less significant ones take their minimum; week and day_of_week are always `*`.
        let least = (0..8).rev().find(|&i| given[i].is_some());
        let fields = (0..8)
            .map(|i| match &given[i] {
                Some(f) => f.clone(),
                None => {
                    let kind = kind_of(i, crontab);
                    let below = least.is_some_and(|l| i > l);
                    let piece = if below && !matches!(i, 3 | 4) {
                        Piece::Value(kind.bounds().0)
                    } else {
                        Piece::Star
                    };
                    FieldExpr {
                        kind,
                        pieces: vec![piece],
                        text: String::new(),
                    }
                }
            })
            .collect();
        CronModel {
            given,
            fields,
            crontab,
        }
    }

    fn crontab_text(&self, spaces: &[&str]) -> String {
        let order = [6, 5, 2, 1, 4];
        let mut out = spaces[0].to_owned();
        for (k, i) in order.iter().enumerate() {
            out.push_str(&self.given[*i].as_ref().expect("crontab field").text);
            out.push_str(spaces[k + 1]);
        }
        out
    }

    fn date_matches(&self, date: NaiveDate) -> bool {
        let f = &self.fields;
        if !f[0].contains(date.year() as u32) || !f[1].contains(date.month()) {
            return false;
        }
        if !f[3].contains(date.iso_week().week()) {
            return false;
        }
        let dom = f[2].pieces.iter().any(|p| p.contains_day(date));
        let dow = if self.crontab {
            let v = date.weekday().num_days_from_sunday();
            f[4].contains(v) || (v == 0 && f[4].contains(7))
        } else {
            f[4].contains(date.weekday().num_days_from_monday())
        };
        if self.crontab && !f[2].starts_with_star() && !f[4].starts_with_star() {
            dom || dow
        } else {
            dom && dow
        }
    }

    fn matches(&self, t: NaiveDateTime) -> bool {
        t.nanosecond() == 0
            && self.date_matches(t.date())
            && self.fields[5].contains(t.hour())
            && self.fields[6].contains(t.minute())
            && self.fields[7].contains(t.second())
    }

    /// Brute force: the first matching wall-clock second in `[from, limit)`, stepping one
    /// second at a time but skipping a whole day, hour or minute that cannot match (the
    /// match is a conjunction of date, hour, minute and second conditions).
    fn scan(&self, from: NaiveDateTime, limit: NaiveDateTime) -> Option<NaiveDateTime> {
        assert_eq!(from.nanosecond(), 0);
        let mut t = from;
        while t < limit {
            if !self.date_matches(t.date()) {
                t = (t.date() + Duration::days(1)).and_hms_opt(0, 0, 0)?;
            } else if !self.fields[5].contains(t.hour()) {
                t = t.date().and_hms_opt(t.hour(), 0, 0)? + Duration::hours(1);
            } else if !self.fields[6].contains(t.minute()) {
                t = t.date().and_hms_opt(t.hour(), t.minute(), 0)? + Duration::minutes(1);
            } else if !self.fields[7].contains(t.second()) {
                t += Duration::seconds(1);
            } else {
                return Some(t);
            }
        }
        None
    }

    /// Plain second-by-second scan (checks `scan` itself).
    fn scan_every_second(
        &self,
        from: NaiveDateTime,
        limit: NaiveDateTime,
    ) -> Option<NaiveDateTime> {
        let mut t = from;
        while t < limit {
            if self.matches(t) {
                return Some(t);
            }
            t += Duration::seconds(1);
        }
        None
    }

    fn build(&self, tz: Tz, jitter: Option<f64>) -> Result<CronTrigger, TriggerError> {
        if self.crontab {
            let text = self.crontab_text(&["", " ", " ", " ", " ", ""]);
            CronTrigger::from_crontab_with(&text, tz, None, None, jitter)
        } else {
            let mut b = CronTrigger::builder().timezone(tz);
            for (i, f) in self.given.iter().enumerate() {
                if let Some(f) = f {
                    b = b.field(FIELD_NAMES[i], &f.text)?;
                }
            }
            if let Some(j) = jitter {
                b = b.jitter(j);
            }
            b.build()
        }
    }
}

// ---------------------------------------------------------------------------------------
// Generators.
// ---------------------------------------------------------------------------------------

fn numeric_piece(kind: Kind) -> BoxedStrategy<Piece> {
    let max = kind.bounds().1;
    let (lo, hi) = kind.gen_bounds();
    let max_step = kind.max_step();
    prop_oneof![
        1 => Just(Piece::Star),
        2 => (1..=max_step).prop_map(Piece::StarStep),
        3 => (lo..=hi).prop_map(Piece::Value),
        3 => (lo..=hi, lo..=hi).prop_map(|(a, b)| Piece::Range(a.min(b), a.max(b))),
        3 => (lo..hi)
            .prop_flat_map(move |a| (Just(a), a + 1..=hi))
            .prop_flat_map(|(a, b)| (1..=b - a).prop_map(move |c| Piece::RangeStep(a, b, c))),
        2 => (lo..=hi.min(max - 1)).prop_flat_map(move |a| {
            (1..=(max - a).min(max_step)).prop_map(move |c| Piece::ValueStep(a, c))
        }),
    ]
    .boxed()
}

fn day_piece() -> BoxedStrategy<Piece> {
    prop_oneof![
        6 => numeric_piece(Kind::Day),
        1 => Just(Piece::LastDay),
        2 => (1u32..=5, 0u32..=6).prop_map(|(n, w)| Piece::Nth(n, w)),
        1 => (0u32..=6).prop_map(Piece::LastWeekday),
    ]
    .boxed()
}

fn style() -> impl Strategy<Value = Style> {
    (0u8..3, 0u8..3, 0u8..3).prop_map(|(names, case, sep)| Style { names, case, sep })
}

fn field_expr(kind: Kind, crontab: bool) -> BoxedStrategy<FieldExpr> {
    let piece = if kind == Kind::Day && !crontab {
        day_piece()
    } else {
        numeric_piece(kind)
    };
    (prop::collection::vec(piece, 1..=3), style())
        .prop_map(move |(pieces, style)| FieldExpr::new(kind, pieces, style, crontab))
        .boxed()
}

/// Keyword-argument cron: each field given or not (year and week less often).
fn cron_model() -> impl Strategy<Value = CronModel> {
    let opt = |kind: Kind, weight_none: u32| {
        prop_oneof![
            weight_none => Just(None),
            3 => field_expr(kind, false).prop_map(Some),
        ]
    };
    (
        opt(Kind::Year, 12),
        opt(Kind::Month, 3),
        opt(Kind::Day, 3),
        opt(Kind::Week, 12),
        opt(Kind::Dow, 3),
        opt(Kind::Hour, 3),
        opt(Kind::Minute, 3),
        opt(Kind::Second, 3),
    )
        .prop_map(|(y, mo, d, w, dow, h, mi, s)| {
            CronModel::new(vec![y, mo, d, w, dow, h, mi, s], false)
        })
}

/// Five-field crontab text; day and day-of-week often `*` so both Vixie rules occur.
fn crontab_model() -> impl Strategy<Value = CronModel> {
    let star_or = |kind: Kind| {
        prop_oneof![
            1 => Just(FieldExpr::new(kind, vec![Piece::Star], Style { names: 0, case: 0, sep: 0 }, true)),
            3 => field_expr(kind, true),
        ]
    };
    (
        star_or(Kind::Minute),
        star_or(Kind::Hour),
        star_or(Kind::Day),
        star_or(Kind::Month),
        star_or(Kind::CronDow),
    )
        .prop_map(|(mi, h, d, mo, dow)| {
            CronModel::new(
                vec![
                    None,
                    Some(mo),
                    Some(d),
                    None,
                    Some(dow),
                    Some(h),
                    Some(mi),
                    None,
                ],
                true,
            )
        })
}

fn any_model() -> impl Strategy<Value = CronModel> {
    prop_oneof![cron_model(), crontab_model()]
}

fn fixed_zone() -> impl Strategy<Value = Tz> {
    prop::sample::select(FIXED_ZONES.to_vec()).prop_map(|name| name.parse::<Tz>().unwrap())
}

/// A random instant in 2000..2040, often with a sub-second part.
fn instant(tz: Tz) -> impl Strategy<Value = DateTime<Tz>> {
    (
        946_684_800i64..2_208_988_800,
        prop_oneof![
            2 => Just(0u32),
            1 => 0u32..1_000_000_000,
            1 => 999_999_000u32..1_000_000_000,
        ],
    )
        .prop_map(move |(secs, nanos)| tz.timestamp_opt(secs, nanos).unwrap())
}

fn zone_and_instant() -> impl Strategy<Value = (Tz, DateTime<Tz>)> {
    fixed_zone().prop_flat_map(|tz| (Just(tz), instant(tz)))
}

// ---------------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------------

/// The first whole second at or after `t`.
fn ceil_second(t: DateTime<Tz>) -> DateTime<Tz> {
    if t.nanosecond() == 0 {
        t
    } else {
        t.with_nanosecond(0).unwrap() + Duration::seconds(1)
    }
}

/// The first whole second strictly after `t`.
fn next_second(t: DateTime<Tz>) -> DateTime<Tz> {
    ceil_second(t + Duration::nanoseconds(1))
}

/// The model's first fire at or after `from` (a whole second) within the scan window.
fn model_first(model: &CronModel, from: DateTime<Tz>) -> Option<NaiveDateTime> {
    let from = from.naive_local();
    model.scan(from, from + Duration::days(SCAN_DAYS))
}

/// Checks that `got` is what the brute-force scan from `from` (a whole second) finds.
fn check_against_scan(
    model: &CronModel,
    tz: Tz,
    from: DateTime<Tz>,
    got: Option<DateTime<Tz>>,
) -> Result<(), TestCaseError> {
    let limit = from.naive_local() + Duration::days(SCAN_DAYS);
    let expected = model_first(model, from);
    match got {
        Some(f) => {
            prop_assert_eq!(f.timezone(), tz);
            prop_assert!(f >= from, "fire {} before {}", f, from);
            prop_assert!(model.matches(f.naive_local()), "fire {} does not match", f);
            if f.naive_local() < limit {
                prop_assert_eq!(expected, Some(f.naive_local()), "skipped a matching time");
            } else {
                prop_assert_eq!(expected, None, "skipped a matching time");
            }
        }
        None => prop_assert_eq!(expected, None, "exhausted, but the scan found a match"),
    }
    Ok(())
}

/// The chain f1 = next(None, now), f(k+1) = next(f(k), f(k)), checked fire by fire.
fn check_chain(
    model: &CronModel,
    trigger: &CronTrigger,
    tz: Tz,
    now: DateTime<Tz>,
    lag: i64,
) -> Result<(), TestCaseError> {
    let mut prev: Option<DateTime<Tz>> = None;
    for _ in 0..CHAIN {
        let (next, from) = match prev {
            None => (trigger.next_fire_time(None, &now), ceil_second(now)),
            Some(p) => (trigger.next_fire_time(Some(&p), &p), next_second(p)),
        };
        check_against_scan(model, tz, from, next)?;
        let Some(f) = next else { break };
        if let Some(p) = prev {
            prop_assert!(f > p, "not increasing: {} then {}", p, f);
            // Asked late (overdue), the trigger still gives the first fire after `p`.
            let late = p + Duration::seconds(lag);
            prop_assert_eq!(trigger.next_fire_time(Some(&p), &late), Some(f));
        } else {
            prop_assert!(f >= now);
        }
        prev = Some(f);
    }
    Ok(())
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Properties of valid expressions.
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    /// Keyword-argument cron: every fire matches every field, fires strictly increase, and
    /// a brute-force scan finds nothing skipped before the first fire or between fires.
    #[test]
    fn cron_fires_match_and_skip_nothing(
        model in cron_model(),
        (tz, now) in zone_and_instant(),
        lag in 0i64..100_000,
    ) {
        let trigger = model.build(tz, None);
        prop_assert!(trigger.is_ok(), "valid expression refused: {:?}", trigger);
        check_chain(&model, &trigger.unwrap(), tz, now, lag)?;
    }

    /// The same for five-field crontab text with Vixie semantics.
    #[test]
    fn crontab_fires_match_and_skip_nothing(
        model in crontab_model(),
        (tz, now) in zone_and_instant(),
        lag in 0i64..100_000,
        spaces in prop::collection::vec(prop::sample::select(vec!["", " ", "  ", "\t"]), 6),
    ) {
        let text = model.crontab_text(&spaces.iter().enumerate().map(|(i, s)| {
            if (1..5).contains(&i) && s.is_empty() { " " } else { *s }
        }).collect::<Vec<_>>());
        let trigger = CronTrigger::from_crontab(&text, tz);
        prop_assert!(trigger.is_ok(), "valid crontab {:?} refused: {:?}", text, trigger);
        let trigger = trigger.unwrap();
        prop_assert_eq!(&trigger, &model.build(tz, None).unwrap());
        check_chain(&model, &trigger, tz, now, lag)?;
    }

    /// From any previous fire time, including one with a sub-second part (as jitter
    /// produces), the next fire is the first matching second strictly after it.
    #[test]
    fn next_after_any_previous_is_first_match_after_it(
        model in any_model(),
        (tz, prev) in zone_and_instant(),
    ) {
        let trigger = model.build(tz, None).unwrap();
        let next = trigger.next_fire_time(Some(&prev), &prev);
        check_against_scan(&model, tz, next_second(prev), next)?;
    }

    /// The same just before a fire: a previous time less than a second before a
    /// matching second `f` is followed by `f` itself.
    #[test]
    fn next_after_previous_just_before_a_fire_is_that_fire(
        model in any_model(),
        (tz, now) in zone_and_instant(),
        before_ns in prop_oneof![1i64..2_000, 1i64..1_000_000_000],
    ) {
        let trigger = model.build(tz, None).unwrap();
        if let Some(f) = trigger.next_fire_time(None, &now) {
            let prev = f - Duration::nanoseconds(before_ns);
            let next = trigger.next_fire_time(Some(&prev), &prev);
            check_against_scan(&model, tz, next_second(prev), next)?;
            prop_assert_eq!(next, Some(f));
        }
    }

    /// The pruned brute-force scan agrees with a plain second-by-second scan.
    #[test]
    fn model_scan_agrees_with_plain_scan(
        model in any_model(),
        (_tz, from) in zone_and_instant(),
        hours in 1i64..3,
    ) {
        let from = ceil_second(from).naive_local();
        let limit = from + Duration::hours(hours);
        prop_assert_eq!(model.scan(from, limit), model.scan_every_second(from, limit));
    }

    /// Cron and crontab with jitter J: each fire lies in [unjittered, unjittered + J],
    /// where unjittered is the first match strictly after the previous (jittered) fire.
    #[test]
    fn cron_jitter_stays_within_bounds(
        model in any_model(),
        (tz, now) in zone_and_instant(),
        jitter in prop_oneof![0.000_001f64..1.0, 1.0f64..600.0],
    ) {
        let trigger = model.build(tz, Some(jitter)).unwrap();
        let plain = model.build(tz, None).unwrap();
        let mut prev: Option<DateTime<Tz>> = None;
        for _ in 0..CHAIN {
            let (fire, unjittered, from) = match prev {
                None => (
                    trigger.next_fire_time(None, &now),
                    plain.next_fire_time(None, &now),
                    ceil_second(now),
                ),
                Some(p) => (
                    trigger.next_fire_time(Some(&p), &p),
                    plain.next_fire_time(Some(&p), &p),
                    next_second(p),
                ),
            };
            check_against_scan(&model, tz, from, unjittered)?;
            let (Some(fire), Some(unjittered)) = (fire, unjittered) else {
                prop_assert_eq!(fire, unjittered);
                break;
            };
            let delay = (fire - unjittered).num_nanoseconds().unwrap();
            prop_assert!(delay >= 0, "fire {} before unjittered {}", fire, unjittered);
            prop_assert!(delay as f64 <= jitter * 1e9 + 1.0, "fire {} > {} + {}", fire, unjittered, jitter);
            if let Some(p) = prev {
                prop_assert!(fire > p, "fire {} not after previous {}", fire, p);
            }
            prev = Some(fire);
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Interval with jitter J: each fire lies in [grid point, grid point + J], where the
    /// grid point is the first `start + k·interval` after the previous (jittered) fire:
    /// jitter does not make the grid drift.
    #[test]
    fn interval_jitter_stays_within_bounds(
        (tz, start) in zone_and_instant(),
        interval_ms in prop_oneof![1i64..5_000, 1_000i64..200_000_000],
        now_offset_s in -864_000i64..8_640_000,
        jitter in prop_oneof![0.000_001f64..1.0, 1.0f64..7_200.0],
    ) {
        let interval = Duration::milliseconds(interval_ms);
        let trigger = IntervalTrigger::builder(interval)
            .start_date(start)
            .timezone(tz)
            .jitter(jitter)
            .build()
            .unwrap();
        let plain = IntervalTrigger::builder(interval).start_date(start).timezone(tz).build().unwrap();
        let now = start + Duration::seconds(now_offset_s);
        let step = interval.num_nanoseconds().unwrap() as i128;
        // The first grid point at or after `t` (strictly after, with `strict`).
        let grid = |t: DateTime<Tz>, strict: bool| {
            let diff = (t - start).num_nanoseconds().unwrap() as i128;
            let k = if diff < 0 || (diff == 0 && !strict) {
                0
            } else if strict {
                diff.div_euclid(step) + 1
            } else {
                (diff + step - 1).div_euclid(step)
            };
            start + Duration::nanoseconds((k * step) as i64)
        };
        let mut prev: Option<DateTime<Tz>> = None;
        for _ in 0..CHAIN {
            let (fire, unjittered, expected) = match prev {
                None => (
                    trigger.next_fire_time(None, &now),
                    plain.next_fire_time(None, &now),
                    grid(now, false),
                ),
                // Without jitter a previous fire time off the grid shifts it (prev +
                // interval); the jittered trigger keeps to its grid.
                Some(p) => (
                    trigger.next_fire_time(Some(&p), &p),
                    Some(grid(p, true)),
                    grid(p, true),
                ),
            };
            let (fire, unjittered) = (fire.unwrap(), unjittered.unwrap());
            prop_assert_eq!(unjittered, expected);
            let delay = (fire - unjittered).num_nanoseconds().unwrap();
            prop_assert!(delay >= 0, "fire {} before unjittered {}", fire, unjittered);
            prop_assert!(delay as f64 <= jitter * 1e9 + 1.0, "fire {} > {} + {}", fire, unjittered, jitter);
            if let Some(p) = prev {
                prop_assert!(fire > p, "fire {} not after previous {}", fire, p);
            }
            prev = Some(fire);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Invalid input.
// ---------------------------------------------------------------------------------------

fn utc_now() -> DateTime<Tz> {
    Tz::UTC.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap()
}

fn cron_field_error(field: &str, text: &str) -> Result<CronTrigger, TriggerError> {
    CronTrigger::builder().field(field, text)?.build()
}

fn assert_err_field<T: std::fmt::Debug>(result: Result<T, TriggerError>, field: &str, what: &str) {
    match result {
        Ok(t) => panic!("{what}: expected an error on '{field}', got {t:?}"),
        Err(e) => assert_eq!(e.field(), field, "{what}: wrong field in error {e}"),
    }
}

#[test]
fn invalid_cron_fields_name_the_field() {
    let cases: &[(&str, &str)] = &[
        ("minute", "60"),
        ("minute", "*/60"),
        ("minute", "-1"),
        ("minute", "1-"),
        ("minute", "1/2/3"),
        ("minute", "1,,2"),
        ("minute", ""),
        ("minute", " "),
        ("minute", "4294967296"),
        ("minute", "99999999999999999999"),
        ("minute", "1-3/3"),
        ("hour", "25"),
        ("hour", "24"),
        ("hour", "jan"),
        ("hour", "a-b-c"),
        ("day", "32"),
        ("day", "0"),
        ("day", "6th mon"),
        ("day", "0th mon"),
        ("day", "1st funday"),
        ("day", "lastday"),
        ("day", "last sunday"),
        ("day", "1st mon tue"),
        ("month", "13"),
        ("month", "0"),
        ("month", "foo"),
        ("month", "mon"),
        ("month", "jan-mar/2x"),
        ("month", "dec-jan"),
        ("week", "54"),
        ("week", "0"),
        ("day_of_week", "7"),
        ("day_of_week", "jan"),
        ("day_of_week", "funday"),
        ("day_of_week", "sun-mon"),
        ("day_of_week", "tue-thu/3"),
        ("second", "60"),
        ("year", "1969"),
        ("year", "10000"),
        ("year", "2005-2002"),
    ];
    for (field, text) in cases {
        assert_err_field(
            cron_field_error(field, text),
            field,
            &format!("{field}={text:?}"),
        );
    }
    // `*/0` and `5-2` in every field.
    for field in FIELD_NAMES {
        for text in ["*/0", "5-2", "2005-2002/0", "*/x", "?", "*-*", "1.5"] {
            assert_err_field(
                cron_field_error(field, text),
                field,
                &format!("{field}={text:?}"),
            );
        }
    }
    // An invalid field among valid ones is the one named.
    let err = CronTrigger::builder()
        .hour("9")
        .minute("70")
        .second("5")
        .build();
    assert_err_field(err, "minute", "minute=70 among valid fields");
}

#[test]
fn invalid_crontab_names_the_field() {
    let tz = Tz::UTC;
    for expr in [
        "",
        "   ",
        "* * * *",
        "0 0 9 * * mon-fri 2030 extra",
        "* * * * * * * *",
    ] {
        assert_err_field(CronTrigger::from_crontab(expr, tz), "crontab", expr);
    }
    let cases: &[(&str, &str)] = &[
        // Six fields are seconds first, seven add the year: a misplaced word names
        // the field it landed in.
        ("0 9 * * mon-fri extra", "month"),
        ("1st mon * * * *", "minute"),
        ("0 0 0 * * * 1969", "year"),
        ("60 * * * *", "minute"),
        ("*/0 * * * *", "minute"),
        ("* 24 * * *", "hour"),
        ("* 25 * * *", "hour"),
        ("* 5-2 * * *", "hour"),
        ("* * 0 * *", "day"),
        ("* * 32 * *", "day"),
        ("* * * 13 *", "month"),
        ("* * * foo *", "month"),
        ("* * * * 8", "day_of_week"),
        ("* * * * funday", "day_of_week"),
        ("* * * * mon-sun/2", "day_of_week"),
        ("* * * * 5-0/2", "day_of_week"),
        ("~ * * * *", "minute"),
    ];
    for (expr, field) in cases {
        assert_err_field(CronTrigger::from_crontab(expr, tz), field, expr);
    }
}

#[test]
fn invalid_options_name_the_field() {
    let now = utc_now();
    let later = now + Duration::hours(1);
    let tz = Tz::UTC;
    let args = |kind: &str, args: serde_json::Value| AnyTrigger::from_args(kind, &args, tz, now);

    // Unknown timezone.
    assert_err_field(
        args("cron", json!({"timezone": "Mars/Olympus_Mons"})),
        "timezone",
        "tz",
    );
    assert_err_field(
        args(
            "crontab",
            json!({"expr": "* * * * *", "timezone": "Nowhere"}),
        ),
        "timezone",
        "tz",
    );
    assert_err_field(
        args("interval", json!({"seconds": 5, "timezone": "UTC+99"})),
        "timezone",
        "tz",
    );

    // End before start.
    assert_err_field(
        CronTrigger::builder()
            .hour("1")
            .start_date(later)
            .end_date(now)
            .build(),
        "end_date",
        "cron end < start",
    );
    assert_err_field(
        CronTrigger::from_crontab_with("* * * * *", tz, Some(later), Some(now), None),
        "end_date",
        "crontab end < start",
    );
    assert_err_field(
        IntervalTrigger::builder(Duration::seconds(5))
            .start_date(later)
            .end_date(now)
            .build(),
        "end_date",
        "interval end < start",
    );
    assert_err_field(
        args(
            "cron",
            json!({"hour": 1, "start_date": "2024-06-02", "end_date": "2024-06-01"}),
        ),
        "end_date",
        "cron args end < start",
    );

    // Zero and negative intervals.
    assert_err_field(
        IntervalTrigger::builder(Duration::zero()).build(),
        "interval",
        "zero",
    );
    assert_err_field(
        IntervalTrigger::builder(Duration::seconds(-5)).build(),
        "interval",
        "negative",
    );
    assert_err_field(args("interval", json!({})), "interval", "no length");
    assert_err_field(
        args("interval", json!({"seconds": 0})),
        "interval",
        "seconds=0",
    );
    assert_err_field(
        args("interval", json!({"hours": 1, "minutes": -60})),
        "interval",
        "1h-60m",
    );

    // Bad jitter.
    assert_err_field(
        CronTrigger::builder().jitter(-1.0).build(),
        "jitter",
        "negative jitter",
    );
    assert_err_field(
        CronTrigger::builder().jitter(f64::NAN).build(),
        "jitter",
        "NaN jitter",
    );
    assert_err_field(
        IntervalTrigger::builder(Duration::seconds(1))
            .jitter(f64::INFINITY)
            .build(),
        "jitter",
        "infinite jitter",
    );

    // Cron fields through keyword arguments.
    assert_err_field(
        args("cron", json!({"minute": 60})),
        "minute",
        "args minute=60",
    );
    assert_err_field(
        args("cron", json!({"hour": "25"})),
        "hour",
        "args hour='25'",
    );
    assert_err_field(args("cron", json!({"day": -1})), "day", "args day=-1");
    assert_err_field(
        args("cron", json!({"month": 1.5})),
        "month",
        "args month=1.5",
    );
    assert_err_field(
        args("cron", json!({"fortnight": 1})),
        "fortnight",
        "unknown argument",
    );
    assert_err_field(
        args("crontab", json!({"expr": "* * *"})),
        "crontab",
        "args crontab",
    );
}

/// Out-of-range numbers in any field, in any expression form, name the field.
fn out_of_range() -> impl Strategy<Value = (usize, String)> {
    (0usize..8, 0u8..5, 0u32..100_000, 0u32..100_000).prop_filter_map(
        "an out-of-range value",
        |(i, form, a, b)| {
            let (min, max) = kind_of(i, false).bounds();
            let bad = |v: u32| v < min || v > max;
            let text = match form {
                0 if bad(a) => a.to_string(),
                1 if bad(a) || bad(b) => format!("{}-{}", a.min(b), a.max(b)),
                2 if bad(a) => format!("{a}/1"),
                3 if a > max - min => format!("*/{a}"),
                4 if a > b => format!("{a}-{b}"),
                _ => return None,
            };
            Some((i, text))
        },
    )
}

/// Text made of cron tokens, to reach deep into the parser.
fn cron_soup() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "*",
        "/",
        "-",
        ",",
        " ",
        "\t",
        "0",
        "1",
        "2",
        "5",
        "7",
        "9",
        "31",
        "53",
        "59",
        "60",
        "1970",
        "9999",
        "10000",
        "999999999",
        "4294967296",
        "1st",
        "2nd",
        "5th",
        "6th",
        "last",
        "mon",
        "sun",
        "Fri",
        "jan",
        "DEC",
        "foo",
        "L",
        "#",
        "?",
        "é",
        "\u{0}",
    ]);
    prop::collection::vec(token, 0..12).prop_map(|t| t.concat())
}

fn arbitrary_text() -> impl Strategy<Value = String> {
    prop_oneof![cron_soup(), "[ -~]{0,24}", any::<String>()]
}

/// Calls `next_fire_time` in a chain and fails when one call takes unreasonably long.
fn exercise(trigger: &dyn Trigger, now: DateTime<Tz>) -> Result<(), TestCaseError> {
    let mut prev: Option<DateTime<Tz>> = None;
    for _ in 0..4 {
        let started = Instant::now();
        let next = trigger.next_fire_time(prev.as_ref(), prev.as_ref().unwrap_or(&now));
        let took = started.elapsed();
        prop_assert!(
            took < StdDuration::from_secs(5),
            "{} took {:?}",
            trigger,
            took
        );
        match (next, prev) {
            (None, _) => break,
            (Some(n), Some(p)) => prop_assert!(n > p, "{}: {} after {}", trigger, n, p),
            (Some(n), None) => prop_assert!(n >= now, "{}: {} before now {}", trigger, n, now),
        }
        prev = next;
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    /// Out-of-range values are refused with the field's name.
    #[test]
    fn out_of_range_values_name_the_field((i, text) in out_of_range()) {
        let result = cron_field_error(FIELD_NAMES[i], &text);
        prop_assert!(result.is_err(), "{}={:?} accepted", FIELD_NAMES[i], text);
        let err = result.unwrap_err();
        prop_assert_eq!(err.field(), FIELD_NAMES[i]);
    }

    /// Arbitrary text in one cron field: never a panic; an error names that field; a
    /// trigger that builds answers in bounded time.
    #[test]
    fn arbitrary_text_in_one_field(
        i in 0usize..8,
        text in arbitrary_text(),
        (tz, now) in zone_and_instant(),
    ) {
        let built = CronTrigger::builder().timezone(tz).field(FIELD_NAMES[i], &text).unwrap().build();
        match built {
            Err(e) => prop_assert_eq!(e.field(), FIELD_NAMES[i]),
            Ok(t) => exercise(&t, now)?,
        }
    }

    /// Arbitrary text in several cron fields at once.
    #[test]
    fn arbitrary_text_in_all_fields(
        texts in prop::collection::vec(prop::option::weighted(0.5, cron_soup()), 8),
        (tz, now) in zone_and_instant(),
    ) {
        let mut b = CronTrigger::builder().timezone(tz);
        for (i, text) in texts.iter().enumerate() {
            if let Some(text) = text {
                b = b.field(FIELD_NAMES[i], text).unwrap();
            }
        }
        match b.build() {
            Err(e) => prop_assert!(FIELD_NAMES.contains(&e.field()), "error {} names no field", e),
            Ok(t) => exercise(&t, now)?,
        }
    }

    /// Arbitrary crontab text: never a panic; errors name `crontab` or a crontab field.
    #[test]
    fn arbitrary_crontab_text(
        text in prop_oneof![
            arbitrary_text(),
            prop::collection::vec(cron_soup(), 5).prop_map(|f| f.join(" ")),
        ],
        (tz, now) in zone_and_instant(),
    ) {
        match CronTrigger::from_crontab(&text, tz) {
            Err(e) => prop_assert!(
                ["crontab", "second", "minute", "hour", "day", "month", "day_of_week", "year"]
                    .contains(&e.field()),
                "error {} names no crontab field", e
            ),
            Ok(t) => exercise(&t, now)?,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Fixed examples that anchor the model.
// ---------------------------------------------------------------------------------------

#[test]
fn zones_used_have_a_fixed_offset() {
    use chrono::Offset;
    for name in FIXED_ZONES {
        let tz: Tz = name.parse().unwrap();
        let offsets: Vec<i32> = (2000..=2040)
            .flat_map(|y| [1, 7].map(|m| (y, m)))
            .map(|(y, m)| {
                tz.with_ymd_and_hms(y, m, 1, 0, 0, 0)
                    .unwrap()
                    .offset()
                    .fix()
                    .local_minus_utc()
            })
            .collect();
        assert!(
            offsets.windows(2).all(|w| w[0] == w[1]),
            "{name} changes offset"
        );
    }
}

#[test]
fn model_agrees_with_known_examples() {
    let style = Style {
        names: 1,
        case: 0,
        sep: 0,
    };
    // Crontab `0 9 1 * mon`: the 1st of the month or any Monday (Vixie OR).
    let f = |kind, pieces| Some(FieldExpr::new(kind, pieces, style, true));
    let model = CronModel::new(
        vec![
            None,
            f(Kind::Month, vec![Piece::Star]),
            f(Kind::Day, vec![Piece::Value(1)]),
            None,
            f(Kind::CronDow, vec![Piece::Value(1)]),
            f(Kind::Hour, vec![Piece::Value(9)]),
            f(Kind::Minute, vec![Piece::Value(0)]),
            None,
        ],
        true,
    );
    assert_eq!(
        model.crontab_text(&["", " ", " ", " ", " ", ""]),
        "0 9 1 * mon"
    );
    let start = NaiveDate::from_ymd_opt(2024, 6, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let fires: Vec<_> = std::iter::successors(model.scan(start, start + Duration::days(40)), |t| {
        model.scan(*t + Duration::seconds(1), start + Duration::days(40))
    })
    .take(3)
    .map(|t| t.to_string())
    .collect();
    assert_eq!(
        fires,
        [
            "2024-06-01 09:00:00",
            "2024-06-03 09:00:00",
            "2024-06-10 09:00:00"
        ]
    );
    let trigger = CronTrigger::from_crontab("0 9 1 * mon", Tz::UTC).unwrap();
    let now = Tz::UTC.from_utc_datetime(&start);
    let lib: Vec<_> = std::iter::successors(trigger.next_fire_time(None, &now), |p| {
        trigger.next_fire_time(Some(p), p)
    })
    .take(3)
    .map(|t| t.naive_local().to_string())
    .collect();
    assert_eq!(lib, fires);
    // Kwargs `day='last fri'`, `hour=0-3/2`: hours 0 and 2 of the last Friday, minute 0.
    let g = |kind, pieces| Some(FieldExpr::new(kind, pieces, style, false));
    let model = CronModel::new(
        vec![
            None,
            None,
            g(Kind::Day, vec![Piece::LastWeekday(4)]),
            None,
            None,
            g(Kind::Hour, vec![Piece::RangeStep(0, 3, 2)]),
            None,
            None,
        ],
        false,
    );
    let t = model.scan(start, start + Duration::days(40)).unwrap();
    assert_eq!(t.to_string(), "2024-06-28 00:00:00");
    let t = model
        .scan(t + Duration::seconds(1), start + Duration::days(40))
        .unwrap();
    assert_eq!(t.to_string(), "2024-06-28 02:00:00");
    let trigger = model.build(Tz::UTC, None).unwrap();
    assert_eq!(trigger.to_string(), "cron[day='last fri', hour='0-3/2']");
}

/// Every range of weekday names means the numeric range it stands for, in crontab text
/// (`sun` = 0, or 7 closing a range that starts after `sun`) and in the cron trigger's
/// `day_of_week` (`mon` = 0 ... `sun` = 6): the same days, or the same refusal. In
/// particular `sun-sun` is Sunday alone, never the whole week.
#[test]
fn every_weekday_name_range_means_its_numeric_range() {
    let tz: Tz = "UTC".parse().unwrap();
    let from = tz.with_ymd_and_hms(2024, 6, 2, 12, 0, 0).unwrap(); // a Sunday
    let days = |t: &CronTrigger| -> Vec<u32> {
        let mut out = Vec::new();
        let mut prev = None;
        let mut now = from;
        while let Some(next) = t.next_fire_time(prev.as_ref(), &now) {
            if next >= from + Duration::days(7) {
                break;
            }
            out.push(next.weekday().num_days_from_monday());
            now = next + Duration::seconds(1);
            prev = Some(next);
        }
        out.sort_unstable();
        out
    };
    for (a, first) in WEEKDAYS.iter().enumerate() {
        for (b, last) in WEEKDAYS.iter().enumerate() {
            let names = format!("{first}-{last}");
            // Crontab text.
            let na = (a as u32 + 1) % 7;
            let nb = if b == 6 {
                if a == 6 {
                    0
                } else {
                    7
                }
            } else {
                b as u32 + 1
            };
            let by_name = CronTrigger::from_crontab(&format!("0 0 * * {names}"), tz);
            let by_number = CronTrigger::from_crontab(&format!("0 0 * * {na}-{nb}"), tz);
            match (&by_name, &by_number) {
                (Ok(n), Ok(m)) => {
                    let expected = days(m);
                    assert_eq!(days(n), expected, "crontab '{names}' vs '{na}-{nb}'");
                    assert_eq!(expected.len(), (nb - na + 1).min(7) as usize, "'{na}-{nb}'");
                }
                (Err(_), Err(_)) => {}
                _ => panic!("crontab '{names}': {by_name:?}, but '{na}-{nb}': {by_number:?}"),
            }
            // The cron trigger's day_of_week field.
            let by_name = CronTrigger::builder()
                .day_of_week(names.as_str())
                .hour(0)
                .build();
            let by_number = CronTrigger::builder()
                .day_of_week(format!("{a}-{b}").as_str())
                .hour(0)
                .build();
            match (&by_name, &by_number) {
                (Ok(n), Ok(m)) => {
                    assert_eq!(days(n), days(m), "day_of_week '{names}' vs '{a}-{b}'");
                    assert_eq!(
                        days(n),
                        (a as u32..=b as u32).collect::<Vec<_>>(),
                        "'{names}'"
                    );
                }
                (Err(_), Err(_)) => assert!(a > b, "'{names}' refused"),
                _ => panic!("day_of_week '{names}': {by_name:?}, but '{a}-{b}': {by_number:?}"),
            }
        }
    }
}

/// Around a spring-forward gap the chain of fire times is complete and ordered: every
/// matching wall-clock time of the day fires once, a time inside the gap at its
/// pre-jump reading (after the jump), a real time after the gap at its own instant,
/// even when that comes before a moved gap time (Lord Howe's 30-minute gap with
/// `5-55/25`: 02:05 denotes 02:35, after the real 02:30).
#[test]
fn the_chain_around_a_dst_gap_is_complete_and_ordered() {
    let cases = [
        ("Australia/Lord_Howe", 2024, 10, 6),
        ("America/New_York", 2024, 3, 10),
        ("Europe/Helsinki", 2024, 3, 31),
    ];
    for (zone, y, mo, d) in cases {
        let tz: Tz = zone.parse().unwrap();
        for minutes in ["5-55/25", "*/7", "0,30", "10-40/10", "*"] {
            let expr = format!("{minutes} 0-5 * * *");
            let trigger = CronTrigger::from_crontab(&expr, tz).unwrap();
            let day = NaiveDate::from_ymd_opt(y, mo, d).unwrap();
            // Expected: every matching wall time from 00:00 to 05:59, resolved by the
            // policy, sorted.
            let mut expected: Vec<DateTime<Tz>> = Vec::new();
            for h in 0..6 {
                for m in 0..60 {
                    let hit = match minutes {
                        "5-55/25" => [5, 30, 55].contains(&m),
                        "*/7" => m % 7 == 0,
                        "0,30" => m == 0 || m == 30,
                        "10-40/10" => [10, 20, 30, 40].contains(&m),
                        _ => true,
                    };
                    if hit {
                        let wall = day.and_hms_opt(h, m, 0).unwrap();
                        expected.push(apscheduler_core::time::localize(tz, wall));
                    }
                }
            }
            expected.sort();
            expected.dedup();
            let from = apscheduler_core::time::localize(tz, day.and_hms_opt(0, 0, 0).unwrap());
            let end = apscheduler_core::time::localize(tz, day.and_hms_opt(6, 0, 0).unwrap());
            let mut got = Vec::new();
            let mut prev: Option<DateTime<Tz>> = None;
            let mut now = from;
            while let Some(next) = trigger.next_fire_time(prev.as_ref(), &now) {
                if next >= end {
                    break;
                }
                got.push(next);
                now = next + Duration::seconds(1);
                prev = Some(next);
            }
            assert_eq!(got, expected, "{zone} '{expr}'");
        }
    }
}

/// Without jitter the fire after a previous one is previous + interval, as in
/// APScheduler: an explicitly given next run time shifts the grid; without a previous
/// fire time (a resumed job) the trigger realigns to its start_date grid.
#[test]
fn an_off_grid_previous_fire_time_shifts_the_interval_grid() {
    let tz: Tz = "UTC".parse().unwrap();
    let start = tz.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let trigger = IntervalTrigger::builder(Duration::minutes(10))
        .start_date(start)
        .build()
        .unwrap();
    let explicit = tz.with_ymd_and_hms(2024, 1, 1, 0, 3, 0).unwrap();
    assert_eq!(
        trigger.next_fire_time(Some(&explicit), &explicit),
        Some(tz.with_ymd_and_hms(2024, 1, 1, 0, 13, 0).unwrap())
    );
    let now = tz.with_ymd_and_hms(2024, 1, 1, 0, 14, 0).unwrap();
    assert_eq!(
        trigger.next_fire_time(None, &now),
        Some(tz.with_ymd_and_hms(2024, 1, 1, 0, 20, 0).unwrap())
    );
}

/// An interval can be given as a `std::time::Duration` as well as a `chrono` one.
#[test]
fn an_interval_takes_a_std_duration_too() {
    let std_built = IntervalTrigger::builder(StdDuration::from_secs(7200))
        .build()
        .unwrap();
    let chrono_built = IntervalTrigger::builder(Duration::hours(2))
        .build()
        .unwrap();
    assert_eq!(std_built.interval(), chrono_built.interval());
    assert_eq!(std_built.to_string(), "interval[2:00:00]");
}
