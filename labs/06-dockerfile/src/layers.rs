//! # Making a layer without a container
//!
//! `RUN` needs a container: a command must run to know what it changes. `COPY`, `ADD` and a
//! `WORKDIR` that does not exist yet do not: their layer is known in advance. The builder
//! writes those files into an empty *staging* directory, which then becomes the layer tar
//! exactly as a container's upper dir would (lab 04's `diff::write_tree`):
//!
//! ```text
//! mkdir -p stage/usr/share/html && cp -p index.html stage/usr/share/html/
//! tar -C stage -c . | gzip > layer.tar.gz
//! ```
//!
//! Two questions need the image's *current* filesystem, the union of its layers, without
//! mounting it: does the destination already exist (is `/app` a directory?), and what are
//! the parent directories' modes and owners (a layer that lists `usr/` must give it the same
//! metadata, or it would change it)? [`LayerView`] answers them by looking through the layer
//! directories, topmost first, as overlayfs does: the first layer that has a path wins, a
//! whiteout (a 0/0 character device) hides it, an opaque directory hides everything below.
//!
//! Symlinks in the image are followed *inside* the image: `/bin -> usr/bin` is
//! `/usr/bin`, and `/x -> /etc` is the image's `/etc`, never the host's (Docker's
//! `FollowSymlinkInScope`). The staging directory never contains a symlink it did not copy,
//! so writing into it cannot escape either.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::context::BuildContext;

/// Where files are read from: the build context, or an image's layers (`COPY --from`).
pub trait Tree {
    /// The entry at `rel`, not following a final symlink.
    fn lookup(&self, rel: &Path) -> Option<(PathBuf, fs::Metadata)>;
    /// The names in directory `rel`, sorted.
    fn list(&self, rel: &Path) -> Result<Vec<OsString>>;
}

impl Tree for BuildContext {
    fn lookup(&self, rel: &Path) -> Option<(PathBuf, fs::Metadata)> {
        BuildContext::lookup(self, rel)
    }
    fn list(&self, rel: &Path) -> Result<Vec<OsString>> {
        BuildContext::list(self, rel)
    }
}

fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn is_opaque(path: &Path) -> bool {
    lab04_overlay::extract::get_xattr(path, "trusted.overlay.opaque").as_deref() == Some(b"y")
}

/// The union of some layer directories (overlay format), read without mounting them.
#[derive(Debug, Clone)]
pub struct LayerView {
    /// Topmost first, as overlayfs's `lowerdir=`.
    pub layers: Vec<PathBuf>,
}

impl LayerView {
    /// What one layer says about `rel`: `Some(Some(entry))` it has it, `Some(None)` it hides
    /// it (a whiteout, a file where a parent should be, an opaque parent), `None` it does not
    /// know, ask the layer below.
    fn in_layer(layer: &Path, rel: &Path) -> Option<Option<(PathBuf, fs::Metadata)>> {
        let parts: Vec<Component> = rel.components().collect();
        let mut at = layer.to_path_buf();
        let mut opaque = false;
        for (i, c) in parts.iter().enumerate() {
            at.push(c);
            let Ok(meta) = fs::symlink_metadata(&at) else {
                return if opaque { Some(None) } else { None };
            };
            if is_whiteout(&meta) {
                return Some(None);
            }
            if i + 1 == parts.len() {
                return Some(Some((at, meta)));
            }
            if !meta.is_dir() {
                return Some(None);
            }
            opaque = opaque || is_opaque(&at);
        }
        None
    }
}

impl Tree for LayerView {
    fn lookup(&self, rel: &Path) -> Option<(PathBuf, fs::Metadata)> {
        if rel.as_os_str().is_empty() {
            let top = self.layers.first()?;
            return fs::symlink_metadata(top).ok().map(|m| (top.clone(), m));
        }
        for layer in &self.layers {
            if let Some(found) = Self::in_layer(layer, rel) {
                return found;
            }
        }
        None
    }

