//! `dockyard pull`, `push`, `login` against a real registry: Debian's
//! `docker-registry` (distribution v2), one process per test on a free
//! loopback port, with its own storage directory (and htpasswd file for the
//! auth tests), killed when the test ends, even by panic. skopeo and podman
//! check that what dockyard pushes is what other tools read, and the other
//! way round. Every test has its own data roots and credentials directory.
//!
//! The Bearer token flow runs against distribution's own token auth, with
//! tests/token_server.py as the token issuer (lab 04's unit tests also run
//! it against a mock). A tiny fake registry in this file serves what
//! distribution cannot be made to do: a connection dropped half way through
//! a blob.

use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use dockyard_e2e::dockyard::{text, Dockyard};
use dockyard_e2e::fixtures::{require_root, workspace_root};
use serde_json::Value;
use sha2::Digest as _;

/// A `docker-registry` process on 127.0.0.1, stopped on drop.
struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        Self::start_with(None)
    }

    /// With `Some((user, password))`, the registry wants Basic auth.
    fn start_with(user: Option<(&str, &str)>) -> Registry {
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
    fn start_with_token(tokens: &TokenServer) -> Registry {
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
    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Where the registry keeps a blob's bytes.
    fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Requests the access log shows with this method and path fragment.
    fn requests(&self, method: &str, fragment: &str) -> usize {
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

const TOKEN_SERVICE: &str = "dockyard-test";
const TOKEN_ISSUER: &str = "dockyard-test-issuer";

/// tests/token_server.py on 127.0.0.1: signs ES256 JWTs for one user with
/// a key whose self-signed certificate it writes to `cert()`. Killed on drop.
struct TokenServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl TokenServer {
    fn start(user: &str, password: &str) -> TokenServer {
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
    fn requests(&self) -> Vec<Value> {
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
struct Dy {
    dy: Dockyard,
}

impl std::ops::Deref for Dy {
    type Target = Dockyard;
    fn deref(&self) -> &Dockyard {
        &self.dy
    }
}

impl Dy {
    fn new(config_dir: &Path) -> Dy {
        Dy {
            dy: Dockyard::empty("dockyard-reg").with_env("DOCKYARD_CONFIG_DIR", config_dir),
        }
    }

    /// A data root with the busybox base image loaded.
    fn with_base(config_dir: &Path) -> Dy {
        let dy = Dy::new(config_dir);
        dy.load_busybox();
        dy
    }

    /// Runs and expects the registry issue's exit 125; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        self.dy.fails(125, args)
    }

    fn path(&self) -> &Path {
        self.dy.root.path()
    }

    /// The manifest digest the store's index.json gives a name.
    fn manifest_of(&self, name: &str) -> Option<String> {
        let index: Value =
            serde_json::from_slice(&fs::read(self.path().join("index.json")).unwrap()).unwrap();
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["annotations"]["io.dockyard.image.name"] == name)
            .map(|d| d["digest"].as_str().unwrap().to_string())
    }

    /// The `Id` and `rootfs.diff_ids` that `inspect` shows.
    fn identity(&self, name: &str) -> (String, Vec<String>) {
        let doc: Value = serde_json::from_str(&self.ok(&["inspect", "--type", "image", name]))
            .expect("inspect prints JSON");
        let doc = doc.as_array().map(|a| a[0].clone()).unwrap_or(doc);
        let diff_ids = doc["rootfs"]["diff_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_string())
            .collect();
        (doc["Id"].as_str().unwrap().to_string(), diff_ids)
    }

    /// Files in blobs/sha256, checked to hash to their names.
    fn verified_blobs(&self) -> Vec<String> {
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

fn creds_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("dockyard-reg-creds-")
        .tempdir()
        .unwrap()
}

/// The base image's manifest, config and layer digests, from its layout.
fn base_digests() -> (String, String, String) {
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

fn skopeo(args: &[&str]) -> String {
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

#[test]
fn push_then_pull_round_trips_and_runs() {
    let reg = Registry::start();
    let creds = creds_dir();
    let (manifest, config, layer) = base_digests();
    let src = Dy::with_base(creds.path());
    let name = format!("{}/busybox:1", reg.host());
    src.ok(&["tag", "busybox", &name]);
    let out = src.ok(&["push", &name]);
    assert!(
        out.starts_with(&format!(
            "The push refers to repository [{}/busybox]\n",
            reg.host()
        )),
        "{out}"
    );
    assert!(out.contains(": Pushed\n"), "{out}");
    assert!(
        out.ends_with(&format!("1: digest: {manifest} size: 405\n")),
        "the manifest is pushed as stored, so its digest is kept:\n{out}"
    );
    // The registry has what we sent, byte for byte.
    assert_eq!(
        fs::read(reg.blob_data(&layer)).unwrap(),
        fs::read(src.path().join("blobs/sha256").join(&layer[7..])).unwrap()
    );
    assert_eq!(
        reg.requests("PATCH", "/blobs/uploads/"),
        0,
        "a small blob goes in one PUT"
    );

    let dst = Dy::new(creds.path());
    let out = dst.ok(&["pull", &name]);
    let short = &layer[7..19];
    assert!(out.starts_with("1: Pulling from busybox\n"), "{out}");
    assert!(out.contains(&format!("{short}: Pull complete\n")), "{out}");
    assert!(out.contains(&format!("Digest: {manifest}\n")), "{out}");
    assert!(
        out.ends_with(&format!(
            "Status: Downloaded newer image for {name}\n{name}\n"
        )),
        "{out}"
    );
    assert_eq!(dst.identity(&name), src.identity("busybox"));
    assert_eq!(dst.identity(&name).0, config);
    assert_eq!(dst.manifest_of(&name).as_deref(), Some(manifest.as_str()));
    let images = dst.ok(&["images"]);
    assert!(
        images
            .lines()
            .any(|l| l.split_whitespace().take(2).collect::<Vec<_>>()
                == [format!("{}/busybox", reg.host()).as_str(), "1"]),
        "docker shows the registry in REPOSITORY and the tag in TAG:\n{images}"
    );
    assert_eq!(dst.ok(&["run", "--rm", &name, "echo", "hi"]), "hi\n");

    // Pulled again: nothing is fetched.
    let gets = reg.requests("GET", &format!("/blobs/{layer}"));
    assert_eq!(gets, 1);
    let out = dst.ok(&["pull", &name]);
    assert!(out.contains(&format!("{short}: Already exists\n")), "{out}");
    assert!(
        out.contains(&format!("Status: Image is up to date for {name}\n")),
        "{out}"
    );
    assert_eq!(reg.requests("GET", &format!("/blobs/{layer}")), 1);
}

#[test]
fn chunked_uploads_and_cross_repository_mounts() {
    let reg = Registry::start();
    let creds = creds_dir();
    let (manifest, _, layer) = base_digests();
    let src = Dy::with_base(creds.path());
    let a = format!("{}/lib/busybox:1", reg.host());
    let b = format!("{}/other/bb:2", reg.host());
    src.ok(&["tag", "busybox", &a]);
    src.ok(&["tag", "busybox", &b]);
    let out = src
        .command(&["push", &a])
        .env("DOCKYARD_PUSH_CHUNK_SIZE", "262144")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // 1.7 MB in 256 KiB chunks: 7 PATCHes, then the closing PUT.
    let size = fs::metadata(reg.blob_data(&layer)).unwrap().len();
    let chunks = size.div_ceil(262144) as usize;
    assert!(chunks > 1);
    assert_eq!(
        reg.requests("PATCH", "/v2/lib/busybox/blobs/uploads/"),
        chunks
    );

    // Pushing it again: HEAD says the registry has it.
    let out = src.ok(&["push", &a]);
    assert!(out.contains(": Layer already exists\n"), "{out}");

    // Another repository of the same registry: mounted, not uploaded.
    let out = src.ok(&["push", &b]);
    assert!(out.contains(": Mounted from lib/busybox\n"), "{out}");
    assert!(
        out.ends_with(&format!("2: digest: {manifest} size: 405\n")),
        "{out}"
    );
    assert_eq!(
        reg.requests("POST", &format!("mount={layer}&from=lib/busybox")),
        1
    );
    assert_eq!(
        reg.requests("POST", "/v2/other/bb/blobs/uploads/?mount="),
        2,
        "the layer and the config are both mounted"
    );
    assert_eq!(reg.requests("PATCH", "/v2/other/bb/"), 0);
    assert_eq!(
        reg.requests("PUT", "/v2/other/bb/blobs/uploads/"),
        0,
        "nothing is uploaded"
    );

    let dst = Dy::new(creds.path());
    dst.ok(&["pull", &b]);
    assert_eq!(dst.ok(&["run", "--rm", &b, "echo", "mounted"]), "mounted\n");
}

#[test]
fn skopeo_and_podman_read_what_dockyard_pushes_and_the_other_way_round() {
    let reg = Registry::start();
    let creds = creds_dir();
    let (manifest, config, _) = base_digests();
    let src = Dy::with_base(creds.path());
    let name = format!("{}/busybox:1", reg.host());
    src.ok(&["tag", "busybox", &name]);
    src.ok(&["push", &name]);

    // skopeo copies what we pushed into an OCI layout, unchanged.
    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("oci");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &format!("oci:{}:x", layout.display()),
    ]);
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], manifest.as_str());

    // podman pulls it and computes the same image ID (podman_runs_what_dockyard_pushes
    // runs it, in a network namespace of its own).
    let pm = out.path().join("podman");
    let podman = |args: &[&str]| {
        let o = Command::new("podman")
            .arg("--root")
            .arg(pm.join("root"))
            .arg("--runroot")
            .arg(pm.join("run"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "none"])
            .args(args)
            .output()
            .expect("podman is missing: scripts/setup installs it");
        assert!(o.status.success(), "podman {args:?}: {}", text(&o.stderr));
        text(&o.stdout)
    };
    podman(&["pull", "--tls-verify=false", &name]);
    let id = podman(&["image", "inspect", "--format", "{{.Id}}", &name]);
    assert_eq!(format!("sha256:{}", id.trim()), config);

    // skopeo pushes a Docker schema 2 manifest; dockyard pulls and runs it.
    let theirs = format!("{}/x:1", reg.host());
    skopeo(&[
        "copy",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        &format!(
            "oci:{}",
            workspace_root().join("images/busybox/oci").display()
        ),
        &format!("docker://{theirs}"),
    ]);
    let dst = Dy::new(creds.path());
    dst.ok(&["pull", &theirs]);
    assert_eq!(
        dst.identity(&theirs).0,
        config,
        "the same config, so the same image ID"
    );
    let digest = dst.manifest_of(&theirs).unwrap();
    assert_ne!(digest, manifest, "a Docker manifest is other bytes");
    let stored = fs::read(dst.path().join("blobs/sha256").join(&digest[7..])).unwrap();
    let doc: Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(
        doc["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(dst.ok(&["run", "--rm", &theirs, "echo", "hi"]), "hi\n");
}

#[test]
fn an_index_selects_the_platform() {
    let reg = Registry::start();
    let creds = creds_dir();
    let (oci_manifest, _, _) = base_digests();
    let src = Dy::with_base(creds.path());
    let host = reg.host();
    src.ok(&["tag", "busybox", &format!("{host}/multi:oci")]);
    src.ok(&["push", &format!("{host}/multi:oci")]);
    skopeo(&[
        "copy",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        &format!(
            "oci:{}",
            workspace_root().join("images/busybox/oci").display()
        ),
        &format!("docker://{host}/multi:docker"),
    ]);
    let docker_manifest = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{host}/multi:docker"),
    ])
    .trim()
    .to_string();
    let size = |tag: &str| {
        skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{host}/multi:{tag}"),
        ])
        .len()
    };
    // An index, by hand: the OCI manifest for amd64, the Docker one (same
    // content, other bytes) labelled arm64/v8.
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": oci_manifest,
             "size": size("oci"), "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
             "digest": docker_manifest, "size": size("docker"),
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        ]
    });
    let bytes = serde_json::to_vec(&index).unwrap();
    let resp = ureq::put(&format!("http://{host}/v2/multi/manifests/1"))
        .set("Content-Type", "application/vnd.oci.image.index.v1+json")
        .send_bytes(&bytes)
        .expect("putting the index");
    assert_eq!(resp.status(), 201);
    let index_digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)));
    let name = format!("{host}/multi:1");

    let amd = Dy::new(creds.path());
    let out = amd.ok(&["pull", "--platform", "linux/amd64", &name]);
    assert!(
        out.contains(&format!("Digest: {index_digest}\n")),
        "docker prints the index's digest:\n{out}"
    );
    assert_eq!(amd.manifest_of(&name), Some(oci_manifest.clone()));

    let arm = Dy::new(creds.path());
    arm.ok(&["pull", "--platform", "linux/arm64", &name]);
    assert_eq!(arm.manifest_of(&name), Some(docker_manifest));

    let none = Dy::new(creds.path());
    let err = none.fails(&["pull", "--platform", "linux/s390x", &name]);
    assert!(
        err.contains("no matching manifest for linux/s390x")
            && err.contains("linux/amd64, linux/arm64/v8"),
        "{err}"
    );
    assert_eq!(none.manifest_of(&name), None);
}

