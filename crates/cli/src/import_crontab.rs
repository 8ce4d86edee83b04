//! `aps import crontab FILE`: translate a user crontab into `[[jobs]]` tables of the daemon
//! config.
//!
//! The input is a Vixie cron / cronie *user* crontab: five time fields (or an `@` macro) and
//! the command, no user column. Environment lines (`NAME = value`) apply, positionally, to the
//! job lines after them, as cron's parser accumulates them. Whatever cannot be translated
//! faithfully (`@reboot`, a `%` that feeds standard input, a `SHELL` other than `/bin/sh`, a
//! `CRON_TZ` time zone) is reported as [`Skipped`] instead of being guessed at.
//!
//! The time fields are only checked lightly here: the daemon re-validates them with the real
//! cron parser when it loads the config.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Longest job name, in characters, taken from the start of the command.
const NAME_CHARS: usize = 60;

/// The crontab macros and their five-field equivalents (`@reboot` is not a schedule).
/// Names of the five crontab fields, for diagnostics.
const FIELD_NAMES: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];

/// Month names cron accepts (three letters, any case).
const MONTH_NAMES: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Day-of-week names cron accepts (three letters, any case).
const DAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// The result of translating one crontab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Imported {
    /// The daemon config text: a header comment and one `[[jobs]]` table per job, in file
    /// order.
    pub(crate) toml: String,
    /// The lines that produced no job (unsupported or invalid), in file order.
    pub(crate) skipped: Vec<Skipped>,
}

/// A crontab line that produced no job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Skipped {
    /// 1-based line number in the file.
    pub(crate) line: usize,
    /// The line as written, without surrounding blanks.
    pub(crate) text: String,
    /// Why it was skipped.
    pub(crate) reason: String,
}

/// One translated job.
#[derive(Debug)]
struct Job {
    line: usize,
    cron: String,
    command: String,
    env: Vec<(String, String)>,
}

/// The five-field equivalent of a crontab macro (`"@daily"` → `"0 0 * * *"`), or `None` for
/// anything else, `@reboot` included. The word must include the `@`; it is case-sensitive, as
/// in cron.
pub(crate) fn expand_macro(word: &str) -> Option<&'static str> {
    apscheduler_triggers::expand_macro(word)
}

/// Translates crontab `text` (read from `file`, named in the header comment) into daemon
/// config TOML, reporting every line that yields no job.
pub(crate) fn import(text: &str, file: &str) -> Imported {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim_matches(is_blank);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some((name, value)) = parse_env(trimmed) {
            match env.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = value,
                None => env.push((name, value)),
            }
            continue;
        }
        match parse_job(trimmed, &env) {
            Ok((cron, command)) => jobs.push(Job {
                line,
                cron,
                command,
                env: env.clone(),
            }),
            Err(reason) => skipped.push(Skipped {
                line,
                text: trimmed.to_owned(),
                reason,
            }),
        }
    }
    Imported {
        toml: render(file, &jobs),
        skipped,
    }
}

/// Reads the crontab at `path`, prints the TOML on standard output and each skipped line on
/// standard error (`<file>:<line>: skipped: <reason>: <text>`).
///
/// Exit status: 0 when every line translated, 1 when some line was skipped, 2 when the file
/// cannot be read or the output cannot be written.
pub(crate) fn run(path: &Path) -> ExitCode {
    run_with(
        path,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )
}

/// [`run`] with its output streams passed in (tests capture them).
fn run_with(path: &Path, out: &mut dyn Write, err: &mut dyn Write) -> ExitCode {
    // A failing write to standard error leaves nothing better to do: ignore it.
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            let _ = writeln!(err, "error: cannot read {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let file = path.display().to_string();
    let imported = import(&text, &file);
    if let Err(e) = out
        .write_all(imported.toml.as_bytes())
        .and_then(|()| out.flush())
    {
        let _ = writeln!(err, "error: cannot write the TOML: {e}");
        return ExitCode::from(2);
    }
    for s in &imported.skipped {
        let _ = writeln!(err, "{file}:{}: skipped: {}: {}", s.line, s.reason, s.text);
    }
    if imported.skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Field separators, as C's `isspace` without the line ends.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0b' | '\x0c' | '\r')
}

