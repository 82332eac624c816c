//! Garbage collection: removing the blobs and unpacked layers no image needs.
//!
//! `untag` only edits `index.json`; the bytes stay. [`Store::gc`] is a
//! mark-and-sweep over the store:
//!
//! * **mark**: every manifest `index.json` names (an index/manifest list:
//!   its manifests, recursively), its config, its layer blobs, and the chain
//!   IDs of its layers; the same for the manifest of every container in
//!   `containers/` and for every config the caller asks to keep (the engine's
//!   containers' images, which `rmi -f` may have untagged);
//! * **sweep**: every other blob in `blobs/sha256/` and every other directory
//!   in `layers/`, unless it is younger than the grace period ([`GRACE`]) and
//!   was not released (untagged by `rmi`: [`Keep::released`]).
//!
//! ```text
//! index.json ─▶ manifest ─┬▶ config ──▶ diff_ids ──▶ chain IDs ──▶ layers/<hex>/
//!                         └▶ layer blobs
//! ```

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use crate::digest::{chain_ids, digest_hex};
use crate::store::{parse_config, Image, Store};

/// How long a new blob or layer is safe from [`Store::gc`]: 10 minutes.
///
/// A pull or a build writes blobs and unpacks layers *before* it tags the
/// image (the name must only appear once everything is in place), so for a
/// while they are referenced by nothing, exactly like garbage. The store has
/// no record of work in progress that gc could consult, so, like `git gc`
/// (which keeps unreachable objects younger than two weeks), gc leaves alone
/// whatever was modified recently: a pull or build step that takes longer
/// than this between writing a blob and tagging is the only way to lose one.
pub const GRACE: Duration = Duration::from_secs(10 * 60);

/// What [`Store::gc`] must keep besides what `index.json` and the store's
/// containers reference, and what it may take at once.
#[derive(Debug, Clone)]
pub struct Keep {
    /// Config digests (image IDs) whose config, manifest, layer blobs and
    /// layer directories must stay even if no name points at them: the
    /// engine's containers' images.
    pub configs: BTreeSet<String>,
    /// Objects modified more recently than this are kept (see [`GRACE`]).
    pub grace: Duration,
    /// Images the caller just untagged: their own blobs and layers are
    /// removed even inside the grace period (`rmi` of a fresh build frees
    /// its space at once), if nothing else references them. They were
    /// tagged, so they are not a pull's or a build's work in progress.
    pub released: Vec<Image>,
}

impl Default for Keep {
    fn default() -> Self {
        Keep {
            configs: BTreeSet::new(),
            grace: GRACE,
            released: Vec::new(),
        }
    }
}

/// What one [`Store::gc`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Digests of the blobs removed (manifests, configs, layer blobs).
    pub blobs: Vec<String>,
    /// Chain IDs of the layer directories removed.
    pub layers: Vec<String>,
    /// Bytes freed: the blobs' sizes plus the layer directories' content.
    pub reclaimed: u64,
}

/// What the mark phase found reachable.
#[derive(Default)]
struct Marks {
    blobs: HashSet<String>,
    chains: HashSet<String>,
}

/// The file that lists released objects (see [`Store::gc`]).
const RELEASED: &str = "released";

/// A manifest or index larger than this is not one (layers are the big
/// blobs); the keep scan does not read such blobs.
const MANIFEST_MAX: u64 = 4 << 20;

