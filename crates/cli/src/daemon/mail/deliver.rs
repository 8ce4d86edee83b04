//! Sending runs' mails: the transport `[mail]` names (an SMTP server, or sendmail),
//! each mail in a task of its own so that the run, its record and the schedule never
//! wait for it; a time-out per mail, a bound on the mails pending, no retries; every
//! failure logged (job, recipients, reason) and counted.

use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::TaskResult;
use apscheduler_http::metrics::RunMetrics;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls as SmtpTls, TlsParameters};
use lettre::{
    Address, AsyncSendmailTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use tokio::sync::Semaphore;

use super::message::{compose, recipient, should_mail, Outcome, Report, Sender};
use super::{Encryption, MailSettings, DEFAULT_SENDMAIL};
use crate::daemon::action::{Captured, RunEnv};
use crate::daemon::config::{Action, JobDef};

/// How long one mail may take (connecting, TLS, AUTH, sending; or sendmail's run)
/// before it is given up as failed.
pub(crate) const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// The most mails being sent at once. A mail past it is not queued: it is dropped,
/// logged and counted as failed, so that a dead mail server cannot make the daemon
/// hold an ever-growing backlog of output.
pub(crate) const MAX_PENDING: usize = 64;

/// Where mails go.
enum Transport {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        /// `host:port`, for log lines.
        server: String,
    },
    Sendmail {
        transport: AsyncSendmailTransport<Tokio1Executor>,
        path: String,
    },
    /// Neither an SMTP server nor a sendmail binary: why, for every mail's failure.
    Missing(String),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Transport {
    fn describe(&self) -> String {
        match self {
            Transport::Smtp { server, .. } => format!("SMTP server {server}"),
            Transport::Sendmail { path, .. } => format!("sendmail {path}"),
            Transport::Missing(why) => format!("no transport ({why})"),
        }
    }

    async fn send(&self, message: Message) -> Result<(), String> {
        match self {
            Transport::Smtp { transport, server } => transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| format!("SMTP server {server}: {e}")),
            Transport::Sendmail { transport, path } => transport
                .send(message)
                .await
                .map_err(|e| format!("sendmail {path}: {e}")),
            Transport::Missing(why) => Err(why.clone()),
        }
    }
}

/// Mails runs' output to their jobs' `mailto`, as `[mail]` says.
#[derive(Debug)]
pub(crate) struct Mailer {
    transport: Arc<Transport>,
    sender: Sender,
    max_output: usize,
    pending: Arc<Semaphore>,
    metrics: Option<RunMetrics>,
}

