//! `[mail]`: mailing a run's output, as cron does.
//!
//! ```toml
//! [mail]
//! smtp = "smtp://mail.example.com:587"   # or smtps://host:465; without it: sendmail
//! from = "aps@example.com"
//! starttls = true                        # smtp:// only: upgrade before AUTH
//! tls_ca = "/etc/aps/mail-ca.pem"        # also trust this CA (PEM), for TLS
//! username = "aps"                       # AUTH, optional
//! password = "secret"
//! sendmail = "/usr/sbin/sendmail"        # when there is no smtp
//! max_output = "1MiB"                    # output carried by one mail (bytes or text)
//! ```
//!
//! A job's `mailto` and `mail_when` (or `[job_defaults]`'s) say who gets its runs.
//!
//! | module | what lives there |
//! |---|---|
//! | this one | `[mail]`, `mailto` and `mail_when`: as written and checked |
//! | [`message`] | which runs are mailed, and the message cron would send for one |
//! | [`deliver`] | the transport (SMTP or sendmail), sending off the run's path, counts |

mod deliver;
mod message;

pub(crate) use self::deliver::Mailer;

use serde::{Deserialize, Serialize};

/// The bytes of output one mail carries when `[mail] max_output` does not say.
pub(crate) const DEFAULT_MAX_OUTPUT: usize = 1024 * 1024;

/// The sendmail binary used when `[mail]` names neither `smtp` nor `sendmail`.
pub(crate) const DEFAULT_SENDMAIL: &str = "/usr/sbin/sendmail";

/// Which runs of a job are mailed (`mail_when`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum MailWhen {
    /// Cron's rule: every run that wrote output.
    #[default]
    Output,
    /// Only the runs that did not succeed (failed, timed out, interrupted), with or
    /// without output.
    Failure,
}

impl MailWhen {
    /// Whether this is the default (left out of stored definitions).
    pub(crate) fn is_output(&self) -> bool {
        *self == MailWhen::Output
    }

    /// The value as the config writes it.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            MailWhen::Output => "output",
            MailWhen::Failure => "failure",
        }
    }

    /// `"output"` or `"failure"`.
    pub(crate) fn parse(text: &str) -> Result<MailWhen, String> {
        match text.trim() {
            "output" => Ok(MailWhen::Output),
            "failure" => Ok(MailWhen::Failure),
            other => Err(format!(
                "invalid value '{other}': expected \"output\" (mail runs that wrote output, as cron) or \"failure\" (only runs that did not succeed)"
            )),
        }
    }
}

/// `mailto` text: comma-separated addresses (`user@domain`, or a local user name that
/// is sent to `user@HOST`). `""` gives no addresses: mail is off.
pub(crate) fn parse_mailto(text: &str) -> Result<Vec<String>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|part| {
            let address = part.trim();
            check_address(address)
                .map(|()| address.to_owned())
                .map_err(|e| format!("invalid address '{address}' in '{text}': {e}"))
        })
        .collect()
}

/// `[mail]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMail {
    smtp: Option<String>,
    from: Option<String>,
    starttls: Option<bool>,
    username: Option<String>,
    password: Option<String>,
    sendmail: Option<String>,
    max_output: Option<toml::Value>,
    tls_ca: Option<String>,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encryption {
    /// Plain text (`smtp://`, `starttls = false`).
    None,
    /// Plain, then STARTTLS before anything else (`smtp://`, `starttls = true`).
    StartTls,
    /// TLS from the first byte (`smtps://`).
    Implicit,
}

/// A checked `[mail] smtp` server.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SmtpServer {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: Encryption,
    /// `(username, password)` for AUTH.
    pub(crate) credentials: Option<(String, String)>,
    /// A PEM file of CA certificates trusted besides the usual roots.
    pub(crate) tls_ca: Option<String>,
}

impl std::fmt::Debug for SmtpServer {
    // The password never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpServer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.credentials.as_ref().map(|c| &c.0))
            .field("tls_ca", &self.tls_ca)
            .finish()
    }
}

/// A checked `[mail]` (Default: no `[mail]` table: sendmail at its usual place).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MailSettings {
    /// The SMTP server; `None`: mail goes through sendmail.
    pub(crate) smtp: Option<SmtpServer>,
    /// The `From:` address; `None`: `aps@HOST` with the daemon's name, as cron's
    /// `root (Cron Daemon)`.
    pub(crate) from: Option<String>,
    /// The sendmail binary named in the config; `None`: [`DEFAULT_SENDMAIL`] when it
    /// exists.
    pub(crate) sendmail: Option<String>,
    /// How many bytes of output one mail carries; `None`: [`DEFAULT_MAX_OUTPUT`].
    pub(crate) max_output: Option<usize>,
}

