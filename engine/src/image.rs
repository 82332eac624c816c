//! Images: what lab 04's store does for `commit`, `diff`, `export`,
//! `import`, `save` and `load`, and what `images`, `inspect`, `history`,
//! `rmi` and `image prune` show and do, for the command line and the
//! Engine API alike.
//!
//! The data root *is* a lab 04 image store: an image is a manifest, a
//! config blob and layers, named in `index.json`; its ID is the config's
//! digest. Removing an image is two steps, as in docker: its name goes
//! (untag), then lab 04's garbage collection deletes the blobs and layers
//! nothing references any more (no other image, no container).
//!
//! ```text
//! $ jq . /var/lib/dockyard/index.json          # the names
//! $ ls /var/lib/dockyard/blobs/sha256 /var/lib/dockyard/layers
//! ```

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::container;
use crate::engine::Engine;
use crate::state::{Record, Status};
use crate::units::dir_size;
use anyhow::{bail, Context, Result};
use lab04_overlay as overlay;
use overlay::overlay::is_mounted;
use serde_json::{json, Value};

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

/// A new image's name (`commit`, `import`), checked as docker checks it
/// (`reference.ParseNormalizedNamed`) before anything is stored: the notes'
/// `zewe/centos：latest` (a full-width colon) is "invalid reference format",
/// not a repository of that name.
pub fn check_new_name(name: &str) -> Result<()> {
    if !name.is_empty() {
        overlay::reference::Reference::parse(name)?;
    }
    Ok(())
}

/// `import` (lab 04).
pub fn import(engine: &Engine, input: impl Read, name: &str) -> Result<Image> {
    check_new_name(name)?;
    let image = overlay::archive::import_tarball(&engine.images, input, name)?;
    let id = &image.config_digest;
    crate::events::image(engine, id, id, "import");
    Ok(image)
}

/// `import -c CHANGE -m MESSAGE`.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Dockerfile lines for the image's runtime config (lab 06 applies them).
    pub changes: Vec<String>,
    /// The history entry's comment.
    pub message: Option<String>,
}

/// `import` with docker's `--change` and `--message`: the tarball becomes
/// a one-layer image (lab 04), whose config then gets the changes. A bad
/// change fails before anything is stored.
pub fn import_with(
    engine: &Engine,
    input: impl Read,
    name: &str,
    opts: &ImportOptions,
) -> Result<Image> {
    check_new_name(name)?;
    let mut probe = serde_json::json!({});
    lab06_dockerfile::change::apply_changes(&mut probe, &opts.changes)?;
    if opts.changes.is_empty() && opts.message.is_none() {
        return import(engine, input, name);
    }
    let plain = overlay::archive::import_tarball(&engine.images, input, name)?;
    let mut config = plain.config.clone();
    if !opts.changes.is_empty() {
        let mut json = match config.config() {
            Some(c) => serde_json::to_value(c).context("serializing the image's config")?,
            None => serde_json::json!({}),
        };
        lab06_dockerfile::change::apply_changes(&mut json, &opts.changes)?;
        config.set_config(Some(
            serde_json::from_value(json).context("the changed image config")?,
        ));
    }
    if let Some(m) = &opts.message {
        let mut history = config.history().clone();
        if let Some(last) = history.last_mut() {
            last.set_comment(Some(m.clone()));
        }
        config.set_history(history);
    }
    let layers = plain.manifest.layers().clone();
    let image = engine.images.add_image(name, &config, layers)?;
    let id = &image.config_digest;
    crate::events::image(engine, id, id, "import");
    Ok(image)
}

/// `save` as a docker-archive (lab 04) of what `reference` names, under
/// the name it gave, as docker's `save` records it: `save busybox:1.36`
/// writes that name (not the image's other names), `save <ID>` (or an ID
/// prefix) and `save NAME@DIGEST` write none (moby's `tarexport` records
/// tags only), and a `load` of the archive makes an image without a name.
pub fn save(engine: &Engine, reference: &str, out: impl Write) -> Result<()> {
    let Found { image, by_id } = lookup(engine, reference)?;
    let tags = match by_id || image.name.contains('@') {
        true => Vec::new(),
        false => vec![image.name.clone()],
    };
    overlay::archive::save_docker(&engine.images, &image, &tags, out)?;
    let id = &image.config_digest;
    crate::events::image(engine, id, id, "save");
    Ok(())
}

