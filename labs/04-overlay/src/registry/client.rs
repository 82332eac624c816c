//! The HTTP conversation with a registry: one exchange, the answer to a 401,
//! errors with the registry's own codes, and where a registry is.
//!
//! Every request goes through [`Client::send`]: it sends what it was given,
//! and when the registry answers 401 with a `WWW-Authenticate` challenge it
//! gets the credentials or token the challenge asks for (see `auth.rs`)
//! and tries once more, which is why a request body is bytes or a range of a
//! file, never a stream: it may have to be sent twice. Redirects (a registry
//! that keeps its blobs on S3 or a CDN answers a blob `GET` with 307) are
//! followed by the HTTP library, up to 5, and it does not carry the
//! `Authorization` header across them: the storage behind a redirect is
//! given a signed URL, not the registry's token.
//!
//! **Transport security.** Registries are spoken to over https, except the
//! ones marked insecure (`insecure-registries` in daemon.json) and loopback
//! addresses (127.0.0.0/8, `localhost`, `::1`), which Docker also trusts by
//! default: a registry on the same machine cannot be intercepted on a wire.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use super::auth::{parse_challenge, Challenge, Credentials};
use crate::reference::{DOCKER_HUB, DOCKER_HUB_API};

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
pub(super) enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// `len` bytes of a file from `offset`.
    File {
        path: &'a Path,
        offset: u64,
        len: u64,
    },
}

/// A client for one registry (or one mirror of Docker Hub).
pub struct Client {
    pub(super) agent: ureq::Agent,
    /// `http://127.0.0.1:5000`.
    pub(super) base: String,
    /// `127.0.0.1:5000`: how errors name the registry.
    pub(super) name: String,
    pub(super) credentials: Option<Credentials>,
    /// The Authorization header that worked, per scope.
    pub(super) auth: Mutex<HashMap<String, String>>,
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
    pub(super) fn send(
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

    /// Turns an unexpected answer into a clear error: the status, the
    /// registry's own error codes (`MANIFEST_UNKNOWN`, `UNAUTHORIZED`, ...)
    /// and what to do.
    pub(super) fn error(&self, resp: ureq::Response, what: &str) -> anyhow::Error {
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

    pub(super) fn url(&self, path: &str) -> String {
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
}

pub(super) fn read_limited(resp: ureq::Response, limit: u64) -> Result<Vec<u8>> {
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
pub(super) fn registry_errors(body: &[u8]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::mock::mock;

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
