//! Content addressing: every blob is named by the SHA-256 of its bytes.
//!
//! Three kinds of identifier describe a layer, and the differences matter:
//!
//! - the **layer digest**: sha256 of the blob as stored (usually gzip). The
//!   manifest points at it; a registry stores it under it.
//! - the **diff_id**: sha256 of the *uncompressed* tar. The image config lists
//!   them in `rootfs.diff_ids`. Recompressing a layer changes its digest but
//!   not its diff_id.
//! - the **chain ID**: identifies a layer *together with everything below it*,
//!   because the same tar applied on a different parent is a different
//!   filesystem. Docker defines it as
//!   `chain_id(L1) = diff_id(L1)` and
//!   `chain_id(Ln) = sha256(chain_id(Ln-1) + " " + diff_id(Ln))`.
//!   One unpacked directory per chain ID is shared by every image that has
//!   the same stack of layers up to that point.
//!
//! `sha256sum blob` gives the same hex as [`sha256_digest`].

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Read;
use std::rc::Rc;

use anyhow::{bail, Context, Result};
use sha2::{Digest as _, Sha256};

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex part of a `sha256:<hex>` digest, checked: 64 lower-case hex digits.
/// Digests become file names in the store, so a malformed one (`sha256:../x`)
/// must never reach a path.
pub fn digest_hex(digest: &str) -> Result<&str> {
    let Some(hex) = digest.strip_prefix("sha256:") else {
        bail!("unsupported digest {digest:?}: only sha256 is supported");
    };
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        bail!("malformed digest {digest:?}: expected sha256: and 64 lower-case hex digits");
    }
    Ok(hex)
}

// ANCHOR: chain_id
/// The chain IDs of a stack of layers, bottom first, from their diff_ids.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut chain: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let id = match chain.last() {
            None => diff_id.clone(),
            Some(parent) => sha256_digest(format!("{parent} {diff_id}").as_bytes()),
        };
        chain.push(id);
    }
    chain
}
// ANCHOR_END: chain_id

/// JSON with every object's keys sorted and no whitespace. The oci-spec
/// types hold annotations in a HashMap, whose order changes from run to run;
/// sorting makes the bytes, and so the digests, stable.
pub fn canonical_json<T: serde::Serialize>(value: &T, what: &str) -> Result<Vec<u8>> {
    fn sort(value: serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let sorted: BTreeMap<String, serde_json::Value> =
                    map.into_iter().map(|(k, v)| (k, sort(v))).collect();
                serde_json::Value::Object(sorted.into_iter().collect())
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.into_iter().map(sort).collect())
            }
            other => other,
        }
    }
    let value = serde_json::to_value(value).with_context(|| format!("serializing the {what}"))?;
    serde_json::to_vec(&sort(value)).with_context(|| format!("serializing the {what}"))
}

/// GOARCH naming, which OCI uses: x86_64 is `amd64`, aarch64 is `arm64`.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "loongarch64" => "loong64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        other => other,
    }
}

/// A running SHA-256 and byte count, shared between a [`HashingReader`] and
/// whoever wants the result once the reader has been consumed.
#[derive(Clone, Default)]
pub struct Hasher(Rc<RefCell<(Sha256, u64)>>);

impl Hasher {
    /// `sha256:<hex>` of everything read so far.
    pub fn digest(&self) -> String {
        let state = self.0.borrow();
        format!("sha256:{}", hex::encode(state.0.clone().finalize()))
    }

    /// How many bytes went through.
    pub fn len(&self) -> u64 {
        self.0.borrow().1
    }

    /// Whether nothing went through.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A reader that hashes what passes through it: digests are computed while
/// the layer streams into place, so a layer is read exactly once.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> (Self, Hasher) {
        let hasher = Hasher::default();
        (
            HashingReader {
                inner,
                hasher: hasher.clone(),
            },
            hasher,
        )
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut state = self.hasher.0.borrow_mut();
        state.0.update(&buf[..n]);
        state.1 += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_docker() {
        let a = sha256_digest(b"a");
        let b = sha256_digest(b"b");
        let c = sha256_digest(b"c");
        let ids = chain_ids(&[a.clone(), b.clone(), c.clone()]);
        assert_eq!(ids[0], a, "the bottom layer's chain ID is its diff_id");
        let ab = sha256_digest(format!("{a} {b}").as_bytes());
        assert_eq!(ids[1], ab);
        assert_eq!(ids[2], sha256_digest(format!("{ab} {c}").as_bytes()));
        // The same diff_id on another parent is another chain ID.
        assert_ne!(chain_ids(&[c.clone(), b.clone()])[1], ids[1]);
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn sha256_matches_known_vector() {
        assert_eq!(
            sha256_digest(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn malformed_digests_never_become_paths() {
        assert!(digest_hex("sha256:../../etc/passwd").is_err());
        assert!(digest_hex("md5:abc").is_err());
        assert!(digest_hex("sha256:").is_err());
        let upper = format!("sha256:{}", "A".repeat(64));
        assert!(digest_hex(&upper).is_err());
        let ok = sha256_digest(b"x");
        assert_eq!(digest_hex(&ok).unwrap(), &ok[7..]);
    }

    #[test]
    fn hashing_reader_hashes_what_passes() {
        let (mut r, h) = HashingReader::new(&b"abc"[..]);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(h.digest(), sha256_digest(b"abc"));
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let nested = serde_json::json!({"b": {"z": 1, "a": 2}, "a": [ {"y": 1, "x": 2} ]});
        let text = String::from_utf8(canonical_json(&nested, "test").expect("ok")).expect("utf8");
        assert_eq!(text, r#"{"a":[{"x":2,"y":1}],"b":{"a":2,"z":1}}"#);
    }
}