/// Load a docker-archive or OCI archive into the engine's store (lab 04).
pub fn load_archive(engine: &Engine, input: impl Read) -> Result<Vec<String>> {
    let names = overlay::archive::load_archive(&engine.images, input)?;
    log_loaded(engine, &names);
    Ok(names)
}

/// The `load` events of what a load brought in: one per image.
pub fn log_loaded(engine: &Engine, names: &[String]) {
    let mut logged = BTreeSet::new();
    for name in names {
        if let Ok(image) = crate::image_lookup::find(engine, name) {
            let id = image.config_digest;
            if logged.insert(id.clone()) {
                crate::events::image(engine, &id, &id, "load");
            }
        }
    }
}

pub use crate::image_lookup::{find, lookup, names_of, Found, NoSuchImage};

// ---- what `images`, `inspect`, `history`, `rmi` and the prunes show ------

/// One image as `images` lists it (and `GET /images/json` summarises it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    /// The name it is tagged with (`busybox:latest`).
    pub name: String,
    /// Its ID: the config digest (`sha256:...`), and that ID's first 12 hex digits.
    pub id: String,
    pub short_id: String,
    /// When it was made, RFC 3339 as its config says (none if it does not).
    pub created: Option<String>,
    /// The unpacked size of its layers, in bytes.
    pub size: u64,
}

/// The unpacked size of an image's layers, in bytes.
pub fn size(engine: &Engine, image: &Image) -> u64 {
    engine
        .images
        .image_layers(image)
        .map(|layers| layers.iter().map(|l| dir_size(&l.diff)).sum())
        .unwrap_or(0)
}

/// Every tagged image of the store, by name.
pub fn list(engine: &Engine) -> Result<Vec<ImageSummary>> {
    let mut list = engine.images.images()?;
    list.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(list
        .iter()
        .map(|i| ImageSummary {
            name: i.name.clone(),
            id: i.config_digest.clone(),
            short_id: i.short_id().to_string(),
            created: i.config.created().clone(),
            size: size(engine, i),
        })
        .collect())
}

/// `inspect IMAGE`'s document (`GET /images/{name}/json`), in docker's
/// shape: `Id`, `RepoTags` (every name of the ID), `RepoDigests`,
/// `Created`, `Author`, `Comment`, `Config` (the runtime config as the
/// config blob stores it, docker's extensions such as `Healthcheck`
/// included), `Architecture`, `Os`, `Size`, `GraphDriver` (overlay2 and the
/// layers' directories) and `RootFS` (the layers' diff IDs) — not the OCI
/// config's lower-case fields.
pub fn inspect(engine: &Engine, name: &str) -> Result<Value> {
    let image = find(engine, name)?;
    // The config blob as stored, not the OCI type's view of it: docker
    // extensions such as `Healthcheck` survive only in the raw JSON.
    let raw: Value = match engine.images.read_blob(&image.config_digest) {
        Ok(raw) => serde_json::from_slice(&raw)?,
        Err(_) => serde_json::to_value(&image.config)?,
    };
    let field = |k: &str| raw.get(k).cloned().unwrap_or(Value::Null);
    let text = |k: &str| {
        raw.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let tags = names_of(engine, &image.config_digest)?;
    // A name pinned by digest (`repo@sha256:...`) is a repository digest.
    let tags: Vec<String> = tags.into_iter().filter(|n| !n.contains('@')).collect();
    let digests = crate::repo_digest::repo_digests(engine, &image);
    let layers = engine.images.image_layers(&image).unwrap_or_default();
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|l| l.diff.display().to_string())
        .collect();
    let mut doc = json!({
        "Id": image.config_digest,
        "RepoTags": tags,
        "RepoDigests": digests,
        "Parent": "",
        "Comment": text("comment"),
        "Created": raw.get("created").cloned().unwrap_or(json!("0001-01-01T00:00:00Z")),
        "DockerVersion": "",
        "Author": text("author"),
        "Config": field("config"),
        "Architecture": text("architecture"),
        "Os": text("os"),
        "Size": size(engine, &image),
        "GraphDriver": {
            "Name": "overlay2",
            "Data": {"LowerDir": lower.join(":")},
        },
        "RootFS": {"Type": "layers", "Layers": image.diff_ids()},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    });
    if let Some(v) = raw.get("variant") {
        doc["Variant"] = v.clone();
    }
    Ok(doc)
}

