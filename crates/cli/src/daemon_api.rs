//! Asking the running daemon through its HTTP API: what `aps backfill` and
//! `aps jobs run --daemon` do, so that the runs are the daemon's (its executors, its
//! history, the job's overlap policy).

use std::path::Path;
use std::time::Duration;

use chrono_tz::Tz;
use serde_json::Value;

use crate::daemon::config;

/// The daemon's API: where it listens, the config's timezone, the token to send.
pub(crate) struct DaemonApi {
    pub(crate) base: String,
    pub(crate) tz: Tz,
    token: Option<String>,
}

/// An error and the exit status it gives (2: usage, 1: the daemon or the request).
pub(crate) type Failure = (u8, String);

impl DaemonApi {
    /// The API at `url`, else at the config's `[http] listen`; `what` names the command
    /// in the error when the config has no `[http]` table. The token is `token`, else
    /// `$APS_TOKEN`.
    pub(crate) fn locate(
        url: Option<&str>,
        config_file: Option<&Path>,
        token: Option<&str>,
        what: &str,
    ) -> Result<DaemonApi, Failure> {
        let usage = |e: String| (2u8, e);
        let (base, tz) = match (url, config_file) {
            (Some(url), None) => (
                url.trim_end_matches('/').to_owned(),
                apscheduler_engine::local_timezone(),
            ),
            (url, explicit) => {
                let path =
                    crate::config_path::resolve(explicit).map_err(|e| usage(e.to_string()))?;
                let cfg = config::load_settings(&path).map_err(|e| usage(e.to_string()))?;
                let base = match (url, &cfg.http) {
                    (Some(url), _) => url.trim_end_matches('/').to_owned(),
                    (None, Some(http)) => {
                        let mut at = http.listen;
                        if at.ip().is_unspecified() {
                            at.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                        }
                        format!("http://{at}")
                    }
                    (None, None) => {
                        return Err(usage(format!(
                            "{what} runs on the daemon, through its HTTP API: {} has no [http] table (add one, or give --url)",
                            path.display()
                        )))
                    }
                };
                (base, cfg.timezone)
            }
        };
        let token = token
            .map(str::to_owned)
            .or_else(|| std::env::var("APS_TOKEN").ok());
        Ok(DaemonApi { base, tz, token })
    }

    /// POSTs `body` to `path` (`/api/...`); the status and the JSON answer.
    pub(crate) fn post(&self, path: &str, body: &Value) -> Result<(u16, Value), Failure> {
        let url = format!("{}{path}", self.base);
        let mut request = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(120))
            .build()
            .post(&url)
            .set("Content-Type", "application/json");
        if let Some(token) = &self.token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        let response = match request.send_string(&body.to_string()) {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(ureq::Error::Transport(t)) => {
                return Err((
                    1,
                    format!(
                        "the daemon's HTTP API at {} cannot be reached: {t}",
                        self.base
                    ),
                ))
            }
        };
        let status = response.status();
        let text = response
            .into_string()
            .map_err(|e| (1, format!("reading the daemon's answer: {e}")))?;
        let answer: Value = serde_json::from_str(&text)
            .map_err(|_| (1, format!("the daemon answered {status}: {text}")))?;
        Ok((status, answer))
    }
}

/// A path segment with the characters a URL path cannot hold percent-encoded.
pub(crate) fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
