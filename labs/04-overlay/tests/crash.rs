//! The store's crash safety and its closed doors, through the library: a
//! container appears whole or not at all, leaves in one rename, its
//! directories are closed to other users, and removals have space kept for
//! them on a full disk.

use std::fs;
use std::os::unix::fs::PermissionsExt;

mod common;

use common::{add, layer_tar};
use lab04_overlay::store::{RESERVE, RESERVE_BYTES};
use lab04_overlay::Store;

fn mode(p: &std::path::Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn a_container_appears_whole_or_not_at_all() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let image = add(&store, "img", &[layer_tar(&[("f", "x")])]);

    // The caller's step fails: nothing in containers/, nothing in tmp/.
    let err = store
        .create_container_staged(&image, true, |c| {
            // Staged in tmp/, complete but for the caller's files.
            assert!(c.dir.starts_with(store.root().join("tmp")));
            assert!(c.dir.join("container.json").exists());
            anyhow::bail!("the engine could not write its record")
        })
        .unwrap_err();
    assert!(err.to_string().contains("could not write"), "{err}");
    assert_eq!(
        fs::read_dir(store.root().join("containers"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);

    // It succeeds: one directory, with the caller's file in it.
    let c = store
        .create_container_staged(&image, true, |c| {
            fs::write(c.dir.join("state.json"), "{}").map_err(Into::into)
        })
        .unwrap();
    assert_eq!(c.dir, store.root().join("containers").join(&c.id));
    assert!(c.dir.join("state.json").exists() && c.dir.join("upper").is_dir());
    assert_eq!(mode(&c.dir), 0o710, "a container's own directory");

    // Removed: gone from containers/ in one rename, then deleted.
    store.remove_container(&c).unwrap();
    assert!(!c.dir.exists());
    assert!(store.containers().unwrap().is_empty());
    assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
}

#[test]
fn what_a_killed_remover_left_in_tmp_goes_at_the_next_open() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    // A PID that cannot be alive: what a remover killed mid-delete leaves.
    let left = store.root().join("tmp/removing-4194305-0/upper/deep");
    fs::create_dir_all(&left).unwrap();
    Store::open(tmp.path()).unwrap();
    assert!(!store.root().join("tmp/removing-4194305-0").exists());
}

#[test]
fn the_store_is_closed_to_other_users_and_fixed_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let want = [
        ("layers", 0o710),
        ("l", 0o710),
        ("containers", 0o710),
        ("tmp", 0o700),
    ];
    for (d, m) in want {
        assert_eq!(mode(&store.root().join(d)), m, "{d}");
        // As an older version left it...
        fs::set_permissions(store.root().join(d), fs::Permissions::from_mode(0o755)).unwrap();
    }
    // ...fixed by the next open.
    Store::open(tmp.path()).unwrap();
    for (d, m) in want {
        assert_eq!(mode(&store.root().join(d)), m, "{d} after an upgrade");
    }
}

#[test]
fn the_reserve_is_kept_and_given_back_for_removals() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    store.keep_reserve();
    let reserve = store.root().join(RESERVE);
    // Allocated, not just sized: its blocks are really held.
    let meta = fs::metadata(&reserve).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.len(), RESERVE_BYTES as u64);
    assert!(meta.blocks() * 512 >= RESERVE_BYTES as u64);
    let image = add(&store, "img", &[layer_tar(&[("f", "x")])]);
    store.untag(&image.name).unwrap();
    assert!(!reserve.exists(), "untag, a removal, may use the reserve");
    store.keep_reserve();
    assert!(reserve.exists());
}
