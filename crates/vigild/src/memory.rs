//! Giving memory back after the daemon's rare big jobs (a reload's parse and second
//! config, a `services` reply at 10,000 real servers).
//!
//! glibc's malloc kept what such a job freed in the arena of the thread that freed it,
//! and the first reload doubled vigild's RSS for good (issue 18). vigild therefore runs
//! on jemalloc (the `jemalloc` feature, on by default), with a 1 s decay and a background
//! thread that purges idle arenas; a build without it uses glibc and [`trim_soon`] runs
//! `malloc_trim(0)` after each such job. Figures: docs/design.md ("Memory").

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long after the job a glibc trim runs: the old config and table are dropped by
/// other threads after the job itself returns (the director, the checker threads, the
/// IPVS thread), and the reply is written after the view is handed over.
pub const TRIM_DELAY: Duration = Duration::from_secs(2);

static SCHEDULED: AtomicBool = AtomicBool::new(false);

/// A status-socket reply at least this long is followed by [`release_soon`].
pub const BIG_REPLY: usize = 1 << 20;

/// Starts jemalloc's background purging thread. Call after `children::init` has dropped
/// the capabilities only the children thread keeps: the new thread inherits the main
/// thread's set. `Err` when jemalloc refused (memory then goes back only as its arenas
/// are used).
pub fn start_background_purge() -> Result<(), String> {
    #[cfg(feature = "jemalloc")]
    {
        let mut on = true;
        // SAFETY: "background_thread" takes a bool; `on` outlives the call, and no old
        // value is asked for.
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(
                c"background_thread".as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                (&raw mut on).cast(),
                std::mem::size_of::<bool>(),
            )
        };
        if rc != 0 {
            return Err(format!(
                "jemalloc background_thread: {}",
                std::io::Error::from_raw_os_error(rc)
            ));
        }
    }
    Ok(())
}

/// Turns transparent huge pages off for vigild. With THP `always` (Debian's default
/// kernel setting), the kernel backs the allocator's 2 MiB-aligned regions with whole
/// huge pages, and a few live objects then hold 2 MiB each: in the kernel-lab VM vigild
/// started 36 MiB above the same build on a `madvise` host (issue 18). Child programs
/// get THP back in the sandbox (`vigil_child`). `Err` only on kernels before 3.15.
pub fn no_huge_pages() -> std::io::Result<()> {
    // SAFETY: prctl with plain integer arguments; it changes only this process's flag.
    if unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// With glibc's malloc: schedules one trim [`TRIM_DELAY`] from now, unless one is already
/// scheduled (a burst of reloads or `services` calls costs one trim). With jemalloc,
/// nothing: its decay does the same. Must run inside the runtime.
pub fn trim_soon() {
    if cfg!(feature = "jemalloc") || SCHEDULED.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async {
        tokio::time::sleep(TRIM_DELAY).await;
        SCHEDULED.store(false, Ordering::Release);
        // Walks every arena's free lists: a few ms at 100 MiB, so not on a worker.
        let _ = tokio::task::spawn_blocking(trim_now).await;
    });
}

/// Returns the memory the allocator holds free to the system now, on this thread: with
/// jemalloc, purges every arena's dirty pages (the decay would take up to 1 s, and the
/// next big job, on another thread and so another arena, would add its pages to them:
/// that stacking was most of a reload's peak, issue 18); with glibc, `malloc_trim(0)`.
/// Costs a few ms at most; call it off the runtime's workers, after a big job's
/// temporaries are freed.
pub fn release_now() {
    #[cfg(feature = "jemalloc")]
    // SAFETY: both controls take no value and return none; 4096 is jemalloc's
    // MALLCTL_ARENAS_ALL ("every arena"), not exported by tikv-jemalloc-sys.
    unsafe {
        for name in [c"thread.tcache.flush", c"arena.4096.purge"] {
            let none = std::ptr::null_mut();
            tikv_jemalloc_sys::mallctl(name.as_ptr(), none, std::ptr::null_mut(), none, 0);
        }
    }
    #[cfg(not(feature = "jemalloc"))]
    trim_now();
}

/// [`release_now`] on a blocking thread, now with jemalloc; with glibc, [`trim_soon`].
/// Must run inside the runtime.
pub fn release_soon() {
    if cfg!(feature = "jemalloc") {
        drop(tokio::task::spawn_blocking(release_now));
    } else {
        trim_soon();
    }
}

/// With glibc's malloc: returns the free memory of every arena to the system now.
pub fn trim_now() {
    #[cfg(all(target_env = "gnu", not(feature = "jemalloc")))]
    // SAFETY: malloc_trim has no preconditions; it only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}
