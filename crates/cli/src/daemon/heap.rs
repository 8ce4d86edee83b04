//! Hands freed heap memory back to the kernel after the daemon's bursts.
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
