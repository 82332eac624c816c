//! # Lab 01: chroot, pivot_root, and why the first is not a jail
//!
//! A container starts with a change of root directory: the process must see the
//! image's files at `/`, not the host's. Linux offers two system calls for this,
//! and the difference between them is the first lesson of container security.
//!
//! **`chroot(2)`** changes one attribute of one process: the directory that `/`
//! resolves to. Nothing else changes. The process keeps its current directory,
//! its open file descriptors and, if it is root, the capability
//! `CAP_SYS_CHROOT`. A root process can call `chroot` again into a
//! subdirectory *without* changing into it; its current directory is then
//! outside its root, and `chdir("..")` walks up past the old root to the host's
//! real `/`. This is the classic nested-chroot escape (`probe escape` in the base
//! image does exactly this). chroot was made for building software, not for
//! confining it.
//!
//! **`pivot_root(2)`** works on the *mount namespace* instead. In a private mount
//! namespace it makes the new root the namespace's root mount and moves the old
//! root out of the way; we then detach the old root. Afterwards the host's
//! filesystem is not hidden, it is simply not mounted anywhere this process can
//! reach: no `..` leads back to it. This is what runc, crun, youki and Docker do.
//!
//! The shell equivalent of [`Isolation::PivotRoot`], for a learner to try by hand:
//!
//! ```text
//! unshare --mount sh -c '
//!   mount --make-rprivate /                 # nothing we do propagates to the host
//!   mount --bind "$ROOTFS" "$ROOTFS"         # pivot_root needs the new root to be a mount
//!   cd "$ROOTFS"
//!   pivot_root . .                          # new root at /, old root stacked on top of it
//!   umount -l .                             # detach the old root
//!   exec /bin/sh'
//! ```
//!
//! And of [`Isolation::Chroot`]: `chroot "$ROOTFS" /bin/sh`.

use std::convert::Infallible;
use std::ffi::{CString, OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::{makedev, mknod, umask, Mode, SFlag};
use nix::unistd::{chdir, chroot, execve, geteuid, pivot_root};

/// The environment a container starts with when the image says nothing else.
/// A container does not inherit the host's environment: this is Docker's default.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How the process is moved into its new root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// `chroot(2)` alone: simple, and escapable by a root process.
    Chroot,
    /// A private mount namespace and `pivot_root(2)`: the host's root is gone.
    PivotRoot,
}

/// What to set up inside the new root before running the command.
#[derive(Debug, Clone)]
pub struct Config {
    /// The directory that becomes `/`.
    pub rootfs: PathBuf,
    /// chroot or pivot_root.
    pub isolation: Isolation,
    /// Mount a fresh `/proc` (pivot_root only, see [`mount_proc`]).
    pub mount_proc: bool,
    /// Mount a minimal `/dev` (pivot_root only, see [`mount_dev`]).
    pub mount_dev: bool,
}

/// Why running the command failed. Each kind maps to the exit code Docker uses,
/// so scripts written for `docker run` behave the same with the labs.
#[derive(Debug)]
pub enum Error {
    /// Setting up the container failed: exit 125, "the engine itself failed".
    Setup(anyhow::Error),
    /// The command exists but cannot be executed: exit 126.
    NotExecutable { command: OsString, errno: Errno },
    /// The command does not exist in the new root: exit 127.
    NotFound { command: OsString },
}

impl Error {
    /// The exit status Docker gives for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Setup(_) => 125,
            Error::NotExecutable { .. } => 126,
            Error::NotFound { .. } => 127,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // `{:#}` prints anyhow's whole chain: "pivot_root(...): Invalid argument".
            Error::Setup(e) => write!(f, "{e:#}"),
            Error::NotExecutable { command, errno } => match errno {
                Errno::EACCES => write!(f, "exec {command:?}: permission denied"),
                other => write!(f, "exec {command:?}: {}", other.desc().to_lowercase()),
            },
            Error::NotFound { command } => {
                write!(f, "exec {command:?}: executable file not found in $PATH")
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        Error::Setup(e)
    }
}

