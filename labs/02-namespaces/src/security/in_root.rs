//! # Paths resolved inside the container's root
//!
//! The runtime works on the container's files as root, while the container
//! (or its image) decides what those paths are: `/data` may be a symlink to
//! `/../../etc`, `/dev/pts` a symlink to the host's `/dev`, and a path
//! checked a moment ago may be swapped for a symlink now (the
//! CVE-2018-15664 kind of bug). Joining the rootfs and a path as strings
//! and handing that to open(2) or mount(2) follows such links *on the
//! host*. So every path inside the container is resolved by the kernel
//! with the container's root as `/`: openat2(2) with `RESOLVE_IN_ROOT`,
//! which treats `..` at the root and absolute symlinks as a chroot would,
//! and `RESOLVE_NO_MAGICLINKS`, which refuses /proc's links to anywhere.
//! What the runtime then does (mount, fchdir, read) it does through the
//! descriptor, never by the path again.
//!
//! There is no shell command for openat2; `chroot ROOT realpath PATH` is the
//! idea, without the race.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::sys::stat::Mode;

// ANCHOR: in_root
/// Open `path` the way the container would see it: resolved with `root` as
/// `/`, so no `..` and no symlink (`/etc -> /host/etc`, `../../..`) leads
/// out, and refusing /proc's magic links (`/proc/self/fd/7`, `/proc/1/root`),
/// which lead anywhere. This is openat2(2) with RESOLVE_IN_ROOT |
/// RESOLVE_NO_MAGICLINKS (Linux 5.6), the fix for the CVE-2018-15664 kind of
/// bug: a path checked as a host string, then swapped for a symlink.
pub fn open_in_root(root: &OwnedFd, path: &Path, flags: libc::c_int) -> Result<OwnedFd, Errno> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: open_how is plain data; zero is valid for every field.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: valid fd, NUL-terminated path, and `how` of the size we pass.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    Errno::result(fd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `mkdir -p path` inside `root`, every step resolved as [`open_in_root`]
/// does; returns the directory, opened O_PATH.
pub fn mkdir_all_in_root(root: &OwnedFd, path: &Path) -> anyhow::Result<OwnedFd> {
    let flags = libc::O_PATH | libc::O_DIRECTORY;
    match open_in_root(root, path, flags) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(Errno::ELOOP) => bail!(
            "resolving {} in the container: a /proc magic link or a symlink loop (refused: it \
             could lead out of the container)",
            path.display()
        ),
        Err(e) => {
            return Err(e).with_context(|| format!("resolving {} in the container", path.display()))
        }
    }
    let (Some(parent), Some(Component::Normal(name))) =
        (path.parent(), path.components().next_back())
    else {
        bail!("{}: cannot create it", path.display());
    };
    let parent_fd = mkdir_all_in_root(root, parent)?;
    match nix::sys::stat::mkdirat(&parent_fd, name, Mode::from_bits_truncate(0o755)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => {
            return Err(e).with_context(|| format!("mkdir {} in the container", path.display()))
        }
    }
    open_in_root(root, path, flags).with_context(|| {
        format!(
            "resolving {} in the container (a symlink that leads out?)",
            path.display()
        )
    })
}
// ANCHOR_END: in_root

/// `path` (a directory of the host, or `/` in the container), opened O_PATH:
/// the root that [`open_in_root`] resolves from.
pub(crate) fn open_root(path: &Path) -> anyhow::Result<OwnedFd> {
    nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open {}", path.display()))
}

// ANCHOR: cwd
/// Change into the working directory, created if missing, resolved inside
/// the container's root. Then check that it really is inside: getcwd(3)
/// answers "(unreachable)/..." for a directory outside the root, which is
/// how runc's CVE-2024-21626 looked from inside (`-w /proc/self/fd/7`, a
/// leaked descriptor of a host directory).
pub fn enter_workdir(cwd: &Path) -> anyhow::Result<()> {
    let root = open_root(Path::new("/"))?;
    let dir = mkdir_all_in_root(&root, cwd)
        .with_context(|| format!("working directory {}", cwd.display()))?;
    nix::unistd::fchdir(&dir)
        .with_context(|| format!("fchdir to working directory {}", cwd.display()))?;
    let here = nix::unistd::getcwd().context("getcwd after changing into the working directory")?;
    if !here.starts_with("/") {
        bail!(
            "working directory {} is outside the container ({})",
            cwd.display(),
            here.display()
        );
    }
    Ok(())
}
// ANCHOR_END: cwd
