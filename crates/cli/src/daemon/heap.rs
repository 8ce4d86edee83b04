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