/// Whether the image `name` (`busybox:latest`) answers to `pattern`, as
/// docker's `images REPOSITORY[:TAG]` and `reference=` filter match: the
/// repository, and the tag if one is given; `*` matches within a path
/// component (`bu*`, `*:1.*`).
pub fn reference_matches(pattern: &str, name: &str) -> bool {
    let (repo, tag) = match name.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, t),
        _ => (name, "<none>"),
    };
    let slash = pattern.rfind('/').map_or(0, |i| i + 1);
    let (p_repo, p_tag) = match pattern[slash..].rfind(':') {
        Some(i) => (&pattern[..slash + i], Some(&pattern[slash + i + 1..])),
        None => (pattern, None),
    };
    glob(p_repo, repo) && p_tag.is_none_or(|t| glob(t, tag))
}

/// `*` (any run of characters but `/`) and literal characters.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .take_while(|&n| !tail[..n].contains('/'))
                .filter(|&n| tail.is_char_boundary(n))
                .any(|n| glob(rest, &tail[n..]))
        }
    }
}

/// One step of an image's history, as `history` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// RFC 3339, as the config records it.
    pub created: Option<String>,
    /// The Dockerfile line (or command) that made it.
    pub created_by: String,
    /// The bytes of the layer it made (0 for a step that made none, like ENV).
    pub size: u64,
    pub comment: String,
}

/// `history IMAGE`: the image and its history, newest step first.
pub fn history(engine: &Engine, name: &str) -> Result<(Image, Vec<HistoryEntry>)> {
    let image = find(engine, name)?;
    let layers = engine.images.image_layers(&image).unwrap_or_default();
    let sizes = layers.iter().map(|l| dir_size(&l.diff)).collect();
    let entries = history_entries(image.config.history(), sizes);
    Ok((image, entries))
}

/// The history steps of a config with their layers' sizes, newest first:
/// the layers are in the order of the steps that made one (those without
/// `empty_layer`).
fn history_entries(history: &[oci_spec::image::History], sizes: Vec<u64>) -> Vec<HistoryEntry> {
    let mut sizes = sizes.into_iter();
    let mut entries: Vec<HistoryEntry> = history
        .iter()
        .map(|h| HistoryEntry {
            created: h.created().clone(),
            created_by: h.created_by().clone().unwrap_or_default(),
            size: if h.empty_layer().unwrap_or(false) {
                0
            } else {
                sizes.next().unwrap_or(0)
            },
            comment: h.comment().clone().unwrap_or_default(),
        })
        .collect();
    entries.reverse();
    entries
}

/// `rmi`: untag images no container uses (or any, with force), then let
/// lab 04's garbage collection delete what no other image shares, as
/// docker does. An image a container uses stays on disk (only its name
/// goes, with force) until the container is removed and gc runs again.
///
/// What containers use is read once, when the remover is made: before
/// anything is untagged, so that an unreadable container fails the whole
/// `rmi` with nothing removed.
pub struct Remover<'a> {
    engine: &'a Engine,
    containers: Vec<Record>,
    kept: BTreeSet<String>,
}

