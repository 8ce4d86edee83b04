//! The failures a pool reports for runs it could not complete: cancelled by a
//! shutdown, or lost with a worker that died.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use apscheduler_core::JobFailure;

use crate::{CANCELLED_KIND, EXIT_KIND, SIGNAL_KIND};

pub(super) fn cancelled_failure() -> JobFailure {
    JobFailure::new(
        CANCELLED_KIND,
        "the executor was shut down before the job finished",
    )
}

/// The failure of a run whose worker died with `status`.
pub(super) fn died_failure(pid: u32, status: ExitStatus) -> JobFailure {
    if let Some(signal) = status.signal() {
        JobFailure::new(
            SIGNAL_KIND,
            format!(
                "worker process {pid} was terminated by {} while running the job",
                describe_signal(signal)
            ),
        )
    } else {
        JobFailure::new(
            EXIT_KIND,
            format!(
                "worker process {pid} exited with {} while running the job",
                describe_status(status)
            ),
        )
    }
}

/// `exit code 3` or `signal 9 (SIGKILL)`.
pub(super) fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => describe_signal(signal),
        (None, None) => status.to_string(),
    }
}

/// `signal 9 (SIGKILL)`.
pub(crate) fn describe_signal(signal: i32) -> String {
    use rustix::process::Signal;
    const NAMES: &[(Signal, &str)] = &[
        (Signal::HUP, "SIGHUP"),
        (Signal::INT, "SIGINT"),
        (Signal::QUIT, "SIGQUIT"),
        (Signal::ILL, "SIGILL"),
        (Signal::TRAP, "SIGTRAP"),
        (Signal::ABORT, "SIGABRT"),
        (Signal::BUS, "SIGBUS"),
        (Signal::FPE, "SIGFPE"),
        (Signal::KILL, "SIGKILL"),
        (Signal::USR1, "SIGUSR1"),
        (Signal::SEGV, "SIGSEGV"),
        (Signal::USR2, "SIGUSR2"),
        (Signal::PIPE, "SIGPIPE"),
        (Signal::ALARM, "SIGALRM"),
        (Signal::TERM, "SIGTERM"),
        (Signal::XCPU, "SIGXCPU"),
        (Signal::XFSZ, "SIGXFSZ"),
        (Signal::SYS, "SIGSYS"),
    ];
    match NAMES.iter().find(|(s, _)| s.as_raw() == signal) {
        Some((_, name)) => format!("signal {signal} ({name})"),
        None => format!("signal {signal}"),
    }
}
