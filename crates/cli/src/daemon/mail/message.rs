//! Which runs are mailed, and the mail for one: cron's headers and the output, with
//! the run's outcome after it.
//!
//! ```text
//! From: aps <aps@web1.example.com>
//! To: ops@example.com, dev@example.com
//! Subject: aps <root@web1> /usr/local/bin/backup --full
//! Content-Type: text/plain; charset=utf-8
//! Auto-Submitted: auto-generated
//! X-Aps-Job: backup
//! X-Aps-Run: 0193...
//! X-Aps-Outcome: exit
//!
//! (the output)
//!
//! --
//! aps: job backup, run 0193..., scheduled 2026-11-25T03:00:00+00:00: exit status 2
//! ```

use apscheduler_core::{TaskFailure, TaskResult};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::{Address, Message};

use super::MailWhen;

/// How a run ended, as its mail tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Whether the run did not succeed.
    pub(crate) failed: bool,
    /// `success`, or the failure kind (`exit`, `signal`, `timeout`, `interrupted`,
    /// `spawn`, `http`, ...): the `X-Aps-Outcome` header.
    pub(crate) kind: String,
    /// One line: `exit status 0`, `killed by signal 9`, `still running after ...`.
    pub(crate) summary: String,
    /// What an HTTP job's run returned (its response body's tail), which is its mail's
    /// output; `None` for commands (their output is captured apart).
    pub(crate) http_output: Option<String>,
}

impl Outcome {
    /// The outcome of a run's result.
    pub(crate) fn of(result: &TaskResult) -> Outcome {
        match result {
            Ok(value) => Outcome {
                failed: false,
                kind: "success".into(),
                summary: match (value.get("exit_code"), value.get("http_status")) {
                    (Some(code), _) => format!("exit status {code}"),
                    (None, Some(status)) => format!("HTTP status {status}"),
                    (None, None) => "succeeded".into(),
                },
                http_output: None,
            },
            Err(error) => match error.downcast_ref::<TaskFailure>() {
                Some(f) => Outcome {
                    failed: true,
                    kind: f.kind.clone(),
                    summary: f.message.clone(),
                    http_output: f
                        .detail
                        .as_ref()
                        .filter(|d| d.get("http_status").is_some() || f.kind == "http")
                        .and_then(|d| d.get("output"))
                        .and_then(|o| o.as_str())
                        .map(str::to_owned),
                },
                None => Outcome {
                    failed: true,
                    kind: "error".into(),
                    summary: error.to_string(),
                    http_output: None,
                },
            },
        }
    }
}

/// Whether a run is mailed: under `output` (cron's rule) a command's run that wrote
/// output, whatever its outcome; under `failure` any run that did not succeed, with or
/// without output. An HTTP job's response is not output in cron's sense: HTTP jobs are
/// mailed only under `failure`.
pub(crate) fn should_mail(when: MailWhen, is_command: bool, failed: bool, output: u64) -> bool {
    match when {
        MailWhen::Output => is_command && output > 0,
        MailWhen::Failure => failed,
    }
}

/// What one mail is about.
#[derive(Debug, Clone)]
pub(crate) struct Report<'a> {
    pub(crate) job_id: &'a str,
    pub(crate) run_id: &'a str,
    /// The user the job's command runs as (its `user`), named in the subject as cron
    /// names the crontab's owner; `None`: the daemon's own user.
    pub(crate) user: Option<&'a str>,
    /// The fire time the run was for (RFC 3339).
    pub(crate) scheduled_at: String,
    /// The command (or `GET https://...` for an HTTP job): the subject's end.
    pub(crate) what: &'a str,
    pub(crate) outcome: &'a Outcome,
    /// The first bytes of the output (at most the mail's limit).
    pub(crate) output: &'a [u8],
    /// How many bytes of output there were in all.
    pub(crate) output_total: u64,
}

/// Who sends, from where.
#[derive(Debug, Clone)]
pub(crate) struct Sender {
    /// `From:`.
    pub(crate) from: Mailbox,
    /// The user the subject names.
    pub(crate) user: String,
    /// The host name, whole (bare recipient names get `@host`); the subject takes
    /// its first label, as cron does.
    pub(crate) host: String,
}