impl<'a> Remover<'a> {
    pub fn new(engine: &'a Engine) -> Result<Remover<'a>> {
        Ok(Remover {
            engine,
            containers: container::list_all(engine)?,
            kept: container::images_in_use(engine)?,
        })
    }

    /// Untag what `reference` names, as docker's `ImageDelete` does, and
    /// return the image with the names that went.
    ///
    /// - By a name: that name goes. If it is the image's last name and a
    ///   container uses the image, it is refused unless `force` (the image
    ///   would be left nameless under a container). One of several names
    ///   goes freely, even while a container uses the image.
    /// - By an ID (or a prefix): every name goes, if they are all of one
    ///   repository with at most one tag; an image named in several
    ///   repositories needs `force`. An image a running container uses is
    ///   refused even with `force`; one a stopped container uses needs it.
    pub fn untag(&self, reference: &str, force: bool) -> Result<(Image, Vec<String>)> {
        let Found { image, by_id } = lookup(self.engine, reference)?;
        let names = names_of(self.engine, &image.config_digest)?;
        let user = self.containers.iter().find(|r| {
            container::config_of(r)
                .map(|c| c.image_id == image.config_digest)
                .unwrap_or(false)
        });
        let short = image.short_id().to_string();
        if !by_id {
            if !force && single_reference(&names) {
                if let Some(user) = user {
                    bail!(
                        "conflict: unable to remove repository reference \"{reference}\" (must force) - container {} is using its referenced image {short}",
                        &user.id[..12.min(user.id.len())],
                    );
                }
            }
            self.engine.images.untag(&image.name)?;
            let id = &image.config_digest;
            crate::events::image(self.engine, id, id, "untag");
            return Ok((image.clone(), vec![image.name]));
        }
        if let Some(user) = user {
            let running = matches!(user.state.status, Status::Running | Status::Paused);
            let uid = &user.id[..12.min(user.id.len())];
            if running {
                bail!("conflict: unable to delete {short} (cannot be forced) - image is being used by running container {uid}");
            }
            if !force {
                bail!("conflict: unable to delete {short} (must be forced) - image is being used by stopped container {uid}");
            }
        }
        if !force && !single_reference(&names) {
            bail!("conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories");
        }
        for n in &names {
            self.engine.images.untag(n)?;
            let id = &image.config_digest;
            crate::events::image(self.engine, id, id, "untag");
        }
        if names.is_empty() {
            // An image without a name: its entry goes, and gc the rest.
            self.engine.images.remove_unnamed(&image.manifest_digest)?;
        }
        Ok((image, names))
    }

    /// After [`Remover::untag`]: delete what of `image` nothing else uses.
    /// Returns docker's "Deleted:" IDs: the image ID, then its layers'
    /// chain IDs, top first.
    pub fn collect(&self, image: &Image) -> Result<Vec<String>> {
        let report = gc(self.engine, &self.kept, vec![image.clone()])?;
        let mut deleted = Vec::new();
        if report.blobs.contains(&image.config_digest) {
            deleted.push(image.config_digest.clone());
            let id = &image.config_digest;
            crate::events::image(self.engine, id, id, "delete");
        }
        for chain in image.chain_ids().iter().rev() {
            if report.layers.contains(chain) {
                deleted.push(chain.clone());
            }
        }
        Ok(deleted)
    }
}

/// Docker's `isSingleReference`: at most one tag, and every name in one
/// repository (`app:1` alone, or `app:1` with `app@sha256:...`).
fn single_reference(names: &[String]) -> bool {
    let repo = |n: &str| -> String {
        match n.split_once('@') {
            Some((r, _)) => r.to_string(),
            None => {
                let slash = n.rfind('/').map_or(0, |i| i + 1);
                match n[slash..].rfind(':') {
                    Some(i) => n[..slash + i].to_string(),
                    None => n.to_string(),
                }
            }
        }
    };
    let tags = names.iter().filter(|n| !n.contains('@')).count();
    let repos: BTreeSet<String> = names.iter().map(|n| repo(n)).collect();
    tags <= 1 && repos.len() <= 1
}

/// Runs the store's garbage collection, keeping the images of containers
/// (`kept`). `released`: images just untagged, whose blobs and layers go
/// at once, inside the grace period.
fn gc(engine: &Engine, kept: &BTreeSet<String>, released: Vec<Image>) -> Result<overlay::GcReport> {
    engine.images.gc(&overlay::Keep {
        configs: kept.clone(),
        released,
        ..overlay::Keep::default()
    })
}

/// What `image prune` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// The names untagged (with `all`).
    pub untagged: Vec<String>,
    /// The blobs' digests, then the layers' chain IDs, that were deleted.
    pub deleted: Vec<String>,
    /// Bytes freed.
    pub reclaimed: u64,
}

