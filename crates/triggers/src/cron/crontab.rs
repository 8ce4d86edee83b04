//! The time part of a crontab line: five fields or a macro as cron reads them, six or
//! seven fields (seconds first, year last) as Quartz reads them, and the constructors of
//! [`CronTrigger`] from crontab text.

use apscheduler_core::time::to_rfc3339;
use apscheduler_core::TriggerError;
use chrono::DateTime;
use chrono_tz::Tz;

use super::expr::Dialect;
use super::{hashed, CronSpec, CronTrigger};

/// cron's macros and the five fields each stands for. Each sets the same bits and the same
/// "starts with `*`" flags as its five-field form (`@hourly` is a wildcard job, the others
/// fixed-time jobs), so the five fields are an exact replacement.
const MACROS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// The five-field equivalent of a crontab macro (`"@daily"` → `"0 0 * * *"`), or `None` for
/// anything else, `@reboot` included. The word includes the `@` and is case-sensitive, as
/// in cron (`@Daily` is not a macro).
///
/// ```
/// assert_eq!(apscheduler_triggers::expand_macro("@weekly"), Some("0 0 * * 0"));
/// assert_eq!(apscheduler_triggers::expand_macro("@reboot"), None);
/// ```
pub fn expand_macro(word: &str) -> Option<&'static str> {
    MACROS
        .iter()
        .find(|(name, _)| *name == word)
        .map(|(_, fields)| *fields)
}

/// Splits crontab time text into its fields, expanding a macro: five in cronie's dialect;
/// five, six or seven otherwise.
pub(crate) fn time_fields(expr: &str, dialect: Dialect) -> Result<Vec<String>, TriggerError> {
    let text = expr.trim();
    if text.starts_with('@') {
        if text == "@reboot" {
            return Err(TriggerError::invalid_field(
                "crontab",
                expr,
                "@reboot is not a time: it runs a job when the daemon starts; \
                 give the job `at_start = true` (and no schedule) instead",
            ));
        }
        return match expand_macro(text) {
            Some(fields) => Ok(fields.split(' ').map(str::to_owned).collect()),
            None => Err(TriggerError::invalid_field(
                "crontab",
                expr,
                "unknown macro (cron knows @yearly, @annually, @monthly, @weekly, @daily, \
                 @midnight, @hourly and @reboot, in lower case)",
            )),
        };
    }
    let parts: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
    match parts.len() {
        5 => Ok(parts),
        6 | 7 if dialect == Dialect::Extended => Ok(parts),
        got if dialect == Dialect::Extended => Err(TriggerError::invalid_field(
            "crontab",
            expr,
            format!(
                "wrong number of fields; got {got}, expected 5 (minute hour day month \
                 day-of-week), 6 (seconds first) or 7 (seconds first, year last)"
            ),
        )),
        got => Err(TriggerError::CrontabFieldCount {
            expr: expr.to_owned(),
            got,
        }),
    }
}

/// The spec of crontab text: its fields by name, crontab semantics, the timezone and
/// (when the text uses `H`) the hash key.
fn crontab_spec(
    expr: &str,
    tz: Tz,
    dialect: Dialect,
    key: Option<&str>,
) -> Result<CronSpec, TriggerError> {
    let parts = time_fields(expr, dialect)?;
    // Five fields: minute first; six or seven: seconds first, then the five, then the year.
    let (second, rest) = match parts.len() {
        5 => (None, &parts[..]),
        _ => (Some(parts[0].clone()), &parts[1..]),
    };
    let year = rest.get(5).cloned();
    let texts: Vec<&str> = parts.iter().map(String::as_str).collect();
    Ok(CronSpec {
        second,
        minute: Some(rest[0].clone()),
        hour: Some(rest[1].clone()),
        day: Some(rest[2].clone()),
        month: Some(rest[3].clone()),
        day_of_week: Some(rest[4].clone()),
        year,
        timezone: tz.name().to_owned(),
        crontab: true,
        hash_key: key
            .filter(|_| dialect == Dialect::Extended && hashed::uses_hash(&texts))
            .map(str::to_owned),
        ..CronSpec::default()
    })
}

