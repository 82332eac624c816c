//! `cp`: copy files between a container and the host, safely. (The Engine
//! API's `/containers/{id}/archive` endpoints need the same care.)
//!
//! A container's files are hostile input, and a path inside a container
//! means what the *container* says it means. Two classic bugs show what can
//! go wrong:
//!
//! - **CVE-2018-15664** (`docker cp` symlink race): docker resolved the
//!   container path as a host path string under the container's root. A
//!   process in the container swapped a directory for a symlink to `/`
//!   between the check and the use, and `docker cp` read or wrote the
//!   host's files. Here every container path is resolved with
//!   `openat2(RESOLVE_IN_ROOT)` (lab 02's `open_in_root`), which treats the
//!   container's root as `/` for every `..` and symlink, and a running
//!   container is frozen (lab 03's freezer) for the whole copy, as docker's
//!   fix does, so nothing changes under us.
//! - **CVE-2019-14271**: `docker cp` loaded a shared library *from the
//!   container* (through the container's nsswitch) into a process running
//!   as root on the host. Dockyard never executes or loads anything from the
//!   container: the copy is done by this process, with file descriptors.
//!
//! Both directions are a tar stream, as in docker: the source is archived
//! without following symlinks (lab 04's `write_tree`), and the archive is
//! applied at the destination by lab 04's layer extraction, which never
//! writes outside its target directory whatever the archive says.
//!
//! ```text
//! $ docker cp web:/etc/nginx/nginx.conf .      # copy_out
//! $ docker cp ./site web:/usr/share/nginx/     # copy_in
//! ```

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::pause::freeze;
use crate::engine::Engine;
use crate::state::{process_alive, process_is, Record, Status};
use lab04_overlay::overlay::is_mounted;

use lab02_namespaces::security;
use lab04_overlay as overlay;

/// The container's root, mounted for the copy if it is not running, and
/// the container frozen if it is. Undone on drop.
struct Access<'a> {
    engine: &'a Engine,
    record: Record,
    root: OwnedFd,
    /// A stopped container's volumes and bind mounts: (target, its source
    /// opened), longest target first (see [`Access::resolve`]).
    mounts: Vec<(PathBuf, OwnedFd)>,
    frozen: bool,
    _mount: Option<overlay::overlay::MountGuard>,
}

