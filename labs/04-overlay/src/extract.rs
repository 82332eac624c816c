//! Applying a layer tarball to a directory, safely.
//!
//! **A layer is hostile input.** Anyone can push an image, and its tar
//! archives say what to write where. A naive extractor (`tar -xf` as root,
//! or `path = dest + header.name; write(path)`) trusts the archive, and every
//! container engine has shipped a bug because of that ("tar-slip"):
//!
//! - `../../etc/cron.d/x`: a name that climbs out of the destination;
//! - `/etc/passwd`: an absolute name;
//! - `evil -> /etc` followed by `evil/passwd`: a symlink made by the archive
//!   itself, then a write *through* it (CVE-2018-15664 raced the same check
//!   in `docker cp`, CVE-2019-14271 loaded a library from the container
//!   during `docker cp`, and Go's `archive/tar` users shipped zip-slip bugs);
//! - a hardlink to `/etc/shadow`, which gives the container the host's file;
//! - a block device node for the host's disk.
//!
//! The rules here, each applied to every entry:
//!
//! 1. Names are cleaned: a leading `/` is dropped (as GNU tar does: an
//!    archive's `/etc/x` means the layer's `etc/x`), `.` is skipped, and an
//!    entry with a `..` component is **refused**, and with it the layer.
//!    Components longer than `NAME_MAX` or names longer than `PATH_MAX` are
//!    refused too: they cannot be created, and a truncating extractor would
//!    write somewhere else than the archive said.
//! 2. The parent directory of an entry is opened with `openat2(2)` and
//!    `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV`: the kernel
//!    resolves the path *as if the layer directory were `/`*. A symlink
//!    `evil -> /etc` made earlier by the archive resolves to the layer's own
//!    `etc`, `..` stops at the layer's root, and `/proc/self/root`-style magic
//!    links are refused. This is atomic in the kernel, so no race like
//!    CVE-2018-15664 (checking a path in user space, then using it) is
//!    possible. On kernels older than 5.6, which lack `openat2`, the fallback
//!    walks the path one component at a time with `O_NOFOLLOW` and refuses
//!    any symlink among the parents.
//! 3. The entry itself is created *relative to that directory fd*, with
//!    `O_CREAT | O_EXCL | O_NOFOLLOW` (`mkdirat`, `symlinkat`, `linkat`,
//!    `mknodat`): the last component is never followed either. What was
//!    there before is removed first, without following it.
//! 4. A hardlink's target is resolved the same way, inside the layer: a
//!    hardlink can only point at a file the layer itself has.
//! 5. Device nodes are refused, except the 0/0 character device, which is an
//!    overlay whiteout. A layer that ships `/dev/sda` would otherwise give
//!    whoever runs the container the host's disk, if the device cgroup lets
//!    it through. FIFOs are harmless and kept.
//! 6. Modes are kept exactly, setuid and setgid bits included: images ship
//!    legitimate setuid programs (`su`, `passwd`, `ping`). That is safe for
//!    the *host* because nothing on the host runs them; inside the container
//!    the runtime's `no_new_privs`, user namespaces and dropped capabilities
//!    are what limit them. Extended attributes in the archive (PAX
//!    `SCHILY.xattr.*`) are not applied: a layer must not be able to set
//!    `trusted.overlay.*` and steer overlayfs.
//!
//! While the entries stream past, the compressed bytes and the uncompressed
//! tar are both hashed: the caller compares the layer digest and the diff_id
//! with what the manifest and config promise, and only then makes the layer
//! visible (see `store.rs`: extract to a temporary name, rename when done).

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

use anyhow::{anyhow, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstatat, mknodat, Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, Gid, Uid};

use crate::digest::{Hasher, HashingReader};

/// `NAME_MAX`: the longest file name component Linux accepts.
pub const NAME_MAX: usize = 255;
/// `PATH_MAX`: the longest path Linux accepts.
pub const PATH_MAX: usize = 4096;
/// The OCI whiteout prefix: `.wh.NAME` deletes NAME from the layers below.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The OCI opaque marker: the directory hides everything below it.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The xattr overlayfs reads to make a directory opaque.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What to do with OCI whiteouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// Keep the layer as its own directory for overlayfs: `.wh.NAME` becomes
    /// a 0/0 character device NAME, `.wh..wh..opq` the opaque xattr.
    Overlay,
    /// Flatten into a directory that already holds the layers below:
    /// `.wh.NAME` deletes NAME, `.wh..wh..opq` empties the directory.
    Apply,
}

