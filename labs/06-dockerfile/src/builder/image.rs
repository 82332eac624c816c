//! The image a build is making: its config as JSON, its layers, its ID.
//!
//! Each step starts from the image of the step before and makes a new one; nothing is
//! changed in place. An image is written to the store as a config blob and a manifest
//! blob (its layers are already there, unpacked), and its ID is its config's digest: the
//! same config on the same layers is the same image, which is what the cache relies on.

use std::fs::File;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use oci_spec::image::Descriptor;
use serde_json::{json, Map, Value};

use super::Builder;
use crate::layers::LayerView;
use lab04_overlay as overlay;
use overlay::diff::{write_tree, TreeKind};
use overlay::digest::{canonical_json, chain_ids, host_arch};

/// An image under construction: its config (as JSON: Docker's config has fields, such as
/// `Healthcheck`, `OnBuild` and `Shell`, that OCI's does not), its layers, its ID.
#[derive(Debug, Clone)]
pub(super) struct Img {
    pub(super) config: Value,
    pub(super) layers: Vec<Descriptor>,
    /// The config digest, or `scratch` for the empty image.
    pub(super) id: String,
    /// The manifest digest, once written.
    pub(super) manifest: Option<String>,
}

impl Img {
    pub(super) fn scratch() -> Img {
        Img {
            config: json!({
                "architecture": host_arch(),
                "os": "linux",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": []},
                "history": [],
            }),
            layers: Vec::new(),
            id: "scratch".into(),
            manifest: None,
        }
    }

    pub(super) fn short(&self) -> &str {
        let hex = self.id.trim_start_matches("sha256:");
        &hex[..12.min(hex.len())]
    }

    pub(super) fn diff_ids(&self) -> Vec<String> {
        string_array(&self.config["rootfs"]["diff_ids"])
    }

    /// `config.config`, created if missing.
    pub(super) fn cfg(&mut self) -> &mut Map<String, Value> {
        if !self.config["config"].is_object() {
            self.config["config"] = json!({});
        }
        self.config["config"]
            .as_object_mut()
            .expect("just made an object")
    }

    pub(super) fn get(&self, key: &str) -> &Value {
        &self.config["config"][key]
    }

    pub(super) fn strings(&self, key: &str) -> Vec<String> {
        string_array(self.get(key))
    }

    pub(super) fn env(&self) -> Vec<(String, String)> {
        self.strings("Env")
            .into_iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv, String::new()),
            })
            .collect()
    }

    pub(super) fn set_env(&mut self, key: &str, value: &str) {
        let mut env = self.strings("Env");
        let entry = format!("{key}={value}");
        match env.iter_mut().find(|e| e.split('=').next() == Some(key)) {
            Some(e) => *e = entry,
            None => env.push(entry),
        }
        self.cfg().insert("Env".into(), json!(env));
    }

    pub(super) fn workdir(&self) -> String {
        self.get("WorkingDir")
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("/")
            .to_string()
    }

    pub(super) fn shell(&self) -> Vec<String> {
        let s = self.strings("Shell");
        if s.is_empty() {
            vec!["/bin/sh".into(), "-c".into()]
        } else {
            s
        }
    }
}

impl Builder<'_> {
    /// Writes an image's config and manifest into the store; returns it with its ID.
    pub(super) fn commit(&self, config: Value, layers: Vec<Descriptor>) -> Result<Img> {
        let bytes = canonical_json(&config, "image config")?;
        let (digest, size) = self.store.put_blob(&bytes)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest,
                "size": size,
            },
            "layers": layers,
        });
        let (m, _) = self
            .store
            .put_blob(&canonical_json(&manifest, "image manifest")?)?;
        Ok(Img {
            config,
            layers,
            id: digest,
            manifest: Some(m),
        })
    }

    /// The image a manifest in the store describes, if it and its layers are all there.
    pub(super) fn load(&self, manifest: &str) -> Option<Img> {
        let m: Value = serde_json::from_slice(&self.store.read_blob(manifest).ok()?).ok()?;
        let config_digest = m["config"]["digest"].as_str()?.to_string();
        let config: Value =
            serde_json::from_slice(&self.store.read_blob(&config_digest).ok()?).ok()?;
        let layers: Vec<Descriptor> = serde_json::from_value(m["layers"].clone()).ok()?;
        let img = Img {
            config,
            layers,
            id: config_digest,
            manifest: Some(manifest.to_string()),
        };
        for c in chain_ids(&img.diff_ids()) {
            self.store.layer(&c).ok()??;
        }
        Some(img)
    }

    /// The unpacked layers of an image, bottom first.
    pub(super) fn layers_of(&self, img: &Img) -> Result<Vec<overlay::Layer>> {
        chain_ids(&img.diff_ids())
            .iter()
            .map(|c| {
                self.store
                    .layer(c)?
                    .with_context(|| format!("layer {c} is not unpacked in the store"))
            })
            .collect()
    }

    pub(super) fn view(&self, img: &Img) -> Result<LayerView> {
        Ok(LayerView {
            layers: self
                .layers_of(img)?
                .into_iter()
                .rev()
                .map(|l| l.diff)
                .collect(),
        })
    }

    /// An image of the store as the start of a stage (or a `COPY --from` source).
    pub(super) fn image(&self, name: &str) -> Result<Img> {
        let image = self.store.image(name).map_err(|_| {
            anyhow!(
                "pull access denied for {name}: the image is not in the store and this builder \
                 has no network to pull it (load it first: dockyard load -i IMAGE.tar)"
            )
        })?;
        self.store.unpack(&image)?;
        self.load(&image.manifest_digest)
            .with_context(|| format!("reading image {name} from the store"))
    }
}

/// A directory as a gzip-compressed layer tar.
pub(super) fn write_layer(dir: &Path, tar: &Path, kind: TreeKind) -> Result<()> {
    let gz = flate2::write::GzEncoder::new(
        File::create(tar).with_context(|| format!("creating {}", tar.display()))?,
        flate2::Compression::fast(),
    );
    write_tree(dir, gz, kind)?
        .finish()
        .context("compressing the layer")?;
    Ok(())
}

/// The strings of a JSON array (none if it is not one).
fn string_array(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
