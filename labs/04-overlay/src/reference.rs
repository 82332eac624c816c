//! Image references: what `busybox`, `user/app:1.0` and
//! `host:5000/ns/app@sha256:...` mean.
//!
//! A reference names a manifest in a registry, in up to four parts:
//!
//! ```text
//! registry.example.com:5000 / team/app : 1.0 @ sha256:4f2c...
//! └────── domain ─────────┘   └─path─┘  └tag┘  └── digest ──┘
//! ```
//!
//! Docker fills in what is left out, and every tool that talks to Docker Hub
//! (podman, skopeo, containerd) does the same:
//!
//! - **No domain** means Docker Hub, `docker.io`. The first component is a
//!   domain only if it contains a `.` or a `:`, or is `localhost`:
//!   `user/app` is the repository `user/app` on Docker Hub, while
//!   `localhost:5000/app` and `ghcr.io/user/app` name other registries.
//! - **Official images** live under `library/` on Docker Hub: `busybox` is
//!   `docker.io/library/busybox`.
//! - **No tag and no digest** means the tag `latest`.
//! - A **digest** pins the content: the registry must serve exactly the
//!   manifest whose sha256 it is. A tag can move; a digest cannot.
//!
//! The short form that `docker images` shows (the *familiar* name) drops
//! `docker.io/` and `library/` again. Repository path components are lower
//! case (`[a-z0-9]` separated by `.`, `_`, `__` or dashes); a tag is up to
//! 128 characters of `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
//!
//! ```text
//! $ skopeo inspect --raw docker://busybox       # asks docker.io for library/busybox:latest
//! ```

use std::fmt;

use anyhow::{bail, Result};

/// Docker Hub's name in references.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API actually answers.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `docker.io`, `ghcr.io`, `127.0.0.1:5000`.
    pub domain: String,
    /// `library/busybox`, `team/app`.
    pub path: String,
    /// The tag; `latest` when neither a tag nor a digest was given.
    pub tag: Option<String>,
    /// `sha256:<64 hex>`.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalises a reference as `docker pull` does, refusing a
    /// bad one with docker's own message (distribution's `reference`
    /// package): `invalid reference format`, or, for upper case in the
    /// repository, `invalid reference format: repository name (library/Foo)
    /// must be lowercase`. Scripts and people match on these words.
    pub fn parse(s: &str) -> Result<Reference> {
        // The one message docker gives for every other malformed reference:
        // an empty name, a scheme (`http://`), a bad tag, a bad digest, a
        // bad separator in a path component, a bad host or port.
        let invalid = || -> Result<Reference> { bail!("invalid reference format") };
        if s.is_empty() {
            return invalid();
        }
        // 64 hex digits alone are an image ID, never a repository name:
        // `docker tag` refuses them as a target so that IDs stay unambiguous.
        if is_full_hex_id(s) {
            bail!("invalid repository name ({s}), cannot specify 64-byte hexadecimal strings");
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (s, None),
        };
        if let Some(d) = digest {
            match d.strip_prefix("sha256:") {
                Some(hex) if is_full_hex_id(hex) => {}
                _ => return invalid(),
            }
        }
        // The tag is after the last ':' that comes after the last '/':
        // `host:5000/app` has a port, not a tag.
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => (
                &name_tag[..last_slash + i],
                Some(&name_tag[last_slash + i + 1..]),
            ),
            None => (name_tag, None),
        };
        if let Some(t) = tag {
            // 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'.
            if !valid_tag(t) {
                return invalid();
            }
        }
        // The first component is a registry host when it looks like one: a
        // '.', a ':', `localhost`, or upper case (repositories are lower case).
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let domain = match domain.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
            _ => domain,
        };
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            // Docker names the repository as it would complete it.
            let shown = if domain == DOCKER_HUB && !path.contains('/') {
                format!("library/{path}")
            } else {
                path.clone()
            };
            bail!("invalid reference format: repository name ({shown}) must be lowercase");
        }
        // A host name or address with an optional :port, and path
        // components of lower-case letters and digits separated by '.',
        // '_', '__' or dashes.
        if !valid_domain(&domain) || path.is_empty() || !path.split('/').all(valid_component) {
            return invalid();
        }
        let path = if domain == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if domain.len() + 1 + path.len() > 255 {
            bail!("repository name must not be more than 255 characters");
        }
        let tag = match (tag, digest) {
            (None, None) => Some("latest".to_string()),
            (t, _) => t.map(str::to_string),
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest: digest.map(str::to_string),
        })
    }

    /// `docker.io/library/busybox`: the full repository name.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `busybox`, `user/app`, `127.0.0.1:5000/app`: what `docker images`
    /// shows in its REPOSITORY column.
    pub fn familiar_repository(&self) -> String {
        if self.domain == DOCKER_HUB {
            self.path
                .strip_prefix("library/")
                .filter(|rest| !rest.contains('/'))
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.repository()
        }
    }

    /// The name the image gets in the local store: the familiar repository
    /// with its tag (`busybox:latest`, `127.0.0.1:5000/app:1`), or with its
    /// digest when pulled by digest alone.
    pub fn familiar(&self) -> String {
        match (&self.tag, &self.digest) {
            (Some(t), _) => format!("{}:{t}", self.familiar_repository()),
            (None, Some(d)) => format!("{}@{d}", self.familiar_repository()),
            (None, None) => format!("{}:latest", self.familiar_repository()),
        }
    }

    /// What the registry's manifest endpoint is asked for: the digest if
    /// there is one (it pins the content), else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl fmt::Display for Reference {
    /// `docker.io/library/busybox:latest`, `host:5000/app@sha256:...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// 64 lower-case hex digits: the form of an image ID (a sha256 digest).