/// `image prune`: removes the dangling images (those without a name) no
/// container uses and the blobs and layers no image or container
/// references (older than the store's grace period); with `all`, first
/// untags every image no container uses.
pub fn prune(engine: &Engine, all: bool) -> Result<PruneReport> {
    prune_where(engine, all, &|_| true)
}

/// [`prune`], untagging (with `all`) only the unused images `selected`
/// accepts: the Engine API's `until` and `label` filters.
pub fn prune_where(
    engine: &Engine,
    all: bool,
    selected: &dyn Fn(&Image) -> bool,
) -> Result<PruneReport> {
    let mut released = Vec::new();
    let mut untagged = Vec::new();
    let used = container::images_in_use(engine)?;
    for image in engine.images.images()? {
        if used.contains(&image.config_digest) || !selected(&image) {
            continue;
        }
        if image.name.is_empty() {
            // A dangling image (no name, see lab 04's `Store::unnamed`)
            // goes with every prune, as docker's.
            engine.images.remove_unnamed(&image.manifest_digest)?;
            released.push(image);
        } else if all {
            engine.images.untag(&image.name)?;
            untagged.push(image.name.clone());
            released.push(image);
        }
    }
    let report = gc(engine, &used, released)?;
    let mut deleted = report.blobs;
    deleted.extend(report.layers);
    Ok(PruneReport {
        untagged,
        deleted,
        reclaimed: report.reclaimed,
    })
}

// ---- images from containers -----------------------------------------------

/// What `commit` is asked for, beside the container and the new name.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    pub message: Option<String>,
    pub author: Option<String>,
    /// `--change`: Dockerfile lines applied to the image's config.
    pub changes: Vec<String>,
    /// Freeze a running container for the copy (docker's default).
    pub pause: bool,
}

/// `commit`: the container's writable layer becomes a new image `name` on
/// top of its image (lab 04). Like docker, a running container is paused
/// for the copy unless told not to, so the layer is consistent.
pub fn commit_container(
    engine: &Engine,
    record: &Record,
    name: &str,
    req: &CommitRequest,
) -> Result<Image> {
    check_new_name(name)?;
    let r = engine.containers.reconcile(record.clone())?;
    let layer = engine.layer_container(&r.id)?;
    // --change: lab 06 reads each as a Dockerfile line and applies it to the
    // image's runtime config. Done before pausing: a bad change is an error
    // that leaves the container and the store untouched.
    let config = if req.changes.is_empty() {
        None
    } else {
        Some(changed_config(engine, &layer, &req.changes)?)
    };
    // ANCHOR: commit_pause
    let paused = req.pause && r.state.status == Status::Running;
    if paused {
        container::freeze(engine, &r, true)?;
    }
    let opts = CommitOptions {
        message: req.message.clone(),
        author: req.author.clone(),
        created_by: container::config_of(&r)?
            .argv()
            .join(" ")
            .trim_matches('"')
            .to_string(),
        config,
        // The container's own /etc/hosts, /etc/hostname, /etc/resolv.conf
        // are mount points, not changes: left out, as docker leaves them.
        exclude: container::plan::ETC_FILES
            .iter()
            .map(|f| format!("etc/{f}"))
            .collect(),
    };
    let result = commit(engine, &layer, name, &opts);
    if paused {
        container::freeze(engine, &r, false)?;
    }
    // ANCHOR_END: commit_pause
    let image = result?;
    // dockerd logs a commit as the container's event, naming the image.
    let id = image.config_digest.clone();
    let reference = if name.is_empty() {
        String::new()
    } else {
        image.name.clone()
    };
    crate::events::container(
        engine,
        &r,
        "commit",
        &[
            ("comment", req.message.clone().unwrap_or_default()),
            ("imageID", id.clone()),
            ("imageRef", reference.clone()),
        ],
    );
    if !reference.is_empty() {
        crate::events::image(engine, &id, &reference, "tag");
    }
    Ok(image)
}

