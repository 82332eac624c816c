//! # Lab 04: overlay image layers
//!
//! An image is a stack of read-only layers; overlayfs shows them as one tree
//! with a private writable layer on top (`mount -t overlay overlay
//! -o lowerdir=...,upperdir=...,workdir=... merged`).
//!
//! This crate so far only checks that the kernel has overlayfs (for `dockyard
//! doctor`); the image store is the subject of the lab's own issue.

pub use lab03_cgroups;

/// Whether the running kernel knows the `overlay` filesystem type. It may also
/// be a module that is not loaded yet; `modprobe overlay` loads it.
pub fn overlay_supported() -> anyhow::Result<bool> {
    use anyhow::Context;
    let fs = std::fs::read_to_string("/proc/filesystems").context("reading /proc/filesystems")?;
    Ok(fs
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay")))
}
