//! Reproducibility and conformance of the base image.
//!
//! Builds the image twice from the same inputs and checks what a registry or
//! runtime would check: every blob is named by the sha256 of its bytes, the
//! config's diff_id is the sha256 of the *decompressed* layer, both builds
//! are byte-identical, and the JSON documents validate against the OCI
//! image-spec schemas in `../shared/conformance` (read in place, not copied).
//!
//! Needs the real static busybox at /bin/busybox (Debian: busybox-static);
//! the tests that need it print why and return early when it is absent.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use dockyard_mkbase::{build, Built, Options};
use lab04_overlay::digest::sha256_digest;
use serde_json::Value;

const BUSYBOX: &str = "/bin/busybox";

/// Skip a test whose tool is missing on a developer's machine, but fail in CI
/// (which sets CI=true and installs everything): there, a skipped check would
/// be a check that cannot fail.
macro_rules! skip {
    ($($arg:tt)*) => {{
        let msg = format!($($arg)*);
        assert!(std::env::var_os("CI").is_none(), "in CI nothing may be skipped: {msg}");
        eprintln!("SKIPPED: {msg}");
    }};
}

fn busybox_present() -> bool {
    if Path::new(BUSYBOX).exists() {
        true
    } else {
        skip!("{BUSYBOX} is absent (apt-get install busybox-static)");
        false
    }
}

/// A dummy probe: the image builder only copies it.
fn dummy_probe(dir: &Path) -> PathBuf {
    let path = dir.join("probe");
    fs::write(&path, b"#!/bin/sh\necho '{}'\n").expect("write dummy probe");
    path
}

fn build_into(dir: &Path) -> (Built, PathBuf) {
    let out = dir.join("images/busybox");
    let built = build(&Options {
        busybox: BUSYBOX.into(),
        probe: dummy_probe(dir),
        out: out.clone(),
    })
    .expect("mkbase build");
    (built, out)
}

fn blob(oci: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    fs::read(oci.join("blobs/sha256").join(hex)).expect("read blob")
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("valid JSON")
}

