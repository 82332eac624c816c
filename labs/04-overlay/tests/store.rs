//! The store and the overlay mount, through the library (as root).

use std::fs;
use std::path::Path;

mod common;

use common::{add, layer_tar};
use lab04_overlay::digest::{chain_ids, sha256_digest};
use lab04_overlay::overlay::{mount_data, page_size};
use lab04_overlay::{mount_overlay, MountGuard, Store};
use oci_spec::image::{Descriptor, Digest, MediaType};

fn mounted(path: &Path) -> bool {
    let p = path.to_string_lossy();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(&*p))
}

#[test]
fn a_deep_image_mounts_past_the_mount_data_page() {
    let tmp = tempfile::Builder::new()
        .prefix("lab04-deep-")
        .tempdir()
        .unwrap();
    // A long store path makes absolute lowerdirs overflow the page sooner.
    let root = tmp
        .path()
        .join("a-rather-long-directory-name-for-the-image-store");
    let store = Store::open(&root).unwrap();
    const N: usize = 150;
    let tars: Vec<Vec<u8>> = (0..N)
        .map(|i| layer_tar(&[(&format!("layer{i}"), "x"), ("top", &i.to_string())]))
        .collect();
    let diff_ids: Vec<String> = tars.iter().map(|t| sha256_digest(t)).collect();
    let image = add(&store, "deep", &tars);
    assert_eq!(image.chain_ids(), chain_ids(&diff_ids));
    assert_eq!(store.layers().unwrap().len(), N);

    let c = store.create_container(&image).unwrap();
    let dirs = store.overlay_dirs(&c).unwrap();
    assert_eq!(dirs.lower.len(), N);
    let absolute = mount_data(&dirs, &dirs.base).unwrap();
    assert!(
        absolute.len() > page_size(),
        "the test must overflow the page: {} bytes",
        absolute.len()
    );
    mount_overlay(&dirs).unwrap();
    let guard = MountGuard(dirs.merged.clone());
    assert!(mounted(&dirs.merged));
    // Every layer is there, and the topmost wins.
    assert!(dirs.merged.join("layer0").exists());
    assert!(dirs.merged.join(format!("layer{}", N - 1)).exists());
    assert_eq!(
        fs::read_to_string(dirs.merged.join("top")).unwrap(),
        (N - 1).to_string()
    );
    drop(guard);
    assert!(!mounted(&dirs.merged));
    store.remove_container(&c).unwrap();
}

#[test]
fn a_blob_with_the_wrong_digest_never_enters_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let claimed = sha256_digest(b"what the manifest promised");
    let err = store
        .put_blob_from(&b"what the registry sent"[..], Some(&claimed))
        .unwrap_err();
    assert!(format!("{err:#}").contains("corrupted"), "{err:#}");
    assert!(!store.has_blob(&claimed));
    assert!(!store.has_blob(&sha256_digest(b"what the registry sent")));
    assert_eq!(fs::read_dir(tmp.path().join("tmp")).unwrap().count(), 0);
}

#[test]
fn a_layer_whose_diff_id_differs_from_the_config_is_not_unpacked() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let tar = layer_tar(&[("a", "b")]);
    let (digest, size) = store.put_blob(&tar).unwrap();
    let desc = Descriptor::new(
        MediaType::ImageLayer,
        size,
        Digest::try_from(digest.as_str()).unwrap(),
    );
    let wrong = sha256_digest(b"another layer");
    let err = store.unpack_layer(&desc, &wrong, None).unwrap_err();
    assert!(format!("{err:#}").contains("does not match the image config"));
    assert!(store.layers().unwrap().is_empty());
    assert_eq!(fs::read_dir(tmp.path().join("tmp")).unwrap().count(), 0);
    // The right diff_id unpacks it, under its chain ID.
    let layer = store
        .unpack_layer(&desc, &sha256_digest(&tar), None)
        .unwrap();
    assert_eq!(fs::read_to_string(layer.diff.join("a")).unwrap(), "b");
    assert_eq!(
        fs::read_link(&layer.link).unwrap().to_string_lossy(),
        format!("../layers/{}/diff", &layer.chain_id[7..])
    );
}

/// A record written without fsync (`create_container_with(.., false)`, for
/// `run --rm`) can come back empty after a crash of the machine. Such a
/// container is not listed, and listing does not fail because of it.
#[test]
fn an_empty_record_left_by_a_crash_is_not_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let image = add(&store, "one", &[layer_tar(&[("a", "x")])]);
    let kept = store.create_container(&image).unwrap();
    let lost = store.create_container_with(&image, false).unwrap();
    let ids =
        |s: &Store| -> Vec<String> { s.containers().unwrap().into_iter().map(|c| c.id).collect() };
    assert!(ids(&store).contains(&lost.id));
    fs::write(lost.dir.join("container.json"), b"").unwrap();
    assert_eq!(ids(&store), vec![kept.id.clone()]);
    store.remove_container(&kept).unwrap();
}
