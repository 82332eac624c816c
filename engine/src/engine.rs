//! One data root: the image store, the containers' records and the volumes,
//! opened with daemon.json's settings.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{Context, Result};
use lab04_overlay as overlay;

use crate::config::DaemonConfig;
use crate::state::{self};

/// One data root: its containers' state and its image store.
pub struct Engine {
    pub root: PathBuf,
    /// `--userns-remap`: the ranges every container's root maps to, unless
    /// it runs with `--userns=host`. `root` is then the remapped data root.
    pub remap: Option<crate::remap::Remap>,
    /// Rootless mode: this process is root of a user namespace of its own
    /// (see the rootless module), not of the host.
    pub rootless: bool,
    pub config: DaemonConfig,
    pub containers: state::Records,
    pub images: overlay::store::Store,
    pub volumes: crate::volumes::Volumes,
}

impl Engine {
    /// Open the data root `root`. With `--userns-remap` (`remap`) the data
    /// root is `<root>/<uid>.<gid>` (see the remap module), and its image
    /// store shifts layer owners into the range.
    pub fn open_remapped(
        root: PathBuf,
        config: DaemonConfig,
        remap: Option<crate::remap::Remap>,
    ) -> Result<Engine> {
        let root = match &remap {
            Some(r) => r.data_root(&root)?,
            None => root,
        };
        std::fs::create_dir_all(&root)
            .with_context(|| format!("creating data root {}", root.display()))?;
        if remap.is_none() {
            secure_data_root(&root)?;
        }
        // The image store and the containers share the data root: lab 04
        // keeps each container's upper/work/merged dirs in
        // containers/<id>/, and the engine its state.json beside them.
        // Opening it closes its directories to other users (lab 04's
        // `secure_dirs`), on every open: an older data root is fixed too.
        let images =
            overlay::store::Store::open_shifted(&root, remap.as_ref().map(|r| r.id_shift()))?;
        let containers = state::Records::open(&root)?;
        let volumes =
            crate::volumes::Volumes::open_shifted(&root, remap.as_ref().map(|r| r.id_shift().gid))?;
        remove_debris(&images, &containers)?;
        images.keep_reserve();
        Ok(Engine {
            root,
            remap,
            rootless: false,
            config,
            containers,
            images,
            volumes,
        })
    }

    /// Open `root` for a rootless engine, whose process is already in its
    /// own user namespace (`rootless::enter_rootless`).
    pub fn open_rootless(root: PathBuf, config: DaemonConfig) -> Result<Engine> {
        let mut engine = Engine::open_remapped(root, config, None)?;
        engine.rootless = true;
        Ok(engine)
    }

    /// The lab 04 view of a container (its overlay directories).
    pub fn layer_container(&self, id: &str) -> Result<overlay::RwLayer> {
        self.images.container(id)
    }

    /// A fresh engine on an empty data root, with daemon.json's defaults:
    /// what the unit tests of the core start from.
    #[cfg(test)]
    pub(crate) fn for_tests(root: &std::path::Path) -> Engine {
        Engine::open_remapped(root.to_path_buf(), DaemonConfig::default(), None)
            .expect("opening a data root in a temporary directory")
    }
}

// ANCHOR: data_root_mode
/// The data root's own mode: 0711, as docker's `/var/lib/docker`.
///
/// SECURITY: everyone may pass through it (a user namespace's root must
/// reach what lies below) but no one else may list it; the doors that
/// matter are one level down, 0710 (lab 04's `secure_dirs`, the volumes).
/// With `--userns-remap`, the remap module makes the data root 0710 with the
/// remapped root's group instead: only it and root pass.
fn secure_data_root(root: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o711))
        .with_context(|| format!("chmod 711 {}", root.display()))
}
// ANCHOR_END: data_root_mode

// ANCHOR: debris
/// Remove what no command could see: a `containers/<id>/` that lacks lab
/// 04's `container.json` or the engine's `state.json`.
///
/// Containers are created whole and removed whole (by rename, see lab 04's
/// `create_container_staged` and `remove_container`), so this version never
/// leaves such a directory, even when killed. Older versions did: killed
/// while creating, an orphan without `state.json` that nothing lists; killed
/// while removing, a ghost that `ps` lists and every other command calls
/// nonexistent. Both are finished here, at the next open: an orphan was
/// never started, and a ghost's cgroups and mount went before its files.
fn remove_debris(images: &overlay::store::Store, records: &state::Records) -> Result<()> {
    let whole =
        |d: &std::path::Path| d.join("state.json").exists() && d.join("container.json").exists();
    if records.dirs()?.iter().all(|d| whole(d)) {
        return Ok(());
    }
    let _lock = records.lock()?;
    for dir in records.dirs()? {
        if !whole(&dir) {
            images.remove_container_dir(&dir)?;
        }
    }
    Ok(())
}
// ANCHOR_END: debris

/// The engine's global flags as given (`--root`, `--config`,
/// `--userns-remap`), for the `dockyard` that runs after a container exits.
#[derive(Debug, Clone, Default)]
pub struct EngineArgs {
    pub root: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub userns_remap: Option<String>,
}

static ENGINE_ARGS: std::sync::OnceLock<EngineArgs> = std::sync::OnceLock::new();

/// Remember the global flags (main does, once parsed).
pub fn set_engine_args(args: EngineArgs) {
    let _ = ENGINE_ARGS.set(args);
}

/// The global flags that open this same engine again.
pub fn engine_argv(engine: &Engine) -> Vec<OsString> {
    let given = ENGINE_ARGS.get().cloned().unwrap_or_default();
    let mut argv: Vec<OsString> = Vec::new();
    if let Some(c) = given.config {
        argv.extend(["--config".into(), c.into()]);
    }
    if let Some(u) = given.userns_remap {
        argv.extend(["--userns-remap".into(), u.into()]);
    }
    match (&engine.remap, given.root) {
        // Remapped, the data root is derived from the one given.
        (Some(_), Some(root)) => argv.extend(["--root".into(), root.into()]),
        (Some(_), None) => {}
        // Else the data root itself, however it was found (rootless mode
        // finds it from the user's home, which its namespace changes).
        (None, _) => argv.extend(["--root".into(), engine.root.clone().into()]),
    }
    argv
}