impl Mailer {
    /// The mailer of `settings`; its counts go to `metrics`. Fails when the SMTP
    /// transport cannot be built (its TLS settings).
    pub(crate) fn new(
        settings: &MailSettings,
        metrics: Option<RunMetrics>,
    ) -> Result<Mailer, String> {
        let host = crate::daemon::store::host_name();
        let user = whoami::username();
        let from = match &settings.from {
            Some(from) => {
                super::message::recipient(from, &host).map_err(|e| format!("mail.from: {e}"))?
            }
            None => format!("aps@{host}")
                .parse::<Address>()
                .or_else(|_| "aps@localhost".parse())
                .map_err(|e| format!("mail.from: {e}"))?,
        };
        let transport = match &settings.smtp {
            Some(server) => {
                let parameters = || {
                    let mut builder = TlsParameters::builder(server.host.clone());
                    if let Some(path) = &server.tls_ca {
                        builder = builder.add_root_certificate(
                            super::read_ca(path)
                                .map_err(|e| format!("mail.tls_ca: '{path}': {e}"))?,
                        );
                    }
                    builder
                        .build()
                        .map_err(|e| format!("mail.smtp: TLS for '{}': {e}", server.host))
                };
                let tls = match server.tls {
                    Encryption::None => SmtpTls::None,
                    Encryption::StartTls => SmtpTls::Required(parameters()?),
                    Encryption::Implicit => SmtpTls::Wrapper(parameters()?),
                };
                let mut builder =
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server.host.clone())
                        .port(server.port)
                        .tls(tls)
                        .timeout(Some(DELIVERY_TIMEOUT));
                if let Some((user, password)) = &server.credentials {
                    builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
                }
                Transport::Smtp {
                    transport: builder.build(),
                    server: format!("{}:{}", server.host, server.port),
                }
            }
            None => {
                let path = settings
                    .sendmail
                    .clone()
                    .unwrap_or_else(|| DEFAULT_SENDMAIL.to_owned());
                if settings.sendmail.is_none() && !std::path::Path::new(&path).exists() {
                    Transport::Missing(format!(
                        "[mail] names no smtp server and there is no {DEFAULT_SENDMAIL}"
                    ))
                } else {
                    Transport::Sendmail {
                        transport: AsyncSendmailTransport::new_with_command(&path),
                        path,
                    }
                }
            }
        };
        Ok(Mailer {
            transport: Arc::new(transport),
            sender: Sender {
                from: Mailbox::new(settings.from.is_none().then(|| "aps".to_owned()), from),
                user,
                host,
            },
            max_output: settings.max_output(),
            pending: Arc::new(Semaphore::new(MAX_PENDING)),
            metrics,
        })
    }

    /// How mails are sent, for the start-up log line.
    pub(crate) fn describe(&self) -> String {
        self.transport.describe()
    }

    /// Whether the daemon can send at all (for a warning at start).
    pub(crate) fn has_transport(&self) -> bool {
        !matches!(*self.transport, Transport::Missing(_))
    }

    /// How many bytes of a command's output a run of `def` keeps for its mail: 0
    /// when the job mails nobody.
    pub(crate) fn capture_for(&self, def: &JobDef) -> usize {
        if def.mailto.is_empty() {
            0
        } else {
            self.max_output
        }
    }

    /// After a run of `def`: mails it when its job's rule says so. Returns at once;
    /// the mail is sent by a task of its own.
    pub(crate) fn after_run(
        &self,
        def: &JobDef,
        env: &RunEnv,
        result: &TaskResult,
        captured: Captured,
    ) {
        if def.mailto.is_empty() {
            return;
        }
        let outcome = Outcome::of(result);
        let is_command = matches!(def.action, Action::Command { .. });
        let (output, total) = match &outcome.http_output {
            Some(text) if !is_command => {
                let bytes = text.as_bytes();
                let cut = bytes.len().min(self.max_output);
                (bytes[..cut].to_vec(), bytes.len() as u64)
            }
            _ => (captured.head, captured.total),
        };
        if !should_mail(def.mail_when, is_command, outcome.failed, total) {
            return;
        }
        let what = match &def.action {
            Action::Command { command, .. } => command.clone(),
            Action::Http { method, url, .. } => format!("{method} {url}"),
        };
        let user = match &def.action {
            Action::Command { user, .. } => user.as_deref(),
            Action::Http { .. } => None,
        };
        let report = Report {
            job_id: &env.job_id,
            run_id: &env.run_id,
            user,
            scheduled_at: env.scheduled_at.to_rfc3339(),
            what: &what,
            outcome: &outcome,
            output: &output,
            output_total: total,
        };
        let to = def.mailto.join(", ");
        let message = def
            .mailto
            .iter()
            .map(|r| recipient(r, &self.sender.host))
            .collect::<Result<Vec<_>, _>>()
            .and_then(|recipients| compose(&self.sender, &recipients, &report));
        let message = match message {
            Ok(m) => m,
            Err(reason) => return self.failed(&env.job_id, &to, &reason),
        };
        let Ok(permit) = self.pending.clone().try_acquire_owned() else {
            return self.failed(
                &env.job_id,
                &to,
                &format!("{MAX_PENDING} mails are being sent already; this one is dropped"),
            );
        };
        let transport = self.transport.clone();
        let metrics = self.metrics.clone();
        let job = env.job_id.clone();
        tokio::spawn(async move {
            let sent = match tokio::time::timeout(DELIVERY_TIMEOUT, transport.send(message)).await {
                Ok(sent) => sent,
                Err(_) => Err(format!(
                    "{}: no answer within {}",
                    transport.describe(),
                    humantime::format_duration(DELIVERY_TIMEOUT)
                )),
            };
            match sent {
                Ok(()) => {
                    tracing::info!(job_id = %job, to = %to, via = %transport.describe(), "run output mailed");
                    if let Some(m) = &metrics {
                        m.record_mail(true);
                    }
                }
                Err(reason) => {
                    tracing::warn!(job_id = %job, to = %to, "run output not mailed: {reason}");
                    if let Some(m) = &metrics {
                        m.record_mail(false);
                    }
                }
            }
            drop(permit);
        });
    }

    fn failed(&self, job: &str, to: &str, reason: &str) {
        tracing::warn!(job_id = %job, to = %to, "run output not mailed: {reason}");
        if let Some(m) = &self.metrics {
            m.record_mail(false);
        }
    }

    /// Waits up to `limit` for the mails being sent (the daemon is stopping); how
    /// many were still being sent then (0: all done).
    pub(crate) async fn flush(&self, limit: Duration) -> usize {
        match tokio::time::timeout(limit, self.pending.acquire_many(MAX_PENDING as u32)).await {
            Ok(_) => 0,
            Err(_) => MAX_PENDING - self.pending.available_permits(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::mail::SmtpServer;
    use apscheduler_http::metrics::MetricsOptions;
    use serde_json::json;

    /// A mailer to a server that accepts connections and never answers.
    fn to_a_black_hole() -> (Mailer, RunMetrics, std::net::TcpListener) {
        let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let settings = MailSettings {
            smtp: Some(SmtpServer {
                host: "127.0.0.1".into(),
                port: hole.local_addr().unwrap().port(),
                tls: Encryption::None,
                credentials: None,
                tls_ca: None,
            }),
            ..MailSettings::default()
        };
        let metrics = RunMetrics::prometheus(MetricsOptions::default());
        let mailer = Mailer::new(&settings, Some(metrics.clone())).unwrap();
        (mailer, metrics, hole)
    }

    fn job() -> JobDef {
        let text = "[[jobs]]\nid = \"j\"\ncommand = \"echo hi\"\ninterval = 5\nmailto = \"ops@example.com\"\n";
        crate::daemon::config::parse(std::path::Path::new("/aps.toml"), text, true)
            .unwrap()
            .jobs
            .remove(0)
    }

    fn env() -> RunEnv {
        RunEnv {
            job_id: "j".into(),
            run_id: "r".into(),
            scheduled_at: chrono::Utc::now().with_timezone(&chrono_tz::UTC),
            attempt: 1,
            idempotency_key: "j@2026-01-01T00:00:00.000000Z#1".into(),
            fence: None,
            cancel: Default::default(),
        }
    }

    fn failures(metrics: &RunMetrics) -> String {
        let text = metrics.render().unwrap();
        text.lines()
            .find(|l| l.starts_with("aps_mail_failures_total "))
            .unwrap_or_default()
            .to_owned()
    }

    #[tokio::test]
    async fn past_the_bound_a_mail_is_dropped_and_counted_not_queued() {
        let (mailer, metrics, _hole) = to_a_black_hole();
        let (def, env) = (job(), env());
        let output = || Captured {
            head: b"hi\n".to_vec(),
            total: 3,
        };
        for _ in 0..MAX_PENDING {
            mailer.after_run(&def, &env, &Ok(json!({ "exit_code": 0 })), output());
        }
        assert_eq!(mailer.pending.available_permits(), 0);
        assert_eq!(failures(&metrics), "aps_mail_failures_total 0");
        // One more: refused at once, not waiting for a place.
        mailer.after_run(&def, &env, &Ok(json!({ "exit_code": 0 })), output());
        assert_eq!(failures(&metrics), "aps_mail_failures_total 1");
        // The stop does not wait longer than it is told to, and says how many are left.
        assert_eq!(mailer.flush(Duration::from_millis(50)).await, MAX_PENDING);
    }

    #[tokio::test]
    async fn runs_the_rule_does_not_mail_take_no_place() {
        let (mailer, metrics, _hole) = to_a_black_hole();
        let (def, env) = (job(), env());
        // No output under the default rule (`output`): nothing sent.
        mailer.after_run(
            &def,
            &env,
            &Ok(json!({ "exit_code": 0 })),
            Captured::default(),
        );
        assert_eq!(mailer.pending.available_permits(), MAX_PENDING);
        assert_eq!(mailer.flush(Duration::from_millis(50)).await, 0);
        assert_eq!(failures(&metrics), "aps_mail_failures_total 0");
    }
}
