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

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use lab04_overlay::Store;

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
