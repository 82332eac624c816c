//! `pause` and `unpause`: lab 03's freezer stops every process of the
//! container's cgroup where it is, and the record says so, so that `ps`
//! shows "Up 3 minutes (Paused)".
//!
//! ```text
//! $ echo 1 > /sys/fs/cgroup/dockyard/$ID/cgroup.freeze    # cgroup v2
//! $ echo FROZEN > /sys/fs/cgroup/freezer/dockyard/$ID/freezer.state    # v1
//! ```

use std::sync::Mutex;

use anyhow::{bail, Result};
use lab03_cgroups as cgroups;

use super::config::config_of;
use crate::engine::Engine;
use crate::state::{Lock, Record, Status};

/// The freezes this process holds (see `Records::hold_freeze`), by
/// container ID: kept from `freeze(.., true)` to `freeze(.., false)`, or
/// to this process's end, when the kernel drops them.
static HELD: Mutex<Vec<(String, Lock)>> = Mutex::new(Vec::new());

/// Freeze or thaw a container's processes (lab 03's freezer).
///
/// Freezing first records this process as the freeze's holder, so that if
/// it dies before it thaws (a crash, kill -9), the next command sees a
/// freeze that nobody holds and thaws it (`Records::thaw_abandoned`).
pub fn freeze(engine: &Engine, record: &Record, frozen: bool) -> Result<()> {
    let config = config_of(record)?;
    let parent = config.cgroup_parent_or_default();
    let host = cgroups::detect()?;
    let held = || HELD.lock().unwrap_or_else(|p| p.into_inner());
    if frozen {
        let hold = engine.containers.hold_freeze(&record.id)?;
        held().push((record.id.clone(), hold));
    }
    let result = cgroups::freeze(&host, parent, &record.id, frozen);
    if !frozen || result.is_err() {
        // Thawed (or never frozen): this process holds nothing any more.
        held().retain(|(id, _)| *id != record.id);
    }
    result
}

/// Freeze a running container.
pub fn pause(engine: &Engine, record: &Record) -> Result<()> {
    set_paused(engine, record, true)
}

/// Thaw a paused container.
pub fn unpause(engine: &Engine, record: &Record) -> Result<()> {
    set_paused(engine, record, false)
}

fn set_paused(engine: &Engine, record: &Record, frozen: bool) -> Result<()> {
    // (reconcile thaws a freeze that a dead `cp` or `commit` left.)
    let r = engine.containers.reconcile(record.clone())?;
    check_pausable(&r, frozen)?;
    freeze(engine, &r, frozen)?;
    let lock = engine.containers.lock()?;
    let mut fresh = engine.containers.load(&r.id)?;
    fresh.state.status = if frozen {
        Status::Paused
    } else {
        Status::Running
    };
    engine.containers.save(&lock, &fresh)?;
    drop(lock);
    let action = if frozen { "pause" } else { "unpause" };
    crate::events::container(engine, &fresh, action, &[]);
    Ok(())
}

/// Docker's refusals: only a running container pauses, only a paused one
/// unpauses.
fn check_pausable(r: &Record, frozen: bool) -> Result<()> {
    match (r.state.status, frozen) {
        (Status::Running, true) | (Status::Paused, false) => Ok(()),
        (Status::Paused, true) => bail!("Container {} is already paused", r.id),
        (_, false) => bail!("Container {} is not paused", r.id),
        (_, true) => bail!("Container {} is not running", r.id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::list::tests::record;

    #[test]
    fn only_running_containers_pause_and_only_paused_ones_unpause() {
        let at = |s: Status| record("ab", "x", s, serde_json::json!({}));
        assert!(check_pausable(&at(Status::Running), true).is_ok());
        assert!(check_pausable(&at(Status::Paused), false).is_ok());
        let id = at(Status::Running).id;
        let err = |s, f| check_pausable(&at(s), f).unwrap_err().to_string();
        assert_eq!(
            err(Status::Paused, true),
            format!("Container {id} is already paused")
        );
        assert_eq!(
            err(Status::Running, false),
            format!("Container {id} is not paused")
        );
        assert_eq!(
            err(Status::Exited, true),
            format!("Container {id} is not running")
        );
    }
}