impl MailSettings {
    /// The output limit of one mail.
    pub(crate) fn max_output(&self) -> usize {
        self.max_output.unwrap_or(DEFAULT_MAX_OUTPUT)
    }
}

/// Checks `[mail]`; `at` is "file:line:col" of the table, for errors.
pub(crate) fn check_mail(raw: &RawMail, at: &str) -> Result<MailSettings, String> {
    let smtp = match &raw.smtp {
        None => None,
        Some(url) => Some(
            parse_smtp_url(url)
                .map_err(|e| format!("{at}: mail.smtp: invalid URL '{url}': {e}"))?,
        ),
    };
    let mut smtp = smtp;
    if let Some(server) = &mut smtp {
        match raw.starttls {
            Some(true) if server.tls == Encryption::Implicit => {
                return Err(format!(
                    "{at}: mail.starttls: true with an smtps:// URL: smtps is TLS from the first byte; use smtp:// with starttls = true, or smtps:// alone"
                ))
            }
            Some(true) => server.tls = Encryption::StartTls,
            _ => {}
        }
        server.credentials = match (&raw.username, &raw.password) {
            (Some(u), Some(p)) => Some((u.clone(), p.clone())),
            (None, None) => None,
            (Some(_), None) => {
                return Err(format!("{at}: mail.username: set without mail.password"))
            }
            (None, Some(_)) => {
                return Err(format!("{at}: mail.password: set without mail.username"))
            }
        };
        if let Some(path) = &raw.tls_ca {
            if server.tls == Encryption::None {
                return Err(format!(
                    "{at}: mail.tls_ca: '{path}' applies to TLS: use an smtps:// URL or starttls = true"
                ));
            }
            read_ca(path).map_err(|e| format!("{at}: mail.tls_ca: '{path}': {e}"))?;
            server.tls_ca = Some(path.clone());
        }
    } else {
        for (name, set) in [
            ("tls_ca", raw.tls_ca.is_some()),
            ("starttls", raw.starttls.is_some()),
            ("username", raw.username.is_some()),
            ("password", raw.password.is_some()),
        ] {
            if set {
                return Err(format!(
                    "{at}: mail.{name}: applies to an SMTP server, but mail.smtp is not set"
                ));
            }
        }
    }
    if let Some(from) = &raw.from {
        check_address(from)
            .map_err(|e| format!("{at}: mail.from: invalid address '{from}': {e}"))?;
    }
    if let Some(path) = &raw.sendmail {
        if !path.starts_with('/') {
            return Err(format!(
                "{at}: mail.sendmail: '{path}' is not an absolute path"
            ));
        }
    }
    let max_output = match &raw.max_output {
        None => None,
        Some(v) => Some(parse_size(v).map_err(|e| format!("{at}: mail.max_output: {e}"))?),
    };
    Ok(MailSettings {
        smtp,
        from: raw.from.clone(),
        sendmail: raw.sendmail.clone(),
        max_output,
    })
}

/// `smtp://host[:port]` (port 25) or `smtps://host[:port]` (port 465).
fn parse_smtp_url(text: &str) -> Result<SmtpServer, String> {
    let (scheme, rest) = text
        .split_once("://")
        .ok_or("expected smtp://host:port or smtps://host:port")?;
    let (tls, default_port) = match scheme.to_ascii_lowercase().as_str() {
        "smtp" => (Encryption::None, 25),
        "smtps" => (Encryption::Implicit, 465),
        other => return Err(format!("unknown scheme '{other}': expected smtp or smtps")),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('@') {
        return Err("credentials go in mail.username and mail.password, not in the URL".into());
    }
    if rest.contains(['/', '?', '#']) {
        return Err("expected only a host and a port after the scheme".into());
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("unclosed '[' in the host")?;
        match after {
            "" => (host, None),
            p => (
                host,
                Some(p.strip_prefix(':').ok_or("expected ':' after ']'")?),
            ),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
    {
        return Err(format!("invalid host '{host}'"));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("invalid port '{p}'")),
        },
    };
    Ok(SmtpServer {
        host: host.to_owned(),
        port,
        tls,
        credentials: None,
        tls_ca: None,
    })
}

/// The certificate of the PEM file `path` (a CA to trust for the SMTP server).
pub(crate) fn read_ca(path: &str) -> Result<lettre::transport::smtp::client::Certificate, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    lettre::transport::smtp::client::Certificate::from_pem(&pem)
        .map_err(|e| format!("not a PEM certificate: {e}"))
}