/// Recognises an environment setting the way cron's `load_env` does: a name (optionally
/// quoted), blanks, `=`, blanks, a value (optionally quoted, quotes stripped; unquoted values
/// lose their trailing blanks). `None` means "not an environment line" (it may be a job).
fn parse_env(line: &str) -> Option<(String, String)> {
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

/// Translates a job line into `(cron, command)`, or says why it cannot be.
fn parse_job(line: &str, env: &[(String, String)]) -> Result<(String, String), String> {
    let (cron, rest) = if line.starts_with('@') {
        let (word, rest) = split_word(line);
        if word == "@reboot" {
            return Err("@reboot is not supported (the daemon has no start-up schedule)".into());
        }
        match expand_macro(word) {
            Some(fields) => (fields.to_owned(), rest),
            None => return Err(format!("unknown macro `{word}`")),
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
        for (index, field) in fields.iter().enumerate() {
            check_field(index, field)?;
        }
        (fields.join(" "), rest)
    };
    let command = rest.trim_end_matches(is_blank);
    if command.is_empty() {
        return Err("missing command".into());
    }
    let command = unescape_command(command)?;
    for (name, value) in env {
        match name.as_str() {
            "SHELL" if value != "/bin/sh" => {
                return Err(format!(
                    "SHELL={value} is in force but the daemon runs commands with /bin/sh -c"
                ))
            }
            "CRON_TZ" if !value.is_empty() => {
                return Err(format!(
                    "CRON_TZ={value} is in force but the daemon config has no per-job time zone"
                ))
            }
            _ => {}
        }
    }
    Ok((cron, command))
}

/// Light check of crontab field `index`: digits, `*`, `,`, `-`, `/`, and three-letter month or
/// day names in the month and day-of-week fields. The daemon's cron parser does the rest.
fn check_field(index: usize, field: &str) -> Result<(), String> {
    let what = FIELD_NAMES[index];
    let names: &[&str] = match index {
        3 => &MONTH_NAMES,
        4 => &DAY_NAMES,
        _ => &[],
    };
    if let Some(bad) = field
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '*' | ',' | '-' | '/')))
    {
        return Err(format!(
            "invalid {what} field `{field}`: unexpected character `{bad}`"
        ));
    }
    for word in field
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
    {
        if !names.iter().any(|n| n.eq_ignore_ascii_case(word)) {
            return Err(if names.is_empty() {
                format!("invalid {what} field `{field}`: names are not allowed here")
            } else {
                format!("invalid {what} field `{field}`: unknown name `{word}`")
            });
        }
    }
    Ok(())
}

/// Applies cron's `%` rules to a command: `\%` is a literal `%` (other backslashes stay as
/// written, and a backslash escapes the character after it), while an unescaped `%` would end
/// the command and start its standard input, which the daemon cannot express.
fn unescape_command(command: &str) -> Result<String, String> {
    let mut out = String::with_capacity(command.len());
    let mut escaped = false;
    for c in command.chars() {
        if escaped {
            if c == '%' {
                out.pop();
            }
            out.push(c);
            escaped = false;
            continue;
        }
        if c == '%' {
            return Err(
                "unescaped `%` in the command (cron sends the text after it to \
                        standard input, which the daemon does not support; write `\\%` for a \
                        literal `%`)"
                    .into(),
            );
        }
        escaped = c == '\\';
        out.push(c);
    }
    Ok(out)
}

