//! The image store: an OCI image layout, plus one unpacked directory per layer.
//!
//! ```text
//! STORE/
//! ├── oci-layout                 {"imageLayoutVersion":"1.0.0"}
//! ├── index.json                 one manifest descriptor per image name, annotated
//! │                              org.opencontainers.image.ref.name = "latest"
//! │                              io.dockyard.image.name           = "busybox:latest"
//! ├── blobs/sha256/<hex>         manifests, configs, layers: named by their digest
//! ├── layers/<chain-id hex>/     one per chain ID, shared by every image that has it
//! │   ├── diff/                  the layer unpacked for overlayfs (whiteouts as 0/0 devices)
//! │   ├── diff_id, parent        what it is, and the chain ID below it
//! │   └── link                   its short name in l/
//! ├── build-cache/<key>.json      lab 06's build cache: step -> manifest (kept by gc
//! │                              while the layers it needs are kept)
//! ├── l/<short> -> ../layers/<chain-id hex>/diff   short names for the mount options
//! ├── containers/<id>/           upper/, work/, merged/, container.json
//! ├── reserve                    space kept for removals on a full disk (see keep_reserve)
//! ├── released                   what rmi untagged while a container used it (see gc)
//! ├── downloads/<hex>            a blob download an interrupted pull left, resumed by the next
//! └── tmp/                       work in progress; never read, cleaned on open
//! ```
//!
//! The layout is what `skopeo copy ... oci:STORE` writes too, so the OCI tools
//! can read the store (`layers/`, `l/`, `containers/`, `released`, `downloads/` and `tmp/` are ours;
//! the spec allows extra files).
//!
//! **Nothing half-done is ever visible.** Every blob is written to `tmp/`,
//! hashed while written, and renamed into `blobs/` only if its digest is the
//! one expected. Every layer is extracted into `tmp/`, and renamed into
//! `layers/` only when complete and when both its digest and its diff_id match.
//! A download is appended to `downloads/<hex>` (kept across attempts, so
//! that a pull can resume it) and enters `blobs/` the same way: hashed whole,
//! renamed on a match. `index.json` is replaced by rename too. `rename(2)` is atomic: a kill at any
//! point leaves either the old state or the new one, plus garbage in `tmp/`,
//! which the next [`Store::open`] removes (entries whose process is gone).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::{
    Descriptor, DescriptorBuilder, Digest, ImageConfiguration, ImageIndex, ImageIndexBuilder,
    ImageManifest, ImageManifestBuilder, MediaType, OciLayoutBuilder, Os, PlatformBuilder,
};

use crate::digest::{canonical_json, digest_hex, sha256_digest, HashingReader};
use crate::extract::{apply_layer_shifted, IdShift, Resolver, Whiteouts};

/// The space kept back for removals on a full disk: see [`Store::keep_reserve`].
pub const RESERVE: &str = "reserve";
/// How much: enough for `index.json` and a few records.
pub const RESERVE_BYTES: i64 = 1 << 20;

/// The annotation the OCI layout tools (skopeo, umoci) look up: the tag.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Dockyard's annotation: the full image name, `busybox:latest`.
pub const FULL_NAME: &str = "io.dockyard.image.name";

/// A blob being downloaded, locked by this process: see [`Store::partial`].
pub struct Partial {
    file: Flock<File>,
    path: PathBuf,
    digest: String,
}

impl Partial {
    /// How many bytes earlier attempts left.
    pub fn len(&self) -> Result<u64> {
        Ok(self
            .file
            .metadata()
            .with_context(|| format!("reading {}", self.path.display()))?
            .len())
    }

    /// Whether it is empty (a fresh download).
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Throws away what earlier attempts left: the download starts over.
    pub fn restart(&mut self) -> Result<()> {
        self.file
            .set_len(0)
            .with_context(|| format!("truncating {}", self.path.display()))
    }

    /// Appends `input` to the file. On an error (a dropped connection), what
    /// arrived stays for the next attempt. Returns the bytes appended.
    pub fn append(&mut self, mut input: impl Read) -> Result<u64> {
        std::io::copy(&mut input, &mut *self.file)
            .with_context(|| format!("writing {}", self.path.display()))
    }

