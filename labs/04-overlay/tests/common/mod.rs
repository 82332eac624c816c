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
