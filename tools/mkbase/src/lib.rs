//! Building Dockyard's busybox base image, reproducibly, without a network.
//!
//! An OCI image is just files that point at each other by SHA-256 digest
//! (see the image-spec, "Image Layout"):
//!
//! ```text
//! oci/
//! ├── oci-layout            {"imageLayoutVersion":"1.0.0"}
//! ├── index.json            -> manifest digest, tagged "latest"
//! └── blobs/sha256/
//!     ├── <manifest>        -> config digest + layer digests
//!     ├── <config>          architecture, os, Env, Cmd, rootfs.diff_ids
//!     └── <layer>           a gzip-compressed tar of the root filesystem
//! ```
//!
//! Two digests describe a layer, and they are easy to confuse:
//! the **layer digest** is the sha256 of the *compressed* blob (what the
//! manifest points at, what a registry stores), and the **diff_id** is the
//! sha256 of the *uncompressed* tar (what the config lists, what identifies
//! the filesystem content). `docker save` and `skopeo copy oci:...` produce
//! the same structure.
//!
//! Because every name is a hash of the content, the image is reproducible
//! only if every byte is: this tool sorts tar entries by path, sets mtime 0,
//! uid/gid 0 and fixed modes, writes the gzip header with mtime 0 and no file
//! name, and serializes JSON with sorted keys. Build twice, get the same
//! digest. (The compressed bytes also depend on the deflate implementation,
//! i.e. on the `flate2` version in Cargo.lock; the diff_id does not.)
//!
//! Next to `oci/` it writes `rootfs/`, the same layer unpacked, for the labs
//! that `chroot` or `pivot_root` into a plain directory before images exist.
//! The shell equivalent of the whole tool is roughly:
//!
//! ```text
//! mkdir -p rootfs/bin && cp /bin/busybox rootfs/bin/ && for a in $(busybox --list); do ln -s busybox rootfs/bin/$a; done
//! tar --sort=name --mtime=@0 --owner=0 --group=0 -C rootfs -cf layer.tar . && gzip -n layer.tar
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use flate2::{Compression, GzBuilder};
use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, DescriptorBuilder, Digest, HistoryBuilder,
    ImageConfigurationBuilder, ImageIndexBuilder, ImageManifestBuilder, MediaType,
    OciLayoutBuilder, Os, PlatformBuilder, RootFsBuilder,
};
// Content addressing is lab 04's subject; the base image uses the same code.
use lab04_overlay::digest::{canonical_json, host_arch, sha256_digest};

/// The image's name in Dockyard's image store.
pub const IMAGE_NAME: &str = "busybox:latest";
/// The `PATH` every Docker base image sets.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Fixed gzip level: part of what makes the layer bytes reproducible.
const GZIP_LEVEL: u32 = 6;
/// The epoch, used wherever the spec wants a date: no build-machine time.
const EPOCH: &str = "1970-01-01T00:00:00Z";

/// What to build from and where to put it.
#[derive(Debug, Clone)]
pub struct Options {
    /// A statically linked busybox (Debian: `busybox-static`).
    pub busybox: PathBuf,
    /// The statically linked `probe` binary from this workspace.
    pub probe: PathBuf,
    /// Output directory; gets `oci/` and `rootfs/`. Replaced as a whole.
    pub out: PathBuf,
}

/// The digests of what was built, as `sha256:<hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The manifest digest: the image's identity (`docker images --digests`).
    pub manifest_digest: String,
    /// The config digest: Docker's "image ID".
    pub config_digest: String,
    /// The compressed layer's digest (its blob name).
    pub layer_digest: String,
    /// The uncompressed layer's digest (`rootfs.diff_ids[0]`).
    pub diff_id: String,
    /// How many busybox applets got a `/bin/<applet>` symlink.
    pub applets: usize,
}

/// One entry of the layer, before it becomes a tar header.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir { mode: u32 },
    File { mode: u32, data: Vec<u8> },
    Symlink { target: String },
}

