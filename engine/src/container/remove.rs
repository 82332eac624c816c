//! `docker rm` and the prunes: taking away what is not running or not used.
//!
//! A container that is not running goes with its writable layer, its logs
//! and its state ([`remove`]). What removal asks of containers lives here
//! too: `rm` refuses a running container unless forced, `container prune`
//! removes the stopped ones, a volume goes only when no container mounts it
//! (`volume rm`, `volume prune`), and an image's layers stay while a
//! container uses it (`rmi`, `image prune`).
//!
//! These rules live with containers because each asks a question about
//! containers: which of them stopped, which mount this volume, which use
//! that image. The `volumes` module and lab 04's image store sit *below*
//! `container` (a container is made of them), so they cannot ask it
//! themselves without an import circle.

use std::collections::BTreeSet;

use anyhow::{bail, Context, Result};
use lab03_cgroups as cgroups;

use super::config::config_of;
use super::list::list_all;
use super::signal::stop;
use crate::engine::Engine;
use crate::state::{Record, Status};

/// Remove a container that is not running: its writable layer, its logs,
/// its state.
pub fn remove(engine: &Engine, id: &str, anonymous_volumes: bool) -> Result<()> {
    let lock = engine.containers.lock()?;
    let gone = engine.containers.load(id).ok();
    let anonymous: Vec<String> = match engine.containers.load(id).and_then(|r| config_of(&r)) {
        Ok(c) if anonymous_volumes => c
            .mounts
            .iter()
            .filter(|m| m.anonymous)
            .map(|m| m.source.clone())
            .collect(),
        _ => Vec::new(),
    };
    // A monitor that was killed (kill -9, a reboot) could not clean up: its
    // container's cgroup and overlay mount may still be there.
    if let Ok(record) = engine.containers.load(id) {
        let config = config_of(&record)?;
        let parent = config.cgroup_parent_or_default();
        let host = cgroups::detect()?;
        // A parent lab 03 refuses (`a/../b`, in a record from before create
        // checked it) never had a group made under it: nothing to clean, and
        // no reason to refuse the removal forever.
        if cgroups::group_dirs(&host, parent, id).is_ok() {
            cgroups::remove_stale(&host, parent, id)?;
            if config.cgroup_parent.is_empty() && !engine.rootless {
                cgroups::remove_parent_if_empty(&host, parent)?;
            }
        }
    }
    super::ns_modes::unmount_shareable(engine, id);
    let layer = engine.layer_container(id)?;
    engine.images.remove_container(&layer)?;
    drop(lock);
    if let Some(r) = &gone {
        crate::events::container(engine, r, "destroy", &[]);
    }
    for name in anonymous {
        engine.volumes.remove(&name)?;
    }
    Ok(())
}

/// `rm`'s options.
#[derive(Debug, Clone, Copy, Default)]
pub struct RemoveOptions {
    /// `-f`: a running container is killed (SIGKILL) first.
    pub force: bool,
    /// `-v`: its anonymous volumes go too.
    pub volumes: bool,
}

/// `rm`: remove a stopped container, or with `force` a running one.
pub fn remove_checked(engine: &Engine, record: &Record, opts: RemoveOptions) -> Result<()> {
    // On a full disk even a removal must write a little (stop's record of
    // the stop): the space kept for that comes back first (lab 04's
    // reserve), and the removal frees far more.
    engine.images.release_reserve();
    let r = engine.containers.reconcile(record.clone())?;
    if matches!(
        r.state.status,
        Status::Running | Status::Paused | Status::Restarting
    ) {
        if !opts.force {
            bail!(
                "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                r.name
            );
        }
        let stopped = stop(engine, &r, Some(0), Some(nix::sys::signal::Signal::SIGKILL));
        // A `--rm` container's monitor removes it the moment it exits, so
        // it may be gone, wholly or in part, before this removal gets to
        // it: that is what `rm -f` asked for, and docker says nothing
        // either (its autoremove and `rm -f` meet the same way).
        if auto_removed(engine, &r) {
            return Ok(());
        }
        stopped?;
    }
    match remove(engine, &r.id, opts.volumes) {
        Err(_) if auto_removed(engine, &r) => Ok(()),
        done => done,
    }
}

/// Whether `r` was a `--rm` container that its monitor has removed: its
/// directory is gone (lab 04 renames it away in one step, then deletes it).
fn auto_removed(engine: &Engine, r: &Record) -> bool {
    let auto_remove = config_of(r).map(|c| c.auto_remove).unwrap_or(false);
    auto_remove && !engine.containers.dir_of(&r.id).exists()
}

