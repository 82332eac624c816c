//! An image's repository digests (`RepoDigests`, the DIGEST column of
//! `images --digests`): `REPOSITORY@sha256:...`, the manifest's digest in
//! each registry repository it was pushed to or pulled from.
//!
//! A registry names a manifest by the sha256 of its bytes, and lab 04
//! neither rewrites a manifest when it pushes nor when it pulls one, so the
//! local manifest's digest is the registry's. Which repositories hold it is
//! lab 04's provenance record (`registry::sources`, kept for cross-repository
//! mounts); a name pinned by digest (`app@sha256:...`) is one too.
//!
//! ```text
//! $ docker push 127.0.0.1:5000/app:1
//! 1: digest: sha256:4f1c... size: 527
//! $ docker images --digests 127.0.0.1:5000/app
//! REPOSITORY            TAG   DIGEST          IMAGE ID  ...
//! 127.0.0.1:5000/app    1     sha256:4f1c...  ...
//! ```

use std::collections::BTreeSet;

use lab04_overlay::registry;
use lab04_overlay::store::Image;

use crate::engine::Engine;

/// `REPOSITORY@DIGEST` of `image`, each once, sorted; repositories by
/// their familiar names (`busybox`, not `docker.io/library/busybox`).
pub fn repo_digests(engine: &Engine, image: &Image) -> Vec<String> {
    let mut out: BTreeSet<String> = crate::image_lookup::names_of(engine, &image.config_digest)
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.contains('@'))
        .collect();
    for repo in registry::sources(&engine.images, &image.config_digest).unwrap_or_default() {
        let familiar = repo
            .strip_prefix("docker.io/library/")
            .or_else(|| repo.strip_prefix("docker.io/"))
            .unwrap_or(&repo);
        out.insert(format!("{familiar}@{}", image.manifest_digest));
    }
    out.into_iter().collect()
}

/// The digest of `repository` among `digests` (`repo_digests`'), if any.
pub fn digest_in<'a>(digests: &'a [String], repository: &str) -> Option<&'a str> {
    digests.iter().find_map(|d| {
        d.split_once('@')
            .filter(|(r, _)| *r == repository)
            .map(|(_, digest)| digest)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repositorys_digest_is_found_by_its_name() {
        let d = vec![
            "127.0.0.1:5000/app@sha256:aa".to_string(),
            "app@sha256:bb".to_string(),
        ];
        assert_eq!(digest_in(&d, "app"), Some("sha256:bb"));
        assert_eq!(digest_in(&d, "127.0.0.1:5000/app"), Some("sha256:aa"));
        assert_eq!(digest_in(&d, "other"), None);
    }
}
