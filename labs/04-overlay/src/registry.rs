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
//! **Content negotiation.** The same tag can be served as an OCI index, an
//! OCI manifest, a Docker manifest list or a Docker schema 2 manifest. The
//! client says what it understands in `Accept`; the registry answers with
//! `Content-Type` and `Docker-Content-Digest`. A registry converts (or
//! refuses, with 404 `MANIFEST_UNKNOWN`) what the client does not accept; a
//! manifest is never rewritten on the way, because its digest is the sha256
//! of its exact bytes.
//!
//! **The token dance.** Most registries want a token, not a password:
//!
//! ```text
//! GET /v2/library/busybox/manifests/latest
//!   <- 401  WWW-Authenticate: Bearer realm="https://auth.docker.io/token",
//!                 service="registry.docker.io",scope="repository:library/busybox:pull"
//! GET https://auth.docker.io/token?service=registry.docker.io&scope=repository:library/busybox:pull
//!     (with Authorization: Basic base64(user:pass) if logged in; anonymous otherwise)
//!   <- 200  {"token": "eyJ..."}
//! GET /v2/library/busybox/manifests/latest   Authorization: Bearer eyJ...
//!   <- 200
//! ```
//!
//! A registry that wants a password directly (distribution with htpasswd)
//! answers `WWW-Authenticate: Basic realm="..."` instead, and the client sends
//! `Authorization: Basic ...` on every request. The same exchange by hand:
//!
//! ```text
//! curl -si http://127.0.0.1:5000/v2/                                   # 401 and the challenge
//! curl -s  -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
//!          http://127.0.0.1:5000/v2/busybox/manifests/1 | sha256sum     # = Docker-Content-Digest
//! ```
//!
//! **Transport security.** Registries are spoken to over https, except the
//! ones marked insecure (`insecure-registries` in daemon.json) and loopback
//! addresses (127.0.0.0/8, `localhost`, `::1`), which Docker also trusts by
//! default: a registry on the same machine cannot be intercepted on a wire.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use oci_spec::image::{Descriptor, Digest, ImageIndex, ImageManifest, MediaType};

use crate::digest::{digest_hex, host_arch, sha256_digest};
use crate::reference::{Reference, DOCKER_HUB, DOCKER_HUB_API};
use crate::store::{parse_config, Image, Store};

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
/// How many layers download at once (Docker's max-concurrent-downloads).
const CONCURRENT_DOWNLOADS: usize = 3;

/// A user name and password (or identity token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <hidden>)", self.username)
    }
}

impl Credentials {
    /// `Basic base64(user:pass)`: the value of the Authorization header and,
    /// base64 part only, config.json's `auth` field.
    pub fn basic(&self) -> String {
        format!("Basic {}", self.encoded())
    }

    /// `base64(user:pass)`.
    pub fn encoded(&self) -> String {
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.username, self.password))
    }

    /// Parses config.json's `auth` field.
    pub fn decode(auth: &str) -> Result<Credentials> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .context("the auth field is not base64")?;
        let text = String::from_utf8(raw).context("the auth field is not UTF-8")?;
        let (u, p) = text
            .split_once(':')
            .ok_or_else(|| anyhow!("the auth field is not user:password"))?;
        Ok(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        })
    }
}

// ---- where a registry is ---------------------------------------------------

/// Whether a registry may be spoken to over plain http: listed in
/// `insecure` (as `host:port`, `host`, or an IPv4 CIDR such as
/// `10.0.0.0/8`), or on the loopback.
pub fn is_insecure(domain: &str, insecure: &[String]) -> bool {
    let host = host_of(domain);
    let loopback = host == "localhost"
        || host
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false);
    loopback
        || insecure.iter().any(|entry| {
            let entry = entry
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .trim_end_matches('/');
            if entry == domain || entry == host {
                return true;
            }
            match (entry.split_once('/'), host.parse::<Ipv4Addr>()) {
                (Some((net, bits)), Ok(ip)) => {
                    match (net.parse::<Ipv4Addr>(), bits.parse::<u32>()) {
                        (Ok(net), Ok(bits)) if bits <= 32 => {
                            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                            u32::from(ip) & mask == u32::from(net) & mask
                        }
                        _ => false,
                    }
                }
                _ => false,
            }
        })
}

