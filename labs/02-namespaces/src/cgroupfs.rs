//! # `/sys/fs/cgroup` inside a container: its own group, read-only
//!
//! A program that sizes itself to its limits (a JVM, Go's runtime, `nproc`
//! in some libcs) reads them from `/sys/fs/cgroup`, so Docker mounts the
//! container's own cgroup there, read-only: the container can read its
//! limits and counters, and cannot raise them. How depends on the host's
//! cgroup version (lab 03 decides which, and fills [`CgroupMount`]):
//!
//! - **v2**: one fresh `cgroup2` mount. A cgroup file system shows the
//!   hierarchy from the root of the mounting process's *cgroup namespace*,
//!   and a container on v2 has one of its own rooted at its group: the
//!   mount shows that group as `/sys/fs/cgroup`, and `memory.max` is right
//!   there. (With `--cgroupns host` it shows the host's whole tree, as runc's
//!   does.)
//! - **v1 (and hybrid)**: one hierarchy per controller, and no cgroup
//!   namespace by default, so a fresh mount would show the host's whole
//!   tree. Instead a tmpfs goes on `/sys/fs/cgroup` and the container's own
//!   directory of each hierarchy is bound into it under the hierarchy's
//!   name (`memory`, `cpu,cpuacct`, with `cpu` and `cpuacct` as links to a
//!   co-mounted one), then everything is made read-only.
//!
//! ```text
//! mount -t cgroup2 -o ro,nosuid,nodev,noexec cgroup $ROOTFS/sys/fs/cgroup      # v2
//! mount -t tmpfs -o mode=755 tmpfs $ROOTFS/sys/fs/cgroup                       # v1
//! mkdir $ROOTFS/sys/fs/cgroup/memory
//! mount --bind /sys/fs/cgroup/memory/dockyard/c1 $ROOTFS/sys/fs/cgroup/memory
//! mount -o remount,bind,ro $ROOTFS/sys/fs/cgroup/memory   # each, then the tmpfs
//! ```
//!
//! It is done before pivot_root, right after /sys is mounted: the v1 binds
//! need the host's directories, which are out of sight afterwards.

use std::path::{Path, PathBuf};

use anyhow::Context;
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use std::os::fd::{AsRawFd, OwnedFd};

use crate::security::{mkdir_all_in_root, open_in_root};

/// What to mount on the container's `/sys/fs/cgroup`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CgroupMount {
    /// Nothing: the directory stays as /sys left it (empty). A container
    /// without a cgroup of its own (lab 02 alone, rootless).
    #[default]
    None,
    /// A `cgroup2` mount, which shows the root of the child's cgroup
    /// namespace: its own group on a v2 host. Where the kernel refuses that
    /// mount (EPERM: a user namespace that does not own the cgroup
    /// namespace), `group`, the host's directory of the container's group,
    /// is bound instead, as runc does.
    Unified { group: PathBuf },
    /// A tmpfs with each v1 hierarchy's group bound in: `(name, dir)`, the
    /// hierarchy's name under /sys/fs/cgroup (`cpu,cpuacct`) and the host's
    /// directory of the container's group in it. A hierarchy in which the
    /// container has no group (the directory does not exist) is left out.
    V1 { hierarchies: Vec<(String, PathBuf)> },
}

/// The path by which mount(2) reaches what `fd` is: `/proc/self/fd/N`.
fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

const SAFE: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

