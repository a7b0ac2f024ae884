//! Handing freed heap back to the kernel.
//!
//! Loading a large configuration and the first full step allocate several
//! times the daemon's steady working set for a moment (the YAML tree with
//! its position index, every status serialized once for the store). glibc
//! keeps freed pages mapped, scattered between live allocations, so without
//! this the resident size stays at that startup peak for the process's
//! lifetime: with 1,000 policies and 1,000 health checks about 20 MiB of it.
//! `malloc_trim(0)` returns whole free pages in every arena (MADV_DONTNEED),
//! which `MALLOC_TRIM_THRESHOLD_` alone does not (it only trims the top of
//! the main heap). Called after the configuration is loaded and after full
//! steps, it costs a few milliseconds at most.

/// Returns free heap pages to the kernel (glibc only; a no-op elsewhere).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub(crate) fn release_free_heap() {
    // SAFETY: malloc_trim takes no pointers and touches only glibc's own
    // allocator state, locking each arena while it walks it; it is safe to
    // call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Returns free heap pages to the kernel (glibc only; a no-op elsewhere).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn release_free_heap() {}
