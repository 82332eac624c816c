//! Moving images between this engine and registries: `pull`, `push`,
//! `tag`, and the credentials of `login` and `logout`.
//!
//! The distribution protocol itself (references, manifests, the token dance,
//! verified downloads into the store) is lab 04's (`reference.rs`,
//! `registry.rs`): it is how images get *into* an image store, and the store
//! is lab 04's. What is here is the engine's part: daemon.json's
//! `registry-mirrors` and `insecure-registries`, and the credentials file.
//! Showing progress is the front end's (see [`Event`]).
//!
//! **Credentials** are kept as Docker keeps them, in a `config.json`:
//!
//! ```json
//! {"auths": {"127.0.0.1:5000": {"auth": "base64(user:password)"}}}
//! ```
//!
//! at `$DOCKYARD_CONFIG_DIR/config.json`, else `~/.dockyard/config.json`
//! (Docker's is `$DOCKER_CONFIG/config.json`, `~/.docker/config.json`; the
//! format is the same, so either file can be copied to the other). The file
//! is created with mode 0600: base64 is an encoding, not encryption, and
//! anyone who can read the file can log in as you. Docker can instead hand
//! credentials to a *credential helper* (`"credsStore": "pass"` runs
//! `docker-credential-pass`, which keeps them in the OS keyring);
//! dockyard does not run helpers yet, says so, and keeps other keys of the
//! file as they are.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use lab04_overlay::reference::{Reference, DOCKER_HUB};
use lab04_overlay::registry::{self, Client, Platform};
use serde_json::{json, Value};

use crate::engine::Engine;

use lab04_overlay::registry::{Credentials, Event, Pulled, Pushed};

/// The key Docker uses for Docker Hub in config.json.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";
/// Push blobs larger than this in chunks (PATCH), smaller ones in one PUT.
const DEFAULT_CHUNK: u64 = 5 << 20;

// ---- credentials -----------------------------------------------------------

/// `$DOCKYARD_CONFIG_DIR/config.json`, else `~/.dockyard/config.json`.
pub fn config_path() -> PathBuf {
    let dir = std::env::var_os("DOCKYARD_CONFIG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            PathBuf::from(home).join(".dockyard")
        });
    dir.join("config.json")
}

/// `127.0.0.1:5000` of `http://127.0.0.1:5000/v2/`; Docker Hub's names all
/// become `docker.io`.
pub fn server_domain(server: &str) -> String {
    let s = server
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" | "" => DOCKER_HUB.to_string(),
        h => h.to_string(),
    }
}

/// The key a domain has in `auths` (what `login` and `logout` name it).
pub fn auth_key(domain: &str) -> String {
    if domain == DOCKER_HUB {
        DOCKER_HUB_KEY.to_string()
    } else {
        domain.to_string()
    }
}

fn read_config() -> Result<Value> {
    let path = config_path();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({})),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes config.json by a temporary file and a rename, mode 0600 from the
/// start (never readable by others, not even for a moment).
fn write_config(doc: &Value) -> Result<()> {
    let path = config_path();
    let dir = path.parent().context("config.json has no directory")?;
    if !dir.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let tmp = dir.join(format!(".config.json.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(serde_json::to_string_pretty(doc)?.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming into {}", path.display()))
}

/// The warnings a config.json with credential helpers deserves.
fn helper_warnings(doc: &Value) -> Vec<String> {
    ["credsStore", "credHelpers"]
        .iter()
        .filter(|key| doc.get(**key).is_some())
        .map(|key| {
            format!(
                "WARNING: {}: {key:?} is set, but dockyard does not run credential helpers; \
                 it uses the \"auths\" entries of this file",
                config_path().display()
            )
        })
        .collect()
}

