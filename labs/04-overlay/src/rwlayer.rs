//! A container's read-write layer in the store (what moby's layer store calls an
//! `RWLayer`): its directories `containers/<id>/{upper,work,merged}`.
//!
//! Each container gets its own upper and work dirs; the lower dirs are the
//! image's layer directories, shared with every other container of the image.
//!
//! A container directory is made in `tmp/` and renamed into `containers/`
//! when complete, and leaves `containers/` by a rename into `tmp/` before it
//! is deleted: `rename(2)` is atomic, so a kill at any moment leaves a whole
//! container or none, and what the killed process left in `tmp/` is removed
//! at the next open (see the store module).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::overlay::OverlayDirs;
use crate::store::{Image, RemoveOnDrop, Store};

/// A container's writable layer and its image.
#[derive(Debug, Clone)]
pub struct RwLayer {
    /// 64 hex digits; docker shows the first 12.
    pub id: String,
    /// `containers/<id>` (absolute).
    pub dir: PathBuf,
    /// The image name it was created from.
    pub image: String,
    /// The image's manifest digest (the name may be re-tagged later).
    pub manifest_digest: String,
}

impl RwLayer {
    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }
}

/// 32 random bytes as hex, from the kernel's random pool.
fn random_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for a container ID")?;
    Ok(hex::encode(bytes))
}

impl Store {
    /// Creates a container's directories for `image` (whose layers must be
    /// unpacked: [`Store::unpack`]).
    pub fn create_container(&self, image: &Image) -> Result<RwLayer> {
        self.create_container_with(image, true)
    }

    /// [`Store::create_container`]; without `durable`, its record is not
    /// flushed to disk (no fsync): for a container that a crash of the
    /// machine ends anyway (`docker run --rm`), whose record would then be
    /// removed. The write is still atomic for other processes.
    pub fn create_container_with(&self, image: &Image, durable: bool) -> Result<RwLayer> {
        self.create_container_staged(image, durable, |_| Ok(()))
    }

    // ANCHOR: create_staged
    /// [`Store::create_container_with`], with `finish` adding files of the
    /// caller's (the engine's `state.json`) before the container appears.
    ///
    /// **Crash-safe by staging.** The directories are made in `tmp/`, under a
    /// name that carries this process's PID, and renamed into
    /// `containers/<id>` only when complete: a kill at any moment leaves
    /// either no container or a whole one, never a `containers/<id>/` that
    /// lacks its records (which nothing would list, and so nothing would
    /// remove). What a killed creator left in `tmp/` goes at the next open.
    pub fn create_container_staged(
        &self,
        image: &Image,
        durable: bool,
        finish: impl FnOnce(&RwLayer) -> Result<()>,
    ) -> Result<RwLayer> {
        // Under the store's lock, so that gc cannot remove the image's
        // layers between this check and container.json naming them.
        let _lock = self.lock()?;
        self.image_layers(image)?;
        let id = random_id()?;
        let staging = self.staging("container");
        let guard = RemoveOnDrop(Some(staging.clone()));
        for d in ["upper", "work", "merged"] {
            fs::create_dir_all(staging.join(d))
                .with_context(|| format!("creating {}", staging.join(d).display()))?;
        }
        // SECURITY: the container's own directory is 0710: only root (and,
        // with --userns-remap, the group of the remapped root, which must
        // reach merged/ to pivot into it) may traverse to its upper and
        // merged dirs, where a setuid binary the container planted lies.
        // The data root above is closed too (see `Store::secure_root`).
        set_mode(&staging, 0o710)?;
        if let Some(shift) = self.id_shift() {
            // The upper dir's owner is the owner of `/` in the container:
            // with a remapped user namespace it must be the container's
            // root, or root inside could not create files in `/`.
            let upper = staging.join("upper");
            nix::unistd::chown(
                &upper,
                Some(nix::unistd::Uid::from_raw(shift.uid)),
                Some(nix::unistd::Gid::from_raw(shift.gid)),
            )
            .with_context(|| format!("chown {} to the remapped root", upper.display()))?;
            nix::unistd::chown(&staging, None, Some(nix::unistd::Gid::from_raw(shift.gid)))
                .with_context(|| format!("chown {} to the remapped group", staging.display()))?;
        }
        let meta = serde_json::json!({
            "Id": id,
            "Image": image.name,
            "ManifestDigest": image.manifest_digest,
        });
        let json = serde_json::to_vec_pretty(&meta)?;
        let path = staging.join("container.json");
        let mut f =
            fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        std::io::Write::write_all(&mut f, &json)
            .and_then(|()| if durable { f.sync_all() } else { Ok(()) })
            .with_context(|| format!("writing {}", path.display()))?;
        let staged = RwLayer {
            id: id.clone(),
            dir: staging.clone(),
            image: image.name.clone(),
            manifest_digest: image.manifest_digest.clone(),
        };
        finish(&staged)?;
        // The one step that makes it visible, whole.
        let dir = self.root().join("containers").join(&id);
        fs::rename(&staging, &dir).with_context(|| format!("renaming into {}", dir.display()))?;
        guard.disarm();
        Ok(RwLayer { dir, ..staged })
    }
    // ANCHOR_END: create_staged

