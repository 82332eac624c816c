//! `docker pull`: from a tag down to verified blobs and unpacked layers.
//!
//! ```text
//! GET /v2/<repo>/manifests/<tag>      an index? pick the platform's manifest
//! GET /v2/<repo>/manifests/<digest>   the manifest, hashed against its digest
//! GET /v2/<repo>/blobs/<config>       the config: which diff_ids the layers have
//! GET /v2/<repo>/blobs/<layer> x N    three at a time, each verified, then unpacked
//! ```
//!
//! Only then is the manifest stored and the name pointed at it: a pull that
//! fails or is killed leaves the store as it was, plus whole, verified blobs.

use std::io::Read;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use oci_spec::image::{Descriptor, Digest, ImageIndex, ImageManifest, MediaType};

use super::client::{read_limited, registry_errors, Body, Client};
use super::{
    media_type_of, record_source, short, Event, DOCKER_LIST, DOCKER_MANIFEST, DOCKER_SCHEMA1,
    MANIFEST_LIMIT, OCI_INDEX, OCI_MANIFEST,
};
use crate::digest::{digest_hex, host_arch, sha256_digest};
use crate::reference::Reference;
use crate::store::{parse_config, Image, Store};

/// How many layers download at once (Docker's max-concurrent-downloads).
const CONCURRENT_DOWNLOADS: usize = 3;

/// What a blob `GET` from an offset brought.
enum BlobBody {
    /// 200: the whole blob (its Content-Length, if given).
    Whole(Option<u64>, Box<dyn Read + Send>),
    /// 206: the rest of it, from the offset asked for.
    Rest(Box<dyn Read + Send>),
    /// 416: the offset is past the end.
    Unsatisfiable,
}

impl Client {
    /// Fetches a manifest or index by tag or digest and checks its digest.
    /// Returns (media type, digest, bytes).
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Result<(String, String, Vec<u8>)> {
        let accept = [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST].join(", ");
        let url = self.url(&format!("{repo}/manifests/{reference}"));
        let resp = self.send(
            "GET",
            &url,
            &[("Accept", &accept)],
            Body::Empty,
            &format!("repository:{repo}:pull"),
        )?;
        if resp.status() != 200 {
            let sep = if reference.starts_with("sha256:") {
                '@'
            } else {
                ':'
            };
            let what = format!("manifest for {}/{repo}{sep}{reference}", self.name);
            if resp.status() == 404 {
                let detail = registry_errors(&read_limited(resp, 64 << 10).unwrap_or_default());
                bail!(
                    "{what} not found: {} (404 from registry {}; is the tag or digest right?)",
                    if detail.is_empty() {
                        "manifest unknown"
                    } else {
                        &detail
                    },
                    self.name
                );
            }
            return Err(self.error(resp, &what));
        }
        let header_digest = resp.header("docker-content-digest").map(str::to_string);
        let content_type = resp.content_type().to_string();
        let bytes = read_limited(resp, MANIFEST_LIMIT)
            .with_context(|| format!("reading the manifest of {repo}:{reference}"))?;
        let digest = sha256_digest(&bytes);
        if reference.starts_with("sha256:") && digest != reference {
            bail!(
                "manifest {repo}@{reference} from registry {}: digest mismatch: \
                 its content hashes to {digest} (refusing it)",
                self.name
            );
        }
        if let Some(h) = header_digest.filter(|h| h.starts_with("sha256:")) {
            if h != digest {
                bail!(
                    "manifest {repo}:{reference} from registry {}: digest mismatch: the registry \
                     says {h}, the content hashes to {digest} (refusing it)",
                    self.name
                );
            }
        }
        let media_type = media_type_of(&content_type, &bytes);
        Ok((media_type, digest, bytes))
    }

    /// `GET` a blob as a stream. The caller verifies it (via
    /// [`Store::put_blob_from`]).
    fn get_blob(&self, repo: &str, digest: &str) -> Result<(Option<u64>, Box<dyn Read + Send>)> {
        match self.get_blob_from(repo, digest, 0)? {
            BlobBody::Whole(len, body) => Ok((len, body)),
            BlobBody::Rest(body) => Ok((None, body)),
            BlobBody::Unsatisfiable => bail!("registry {}: unexpected 416", self.name),
        }
    }