#[test]
fn basic_auth_login_push_pull_logout() {
    let reg = Registry::start_with(Some(("alice", "s3cret")));
    let creds = creds_dir();
    let src = Dy::with_base(creds.path());
    let host = reg.host();
    let name = format!("{host}/private:1");
    src.ok(&["tag", "busybox", &name]);

    let err = src.fails(&["push", &name]);
    assert!(
        err.contains(&format!("registry {host} requires authentication"))
            && err.contains("401")
            && err.contains(&format!("dockyard login {host}")),
        "{err}"
    );
    let config = creds.path().join("config.json");

    let err = src.fails(&["login", "-u", "alice", "-p", "wrong", &host]);
    assert!(err.contains("incorrect username or password"), "{err}");
    assert!(!config.exists(), "a failed login stores nothing");

    let mut login = src.command(&["login", "-u", "alice", "--password-stdin", &host]);
    let mut child = login
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).ends_with("Login Succeeded\n"));
    assert_eq!(
        fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let doc: Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    assert_eq!(
        doc["auths"][host.as_str()]["auth"],
        "YWxpY2U6czNjcmV0",
        "base64(alice:s3cret)"
    );

    let out = src.ok(&["push", &name]);
    assert!(out.contains(": Pushed\n"), "{out}");
    let dst = Dy::new(creds.path());
    dst.ok(&["pull", &name]);

    assert_eq!(
        src.ok(&["logout", &host]),
        format!("Removing login credentials for {host}\n")
    );
    let doc: Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    assert!(doc["auths"].get(host.as_str()).is_none());
    let fresh = Dy::new(creds.path());
    let err = fresh.fails(&["pull", &name]);
    assert!(err.contains("requires authentication"), "{err}");
    assert_eq!(
        src.ok(&["logout", &host]),
        format!("Not logged in to {host}\n")
    );
}