#[test]
fn two_builds_are_byte_identical_and_self_consistent() {
    if !busybox_present() {
        return;
    }
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    let (built_a, out_a) = build_into(a.path());
    let (built_b, out_b) = build_into(b.path());
    assert_eq!(built_a, built_b, "digests differ between two builds");

    let (oci_a, oci_b) = (out_a.join("oci"), out_b.join("oci"));
    for file in ["index.json", "oci-layout"] {
        assert_eq!(
            fs::read(oci_a.join(file)).expect("read"),
            fs::read(oci_b.join(file)).expect("read"),
            "{file} differs"
        );
    }
    let mut names_a: Vec<_> = fs::read_dir(oci_a.join("blobs/sha256"))
        .expect("blobs dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names_a.sort();
    assert_eq!(names_a.len(), 3, "layer, config, manifest");
    for name in &names_a {
        let bytes_a = fs::read(oci_a.join("blobs/sha256").join(name)).expect("read");
        let bytes_b = fs::read(oci_b.join("blobs/sha256").join(name)).expect("same blob in b");
        assert_eq!(bytes_a, bytes_b, "blob {name:?} differs");
        // Content addressing: every blob's name is the sha256 of its bytes.
        assert_eq!(
            sha256_digest(&bytes_a),
            format!("sha256:{}", name.to_string_lossy())
        );
    }

    // Walk index -> manifest -> config/layer the way a runtime does.
    let index = json(&fs::read(oci_a.join("index.json")).expect("index.json"));
    let entry = &index["manifests"][0];
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        "latest"
    );
    assert_eq!(
        entry["annotations"]["io.dockyard.image.name"],
        "busybox:latest"
    );
    assert_eq!(entry["digest"], built_a.manifest_digest.as_str());
    let manifest = json(&blob(&oci_a, &built_a.manifest_digest));
    let layer_desc = &manifest["layers"][0];
    assert_eq!(
        layer_desc["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_eq!(manifest["layers"].as_array().map(Vec::len), Some(1));
    let layer = blob(&oci_a, layer_desc["digest"].as_str().expect("digest"));
    assert_eq!(layer_desc["size"].as_u64(), Some(layer.len() as u64));

    // diff_id = sha256 of the decompressed layer, not of the blob.
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(layer.as_slice())
        .read_to_end(&mut tar)
        .expect("layer is gzip");
    let config = json(&blob(
        &oci_a,
        manifest["config"]["digest"].as_str().expect("digest"),
    ));
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        sha256_digest(&tar).as_str()
    );
    assert_eq!(built_a.diff_id, sha256_digest(&tar));
    assert_eq!(config["config"]["Cmd"][0], "sh");
    assert_eq!(config["os"], "linux");

    // Every tar entry is pinned: mtime 0, uid/gid 0.
    let mut archive = tar::Archive::new(tar.as_slice());
    for entry in archive.entries().expect("tar entries") {
        let entry = entry.expect("tar entry");
        let header = entry.header();
        assert_eq!(header.mtime().expect("mtime"), 0);
        assert_eq!(header.uid().expect("uid"), 0);
        assert_eq!(header.gid().expect("gid"), 0);
    }

    // The unpacked rootfs matches: /bin/sh is busybox's applet symlink.
    let rootfs = out_a.join("rootfs");
    assert_eq!(
        fs::read_link(rootfs.join("bin/sh")).expect("bin/sh is a symlink"),
        Path::new("busybox")
    );
    assert_eq!(
        fs::read(rootfs.join("bin/busybox")).expect("busybox"),
        fs::read(BUSYBOX).expect("host busybox")
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| {
        fs::metadata(rootfs.join(p))
            .expect("metadata")
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("tmp"), 0o1777);
    assert_eq!(mode("root"), 0o700);
    assert_eq!(mode("bin/probe"), 0o755);
    let passwd = fs::read_to_string(rootfs.join("etc/passwd")).expect("passwd");
    assert!(passwd.starts_with("root:x:0:0:root:/root:/bin/sh\n"));
}

#[test]
fn rebuilding_replaces_the_output_and_leaves_no_staging_dirs() {
    if !busybox_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, out) = build_into(dir.path());
    fs::write(out.join("rootfs/leftover"), b"x").expect("write");
    let (_, out) = build_into(dir.path());
    assert!(
        !out.join("rootfs/leftover").exists(),
        "old image not replaced"
    );
    let siblings: Vec<_> = fs::read_dir(out.parent().expect("parent"))
        .expect("read dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(siblings, vec![std::ffi::OsString::from("busybox")]);
}

#[test]
fn missing_inputs_give_actionable_errors_and_no_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("images/busybox");
    let err = build(&Options {
        busybox: dir.path().join("no-busybox"),
        probe: dummy_probe(dir.path()),
        out: out.clone(),
    })
    .expect_err("missing busybox must fail");
    let msg = format!("{err:#}");
    assert!(msg.contains("busybox not found at"), "{msg}");
    assert!(msg.contains("apt-get install busybox-static"), "{msg}");

    // A dynamically linked "busybox": this test binary itself.
    let me = std::env::current_exe().expect("current_exe");
    let err = build(&Options {
        busybox: me,
        probe: dummy_probe(dir.path()),
        out: out.clone(),
    })
    .expect_err("dynamic busybox must fail");
    assert!(format!("{err:#}").contains("busybox-static"), "{err:#}");

    if busybox_present() {
        let err = build(&Options {
            busybox: BUSYBOX.into(),
            probe: dir.path().join("no-probe"),
            out: out.clone(),
        })
        .expect_err("missing probe must fail");
        let msg = format!("{err:#}");
        assert!(msg.contains("probe not found at"), "{msg}");
        assert!(
            msg.contains("cargo build --release -p dockyard-probe"),
            "{msg}"
        );
    }
    assert!(!out.exists(), "a failed build left output behind");
}

/// Runs the shared OCI schema validator, or says why it cannot.
fn validate(schema: &str, file: &Path) -> Option<bool> {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance");
    let tool = shared.join("tools/oci_schema_validate.py");
    let schemas = shared.join("oci-schemas/image-spec");
    if !tool.exists() {
        skip!("{} is absent", tool.display());
        return None;
    }
    let has_jsonschema = Command::new("python3")
        .args(["-c", "import jsonschema, referencing"])
        .status()
        .map(|s| s.success());
    match has_jsonschema {
        Ok(true) => {}
        Ok(false) => {
            skip!("python3 lacks jsonschema (pip install jsonschema rfc3987)");
            return None;
        }
        Err(e) => {
            skip!("cannot run python3: {e}");
            return None;
        }
    }
    let output = Command::new("python3")
        .arg(&tool)
        .arg(&schemas)
        .arg(schema)
        .arg(file)
        .output()
        .expect("run validator");
    println!("{}", String::from_utf8_lossy(&output.stdout));
    Some(output.status.success())
}

#[test]
fn documents_validate_against_oci_schemas() {
    if !busybox_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (built, out) = build_into(dir.path());
    let oci = out.join("oci");
    let hex = |d: &str| d.trim_start_matches("sha256:").to_string();
    let checks = [
        (
            "image-manifest-schema.json",
            oci.join("blobs/sha256").join(hex(&built.manifest_digest)),
        ),
        (
            "config-schema.json",
            oci.join("blobs/sha256").join(hex(&built.config_digest)),
        ),
        ("image-index-schema.json", oci.join("index.json")),
        ("image-layout-schema.json", oci.join("oci-layout")),
    ];
    for (schema, file) in checks {
        match validate(schema, &file) {
            None => return,
            Some(valid) => assert!(
                valid,
                "{} does not validate against {schema}",
                file.display()
            ),
        }
    }
    // What the schemas do not check (see shared/conformance/README.md).
    let config =
        json(&fs::read(oci.join("blobs/sha256").join(hex(&built.config_digest))).expect("config"));
    for env in config["config"]["Env"].as_array().expect("Env") {
        assert!(env.as_str().expect("string").contains('='));
    }
    for digest in [
        &built.manifest_digest,
        &built.config_digest,
        &built.layer_digest,
        &built.diff_id,
    ] {
        let h = hex(digest);
        assert!(h.len() == 64 && h.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
    }
}