impl<'a> Access<'a> {
    fn open(engine: &'a Engine, name: &str) -> Result<Access<'a>> {
        let record = engine
            .containers
            .reconcile(engine.containers.resolve(name)?)?;
        let (id, state) = (record.id.clone(), record.state.clone());
        match Access::open_record(engine, record) {
            // It died under us, most often killed a moment ago (`kill`
            // returns once the signal is sent): its cgroup or its
            // /proc/PID/root is gone, and its monitor is still recording the
            // exit and unmounting its root. Wait until the monitor is done,
            // and copy from the stopped container, as `docker cp` can.
            Err(e)
                if state.status == Status::Running
                    && !process_is(state.pid, state.pid_start_time) =>
            {
                let wait = Duration::from_secs(10);
                if !super::wait_until_exited(engine, &id, wait)? {
                    return Err(e);
                }
                let deadline = Instant::now() + wait;
                while process_alive(state.monitor_pid) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let record = engine.containers.reconcile(engine.containers.load(&id)?)?;
                Access::open_record(engine, record)
            }
            opened => opened,
        }
    }

    fn open_record(engine: &'a Engine, record: Record) -> Result<Access<'a>> {
        if engine.rootless && record.state.status == Status::Running {
            // Its overlay is mounted in its monitor's mount namespace, not
            // ours, and there is no freezer to hold it still.
            return Err(crate::rootless::rootless_refusal(
                "cp with a running container",
                "its root filesystem is mounted in the mount namespace of the dockyard that \
                 started it, and rootless containers have no cgroup freezer; stop it first",
            ));
        }
        let layer = engine.layer_container(&record.id)?;
        let merged = layer.merged();
        let mount = if is_mounted(&merged)? {
            None
        } else {
            let dirs = engine.images.overlay_dirs(&layer)?;
            overlay::overlay::mount_overlay(&dirs)?;
            Some(overlay::overlay::MountGuard(merged.clone()))
        };
        let frozen = record.state.status == Status::Running;
        if frozen {
            freeze(engine, &record, true)?;
        }
        let opened = Access::open_root(engine, &record, &merged, frozen);
        if opened.is_err() && frozen {
            let _ = freeze(engine, &record, false);
        }
        let (root, mounts) = opened?;
        Ok(Access {
            engine,
            record,
            root: root.into(),
            mounts,
            frozen,
            _mount: mount,
        })
    }

    // ANCHOR: cp_mounts
    /// The container's files as the container sees them, its mounts
    /// included (docker's cp sees them too): a running container's root
    /// is opened through /proc/PID/root, which is its root in *its*
    /// mount namespace, where its volumes, binds and tmpfs mounts are;
    /// paths resolved from there cross into them. The overlay alone, as
    /// the host sees it, would show the upper dir under each mount point
    /// (a copy would land where the container never looks). A stopped
    /// container has no mount namespace: its volumes and binds are
    /// found by their targets, as docker mounts them for the copy.
    fn open_root(
        engine: &Engine,
        record: &Record,
        merged: &Path,
        running: bool,
    ) -> Result<(File, Vec<(PathBuf, OwnedFd)>)> {
        if running && record.state.pid > 0 {
            let proc_root = format!("/proc/{}/root", record.state.pid);
            let f = File::open(&proc_root).with_context(|| format!("opening {proc_root}"))?;
            Ok((f, Vec::new()))
        } else {
            let f = File::open(merged).with_context(|| format!("opening {}", merged.display()))?;
            Ok((f, stopped_mounts(engine, record)?))
        }
    }
    // ANCHOR_END: cp_mounts

    /// `path` inside the container, resolved inside its root (or, for a
    /// stopped container, inside the volume or bind mounted over it).
    fn resolve(&self, path: &Path, flags: libc::c_int) -> Result<OwnedFd> {
        let clean: PathBuf = path
            .components()
            .filter(|c| matches!(c, std::path::Component::Normal(_)))
            .collect();
        let (root, rest) = self
            .mounts
            .iter()
            .find_map(|(target, fd)| clean.strip_prefix(target).ok().map(|r| (fd, r)))
            .map(|(fd, r)| (fd, Path::new("/").join(r)))
            .unwrap_or((&self.root, path.to_path_buf()));
        security::open_in_root(root, &rest, flags).with_context(|| {
            format!(
                "Could not find the file {} in container {}",
                path.display(),
                self.record.name
            )
        })
    }
}

/// A stopped container's volumes and binds, each target (relative, without
/// `..`) with its source opened; longest target first, so that the deepest
/// mount over a path is the one found.
fn stopped_mounts(engine: &Engine, record: &Record) -> Result<Vec<(PathBuf, OwnedFd)>> {
    let config = super::config::config_of(record)?;
    let mut out = Vec::new();
    for m in &config.mounts {
        let source = match m.kind.as_str() {
            "volume" => engine.volumes.data(&m.source),
            "bind" => PathBuf::from(&m.source),
            _ => continue,
        };
        let Ok(dir) = File::open(&source) else {
            continue; // not created yet (a volume made at first start)
        };
        if !dir.metadata().is_ok_and(|md| md.is_dir()) {
            continue; // a file bound over a file: copied through the rootfs
        }
        let target: PathBuf = Path::new(&m.target)
            .components()
            .filter(|c| matches!(c, std::path::Component::Normal(_)))
            .collect();
        if target.as_os_str().is_empty() {
            continue; // over the whole root: refused at create
        }
        out.push((target, OwnedFd::from(dir)));
    }
    out.sort_by_key(|(t, _)| std::cmp::Reverse(t.components().count()));
    Ok(out)
}

impl Drop for Access<'_> {
    fn drop(&mut self) {
        if self.frozen {
            let _ = freeze(self.engine, &self.record, false);
        }
    }
}

/// The file name a copied tree gets at its destination.
fn base_name(p: &Path) -> Result<&std::ffi::OsStr> {
    p.file_name()
        .context("cannot copy the root directory itself: name a directory inside it")
}

// ANCHOR: copy_out
/// `cp CONTAINER:PATH TO`: copy a file or a directory out of the container
/// `name` to the host path `to` (into it, if it is a directory).
pub fn copy_out(engine: &Engine, name: &str, path: &Path, to: &Path) -> Result<()> {
    let access = Access::open(engine, name)?;
    let src = access.resolve(path, libc::O_PATH)?;
    let meta = std::fs::metadata(format!("/proc/self/fd/{}", src.as_raw_fd()))?;
    let into_dir = to.is_dir();
    if meta.is_file() {
        // One file: read it through the descriptor we resolved.
        let dest = if into_dir {
            to.join(base_name(path)?)
        } else {
            to.to_path_buf()
        };
        let file = access.resolve(path, libc::O_RDONLY)?;
        write_new_file(&mut File::from(file), &dest, meta.permissions())?;
        return Ok(());
    }
    if !meta.is_dir() {
        bail!(
            "{}: only files and directories can be copied out",
            path.display()
        );
    }
    // A directory: archive it (symlinks as symlinks, never followed) and
    // unpack the archive, as untrusted, into the destination.
    let dest = if into_dir {
        to.join(base_name(path)?)
    } else {
        to.to_path_buf()
    };
    std::fs::create_dir_all(&dest).with_context(|| format!("creating {}", dest.display()))?;
    let tree = PathBuf::from(format!("/proc/self/fd/{}", src.as_raw_fd()));
    // With --userns-remap the owners go back to what the container sees.
    let tar = overlay::diff::write_tree_shifted(
        &tree,
        Vec::new(),
        overlay::diff::TreeKind::Plain,
        engine.images.id_shift(),
    )?;
    overlay::extract::apply_layer(&tar[..], &dest, overlay::extract::Whiteouts::Apply)?;
    Ok(())
}
// ANCHOR_END: copy_out

/// `cp CONTAINER:PATH -`: the file or directory as a tar stream on `out`,
/// its entries under the path's base name, as docker writes it.
pub fn copy_out_tar(engine: &Engine, name: &str, path: &Path, out: impl Write) -> Result<()> {
    let access = Access::open(engine, name)?;
    let src = access.resolve(path, libc::O_PATH)?;
    let meta = std::fs::metadata(format!("/proc/self/fd/{}", src.as_raw_fd()))?;
    let base = Path::new(base_name(path)?);
    let mut b = tar::Builder::new(out);
    if meta.is_file() {
        let mut file = File::from(access.resolve(path, libc::O_RDONLY)?);
        let mut h = tar::Header::new_gnu();
        h.set_metadata(&meta);
        b.append_data(&mut h, base, &mut file)?;
    } else if meta.is_dir() {
        let tree = PathBuf::from(format!("/proc/self/fd/{}", src.as_raw_fd()));
        let tar = overlay::diff::write_tree_shifted(
            &tree,
            Vec::new(),
            overlay::diff::TreeKind::Plain,
            engine.images.id_shift(),
        )?;
        let mut h = tar::Header::new_gnu();
        h.set_metadata(&meta);
        b.append_data(&mut h, base, std::io::empty())?;
        // The tree's entries, re-rooted under the base name (a hard link's
        // target too; a symlink's target is the container's own text).
        let mut archive = tar::Archive::new(&tar[..]);
        for entry in archive.entries()? {
            let mut e = entry?;
            let rel = e.path()?.into_owned();
            if rel.as_os_str().is_empty() || rel == Path::new(".") {
                continue;
            }
            let mut h = e.header().clone();
            let at = base.join(&rel);
            let link = e.link_name()?.map(|l| l.into_owned());
            match (h.entry_type(), link) {
                (tar::EntryType::Symlink, Some(l)) => b.append_link(&mut h, at, l)?,
                (tar::EntryType::Link, Some(l)) => b.append_link(&mut h, at, base.join(l))?,
                _ => b.append_data(&mut h, at, &mut e)?,
            }
        }
    } else {
        bail!(
            "{}: only files and directories can be copied out",
            path.display()
        );
    }
    b.into_inner()?.flush()?;
    Ok(())
}

/// `cp - CONTAINER:DIR`: a tar stream from `input` unpacked into the
/// directory `path` of the container, as untrusted as any archive (lab
/// 04's extraction never writes outside its target).
pub fn copy_in_tar(engine: &Engine, input: impl Read, name: &str, path: &Path) -> Result<()> {
    let access = Access::open(engine, name)?;
    let dir = match access.resolve(path, libc::O_PATH | libc::O_DIRECTORY) {
        Ok(d) => d,
        Err(_) if access.resolve(path, libc::O_PATH).is_ok() => {
            bail!("extraction point is not a directory");
        }
        Err(e) => return Err(e),
    };
    unpack_into(engine, input, &dir, name, path)
}

// ANCHOR: write_new_file
/// Write `dest` on the host with what `input` holds, all or nothing.
///
/// The data goes into an unnamed file (`O_TMPFILE`) in `dest`'s directory,
/// which gets a name only once complete: a `cp` killed halfway (kill -9)
/// leaves nothing, where a named temporary file would stay behind. The name
/// is given by linking it straight to `dest` when there is none. link(2)
/// cannot replace a file, so to replace one it is linked under a temporary
/// name carrying our PID and renamed over `dest`; a kill between the two
/// leaves that name, which the next replace of `dest` sweeps away once its
/// PID is gone. What an older version left, `<dest>.dockyard-cp-tmp`, is
/// removed on the way.
fn write_new_file(input: &mut File, dest: &Path, perms: std::fs::Permissions) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let _ = std::fs::remove_file(dest.with_extension("dockyard-cp-tmp"));
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o600)
        .open(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    std::io::copy(input, &mut out).context("copying")?;
    out.set_permissions(perms).ok();
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let fd_path = format!("/proc/self/fd/{}", out.as_raw_fd());
    let link = |to: &Path| {
        nix::unistd::linkat(
            nix::fcntl::AT_FDCWD,
            fd_path.as_str(),
            nix::fcntl::AT_FDCWD,
            to,
            nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
        )
    };
    match link(dest) {
        Ok(()) => return Ok(()),
        Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(e).with_context(|| format!("naming {}", dest.display())),
    }
    let prefix = format!(".{name}.dockyard-cp-");
    sweep_killed_copies(dir, &prefix);
    let tmp = dir.join(format!("{prefix}{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    link(&tmp).with_context(|| format!("naming {}", tmp.display()))?;
    std::fs::rename(&tmp, dest).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!(e).context(format!("renaming into {}", dest.display()))
    })
}
// ANCHOR_END: write_new_file

