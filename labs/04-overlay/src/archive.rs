//! Images in and out of the store as single files, the way docker does it.
//!
//! - `docker import`: a rootfs tarball becomes a one-layer image.
//! - `docker export`: a container's merged filesystem becomes a tarball.
//! - `docker save` / `docker load`: a **docker-archive**, a tar holding
//!   `manifest.json` (`[{"Config": ..., "RepoTags": [...], "Layers": [...]}]`),
//!   `repositories` (`{"busybox": {"latest": "<top layer id>"}}`), the config
//!   as `<hex>.json` and each layer as `<id>/layer.tar`, uncompressed.
//! - an **OCI archive**: the OCI image layout, tarred
//!   (`skopeo copy ... oci-archive:FILE`).
//!
//! Loading never writes an archive's names to disk: every file in it is
//! streamed into the content-addressed blob store, and the archive's paths
//! only serve to find blobs by name. A hostile `../../x` in a docker-archive
//! is just a name nobody asks for.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::image::{
    ConfigBuilder, Descriptor, Digest, HistoryBuilder, ImageConfiguration,
    ImageConfigurationBuilder, ImageIndex, MediaType, Os, RootFsBuilder,
};

use crate::diff::{write_tree_shifted, TreeKind};
use crate::digest::{canonical_json, digest_hex, host_arch, sha256_digest};
use crate::extract::{decompressor, layer_digests, Compression};
use crate::overlay::{mount_overlay, MountGuard};
use crate::rwlayer::RwLayer;
use crate::store::{normalize_name, Image, Store};

/// The time now as RFC 3339, for `created`.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn layer_media_type(store: &Store, digest: &str) -> Result<MediaType> {
    let mut magic = Vec::with_capacity(4);
    File::open(store.blob_path(digest)?)?
        .take(4)
        .read_to_end(&mut magic)?;
    Ok(match Compression::detect(&magic) {
        Compression::Gzip => MediaType::ImageLayerGzip,
        Compression::Zstd => MediaType::ImageLayerZstd,
        Compression::None => MediaType::ImageLayer,
    })
}

/// Stores a layer blob and returns its descriptor and diff_id.
pub fn put_layer(store: &Store, input: impl Read) -> Result<(Descriptor, String)> {
    let (digest, size) = store.put_blob_from(input, None)?;
    let (_, _, diff_id) = layer_digests(File::open(store.blob_path(&digest)?)?)?;
    let desc = Descriptor::new(
        layer_media_type(store, &digest)?,
        size,
        Digest::try_from(digest.as_str())?,
    );
    Ok((desc, diff_id))
}

// ANCHOR: import
/// `docker import`: a rootfs tarball (gzip or not) becomes image `name`,
/// with one layer and an empty config.
pub fn import_tarball(store: &Store, input: impl Read, name: &str) -> Result<Image> {
    let (layer, diff_id) = put_layer(store, input)?;
    let created = now_rfc3339();
    let config = ImageConfigurationBuilder::default()
        .created(created.clone())
        .architecture(oci_spec::image::Arch::from(host_arch()))
        .os(Os::Linux)
        .config(ConfigBuilder::default().build()?)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![diff_id])
                .build()?,
        )
        .history(vec![HistoryBuilder::default()
            .created(created)
            .created_by("lab04-overlay import")
            .comment("Imported from a tarball")
            .build()?])
        .build()
        .context("building the image config")?;
    store.add_image(name, &config, vec![layer])
}
// ANCHOR_END: import

/// `docker commit`: the container's upper dir becomes a new top layer.
pub fn commit(store: &Store, c: &RwLayer, name: &str) -> Result<Image> {
    let by = format!("lab04-overlay commit {}", c.short_id());
    commit_with(
        store,
        c,
        name,
        &CommitOptions {
            created_by: by,
            ..Default::default()
        },
    )
}

