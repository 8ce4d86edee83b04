//! DST policies of the cron trigger: the default one, and `cron`, which reproduces cronie.
//!
//! cronie wakes every minute and compares the wall clock with the minute it expected.
//! A forward jump of more than five minutes (spring forward) makes it run the jobs whose
//! minute or hour field starts with `*` ("wildcard" jobs) for the new minute only, and
//! every other ("fixed-time") job for each skipped minute, all at once, at the jump. A
//! backward jump (fall back) makes it run only wildcard jobs until the wall clock has
//! caught up with where it was, so fixed-time jobs run once, in the first pass.

use std::fmt;

use apscheduler_core::time::{resolve_local, LocalInstant};
use apscheduler_core::TriggerError;
use chrono::{DateTime, Duration, Offset, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::matcher::{Matcher, SECOND};

/// How a cron trigger treats local times that DST skips or repeats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dst {
    /// This library's policy (the default): a time inside a spring-forward gap fires once,
    /// at the instant it denotes with the offset before the jump; in a fall-back overlap a
    /// time fires once, unless the hour field is `*`/`*/n`, which fires in both passes.
    #[default]
    Default,
    /// cronie's rule: on a spring-forward day, jobs whose minute and hour fields are both
    /// fixed run once at the jump for every time skipped, and jobs whose minute or hour
    /// field starts with `*` skip the missing times; on a fall-back day those wildcard jobs
    /// run in both passes and the fixed-time jobs once, in the first pass.
    Cron,
}

impl Dst {
    /// The name used in trigger arguments and configuration (`"default"`, `"cron"`).
    pub fn name(self) -> &'static str {
        match self {
            Dst::Default => "default",
            Dst::Cron => "cron",
        }
    }

    /// Reads a policy name; `field` names the argument in the error.
    ///
    /// # Errors
    /// Anything but `"default"` or `"cron"`.
    pub fn parse(field: &str, value: &str) -> Result<Dst, TriggerError> {
        match value {
            "default" => Ok(Dst::Default),
            "cron" => Ok(Dst::Cron),
            other => Err(TriggerError::invalid_field(
                field,
                other,
                "unknown DST policy (expected \"default\" or \"cron\")",
            )),
        }
    }

    pub(crate) fn is_default(&self) -> bool {
        *self == Dst::Default
    }
}

impl fmt::Display for Dst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Dst {
    type Err = TriggerError;
    fn from_str(s: &str) -> Result<Dst, TriggerError> {
        Dst::parse("dst", s)
    }
}

/// The instant a spring-forward gap ends: the first instant whose offset is the one after
/// the jump, found by bisection between the gap time read with the later offset (still
/// before the jump) and read with the earlier one (already after it).
fn gap_end(tz: Tz, naive: chrono::NaiveDateTime, read_early: DateTime<Tz>) -> DateTime<Tz> {
    let offset_after = read_early.offset().fix().local_minus_utc();
    let mut lo = naive - Duration::seconds(i64::from(offset_after));
    let mut hi = read_early.naive_utc();
    // Invariant: the offset at `lo` is the earlier one, at `hi` the later one.
    while hi - lo > SECOND {
        let mid = lo + Duration::seconds((hi - lo).num_seconds() / 2);
        if tz.offset_from_utc_datetime(&mid).fix().local_minus_utc() == offset_after {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    tz.from_utc_datetime(&hi)
}

/// The first instant `>= start` (a whole second) on which cronie would run a job whose
/// fields are `m` in zone `tz`.
pub(crate) fn next_instant_cron(m: &Matcher, tz: Tz, start: DateTime<Tz>) -> Option<DateTime<Tz>> {
    let local = start.naive_local();
    let wild = m.cron_wild;

    // `start` is the very end of a spring-forward gap: a fixed-time job with a time in the
    // gap runs now, at the jump.
    if !wild {
        let offset_now = start.offset().fix().local_minus_utc();
        let just_before = start.naive_utc() - SECOND;
        let offset_before = tz
            .offset_from_utc_datetime(&just_before)
            .fix()
            .local_minus_utc();
        if offset_now > offset_before {
            let gap = Duration::seconds(i64::from(offset_now - offset_before));
            if m.next_naive(local - gap).is_some_and(|n| n < local) {
                return Some(start);
            }
        }
    }

    let mut best: Option<DateTime<Tz>> = None;
    let mut from = local;
    while let Some(n) = m.next_naive(from) {
        match resolve_local(tz, n) {
            LocalInstant::Single(t) if t >= start => {
                best = Some(t);
                break;
            }
            // Fixed-time jobs run at the jump; wildcard jobs skip the missing times.
            LocalInstant::Gap(t) if !wild => {
                let end = gap_end(tz, n, t);
                if end >= start {
                    best = Some(end);
                    break;
                }
                from = n + SECOND;
            }
            LocalInstant::Ambiguous(early, late) => {
                if early >= start {
                    best = Some(early);
                    break;
                }
                if wild && late >= start {
                    best = Some(late);
                    break;
                }
                // Every wall-clock time whose first occurrence is before `start` is done
                // (its second pass too, unless wildcard; those were handled above).
                let early_offset =
                    Duration::seconds(i64::from(early.offset().fix().local_minus_utc()));
                let skip = start.naive_utc() + early_offset;
                from = if wild {
                    n + SECOND
                } else {
                    (n + SECOND).max(skip)
                };
            }
            _ => from = n + SECOND,
        }
    }

    // `start` is in the first pass of a fall-back overlap: a wildcard job also runs in the
    // second pass, which may come before the first match found above.
    if wild {
        if let LocalInstant::Ambiguous(early, late) = resolve_local(tz, local) {
            if start < late {
                let overlap_start = local - (late - early);
                let first_pass_start = {
                    // The earliest wall time of the overlap (bisection to the second).
                    let (mut lo, mut hi) = (overlap_start, local);
                    while hi - lo > SECOND {
                        let mid = lo + Duration::seconds((hi - lo).num_seconds() / 2);
                        if matches!(resolve_local(tz, mid), LocalInstant::Ambiguous(..)) {
                            hi = mid;
                        } else {
                            lo = mid;
                        }
                    }
                    hi
                };
                if let Some(n) = m.next_naive(first_pass_start) {
                    if let LocalInstant::Ambiguous(_, late) = resolve_local(tz, n) {
                        if late >= start && best.is_none_or(|b| late < b) {
                            best = Some(late);
                        }
                    }
                }
            }
        }
    }
    best
}
