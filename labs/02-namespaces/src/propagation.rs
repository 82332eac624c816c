//! # Mount propagation: which mounts travel between namespaces
//!
//! A mount namespace starts as a copy of its parent's, and each copied
//! mount keeps a *propagation type* (mount_namespaces(7)):
//!
//! - **shared** (`shared:N` in /proc/self/mountinfo): a member of peer group
//!   N; a mount made under one peer appears under all of them;
//! - **slave** (`master:N`): receives the mounts of peer group N, sends
//!   none back;
//! - **private** (no tag): neither receives nor sends;
//! - **unbindable** (`unbindable`): private, and may not be bind-mounted.
//!
//! Lab 01 makes everything private (`mount --make-rprivate /`): nothing the
//! container mounts leaks out, nothing the host mounts later leaks in. An
//! OCI config may ask for more. Kubernetes' `mountPropagation:
//! HostToContainer` is a bind mount with `rslave`, so that a volume the host
//! mounts later (a CSI driver's) appears in the container;
//! `Bidirectional` is `rshared`. And `linux.rootfsPropagation` sets the
//! container's `/`. As runc does it:
//!
//! ```text
//! mount --make-rslave /                  # the new namespace: receive, never send
//! mount --bind /host/src ROOTFS/dst      # a bind of a slave mount is a slave too
//! mount --make-rshared ROOTFS/dst        # the mount's own propagation option
//! pivot_root ...
//! mount --make-shared /                  # rootfsPropagation, after pivot_root
//! ```
//!
//! The namespace's `/` is made a slave, not shared: a shared one would send
//! the container's own mounts (its rootfs, /proc, /dev) to the host.

use std::path::PathBuf;

use anyhow::{bail, Context};
use nix::mount::{mount, MsFlags};

/// Propagation for a container's mounts; the default is lab 01's: every
/// mount private.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Propagation {
    /// Receive the host's mounts: the new namespace's `/` is made
    /// `rslave` instead of `rprivate`. Needed for any bind mount that is
    /// to be a slave of, or shared with, its source on the host.
    pub slave_of_host: bool,
    /// `linux.rootfsPropagation`: applied to `/` after pivot_root.
    pub root: Option<MsFlags>,
    /// A mount's propagation option: (its path inside the container, the
    /// flags), applied after pivot_root in this order.
    pub mounts: Vec<(PathBuf, MsFlags)>,
}

/// The flags of one propagation option as mount(8) and the OCI spec spell
/// it (`rshared`, `slave`, `unbindable`...); `None` for any other option.
pub fn flags(option: &str) -> Option<MsFlags> {
    let (rec, name) = match option.strip_prefix('r') {
        Some(rest @ ("shared" | "slave" | "private" | "unbindable")) => (true, rest),
        _ => (false, option),
    };
    let kind = match name {
        "shared" => MsFlags::MS_SHARED,
        "slave" => MsFlags::MS_SLAVE,
        "private" => MsFlags::MS_PRIVATE,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        _ => return None,
    };
    Some(if rec { kind | MsFlags::MS_REC } else { kind })
}

/// [`flags`], or an error naming the option.
pub fn parse(option: &str) -> anyhow::Result<MsFlags> {
    match flags(option) {
        Some(f) => Ok(f),
        None => bail!(
            "propagation {option:?}: expected shared, slave, private or unbindable, \
             each with an optional r (recursive) in front"
        ),
    }
}

// ANCHOR: propagation
/// Step one, in the new namespace before anything is mounted: cut the
/// links to the host (`rprivate`, lab 01's), or keep the host's side only
/// (`rslave`).
pub(crate) fn prepare_namespace(p: &Propagation) -> anyhow::Result<()> {
    if !p.slave_of_host {
        return lab01_chroot::make_mounts_private();
    }
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .context("making / a slave recursively (mount --make-rslave /)")?;
    Ok(())
}

/// Step two, after pivot_root: the container's `/`, then each mount's own
/// option (`mount --make-shared /dst`). Paths now resolve inside the
/// container's root, where no host path can be reached.
pub(crate) fn apply_after_pivot(p: &Propagation) -> anyhow::Result<()> {
    if let Some(flags) = p.root {
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .with_context(|| format!("setting the propagation of / to {flags:?}"))?;
    }
    for (path, flags) in &p.mounts {
        mount(
            None::<&str>,
            path,
            None::<&str>,
            flags.to_owned(),
            None::<&str>,
        )
        .with_context(|| format!("setting the propagation of {} to {flags:?}", path.display()))?;
    }
    Ok(())
}
// ANCHOR_END: propagation

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_as_mount8_spells_them() {
        assert_eq!(flags("shared"), Some(MsFlags::MS_SHARED));
        assert_eq!(flags("rslave"), Some(MsFlags::MS_SLAVE | MsFlags::MS_REC));
        assert_eq!(
            flags("runbindable"),
            Some(MsFlags::MS_UNBINDABLE | MsFlags::MS_REC)
        );
        assert_eq!(
            flags("rprivate"),
            Some(MsFlags::MS_PRIVATE | MsFlags::MS_REC)
        );
        assert_eq!(flags("ro"), None);
        assert_eq!(flags("rbind"), None);
        assert!(parse("rshare").is_err());
    }
}