/// Check what can be checked before touching the kernel: we are root, and the
/// rootfs is a directory. Returns the rootfs as an absolute, symlink-free path,
/// because `pivot_root` and the bind mount must agree on one exact path.
pub fn preflight(rootfs: &Path) -> anyhow::Result<PathBuf> {
    if !geteuid().is_root() {
        bail!(
            "this lab must run as root: chroot(2) needs CAP_SYS_CHROOT, and mount(2) and \
             pivot_root(2) need CAP_SYS_ADMIN (try sudo)"
        );
    }
    let meta = std::fs::metadata(rootfs).with_context(|| {
        format!(
            "rootfs {}: cannot use it as a root directory (build the base image with scripts/setup)",
            rootfs.display()
        )
    })?;
    if !meta.is_dir() {
        bail!("rootfs {}: not a directory", rootfs.display());
    }
    rootfs
        .canonicalize()
        .with_context(|| format!("resolving rootfs {}", rootfs.display()))
}

/// Move the calling process into `cfg.rootfs` and replace it with `argv`.
///
/// On success this never returns: the process *becomes* the command, so its
/// exit status is the command's exit status, with no parent in between.
/// Lab 02 adds that parent (a tiny init) when it adds a PID namespace.
pub fn run(cfg: &Config, argv: &[OsString]) -> Result<Infallible, Error> {
    let rootfs = preflight(&cfg.rootfs)?;
    match cfg.isolation {
        Isolation::Chroot => enter_chroot(&rootfs)?,
        Isolation::PivotRoot => {
            enter_new_mount_namespace()?;
            pivot_into(&rootfs)?;
            if cfg.mount_proc {
                mount_proc()?;
            }
            if cfg.mount_dev {
                mount_dev()?;
            }
        }
    }
    exec(argv, &default_env())
}

// ANCHOR: chroot
/// Change the root directory with `chroot(2)`, then change into it.
///
/// The `chdir("/")` matters: without it the current directory would still be
/// on the host, outside the new root, and `..` would lead straight out. Even
/// with it, a root process inside can escape by calling chroot again (see the
/// module documentation). Also note what chroot does *not* do: mounts are still
/// shared with the host, so we do not mount `/proc` here: it would appear in
/// the host's mount table. Lab 02's namespaces fix that.
pub fn enter_chroot(rootfs: &Path) -> anyhow::Result<()> {
    chroot(rootfs).with_context(|| format!("chroot({})", rootfs.display()))?;
    chdir("/").context("chdir(/) after chroot")?;
    Ok(())
}
// ANCHOR_END: chroot

// ANCHOR: private
/// Enter a new mount namespace whose mounts never propagate back to the host.
///
/// `unshare(CLONE_NEWNS)` gives this process a *copy* of the host's mount
/// table. But a copy is not enough: see [`make_mounts_private`].
pub fn enter_new_mount_namespace() -> anyhow::Result<()> {
    unshare(CloneFlags::CLONE_NEWNS).context("unshare(CLONE_NEWNS)")?;
    make_mounts_private()
}

/// Cut every propagation link between this mount namespace and the one it
/// was copied from.
///
/// With shared propagation (systemd makes `/` shared on most machines) a
/// mount we make under a shared mount would be replayed in the host's
/// namespace too. Remounting `/` with `MS_PRIVATE | MS_REC` cuts every
/// propagation link, for every mount below `/`, before we change anything.
/// (`mount --make-rprivate /`.) Lab 02 calls this on its own: a child that
/// clone(2) created with `CLONE_NEWNS` is already in a new mount namespace.
pub fn make_mounts_private() -> anyhow::Result<()> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        None::<&str>,
    )
    .context("making / private recursively (mount --make-rprivate /)")?;
    Ok(())
}
// ANCHOR_END: private

