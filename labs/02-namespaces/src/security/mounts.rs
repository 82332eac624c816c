//! # Mounts: what the container sees of the kernel, and where it may write
//!
//! `/proc` and `/sys` are windows into the host's kernel, and a fresh procfs
//! in a PID namespace still shows much that is not the container's: timers
//! and scheduler state of every task, the kernel's key rings, on some kernels
//! its whole memory (`/proc/kcore`). Docker covers those files with
//! `/dev/null` and those directories with an empty read-only tmpfs (the
//! *masked paths*), makes `/proc/sys` and a few more read-only, and `/sys`
//! read-only too. The same step adds what Docker's `/dev` has beyond lab
//! 01's: a devpts of its own for terminals, `/dev/shm` and `/dev/mqueue`;
//! then `--tmpfs` and, last of all mounts, `--read-only`. In the shell:
//!
//! ```text
//! mount --bind /dev/null /proc/kcore                     # a masked file
//! mount -t tmpfs -o ro,size=0 tmpfs /proc/acpi           # a masked directory
//! mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys
//! mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
//! mount -o remount,bind,ro /                             # --read-only
//! ```
//!
//! Every target is opened with openat2(RESOLVE_IN_ROOT) (see `in_root`)
//! and mounted through `/proc/self/fd/N`, never as a path string: the image
//! decides what a path inside it resolves to.

use std::path::{Path, PathBuf};

use anyhow::Context;
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::statvfs::{fstatvfs, FsFlags};
use std::os::fd::{AsRawFd, OwnedFd};

use super::in_root::{mkdir_all_in_root, open_in_root, open_root};
use super::shm::DevShm;
use super::Prepared;

/// One `--tmpfs PATH[:OPTIONS]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tmpfs {
    pub path: PathBuf,
    /// Mount options, e.g. `size=64m,mode=1777`; `nosuid,nodev,noexec` unless
    /// `suid`, `dev` or `exec` say otherwise.
    pub options: String,
}

impl std::str::FromStr for Tmpfs {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (path, options) = s.split_once(':').unwrap_or((s, ""));
        if !path.starts_with('/') {
            return Err(format!("--tmpfs {path:?}: the path must be absolute"));
        }
        Ok(Tmpfs {
            path: path.into(),
            options: options.into(),
        })
    }
}

/// Paths under /proc and /sys that a container must not read: a file is
/// covered by /dev/null, a directory by an empty read-only tmpfs.
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",        // sound cards of the host
    "/proc/acpi",          // power buttons and fans of the host
    "/proc/kcore",         // the host's whole physical memory, as an ELF core file
    "/proc/keys",          // every key in the kernel's keyrings
    "/proc/latency_stats", // kernel stack traces: addresses that defeat KASLR
    "/proc/timer_list",    // timers of every process on the host
    "/proc/timer_stats",   // the same, on old kernels
    "/proc/sched_debug",   // every task on the host, with its name
    "/proc/scsi",          // rescanning disks by writing here
    "/sys/firmware",       // ACPI tables, EFI variables (some bricked laptops)
    // The CPU's energy counters (RAPL): read often, they leak what the host's
    // CPU computes, AES keys included (Platypus, CVE-2020-8694). docker 20.10.
    "/sys/devices/virtual/powercap",
];

/// Paths under /proc that stay readable but not writable.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",           // PCI config space of the host's devices
    "/proc/fs",            // file system tunables, host-wide
    "/proc/irq",           // interrupt affinity of the host's CPUs
    "/proc/sys", // sysctls: most are host-wide (kernel.core_pattern runs a program as host root)
    "/proc/sysrq-trigger", // 'echo b' reboots the host
];

/// The path by which mount(2) reaches what `fd` is: `/proc/self/fd/N`.
fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// The flags a bind remount must repeat: the kernel refuses (EPERM) to drop
/// nosuid, nodev or noexec that a mount already has.
fn kept_flags(fd: &OwnedFd) -> anyhow::Result<MsFlags> {
    let st = fstatvfs(fd).context("fstatvfs")?;
    let mut flags = MsFlags::empty();
    for (fs_flag, ms_flag) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if st.flags().contains(fs_flag) {
            flags |= ms_flag;
        }
    }
    Ok(flags)
}

