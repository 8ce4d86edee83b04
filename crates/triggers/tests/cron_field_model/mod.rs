//! An independent model of cron fields, re-implementing the field semantics from the
//! documentation (APScheduler's `CronTrigger` fields and Vixie crontab rules) without
//! calling the library's parser or matcher, and the proptest generators of random valid
//! expressions, zones and instants. Used by `properties.rs` and `invalid_input.rs`.
#![allow(dead_code)] // each test file uses its own part

use apscheduler_triggers::{CronTrigger, TriggerError};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike};
use chrono_tz::Tz;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// The independent model of cron fields.
// ---------------------------------------------------------------------------------------

pub(crate) const FIELD_NAMES: [&str; 8] = [
    "year",
    "month",
    "day",
    "week",
    "day_of_week",
    "hour",
    "minute",
    "second",
];
pub(crate) const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
pub(crate) const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Zones with one UTC offset over 2000..2040 (Kolkata and Kathmandu: non-whole hours).
pub(crate) const FIXED_ZONES: [&str; 8] = [
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
pub(crate) const CHAIN: usize = 20;
/// Length of the brute-force window after `now` and after every fire.
pub(crate) const SCAN_DAYS: i64 = 1500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
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
    pub(crate) fn bounds(self) -> (u32, u32) {
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
    pub(crate) fn gen_bounds(self) -> (u32, u32) {
        match self {
            Kind::Year => (1998, 2045),
            k => k.bounds(),
        }
    }

    /// The largest step the generator uses for `*/c` and `a/c`.
    pub(crate) fn max_step(self) -> u32 {
        match self {
            Kind::Year => 40,
            k => k.bounds().1 - k.bounds().0,
        }
    }
}

/// One comma-separated piece of a field expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece {
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
    pub(crate) fn contains(self, kind: Kind, v: u32) -> bool {
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
    pub(crate) fn contains_day(self, date: NaiveDate) -> bool {
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

pub(crate) fn days_in_month(date: NaiveDate) -> u32 {
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
pub(crate) struct Style {
    /// 0: numbers only, 1: names where the field has them, 2: names for even values.
    pub(crate) names: u8,
    /// 0: lower case, 1: upper case, 2: capitalized words.
    pub(crate) case: u8,
    /// 0: `,`, 1: `, `, 2: ` , ` between pieces (crontab always uses `,`).
    pub(crate) sep: u8,
}

pub(crate) fn render_value(kind: Kind, v: u32, closes_range: bool, style: Style) -> String {
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

pub(crate) fn render_piece(kind: Kind, piece: Piece, style: Style) -> String {
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

pub(crate) fn apply_case(text: &str, case: u8) -> String {
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
pub(crate) struct FieldExpr {
    pub(crate) kind: Kind,
    pub(crate) pieces: Vec<Piece>,
    pub(crate) text: String,
}

impl FieldExpr {
    pub(crate) fn new(kind: Kind, pieces: Vec<Piece>, style: Style, crontab: bool) -> FieldExpr {
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

    pub(crate) fn contains(&self, v: u32) -> bool {
        self.pieces.iter().any(|p| p.contains(self.kind, v))
    }

    /// Vixie: a field is unrestricted when its text starts with `*`.
    pub(crate) fn starts_with_star(&self) -> bool {
        matches!(self.pieces[0], Piece::Star | Piece::StarStep(_))
    }
}

/// A cron trigger as the model sees it.
#[derive(Debug, Clone)]
pub(crate) struct CronModel {
    /// The fields as given (index as `FIELD_NAMES`).
    pub(crate) given: Vec<Option<FieldExpr>>,
    /// The fields in force after the defaults are applied.
    pub(crate) fields: Vec<FieldExpr>,
    pub(crate) crontab: bool,
}

pub(crate) fn kind_of(index: usize, crontab: bool) -> Kind {
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
    pub(crate) fn new(given: Vec<Option<FieldExpr>>, crontab: bool) -> CronModel {
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

    pub(crate) fn crontab_text(&self, spaces: &[&str]) -> String {
        let order = [6, 5, 2, 1, 4];
        let mut out = spaces[0].to_owned();
        for (k, i) in order.iter().enumerate() {
            out.push_str(&self.given[*i].as_ref().expect("crontab field").text);
            out.push_str(spaces[k + 1]);
        }
        out
    }

    pub(crate) fn date_matches(&self, date: NaiveDate) -> bool {
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

    pub(crate) fn matches(&self, t: NaiveDateTime) -> bool {
        t.nanosecond() == 0
            && self.date_matches(t.date())
            && self.fields[5].contains(t.hour())
            && self.fields[6].contains(t.minute())
            && self.fields[7].contains(t.second())
    }

    /// Brute force: the first matching wall-clock second in `[from, limit)`, stepping one
    /// second at a time but skipping a whole day, hour or minute that cannot match (the
    /// match is a conjunction of date, hour, minute and second conditions).
    pub(crate) fn scan(&self, from: NaiveDateTime, limit: NaiveDateTime) -> Option<NaiveDateTime> {
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
    pub(crate) fn scan_every_second(
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

    pub(crate) fn build(&self, tz: Tz, jitter: Option<f64>) -> Result<CronTrigger, TriggerError> {
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

pub(crate) fn numeric_piece(kind: Kind) -> BoxedStrategy<Piece> {
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

pub(crate) fn day_piece() -> BoxedStrategy<Piece> {
    prop_oneof![
        6 => numeric_piece(Kind::Day),
        1 => Just(Piece::LastDay),
        2 => (1u32..=5, 0u32..=6).prop_map(|(n, w)| Piece::Nth(n, w)),
        1 => (0u32..=6).prop_map(Piece::LastWeekday),
    ]
    .boxed()
}

pub(crate) fn style() -> impl Strategy<Value = Style> {
    (0u8..3, 0u8..3, 0u8..3).prop_map(|(names, case, sep)| Style { names, case, sep })
}

pub(crate) fn field_expr(kind: Kind, crontab: bool) -> BoxedStrategy<FieldExpr> {
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
pub(crate) fn cron_model() -> impl Strategy<Value = CronModel> {
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
pub(crate) fn crontab_model() -> impl Strategy<Value = CronModel> {
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

pub(crate) fn any_model() -> impl Strategy<Value = CronModel> {
    prop_oneof![cron_model(), crontab_model()]
}

pub(crate) fn fixed_zone() -> impl Strategy<Value = Tz> {
    prop::sample::select(FIXED_ZONES.to_vec()).prop_map(|name| name.parse::<Tz>().unwrap())
}

/// A random instant in 2000..2040, often with a sub-second part.
pub(crate) fn instant(tz: Tz) -> impl Strategy<Value = DateTime<Tz>> {
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

pub(crate) fn zone_and_instant() -> impl Strategy<Value = (Tz, DateTime<Tz>)> {
    fixed_zone().prop_flat_map(|tz| (Just(tz), instant(tz)))
}

pub(crate) fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}
