//! A container's size, as `docker ps -s` shows it: what it wrote (its
//! overlay upper directory, docker's `SizeRw`) and, "virtual", that plus
//! its image's unpacked layers (`SizeRootFs`).
//!
//! ```text
//! $ du -sb /var/lib/dockyard/containers/ID/upper     # SizeRw
//! $ docker ps -s --format '{{.Size}}'
//! 0B (virtual 4.26MB)
//! ```

use crate::engine::Engine;
use crate::state::Record;
use crate::units::{dir_size, human_size};

/// `(SizeRw, SizeRootFs)` of one container, in bytes.
pub fn sizes(engine: &Engine, record: &Record) -> (u64, u64) {
    let rw = dir_size(&engine.containers.dir_of(&record.id).join("upper"));
    let image_id = super::config_of(record)
        .map(|c| c.image_id)
        .unwrap_or_default();
    // Its image's unpacked layers (as `images` measures them; the store
    // is asked directly, the image module being above this one).
    let image = engine
        .images
        .images()
        .unwrap_or_default()
        .into_iter()
        .find(|i| i.config_digest == image_id)
        .and_then(|i| engine.images.image_layers(&i).ok())
        .map_or(0, |layers| layers.iter().map(|l| dir_size(&l.diff)).sum());
    (rw, rw + image)
}

/// docker/cli's `{{.Size}}` of a container: `SizeRw`, and the virtual size
/// in brackets when there is one.
pub fn size_column(rw: u64, rootfs: u64) -> String {
    if rootfs > 0 {
        format!("{} (virtual {})", human_size(rw), human_size(rootfs))
    } else {
        human_size(rw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_reads_like_dockers() {
        assert_eq!(size_column(0, 4_260_000), "0B (virtual 4.26MB)");
        assert_eq!(size_column(0, 0), "0B");
    }
}
