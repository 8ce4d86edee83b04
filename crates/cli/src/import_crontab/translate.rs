//! A whole crontab into jobs: environment lines apply to the job lines after them, as cron
//! accumulates them, and the ones cron itself acts on become job keys (`SHELL` → `shell`,
//! `CRON_TZ` → `timezone`, `MAILTO` → `mailto`); every line that yields nothing is reported.

use chrono_tz::Tz;

use crate::daemon::mail::parse_mailto;
use crate::daemon::run_as::{check_shell, RunAs};

use super::parse::{is_blank, parse_env, parse_job, JobLine, Schedule};

/// Where a crontab comes from and how cron reads it.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// What job ids start with (`<prefix>-<line>`).
    pub(crate) id_prefix: String,
    /// Six-column system format (a user column after the time fields).
    pub(crate) system: bool,
    /// The owner of a user crontab (`--user`), who runs its jobs.
    pub(crate) owner: Option<String>,
}

/// One job, ready to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Job {
    /// 1-based line of the job in its file.
    pub(crate) line: usize,
    pub(crate) id: String,
    pub(crate) name: String,
    /// The trigger text (five fields or a macro); `None` for `@reboot`.
    pub(crate) cron: Option<String>,
    pub(crate) command: String,
    pub(crate) stdin: Option<String>,
    pub(crate) user: Option<String>,
    pub(crate) shell: Option<String>,
    pub(crate) timezone: Option<String>,
    pub(crate) mailto: Option<String>,
    /// Cronie's `-n`: mail only when the run fails (`mail_when = "failure"`).
    pub(crate) mail_on_failure: bool,
    /// The other environment lines in force, in the order first set.
    pub(crate) env: Vec<(String, String)>,
}

/// How a report counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    /// The line is not in the output: the exit status says so.
    LeftOut,
    /// The line is converted, with a difference worth knowing.
    Note,
}

/// A line that is left out of the output, or converted with a difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    /// 1-based line number in the file.
    pub(crate) line: usize,
    /// The line as written, without surrounding blanks.
    pub(crate) text: String,
    pub(crate) reason: String,
    pub(crate) severity: Severity,
}

/// The jobs of one crontab and its reports, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Translated {
    pub(crate) jobs: Vec<Job>,
    pub(crate) reports: Vec<Report>,
}

/// Longest job name, in characters, taken from the start of the command.
const NAME_CHARS: usize = 60;

/// The environment lines in force, as cron holds them for the next job line.
#[derive(Debug, Default)]
struct Env {
    /// Variables for the command, in the order first set (later lines replace values).
    vars: Vec<(String, String)>,
    /// `SHELL`, `CRON_TZ` and `MAILTO`: each value with its line (for reports).
    shell: Option<(String, usize)>,
    /// An empty `CRON_TZ` means the daemon's zone again: `None`.
    cron_tz: Option<(String, usize)>,
    /// `TZ`: the jobs' zone where no `CRON_TZ` is in force (and, as in cron, a variable
    /// of the commands too).
    tz: Option<(String, usize)>,
    mailto: Option<(String, usize)>,
}

impl Env {
    fn set_var(&mut self, name: String, value: String) {
        match self.vars.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((name, value)),
        }
    }
}

/// Translates the crontab `text` read from `source`.
pub(crate) fn translate(text: &str, source: &Source) -> Translated {
    let mut env = Env::default();
    let mut out = Translated::default();
    let ends_with_newline = text.ends_with('\n');
    let count = text.lines().count();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim_matches(is_blank);
        let report = |reason: String, severity| Report {
            line,
            text: trimmed.to_owned(),
            reason,
            severity,
        };
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some((name, value)) = parse_env(trimmed) {
            if let Some(r) = apply_env(&mut env, name, value, line) {
                out.reports.push(report(r.0, r.1));
            }
            continue;
        }
        if line == count && !ends_with_newline {
            // Cron refuses a job line cut short by the end of the file.
            out.reports.push(report(
                "no newline at the end of the file: cron ignores this last line".into(),
                Severity::LeftOut,
            ));
            continue;
        }
        match parse_job(raw.trim_start_matches(is_blank), source.system)
            .and_then(|job| make_job(job, &env, source, line))
        {
            Ok(job) => out.jobs.push(job),
            Err(reason) => out.reports.push(report(reason, Severity::LeftOut)),
        }
    }
    out
}

