//! Helpers shared by lab 04's integration tests.

/// A layer tarball: regular files, and symlinks given as `("name", "->target")`.
pub fn layer_tar(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        if let Some(target) = content.strip_prefix("->") {
            h.set_size(0);
            h.set_entry_type(tar::EntryType::Symlink);
            b.append_link(&mut h, name, target).unwrap();
        } else {
            h.set_size(content.len() as u64);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, content.as_bytes()).unwrap();
        }
    }
    b.into_inner().unwrap()
}

#[allow(dead_code)] // not every test file adds images
/// Adds an image named `name` whose layers are these tarballs, bottom first.
pub fn add(store: &lab04_overlay::Store, name: &str, tars: &[Vec<u8>]) -> lab04_overlay::Image {
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for tar in tars {
        let (digest, size) = store.put_blob(tar).unwrap();
        diff_ids.push(lab04_overlay::digest::sha256_digest(tar));
        layers.push(oci_spec::image::Descriptor::new(
            oci_spec::image::MediaType::ImageLayer,
            size,
            oci_spec::image::Digest::try_from(digest.as_str()).unwrap(),
        ));
    }
    let config = oci_spec::image::ImageConfigurationBuilder::default()
        .architecture(oci_spec::image::Arch::Amd64)
        .os(oci_spec::image::Os::Linux)
        // Each name its own config, as each build step's.
        .config(
            oci_spec::image::ConfigBuilder::default()
                .env(vec![format!("IMAGE={name}")])
                .build()
                .unwrap(),
        )
        .rootfs(
            oci_spec::image::RootFsBuilder::default()
                .typ("layers")
                .diff_ids(diff_ids)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    store.add_image(name, &config, layers).unwrap()
}
