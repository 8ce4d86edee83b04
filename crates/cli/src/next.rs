//! `aps next`: a human preview of fire times.

use std::process::ExitCode;

use apscheduler_core::time::{parse_rfc3339, parse_timezone};
use apscheduler_core::{Trigger, TriggerError};
use apscheduler_triggers::{
    AnyTrigger, CalendarAction, CronTrigger, Dst, ExcludingTrigger, NamedCalendar,
};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use clap::Args;

/// Arguments of `aps next`.
#[derive(Debug, Args)]
pub(crate) struct NextArgs {
    /// Crontab text (`"0 9 * * mon-fri"`, `"@daily"`, 6 fields with seconds first, 7 with
    /// the year last, `L`, `W`, `#`, `H`) or cron fields (`"day='3rd fri' hour=0-3"`).
    expression: String,
    /// IANA timezone the expression is read in.
    #[arg(long, default_value = "UTC")]
    tz: String,
    /// How many fire times to show.
    #[arg(short = 'n', long = "count", default_value_t = 5)]
    count: usize,
    /// Show fire times at or after this RFC 3339 instant (default: now).
    #[arg(long)]
    after: Option<String>,
    /// DST policy: `default`, or `cron` (cronie's rule, as a job with `dst = "cron"`).
    #[arg(long, default_value = "default")]
    dst: String,
    /// Apply the exclusion calendar `[calendars.NAME]` of the config: excluded fire
    /// times are marked `excluded`, and with `--calendar-action next_allowed` moved.
    #[arg(long, value_name = "NAME")]
    calendar: Option<String>,
    /// What an excluded fire time becomes: `skip` (default) or `next_allowed`.
    #[arg(long, value_name = "ACTION", requires = "calendar")]
    calendar_action: Option<String>,
    /// The config whose calendars `--calendar` names (default: $APS_CONFIG, else
    /// /etc/aps/aps.toml).
    #[arg(long, value_name = "FILE", requires = "calendar")]
    config: Option<std::path::PathBuf>,
    /// The key Jenkins' `H` picks its values from: the job id (a daemon job with this id
    /// gets the same values).
    #[arg(long, value_name = "JOB_ID")]
    hash_key: Option<String>,
}

/// Splits `a=1 b='x y'` into `(name, value)` pairs, honouring quotes.
fn keyword_pairs(expr: &str) -> Result<Vec<(String, String)>, TriggerError> {
    let mut pairs = Vec::new();
    let mut chars = expr.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ';') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        let name = name.trim().to_owned();
        let mut value = String::new();
        match chars.peek() {
            Some(&q @ ('\'' | '"')) => {
                chars.next();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == q {
                        closed = true;
                        break;
                    }
                    value.push(c);
                }
                if !closed {
                    return Err(TriggerError::invalid_field(
                        name,
                        value,
                        "unterminated quoted value",
                    ));
                }
            }
            _ => {
                while let Some(c) = chars.peek() {
                    if c.is_whitespace() || *c == ';' {
                        break;
                    }
                    value.push(*c);
                    chars.next();
                }
            }
        }
        pairs.push((name, value));
    }
}

/// Builds the trigger: crontab text (its `H` hashed from `hash_key`) unless the
/// expression holds `field=value` pairs.
pub(crate) fn parse_expression(
    expr: &str,
    tz: Tz,
    hash_key: Option<&str>,
) -> Result<CronTrigger, TriggerError> {
    if !expr.contains('=') {
        return match hash_key {
            Some(key) => CronTrigger::from_crontab_hashed(expr, tz, key),
            None => CronTrigger::from_crontab(expr, tz).map_err(|e| match e {
                // Say how to give the key on this command line.
                TriggerError::InvalidField {
                    field,
                    value,
                    reason,
                } if reason.starts_with("H needs a hash key") => TriggerError::InvalidField {
                    field,
                    value,
                    reason: "H needs a hash key to pick its value: give --hash-key JOB_ID \
                             (the id of the job it stands for)"
                        .into(),
                },
                e => e,
            }),
        };
    }
    let mut builder = CronTrigger::builder().timezone(tz);
    for (name, value) in keyword_pairs(expr)? {
        builder = builder.field(&name, value)?;
    }
    builder.build()
}

/// The calendar `--calendar` names, from the config's `[calendars]`.
fn calendar_of(args: &NextArgs, name: &str) -> Result<NamedCalendar, String> {
    let path = crate::config_path::resolve(args.config.as_deref()).map_err(|e| e.to_string())?;
    let cfg = crate::daemon::config::load_settings(&path).map_err(|e| e.to_string())?;
    cfg.defaults.calendars.get(name).cloned().ok_or_else(|| {
        format!(
            "--calendar: unknown calendar '{name}' in {} (defined: {})",
            path.display(),
            crate::daemon::config::known_calendars(&cfg.defaults.calendars)
        )
    })
}

