//! The dashboard in a real browser: `aps run` with an `[http]` table on a spare loopback
//! port (no tokens: loopback clients only), and `tests/browser/dashboard.mjs` driving
//! Debian's Chromium through playwright-core against it: the jobs table, pause and
//! resume seen in the page and in `aps jobs list --json`, run now with its output on the
//! job page (which shows its exclusion calendar, a retry's attempt and a backfill mark),
//! the error banner, the refused resume of a job that runs only at start, a phone-sized
//! screen. Screenshots go to
//! `$CARGO_TARGET_TMPDIR/dashboard`.
//!
//! Needs `node`, `/usr/bin/chromium` (or `CHROMIUM`) and `npm ci --prefix tests/browser`
//! (`.ci/services.sh` installs them). Without them the test fails under CI and is
//! skipped elsewhere, with a `SKIPPED dashboard e2e:` line on stderr.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use apscheduler_testkit::server::{in_ci, skip_notice};
use support::{free_port, http_status, seed_runs, token, Daemon, Dir, APS};

const INSTALL_HINT: &str =
    "apt-get install -y chromium nodejs npm && npm ci --prefix tests/browser \
     (or `source .ci/services.sh`, which does both)";

/// The seeded runs of `nightly`: a first attempt, its retry, a backfilled run.
const FIRST_RUN: &str = "seeded-first";
const RETRY_RUN: &str = "seeded-retry";
const BACKFILL_RUN: &str = "seeded-backfill";

/// What the output of the job run by hand contains.
const MARKER: &str = "aps-dashboard-marker-7f3a";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// What is missing to run the browser test, if anything.
fn missing_tools(root: &Path) -> Option<String> {
    let node_ok = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !node_ok {
        return Some("node is not on PATH".into());
    }
    let browser = chromium();
    if !browser.is_file() {
        return Some(format!("{} is missing", browser.display()));
    }
    let driver = root.join("tests/browser/node_modules/playwright-core/package.json");
    if !driver.is_file() {
        return Some("tests/browser/node_modules/playwright-core is missing".into());
    }
    None
}

/// Runs `cmd` with its output in files under `dir`, killing it past `limit`; its exit
/// code (`None` when killed) and its stdout and stderr.
fn run_with_limit(mut cmd: Command, dir: &Path, limit: Duration) -> (Option<i32>, String, String) {
    let out = dir.join("node.out");
    let err = dir.join("node.err");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("create node.out"))
        .stderr(std::fs::File::create(&err).expect("create node.err"))
        .spawn()
        .expect("run node");
    let deadline = Instant::now() + limit;
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (
        code,
        std::fs::read_to_string(out).unwrap_or_default(),
        std::fs::read_to_string(err).unwrap_or_default(),
    )
}

/// `aps run` on a temp config with the test's jobs and `[http]` on a spare port (plus
/// `http_extra`, e.g. tokens), up once `GET /health` answers 200.
struct Setup {
    dir: Dir,
    port: u16,
    daemon: Daemon,
}

impl Setup {
    fn start(http_extra: &str) -> Setup {
        let port = free_port();
        // `nightly` never fires during the test, so the run with the marker is the one
        // the browser starts; its name checks that the page shows text as text.
        let dir = Dir::new(&format!(
            "[scheduler]\ntimezone = \"UTC\"\npoll_interval = \"200ms\"\nshutdown_grace = \"5s\"\nkill_grace = \"1s\"\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\n{http_extra}\n\
             [[jobs]]\nid = \"tick\"\ncommand = \"echo tick $APS_RUN_ID\"\ninterval = 1\n\
             [[jobs]]\nid = \"fails\"\ncommand = \"echo oops >&2; exit 3\"\ninterval = 1\n\
             [[jobs]]\nid = \"nightly\"\nname = \"Nightly report <sales & ops>\"\ncommand = \"echo {MARKER}; echo second line\"\ncron = \"0 3 * * *\"\ncalendar = \"holidays\"\n\
             [[jobs]]\nid = \"boot\"\ncommand = \"echo boot\"\nat_start = true\n\
             [calendars.holidays]\ndates = [\"2030-12-25\"]\nweekdays = [\"sun\"]\n"
        ));
        // Earlier runs of `nightly`: a failed first attempt, its retry, and a run a
        // backfill started (the job page marks the last two).
        let mut failed = apscheduler_testkit::history::record(FIRST_RUN, "nightly", 0);
        failed.outcome = apscheduler_core::RunOutcome::Failure;
        failed.exit_code = Some(1);
        // In 2000 (the record's times are in 2100), before the run made by hand.
        let century = chrono::Duration::days(36_525);
        failed.scheduled_at -= century;
        failed.started_at = failed.started_at.map(|t| t - century);
        failed.finished_at = failed.finished_at.map(|t| t - century);
        let mut retry = failed.clone();
        retry.run_id = RETRY_RUN.into();
        retry.outcome = apscheduler_core::RunOutcome::Success;
        retry.exit_code = Some(0);
        retry.attempt = 2;
        let mut backfilled = failed.clone();
        backfilled.run_id = BACKFILL_RUN.into();
        backfilled.outcome = apscheduler_core::RunOutcome::Success;
        backfilled.exit_code = Some(0);
        backfilled.scheduled_at -= chrono::Duration::days(1);
        backfilled.started_at = backfilled
            .started_at
            .map(|t| t + chrono::Duration::hours(1));
        backfilled.finished_at = backfilled
            .finished_at
            .map(|t| t + chrono::Duration::hours(1));
        backfilled.backfill = true;
        seed_runs(&dir.path().join("aps.db"), &[failed, retry, backfilled]);
        let mut daemon = dir.spawn();
        daemon.wait_healthy(port, Duration::from_secs(30));
        Setup { dir, port, daemon }
    }