#[test]
fn a_corrupted_blob_is_refused_and_the_store_is_unchanged() {
    let reg = Registry::start();
    let creds = creds_dir();
    let (_, config, layer) = base_digests();
    let src = Dy::with_base(creds.path());
    let name = format!("{}/busybox:1", reg.host());
    src.ok(&["tag", "busybox", &name]);
    src.ok(&["push", &name]);

    // Flip one byte of the layer in the registry's storage.
    let data = reg.blob_data(&layer);
    let mut bytes = fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&data, &bytes).unwrap();

    let dst = Dy::new(creds.path());
    let err = dst.fails(&["pull", &name]);
    assert!(
        err.contains(&format!("pulling {name}"))
            && err.contains(&reg.host())
            && err.contains(&format!("blob {layer} is corrupted")),
        "{err}"
    );
    assert_eq!(dst.manifest_of(&name), None, "no image name");
    // Only whole, verified blobs: the config (verified), not the layer.
    assert_eq!(dst.verified_blobs(), vec![config]);
    assert_eq!(fs::read_dir(dst.path().join("tmp")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(dst.path().join("layers")).unwrap().count(), 0);
}

#[test]
fn missing_tags_and_bad_references_are_clear_errors() {
    let reg = Registry::start();
    let creds = creds_dir();
    let dy = Dy::new(creds.path());
    let name = format!("{}/nothing:here", reg.host());
    let err = dy.fails(&["pull", &name]);
    assert!(
        err.contains(&format!("manifest for {}/nothing:here", reg.host()))
            && err.contains("manifest unknown"),
        "{err}"
    );
    let err = dy.fails(&["pull", "Busybox"]);
    assert!(err.contains("invalid reference format"), "{err}");
    let err = dy.fails(&["push", &format!("{}/absent:1", reg.host())]);
    assert!(err.contains("An image does not exist locally"), "{err}");
}

