//! Lab 04, observed from the kernel and the filesystem: what a container's
//! writes leave in its upper dir and what they leave untouched in the image's
//! layers, what the mount table shows inside, what a killed import leaves in
//! the store, and whether the store's documents are valid OCI.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use dockyard_e2e::fixtures::{base_rootfs, bin, host_mount_points, require_root, workspace_root};

/// A store in a temporary directory. On drop, anything still mounted below
/// it is detached first (even when the test failed), then it is removed.
struct TestStore {
    dir: tempfile::TempDir,
}

impl TestStore {
    fn new() -> Self {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("dockyard-lab04-")
            .tempdir()
            .expect("creating a temporary directory");
        TestStore { dir }
    }
    fn path(&self) -> PathBuf {
        self.dir.path().join("store")
    }
    fn scratch(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
    fn cmd(&self) -> Command {
        let mut c = Command::new(bin("lab04-overlay"));
        c.arg("--store").arg(self.path());
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd()
            .args(args)
            .output()
            .expect("running lab04-overlay")
    }
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "lab04-overlay {args:?} failed: {:?}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn load_base(&self) {
        let oci = workspace_root().join("images/busybox/oci");
        let out = self.ok(&["load", oci.to_str().unwrap()]);
        assert_eq!(out.trim(), "Loaded image: busybox:latest");
    }
    /// The only container's directory.
    fn containers(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.path().join("containers"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    }
    fn layer_dirs(&self) -> Vec<PathBuf> {
        fs::read_dir(self.path().join("layers"))
            .unwrap()
            .map(|e| e.unwrap().path().join("diff"))
            .collect()
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let prefix = self.dir.path().to_string_lossy().to_string();
        for m in host_mount_points().into_iter().rev() {
            if m.starts_with(&prefix) {
                let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

fn is_whiteout(p: &Path) -> bool {
    fs::symlink_metadata(p)
        .map(|m| m.file_type().is_char_device() && m.rdev() == 0)
        .unwrap_or(false)
}

fn no_mounts_below(path: &Path) {
    let prefix = path.to_string_lossy().to_string();
    let left: Vec<String> = host_mount_points()
        .into_iter()
        .filter(|m| m.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "mounts left on the host: {left:?}");
}

#[test]
fn loading_the_base_image_unpacks_one_shared_layer() {
    let st = TestStore::new();
    st.load_base();
    let images = st.ok(&["images"]);
    assert!(
        images
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("busybox      latest   "),
        "{images}"
    );
    let layers = st.layer_dirs();
    assert_eq!(layers.len(), 1);
    assert!(layers[0].join("bin/busybox").is_file());
    // Loading again shares the layer instead of unpacking it twice.
    let ino = fs::metadata(layers[0].join("bin/busybox")).unwrap().ino();
    st.load_base();
    assert_eq!(st.layer_dirs().len(), 1);
    assert_eq!(
        fs::metadata(layers[0].join("bin/busybox")).unwrap().ino(),
        ino
    );
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(st.path().join("index.json")).unwrap()).unwrap();
    let a = &index["manifests"][0]["annotations"];
    assert_eq!(a["org.opencontainers.image.ref.name"], "latest");
    assert_eq!(a["io.dockyard.image.name"], "busybox:latest");
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
}

#[test]
fn copy_on_write_shows_in_the_upper_dir_and_not_in_the_layer() {
    let st = TestStore::new();
    st.load_base();
    let out = st.run(&[
        "run",
        "--image",
        "busybox",
        "--",
        "/bin/sh",
        "-c",
        "echo added > /tmp/added && echo changed >> /etc/passwd && rm /bin/vi && rm -r /home && mkdir /home && touch /home/fresh",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in [
        "A /tmp/added",
        "C /etc/passwd",
        "D /bin/vi",
        "C /home",
        "A /home/fresh",
    ] {
        assert!(
            stderr.lines().any(|l| l == line),
            "no {line:?} in:\n{stderr}"
        );
    }

    let containers = st.containers();
    assert_eq!(containers.len(), 1);
    let upper = containers[0].join("upper");
    let lower = &st.layer_dirs()[0];
    let base = base_rootfs();

    // A new file: only in the upper dir.
    assert_eq!(
        fs::read_to_string(upper.join("tmp/added")).unwrap(),
        "added\n"
    );
    assert!(!lower.join("tmp/added").exists());
    // A modified file: copied up whole, then changed; the layer is unchanged.
    let original = fs::read_to_string(base.join("etc/passwd")).unwrap();
    assert_eq!(
        fs::read_to_string(upper.join("etc/passwd")).unwrap(),
        format!("{original}changed\n")
    );
    assert_eq!(
        fs::read_to_string(lower.join("etc/passwd")).unwrap(),
        original
    );
    // A deleted file: a whiteout above, the file still below.
    assert!(is_whiteout(&upper.join("bin/vi")));
    assert!(fs::symlink_metadata(lower.join("bin/vi")).is_ok());
    // A deleted then re-created directory: opaque above.
    let opaque = xattr(&upper.join("home"), "trusted.overlay.opaque");
    assert_eq!(opaque.as_deref(), Some(&b"y"[..]));
    // Untouched files are not copied.
    assert!(!upper.join("bin/busybox").exists());
    // The overlay lived in the container's mount namespace only.
    no_mounts_below(&st.scratch());

    let diff = st.ok(&[
        "diff",
        &containers[0].file_name().unwrap().to_string_lossy()[..12],
    ]);
    assert!(diff.lines().any(|l| l == "D /bin/vi"), "{diff}");
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: valid C strings and buffer.
    let len = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), 64) };
    (len >= 0).then(|| buf[..len as usize].to_vec())
}

#[test]
fn two_containers_share_the_layers_and_have_their_own_upper_dirs() {
    let st = TestStore::new();
    st.load_base();
    let mountinfo = |file: &str| {
        let out = st.ok(&[
            "run",
            "-q",
            "--image",
            "busybox",
            "--",
            "/bin/sh",
            "-c",
            &format!("touch /{file} && cat /proc/self/mountinfo"),
        ]);
        let root = out
            .lines()
            .find(|l| l.split(' ').nth(4) == Some("/"))
            .unwrap_or_else(|| panic!("no / in mountinfo:\n{out}"))
            .to_string();
        let opt = |key: &str| {
            root.split([',', ' '])
                .find_map(|o| o.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("no {key} in {root}"))
                .to_string()
        };
        assert!(root.contains(" - overlay overlay "), "{root}");
        (opt("lowerdir"), opt("upperdir"))
    };
    let (lower1, upper1) = mountinfo("one");
    let (lower2, upper2) = mountinfo("two");
    assert_eq!(lower1, lower2, "the same layer dirs");
    assert!(lower1.contains("/l/"), "short layer links: {lower1}");
    assert_ne!(upper1, upper2);
    let c = st.containers();
    assert_eq!(c.len(), 2);
    let files = |d: &Path| -> Vec<String> {
        fs::read_dir(d.join("upper"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let (a, b) = (files(&c[0]), files(&c[1]));
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(b.len(), 1, "{b:?}");
    assert_ne!(a, b);
    assert!(!st.layer_dirs()[0].join("one").exists());
    no_mounts_below(&st.scratch());
}

#[test]
fn commit_turns_the_upper_dir_into_a_layer_with_whiteouts() {
    let st = TestStore::new();
    st.load_base();
    st.ok(&[
        "run",
        "-q",
        "--image",
        "busybox",
        "--",
        "/bin/sh",
        "-c",
        "rm /bin/vi && echo v2 > /etc/version",
    ]);
    let id = st.containers()[0].file_name().unwrap().to_string_lossy()[..12].to_string();
    st.ok(&["commit", &id, "mine:v2"]);
    assert_eq!(
        st.layer_dirs().len(),
        2,
        "the base layer is shared, one new layer"
    );
    let layers = st.ok(&["layers", "mine:v2"]);
    assert_eq!(layers.matches("diff_id:").count(), 2, "{layers}");
    let out = st.ok(&[
        "run",
        "-q",
        "--rm",
        "--image",
        "mine:v2",
        "--",
        "/bin/sh",
        "-c",
        "cat /etc/version; test -e /bin/vi && echo vi || echo no-vi",
    ]);
    assert_eq!(out, "v2\nno-vi\n");
    let new_layer = st
        .layer_dirs()
        .into_iter()
        .find(|d| d.join("etc/version").exists())
        .expect("the committed layer");
    assert!(is_whiteout(&new_layer.join("bin/vi")));
}

/// A directory's files as (path, kind, mode, content or target).
fn snapshot_tar(tar_path: &Path) -> Vec<(String, String)> {
    let mut a = tar::Archive::new(fs::File::open(tar_path).unwrap());
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        let path = path.trim_start_matches("./").to_string();
        if path.is_empty() || path == "." {
            continue;
        }
        let h = e.header().clone();
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut content).unwrap();
        let what = format!(
            "{:?} {:o} {} {}",
            h.entry_type(),
            h.mode().unwrap() & 0o7777,
            e.link_name()
                .unwrap()
                .map(|l| l.display().to_string())
                .unwrap_or_default(),
            dockyard_e2e_sha(&content)
        );
        out.push((path, what));
    }
    out.sort();
    out
}

fn dockyard_e2e_sha(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn import_then_export_gives_back_the_same_files() {
    let st = TestStore::new();
    let tarball = st.scratch().join("rootfs.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(base_rootfs())
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let id = st.ok(&["import", tarball.to_str().unwrap(), "imported:1"]);
    assert!(id.starts_with("sha256:"), "{id}");
    st.ok(&["run", "-q", "--image", "imported:1", "--", "/bin/true"]);
    let c = st.containers()[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let exported = st.scratch().join("export.tar");
    st.ok(&["export", &c, "-o", exported.to_str().unwrap()]);
    no_mounts_below(&st.scratch());
    assert_eq!(snapshot_tar(&tarball), snapshot_tar(&exported));
}

#[test]
fn a_corrupted_blob_is_detected_and_nothing_is_stored() {
    let st = TestStore::new();
    let copy = st.scratch().join("oci");
    let status = Command::new("cp")
        .arg("-a")
        .arg(workspace_root().join("images/busybox/oci"))
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    // The biggest blob is the layer: flip one byte in its middle.
    let blobs = copy.join("blobs/sha256");
    let layer = fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = fs::read(&layer).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&layer, bytes).unwrap();

    let out = st.run(&["load", copy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("corrupted"), "{stderr}");
    let name = layer.file_name().unwrap();
    assert!(stderr.contains(&*name.to_string_lossy()), "{stderr}");
    assert!(!st.path().join("blobs/sha256").join(name).exists());
    assert!(st.layer_dirs().is_empty());
    assert_eq!(st.ok(&["images"]).lines().count(), 1, "only the header");
    assert_eq!(fs::read_dir(st.path().join("tmp")).unwrap().count(), 0);
}

/// Writes an OCI layout with one big uncompressed layer (many files), so
/// that unpacking it takes long enough to be interrupted.
fn big_layout(dir: &Path) {
    use std::io::Write;
    let mut b = tar::Builder::new(Vec::new());
    let data = vec![b'x'; 2048];
    for i in 0..30_000 {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, format!("d{}/f{i}", i % 100), &data[..])
            .unwrap();
    }
    let layer = b.into_inner().unwrap();
    let sha = |b: &[u8]| format!("sha256:{}", dockyard_e2e_sha(b));
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = sha(bytes);
        fs::File::create(blobs.join(&d[7..]))
            .unwrap()
            .write_all(bytes)
            .unwrap();
        (d, bytes.len())
    };
    let (ld, ls) = put(&layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [ld]},
    });
    let (cd, cs) = put(&serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ls}],
    });
    let (md, ms) = put(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
            "annotations": {"org.opencontainers.image.ref.name": "big:1"},
        }],
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