/// What `docker commit -m MESSAGE -a AUTHOR` records in the image's history.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    pub message: Option<String>,
    pub author: Option<String>,
    /// The history entry's `created_by`.
    pub created_by: String,
    /// `docker commit --change`: the new image's runtime config (`Cmd`, `Env`...), in place
    /// of the parent image's. `None` keeps the parent's.
    pub config: Option<oci_spec::image::Config>,
    /// Files left out of the new layer, as the layer names them
    /// (`etc/hostname`): mount points the runtime made, not changes the
    /// container made (docker keeps them in an "init" layer below the
    /// container's). Their directory goes too when nothing else in it
    /// changed.
    pub exclude: Vec<String>,
}

/// Copy the tar at `raw` to `out` without the entries named in `exclude`,
/// nor their directories where nothing else below them is left.
fn without<W: Write>(raw: &Path, exclude: &[String], out: W) -> Result<W> {
    let name = |e: &tar::Entry<File>| -> Result<String> {
        Ok(e.path()?
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string())
    };
    let mut names = Vec::new();
    for e in tar::Archive::new(File::open(raw)?).entries()? {
        names.push(name(&e?)?);
    }
    let kept = |n: &str| !exclude.iter().any(|x| x == n);
    // A parent of an excluded file, with nothing kept below it, goes too.
    let empty_parent = |n: &str| {
        exclude.iter().any(|x| x.starts_with(&format!("{n}/")))
            && !names
                .iter()
                .any(|m| m.starts_with(&format!("{n}/")) && kept(m))
    };
    let mut b = tar::Builder::new(out);
    for e in tar::Archive::new(File::open(raw)?).entries()? {
        let mut e = e?;
        let n = name(&e)?;
        if !kept(&n) || empty_parent(&n) {
            continue;
        }
        let mut h = e.header().clone();
        let path = e.path()?.into_owned();
        match e.link_name()?.map(|l| l.into_owned()) {
            Some(l) => b.append_link(&mut h, path, l)?,
            None => b.append_data(&mut h, path, &mut e)?,
        }
    }
    b.into_inner().context("finishing the filtered layer")
}

/// [`commit`], recording a message and an author as Docker does (the
/// author also goes into the config's `author` field).
pub fn commit_with(store: &Store, c: &RwLayer, name: &str, opts: &CommitOptions) -> Result<Image> {
    let parent = store.container_image(c)?;
    let tmp = store.staging("commit");
    let _guard = crate::store::RemoveOnDrop(Some(tmp.clone()));
    let gz = flate2::write::GzEncoder::new(File::create(&tmp)?, flate2::Compression::default());
    if opts.exclude.is_empty() {
        write_tree_shifted(&c.upper(), gz, TreeKind::Upper, store.id_shift())?
    } else {
        let raw = store.staging("commit-raw");
        let _raw_guard = crate::store::RemoveOnDrop(Some(raw.clone()));
        write_tree_shifted(
            &c.upper(),
            File::create(&raw)?,
            TreeKind::Upper,
            store.id_shift(),
        )?;
        without(&raw, &opts.exclude, gz)?
    }
    .finish()
    .context("compressing the new layer")?;
    let (layer, diff_id) = put_layer(store, File::open(&tmp)?)?;
    let created = now_rfc3339();
    let mut config = parent.config.clone();
    if let Some(runtime) = &opts.config {
        config.set_config(Some(runtime.clone()));
    }
    config.set_created(Some(created.clone()));
    let mut diff_ids = config.rootfs().diff_ids().to_vec();
    diff_ids.push(diff_id);
    config.set_rootfs(
        RootFsBuilder::default()
            .typ("layers")
            .diff_ids(diff_ids)
            .build()?,
    );
    let mut history = config.history().clone();
    // The builder is by value: each setter returns it.
    let mut entry = HistoryBuilder::default()
        .created(created)
        .created_by(opts.created_by.clone());
    if let Some(m) = &opts.message {
        entry = entry.comment(m.clone());
    }
    if let Some(a) = &opts.author {
        entry = entry.author(a.clone());
        config.set_author(Some(a.clone()));
    }
    history.push(entry.build()?);
    config.set_history(history);
    let mut layers = parent.manifest.layers().clone();
    layers.push(layer);
    // docker copies the message to the config's top-level `comment` too.
    store.add_image_commented(name, &config, opts.message.as_deref(), layers)
}

