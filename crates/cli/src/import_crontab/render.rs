//! The imported jobs as daemon config text: a header comment and one `[[jobs]]` table per
//! job, each preceded by a comment naming its file and line.

use super::translate::Job;

/// A TOML string value, quoted and escaped by the `toml` crate.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Replaces control characters (a newline in a file name, say) so a comment stays one line.
fn comment_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Renders the header (naming the `files` read) and the jobs, each with its `file`.
pub(crate) fn render(files: &[String], jobs: &[(String, Job)]) -> String {
    let mut out = String::from("# Imported by `aps import crontab` from:\n");
    for file in files {
        out.push_str(&format!("#   {}\n", comment_safe(file)));
    }
    out.push_str(
        "# Each job behaves as it did under cron: `dst = \"cron\"` keeps cron's rule for the\n\
         # times a daylight-saving change skips or repeats; user, shell, stdin (the text after\n\
         # a `%`), mailto, timezone (CRON_TZ) and env come from the crontab's user column, its\n\
         # command and its environment lines; `at_start` jobs are its @reboot lines.\n",
    );
    for (file, job) in jobs {
        out.push_str(&format!(
            "\n# {}:{}\n[[jobs]]\n",
            comment_safe(file),
            job.line
        ));
        let mut key = |k: &str, v: String| out.push_str(&format!("{k} = {v}\n"));
        key("id", toml_string(&job.id));
        key("name", toml_string(&job.name));
        match &job.cron {
            Some(cron) => {
                key("cron", toml_string(cron));
                key("dst", toml_string("cron"));
            }
            None => key("at_start", "true".into()),
        }
        if let Some(zone) = &job.timezone {
            key("timezone", toml_string(zone));
        }
        if let Some(user) = &job.user {
            key("user", toml_string(user));
        }
        if let Some(shell) = &job.shell {
            key("shell", toml_string(shell));
        }
        key("command", toml_string(&job.command));
        if let Some(stdin) = &job.stdin {
            key("stdin", toml_string(stdin));
        }
        if let Some(mailto) = &job.mailto {
            key("mailto", toml_string(mailto));
        }
        if job.mail_on_failure {
            key("mail_when", toml_string("failure"));
        }
        if !job.env.is_empty() {
            let table: toml::Table = job
                .env
                .iter()
                .map(|(k, v)| (k.clone(), toml::Value::String(v.clone())))
                .collect();
            key("env", toml::Value::Table(table).to_string());
        }
    }
    out
}