/// `diff`: what the container changed, against its image's layers.
///
/// The mount points of the container's own `/etc/hostname`, `/etc/hosts`
/// and `/etc/resolv.conf` are not changes the container made: docker keeps
/// them in an "init" layer under the container's, which `docker diff` does
/// not show, and so does this (with the `/etc` they may have made).
pub fn container_changes(engine: &Engine, id: &str) -> Result<Vec<Change>> {
    let layer = engine.layer_container(id)?;
    let lowers = engine.images.lower_dirs(&layer)?;
    Ok(without_etc_mount_points(changes(&layer.upper(), &lowers)?))
}

/// [`container_changes`]' filter: drop the `/etc` files' mount points, and
/// `/etc` itself when nothing else below it changed.
fn without_etc_mount_points(changes: Vec<Change>) -> Vec<Change> {
    let mount_point = |p: &str| {
        container::plan::ETC_FILES
            .iter()
            .any(|f| p.strip_prefix("/etc/") == Some(*f))
    };
    let mut kept: Vec<Change> = changes
        .into_iter()
        .filter(|c| !mount_point(&c.path))
        .collect();
    let etc_touched = kept.iter().any(|c| c.path.starts_with("/etc/"));
    if !etc_touched {
        kept.retain(|c| c.path != "/etc" || c.kind == 'D');
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::HistoryBuilder;

    fn step(by: &str, empty: bool) -> oci_spec::image::History {
        HistoryBuilder::default()
            .created_by(by)
            .empty_layer(empty)
            .build()
            .unwrap()
    }

    #[test]
    fn history_pairs_layers_with_the_steps_that_made_them() {
        let steps = [
            step("ADD rootfs /", false),
            step("ENV A=1", true),
            step("RUN make", false),
        ];
        let entries = history_entries(&steps, vec![1000, 20]);
        let shown: Vec<(&str, u64)> = entries
            .iter()
            .map(|e| (e.created_by.as_str(), e.size))
            .collect();
        assert_eq!(
            shown,
            [("RUN make", 20), ("ENV A=1", 0), ("ADD rootfs /", 1000)],
            "newest first, ENV made no layer"
        );
    }

    #[test]
    fn the_etc_mount_points_are_not_changes() {
        let c = |kind, path: &str| Change {
            kind,
            path: path.into(),
        };
        let only_mounts = vec![c('C', "/etc"), c('A', "/etc/hostname"), c('A', "/f")];
        assert_eq!(without_etc_mount_points(only_mounts), vec![c('A', "/f")]);
        let more = vec![c('C', "/etc"), c('A', "/etc/hosts"), c('C', "/etc/passwd")];
        assert_eq!(
            without_etc_mount_points(more),
            vec![c('C', "/etc"), c('C', "/etc/passwd")]
        );
    }

    #[test]
    fn an_empty_store_lists_nothing_and_prunes_nothing() {
        let root = tempfile::tempdir().unwrap();
        let engine = Engine::for_tests(root.path());
        assert!(list(&engine).unwrap().is_empty());
        assert_eq!(prune(&engine, true).unwrap(), PruneReport::default());
        assert!(inspect(&engine, "busybox").is_err());
        assert!(Remover::new(&engine)
            .unwrap()
            .untag("busybox", false)
            .is_err());
    }
}
