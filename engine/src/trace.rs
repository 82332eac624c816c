//! `DOCKYARD_TRACE=1`: where a command's time goes, phase by phase.
//!
//! ```text
//! $ DOCKYARD_TRACE=1 dockyard run --rm --network none busybox /bin/true
//! dockyard trace:   0.412 ms  (+0.412)  parsed the command line
//! dockyard trace:   1.030 ms  (+0.618)  opened the data root
//! ...
//! ```
//!
//! The clock starts when the first process starts, before the re-exec from
//! the sealed binary (see `main`), so that copy is in the total. Each line is
//! the time since then and the time since the line before. It writes
//! nothing, and costs one environment lookup, when the variable is unset.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Where the first process put its start time, for the re-executed one.
const T0_VAR: &str = "DOCKYARD_TRACE_T0";

/// CLOCK_MONOTONIC in nanoseconds: it goes on across an exec.
pub fn now_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the struct we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The start time, if tracing is on.
fn t0() -> Option<u64> {
    static T0: OnceLock<Option<u64>> = OnceLock::new();
    *T0.get_or_init(|| {
        if std::env::var_os("DOCKYARD_TRACE").is_none_or(|v| v.is_empty() || v == "0") {
            return None;
        }
        Some(
            std::env::var(T0_VAR)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(now_ns),
        )
    })
}

/// Start the clock; call first thing in `main`, before any thread exists
/// (it may set an environment variable for the re-executed process).
pub fn start() {
    if let Some(t0) = t0() {
        if std::env::var_os(T0_VAR).is_none() {
            // SAFETY: single-threaded at start-up; nothing reads the
            // environment concurrently.
            std::env::set_var(T0_VAR, t0.to_string());
        }
    }
}

/// Report that `what` is done.
pub fn phase(what: &str) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let Some(t0) = t0() else { return };
    let now = now_ns();
    let last = match LAST.swap(now, Ordering::Relaxed) {
        0 => t0,
        l => l,
    };
    eprintln!(
        "dockyard trace: {:8.3} ms  (+{:.3})  {what}  [pid {}]",
        (now - t0) as f64 / 1e6,
        (now.saturating_sub(last)) as f64 / 1e6,
        std::process::id()
    );
}