/// A TOML string value, quoted and escaped by the `toml` crate.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Renders the header comment and the `[[jobs]]` tables (keys: id, name, cron, command, env).
fn render(file: &str, jobs: &[Job]) -> String {
    // A control character (a newline, say) in the file name must not break the comment.
    let file: String = file
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    let mut out = format!("# imported from {file} by aps import crontab\n");
    for job in jobs {
        let name: String = job.command.chars().take(NAME_CHARS).collect();
        out.push_str("\n[[jobs]]\n");
        out.push_str(&format!(
            "id = {}\n",
            toml_string(&format!("line-{}", job.line))
        ));
        out.push_str(&format!("name = {}\n", toml_string(&name)));
        out.push_str(&format!("cron = {}\n", toml_string(&job.cron)));
        out.push_str(&format!("command = {}\n", toml_string(&job.command)));
        if !job.env.is_empty() {
            let table: toml::Table = job
                .env
                .iter()
                .map(|(k, v)| (k.clone(), toml::Value::String(v.clone())))
                .collect();
            out.push_str(&format!("env = {}\n", toml::Value::Table(table)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses the output back and returns its `jobs` array.
    fn parse_jobs(imported: &Imported) -> Vec<toml::Table> {
        let doc: toml::Table = toml::from_str(&imported.toml)
            .unwrap_or_else(|e| panic!("output is not TOML: {e}\n{}", imported.toml));
        match doc.get("jobs") {
            None => Vec::new(),
            Some(toml::Value::Array(items)) => items
                .iter()
                .map(|v| v.as_table().expect("a [[jobs]] table").clone())
                .collect(),
            Some(other) => panic!("jobs is not an array: {other:?}"),
        }
    }

    fn get<'a>(job: &'a toml::Table, key: &str) -> &'a str {
        job.get(key)
            .and_then(toml::Value::as_str)
            .unwrap_or_else(|| panic!("no string `{key}` in {job:?}"))
    }

    fn env_of(job: &toml::Table) -> Vec<(String, String)> {
        match job.get("env") {
            None => Vec::new(),
            Some(v) => v
                .as_table()
                .expect("env is a table")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("string value").to_owned()))
                .collect(),
        }
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn basic_job_and_header() {
        let out = import("*/5 * * * * /usr/bin/backup --full\n", "/etc/crontab.user");
        assert!(out.skipped.is_empty(), "{:?}", out.skipped);
        assert!(out
            .toml
            .starts_with("# imported from /etc/crontab.user by aps import crontab\n"));
        let jobs = parse_jobs(&out);
        assert_eq!(jobs.len(), 1);
        let job = &jobs[0];
        assert_eq!(get(job, "id"), "line-1");
        assert_eq!(get(job, "name"), "/usr/bin/backup --full");
        assert_eq!(get(job, "cron"), "*/5 * * * *");
        assert_eq!(get(job, "command"), "/usr/bin/backup --full");
        assert!(job.get("env").is_none());
        assert_eq!(job.len(), 4);
    }

    #[test]
    fn key_order_is_id_name_cron_command_env() {
        let out = import("A=1\n0 1 * * * run\n", "f");
        let keys: Vec<&str> = out
            .toml
            .lines()
            .filter_map(|l| l.split_once(" = ").map(|(k, _)| k))
            .collect();
        assert_eq!(keys, ["id", "name", "cron", "command", "env"]);
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let text = "# a comment\n\n   \n\t# indented comment\n0 3 * * * job # not a comment\n";
        let out = import(text, "f");
        assert!(out.skipped.is_empty(), "{:?}", out.skipped);
        let jobs = parse_jobs(&out);
        assert_eq!(jobs.len(), 1);
        assert_eq!(get(&jobs[0], "id"), "line-5");
        assert_eq!(get(&jobs[0], "command"), "job # not a comment");
    }

    #[test]
    fn env_is_positional() {
        let text = "\
0 1 * * * first
PATH=/usr/bin:/bin
0 2 * * * second
MAILTO=\"\"
PATH = /opt/bin
0 3 * * * third
";
        let out = import(text, "f");
        assert!(out.skipped.is_empty(), "{:?}", out.skipped);
        let jobs = parse_jobs(&out);
        assert_eq!(jobs.len(), 3);
        assert!(jobs[0].get("env").is_none());
        assert_eq!(env_of(&jobs[1]), pairs(&[("PATH", "/usr/bin:/bin")]));
        // A later assignment replaces the earlier value, for the lines after it only.
        assert_eq!(
            env_of(&jobs[2]),
            pairs(&[("PATH", "/opt/bin"), ("MAILTO", "")])
        );
    }

    #[test]
    fn env_values_quoted_and_spaced() {
        let text = "\
A = 'single quoted'
B=\"double # quoted\"
C =   plain value with spaces   \t
D=
E = \"it's\"
F='say \"hi\"'
G=a=b
\"H I\" = j
0 0 * * * cmd
";
        let out = import(text, "f");
        assert!(out.skipped.is_empty(), "{:?}", out.skipped);
        let jobs = parse_jobs(&out);
        assert_eq!(
            env_of(&jobs[0]),
            pairs(&[
                ("A", "single quoted"),
                ("B", "double # quoted"),
                ("C", "plain value with spaces"),
                ("D", ""),
                ("E", "it's"),
                ("F", "say \"hi\""),
                ("G", "a=b"),
                ("H I", "j"),
            ])
        );
    }

    #[test]
    fn parse_env_rejects_what_cron_rejects() {
        assert_eq!(parse_env("*/5 * * * * cmd"), None);
        assert_eq!(parse_env("@daily cmd"), None);
        assert_eq!(parse_env("0 0 * * * FOO=bar cmd"), None);
        assert_eq!(parse_env("FOO=\"unterminated"), None);
        assert_eq!(parse_env("FOO=\"x\" trailing"), None);
        assert_eq!(parse_env("FOO"), None);
        assert_eq!(parse_env("=value"), None);
        assert_eq!(
            parse_env("FOO = bar baz"),
            Some(("FOO".into(), "bar baz".into()))
        );
    }

    #[test]
    fn malformed_env_line_is_reported() {
        let out = import("FOO=\"unterminated\n", "f");
        assert_eq!(out.skipped.len(), 1);
        assert_eq!(out.skipped[0].line, 1);
        assert!(
            out.skipped[0].reason.contains("five time fields"),
            "{:?}",
            out.skipped
        );
    }

    #[test]
    fn every_macro() {
        let cases = [
            ("@yearly", "0 0 1 1 *"),
            ("@annually", "0 0 1 1 *"),
            ("@monthly", "0 0 1 * *"),
            ("@weekly", "0 0 * * 0"),
            ("@daily", "0 0 * * *"),
            ("@midnight", "0 0 * * *"),
            ("@hourly", "0 * * * *"),
        ];
        for (word, fields) in cases {
            assert_eq!(expand_macro(word), Some(fields), "{word}");
            let out = import(&format!("{word}\t  run it\n"), "f");
            assert!(out.skipped.is_empty(), "{word}: {:?}", out.skipped);
            let jobs = parse_jobs(&out);
            assert_eq!(get(&jobs[0], "cron"), fields, "{word}");
            assert_eq!(get(&jobs[0], "command"), "run it", "{word}");
        }
        assert_eq!(expand_macro("@reboot"), None);
        assert_eq!(expand_macro("daily"), None);
        assert_eq!(expand_macro("@Daily"), None);
        assert_eq!(expand_macro("@every"), None);
    }

    #[test]
    fn reboot_is_reported_not_emitted() {
        let out = import("@reboot /usr/bin/startup\n0 0 * * * nightly\n", "f");
        assert_eq!(
            out.skipped,
            vec![Skipped {
                line: 1,
                text: "@reboot /usr/bin/startup".into(),
                reason: "@reboot is not supported (the daemon has no start-up schedule)".into(),
            }]
        );
        let jobs = parse_jobs(&out);
        assert_eq!(jobs.len(), 1);
        assert_eq!(get(&jobs[0], "id"), "line-2");
    }

    #[test]
    fn unknown_macro_is_an_error() {
        let out = import("@fortnightly cmd\n", "f");
        assert_eq!(out.skipped.len(), 1);
        assert_eq!(out.skipped[0].reason, "unknown macro `@fortnightly`");
        assert!(parse_jobs(&out).is_empty());
    }

    #[test]
    fn macro_without_command() {
        let out = import("@daily\n@hourly   \n", "f");
        assert_eq!(out.skipped.len(), 2);
        assert!(out.skipped.iter().all(|s| s.reason == "missing command"));
    }

    #[test]
    fn percent_is_reported() {
        let out = import("0 0 * * * mail -s hi root%line one%line two\n", "f");
        assert!(parse_jobs(&out).is_empty());
        assert_eq!(out.skipped.len(), 1);
        assert!(out.skipped[0].reason.contains("unescaped `%`"));
        assert_eq!(
            out.skipped[0].text,
            "0 0 * * * mail -s hi root%line one%line two"
        );
    }

    #[test]
    fn escaped_percent_is_unescaped() {
        let out = import("0 0 * * * date +\\%Y-\\%m-\\%d > /tmp/d\n", "f");
        assert!(out.skipped.is_empty(), "{:?}", out.skipped);
        let jobs = parse_jobs(&out);
        assert_eq!(get(&jobs[0], "command"), "date +%Y-%m-%d > /tmp/d");
    }

    #[test]
    fn backslash_rules_follow_cron() {
        // Other backslashes stay as written.
        assert_eq!(unescape_command(r"echo a\tb\\c").unwrap(), r"echo a\tb\\c");
        // `\\%`: the first backslash escapes the second, so the `%` is unescaped.
        assert!(unescape_command(r"echo \\%").is_err());
        // `\\\%`: an escaped backslash, then an escaped percent.
        assert_eq!(unescape_command(r"echo \\\%").unwrap(), r"echo \\%");
        assert_eq!(unescape_command(r"a\%b\%").unwrap(), "a%b%");
    }

    #[test]
    fn invalid_field_count() {
        let out = import("* * * *\n0 0 * cmd\n", "f");
        assert!(parse_jobs(&out).is_empty());
        assert_eq!(out.skipped.len(), 2);
        assert_eq!(
            out.skipped[0].reason,
            "expected five time fields and a command, found 4 field(s)"
        );
        assert_eq!(out.skipped[1].line, 2);
        // Five fields but no command.
        let out = import("0 0 * * *\n", "f");
        assert_eq!(out.skipped[0].reason, "missing command");
    }

    #[test]
    fn fields_are_checked_lightly() {
        // A command word taken for the day-of-week field (a 4-field line).
        let out = import("0 0 * * echo hi\n", "f");
        assert_eq!(
            out.skipped[0].reason,
            "invalid day-of-week field `echo`: unknown name `echo`"
        );
        let out = import("0 0 1 * * x\n0 x * * * y\n0 0 ? * * z\n", "f");
        assert_eq!(out.skipped.len(), 2, "{:?}", out.skipped);
        assert_eq!(out.skipped[0].line, 2);
        assert_eq!(
            out.skipped[0].reason,
            "invalid hour field `x`: names are not allowed here"
        );
        assert_eq!(
            out.skipped[1].reason,
            "invalid day-of-month field `?`: unexpected character `?`"
        );
        // Names, ranges, lists and steps pass; ranges are left to the daemon.
        let out = import(
            "0-59/15 9-17 1,15 JAN-mar,Dec Mon-FRI cmd\n99 99 99 99 9 x\n",
            "f",
        );
        assert!(out.skipped.is_empty(), "{:?}", out.skipped);
        let jobs = parse_jobs(&out);
        assert_eq!(
            get(&jobs[0], "cron"),
            "0-59/15 9-17 1,15 JAN-mar,Dec Mon-FRI"
        );
    }

    #[test]
    fn tabs_and_extra_blanks_are_normalised_in_cron() {
        let out = import("0\t0  *\t* *\t\techo  two  spaces  \r\n", "f");
        let jobs = parse_jobs(&out);
        assert_eq!(get(&jobs[0], "cron"), "0 0 * * *");
        assert_eq!(get(&jobs[0], "command"), "echo  two  spaces");
    }

    #[test]
    fn shell_and_cron_tz_are_reported() {
        let text = "\
SHELL=/bin/sh
0 0 * * * ok
SHELL=/bin/bash
0 1 * * * bashism
SHELL=/bin/sh
CRON_TZ=Europe/Paris
0 2 * * * paris
CRON_TZ=
0 3 * * * back
";
        let out = import(text, "f");
        let jobs = parse_jobs(&out);
        let ids: Vec<&str> = jobs.iter().map(|j| get(j, "id")).collect();
        assert_eq!(ids, ["line-2", "line-9"]);
        assert_eq!(
            env_of(&jobs[0]),
            pairs(&[("SHELL", "/bin/sh")]),
            "SHELL=/bin/sh is kept"
        );
        assert_eq!(out.skipped.len(), 2);
        assert_eq!(out.skipped[0].line, 4);
        assert!(out.skipped[0]
            .reason
            .starts_with("SHELL=/bin/bash is in force"));
        assert_eq!(out.skipped[1].line, 7);
        assert!(out.skipped[1]
            .reason
            .starts_with("CRON_TZ=Europe/Paris is in force"));
    }

    #[test]
    fn output_round_trips_with_awkward_strings() {
        let text = "\
QUOTE = it's \"odd\" \\ here
0 0 * * * echo \"a\\b\" 'c' \u{e9}t\u{e9} \\% done\ttab
";
        let out = import(text, "f");
        assert!(out.skipped.is_empty(), "{:?}", out.skipped);
        let jobs = parse_jobs(&out);
        assert_eq!(
            get(&jobs[0], "command"),
            "echo \"a\\b\" 'c' \u{e9}t\u{e9} % done\ttab"
        );
        assert_eq!(
            env_of(&jobs[0]),
            pairs(&[("QUOTE", "it's \"odd\" \\ here")])
        );
    }

    #[test]
    fn name_is_truncated_on_char_boundaries() {
        let command = "\u{e9}".repeat(70);
        let out = import(&format!("0 0 * * * {command}\n"), "f");
        let jobs = parse_jobs(&out);
        assert_eq!(get(&jobs[0], "name"), "\u{e9}".repeat(60));
        assert_eq!(get(&jobs[0], "command"), command);
        let short = import("0 0 * * * ls\n", "f");
        assert_eq!(get(&parse_jobs(&short)[0], "name"), "ls");
    }

    #[test]
    fn ids_are_unique_line_numbers() {
        let text = "0 0 * * * a\n\n# c\n0 0 * * * a\n@daily a\nX=1\n@hourly b\n";
        let out = import(text, "f");
        let jobs = parse_jobs(&out);
        let ids: Vec<&str> = jobs.iter().map(|j| get(j, "id")).collect();
        assert_eq!(ids, ["line-1", "line-4", "line-5", "line-7"]);
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
    }

    #[test]
    fn empty_input_gives_header_only() {
        let out = import("", "empty");
        assert_eq!(out.toml, "# imported from empty by aps import crontab\n");
        assert!(parse_jobs(&out).is_empty());
        assert!(out.skipped.is_empty());
    }

    #[test]
    fn file_name_cannot_break_the_header() {
        let out = import("0 0 * * * x\n", "evil\nname = 1");
        assert!(out.toml.starts_with("# imported from evil?name = 1 by"));
        assert_eq!(parse_jobs(&out).len(), 1);
    }

    #[test]
    fn exact_output_shape() {
        let out = import("MAILTO=\"\"\n*/5 * * * * /usr/bin/backup --full\n", "ct");
        assert_eq!(
            out.toml,
            "# imported from ct by aps import crontab\n\
             \n\
             [[jobs]]\n\
             id = \"line-2\"\n\
             name = \"/usr/bin/backup --full\"\n\
             cron = \"*/5 * * * *\"\n\
             command = \"/usr/bin/backup --full\"\n\
             env = { MAILTO = \"\" }\n"
        );
    }

    /// Runs [`run_with`] on `path`, returning the exit code, stdout and stderr.
    fn run_capture(path: &Path) -> (ExitCode, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_with(path, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn run_reads_files_prints_and_sets_the_exit_code() {
        let dir = std::env::temp_dir().join(format!("aps-import-crontab-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();

        let good = dir.join("good");
        std::fs::write(&good, "0 0 * * * true\n").unwrap();
        let (code, out, err) = run_capture(&good);
        assert_eq!(code, ExitCode::SUCCESS);
        assert_eq!(
            out,
            import("0 0 * * * true\n", &good.display().to_string()).toml
        );
        assert_eq!(err, "");

        let bad = dir.join("bad");
        std::fs::write(&bad, "0 0 * * * true\n  @reboot  start  \n").unwrap();
        let (code, out, err) = run_capture(&bad);
        assert_eq!(code, ExitCode::from(1));
        assert!(out.contains("id = \"line-1\""), "{out}");
        assert_eq!(
            err,
            format!(
                "{}:2: skipped: @reboot is not supported (the daemon has no start-up \
                 schedule): @reboot  start\n",
                bad.display()
            )
        );

        let missing = dir.join("missing");
        let (code, out, err) = run_capture(&missing);
        assert_eq!(code, ExitCode::from(2));
        assert_eq!(out, "");
        assert!(
            err.starts_with(&format!("error: cannot read {}: ", missing.display())),
            "{err}"
        );

        std::fs::remove_dir_all(&dir).unwrap();
    }
}