/// `container prune`: every stopped container (exited, created or dead)
/// goes. `on_removed` hears of each as it goes; returns their IDs.
pub fn prune_containers(engine: &Engine, on_removed: &mut dyn FnMut(&str)) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for r in list_all(engine)? {
        if matches!(
            r.state.status,
            Status::Exited | Status::Created | Status::Dead
        ) {
            remove(engine, &r.id, false)?;
            on_removed(&r.id);
            removed.push(r.id);
        }
    }
    Ok(removed)
}

/// The images of every container (their config digests:
/// `ContainerConfig::image_id`), which the store's garbage collection keeps
/// even when `rmi -f` removed their names.
pub fn images_in_use(engine: &Engine) -> Result<BTreeSet<String>> {
    let mut configs = BTreeSet::new();
    for r in list_all(engine)? {
        // A container whose config cannot be read might use any image:
        // refuse to collect rather than guess.
        let c = config_of(&r).with_context(|| {
            format!(
                "reading container {}'s config (no image removed)",
                &r.id[..12.min(r.id.len())]
            )
        })?;
        configs.insert(c.image_id);
    }
    Ok(configs)
}

/// The IDs of the containers that mount volume `name`.
pub fn volume_users(engine: &Engine, name: &str) -> Result<Vec<String>> {
    Ok(list_all(engine)?
        .into_iter()
        .filter(|r| {
            config_of(r)
                .map(|c| {
                    c.mounts
                        .iter()
                        .any(|m| m.kind == "volume" && m.source == name)
                })
                .unwrap_or(false)
        })
        .map(|r| r.id)
        .collect())
}

/// `volume rm`: a volume some container mounts stays, unless `force`.
/// A name that is no volume is refused as such first, as dockerd's volume
/// service looks the volume up before it counts its users.
pub fn remove_volume(engine: &Engine, name: &str, force: bool) -> Result<()> {
    engine.volumes.get(name)?;
    let using = volume_users(engine, name)?;
    if !using.is_empty() && !force {
        bail!("remove {name}: volume is in use - [{}]", using.join(", "));
    }
    engine.volumes.remove(name)
}

/// `volume prune`: the anonymous volumes (with `all`, every volume) that no
/// container mounts. `on_removed` hears of each as it goes; returns their
/// names.
pub fn prune_volumes(
    engine: &Engine,
    all: bool,
    on_removed: &mut dyn FnMut(&str),
) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for v in engine.volumes.list()? {
        if (all || v.anonymous) && volume_users(engine, &v.name)?.is_empty() {
            engine.volumes.remove(&v.name)?;
            on_removed(&v.name);
            removed.push(v.name);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::list::tests::record;
    use crate::container::ContainerConfig;
    use crate::volumes::MountSpec;

    /// Write a record as `create` would (without its overlay).
    fn save(engine: &Engine, r: &Record) {
        let lock = engine.containers.lock().unwrap();
        std::fs::create_dir_all(engine.containers.dir_of(&r.id)).unwrap();
        engine.containers.save(&lock, r).unwrap();
    }

    #[test]
    fn volumes_in_use_stay_unless_forced_and_prune_skips_them() {
        let root = tempfile::tempdir().unwrap();
        let engine = Engine::for_tests(root.path());
        engine
            .volumes
            .create("used", Default::default(), true)
            .unwrap();
        engine
            .volumes
            .create("spare", Default::default(), true)
            .unwrap();
        engine
            .volumes
            .create("named", Default::default(), false)
            .unwrap();
        let c = ContainerConfig {
            image_id: "sha256:img".into(),
            mounts: vec![MountSpec {
                kind: "volume".into(),
                source: "used".into(),
                target: "/data".into(),
                read_only: false,
                anonymous: true,
            }],
            ..Default::default()
        };
        let r = record(
            "ab",
            "web",
            Status::Created,
            serde_json::to_value(&c).unwrap(),
        );
        save(&engine, &r);

        assert_eq!(
            volume_users(&engine, "used").unwrap(),
            std::slice::from_ref(&r.id)
        );
        assert!(volume_users(&engine, "spare").unwrap().is_empty());
        assert_eq!(
            remove_volume(&engine, "used", false)
                .unwrap_err()
                .to_string(),
            format!("remove used: volume is in use - [{}]", r.id)
        );
        let mut heard = Vec::new();
        let pruned = prune_volumes(&engine, false, &mut |n| heard.push(n.to_string())).unwrap();
        assert_eq!(pruned, ["spare"], "only unused anonymous volumes");
        assert_eq!(heard, pruned);
        assert_eq!(
            images_in_use(&engine)
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            ["sha256:img"]
        );
    }
}