/// Remove the temporary names (`prefix` and a PID) that replaces of the
/// same file killed between link and rename left in `dir`: those whose
/// process is gone, never a copy still under way.
fn sweep_killed_copies(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The host's file or directory `from` (whose metadata is `meta`) as a
/// tar with `leaf` as its top name; symlinks are archived as links, never
/// followed. What `cp HOST CONTAINER:PATH` sends, in-process or to a service.
pub fn archive_as(
    from: &Path,
    meta: &std::fs::Metadata,
    leaf: &std::ffi::OsStr,
) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    if meta.is_dir() {
        b.append_dir_all(leaf, from)
            .with_context(|| format!("archiving {}", from.display()))?;
    } else {
        b.append_path_with_name(from, leaf)
            .with_context(|| format!("archiving {}", from.display()))?;
    }
    b.into_inner().context("finishing the archive")
}

// ANCHOR: copy_in
/// `cp FROM CONTAINER:PATH`: copy the host's file or directory `from` into
/// the container `name` at `path` (into it, if it is a directory there).
pub fn copy_in(engine: &Engine, from: &Path, name: &str, path: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(from).with_context(|| format!("{}", from.display()))?;
    let access = Access::open(engine, name)?;
    // Where it lands: into `path` if that is a directory in the container,
    // else at `path` itself (its parent must exist).
    let existing_dir = access.resolve(path, libc::O_PATH | libc::O_DIRECTORY).ok();
    let (dir, leaf) = match existing_dir {
        Some(d) => (d, base_name(from)?.to_os_string()),
        None => {
            let parent = path.parent().unwrap_or(Path::new("/"));
            (
                access.resolve(parent, libc::O_PATH | libc::O_DIRECTORY)?,
                base_name(path)?.to_os_string(),
            )
        }
    };
    // Archive the host side under the leaf name, then let lab 04 apply it
    // inside that directory: every entry is created relative to it,
    // without following any symlink the container put there.
    let tar = archive_as(from, &meta, &leaf)?;
    let target = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    // With --userns-remap the owners move into the container's range, as
    // the image's own files did: root's file becomes the container root's.
    overlay::extract::apply_layer_shifted(
        &tar[..],
        &target,
        overlay::extract::Whiteouts::Apply,
        overlay::extract::Resolver::detect(),
        engine.images.id_shift(),
    )
    .with_context(|| format!("copying into {}:{}", name, path.display()))?;
    Ok(())
}
// ANCHOR_END: copy_in