impl Store {
    // ANCHOR: gc
    /// Removes the blobs and layer directories that nothing references (see
    /// the [module](crate::gc) docs), under the store's lock so that no tag
    /// is added or removed meanwhile. Returns what it removed.
    pub fn gc(&self, keep: &Keep) -> Result<GcReport> {
        let _lock = self.lock()?;
        let mut marks = Marks::default();
        for desc in self.index()?.manifests() {
            self.mark_manifest(desc.digest().as_ref(), &mut marks, 0)?;
        }
        // What a name points at is not released any more (tagged again).
        let tagged = (marks.blobs.clone(), marks.chains.clone());
        for c in self.containers()? {
            // A container whose manifest is already gone cannot start
            // anyway; it is no reason to fail the whole gc.
            let _ = self.mark_manifest(&c.manifest_digest, &mut marks, 0);
        }
        self.mark_kept_configs(&keep.configs, &mut marks)?;
        self.mark_build_cache(&mut marks)?;

        // What the caller released bypasses the grace period, and so does
        // what earlier calls released but had to keep (an image `rmi -f`
        // untagged while a container used it): `STORE/released`.
        let mut released: HashSet<String> = self.read_released()?;
        for image in &keep.released {
            released.insert(image.manifest_digest.clone());
            released.insert(image.config_digest.clone());
            released.extend(
                image
                    .manifest
                    .layers()
                    .iter()
                    .map(|l| l.digest().to_string()),
            );
            released.extend(image.chain_ids());
        }
        let now = SystemTime::now();
        let young = |meta: &fs::Metadata, id: &str| {
            !released.contains(id)
                && meta
                    .modified()
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .is_none_or(|age| age < keep.grace)
        };

        let mut report = GcReport::default();
        // Layers first: a crash after this leaves only unreferenced blobs,
        // which the next gc removes.
        let layers = self.root().join("layers");
        for e in fs::read_dir(&layers).with_context(|| format!("listing {}", layers.display()))? {
            let e = e?;
            let hex = e.file_name().to_string_lossy().into_owned();
            let chain = format!("sha256:{hex}");
            // Only names we could have made: a 64-hex name is built into a
            // path below, never a name with `/` or `..`.
            if digest_hex(&chain).is_err() || marks.chains.contains(&chain) {
                continue;
            }
            let meta = fs::symlink_metadata(e.path())?;
            if !meta.is_dir() || young(&meta, &chain) {
                continue;
            }
            report.reclaimed += self.remove_layer_dir(&hex)?;
            report.layers.push(chain);
        }
        let blobs = self.root().join("blobs/sha256");
        for e in fs::read_dir(&blobs).with_context(|| format!("listing {}", blobs.display()))? {
            let e = e?;
            let digest = format!("sha256:{}", e.file_name().to_string_lossy());
            if digest_hex(&digest).is_err() || marks.blobs.contains(&digest) {
                continue;
            }
            let meta = fs::symlink_metadata(e.path())?;
            if young(&meta, &digest) {
                continue;
            }
            let path = self.blob_path(&digest)?;
            // remove_file unlinks a symlink itself, never its target.
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            report.reclaimed += meta.len();
            report.blobs.push(digest);
        }
        // Remember the released objects that are still there (kept for now).
        let mut pending: Vec<String> = released
            .into_iter()
            .filter(|id| !tagged.0.contains(id) && !tagged.1.contains(id))
            .filter(|id| {
                let path = match self.blob_path(id) {
                    Ok(p) if p.exists() => return true,
                    _ => digest_hex(id).map(|h| self.root().join("layers").join(h)),
                };
                path.is_ok_and(|p| p.is_dir())
            })
            .collect();
        pending.sort();
        self.write_atomic(RELEASED, pending.join("\n").as_bytes())?;
        report.blobs.sort();
        report.layers.sort();
        Ok(report)
    }
    // ANCHOR_END: gc

    /// `STORE/released`: digests and chain IDs of images that were untagged
    /// (so they are no pull's or build's work in progress) but still in use
    /// when gc ran: the next gc removes them without waiting for the grace
    /// period once nothing uses them. One per line.
    fn read_released(&self) -> Result<HashSet<String>> {
        match fs::read_to_string(self.root().join(RELEASED)) {
            Ok(s) => Ok(s
                .lines()
                .filter(|l| digest_hex(l).is_ok())
                .map(str::to_string)
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashSet::new()),
            Err(e) => Err(e).context("reading the store's released list"),
        }
    }

    /// Marks a manifest (or an index, recursively) and what it references.
    /// A blob that is missing or unreadable is marked and not followed.
    fn mark_manifest(&self, digest: &str, marks: &mut Marks, depth: u32) -> Result<()> {
        if depth > 8 || !marks.blobs.insert(digest.to_string()) {
            return Ok(());
        }
        let Ok(bytes) = self.read_blob(digest) else {
            return Ok(());
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            return Ok(());
        };
        if let Some(list) = v["manifests"].as_array() {
            for m in list {
                if let Some(d) = m["digest"].as_str() {
                    self.mark_manifest(d, marks, depth + 1)?;
                }
            }
        }
        for l in v["layers"].as_array().into_iter().flatten() {
            if let Some(d) = l["digest"].as_str() {
                marks.blobs.insert(d.to_string());
            }
        }
        if let Some(config) = v["config"]["digest"].as_str() {
            self.mark_config(config, marks);
        }
        Ok(())
    }

