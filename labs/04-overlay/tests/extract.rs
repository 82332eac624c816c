//! Layer application, checked against expected trees, and a suite of hostile
//! archives. Each hostile archive is applied in a throwaway directory next to
//! a sentinel directory and a victim file; after each, the sentinel must be
//! empty and the victim untouched, whatever the extractor said.
//!
//! The archives are written block by block (tar's 512-byte headers through
//! the `tar` crate's low-level `Header`), because a well-behaved tar writer
//! refuses to write the names an attacker would.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use lab04_overlay::digest::sha256_digest;
use lab04_overlay::extract::{
    apply_layer_with, get_xattr, unsafe_entry, Compression, Refusal, Resolver, Whiteouts,
};
use tar::EntryType;

// ---- writing archives by hand -------------------------------------------------

#[derive(Default)]
struct Tar(Vec<u8>);

impl Tar {
    fn block(&mut self, header: &tar::Header, data: &[u8]) {
        self.0.extend_from_slice(header.as_bytes());
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0u8, pad));
    }

    /// One entry with exactly these bytes as its name and link name. Names
    /// over 100 bytes go into a GNU `././@LongLink` entry first.
    fn raw(&mut self, name: &[u8], kind: EntryType, data: &[u8], link: &[u8], dev: (u32, u32)) {
        if name.len() >= 100 {
            let mut long = tar::Header::new_gnu();
            long.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
            long.set_entry_type(EntryType::GNULongName);
            long.set_mode(0o644);
            let mut body = name.to_vec();
            body.push(0);
            long.set_size(body.len() as u64);
            long.set_cksum();
            self.block(&long, &body);
        }
        let mut h = tar::Header::new_gnu();
        let n = name.len().min(99);
        h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_entry_type(kind);
        h.set_mode(if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_000_000);
        h.set_size(data.len() as u64);
        if kind == EntryType::Char || kind == EntryType::Block {
            h.set_device_major(dev.0).unwrap();
            h.set_device_minor(dev.1).unwrap();
        }
        h.set_cksum();
        self.block(&h, data);
    }

    fn file(mut self, name: &str, data: &str) -> Self {
        self.raw(
            name.as_bytes(),
            EntryType::Regular,
            data.as_bytes(),
            b"",
            (0, 0),
        );
        self
    }
    fn dir(mut self, name: &str) -> Self {
        self.raw(name.as_bytes(), EntryType::Directory, b"", b"", (0, 0));
        self
    }
    fn symlink(mut self, name: &str, target: &str) -> Self {
        self.raw(
            name.as_bytes(),
            EntryType::Symlink,
            b"",
            target.as_bytes(),
            (0, 0),
        );
        self
    }
    fn hardlink(mut self, name: &str, target: &str) -> Self {
        self.raw(
            name.as_bytes(),
            EntryType::Link,
            b"",
            target.as_bytes(),
            (0, 0),
        );
        self
    }
    fn device(mut self, name: &str, kind: EntryType, major: u32, minor: u32) -> Self {
        self.raw(name.as_bytes(), kind, b"", b"", (major, minor));
        self
    }
    fn done(mut self) -> Vec<u8> {
        self.0.extend(std::iter::repeat_n(0u8, 1024));
        self.0
    }
}

// ---- the sandbox ---------------------------------------------------------------

/// `layer/` is the extraction target; `outside/` a sentinel that must stay
/// empty; `victim` a file outside whose content and link count must not change.
struct Sandbox {
    dir: tempfile::TempDir,
}

const VICTIM: &str = "victim: do not touch";

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("lab04-hostile-")
            .tempdir()
            .unwrap();
        fs::create_dir(dir.path().join("layer")).unwrap();
        fs::create_dir(dir.path().join("outside")).unwrap();
        fs::write(dir.path().join("victim"), VICTIM).unwrap();
        Sandbox { dir }
    }
    fn layer(&self) -> std::path::PathBuf {
        self.dir.path().join("layer")
    }
    fn outside(&self) -> String {
        self.dir
            .path()
            .join("outside")
            .to_string_lossy()
            .into_owned()
    }
    fn victim(&self) -> String {
        self.dir
            .path()
            .join("victim")
            .to_string_lossy()
            .into_owned()
    }
    fn apply(&self, tar: &[u8], r: Resolver, w: Whiteouts) -> anyhow::Result<()> {
        apply_layer_with(tar, &self.layer(), w, r).map(drop)
    }
    /// Nothing appeared outside the layer, and the victim is intact.
    fn assert_contained(&self, case: &str) {
        let outside: Vec<_> = fs::read_dir(self.outside()).unwrap().collect();
        assert!(
            outside.is_empty(),
            "{case}: something appeared outside: {outside:?}"
        );
        let mut top: Vec<String> = fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        top.sort();
        assert_eq!(top, ["layer", "outside", "victim"], "{case}");
        let meta = fs::symlink_metadata(self.victim()).unwrap();
        assert!(meta.is_file(), "{case}: victim replaced");
        assert_eq!(meta.nlink(), 1, "{case}: victim got a hardlink");
        assert_eq!(fs::read_to_string(self.victim()).unwrap(), VICTIM, "{case}");
    }
}

