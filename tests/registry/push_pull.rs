//! Pushing and pulling through the distribution API (`/v2/NAME/blobs/...`,
//! `/v2/NAME/manifests/...`): round trips, chunked uploads and cross-
//! repository mounts, image indexes, digests that must verify, clear
//! errors, and zstd-compressed layers.

use std::fs;

use dockyard_e2e::dockyard::text;
use dockyard_e2e::fixtures::workspace_root;
use serde_json::Value;
use sha2::Digest as _;

use crate::common::{base_digests, creds_dir, skopeo, Dy, Registry};

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