    /// The container whose ID starts with `prefix` (unique), as in docker.
    pub fn container(&self, prefix: &str) -> Result<RwLayer> {
        // A full ID names one directory: read just that one.
        if prefix.len() == 64 && prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            let dir = self.root().join("containers").join(prefix);
            if let Some(c) = read_container(&dir)? {
                return Ok(c);
            }
            bail!("no such container: {prefix}");
        }
        let all = self.containers()?;
        let found: Vec<&RwLayer> = all.iter().filter(|c| c.id.starts_with(prefix)).collect();
        match found.as_slice() {
            [one] if !prefix.is_empty() => Ok((*one).clone()),
            [] | [_] => bail!("no such container: {prefix}"),
            _ => bail!("container ID {prefix} is ambiguous: {} match", found.len()),
        }
    }

    /// Every container.
    pub fn containers(&self) -> Result<Vec<RwLayer>> {
        let mut out = Vec::new();
        for e in fs::read_dir(self.root().join("containers"))? {
            if let Some(c) = read_container(&e?.path())? {
                out.push(c);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// The container's image.
    pub fn container_image(&self, c: &RwLayer) -> Result<Image> {
        let mut image = self.image_by_manifest(&c.manifest_digest)?;
        image.name = c.image.clone();
        Ok(image)
    }

    /// The overlay for a container: the image's layers (topmost first, by
    /// their short `l/` names), its upper and work dirs, its merged dir.
    pub fn overlay_dirs(&self, c: &RwLayer) -> Result<OverlayDirs> {
        let image = self.container_image(c)?;
        let layers = self.image_layers(&image)?;
        let rel = |p: &Path| -> Result<PathBuf> {
            Ok(p.strip_prefix(self.root())
                .with_context(|| format!("{} is outside the store", p.display()))?
                .to_path_buf())
        };
        Ok(OverlayDirs {
            lower: layers
                .iter()
                .rev()
                .map(|l| rel(&l.link))
                .collect::<Result<_>>()?,
            upper: rel(&c.upper())?,
            work: rel(&c.work())?,
            merged: c.merged(),
            base: self.root().to_path_buf(),
            volatile: false,
        })
    }

    /// The layer dirs of a container's image, topmost first (for diffs).
    pub fn lower_dirs(&self, c: &RwLayer) -> Result<Vec<PathBuf>> {
        let image = self.container_image(c)?;
        Ok(self
            .image_layers(&image)?
            .into_iter()
            .rev()
            .map(|l| l.diff)
            .collect())
    }

    // ANCHOR: remove_container
    /// Removes a container's directories, unmounting its merged dir first.
    ///
    /// **Crash-safe by renaming away.** The directory leaves `containers/` in
    /// one rename (into `tmp/`, under this process's PID) before anything
    /// inside it is deleted: a kill at any moment leaves either the whole
    /// container, still listed and removable, or none, never a half that
    /// lists but cannot be found. The deletion, the slow part, happens in
    /// `tmp/`, and what a killed remover left there goes at the next open.
    /// The rename also frees nothing and needs no space: removal works on a
    /// full disk.
    pub fn remove_container(&self, c: &RwLayer) -> Result<()> {
        self.remove_container_dir(&c.dir)
    }

    /// [`Store::remove_container`] by directory: also for one whose
    /// `container.json` is missing (what an older version, killed, left).
    pub fn remove_container_dir(&self, dir: &Path) -> Result<()> {
        self.release_reserve();
        let merged = dir.join("merged");
        let _ = nix::mount::umount2(&merged, nix::mount::MntFlags::MNT_DETACH);
        if crate::overlay::is_mounted(&merged)? {
            bail!(
                "{} is still mounted: not removing the container under it",
                merged.display()
            );
        }
        let doomed = self.staging("removing");
        match fs::rename(dir, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("moving {} away", dir.display())),
        }
        fs::remove_dir_all(&doomed).with_context(|| format!("removing {}", doomed.display()))
    }
    // ANCHOR_END: remove_container
}

/// chmod, with the path in the error.
pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

/// Read `dir/container.json`; `None` when it is not there (being created or
/// removed by another process).
fn read_container(dir: &Path) -> Result<Option<RwLayer>> {
    let bytes = match fs::read(dir.join("container.json")) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e).with_context(|| format!("reading {}/container.json", dir.display()))
        }
    };
    if bytes.is_empty() {
        // What a crash of the machine can leave of a record written without
        // fsync (`create_container_with`, not durable): a container that
        // the crash ended, and that nobody can use. Not listed.
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("parsing {}/container.json", dir.display()))?;
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    Ok(Some(RwLayer {
        id: s("Id"),
        dir: dir.to_path_buf(),
        image: s("Image"),
        manifest_digest: s("ManifestDigest"),
    }))
}