/// An OCI layout with one uncompressed layer holding `size` bytes: big
/// enough for a pull to be caught in the middle.
fn big_image(dir: &Path, size: usize) {
    let mut layer = Vec::with_capacity(size + 2048);
    {
        let mut tar = tar::Builder::new(&mut layer);
        let mut h = tar::Header::new_gnu();
        h.set_size(size as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let data: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        tar.append_data(&mut h, "big", &data[..]).unwrap();
        tar.finish().unwrap();
    }
    let sha = |b: &[u8]| format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)));
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        let d = sha(b);
        fs::write(blobs.join(&d[7..]), b).unwrap();
        d
    };
    let layer_digest = put(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": []
    }))
    .unwrap();
    let config_digest = put(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer.len()}]
    }))
    .unwrap();
    let manifest_digest = put(&manifest);
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "digest": manifest_digest, "size": manifest.len(),
                           "annotations": {"org.opencontainers.image.ref.name": "big"}}]
        }))
        .unwrap(),
    )
    .unwrap();
}

#[test]
fn an_interrupted_pull_leaves_no_partial_blob() {
    let reg = Registry::start();
    let creds = creds_dir();
    let layout = tempfile::tempdir().unwrap();
    big_image(layout.path(), 64 << 20);
    let name = format!("{}/big:1", reg.host());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:big", layout.path().display()),
        &format!("docker://{name}"),
    ]);

    let dy = Dy::new(creds.path());
    let mut child = dy
        .command(&["pull", &name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it while the layer is half-written in downloads/.
    let tmp = dy.path().join("tmp");
    let downloads = dy.path().join("downloads");
    let deadline = Instant::now() + Duration::from_secs(60);
    let caught = loop {
        let partial = fs::read_dir(&downloads).ok().and_then(|rd| {
            rd.flatten()
                .find(|e| e.metadata().map(|m| m.len() > 1 << 20).unwrap_or(false))
        });
        if partial.is_some() {
            child.kill().unwrap();
            break true;
        }
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let status = child.wait().unwrap();
    assert!(
        caught,
        "the pull ended ({status:?}) before it could be interrupted"
    );
    assert!(!status.success());

    // Only whole blobs are visible, each matching its name; no image name.
    let blobs = dy.verified_blobs();
    assert!(blobs.len() <= 1, "at most the config: {blobs:?}");
    assert_eq!(dy.manifest_of(&name), None);

    // The next pull resumes the download, verifies it whole, and completes.
    let out = dy.ok(&["pull", &name]);
    assert!(out.contains("Status: Downloaded newer image"), "{out}");
    assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
    assert_eq!(fs::read_dir(&downloads).unwrap().count(), 0);
    assert_eq!(dy.verified_blobs().len(), 3);
    // The image has no shell to run: look at the unpacked layer instead.
    let layers: Vec<_> = fs::read_dir(dy.path().join("layers"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(layers.len(), 1);
    let big = fs::metadata(layers[0].path().join("diff/big")).unwrap();
    assert_eq!(big.len(), 64 << 20);
}

#[test]
fn registry_mirrors_and_insecure_registries_come_from_daemon_json() {
    // A mirror of Docker Hub on loopback: `busybox` is pulled from it, and
    // never from Docker Hub (which this machine cannot reach).
    let mirror = Registry::start();
    let creds = creds_dir();
    let src = Dy::with_base(creds.path());
    let on_mirror = format!("{}/library/busybox:latest", mirror.host());
    src.ok(&["tag", "busybox", &on_mirror]);
    src.ok(&["push", &on_mirror]);
    let cfg = tempfile::NamedTempFile::new().unwrap();
    fs::write(
        cfg.path(),
        format!(
            r#"{{"registry-mirrors": ["http://{}"], "insecure-registries": ["10.0.0.0/8"]}}"#,
            mirror.host()
        ),
    )
    .unwrap();
    let dy = Dy::new(creds.path());
    let out = dy.ok(&["--config", cfg.path().to_str().unwrap(), "pull", "busybox"]);
    assert!(
        out.starts_with("Using default tag: latest\nlatest: Pulling from library/busybox\n"),
        "{out}"
    );
    assert!(
        out.ends_with(
            "Status: Downloaded newer image for busybox:latest\ndocker.io/library/busybox:latest\n"
        ),
        "{out}"
    );
    assert_eq!(
        mirror.requests("GET", "/v2/library/busybox/manifests/latest"),
        1
    );
    assert_eq!(dy.ok(&["run", "--rm", "busybox", "echo", "hi"]), "hi\n");
    // docker.io/library/busybox names the same image.
    assert_eq!(
        dy.identity("docker.io/library/busybox").0,
        dy.identity("busybox").0
    );
}

#[test]
fn the_token_flow_against_a_real_registry() {
    let tokens = TokenServer::start("alice", "s3cret");
    let reg = Registry::start_with_token(&tokens);
    let creds = creds_dir();
    let src = Dy::with_base(creds.path());
    let host = reg.host();
    let name = format!("{host}/team/busybox:1");
    src.ok(&["tag", "busybox", &name]);

    // Anonymous: the token server hands out a token that grants nothing,
    // the registry refuses it, and the client says to log in.
    let err = src.fails(&["push", &name]);
    assert!(
        err.contains(&format!("registry {host} requires authentication"))
            && err.contains(&format!("dockyard login {host}")),
        "{err}"
    );
    let anonymous = tokens.requests();
    assert!(!anonymous.is_empty());
    assert!(
        anonymous.iter().all(|r| r["user"].is_null()),
        "{anonymous:?}"
    );

    // A wrong password: the token server itself refuses it.
    let err = src.fails(&["login", "-u", "alice", "-p", "wrong", &host]);
    assert!(
        err.contains("token server") && err.contains("incorrect username or password"),
        "{err}"
    );
    assert!(!creds.path().join("config.json").exists());

    let out = src.ok(&["login", "-u", "alice", "-p", "s3cret", &host]);
    assert!(out.ends_with("Login Succeeded\n"), "{out}");
    let out = src.ok(&["push", &name]);
    assert!(out.contains(": Pushed\n"), "{out}");
    // The registry verified alice's JWTs: its log names her, per request.
    assert!(reg.log().contains("auth.user.name=alice"), "{}", reg.log());
    let asked: Vec<Value> = tokens
        .requests()
        .into_iter()
        .filter(|r| r["user"] == "alice")
        .collect();
    assert!(
        asked.iter().all(|r| r["service"] == TOKEN_SERVICE),
        "{asked:?}"
    );
    // Push and pull on the repository, in whichever order the challenge
    // that led to it listed them (a HEAD, a POST and a PUT may each get
    // their own, and the uploads run in parallel).
    let pushes = |r: &Value| {
        r["scope"].as_array().into_iter().flatten().any(|s| {
            let s = s.as_str().unwrap_or_default();
            s.strip_prefix("repository:team/busybox:")
                .is_some_and(|actions| {
                    let actions: Vec<&str> = actions.split(',').collect();
                    actions.contains(&"pull") && actions.contains(&"push")
                })
        })
    };
    assert!(
        asked.iter().any(pushes),
        "the challenge's scope is what was asked for: {asked:?}"
    );

    let dst = Dy::new(creds.path());
    dst.ok(&["pull", &name]);
    assert_eq!(dst.identity(&name), src.identity("busybox"));
    assert_eq!(dst.ok(&["run", "--rm", &name, "echo", "token"]), "token\n");

    // Logged out, the pull is refused again, with the same clear message.
    src.ok(&["logout", &host]);
    let fresh = Dy::new(creds.path());
    let err = fresh.fails(&["pull", &name]);
    assert!(err.contains("requires authentication"), "{err}");
    assert_eq!(fresh.manifest_of(&name), None);
}

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

#[test]
fn zstd_layers_are_pulled_loaded_saved_and_run() {
    let reg = Registry::start();
    let creds = creds_dir();
    let (_, config, gzip_layer) = base_digests();
    let base = workspace_root().join("images/busybox/oci");
    let base_dy = Dy::with_base(creds.path());
    let base_diff_ids = base_dy.identity("busybox").1;

    // skopeo recompresses the gzip layer with zstd on the way.
    let name = format!("{}/zbox:1", reg.host());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-compress-format",
        "zstd",
        &format!("oci:{}", base.display()),
        &format!("docker://{name}"),
    ]);
    let dy = Dy::new(creds.path());
    dy.ok(&["pull", &name]);
    let digest = dy.manifest_of(&name).unwrap();
    let manifest: Value = serde_json::from_slice(
        &fs::read(dy.path().join("blobs/sha256").join(&digest[7..])).unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(layer, gzip_layer);
    // Verified (every blob hashes to its name) and really zstd.
    assert!(dy.verified_blobs().contains(&layer));
    let blob = fs::read(dy.path().join("blobs/sha256").join(&layer[7..])).unwrap();
    assert!(
        blob.starts_with(&ZSTD_MAGIC),
        "not zstd: {:02x?}",
        &blob[..4]
    );
    // The same tar inside: the same diff_id, config and image ID.
    assert_eq!(dy.identity(&name), (config.clone(), base_diff_ids.clone()));
    assert_eq!(dy.ok(&["run", "--rm", &name, "echo", "zstd"]), "zstd\n");

    // `load` of an OCI layout whose layer is zstd.
    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("zstd-oci");
    skopeo(&[
        "copy",
        "--dest-compress-format",
        "zstd",
        &format!("oci:{}", base.display()),
        &format!("oci:{}:zbox", layout.display()),
    ]);
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"][0]["digest"].as_str().unwrap();
    let m: Value =
        serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(&m[7..])).unwrap())
            .unwrap();
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let loaded = Dy::new(creds.path());
    let said = loaded.ok(&["load", "-i", layout.to_str().unwrap()]);
    let loaded_name = said
        .lines()
        .find_map(|l| l.strip_prefix("Loaded image: "))
        .unwrap_or_else(|| panic!("{said}"))
        .to_string();
    assert_eq!(loaded.identity(&loaded_name).1, base_diff_ids);
    assert_eq!(
        loaded.ok(&["run", "--rm", &loaded_name, "echo", "loaded"]),
        "loaded\n"
    );

    // `save` (a docker-archive holds plain tars) and `load` it elsewhere.
    let archive = out.path().join("z.tar");
    dy.ok(&["save", "-o", archive.to_str().unwrap(), &name]);
    let again = Dy::new(creds.path());
    again.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(again.identity(&name).1, base_diff_ids);
    assert_eq!(
        again.ok(&["run", "--rm", &name, "echo", "saved"]),
        "saved\n"
    );
}

/// One request as the fake registry saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    range: Option<String>,
}