/// An address as `From:` or MAILTO gives it: `user@domain` or a bare local name.
pub(crate) fn check_address(text: &str) -> Result<(), String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty".into());
    }
    if text
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | '"'))
    {
        return Err("an address has no spaces, quotes, commas or angle brackets".into());
    }
    match text.split_once('@') {
        Some((local, domain)) if local.is_empty() || domain.is_empty() || domain.contains('@') => {
            Err("expected user@domain or a local user name".into())
        }
        Some(_) => text
            .parse::<lettre::Address>()
            .map(|_| ())
            .map_err(|e| format!("not a mail address ({e})")),
        // A local user: what is before the '@' of an address.
        None => format!("{text}@localhost")
            .parse::<lettre::Address>()
            .map(|_| ())
            .map_err(|e| format!("not a user name or mail address ({e})")),
    }
}

/// A byte count: an integer, or text such as "512KiB", "1MiB", "2MB".
fn parse_size(value: &toml::Value) -> Result<usize, String> {
    match value {
        toml::Value::Integer(n) if *n > 0 => Ok(*n as usize),
        toml::Value::String(s) => {
            let t = s.trim();
            let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
            let (digits, unit) = t.split_at(split);
            let n: usize = digits.parse().map_err(|_| {
                format!("invalid size '{s}': expected e.g. 65536, \"512KiB\", \"1MiB\"")
            })?;
            let mult = match unit.trim().to_ascii_lowercase().as_str() {
                "" | "b" => 1,
                "k" | "kb" => 1000,
                "kib" => 1024,
                "m" | "mb" => 1_000_000,
                "mib" => 1024 * 1024,
                other => return Err(format!("invalid size '{s}': unknown unit '{other}'")),
            };
            match n.checked_mul(mult) {
                Some(v) if v > 0 => Ok(v),
                _ => Err(format!("invalid size '{s}': must be more than 0")),
            }
        }
        other => Err(format!(
            "invalid size {other}: expected a byte count (65536) or text (\"512KiB\", \"1MiB\")"
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::daemon::config::{parse, Config};

    fn check(text: &str) -> Result<Config, String> {
        parse(Path::new("/etc/aps/aps.toml"), text, true).map_err(|e| e.0)
    }

    fn job(extra: &str) -> String {
        format!("[[jobs]]\nid = \"j\"\ncommand = \"true\"\ninterval = 5\n{extra}")
    }

    #[test]
    fn mailto_is_comma_separated_and_empty_turns_mail_off() {
        assert_eq!(
            parse_mailto("ops@example.com, dev@example.com,root").unwrap(),
            ["ops@example.com", "dev@example.com", "root"]
        );
        assert!(parse_mailto("").unwrap().is_empty());
        assert!(parse_mailto("  ").unwrap().is_empty());
        let err = parse_mailto("ops@example.com,,dev@example.com").unwrap_err();
        assert!(err.contains("invalid address ''"), "{err}");
        for bad in [
            "ops@",
            "@example.com",
            "a b@example.com",
            "<ops@example.com>",
            "a@b@c",
        ] {
            assert!(parse_mailto(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn a_jobs_mailto_overrides_the_defaults_and_empty_turns_them_off() {
        let mail = |text: &str| {
            let def = check(text).unwrap().jobs.remove(0);
            (def.mailto, def.mail_when)
        };
        assert_eq!(mail(&job("")), (vec![], MailWhen::Output));
        let defaults = "[job_defaults]\nmailto = \"ops@example.com\"\nmail_when = \"failure\"\n";
        assert_eq!(
            mail(&format!("{defaults}{}", job(""))),
            (vec!["ops@example.com".to_owned()], MailWhen::Failure)
        );
        assert_eq!(
            mail(&format!(
                "{defaults}{}",
                job("mailto = \"dev@example.com\"\nmail_when = \"output\"\n")
            )),
            (vec!["dev@example.com".to_owned()], MailWhen::Output)
        );
        // `mailto = ""` turns the defaults' mail off; the rule goes with it.
        assert_eq!(
            mail(&format!("{defaults}{}", job("mailto = \"\"\n"))),
            (vec![], MailWhen::Output)
        );
    }

    #[test]
    fn definitions_without_mail_are_stored_as_before() {
        let plain = check(&job("")).unwrap().jobs.remove(0);
        let stored = plain.to_kwargs();
        let keys = stored["aps"].as_object().unwrap();
        assert!(!keys.contains_key("mailto") && !keys.contains_key("mail_when"));
        // A definition stored before the keys existed reads back equal.
        let mut old = stored.clone();
        old["aps"].as_object_mut().unwrap().remove("mailto");
        assert_eq!(
            crate::daemon::config::JobDef::from_kwargs(&old).unwrap(),
            plain
        );
        let mailed = check(&job(
            "mailto = \"a@example.com\"\nmail_when = \"failure\"\n",
        ))
        .unwrap()
        .jobs
        .remove(0);
        let kwargs = mailed.to_kwargs();
        assert_eq!(
            kwargs["aps"]["mailto"],
            serde_json::json!(["a@example.com"])
        );
        assert_eq!(kwargs["aps"]["mail_when"], "failure");
        assert_eq!(
            crate::daemon::config::JobDef::from_kwargs(&kwargs).unwrap(),
            mailed
        );
    }

    #[test]
    fn bad_mail_keys_name_the_place_the_field_and_the_value() {
        let err = check(&job("mailto = \"ops@example.com, x y\"\n")).unwrap_err();
        assert!(
            err.starts_with(
                "/etc/aps/aps.toml:1:1: jobs[0] (id 'j'): mailto: invalid address 'x y'"
            ),
            "{err}"
        );
        let err = check(&job("mail_when = \"sometimes\"\n")).unwrap_err();
        assert!(
            err.contains("(id 'j'): mail_when: invalid value 'sometimes'"),
            "{err}"
        );
        let err = check("[job_defaults]\nmail_when = \"never\"\n").unwrap_err();
        assert!(
            err.starts_with(
                "/etc/aps/aps.toml:2:13: job_defaults.mail_when: invalid value 'never'"
            ),
            "{err}"
        );
        let err = check("\n[mail]\nsmtp = \"smtp://host:0\"\n").unwrap_err();
        assert!(
            err.starts_with(
                "/etc/aps/aps.toml:2:1: mail.smtp: invalid URL 'smtp://host:0': invalid port '0'"
            ),
            "{err}"
        );
        let err = check("[mail]\nfrom = \"not an address\"\n").unwrap_err();
        assert!(
            err.contains("mail.from: invalid address 'not an address'"),
            "{err}"
        );
        let err = check("[mail]\nusername = \"u\"\n").unwrap_err();
        assert!(
            err.contains("mail.username: applies to an SMTP server"),
            "{err}"
        );
        let err = check("[mail]\nsmtp = \"smtps://h\"\nstarttls = true\n").unwrap_err();
        assert!(err.contains("mail.starttls"), "{err}");
        let err = check("[mail]\nmax_output = \"1 parsec\"\n").unwrap_err();
        assert!(
            err.contains("mail.max_output: invalid size '1 parsec'"),
            "{err}"
        );
        let err = check("[mail]\nsendmail = \"sendmail\"\n").unwrap_err();
        assert!(
            err.contains("mail.sendmail: 'sendmail' is not an absolute path"),
            "{err}"
        );
        let err = check("[mail]\nsmtp = \"smtp://h\"\ntls_ca = \"/etc/ssl/ca.pem\"\n").unwrap_err();
        assert!(
            err.contains("mail.tls_ca: '/etc/ssl/ca.pem' applies to TLS"),
            "{err}"
        );
        let err = check("[mail]\nsmtps = 1\n").unwrap_err();
        assert!(err.contains("smtps"), "{err}");
        let err =
            check("[mail]\nsmtp = \"smtps://h\"\ntls_ca = \"/nonexistent/ca.pem\"\n").unwrap_err();
        assert!(
            err.contains("mail.tls_ca: '/nonexistent/ca.pem': cannot read it"),
            "{err}"
        );
        let err = check("[mail]\ntls_ca = \"/x.pem\"\n").unwrap_err();
        assert!(
            err.contains("mail.tls_ca: applies to an SMTP server"),
            "{err}"
        );
        let err = check("[mail]\nsmtp_server = \"x\"\n").unwrap_err();
        assert!(err.contains("smtp_server"), "{err}");
    }

    #[test]
    fn mail_settings_as_written() {
        let cfg = check(
            "[mail]\nsmtp = \"smtp://mail.example.com:587\"\nstarttls = true\nusername = \"u\"\npassword = \"p\"\nfrom = \"aps@example.com\"\nmax_output = \"64KiB\"\n",
        )
        .unwrap();
        let smtp = cfg.mail.smtp.clone().unwrap();
        assert_eq!(
            (smtp.host.as_str(), smtp.port, smtp.tls),
            ("mail.example.com", 587, Encryption::StartTls)
        );
        assert_eq!(smtp.credentials, Some(("u".into(), "p".into())));
        assert!(
            !format!("{:?}", cfg.mail).contains("\"p\""),
            "the password is not logged"
        );
        assert_eq!(cfg.mail.max_output(), 64 * 1024);
        let smtps = check("[mail]\nsmtp = \"smtps://[::1]\"\n")
            .unwrap()
            .mail
            .smtp
            .unwrap();
        assert_eq!(
            (smtps.host.as_str(), smtps.port, smtps.tls),
            ("::1", 465, Encryption::Implicit)
        );
        let none = check("").unwrap().mail;
        assert_eq!(none, MailSettings::default());
        assert_eq!(none.max_output(), DEFAULT_MAX_OUTPUT);
    }
}
