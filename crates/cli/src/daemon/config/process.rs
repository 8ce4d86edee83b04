//! The process options of a command job — `user`, `group`, `shell`, `stdin` — with
//! their `[job_defaults]`, and their checks: the user and group exist, only a daemon
//! running as root runs jobs as another user, and the shell is an executable file.

use super::raw::RawJob;
use super::Defaults;
use crate::daemon::run_as::{check_shell, RunAs};

/// A command job's checked process options (`None`: not set).
#[derive(Debug, Default)]
pub(super) struct ProcessOptions {
    pub(super) user: Option<String>,
    pub(super) group: Option<String>,
    pub(super) shell: Option<String>,
    pub(super) stdin: Option<String>,
}

/// A failed check: the field and why.
type Failure = (&'static str, String);

/// Checks the process options of the command job `raw`, its own or else the defaults.
pub(super) fn check(raw: &RawJob, defaults: &Defaults) -> Result<ProcessOptions, Failure> {
    let user = raw.user.clone().or_else(|| defaults.user.clone());
    let group = raw.group.clone().or_else(|| defaults.group.clone());
    let shell = raw.shell.clone().or_else(|| defaults.shell.clone());
    for (field, value) in [("user", &user), ("group", &group), ("shell", &shell)] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            return Err((field, "must not be empty".into()));
        }
    }
    match (&user, &group) {
        (Some(u), g) => {
            RunAs::resolve(u, g.as_deref()).map_err(|e| (e.field, e.message))?;
        }
        (None, Some(g)) => {
            return Err((
                "group",
                format!("'{g}' needs `user` (the user whose command runs in that group)"),
            ))
        }
        (None, None) => {}
    }
    if let Some(s) = &shell {
        check_shell(s).map_err(|e| ("shell", e))?;
    }
    Ok(ProcessOptions {
        user,
        group,
        shell,
        stdin: raw.stdin.clone(),
    })
}

/// Refuses the process options in an HTTP job (the defaults do not apply to them).
pub(super) fn refuse_for_http(raw: &RawJob) -> Result<(), Failure> {
    let set = [
        ("user", raw.user.is_some()),
        ("group", raw.group.is_some()),
        ("shell", raw.shell.is_some()),
        ("stdin", raw.stdin.is_some()),
    ];
    match set.iter().find(|(_, is_set)| *is_set) {
        Some((field, _)) => Err((field, "applies to `command` jobs only".into())),
        None => Ok(()),
    }
}