/// Builds the image into `opts.out`, replacing what was there only once the
/// new image is complete.
pub fn build(opts: &Options) -> Result<Built> {
    check_busybox(&opts.busybox)?;
    check_probe(&opts.probe)?;
    let applets = list_applets(&opts.busybox)?;
    let tree = layer_tree(opts, &applets)?;
    let layer_tar = tar_bytes(&tree)?;

    // Build next to OUT so the final rename stays on one filesystem.
    let out = &opts.out;
    let file_name = out
        .file_name()
        .with_context(|| format!("--out {} has no final path component", out.display()))?
        .to_string_lossy()
        .into_owned();
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent)
        .with_context(|| format!("creating directory {}", parent.display()))?;
    let staging = parent.join(format!("{file_name}.tmp-{}", std::process::id()));
    let guard = RemoveOnDrop(Some(staging.clone()));
    if staging.exists() {
        fs::remove_dir_all(&staging)
            .with_context(|| format!("removing stale {}", staging.display()))?;
    }

    let mut built = write_oci_layout(&staging.join("oci"), &layer_tar)?;
    built.applets = applets.len();
    unpack_rootfs(&layer_tar, &staging.join("rootfs"))?;

    // Swap: move the old image aside, move the new one in, drop the old one.
    // A crash between the two renames leaves OUT.old-<pid>, never half an OUT.
    let old = parent.join(format!("{file_name}.old-{}", std::process::id()));
    let had_old = out.exists();
    if had_old {
        fs::rename(out, &old)
            .with_context(|| format!("renaming {} to {}", out.display(), old.display()))?;
    }
    fs::rename(&staging, out)
        .with_context(|| format!("renaming {} to {}", staging.display(), out.display()))?;
    guard.disarm();
    if had_old {
        fs::remove_dir_all(&old)
            .with_context(|| format!("removing the previous image at {}", old.display()))?;
    }
    Ok(built)
}

/// Removes a staging directory unless the build got to the end.
struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = fs::remove_dir_all(path);
        }
    }
}

const BUSYBOX_HINT: &str =
    "install Debian's busybox-static package (apt-get install busybox-static)";
const PROBE_HINT: &str = "build it with: RUSTFLAGS=\"-C target-feature=+crt-static\" \
     cargo build --release -p dockyard-probe --target $(rustc -vV | sed -n 's/^host: //p')";

/// The image has no dynamic loader or libc, so busybox must be static.
fn check_busybox(path: &Path) -> Result<()> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("busybox not found at {}: {BUSYBOX_HINT}", path.display())
        }
        Err(e) => bail!("reading busybox at {}: {e}: {BUSYBOX_HINT}", path.display()),
    };
    match elf_kind(&bytes) {
        ElfKind::Static => Ok(()),
        ElfKind::Dynamic => bail!(
            "{} is a dynamically linked busybox, which cannot run in an image without a libc: {BUSYBOX_HINT}",
            path.display()
        ),
        ElfKind::NotElf => bail!(
            "{} is not a busybox binary (not an ELF file): {BUSYBOX_HINT}",
            path.display()
        ),
    }
}