// ANCHOR: id_shift
/// Where a layer's owners land on disk, for `--userns-remap`.
///
/// A container in a user namespace whose root is host uid 100000 sees a
/// file owned by host uid 100000 as owned by root, and a file owned by host
/// root as owned by nobody (65534), which it may not change. So an engine
/// that remaps users must extract its layers with every owner moved into
/// the range: uid N in the tar becomes 100000+N on disk (Docker does the
/// same, which is why a remapped daemon has its own data root and pulls its
/// images again). An owner beyond the range has no host ID to become, and
/// the layer is refused. Archives go the other way: the owners on disk are
/// moved back by [`IdShift::to_container`], so `commit` and `export` write
/// the owners the container saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdShift {
    /// The host uid that uid 0 in the layers becomes.
    pub uid: u32,
    /// How many uids are mapped.
    pub uid_count: u32,
    /// The host gid that gid 0 in the layers becomes.
    pub gid: u32,
    /// How many gids are mapped.
    pub gid_count: u32,
}

/// What an unmapped ID looks like from inside a user namespace (the
/// kernel's `overflowuid`): nobody.
pub const OVERFLOW_ID: u32 = 65534;

impl IdShift {
    /// The host owner of a file that the layer says `uid:gid` owns; `None`
    /// when either is outside the range.
    pub fn to_host(&self, uid: u32, gid: u32) -> Option<(u32, u32)> {
        (uid < self.uid_count && gid < self.gid_count).then(|| (self.uid + uid, self.gid + gid))
    }

    /// The owner a container sees for a file the host says `uid:gid` owns:
    /// shifted back, or nobody when it is outside the range (as the kernel
    /// shows it inside).
    pub fn to_container(&self, uid: u32, gid: u32) -> (u32, u32) {
        let back = |id: u32, base: u32, count: u32| match id.checked_sub(base) {
            Some(n) if n < count => n,
            _ => OVERFLOW_ID,
        };
        (
            back(uid, self.uid, self.uid_count),
            back(gid, self.gid, self.gid_count),
        )
    }
}
// ANCHOR_END: id_shift

/// Why an entry was refused. The layer is refused with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A `..` component: the name climbs out of the layer.
    DotDot,
    /// A component longer than `NAME_MAX` or a name longer than `PATH_MAX`.
    NameTooLong,
    /// A block or character device other than the 0/0 whiteout.
    DeviceNode { block: bool, major: u64, minor: u64 },
    /// A parent is a symlink and `openat2` is not available to resolve it
    /// safely, or it does not lead to a directory inside the layer.
    ParentNotADirectory,
    /// A hardlink whose target is not a file already in the layer.
    BadHardlinkTarget,
    /// An entry type the extractor does not handle (GNU sparse files...).
    UnsupportedType(u8),
    /// A whiteout of `.`, `..` or nothing.
    BadWhiteout,
    /// An owner outside the remapped range (see [`IdShift`]).
    UnmappedOwner { uid: u32, gid: u32 },
}

/// A refused entry: what the archive said and why it was not done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsafeEntry {
    pub path: String,
    pub refusal: Refusal,
}

impl std::fmt::Display for UnsafeEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let why = match &self.refusal {
            Refusal::DotDot => "its name climbs out of the layer with `..`".to_string(),
            Refusal::NameTooLong => {
                format!("its name is longer than NAME_MAX ({NAME_MAX}) or PATH_MAX ({PATH_MAX})")
            }
            Refusal::DeviceNode {
                block,
                major,
                minor,
            } => format!(
                "it is a {} device {major}:{minor}; layers may not create devices \
                 (only the 0:0 character device, a whiteout)",
                if *block { "block" } else { "character" }
            ),
            Refusal::ParentNotADirectory => {
                "a parent directory is a symlink or not a directory inside the layer".to_string()
            }
            Refusal::BadHardlinkTarget => {
                "it is a hardlink whose target is not a file in this layer".to_string()
            }
            Refusal::UnsupportedType(t) => {
                format!("its tar entry type {:?} is not supported", *t as char)
            }
            Refusal::BadWhiteout => "it whites out `.`, `..` or nothing".to_string(),
            Refusal::UnmappedOwner { uid, gid } => format!(
                "its owner {uid}:{gid} is outside the remapped range (userns-remap): \
                 a larger range in /etc/subuid and /etc/subgid would hold it"
            ),
        };
        write!(f, "refusing layer entry {:?}: {why}", self.path)
    }
}

impl std::error::Error for UnsafeEntry {}

/// What applying a layer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// sha256 of the bytes as read (compressed or not): the layer digest.
    pub digest: String,
    /// Size of the bytes as read.
    pub size: u64,
    /// sha256 of the uncompressed tar: the diff_id.
    pub diff_id: String,
    /// How the input was compressed.
    pub compression: Compression,
    /// How many tar entries were applied (whiteouts included).
    pub entries: usize,
    /// Names that had a leading `/`, which was dropped.
    pub neutralised: Vec<String>,
}

