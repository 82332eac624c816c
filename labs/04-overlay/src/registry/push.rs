//! `docker push`: blobs first, the manifest last.
//!
//! ```text
//! HEAD /v2/<repo>/blobs/<digest>                    have it? (200: skip it)
//! POST /v2/<repo>/blobs/uploads/?mount=D&from=lib   link it from a repository that has it
//! POST /v2/<repo>/blobs/uploads/                    else upload it: a session
//! PATCH <session> ... PUT <session>?digest=D        in chunks, or in one PUT
//! PUT  /v2/<repo>/manifests/<tag>                   the manifest, byte for byte
//! ```
//!
//! The manifest goes last and unchanged: a registry refuses a manifest whose
//! blobs it lacks, and rewriting it would change its digest.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context, Result};

use super::client::{Body, Client};
use super::{media_type_of, short, Event};
use crate::digest::{digest_hex, sha256_digest};
use crate::reference::Reference;
use crate::store::{Image, Store};

impl Client {
    /// `HEAD` a blob: does the registry have it in this repository?
    pub fn has_blob(&self, repo: &str, digest: &str) -> Result<bool> {
        let resp = self.send(
            "HEAD",
            &self.url(&format!("{repo}/blobs/{digest}")),
            &[],
            Body::Empty,
            &format!("repository:{repo}:pull,push"),
        )?;
        match resp.status() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.error(
                resp,
                &format!("checking blob {digest} in {}/{repo}", self.name),
            )),
        }
    }

    /// Resolves an upload session URL, which may be relative.
    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{location}", self.base)
        }
    }

    /// Asks the registry to link a blob from another repository it has:
    /// `Ok(None)` when mounted, `Ok(Some(session))` when it started an
    /// ordinary upload instead (it may not have the blob, or may refuse).
    fn mount_blob(&self, repo: &str, digest: &str, from: &str) -> Result<Option<String>> {
        let url = self.url(&format!("{repo}/blobs/uploads/?mount={digest}&from={from}"));
        let scope = format!("repository:{repo}:pull,push repository:{from}:pull");
        let resp = self.send("POST", &url, &[], Body::Empty, &scope)?;
        match resp.status() {
            201 => Ok(None),
            202 => Ok(Some(self.location(&resp)?)),
            _ => Err(self.error(resp, &format!("mounting blob {digest} from {from}"))),
        }
    }

    fn location(&self, resp: &ureq::Response) -> Result<String> {
        resp.header("location")
            .map(|l| self.absolute(l))
            .ok_or_else(|| anyhow!("registry {}: an upload answer has no Location", self.name))
    }

    /// Starts an upload session: `POST /v2/<repo>/blobs/uploads/`.
    fn start_upload(&self, repo: &str) -> Result<String> {
        let resp = self.send(
            "POST",
            &self.url(&format!("{repo}/blobs/uploads/")),
            &[],
            Body::Empty,
            &format!("repository:{repo}:pull,push"),
        )?;
        if resp.status() != 202 {
            return Err(self.error(resp, &format!("starting an upload to {}/{repo}", self.name)));
        }
        self.location(&resp)
    }

    /// Uploads a blob from a file: in one PUT (monolithic) when it is at most
    /// `chunk` bytes (or `chunk` is 0), else in PATCHes of `chunk` bytes and
    /// a closing PUT. `session` is an upload already started, if any.
    pub fn upload_blob(
        &self,
        repo: &str,
        digest: &str,
        path: &Path,
        chunk: u64,
        session: Option<String>,
    ) -> Result<()> {
        let size = fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        let mut location = match session {
            Some(s) => s,
            None => self.start_upload(repo)?,
        };
        let scope = format!("repository:{repo}:pull,push");
        let with_digest = |loc: &str| {
            let sep = if loc.contains('?') { '&' } else { '?' };
            format!("{loc}{sep}digest={digest}")
        };
        let octets = ("Content-Type", "application/octet-stream");
        let what = format!("uploading blob {digest} to {}/{repo}", self.name);
        if chunk == 0 || size <= chunk {
            let body = Body::File {
                path,
                offset: 0,
                len: size,
            };
            let resp = self.send("PUT", &with_digest(&location), &[octets], body, &scope)?;
            if resp.status() != 201 {
                return Err(self.error(resp, &what));
            }
            return Ok(());
        }
        let mut offset = 0;
        while offset < size {
            let len = chunk.min(size - offset);
            let range = format!("{offset}-{}", offset + len - 1);
            let body = Body::File { path, offset, len };
            let resp = self.send(
                "PATCH",
                &location,
                &[octets, ("Content-Range", &range)],
                body,
                &scope,
            )?;
            if resp.status() != 202 {
                return Err(self.error(resp, &format!("{what} (chunk {range})")));
            }
            location = self.location(&resp)?;
            offset += len;
        }
        let resp = self.send("PUT", &with_digest(&location), &[], Body::Empty, &scope)?;
        if resp.status() != 201 {
            return Err(self.error(resp, &what));
        }
        Ok(())
    }

    /// `PUT /v2/<repo>/manifests/<tag>`; returns the digest the registry gives it.
    pub fn put_manifest(
        &self,
        repo: &str,
        tag: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String> {
        let resp = self.send(
            "PUT",
            &self.url(&format!("{repo}/manifests/{tag}")),
            &[("Content-Type", media_type)],
            Body::Bytes(bytes),
            &format!("repository:{repo}:pull,push"),
        )?;
        if resp.status() != 201 {
            return Err(self.error(
                resp,
                &format!("putting the manifest {}/{repo}:{tag}", self.name),
            ));
        }
        Ok(resp
            .header("docker-content-digest")
            .map(str::to_string)
            .unwrap_or_else(|| sha256_digest(bytes)))
    }
}