/// The probe must exist; if it is an ELF file it must be static, because a
/// dynamic one would fail inside the image with a baffling "not found".
fn check_probe(path: &Path) -> Result<()> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("probe not found at {}: {PROBE_HINT}", path.display())
        }
        Err(e) => bail!("reading probe at {}: {e}", path.display()),
    };
    if elf_kind(&bytes) == ElfKind::Dynamic {
        bail!(
            "{} is dynamically linked and would not run inside the image: {PROBE_HINT}",
            path.display()
        );
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum ElfKind {
    Static,
    Dynamic,
    NotElf,
}

/// A program is dynamically linked exactly when it has a `PT_INTERP`
/// program header naming its loader (`/lib64/ld-linux-x86-64.so.2`): that is
/// what `file` and `ldd` look at too. Static-pie binaries have none.
fn elf_kind(bytes: &[u8]) -> ElfKind {
    const PT_INTERP: u32 = 3;
    if bytes.get(..4) != Some(b"\x7fELF".as_slice()) {
        return ElfKind::NotElf;
    }
    let is64 = bytes.get(4) == Some(&2);
    let little = bytes.get(5) == Some(&1);
    let read = |at: usize, len: usize| -> Option<u64> {
        let raw = bytes.get(at..at + len)?;
        let mut value = 0u64;
        for i in 0..len {
            let byte = if little { raw[len - 1 - i] } else { raw[i] };
            value = (value << 8) | u64::from(byte);
        }
        Some(value)
    };
    // e_phoff, e_phentsize, e_phnum live at different offsets in ELF32/64.
    let header = if is64 {
        (read(0x20, 8), read(0x36, 2), read(0x38, 2))
    } else {
        (read(0x1c, 4), read(0x2a, 2), read(0x2c, 2))
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = header else {
        return ElfKind::NotElf;
    };
    for i in 0..phnum {
        let at = usize::try_from(phoff + i * phentsize).unwrap_or(usize::MAX);
        match read(at, 4) {
            Some(p_type) if p_type == u64::from(PT_INTERP) => return ElfKind::Dynamic,
            Some(_) => {}
            None => return ElfKind::NotElf,
        }
    }
    ElfKind::Static
}

/// Runs `busybox --list`: one applet name per line (`sh`, `ls`, ...).
fn list_applets(busybox: &Path) -> Result<Vec<String>> {
    let output = Command::new(busybox)
        .arg("--list")
        .output()
        .with_context(|| format!("running {} --list", busybox.display()))?;
    if !output.status.success() {
        bail!(
            "{} --list failed ({}): {}",
            busybox.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = String::from_utf8(output.stdout)
        .with_context(|| format!("{} --list printed non-UTF-8", busybox.display()))?;
    let mut applets: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && !a.contains('/') && *a != "busybox" && *a != "probe")
        .map(str::to_string)
        .collect();
    applets.sort();
    applets.dedup();
    if !applets.iter().any(|a| a == "sh") {
        bail!(
            "{} --list has no `sh` applet: {BUSYBOX_HINT}",
            busybox.display()
        );
    }
    Ok(applets)
}

/// Every path in the layer, sorted (a BTreeMap sorts a parent before its
/// children, since a path sorts before every path it prefixes).
fn layer_tree(opts: &Options, applets: &[String]) -> Result<BTreeMap<String, Node>> {
    let mut tree = BTreeMap::new();
    // The FHS skeleton. /tmp is world-writable with the sticky bit (1777:
    // anyone may create, only the owner may delete); /root is private.
    for (dir, mode) in [
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("home", 0o755),
        ("proc", 0o555),
        ("root", 0o700),
        ("run", 0o755),
        ("sbin", 0o755),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("var", 0o755),
    ] {
        tree.insert(dir.to_string(), Node::Dir { mode });
    }

    let read = |path: &Path, what: &str| {
        fs::read(path).with_context(|| format!("reading {what} at {}", path.display()))
    };
    tree.insert(
        "bin/busybox".into(),
        Node::File {
            mode: 0o755,
            data: read(&opts.busybox, "busybox")?,
        },
    );
    tree.insert(
        "bin/probe".into(),
        Node::File {
            mode: 0o755,
            data: read(&opts.probe, "probe")?,
        },
    );
    // busybox looks at argv[0] to pick the applet, so `ln -s busybox sh`
    // makes /bin/sh.
    for applet in applets {
        tree.entry(format!("bin/{applet}"))
            .or_insert_with(|| Node::Symlink {
                target: "busybox".into(),
            });
    }

    // Name service files, read by libc (static busybox: by busybox itself)
    // for `id`, `ls -l` and name lookups. No nameserver: there is no network.
    let files: [(&str, &str); 4] = [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        (
            "etc/hosts",
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        ),
        (
            "etc/resolv.conf",
            "# Dockyard base image: no nameserver; containers here have no outside network.\n",
        ),
    ];
    for (path, content) in files {
        tree.insert(
            path.to_string(),
            Node::File {
                mode: 0o644,
                data: content.as_bytes().to_vec(),
            },
        );
    }
    Ok(tree)
}

/// Writes the tree as a tar archive with every varying field pinned.
fn tar_bytes(tree: &BTreeMap<String, Node>) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, node) in tree {
        let mut header = tar::Header::new_ustar();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header
            .set_username("root")
            .and_then(|()| header.set_groupname("root"))
            .context("setting tar user/group names")?;
        let result = match node {
            Node::Dir { mode } => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                header.set_size(0);
                builder.append_data(&mut header, format!("{path}/"), std::io::empty())
            }
            Node::File { mode, data } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, path, data.as_slice())
            }
            Node::Symlink { target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, path, target)
            }
        };
        result.with_context(|| format!("adding {path} to the layer tar"))?;
    }
    builder.into_inner().context("finishing the layer tar")
}

/// gzip with mtime 0, no file name, a fixed level: `gzip -n -6`.
fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::new(GZIP_LEVEL));
    encoder.write_all(data).context("compressing the layer")?;
    encoder.finish().context("compressing the layer")
}

/// Stores `bytes` under blobs/sha256/<hex> and returns its descriptor.
fn write_blob(oci: &Path, media_type: MediaType, bytes: &[u8]) -> Result<Descriptor> {
    let digest = sha256_digest(bytes);
    let hex = digest.trim_start_matches("sha256:");
    let path = oci.join("blobs/sha256").join(hex);
    fs::write(&path, bytes).with_context(|| format!("writing blob {}", path.display()))?;
    let digest =
        Digest::try_from(digest.as_str()).with_context(|| format!("parsing digest {digest}"))?;
    Ok(Descriptor::new(media_type, bytes.len() as u64, digest))
}

