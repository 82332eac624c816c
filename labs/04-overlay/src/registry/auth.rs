//! Who may ask: credentials, `Basic`, and the `Bearer` token dance.
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
//! [`Client::send`] answers the challenge; this file parses it, keeps the
//! credentials, and fetches the token.

use std::collections::HashMap;
use std::io::Read;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;

use super::client::Client;

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

impl Client {
    /// The second step of the token dance: ask the realm for a token for
    /// `scope` (space-separated scopes become repeated `scope=` parameters).
    pub(super) fn token(&self, realm: &str, service: Option<&str>, scope: &str) -> Result<String> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256_digest;
    use crate::registry::mock::mock;
    use crate::registry::OCI_MANIFEST;

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
    fn credentials_round_trip_through_base64() {
        let c = Credentials {
            username: "alice".into(),
            password: "p:ss".into(),
        };
        assert_eq!(c.encoded(), "YWxpY2U6cDpzcw==");
        assert_eq!(Credentials::decode(&c.encoded()).unwrap(), c);
        assert!(Credentials::decode("!!").is_err());
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
}