/// The `Subject:` of a run's mail: `aps <user@host> command`, as cron's
/// `Cron <user@host> command`, on one line.
pub(crate) fn subject(user: &str, host: &str, what: &str) -> String {
    let short = host.split('.').next().unwrap_or(host);
    let what: String = what
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("aps <{user}@{short}> {}", what.trim())
}

/// The text of a run's mail: its output (cut at what the mail carries, saying so),
/// then a line with the job, the run and its outcome.
pub(crate) fn body(report: &Report<'_>) -> String {
    let mut text = String::from_utf8_lossy(report.output).into_owned();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    if report.output_total > report.output.len() as u64 {
        text.push_str(&format!(
            "[aps: output cut: these are the first {} of {} bytes]\n",
            report.output.len(),
            report.output_total
        ));
    }
    if !text.is_empty() {
        text.push('\n');
    }
    text.push_str(&format!(
        "-- \naps: job {}, run {}, scheduled {}: {}\n",
        report.job_id, report.run_id, report.scheduled_at, report.outcome.summary
    ));
    text
}

/// A recipient as an address: `user@domain` as it is, a bare user name at `host`.
pub(crate) fn recipient(text: &str, host: &str) -> Result<Address, String> {
    let full = if text.contains('@') {
        text.to_owned()
    } else {
        format!("{text}@{host}")
    };
    full.parse::<Address>()
        .map_err(|e| format!("invalid recipient '{full}': {e}"))
}

