//! End-to-end tests of mailing runs' output (`mailto`, `mail_when`, `[mail]`): the
//! real `aps run` daemon on temporary configs, mailing a real SMTP server (aiosmtpd,
//! started by the test on a free loopback port: `smtp_sink.py` beside this file), or a
//! sendmail stand-in script that records its arguments and input.
//!
//! Real time: one-off jobs run at once (a `date` in the past with a long misfire
//! grace), waits poll with generous deadlines, nothing asserts on exact timings.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use apscheduler_testkit::server::{in_ci, skip_notice};
use serde_json::Value;
use support::*;

const HEAD: &str = "[scheduler]\ntimezone = \"UTC\"\npoll_interval = \"200ms\"\nshutdown_grace = \"5s\"\nkill_grace = \"1s\"\n";

/// A fire time 30 s ago: a `date` job with `misfire_grace_time = "1h"` runs once, now.
fn past() -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(30))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// aiosmtpd on loopback, writing each message it gets to a folder (killed when dropped).
struct Sink {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Sink {
    /// The server, or `None` (with a notice) when aiosmtpd is not installed; in CI a
    /// missing aiosmtpd fails the test.
    fn start(extra: &[&str]) -> Option<Sink> {
        let found = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            if in_ci() {
                panic!("aiosmtpd is not installed: `pip install aiosmtpd==1.4.6` (.ci/services.sh does)");
            }
            skip_notice(
                "mail (apscheduler-cli): aiosmtpd is not installed; `pip install aiosmtpd==1.4.6`",
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py");
        let log = std::fs::File::create(dir.path().join("sink.log")).unwrap();
        let child = Command::new("python3")
            .arg(script)
            .arg(dir.path())
            .arg(port.to_string())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let sink = Sink { child, dir, port };
        wait_for("the SMTP server to listen", Duration::from_secs(30), || {
            sink.dir.path().join("ready").exists()
        });
        Some(sink)
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The messages received so far, oldest first.
    fn mails(&self) -> Vec<Value> {
        let mut names: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
            .collect();
        names.sort();
        names
            .iter()
            .map(|n| {
                serde_json::from_slice(&std::fs::read(self.dir.path().join(n)).unwrap()).unwrap()
            })
            .collect()
    }

    /// The messages about job `id` (their `X-Aps-Job`).
    fn mails_of(&self, id: &str) -> Vec<Value> {
        self.mails()
            .into_iter()
            .filter(|m| m["headers"]["X-Aps-Job"] == id)
            .collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn header<'a>(mail: &'a Value, name: &str) -> &'a str {
    mail["headers"][name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} header in {mail}"))
}

/// Waits until every job in `ids` has a finished run in the history.
fn wait_for_runs(dir: &Dir, ids: &[&str]) {
    wait_for(
        &format!("one finished run of each of {ids:?}"),
        Duration::from_secs(30),
        || {
            ids.iter().all(|id| {
                dir.outcomes(id)
                    .iter()
                    .any(|o| o != "running" && !o.is_empty())
            })
        },
    );
}

#[test]
fn output_is_mailed_once_as_cron_mails_it_and_quiet_or_unmailed_runs_are_not() {
    let Some(sink) = Sink::start(&[]) else { return };
    let at = past();
    let dir = Dir::new(&format!(
        "{HEAD}[mail]\nsmtp = \"{}\"\nfrom = \"cron@example.com\"\n\
         [job_defaults]\nmailto = \"defaults@example.com\"\n\
         [[jobs]]\nid = \"talks\"\ncommand = \"echo hello; echo to-stderr >&2\"\ndate = \"{at}\"\nmisfire_grace_time = \"1h\"\nmailto = \"ops@example.com, dev@example.com\"\n\
         [[jobs]]\nid = \"quiet\"\ncommand = \"true\"\ndate = \"{at}\"\nmisfire_grace_time = \"1h\"\nmailto = \"ops@example.com\"\n\
         [[jobs]]\nid = \"off\"\ncommand = \"echo not mailed\"\ndate = \"{at}\"\nmisfire_grace_time = \"1h\"\nmailto = \"\"\n\
         [[jobs]]\nid = \"inherits\"\ncommand = \"echo from the defaults\"\ndate = \"{at}\"\nmisfire_grace_time = \"1h\"\n",
        sink.url()
    ));
    let mut daemon = dir.start();
    wait_for_runs(&dir, &["talks", "quiet", "off", "inherits"]);
    wait_for("the two mails", Duration::from_secs(30), || {
        sink.mails().len() >= 2
    });
    // Late or duplicate mails would come within this.
    std::thread::sleep(Duration::from_secs(2));
    let mails = sink.mails();
    assert_eq!(mails.len(), 2, "{mails:#?}\nlog:\n{}", daemon.log());

    let talks = sink.mails_of("talks");
    assert_eq!(talks.len(), 1, "{mails:#?}");
    let mail = &talks[0];
    assert_eq!(mail["mail_from"], "cron@example.com");
    assert_eq!(
        mail["rcpt_tos"],
        serde_json::json!(["ops@example.com", "dev@example.com"])
    );
    assert_eq!(header(mail, "From"), "cron@example.com");
    assert_eq!(header(mail, "To"), "ops@example.com, dev@example.com");
    let subject = header(mail, "Subject");
    assert!(
        subject.starts_with("aps <") && subject.ends_with("> echo hello; echo to-stderr >&2"),
        "{subject}"
    );
    assert!(
        subject[5..].split('>').next().unwrap().contains('@'),
        "{subject}"
    );
    assert_eq!(header(mail, "Auto-Submitted"), "auto-generated");
    assert_eq!(header(mail, "X-Aps-Outcome"), "success");
    let run_id = dir.history("talks")[0]["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(header(mail, "X-Aps-Run"), run_id);
    assert!(header(mail, "Content-Type").starts_with("text/plain"));
    let body = mail["body"].as_str().unwrap();
    assert!(
        body.starts_with("hello\nto-stderr\n\n-- \naps: job talks, run "),
        "{body}"
    );
    assert!(body.trim_end().ends_with(": exit status 0"), "{body}");

    let inherits = sink.mails_of("inherits");
    assert_eq!(inherits.len(), 1, "{mails:#?}");
    assert_eq!(
        inherits[0]["rcpt_tos"],
        serde_json::json!(["defaults@example.com"])
    );
    assert!(inherits[0]["body"]
        .as_str()
        .unwrap()
        .starts_with("from the defaults\n"));
    assert!(
        daemon.log().contains("run output mailed"),
        "{}",
        daemon.log()
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(30)), Some(0));
}

#[test]
fn mail_when_failure_mails_failed_and_timed_out_runs_only_even_without_output() {
    let Some(sink) = Sink::start(&[]) else { return };
    let at = past();
    let dir = Dir::new(&format!(
        "{HEAD}[mail]\nsmtp = \"{}\"\n\
         [job_defaults]\nmail_when = \"failure\"\n\
         [[jobs]]\nid = \"fine\"\ncommand = \"echo all good\"\ndate = \"{at}\"\nmisfire_grace_time = \"1h\"\nmailto = \"ops@example.com\"\n\
         [[jobs]]\nid = \"broken\"\ncommand = \"exit 3\"\ndate = \"{at}\"\nmisfire_grace_time = \"1h\"\nmailto = \"ops@example.com\"\n\
         [[jobs]]\nid = \"stuck\"\ncommand = \"echo started; sleep 30\"\ntimeout = \"1s\"\ndate = \"{at}\"\nmisfire_grace_time = \"1h\"\nmailto = \"ops@example.com\"\n\
         [[jobs]]\nid = \"cron-rule\"\ncommand = \"exit 4\"\ndate = \"{at}\"\nmisfire_grace_time = \"1h\"\nmailto = \"ops@example.com\"\nmail_when = \"output\"\n",
        sink.url()
    ));
    let daemon = dir.start();
    wait_for_runs(&dir, &["fine", "broken", "stuck", "cron-rule"]);
    wait_for("the two mails", Duration::from_secs(30), || {
        sink.mails().len() >= 2
    });
    std::thread::sleep(Duration::from_secs(2));
    let mails = sink.mails();
    assert_eq!(mails.len(), 2, "{mails:#?}\nlog:\n{}", daemon.log());

    let broken = &sink.mails_of("broken")[0];
    assert_eq!(header(broken, "X-Aps-Outcome"), "exit");
    let body = broken["body"].as_str().unwrap();
    assert!(body.starts_with("-- \naps: job broken, run "), "{body}");
    assert!(body.trim_end().ends_with(": exit status 3"), "{body}");

    let stuck = &sink.mails_of("stuck")[0];
    assert_eq!(header(stuck, "X-Aps-Outcome"), "timeout");
    let body = stuck["body"].as_str().unwrap();
    assert!(body.starts_with("started\n\n-- \n"), "{body}");
    assert!(body.contains("time-out"), "{body}");
    // `fine` succeeded; `cron-rule` failed without output under cron's rule.
    assert!(sink.mails_of("fine").is_empty() && sink.mails_of("cron-rule").is_empty());
}

#[test]
fn a_long_output_is_cut_at_max_output_and_says_so() {
    let Some(sink) = Sink::start(&[]) else { return };
    let at = past();
    let dir = Dir::new(&format!(
        "{HEAD}[mail]\nsmtp = \"{}\"\nmax_output = 100\n\
         [[jobs]]\nid = \"chatty\"\ncommand = \"seq 1 1000\"\ndate = \"{at}\"\nmisfire_grace_time = \"1h\"\nmailto = \"ops@example.com\"\n",
        sink.url()
    ));
    let _daemon = dir.start();
    wait_for_runs(&dir, &["chatty"]);
    wait_for("the mail", Duration::from_secs(30), || {
        !sink.mails().is_empty()
    });
    let body = sink.mails()[0]["body"].as_str().unwrap().to_owned();
    // `seq 1 1000` writes 3893 bytes; the first 100 are "1\n2\n...".
    assert!(body.starts_with("1\n2\n3\n"), "{body}");
    assert!(
        body.contains("\n[aps: output cut: these are the first 100 of 3893 bytes]\n"),
        "{body}"
    );
    assert!(!body.contains("\n1000\n"), "{body}");
}

/// A CA and a server certificate for 127.0.0.1 it signed (openssl): `ca.pem`,
/// `cert.pem`, `key.pem` in `dir`.
fn certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("openssl cannot run ({e}): .ci/services.sh installs it"));
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=aps mail test CA",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "key.pem",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
}

#[test]
fn starttls_and_auth_with_a_trusted_ca_and_a_refused_password_is_logged() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let cert = certs.path().join("cert.pem").display().to_string();
    let key = certs.path().join("key.pem").display().to_string();
    let ca = certs.path().join("ca.pem").display().to_string();
    let Some(sink) = Sink::start(&[
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--auth",
        "aps:s3cret",
    ]) else {
        return;
    };
    let config = |password: &str| {
        format!(
            "{HEAD}[mail]\nsmtp = \"{}\"\nstarttls = true\ntls_ca = \"{ca}\"\nusername = \"aps\"\npassword = \"{password}\"\n\
             [[jobs]]\nid = \"secure\"\ncommand = \"echo over tls\"\ndate = \"{}\"\nmisfire_grace_time = \"1h\"\nmailto = \"ops@example.com\"\n",
            sink.url(),
            past()
        )
    };
    let dir = Dir::new(&config("s3cret"));
    let daemon = dir.start();
    wait_for("the mail", Duration::from_secs(30), || {
        !sink.mails().is_empty()
    });
    let mail = &sink.mails()[0];
    assert_eq!(mail["tls"], true, "{mail}");
    assert_eq!(mail["authenticated"], true, "{mail}");
    assert!(mail["body"].as_str().unwrap().starts_with("over tls\n"));
    drop(daemon);

