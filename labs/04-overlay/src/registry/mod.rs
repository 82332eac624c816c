//! Registries: `docker pull` and `docker push` over the distribution API.
//!
//! A registry is a content-addressed blob store with names on top, spoken to
//! over HTTP (the OCI distribution spec, formerly "Docker Registry HTTP API
//! v2"). Everything lives under `/v2/<repository>/`:
//!
//! ```text
//! GET  /v2/                                     are you a registry? may I? (401 + a challenge)
//! GET  /v2/library/busybox/manifests/latest     a tag (or a digest) -> a manifest
//! GET  /v2/library/busybox/blobs/sha256:...     a config or a layer, by digest
//!      Range: bytes=N-                          the rest of an interrupted download -> 206
//! HEAD /v2/app/blobs/sha256:...                 do you have it? (200 or 404)
//! POST /v2/app/blobs/uploads/                   start an upload -> 202, Location: <session>
//! PATCH <session>                               a chunk         -> 202, Location: <session>
//! PUT  <session>?digest=sha256:...              the end (or the whole blob) -> 201
//! POST /v2/app/blobs/uploads/?mount=D&from=lib  link a blob another repository has -> 201
//! PUT  /v2/app/manifests/1                      the manifest last, under its tag -> 201
//! ```
//!
//! **The manifest/blob model.** A *manifest* lists a *config* blob (the
//! image config; its digest is the image ID) and the *layer* blobs, each by
//! digest, size and media type. An *index* (Docker: a *manifest list*) lists
//! manifests, one per platform (`linux/amd64`, `linux/arm64/v8`). A tag points
//! at one of the two. Because every link is a digest, the digest of the top
//! document pins everything below it: a pull verifies each blob against the
//! digest that named it before the blob enters the store
//! ([`Store::put_blob_from`] hashes while it writes and renames only on a
//! match; a layer download, resumable, goes through [`Store::partial`] and
//! is hashed whole the same way), so a registry, a mirror or the network
//! can't swap content.
//!
//! [`Store::put_blob_from`]: crate::store::Store::put_blob_from
//! [`Store::partial`]: crate::store::Store::partial
//!
//! **Content negotiation.** The same tag can be served as an OCI index, an
//! OCI manifest, a Docker manifest list or a Docker schema 2 manifest. The
//! client says what it understands in `Accept`; the registry answers with
//! `Content-Type` and `Docker-Content-Digest`. A registry converts (or
//! refuses, with 404 `MANIFEST_UNKNOWN`) what the client does not accept; a
//! manifest is never rewritten on the way, because its digest is the sha256
//! of its exact bytes.
//!
//! **The chapters**, one file each: `client.rs` is the HTTP conversation
//! itself (one exchange, answering a 401, turning a registry's error JSON
//! into a message, and which registries may be spoken to without TLS);
//! `auth.rs` is who may ask (credentials, Basic, and the Bearer token
//! dance); `pull.rs` walks the graph down from a tag, verifying each blob
//! and resuming interrupted layer downloads; `push.rs` walks it up, layers
//! and config first and the manifest last, so that a registry never names
//! an image it does not wholly have. This file holds what both directions
//! share: the media types, reading a manifest's type, and the progress
//! events.

mod auth;
mod catalog;
mod client;
#[cfg(test)]
mod mock;
mod pull;
mod push;

pub use self::auth::{parse_challenge, Challenge, Credentials};
pub use self::client::{base_url, is_insecure, Client};
pub use self::pull::{pull, Platform, Pulled};
pub use self::push::{push, record_source, sources, Pushed};

/// An OCI image index: one manifest per platform.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// An OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker's manifest list: the index before OCI.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker's image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker's long-deprecated schema 1, which names no config: refused.
const DOCKER_SCHEMA1: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// The largest manifest read: manifests are small JSON; a huge one is an attack.
const MANIFEST_LIMIT: u64 = 4 << 20;

/// The media type of a manifest: the Content-Type, else its `mediaType`
/// field, else (an OCI document may omit both) a guess by shape.
fn media_type_of(content_type: &str, bytes: &[u8]) -> String {
    let known = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];
    if known.contains(&content_type) || DOCKER_SCHEMA1.contains(&content_type) {
        return content_type.to_string();
    }
    let doc: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    if let Some(mt) = doc.get("mediaType").and_then(|m| m.as_str()) {
        return mt.to_string();
    }
    if doc.get("manifests").is_some() {
        OCI_INDEX.to_string()
    } else {
        OCI_MANIFEST.to_string()
    }
}

// ---- progress --------------------------------------------------------------

/// What a pull or push reports as it goes, for the CLI to print (a line per
/// event, or a progress bar per layer on a terminal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `<12hex>: Pulling fs layer` (`total` bytes, if known).
    Waiting { id: String, total: u64 },
    /// Bytes of a layer so far.
    Downloading { id: String, done: u64, total: u64 },
    /// `<12hex>: Download complete`: the blob is verified and in the store.
    Downloaded { id: String },
    /// `<12hex>: Pull complete`: unpacked.
    Extracted { id: String },
    /// `<12hex>: Already exists`.
    AlreadyExists { id: String },
    /// `<12hex>: Pushed`.
    Pushed { id: String },
    /// `<12hex>: Layer already exists` (push).
    LayerExists { id: String },
    /// `<12hex>: Mounted from <repo>`.
    Mounted { id: String, from: String },
    /// `<12hex>: Preparing` (push).
    Preparing { id: String },
}

/// The 12 hex digits that name a layer in progress lines.
pub fn short(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.chars().take(12).collect()
}