/// How parent directories are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    /// `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)`, Linux 5.6+.
    Openat2,
    /// One component at a time with `O_NOFOLLOW`: symlinked parents are refused.
    NoFollowWalk,
}

impl Resolver {
    /// `Openat2` if the kernel has it. Probed once: ENOSYS means it does not.
    pub fn detect() -> Resolver {
        static CACHED: AtomicU8 = AtomicU8::new(0);
        match CACHED.load(Ordering::Relaxed) {
            1 => return Resolver::Openat2,
            2 => return Resolver::NoFollowWalk,
            _ => {}
        }
        let probe = nix::fcntl::openat2(
            nix::fcntl::AT_FDCWD,
            "/",
            nix::fcntl::OpenHow::new().flags(OFlag::O_PATH | OFlag::O_CLOEXEC),
        );
        let r = match probe {
            Err(Errno::ENOSYS) => Resolver::NoFollowWalk,
            _ => Resolver::Openat2,
        };
        CACHED.store(
            if r == Resolver::Openat2 { 1 } else { 2 },
            Ordering::Relaxed,
        );
        r
    }
}

// ANCHOR: compression
/// How a layer blob is compressed. It is told by the blob's first bytes
/// (its magic number), as `docker load` and containers/storage do, and not
/// by the media type: a layer blob is a layer blob wherever it came from
/// (a registry, an OCI layout, a docker-archive that names no media type).
///
/// ```text
/// 1f 8b ..       gzip                 application/vnd.oci.image.layer.v1.tar+gzip
/// 28 b5 2f fd    zstd frame           application/vnd.oci.image.layer.v1.tar+zstd
/// 5? 2a 4d 18    zstd skippable frame (zstd:chunked starts some layers with one)
/// anything else  a plain tar          application/vnd.oci.image.layer.v1.tar
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Recognises the magic number at the start of `head`.
    pub fn detect(head: &[u8]) -> Compression {
        let skippable =
            head.len() >= 4 && head[0] & 0xf0 == 0x50 && head[1..4] == [0x2a, 0x4d, 0x18];
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) || skippable {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Wraps `input` in the decompressor its first bytes call for. zstd is
/// decoded by libzstd (the `zstd` crate), which reads a stream of several
/// frames and skips skippable ones, as zstd:chunked layers have; the
/// decoder only ever writes to memory, so a hostile frame can at worst make
/// the tar reader fail, like a hostile gzip stream.
pub fn decompressor<'a, R: BufRead + 'a>(
    mut input: R,
) -> Result<(Box<dyn Read + 'a>, Compression)> {
    let compression = Compression::detect(
        input
            .fill_buf()
            .context("reading the layer's first bytes")?,
    );
    let reader: Box<dyn Read + 'a> = match compression {
        Compression::Gzip => Box::new(flate2::bufread::GzDecoder::new(input)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(input).context("starting the zstd decoder")?,
        ),
        Compression::None => Box::new(input),
    };
    Ok((reader, compression))
}
// ANCHOR_END: compression

/// Applies a layer (a tar, plain or compressed with gzip or zstd: see
/// [`Compression`]) to `target`, which must exist. See the module documentation for
/// what is refused. On error the directory holds part of the layer: the
/// caller extracts into a temporary directory and throws it away.
pub fn apply_layer<R: Read>(input: R, target: &Path, whiteouts: Whiteouts) -> Result<Applied> {
    apply_layer_with(input, target, whiteouts, Resolver::detect())
}

/// [`apply_layer`] with an explicit [`Resolver`] (the tests run both).
pub fn apply_layer_with<R: Read>(
    input: R,
    target: &Path,
    whiteouts: Whiteouts,
    resolver: Resolver,
) -> Result<Applied> {
    apply_layer_shifted(input, target, whiteouts, resolver, None)
}

/// [`apply_layer_with`], with every owner moved by `shift` (see [`IdShift`]).
pub fn apply_layer_shifted<R: Read>(
    input: R,
    target: &Path,
    whiteouts: Whiteouts,
    resolver: Resolver,
    shift: Option<IdShift>,
) -> Result<Applied> {
    let root = openat(
        nix::fcntl::AT_FDCWD,
        target,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening layer directory {}", target.display()))?;

    let (raw, raw_hash) = HashingReader::new(input);
    let (decompressed, compression) = decompressor(BufReader::new(raw))?;
    let (tar_reader, tar_hash) = HashingReader::new(decompressed);
    let mut archive = tar::Archive::new(tar_reader);

    let mut ctx = Ctx {
        root,
        resolver,
        whiteouts,
        shift,
        written: HashSet::new(),
        opaque: Vec::new(),
        dirs: Vec::new(),
        neutralised: Vec::new(),
        last_dir: std::cell::RefCell::new(None),
    };
    let mut entries = 0;
    for entry in archive
        .entries()
        .context("reading the layer as a tar archive")?
    {
        let mut entry = entry.context("reading a tar header")?;
        ctx.apply_entry(&mut entry)?;
        entries += 1;
    }
    ctx.finish()?;

    // Hash to the very end: the diff_id covers the tar's zero blocks, the
    // layer digest the gzip trailer.
    let mut rest = archive.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink()).context("reading the end of the layer")?;
    drop(rest);
    Ok(Applied {
        digest: raw_hash.digest(),
        size: raw_hash.len(),
        diff_id: tar_hash.digest(),
        compression,
        entries,
        neutralised: ctx.neutralised,
    })
}