    /// Runs `tests/browser/dashboard.mjs` against the daemon with `env`, screenshots to
    /// `$CARGO_TARGET_TMPDIR/<shots>`; asserts it passes. Its stdout.
    fn browser(&self, root: &Path, shots: &str, env: &[(&str, &str)]) -> PathBuf {
        let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(shots);
        let _ = std::fs::remove_dir_all(&out_dir);
        let mut node = Command::new("node");
        node.arg(root.join("tests/browser/dashboard.mjs"))
            .current_dir(root.join("tests/browser"))
            .env("APS_URL", format!("http://127.0.0.1:{}", self.port))
            .env("APS_BIN", APS)
            .env("APS_CONFIG", self.dir.config())
            .env("OUT_DIR", &out_dir)
            .env("CHROMIUM", chromium())
            .envs(env.iter().copied());
        let (code, stdout, stderr) =
            run_with_limit(node, self.dir.path(), Duration::from_secs(240));
        println!("{stdout}");
        if !stderr.trim().is_empty() {
            println!("node stderr:\n{stderr}");
        }
        assert_eq!(
            code,
            Some(0),
            "the browser test failed (exit {code:?}):\n{stdout}\n{stderr}\ndaemon log (tail):\n{}",
            tail(&self.daemon.log(), 40)
        );
        assert!(
            stdout.contains("dashboard e2e: ") && stdout.contains(" passed, 0 failed"),
            "no summary line from the browser test:\n{stdout}"
        );
        out_dir
    }

    /// SIGTERM; asserts the daemon exits 0.
    fn stop(mut self) {
        let code = self.daemon.stop();
        assert_eq!(
            code,
            Some(0),
            "aps run did not exit 0 on SIGTERM; log (tail):\n{}",
            tail(&self.daemon.log(), 40)
        );
    }
}

/// The workspace root, or `None` (after failing under CI, or a skip notice) when the
/// browser bits are missing.
fn tools_or_skip() -> Option<PathBuf> {
    let root = workspace_root();
    if let Some(missing) = missing_tools(&root) {
        assert!(
            !in_ci(),
            "dashboard e2e: {missing}, but CI is set: CI must run the browser test; install \
             with: {INSTALL_HINT}"
        );
        skip_notice(&format!(
            "dashboard e2e: {missing}; install with: {INSTALL_HINT}"
        ));
        return None;
    }
    Some(root)
}

#[test]
fn the_dashboard_in_a_browser_lists_pauses_resumes_and_runs_jobs() {
    let Some(root) = tools_or_skip() else { return };
    let setup = Setup::start("");
    let out_dir = setup.browser(
        &root,
        "dashboard",
        &[
            ("APS_MODE", "operate"),
            ("APS_PAUSE_JOB", "tick"),
            ("APS_FAIL_JOB", "fails"),
            ("APS_RUN_JOB", "nightly"),
            ("APS_RUN_MARKER", MARKER),
            ("APS_RUN_CALENDAR", "holidays"),
            ("APS_FIRST_RUN", FIRST_RUN),
            ("APS_RETRY_RUN", RETRY_RUN),
            ("APS_BACKFILL_RUN", BACKFILL_RUN),
            ("APS_START_ONLY_JOB", "boot"),
        ],
    );
    for shot in ["jobs-desktop.png", "job-desktop.png", "jobs-phone.png"] {
        let meta = std::fs::metadata(out_dir.join(shot))
            .unwrap_or_else(|e| panic!("screenshot {shot} is missing: {e}"));
        assert!(meta.len() > 1000, "screenshot {shot} is nearly empty");
    }
    setup.stop();
}

#[test]
fn the_dashboard_asks_for_a_token_and_shows_a_read_token_no_buttons() {
    let Some(root) = tools_or_skip() else { return };
    let (token, table) = token("read", "viewer");
    let setup = Setup::start(&table);
    assert_eq!(
        http_status(setup.port, "/api/status"),
        Some(401),
        "the API answers without a token"
    );
    setup.browser(
        &root,
        "dashboard-token",
        &[("APS_MODE", "read-token"), ("APS_TOKEN", &token)],
    );
    setup.stop();
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
