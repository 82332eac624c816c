//! # Device nodes of a container's own: `--device`, an OCI `linux.devices`
//!
//! A container's `/dev` is a fresh tmpfs with a handful of nodes (lab 01's
//! `mount_dev`). Any other device it is meant to use, `/dev/fuse` or a GPU,
//! is a node made in that tmpfs with mknod(2): the same type and numbers as
//! on the host, which is all a device node is. Whether it may be *opened* is
//! the devices cgroup's decision (lab 03), not the node's.
//!
//! An OCI runtime makes them after the container's mounts exist, from
//! outside, entering only its mount namespace:
//!
//! ```text
//! nsenter --mount --target PID mknod -m 0666 /dev/fuse c 10 229
//! ```

use std::path::PathBuf;

use anyhow::{bail, Context};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::unistd::{chown, Gid, Pid, Uid};

/// One node: `c`, `b`, `u` (unbuffered character) or `p` (fifo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    pub path: PathBuf,
    pub kind: char,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Make `nodes` in the mount namespace of `pid` (see the module
/// documentation). Paths must be absolute and under /dev.
pub fn make_nodes(pid: Pid, nodes: &[DeviceNode]) -> anyhow::Result<()> {
    if nodes.is_empty() {
        return Ok(());
    }
    for n in nodes {
        // Only under /dev: a node elsewhere could shadow a file of the image.
        if !n.path.starts_with("/dev/") || n.path.components().any(|c| c.as_os_str() == "..") {
            bail!("device {}: must be a path under /dev", n.path.display());
        }
    }
    let code = crate::setns::in_namespaces_of(pid, &["mnt"], || {
        for n in nodes {
            let kind = match n.kind {
                'c' | 'u' => SFlag::S_IFCHR,
                'b' => SFlag::S_IFBLK,
                'p' => SFlag::S_IFIFO,
                other => bail!("device {}: unknown type {other:?}", n.path.display()),
            };
            if let Some(dir) = n.path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("mkdir -p {}", dir.display()))?;
            }
            let _ = std::fs::remove_file(&n.path);
            let old = nix::sys::stat::umask(Mode::empty());
            let made = mknod(
                &n.path,
                kind,
                Mode::from_bits_truncate(n.mode & 0o7777),
                makedev(n.major, n.minor),
            );
            nix::sys::stat::umask(old);
            made.with_context(|| {
                format!(
                    "mknod {} {} {} {}",
                    n.path.display(),
                    n.kind,
                    n.major,
                    n.minor
                )
            })?;
            chown(
                &n.path,
                Some(Uid::from_raw(n.uid)),
                Some(Gid::from_raw(n.gid)),
            )
            .with_context(|| format!("chown {}", n.path.display()))?;
        }
        Ok(())
    })?;
    if code != 0 {
        bail!("making the container's device nodes failed (see above)");
    }
    Ok(())
}