// ANCHOR: pivot
/// Make `rootfs` the root of the current mount namespace and detach the old root.
///
/// Call [`enter_new_mount_namespace`] first: this changes the namespace's root
/// for every process in it.
pub fn pivot_into(rootfs: &Path) -> anyhow::Result<()> {
    // pivot_root(2) requires the new root to be a mount point. A plain
    // directory is not one, so bind-mount it onto itself. MS_REC brings along
    // any mounts already inside it (a volume, say).
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .with_context(|| format!("bind-mounting {} onto itself", rootfs.display()))?;

    // The man page's recipe moves the old root into a directory `put_old`
    // inside the new root. runc uses a shorter trick that needs no such
    // directory (so it also works on a read-only rootfs, and two containers
    // sharing one rootfs never race to create it): pivot_root(".", ".").
    // The old root is then mounted on top of the new one, at the same place...
    chdir(rootfs).with_context(|| format!("chdir({})", rootfs.display()))?;
    pivot_root(".", ".").with_context(|| {
        format!(
            "pivot_root into {} (is / shared? pivot_root refuses a root whose mounts \
             propagate; it also fails on the initramfs)",
            rootfs.display()
        )
    })?;
    // ...so unmounting "." removes the old root from view. MNT_DETACH is a lazy
    // unmount: it succeeds even though the old root is busy (this process's
    // own executable lives there), and the kernel frees it once unused. From
    // here on, no path in this namespace leads to the host's files.
    umount2(".", MntFlags::MNT_DETACH).context("detaching the old root (umount2 MNT_DETACH)")?;
    chdir("/").context("chdir(/) after pivot_root")?;
    Ok(())
}
// ANCHOR_END: pivot

// ANCHOR: proc
/// Mount a fresh procfs at `/proc`.
///
/// Inside a private mount namespace this mount is invisible to the host. Note
/// that without a PID namespace (lab 02) this `/proc` still lists every process
/// on the host: procfs shows the PID namespace of whoever mounted it.
pub fn mount_proc() -> anyhow::Result<()> {
    ensure_dir(Path::new("/proc"))?;
    // nosuid, nodev, noexec: nothing under /proc is a program or a device.
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .context("mounting proc on /proc")?;
    Ok(())
}
// ANCHOR_END: proc