    /// Hashes the whole file and, if it is the blob that was asked for,
    /// renames it into `blobs/`. If not, it is deleted, so that the next
    /// pull starts over rather than resuming bad bytes.
    pub fn commit(self, store: &Store) -> Result<()> {
        self.file.sync_all().context("syncing a download")?;
        let (mut reader, hash) = HashingReader::new(
            File::open(&self.path).with_context(|| format!("reading {}", self.path.display()))?,
        );
        std::io::copy(&mut reader, &mut std::io::sink())
            .with_context(|| format!("reading {}", self.path.display()))?;
        let digest = hash.digest();
        if digest != self.digest {
            let _ = fs::remove_file(&self.path);
            bail!(
                "blob {} is corrupted: its content hashes to {digest} \
                 (refusing it; re-fetch the image)",
                self.digest
            );
        }
        let dest = store.blob_path(&digest)?;
        fs::rename(&self.path, &dest)
            .with_context(|| format!("renaming into {}", dest.display()))?;
        Ok(())
    }
}

/// An image store rooted at a directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// Owners of unpacked layers moved into a user namespace's range
    /// (`--userns-remap`); `None`: as the layers say.
    id_shift: Option<IdShift>,
}

/// One image: its name, manifest and config, as stored.
#[derive(Debug, Clone)]
pub struct Image {
    /// `name:tag`.
    pub name: String,
    pub manifest_digest: String,
    pub manifest: ImageManifest,
    /// The config digest: Docker's image ID.
    pub config_digest: String,
    pub config: ImageConfiguration,
}

impl Image {
    /// `rootfs.diff_ids`, bottom layer first.
    pub fn diff_ids(&self) -> Vec<String> {
        self.config.rootfs().diff_ids().to_vec()
    }

    /// The chain IDs of the image's layers, bottom first.
    pub fn chain_ids(&self) -> Vec<String> {
        crate::digest::chain_ids(&self.diff_ids())
    }

    /// Docker's short image ID: 12 hex digits of the config digest.
    pub fn short_id(&self) -> &str {
        let hex = self.config_digest.trim_start_matches("sha256:");
        &hex[..12.min(hex.len())]
    }
}

/// One unpacked layer in `layers/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub chain_id: String,
    pub diff_id: String,
    /// The chain ID of the layer below, if any.
    pub parent: Option<String>,
    /// `layers/<hex>/diff`: the directory overlayfs uses as a lowerdir.
    pub diff: PathBuf,
    /// `l/<short>`: the same directory by a short name.
    pub link: PathBuf,
}

