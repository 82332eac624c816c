//! Garbage collection of blobs and unpacked layers (`Store::gc`), as root.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::time::Duration;

mod common;

use common::{add, layer_tar};
use lab04_overlay::{Image, Keep, Store};
use oci_spec::image::{Descriptor, Digest, MediaType};

/// No grace period: everything unreferenced goes.
fn now() -> Keep {
    Keep {
        grace: Duration::ZERO,
        ..Keep::default()
    }
}

fn blobs_of(image: &Image) -> Vec<String> {
    let mut b = vec![image.manifest_digest.clone(), image.config_digest.clone()];
    b.extend(
        image
            .manifest
            .layers()
            .iter()
            .map(|l| l.digest().to_string()),
    );
    b
}

fn layer_dir(store: &Store, chain: &str) -> std::path::PathBuf {
    store.root().join("layers").join(&chain[7..])
}

fn on_disk(store: &Store, image: &Image) -> (Vec<bool>, Vec<bool>) {
    (
        blobs_of(image).iter().map(|b| store.has_blob(b)).collect(),
        image
            .chain_ids()
            .iter()
            .map(|c| layer_dir(store, c).is_dir())
            .collect(),
    )
}

/// busybox-like `base` (one layer) and `app` (base's layer + one more).
fn two_images(store: &Store) -> (Image, Image) {
    let bottom = layer_tar(&[("bin/sh", "shell")]);
    let base = add(store, "base", std::slice::from_ref(&bottom));
    let app = add(
        store,
        "app",
        &[bottom, layer_tar(&[("app", "x".repeat(5000).as_str())])],
    );
    (base, app)
}

#[test]
fn gc_removes_an_untagged_images_own_blobs_and_layers_and_keeps_shared_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let (base, app) = two_images(&store);
    assert_eq!(on_disk(&store, &app), (vec![true; 4], vec![true; 2]));

    // Tagged: nothing is garbage.
    assert_eq!(store.gc(&now()).unwrap(), Default::default());

    store.untag("app").unwrap();
    let top = app.chain_ids()[1].clone();
    let short = store.root().join("l").join(&top[7..23]);
    assert!(fs::symlink_metadata(&short).is_ok());
    let report = store.gc(&now()).unwrap();

    let mut own = vec![
        app.manifest_digest.clone(),
        app.config_digest.clone(),
        app.manifest.layers()[1].digest().to_string(),
    ];
    own.sort();
    assert_eq!(report.blobs, own);
    assert_eq!(report.layers, vec![top.clone()]);
    assert!(report.reclaimed >= 5000, "{report:?}");
    // Gone from disk: the blobs, the layer dir, its short link.
    assert_eq!(
        on_disk(&store, &app),
        (vec![false, false, true, false], vec![true, false])
    );
    assert!(fs::symlink_metadata(&short).is_err());
    // The base is whole and usable; nothing is left in tmp/.
    assert_eq!(on_disk(&store, &base), (vec![true; 3], vec![true]));
    let c = store.create_container(&base).unwrap();
    assert_eq!(store.lower_dirs(&c).unwrap().len(), 1);
    store.remove_container(&c).unwrap();
    assert_eq!(fs::read_dir(tmp.path().join("tmp")).unwrap().count(), 0);
    // And a second gc has nothing left to do.
    assert_eq!(store.gc(&now()).unwrap(), Default::default());
}

#[test]
fn gc_keeps_what_a_container_or_the_keep_list_uses_until_it_is_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let (_, app) = two_images(&store);

    // A container of the store (containers/<id>/container.json) keeps it.
    let c = store.create_container(&app).unwrap();
    store.untag("app").unwrap();
    assert_eq!(store.gc(&now()).unwrap(), Default::default());
    assert_eq!(store.lower_dirs(&c).unwrap().len(), 2);
    store.remove_container(&c).unwrap();

    // The caller's keep list (an engine's containers' image IDs) keeps it
    // too, though nothing in the store names it any more.
    let keep = Keep {
        configs: BTreeSet::from([app.config_digest.clone()]),
        ..now()
    };
    assert_eq!(store.gc(&keep).unwrap(), Default::default());
    assert_eq!(on_disk(&store, &app), (vec![true; 4], vec![true; 2]));

    // Once nothing uses it, it goes.
    let report = store.gc(&now()).unwrap();
    assert_eq!(report.blobs.len(), 3);
    assert_eq!(report.layers.len(), 1);
    assert_eq!(
        on_disk(&store, &app),
        (vec![false, false, true, false], vec![true, false])
    );
}