// ANCHOR: export
/// `docker export`: the container's merged filesystem as a tar. The overlay
/// is mounted for the walk and unmounted after, even on error.
pub fn export_container<W: Write>(store: &Store, c: &RwLayer, out: W) -> Result<W> {
    let dirs = store.overlay_dirs(c)?;
    mount_overlay(&dirs)?;
    let _mounted = MountGuard(dirs.merged.clone());
    write_tree_shifted(&dirs.merged, out, TreeKind::Plain, store.id_shift())
}
// ANCHOR_END: export

fn append_bytes<W: Write>(b: &mut tar::Builder<W>, path: &str, bytes: &[u8]) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_size(bytes.len() as u64);
    b.append_data(&mut h, path, bytes)
        .with_context(|| format!("writing {path} into the archive"))
}

fn append_file<W: Write>(b: &mut tar::Builder<W>, path: &str, file: &Path) -> Result<()> {
    let mut f = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_size(f.metadata()?.len());
    b.append_data(&mut h, path, &mut f)
        .with_context(|| format!("writing {path} into the archive"))
}

/// The repository part of `name:tag`.
fn repo_of(name: &str) -> &str {
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => name,
    }
}

// ANCHOR: save_docker
/// `docker save`: a docker-archive of one image, under the names in
/// `repo_tags`. Docker records the names the user asked for: `save
/// busybox:1.36` writes that name only (not the image's other tags), and
/// `save <ID>` writes none, `"RepoTags": null` and no `repositories` file
/// (moby's `tarexport`), so that loading it makes an image without a name.
pub fn save_docker<W: Write>(
    store: &Store,
    image: &Image,
    repo_tags: &[String],
    out: W,
) -> Result<W> {
    let mut b = tar::Builder::new(out);
    let config_hex = digest_hex(&image.config_digest)?;
    let config_name = format!("{config_hex}.json");
    append_bytes(
        &mut b,
        &config_name,
        &store.read_blob(&image.config_digest)?,
    )?;
    let mut layer_paths = Vec::new();
    for (desc, diff_id) in image.manifest.layers().iter().zip(image.diff_ids()) {
        // docker-archive layers are uncompressed tars, named by diff_id here.
        let id = digest_hex(&diff_id)?.to_string();
        let tmp = store.staging("save");
        let _guard = crate::store::RemoveOnDrop(Some(tmp.clone()));
        let raw = std::io::BufReader::new(File::open(store.blob_path(desc.digest().as_ref())?)?);
        let (mut src, _) = decompressor(raw)?;
        let mut f = File::create(&tmp)?;
        std::io::copy(&mut src, &mut f)?;
        f.rewind()?;
        let path = format!("{id}/layer.tar");
        append_file(&mut b, &path, &tmp)?;
        append_bytes(&mut b, &format!("{id}/VERSION"), b"1.0")?;
        layer_paths.push(path);
    }
    // Go's encoder writes an empty list of names as `null`.
    let tags = match repo_tags.is_empty() {
        true => serde_json::Value::Null,
        false => serde_json::json!(repo_tags),
    };
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": tags,
        "Layers": layer_paths,
    }]);
    append_bytes(&mut b, "manifest.json", &serde_json::to_vec(&manifest)?)?;
    // The legacy `repositories` file: each name's repository, tag and top
    // layer; written only when there is a name, as docker's.
    if !repo_tags.is_empty() {
        let top = image
            .diff_ids()
            .last()
            .map(|d| d.trim_start_matches("sha256:").to_string())
            .unwrap_or_default();
        let mut repositories = serde_json::Map::new();
        for name in repo_tags {
            let tag = name.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
            let repo = repositories
                .entry(repo_of(name).to_string())
                .or_insert_with(|| serde_json::json!({}));
            repo[tag] = serde_json::json!(top);
        }
        append_bytes(&mut b, "repositories", &serde_json::to_vec(&repositories)?)?;
    }
    b.into_inner().context("finishing the docker-archive")
}
// ANCHOR_END: save_docker