/// What the Engine API says of a path in a container (its `archive`
/// endpoints' `X-Docker-Container-Path-Stat` header): Go's `os.FileMode`
/// bits in `mode` (the type in the high bits, 1<<31 a directory, 1<<27 a
/// symlink), as the docker CLI decodes them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PathStat {
    pub name: String,
    pub size: u64,
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

fn path_stat_of(path: &Path, fd: &OwnedFd) -> Result<PathStat> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    let mut mode = meta.mode() & 0o777;
    let ft = meta.file_type();
    if ft.is_dir() {
        mode |= 1 << 31;
    }
    for (bit, go) in [(0o4000, 1 << 23), (0o2000, 1 << 22), (0o1000, 1 << 20)] {
        if meta.mode() & bit != 0 {
            mode |= go;
        }
    }
    let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(meta.mtime().max(0) as u64);
    Ok(PathStat {
        name: path
            .file_name()
            .map_or("/".into(), |n| n.to_string_lossy().into_owned()),
        size: meta.len(),
        mode,
        mtime: crate::state::rfc3339(mtime),
        link_target: String::new(),
    })
}

/// `HEAD /containers/ID/archive?path=P`: what `path` is in the container.
pub fn path_stat(engine: &Engine, name: &str, path: &Path) -> Result<PathStat> {
    let access = Access::open(engine, name)?;
    path_stat_of(path, &access.resolve(path, libc::O_PATH)?)
}