#[test]
fn gc_keeps_what_was_written_within_the_grace_period_unless_released() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let (_, app) = two_images(&store);
    // A blob a pull has just written and not yet tagged.
    let (stray, _) = store.put_blob(b"a manifest being pulled").unwrap();

    store.untag("app").unwrap();
    // Default grace (10 minutes): everything here is younger.
    assert_eq!(store.gc(&Keep::default()).unwrap(), Default::default());
    assert!(store.has_blob(&stray));
    assert_eq!(on_disk(&store, &app), (vec![true; 4], vec![true; 2]));

    // An image the caller just untagged is released at once (rmi); the
    // stray blob is still young and stays.
    let keep = Keep {
        released: vec![app.clone()],
        ..Keep::default()
    };
    let report = store.gc(&keep).unwrap();
    assert_eq!((report.blobs.len(), report.layers.len()), (3, 1));
    assert!(store.has_blob(&stray));

    // Past the grace period it goes too.
    let report = store.gc(&now()).unwrap();
    assert_eq!(report.blobs, vec![stray.clone()]);
    assert!(!store.has_blob(&stray));
}

#[test]
fn gc_never_follows_a_layers_symlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    fs::create_dir(&victim).unwrap();
    fs::write(victim.join("precious"), "keep me").unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let target = format!("->{}", victim.display());
    let evil = add(
        &store,
        "evil",
        &[layer_tar(&[("link", &target), ("dir/file", "x")])],
    );
    let dir = layer_dir(&store, &evil.chain_ids()[0]);
    assert!(fs::symlink_metadata(dir.join("diff/link"))
        .unwrap()
        .file_type()
        .is_symlink());

    store.untag("evil").unwrap();
    let report = store.gc(&now()).unwrap();
    assert_eq!(report.layers, evil.chain_ids());
    assert!(!Path::new(&dir).exists());
    assert_eq!(
        fs::read_to_string(victim.join("precious")).unwrap(),
        "keep me"
    );
}

#[test]
fn what_was_released_while_in_use_goes_once_unused_without_waiting() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let (_, app) = two_images(&store);
    let keep = Keep {
        configs: BTreeSet::from([app.config_digest.clone()]),
        released: vec![app.clone()],
        ..Keep::default()
    };
    // rmi -f while a container uses it: untagged, released, kept.
    store.untag("app").unwrap();
    assert_eq!(store.gc(&keep).unwrap(), Default::default());
    assert_eq!(on_disk(&store, &app), (vec![true; 4], vec![true; 2]));
    // The container is gone: a plain gc (default grace) removes it now.
    let report = store.gc(&Keep::default()).unwrap();
    assert_eq!((report.blobs.len(), report.layers.len()), (3, 1));
    assert_eq!(fs::read_to_string(tmp.path().join("released")).unwrap(), "");

    // Tagged again, a released image is no longer released.
    let (_, app) = two_images(&store);
    store.untag("app").unwrap();
    store.gc(&keep).unwrap();
    store
        .tag(
            "app",
            &Descriptor::new(
                MediaType::ImageManifest,
                fs::metadata(store.blob_path(&app.manifest_digest).unwrap())
                    .unwrap()
                    .len(),
                Digest::try_from(app.manifest_digest.as_str()).unwrap(),
            ),
        )
        .unwrap();
    store.gc(&Keep::default()).unwrap();
    store.untag("app").unwrap();
    assert_eq!(store.gc(&Keep::default()).unwrap(), Default::default());
    assert_eq!(on_disk(&store, &app), (vec![true; 4], vec![true; 2]));
}

#[test]
fn build_cache_images_live_as_long_as_the_layers_they_need() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let (base, app) = two_images(&store);
    // Two build steps' intermediate images: one on base's layer only
    // (an ENV step: no layer of its own), and app itself.
    let bottom = layer_tar(&[("bin/sh", "shell")]);
    let mid = add(&store, "mid", &[bottom]);
    store.untag("mid").unwrap();
    let cache = tmp.path().join("build-cache");
    fs::create_dir(&cache).unwrap();
    for (key, image) in [("a", &mid), ("b", &app)] {
        let entry = format!(r#"{{"manifest":"{}"}}"#, image.manifest_digest);
        fs::write(cache.join(format!("{key}.json")), entry).unwrap();
    }
    // mid shares base's layer, so it is kept; app is tagged.
    assert_eq!(mid.chain_ids(), base.chain_ids());
    assert_ne!(mid.config_digest, base.config_digest);
    assert_eq!(store.gc(&now()).unwrap(), Default::default());

    // app's name goes: its cache entry no longer keeps it, mid's still does.
    store.untag("app").unwrap();
    let report = store.gc(&now()).unwrap();
    assert_eq!((report.blobs.len(), report.layers.len()), (3, 1));
    assert!(store.has_blob(&mid.manifest_digest) && store.has_blob(&mid.config_digest));
    // And once base goes too, so does mid.
    store.untag("base").unwrap();
    let report = store.gc(&now()).unwrap();
    assert_eq!((report.blobs.len(), report.layers.len()), (5, 1));
    assert_eq!(
        fs::read_dir(tmp.path().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(fs::read_dir(tmp.path().join("layers")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(tmp.path().join("l")).unwrap().count(), 0);
}