// ---- provenance, for cross-repository mounts -------------------------------

/// Remembers that `repository` (`127.0.0.1:5000/lib/busybox`) has this
/// blob, so a later push to another repository of the same registry can
/// mount it instead of uploading it (Docker's v2 metadata does the same).
/// Kept in `STORE/distribution/<hex>`, one repository per line.
pub fn record_source(store: &Store, digest: &str, repository: &str) -> Result<()> {
    let mut known = sources(store, digest)?;
    if !known.insert(repository.to_string()) {
        return Ok(());
    }
    let dir = store.root().join("distribution");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let text: String = known.iter().map(|r| format!("{r}\n")).collect();
    let tmp = dir.join(format!(".{}-{}", digest_hex(digest)?, std::process::id()));
    fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, dir.join(digest_hex(digest)?)).context("recording a blob's source")
}

/// The repositories known to have this blob.
pub fn sources(store: &Store, digest: &str) -> Result<BTreeSet<String>> {
    let path = store.root().join("distribution").join(digest_hex(digest)?);
    match fs::read_to_string(&path) {
        Ok(t) => Ok(t.lines().map(str::to_string).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

// ---- push ------------------------------------------------------------------

/// The result of a push.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub tag: String,
    pub digest: String,
    pub size: u64,
}

/// `docker push`: every layer and the config the registry lacks (checked
/// with HEAD; mounted from another repository of the same registry when this
/// store knows one that has it; else uploaded, in `chunk`-byte PATCHes when
/// larger than `chunk`, or in one PUT), then the manifest, exactly as stored
/// so its digest does not change, under the reference's tag.
pub fn push(
    store: &Store,
    client: &Client,
    image: &Image,
    reference: &Reference,
    chunk: u64,
    progress: &(dyn Fn(Event) + Sync),
) -> Result<Pushed> {
    let repo = reference.path.as_str();
    let tag = reference
        .tag
        .clone()
        .ok_or_else(|| anyhow!("{reference}: push needs a tag, not a digest"))?;
    let manifest_bytes = store.read_blob(&image.manifest_digest)?;
    let media_type = media_type_of("", &manifest_bytes);

    // Docker names pushed layers by diff_id, top layer first.
    let layers: Vec<(String, String)> = image
        .manifest
        .layers()
        .iter()
        .zip(image.diff_ids())
        .map(|(d, diff_id)| (d.digest().to_string(), short(&diff_id)))
        .rev()
        .collect();
    for (_, id) in &layers {
        progress(Event::Preparing { id: id.clone() });
    }
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for (digest, id) in &layers {
            let failure = &failure;
            s.spawn(move || {
                match push_blob(store, client, reference, digest, chunk) {
                    Ok(outcome) => progress(match outcome {
                        Outcome::Exists => Event::LayerExists { id: id.clone() },
                        Outcome::Mounted(from) => Event::Mounted {
                            id: id.clone(),
                            from,
                        },
                        Outcome::Uploaded => Event::Pushed { id: id.clone() },
                    }),
                    Err(e) => {
                        failure.lock().expect("lock").get_or_insert(e);
                    }
                };
            });
        }
    });
    if let Some(e) = failure.into_inner().expect("lock") {
        return Err(e.context(format!("pushing {reference}")));
    }
    push_blob(store, client, reference, &image.config_digest, chunk)
        .with_context(|| format!("pushing the config of {reference}"))?;
    let digest = client
        .put_manifest(repo, &tag, &media_type, &manifest_bytes)
        .with_context(|| format!("pushing {reference}"))?;
    if digest != image.manifest_digest {
        bail!(
            "pushing {reference}: the registry stored the manifest as {digest}, \
             not {} (it rewrote it?)",
            image.manifest_digest
        );
    }
    let repository = reference.repository();
    record_source(store, &image.config_digest, &repository)?;
    for (d, _) in &layers {
        record_source(store, d, &repository)?;
    }
    Ok(Pushed {
        tag,
        digest,
        size: manifest_bytes.len() as u64,
    })
}

enum Outcome {
    Exists,
    Mounted(String),
    Uploaded,
}

fn push_blob(
    store: &Store,
    client: &Client,
    reference: &Reference,
    digest: &str,
    chunk: u64,
) -> Result<Outcome> {
    let repo = reference.path.as_str();
    if client.has_blob(repo, digest)? {
        return Ok(Outcome::Exists);
    }
    let path: PathBuf = store.blob_path(digest)?;
    let prefix = format!("{}/", reference.domain);
    let mut session = None;
    for source in sources(store, digest)? {
        let Some(from) = source.strip_prefix(&prefix) else {
            continue;
        };
        if from == repo {
            continue;
        }
        match client.mount_blob(repo, digest, from)? {
            None => return Ok(Outcome::Mounted(from.to_string())),
            Some(s) => {
                session = Some(s);
                break;
            }
        }
    }
    client.upload_blob(repo, digest, &path, chunk, session)?;
    Ok(Outcome::Uploaded)
}