/// Make the mount at `path` (inside `root`) read-only, keeping its flags.
fn remount_read_only(root: &OwnedFd, path: &Path) -> anyhow::Result<()> {
    let fd = open_in_root(root, path, libc::O_PATH)
        .with_context(|| format!("resolving {}", path.display()))?;
    let flags = kept_flags(&fd)? | MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    mount(
        None::<&str>,
        &fd_path(&fd),
        None::<&str>,
        flags,
        None::<&str>,
    )
    .with_context(|| format!("remounting {} read-only", path.display()))?;
    Ok(())
}

// ANCHOR: sys
/// Mount /sys in the new root, before pivot_root. With a network namespace
/// of its own the container gets a fresh sysfs (it shows that namespace's
/// interfaces); without one, as with `--net host`, the host's /sys is bound,
/// without its submounts (no cgroup file systems). Read-only unless
/// privileged: a writable /sys reconfigures the host's devices. Done before
/// pivot_root because only then can we still see the host's /sys, and root
/// in a user namespace may mount sysfs only where one is fully visible.
pub fn mount_sys(rootfs: &Path, own_netns: bool, read_only: bool) -> anyhow::Result<()> {
    let root = open_root(rootfs)?;
    let sys = mkdir_all_in_root(&root, Path::new("/sys"))?;
    let ro = if read_only {
        MsFlags::MS_RDONLY
    } else {
        MsFlags::empty()
    };
    let safe = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if own_netns {
        mount(
            Some("sysfs"),
            &fd_path(&sys),
            Some("sysfs"),
            safe | ro,
            None::<&str>,
        )
        .context("mounting sysfs on /sys")?;
    } else {
        mount(
            Some("/sys"),
            &fd_path(&sys),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .context("bind-mounting the host's /sys")?;
        if read_only {
            remount_read_only(&root, Path::new("/sys"))?;
        }
    }
    Ok(())
}
// ANCHOR_END: sys

// ANCHOR: mounts
/// After pivot_root, /proc and /dev: what Docker adds to lab 01's minimal
/// /dev, then the masked and read-only paths, then `--tmpfs`. `own_ipc`:
/// mqueue shows the IPC namespace of whoever mounts it, so only with one of
/// our own. `pts_gid`: the group of new terminals (tty, 5) when it is mapped.
/// `shm_tree`: the host directory to attach at /dev/shm, copied before
/// pivot_root (see [`super::shm`]).
pub fn mount_after_pivot(
    p: &Prepared,
    own_ipc: bool,
    pts_gid: bool,
    shm_tree: Option<OwnedFd>,
) -> anyhow::Result<()> {
    let root = open_root(Path::new("/"))?;
    mount_dev_extras(&root, own_ipc, pts_gid)?;
    mount_dev_shm(&root, &p.dev_shm, p.shm_size, shm_tree)?;
    mask_paths(&root, &p.masked_paths)?;
    make_read_only(&root, &p.readonly_paths)?;
    mount_tmpfs(&root, &p.tmpfs)
}

/// Flags for every mount of a file system the container should not run
/// programs, set-uid bits or device nodes from.
const SAFE: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// `/dev/pts`, `/dev/ptmx` and, with an IPC namespace of our own,
/// `/dev/mqueue`.
fn mount_dev_extras(root: &OwnedFd, own_ipc: bool, pts_gid: bool) -> anyhow::Result<()> {
    // /dev/pts: a devpts of our own (newinstance), so the container sees
    // only its own terminals; /dev/ptmx points into it.
    let pts = mkdir_all_in_root(root, Path::new("/dev/pts"))?;
    let pts_opts = if pts_gid {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    } else {
        "newinstance,ptmxmode=0666,mode=0620"
    };
    mount(
        Some("devpts"),
        &fd_path(&pts),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(pts_opts),
    )
    .context("mounting devpts on /dev/pts")?;
    match std::os::unix::fs::symlink("pts/ptmx", "/dev/ptmx") {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).context("symlink /dev/ptmx -> pts/ptmx"),
    }
    if own_ipc {
        let mq = mkdir_all_in_root(root, Path::new("/dev/mqueue"))?;
        mount(
            Some("mqueue"),
            &fd_path(&mq),
            Some("mqueue"),
            SAFE,
            None::<&str>,
        )
        .context("mounting mqueue on /dev/mqueue")?;
    }
    Ok(())
}