    // ANCHOR: get_blob_from
    /// `GET` a blob from byte `offset` on: with `Range: bytes=<offset>-`
    /// when `offset` is not 0. A registry that supports ranges answers 206
    /// and `Content-Range: bytes <offset>-<last>/<size>`; one that does not
    /// answers 200 and the whole blob, which the caller must then take from
    /// the start.
    fn get_blob_from(&self, repo: &str, digest: &str, offset: u64) -> Result<BlobBody> {
        let range = format!("bytes={offset}-");
        let headers: &[(&str, &str)] = if offset > 0 {
            &[("Range", &range)]
        } else {
            &[]
        };
        let resp = self.send(
            "GET",
            &self.url(&format!("{repo}/blobs/{digest}")),
            headers,
            Body::Empty,
            &format!("repository:{repo}:pull"),
        )?;
        match resp.status() {
            200 => {
                let len = resp
                    .header("content-length")
                    .and_then(|l| l.parse::<u64>().ok());
                Ok(BlobBody::Whole(len, Box::new(resp.into_reader())))
            }
            206 if offset > 0 => {
                // Only the range asked for may be appended: anything else
                // would splice the wrong bytes into the download.
                let start = resp
                    .header("content-range")
                    .and_then(|r| r.strip_prefix("bytes "))
                    .and_then(|r| r.split_once('-'))
                    .and_then(|(s, _)| s.trim().parse::<u64>().ok());
                if start != Some(offset) {
                    bail!(
                        "registry {}: asked for blob {digest} from byte {offset}, \
                         it answered Content-Range {:?}",
                        self.name,
                        resp.header("content-range").unwrap_or("")
                    );
                }
                Ok(BlobBody::Rest(Box::new(resp.into_reader())))
            }
            416 if offset > 0 => Ok(BlobBody::Unsatisfiable),
            _ => Err(self.error(resp, &format!("blob {digest} of {}/{repo}", self.name))),
        }
    }
    // ANCHOR_END: get_blob_from
}

/// `linux/amd64`, `linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// This machine: linux and the host's GOARCH.
    pub fn host() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: host_arch().into(),
            variant: None,
        }
    }

    /// Parses `os/arch[/variant]` (`--platform`).
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: parts.get(2).map(|v| v.to_string()),
            }),
            _ => bail!("invalid platform {s:?}: expected os/arch[/variant], e.g. linux/amd64"),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Picks the manifest for `want` from an index; the variant must match only
/// if asked for.
fn select_platform(index: &ImageIndex, want: &Platform) -> Result<Descriptor> {
    let mut available = Vec::new();
    for d in index.manifests() {
        let Some(p) = d.platform() else { continue };
        let os = p.os().to_string();
        let arch = p.architecture().to_string();
        let variant = p.variant().clone();
        available.push(match &variant {
            Some(v) => format!("{os}/{arch}/{v}"),
            None => format!("{os}/{arch}"),
        });
        let variant_ok = want.variant.is_none() || want.variant == variant;
        if os == want.os && arch == want.architecture && variant_ok {
            return Ok(d.clone());
        }
    }
    bail!(
        "no matching manifest for {want} in the manifest list entries (it has: {})",
        if available.is_empty() {
            "no platforms".to_string()
        } else {
            available.join(", ")
        }
    )
}

/// The result of a pull.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The name in the store: `busybox:latest`, `127.0.0.1:5000/app:1`.
    pub name: String,
    /// The digest of what the reference named (an index or a manifest):
    /// what `docker pull` prints as `Digest:`.
    pub digest: String,
    /// The image manifest's digest.
    pub manifest_digest: String,
    /// The name already pointed at this manifest.
    pub up_to_date: bool,
    pub image: Image,
}

