//! What every registry test stands on: a `docker-registry` process (with
//! Basic or token auth), the token server, a dockyard data root with its
//! own credentials directory, the base image's digests, and skopeo.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dockyard_e2e::dockyard::{text, Dockyard};
use dockyard_e2e::fixtures::{require_root, workspace_root};
use serde_json::Value;
use sha2::Digest as _;

/// A `docker-registry` process on 127.0.0.1, stopped on drop.
pub(crate) struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    pub(crate) fn start() -> Registry {
        Self::start_with(None)
    }

    /// With `Some((user, password))`, the registry wants Basic auth.
    pub(crate) fn start_with(user: Option<(&str, &str)>) -> Registry {
        let dir = Self::dir();
        let auth = user.map(|(u, p)| {
            let out = Command::new("htpasswd")
                .args(["-Bbn", u, p])
                .output()
                .expect("htpasswd is missing: scripts/setup installs apache2-utils");
            assert!(out.status.success());
            fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
            format!(
                "auth:\n  htpasswd:\n    realm: dockyard-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            )
        });
        Self::launch(dir, auth)
    }

    /// A registry that wants tokens from `tokens`: distribution's own
    /// `auth: token`, which verifies each JWT's signature against the
    /// certificate bundle the token server wrote, and its issuer, audience,
    /// lifetime and `access` claim.
    pub(crate) fn start_with_token(tokens: &TokenServer) -> Registry {
        let auth = format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {TOKEN_SERVICE}\n\
             \x20   issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
            tokens.port,
            tokens.cert().display()
        );
        Self::launch(Self::dir(), Some(auth))
    }

    fn dir() -> tempfile::TempDir {
        require_root();
        tempfile::Builder::new()
            .prefix("dockyard-registry-")
            .tempdir()
            .unwrap()
    }

    fn launch(dir: tempfile::TempDir, auth: Option<String>) -> Registry {
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        config.push_str(auth.as_deref().unwrap_or(""));
        fs::write(dir.path().join("config.yml"), config).unwrap();
        let log = fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry is missing: scripts/setup installs it");
        let reg = Registry { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the registry did not start:\n{}",
                reg.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    /// `127.0.0.1:PORT`.
    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub(crate) fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Where the registry keeps a blob's bytes.
    pub(crate) fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Requests the access log shows with this method and path fragment.
    pub(crate) fn requests(&self, method: &str, fragment: &str) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains(&format!("\"{method} ")) && l.contains(fragment))
            .count()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub(crate) const TOKEN_SERVICE: &str = "dockyard-test";
const TOKEN_ISSUER: &str = "dockyard-test-issuer";

/// tests/token_server.py on 127.0.0.1: signs ES256 JWTs for one user with
/// a key whose self-signed certificate it writes to `cert()`. Killed on drop.
pub(crate) struct TokenServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl TokenServer {
    pub(crate) fn start(user: &str, password: &str) -> TokenServer {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("dockyard-tokens-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let child = Command::new("python3")
            .arg(workspace_root().join("tests/token_server.py"))
            .arg(port.to_string())
            .arg(dir.path().join("cert.pem"))
            .args([user, password, TOKEN_ISSUER])
            .arg(dir.path().join("tokens.log"))
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.path().join("stderr")).unwrap())
            .spawn()
            .expect("python3 is missing");
        let mut server = TokenServer { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !server.cert().exists() || TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = server.child.try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "the token server did not start ({exited:?}; scripts/setup installs \
                 python3-cryptography):\n{}",
                fs::read_to_string(server.dir.path().join("stderr")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// The token requests so far: one JSON object each.
    pub(crate) fn requests(&self) -> Vec<Value> {
        fs::read_to_string(self.dir.path().join("tokens.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private data root and credentials directory.
/// A data root of its own, with the credentials directory given (where
/// `login` writes `config.json`).
pub(crate) struct Dy {
    dy: Dockyard,
}

impl std::ops::Deref for Dy {
    type Target = Dockyard;
    fn deref(&self) -> &Dockyard {
        &self.dy
    }
}

impl Dy {
    pub(crate) fn new(config_dir: &Path) -> Dy {
        Dy {
            dy: Dockyard::empty("dockyard-reg").with_env("DOCKYARD_CONFIG_DIR", config_dir),
        }
    }

    /// A data root with the busybox base image loaded.
    pub(crate) fn with_base(config_dir: &Path) -> Dy {
        let dy = Dy::new(config_dir);
        dy.load_busybox();
        dy
    }

    /// Runs and expects the registry issue's exit 125; returns stderr.
    pub(crate) fn fails(&self, args: &[&str]) -> String {
        self.dy.fails(125, args)
    }

    pub(crate) fn path(&self) -> &Path {
        self.dy.root.path()
    }

    /// The manifest digest the store's index.json gives a name.
    pub(crate) fn manifest_of(&self, name: &str) -> Option<String> {
        let index: Value =
            serde_json::from_slice(&fs::read(self.path().join("index.json")).unwrap()).unwrap();
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["annotations"]["io.dockyard.image.name"] == name)
            .map(|d| d["digest"].as_str().unwrap().to_string())
    }

    /// The `Id` and `RootFS.Layers` (the config's diff IDs) that `inspect` shows.
    pub(crate) fn identity(&self, name: &str) -> (String, Vec<String>) {
        let doc: Value = serde_json::from_str(&self.ok(&["inspect", "--type", "image", name]))
            .expect("inspect prints JSON");
        let doc = doc.as_array().map(|a| a[0].clone()).unwrap_or(doc);
        let diff_ids = doc["RootFS"]["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_string())
            .collect();
        (doc["Id"].as_str().unwrap().to_string(), diff_ids)
    }

    /// Files in blobs/sha256, checked to hash to their names.
    pub(crate) fn verified_blobs(&self) -> Vec<String> {
        let mut out = Vec::new();
        for e in fs::read_dir(self.path().join("blobs/sha256")).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let bytes = fs::read(e.path()).unwrap();
            assert_eq!(
                hex::encode(sha2::Sha256::digest(&bytes)),
                name,
                "a blob in the store does not match its name"
            );
            out.push(format!("sha256:{name}"));
        }
        out.sort();
        out
    }
}

pub(crate) fn creds_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("dockyard-reg-creds-")
        .tempdir()
        .unwrap()
}

/// The base image's manifest, config and layer digests, from its layout.
pub(crate) fn base_digests() -> (String, String, String) {
    let dir = workspace_root().join("images/busybox/oci");
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let m: Value =
        serde_json::from_slice(&fs::read(dir.join("blobs/sha256").join(&manifest[7..])).unwrap())
            .unwrap();
    (
        manifest,
        m["config"]["digest"].as_str().unwrap().to_string(),
        m["layers"][0]["digest"].as_str().unwrap().to_string(),
    )
}

pub(crate) fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is missing: scripts/setup installs it");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}
