//! Mounting a container's root filesystem with overlayfs.
//!
//! overlayfs stacks directories. It needs four:
//!
//! - **lowerdir**: the read-only layers, *topmost first*, separated by `:`;
//! - **upperdir**: the container's private writable layer;
//! - **workdir**: an empty directory on the same filesystem as upperdir, which
//!   overlayfs uses to prepare a copy-up before it renames it into place
//!   (that is how a copy-up is atomic);
//! - **merged**: the mount point, where the union appears.
//!
//! ```text
//! mount -t overlay overlay \
//!   -o lowerdir=l/TOP:l/BOTTOM,upperdir=containers/ID/upper,workdir=containers/ID/work \
//!   containers/ID/merged
//! ```
//!
//! Reading a file finds the topmost layer that has it. Writing one that comes
//! from a lower layer first **copies it up** into upperdir; the lower layer
//! never changes, which is why one image's layers can serve many containers.
//! Deleting a lower file creates a **whiteout** in upperdir (a 0/0 character
//! device), and a directory that replaces a lower one is marked **opaque**
//! (`trusted.overlay.opaque=y`).
//!
//! **The mount data limit.** `mount(2)` copies its options string into one
//! page (4096 bytes on x86-64): longer options are cut, and the mount fails.
//! With absolute layer paths (`/var/lib/.../layers/<64 hex>/diff`, ~100
//! bytes) an image of ~40 layers would not mount. Docker's overlay2 driver
//! does two things, and so do we: each layer gets a short symlink
//! `l/<16 hex>`, and when even that is too long the mount is made by a helper
//! process that first `chdir`s into the store and passes *relative* paths
//! (`lowerdir=l/...:l/...`): 19 bytes a layer, so about 200 layers fit,
//! more than the 128 layers Docker allows an image. The helper is a forked child, because the working
//! directory belongs to the whole process and other threads may rely on ours.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::mount::{umount2, MntFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

/// The size of the mount options page.
pub fn page_size() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map(|p| p as usize)
        .unwrap_or(4096)
}

/// The directories of one overlay mount. Lower dirs are **topmost first**,
/// as overlayfs wants them.
#[derive(Debug, Clone)]
pub struct OverlayDirs {
    /// Paths relative to `base` (e.g. `l/0123456789abcdef`), topmost first.
    pub lower: Vec<PathBuf>,
    /// Relative to `base`.
    pub upper: PathBuf,
    /// Relative to `base`.
    pub work: PathBuf,
    /// The mount point (absolute).
    pub merged: PathBuf,
    /// The directory the other paths are relative to (the store).
    pub base: PathBuf,
    /// Mount with `volatile` (Linux 5.10): overlayfs skips every sync of
    /// the upper dir, including the syncfs(2) of the whole upper filesystem
    /// on unmount, which on a busy disk takes tens of milliseconds. After a
    /// crash the upper dir may be inconsistent and overlayfs refuses to mount
    /// it again: only for containers whose upper dir is thrown away after
    /// one run (`--rm`), as podman does for them.
    pub volatile: bool,
}

// ANCHOR: mount_data
/// The options string: `lowerdir=A:B,upperdir=U,workdir=W`, with every path
/// under `prefix` (empty for relative paths). Refuses paths that contain the
/// separators `:` or `,`, which overlayfs would misread.
pub fn mount_data(dirs: &OverlayDirs, prefix: &Path) -> Result<String> {
    let show = |p: &Path| -> Result<String> {
        let s = prefix.join(p).to_string_lossy().into_owned();
        if s.contains([':', ',', '\\']) {
            bail!("overlay path {s:?} contains ':', ',' or '\\', which mount options cannot hold");
        }
        Ok(s)
    };
    if dirs.lower.is_empty() {
        bail!("an overlay needs at least one lower dir");
    }
    let lower: Vec<String> = dirs.lower.iter().map(|p| show(p)).collect::<Result<_>>()?;
    Ok(format!(
        "lowerdir={},upperdir={},workdir={}{}",
        lower.join(":"),
        show(&dirs.upper)?,
        show(&dirs.work)?,
        if dirs.volatile { ",volatile" } else { "" }
    ))
}
// ANCHOR_END: mount_data

