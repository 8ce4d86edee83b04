//! The time part of a crontab line as cron reads it: five fields or a macro.

use apscheduler_core::TriggerError;

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

/// Splits crontab time text into its five fields, expanding a macro.
pub(crate) fn time_fields(expr: &str) -> Result<Vec<String>, TriggerError> {
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
    if parts.len() != 5 {
        return Err(TriggerError::CrontabFieldCount {
            expr: expr.to_owned(),
            got: parts.len(),
        });
    }
    Ok(parts)
}