#[test]
fn a_kill_in_the_middle_of_an_import_leaves_no_partial_layer() {
    let st = TestStore::new();
    let layout = st.scratch().join("big");
    big_layout(&layout);
    let mut child = st
        .cmd()
        .arg("load")
        .arg(&layout)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the layer is being extracted: a staging dir with files in it.
    let tmp = st.path().join("tmp");
    let start = Instant::now();
    let mut extracting = false;
    while start.elapsed() < Duration::from_secs(60) {
        let staged = fs::read_dir(&tmp)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("layer-"))
                    .any(|e| {
                        fs::read_dir(e.path().join("diff/d0"))
                            .map(|d| d.count() > 20)
                            .unwrap_or(false)
                    })
            })
            .unwrap_or(false);
        if staged {
            extracting = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        extracting,
        "the import finished before it could be interrupted"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();

    // The half-extracted layer is still in tmp/, and nowhere else.
    assert!(fs::read_dir(&tmp).unwrap().count() > 0);
    assert!(st.layer_dirs().is_empty(), "a partial layer is visible");
    let images = st.ok(&["images"]); // opening the store cleans tmp/
    assert_eq!(images.lines().count(), 1, "{images}");
    assert_eq!(
        fs::read_dir(&tmp).unwrap().count(),
        0,
        "stale staging not cleaned"
    );

    // And the import works when run again.
    let out = st.ok(&["load", layout.to_str().unwrap()]);
    assert_eq!(out.trim(), "Loaded image: big:1");
    let layers = st.layer_dirs();
    assert_eq!(layers.len(), 1);
    assert_eq!(fs::read_dir(layers[0].join("d7")).unwrap().count(), 300);
}

