//! # The sealed binary: CVE-2019-5736
//!
//! The container's first process starts as a copy of the runtime, and so
//! does every `exec`'s. For that moment the runtime's own binary is the
//! process's `/proc/self/exe`, inside the container. In 2019 a container
//! used that to overwrite runc on the host (CVE-2019-5736), and the next
//! `docker exec` ran the container's code as the host's root. The cure is
//! to run the runtime from a copy nobody can write: see
//! [`ensure_sealed_binary`].

use std::ffi::CString;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::sys::stat::Mode;
use nix::sys::statvfs::{fstatvfs, FsFlags};

// ANCHOR: sealed
/// Make sure this process runs from a copy of its binary that no one can
/// write, re-executing itself from one if not (CVE-2019-5736).
///
/// A container can make its own command a script whose interpreter is
/// `#!/proc/self/exe`. Until our child's execve completes, /proc/self/exe is
/// the *host's* lab binary, so the kernel runs that binary, in the
/// container, as the interpreter; a process in the container then holds it
/// through /proc/PID/exe and can write to it once it is no longer running,
/// replacing the binary that root runs next on the host. (Making the child
/// non-dumpable does not help: the interpreter's execve makes it dumpable
/// again.) So the binary we run from must be unwritable by anyone:
///
/// 1. a **read-only overlayfs** whose top layer is the binary's directory,
///    mounted with fsopen(2)/fsmount(2) and never attached anywhere. An
///    overlay with only lower layers has no place to write to, so a write
///    through /proc/PID/exe fails with EROFS, and no remount can change that.
///    Nothing is copied: the pages are the page cache's, shared by every
///    process. runc does this since 1.2.
/// 2. if the kernel cannot (no fsopen, no overlayfs), a copy in a **memfd**
///    with every seal set (no write, grow, shrink, or new seals): the copy
///    costs one read of the binary per start and its pages are private to
///    this process and its children (the monitor keeps them).
///
/// Call it first thing in `main`, before any thread exists.
pub fn ensure_sealed_binary() -> anyhow::Result<()> {
    let exe = fs::File::open("/proc/self/exe").context("opening /proc/self/exe")?;
    if is_sealed(&exe) {
        return Ok(()); // already running from one
    }
    let sealed = match read_only_overlay_of_self() {
        Ok(file) => file,
        Err(_) => sealed_memfd_copy(&exe)?,
    };
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .context("an argument contains a NUL byte")?;
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv)
        })
        .collect::<Result<_, _>>()
        .context("an environment variable contains a NUL byte")?;
    let Err(e) = nix::unistd::fexecve(&sealed, &args, &env);
    Err(e).context("re-executing from the sealed binary (fexecve)")
}

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Whether `exe` is a sealed memfd, or a file on a read-only overlayfs.
fn is_sealed(exe: &fs::File) -> bool {
    // SAFETY: fcntl on a descriptor we own.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    if seals != -1 && seals & SEALS == SEALS {
        return true;
    }
    let overlay = nix::sys::statfs::fstatfs(exe)
        .is_ok_and(|st| st.filesystem_type() == nix::sys::statfs::OVERLAYFS_SUPER_MAGIC);
    overlay && fstatvfs(exe).is_ok_and(|st| st.flags().contains(FsFlags::ST_RDONLY))
}

