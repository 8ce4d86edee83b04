//! One crontab line as cron reads it: an environment setting (cron's `load_env`), a job
//! line (time fields or an `@` macro, the user column in system crontabs, the command), and
//! the command's `%` rules (cron's `do_command`).

use apscheduler_triggers::CronTrigger;
use chrono_tz::Tz;

/// The crontab macros that are schedules (`@reboot` is not one).
const MACROS: [&str; 7] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// The five-field equivalent of a crontab macro (`"@daily"` → `"0 0 * * *"`), or `None` for
/// anything else, `@reboot` included: the triggers crate's table, which the daemon's
/// crontab trigger reads too.
pub(crate) fn expand_macro(word: &str) -> Option<&'static str> {
    apscheduler_triggers::expand_macro(word)
}

/// When a job line runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Schedule {
    /// `@reboot`: once when cron starts.
    Reboot,
    /// A macro such as `@daily`, as written.
    Macro(&'static str),
    /// The five time fields, joined by single spaces.
    Fields(String),
}

/// A job line, split as cron splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobLine {
    pub(crate) schedule: Schedule,
    /// The user column (system crontabs only).
    pub(crate) user: Option<String>,
    /// The command: the text before the first unescaped `%`, each `\%` made a `%`.
    pub(crate) command: String,
    /// What cron writes to the command's standard input (the text after the first unescaped
    /// `%`), or `None` when cron writes nothing.
    pub(crate) stdin: Option<String>,
    /// Cronie's `-n` before the command: mail only when the run fails.
    pub(crate) mail_on_failure: bool,
}

/// Field separators, as C's `isspace` without the line ends.
pub(crate) fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0b' | '\x0c' | '\r')
}

/// Recognises an environment setting the way cron's `load_env` does: a name (optionally
/// quoted), blanks, `=`, blanks, a value (optionally quoted, quotes stripped; unquoted values
/// lose their trailing blanks). `None` means "not an environment line" (it may be a job).
pub(crate) fn parse_env(line: &str) -> Option<(String, String)> {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum State {
        Name,
        Eq1,
        Eq2,
        Value,
        Fini,
    }
    let mut chars = line.chars().peekable();
    let mut name = String::new();
    let mut value = String::new();
    let mut quote = None;
    if let Some(&q @ ('\'' | '"')) = chars.peek() {
        quote = Some(q);
        chars.next();
    }
    let mut state = State::Name;
    while let Some(&c) = chars.peek() {
        match state {
            State::Name => match quote {
                Some(q) if c == q => {
                    state = State::Eq1;
                    chars.next();
                }
                Some(_) if c == '=' => return None,
                None if is_blank(c) => {
                    state = State::Eq1;
                    chars.next();
                }
                None if c == '=' => state = State::Eq1,
                _ => {
                    name.push(c);
                    chars.next();
                }
            },
            State::Eq1 => {
                if c == '=' {
                    state = State::Eq2;
                    quote = None;
                } else if !is_blank(c) {
                    return None;
                }
                chars.next();
            }
            State::Eq2 => {
                if is_blank(c) {
                    chars.next();
                } else {
                    state = State::Value;
                    if c == '\'' || c == '"' {
                        quote = Some(c);
                        chars.next();
                    }
                }
            }
            State::Value => {
                if quote == Some(c) {
                    state = State::Fini;
                } else {
                    value.push(c);
                }
                chars.next();
            }
            State::Fini => {
                if !is_blank(c) {
                    return None;
                }
                chars.next();
            }
        }
    }
    match state {
        State::Eq2 | State::Fini => {}
        State::Value if quote.is_none() => {
            let kept = value.trim_end_matches(is_blank).len();
            value.truncate(kept);
        }
        _ => return None,
    }
    if name.is_empty() {
        return None;
    }
    Some((name, value))
}

/// Splits off the first blank-separated word: `(word, rest without leading blanks)`.
fn split_word(text: &str) -> (&str, &str) {
    match text.find(is_blank) {
        Some(end) => (&text[..end], text[end..].trim_start_matches(is_blank)),
        None => (text, ""),
    }
}