    /// Marks a config blob and the chain IDs of its layers.
    fn mark_config(&self, digest: &str, marks: &mut Marks) {
        marks.blobs.insert(digest.to_string());
        if let Some(config) = self
            .read_blob(digest)
            .ok()
            .and_then(|b| parse_config(&b).ok())
        {
            marks.chains.extend(chain_ids(config.rootfs().diff_ids()));
        }
    }

    /// Marks the configs to keep, and every manifest in the store that
    /// names one of them (with its layer blobs): an untagged image is
    /// reachable only through such a scan.
    fn mark_kept_configs(&self, configs: &BTreeSet<String>, marks: &mut Marks) -> Result<()> {
        if configs.is_empty() {
            return Ok(());
        }
        for c in configs {
            self.mark_config(c, marks);
        }
        let blobs = self.root().join("blobs/sha256");
        for e in fs::read_dir(&blobs).with_context(|| format!("listing {}", blobs.display()))? {
            let e = e?;
            let digest = format!("sha256:{}", e.file_name().to_string_lossy());
            let meta = fs::symlink_metadata(e.path())?;
            if marks.blobs.contains(&digest) || !meta.is_file() || meta.len() > MANIFEST_MAX {
                continue;
            }
            let Ok(bytes) = self.read_blob(&digest) else {
                continue;
            };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                continue;
            };
            if v["config"]["digest"]
                .as_str()
                .is_some_and(|c| configs.contains(c))
            {
                self.mark_manifest(&digest, marks, 0)?;
            }
        }
        Ok(())
    }

    /// Lab 06's build cache (`build-cache/<key>.json` -> a manifest) names
    /// untagged *intermediate images*, one per build step, which a rebuild
    /// reuses. Like docker's, they live as long as the images built from
    /// them: an entry's manifest and config (two small blobs) are kept when
    /// every layer it needs is kept anyway, and go with the last image that
    /// used its layers (the entry is then a cache miss).
    fn mark_build_cache(&self, marks: &mut Marks) -> Result<()> {
        let dir = self.root().join("build-cache");
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        for e in entries {
            let path = e?.path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let Some(manifest) = fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v["manifest"].as_str().map(str::to_string))
            else {
                continue;
            };
            let Ok(image) = self.image_by_manifest(&manifest) else {
                continue;
            };
            let layers_kept = image
                .manifest
                .layers()
                .iter()
                .all(|l| marks.blobs.contains(&l.digest().to_string()))
                && image.chain_ids().iter().all(|c| marks.chains.contains(c));
            if layers_kept {
                marks.blobs.insert(image.manifest_digest);
                marks.blobs.insert(image.config_digest);
            }
        }
        Ok(())
    }

    /// Removes `layers/<hex>/` and its `l/` link; returns the bytes freed.
    ///
    /// The directory is first renamed into `tmp/` (atomic): a crash half-way
    /// through the removal leaves a half-deleted tree in `tmp/`, which the
    /// next [`Store::open`] finishes, never a half-deleted layer that
    /// [`Store::layer`] would take for a whole one. Layers hold hostile
    /// content (symlinks anywhere): every path here is built from the
    /// chain ID, nothing is read from the layer, and `remove_dir_all` does
    /// not follow symlinks (it unlinks them).
    fn remove_layer_dir(&self, hex: &str) -> Result<u64> {
        let dir = self.root().join("layers").join(hex);
        let doomed = self.staging("gclayer");
        fs::rename(&dir, &doomed)
            .with_context(|| format!("moving {} out of layers/", dir.display()))?;
        // The short link is the first 16 hex digits (see unpack_layer);
        // remove_file unlinks the symlink, not what it points at.
        let link = self.root().join("l").join(&hex[..16]);
        match fs::remove_file(&link) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", link.display()))
            }
            _ => {}
        }
        let size = tree_size(&doomed);
        fs::remove_dir_all(&doomed).with_context(|| format!("removing {}", doomed.display()))?;
        Ok(size)
    }
}

/// The bytes in a tree, by `lstat` (symlinks are counted, not followed);
/// hard links within the tree are counted once.
fn tree_size(root: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = fs::symlink_metadata(e.path()) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.nlink() == 1 || seen.insert((meta.dev(), meta.ino())) {
                total += meta.len();
            }
        }
    }
    total
}