/// Hashes a layer without applying it: `(digest, size, diff_id)`.
pub fn layer_digests<R: Read>(input: R) -> Result<(String, u64, String)> {
    let (raw, raw_hash): (HashingReader<R>, Hasher) = HashingReader::new(input);
    let (mut decompressed, _) = decompressor(BufReader::new(raw))?;
    let (mut tar_reader, tar_hash) = HashingReader::new(&mut decompressed);
    std::io::copy(&mut tar_reader, &mut std::io::sink()).context("reading the layer")?;
    drop(tar_reader);
    drop(decompressed);
    Ok((raw_hash.digest(), raw_hash.len(), tar_hash.digest()))
}

/// Cleans an archive name into path components (see rule 1). `Ok(None)` is
/// the root itself (`./`). The bool says whether a leading `/` was dropped.
pub fn clean_name(name: &[u8]) -> std::result::Result<(Vec<OsString>, bool), Refusal> {
    if name.len() > PATH_MAX {
        return Err(Refusal::NameTooLong);
    }
    let absolute = name.starts_with(b"/");
    let mut out = Vec::new();
    for part in name.split(|b| *b == b'/') {
        match part {
            b"" | b"." => continue,
            b".." => return Err(Refusal::DotDot),
            p if p.len() > NAME_MAX => return Err(Refusal::NameTooLong),
            p => out.push(OsString::from_vec(p.to_vec())),
        }
    }
    Ok((out, absolute))
}

fn join(components: &[OsString]) -> PathBuf {
    let mut p = PathBuf::new();
    for c in components {
        p.push(c);
    }
    p
}

/// What an entry's header says about the file it makes, owner already
/// moved into the remapped range.
struct EntryMeta {
    mode: Mode,
    uid: Uid,
    gid: Gid,
    mtime: i64,
}

struct Ctx {
    root: OwnedFd,
    resolver: Resolver,
    whiteouts: Whiteouts,
    /// Owners moved into a user namespace's range (`--userns-remap`).
    shift: Option<IdShift>,
    /// Paths this layer wrote: whiteouts only hide what is *below* the layer.
    written: HashSet<PathBuf>,
    /// Directories marked opaque, for `Whiteouts::Apply` (done at the end).
    opaque: Vec<PathBuf>,
    /// Directories and their mtimes, set last (adding children changes them).
    dirs: Vec<(PathBuf, i64)>,
    neutralised: Vec<String>,
    /// The directory the last entry went into, and its components: the
    /// next entry of a depth-first archive is usually in it or one level
    /// below (see `open_dir`).
    last_dir: std::cell::RefCell<Option<(Vec<OsString>, OwnedFd)>>,
}

impl Ctx {
    fn refuse(path: &[u8], refusal: Refusal) -> anyhow::Error {
        anyhow!(UnsafeEntry {
            path: String::from_utf8_lossy(path).into_owned(),
            refusal,
        })
    }

    // ANCHOR: apply_entry
    /// Applies one tar entry: cleans its name (rule 1), treats a whiteout
    /// name as the deletion it stands for, opens the parent inside the layer
    /// (rule 2), and creates the entry by its type (rules 3 to 6).
    fn apply_entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw_name = entry.path_bytes().into_owned();
        let (components, absolute) =
            clean_name(&raw_name).map_err(|r| Self::refuse(&raw_name, r))?;
        if absolute {
            self.neutralised
                .push(String::from_utf8_lossy(&raw_name).into_owned());
        }
        let Some((name, parents)) = components.split_last() else {
            return Ok(()); // "./": the layer's root; its metadata is the store's.
        };
        if entry.header().entry_type() != tar::EntryType::Directory {
            // A file, link or whiteout may replace a directory: the next
            // entry's parents are resolved afresh (see `open_dir`).
            self.last_dir.borrow_mut().take();
        }