/// Splits a job line (leading blanks removed, trailing ones kept: they belong to the command
/// or its standard input) into its schedule, user column (when `system`), command and
/// standard input, or says why cron would refuse it.
pub(crate) fn parse_job(line: &str, system: bool) -> Result<JobLine, String> {
    // Cronie's `-` before the schedule only keeps the run out of syslog: nothing to carry.
    let line = line.strip_prefix('-').unwrap_or(line);
    let (schedule, rest) = if line.starts_with('@') {
        let (word, rest) = split_word(line);
        if word == "@reboot" {
            (Schedule::Reboot, rest)
        } else {
            match MACROS.iter().find(|name| **name == word) {
                Some(name) => (Schedule::Macro(name), rest),
                None => {
                    return Err(format!(
                        "unknown macro `{word}` (cron knows @reboot, @yearly, @annually, \
                         @monthly, @weekly, @daily, @midnight, @hourly)"
                    ))
                }
            }
        }
    } else {
        let mut fields = Vec::with_capacity(5);
        let mut rest = line;
        for _ in 0..5 {
            let (word, tail) = split_word(rest);
            if word.is_empty() {
                break;
            }
            fields.push(word);
            rest = tail;
        }
        if fields.len() < 5 {
            return Err(format!(
                "expected five time fields and a command, found {} field(s)",
                fields.len()
            ));
        }
        let fields = fields.join(" ");
        // cronie's reading, through the daemon's own crontab parser: what passes here passes
        // `aps config check`, and the daemon's extensions (`L`, `W`, `#`, `?`, `H`), which
        // cronie does not run, do not pass.
        if let Err(e) = CronTrigger::from_cronie(&fields, Tz::UTC) {
            return Err(format!("invalid time fields `{fields}`: {e}"));
        }
        (Schedule::Fields(fields), rest)
    };
    let (user, rest) = if system {
        let (user, rest) = split_word(rest);
        if user.is_empty() {
            return Err("missing user column (system crontab: time fields, user, command)".into());
        }
        (Some(user.to_owned()), rest)
    } else {
        (None, rest)
    };
    // Cronie's options before the command: `-n` (mail only on failure) is the only one.
    let mut rest = rest;
    let mut mail_on_failure = false;
    while let Some(option) = rest.strip_prefix('-') {
        match option.strip_prefix('n') {
            Some(tail) if tail.starts_with(is_blank) && !mail_on_failure => {
                mail_on_failure = true;
                rest = tail.trim_start_matches(is_blank);
            }
            _ => {
                let (word, _) = split_word(rest);
                return Err(format!(
                    "unknown option `{word}` before the command (cronie knows `-n` once)"
                ));
            }
        }
    }
    if rest.trim_matches(is_blank).is_empty() {
        return Err("missing command".into());
    }
    let (command, stdin) = split_percent(rest);
    Ok(JobLine {
        schedule,
        user,
        command,
        stdin,
        mail_on_failure,
    })
}

/// Applies cron's `%` rules to the command part of a job line: an unescaped `%` ends the
/// command and starts its standard input; `\%` before it is a literal `%` (the backslash
/// dropped); every other backslash stays, escaping the character after it.
pub(crate) fn split_percent(text: &str) -> (String, Option<String>) {
    let mut command = String::with_capacity(text.len());
    let mut escaped = false;
    for (at, c) in text.char_indices() {
        if escaped {
            if c == '%' {
                command.pop();
            }
            command.push(c);
            escaped = false;
            continue;
        }
        if c == '%' {
            return (command, stdin_text(&text[at + 1..]));
        }
        escaped = c == '\\';
        command.push(c);
    }
    (command, None)
}