/// An OCI archive of one image: the OCI layout, tarred.
pub fn save_oci<W: Write>(store: &Store, image: &Image, out: W) -> Result<W> {
    let mut b = tar::Builder::new(out);
    append_bytes(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut digests = vec![image.config_digest.clone()];
    digests.extend(
        image
            .manifest
            .layers()
            .iter()
            .map(|l| l.digest().to_string()),
    );
    digests.push(image.manifest_digest.clone());
    for d in &digests {
        let path = format!("blobs/sha256/{}", digest_hex(d)?);
        append_file(&mut b, &path, &store.blob_path(d)?)?;
    }
    let (_, desc) = store
        .names()?
        .into_iter()
        .find(|(n, _)| *n == image.name)
        .with_context(|| format!("no such image: {}", image.name))?;
    let index = oci_spec::image::ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![desc])
        .build()?;
    append_bytes(
        &mut b,
        "index.json",
        &canonical_json(&index, "image index")?,
    )?;
    b.into_inner().context("finishing the OCI archive")
}

// ANCHOR: load
/// `docker load`: a docker-archive or an OCI archive (told apart by their
/// contents), plain or compressed with gzip or zstd. Returns the names loaded.
pub fn load_archive(store: &Store, input: impl Read) -> Result<Vec<String>> {
    let (reader, _) = decompressor(std::io::BufReader::new(input))?;
    let mut archive = tar::Archive::new(reader);
    // Every regular file becomes a blob; names only map to digests.
    let mut by_name: HashMap<String, String> = HashMap::new();
    let mut added: Vec<String> = Vec::new();
    for entry in archive.entries().context("reading the archive")? {
        let entry = entry.context("reading the archive")?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = String::from_utf8_lossy(&entry.path_bytes())
            .trim_start_matches("./")
            .to_string();
        // In an OCI layout a blob's name *is* its digest: check it on the way in.
        let expected = name
            .strip_prefix("blobs/sha256/")
            .map(|hex| format!("sha256:{hex}"));
        let existed = expected.as_deref().is_some_and(|d| store.has_blob(d));
        let mut entry = entry;
        let mut peek = Vec::new();
        let small = entry.header().size().unwrap_or(0) <= 64 * 1024;
        if small {
            entry.read_to_end(&mut peek)?;
        }
        let existed = existed || (small && store.has_blob(&sha256_digest(&peek)));
        let (digest, _) = store
            .put_blob_from(
                if small {
                    Box::new(&peek[..]) as Box<dyn Read>
                } else {
                    Box::new(entry)
                },
                expected.as_deref(),
            )
            .with_context(|| format!("archive entry {name}"))?;
        if !existed {
            added.push(digest.clone());
        }
        by_name.insert(name, digest);
    }
    let json = |name: &str| -> Result<Option<Vec<u8>>> {
        by_name.get(name).map(|d| store.read_blob(d)).transpose()
    };
    let loaded = if let Some(manifest) = json("manifest.json")? {
        load_docker(store, &manifest, &by_name)
    } else if let Some(index) = json("index.json")? {
        let index: ImageIndex = serde_json::from_slice(&index).context("parsing index.json")?;
        store.load_index(&index, None, "loaded", None)
    } else {
        bail!("neither a docker-archive (no manifest.json) nor an OCI archive (no index.json)")
    };
    // The archive's bookkeeping files (manifest.json, repositories, VERSION,
    // index.json...) are not image content: drop the blobs no image uses.
    let loaded = loaded?;
    let mut used = std::collections::HashSet::new();
    for n in &loaded {
        // A name, or the ID of an image loaded without one.
        let image = match n.starts_with("sha256:") {
            true => store
                .images()?
                .into_iter()
                .find(|i| i.config_digest == *n)
                .with_context(|| format!("the image {n} just loaded is not in the store"))?,
            false => store.image(n)?,
        };
        used.insert(image.manifest_digest.clone());
        used.insert(image.config_digest.clone());
        used.extend(
            image
                .manifest
                .layers()
                .iter()
                .map(|l| l.digest().to_string()),
        );
    }
    for d in added.iter().filter(|d| !used.contains(*d)) {
        let _ = std::fs::remove_file(store.blob_path(d)?);
    }
    Ok(loaded)
}
// ANCHOR_END: load