/// The character devices of the OCI runtime spec, which every container
/// gets: (name, major, minor). Everything else in the host's /dev stays out.
pub const DEVICES: [(&str, u64, u64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Create the rest of a minimal /dev in `dev`: the `fd` and std stream
/// symlinks into /proc, and the `pts` and `shm` directories.
pub fn populate_dev(dev: &Path) -> anyhow::Result<()> {
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let link = dev.join(link);
        std::os::unix::fs::symlink(target, &link)
            .with_context(|| format!("symlink {} -> {target}", link.display()))?;
    }
    for dir in ["pts", "shm"] {
        ensure_dir(&dev.join(dir))?;
    }
    Ok(())
}

// ANCHOR: dev
/// Mount a minimal `/dev`: a small tmpfs with only the device nodes every
/// program expects, the same list the OCI runtime spec requires.
///
/// We do not bind the host's `/dev`: that would hand the container every disk,
/// terminal and GPU on the host.
pub fn mount_dev() -> anyhow::Result<()> {
    ensure_dir(Path::new("/dev"))?;
    // nosuid: no set-uid programs here. Devices *are* allowed (no MS_NODEV),
    // since that is what /dev is for; which ones is decided below, and lab 03's
    // devices cgroup enforces it.
    mount(
        Some("tmpfs"),
        "/dev",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )
    .context("mounting tmpfs on /dev")?;

    // With the default umask of 022, mknod would strip write permission for
    // others from /dev/null, which breaks `cmd > /dev/null` for non-root users.
    let old_mask = umask(Mode::empty());
    let result = DEVICES.iter().try_for_each(|&(name, major, minor)| {
        let path = Path::new("/dev").join(name);
        mknod(
            &path,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(major, minor),
        )
        .with_context(|| format!("mknod {} c {major} {minor}", path.display()))
    });
    umask(old_mask);
    result?;
    populate_dev(Path::new("/dev"))
}
// ANCHOR_END: dev

// ANCHOR: exec
/// Replace this process with `argv[0]`, searched in the container's `PATH`.
///
/// Docker's exit codes come from here: a command that does not exist is 127,
/// one that exists but cannot be run (no execute permission, not a program) is
/// 126, as in a POSIX shell.
///
/// We search `PATH` ourselves rather than call execvpe(3): glibc's execvpe
/// searches the `PATH` of the *calling* process's environment, the host's,
/// and only passes `env` on to the new program. A container must find its
/// commands in its own `PATH`.
pub fn exec(argv: &[OsString], env: &[OsString]) -> Result<Infallible, Error> {
    let Some(command) = argv.first() else {
        return Err(Error::Setup(anyhow::anyhow!("no command given")));
    };
    let args = to_cstrings(argv)?;
    let env_c = to_cstrings(env)?;
    let candidates: Vec<PathBuf> = if command.as_bytes().contains(&b'/') {
        vec![PathBuf::from(command)]
    } else {
        let path = env
            .iter()
            .find_map(|kv| kv.as_bytes().strip_prefix(b"PATH="))
            .map(OsStr::from_bytes)
            .unwrap_or(OsStr::new(DEFAULT_PATH));
        std::env::split_paths(path)
            .map(|dir| dir.join(command))
            .collect()
    };
    // Like execvp: try each candidate; remember a permission error, but keep
    // looking, since a later directory may hold a runnable one.
    let mut denied = None;
    for candidate in candidates {
        let Ok(program) = CString::new(candidate.as_os_str().as_bytes()) else {
            continue;
        };
        let errno = match execve(&program, &args, &env_c) {
            Ok(never) => match never {},
            Err(errno) => errno,
        };
        match errno {
            Errno::ENOENT | Errno::ENOTDIR => {}
            Errno::EACCES | Errno::ENOEXEC | Errno::EPERM | Errno::EISDIR => {
                denied.get_or_insert(errno);
            }
            other => {
                return Err(Error::Setup(anyhow::anyhow!(
                    "exec {command:?}: {}",
                    other.desc()
                )))
            }
        }
    }
    Err(match denied {
        Some(errno) => Error::NotExecutable {
            command: command.clone(),
            errno,
        },
        None => Error::NotFound {
            command: command.clone(),
        },
    })
}
// ANCHOR_END: exec

/// The environment a fresh container gets: Docker's default `PATH`, a `HOME`,
/// and the caller's `TERM` so that interactive programs draw correctly.
pub fn default_env() -> Vec<OsString> {
    let mut env = vec![
        OsString::from(format!("PATH={DEFAULT_PATH}")),
        OsString::from("HOME=/root"),
    ];
    if let Some(term) = std::env::var_os("TERM") {
        let mut kv = OsString::from("TERM=");
        kv.push(term);
        env.push(kv);
    }
    env
}

fn to_cstrings(items: &[OsString]) -> Result<Vec<CString>, Error> {
    items
        .iter()
        .map(|s| {
            CString::new(OsStr::as_bytes(s))
                .map_err(|_| Error::Setup(anyhow::anyhow!("argument {s:?} contains a NUL byte")))
        })
        .collect()
}

fn ensure_dir(path: &Path) -> anyhow::Result<()> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("mkdir {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_docker() {
        assert_eq!(Error::Setup(anyhow::anyhow!("x")).exit_code(), 125);
        let e = Error::NotExecutable {
            command: "x".into(),
            errno: Errno::EACCES,
        };
        assert_eq!(e.exit_code(), 126);
        assert_eq!(
            Error::NotFound {
                command: "x".into()
            }
            .exit_code(),
            127
        );
    }

    #[test]
    fn nul_byte_in_argument_is_an_error_not_a_panic() {
        let err = to_cstrings(&[OsString::from("a\0b")]).unwrap_err();
        assert_eq!(err.exit_code(), 125);
        assert!(err.to_string().contains("NUL"));
    }

    #[test]
    fn default_env_has_dockers_path() {
        let env = default_env();
        assert!(env
            .iter()
            .any(|e| e == &OsString::from(format!("PATH={DEFAULT_PATH}"))));
    }

    #[test]
    fn missing_rootfs_is_a_clear_error() {
        // preflight checks root first; as root (CI) we get to the rootfs check.
        if !geteuid().is_root() {
            return;
        }
        let err = preflight(Path::new("/nonexistent/dockyard-rootfs")).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("/nonexistent/dockyard-rootfs"), "{msg}");
    }
}
