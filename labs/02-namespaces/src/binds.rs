//! # Bind mounts: a host directory or file inside the container
//!
//! `docker run -v /host/dir:/inside[:ro]` is a bind mount: the same
//! directory (the same inodes, not a copy) mounted a second time, at a
//! path inside the container's root. It is made before pivot_root, while
//! the host's path is still in view:
//!
//! ```text
//! mkdir -p ROOTFS/inside
//! mount --bind /host/dir ROOTFS/inside
//! mount -o remount,bind,ro ROOTFS/inside      # :ro
//! ```
//!
//! The target is the delicate half: a path inside the image, resolved the
//! way the container would see it (see [`crate::security::in_root`]).

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::Context;
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};

use crate::security;

/// A directory or file of the host, mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// On the host.
    pub source: PathBuf,
    /// Inside the container (absolute).
    pub target: PathBuf,
    pub read_only: bool,
}

// ANCHOR: binds
/// Mount each bind into the rootfs, before pivot_root.
///
/// The target is a path *inside the container*, and the image decides what
/// it resolves to: `/data` may be a symlink to `/../../etc`. Joining it to
/// the rootfs as a string and handing that to mount(2) would follow such a
/// link on the host (the class of bug of CVE-2018-15664). So each step is
/// resolved inside the root with openat2(RESOLVE_IN_ROOT), missing
/// directories are created the same way, and the mount goes onto the
/// resolved descriptor through /proc/self/fd/N. A read-only bind is then
/// remounted read-only through a descriptor of the new mount.
pub(crate) fn bind_volumes(rootfs: &Path, binds: &[Bind]) -> anyhow::Result<()> {
    if binds.is_empty() {
        return Ok(());
    }
    let root = OwnedFd::from(
        fs::File::open(rootfs).with_context(|| format!("opening {}", rootfs.display()))?,
    );
    for b in binds {
        let is_dir = fs::metadata(&b.source)
            .with_context(|| format!("bind source {}", b.source.display()))?
            .is_dir();
        let target_fd = if is_dir {
            security::mkdir_all_in_root(&root, &b.target)?
        } else {
            let parent = b.target.parent().unwrap_or(Path::new("/"));
            let name = b
                .target
                .file_name()
                .context("a bind target needs a file name")?;
            let dir = security::mkdir_all_in_root(&root, parent)?;
            // An empty file to mount over, if the image has none;
            // O_NOFOLLOW: never through a link. Read-only: opening the
            // image's own file for writing would make overlayfs copy it, and
            // its directory, up into the container's layer (four new inodes
            // for /etc/hosts, hostname and resolv.conf), only to mount over
            // the copy. O_CREAT makes a missing one all the same.
            match nix::fcntl::openat(
                &dir,
                name,
                OFlag::O_CREAT | OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::from_bits_truncate(0o644),
            ) {
                Ok(_) | Err(nix::errno::Errno::EISDIR) => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("creating {}", b.target.display()))
                }
            }
            security::open_in_root(&root, &b.target, libc::O_PATH | libc::O_CLOEXEC)
                .with_context(|| format!("resolving {} in the container", b.target.display()))?
        };
        let at = format!("/proc/self/fd/{}", target_fd.as_raw_fd());
        mount(
            Some(&b.source),
            at.as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .with_context(|| {
            format!(
                "bind-mounting {} on {}",
                b.source.display(),
                b.target.display()
            )
        })?;
        if b.read_only {
            // Resolve again: this time the walk crosses into the new mount,
            // so the descriptor is the mount's root, which is what a
            // remount changes.
            let mounted = security::open_in_root(&root, &b.target, libc::O_PATH | libc::O_CLOEXEC)
                .with_context(|| format!("resolving {} after mounting", b.target.display()))?;
            let at = format!("/proc/self/fd/{}", mounted.as_raw_fd());
            mount(
                None::<&str>,
                at.as_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .with_context(|| format!("remounting {} read-only", b.target.display()))?;
        }
    }
    Ok(())
}
// ANCHOR_END: binds
