//! `docker rm`: a container that is not running, taken away.

use super::config::config_of;
use crate::engine::Engine;
use anyhow::Result;
use lab03_cgroups as cgroups;

/// Remove a container that is not running: its writable layer, its logs,
/// its state.
pub fn remove(engine: &Engine, id: &str, anonymous_volumes: bool) -> Result<()> {
    let lock = engine.containers.lock()?;
    let anonymous: Vec<String> = match engine.containers.load(id).and_then(|r| config_of(&r)) {
        Ok(c) if anonymous_volumes => c
            .mounts
            .iter()
            .filter(|m| m.anonymous)
            .map(|m| m.source.clone())
            .collect(),
        _ => Vec::new(),
    };
    // A monitor that was killed (kill -9, a reboot) could not clean up: its
    // container's cgroup and overlay mount may still be there.
    if let Ok(record) = engine.containers.load(id) {
        let config = config_of(&record)?;
        let parent = config.cgroup_parent_or_default();
        let host = cgroups::detect()?;
        cgroups::remove_stale(&host, parent, id)?;
        if config.cgroup_parent.is_empty() && !engine.rootless {
            cgroups::remove_parent_if_empty(&host, parent)?;
        }
    }
    let layer = engine.layer_container(id)?;
    engine.images.remove_container(&layer)?;
    drop(lock);
    for name in anonymous {
        engine.volumes.remove(&name)?;
    }
    Ok(())
}