/// Writes the OCI image layout: layer, config, manifest, index.json.
fn write_oci_layout(oci: &Path, layer_tar: &[u8]) -> Result<Built> {
    let blobs = oci.join("blobs/sha256");
    fs::create_dir_all(&blobs).with_context(|| format!("creating {}", blobs.display()))?;

    let diff_id = sha256_digest(layer_tar);
    let layer = write_blob(oci, MediaType::ImageLayerGzip, &gzip(layer_tar)?)?;

    let arch = Arch::from(host_arch());
    let config = ImageConfigurationBuilder::default()
        .created(EPOCH)
        .architecture(arch.clone())
        .os(Os::Linux)
        .config(
            ConfigBuilder::default()
                .env(vec![DEFAULT_PATH.to_string()])
                .cmd(vec!["sh".to_string()])
                .build()
                .context("building the image config's config section")?,
        )
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![diff_id.clone()])
                .build()
                .context("building the image config's rootfs section")?,
        )
        .history(vec![HistoryBuilder::default()
            .created(EPOCH)
            .created_by("dockyard-mkbase: busybox applets, /bin/probe, /etc skeleton")
            .comment("built by dockyard-mkbase, reproducibly")
            .build()
            .context("building the image config's history")?])
        .build()
        .context("building the image config")?;
    let config = write_blob(
        oci,
        MediaType::ImageConfig,
        &canonical_json(&config, "image config")?,
    )?;

    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config.clone())
        .layers(vec![layer.clone()])
        .build()
        .context("building the image manifest")?;
    let manifest = write_blob(
        oci,
        MediaType::ImageManifest,
        &canonical_json(&manifest, "image manifest")?,
    )?;

    // index.json names the manifest. "org.opencontainers.image.ref.name"
    // is the tag the OCI layout tools (skopeo, umoci) look up.
    let annotations = HashMap::from([
        (
            "org.opencontainers.image.ref.name".to_string(),
            "latest".to_string(),
        ),
        ("io.dockyard.image.name".to_string(), IMAGE_NAME.to_string()),
    ]);
    let platform = PlatformBuilder::default()
        .architecture(arch)
        .os(Os::Linux)
        .build()
        .context("building the manifest's platform")?;
    let manifest_ref = DescriptorBuilder::default()
        .media_type(MediaType::ImageManifest)
        .digest(manifest.digest().clone())
        .size(manifest.size())
        .platform(platform)
        .annotations(annotations)
        .build()
        .context("building the index's manifest descriptor")?;
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![manifest_ref])
        .build()
        .context("building index.json")?;
    let index_path = oci.join("index.json");
    fs::write(&index_path, canonical_json(&index, "image index")?)
        .with_context(|| format!("writing {}", index_path.display()))?;

    let layout = OciLayoutBuilder::default()
        .image_layout_version("1.0.0")
        .build()
        .context("building oci-layout")?;
    let layout_path = oci.join("oci-layout");
    fs::write(&layout_path, canonical_json(&layout, "oci-layout")?)
        .with_context(|| format!("writing {}", layout_path.display()))?;

    Ok(Built {
        manifest_digest: manifest.digest().to_string(),
        config_digest: config.digest().to_string(),
        layer_digest: layer.digest().to_string(),
        diff_id,
        applets: 0,
    })
}

/// Unpacks the very tar we built, so `rootfs/` and the layer cannot disagree.
fn unpack_rootfs(layer_tar: &[u8], rootfs: &Path) -> Result<()> {
    fs::create_dir_all(rootfs).with_context(|| format!("creating {}", rootfs.display()))?;
    let mut archive = tar::Archive::new(layer_tar);
    // Keep 1777 on /tmp and 0700 on /root exactly, not filtered by umask.
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive
        .unpack(rootfs)
        .with_context(|| format!("unpacking the layer into {}", rootfs.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_kinds() {
        assert_eq!(elf_kind(b"#!/bin/sh\n"), ElfKind::NotElf);
        assert_eq!(elf_kind(b"\x7fELF"), ElfKind::NotElf);
        // The test binary itself is dynamically linked (no crt-static here).
        let me = std::env::current_exe().expect("current_exe");
        let bytes = fs::read(me).expect("read test binary");
        assert_eq!(elf_kind(&bytes), ElfKind::Dynamic);
    }

    #[test]
    fn host_arch_is_goarch() {
        if cfg!(target_arch = "x86_64") {
            assert_eq!(host_arch(), "amd64");
        }
    }
}