    let dir = Dir::new(&config("wrong"));
    let daemon = dir.start();
    wait_for("the failure's log line", Duration::from_secs(30), || {
        daemon.log().contains("run output not mailed")
    });
    let log = daemon.log();
    assert!(!log.contains("wrong"), "the password is not logged:\n{log}");
    assert!(
        log.contains("535") || log.to_lowercase().contains("auth"),
        "{log}"
    );
    assert_eq!(sink.mails().len(), 1);
}

/// A Prometheus sample's value.
fn sample(metrics: &str, name: &str) -> f64 {
    let lines = metrics.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("/metrics parses");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

fn metrics(port: u16) -> String {
    ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
        .timeout(Duration::from_secs(10))
        .call()
        .unwrap()
        .into_string()
        .unwrap()
}

#[test]
fn a_down_mail_server_fails_the_mail_not_the_runs_and_is_logged_and_counted() {
    // Nothing listens there.
    let smtp = free_port();
    let http = free_port();
    let dir = Dir::new(&format!(
        "{HEAD}[http]\nlisten = \"127.0.0.1:{http}\"\n\
         [mail]\nsmtp = \"smtp://127.0.0.1:{smtp}\"\n\
         [[jobs]]\nid = \"tick\"\ncommand = \"echo tick\"\ninterval = 1\nmailto = \"ops@example.com\"\n"
    ));
    let mut daemon = dir.start();
    let start = metrics(http);
    assert_eq!(sample(&start, "aps_mail_failures_total"), 0.0, "{start}");
    wait_for(
        "three runs, all successful",
        Duration::from_secs(30),
        || {
            dir.outcomes("tick")
                .iter()
                .filter(|o| *o == "success")
                .count()
                >= 3
        },
    );
    assert!(dir
        .outcomes("tick")
        .iter()
        .all(|o| o == "success" || o == "running"));
    wait_for("two mail failures counted", Duration::from_secs(30), || {
        sample(&metrics(http), "aps_mail_failures_total") >= 2.0
    });
    assert_eq!(sample(&metrics(http), "aps_mail_sent_total"), 0.0);
    let log = daemon.log();
    let line = log
        .lines()
        .find(|l| l.contains("run output not mailed"))
        .unwrap_or_else(|| panic!("no failure line in:\n{log}"));
    assert!(
        line.contains("WARN") && line.contains("tick") && line.contains("ops@example.com"),
        "{line}"
    );
    assert!(line.contains(&format!("127.0.0.1:{smtp}")), "{line}");
    daemon.signal("TERM");
    assert_eq!(daemon.wait(Duration::from_secs(30)), Some(0));
}

/// A sendmail stand-in: records its arguments and its input in `dir`, exits `status`.
fn fake_sendmail(dir: &Path, status: i32) -> String {
    let path = dir.join("sendmail");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {0}/argv.$$\ncat > {0}/stdin.$$\nexit {status}\n",
            dir.display()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).unwrap();
    path.display().to_string()
}