    fn list(&self, rel: &Path) -> Result<Vec<OsString>> {
        let mut names: BTreeSet<OsString> = BTreeSet::new();
        let mut hidden: BTreeSet<OsString> = BTreeSet::new();
        for layer in &self.layers {
            let dir = layer.join(rel);
            if !rel.as_os_str().is_empty() {
                match Self::in_layer(layer, rel) {
                    Some(Some((_, m))) if m.is_dir() => {}
                    Some(_) => break, // hidden, or not a directory: nothing below counts
                    None => continue,
                }
            }
            for e in fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
                let e = e?;
                let name = e.file_name();
                if names.contains(&name) || hidden.contains(&name) {
                    continue;
                }
                if is_whiteout(&e.metadata()?) {
                    hidden.insert(name);
                } else {
                    names.insert(name);
                }
            }
            if is_opaque(&dir) {
                break;
            }
        }
        Ok(names.into_iter().collect())
    }
}

/// Resolves an absolute path of the image to the real path it names, following symlinks
/// inside the image (`FollowSymlinkInScope`). Components that do not exist are kept as
/// they are. With `follow_last` false, a final symlink is not followed.
pub fn resolve_in_scope(tree: &dyn Tree, path: &Path, follow_last: bool) -> Result<PathBuf> {
    let mut todo: Vec<OsString> = clean_components(path).into_iter().rev().collect();
    let mut out = PathBuf::new();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            out.pop();
            continue;
        }
        let candidate = out.join(&c);
        let last = todo.is_empty();
        match tree.lookup(&candidate) {
            Some((real, meta)) if meta.file_type().is_symlink() && (follow_last || !last) => {
                hops += 1;
                if hops > 40 {
                    bail!(
                        "too many levels of symbolic links resolving {}",
                        path.display()
                    );
                }
                let target = fs::read_link(&real)?;
                if target.is_absolute() {
                    out = PathBuf::new();
                }
                for t in target.components().rev() {
                    match t {
                        Component::Normal(n) => todo.push(n.to_os_string()),
                        Component::ParentDir => todo.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => out = candidate,
        }
    }
    Ok(out)
}

fn clean_components(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// Who owns copied files: `--chown`, resolved to numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// The staging directory a layer is written into.
pub struct Staging {
    pub dir: PathBuf,
}

impl Staging {
    /// Creates the directories of `rel_dir` in the staging area, each with the mode, owner and
    /// time it has in the image (`view`), or 0755 root for new ones.
    pub fn ensure_dir(&self, view: &dyn Tree, rel_dir: &Path) -> Result<PathBuf> {
        self.ensure_dir_owned(view, rel_dir, None)
    }

    // ANCHOR: ensure_dir_owned
    /// [`Staging::ensure_dir`], with the directories the image does not have yet owned by
    /// `owner` (`COPY --chown`): moby creates a COPY's destination and its missing parents
    /// with `MkdirAllAndChownNew`, which gives the new ones, and only those, the owner. A
    /// directory the image already has keeps its owner, or the copy would change it.
    pub fn ensure_dir_owned(
        &self,
        view: &dyn Tree,
        rel_dir: &Path,
        owner: Option<Owner>,
    ) -> Result<PathBuf> {
        let mut rel = PathBuf::new();
        for c in rel_dir.components() {
            rel.push(c);
            let p = self.dir.join(&rel);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => continue,
                Ok(_) => bail!(
                    "cannot create directory /{}: a file is in the way",
                    rel.display()
                ),
                Err(_) => {}
            }
            fs::create_dir(&p).with_context(|| format!("creating {}", p.display()))?;
            match view.lookup(&rel) {
                Some((_, m)) if m.is_dir() => copy_meta(&p, &m, None, None)?,
                Some(_) => bail!(
                    "cannot create directory /{}: it is a file in the image",
                    rel.display()
                ),
                None => {
                    fs::set_permissions(&p, fs::Permissions::from_mode(0o755))?;
                    if let Some(o) = owner {
                        std::os::unix::fs::chown(&p, Some(o.uid), Some(o.gid)).with_context(
                            || format!("chown {}:{} {}", o.uid, o.gid, p.display()),
                        )?;
                    }
                }
            }
        }
        Ok(self.dir.join(rel_dir))
    }
    // ANCHOR_END: ensure_dir_owned
}

/// Sets mode, owner and mtime of `dst` from a source's metadata (or the overrides).
fn copy_meta(dst: &Path, m: &fs::Metadata, owner: Option<Owner>, chmod: Option<u32>) -> Result<()> {
    let (uid, gid) = owner.map_or((m.uid(), m.gid()), |o| (o.uid, o.gid));
    std::os::unix::fs::lchown(dst, Some(uid), Some(gid))
        .with_context(|| format!("chown {uid}:{gid} {}", dst.display()))?;
    if !m.file_type().is_symlink() {
        let mode = chmod.unwrap_or(m.mode() & 0o7777);
        fs::set_permissions(dst, fs::Permissions::from_mode(mode))
            .with_context(|| format!("chmod {mode:o} {}", dst.display()))?;
    }
    let times = [
        libc::timespec {
            tv_sec: m.mtime() as libc::time_t,
            tv_nsec: m.mtime_nsec() as libc::c_long,
        },
        libc::timespec {
            tv_sec: m.mtime() as libc::time_t,
            tv_nsec: m.mtime_nsec() as libc::c_long,
        },
    ];
    let c = std::ffi::CString::new(dst.as_os_str().as_encoded_bytes())?;
    // SAFETY: a valid NUL-terminated path and two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("utimensat {}", dst.display()));
    }
    Ok(())
}