/// `GET /containers/ID/archive?path=P`: `path` as a tar stream, under its
/// own name (a directory with everything in it), as `docker cp` reads it;
/// resolved and frozen as [`copy_out`] does.
pub fn archive_path(engine: &Engine, name: &str, path: &Path) -> Result<(PathStat, Vec<u8>)> {
    let access = Access::open(engine, name)?;
    let src = access.resolve(path, libc::O_PATH)?;
    let stat = path_stat_of(path, &src)?;
    let leaf = PathBuf::from(if stat.name == "/" { "." } else { &stat.name });
    let mut out = tar::Builder::new(Vec::new());
    out.follow_symlinks(false);
    if stat.mode & (1 << 31) == 0 {
        let meta = std::fs::metadata(format!("/proc/self/fd/{}", src.as_raw_fd()))?;
        let mut h = tar::Header::new_gnu();
        h.set_metadata(&meta);
        let file = File::from(access.resolve(path, libc::O_RDONLY)?);
        out.append_data(&mut h, &leaf, file)
            .context("archiving the file")?;
        return Ok((stat, out.into_inner()?));
    }
    // A directory: lab 04 archives its contents (symlinks as symlinks,
    // owners shifted back), and each entry is put under the directory's
    // own name.
    let tree = PathBuf::from(format!("/proc/self/fd/{}", src.as_raw_fd()));
    let inner = overlay::diff::write_tree_shifted(
        &tree,
        Vec::new(),
        overlay::diff::TreeKind::Plain,
        engine.images.id_shift(),
    )?;
    let mut top = tar::Header::new_gnu();
    top.set_metadata(&std::fs::metadata(&tree)?);
    out.append_data(&mut top, &leaf, std::io::empty())?;
    let mut archive = tar::Archive::new(&inner[..]);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let rel = entry.path()?.into_owned();
        if rel.as_os_str().is_empty() || rel == Path::new(".") || rel == Path::new("./") {
            continue;
        }
        let mut h = entry.header().clone();
        let link = entry.link_name()?.map(|l| l.into_owned());
        let dest = leaf.join(&rel);
        match link {
            Some(target) => out.append_link(&mut h, &dest, &target)?,
            None => out.append_data(&mut h, &dest, &mut entry)?,
        }
    }
    Ok((stat, out.into_inner()?))
}