        // Whiteouts are names, not file types: `.wh.NAME` and `.wh..wh..opq`.
        let name_bytes = name.as_bytes();
        if name_bytes == OPAQUE_MARKER.as_bytes() {
            return self.opaque_entry(parents, &raw_name);
        }
        if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            return self.whiteout_entry(parents, hidden, &raw_name);
        }

        let dir = self.open_dir(parents, &raw_name)?;
        let meta = self.entry_meta(entry.header(), &raw_name)?;
        let rel = join(&components);
        let ctx = || format!("extracting {:?}", String::from_utf8_lossy(&raw_name));

        use tar::EntryType as T;
        match entry.header().entry_type() {
            T::Directory => {
                self.make_entry_dir(&dir, name, &meta).with_context(ctx)?;
                self.dirs.push((rel.clone(), meta.mtime));
            }
            T::Regular | T::Continuous => {
                Self::make_file(entry, &dir, name, &meta).with_context(ctx)?;
            }
            T::Symlink => {
                let target = Self::link_target(entry, "symlink").with_context(ctx)?;
                if target.len() > PATH_MAX {
                    return Err(Self::refuse(&raw_name, Refusal::NameTooLong));
                }
                Self::make_symlink(&dir, name, &target, &meta).with_context(ctx)?;
            }
            T::Link => {
                let target = Self::link_target(entry, "hardlink").with_context(ctx)?;
                self.hardlink(&dir, name, &target, &raw_name)?;
            }
            T::Char | T::Block => return self.device_node(&dir, name, entry.header(), &raw_name),
            T::Fifo => Self::make_fifo(&dir, name, &meta).with_context(ctx)?,
            other => {
                return Err(Self::refuse(
                    &raw_name,
                    Refusal::UnsupportedType(other.as_byte()),
                ))
            }
        }
        self.written.insert(rel);
        Ok(())
    }

    /// `.wh..wh..opq` in a directory: see [`Ctx::opaque_dir`].
    fn opaque_entry(&mut self, parents: &[OsString], raw_name: &[u8]) -> Result<()> {
        let dir_rel = join(parents);
        let dir = self.open_dir(parents, raw_name)?;
        self.opaque_dir(&dir, dir_rel)
    }

    /// `.wh.HIDDEN` in a directory: HIDDEN of the layers below goes (see
    /// [`Ctx::whiteout`]), unless it is aufs bookkeeping or this very layer
    /// wrote it.
    fn whiteout_entry(
        &mut self,
        parents: &[OsString],
        hidden: &[u8],
        raw_name: &[u8],
    ) -> Result<()> {
        if hidden.starts_with(WHITEOUT_PREFIX.as_bytes()) {
            return Ok(()); // other `.wh..wh.*` names are aufs bookkeeping
        }
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(Self::refuse(raw_name, Refusal::BadWhiteout));
        }
        let hidden = OsStr::from_bytes(hidden);
        let hidden_rel = join(parents).join(hidden);
        if self.written.contains(&hidden_rel) {
            return Ok(()); // a whiteout only hides the layers below
        }
        let dir = self.open_dir(parents, raw_name)?;
        self.whiteout(&dir, hidden)
    }

    /// The mode, owner and mtime an entry's header gives it. Modes are kept
    /// whole, setuid bits included (rule 6); owners move into the remapped
    /// range when there is one (see [`IdShift`]).
    fn entry_meta(&self, header: &tar::Header, raw_name: &[u8]) -> Result<EntryMeta> {
        let mode = Mode::from_bits_truncate(header.mode().context("reading mode")? & 0o7777);
        let (uid, gid) = (
            header.uid().context("reading uid")?,
            header.gid().context("reading gid")?,
        );
        let (uid, gid) = match self.shift {
            None => (uid as u32, gid as u32),
            // An owner too large for 32 bits is out of any range too.
            Some(s) => {
                let (u, g) = (
                    u32::try_from(uid).unwrap_or(u32::MAX),
                    u32::try_from(gid).unwrap_or(u32::MAX),
                );
                s.to_host(u, g).ok_or_else(|| {
                    Self::refuse(raw_name, Refusal::UnmappedOwner { uid: u, gid: g })
                })?
            }
        };
        Ok(EntryMeta {
            mode,
            uid: Uid::from_raw(uid),
            gid: Gid::from_raw(gid),
            mtime: header.mtime().unwrap_or(0) as i64,
        })
    }

    /// A directory: made if missing (a file in its way is removed), then
    /// given the entry's owner and mode. Its mtime is set in [`Ctx::finish`].
    fn make_entry_dir(&self, dir: &OwnedFd, name: &OsStr, meta: &EntryMeta) -> Result<()> {
        let fd = self.make_dir(dir, name)?;
        fchown(&fd, Some(meta.uid), Some(meta.gid))?;
        fchmod(&fd, meta.mode)?;
        Ok(())
    }

    /// A regular file: created new (`O_EXCL | O_NOFOLLOW`, rule 3) and
    /// filled from the archive.
    fn make_file<R: Read>(
        entry: &mut tar::Entry<'_, R>,
        dir: &OwnedFd,
        name: &OsStr,
        meta: &EntryMeta,
    ) -> Result<()> {
        remove_existing(dir, name)?;
        let fd = openat(
            dir,
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )?;
        let mut file = File::from(fd);
        std::io::copy(entry, &mut file)?;
        // chown before chmod: chown clears the setuid and setgid bits.
        fchown(&file, Some(meta.uid), Some(meta.gid))?;
        fchmod(&file, meta.mode)?;
        set_mtime(dir, name, meta.mtime)?;
        Ok(())
    }

    /// The target a symlink or hardlink entry names.
    fn link_target<R: Read>(entry: &tar::Entry<'_, R>, what: &str) -> Result<Vec<u8>> {
        Ok(entry
            .link_name_bytes()
            .ok_or_else(|| anyhow!("{what} without a target"))?
            .into_owned())
    }

    /// A symlink, owned by the entry's owner (`AT_SYMLINK_NOFOLLOW`).
    fn make_symlink(dir: &OwnedFd, name: &OsStr, target: &[u8], meta: &EntryMeta) -> Result<()> {
        remove_existing(dir, name)?;
        // The target is only text: it is never followed here.
        nix::unistd::symlinkat(OsStr::from_bytes(target), dir, name)?;
        nix::unistd::fchownat(
            dir,
            name,
            Some(meta.uid),
            Some(meta.gid),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        set_mtime(dir, name, meta.mtime)?;
        Ok(())
    }

    /// A device node is refused (rule 5), except the 0/0 character device,
    /// which is already an overlay-style whiteout (a naive tar of an upper dir).
    fn device_node(
        &mut self,
        dir: &OwnedFd,
        name: &OsStr,
        header: &tar::Header,
        raw_name: &[u8],
    ) -> Result<()> {
        let block = header.entry_type() == tar::EntryType::Block;
        let major = header.device_major().ok().flatten().unwrap_or(0) as u64;
        let minor = header.device_minor().ok().flatten().unwrap_or(0) as u64;
        if !block && major == 0 && minor == 0 {
            return self.whiteout(dir, name);
        }
        Err(Self::refuse(
            raw_name,
            Refusal::DeviceNode {
                block,
                major,
                minor,
            },
        ))
    }

    /// A FIFO: harmless, kept (rule 5).
    fn make_fifo(dir: &OwnedFd, name: &OsStr, meta: &EntryMeta) -> Result<()> {
        remove_existing(dir, name)?;
        mknodat(dir, name, SFlag::S_IFIFO, meta.mode, 0)?;
        nix::unistd::fchownat(
            dir,
            name,
            Some(meta.uid),
            Some(meta.gid),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        Ok(())
    }
    // ANCHOR_END: apply_entry

    // ANCHOR: open_dir
    /// Opens (creating if missing) the directory `components` inside the
    /// layer, never leaving it: see rule 2 of the module documentation.
    fn open_dir(&self, components: &[OsString], raw_name: &[u8]) -> Result<OwnedFd> {
        // The walk below starts from the layer's root for every component:
        // for a tree 3,000 levels deep that is millions of lookups per
        // entry, and past PATH_MAX no path at all. An archive lists a
        // directory's children right after it, so the directory of the last
        // entry (resolved safely then) or one plain component below it,
        // opened with O_NOFOLLOW, is the same directory, found in one step.
        if let Some(fd) = self.near_last_dir(components) {
            return Ok(fd);
        }
        let dir = self.open_dir_from_root(components, raw_name)?;
        if let Ok(copy) = dir.try_clone() {
            *self.last_dir.borrow_mut() = Some((components.to_vec(), copy));
        }
        Ok(dir)
    }

    /// [`Ctx::open_dir`] from the last directory, when `components` is it or
    /// one existing directory below it (never through a symlink).
    fn near_last_dir(&self, components: &[OsString]) -> Option<OwnedFd> {
        let mut last = self.last_dir.borrow_mut();
        let (cached, fd) = last.as_ref()?;
        if cached.as_slice() == components {
            return fd.try_clone().ok();
        }
        let next = components.strip_prefix(cached.as_slice())?;
        let [name] = next else {
            return None;
        };
        if name == ".." || name == "." {
            return None;
        }
        let below = openat(
            fd,
            name.as_os_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let copy = below.try_clone().ok()?;
        *last = Some((components.to_vec(), copy));
        Some(below)
    }

    fn open_dir_from_root(&self, components: &[OsString], raw_name: &[u8]) -> Result<OwnedFd> {
        let refuse = || Self::refuse(raw_name, Refusal::ParentNotADirectory);
        let mut dir = self.resolve(&[]).map_err(|_| refuse())?;
        for i in 0..components.len() {
            dir = match self.resolve(&components[..=i]) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    // Missing parent: create it (as `tar` does), then resolve
                    // again, so that the created name is what we open.
                    match nix::sys::stat::mkdirat(
                        &dir,
                        components[i].as_os_str(),
                        Mode::from_bits_truncate(0o755),
                    ) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => {
                            return Err(e).with_context(|| {
                                format!(
                                    "creating parent of {:?}",
                                    String::from_utf8_lossy(raw_name)
                                )
                            })
                        }
                    }
                    // EEXIST with ENOENT again means a dangling symlink.
                    self.resolve(&components[..=i]).map_err(|_| refuse())?
                }
                Err(_) => return Err(refuse()),
            };
        }
        Ok(dir)
    }

    /// Resolves a directory inside the layer, as if the layer were `/`.
    fn resolve(&self, components: &[OsString]) -> nix::Result<OwnedFd> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        match self.resolver {
            Resolver::Openat2 => {
                use nix::fcntl::ResolveFlag as R;
                let path = join(components);
                let path = if path.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    path
                };
                let how = nix::fcntl::OpenHow::new()
                    .flags(flags)
                    .resolve(R::RESOLVE_IN_ROOT | R::RESOLVE_NO_MAGICLINKS | R::RESOLVE_NO_XDEV);
                nix::fcntl::openat2(&self.root, &path, how)
            }
            Resolver::NoFollowWalk => {
                let mut dir = openat(&self.root, ".", flags, Mode::empty())?;
                for c in components {
                    // O_NOFOLLOW on a symlink fails with ELOOP (or ENOTDIR
                    // with O_DIRECTORY): symlinked parents are refused.
                    dir = openat(
                        &dir,
                        c.as_os_str(),
                        flags | OFlag::O_NOFOLLOW,
                        Mode::empty(),
                    )?;
                }
                Ok(dir)
            }
        }
    }
    // ANCHOR_END: open_dir

    fn make_dir(&self, parent: &OwnedFd, name: &OsStr) -> Result<OwnedFd> {
        match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR => {}
            Ok(_) => {
                remove_existing(parent, name)?;
                nix::sys::stat::mkdirat(parent, name, Mode::from_bits_truncate(0o700))?;
            }
            Err(Errno::ENOENT) => {
                nix::sys::stat::mkdirat(parent, name, Mode::from_bits_truncate(0o700))?
            }
            Err(e) => return Err(e.into()),
        }
        Ok(openat(
            parent,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?)
    }

    // ANCHOR: whiteout
    /// `.wh.NAME`: hide NAME of the layers below.
    fn whiteout(&mut self, dir: &OwnedFd, name: &OsStr) -> Result<()> {
        remove_existing(dir, name)
            .with_context(|| format!("removing {name:?} for its whiteout"))?;
        if self.whiteouts == Whiteouts::Overlay {
            // overlayfs's whiteout: a character device with device number 0/0
            // (`mknod NAME c 0 0`). Where it is, the lower layers' NAME is not.
            mknodat(dir, name, SFlag::S_IFCHR, Mode::empty(), 0)
                .with_context(|| format!("mknod {name:?} c 0 0 (an overlay whiteout)"))?;
        }
        Ok(())
    }

    /// `.wh..wh..opq`: the directory hides everything the layers below have in it.
    fn opaque_dir(&mut self, dir: &OwnedFd, rel: PathBuf) -> Result<()> {
        match self.whiteouts {
            // `setfattr -n trusted.overlay.opaque -v y DIR`
            Whiteouts::Overlay => set_xattr(dir, OVERLAY_OPAQUE_XATTR, b"y")
                .with_context(|| format!("marking {} opaque", rel.display())),
            Whiteouts::Apply => {
                self.opaque.push(rel);
                Ok(())
            }
        }
    }
    // ANCHOR_END: whiteout

    fn hardlink(&mut self, dir: &OwnedFd, name: &OsStr, target: &[u8], raw: &[u8]) -> Result<()> {
        let (tcomponents, _) = clean_name(target).map_err(|r| Self::refuse(raw, r))?;
        let Some((tname, tparents)) = tcomponents.split_last() else {
            return Err(Self::refuse(raw, Refusal::BadHardlinkTarget));
        };
        // The target's directory is resolved inside the layer, like any parent.
        let tdir = self
            .resolve(tparents)
            .map_err(|_| Self::refuse(raw, Refusal::BadHardlinkTarget))?;
        match fstatat(&tdir, tname.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR => {}
            _ => return Err(Self::refuse(raw, Refusal::BadHardlinkTarget)),
        }
        if same_entry(&tdir, tname, dir, name) {
            return Ok(()); // a link to itself: already there
        }
        remove_existing(dir, name)?;
        // No AT_SYMLINK_FOLLOW: a hardlink to a symlink links the symlink.
        nix::unistd::linkat(&tdir, tname.as_os_str(), dir, name, AtFlags::empty())
            .with_context(|| format!("hardlinking {:?}", String::from_utf8_lossy(raw)))?;
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        // Whiteouts::Apply: empty opaque directories of what the layers below had.
        for rel in std::mem::take(&mut self.opaque) {
            let components: Vec<OsString> = rel.iter().map(|c| c.to_os_string()).collect();
            let dir = self.resolve(&components)?;
            self.clear_lower(&dir, &rel)?;
        }
        // Directory mtimes last, deepest first.
        let dirs = std::mem::take(&mut self.dirs);
        for (rel, mtime) in dirs.iter().rev() {
            let components: Vec<OsString> = rel.iter().map(|c| c.to_os_string()).collect();
            if let Some((name, parents)) = components.split_last() {
                if let Ok(parent) = self.resolve(parents) {
                    let _ = set_mtime(&parent, name, *mtime);
                }
            }
        }
        Ok(())
    }

    /// Removes what is in `dir` and was not written by this layer.
    fn clear_lower(&self, dir: &OwnedFd, rel: &Path) -> Result<()> {
        for name in list_dir(dir)? {
            let child = rel.join(&name);
            if !self.written.contains(&child) {
                remove_existing(dir, &name)?;
            } else if is_dir(dir, &name) {
                let sub = openat(
                    dir,
                    name.as_os_str(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )?;
                self.clear_lower(&sub, &child)?;
            }
        }
        Ok(())
    }
}

