//! Images: what lab 04's store does for `commit`, `diff`, `export`,
//! `import`, `save` and `load`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::engine::Engine;
use anyhow::{Context, Result};
use lab04_overlay as overlay;
use overlay::overlay::is_mounted;

pub use overlay::archive::CommitOptions;
pub use overlay::diff::Change;
pub use overlay::store::Image;

/// `commit`: lab 04 turns the upper dir into a layer on top of the image.
pub fn commit(
    engine: &Engine,
    layer: &overlay::RwLayer,
    name: &str,
    opts: &CommitOptions,
) -> Result<Image> {
    overlay::archive::commit_with(&engine.images, layer, name, opts)
}

/// `commit --change`: the runtime config of the container's image with the
/// changes applied (lab 06 parses and applies them, as JSON).
pub fn changed_config(
    engine: &Engine,
    layer: &overlay::RwLayer,
    changes: &[String],
) -> Result<oci_spec::image::Config> {
    let image = engine.images.container_image(layer)?;
    let mut json = match image.config.config() {
        Some(c) => serde_json::to_value(c).context("serializing the image's config")?,
        None => serde_json::json!({}),
    };
    lab06_dockerfile::change::apply_changes(&mut json, changes)?;
    serde_json::from_value(json).context("the changed image config")
}

/// `diff`: lab 04 compares the upper dir with the image's layers.
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>> {
    overlay::diff::changes(upper, lowers)
}

/// `export`: the merged tree as a tar. A running container's overlay is
/// already mounted and is read in place; otherwise lab 04 mounts it for
/// the walk.
pub fn export(engine: &Engine, layer: &overlay::RwLayer, out: impl Write) -> Result<()> {
    if is_mounted(&layer.merged())? {
        overlay::diff::write_tree_shifted(
            &layer.merged(),
            out,
            overlay::diff::TreeKind::Plain,
            engine.images.id_shift(),
        )?;
    } else {
        overlay::archive::export_container(&engine.images, layer, out)?;
    }
    Ok(())
}

/// `import` (lab 04).
pub fn import(engine: &Engine, input: impl Read, name: &str) -> Result<Image> {
    overlay::archive::import_tarball(&engine.images, input, name)
}

/// `save` as a docker-archive (lab 04).
pub fn save(engine: &Engine, image: &Image, out: impl Write) -> Result<()> {
    overlay::archive::save_docker(&engine.images, image, out)?;
    Ok(())
}

/// Load a docker-archive or OCI archive into the engine's store (lab 04).
pub fn load_archive(engine: &Engine, input: impl Read) -> Result<Vec<String>> {
    overlay::archive::load_archive(&engine.images, input)
}
