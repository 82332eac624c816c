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
//!
//! A container that this lab starts itself gets them from the inside
//! instead, in [`Spec::devices`](crate::Spec::devices): its first process
//! makes them right after it mounted the fresh `/dev` ([`make_here`]), while
//! it still holds `CAP_MKNOD`. What to make is read from the host first:
//!
//! ```text
//! stat -c '%F %t:%T %a' /dev/fuse        # docker run --device /dev/fuse
//! find /dev -type c -o -type b           # docker run --privileged
//! ```

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

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
    check_paths(nodes)?;
    let code = crate::setns::in_namespaces_of(pid, &["mnt"], || make_here(nodes))?;
    if code != 0 {
        bail!("making the container's device nodes failed (see above)");
    }
    Ok(())
}

/// Refuse a node outside /dev: one elsewhere could shadow a file of the
/// image (a `/bin/sh` that is the host's disk).
pub fn check_paths(nodes: &[DeviceNode]) -> anyhow::Result<()> {
    for n in nodes {
        if !n.path.starts_with("/dev/") || n.path.components().any(|c| c.as_os_str() == "..") {
            bail!("device {}: must be a path under /dev", n.path.display());
        }
    }
    Ok(())
}

/// Make `nodes` in this process's own mount namespace: `mknod -m MODE PATH
/// TYPE MAJOR MINOR` and `chown UID:GID PATH` each, replacing what is there.
pub fn make_here(nodes: &[DeviceNode]) -> anyhow::Result<()> {
    check_paths(nodes)?;
    for n in nodes {
        let kind = match n.kind {
            'c' | 'u' => SFlag::S_IFCHR,
            'b' => SFlag::S_IFBLK,
            'p' => SFlag::S_IFIFO,
            other => bail!("device {}: unknown type {other:?}", n.path.display()),
        };
        if let Some(dir) = n.path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("mkdir -p {}", dir.display()))?;
        }
        let _ = std::fs::remove_file(&n.path);
        // The host's mode as it is: umask 0, or /dev/null loses o+w.
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
}

