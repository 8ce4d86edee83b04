//! Hands freed heap memory back to the kernel after the daemon's bursts; lets a
//! management command's heaps grow in large steps.
//!
//! glibc keeps what a burst freed (loading and decoding every job at start or on
//! reload) in its arenas, so an idle daemon would stay resident at that peak for as
//! long as it runs: with 1,000 jobs, 24 MB where 17 MB are in use. `malloc_trim`
//! gives the free pages back.

/// Returns the allocator's free pages to the kernel (glibc); elsewhere does nothing.
/// It walks and locks every arena, so it is called only between bursts, never on a
/// hot path.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub(crate) fn release_freed() {
    // SAFETY: malloc_trim takes a byte count, touches only the allocator's own state
    // (under its locks), and has no other precondition.
    let released = unsafe { libc::malloc_trim(0) } != 0;
    tracing::debug!(released, "freed heap pages returned to the kernel");
}

/// Returns the allocator's free pages to the kernel (glibc); elsewhere does nothing.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn release_freed() {}

/// How much more than asked the allocator takes each time a heap grows, for a
/// short-lived management command.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const COMMAND_TOP_PAD: i32 = 32 << 20;

/// For a management command, which lives for one listing: lets each glibc heap grow
/// 32 MiB at a time instead of 128 KiB. Decoding 10,000 jobs on worker threads
/// otherwise grows their arenas by `mprotect` calls (13,000 of them in `aps jobs list`);
/// the address space taken is only backed by memory where it is written. Elsewhere
/// does nothing.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub(crate) fn grow_in_large_steps() {
    // SAFETY: mallopt sets one of the allocator's parameters (under its lock); M_TOP_PAD
    // takes any non-negative byte count.
    unsafe { libc::mallopt(libc::M_TOP_PAD, COMMAND_TOP_PAD) };
}

/// For a management command: nothing to tune outside glibc.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn grow_in_large_steps() {}

/// The glibc tunable that backs malloc's heaps with transparent huge pages.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const HUGE_PAGES_TUNABLE: &str = "glibc.malloc.hugetlb";

/// For a management command that reads every job (`aps jobs`, `aps history`): runs
/// this same command again, at once, with glibc's `glibc.malloc.hugetlb=1` tunable
/// added to `GLIBC_TUNABLES`, so that its heaps are backed by transparent huge pages.
/// glibc reads tunables only when a process starts, hence the `exec` (same pid,
/// arguments, descriptors and environment; about a millisecond).
///
/// Why: `aps jobs list` on 10,000 jobs spent a fifth of its time in page faults of the
/// 100 MB it builds; with huge pages a listing of 10,000 jobs took about 126 ms instead
/// of 141 ms (docs/PERFORMANCE.md, "Listing 10,000 jobs"). The daemon does not do this: it stays small instead.
///
/// Does nothing when `GLIBC_TUNABLES` already names the tunable (either value: the
/// user's choice stands, and it ends the `exec`), when transparent huge pages are off
/// (`never`), or when the `exec` fails (the command then runs as it is).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn reexec_with_huge_pages() {
    use std::os::unix::process::CommandExt as _;
    let tunables = std::env::var_os("GLIBC_TUNABLES").unwrap_or_default();
    if tunables.to_string_lossy().contains(HUGE_PAGES_TUNABLE) {
        return;
    }
    let Ok(thp) = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled") else {
        return;
    };
    if thp.contains("[never]") {
        return;
    }
    let mut value = tunables;
    if !value.is_empty() {
        value.push(":");
    }
    value.push(HUGE_PAGES_TUNABLE);
    value.push("=1");
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_default();
    // Returns only when the exec failed.
    let _failed = std::process::Command::new("/proc/self/exe")
        .arg0(arg0)
        .args(args)
        .env("GLIBC_TUNABLES", value)
        .exec();
}

/// For a management command: nothing to tune outside glibc on Linux.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn reexec_with_huge_pages() {}