fn preview(args: &NextArgs) -> Result<String, String> {
    let tz = parse_timezone("tz", &args.tz).map_err(|e| e.to_string())?;
    let cron = parse_expression(&args.expression, tz, args.hash_key.as_deref())
        .and_then(|t| Ok(t.with_dst(Dst::parse("dst", &args.dst)?)))
        .map_err(|e| e.to_string())?;
    let after: DateTime<Tz> = match &args.after {
        Some(text) => parse_rfc3339("after", text, tz).map_err(|e| e.to_string())?,
        None => Utc::now().with_timezone(&tz),
    };
    let mut out = format!("{cron} ({})\n", tz.name());
    let trigger: Box<dyn Trigger> = match &args.calendar {
        Some(name) => {
            let calendar = calendar_of(args, name)?;
            let action = match &args.calendar_action {
                Some(a) => a
                    .parse::<CalendarAction>()
                    .map_err(|e| format!("--calendar-action: {e}"))?,
                None => CalendarAction::Skip,
            };
            out.push_str(&format!("calendar {name} ({action})\n"));
            Box::new(ExcludingTrigger::new(
                AnyTrigger::from(cron),
                calendar,
                action,
            ))
        }
        None => Box::new(cron),
    };
    let mut previous: Option<DateTime<Tz>> = None;
    let mut shown = 0;
    // Excluded fire times are listed too, marked, but only allowed ones are counted;
    // bounded so that a calendar excluding nearly everything still ends.
    let mut looked = 0;
    while shown < args.count && looked < args.count.saturating_mul(100).max(1000) {
        looked += 1;
        let next = match &previous {
            None => trigger.next_fire_time(None, &after),
            Some(p) => trigger.next_fire_time(Some(p), p),
        };
        let Some(t) = next else {
            out.push_str("(no further fire times)\n");
            break;
        };
        let excluded = trigger.excluded_by(&t);
        out.push_str(&format!(
            "{}  {}{}\n",
            t.format("%Y-%m-%d %H:%M:%S %Z (%:z)"),
            t.format("%a"),
            excluded.map_or(String::new(), |name| format!(
                "  excluded by calendar {name}"
            ))
        ));
        if excluded.is_none() {
            shown += 1;
        }
        previous = Some(t);
    }
    Ok(out)
}

pub(crate) fn run(args: &NextArgs) -> ExitCode {
    match preview(args) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyword_form_with_quotes() {
        let t = parse_expression("month=6-8,11-12 day='3rd fri' hour=0-3", Tz::UTC, None).unwrap();
        assert_eq!(
            t.to_string(),
            "cron[month='6-8,11-12', day='3rd fri', hour='0-3']"
        );
    }

    #[test]
    fn crontab_form_and_errors() {
        assert!(parse_expression("0 9 * * mon-fri", Tz::UTC, None).is_ok());
        let err = parse_expression("0 9 * *", Tz::UTC, None).unwrap_err();
        assert_eq!(err.field(), "crontab");
        let err = parse_expression("minute=60", Tz::UTC, None).unwrap_err();
        assert_eq!(err.field(), "minute");
        let err = parse_expression("bogus=1", Tz::UTC, None).unwrap_err();
        assert_eq!(err.field(), "bogus");
        let err = parse_expression("@reboot", Tz::UTC, None).unwrap_err();
        assert!(err.to_string().contains("at_start"), "{err}");
    }

    #[test]
    fn cron_forms_and_macros() {
        let daily = parse_expression("@daily", Tz::UTC, None).unwrap();
        assert_eq!(
            daily.to_string(),
            parse_expression("0 0 * * *", Tz::UTC, None)
                .unwrap()
                .to_string()
        );
        assert!(parse_expression("*/60 * * * *", Tz::UTC, None).is_ok());
        assert!(parse_expression("0 9 * * sat-0", Tz::UTC, None).is_ok());
    }

    #[test]
    fn extensions_and_h() {
        let t = parse_expression("0 0 12 L-3 * ? 2030", Tz::UTC, None).unwrap();
        assert_eq!(
            t.to_string(),
            "cron[year='2030', month='*', day='L-3', day_of_week='*', hour='12', minute='0', second='0']"
        );
        let err = parse_expression("H * * * *", Tz::UTC, None).unwrap_err();
        assert!(err.to_string().contains("--hash-key"), "{err}");
        let a = parse_expression("H * * * *", Tz::UTC, Some("backup")).unwrap();
        let b = CronTrigger::from_crontab_hashed("H * * * *", Tz::UTC, "backup").unwrap();
        assert_eq!(a, b);
    }
}