/// A fake registry on 127.0.0.1 serving one image, `fake:1`, from `blobs`
/// (digest -> bytes): the first GET of `layer` sends its headers and half
/// of it, then drops the connection. With `ranges`, later GETs honour
/// `Range: bytes=N-` with 206; without, they send the whole blob (200), as
/// a registry without range support does. Every request is logged.
fn fake_registry(
    manifest: (String, Vec<u8>),
    blobs: std::collections::HashMap<String, Vec<u8>>,
    layer: String,
    ranges: bool,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<Seen>>>) {
    use std::io::{BufRead, BufReader};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Seen>::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            let mut words = line.split_whitespace();
            let method = words.next().unwrap_or("").to_string();
            let path = words.next().unwrap_or("").to_string();
            let mut range = None;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("range") {
                        range = Some(v.trim().to_string());
                    }
                }
            }
            let first_layer_get = {
                let mut log = log.lock().unwrap();
                let first = !log
                    .iter()
                    .any(|s| s.method == "GET" && s.path.ends_with(&layer));
                log.push(Seen {
                    method: method.clone(),
                    path: path.clone(),
                    range: range.clone(),
                });
                first && path.ends_with(&layer)
            };
            let (status, mut headers, body): (&str, Vec<String>, Vec<u8>) = if path == "/v2/" {
                ("200 OK", vec![], b"{}".to_vec())
            } else if path == "/v2/fake/manifests/1" || path.ends_with(&manifest.0) {
                (
                    "200 OK",
                    vec![
                        "Content-Type: application/vnd.oci.image.manifest.v1+json".into(),
                        format!("Docker-Content-Digest: {}", manifest.0),
                    ],
                    manifest.1.clone(),
                )
            } else if let Some(blob) = path
                .strip_prefix("/v2/fake/blobs/")
                .and_then(|d| blobs.get(d))
            {
                let from = range
                    .as_deref()
                    .and_then(|r| r.strip_prefix("bytes="))
                    .and_then(|r| r.strip_suffix('-'))
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|_| ranges);
                match from {
                    Some(n) if n < blob.len() => (
                        "206 Partial Content",
                        vec![format!(
                            "Content-Range: bytes {n}-{}/{}",
                            blob.len() - 1,
                            blob.len()
                        )],
                        blob[n..].to_vec(),
                    ),
                    _ => ("200 OK", vec![], blob.clone()),
                }
            } else {
                ("404 Not Found", vec![], b"{\"errors\":[]}".to_vec())
            };
            headers.push(format!("Content-Length: {}", body.len()));
            headers.push("Connection: close".into());
            let head = format!("HTTP/1.1 {status}\r\n{}\r\n\r\n", headers.join("\r\n"));
            let _ = conn.write_all(head.as_bytes());
            if method == "HEAD" {
                continue;
            }
            if first_layer_get {
                // Half of it, then the connection drops.
                let _ = conn.write_all(&body[..body.len() / 2]);
                let _ = conn.flush();
                let _ = conn.shutdown(std::net::Shutdown::Both);
                continue;
            }
            let _ = conn.write_all(&body);
        }
    });
    (port, seen)
}

