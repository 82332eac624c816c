//! Time bounds that allow for a slow machine.
//!
//! The v2 tier (`scripts/v2-tier`) runs the cgroup tests in a QEMU guest
//! under software emulation (TCG), where a container starts about 30 times
//! and a test binary runs about 10 times slower than on the host. A test
//! asserts shares and ranges where it can; where it must bound a wall time
//! ("the stop timeout ended it, not the 30 s sleep"), it scales the bound
//! by `DOCKYARD_TEST_SLOWDOWN` (a factor, default 1), which the tier sets.

use std::time::Duration;

/// How much slower than the host this machine is (`DOCKYARD_TEST_SLOWDOWN`).
pub fn slowdown() -> u32 {
    std::env::var("DOCKYARD_TEST_SLOWDOWN")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(1)
}

/// A wall-time bound `d`, measured on the host, for this machine.
pub fn bound(d: Duration) -> Duration {
    d * slowdown()
}