/// What cron writes to standard input for the text after the first unescaped `%`: each
/// further unescaped `%` becomes a newline, `\%` a `%`, any other backslash stays, and a
/// newline ends the text unless it already ends with one. Empty text: cron writes nothing.
fn stdin_text(text: &str) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len() + 1);
    let mut escaped = false;
    let mut need_newline = false;
    for mut c in text.chars() {
        if escaped {
            if c != '%' {
                out.push('\\');
            }
        } else if c == '%' {
            c = '\n';
        }
        escaped = c == '\\';
        if !escaped {
            out.push(c);
            need_newline = c != '\n';
        }
    }
    if escaped {
        out.push('\\');
    }
    if need_newline {
        out.push('\n');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_env_follows_load_env() {
        assert_eq!(parse_env("*/5 * * * * cmd"), None);
        assert_eq!(parse_env("@daily cmd"), None);
        assert_eq!(parse_env("0 0 * * * FOO=bar cmd"), None);
        assert_eq!(parse_env("FOO=\"unterminated"), None);
        assert_eq!(parse_env("FOO=\"x\" trailing"), None);
        assert_eq!(parse_env("FOO"), None);
        assert_eq!(parse_env("=value"), None);
        assert_eq!(parse_env("\"A=B\"=c"), None);
        let ok = |l: &str, n: &str, v: &str| {
            assert_eq!(parse_env(l), Some((n.to_owned(), v.to_owned())), "{l}")
        };
        ok("FOO = bar baz", "FOO", "bar baz");
        ok("A = 'single quoted'", "A", "single quoted");
        ok("B=\"double # quoted\"", "B", "double # quoted");
        ok("C =   plain value  \t", "C", "plain value");
        ok("D=", "D", "");
        ok("E = \"it's\"  ", "E", "it's");
        ok("F='say \"hi\"'", "F", "say \"hi\"");
        ok("G=a=b", "G", "a=b");
        ok("\"H I\" = j", "H I", "j");
        ok("MAILTO=\"\"", "MAILTO", "");
        ok("K=' keep blanks '", "K", " keep blanks ");
    }

    #[test]
    fn macros() {
        for word in MACROS {
            assert!(expand_macro(word).is_some(), "{word}");
            let job = parse_job(&format!("{word}\t run it"), false).unwrap();
            assert_eq!(job.schedule, Schedule::Macro(word));
            assert_eq!(job.command, "run it");
        }
        assert_eq!(expand_macro("@reboot"), None);
        assert_eq!(expand_macro("@Daily"), None);
        let reboot = parse_job("@reboot root /bin/start", true).unwrap();
        assert_eq!(reboot.schedule, Schedule::Reboot);
        assert_eq!(reboot.user.as_deref(), Some("root"));
        assert!(parse_job("@fortnightly cmd", false)
            .unwrap_err()
            .starts_with("unknown macro `@fortnightly`"));
        assert_eq!(
            parse_job("@daily   ", false).unwrap_err(),
            "missing command"
        );
    }

    #[test]
    fn system_lines_have_a_user_column() {
        let job = parse_job(
            "17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly",
            true,
        )
        .unwrap();
        assert_eq!(job.schedule, Schedule::Fields("17 * * * *".into()));
        assert_eq!(job.user.as_deref(), Some("root"));
        assert_eq!(job.command, "cd / && run-parts --report /etc/cron.hourly");
        // The same line in a user crontab: `root` is the command's first word.
        let user = parse_job("17 * * * * root cmd", false).unwrap();
        assert_eq!(user.user, None);
        assert_eq!(user.command, "root cmd");
        assert!(parse_job("0 0 * * * root", true)
            .unwrap_err()
            .contains("missing command"));
        assert!(parse_job("0 0 * * *   ", true)
            .unwrap_err()
            .starts_with("missing user column"));
    }

    #[test]
    fn time_fields_are_checked_by_the_daemon_parser() {
        let err = parse_job("0 0 * * echo hi", false).unwrap_err();
        assert!(
            err.starts_with("invalid time fields `0 0 * * echo`"),
            "{err}"
        );
        let err = parse_job("61 0 * * * x", false).unwrap_err();
        assert!(err.starts_with("invalid time fields `61 0 * * *`"), "{err}");
        // Forms the daemon reads but cronie refuses (or runs otherwise) are left out, as
        // cronie would not run them.
        for line in [
            "0 0 L * * cmd",
            "0 0 L-3 * * cmd",
            "0 0 LW * * cmd",
            "0 0 15W * * cmd",
            "0 0 * * 5L cmd",
            "0 0 * * 1#2 cmd",
            "0 0 ? * 1 cmd",
            "H H * * * cmd",
        ] {
            let err = parse_job(line, false).unwrap_err();
            assert!(err.starts_with("invalid time fields"), "{line}: {err}");
        }
        assert_eq!(
            parse_job("* * * *", false).unwrap_err(),
            "expected five time fields and a command, found 4 field(s)"
        );
        let job = parse_job("0-59/15 9-17 1,15 JAN-mar,Dec Mon-FRI cmd", false).unwrap();
        assert_eq!(
            job.schedule,
            Schedule::Fields("0-59/15 9-17 1,15 JAN-mar,Dec Mon-FRI".into())
        );
    }

    #[test]
    fn cronie_prefixes() {
        let job = parse_job("-0 0 * * * root -n  /bin/job -n", true).unwrap();
        assert_eq!(job.schedule, Schedule::Fields("0 0 * * *".into()));
        assert!(job.mail_on_failure);
        assert_eq!(job.command, "/bin/job -n");
        assert!(
            !parse_job("0 0 * * * /bin/job -n", false)
                .unwrap()
                .mail_on_failure
        );
        assert_eq!(
            parse_job("0 0 * * * -x job", false).unwrap_err(),
            "unknown option `-x` before the command (cronie knows `-n` once)"
        );
        assert!(parse_job("0 0 * * * -n -n job", false).is_err());
        assert_eq!(
            parse_job("@daily -n   ", false).unwrap_err(),
            "missing command"
        );
    }

    #[test]
    fn command_keeps_its_text() {
        let job = parse_job("0\t0  *\t* *\t\techo  two  spaces  ", false).unwrap();
        assert_eq!(job.schedule, Schedule::Fields("0 0 * * *".into()));
        // Cron keeps the blanks after the command: they can matter (`echo a\ `).
        assert_eq!(job.command, "echo  two  spaces  ");
        assert_eq!(job.stdin, None);
    }

    #[test]
    fn percent_rules_follow_cron() {
        let split = |t: &str| split_percent(t);
        assert_eq!(split("date +\\%Y-\\%m"), ("date +%Y-%m".into(), None));
        // Other backslashes stay as written.
        assert_eq!(split(r"echo a\tb\\c"), (r"echo a\tb\\c".into(), None));
        // `\\%`: the first backslash escapes the second, so the `%` is unescaped.
        assert_eq!(split(r"echo \\%x"), (r"echo \\".into(), Some("x\n".into())));
        // `\\\%`: an escaped backslash, then an escaped percent.
        assert_eq!(split(r"echo \\\%"), (r"echo \\%".into(), None));
        // The crontab(5) example: each further `%` is a newline; a final newline added once.
        assert_eq!(
            split("mail -s \"It's 10pm\" joe%Joe,%%Where are your kids?%"),
            (
                "mail -s \"It's 10pm\" joe".into(),
                Some("Joe,\n\nWhere are your kids?\n".into())
            )
        );
        assert_eq!(split("cat%a%b"), ("cat".into(), Some("a\nb\n".into())));
        // A `%` at the very end: cron writes nothing to standard input.
        assert_eq!(split("cat%"), ("cat".into(), None));
        // In the input, `\%` is a `%`, other backslashes stay, a final backslash stays.
        assert_eq!(
            split(r"cat%100\% sure\n%x\"),
            ("cat".into(), Some("100% sure\\n\nx\\\n".into()))
        );
        // `\\%` in the input: one backslash written, then a literal `%`.
        assert_eq!(split(r"cat%a\\%b"), ("cat".into(), Some("a\\%b\n".into())));
        // Trailing blanks of the input are kept, as cron sends them.
        assert_eq!(split("cat%hi  "), ("cat".into(), Some("hi  \n".into())));
    }
}