/// The base image's manifest, config and layer, as (digest, bytes).
fn base_blobs() -> [(String, Vec<u8>); 3] {
    let (manifest, config, layer) = base_digests();
    let read = |d: &str| {
        fs::read(
            workspace_root()
                .join("images/busybox/oci/blobs/sha256")
                .join(&d[7..]),
        )
        .unwrap()
    };
    [
        (manifest.clone(), read(&manifest)),
        (config.clone(), read(&config)),
        (layer.clone(), read(&layer)),
    ]
}

#[test]
fn a_dropped_download_resumes_with_a_range_request() {
    require_root();
    let [manifest, config, layer] = base_blobs();
    let blobs: std::collections::HashMap<String, Vec<u8>> =
        [config.clone(), layer.clone()].into_iter().collect();
    let half = layer.1.len() / 2;
    let creds = creds_dir();

    for ranges in [true, false] {
        let (port, seen) = fake_registry(manifest.clone(), blobs.clone(), layer.0.clone(), ranges);
        let name = format!("127.0.0.1:{port}/fake:1");
        let dy = Dy::new(creds.path());

        let err = dy.fails(&["pull", &name]);
        assert!(
            err.contains(&format!("downloading layer {}", layer.0))
                && err.contains(&format!(
                    "interrupted after {half} of {} bytes",
                    layer.1.len()
                )),
            "{err}"
        );
        // The store is as it was, plus the config (a whole, verified blob):
        // no name, no layer, nothing in tmp/, and the half layer is not a
        // blob: it waits in downloads/, under the digest it must hash to.
        assert_eq!(dy.manifest_of(&name), None);
        assert_eq!(dy.verified_blobs(), vec![config.0.clone()]);
        assert_eq!(fs::read_dir(dy.path().join("layers")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(dy.path().join("tmp")).unwrap().count(), 0);
        let partial = dy.path().join("downloads").join(&layer.0[7..]);
        assert_eq!(fs::metadata(&partial).unwrap().len(), half as u64);
        assert!(dy.ok(&["images", "-q"]).is_empty());

        let out = dy.ok(&["pull", &name]);
        assert!(out.contains("Status: Downloaded newer image"), "{out}");
        let gets: Vec<Seen> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.method == "GET" && s.path.ends_with(&layer.0))
            .cloned()
            .collect();
        assert_eq!(gets.len(), 2, "{gets:?}");
        assert_eq!(gets[0].range, None, "the first try asks for all of it");
        // The second asks for the rest only; the fake server answers 206
        // with ranges, else 200 and the whole blob, which is taken whole.
        assert_eq!(gets[1].range.as_deref(), Some(&*format!("bytes={half}-")));
        let mut all = vec![manifest.0.clone(), config.0.clone(), layer.0.clone()];
        all.sort();
        assert_eq!(dy.verified_blobs(), all);
        assert_eq!(
            fs::read_dir(dy.path().join("downloads")).unwrap().count(),
            0
        );
        assert_eq!(
            dy.ok(&["run", "--rm", &name, "echo", "resumed"]),
            "resumed\n",
            "ranges: {ranges}"
        );
    }
}