/// The stored credentials for a registry domain, if any.
pub(crate) fn credentials_for(domain: &str) -> Result<Option<Credentials>> {
    let doc = read_config()?;
    let Some(auths) = doc.get("auths").and_then(Value::as_object) else {
        return Ok(None);
    };
    for (key, entry) in auths {
        if server_domain(key) != domain {
            continue;
        }
        if let Some(auth) = entry.get("auth").and_then(Value::as_str) {
            let c = Credentials::decode(auth)
                .with_context(|| format!("{}: auths.{key:?}", config_path().display()))?;
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// `login`: check the credentials against the registry of `server` (`GET
/// /v2/`), then store them. `warn` hears the warnings about the file as
/// they arise. Returns the file they were stored in.
pub fn login(
    engine: &Engine,
    server: Option<&str>,
    creds: Credentials,
    warn: &mut dyn FnMut(&str),
) -> Result<PathBuf> {
    let encoded = creds.encoded();
    let domain = check_login(engine, server, creds)?;

    let mut doc = read_config()?;
    for w in helper_warnings(&doc) {
        warn(&w);
    }
    let Some(top) = doc.as_object_mut() else {
        bail!(
            "{}: the top level is not a JSON object",
            config_path().display()
        );
    };
    let auths = top.entry("auths").or_insert_with(|| json!({}));
    let Some(auths) = auths.as_object_mut() else {
        bail!("{}: \"auths\" is not an object", config_path().display());
    };
    auths.retain(|k, _| server_domain(k) != domain);
    auths.insert(auth_key(&domain), json!({ "auth": encoded }));
    write_config(&doc)?;
    Ok(config_path())
}

/// `login`'s check alone, storing nothing (the Engine API's `POST /auth`:
/// the client keeps the credentials, the daemon only vouches for them).
/// Returns the registry's domain.
pub fn check_login(engine: &Engine, server: Option<&str>, creds: Credentials) -> Result<String> {
    let domain = server_domain(server.unwrap_or(DOCKER_HUB));
    let base = registry::base_url(&domain, &engine.config.insecure_registries);
    Client::new(&base, &domain, Some(creds))
        .ping()
        .with_context(|| format!("login to {domain} failed"))?;
    Ok(domain)
}

/// `logout`: forget the credentials of `server`. Returns whether there
/// were any, and the name docker shows for the server.
pub fn logout(server: Option<&str>) -> Result<(bool, String)> {
    let domain = server_domain(server.unwrap_or(DOCKER_HUB));
    let mut doc = read_config()?;
    let removed = doc
        .get_mut("auths")
        .and_then(Value::as_object_mut)
        .map(|auths| {
            let before = auths.len();
            auths.retain(|k, _| server_domain(k) != domain);
            before != auths.len()
        })
        .unwrap_or(false);
    if removed {
        write_config(&doc)?;
    }
    Ok((removed, auth_key(&domain)))
}

// ---- pull, push, tag ---------------------------------------------------------

/// `pull`: the image `reference` for `platform`, into the store. Docker Hub
/// pulls try each of daemon.json's mirrors first (`warn` hears of each that
/// fails), then Docker Hub itself. `report` hears the layers' progress.
pub fn pull(
    engine: &Engine,
    reference: &Reference,
    platform: &Platform,
    report: &(dyn Fn(Event) + Sync),
    warn: &mut dyn FnMut(&str),
) -> Result<Pulled> {
    let creds = credentials_for(&reference.domain)?;
    pull_as(engine, reference, platform, creds, report, warn)
}

/// [`pull`] with the credentials given, not those of the credentials file:
/// the Engine API's, which the client sends in `X-Registry-Auth` (dockerd
/// has no credentials of its own; each client brings its user's).
pub fn pull_as(
    engine: &Engine,
    reference: &Reference,
    platform: &Platform,
    creds: Option<Credentials>,
    report: &(dyn Fn(Event) + Sync),
    warn: &mut dyn FnMut(&str),
) -> Result<Pulled> {
    let mut mirrors: Vec<Client> = Vec::new();
    if reference.domain == DOCKER_HUB {
        for m in &engine.config.registry_mirrors {
            let name = m
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/');
            mirrors.push(Client::new(m, name, None));
        }
    }
    for mirror in &mirrors {
        match registry::pull(&engine.images, mirror, reference, platform, report) {
            Ok(p) => {
                pull_event(engine, reference);
                return Ok(p);
            }
            Err(e) => warn(&format!(
                "WARNING: mirror {} failed ({e:#}); trying the next",
                mirror.name()
            )),
        }
    }
    let base = registry::base_url(&reference.domain, &engine.config.insecure_registries);
    let client = Client::new(&base, &reference.domain, creds);
    let pulled = registry::pull(&engine.images, &client, reference, platform, report)?;
    pull_event(engine, reference);
    Ok(pulled)
}

/// dockerd's pull and push events name the reference, not the image ID.
fn pull_event(engine: &Engine, reference: &Reference) {
    crate::events::image(
        engine,
        &reference.familiar(),
        &reference.familiar_repository(),
        "pull",
    );
}

/// The chunk size of pushes: `DOCKYARD_PUSH_CHUNK_SIZE` bytes, else 5 MiB.
pub fn push_chunk_size() -> Result<u64> {
    match std::env::var("DOCKYARD_PUSH_CHUNK_SIZE") {
        Ok(v) => v
            .parse::<u64>()
            .map_err(|_| anyhow!("DOCKYARD_PUSH_CHUNK_SIZE={v:?}: expected a number of bytes")),
        Err(_) => Ok(DEFAULT_CHUNK),
    }
}

/// The local image a push of `reference` sends: the one tagged with that
/// name (`tag` gives it one).
pub fn image_to_push(engine: &Engine, reference: &Reference) -> Result<crate::image::Image> {
    if reference.digest.is_some() {
        bail!("cannot push a digest reference ({reference}): push a tag");
    }
    engine.images.image(&reference.familiar()).map_err(|_| {
        anyhow!(
            "An image does not exist locally with the tag: {}",
            reference.familiar_repository()
        )
    })
}

/// `push`: `image` to the registry of `reference`, blobs larger than
/// `chunk` bytes in chunks. `report` hears the layers' progress.
pub fn push(
    engine: &Engine,
    image: &crate::image::Image,
    reference: &Reference,
    chunk: u64,
    report: &(dyn Fn(Event) + Sync),
) -> Result<Pushed> {
    let creds = credentials_for(&reference.domain)?;
    push_as(engine, image, reference, chunk, creds, report)
}

/// [`push`] with the credentials given (see [`pull_as`]).
pub fn push_as(
    engine: &Engine,
    image: &crate::image::Image,
    reference: &Reference,
    chunk: u64,
    creds: Option<Credentials>,
    report: &(dyn Fn(Event) + Sync),
) -> Result<Pushed> {
    let base = registry::base_url(&reference.domain, &engine.config.insecure_registries);
    let client = Client::new(&base, &reference.domain, creds);
    let pushed = registry::push(&engine.images, &client, image, reference, chunk, report)?;
    crate::events::image(
        engine,
        &reference.familiar(),
        &reference.familiar_repository(),
        "push",
    );
    Ok(pushed)
}

/// `tag SOURCE TARGET`: one more name for the image named `source`.
pub fn tag(engine: &Engine, source: &str, target: &str) -> Result<()> {
    // Both names are checked before the store is read, with the docker
    // client's words.
    let not_valid = |r: &str, e: anyhow::Error| {
        anyhow!("Error parsing reference: {r:?} is not a valid repository/tag: {e:#}")
    };
    let target_ref = Reference::parse(target).map_err(|e| not_valid(target, e))?;
    if target_ref.digest.is_some() {
        bail!("refusing to create a tag with a digest reference");
    }
    let id_form = source.starts_with("sha256:") || lab04_overlay::reference::is_full_hex_id(source);
    if !id_form {
        Reference::parse(source).map_err(|e| not_valid(source, e))?;
    }
    let image = crate::image::find(engine, source)?;
    // Its manifest's entry: a name's, or that of an image without a name
    // (which the new name takes the place of).
    let unnamed = engine
        .images
        .unnamed()?
        .into_iter()
        .map(|d| (String::new(), d));
    let Some((_, desc)) = engine
        .images
        .names()?
        .into_iter()
        .chain(unnamed)
        .find(|(_, d)| d.digest().as_ref() == image.manifest_digest)
    else {
        bail!("No such image: {source}");
    };
    engine.images.tag(&target_ref.familiar(), &desc)?;
    crate::events::image(engine, &image.config_digest, &target_ref.familiar(), "tag");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_normalise_like_docker() {
        assert_eq!(server_domain("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(server_domain("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
        assert_eq!(server_domain(DOCKER_HUB_KEY), "docker.io");
        assert_eq!(server_domain("docker.io"), "docker.io");
        assert_eq!(auth_key("docker.io"), DOCKER_HUB_KEY);
        assert_eq!(auth_key("ghcr.io"), "ghcr.io");
    }

    #[test]
    fn helpers_are_warned_about() {
        assert!(helper_warnings(&json!({"auths": {}})).is_empty());
        let w = helper_warnings(&json!({"credsStore": "pass"}));
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("\"credsStore\" is set"), "{}", w[0]);
    }
}