/// A reader that reports progress every 256 KiB.
struct Counting<'a, R> {
    inner: R,
    done: u64,
    reported: u64,
    total: u64,
    id: &'a str,
    progress: &'a (dyn Fn(Event) + Sync),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if self.done - self.reported >= 256 << 10 || (n == 0 && self.done != self.reported) {
            self.reported = self.done;
            (self.progress)(Event::Downloading {
                id: self.id.to_string(),
                done: self.done,
                total: self.total,
            });
        }
        Ok(n)
    }
}

/// Layer media types that can be unpacked: tar, tar+gzip and tar+zstd,
/// OCI's and Docker's. Anything else (foreign layers, encrypted layers) is
/// refused before anything is downloaded. The extractor tells the
/// compression by the blob's magic number, not by this type.
fn check_layer_type(desc: &Descriptor) -> Result<()> {
    let mt = desc.media_type().to_string();
    let ok = matches!(
        mt.as_str(),
        "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.diff.tar"
    );
    if !ok {
        bail!(
            "layer {} has media type {mt}, which dockyard cannot unpack \
             (foreign or non-distributable layers are not supported)",
            desc.digest()
        );
    }
    Ok(())
}

/// `docker pull`: resolves the reference to a manifest for `platform`,
/// fetches the config and the layers (in parallel, each verified against
/// its digest as it streams into the store, skipping blobs already there),
/// unpacks them, and only then names the image. A failure or a kill at any
/// point leaves the store as it was plus whole, verified blobs.
pub fn pull(
    store: &Store,
    client: &Client,
    reference: &Reference,
    platform: &Platform,
    progress: &(dyn Fn(Event) + Sync),
) -> Result<Pulled> {
    let repo = reference.path.as_str();
    let (mut media_type, digest, mut bytes) =
        client.get_manifest(repo, reference.manifest_ref())?;
    let mut manifest_digest = digest.clone();
    if media_type == OCI_INDEX || media_type == DOCKER_LIST {
        let index: ImageIndex = serde_json::from_slice(&bytes)
            .with_context(|| format!("parsing the image index {digest} of {reference}"))?;
        let chosen =
            select_platform(&index, platform).with_context(|| format!("pulling {reference}"))?;
        manifest_digest = chosen.digest().to_string();
        (media_type, _, bytes) = client.get_manifest(repo, &manifest_digest)?;
    }
    if DOCKER_SCHEMA1.contains(&media_type.as_str()) {
        bail!(
            "{reference} is a Docker schema 1 manifest, which has been deprecated since 2017 \
             and is not supported: push it again with a current tool"
        );
    }
    if media_type != OCI_MANIFEST && media_type != DOCKER_MANIFEST {
        bail!("{reference}: unsupported manifest media type {media_type}");
    }
    let manifest: ImageManifest = serde_json::from_slice(&bytes)
        .with_context(|| format!("parsing the manifest {manifest_digest} of {reference}"))?;

    // The config: small, and it says which diff_ids the layers must have.
    let config_digest = manifest.config().digest().to_string();
    if !store.has_blob(&config_digest) {
        let (_, body) = client.get_blob(repo, &config_digest)?;
        store
            .put_blob_from(body.take(MANIFEST_LIMIT), Some(&config_digest))
            .with_context(|| format!("pulling the config of {reference} from {}", client.name()))?;
    }
    let config = parse_config(&store.read_blob(&config_digest)?)
        .with_context(|| format!("parsing the image config {config_digest}"))?;
    let diff_ids = config.rootfs().diff_ids().to_vec();
    if diff_ids.len() != manifest.layers().len() {
        bail!(
            "{reference}: the manifest has {} layers but the config lists {} diff_ids",
            manifest.layers().len(),
            diff_ids.len()
        );
    }
    for l in manifest.layers() {
        check_layer_type(l)?;
        digest_hex(l.digest().as_ref())?;
    }
    let chain = crate::digest::chain_ids(&diff_ids);

    // The layers: CONCURRENT_DOWNLOADS threads take the next one from a
    // shared counter. A layer is unpacked as soon as it is verified; the
    // chain IDs are known from the config, so no layer waits for another.
    let layers: Vec<(usize, &Descriptor)> = manifest.layers().iter().enumerate().collect();
    for (_, l) in &layers {
        let id = short(l.digest().as_ref());
        if store.has_blob(l.digest().as_ref()) {
            progress(Event::AlreadyExists { id });
        } else {
            progress(Event::Waiting {
                id,
                total: l.size(),
            });
        }
    }
    let next = Mutex::new(0usize);
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..CONCURRENT_DOWNLOADS.min(layers.len()) {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().expect("lock");
                    if *n >= layers.len() || failure.lock().expect("lock").is_some() {
                        return;
                    }
                    *n += 1;
                    *n - 1
                };
                let (idx, desc) = layers[i];
                let parent = idx.checked_sub(1).map(|p| chain[p].as_str());
                if let Err(e) =
                    pull_layer(store, client, repo, desc, &diff_ids[idx], parent, progress)
                {
                    let mut f = failure.lock().expect("lock");
                    f.get_or_insert(e);
                    return;
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().expect("lock") {
        return Err(e.context(format!("pulling {reference} from {}", client.name())));
    }

    // Last, the manifest itself, then the name: the image appears whole.
    let name = reference.familiar();
    let before = store
        .names()?
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, d)| d.digest().to_string());
    store
        .put_blob_from(&bytes[..], Some(&manifest_digest))
        .with_context(|| format!("storing the manifest of {reference}"))?;
    let desc = Descriptor::new(
        MediaType::from(media_type.as_str()),
        bytes.len() as u64,
        Digest::try_from(manifest_digest.as_str())?,
    );
    let image = store.register(&name, &desc)?;
    let repository = reference.repository();
    record_source(store, &config_digest, &repository)?;
    for l in manifest.layers() {
        record_source(store, l.digest().as_ref(), &repository)?;
    }
    Ok(Pulled {
        up_to_date: before.as_deref() == Some(manifest_digest.as_str()),
        name,
        digest,
        manifest_digest,
        image,
    })
}