impl CronTrigger {
    /// Reads crontab text: five fields (`minute hour day month day_of_week`) or a macro
    /// (`@daily`, `@hourly`, ...) with Vixie cron semantics (day of week 0 and 7 are
    /// Sunday; when both day of month and day of week are restricted, a day matching
    /// either fires), plus the extensions of Quartz, croner and cron-parser: six fields
    /// (seconds first) or seven (seconds first, year last); `L`, `L-3`, `LW`, `15W` in the
    /// day of month; `5L`, `1#2` in the day of week; `?` as `*` in both. Text using
    /// Jenkins' `H` needs a key: see [`CronTrigger::from_crontab_hashed`]. See
    /// docs/triggers.md, "Crontab text as cron reads it" and "Crontab extensions".
    ///
    /// # Errors
    /// Not five, six or seven fields, an unknown macro or `@reboot` (not a time), an
    /// invalid field (naming it and the value), or `H` without a key.
    pub fn from_crontab(expr: &str, tz: Tz) -> Result<CronTrigger, TriggerError> {
        CronTrigger::from_spec(crontab_spec(expr, tz, Dialect::Extended, None)?)
    }

    /// Like [`CronTrigger::from_crontab`], with `key` (the job id) picking the values of
    /// Jenkins' `H` (`H * * * *`, `H(0-29) 3 * * *`, `H/15 * * * *`) exactly as Jenkins
    /// picks them for a job of that name. The key is kept in the trigger's serialized
    /// form (when the text uses `H`), so a reload computes the same values.
    ///
    /// ```
    /// use apscheduler_triggers::CronTrigger;
    ///
    /// let a = CronTrigger::from_crontab_hashed("H H * * *", chrono_tz::UTC, "backup").unwrap();
    /// let b = CronTrigger::from_crontab_hashed("H H * * *", chrono_tz::UTC, "backup").unwrap();
    /// assert_eq!(a, b);
    /// assert!(CronTrigger::from_crontab("H H * * *", chrono_tz::UTC).is_err());
    /// ```
    ///
    /// # Errors
    /// As [`CronTrigger::from_crontab`].
    pub fn from_crontab_hashed(expr: &str, tz: Tz, key: &str) -> Result<CronTrigger, TriggerError> {
        CronTrigger::from_spec(crontab_spec(expr, tz, Dialect::Extended, Some(key))?)
    }

    /// Reads crontab text exactly as cronie reads it: five fields or a macro, none of the
    /// extensions [`CronTrigger::from_crontab`] accepts (cronie would refuse the line or
    /// run it differently).
    ///
    /// # Errors
    /// As [`CronTrigger::from_crontab`], plus every extension form.
    pub fn from_cronie(expr: &str, tz: Tz) -> Result<CronTrigger, TriggerError> {
        CronTrigger::from_spec_in(
            crontab_spec(expr, tz, Dialect::Cronie, None)?,
            Dialect::Cronie,
        )
    }

    /// Like [`CronTrigger::from_crontab`], with start/end dates and jitter.
    ///
    /// # Errors
    /// As [`CronTrigger::from_crontab`], plus `end_date` before `start_date`.
    pub fn from_crontab_with(
        expr: &str,
        tz: Tz,
        start_date: Option<DateTime<Tz>>,
        end_date: Option<DateTime<Tz>>,
        jitter: Option<f64>,
    ) -> Result<CronTrigger, TriggerError> {
        CronTrigger::from_crontab_keyed(expr, tz, None, start_date, end_date, jitter)
    }

    /// [`CronTrigger::from_crontab_with`] with an optional `H` key.
    pub(crate) fn from_crontab_keyed(
        expr: &str,
        tz: Tz,
        key: Option<&str>,
        start_date: Option<DateTime<Tz>>,
        end_date: Option<DateTime<Tz>>,
        jitter: Option<f64>,
    ) -> Result<CronTrigger, TriggerError> {
        let spec = CronSpec {
            start_date: start_date.map(|t| to_rfc3339(&t.with_timezone(&tz))),
            end_date: end_date.map(|t| to_rfc3339(&t.with_timezone(&tz))),
            jitter,
            ..crontab_spec(expr, tz, Dialect::Extended, key)?
        };
        CronTrigger::from_spec(spec)
    }
}

/// Whether crontab text uses Jenkins' `H` (and so needs a hash key, such as the job id).
///
/// ```
/// assert!(apscheduler_triggers::crontab_uses_hash("H(0-29) 3 * * *"));
/// assert!(!apscheduler_triggers::crontab_uses_hash("0 3 * * thu"));
/// ```
pub fn crontab_uses_hash(expr: &str) -> bool {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    !expr.trim_start().starts_with('@') && hashed::uses_hash(&fields)
}
