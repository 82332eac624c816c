//! # `/dev/shm`: whose POSIX shared memory the container sees
//!
//! `shm_open(3)` is a file in a tmpfs at `/dev/shm`, not an IPC object of
//! the kernel: an IPC namespace does not separate it, the mount does. So
//! Docker's `--ipc` chooses both the namespace (System V objects, message
//! queues) and what is mounted at `/dev/shm`:
//!
//! ```text
//! --ipc private     new IPC namespace, a tmpfs of its own   mount -t tmpfs shm /dev/shm
//! --ipc none        new IPC namespace, no /dev/shm at all
//! --ipc shareable   new IPC namespace, a tmpfs the engine keeps on the host,
//!                   bound in, so that others can be given it too
//! --ipc host        the host's namespace, and the host's   mount --bind /dev/shm ROOTFS/dev/shm
//! --ipc container:X X's namespace, and X's /dev/shm (X must be shareable, or host)
//! ```
//!
//! A bind must be taken while the host's path is in view, before
//! pivot_root; but `/dev` is a fresh tmpfs mounted after it, which would
//! cover a bind made earlier. So the host's directory is copied into a
//! detached mount first (`open_tree(OPEN_TREE_CLONE)`, the new mount API's
//! `mount --bind` that attaches nowhere yet) and attached at `/dev/shm`
//! once the new `/dev` exists (`move_mount(2)`).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// What the container gets at `/dev/shm`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DevShm {
    /// A tmpfs of its own, [`super::Security::shm_size`] big: `--ipc
    /// private`, Docker's default.
    #[default]
    Tmpfs,
    /// Nothing: `--ipc none`.
    None,
    /// A host directory, bound there: the host's own `/dev/shm` (`--ipc
    /// host`), or a tmpfs an engine keeps on the host for a container
    /// whose IPC others may join (`shareable`, `container:NAME`).
    Bind(PathBuf),
}

/// `open_tree(2)`'s flags: a copy of the tree (not the original), with
/// the mounts below it, close-on-exec.
const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
/// `move_mount(2)`: both ends are descriptors, not paths.
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// Before pivot_root: for a [`DevShm::Bind`], a detached copy of the
/// host's directory (`open_tree(OPEN_TREE_CLONE)`), to attach with
/// [`attach`] once the container's `/dev` exists. `None` otherwise.
pub fn detach_copy(shm: &DevShm) -> anyhow::Result<Option<OwnedFd>> {
    let DevShm::Bind(source) = shm else {
        return Ok(None);
    };
    let path = CString::new(source.as_os_str().as_bytes())
        .context("a NUL byte in the /dev/shm source's path")?;
    let flags = OPEN_TREE_CLONE | AT_RECURSIVE | libc::O_CLOEXEC as libc::c_uint;
    // SAFETY: a valid C string and plain flags; the result is a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    Errno::result(fd).with_context(|| {
        format!(
            "open_tree({}, OPEN_TREE_CLONE) for the container's /dev/shm",
            source.display()
        )
    })?;
    // SAFETY: open_tree returned a descriptor that nothing else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
}

/// After pivot_root: attach the copy [`detach_copy`] took onto `target`
/// (the container's `/dev/shm`, opened inside its root).
pub fn attach(tree: &OwnedFd, target: &OwnedFd) -> anyhow::Result<()> {
    let empty = c"";
    // SAFETY: two valid descriptors, empty paths, plain flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            target.as_raw_fd(),
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(ret)
        .map(drop)
        .context("move_mount of the shared /dev/shm onto the container's /dev/shm")
}

/// A `/dev/shm` that others may be given (`--ipc shareable`): a tmpfs
/// mounted on the host at `dir` (made if missing), `size` bytes, which
/// the container's and its joiners' [`DevShm::Bind`] name. A stale one
/// at `dir` is replaced.
/// `mount -t tmpfs -o nosuid,nodev,noexec,mode=1777,size=N shm DIR`
pub fn mount_shareable(dir: &Path, size: u64) -> anyhow::Result<()> {
    unmount_shareable(dir)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let options = format!("mode=1777,size={size}");
    mount(
        Some("shm"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(options.as_str()),
    )
    .with_context(|| format!("mounting shm tmpfs on {}", dir.display()))
}

/// Unmount what [`mount_shareable`] mounted at `dir`, if anything is
/// mounted there (`umount -l DIR`).
pub fn unmount_shareable(dir: &Path) -> anyhow::Result<()> {
    match umount2(dir, MntFlags::MNT_DETACH) {
        // Not a mount point, or no directory at all: nothing mounted.
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("unmounting {}", dir.display())),
    }
}