/// `busybox` means `busybox:latest`, as in docker, and so do
/// `docker.io/library/busybox` and `library/busybox:latest`: a name that
/// parses as a [reference](crate::reference) is stored in its familiar form.
pub fn normalize_name(name: &str) -> String {
    if let Ok(r) = crate::reference::Reference::parse(name) {
        return r.familiar();
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

fn tag_of(name: &str) -> &str {
    let last = name.rsplit('/').next().unwrap_or(name);
    last.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest")
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Removes a path on drop unless disarmed: staging never outlives a failure.
pub(crate) struct RemoveOnDrop(pub Option<PathBuf>);

impl RemoveOnDrop {
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            if p.is_dir() {
                let _ = fs::remove_dir_all(&p);
            } else {
                let _ = fs::remove_file(&p);
            }
        }
    }
}

impl Store {
    /// Opens the store at `root`, creating an empty OCI layout if needed, and
    /// removes what killed processes left in `tmp/`.
    pub fn open(root: impl AsRef<Path>) -> Result<Store> {
        Store::open_shifted(root, None)
    }

    /// [`Store::open`] for a store whose layers are unpacked with their
    /// owners moved by `shift`, and whose containers' upper dirs belong to
    /// the shifted root (see [`IdShift`]). One store must always be opened
    /// with the same shift: its layers on disk already carry it.
    pub fn open_shifted(root: impl AsRef<Path>, id_shift: Option<IdShift>) -> Result<Store> {
        let root = root.as_ref();
        for d in ["blobs/sha256", "layers", "l", "containers", "tmp"] {
            let p = root.join(d);
            fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        }
        let root = root
            .canonicalize()
            .with_context(|| format!("resolving store {}", root.display()))?;
        let store = Store { root, id_shift };
        store.secure_dirs()?;
        if !store.root.join("oci-layout").exists() {
            let layout = OciLayoutBuilder::default()
                .image_layout_version("1.0.0")
                .build()
                .context("building oci-layout")?;
            store.write_atomic("oci-layout", &canonical_json(&layout, "oci-layout")?)?;
        }
        if !store.root.join("index.json").exists() {
            let index = ImageIndexBuilder::default()
                .schema_version(2u32)
                .media_type(MediaType::ImageIndex)
                .manifests(Vec::<Descriptor>::new())
                .build()
                .context("building index.json")?;
            store.write_atomic("index.json", &canonical_json(&index, "image index")?)?;
        }
        store.clean_tmp()?;
        Ok(store)
    }

    // ANCHOR: secure_dirs
    /// Close the directories that hold runnable files to everyone but root.
    ///
    /// **Why (CVE-2021-41091).** `layers/*/diff` holds what images ship and
    /// `containers/*/upper` and `merged` what containers write, setuid-root
    /// binaries included. If an unprivileged user of the host can walk to
    /// one, executing it gives them euid 0 on the host: the kernel honours
    /// the setuid bit wherever the file is reached from. Docker 20.10.9 made
    /// its data root 0711 and these directories 0710/0701; Dockyard does the
    /// same, on every open, so that a data root made by an older version is
    /// fixed too:
    ///
    /// - `layers/`, `l/`, `containers/`: 0710. No one but the owner (root)
    ///   can list or enter them; the group can enter, and it is root's, or
    ///   with `--userns-remap` the remapped root's, which must reach a
    ///   container's `merged/` to pivot into it.
    /// - `tmp/`: 0700. Layers are unpacked there, setuid bits and all.
    ///
    /// The data root itself stays traversable (the engine sets it), as
    /// docker's: the closed doors are one level down.
    fn secure_dirs(&self) -> Result<()> {
        let group = self.id_shift.map(|s| nix::unistd::Gid::from_raw(s.gid));
        for (d, mode) in [
            ("layers", 0o710),
            ("l", 0o710),
            ("containers", 0o710),
            ("tmp", 0o700),
        ] {
            let p = self.root.join(d);
            if let Some(g) = group {
                nix::unistd::chown(&p, None, Some(g))
                    .with_context(|| format!("chown {} to the remapped group", p.display()))?;
            }
            crate::rwlayer::set_mode(&p, mode)?;
        }
        Ok(())
    }
    // ANCHOR_END: secure_dirs

    // ANCHOR: reserve
    /// Make sure the space reserve (`STORE/reserve`) is there: a file of
    /// [`RESERVE_BYTES`] allocated (fallocate(2), no data written) while
    /// there is room, so that there is room again when the disk is full.
    /// Best effort: on a full disk it is simply not made yet.
    ///
    /// **Why.** Removing things must work on a full disk, and even removing
    /// writes a little: `rmi` rewrites `index.json`, `rm -f` records that the
    /// container was stopped. Those writes need new blocks before anything
    /// is freed. [`Store::release_reserve`] hands the reserve's blocks back
    /// first, as a filesystem's reserved blocks are kept for root.
    pub fn keep_reserve(&self) {
        let path = self.root.join(RESERVE);
        if path.exists() {
            return;
        }
        let tmp = self.staging("reserve");
        let guard = RemoveOnDrop(Some(tmp.clone()));
        let made = File::create(&tmp).and_then(|f| {
            nix::fcntl::fallocate(&f, nix::fcntl::FallocateFlags::empty(), 0, RESERVE_BYTES)
                .map_err(std::io::Error::from)
        });
        if made.is_ok() && fs::rename(&tmp, &path).is_ok() {
            guard.disarm();
        }
    }

    /// Give the reserve's space back, before a removal that must write.
    pub fn release_reserve(&self) {
        let _ = fs::remove_file(self.root.join(RESERVE));
    }
    // ANCHOR_END: reserve

    /// How this store shifts owners (`None`: it does not).
    pub fn id_shift(&self) -> Option<IdShift> {
        self.id_shift
    }

    /// The store's directory (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Removes staging entries (`<what>-<pid>-<n>`) whose process is gone.
    fn clean_tmp(&self) -> Result<()> {
        let tmp = self.root.join("tmp");
        for e in fs::read_dir(&tmp).with_context(|| format!("listing {}", tmp.display()))? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name.split('-').nth(1).and_then(|p| p.parse::<u32>().ok());
            let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
            if !alive {
                let p = e.path();
                let r = if e.file_type()?.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
                r.with_context(|| format!("removing stale {}", p.display()))?;
            }
        }
        Ok(())
    }

    /// A fresh name in `tmp/` for this process.
    pub(crate) fn staging(&self, what: &str) -> PathBuf {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        self.root
            .join("tmp")
            .join(format!("{what}-{}-{n}", std::process::id()))
    }

    /// Writes a file at `rel` by writing a temporary file and renaming it.
    pub(crate) fn write_atomic(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        self.write_atomic_with(rel, bytes, true)
    }

    /// [`Store::write_atomic`], flushed to disk before the rename only if
    /// `durable`.
    pub(crate) fn write_atomic_with(&self, rel: &str, bytes: &[u8], durable: bool) -> Result<()> {
        let tmp = self.staging("file");
        let guard = RemoveOnDrop(Some(tmp.clone()));
        let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes)
            .and_then(|()| if durable { f.sync_all() } else { Ok(()) })
            .with_context(|| format!("writing {}", tmp.display()))?;
        let dest = self.root.join(rel);
        fs::rename(&tmp, &dest).with_context(|| format!("renaming into {}", dest.display()))?;
        guard.disarm();
        Ok(())
    }

    // ---- blobs ------------------------------------------------------------

    /// Where the blob with this digest lives (whether or not it exists).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.root.join("blobs/sha256").join(digest_hex(digest)?))
    }

    /// Whether the store has this blob.
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).map(|p| p.exists()).unwrap_or(false)
    }

    // ANCHOR: put_blob
    /// Streams a blob into the store, hashing it as it is written. With
    /// `expected`, a blob whose digest differs is refused and never appears
    /// in `blobs/`. Returns the digest and size.
    pub fn put_blob_from(&self, input: impl Read, expected: Option<&str>) -> Result<(String, u64)> {
        let tmp = self.staging("blob");
        let guard = RemoveOnDrop(Some(tmp.clone()));
        let (mut reader, hash) = HashingReader::new(input);
        let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        std::io::copy(&mut reader, &mut f).context("writing a blob")?;
        f.sync_all().context("syncing a blob")?;
        let digest = hash.digest();
        if let Some(expected) = expected {
            if digest != expected {
                bail!(
                    "blob {expected} is corrupted: its content hashes to {digest} \
                     (refusing it; re-fetch the image)"
                );
            }
        }
        let dest = self.blob_path(&digest)?;
        fs::rename(&tmp, &dest).with_context(|| format!("renaming into {}", dest.display()))?;
        guard.disarm();
        Ok((digest, hash.len()))
    }
    // ANCHOR_END: put_blob

    /// Stores bytes as a blob.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<(String, u64)> {
        let digest = sha256_digest(bytes);
        if self.has_blob(&digest) {
            // Reused: it is new again, as far as gc's grace period goes (an
            // old unreferenced blob about to be tagged must not be swept).
            let path = self.blob_path(&digest)?;
            File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_modified(std::time::SystemTime::now()))
                .with_context(|| format!("touching {}", path.display()))?;
            return Ok((digest, bytes.len() as u64));
        }
        self.put_blob_from(bytes, None)
    }

    /// Reads a blob, checking that its content still matches its name.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        let bytes = fs::read(&path).with_context(|| format!("reading blob {digest}"))?;
        let actual = sha256_digest(&bytes);
        if actual != digest {
            bail!("blob {digest} in the store is corrupted: its content hashes to {actual}");
        }
        Ok(bytes)
    }

    fn put_json<T: serde::Serialize>(
        &self,
        media_type: MediaType,
        value: &T,
    ) -> Result<Descriptor> {
        let bytes = canonical_json(value, media_type.as_ref())?;
        let (digest, size) = self.put_blob(&bytes)?;
        Ok(Descriptor::new(
            media_type,
            size,
            Digest::try_from(digest.as_str())?,
        ))
    }

    // ---- resumable downloads ----------------------------------------------

    // ANCHOR: partial
    /// The partial download of `digest`, `STORE/downloads/<hex>`, created
    /// empty if there is none, and locked (`flock`) for this process: an
    /// interrupted pull leaves it there, and the next pull appends the rest
    /// (an HTTP `Range` request) instead of starting over. `Ok(None)` when
    /// another process holds it: that one is downloading the same blob.
    ///
    /// It is not a blob: nothing reads `downloads/` but the next download,
    /// and [`Partial::commit`] moves it into `blobs/` only after hashing the
    /// whole file, the part from the earlier attempt included.
    pub fn partial(&self, digest: &str) -> Result<Option<Partial>> {
        use std::os::unix::fs::MetadataExt;
        let dir = self.root.join("downloads");
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(digest_hex(digest)?);
        loop {
            let file = fs::OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(f) => f,
                Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
                Err((_, e)) => {
                    return Err(e).with_context(|| format!("locking {}", path.display()))
                }
            };
            // Between open and flock, the holder may have committed the file
            // (renamed it into blobs/): then this fd is the blob itself, which
            // must never be appended to. Lock what the path names now.
            let ours = file.metadata()?;
            match fs::metadata(&path) {
                Ok(m) if m.ino() == ours.ino() && m.dev() == ours.dev() => {
                    return Ok(Some(Partial {
                        file,
                        path,
                        digest: digest.to_string(),
                    }))
                }
                _ => continue,
            }
        }
    }
    // ANCHOR_END: partial

    // ---- index.json -------------------------------------------------------

    /// index.json as it is now.
    pub fn index(&self) -> Result<ImageIndex> {
        let path = self.root.join("index.json");
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
    }

    /// Runs `f` on index.json under an exclusive lock and writes the result
    /// back atomically: two processes tagging at once do not lose a tag.
    fn update_index(&self, f: impl FnOnce(&mut Vec<Descriptor>)) -> Result<()> {
        let _lock = self.lock()?;
        let index = self.index()?;
        let mut manifests = index.manifests().clone();
        f(&mut manifests);
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(manifests)
            .build()
            .context("building index.json")?;
        self.write_atomic("index.json", &canonical_json(&index, "image index")?)
    }

    /// The store's lock (`STORE/lock`, `flock`ed exclusively until the
    /// returned value is dropped): tagging, untagging, creating a container
    /// and [`Store::gc`] take it, so gc never sweeps between a tag being
    /// read and being written. Not reentrant: take it once.
    pub(crate) fn lock(&self) -> Result<Flock<File>> {
        let lock_path = self.root.join("lock");
        let lock =
            File::create(&lock_path).with_context(|| format!("opening {}", lock_path.display()))?;
        Flock::lock(lock, FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .context("locking the store")
    }

    /// The image names in the store and their manifest descriptors.
    pub fn names(&self) -> Result<Vec<(String, Descriptor)>> {
        Ok(self
            .index()?
            .manifests()
            .iter()
            .filter_map(|d| {
                let a = d.annotations().as_ref()?;
                let name = a.get(FULL_NAME).or_else(|| a.get(REF_NAME))?;
                Some((normalize_name(name), d.clone()))
            })
            .collect())
    }

    /// Points `name` at a manifest, replacing what it pointed at.
    pub fn tag(&self, name: &str, manifest: &Descriptor) -> Result<()> {
        let name = normalize_name(name);
        let annotations = HashMap::from([
            (REF_NAME.to_string(), tag_of(&name).to_string()),
            (FULL_NAME.to_string(), name.clone()),
        ]);
        let desc = index_entry(manifest, Some(annotations))?;
        self.update_index(|m| {
            m.retain(|d| {
                d.annotations()
                    .as_ref()
                    .and_then(|a| a.get(FULL_NAME))
                    .is_none_or(|n| *n != name)
            });
            // A name given to an image that had none: it is not dangling
            // any more.
            m.retain(|d| !(is_unnamed(d) && d.digest() == manifest.digest()));
            m.push(desc);
        })
    }

    /// The images without a name (docker's dangling images, `<none>:<none>`
    /// in `images`): index.json entries with no name annotation, as an OCI
    /// layout keeps a manifest nobody tagged. A `load` of an archive saved
    /// by ID makes one ([`Store::register_unnamed`]); naming it with
    /// [`Store::tag`] takes the entry away. Returns their manifest
    /// descriptors, each manifest once, and none that also has a name.
    pub fn unnamed(&self) -> Result<Vec<Descriptor>> {
        let named: Vec<Descriptor> = self.names()?.into_iter().map(|(_, d)| d).collect();
        let mut out: Vec<Descriptor> = Vec::new();
        for d in self.index()?.manifests() {
            let known = named.iter().chain(&out).any(|n| n.digest() == d.digest());
            if is_unnamed(d) && !known {
                out.push(d.clone());
            }
        }
        Ok(out)
    }

    /// Unpacks the layers of a manifest whose blobs are in the store and
    /// keeps it without a name (see [`Store::unnamed`]), unless the
    /// manifest has an entry already, named or not.
    pub fn register_unnamed(&self, manifest: &Descriptor) -> Result<Image> {
        let image = self.image_from_manifest("", manifest.digest().as_ref())?;
        self.unpack(&image)?;
        let desc = index_entry(manifest, None)?;
        self.update_index(|m| {
            if !m.iter().any(|d| d.digest() == desc.digest()) {
                m.push(desc);
            }
        })?;
        Ok(image)
    }

    /// Removes the nameless entry of a manifest (`rmi ID`, `image prune`
    /// of a dangling image); [`Store::gc`] then deletes what it held.
    pub fn remove_unnamed(&self, manifest_digest: &str) -> Result<()> {
        self.release_reserve();
        self.update_index(|m| {
            m.retain(|d| !(is_unnamed(d) && d.digest().to_string() == manifest_digest))
        })
    }

    /// Removes a name (not its blobs or layers: [`Store::gc`] does).
    pub fn untag(&self, name: &str) -> Result<()> {
        // A removal: it may use the space kept for it (see keep_reserve).
        self.release_reserve();
        let name = normalize_name(name);
        let known = self.names()?.iter().any(|(n, _)| *n == name);
        if !known {
            bail!("no such image: {name}");
        }
        self.update_index(|m| {
            m.retain(|d| {
                d.annotations()
                    .as_ref()
                    .and_then(|a| a.get(FULL_NAME))
                    .is_none_or(|n| *n != name)
            })
        })
    }

    /// The image called `name` (`busybox` means `busybox:latest`).
    pub fn image(&self, name: &str) -> Result<Image> {
        let name = normalize_name(name);
        let Some((_, desc)) = self.names()?.into_iter().find(|(n, _)| *n == name) else {
            bail!("no such image: {name} (load one with `lab04-overlay load`)");
        };
        self.image_from_manifest(&name, desc.digest().as_ref())
    }

    /// The image a manifest describes (named `""` unless a caller names it).
    pub fn image_by_manifest(&self, manifest_digest: &str) -> Result<Image> {
        self.image_from_manifest("", manifest_digest)
    }

    fn image_from_manifest(&self, name: &str, manifest_digest: &str) -> Result<Image> {
        let manifest: ImageManifest = serde_json::from_slice(&self.read_blob(manifest_digest)?)
            .with_context(|| format!("parsing manifest {manifest_digest}"))?;
        let config_digest = manifest.config().digest().to_string();
        let config = parse_config(&self.read_blob(&config_digest)?)
            .with_context(|| format!("parsing image config {config_digest}"))?;
        if config.rootfs().diff_ids().len() != manifest.layers().len() {
            bail!(
                "image {name}: the manifest has {} layers but the config lists {} diff_ids",
                manifest.layers().len(),
                config.rootfs().diff_ids().len()
            );
        }
        Ok(Image {
            name: name.to_string(),
            manifest_digest: manifest_digest.to_string(),
            manifest,
            config_digest,
            config,
        })
    }

    /// Every image in the store: one per name, and the images without a
    /// name (named `""`; see [`Store::unnamed`]).
    pub fn images(&self) -> Result<Vec<Image>> {
        let unnamed = self.unnamed()?.into_iter().map(|d| (String::new(), d));
        self.names()?
            .into_iter()
            .chain(unnamed)
            .map(|(n, d)| self.image_from_manifest(&n, d.digest().as_ref()))
            .collect()
    }

    /// Makes an image from a config and layer blobs already in the store:
    /// writes the config and manifest blobs, unpacks the layers, tags it.
    pub fn add_image(
        &self,
        name: &str,
        config: &ImageConfiguration,
        layers: Vec<Descriptor>,
    ) -> Result<Image> {
        self.add_image_json(name, config, layers)
    }

    fn add_image_json<T: serde::Serialize>(
        &self,
        name: &str,
        config: &T,
        layers: Vec<Descriptor>,
    ) -> Result<Image> {
        let config_desc = self.put_json(MediaType::ImageConfig, config)?;
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config_desc)
            .layers(layers)
            .build()
            .context("building the image manifest")?;
        let manifest_desc = self.put_json(MediaType::ImageManifest, &manifest)?;
        self.register(name, &manifest_desc)
    }

    /// [`Store::add_image`] with docker's top-level `comment` in the config
    /// (what `docker commit -m` writes there, and `image inspect` shows as
    /// `Comment`): an extension the OCI config type has no field for, so
    /// it is added to the JSON beside the typed fields.
    pub fn add_image_commented(
        &self,
        name: &str,
        config: &ImageConfiguration,
        comment: Option<&str>,
        layers: Vec<Descriptor>,
    ) -> Result<Image> {
        let Some(comment) = comment else {
            return self.add_image(name, config, layers);
        };
        let mut value = serde_json::to_value(config)?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert("comment".into(), comment.into());
        }
        self.add_image_json(name, &value, layers)
    }

    /// Unpacks the layers of a manifest whose blobs are in the store, then
    /// tags it: the name appears only once every layer is in place.
    pub fn register(&self, name: &str, manifest: &Descriptor) -> Result<Image> {
        let image = self.image_from_manifest(&normalize_name(name), manifest.digest().as_ref())?;
        self.unpack(&image)?;
        self.tag(name, manifest)?;
        Ok(image)
    }

    // ---- layers -----------------------------------------------------------

    /// Makes sure every layer of the image is unpacked; returns them bottom first.
    pub fn unpack(&self, image: &Image) -> Result<Vec<Layer>> {
        let mut out: Vec<Layer> = Vec::new();
        for (desc, diff_id) in image.manifest.layers().iter().zip(image.diff_ids()) {
            let parent = out.last().map(|l| l.chain_id.clone());
            out.push(self.unpack_layer(desc, &diff_id, parent.as_deref())?);
        }
        Ok(out)
    }

    /// The layers of an image, which must be unpacked; bottom first.
    pub fn image_layers(&self, image: &Image) -> Result<Vec<Layer>> {
        image
            .chain_ids()
            .iter()
            .map(|c| {
                self.layer(c)?
                    .with_context(|| format!("layer {c} of {} is not unpacked", image.name))
            })
            .collect()
    }

    /// The unpacked layer with this chain ID, if there is one.
    pub fn layer(&self, chain_id: &str) -> Result<Option<Layer>> {
        let dir = self.root.join("layers").join(digest_hex(chain_id)?);
        if !dir.is_dir() {
            return Ok(None);
        }
        let read = |f: &str| {
            fs::read_to_string(dir.join(f))
                .with_context(|| format!("reading {}", dir.join(f).display()))
        };
        let parent = read("parent")?;
        let link = self.root.join("l").join(read("link")?.trim());
        let layer = Layer {
            chain_id: chain_id.to_string(),
            diff_id: read("diff_id")?.trim().to_string(),
            parent: Some(parent.trim().to_string()).filter(|p| !p.is_empty()),
            diff: dir.join("diff"),
            link,
        };
        self.ensure_link(&layer)?;
        Ok(Some(layer))
    }

    /// Every unpacked layer.
    pub fn layers(&self) -> Result<Vec<Layer>> {
        let mut out = Vec::new();
        for e in fs::read_dir(self.root.join("layers"))? {
            let name = e?.file_name().to_string_lossy().into_owned();
            if let Some(l) = self.layer(&format!("sha256:{name}"))? {
                out.push(l);
            }
        }
        out.sort_by(|a, b| a.chain_id.cmp(&b.chain_id));
        Ok(out)
    }

    fn ensure_link(&self, layer: &Layer) -> Result<()> {
        if fs::symlink_metadata(&layer.link).is_ok() {
            return Ok(());
        }
        let target = Path::new("../layers")
            .join(digest_hex(&layer.chain_id)?)
            .join("diff");
        match std::os::unix::fs::symlink(&target, &layer.link) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                Err(e).with_context(|| format!("creating {}", layer.link.display()))
            }
            _ => Ok(()),
        }
    }

    // ANCHOR: unpack_layer
    /// Unpacks one layer blob on top of `parent` (a chain ID), unless a
    /// layer with the same chain ID is already there: then it is shared.
    pub fn unpack_layer(
        &self,
        desc: &Descriptor,
        diff_id: &str,
        parent: Option<&str>,
    ) -> Result<Layer> {
        let chain_id = match parent {
            None => diff_id.to_string(),
            Some(p) => sha256_digest(format!("{p} {diff_id}").as_bytes()),
        };
        if let Some(layer) = self.layer(&chain_id)? {
            return Ok(layer); // shared with every image that has this chain
        }
        let blob = desc.digest().to_string();
        let file = File::open(self.blob_path(&blob)?)
            .with_context(|| format!("opening layer blob {blob}"))?;

        // Extract under a temporary name...
        let staging = self.staging("layer");
        let guard = RemoveOnDrop(Some(staging.clone()));
        fs::create_dir_all(staging.join("diff"))
            .with_context(|| format!("creating {}", staging.display()))?;
        let applied = apply_layer_shifted(
            file,
            &staging.join("diff"),
            Whiteouts::Overlay,
            Resolver::detect(),
            self.id_shift,
        )
        .with_context(|| format!("unpacking layer {blob}"))?;

        // ...check that it is what the manifest and the config promised...
        if applied.digest != blob {
            bail!(
                "layer blob {blob} is corrupted: its content hashes to {}",
                applied.digest
            );
        }
        if applied.diff_id != diff_id {
            bail!(
                "layer {blob} does not match the image config: its diff_id is {}, \
                 the config says {diff_id}",
                applied.diff_id
            );
        }
        let hex = digest_hex(&chain_id)?;
        let short = &hex[..16];
        fs::write(staging.join("diff_id"), diff_id)?;
        fs::write(staging.join("parent"), parent.unwrap_or(""))?;
        fs::write(staging.join("link"), short)?;

        // ...and only then make it visible, in one atomic rename.
        let dest = self.root.join("layers").join(hex);
        match fs::rename(&staging, &dest) {
            Ok(()) => guard.disarm(),
            // Another process unpacked the same layer meanwhile: use theirs.
            Err(_) if dest.is_dir() => drop(guard),
            Err(e) => return Err(e).with_context(|| format!("renaming into {}", dest.display())),
        }
        self.layer(&chain_id)?
            .with_context(|| format!("layer {chain_id} vanished after unpacking"))
    }
    // ANCHOR_END: unpack_layer

    // ---- OCI layouts --------------------------------------------------------

    /// Loads every named image of an OCI image layout directory (what
    /// `skopeo copy ... oci:DIR:TAG` and dockyard-mkbase write). `name`
    /// overrides the names in the layout. Returns the names loaded.
    pub fn load_oci_layout(&self, dir: &Path, name: Option<&str>) -> Result<Vec<String>> {
        let layout = dir.join("oci-layout");
        if !layout.exists() {
            bail!(
                "{} is not an OCI image layout (it has no oci-layout file)",
                dir.display()
            );
        }
        let index: ImageIndex = serde_json::from_slice(
            &fs::read(dir.join("index.json"))
                .with_context(|| format!("reading {}/index.json", dir.display()))?,
        )
        .with_context(|| format!("parsing {}/index.json", dir.display()))?;
        self.load_index(&index, Some(dir), &dir_name(dir), name)
    }

    /// Loads the images an index names. Blobs come from `blobs_from` (an OCI
    /// layout, verified on the way in) or must already be in the store.
    pub(crate) fn load_index(
        &self,
        index: &ImageIndex,
        blobs_from: Option<&Path>,
        default_repo: &str,
        name: Option<&str>,
    ) -> Result<Vec<String>> {
        let copy = |digest: &str| -> Result<()> {
            if self.has_blob(digest) {
                return Ok(());
            }
            let Some(dir) = blobs_from else {
                bail!("blob {digest} is missing from the archive");
            };
            let src = dir.join("blobs/sha256").join(digest_hex(digest)?);
            let f = File::open(&src).with_context(|| format!("opening {}", src.display()))?;
            self.put_blob_from(f, Some(digest)).map(drop)
        };
        let mut loaded = Vec::new();
        for desc in index.manifests() {
            let annotations = desc.annotations().clone().unwrap_or_default();
            let image_name = match (name, annotations.get(FULL_NAME), annotations.get(REF_NAME)) {
                (Some(n), _, _) => normalize_name(n),
                (None, Some(n), _) => normalize_name(n),
                (None, None, Some(r)) if r.contains(':') => normalize_name(r),
                (None, None, Some(r)) => format!("{default_repo}:{r}"),
                (None, None, None) => continue,
            };
            if *desc.media_type() != MediaType::ImageManifest {
                bail!(
                    "{default_repo}: {} is a {}; only image manifests are supported",
                    desc.digest(),
                    desc.media_type()
                );
            }
            copy(desc.digest().as_ref())?;
            let manifest: ImageManifest =
                serde_json::from_slice(&self.read_blob(desc.digest().as_ref())?)?;
            copy(manifest.config().digest().as_ref())?;
            for l in manifest.layers() {
                copy(l.digest().as_ref())?;
            }
            let desc =
                Descriptor::new(MediaType::ImageManifest, desc.size(), desc.digest().clone());
            self.register(&image_name, &desc)?;
            loaded.push(image_name);
        }
        if loaded.is_empty() {
            bail!("{default_repo}: index.json names no image");
        }
        Ok(loaded)
    }
}