fn same_entry(a: &OwnedFd, an: &OsStr, b: &OwnedFd, bn: &OsStr) -> bool {
    match (
        fstatat(a, an, AtFlags::AT_SYMLINK_NOFOLLOW),
        fstatat(b, bn, AtFlags::AT_SYMLINK_NOFOLLOW),
    ) {
        (Ok(x), Ok(y)) => x.st_dev == y.st_dev && x.st_ino == y.st_ino,
        _ => false,
    }
}

fn is_dir(dir: &OwnedFd, name: &OsStr) -> bool {
    matches!(fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW),
        Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
}

/// The names in a directory, without `.` and `..`.
pub(crate) fn list_dir(dir: &OwnedFd) -> Result<Vec<OsString>> {
    let fd = openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut d = nix::dir::Dir::from_fd(fd)?;
    let mut names = Vec::new();
    for e in d.iter() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsString::from_vec(n.to_vec()));
        }
    }
    Ok(names)
}

/// Removes `name` in `dir` if it exists, recursively for a directory, never
/// following a symlink (the symlink itself is removed).
pub(crate) fn remove_existing(dir: &OwnedFd, name: &OsStr) -> Result<()> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
        Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR => {
            let sub = openat(
                dir,
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            for child in list_dir(&sub)? {
                remove_existing(&sub, &child)?;
            }
            nix::unistd::unlinkat(dir, name, nix::unistd::UnlinkatFlags::RemoveDir)?;
            Ok(())
        }
        Ok(_) => {
            nix::unistd::unlinkat(dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir)?;
            Ok(())
        }
    }
}