const BOTH: [Resolver; 2] = [Resolver::Openat2, Resolver::NoFollowWalk];

fn refusal(err: &anyhow::Error) -> Refusal {
    unsafe_entry(err)
        .unwrap_or_else(|| panic!("not an UnsafeEntry: {err:#}"))
        .refusal
        .clone()
}

// ---- hostile archives ----------------------------------------------------------

#[test]
fn dotdot_names_are_refused() {
    for r in BOTH {
        let sb = Sandbox::new();
        for name in ["../outside/pwned", "a/../../outside/pwned", "./../victim"] {
            let tar = Tar::default().file(name, "pwned").done();
            let err = sb.apply(&tar, r, Whiteouts::Overlay).unwrap_err();
            assert_eq!(refusal(&err), Refusal::DotDot, "{name}");
            sb.assert_contained(name);
        }
    }
}

#[test]
fn absolute_names_land_inside_the_layer() {
    for r in BOTH {
        let sb = Sandbox::new();
        let name = format!("{}/pwned", sb.outside());
        let tar = Tar::default()
            .file(&name, "x")
            .file(&sb.victim(), "x")
            .done();
        let applied = apply_layer_with(&tar[..], &sb.layer(), Whiteouts::Overlay, r).unwrap();
        assert_eq!(applied.neutralised.len(), 2);
        let inside = sb.layer().join(name.trim_start_matches('/'));
        assert_eq!(fs::read_to_string(inside).unwrap(), "x");
        sb.assert_contained("absolute");
    }
}

#[test]
fn writes_through_an_archive_symlink_stay_inside() {
    for r in BOTH {
        for (link_target, through) in [
            // absolute symlink to the sentinel, then a file through it
            ("OUTSIDE", "evil/pwned"),
            // relative symlink climbing out
            ("../../../../../../../../OUTSIDE", "evil/pwned"),
            // a symlink to a symlink
            ("hop", "evil/pwned"),
        ] {
            let sb = Sandbox::new();
            let target = link_target.replace("OUTSIDE", sb.outside().trim_start_matches('/'));
            let target = if link_target == "OUTSIDE" {
                format!("/{target}")
            } else {
                target
            };
            let tar = Tar::default()
                .symlink("hop", &sb.outside())
                .symlink("evil", &target)
                .file(through, "pwned")
                .done();
            // openat2 resolves `evil` as if the layer were `/`: to a path the
            // layer does not have, so the parent is missing; the fallback
            // refuses symlinked parents outright. Either way: refused.
            let err = sb.apply(&tar, r, Whiteouts::Overlay).unwrap_err();
            assert_eq!(
                refusal(&err),
                Refusal::ParentNotADirectory,
                "{r:?} {link_target}"
            );
            sb.assert_contained(link_target);
        }
    }
}

#[test]
fn an_absolute_symlink_means_the_layers_own_path() {
    let host_passwd = fs::read("/etc/passwd").unwrap();
    let tar = Tar::default()
        .dir("etc/")
        .symlink("evil", "/etc")
        .file("evil/passwd", "pwned")
        .done();
    let sb = Sandbox::new();
    sb.apply(&tar, Resolver::Openat2, Whiteouts::Overlay)
        .unwrap();
    assert_eq!(
        fs::read_to_string(sb.layer().join("etc/passwd")).unwrap(),
        "pwned"
    );
    let sb = Sandbox::new();
    let err = sb
        .apply(&tar, Resolver::NoFollowWalk, Whiteouts::Overlay)
        .unwrap_err();
    assert_eq!(refusal(&err), Refusal::ParentNotADirectory);
    assert_eq!(fs::read("/etc/passwd").unwrap(), host_passwd);
}