/// podman's storage, run and temp directories, and a cgroup parent, all
/// its own, removed on drop: every mount under the directory, every
/// process that names it, and the cgroup parent in every hierarchy (podman
/// puts the container's `libpod-<id>` and its `conmon` cgroups there).
struct PodmanSandbox {
    dir: tempfile::TempDir,
    parent: String,
}

impl PodmanSandbox {
    fn new() -> PodmanSandbox {
        PodmanSandbox {
            dir: tempfile::Builder::new()
                .prefix("dockyard-podman-")
                .tempdir()
                .unwrap(),
            parent: format!("dockyard-e2e-podman-{}", std::process::id()),
        }
    }

    fn storage(&self) -> String {
        format!(
            "[vfs@{}+{}]",
            self.dir.path().join("root").display(),
            self.dir.path().join("runroot").display()
        )
    }

    /// `podman ARGS` inside a fresh network namespace, so that podman (and
    /// netavark) can never change the host's network.
    fn podman(&self, args: &[&str]) -> Output {
        let d = self.dir.path();
        Command::new("unshare")
            .args(["--net", "podman"])
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args(["--storage-driver", "vfs", "--events-backend", "none"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("podman is missing: scripts/setup installs it")
    }

    fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for h in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            if h.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                let p = h.path().join(&self.parent);
                if p.exists() {
                    out.push(p);
                }
            }
        }
        out
    }

    fn processes(&self) -> Vec<i32> {
        let needle = self.dir.path().to_string_lossy().into_owned();
        fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                    .unwrap_or(false)
            })
            .collect()
    }

    fn mounts(&self) -> Vec<String> {
        let needle = self.dir.path().to_string_lossy().into_owned();
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4))
            .filter(|m| m.starts_with(&needle))
            .map(str::to_string)
            .collect()
    }

    /// Removes what podman left; returns what there was, for the test.
    fn clean(&self) -> (Vec<i32>, Vec<String>, Vec<PathBuf>) {
        let procs = self.processes();
        for pid in &procs {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let mut mounts = self.mounts();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in &mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        let cgroups = self.cgroup_dirs();
        for top in &cgroups {
            rmdir_tree(top);
        }
        (procs, mounts, cgroups)
    }
}

