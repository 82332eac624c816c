//! From directories back to tarballs: a container's upper dir becomes a new
//! layer (`docker commit`), a merged tree becomes a rootfs tarball
//! (`docker export`), and `docker diff` lists what changed.
//!
//! The upper dir is already the difference between the container and its
//! image; only the deletions need translating back to OCI's portable form:
//!
//! | in the upper dir (overlayfs)          | in the layer tar (OCI)       |
//! |---------------------------------------|------------------------------|
//! | `NAME`, character device 0/0          | empty file `.wh.NAME`        |
//! | directory with `trusted.overlay.opaque=y` | the directory, then `DIR/.wh..wh..opq` |
//!
//! (This assumes the overlay was mounted without `metacopy=on` or
//! `redirect_dir=on`, as this lab mounts it: with those, the upper dir holds
//! metadata-only files and renamed directories that a plain walk would get
//! wrong. Docker's overlay2 driver avoids them for the same reason.)

use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::extract::{
    get_xattr, is_whiteout, IdShift, OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX,
};

/// How to read the directory being archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeKind {
    /// A plain tree (a merged root filesystem): every entry as it is.
    Plain,
    /// An overlay upper dir: whiteouts and opaque dirs become OCI whiteouts.
    Upper,
}

/// Writes `root` as a tar archive (its entries named relative to it).
/// Hardlinked files are stored once and linked after.
pub fn write_tree<W: Write>(root: &Path, out: W, kind: TreeKind) -> Result<W> {
    write_tree_shifted(root, out, kind, None)
}

/// [`write_tree`] for a tree whose owners were shifted into a user
/// namespace's range: the archive gets the owners the container saw
/// (host uid 100000 is written as 0), as Docker's commit and export do.
pub fn write_tree_shifted<W: Write>(
    root: &Path,
    out: W,
    kind: TreeKind,
    shift: Option<IdShift>,
) -> Result<W> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let mut seen: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut w = Walk {
        b: &mut builder,
        kind,
        shift,
        seen: &mut seen,
    };
    walk(root, &mut w)?;
    builder.into_inner().context("finishing the tar archive")
}

fn sorted_entries(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}

// ANCHOR: walk
struct Walk<'a, W: Write> {
    b: &'a mut tar::Builder<W>,
    kind: TreeKind,
    shift: Option<IdShift>,
    seen: &'a mut HashMap<(u64, u64), PathBuf>,
}

/// One directory being walked: the names still to visit (last first), where
/// it is in the archive, and which inode it is.
struct Frame {
    names: Vec<OsString>,
    rel: PathBuf,
    id: (u64, u64),
}