#[test]
fn a_file_entry_replaces_a_symlink_instead_of_writing_through_it() {
    for r in BOTH {
        let sb = Sandbox::new();
        let tar = Tar::default()
            .symlink("evil", &sb.victim())
            .file("evil", "pwned")
            .symlink("d", &sb.outside())
            .dir("d/")
            .file("d/x", "y")
            .done();
        sb.apply(&tar, r, Whiteouts::Overlay).unwrap();
        let meta = fs::symlink_metadata(sb.layer().join("evil")).unwrap();
        assert!(meta.is_file(), "the symlink was replaced, not followed");
        assert!(sb.layer().join("d").is_dir());
        sb.assert_contained("replace symlink");
    }
}

#[test]
fn hardlinks_to_outside_files_are_refused() {
    for r in BOTH {
        let sb = Sandbox::new();
        // absolute target: means the layer's own path, which does not exist
        let tar = Tar::default().hardlink("h", &sb.victim()).done();
        let err = sb.apply(&tar, r, Whiteouts::Overlay).unwrap_err();
        assert_eq!(refusal(&err), Refusal::BadHardlinkTarget);
        // climbing target
        let tar = Tar::default().hardlink("h", "../victim").done();
        assert_eq!(
            refusal(&sb.apply(&tar, r, Whiteouts::Overlay).unwrap_err()),
            Refusal::DotDot
        );
        // through a symlink the archive made
        let dir = sb.dir.path().to_string_lossy().into_owned();
        let tar = Tar::default()
            .symlink("up", &dir)
            .hardlink("h", "up/victim")
            .done();
        assert!(sb.apply(&tar, r, Whiteouts::Overlay).is_err());
        sb.assert_contained("hardlink");
    }
}

#[test]
fn hardlinks_inside_the_layer_work() {
    let sb = Sandbox::new();
    let tar = Tar::default()
        .file("a", "shared")
        .hardlink("b", "a")
        .hardlink("c", "/a")
        .done();
    sb.apply(&tar, Resolver::detect(), Whiteouts::Overlay)
        .unwrap();
    let a = fs::metadata(sb.layer().join("a")).unwrap();
    assert_eq!(a.nlink(), 3);
    assert_eq!(fs::metadata(sb.layer().join("c")).unwrap().ino(), a.ino());
}

#[test]
fn device_nodes_are_refused_except_whiteouts() {
    for (kind, major, minor) in [(EntryType::Block, 8, 0), (EntryType::Char, 1, 3)] {
        let sb = Sandbox::new();
        let tar = Tar::default().device("dev/x", kind, major, minor).done();
        let err = sb
            .apply(&tar, Resolver::detect(), Whiteouts::Overlay)
            .unwrap_err();
        assert!(
            matches!(refusal(&err), Refusal::DeviceNode { .. }),
            "{err:#}"
        );
        assert!(!sb.layer().join("dev/x").exists());
        sb.assert_contained("device");
    }
    let sb = Sandbox::new();
    let tar = Tar::default().device("gone", EntryType::Char, 0, 0).done();
    sb.apply(&tar, Resolver::detect(), Whiteouts::Overlay)
        .unwrap();
    let m = fs::symlink_metadata(sb.layer().join("gone")).unwrap();
    assert!(m.file_type().is_char_device() && m.rdev() == 0);
}

#[test]
fn overlong_names_are_refused() {
    let sb = Sandbox::new();
    let long_component = "a".repeat(300);
    let tar = Tar::default().file(&long_component, "x").done();
    let err = sb
        .apply(&tar, Resolver::detect(), Whiteouts::Overlay)
        .unwrap_err();
    assert_eq!(refusal(&err), Refusal::NameTooLong);
    let long_path = vec!["d"; 2100].join("/"); // 4199 bytes
    let tar = Tar::default().file(&long_path, "x").done();
    let err = sb
        .apply(&tar, Resolver::detect(), Whiteouts::Overlay)
        .unwrap_err();
    assert_eq!(refusal(&err), Refusal::NameTooLong);
    sb.assert_contained("overlong");
}

