//! Image references: what names an image where a command takes one.
//!
//! Docker accepts three forms everywhere (`run`, `create`, `history`,
//! `rmi`, `tag`, `save`, `inspect`...), and so does dockyard:
//!
//! ```text
//! $ dockyard history busybox            # a name (busybox:latest)
//! $ dockyard history sha256:918df8aa... # an image ID: the config's digest
//! $ dockyard history 918d               # a unique prefix of an ID
//! ```
//!
//! A name is looked up in the store's `index.json`; an ID is the digest of
//! an image's config blob (`blobs/sha256/<hex>`), which is why two names
//! of the same image show the same IMAGE ID. A name wins over a prefix:
//! a tag called `918d` is found before the ID that starts with it. This is
//! moby's `GetImage`, with its messages.

use std::collections::BTreeSet;

use anyhow::{bail, Result};
use lab04_overlay as overlay;

use crate::engine::Engine;
use overlay::store::Image;

/// No image answers to a reference. Its text is docker's (`No such image:
/// busybox:latest`, the name completed with its tag); `run` and `create`
/// recognise it to decide on a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoSuchImage(pub String);

impl std::fmt::Display for NoSuchImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "No such image: {}", self.0)
    }
}

impl std::error::Error for NoSuchImage {}

/// How a reference found its image.
#[derive(Debug, Clone)]
pub struct Found {
    /// The image (named with the tag that matched, or, found by ID, with
    /// its first name in sort order).
    pub image: Image,
    /// Found by its ID (`sha256:...`, 64 hex digits or a unique prefix)
    /// rather than by a name: `rmi` then removes every name of it.
    pub by_id: bool,
}

/// Find the image `reference` names, as docker's daemon does (moby's
/// `GetImage`): everywhere a command takes an image, it takes
///
/// - a name, `busybox`, `busybox:1.36`, `127.0.0.1:5000/app@sha256:...`
///   (`busybox` means `busybox:latest`);
/// - an image ID: `sha256:` and 64 hex digits, or the 64 digits alone;
/// - a unique prefix of an ID (`44f`, `sha256:44f`), tried after the
///   names: a tag called `44f` wins over an ID that starts with it.
///
/// A malformed reference is refused with docker's words (`invalid
/// reference format...`); a missing image is a [`NoSuchImage`]; a prefix
/// of several IDs is docker's `ambiguous reference`.
pub fn lookup(engine: &Engine, reference: &str) -> Result<Found> {
    // The ID forms first: they are not names (a name of 64 hex digits is
    // refused, so that these can never be confused).
    if let Some(hex) = reference.strip_prefix("sha256:") {
        if hex.is_empty() || !overlay::reference::is_hex(hex) || hex.len() > 64 {
            bail!("invalid reference format");
        }
        return by_id_prefix(engine, hex, reference);
    }
    if overlay::reference::is_full_hex_id(reference) {
        return by_id_prefix(engine, reference, reference);
    }
    let parsed = overlay::reference::Reference::parse(reference)?;
    let name = parsed.familiar();
    if let Some((_, desc)) = engine.images.names()?.into_iter().find(|(n, _)| *n == name) {
        let image = engine.images.image_by_manifest(desc.digest().as_ref())?;
        let image = Image { name, ..image };
        return Ok(Found {
            image,
            by_id: false,
        });
    }
    if overlay::reference::is_hex(reference) {
        return by_id_prefix(engine, reference, &name);
    }
    Err(NoSuchImage(name).into())
}

/// [`lookup`] for the callers that need only the image.
pub fn find(engine: &Engine, reference: &str) -> Result<Image> {
    lookup(engine, reference).map(|f| f.image)
}

/// The image whose ID (config digest) starts with `hex`; `shown` is what a
/// "No such image" names.
fn by_id_prefix(engine: &Engine, hex: &str, shown: &str) -> Result<Found> {
    let mut matches: Vec<Image> = engine
        .images
        .images()?
        .into_iter()
        .filter(|i| {
            i.config_digest
                .strip_prefix("sha256:")
                .is_some_and(|h| h.starts_with(hex))
        })
        .collect();
    matches.sort_by(|a, b| a.name.cmp(&b.name));
    let ids: BTreeSet<&str> = matches.iter().map(|i| i.config_digest.as_str()).collect();
    match ids.len() {
        0 => Err(NoSuchImage(shown.to_string()).into()),
        1 => Ok(Found {
            image: matches.remove(0),
            by_id: true,
        }),
        // Docker's words (its containerd image service) for a prefix of
        // several IDs: the user must type more of it.
        _ => bail!("ambiguous reference"),
    }
}

/// Every name (tag) the image with ID `config_digest` has, sorted.
pub fn names_of(engine: &Engine, config_digest: &str) -> Result<Vec<String>> {
    let mut names: Vec<String> = engine
        .images
        .images()?
        .into_iter()
        // An image without a name is listed as `""`: it has no name to give.
        .filter(|i| i.config_digest == config_digest && !i.name.is_empty())
        .map(|i| i.name)
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of one file, `/f`, holding `content`.
    fn layer(content: &str) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, "f", content.as_bytes()).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn names_ids_and_unique_prefixes_find_images() {
        let root = tempfile::tempdir().unwrap();
        let engine = Engine::for_tests(root.path());
        // Images until two IDs share their first hex digit (17 at most).
        let mut by_digit: std::collections::BTreeMap<char, Vec<String>> = Default::default();
        let mut pair = None;
        for n in 0..17 {
            let name = format!("img{n}:1");
            let image = crate::image::import(&engine, &layer(&n.to_string())[..], &name).unwrap();
            let hex = image
                .config_digest
                .strip_prefix("sha256:")
                .unwrap()
                .to_string();
            let same = by_digit.entry(hex.chars().next().unwrap()).or_default();
            same.push(hex);
            if same.len() == 2 {
                pair = Some(same.clone());
                break;
            }
        }
        let pair = pair.expect("two of 17 IDs share a first digit");
        let (a, b) = (&pair[0], &pair[1]);
        // The full ID, with and without sha256:, and a unique prefix.
        let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
        let unique = &a[..common + 1];
        for r in [a.clone(), format!("sha256:{a}"), unique.to_string()] {
            let found = lookup(&engine, &r).unwrap();
            assert!(found.by_id, "{r}");
            assert_eq!(found.image.config_digest, format!("sha256:{a}"), "{r}");
        }
        // A prefix of both: docker's words.
        let err = lookup(&engine, &a[..common]).unwrap_err().to_string();
        assert_eq!(err, "ambiguous reference");
        // A name wins over a prefix: tag b's image with a's unique prefix.
        crate::distribution::tag(&engine, b, unique).unwrap();
        let found = lookup(&engine, unique).unwrap();
        assert!(!found.by_id);
        assert_eq!(found.image.config_digest, format!("sha256:{b}"));
        // Missing and malformed.
        let err = lookup(&engine, "nosuch").unwrap_err();
        assert_eq!(
            err.downcast_ref::<NoSuchImage>(),
            Some(&NoSuchImage("nosuch:latest".into()))
        );
        assert_eq!(err.to_string(), "No such image: nosuch:latest");
        for bad in ["sha256:", "sha256:xyz", "Nope", "a b"] {
            let err = lookup(&engine, bad).unwrap_err();
            assert!(err.downcast_ref::<NoSuchImage>().is_none(), "{bad}");
            assert!(
                err.to_string().contains("invalid reference format"),
                "{bad}: {err}"
            );
        }
    }
}