// ANCHOR: mount_overlay
/// Mounts the overlay on `dirs.merged`. Uses absolute paths when the options
/// fit in a page, else a child that `chdir`s into `dirs.base` and mounts
/// with relative paths (see the module documentation).
pub fn mount_overlay(dirs: &OverlayDirs) -> Result<()> {
    let limit = page_size() - 1; // the page holds a NUL-terminated string
    let absolute = mount_data(dirs, &dirs.base)?;
    if absolute.len() <= limit {
        return nix::mount::mount(
            Some("overlay"),
            &dirs.merged,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(absolute.as_str()),
        )
        .with_context(|| overlay_error(dirs, absolute.len()));
    }
    let relative = mount_data(dirs, Path::new(""))?;
    if relative.len() > limit {
        bail!(
            "{} layers are too many for one overlay mount: even with short relative \
             paths the options take {} bytes, and mount(2) takes at most {limit}",
            dirs.lower.len(),
            relative.len()
        );
    }
    mount_from(&dirs.base, &dirs.merged, &relative)
        .with_context(|| overlay_error(dirs, relative.len()))
}
// ANCHOR_END: mount_overlay

fn overlay_error(dirs: &OverlayDirs, len: usize) -> String {
    format!(
        "mounting overlay on {} ({} lower dirs, {len} bytes of options; is the upper dir \
         on overlayfs itself, or is overlayfs missing? try `modprobe overlay`)",
        dirs.merged.display(),
        dirs.lower.len()
    )
}

/// Mounts an overlay from a forked child whose working directory is `base`.
fn mount_from(base: &Path, merged: &Path, data: &str) -> Result<()> {
    // Everything the child needs is allocated before fork: after fork, in a
    // process that may have other threads, only async-signal-safe calls.
    let c_base = CString::new(base.as_os_str().as_bytes())?;
    let c_merged = CString::new(merged.as_os_str().as_bytes())?;
    let c_data = CString::new(data)?;
    let c_overlay = CString::new("overlay")?;
    // SAFETY: the child only calls chdir, mount and _exit.
    match unsafe { fork() }.context("fork for the overlay mount helper")? {
        ForkResult::Child => unsafe {
            if libc::chdir(c_base.as_ptr()) != 0 {
                libc::_exit(200);
            }
            let rc = libc::mount(
                c_overlay.as_ptr(),
                c_merged.as_ptr(),
                c_overlay.as_ptr(),
                0,
                c_data.as_ptr().cast(),
            );
            let code = if rc == 0 {
                0
            } else {
                (*libc::__errno_location()).clamp(1, 199)
            };
            libc::_exit(code)
        },
        ForkResult::Parent { child } => match waitpid(child, None)? {
            WaitStatus::Exited(_, 0) => Ok(()),
            WaitStatus::Exited(_, 200) => bail!("chdir({}) in the mount helper", base.display()),
            WaitStatus::Exited(_, errno) => Err(Errno::from_raw(errno).into()),
            other => bail!("the mount helper ended with {other:?}"),
        },
    }
}

/// Unmounts `merged` (lazily: `umount -l`).
pub fn unmount(merged: &Path) -> Result<()> {
    umount2(merged, MntFlags::MNT_DETACH)
        .with_context(|| format!("unmounting {}", merged.display()))
}

/// Unmounts on drop: a mount made by a test or a command never outlives it.
pub struct MountGuard(pub PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = umount2(&self.0, MntFlags::MNT_DETACH);
    }
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

    fn dirs(n: usize) -> OverlayDirs {
        OverlayDirs {
            lower: (0..n)
                .map(|i| PathBuf::from(format!("l/{i:016x}")))
                .collect(),
            upper: "containers/c/upper".into(),
            work: "containers/c/work".into(),
            merged: "/s/containers/c/merged".into(),
            base: "/s".into(),
            volatile: false,
        }
    }

    #[test]
    fn data_lists_lower_dirs_topmost_first() {
        let d = dirs(2);
        assert_eq!(
            mount_data(&d, Path::new("/s")).unwrap(),
            "lowerdir=/s/l/0000000000000000:/s/l/0000000000000001,\
             upperdir=/s/containers/c/upper,workdir=/s/containers/c/work"
        );
        assert!(mount_data(&d, Path::new(""))
            .unwrap()
            .starts_with("lowerdir=l/0000000000000000:l/"));
        let v = OverlayDirs {
            volatile: true,
            ..d
        };
        assert!(mount_data(&v, Path::new(""))
            .unwrap()
            .ends_with(",volatile"));
    }

    #[test]
    fn separators_in_paths_are_refused() {
        let mut d = dirs(1);
        d.upper = "a,b".into();
        assert!(mount_data(&d, Path::new("")).is_err());
        d.upper = "a:b".into();
        assert!(mount_data(&d, Path::new("")).is_err());
    }

    #[test]
    fn relative_paths_fit_many_more_layers() {
        let d = dirs(200);
        let long_base = Path::new("/var/lib/dockyard/some/deep/store/directory");
        assert!(mount_data(&d, long_base).unwrap().len() > page_size());
        assert!(mount_data(&d, Path::new("")).unwrap().len() < page_size());
    }
}