/// `PUT /containers/ID/archive?path=DIR`: unpack `tar` into the
/// container's directory `path` (which must exist and be a directory, as
/// docker's), by lab 04's extraction, never outside it.
pub fn extract_archive(engine: &Engine, name: &str, path: &Path, tar: &[u8]) -> Result<()> {
    let access = Access::open(engine, name)?;
    let dir = access.resolve(path, libc::O_PATH)?;
    let stat = path_stat_of(path, &dir)?;
    if stat.mode & (1 << 31) == 0 {
        bail!("extraction point is not a directory");
    }
    unpack_into(engine, tar, &dir, name, path)
}

/// Unpack an untrusted tar stream into `dir`, a directory of a container
/// opened in its root: lab 04's layer extraction (whiteouts applied, IDs
/// shifted under `--userns-remap`), which never writes outside its target.
/// The one tail of `cp - CTR:DIR` and of the API's archive PUT.
fn unpack_into(
    engine: &Engine,
    input: impl Read,
    dir: &impl AsRawFd,
    name: &str,
    path: &Path,
) -> Result<()> {
    let target = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    overlay::extract::apply_layer_shifted(
        input,
        &target,
        overlay::extract::Whiteouts::Apply,
        overlay::extract::Resolver::detect(),
        engine.images.id_shift(),
    )
    .with_context(|| format!("copying into {}:{}", name, path.display()))?;
    Ok(())
}

/// `export` (`GET /containers/ID/export`): the container's root filesystem
/// as a tar, as docker exports it: the container's own files, without what
/// is mounted over them. A running container is read through its root
/// (frozen meanwhile, see [`Access`]); whatever sits on another file system
/// than that root (`/proc`, `/sys`, `/dev`, volumes, the bind-mounted
/// `/etc/hosts`) is exported as its mount point only: an empty directory or
/// an empty file. Symlinks stay symlinks; owners go back to what the
/// container sees under --userns-remap.
pub fn export(engine: &Engine, name: &str) -> Result<Vec<u8>> {
    let access = Access::open(engine, name)?;
    let root = PathBuf::from(format!("/proc/self/fd/{}", access.root.as_raw_fd()));
    let mut out = tar::Builder::new(Vec::new());
    out.follow_symlinks(false);
    let dev = std::os::unix::fs::MetadataExt::dev(&std::fs::metadata(&root)?);
    export_dir(
        &mut out,
        &root,
        Path::new(""),
        dev,
        engine.images.id_shift(),
    )?;
    Ok(out.into_inner()?)
}

fn export_dir(
    out: &mut tar::Builder<Vec<u8>>,
    root: &Path,
    rel: &Path,
    dev: u64,
    shift: Option<overlay::IdShift>,
) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let dir = root.join(rel);
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let rel = rel.join(&name);
        let meta = std::fs::symlink_metadata(&path)?;
        let mut h = tar::Header::new_gnu();
        h.set_metadata(&meta);
        if let Some(s) = shift {
            // Back to the container's own IDs (0 is the remapped root).
            h.set_uid(u64::from(meta.uid().wrapping_sub(s.uid)).min(u64::from(s.uid_count)));
            h.set_gid(u64::from(meta.gid().wrapping_sub(s.gid)).min(u64::from(s.gid_count)));
        }
        let other_fs = meta.dev() != dev;
        let ft = meta.file_type();
        if ft.is_dir() {
            out.append_data(&mut h, &rel, std::io::empty())?;
            if !other_fs {
                export_dir(out, root, &rel, dev, shift)?;
            }
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path)?;
            out.append_link(&mut h, &rel, &target)?;
        } else if ft.is_file() && !other_fs {
            out.append_data(&mut h, &rel, File::open(&path)?)?;
        } else if ft.is_file() {
            h.set_size(0);
            out.append_data(&mut h, &rel, std::io::empty())?;
        } else {
            // Devices, fifos, sockets: their header alone.
            out.append_data(&mut h, &rel, std::io::empty())?;
        }
    }
    Ok(())
}