fn set_mtime(dir: &OwnedFd, name: &OsStr, mtime: i64) -> nix::Result<()> {
    let t = TimeSpec::new(mtime, 0);
    nix::sys::stat::utimensat(
        dir,
        name,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
}

/// `fsetxattr(2)` on an open file or directory.
pub(crate) fn set_xattr(fd: &impl AsFd, name: &str, value: &[u8]) -> Result<()> {
    let cname = std::ffi::CString::new(name)?;
    // SAFETY: valid fd, NUL-terminated name, value pointer and length from a slice.
    let rc = unsafe {
        libc::fsetxattr(
            fd.as_fd().as_raw_fd(),
            cname.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(rc)
        .map(drop)
        .with_context(|| format!("fsetxattr {name}"))
}

/// `lgetxattr(2)`: an xattr of a path, without following a final symlink.
pub fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let cpath = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let cname = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a buffer of the given length.
    let n = unsafe {
        libc::lgetxattr(
            cpath.as_ptr(),
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

/// Whether `meta` is an overlay whiteout: a character device 0/0.
pub fn is_whiteout(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// The [`UnsafeEntry`] behind an error, if a hostile entry caused it: for
/// tests and callers that tell a hostile layer from an I/O failure.
pub fn unsafe_entry(err: &anyhow::Error) -> Option<&UnsafeEntry> {
    err.chain().find_map(|e| e.downcast_ref::<UnsafeEntry>())
}