#[test]
fn whiteouts_through_symlinks_stay_inside() {
    for w in [Whiteouts::Overlay, Whiteouts::Apply] {
        let sb = Sandbox::new();
        fs::write(Path::new(&sb.outside()).join("keep"), "x").unwrap();
        let dir = sb.dir.path().to_string_lossy().into_owned();
        let tar = Tar::default()
            .symlink("up", &dir)
            .file("up/.wh.victim", "")
            .symlink("out", &sb.outside())
            .file("out/.wh..wh..opq", "")
            .done();
        let _ = sb.apply(&tar, Resolver::detect(), w);
        assert!(Path::new(&sb.outside()).join("keep").exists(), "{w:?}");
        fs::remove_file(Path::new(&sb.outside()).join("keep")).unwrap();
        sb.assert_contained("whiteout through symlink");
        let tar = Tar::default().file(".wh...", "").done();
        let err = sb.apply(&tar, Resolver::detect(), w).unwrap_err();
        assert_eq!(refusal(&err), Refusal::BadWhiteout);
    }
}

// ---- layers and whiteouts, against expected trees ----------------------------------

/// A directory as a map: path -> a line saying what it is.
fn tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, rel: &str, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = fs::read_dir(root.join(rel))
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = format!("{rel}{}", e.file_name().to_string_lossy());
            let m = fs::symlink_metadata(e.path()).unwrap();
            let mode = m.mode() & 0o7777;
            let line = if m.is_dir() {
                let opaque = get_xattr(&e.path(), "trusted.overlay.opaque");
                let o = if opaque.as_deref() == Some(b"y") {
                    " opaque"
                } else {
                    ""
                };
                out.insert(format!("{name}/"), format!("dir {mode:o}{o}"));
                walk(root, &format!("{name}/"), out);
                continue;
            } else if m.file_type().is_symlink() {
                format!("-> {}", fs::read_link(e.path()).unwrap().display())
            } else if m.file_type().is_char_device() {
                format!("char {}:{}", m.rdev() >> 8, m.rdev() & 0xff)
            } else {
                format!("file {mode:o} {}", fs::read_to_string(e.path()).unwrap())
            };
            out.insert(name, line);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, "", &mut out);
    out
}