/// Walk the tree at `root` depth first, in name order, **without recursion
/// and without long paths**.
///
/// A container decides how deep its tree is. A recursive walk uses stack
/// for every level, and 3,000 nested directories overflow the main
/// thread's 8 MiB and kill the process (with the container still frozen by
/// `cp`, or the commit half done). A path-based walk fails at PATH_MAX (4,096
/// bytes, about 2,000 levels of `d/`). So the walk keeps its own stack of
/// [`Frame`]s on the heap, and holds a descriptor of the current directory
/// only: every entry is reached with `openat(2)`/`fstatat(2)` relative to
/// it, so no path ever grows, and going back up is `openat(dir, "..")`,
/// checked against the inode the frame recorded (a directory moved away
/// meanwhile is an error, never a walk outside the tree).
fn walk<W: Write>(root: &Path, w: &mut Walk<'_, W>) -> Result<()> {
    let kind = w.kind;
    // The root as given (it may be a /proc/self/fd/N link to a directory
    // resolved safely by the caller): followed, unlike anything below it.
    let mut cur: OwnedFd = openat_raw(
        libc::AT_FDCWD,
        root.as_os_str(),
        libc::O_RDONLY | libc::O_DIRECTORY,
    )
    .with_context(|| format!("opening {}", root.display()))?;
    let mut stack = vec![frame(&cur, PathBuf::new())?];
    while let Some(top) = stack.last_mut() {
        let Some(file_name) = top.names.pop() else {
            stack.pop();
            if let Some(parent) = stack.last() {
                cur = open_dir_at(&cur, OsStr::new("..")).context("going back up the tree")?;
                if inode(&cur)? != parent.id {
                    bail!(
                        "{}: the tree changed while it was archived",
                        root.join(&parent.rel).display()
                    );
                }
            }
            continue;
        };
        let rel = top.rel.clone();
        let name = rel.join(&file_name);
        let shown = || root.join(&name).display().to_string();
        let ctx = || format!("archiving {}", shown());
        let entry = open_at(&cur, &file_name, libc::O_PATH | libc::O_NOFOLLOW).with_context(ctx)?;
        let meta = fs::File::from(entry).metadata().with_context(ctx)?;
        let b = &mut *w.b;
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        if let Some(shift) = w.shift {
            let (uid, gid) = shift.to_container(meta.uid(), meta.gid());
            h.set_uid(uid.into());
            h.set_gid(gid.into());
        }
        let ft = meta.file_type();

        if kind == TreeKind::Upper && is_whiteout(&meta) {
            // A deletion: overlay's 0/0 device becomes OCI's `.wh.NAME`.
            let wh = rel.join(format!("{WHITEOUT_PREFIX}{}", file_name.to_string_lossy()));
            let mut h = empty_file_header(&meta);
            b.append_data(&mut h, wh, std::io::empty())
                .with_context(ctx)?;
        } else if ft.is_dir() {
            h.set_size(0);
            b.append_data(&mut h, &name, std::io::empty())
                .with_context(ctx)?;
            let dir = open_dir_at(&cur, &file_name).with_context(ctx)?;
            let opaque = fgetxattr(&dir, OVERLAY_OPAQUE_XATTR).as_deref() == Some(b"y");
            if kind == TreeKind::Upper && opaque {
                // The directory replaced the lower one: hide everything below.
                let mut h = empty_file_header(&meta);
                b.append_data(&mut h, name.join(OPAQUE_MARKER), std::io::empty())
                    .with_context(ctx)?;
            }
            // Down one level: its frame on our stack, not a call.
            stack.push(frame(&dir, name.clone()).with_context(ctx)?);
            cur = dir;
        } else if ft.is_symlink() {
            let target = nix::fcntl::readlinkat(&cur, file_name.as_os_str()).with_context(ctx)?;
            h.set_size(0);
            b.append_link(&mut h, &name, PathBuf::from(target))
                .with_context(ctx)?;
        } else if ft.is_file() {
            let key = (meta.dev(), meta.ino());
            if meta.nlink() > 1 {
                if let Some(first) = w.seen.get(&key) {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_size(0);
                    b.append_link(&mut h, &name, first).with_context(ctx)?;
                    continue;
                }
                w.seen.insert(key, name.clone());
            }
            let f =
                open_at(&cur, &file_name, libc::O_RDONLY | libc::O_NOFOLLOW).with_context(ctx)?;
            b.append_data(&mut h, &name, fs::File::from(f))
                .with_context(ctx)?;
        } else if ft.is_socket() {
            continue; // sockets are not files; docker skips them too
        } else {
            // FIFOs and device nodes: the header says it all.
            h.set_size(0);
            b.append_data(&mut h, &name, std::io::empty())
                .with_context(ctx)?;
        }
    }
    Ok(())
}
// ANCHOR_END: walk

/// A directory's frame: its entries, sorted, to pop from the end.
fn frame(dir: &OwnedFd, rel: PathBuf) -> Result<Frame> {
    let mut names: Vec<OsString> = Vec::new();
    let mut d = nix::dir::Dir::from_fd(dir.try_clone().context("dup of a directory")?)
        .context("listing a directory")?;
    for e in d.iter() {
        let e = e.context("listing a directory")?;
        let n = OsStr::from_bytes(e.file_name().to_bytes());
        if n != "." && n != ".." {
            names.push(n.to_os_string());
        }
    }
    names.sort_unstable_by(|a, b| b.cmp(a));
    Ok(Frame {
        names,
        rel,
        id: inode(dir)?,
    })
}