/// Takes in an environment line; returns what to report about it, if anything.
fn apply_env(
    env: &mut Env,
    name: String,
    value: String,
    line: usize,
) -> Option<(String, Severity)> {
    match name.as_str() {
        "SHELL" => env.shell = Some((value, line)),
        "MAILTO" => env.mailto = Some((value, line)),
        "CRON_TZ" => {
            env.cron_tz = (!value.is_empty()).then_some((value.clone(), line));
            if !value.is_empty() && value.parse::<Tz>().is_err() {
                return Some((
                    format!(
                        "CRON_TZ={value} is not a known time zone: the job lines after it are \
                         left out"
                    ),
                    Severity::LeftOut,
                ));
            }
        }
        "TZ" => {
            env.tz = (!value.is_empty()).then_some((value.clone(), line));
            env.set_var(name, value.clone());
            if !value.is_empty() && value.parse::<Tz>().is_err() {
                return Some((
                    format!(
                        "TZ={value} is not a known time zone: the job lines after it are left out"
                    ),
                    Severity::LeftOut,
                ));
            }
            if env.cron_tz.is_none() && !value.is_empty() {
                return Some((
                    "TZ sets the time zone of the jobs after it (cronie schedules by CRON_TZ \
                     only, which wins where both are set) and stays in their environment"
                        .to_owned(),
                    Severity::Note,
                ));
            }
        }
        // Cron sets these to the job's user after reading the crontab's lines.
        "LOGNAME" | "USER" => {
            return Some((
                format!("cron sets {name} to the job's user: this line has no effect"),
                Severity::LeftOut,
            ))
        }
        _ => {
            let note = match name.as_str() {
                "MAILFROM" => Some(
                    "MAILFROM is kept in env; the sender of the daemon's mail is `[mail] from`",
                ),
                "RANDOM_DELAY" => {
                    Some("RANDOM_DELAY is kept in env; the daemon does not delay runs by it")
                }
                _ => None,
            };
            env.set_var(name, value);
            return note.map(|n| (n.to_owned(), Severity::Note));
        }
    }
    None
}

/// Builds the job for a parsed line under the environment in force.
fn make_job(parsed: JobLine, env: &Env, source: &Source, line: usize) -> Result<Job, String> {
    let (zone_var, zone) = match (&env.cron_tz, &env.tz) {
        (Some(z), _) => ("CRON_TZ", Some(z)),
        (None, Some(z)) => ("TZ", Some(z)),
        (None, None) => ("CRON_TZ", None),
    };
    let timezone = match zone {
        Some((zone, at)) if zone.parse::<Tz>().is_err() => {
            return Err(format!(
                "{zone_var}={zone} (line {at}) is not a known time zone"
            ))
        }
        Some((zone, _)) => Some(zone.clone()),
        None => None,
    };
    let user = parsed.user.or_else(|| source.owner.clone());
    // What `aps config check` checks, checked here: the output always passes it.
    if let Some(user) = &user {
        RunAs::resolve(user, None).map_err(|e| format!("user '{user}': {}", e.message))?;
    }
    if let Some((shell, at)) = &env.shell {
        check_shell(shell).map_err(|e| format!("SHELL={shell} (line {at}): {e}"))?;
    }
    if let Some((mailto, at)) = &env.mailto {
        parse_mailto(mailto).map_err(|e| format!("MAILTO={mailto} (line {at}): {e}"))?;
    }
    // Without MAILTO cron mails the output to the crontab's owner (for a system crontab, the
    // user column): the same address keeps that once the daemon's mail is set up.
    let mailto = match &env.mailto {
        Some((mailto, _)) => Some(mailto.clone()),
        None => user.clone(),
    };
    let name: String = parsed
        .command
        .trim_matches(is_blank)
        .chars()
        .take(NAME_CHARS)
        .collect();
    let cron = match parsed.schedule {
        Schedule::Reboot => None,
        Schedule::Macro(word) => Some(word.to_owned()),
        Schedule::Fields(fields) => Some(fields),
    };
    Ok(Job {
        line,
        id: format!("{}-{line}", source.id_prefix),
        name,
        // A start-up job has no schedule for a time zone to apply to.
        timezone: cron.as_ref().and(timezone),
        cron,
        command: parsed.command,
        stdin: parsed.stdin,
        user,
        shell: env.shell.as_ref().map(|(shell, _)| shell.clone()),
        mailto,
        mail_on_failure: parsed.mail_on_failure,
        env: env.vars.clone(),
    })
}