/// Open our own binary through a new, detached, read-only overlayfs whose
/// top layer is the binary's directory (way 1 above).
///
/// ```text
/// mount -t overlay -o ro,lowerdir=/usr/bin:/tmp/empty none /somewhere   # but attached nowhere
/// ```
///
/// overlayfs needs two layers to mount without an upper dir, and refuses
/// the same directory twice: the bottom one is an empty directory, removed
/// again at once (the binary's directory is on top, so nothing in the
/// bottom one could hide the binary anyway).
fn read_only_overlay_of_self() -> anyhow::Result<fs::File> {
    let path = fs::read_link("/proc/self/exe").context("readlink /proc/self/exe")?;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        bail!("/proc/self/exe is {}: no directory", path.display());
    };
    let empty = std::env::temp_dir().join(format!(
        "dockyard-sealed-{}-{}",
        std::process::id(),
        rand_u64()
    ));
    fs::create_dir(&empty).with_context(|| format!("creating {}", empty.display()))?;
    let result = (|| {
        // lowerdir's separator is ':', and '\' escapes it.
        let escape = |p: &Path| {
            String::from_utf8_lossy(p.as_os_str().as_bytes())
                .replace('\\', "\\\\")
                .replace(':', "\\:")
        };
        let lower = format!("{}:{}", escape(dir), escape(&empty));
        let fsfd = sys_fd(
            // SAFETY: a constant C string and flags.
            unsafe {
                libc::syscall(
                    libc::SYS_fsopen,
                    c"overlay".as_ptr(),
                    1, /* FSOPEN_CLOEXEC */
                )
            },
            "fsopen(overlay)",
        )?;
        let set = |key: &std::ffi::CStr, value: &str| -> anyhow::Result<()> {
            let value = CString::new(value).context("a NUL byte in the binary's path")?;
            // SAFETY: FSCONFIG_SET_STRING (1) with valid C strings.
            let ret = unsafe {
                libc::syscall(
                    libc::SYS_fsconfig,
                    fsfd.as_raw_fd(),
                    1,
                    key.as_ptr(),
                    value.as_ptr(),
                    0,
                )
            };
            Errno::result(ret)
                .map(drop)
                .with_context(|| format!("fsconfig {key:?}={value:?}"))
        };
        set(c"lowerdir", &lower)?;
        // Inode numbers do not matter here; off avoids a kernel warning when
        // the two layers are on different filesystems.
        let _ = set(c"xino", "off");
        // SAFETY: FSCONFIG_CMD_CREATE (6) takes no key or value.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fsfd.as_raw_fd(),
                6,
                std::ptr::null::<u8>(),
                std::ptr::null::<u8>(),
                0,
            )
        };
        Errno::result(ret).context("fsconfig(FSCONFIG_CMD_CREATE) for the overlay")?;
        const MOUNT_ATTR: libc::c_long = 0x1 /* RDONLY */ | 0x2 /* NOSUID */ | 0x4 /* NODEV */;
        let mnt = sys_fd(
            // SAFETY: fsmount on the context we created; FSMOUNT_CLOEXEC (1).
            unsafe { libc::syscall(libc::SYS_fsmount, fsfd.as_raw_fd(), 1, MOUNT_ATTR) },
            "fsmount(overlay)",
        )?;
        let file = nix::fcntl::openat(
            &mnt,
            name,
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_CLOEXEC
                | nix::fcntl::OFlag::O_NOFOLLOW,
            Mode::empty(),
        )
        .with_context(|| format!("opening {name:?} through the overlay"))?;
        let file = fs::File::from(file);
        // The same file we started from? (It may have been replaced since.)
        let (a, b) = (file.metadata()?, fs::metadata("/proc/self/exe")?);
        use std::os::unix::fs::MetadataExt;
        if (a.size(), a.mtime(), a.mtime_nsec()) != (b.size(), b.mtime(), b.mtime_nsec()) {
            bail!("{} changed since this process started", path.display());
        }
        Ok(file)
    })();
    let _ = fs::remove_dir(&empty);
    result
}

/// A copy of `exe` in a memfd with every seal set (way 2 above).
fn sealed_memfd_copy(exe: &fs::File) -> anyhow::Result<fs::File> {
    // SAFETY: a valid C string; flags are constants.
    let memfd = unsafe {
        libc::memfd_create(
            c"dockyard-sealed".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    let memfd = Errno::result(memfd).context("memfd_create for the sealed binary")?;
    // SAFETY: memfd_create returned a new descriptor that we now own.
    let mut memfd = unsafe { fs::File::from_raw_fd(memfd) };
    std::io::copy(&mut &*exe, &mut memfd).context("copying /proc/self/exe into the memfd")?;
    // SAFETY: fcntl on a descriptor we own.
    let ret = unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) };
    Errno::result(ret).context("sealing the memfd (F_ADD_SEALS)")?;
    Ok(memfd)
}

/// A descriptor returned by a raw syscall, owned.
fn sys_fd(ret: libc::c_long, what: &str) -> anyhow::Result<OwnedFd> {
    let fd = Errno::result(ret).with_context(|| what.to_string())?;
    // SAFETY: the syscall returned a new descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A random number for a temporary name.
fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom into a buffer we own.
    unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    u64::from_ne_bytes(b)
}
// ANCHOR_END: sealed