// ANCHOR: bind_here
/// Give `nodes` to a container in a user namespace, whose root may not
/// mknod(2): bind-mount the host's own node of the same type and numbers
/// (found in the host's /dev, still visible before `pivot_root`) onto an
/// empty file at each path below `rootfs`, as runc does for a rootless
/// container's devices.
///
/// ```text
/// touch ROOTFS/dev/fuse && mount --bind /dev/fuse ROOTFS/dev/fuse
/// ```
///
/// The node keeps its host owner (root, unmapped: `nobody` inside) and
/// mode, and opening it is still the devices cgroup's decision. The mount
/// is of the host's devtmpfs, so the `nodev` a user namespace puts on
/// its own new filesystems does not apply.
pub fn bind_here(rootfs: &Path, nodes: &[DeviceNode]) -> anyhow::Result<()> {
    check_paths(nodes)?;
    for n in nodes {
        let source = host_node_like(n)?;
        let rel = n.path.strip_prefix("/").unwrap_or(&n.path);
        let target = rootfs.join(rel);
        // The container's /dev is a tmpfs made a moment ago; still, never
        // follow one of its links (`/dev/fd` is one, to /proc) out of it.
        let mut at = rootfs.join("dev");
        for part in target
            .strip_prefix(&at)
            .unwrap_or(&target)
            .parent()
            .into_iter()
            .flatten()
        {
            at.push(part);
            match std::fs::symlink_metadata(&at) {
                Ok(m) if m.file_type().is_symlink() => {
                    bail!(
                        "device {}: {} is a symbolic link",
                        n.path.display(),
                        at.display()
                    )
                }
                Ok(_) => {}
                Err(_) => {
                    std::fs::create_dir(&at).with_context(|| format!("mkdir {}", at.display()))?
                }
            }
        }
        if std::fs::symlink_metadata(&target).is_err() {
            std::fs::File::create(&target)
                .with_context(|| format!("creating {}", target.display()))?;
        }
        nix::mount::mount(
            Some(&source),
            &target,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .with_context(|| {
            format!(
                "bind-mounting the host's {} on {}",
                source.display(),
                n.path.display()
            )
        })?;
    }
    Ok(())
}

/// The host's node of `n`'s type and numbers: at `n`'s own path if it is
/// there (`--device /dev/fuse`), else found in the host's /dev.
fn host_node_like(n: &DeviceNode) -> anyhow::Result<PathBuf> {
    let same = |path: &Path, meta: &std::fs::Metadata| {
        node_of(path, meta).is_some_and(|h| {
            (h.kind == n.kind || (h.kind == 'c' && n.kind == 'u'))
                && h.major == n.major
                && h.minor == n.minor
        })
    };
    if let Ok(meta) = std::fs::symlink_metadata(&n.path) {
        if same(&n.path, &meta) {
            return Ok(n.path.clone());
        }
    }
    let mut found = None;
    walk(Path::new("/dev"), &mut |path, meta| {
        if found.is_none() && same(path, meta) {
            found = Some(path.to_path_buf());
        }
    })
    .context("reading the host's /dev")?;
    found.with_context(|| {
        format!(
            "device {} ({} {}:{}): the host has no such node to bind in a user namespace",
            n.path.display(),
            n.kind,
            n.major,
            n.minor
        )
    })
}
// ANCHOR_END: bind_here

// ANCHOR: from_host
/// The node(s) `docker run --device HOST:CONTAINER` makes: the host
/// device's type, numbers, mode and owner, at `container` inside. A
/// directory (`--device /dev/snd`) gives every device below it, at the
/// same place below `container`. Only reads the host (stat(2)).
pub fn from_host(host: &Path, container: &Path) -> std::io::Result<Vec<DeviceNode>> {
    let meta = std::fs::metadata(host)?;
    if meta.is_dir() {
        let mut out = Vec::new();
        walk(host, &mut |path, meta| {
            if let (Some(node), Ok(rel)) = (node_of(path, meta), path.strip_prefix(host)) {
                out.push(DeviceNode {
                    path: container.join(rel),
                    ..node
                });
            }
        })?;
        return Ok(out);
    }
    match node_of(host, &meta) {
        Some(node) => Ok(vec![DeviceNode {
            path: container.to_path_buf(),
            ..node
        }]),
        None => Err(std::io::Error::other("not a device node")),
    }
}
// ANCHOR_END: from_host

/// Every device node of the host's `/dev`, at the same paths: what
/// `--privileged` gives a container (runc's `HostDevices`). Left out, as
/// runc does: the host's terminals' `/dev/pts`, its `/dev/shm` and
/// `/dev/mqueue` (the container mounts its own), `/dev/console` (the
/// container's is its own terminal) and `/dev/ptmx` (a link into its own
/// devpts).
pub fn host_devices() -> std::io::Result<Vec<DeviceNode>> {
    let mut out = Vec::new();
    walk(Path::new("/dev"), &mut |path, meta| {
        let skip = ["/dev/console", "/dev/ptmx"];
        if skip.iter().any(|s| path == Path::new(s)) {
            return;
        }
        if let Some(node) = node_of(path, meta) {
            out.push(node);
        }
    })?;
    Ok(out)
}

/// Every non-directory below `dir` (no symlinks followed), except the
/// directories a container mounts for itself.
fn walk(dir: &Path, found: &mut dyn FnMut(&Path, &std::fs::Metadata)) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue; // gone meanwhile (udev)
        };
        if meta.is_dir() {
            let own = ["pts", "shm", "mqueue", "fd", ".udev", ".lxc", ".lxd-mounts"];
            if !own.iter().any(|n| entry.file_name() == *n) {
                walk(&path, found)?;
            }
        } else {
            found(&path, &meta);
        }
    }
    Ok(())
}

/// A device node's description from its metadata; `None` for anything
/// else (a file, a symlink, a socket).
fn node_of(path: &Path, meta: &std::fs::Metadata) -> Option<DeviceNode> {
    let ft = meta.file_type();
    let kind = if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else {
        return None;
    };
    let rdev = meta.rdev();
    Some(DeviceNode {
        path: path.to_path_buf(),
        kind,
        major: nix::sys::stat::major(rdev),
        minor: nix::sys::stat::minor(rdev),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_device_is_described_by_its_numbers() {
        let nodes = from_host(Path::new("/dev/null"), Path::new("/dev/mynull")).unwrap();
        assert_eq!(nodes.len(), 1);
        let n = &nodes[0];
        assert_eq!((n.kind, n.major, n.minor), ('c', 1, 3));
        assert_eq!(n.path, Path::new("/dev/mynull"));
        let e = from_host(Path::new("/dev/nope"), Path::new("/dev/nope")).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        let e = from_host(Path::new("/etc/hostname"), Path::new("/dev/x")).unwrap_err();
        assert_eq!(e.to_string(), "not a device node");
    }

    #[test]
    fn nodes_outside_dev_are_refused() {
        let mut n = from_host(Path::new("/dev/null"), Path::new("/bin/sh")).unwrap();
        assert!(check_paths(&n).is_err());
        n[0].path = "/dev/../etc/x".into();
        assert!(check_paths(&n).is_err());
    }
}