// ANCHOR: pull_layer
fn pull_layer(
    store: &Store,
    client: &Client,
    repo: &str,
    desc: &Descriptor,
    diff_id: &str,
    parent: Option<&str>,
    progress: &(dyn Fn(Event) + Sync),
) -> Result<()> {
    let digest = desc.digest().to_string();
    let id = short(&digest);
    let present = store.has_blob(&digest);
    if !present {
        download_blob(store, client, repo, &digest, desc.size(), &id, progress)
            .with_context(|| format!("downloading layer {digest}"))?;
        progress(Event::Downloaded { id: id.clone() });
    }
    store
        .unpack_layer(desc, diff_id, parent)
        .with_context(|| format!("unpacking layer {digest}"))?;
    if !present {
        progress(Event::Extracted { id });
    }
    Ok(())
}
// ANCHOR_END: pull_layer

// ANCHOR: download_blob
/// Downloads a blob of `size` bytes into the store, resuming what an
/// interrupted pull left in `downloads/` (see [`Store::partial`]):
///
/// ```text
/// GET /v2/app/blobs/sha256:...   Range: bytes=1048576-
///   <- 206 Partial Content       Content-Range: bytes 1048576-2097151/2097152
/// ```
///
/// The digest is checked over the whole file, so a resumed blob is verified
/// exactly like a fresh one. A registry without ranges (200) or a partial
/// longer than the blob (416) means starting over.
fn download_blob(
    store: &Store,
    client: &Client,
    repo: &str,
    digest: &str,
    size: u64,
    id: &str,
    progress: &(dyn Fn(Event) + Sync),
) -> Result<()> {
    let counting = |inner, done| Counting {
        inner,
        done,
        reported: done,
        total: size,
        id,
        progress,
    };
    let Some(mut partial) = store.partial(digest)? else {
        // Another process is downloading this blob into downloads/: fetch a
        // private copy through tmp/ rather than wait for it.
        let (_, body) = client.get_blob(repo, digest)?;
        store.put_blob_from(counting(body.take(size), 0), Some(digest))?;
        return Ok(());
    };
    let mut have = partial.len()?;
    if have >= size {
        partial.restart()?;
        have = 0;
    }
    let body = match client.get_blob_from(repo, digest, have)? {
        BlobBody::Rest(body) => body,
        BlobBody::Whole(_, body) => {
            partial.restart()?;
            have = 0;
            body
        }
        BlobBody::Unsatisfiable => {
            partial.restart()?;
            have = 0;
            match client.get_blob_from(repo, digest, 0)? {
                BlobBody::Whole(_, body) | BlobBody::Rest(body) => body,
                BlobBody::Unsatisfiable => bail!("registry {}: unexpected 416", client.name()),
            }
        }
    };
    // Never more than the manifest promised: a registry that sends more
    // cannot fill the disk, and the digest check catches the difference.
    let appended = partial.append(counting(body.take(size - have), have));
    if let Err(e) = appended {
        let got = partial.len().unwrap_or(have);
        return Err(e.context(format!(
            "interrupted after {got} of {size} bytes (the next pull resumes from there)"
        )));
    }
    partial.commit(store)
}
// ANCHOR_END: download_blob

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::mock::mock;
    use std::fs;

    #[test]
    fn platforms_parse_and_select() {
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert!(Platform::parse("linux").is_err());
        let index: ImageIndex = serde_json::from_str(&format!(
            r#"{{"schemaVersion":2,"manifests":[
              {{"mediaType":"{OCI_MANIFEST}","digest":"sha256:{a}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"sha256:{b}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            a = "a".repeat(64),
            b = "b".repeat(64)
        ))
        .unwrap();
        let amd = select_platform(&index, &Platform::parse("linux/amd64").unwrap()).unwrap();
        assert_eq!(
            amd.digest().to_string(),
            format!("sha256:{}", "b".repeat(64))
        );
        let arm = select_platform(&index, &Platform::parse("linux/arm64").unwrap()).unwrap();
        assert_eq!(
            arm.digest().to_string(),
            format!("sha256:{}", "a".repeat(64))
        );
        let e = select_platform(&index, &Platform::parse("linux/s390x").unwrap()).unwrap_err();
        assert!(e.to_string().contains("linux/arm64/v8, linux/amd64"), "{e}");
    }

    #[test]
    fn a_corrupted_manifest_or_blob_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let (port, _) = mock(move |req, _| {
            if req.target.contains("/blobs/") {
                return (200, vec![], b"not what was promised".to_vec());
            }
            // A manifest whose bytes do not hash to the digest asked for.
            let h = vec![("Content-Type".into(), OCI_MANIFEST.into())];
            (200, h, br#"{"schemaVersion":2}"#.to_vec())
        });
        let client = Client::new(&format!("http://127.0.0.1:{port}"), "evil", None);
        let want = sha256_digest(b"something else");
        let e = format!("{:#}", client.get_manifest("app", &want).unwrap_err());
        assert!(e.contains("digest mismatch") && e.contains("evil"), "{e}");
        let (_, body) = client.get_blob("app", &want).unwrap();
        let e = format!("{:#}", store.put_blob_from(body, Some(&want)).unwrap_err());
        assert!(e.contains("corrupted"), "{e}");
        assert!(!store.has_blob(&want));
        assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
    }

    /// A store where an interrupted download of `digest` left `prefix`.
    fn store_with_partial(digest: &str, prefix: &[u8]) -> (tempfile::TempDir, Store) {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let mut partial = store.partial(digest).unwrap().unwrap();
        partial.append(prefix).unwrap();
        (tmp, store)
    }

    #[test]
    fn a_download_resumes_only_from_the_byte_asked_for() {
        let blob: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let served = blob.clone();
        let (port, seen) = mock(move |req, _| match req.range.as_deref() {
            Some("bytes=4000-") => (
                206,
                vec![("Content-Range".into(), "bytes 4000-9999/10000".into())],
                served[4000..].to_vec(),
            ),
            _ => (200, vec![], served.clone()),
        });
        let digest = sha256_digest(&blob);
        let (_tmp, store) = store_with_partial(&digest, &blob[..4000]);
        let client = Client::new(&format!("http://127.0.0.1:{port}"), "r", None);
        download_blob(&store, &client, "app", &digest, 10_000, "x", &|_| {}).unwrap();
        assert_eq!(store.read_blob(&digest).unwrap(), blob);
        assert!(!store.root().join("downloads").join(&digest[7..]).exists());
        let log = seen.lock().unwrap().clone();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].range.as_deref(), Some("bytes=4000-"));
    }

    #[test]
    fn a_wrong_content_range_is_refused_and_bad_partials_start_over() {
        let blob: Vec<u8> = (0..10_000u32).map(|i| (i * 13 % 251) as u8).collect();
        let served = blob.clone();
        // A registry that answers a range request with another range.
        let (port, _) = mock(move |_, _| {
            (
                206,
                vec![("Content-Range".into(), "bytes 0-9999/10000".into())],
                served.clone(),
            )
        });
        let digest = sha256_digest(&blob);
        let (_tmp, store) = store_with_partial(&digest, &blob[..4000]);
        let client = Client::new(&format!("http://127.0.0.1:{port}"), "r", None);
        let e = download_blob(&store, &client, "app", &digest, 10_000, "x", &|_| {}).unwrap_err();
        assert!(format!("{e:#}").contains("from byte 4000"), "{e:#}");
        let partial = store.root().join("downloads").join(&digest[7..]);
        assert_eq!(fs::metadata(&partial).unwrap().len(), 4000, "untouched");
        assert!(!store.has_blob(&digest));

        // A partial whose bytes are wrong: the resumed blob fails its digest
        // check, and the partial is deleted so that the next pull starts over.
        let served = blob.clone();
        let (port, _) = mock(move |_, _| {
            (
                206,
                vec![("Content-Range".into(), "bytes 4000-9999/10000".into())],
                served[4000..].to_vec(),
            )
        });
        let mut bad = blob.clone();
        bad[10] ^= 1;
        let (_tmp, store) = store_with_partial(&digest, &bad[..4000]);
        let client = Client::new(&format!("http://127.0.0.1:{port}"), "r", None);
        let e = download_blob(&store, &client, "app", &digest, 10_000, "x", &|_| {}).unwrap_err();
        assert!(format!("{e:#}").contains("corrupted"), "{e:#}");
        assert!(!store.root().join("downloads").join(&digest[7..]).exists());
        assert!(!store.has_blob(&digest));
    }

    #[test]
    fn a_416_starts_the_download_over() {
        let blob: Vec<u8> = (0..5_000u32).map(|i| (i * 3 % 251) as u8).collect();
        let served = blob.clone();
        let (port, seen) = mock(move |req, _| match req.range {
            Some(_) => (416, vec![], vec![]),
            None => (200, vec![], served.clone()),
        });
        let digest = sha256_digest(&blob);
        let (_tmp, store) = store_with_partial(&digest, &blob[..100]);
        let client = Client::new(&format!("http://127.0.0.1:{port}"), "r", None);
        download_blob(&store, &client, "app", &digest, 5_000, "x", &|_| {}).unwrap();
        assert_eq!(store.read_blob(&digest).unwrap(), blob);
        let ranges: Vec<_> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.range.clone())
            .collect();
        assert_eq!(ranges, vec![Some("bytes=100-".to_string()), None]);
    }

    #[test]
    fn a_partial_download_is_locked_by_its_writer() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let digest = sha256_digest(b"x");
        let held = store.partial(&digest).unwrap();
        assert!(held.is_some());
        // flock is per open file description: a second open is refused while
        // the first is held, as another process's would be.
        assert!(store.partial(&digest).unwrap().is_none());
        drop(held);
        assert!(store.partial(&digest).unwrap().is_some());
    }
}