fn expect(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn layer_with_whiteouts() -> Vec<u8> {
    Tar::default()
        .dir("a/")
        .file("a/.wh.gone", "")
        .file("a/keep", "new")
        .dir("b/")
        .file("b/.wh..wh..opq", "")
        .file("b/new", "n")
        .symlink("c", "a/keep")
        .done()
}

#[test]
fn overlay_mode_turns_whiteouts_into_overlay_form() {
    let sb = Sandbox::new();
    let applied = apply_layer_with(
        &layer_with_whiteouts()[..],
        &sb.layer(),
        Whiteouts::Overlay,
        Resolver::detect(),
    )
    .unwrap();
    assert_eq!(applied.diff_id, sha256_digest(&layer_with_whiteouts()));
    assert_eq!(
        applied.digest, applied.diff_id,
        "plain tar: digest is the diff_id"
    );
    assert_eq!(
        tree(&sb.layer()),
        expect(&[
            ("a/", "dir 755"),
            ("a/gone", "char 0:0"),
            ("a/keep", "file 644 new"),
            ("b/", "dir 755 opaque"),
            ("b/new", "file 644 n"),
            ("c", "-> a/keep"),
        ])
    );
}

#[test]
fn apply_mode_deletes_what_whiteouts_name() {
    let sb = Sandbox::new();
    let lower = Tar::default()
        .dir("a/")
        .file("a/gone", "old")
        .file("a/keep", "old")
        .file("a/other", "o")
        .dir("b/")
        .file("b/old", "o")
        .dir("b/sub/")
        .file("b/sub/deep", "d")
        .done();
    apply_layer_with(
        &lower[..],
        &sb.layer(),
        Whiteouts::Apply,
        Resolver::detect(),
    )
    .unwrap();
    apply_layer_with(
        &layer_with_whiteouts()[..],
        &sb.layer(),
        Whiteouts::Apply,
        Resolver::detect(),
    )
    .unwrap();
    assert_eq!(
        tree(&sb.layer()),
        expect(&[
            ("a/", "dir 755"),
            ("a/keep", "file 644 new"),
            ("a/other", "file 644 o"),
            ("b/", "dir 755"),
            ("b/new", "file 644 n"),
            ("c", "-> a/keep"),
        ])
    );
}

#[test]
fn zstd_is_detected_across_frames_and_skippable_frames() {
    let plain = layer_with_whiteouts();
    // Two frames, with a skippable frame (magic 0x184D2A50, 4 bytes of
    // payload) in front, the way zstd:chunked lays out a layer.
    let half = plain.len() / 2;
    let mut zst = vec![0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4];
    zst.extend(zstd::encode_all(&plain[..half], 3).unwrap());
    zst.extend(zstd::encode_all(&plain[half..], 3).unwrap());
    let sb = Sandbox::new();
    let applied = apply_layer_with(
        &zst[..],
        &sb.layer(),
        Whiteouts::Overlay,
        Resolver::detect(),
    )
    .unwrap();
    assert_eq!(applied.compression, Compression::Zstd);
    assert_eq!(applied.digest, sha256_digest(&zst));
    assert_eq!(applied.diff_id, sha256_digest(&plain));
    assert_eq!(applied.size, zst.len() as u64);

    // A truncated zstd stream is an error, not a short layer.
    let one = zstd::encode_all(&plain[..], 3).unwrap();
    let sb = Sandbox::new();
    let cut = &one[..one.len() - 8];
    assert!(apply_layer_with(cut, &sb.layer(), Whiteouts::Overlay, Resolver::detect()).is_err());
}

#[test]
fn gzip_is_detected_and_both_digests_reported() {
    use std::io::Write;
    let plain = layer_with_whiteouts();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let sb = Sandbox::new();
    let applied =
        apply_layer_with(&gz[..], &sb.layer(), Whiteouts::Overlay, Resolver::detect()).unwrap();
    assert_eq!(applied.compression, Compression::Gzip);
    assert_eq!(applied.digest, sha256_digest(&gz));
    assert_eq!(applied.diff_id, sha256_digest(&plain));
    assert_eq!(applied.size, gz.len() as u64);
}

#[test]
fn setuid_bits_are_kept() {
    let sb = Sandbox::new();
    let mut t = Tar::default();
    let mut h = tar::Header::new_gnu();
    h.set_path("su").unwrap();
    h.set_mode(0o4755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(0);
    h.set_entry_type(EntryType::Regular);
    h.set_cksum();
    t.block(&h, b"");
    apply_layer_with(
        &t.done()[..],
        &sb.layer(),
        Whiteouts::Overlay,
        Resolver::detect(),
    )
    .unwrap();
    assert_eq!(
        fs::metadata(sb.layer().join("su")).unwrap().mode() & 0o7777,
        0o4755
    );
}

#[test]
fn a_shifted_layer_lands_in_the_range_and_refuses_owners_beyond_it() {
    use lab04_overlay::extract::{apply_layer_shifted, IdShift};
    let shift = IdShift {
        uid: 3_300_000,
        uid_count: 1000,
        gid: 3_400_000,
        gid_count: 1000,
    };
    let entry = |name: &str, uid: u64, gid: u64, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(0);
        h.set_size(0);
        h.set_entry_type(EntryType::Regular);
        h.set_cksum();
        h
    };
    // Owners inside the range move by its start; the setuid bit survives
    // the (shifted) chown, as it does unshifted.
    let sb = Sandbox::new();
    let mut t = Tar::default();
    t.block(&entry("root-file", 0, 0, 0o4755), b"");
    t.block(&entry("user-file", 999, 5, 0o644), b"");
    let layer = t.done();
    apply_layer_shifted(
        &layer[..],
        &sb.layer(),
        Whiteouts::Overlay,
        Resolver::detect(),
        Some(shift),
    )
    .unwrap();
    let meta = |n: &str| fs::symlink_metadata(sb.layer().join(n)).unwrap();
    assert_eq!(
        (meta("root-file").uid(), meta("root-file").gid()),
        (3_300_000, 3_400_000)
    );
    assert_eq!(meta("root-file").mode() & 0o7777, 0o4755);
    assert_eq!(
        (meta("user-file").uid(), meta("user-file").gid()),
        (3_300_999, 3_400_005)
    );
    // And back: what a container sees, nobody for what is outside.
    assert_eq!(shift.to_container(3_300_999, 3_400_005), (999, 5));
    assert_eq!(shift.to_container(0, 3_401_000), (65534, 65534));

    // An owner the range cannot hold: the layer is refused.
    for (uid, gid) in [(1000, 0), (0, 1000), (u64::from(u32::MAX) + 5, 0)] {
        let sb = Sandbox::new();
        let mut t = Tar::default();
        t.block(&entry("f", uid, gid, 0o644), b"");
        let err = apply_layer_shifted(
            &t.done()[..],
            &sb.layer(),
            Whiteouts::Overlay,
            Resolver::detect(),
            Some(shift),
        )
        .unwrap_err();
        assert!(
            matches!(refusal(&err), Refusal::UnmappedOwner { .. }),
            "{uid}:{gid}: {err:#}"
        );
    }
}
