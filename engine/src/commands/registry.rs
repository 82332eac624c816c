//! `dockyard pull`, `push`, `login`, `logout` and `tag`.
//!
//! The distribution protocol itself (references, manifests, the token dance,
//! verified downloads into the store) is lab 04's (`reference.rs`,
//! `registry.rs`): it is how images get *into* an image store, and the store
//! is lab 04's. What is here is orchestration: daemon.json's
//! `registry-mirrors` and `insecure-registries`, the credentials file, and
//! docker's output.
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

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context, Result};
use lab04_overlay::reference::{Reference, DOCKER_HUB};
use lab04_overlay::registry::{self, Client, Credentials, Event, Platform};
use serde_json::{json, Value};

use super::Code;
use crate::cli::{LoginArgs, LogoutArgs, PullArgs, PushArgs, TagArgs};
use dockyard::Engine;

/// The key Docker uses for Docker Hub in config.json.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";
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
fn server_domain(server: &str) -> String {
    let s = server
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" | "" => DOCKER_HUB.to_string(),
        h => h.to_string(),
    }
}

/// The key a domain has in `auths`.
fn auth_key(domain: &str) -> String {
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
    let dir = path.parent().expect("config.json has a directory");
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

fn warn_about_helpers(doc: &Value) {
    for key in ["credsStore", "credHelpers"] {
        if doc.get(key).is_some() {
            eprintln!(
                "WARNING: {}: {key:?} is set, but dockyard does not run credential helpers; \
                 it uses the \"auths\" entries of this file",
                config_path().display()
            );
        }
    }
}

/// The stored credentials for a registry domain, if any.
fn credentials_for(domain: &str) -> Result<Option<Credentials>> {
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

// ---- progress --------------------------------------------------------------

/// Prints pull/push events as docker does: a line each when the output is
/// not a terminal; a bar per layer when it is.
struct Progress {
    bars: Option<(
        indicatif::MultiProgress,
        Mutex<BTreeMap<String, indicatif::ProgressBar>>,
    )>,
}

impl Progress {
    fn new() -> Progress {
        let bars = std::io::stdout()
            .is_terminal()
            .then(|| (indicatif::MultiProgress::new(), Mutex::new(BTreeMap::new())));
        Progress { bars }
    }

    fn event(&self, e: Event) {
        let (id, text) = match &e {
            Event::Waiting { id, .. } => (id, "Pulling fs layer".to_string()),
            Event::Downloading { id, done, total } => {
                if let Some((_, bars)) = &self.bars {
                    if let Some(b) = bars.lock().expect("bars").get(id) {
                        b.set_length(*total);
                        b.set_position(*done);
                        b.set_message("Downloading");
                    }
                }
                return;
            }
            Event::Downloaded { id } => (id, "Download complete".to_string()),
            Event::Extracted { id } => (id, "Pull complete".to_string()),
            Event::AlreadyExists { id } => (id, "Already exists".to_string()),
            Event::Preparing { id } => (id, "Preparing".to_string()),
            Event::Pushed { id } => (id, "Pushed".to_string()),
            Event::LayerExists { id } => (id, "Layer already exists".to_string()),
            Event::Mounted { id, from } => (id, format!("Mounted from {from}")),
        };
        match &self.bars {
            None => println!("{id}: {text}"),
            Some((multi, bars)) => {
                let mut bars = bars.lock().expect("bars");
                let bar = bars.entry(id.clone()).or_insert_with(|| {
                    let b = multi.add(indicatif::ProgressBar::new(0));
                    b.set_style(
                        indicatif::ProgressStyle::with_template(
                            "{prefix}: {msg:<18} [{bar:40}] {bytes}/{total_bytes}",
                        )
                        .expect("a valid template")
                        .progress_chars("=> "),
                    );
                    b.set_prefix(id.clone());
                    b
                });
                if let Event::Waiting { total, .. } = e {
                    bar.set_length(total);
                }
                let done = matches!(
                    e,
                    Event::Extracted { .. }
                        | Event::AlreadyExists { .. }
                        | Event::Pushed { .. }
                        | Event::LayerExists { .. }
                        | Event::Mounted { .. }
                );
                if done {
                    bar.finish_with_message(text);
                } else {
                    bar.set_message(text);
                }
            }
        }
    }
}

// ---- the commands ----------------------------------------------------------

/// A client for a registry domain, with its credentials, over https unless
/// the registry is insecure (daemon.json) or on the loopback.
fn client_for(engine: &Engine, domain: &str) -> Result<Client> {
    let base = registry::base_url(domain, &engine.config.insecure_registries);
    Ok(Client::new(&base, domain, credentials_for(domain)?))
}

/// `docker pull [--platform P] REF`.
pub fn pull(engine: &Engine, args: &PullArgs) -> Result<Code> {
    let reference = Reference::parse(&args.image)?;
    let platform = match &args.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    if !args.image.contains(':') && !args.image.contains('@') {
        println!("Using default tag: latest");
    }
    if let Some(tag) = &reference.tag {
        if reference.digest.is_none() {
            println!("{tag}: Pulling from {}", reference.path);
        }
    }
    let progress = Progress::new();
    let report = |e: Event| progress.event(e);

    // Docker Hub pulls try each mirror first, then Docker Hub itself.
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
    let mut pulled = None;
    for mirror in &mirrors {
        match registry::pull(&engine.images, mirror, &reference, &platform, &report) {
            Ok(p) => {
                pulled = Some(p);
                break;
            }
            Err(e) => eprintln!(
                "WARNING: mirror {} failed ({e:#}); trying the next",
                mirror.name()
            ),
        }
    }
    let pulled = match pulled {
        Some(p) => p,
        None => {
            let client = client_for(engine, &reference.domain)?;
            registry::pull(&engine.images, &client, &reference, &platform, &report)?
        }
    };
    println!("Digest: {}", pulled.digest);
    if pulled.up_to_date {
        println!("Status: Image is up to date for {}", pulled.name);
    } else {
        println!("Status: Downloaded newer image for {}", pulled.name);
    }
    println!("{reference}");
    Ok(0)
}

/// `docker push REF`: the image must exist locally under that name
/// (`dockyard tag` gives it one).
pub fn push(engine: &Engine, args: &PushArgs) -> Result<Code> {
    let reference = Reference::parse(&args.image)?;
    if reference.digest.is_some() {
        bail!("cannot push a digest reference ({reference}): push a tag");
    }
    let name = reference.familiar();
    let image = engine.images.image(&name).map_err(|_| {
        anyhow!(
            "An image does not exist locally with the tag: {}",
            reference.familiar_repository()
        )
    })?;
    let chunk = match std::env::var("DOCKYARD_PUSH_CHUNK_SIZE") {
        Ok(v) => v
            .parse::<u64>()
            .map_err(|_| anyhow!("DOCKYARD_PUSH_CHUNK_SIZE={v:?}: expected a number of bytes"))?,
        Err(_) => DEFAULT_CHUNK,
    };
    println!(
        "The push refers to repository [{}]",
        if reference.domain == DOCKER_HUB {
            reference.repository()
        } else {
            reference.familiar_repository()
        }
    );
    let client = client_for(engine, &reference.domain)?;
    let progress = Progress::new();
    let pushed = registry::push(
        &engine.images,
        &client,
        &image,
        &reference,
        chunk,
        &|e: Event| progress.event(e),
    )?;
    println!(
        "{}: digest: {} size: {}",
        pushed.tag, pushed.digest, pushed.size
    );
    Ok(0)
}

/// `docker tag SOURCE TARGET`.
pub fn tag(engine: &Engine, args: &TagArgs) -> Result<Code> {
    let target = Reference::parse(&args.target)?;
    if target.digest.is_some() {
        bail!(
            "refusing to create a tag with a digest reference: {}",
            args.target
        );
    }
    let source = lab04_overlay::store::normalize_name(&args.source);
    let Some((_, desc)) = engine
        .images
        .names()?
        .into_iter()
        .find(|(n, _)| *n == source)
    else {
        bail!("No such image: {}", args.source);
    };
    engine.images.tag(&target.familiar(), &desc)?;
    Ok(0)
}

/// `docker login [-u USER] [-p PASS | --password-stdin] [SERVER]`: checks
/// the credentials against the registry (`GET /v2/`), then stores them.
pub fn login(engine: &Engine, args: &LoginArgs) -> Result<Code> {
    let domain = server_domain(args.server.as_deref().unwrap_or(DOCKER_HUB));
    if args.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    let stdin = std::io::stdin();
    let username = match &args.username {
        Some(u) => u.clone(),
        None if args.password_stdin => {
            bail!("Must provide --username with --password-stdin")
        }
        None => {
            if !stdin.is_terminal() {
                bail!("Cannot perform an interactive login from a non TTY device");
            }
            print!("Username: ");
            std::io::stdout().flush()?;
            let mut line = String::new();
            stdin.lock().read_line(&mut line)?;
            line.trim().to_string()
        }
    };
    let password = match (&args.password, args.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are mutually exclusive"),
        (Some(p), false) => p.clone(),
        (None, true) => {
            let mut p = String::new();
            std::io::Read::read_to_string(&mut stdin.lock(), &mut p)?;
            p.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => read_password()?,
    };
    if username.is_empty() {
        bail!("Error: Non-null Username Required");
    }
    if password.is_empty() {
        bail!("Error: Password Required");
    }
    let creds = Credentials { username, password };
    let base = registry::base_url(&domain, &engine.config.insecure_registries);
    Client::new(&base, &domain, Some(creds.clone()))
        .ping()
        .with_context(|| format!("login to {domain} failed"))?;

    let mut doc = read_config()?;
    warn_about_helpers(&doc);
    if !doc.is_object() {
        bail!(
            "{}: the top level is not a JSON object",
            config_path().display()
        );
    }
    let auths = doc
        .as_object_mut()
        .expect("checked above")
        .entry("auths")
        .or_insert_with(|| json!({}));
    let Some(auths) = auths.as_object_mut() else {
        bail!("{}: \"auths\" is not an object", config_path().display());
    };
    auths.retain(|k, _| server_domain(k) != domain);
    auths.insert(auth_key(&domain), json!({ "auth": creds.encoded() }));
    write_config(&doc)?;
    println!(
        "WARNING! Your password will be stored unencrypted in {}.",
        config_path().display()
    );
    println!("Login Succeeded");
    Ok(0)
}

/// Reads a password from the terminal without echoing it.
fn read_password() -> Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("Cannot perform an interactive login from a non TTY device");
    }
    print!("Password: ");
    std::io::stdout().flush()?;
    let saved = tcgetattr(&stdin).context("reading the terminal settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("turning echo off")?;
    let mut line = String::new();
    let r = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    println!();
    r.context("reading the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// `docker logout [SERVER]`.
pub fn logout(_engine: &Engine, args: &LogoutArgs) -> Result<Code> {
    let domain = server_domain(args.server.as_deref().unwrap_or(DOCKER_HUB));
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
    let shown = auth_key(&domain);
    if !removed {
        println!("Not logged in to {shown}");
        return Ok(0);
    }
    write_config(&doc)?;
    println!("Removing login credentials for {shown}");
    Ok(0)
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
}