/// How copied files get their owner and mode.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyOptions {
    /// `--chown`; `None` is root, as in Docker (the context's owners mean nothing inside).
    pub owner: Option<Owner>,
    /// `--chmod`, for files and directories alike.
    pub chmod: Option<u32>,
}

// ANCHOR: copy_tree
/// Copies `src_rel` from `tree` to `dst` (a path in the staging area), keeping modes and
/// times, recursing into directories. Hardlinks become copies; sockets, FIFOs and devices
/// are skipped, as Docker skips them.
pub fn copy_tree(tree: &dyn Tree, src_rel: &Path, dst: &Path, opts: CopyOptions) -> Result<()> {
    let Some((real, meta)) = tree.lookup(src_rel) else {
        bail!("{}: no such file or directory", src_rel.display());
    };
    let owner = Some(opts.owner.unwrap_or_default());
    let ft = meta.file_type();
    if ft.is_dir() {
        if fs::symlink_metadata(dst)
            .map(|m| !m.is_dir())
            .unwrap_or(false)
        {
            fs::remove_file(dst)?;
        }
        if !dst.exists() {
            fs::create_dir(dst).with_context(|| format!("creating {}", dst.display()))?;
        }
        for name in tree.list(src_rel)? {
            copy_tree(tree, &src_rel.join(&name), &dst.join(&name), opts)?;
        }
        copy_meta(dst, &meta, owner, opts.chmod)?;
    } else if ft.is_symlink() {
        let target = fs::read_link(&real)?;
        let _ = fs::remove_file(dst);
        std::os::unix::fs::symlink(&target, dst)
            .with_context(|| format!("creating symlink {}", dst.display()))?;
        copy_meta(dst, &meta, owner, None)?;
    } else if ft.is_file() {
        if fs::symlink_metadata(dst)
            .map(|m| m.is_dir())
            .unwrap_or(false)
        {
            bail!(
                "cannot copy {} over the directory {}",
                src_rel.display(),
                dst.display()
            );
        }
        let _ = fs::remove_file(dst);
        let mut from =
            fs::File::open(&real).with_context(|| format!("opening {}", real.display()))?;
        let mut to =
            fs::File::create(dst).with_context(|| format!("creating {}", dst.display()))?;
        std::io::copy(&mut from, &mut to).with_context(|| format!("copying {}", real.display()))?;
        drop(to);
        copy_meta(dst, &meta, owner, opts.chmod)?;
    }
    Ok(())
}
// ANCHOR_END: copy_tree

