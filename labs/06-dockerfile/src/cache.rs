//! # The build cache
//!
//! Docker's classic builder reuses a step when it has already built *the same instruction on
//! the same parent*. The parent is an image ID (the digest of its config, which holds its
//! layers' diff_ids, its Env, WorkingDir, history...), so a changed step changes every ID
//! after it, and every step after it misses: the cache is a chain.
//!
//! ```text
//! key = sha256( parent image ID, the instruction after variable expansion,
//!               RUN: the build args in its environment,
//!               COPY/ADD: the content hash of the sources )
//! build-cache/<key hex>.json  ->  {"manifest": "sha256:...", "created_by": "..."}
//! ```
//!
//! The value names the manifest of the image the step made; its config and layers are in
//! the store like any image's, just not tagged (Docker's "intermediate images"). An entry
//! whose manifest or layers have gone is a miss. Entries are written by rename, so a build
//! killed half-way never leaves a torn one, and two builds writing the same key both write
//! the same thing.
//!
//! What the cache costs on disk, and how to get it back, is [`usage`] and [`prune`]:
//! `docker system df`'s "Build Cache" line and `docker builder prune`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use lab04_overlay::{Image, Store};

/// The cache index of one store: `STORE/build-cache/`.
pub struct Cache {
    dir: PathBuf,
    tmp: PathBuf,
}

/// A cache key from its parts, in order.
pub fn key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

impl Cache {
    pub fn open(store: &Store) -> Result<Cache> {
        let dir = store.root().join("build-cache");
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Cache {
            dir,
            tmp: store.root().join("tmp"),
        })
    }

    /// The manifest a step with this key made, if it is cached.
    pub fn get(&self, key: &str) -> Option<String> {
        let bytes = fs::read(self.dir.join(format!("{key}.json"))).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        v["manifest"].as_str().map(str::to_string)
    }

    /// Records that the step with this key made this manifest.
    pub fn put(&self, key: &str, manifest: &str, created_by: &str) -> Result<()> {
        let value = serde_json::json!({ "manifest": manifest, "created_by": created_by });
        let tmp = self.tmp.join(format!("cache-{}-{key}", std::process::id()));
        fs::write(&tmp, serde_json::to_vec(&value)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        let dest = self.dir.join(format!("{key}.json"));
        fs::rename(&tmp, &dest).with_context(|| format!("renaming into {}", dest.display()))
    }
}

// ANCHOR: usage
/// The build cache as `docker system df` and `docker builder prune` see it.
///
/// A cache entry names an intermediate image, whose layers are mostly the layers of the
/// image the build produced: those cost nothing extra. What the cache *alone* holds is the
/// layers no tagged image (and no container) has: the steps of a failed build, the layers of
/// a build since replaced by a newer one. An entry whose image holds such a layer is
/// *dangling* (docker's word), and what `builder prune` removes; `-a` removes every entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Cache entries (one per step built).
    pub entries: usize,
    /// Entries whose image holds data no tagged image holds.
    pub dangling: usize,
    /// Bytes the cache holds beyond the tagged images: its entries, the intermediate
    /// images' configs and manifests, and the layers (blob and unpacked directory) only
    /// intermediate images have.
    pub size: u64,
    /// Of `size`, what pruning the dangling entries frees.
    pub reclaimable: u64,
}

/// One entry, read back: its file and the image it names (`None`: gone).
struct Entry {
    path: PathBuf,
    image: Option<Image>,
}

fn entries(store: &Store) -> Result<Vec<Entry>> {
    let dir = store.root().join("build-cache");
    let list = match fs::read_dir(&dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    let mut out = Vec::new();
    for e in list {
        let path = e?.path();
        // The file digests (file-digests.json) are not a step.
        let is_step = path.file_stem().is_some_and(|s| {
            s.len() == 64 && s.to_string_lossy().bytes().all(|b| b.is_ascii_hexdigit())
        });
        if !is_step || path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let image = fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["manifest"].as_str().map(str::to_string))
            .and_then(|m| store.image_by_manifest(&m).ok());
        out.push(Entry { path, image });
    }
    Ok(out)
}

/// The chain IDs of the layers some tagged image or some container has.
fn held_layers(store: &Store) -> Result<BTreeSet<String>> {
    let mut held: BTreeSet<String> = BTreeSet::new();
    for image in store.images()? {
        held.extend(image.chain_ids());
    }
    for c in store.containers()? {
        if let Ok(image) = store.image_by_manifest(&c.manifest_digest) {
            held.extend(image.chain_ids());
        }
    }
    Ok(held)
}

/// Bytes of the files below `dir` (not following symlinks).
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// What one layer (by chain ID) takes: its blob and its unpacked directory.
fn layer_bytes(store: &Store, image: &Image, chain: &str) -> u64 {
    let at = image.chain_ids().iter().position(|c| c == chain);
    let blob = at
        .and_then(|i| image.manifest.layers().get(i).cloned())
        .and_then(|d| store.blob_path(d.digest().as_ref()).ok())
        .and_then(|p| fs::metadata(p).ok())
        .map_or(0, |m| m.len());
    let unpacked = store
        .layer(chain)
        .ok()
        .flatten()
        .and_then(|l| l.diff.parent().map(dir_size))
        .unwrap_or(0);
    blob + unpacked
}

/// The build cache's [`Usage`].
pub fn usage(store: &Store) -> Result<Usage> {
    let held = held_layers(store)?;
    let mut u = Usage::default();
    let mut counted: BTreeSet<String> = BTreeSet::new();
    for e in entries(store)? {
        u.entries += 1;
        let own = fs::metadata(&e.path).map_or(0, |m| m.len());
        let Some(image) = &e.image else {
            // Its image is gone: a miss, and a stale file.
            u.dangling += 1;
            u.size += own;
            u.reclaimable += own;
            continue;
        };
        let small: u64 = [&image.manifest_digest, &image.config_digest]
            .iter()
            .filter_map(|d| store.blob_path(d).ok())
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        let only_here: Vec<String> = image
            .chain_ids()
            .into_iter()
            .filter(|c| !held.contains(c))
            .collect();
        let mut bytes = own + small;
        for c in &only_here {
            if counted.insert(c.clone()) {
                bytes += layer_bytes(store, image, c);
            }
        }
        u.size += bytes;
        if !only_here.is_empty() {
            u.dangling += 1;
            u.reclaimable += bytes;
        }
    }
    Ok(u)
}
// ANCHOR_END: usage

// ANCHOR: prune
/// `docker builder prune [-a]`: removes the dangling entries (every entry with `all`).
/// Returns the removed entries' keys and their images, which the caller hands to the
/// store's garbage collector as *released*, so that their layers go at once if nothing
/// else holds them (a fresh build's leftovers are younger than the collector's grace
/// period, which is there for pulls and builds still under way).
pub fn prune(store: &Store, all: bool) -> Result<(Vec<String>, Vec<Image>)> {
    let held = held_layers(store)?;
    let mut keys = Vec::new();
    let mut released = Vec::new();
    for e in entries(store)? {
        let dangling = match &e.image {
            None => true,
            Some(image) => image.chain_ids().iter().any(|c| !held.contains(c)),
        };
        if !(all || dangling) {
            continue;
        }
        fs::remove_file(&e.path).with_context(|| format!("removing {}", e.path.display()))?;
        keys.push(
            e.path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        released.extend(e.image);
    }
    if all {
        // The context's file digests are cache too; the next build reads the files again.
        let _ = fs::remove_file(store.root().join("build-cache").join("file-digests.json"));
    }
    Ok((keys, released))
}
// ANCHOR_END: prune