/// Runs the shared OCI schema validator on some files.
fn validate(schema: &str, files: &[PathBuf]) {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance");
    let out = Command::new("python3")
        .arg(shared.join("tools/oci_schema_validate.py"))
        .arg(shared.join("oci-schemas/image-spec"))
        .arg(schema)
        .args(files)
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "{schema}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_stores_documents_validate_against_the_oci_schemas() {
    let st = TestStore::new();
    st.load_base();
    let tarball = st.scratch().join("rootfs.tar");
    assert!(Command::new("tar")
        .arg("-C")
        .arg(base_rootfs())
        .arg("-cf")
        .arg(&tarball)
        .arg("./etc")
        .status()
        .unwrap()
        .success());
    st.ok(&["import", tarball.to_str().unwrap(), "etc-only"]);
    st.ok(&["run", "-q", "--image", "busybox", "--", "/bin/touch", "/x"]);
    let id = st.containers()[0].file_name().unwrap().to_string_lossy()[..12].to_string();
    st.ok(&["commit", &id, "committed"]);

    let root = st.path();
    validate("image-index-schema.json", &[root.join("index.json")]);
    validate("image-layout-schema.json", &[root.join("oci-layout")]);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("index.json")).unwrap()).unwrap();
    let blob = |d: &serde_json::Value| root.join("blobs/sha256").join(&d.as_str().unwrap()[7..]);
    let mut manifests = Vec::new();
    let mut configs = Vec::new();
    for m in index["manifests"].as_array().unwrap() {
        let path = blob(&m["digest"]);
        let manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        configs.push(blob(&manifest["config"]["digest"]));
        manifests.push(path);
    }
    assert_eq!(manifests.len(), 3);
    validate("image-manifest-schema.json", &manifests);
    validate("config-schema.json", &configs);
}