/// Reads a whole file of the image (following symlinks in scope), if it is there.
pub fn read_image_file(tree: &dyn Tree, path: &str) -> Option<String> {
    let rel = resolve_in_scope(tree, Path::new(path), true).ok()?;
    let (real, meta) = tree.lookup(&rel)?;
    if !meta.is_file() {
        return None;
    }
    let mut s = String::new();
    fs::File::open(real).ok()?.read_to_string(&mut s).ok()?;
    Some(s)
}

/// `name:x:uid:gid:...` lines of a passwd or group file, by name.
fn id_table(text: Option<String>) -> BTreeMap<String, (u32, u32)> {
    let mut out = BTreeMap::new();
    for line in text.unwrap_or_default().lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 3 {
            if let Ok(id) = f[2].parse() {
                let gid = f.get(3).and_then(|g| g.parse().ok()).unwrap_or(id);
                out.entry(f[0].to_string()).or_insert((id, gid));
            }
        }
    }
    out
}

// ANCHOR: chown
/// Resolves `--chown=user[:group]` against the image's `/etc/passwd` and `/etc/group`.
/// Numbers need no lookup; a user without a group gets the same number as its gid, as in
/// Docker ("a UID without GID will use the same numeric UID as the GID").
pub fn resolve_owner(tree: &dyn Tree, spec: &str) -> Result<Owner> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = id_table(read_image_file(tree, "/etc/passwd"));
    let groups = id_table(read_image_file(tree, "/etc/group"));
    let uid = match user.parse::<u32>() {
        Ok(n) => n,
        Err(_) => match passwd.get(user) {
            Some((uid, _)) => *uid,
            None => bail!(
                "unable to convert uid/gid chown string to host mapping: can't find uid for \
                 user {user}: no such user: {user}"
            ),
        },
    };
    let gid = match group {
        None => uid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => match groups.get(g) {
                Some((gid, _)) => *gid,
                None => bail!(
                    "unable to convert uid/gid chown string to host mapping: can't find gid \
                     for group {g}: no such group: {g}"
                ),
            },
        },
    };
    Ok(Owner { uid, gid })
}
// ANCHOR_END: chown

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn whiteout(p: &Path) {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mknod with a valid path.
        let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, 0) };
        assert_eq!(rc, 0, "mknod needs root");
    }

    #[test]
    fn a_view_is_the_union_of_its_layers() {
        if !nix::unistd::geteuid().is_root() {
            return; // whiteouts are device nodes: root only
        }
        let d = tempfile::tempdir().unwrap();
        let (low, top) = (d.path().join("low"), d.path().join("top"));
        fs::create_dir_all(low.join("etc")).unwrap();
        fs::create_dir_all(top.join("etc")).unwrap();
        fs::write(low.join("etc/a"), "low a").unwrap();
        fs::write(low.join("etc/b"), "low b").unwrap();
        fs::write(top.join("etc/a"), "top a").unwrap();
        whiteout(&top.join("etc/b"));
        symlink("/etc", top.join("link")).unwrap();
        let v = LayerView {
            layers: vec![top, low],
        };
        assert_eq!(read_image_file(&v, "/etc/a").unwrap(), "top a");
        assert!(read_image_file(&v, "/etc/b").is_none(), "whited out");
        assert_eq!(read_image_file(&v, "/link/a").unwrap(), "top a");
        assert_eq!(
            resolve_in_scope(&v, Path::new("/link/../link/x"), true).unwrap(),
            PathBuf::from("etc/x")
        );
        assert_eq!(v.list(Path::new("etc")).unwrap(), vec![OsString::from("a")]);
    }

    #[test]
    fn chown_names_come_from_the_image() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("etc")).unwrap();
        fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        fs::write(d.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let v = LayerView {
            layers: vec![d.path().to_path_buf()],
        };
        assert_eq!(
            resolve_owner(&v, "app").unwrap(),
            Owner {
                uid: 1000,
                gid: 1000
            }
        );
        assert_eq!(
            resolve_owner(&v, "app:staff").unwrap(),
            Owner { uid: 1000, gid: 50 }
        );
        assert_eq!(
            resolve_owner(&v, "55:66").unwrap(),
            Owner { uid: 55, gid: 66 }
        );
        assert!(resolve_owner(&v, "nobody-here").is_err());
    }
}