/// `127.0.0.1` of `127.0.0.1:5000`, `::1` of `[::1]:5000`.
fn host_of(domain: &str) -> &str {
    if let Some(rest) = domain.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    domain.rsplit_once(':').map_or(domain, |(h, _)| h)
}

/// The base URL of a registry: `https://ghcr.io`, `http://127.0.0.1:5000`;
/// Docker Hub's API is at registry-1.docker.io.
pub fn base_url(domain: &str, insecure: &[String]) -> String {
    let host = if domain == DOCKER_HUB {
        DOCKER_HUB_API
    } else {
        domain
    };
    let scheme = if is_insecure(domain, insecure) {
        "http"
    } else {
        "https"
    };
    format!("{scheme}://{host}")
}

// ---- the HTTP client -------------------------------------------------------

/// A request body that can be sent again after a 401 (a stream could not).
#[derive(Clone, Copy)]
enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// `len` bytes of a file from `offset`.
    File {
        path: &'a Path,
        offset: u64,
        len: u64,
    },
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`.
/// Values may be quoted and may contain commas (`scope="repository:a:pull,push"`).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), value);
    }
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.remove("realm")?,
            service: params.remove("service"),
            scope: params.remove("scope"),
        }),
        _ => None,
    }
}

/// What a blob `GET` from an offset brought.
enum BlobBody {
    /// 200: the whole blob (its Content-Length, if given).
    Whole(Option<u64>, Box<dyn Read + Send>),
    /// 206: the rest of it, from the offset asked for.
    Rest(Box<dyn Read + Send>),
    /// 416: the offset is past the end.
    Unsatisfiable,
}

/// A client for one registry (or one mirror of Docker Hub).
pub struct Client {
    agent: ureq::Agent,
    /// `http://127.0.0.1:5000`.
    base: String,
    /// `127.0.0.1:5000`: how errors name the registry.
    name: String,
    credentials: Option<Credentials>,
    /// The Authorization header that worked, per scope.
    auth: Mutex<HashMap<String, String>>,
}