// ANCHOR: cgroupfs
/// Mount `what` on `/sys/fs/cgroup` in `rootfs` (a fresh /sys is already
/// there), read-only unless `read_only` is false (`--privileged`).
pub fn mount_cgroup_fs(rootfs: &Path, what: &CgroupMount, read_only: bool) -> anyhow::Result<()> {
    if *what == CgroupMount::None {
        return Ok(());
    }
    let root = crate::security::in_root::open_root(rootfs)?;
    let target = mkdir_all_in_root(&root, Path::new("/sys/fs/cgroup"))?;
    let ro = if read_only {
        MsFlags::MS_RDONLY
    } else {
        MsFlags::empty()
    };
    match what {
        CgroupMount::None => {}
        CgroupMount::Unified { group } => {
            match mount(
                Some("cgroup"),
                &fd_path(&target),
                Some("cgroup2"),
                SAFE | ro,
                None::<&str>,
            ) {
                Ok(()) => {}
                Err(Errno::EPERM | Errno::EBUSY) => bind_group(&root, group, ro)?,
                Err(e) => return Err(e).context("mounting cgroup2 on /sys/fs/cgroup"),
            }
        }
        CgroupMount::V1 { hierarchies } => {
            mount(
                Some("tmpfs"),
                &fd_path(&target),
                Some("tmpfs"),
                SAFE,
                Some("mode=755,size=64k"),
            )
            .context("mounting a tmpfs on /sys/fs/cgroup")?;
            for (name, dir) in hierarchies {
                bind_hierarchy(&root, name, dir, ro)?;
            }
            if read_only {
                let fd = open_in_root(&root, Path::new("/sys/fs/cgroup"), libc::O_PATH)?;
                mount(
                    None::<&str>,
                    &fd_path(&fd),
                    None::<&str>,
                    SAFE | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                    Some("mode=755,size=64k"),
                )
                .context("remounting the tmpfs on /sys/fs/cgroup read-only")?;
            }
        }
    }
    Ok(())
}
// ANCHOR_END: cgroupfs

/// Bind the host's directory of the container's v2 group on
/// `/sys/fs/cgroup`, read-only if `ro`: what the cgroup2 mount would have
/// shown through a cgroup namespace of its own.
fn bind_group(root: &OwnedFd, group: &Path, ro: MsFlags) -> anyhow::Result<()> {
    let target = open_in_root(root, Path::new("/sys/fs/cgroup"), libc::O_PATH)?;
    mount(
        Some(group),
        &fd_path(&target),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .with_context(|| format!("binding {} on /sys/fs/cgroup", group.display()))?;
    let bound = open_in_root(root, Path::new("/sys/fs/cgroup"), libc::O_PATH)?;
    mount(
        None::<&str>,
        &fd_path(&bound),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | SAFE | ro,
        None::<&str>,
    )
    .context("remounting /sys/fs/cgroup read-only")?;
    Ok(())
}

/// Bind the host's `dir` on `/sys/fs/cgroup/<name>`, read-only if `ro`;
/// a co-mounted hierarchy (`cpu,cpuacct`) also gets a link per controller.
fn bind_hierarchy(root: &OwnedFd, name: &str, dir: &Path, ro: MsFlags) -> anyhow::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        anyhow::bail!("cgroup hierarchy name {name:?}: one plain path component expected");
    }
    let inside = Path::new("/sys/fs/cgroup").join(name);
    let target = mkdir_all_in_root(root, &inside)?;
    mount(
        Some(dir),
        &fd_path(&target),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .with_context(|| format!("binding {} on {}", dir.display(), inside.display()))?;
    // A bind's flags change only by a remount of the bind itself.
    let bound = open_in_root(root, &inside, libc::O_PATH)?;
    mount(
        None::<&str>,
        &fd_path(&bound),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | SAFE | ro,
        None::<&str>,
    )
    .with_context(|| format!("remounting {} read-only", inside.display()))?;
    if name.contains(',') {
        let parent = open_in_root(root, Path::new("/sys/fs/cgroup"), libc::O_PATH)?;
        for part in name.split(',') {
            // `cpu -> cpu,cpuacct`, as runc makes them; one that exists
            // (its own hierarchy) stays.
            match nix::unistd::symlinkat(name, &parent, part) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("linking /sys/fs/cgroup/{part}"));
                }
            }
        }
    }
    Ok(())
}