fn files(dir: &Path, prefix: &str) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    found.sort();
    found
}

#[test]
fn without_smtp_mail_goes_through_sendmail_and_its_failure_is_logged() {
    let tools = tempfile::tempdir().unwrap();
    let sendmail = fake_sendmail(tools.path(), 0);
    let at = past();
    let dir = Dir::new(&format!(
        "{HEAD}[mail]\nsendmail = \"{sendmail}\"\nfrom = \"cron@example.com\"\n\
         [[jobs]]\nid = \"local\"\ncommand = \"echo via sendmail\"\ndate = \"{at}\"\nmisfire_grace_time = \"1h\"\nmailto = \"root, ops@example.com\"\n"
    ));
    let daemon = dir.start();
    wait_for_runs(&dir, &["local"]);
    wait_for("sendmail's run", Duration::from_secs(30), || {
        daemon.log().contains("run output mailed")
    });
    let argv = files(tools.path(), "argv.");
    assert_eq!(argv.len(), 1, "{argv:?}");
    let args: Vec<&str> = argv[0].lines().collect();
    assert_eq!(args.len(), 6, "{args:?}");
    assert_eq!(
        args[..4],
        ["-i", "-f", "cron@example.com", "--"],
        "{args:?}"
    );
    // `root` is a local user: its address is at this host.
    assert!(
        args[4].starts_with("root@") && args[4].len() > 5,
        "{args:?}"
    );
    assert_eq!(args[5], "ops@example.com");
    let stdin = &files(tools.path(), "stdin.")[0];
    assert!(stdin.contains("X-Aps-Job: local\r\n"), "{stdin}");
    assert!(stdin.contains("\r\n\r\nvia sendmail\r\n"), "{stdin}");
    drop(daemon);

    // A sendmail that fails: the mail's failure is logged with the job and recipients.
    let broken = tempfile::tempdir().unwrap();
    let sendmail = fake_sendmail(broken.path(), 75);
    let dir = Dir::new(&format!(
        "{HEAD}[mail]\nsendmail = \"{sendmail}\"\n\
         [[jobs]]\nid = \"local\"\ncommand = \"echo via sendmail\"\ndate = \"{at}\"\nmisfire_grace_time = \"1h\"\nmailto = \"ops@example.com\"\n"
    ));
    let daemon = dir.start();
    wait_for("the failure's log line", Duration::from_secs(30), || {
        daemon.log().contains("run output not mailed")
    });
    let log = daemon.log();
    let line = log
        .lines()
        .find(|l| l.contains("run output not mailed"))
        .unwrap();
    assert!(
        line.contains("local") && line.contains("ops@example.com") && line.contains(&sendmail),
        "{line}"
    );
    assert_eq!(dir.outcomes("local"), ["success"]);
}