/// Parses an image config. The spec makes `history` optional, but oci-spec
/// 0.7 requires it; an absent one is read as empty. The blob itself is never
/// rewritten: its digest is the image ID.
pub fn parse_config(bytes: &[u8]) -> Result<ImageConfiguration> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes)?;
    if let Some(obj) = value.as_object_mut() {
        obj.entry("history")
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    }
    Ok(serde_json::from_value(value)?)
}

fn dir_name(dir: &Path) -> String {
    dir.canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "image".into())
}

/// index.json's entry for `manifest`, for this host's platform, named by
/// `annotations` or, without them, nameless. The manifest's own media
/// type: an OCI manifest, or a Docker schema 2 one as pulled (its bytes,
/// and so its digest, are kept as they came).
fn index_entry(
    manifest: &Descriptor,
    annotations: Option<HashMap<String, String>>,
) -> Result<Descriptor> {
    let platform = PlatformBuilder::default()
        .architecture(oci_spec::image::Arch::from(crate::digest::host_arch()))
        .os(Os::Linux)
        .build()?;
    let desc = DescriptorBuilder::default()
        .media_type(manifest.media_type().clone())
        .digest(manifest.digest().clone())
        .size(manifest.size())
        .platform(platform);
    let desc = match annotations {
        Some(a) => desc.annotations(a),
        None => desc,
    };
    desc.build().context("building the manifest descriptor")
}

/// An index.json entry that names no image (see [`Store::unnamed`]).
fn is_unnamed(d: &Descriptor) -> bool {
    d.annotations()
        .as_ref()
        .is_none_or(|a| !a.contains_key(FULL_NAME) && !a.contains_key(REF_NAME))
}