#[test]
fn save_and_load_keep_the_image_config_and_diff_ids() {
    let st = TestStore::new();
    st.load_base();
    let layers_before = st.ok(&["layers", "busybox"]);
    let id_before = st.ok(&["images"]);
    for format in ["docker", "oci"] {
        let file = st.scratch().join(format!("busybox-{format}.tar"));
        st.ok(&[
            "save",
            "busybox",
            "-o",
            file.to_str().unwrap(),
            "--format",
            format,
        ]);
        let other = TestStore::new();
        let out = other.ok(&["load", file.to_str().unwrap()]);
        assert_eq!(out.trim(), "Loaded image: busybox:latest", "{format}");
        assert_eq!(other.ok(&["images"]), id_before, "{format}: same image ID");
        let diff_ids = |s: &str| -> Vec<String> {
            s.lines()
                .filter(|l| l.contains("diff_id:") || l.contains("chain_id:"))
                .map(String::from)
                .collect()
        };
        assert_eq!(
            diff_ids(&other.ok(&["layers", "busybox"])),
            diff_ids(&layers_before)
        );
        // Nothing of the archive's bookkeeping is left as a blob.
        let blobs = fs::read_dir(other.path().join("blobs/sha256"))
            .unwrap()
            .count();
        assert_eq!(blobs, 3, "{format}: config, layer, manifest");
    }
}