#[test]
fn bad_mail_settings_are_refused_at_load_naming_the_field_and_value() {
    for (config, expected) in [
        (
            "[mail]\nsmtp = \"smtp://mail.example.com:notaport\"\n".to_owned(),
            vec!["aps.toml:1:1", "mail.smtp", "smtp://mail.example.com:notaport"],
        ),
        (
            "[mail]\nsmtp = \"http://mail.example.com\"\n".to_owned(),
            vec!["mail.smtp", "unknown scheme 'http'"],
        ),
        (
            "[job_defaults]\nmailto = \"ops@\"\n".to_owned(),
            vec!["aps.toml:2:10", "job_defaults.mailto", "'ops@'"],
        ),
        (
            format!("{HEAD}[[jobs]]\nid = \"backup\"\ncommand = \"true\"\ninterval = 60\nmailto = \"ops@example.com, not an address\"\n"),
            vec!["aps.toml:6:1", "(id 'backup')", "mailto", "'not an address'"],
        ),
        (
            format!("{HEAD}[[jobs]]\nid = \"backup\"\ncommand = \"true\"\ninterval = 60\nmail_when = \"always\"\n"),
            vec!["(id 'backup')", "mail_when", "'always'"],
        ),
    ] {
        let dir = Dir::new(&config);
        let out = dir.config_check();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{config} was accepted");
        for part in expected {
            assert!(err.contains(part), "{part:?} not in: {err}");
        }
    }
}
