//! `docker rm`: a container that is not running, taken away.

use std::path::Path;

use super::config::config_of;
use crate::engine::Engine;
use anyhow::{Context, Result};
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

/// Whether something is mounted exactly at `path`.
///
/// statx(2) says so in one call (STATX_ATTR_MOUNT_ROOT, Linux 5.8), where
/// reading /proc/self/mountinfo formats the whole mount table; that is the
/// fallback for an older kernel. A path that does not exist is not mounted.
pub fn is_mounted(path: &Path) -> Result<bool> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .context("a path with a NUL byte")?;
    // SAFETY: statx fills the zeroed struct we pass, of the right type.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let r = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_BASIC_STATS,
            &mut stx,
        )
    };
    if r == 0 && stx.stx_attributes_mask & libc::STATX_ATTR_MOUNT_ROOT as u64 != 0 {
        return Ok(stx.stx_attributes & libc::STATX_ATTR_MOUNT_ROOT as u64 != 0);
    }
    if r != 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::NotFound {
        return Ok(false);
    }
    let mounts =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let p = path.to_string_lossy();
    Ok(mounts
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(p.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_mounted_knows_mount_points_from_directories() {
        assert!(is_mounted(Path::new("/proc")).unwrap());
        assert!(!is_mounted(Path::new("/proc/self/fd")).unwrap());
        assert!(!is_mounted(Path::new("/no/such/dir")).unwrap());
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_mounted(dir.path()).unwrap());
    }
}