/// Removes a cgroup directory and its children, deepest first (a cgroup is
/// removed with rmdir, never with its files).
fn rmdir_tree(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                rmdir_tree(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

impl Drop for PodmanSandbox {
    fn drop(&mut self) {
        self.clean();
    }
}

#[test]
fn podman_runs_what_dockyard_pushes() {
    let reg = Registry::start();
    let creds = creds_dir();
    let src = Dy::with_base(creds.path());
    let name = format!("{}/busybox:podman", reg.host());
    src.ok(&["tag", "busybox", &name]);
    src.ok(&["push", &name]);

    let pm = PodmanSandbox::new();
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &format!("containers-storage:{}{name}", pm.storage()),
    ]);
    let cgroup_parent = format!("--cgroup-parent=/{}", pm.parent);
    let out = pm.podman(&[
        "run",
        "--rm",
        "--runtime",
        "runc",
        "--cgroup-manager=cgroupfs",
        &cgroup_parent,
        "--ulimit",
        "nofile=20000:20000",
        "--ulimit",
        "nproc=32768:32768",
        "--network=none",
        &name,
        "sh",
        "-c",
        "echo from podman; cat /proc/self/cgroup",
    ]);
    assert!(
        out.status.success(),
        "podman run: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("from podman\n"), "{stdout}");
    // The container ran under the cgroup parent given, not libpod_parent.
    assert!(
        stdout.contains(&format!("/{}/libpod-", pm.parent)),
        "{stdout}"
    );

    // Nothing is left running or mounted; the cgroups were podman's to
    // leave, and ours to remove. conmon runs `podman container cleanup`
    // when the container exits, which may outlive `podman run` a moment:
    // give it time to end on its own.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pm.processes().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (procs, mounts, cgroups) = pm.clean();
    assert!(procs.is_empty(), "podman left processes: {procs:?}");
    assert!(mounts.is_empty(), "podman left mounts: {mounts:?}");
    assert!(
        pm.cgroup_dirs().is_empty(),
        "cgroups left: {:?}",
        pm.cgroup_dirs()
    );
    assert!(!cgroups.is_empty(), "podman used the cgroup parent");
}