fn inode(fd: &OwnedFd) -> Result<(u64, u64)> {
    let st = nix::sys::stat::fstat(fd).context("fstat")?;
    Ok((st.st_dev, st.st_ino))
}

/// `openat(dir, name, flags | O_CLOEXEC)`.
fn open_at(dir: &OwnedFd, name: &OsStr, flags: libc::c_int) -> Result<OwnedFd> {
    openat_raw(dir.as_raw_fd(), name, flags)
}

fn open_dir_at(dir: &OwnedFd, name: &OsStr) -> Result<OwnedFd> {
    openat_raw(
        dir.as_raw_fd(),
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
    )
}

fn openat_raw(at: RawFd, name: &OsStr, flags: libc::c_int) -> Result<OwnedFd> {
    let c = CString::new(name.as_bytes()).context("a name with a NUL byte")?;
    // SAFETY: a valid C string; the descriptor returned is ours.
    let fd = unsafe { libc::openat(at, c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("openat {}", name.to_string_lossy()));
    }
    // SAFETY: just opened, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An extended attribute of an open file, if it has it.
fn fgetxattr(fd: &OwnedFd, name: &str) -> Option<Vec<u8>> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0u8; 256];
    // SAFETY: a valid descriptor, C string and buffer of the given length.
    let n = unsafe {
        libc::fgetxattr(
            fd.as_raw_fd(),
            cname.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

fn empty_file_header(meta: &fs::Metadata) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(meta.mtime().max(0) as u64);
    h.set_size(0);
    h
}

use std::os::unix::fs::FileTypeExt as _;

/// One line of `docker diff`: `A` added, `C` changed, `D` deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: char,
    /// Absolute, as seen inside the container: `/etc/passwd`.
    pub path: String,
}

/// What a container changed, from its upper dir and its image's layer dirs
/// (`lowers` topmost first): docker diff. Walked with a stack of its own,
/// not recursion: the container decides how deep its tree is (see `walk`).
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    // Depth first, in name order: each directory's entries still to visit
    // (last first) and whether it is under an opaque one.
    let mut entries = sorted_entries(upper)?;
    entries.reverse();
    let mut stack: Vec<(PathBuf, Vec<fs::DirEntry>, bool)> = vec![(PathBuf::new(), entries, false)];
    while let Some((rel, entries, under_opaque)) = stack.last_mut() {
        let Some(e) = entries.pop() else {
            stack.pop();
            continue;
        };
        let under_opaque = *under_opaque;
        let name = rel.join(e.file_name());
        let meta = fs::symlink_metadata(e.path())?;
        let shown = format!("/{}", name.display());
        if is_whiteout(&meta) {
            out.push(Change {
                kind: 'D',
                path: shown,
            });
            continue;
        }
        let in_lower = !under_opaque && in_lowers(lowers, &name);
        out.push(Change {
            kind: if in_lower { 'C' } else { 'A' },
            path: shown,
        });
        if meta.is_dir() {
            let opaque = get_xattr(&e.path(), OVERLAY_OPAQUE_XATTR).as_deref() == Some(b"y");
            let mut below = sorted_entries(&upper.join(&name))?;
            below.reverse();
            stack.push((name, below, under_opaque || opaque));
        }
    }
    Ok(out)
}

/// Whether the image (its layers, topmost first) shows `rel`.
fn in_lowers(lowers: &[PathBuf], rel: &Path) -> bool {
    for l in lowers {
        if let Ok(m) = fs::symlink_metadata(l.join(rel)) {
            return !is_whiteout(&m);
        }
    }
    false
}