pub fn is_full_hex_id(s: &str) -> bool {
    s.len() == 64 && is_hex(s)
}

/// Lower-case hex digits only (what an image ID and its prefixes are made of).
pub fn is_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, distribution's path-component grammar.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__' or any number of '-'.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A host name (labels of `[A-Za-z0-9-]`) or an IPv4 address, or an IPv6
/// address in brackets, with an optional `:port`.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        let Some((h, p)) = rest.split_once(']') else {
            return false;
        };
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match (p, p.strip_prefix(':')) {
            ("", _) => (None, None),
            (_, Some(port)) => (None, Some(port)),
            _ => return false,
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(d), None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err() {
            return false;
        }
    }
    match host {
        None => true,
        Some(h) => {
            !h.is_empty()
                && h.split('.').all(|label| {
                    let b = label.as_bytes();
                    !b.is_empty()
                        && b[0] != b'-'
                        && b[b.len() - 1] != b'-'
                        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn full(s: &str) -> String {
        Reference::parse(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .to_string()
    }

    // The normalisation cases from distribution's reference/normalize_test.go
    // and docker's documentation.
    #[test]
    fn docker_hub_names_are_completed() {
        assert_eq!(full("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(full("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(full("library/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(
            full("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            full("index.docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(full("user/app:1.0"), "docker.io/user/app:1.0");
        assert_eq!(full("docker.io/user/app"), "docker.io/user/app:latest");
        assert_eq!(full("a/b/c"), "docker.io/a/b/c:latest");
    }

    #[test]
    fn other_registries_keep_their_domain() {
        assert_eq!(full("localhost/foo"), "localhost/foo:latest");
        assert_eq!(full("localhost:5000/foo:1"), "localhost:5000/foo:1");
        assert_eq!(full("127.0.0.1:5000/foo:1"), "127.0.0.1:5000/foo:1");
        assert_eq!(full("ghcr.io/user/app"), "ghcr.io/user/app:latest");
        let r = Reference::parse(&format!("host:5000/ns/app@{D}")).unwrap();
        assert_eq!(r.domain, "host:5000");
        assert_eq!(r.path, "ns/app");
        assert_eq!(r.tag, None, "a digest alone implies no tag");
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.manifest_ref(), D);
        let both = Reference::parse(&format!("host:5000/app:1@{D}")).unwrap();
        assert_eq!(both.tag.as_deref(), Some("1"));
        assert_eq!(both.manifest_ref(), D, "the digest wins over the tag");
        assert_eq!(full("[::1]:5000/foo"), "[::1]:5000/foo:latest");
    }

    #[test]
    fn familiar_names_drop_docker_io_and_library() {
        let f = |s: &str| Reference::parse(s).unwrap().familiar();
        assert_eq!(f("busybox"), "busybox:latest");
        assert_eq!(f("docker.io/library/busybox:1"), "busybox:1");
        assert_eq!(f("user/app:1.0"), "user/app:1.0");
        assert_eq!(f("127.0.0.1:5000/foo:1"), "127.0.0.1:5000/foo:1");
        assert_eq!(
            f(&format!("127.0.0.1:5000/foo@{D}")),
            format!("127.0.0.1:5000/foo@{D}")
        );
        assert_eq!(f("library/a/b"), "library/a/b:latest");
    }

    #[test]
    fn invalid_references_are_refused_with_a_reason() {
        for bad in [
            "",
            "Busybox",
            "user/App",
            "busybox:",
            ":tag",
            "busybox:-x",
            "busybox:.x",
            "a//b",
            "/a",
            "a/",
            "-foo",
            "foo-",
            "foo..bar",
            "foo___bar",
            "foo@sha256:abc",
            "foo@md5:d41d8cd98f00b204e9800998ecf8427e",
            "http://host/x",
            "host:port/x",
            "host:99999/x",
            "a b",
        ] {
            let e = Reference::parse(bad).expect_err(bad).to_string();
            assert!(e.starts_with("invalid reference format"), "{bad}: {e}");
        }
        let long_tag = format!("busybox:{}", "a".repeat(129));
        assert!(Reference::parse(&long_tag).is_err());
        let e = |s: &str| Reference::parse(s).unwrap_err().to_string();
        assert_eq!(
            e("Busybox"),
            "invalid reference format: repository name (library/Busybox) must be lowercase"
        );
        assert_eq!(
            e("127.0.0.1:5000/App"),
            "invalid reference format: repository name (App) must be lowercase"
        );
        assert_eq!(e("a b"), "invalid reference format");
        assert_eq!(
            e(&"a".repeat(300)),
            "repository name must not be more than 255 characters"
        );
        assert!(e(&"4f".repeat(32)).contains("cannot specify 64-byte hexadecimal strings"));
        // Upper case in the first component makes it a registry host, and
        // a tag may have upper case.
        assert_eq!(full("Foo/bar"), "Foo/bar:latest");
        assert_eq!(full("foo:Bar"), "docker.io/library/foo:Bar");
        // Separators that are allowed.
        for ok in ["a.b", "a_b", "a__b", "a-b", "a---b", "a/b-c/d.e"] {
            Reference::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }
}