fn load_docker(
    store: &Store,
    manifest: &[u8],
    by_name: &HashMap<String, String>,
) -> Result<Vec<String>> {
    let entries: serde_json::Value =
        serde_json::from_slice(manifest).context("parsing manifest.json")?;
    let Some(entries) = entries.as_array() else {
        bail!("manifest.json is not a list");
    };
    let blob = |name: &str| -> Result<String> {
        by_name
            .get(name.trim_start_matches("./"))
            .cloned()
            .with_context(|| format!("manifest.json names {name}, which is not in the archive"))
    };
    let mut loaded = Vec::new();
    for e in entries {
        let config_digest = blob(e["Config"].as_str().context("manifest.json: no Config")?)?;
        let config: ImageConfiguration = serde_json::from_slice(&store.read_blob(&config_digest)?)
            .context("parsing the image config")?;
        let mut layers = Vec::new();
        for l in e["Layers"].as_array().context("manifest.json: no Layers")? {
            let d = blob(
                l.as_str()
                    .context("manifest.json: a layer is not a string")?,
            )?;
            let size = std::fs::metadata(store.blob_path(&d)?)?.len();
            layers.push(Descriptor::new(
                layer_media_type(store, &d)?,
                size,
                Digest::try_from(d.as_str())?,
            ));
        }
        let names: Vec<String> = e["RepoTags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|v| v.as_str())
                    .map(normalize_name)
                    .collect()
            })
            .unwrap_or_default();
        // The config blob is kept byte for byte: the image ID stays the same.
        let config_desc = Descriptor::new(
            MediaType::ImageConfig,
            std::fs::metadata(store.blob_path(&config_digest)?)?.len(),
            Digest::try_from(config_digest.as_str())?,
        );
        let manifest = oci_spec::image::ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config_desc)
            .layers(layers)
            .build()?;
        let bytes = canonical_json(&manifest, "image manifest")?;
        let (digest, size) = store.put_blob(&bytes)?;
        let desc = Descriptor::new(
            MediaType::ImageManifest,
            size,
            Digest::try_from(digest.as_str())?,
        );
        if config.rootfs().diff_ids().len() != manifest.layers().len() {
            bail!("{config_digest}: the config's diff_ids and manifest.json's layers disagree");
        }
        // No name (`"RepoTags": null`, an archive saved by ID): the image
        // is kept without one, and reported by its ID, as docker's `load`
        // says `Loaded image ID: sha256:...`.
        let Some(first) = names.first().cloned() else {
            store.register_unnamed(&desc)?;
            loaded.push(config_digest);
            continue;
        };
        store.register(&first, &desc)?;
        for n in names.iter().skip(1) {
            store.tag(n, &desc)?;
        }
        loaded.push(first);
        loaded.extend(names.into_iter().skip(1));
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_well_formed() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }

    #[test]
    fn repo_of_keeps_registry_ports() {
        assert_eq!(repo_of("busybox:latest"), "busybox");
        assert_eq!(
            repo_of("localhost:5000/busybox:1"),
            "localhost:5000/busybox"
        );
    }
}