/// `/dev/shm`, POSIX shared memory (see [`super::shm`]): a tmpfs of its
/// own, 64 MiB as in Docker unless `--shm-size` says (in bytes: the
/// kernel rounds it up to pages); none (`--ipc none`); or the host
/// directory copied before pivot_root, attached here.
fn mount_dev_shm(
    root: &OwnedFd,
    dev_shm: &DevShm,
    shm_size: Option<u64>,
    tree: Option<OwnedFd>,
) -> anyhow::Result<()> {
    if *dev_shm == DevShm::None {
        return Ok(());
    }
    let shm = mkdir_all_in_root(root, Path::new("/dev/shm"))?;
    if let Some(tree) = tree {
        return super::shm::attach(&tree, &shm);
    }
    let size = shm_size.map_or("65536k".to_string(), |b| b.to_string());
    mount(
        Some("shm"),
        &fd_path(&shm),
        Some("tmpfs"),
        SAFE,
        Some(format!("mode=1777,size={size}").as_str()),
    )
    .with_context(|| format!("mounting tmpfs on /dev/shm (size={size})"))?;
    Ok(())
}

/// Cover each of `paths` (see [`MASKED_PATHS`]): a file with /dev/null, a
/// directory with an empty read-only tmpfs.
fn mask_paths(root: &OwnedFd, paths: &[PathBuf]) -> anyhow::Result<()> {
    for path in paths {
        let fd = match open_in_root(root, path, libc::O_PATH) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue, // not on this kernel: nothing to hide
            Err(e) => return Err(e).with_context(|| format!("masking {}", path.display())),
        };
        let is_dir = nix::sys::stat::fstat(&fd)
            .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
            .with_context(|| format!("fstat {}", path.display()))?;
        let result = if is_dir {
            mount(
                Some("tmpfs"),
                &fd_path(&fd),
                Some("tmpfs"),
                MsFlags::MS_RDONLY | SAFE,
                Some("size=0"),
            )
        } else {
            mount(
                Some("/dev/null"),
                &fd_path(&fd),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        };
        result.with_context(|| format!("masking {}", path.display()))?;
    }
    Ok(())
}

/// Make each of `paths` (see [`READONLY_PATHS`]) a read-only mount.
fn make_read_only(root: &OwnedFd, paths: &[PathBuf]) -> anyhow::Result<()> {
    for path in paths {
        let fd = match open_in_root(root, path, libc::O_PATH) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(e).with_context(|| format!("read-only {}", path.display())),
        };
        // A bind mount of the path onto itself makes it a mount of its own,
        // which can then be made read-only without touching the rest of /proc.
        mount(
            Some(&fd_path(&fd)),
            &fd_path(&fd),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .with_context(|| format!("bind-mounting {} onto itself", path.display()))?;
        drop(fd);
        remount_read_only(root, path)?;
    }
    Ok(())
}

/// `--tmpfs PATH[:OPTIONS]`, each directory created if missing.
fn mount_tmpfs(root: &OwnedFd, tmpfs: &[Tmpfs]) -> anyhow::Result<()> {
    for t in tmpfs {
        let dir = mkdir_all_in_root(root, &t.path)?;
        let (flags, data) = tmpfs_options(&t.options);
        mount(
            Some("tmpfs"),
            &fd_path(&dir),
            Some("tmpfs"),
            flags,
            Some(data.as_str()),
        )
        .with_context(|| format!("mounting tmpfs on {} ({})", t.path.display(), t.options))?;
    }
    Ok(())
}
// ANCHOR_END: mounts

/// Split `--tmpfs` options into mount flags and the data string tmpfs reads.
fn tmpfs_options(options: &str) -> (MsFlags, String) {
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let mut data = Vec::new();
    for o in options.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => flags -= MsFlags::MS_RDONLY,
            "suid" => flags -= MsFlags::MS_NOSUID,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "dev" => flags -= MsFlags::MS_NODEV,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "exec" => flags -= MsFlags::MS_NOEXEC,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            other => data.push(other),
        }
    }
    (flags, data.join(","))
}

/// `--read-only`: remount the container's `/` read-only, last of the mounts.
pub fn remount_root_read_only() -> anyhow::Result<()> {
    let root = open_root(Path::new("/"))?;
    remount_read_only(&root, Path::new("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmpfs_options_parse_like_docker() {
        let t: Tmpfs = "/run:size=1m,exec".parse().unwrap();
        assert_eq!(t.path, PathBuf::from("/run"));
        let (flags, data) = tmpfs_options(&t.options);
        assert!(!flags.contains(MsFlags::MS_NOEXEC) && flags.contains(MsFlags::MS_NOSUID));
        assert_eq!(data, "size=1m");
        assert!("run".parse::<Tmpfs>().is_err());
    }
}
