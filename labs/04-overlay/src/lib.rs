//! # Lab 04: overlay image layers
//!
//! An image is a stack of read-only **layers**, each a tarball of the files it
//! adds, changes or deletes. A container's root filesystem is those layers
//! seen through **overlayfs**, with one private writable layer on top:
//!
//! ```text
//! mount -t overlay overlay \
//!     -o lowerdir=LAYER2:LAYER1,upperdir=UPPER,workdir=WORK  MERGED
//! ```
//!
//! Writes go to UPPER (a modified lower file is first *copied up*), deletions
//! leave a *whiteout* in UPPER, and the layers never change: every container
//! of an image shares them. That is Docker's overlay2 driver.
//!
//! The modules, in the order a learner meets them:
//!
//! - [`digest`]: content addressing: layer digests, diff_ids, chain IDs;
//! - [`extract`]: applying a layer tarball **safely**: layers are hostile input;
//! - [`store`]: the image store, an OCI image layout plus one unpacked
//!   directory per layer, where nothing half-done is ever visible;
//! - [`overlay`]: the overlay mount, and the mount-data page limit;
//! - [`rwlayer`]: a container's read-write layer: its upper, work and merged dirs;
//! - [`gc`]: removing the blobs and layers no image or container needs;
//! - [`diff`]: an upper dir back into a layer (whiteouts back into `.wh.`),
//!   and `docker diff`;
//! - [`archive`]: `docker import`/`export`/`save`/`load` and OCI archives;
//! - [`reference`](mod@reference): image names, `busybox` = `docker.io/library/busybox:latest`;
//! - [`registry`]: the distribution API: `docker pull` and `docker push`,
//!   content addressing end to end.
//!
//! Running a command in the merged directory reuses lab 01 (mount namespace,
//! `pivot_root`, `/proc`, `/dev`, `exec`); see `src/main.rs`.

pub mod archive;
pub mod diff;
pub mod digest;
pub mod extract;
pub mod gc;
pub mod overlay;
pub mod reference;
pub mod registry;
pub mod rwlayer;
pub mod store;

pub use extract::{apply_layer, Applied, IdShift, Refusal, UnsafeEntry, Whiteouts};
pub use gc::{GcReport, Keep};
pub use overlay::{mount_overlay, MountGuard, OverlayDirs};
pub use rwlayer::RwLayer;
pub use store::{Image, Layer, Store};

/// Whether the running kernel knows the `overlay` filesystem type. It may also
/// be a module that is not loaded yet; `modprobe overlay` loads it.
pub fn overlay_supported() -> anyhow::Result<bool> {
    use anyhow::Context;
    let fs = std::fs::read_to_string("/proc/filesystems").context("reading /proc/filesystems")?;
    Ok(fs
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay")))
}