/// The mail of one run to `recipients`.
pub(crate) fn compose(
    sender: &Sender,
    recipients: &[Address],
    report: &Report<'_>,
) -> Result<Message, String> {
    let mut builder = Message::builder()
        .from(sender.from.clone())
        .subject(subject(
            report.user.unwrap_or(&sender.user),
            &sender.host,
            report.what,
        ))
        .header(ContentType::TEXT_PLAIN)
        .message_id(None);
    for to in recipients {
        builder = builder.to(Mailbox::new(None, to.clone()));
    }
    let mut message = builder
        .body(body(report))
        .map_err(|e| format!("cannot build the mail: {e}"))?;
    let headers = message.headers_mut();
    for (name, value) in [
        // RFC 3834, as cron: no auto-replies to this mail.
        ("Auto-Submitted", "auto-generated"),
        ("X-Aps-Job", report.job_id),
        ("X-Aps-Run", report.run_id),
        ("X-Aps-Outcome", report.outcome.kind.as_str()),
    ] {
        headers.insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str(name),
            value.to_owned(),
        ));
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outcome(failed: bool) -> Outcome {
        Outcome {
            failed,
            kind: if failed { "exit" } else { "success" }.into(),
            summary: if failed {
                "exit status 3"
            } else {
                "exit status 0"
            }
            .into(),
            http_output: None,
        }
    }

    #[test]
    fn output_rule_mails_commands_that_wrote_output_whatever_the_outcome() {
        assert!(should_mail(MailWhen::Output, true, false, 1));
        assert!(should_mail(MailWhen::Output, true, true, 5));
        assert!(!should_mail(MailWhen::Output, true, false, 0));
        assert!(!should_mail(MailWhen::Output, true, true, 0));
        // An HTTP job's response is not output.
        assert!(!should_mail(MailWhen::Output, false, true, 100));
    }

    #[test]
    fn failure_rule_mails_only_failed_runs_even_without_output() {
        assert!(should_mail(MailWhen::Failure, true, true, 0));
        assert!(should_mail(MailWhen::Failure, false, true, 0));
        assert!(!should_mail(MailWhen::Failure, true, false, 10));
        assert!(!should_mail(MailWhen::Failure, false, false, 10));
    }

    #[test]
    fn outcome_of_results() {
        let ok = Outcome::of(&Ok(json!({ "exit_code": 0, "output": "hi" })));
        assert_eq!((ok.failed, ok.kind.as_str()), (false, "success"));
        assert_eq!(ok.summary, "exit status 0");
        let failed: TaskResult = Err(TaskFailure::new("timeout", "still running after 1s")
            .with_detail(json!({ "output": "x" }))
            .into());
        let o = Outcome::of(&failed);
        assert_eq!((o.failed, o.kind.as_str()), (true, "timeout"));
        assert_eq!(o.summary, "still running after 1s");
        assert_eq!(o.http_output, None, "a command's output is captured apart");
        let http: TaskResult = Err(
            TaskFailure::new("http", "GET http://x: unexpected status 500")
                .with_detail(json!({ "http_status": 500, "output": "boom" }))
                .into(),
        );
        assert_eq!(Outcome::of(&http).http_output.as_deref(), Some("boom"));
    }

    #[test]
    fn subject_is_crons_with_the_short_host_on_one_line() {
        assert_eq!(
            subject("root", "web1.example.com", "backup --full\nrm -rf /tmp/x"),
            "aps <root@web1> backup --full rm -rf /tmp/x"
        );
    }

    #[test]
    fn body_is_the_output_then_the_outcome() {
        let o = outcome(true);
        let report = Report {
            job_id: "backup",
            run_id: "r1",
            user: None,
            scheduled_at: "2026-11-25T03:00:00+00:00".into(),
            what: "backup",
            outcome: &o,
            output: b"line one\nline two",
            output_total: 17,
        };
        assert_eq!(
            body(&report),
            "line one\nline two\n\n-- \naps: job backup, run r1, scheduled 2026-11-25T03:00:00+00:00: exit status 3\n"
        );
    }

    #[test]
    fn body_says_when_the_output_was_cut_and_stands_without_output() {
        let o = outcome(true);
        let mut report = Report {
            job_id: "j",
            run_id: "r",
            user: None,
            scheduled_at: "t".into(),
            what: "c",
            outcome: &o,
            output: b"abc",
            output_total: 10,
        };
        assert!(body(&report)
            .starts_with("abc\n[aps: output cut: these are the first 3 of 10 bytes]\n\n-- \n"));
        report.output = b"";
        report.output_total = 0;
        assert_eq!(
            body(&report),
            "-- \naps: job j, run r, scheduled t: exit status 3\n"
        );
    }

    #[test]
    fn bare_recipients_go_to_the_host() {
        assert_eq!(
            recipient("root", "web1.example.com").unwrap().to_string(),
            "root@web1.example.com"
        );
        assert_eq!(
            recipient("ops@example.com", "h").unwrap().to_string(),
            "ops@example.com"
        );
        assert!(recipient("a b", "h").is_err());
    }

    #[test]
    fn message_has_crons_headers_and_the_job() {
        let o = outcome(false);
        let report = Report {
            job_id: "nightly",
            run_id: "run-7",
            user: None,
            scheduled_at: "t".into(),
            what: "echo hi",
            outcome: &o,
            output: b"hi\n",
            output_total: 3,
        };
        let sender = Sender {
            from: "aps <aps@web1.example.com>".parse().unwrap(),
            user: "root".into(),
            host: "web1.example.com".into(),
        };
        let to = [
            "a@example.com".parse().unwrap(),
            "b@example.com".parse().unwrap(),
        ];
        let text = String::from_utf8(compose(&sender, &to, &report).unwrap().formatted()).unwrap();
        for line in [
            "From: aps <aps@web1.example.com>\r\n",
            "To: a@example.com, b@example.com\r\n",
            "Subject: aps <root@web1> echo hi\r\n",
            "Content-Type: text/plain; charset=utf-8\r\n",
            "Auto-Submitted: auto-generated\r\n",
            "X-Aps-Job: nightly\r\n",
            "X-Aps-Run: run-7\r\n",
            "X-Aps-Outcome: success\r\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from:\n{text}");
        }
        assert!(text.contains("\r\n\r\nhi\r\n\r\n-- \r\naps: job nightly, run run-7"));
    }

    #[test]
    fn the_subject_names_the_user_the_job_runs_as() {
        let o = outcome(false);
        let report = Report {
            job_id: "logrotate",
            run_id: "run-1",
            user: Some("www-data"),
            scheduled_at: "t".into(),
            what: "rotate",
            outcome: &o,
            output: b"x\n",
            output_total: 2,
        };
        let sender = Sender {
            from: "aps@web1".parse().unwrap(),
            user: "root".into(),
            host: "web1".into(),
        };
        let to = ["ops@example.com".parse().unwrap()];
        let text = String::from_utf8(compose(&sender, &to, &report).unwrap().formatted()).unwrap();
        assert!(
            text.contains("Subject: aps <www-data@web1> rotate\r\n"),
            "{text}"
        );
    }
}