#[test]
fn a_hostile_tarball_is_refused_by_import() {
    let st = TestStore::new();
    let evil = st.scratch().join("evil.tar");
    let mut data = Vec::new();
    let mut h = tar::Header::new_gnu();
    let name = b"../../escaped";
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_mode(0o644);
    h.set_size(1);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    data.extend_from_slice(h.as_bytes());
    data.extend_from_slice(&[b'x'; 512]);
    data.extend_from_slice(&[0; 1024]);
    fs::write(&evil, data).unwrap();
    let out = st.run(&["import", evil.to_str().unwrap(), "evil"]);
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing layer entry \"../../escaped\""),
        "{stderr}"
    );
    assert!(st.layer_dirs().is_empty());
    assert!(!st.scratch().join("escaped").exists());
    assert!(!st.path().join("escaped").exists());
    assert_eq!(st.ok(&["images"]).lines().count(), 1);
}

/// podman with its own storage in the test's directory, so it never touches
/// the machine's images (vfs: no mounts; cgroupfs: no systemd).
fn podman(st: &TestStore, args: &[&str]) -> String {
    let dir = st.scratch().join("podman");
    let out = Command::new("podman")
        .arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
        .args(["--events-backend", "none"])
        .args(args)
        .output()
        .expect("podman is missing: scripts/setup installs it (apt-get install podman)");
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn archives_round_trip_through_podman_and_skopeo() {
    let st = TestStore::new();
    st.load_base();
    let images = st.ok(&["images"]);
    let image_id = images
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string();
    let layers = st.ok(&["layers", "busybox"]);
    let ids = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.contains("diff_id:") || l.contains("chain_id:"))
            .map(String::from)
            .collect()
    };

    // Dockyard save -> podman load -> podman save -> Dockyard load.
    let ours = st.scratch().join("ours.tar");
    st.ok(&["save", "busybox", "-o", ours.to_str().unwrap()]);
    let loaded = podman(&st, &["load", "-i", ours.to_str().unwrap()]);
    assert!(loaded.contains("busybox:latest"), "{loaded}");
    let theirs = st.scratch().join("theirs.tar");
    podman(
        &st,
        &[
            "save",
            "--format",
            "docker-archive",
            "-o",
            theirs.to_str().unwrap(),
            "busybox:latest",
        ],
    );
    let podman_id = podman(&st, &["images", "--format", "{{.ID}}", "busybox:latest"]);
    assert_eq!(podman_id.trim(), image_id, "podman sees the same image ID");
    let back = TestStore::new();
    back.ok(&["load", theirs.to_str().unwrap()]);
    assert!(back.ok(&["images"]).contains(&image_id));
    let name = back
        .ok(&["images"])
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(ids(&back.ok(&["layers", &name])), ids(&layers));

    // The store is an OCI layout: skopeo reads it directly, and its OCI
    // archive loads back.
    let sk = st.scratch().join("skopeo.tar");
    let store_ref = format!("oci:{}:latest", st.path().display());
    let status = Command::new("skopeo")
        .args(["copy", "--quiet", &store_ref])
        .arg(format!("oci-archive:{}:busybox:latest", sk.display()))
        .status()
        .expect("skopeo is missing: scripts/setup installs it (apt-get install skopeo)");
    assert!(status.success());
    let again = TestStore::new();
    again.ok(&["load", sk.to_str().unwrap()]);
    assert!(again.ok(&["images"]).contains(&image_id));
    assert_eq!(ids(&again.ok(&["layers", "busybox"])), ids(&layers));

    // And Dockyard's OCI archive is readable by skopeo.
    let oci = st.scratch().join("ours-oci.tar");
    st.ok(&[
        "save",
        "busybox",
        "-o",
        oci.to_str().unwrap(),
        "--format",
        "oci",
    ]);
    let out = Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("oci-archive:{}", oci.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"][0].as_str().unwrap(),
        ids(&layers)[0].split_whitespace().last().unwrap()
    );
}