impl Client {
    /// A client for `base` (a URL such as `http://127.0.0.1:5000`), named
    /// `name` in messages.
    pub fn new(base: &str, name: &str, credentials: Option<Credentials>) -> Client {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(15))
            .timeout_read(Duration::from_secs(60))
            .timeout_write(Duration::from_secs(60))
            .user_agent(concat!("dockyard/", env!("CARGO_PKG_VERSION")))
            .build();
        Client {
            agent,
            base: base.trim_end_matches('/').to_string(),
            name: name.to_string(),
            credentials,
            auth: Mutex::new(HashMap::new()),
        }
    }

    /// The registry's name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// One HTTP exchange, without authentication logic. Every status comes
    /// back as `Ok`; only a failure to talk at all is an error.
    fn exchange(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Body,
        auth: Option<&str>,
    ) -> Result<ureq::Response> {
        let mut req = self.agent.request(method, url);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        if let Some(a) = auth {
            req = req.set("Authorization", a);
        }
        let result = match body {
            Body::Empty if method == "GET" || method == "HEAD" => req.call(),
            Body::Empty => req.set("Content-Length", "0").send_bytes(&[]),
            Body::Bytes(b) => req.send_bytes(b),
            Body::File { path, offset, len } => {
                let mut f =
                    File::open(path).with_context(|| format!("opening {}", path.display()))?;
                f.seek(SeekFrom::Start(offset))?;
                req.set("Content-Length", &len.to_string())
                    .send(f.take(len))
            }
        };
        match result {
            Ok(r) => Ok(r),
            Err(ureq::Error::Status(_, r)) => Ok(r),
            Err(ureq::Error::Transport(t)) => {
                let hint = if url.starts_with("https://") {
                    " (if it speaks plain http, add it to insecure-registries in daemon.json)"
                } else {
                    ""
                };
                Err(anyhow!(
                    "cannot reach registry {} at {url}: {t}{hint}",
                    self.name
                ))
            }
        }
    }

    // ANCHOR: send
    /// An exchange that answers the registry's authentication challenge:
    /// a 401 with `WWW-Authenticate` leads to Basic credentials or to the
    /// token dance, and one retry. `scope` is what we want to do
    /// (`repository:app:pull,push`), used when the challenge names none.
    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Body,
        scope: &str,
    ) -> Result<ureq::Response> {
        let cached = self.auth.lock().expect("auth lock").get(scope).cloned();
        let resp = self.exchange(method, url, headers, body, cached.as_deref())?;
        if resp.status() != 401 {
            return Ok(resp);
        }
        let Some(challenge) = resp.header("www-authenticate").and_then(parse_challenge) else {
            return Ok(resp);
        };
        let header = match challenge {
            Challenge::Basic => match &self.credentials {
                Some(c) => c.basic(),
                None => return Ok(resp),
            },
            Challenge::Bearer {
                realm,
                service,
                scope: wanted,
            } => {
                let token = self.token(
                    &realm,
                    service.as_deref(),
                    wanted.as_deref().unwrap_or(scope),
                )?;
                format!("Bearer {token}")
            }
        };
        let resp = self.exchange(method, url, headers, body, Some(&header))?;
        if resp.status() != 401 {
            self.auth
                .lock()
                .expect("auth lock")
                .insert(scope.to_string(), header);
        }
        Ok(resp)
    }
    // ANCHOR_END: send

    /// The second step of the token dance: ask the realm for a token for
    /// `scope` (space-separated scopes become repeated `scope=` parameters).
    fn token(&self, realm: &str, service: Option<&str>, scope: &str) -> Result<String> {
        let mut req = self.agent.get(realm);
        if let Some(s) = service {
            req = req.query("service", s);
        }
        for s in scope.split_whitespace() {
            req = req.query("scope", s);
        }
        if let Some(c) = &self.credentials {
            req = req.set("Authorization", &c.basic());
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(401 | 403, _)) => bail!(
                "registry {}: the token server {realm} refused the credentials \
                 (unauthorized: incorrect username or password)",
                self.name
            ),
            Err(ureq::Error::Status(code, r)) => bail!(
                "registry {}: the token server {realm} answered {code}: {}",
                self.name,
                r.into_string().unwrap_or_default().trim()
            ),
            Err(e) => bail!(
                "registry {}: cannot reach the token server {realm}: {e}",
                self.name
            ),
        };
        let doc: serde_json::Value = serde_json::from_reader(resp.into_reader().take(1 << 20))
            .with_context(|| {
                format!("registry {}: the token server sent invalid JSON", self.name)
            })?;
        doc.get("token")
            .or_else(|| doc.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| {
                anyhow!(
                    "registry {}: the token server's answer has no token",
                    self.name
                )
            })
    }

    /// Turns an unexpected answer into a clear error: the status, the
    /// registry's own error codes (`MANIFEST_UNKNOWN`, `UNAUTHORIZED`, ...)
    /// and what to do.
    fn error(&self, resp: ureq::Response, what: &str) -> anyhow::Error {
        let status = resp.status();
        let retry_after = resp.header("retry-after").map(str::to_string);
        let body = read_limited(resp, 64 << 10).unwrap_or_default();
        let detail = registry_errors(&body);
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(": {detail}")
        };
        let name = &self.name;
        match status {
            401 if self.credentials.is_none() => anyhow!(
                "{what}: registry {name} requires authentication (401 unauthorized{detail}); \
                 log in with `dockyard login {name}`"
            ),
            401 => anyhow!(
                "{what}: registry {name} refused the stored credentials \
                 (401 unauthorized{detail}); log in again with `dockyard login {name}`"
            ),
            403 => anyhow!("{what}: registry {name} denied access (403 forbidden{detail})"),
            404 => anyhow!("{what}: not found on registry {name} (404{detail})"),
            429 => anyhow!(
                "{what}: registry {name} is rate-limiting this client (429 too many requests{detail}); \
                 wait{} and retry, or log in for a higher limit",
                retry_after
                    .map(|s| format!(" {s} seconds"))
                    .unwrap_or_default()
            ),
            _ => anyhow!("{what}: registry {name} answered {status}{detail}"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{path}", self.base)
    }

    /// `GET /v2/`: whether the registry is there and the credentials are
    /// accepted (what `docker login` checks).
    pub fn ping(&self) -> Result<()> {
        let resp = self.send("GET", &self.url(""), &[], Body::Empty, "registry:catalog:*")?;
        match resp.status() {
            200..=299 => Ok(()),
            401 => bail!(
                "registry {}: unauthorized: incorrect username or password",
                self.name
            ),
            _ => Err(self.error(resp, "logging in")),
        }
    }

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

fn read_limited(resp: ureq::Response, limit: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    resp.into_reader()
        .take(limit + 1)
        .read_to_end(&mut out)
        .context("reading the registry's answer")?;
    if out.len() as u64 > limit {
        bail!("the registry's answer is larger than {limit} bytes");
    }
    Ok(out)
}

/// `MANIFEST_UNKNOWN: manifest unknown` from distribution's error JSON
/// `{"errors":[{"code":...,"message":...}]}`.
fn registry_errors(body: &[u8]) -> String {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::from_utf8_lossy(body)
            .trim()
            .chars()
            .take(200)
            .collect();
    };
    doc.get("errors")
        .and_then(|e| e.as_array())
        .map(|errs| {
            errs.iter()
                .map(|e| {
                    let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                    let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
                    format!("{}: {msg}", code.to_ascii_lowercase().replace('_', " "))
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

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

// ---- pull ------------------------------------------------------------------

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    #[test]
    fn challenges_parse() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge("bearer realm=http://x/token"),
            Some(Challenge::Bearer {
                realm: "http://x/token".into(),
                service: None,
                scope: None
            })
        );
        assert_eq!(parse_challenge("Bearer service=\"x\""), None, "no realm");
        assert_eq!(parse_challenge("Negotiate abc"), None);
    }

    #[test]
    fn http_only_for_insecure_and_loopback() {
        let none: Vec<String> = vec![];
        assert_eq!(base_url("127.0.0.1:5000", &none), "http://127.0.0.1:5000");
        assert_eq!(base_url("127.9.9.9:5000", &none), "http://127.9.9.9:5000");
        assert_eq!(base_url("localhost:5000", &none), "http://localhost:5000");
        assert_eq!(base_url("[::1]:5000", &none), "http://[::1]:5000");
        assert_eq!(base_url("docker.io", &none), "https://registry-1.docker.io");
        assert_eq!(
            base_url("reg.example:5000", &none),
            "https://reg.example:5000"
        );
        let list = vec![
            "reg.example:5000".to_string(),
            "10.0.0.0/8".to_string(),
            "http://plain.example".to_string(),
        ];
        assert!(is_insecure("reg.example:5000", &list));
        assert!(!is_insecure("reg.example:5001", &list), "the port matters");
        assert!(is_insecure("10.1.2.3:443", &list));
        assert!(!is_insecure("11.1.2.3", &list));
        assert!(is_insecure("plain.example", &list));
        assert!(!is_insecure("ghcr.io", &list));
    }

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
    fn credentials_round_trip_through_base64() {
        let c = Credentials {
            username: "alice".into(),
            password: "p:ss".into(),
        };
        assert_eq!(c.encoded(), "YWxpY2U6cDpzcw==");
        assert_eq!(Credentials::decode(&c.encoded()).unwrap(), c);
        assert!(Credentials::decode("!!").is_err());
    }

    /// One request as the mock server saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        target: String,
        authorization: Option<String>,
        range: Option<String>,
    }

    /// A loopback HTTP server answering each connection with `answer`.
    fn mock(
        answer: impl Fn(&Seen, u16) -> (u16, Vec<(String, String)>, Vec<u8>) + Send + 'static,
    ) -> (u16, std::sync::Arc<Mutex<Vec<Seen>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut authorization = None;
                let mut range = None;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("authorization") {
                            authorization = Some(v.trim().to_string());
                        }
                        if k.eq_ignore_ascii_case("range") {
                            range = Some(v.trim().to_string());
                        }
                    }
                }
                let req = Seen {
                    target,
                    authorization,
                    range,
                };
                log.lock().unwrap().push(req.clone());
                let (status, headers, body) = answer(&req, port);
                let mut out = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                for (k, v) in headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                let _ = conn.write_all(out.as_bytes());
                let _ = conn.write_all(&body);
            }
        });
        (port, seen)
    }

    #[test]
    fn the_token_dance() {
        let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#.to_vec();
        let body = manifest.clone();
        let (port, seen) = mock(move |req, port| {
            if req.target.starts_with("/token") {
                return (200, vec![], br#"{"token":"T0K3N"}"#.to_vec());
            }
            if req.authorization.as_deref() == Some("Bearer T0K3N") {
                let h = vec![("Content-Type".into(), OCI_MANIFEST.into())];
                return (200, h, body.clone());
            }
            let challenge = format!(
                r#"Bearer realm="http://127.0.0.1:{port}/token",service="mock",scope="repository:app:pull""#
            );
            (401, vec![("WWW-Authenticate".into(), challenge)], vec![])
        });
        let creds = Credentials {
            username: "u".into(),
            password: "p".into(),
        };
        let client = Client::new(
            &format!("http://127.0.0.1:{port}"),
            "mock",
            Some(creds.clone()),
        );
        let (mt, digest, bytes) = client.get_manifest("app", "1").unwrap();
        assert_eq!(mt, OCI_MANIFEST);
        assert_eq!(bytes, manifest);
        assert_eq!(digest, sha256_digest(&manifest));
        let log = seen.lock().unwrap().clone();
        assert_eq!(log.len(), 3, "{log:?}");
        assert_eq!(log[0].authorization, None, "the first try is anonymous");
        assert_eq!(
            log[1].target,
            "/token?service=mock&scope=repository%3Aapp%3Apull"
        );
        assert_eq!(
            log[1].authorization.as_deref(),
            Some(creds.basic().as_str())
        );
        assert_eq!(log[2].authorization.as_deref(), Some("Bearer T0K3N"));
        // The token is reused for the same scope: one request, no dance.
        client.get_manifest("app", "1").unwrap();
        assert_eq!(seen.lock().unwrap().len(), 4);
    }

    #[test]
    fn a_refused_token_request_is_a_clear_error() {
        let (port, _) = mock(move |req, port| {
            if req.target.starts_with("/token") {
                return (401, vec![], vec![]);
            }
            let challenge = format!(r#"Bearer realm="http://127.0.0.1:{port}/token",service="m""#);
            (401, vec![("WWW-Authenticate".into(), challenge)], vec![])
        });
        let client = Client::new(&format!("http://127.0.0.1:{port}"), "mockreg", None);
        let e = format!("{:#}", client.get_manifest("app", "1").unwrap_err());
        assert!(e.contains("mockreg") && e.contains("refused"), "{e}");
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

    #[test]
    fn registry_errors_are_named() {
        let (port, _) = mock(move |req, _| {
            let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
            if req.target.contains("/nope/") {
                return (404, vec![], body.to_vec());
            }
            (
                429,
                vec![("Retry-After".into(), "30".into())],
                b"slow down".to_vec(),
            )
        });
        let client = Client::new(&format!("http://127.0.0.1:{port}"), "reg:1", None);
        let e = format!("{:#}", client.get_manifest("nope", "1").unwrap_err());
        assert!(
            e.contains("reg:1/nope:1") && e.contains("manifest unknown"),
            "{e}"
        );
        let e = format!("{:#}", client.get_manifest("app", "1").unwrap_err());
        assert!(e.contains("429") && e.contains("30 seconds"), "{e}");
    }
}
