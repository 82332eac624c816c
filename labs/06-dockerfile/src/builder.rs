//! # The builder: from instructions to an image
//!
//! The builder carries out a parsed Dockerfile one instruction at a time, the way Docker's
//! classic builder does, and prints what it does in the classic format:
//!
//! ```text
//! Step 2/4 : RUN echo hi > /greeting
//!  ---> Running in 3c1d0a9f8e21      a container on the image so far (see `runstep`)
//! Removing intermediate container 3c1d0a9f8e21
//!  ---> 5b2f4e0d7c11                 the new image: its config digest, 12 hex digits
//! Step 3/4 : CMD ["cat", "/greeting"]
//!  ---> Using cache                  the same step on the same parent was built before
//!  ---> 0d9e8c7b6a54
//! ```
//!
//! Every step makes a new image from the previous one. Some instructions add a *layer*:
//! `RUN` (what the command changed), `COPY` and `ADD` (the files), `WORKDIR` when it has
//! to create the directory. All the others only change the image *config*: `ENV`, `CMD`,
//! `ENTRYPOINT`, `LABEL`, `EXPOSE`, `VOLUME`, `USER`, `STOPSIGNAL`, `HEALTHCHECK`,
//! `ONBUILD`, `SHELL`, `MAINTAINER`; their history entry says `empty_layer: true`. `ARG`
//! changes neither: it only declares a variable for the steps after it.
//!
//! Each intermediate image is written to the store (config and manifest blobs, layers
//! unpacked) but never *named*: only the last one is tagged, at the very end, so a build
//! that fails at any step leaves no image and no tag. What the failed build did finish
//! stays as build cache (see [`crate::cache`]).
//!
//! A Dockerfile can have several *stages*, each starting with `FROM`; `--target` picks the
//! last one to build, and `COPY --from=STAGE` copies files out of an earlier one. Only the
//! final stage's layers are in the image: the compilers of a build stage stay behind.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::image::{Descriptor, Digest, MediaType};
use serde_json::{json, Map, Value};

use crate::cache::{self, Cache};
use crate::context::{self, BuildContext};
use crate::layers::{self, CopyOptions, LayerView, Staging, Tree};
use crate::parser::{Args, Instruction, Keyword};
use crate::runstep::{random_id, RunStep, WorkDir};
use crate::shell::Lexer;
use lab04_overlay as overlay;
use overlay::diff::{write_tree, TreeKind};
use overlay::digest::{canonical_json, chain_ids, host_arch};
use overlay::store::normalize_name;
use overlay::Store;

/// What `build` was asked to do: `docker build`'s options that this builder has.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// `-t NAME[:TAG]`, any number.
    pub tags: Vec<String>,
    /// `-f FILE`: the Dockerfile (`-` is standard input); default `CONTEXT/Dockerfile`.
    pub dockerfile: Option<PathBuf>,
    /// A directory, a tar archive (gzip or not), or `-` for standard input.
    pub context: String,
    /// `--build-arg NAME=VALUE` (or `NAME`, which takes the value from our environment).
    pub build_args: Vec<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--target STAGE`.
    pub target: Option<String>,
    /// The parent cgroup of the RUN steps' containers (default `dockyard`).
    pub cgroup_parent: Option<String>,
}

/// A successful build.
#[derive(Debug, Clone)]
pub struct Built {
    /// The image ID: its config digest.
    pub id: String,
    /// The names it was tagged with.
    pub tags: Vec<String>,
    /// How many steps came from the cache, and how many steps there were.
    pub cached: usize,
    pub steps: usize,
}

/// The args Docker predefines: usable without an `ARG`, and kept out of the history.
const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// An image under construction: its config (as JSON: Docker's config has fields, such as
/// `Healthcheck`, `OnBuild` and `Shell`, that OCI's does not), its layers, its ID.
#[derive(Debug, Clone)]
struct Img {
    config: Value,
    layers: Vec<Descriptor>,
    /// The config digest, or `scratch` for the empty image.
    id: String,
    /// The manifest digest, once written.
    manifest: Option<String>,
}

impl Img {
    fn scratch() -> Img {
        Img {
            config: json!({
                "architecture": host_arch(),
                "os": "linux",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": []},
                "history": [],
            }),
            layers: Vec::new(),
            id: "scratch".into(),
            manifest: None,
        }
    }

    fn short(&self) -> &str {
        let hex = self.id.trim_start_matches("sha256:");
        &hex[..12.min(hex.len())]
    }

    fn diff_ids(&self) -> Vec<String> {
        self.config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `config.config`, created if missing.
    fn cfg(&mut self) -> &mut Map<String, Value> {
        if !self.config["config"].is_object() {
            self.config["config"] = json!({});
        }
        self.config["config"]
            .as_object_mut()
            .expect("just made an object")
    }

    fn get(&self, key: &str) -> &Value {
        &self.config["config"][key]
    }

    fn strings(&self, key: &str) -> Vec<String> {
        self.get(key)
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn env(&self) -> Vec<(String, String)> {
        self.strings("Env")
            .into_iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv, String::new()),
            })
            .collect()
    }

    fn set_env(&mut self, key: &str, value: &str) {
        let mut env = self.strings("Env");
        let entry = format!("{key}={value}");
        match env.iter_mut().find(|e| e.split('=').next() == Some(key)) {
            Some(e) => *e = entry,
            None => env.push(entry),
        }
        self.cfg().insert("Env".into(), json!(env));
    }

    fn workdir(&self) -> String {
        self.get("WorkingDir")
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("/")
            .to_string()
    }

    fn shell(&self) -> Vec<String> {
        let s = self.strings("Shell");
        if s.is_empty() {
            vec!["/bin/sh".into(), "-c".into()]
        } else {
            s
        }
    }
}

/// One stage being built.
struct Stage {
    name: Option<String>,
    img: Img,
    /// The ARGs declared in this stage, with their values (`None`: declared, no value).
    args: BTreeMap<String, Option<String>>,
    /// Whether this Dockerfile set CMD in this stage (ENTRYPOINT then keeps it).
    cmd_set: bool,
}

/// A Dockerfile split into the ARGs before the first FROM and its stages.
struct Plan<'a> {
    global_args: Vec<&'a Instruction>,
    stages: Vec<Vec<&'a Instruction>>,
}

struct Builder<'a> {
    store: &'a Store,
    cache: Cache,
    opts: &'a BuildOptions,
    lexer: Lexer,
    context: BuildContext,
    dockerfile: String,
    build_args: BTreeMap<String, String>,
    used_args: BTreeSet<String>,
    global_args: BTreeMap<String, Option<String>>,
    done: Vec<(Option<String>, Img)>,
    step: usize,
    total: usize,
    cached: usize,
    out: std::io::Stdout,
}

/// Builds an image as `docker build` does; see the module documentation.
pub fn build(store: &Store, opts: &BuildOptions) -> Result<Built> {
    for t in &opts.tags {
        check_tag(t)?;
    }
    let (_context_dir, context, stdin_dockerfile) = prepare_context(store, opts)?;
    let (shown, text) = read_dockerfile(opts, &context, stdin_dockerfile)?;
    let df = crate::parse(&text).map_err(|e| anyhow!("{shown}:{}: {}", e.line, e.message))?;
    for w in &df.warnings {
        eprintln!("[Warning] {shown}: {w}");
    }
    let plan = plan(&df.instructions).map_err(|(line, m)| anyhow!("{shown}:{line}: {m}"))?;
    for ins in plan.global_args.iter().chain(plan.stages.iter().flatten()) {
        validate(ins).map_err(|m| anyhow!("{shown}:{}: {m}", ins.start_line))?;
    }
    let last = match &opts.target {
        None => plan.stages.len() - 1,
        Some(t) => plan
            .stages
            .iter()
            .position(|s| stage_name(s[0]).is_some_and(|n| n.eq_ignore_ascii_case(t)))
            .ok_or_else(|| anyhow!("failed to reach build target {t} in Dockerfile"))?,
    };
    let mut build_args = BTreeMap::new();
    for a in &opts.build_args {
        match a.split_once('=') {
            Some((k, v)) => {
                build_args.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(a) {
                    build_args.insert(a.clone(), v);
                }
            }
        }
    }
    let mut b = Builder {
        store,
        cache: Cache::open(store)?,
        opts,
        lexer: Lexer::new(df.escape),
        // The context's file digests persist beside the step cache, so that a
        // rebuild does not read the context's files again (see context.rs).
        context: context.with_digest_cache(
            store.root().join("build-cache").join("file-digests.json"),
            store.root().join("tmp"),
        ),
        dockerfile: shown,
        build_args,
        used_args: BTreeSet::new(),
        global_args: BTreeMap::new(),
        done: Vec::new(),
        step: 0,
        total: plan.stages[..=last].iter().map(Vec::len).sum(),
        cached: 0,
        out: std::io::stdout(),
    };
    for ins in &plan.global_args {
        b.global_arg(ins)?;
    }
    let staged = plan.stages[..=last]
        .iter()
        .try_for_each(|stage| b.stage(stage));
    b.context.save_digest_cache();
    staged?;
    let unused: Vec<&String> = b
        .build_args
        .keys()
        .filter(|k| !b.used_args.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
        .collect();
    if !unused.is_empty() {
        let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
        b.say(&format!(
            "[Warning] One or more build-args [{}] were not consumed",
            names.join(" ")
        ))?;
    }
    let (_, mut img) = b.done.pop().context("no stage was built")?;
    if img.manifest.is_none() {
        img = b.commit(img.config.clone(), img.layers.clone())?;
    }
    let manifest = img.manifest.clone().context("the image has no manifest")?;
    let size = fs::metadata(store.blob_path(&manifest)?)?.len();
    let desc = Descriptor::new(
        MediaType::ImageManifest,
        size,
        Digest::try_from(manifest.as_str())?,
    );
    b.say(&format!("Successfully built {}", img.short()))?;
    let mut tags = Vec::new();
    for t in &opts.tags {
        let name = normalize_name(t);
        store.register(&name, &desc)?;
        b.say(&format!("Successfully tagged {name}"))?;
        tags.push(name);
    }
    Ok(Built {
        id: img.id,
        tags,
        cached: b.cached,
        steps: b.step,
    })
}

/// Docker's reference rules, the part that matters here: a lower-case repository, an
/// optional tag of letters, digits, `_`, `.` and `-`.
fn check_tag(tag: &str) -> Result<()> {
    let invalid =
        || anyhow!("invalid argument {tag:?} for \"-t, --tag\" flag: invalid reference format");
    if tag.is_empty() || tag.starts_with(['-', ':', '/']) || tag.ends_with([':', '/']) {
        return Err(invalid());
    }
    let name = normalize_name(tag);
    let (repo, t) = match name.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, t),
        _ => (name.as_str(), "latest"),
    };
    if repo.chars().any(|c| c.is_ascii_uppercase()) {
        bail!("{}: repository name must be lowercase", invalid());
    }
    let repo_ok = repo
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/:".contains(c));
    let tag_ok = !t.is_empty()
        && t.len() <= 128
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !repo_ok || !tag_ok {
        return Err(invalid());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The context and the Dockerfile
// ---------------------------------------------------------------------------------------------

fn is_remote(s: &str) -> bool {
    [
        "http://",
        "https://",
        "git://",
        "git@",
        "github.com/",
        "ssh://",
    ]
    .iter()
    .any(|p| s.starts_with(p))
}

/// Whether bytes start like a tar archive (or a gzip, which we take to hold one).
fn looks_like_tar(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b]) || (head.len() > 262 && &head[257..262] == b"ustar")
}

/// Unpacks a context archive into a work directory (the tar crate refuses `..` and absolute
/// names, so nothing lands outside it).
fn unpack_context(store: &Store, bytes: &[u8]) -> Result<WorkDir> {
    let work = WorkDir::new(store, "context")?;
    let reader: Box<dyn Read> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(bytes))
    } else {
        Box::new(bytes)
    };
    tar::Archive::new(reader)
        .unpack(&work.path)
        .context("unpacking the build context archive")?;
    Ok(work)
}

/// The context, and the Dockerfile if it came on standard input instead of a context.
fn prepare_context(
    store: &Store,
    opts: &BuildOptions,
) -> Result<(Option<WorkDir>, BuildContext, Option<String>)> {
    let c = opts.context.as_str();
    if is_remote(c) {
        bail!(
            "unable to prepare context: {c}: remote contexts (git and HTTP URLs) are not \
             supported here: this builder has no network (clone or download it, and build the \
             directory)"
        );
    }
    if c == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading the build context from standard input")?;
        if looks_like_tar(&bytes) {
            let work = unpack_context(store, &bytes)?;
            let ctx = BuildContext::open(&work.path)?;
            return Ok((Some(work), ctx, None));
        }
        // `build - < Dockerfile`: a Dockerfile and no context at all.
        let text =
            String::from_utf8(bytes).context("the Dockerfile on standard input is not UTF-8")?;
        let work = WorkDir::new(store, "context")?;
        let ctx = BuildContext::empty(&work.path);
        return Ok((Some(work), ctx, Some(text)));
    }
    let path = Path::new(c);
    if path.is_file() {
        let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        if !looks_like_tar(&bytes) {
            bail!("unable to prepare context: {c} is neither a directory nor a tar archive");
        }
        let work = unpack_context(store, &bytes)?;
        let ctx = BuildContext::open(&work.path)?;
        return Ok((Some(work), ctx, None));
    }
    Ok((None, BuildContext::open(path)?, None))
}

/// The Dockerfile's text, and the name errors show for it.
fn read_dockerfile(
    opts: &BuildOptions,
    ctx: &BuildContext,
    from_stdin: Option<String>,
) -> Result<(String, String)> {
    if let Some(text) = from_stdin {
        if opts.dockerfile.is_some() {
            bail!("-f cannot be used when the Dockerfile comes on standard input");
        }
        return Ok(("Dockerfile".into(), text));
    }
    let path = match &opts.dockerfile {
        Some(f) if f.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the Dockerfile from standard input")?;
            return Ok(("Dockerfile".into(), text));
        }
        // Relative to the current directory, as docker does; for an archive context,
        // inside the archive.
        Some(f) if f.is_absolute() || f.exists() => f.clone(),
        Some(f) => ctx.root.join(f),
        None => ctx.root.join("Dockerfile"),
    };
    let bytes = fs::read(&path).with_context(|| {
        format!(
            "unable to prepare context: unable to evaluate symlinks in Dockerfile path: \
             lstat {}: no such file or directory",
            path.display()
        )
    })?;
    let shown = path.display().to_string();
    let text = String::from_utf8(bytes).map_err(|e| {
        let upto = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = upto.iter().filter(|b| **b == b'\n').count() + 1;
        anyhow!("{shown}:{line}: the file is not valid UTF-8")
    })?;
    Ok((shown, text))
}

// ---------------------------------------------------------------------------------------------
// Checking the whole file before building anything
// ---------------------------------------------------------------------------------------------

fn stage_name(from: &Instruction) -> Option<&str> {
    match &from.args {
        Args::Words(w) if w.len() == 3 => Some(w[2].as_str()),
        _ => None,
    }
}

fn plan(instructions: &[Instruction]) -> std::result::Result<Plan<'_>, (usize, String)> {
    let mut global_args = Vec::new();
    let mut stages: Vec<Vec<&Instruction>> = Vec::new();
    let mut names = BTreeSet::new();
    for ins in instructions {
        if ins.keyword == Keyword::From {
            match &ins.args {
                Args::Words(w) if w.len() == 1 => {}
                Args::Words(w) if w.len() == 3 && w[1].eq_ignore_ascii_case("as") => {
                    let name = w[2].to_ascii_lowercase();
                    if !names.insert(name.clone()) {
                        return Err((ins.start_line, format!("duplicate stage name {:?}", w[2])));
                    }
                }
                _ => {
                    return Err((
                        ins.start_line,
                        "FROM requires either one or three arguments: FROM IMAGE [AS NAME]".into(),
                    ))
                }
            }
            stages.push(vec![ins]);
        } else if let Some(stage) = stages.last_mut() {
            stage.push(ins);
        } else if ins.keyword == Keyword::Arg {
            global_args.push(ins);
        } else {
            return Err((
                ins.start_line,
                format!(
                    "{} before the first FROM: only ARG may come before FROM (no build stage \
                     in current context)",
                    ins.keyword
                ),
            ));
        }
    }
    if stages.is_empty() {
        return Err((1, "the Dockerfile has no FROM instruction".into()));
    }
    Ok(Plan {
        global_args,
        stages,
    })
}

/// `--name=value` flags, checked against what the instruction accepts.
fn flags(ins: &Instruction) -> std::result::Result<BTreeMap<String, String>, String> {
    let (allowed, unsupported): (&[&str], &[(&str, &str)]) = match ins.keyword {
        Keyword::Copy => (
            &["from", "chown", "chmod"],
            &[
                ("link", "layers are always stacked on their parent here"),
                ("parents", "it is a BuildKit extension"),
                ("exclude", "it is a BuildKit extension"),
            ],
        ),
        Keyword::Add => (
            &["chown", "chmod"],
            &[
                ("link", "layers are always stacked on their parent here"),
                (
                    "checksum",
                    "ADD of URLs needs the network, which this builder has not",
                ),
                (
                    "keep-git-dir",
                    "ADD of git URLs needs the network, which this builder has not",
                ),
                ("exclude", "it is a BuildKit extension"),
            ],
        ),
        Keyword::Run => (
            &["network"],
            &[
                ("mount", "cache, secret and bind mounts are BuildKit's"),
                (
                    "security",
                    "RUN steps always run with Docker's default security",
                ),
            ],
        ),
        Keyword::From => (
            &[],
            &[(
                "platform",
                "this builder builds for the host's platform only",
            )],
        ),
        Keyword::Healthcheck => (
            &[
                "interval",
                "timeout",
                "start-period",
                "start-interval",
                "retries",
            ],
            &[],
        ),
        _ => (&[], &[]),
    };
    let mut out = BTreeMap::new();
    for f in &ins.flags {
        let body = f.trim_start_matches("--");
        let (name, value) = body.split_once('=').unwrap_or((body, ""));
        if let Some((_, why)) = unsupported.iter().find(|(n, _)| *n == name) {
            return Err(format!(
                "{} --{name} is not supported by this builder ({why})",
                ins.keyword
            ));
        }
        if !allowed.contains(&name) {
            return Err(format!("Unknown flag: {name}"));
        }
        if name == "network" && !matches!(value, "none" | "default") {
            return Err(format!(
                "RUN --network={value} is not supported: RUN steps have no network here \
                 (only --network=none)"
            ));
        }
        out.insert(name.to_string(), value.to_string());
    }
    Ok(out)
}

/// What can be said about an instruction before building anything.
fn validate(ins: &Instruction) -> std::result::Result<(), String> {
    flags(ins)?;
    let k = ins.keyword;
    match (&ins.args, k) {
        (Args::None, Keyword::Onbuild | Keyword::Stopsignal | Keyword::Maintainer) => {
            Err(format!("{k} requires exactly one argument"))
        }
        (Args::None, Keyword::Copy | Keyword::Add) => Err(format!("{k} requires at least two arguments")),
        (Args::None, Keyword::Arg) => Err("ARG requires exactly one argument".into()),
        (Args::None, Keyword::Healthcheck) => Err("HEALTHCHECK requires an argument".into()),
        (Args::None, Keyword::Expose | Keyword::Volume | Keyword::Env | Keyword::Label | Keyword::Workdir | Keyword::User | Keyword::Run | Keyword::Shell) => {
            Err(format!("{k} requires at least one argument"))
        }
        (Args::Exec(v) | Args::Words(v), Keyword::Copy | Keyword::Add) if v.len() < 2 => {
            Err(format!("{k} requires at least two arguments, but only one was provided. Destination could not be determined."))
        }
        (Args::Shell(_), Keyword::Shell) => Err("SHELL requires the arguments to be in JSON form".into()),
        (Args::Exec(v), Keyword::Shell) if v.is_empty() => Err("SHELL requires at least one argument".into()),
        (Args::Healthcheck { kind, command }, Keyword::Healthcheck) => {
            match kind.to_ascii_uppercase().as_str() {
                "NONE" if !matches!(**command, Args::None) || !ins.flags.is_empty() => {
                    Err("HEALTHCHECK NONE takes no arguments".into())
                }
                "NONE" => Ok(()),
                "CMD" if matches!(**command, Args::None) => Err("Missing command after HEALTHCHECK CMD".into()),
                "CMD" => Ok(()),
                other => Err(format!("Unknown type {other:?} in HEALTHCHECK (try CMD)")),
            }
        }
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Carrying out the steps
// ---------------------------------------------------------------------------------------------

impl Builder<'_> {
    fn say(&mut self, line: &str) -> Result<()> {
        writeln!(self.out, "{line}")?;
        self.out.flush()?;
        Ok(())
    }

    /// Writes an image's config and manifest into the store; returns it with its ID.
    fn commit(&self, config: Value, layers: Vec<Descriptor>) -> Result<Img> {
        let bytes = canonical_json(&config, "image config")?;
        let (digest, size) = self.store.put_blob(&bytes)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest,
                "size": size,
            },
            "layers": layers,
        });
        let (m, _) = self
            .store
            .put_blob(&canonical_json(&manifest, "image manifest")?)?;
        Ok(Img {
            config,
            layers,
            id: digest,
            manifest: Some(m),
        })
    }

    /// The image a manifest in the store describes, if it and its layers are all there.
    fn load(&self, manifest: &str) -> Option<Img> {
        let m: Value = serde_json::from_slice(&self.store.read_blob(manifest).ok()?).ok()?;
        let config_digest = m["config"]["digest"].as_str()?.to_string();
        let config: Value =
            serde_json::from_slice(&self.store.read_blob(&config_digest).ok()?).ok()?;
        let layers: Vec<Descriptor> = serde_json::from_value(m["layers"].clone()).ok()?;
        let img = Img {
            config,
            layers,
            id: config_digest,
            manifest: Some(manifest.to_string()),
        };
        for c in chain_ids(&img.diff_ids()) {
            self.store.layer(&c).ok()??;
        }
        Some(img)
    }

    /// The unpacked layers of an image, bottom first.
    fn layers_of(&self, img: &Img) -> Result<Vec<overlay::Layer>> {
        chain_ids(&img.diff_ids())
            .iter()
            .map(|c| {
                self.store
                    .layer(c)?
                    .with_context(|| format!("layer {c} is not unpacked in the store"))
            })
            .collect()
    }

    fn view(&self, img: &Img) -> Result<LayerView> {
        Ok(LayerView {
            layers: self
                .layers_of(img)?
                .into_iter()
                .rev()
                .map(|l| l.diff)
                .collect(),
        })
    }

    /// Looks the step up in the cache; on a hit, prints so and moves the stage on.
    fn try_cache(&mut self, st: &mut Stage, key: &str) -> Result<bool> {
        if self.opts.no_cache {
            return Ok(false);
        }
        let Some(img) = self.cache.get(key).and_then(|m| self.load(&m)) else {
            return Ok(false);
        };
        self.cached += 1;
        self.say(" ---> Using cache")?;
        self.say(&format!(" ---> {}", img.short()))?;
        st.img = img;
        Ok(true)
    }

    // ANCHOR: finish_step
    /// Makes the step's image: the new config, a history entry, and the layer (a tar file)
    /// if the step made one; records it in the cache.
    fn finish_step(
        &mut self,
        st: &mut Stage,
        key: &str,
        created_by: &str,
        layer: Option<&Path>,
        change: impl FnOnce(&mut Img) -> Result<()>,
    ) -> Result<()> {
        let mut next = st.img.clone();
        change(&mut next)?;
        let created = overlay::archive::now_rfc3339();
        next.config["created"] = json!(created);
        let mut history = json!({"created": created, "created_by": created_by});
        if let Some(tar) = layer {
            let (desc, diff_id) = overlay::archive::put_layer(
                self.store,
                File::open(tar).context("reading the new layer")?,
            )?;
            let parent = chain_ids(&next.diff_ids()).pop();
            self.store
                .unpack_layer(&desc, &diff_id, parent.as_deref())?;
            let mut ids = next.diff_ids();
            ids.push(diff_id);
            next.config["rootfs"] = json!({"type": "layers", "diff_ids": ids});
            next.layers.push(desc);
        } else {
            history["empty_layer"] = json!(true);
        }
        if !next.config["history"].is_array() {
            next.config["history"] = json!([]);
        }
        if let Some(h) = next.config["history"].as_array_mut() {
            h.push(history);
        }
        let img = self.commit(next.config, next.layers)?;
        if let Some(m) = &img.manifest {
            self.cache.put(key, m, created_by)?;
        }
        self.say(&format!(" ---> {}", img.short()))?;
        st.img = img;
        Ok(())
    }
    // ANCHOR_END: finish_step

    /// The variables an instruction is expanded with: ARGs in scope, then ENV over them.
    fn vars(&self, st: &Stage) -> BTreeMap<String, String> {
        let mut v: BTreeMap<String, String> = st
            .args
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        v.extend(st.img.env());
        v
    }

    fn expand(&self, st: &Stage, word: &str) -> Result<String> {
        Ok(self.lexer.expand_word(word, &self.vars(st))?)
    }

    fn global_arg(&mut self, ins: &Instruction) -> Result<()> {
        let Args::Words(words) = &ins.args else {
            return Ok(());
        };
        for w in words {
            let (name, default) = match w.split_once('=') {
                Some((n, d)) => {
                    let vars: BTreeMap<String, String> = self
                        .global_args
                        .iter()
                        .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                        .collect();
                    (n.to_string(), Some(self.lexer.expand_word(d, &vars)?))
                }
                None => (w.clone(), None),
            };
            let value = match self.build_args.get(&name) {
                Some(v) => {
                    self.used_args.insert(name.clone());
                    Some(v.clone())
                }
                None => default,
            };
            self.global_args.insert(name, value);
        }
        Ok(())
    }

    fn header(&mut self, ins: &Instruction) -> Result<()> {
        self.step += 1;
        let line = format!(
            "Step {}/{} : {}",
            self.step,
            self.total,
            ins.original.trim()
        );
        self.say(&line)
    }

    fn stage(&mut self, instructions: &[&Instruction]) -> Result<()> {
        let from = instructions[0];
        self.header(from)?;
        let Args::Words(w) = &from.args else {
            unreachable!("checked by plan")
        };
        let globals: BTreeMap<String, String> = self
            .global_args
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        let base = self.lexer.expand_word(&w[0], &globals)?;
        let mut img = if base.eq_ignore_ascii_case("scratch") {
            Img::scratch()
        } else if let Some((_, img)) = self
            .done
            .iter()
            .rev()
            .find(|(n, _)| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&base)))
        {
            img.clone()
        } else {
            self.image(&base)?
        };
        if img.id != "scratch" {
            self.say(&format!(" ---> {}", img.short()))?;
        }
        let triggers = img.strings("OnBuild");
        if !triggers.is_empty() {
            // The triggers run in this (the child's) build, and only here: the child's
            // config forgets them, so a grandchild does not run them again.
            img.cfg().remove("OnBuild");
        }
        let mut st = Stage {
            name: stage_name(from).map(str::to_string),
            img,
            args: BTreeMap::new(),
            cmd_set: false,
        };
        if !triggers.is_empty() {
            let s = if triggers.len() == 1 { "" } else { "s" };
            self.say(&format!("# Executing {} build trigger{s}", triggers.len()))?;
            for t in &triggers {
                let df =
                    crate::parse(t).map_err(|e| anyhow!("ONBUILD trigger {t:?}: {}", e.message))?;
                for ins in &df.instructions {
                    validate(ins).map_err(|m| anyhow!("ONBUILD trigger {t:?}: {m}"))?;
                    self.instruction(&mut st, ins)
                        .with_context(|| format!("running the ONBUILD trigger {t:?}"))?;
                }
            }
        }
        for ins in &instructions[1..] {
            self.header(ins)?;
            self.instruction(&mut st, ins)?;
        }
        self.done.push((st.name, st.img));
        Ok(())
    }

    /// An image of the store as the start of a stage (or a `COPY --from` source).
    fn image(&self, name: &str) -> Result<Img> {
        let image = self.store.image(name).map_err(|_| {
            anyhow!(
                "pull access denied for {name}: the image is not in the store and this builder \
                 has no network to pull it (load it first: dockyard load -i IMAGE.tar)"
            )
        })?;
        self.store.unpack(&image)?;
        self.load(&image.manifest_digest)
            .with_context(|| format!("reading image {name} from the store"))
    }

    fn instruction(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let parent = st.img.id.clone();
        let meta = |text: String| format!("/bin/sh -c #(nop)  {text}");
        match ins.keyword {
            Keyword::From => unreachable!("FROM starts a stage"),
            Keyword::Arg => self.arg(st, ins),
            Keyword::Run => self.run(st, ins),
            Keyword::Copy | Keyword::Add => self.copy(st, ins),
            Keyword::Workdir => self.workdir(st, ins),
            Keyword::Env | Keyword::Label => {
                let Args::Pairs(pairs) = &ins.args else {
                    unreachable!("validated")
                };
                // Every value is expanded with the variables from *before* the instruction:
                // `ENV A=1 B=$A` gives B the old A.
                let mut set = Vec::new();
                for p in pairs {
                    set.push((self.expand(st, &p.key)?, self.expand(st, &p.value)?));
                }
                let text: Vec<String> = set.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let created_by = meta(format!("{} {}", ins.keyword, text.join(" ")));
                let key = cache::key(&[&parent, &created_by]);
                if self.try_cache(st, &key)? {
                    return Ok(());
                }
                let is_env = ins.keyword == Keyword::Env;
                self.finish_step(st, &key, &created_by, None, |img| {
                    for (k, v) in set {
                        if is_env {
                            img.set_env(&k, &v);
                        } else {
                            let labels = img.cfg().entry("Labels").or_insert(json!({}));
                            if !labels.is_object() {
                                *labels = json!({});
                            }
                            labels[k] = json!(v);
                        }
                    }
                    Ok(())
                })
            }
            Keyword::Maintainer => {
                let Args::Shell(who) = &ins.args else {
                    unreachable!("validated")
                };
                let created_by = meta(format!("MAINTAINER {who}"));
                let key = cache::key(&[&parent, &created_by]);
                if self.try_cache(st, &key)? {
                    return Ok(());
                }
                let who = who.clone();
                self.finish_step(st, &key, &created_by, None, |img| {
                    img.config["author"] = json!(who);
                    Ok(())
                })
            }
            Keyword::Cmd | Keyword::Entrypoint => {
                let argv = match &ins.args {
                    Args::Exec(v) => v.clone(),
                    Args::Shell(s) => {
                        let mut v = st.img.shell();
                        v.push(s.clone());
                        v
                    }
                    _ => Vec::new(),
                };
                let field = if ins.keyword == Keyword::Cmd {
                    "Cmd"
                } else {
                    "Entrypoint"
                };
                let created_by = meta(format!("{} {}", field.to_uppercase(), json!(argv)));
                // ENTRYPOINT resets a CMD inherited from the base image: its arguments were
                // meant for another program. A CMD from this Dockerfile stays.
                let reset_cmd = ins.keyword == Keyword::Entrypoint && !st.cmd_set;
                let key = cache::key(&[&parent, &created_by, if reset_cmd { "reset" } else { "" }]);
                if ins.keyword == Keyword::Cmd {
                    st.cmd_set = true;
                }
                if self.try_cache(st, &key)? {
                    return Ok(());
                }
                self.finish_step(st, &key, &created_by, None, |img| {
                    img.cfg().insert(field.into(), json!(argv));
                    if reset_cmd {
                        img.cfg().insert("Cmd".into(), Value::Null);
                    }
                    Ok(())
                })
            }
            Keyword::Shell => {
                let Args::Exec(v) = &ins.args else {
                    unreachable!("validated")
                };
                self.set_config(st, "Shell", json!(v), format!("SHELL {}", json!(v)))
            }
            Keyword::User => {
                let Args::Shell(u) = &ins.args else {
                    unreachable!("validated")
                };
                let user = self.expand(st, u)?;
                self.set_config(st, "User", json!(user), format!("USER {user}"))
            }
            Keyword::Stopsignal => {
                let Args::Shell(s) = &ins.args else {
                    unreachable!("validated")
                };
                let sig = self.expand(st, s)?;
                check_signal(&sig)?;
                self.set_config(st, "StopSignal", json!(sig), format!("STOPSIGNAL {sig}"))
            }
            Keyword::Expose => {
                let Args::Words(words) = &ins.args else {
                    unreachable!("validated")
                };
                let mut ports = Vec::new();
                for w in words {
                    for p in self.lexer.expand_words(w, &self.vars(st))? {
                        ports.push(normalize_port(&p)?);
                    }
                }
                let created_by = meta(format!("EXPOSE {}", ports.join(" ")));
                let key = cache::key(&[&parent, &created_by]);
                if self.try_cache(st, &key)? {
                    return Ok(());
                }
                self.finish_step(st, &key, &created_by, None, |img| {
                    let map = img.cfg().entry("ExposedPorts").or_insert(json!({}));
                    for p in ports {
                        map[p] = json!({});
                    }
                    Ok(())
                })
            }
            Keyword::Volume => {
                let words = match &ins.args {
                    Args::Exec(v) | Args::Words(v) => v.clone(),
                    _ => Vec::new(),
                };
                let mut paths = Vec::new();
                for w in words {
                    let p = self.expand(st, &w)?;
                    if p.trim().is_empty() {
                        bail!("VOLUME specified can not be an empty string");
                    }
                    paths.push(p);
                }
                let created_by = meta(format!("VOLUME {}", json!(paths)));
                let key = cache::key(&[&parent, &created_by]);
                if self.try_cache(st, &key)? {
                    return Ok(());
                }
                self.finish_step(st, &key, &created_by, None, |img| {
                    let map = img.cfg().entry("Volumes").or_insert(json!({}));
                    for p in paths {
                        map[p] = json!({});
                    }
                    Ok(())
                })
            }
            Keyword::Healthcheck => {
                let hc = healthcheck(ins)?;
                let created_by = meta(format!("HEALTHCHECK {hc}"));
                let key = cache::key(&[&parent, &created_by]);
                if self.try_cache(st, &key)? {
                    return Ok(());
                }
                self.finish_step(st, &key, &created_by, None, |img| {
                    img.cfg().insert("Healthcheck".into(), hc);
                    Ok(())
                })
            }
            Keyword::Onbuild => {
                let Args::Trigger(inner) = &ins.args else {
                    unreachable!("validated")
                };
                validate(inner)
                    .map_err(|m| anyhow!("{}:{}: {m}", self.dockerfile, ins.start_line))?;
                let trigger = inner.original.trim().to_string();
                let created_by = meta(format!("ONBUILD {trigger}"));
                let key = cache::key(&[&parent, &created_by]);
                if self.try_cache(st, &key)? {
                    return Ok(());
                }
                self.finish_step(st, &key, &created_by, None, |img| {
                    let mut all = img.strings("OnBuild");
                    all.push(trigger);
                    img.cfg().insert("OnBuild".into(), json!(all));
                    Ok(())
                })
            }
        }
    }

    fn set_config(
        &mut self,
        st: &mut Stage,
        field: &str,
        value: Value,
        text: String,
    ) -> Result<()> {
        let created_by = format!("/bin/sh -c #(nop)  {text}");
        let key = cache::key(&[&st.img.id, &created_by]);
        if self.try_cache(st, &key)? {
            return Ok(());
        }
        self.finish_step(st, &key, &created_by, None, |img| {
            img.cfg().insert(field.into(), value);
            Ok(())
        })
    }

    // ANCHOR: arg
    /// `ARG NAME[=default]`: declares a variable for the rest of the stage. Its value is the
    /// `--build-arg`, else the default, else the value of a global `ARG` of the same name
    /// (declared before the first FROM, which only FROM lines can see until a stage
    /// re-declares it). No image changes.
    fn arg(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let Args::Words(words) = &ins.args else {
            unreachable!("validated")
        };
        for w in words {
            let (name, default) = match w.split_once('=') {
                Some((n, d)) => (n.to_string(), Some(self.expand(st, d)?)),
                None => (w.clone(), None),
            };
            let value = match self.build_args.get(&name) {
                Some(v) => {
                    self.used_args.insert(name.clone());
                    Some(v.clone())
                }
                None => default.or_else(|| self.global_args.get(&name).cloned().flatten()),
            };
            st.args.insert(name, value);
        }
        self.say(&format!(" ---> {}", st.img.short()))
    }
    // ANCHOR_END: arg

    /// The build args a RUN sees: those declared in the stage, and the proxy ones.
    fn run_args(&mut self, st: &Stage) -> Vec<(String, String)> {
        let env: BTreeSet<String> = st.img.env().into_iter().map(|(k, _)| k).collect();
        let mut out: Vec<(String, String)> = st
            .args
            .iter()
            .filter(|(k, _)| !env.contains(*k))
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        for p in PROXY_ARGS {
            if let Some(v) = self.build_args.get(p) {
                self.used_args.insert(p.to_string());
                out.push((p.to_string(), v.clone()));
            }
        }
        out
    }

    // ANCHOR: run
    fn run(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let argv = match &ins.args {
            Args::Exec(v) => v.clone(),
            Args::Shell(s) => {
                let mut v = st.img.shell();
                v.push(heredoc_script(s, ins));
                v
            }
            _ => unreachable!("validated"),
        };
        // RUN runs as the stage's USER, resolved in the image's passwd file.
        let user = st.img.get("User").as_str().unwrap_or("").to_string();
        let args = self.run_args(st);
        let shown: Vec<String> = args
            .iter()
            .filter(|(k, _)| !PROXY_ARGS.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut created_by = argv.join(" ");
        if !shown.is_empty() {
            created_by = format!("|{} {} {created_by}", shown.len(), shown.join(" "));
        }
        let key = cache::key(&[
            &st.img.id,
            "RUN",
            &json!(argv).to_string(),
            &json!(shown).to_string(),
        ]);
        if self.try_cache(st, &key)? {
            return Ok(());
        }
        let mut env: Vec<String> = st.img.strings("Env");
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, format!("PATH={}", lab01_chroot::DEFAULT_PATH));
        }
        env.extend(args.iter().map(|(k, v)| format!("{k}={v}")));
        let id = random_id()?;
        self.say(&format!(" ---> Running in {}", &id[..12]))?;
        let layers = self.layers_of(&st.img)?;
        let finished = RunStep {
            store: self.store,
            layers: &layers,
            argv: argv.clone(),
            env,
            cwd: Some(st.img.workdir()),
            cgroup_parent: self
                .opts
                .cgroup_parent
                .as_deref()
                .unwrap_or(lab03_cgroups::DEFAULT_PARENT),
            id: id.clone(),
            user: user.clone(),
        }
        .run()?;
        if finished.code != 0 {
            bail!(
                "The command '{}' returned a non-zero code: {}",
                argv.join(" "),
                finished.code
            );
        }
        self.say(&format!("Removing intermediate container {}", &id[..12]))?;
        let tar = finished.work.path.join("layer.tar.gz");
        write_layer(&finished.upper(), &tar, TreeKind::Upper)?;
        self.finish_step(st, &key, &created_by, Some(&tar), |_| Ok(()))
    }
    // ANCHOR_END: run

    /// `WORKDIR`: relative to the previous one; created (as a layer) if the image lacks it.
    fn workdir(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let Args::Shell(w) = &ins.args else {
            unreachable!("validated")
        };
        let w = self.expand(st, w)?;
        let joined = Path::new(&st.img.workdir()).join(&w);
        let path = format!("/{}", context::clean(&joined.to_string_lossy()).display());
        let created_by = format!("/bin/sh -c #(nop) WORKDIR {path}");
        let key = cache::key(&[&st.img.id, &created_by]);
        if self.try_cache(st, &key)? {
            return Ok(());
        }
        let view = self.view(&st.img)?;
        let rel = layers::resolve_in_scope(&view, Path::new(&path), true)?;
        let exists = view.lookup(&rel).is_some_and(|(_, m)| m.is_dir());
        let work = WorkDir::new(self.store, "workdir")?;
        let tar = work.path.join("layer.tar.gz");
        let layer = if exists || rel.as_os_str().is_empty() {
            None
        } else {
            let staging = Staging {
                dir: work.path.join("stage"),
            };
            fs::create_dir(&staging.dir)?;
            staging.ensure_dir(&view, &rel)?;
            write_layer(&staging.dir, &tar, TreeKind::Plain)?;
            Some(tar.as_path())
        };
        self.finish_step(st, &key, &created_by, layer, |img| {
            img.cfg().insert("WorkingDir".into(), json!(path));
            Ok(())
        })
    }

    /// The image a `COPY --from` names: a stage (by name or number) or an image.
    fn source_image(&self, from: &str) -> Result<Img> {
        if let Some((_, img)) = self
            .done
            .iter()
            .find(|(n, _)| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(from)))
        {
            return Ok(img.clone());
        }
        if let Ok(i) = from.parse::<usize>() {
            return match self.done.get(i) {
                Some((_, img)) => Ok(img.clone()),
                None => bail!("COPY --from={i}: there is no stage {i} before this one"),
            };
        }
        self.image(from)
    }

    // ANCHOR: copy
    /// `COPY` and `ADD`: files from the context (or a stage) into a new layer.
    fn copy(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let add = ins.keyword == Keyword::Add;
        let f = flags(ins).map_err(|m| anyhow!(m))?;
        let words = match &ins.args {
            Args::Exec(v) | Args::Words(v) => v.clone(),
            _ => unreachable!("validated"),
        };
        let vars = self.vars(st);
        let heredoc = |w: &str| -> Option<&crate::Heredoc> {
            let name = w.strip_prefix("<<")?.trim_start_matches('-');
            let name = name.trim_matches(['"', '\'']);
            ins.heredocs.iter().find(|h| h.name == name)
        };
        let mut expanded = Vec::new();
        for w in &words {
            expanded.push(match heredoc(w) {
                Some(_) => w.clone(),
                None => self.lexer.expand_word(w, &vars)?,
            });
        }
        let dest = expanded.pop().expect("validated: at least two words");
        let from = f
            .get("from")
            .map(|v| self.lexer.expand_word(v, &vars))
            .transpose()?;
        let chmod = match f.get("chmod") {
            Some(m) => Some(u32::from_str_radix(m, 8).map_err(|_| {
                anyhow!("invalid chmod parameter {m:?}: it must be an octal mode such as 0755")
            })?),
            None => None,
        };
        let chown = f
            .get("chown")
            .map(|v| self.lexer.expand_word(v, &vars))
            .transpose()?;

        // Where the files come from, and what identifies their content.
        let from_img = from.as_deref().map(|n| self.source_image(n)).transpose()?;
        let tree: Box<dyn Tree> = match &from_img {
            Some(img) => Box::new(self.view(img)?),
            None => Box::new(self.context.clone()),
        };
        let mut sources: Vec<Source> = Vec::new();
        for s in &expanded {
            if let Some(doc) = heredoc(s) {
                let body = if doc.expand {
                    self.lexer
                        .expand_word(&doc.body(), &vars)
                        .unwrap_or_else(|_| doc.body())
                } else {
                    doc.body()
                };
                sources.push(Source::Heredoc(doc.name.clone(), body));
            } else if add && is_remote(s) {
                bail!(
                    "ADD {s}: downloading from a URL is not supported here (no network): \
                     download it into the build context and ADD or COPY the file"
                );
            } else if from_img.is_some() {
                let rel = layers::resolve_in_scope(tree.as_ref(), Path::new(s), true)?;
                if tree.lookup(&rel).is_none() {
                    bail!(
                        "COPY --from={}: {s}: no such file or directory in that image",
                        from.as_deref().unwrap_or("")
                    );
                }
                sources.push(Source::Path(rel));
            } else {
                let found = self
                    .context
                    .expand_source(s)
                    .map_err(|e| anyhow!("{} failed: {e}", ins.keyword))?;
                sources.extend(found.into_iter().map(Source::Path));
            }
        }
        let content = match &from_img {
            Some(img) => img.id.clone(),
            None => {
                let paths: Vec<PathBuf> = sources
                    .iter()
                    .filter_map(|s| match s {
                        Source::Path(p) => Some(p.clone()),
                        Source::Heredoc(..) => None,
                    })
                    .collect();
                self.context.hash_sources(&paths)?
            }
        };
        let bodies: Vec<String> = sources
            .iter()
            .map(|s| match s {
                Source::Path(p) => p.display().to_string(),
                Source::Heredoc(n, b) => format!("<<{n}\n{b}"),
            })
            .collect();
        let dest_dir_form = dest.ends_with('/') || dest.ends_with("/.") || dest == ".";
        if sources.len() > 1 && !dest_dir_form {
            bail!(
                "When using {} with more than one source file, the destination must be a \
                 directory and end with a /",
                ins.keyword
            );
        }
        let abs = Path::new(&st.img.workdir()).join(&dest);
        let flags_text: Vec<String> = f.iter().map(|(k, v)| format!("--{k}={v}")).collect();
        let created_by = format!(
            "/bin/sh -c #(nop) {} {}{}:{} in {} ",
            ins.keyword,
            flags_text
                .iter()
                .map(|f| format!("{f} "))
                .collect::<String>(),
            if sources.len() == 1
                && matches!(&sources[0], Source::Path(p) if tree.lookup(p).is_some_and(|(_, m)| !m.is_dir()))
            {
                "file"
            } else {
                "multi"
            },
            content.trim_start_matches("sha256:"),
            abs.display()
        );
        let key = cache::key(&[
            &st.img.id,
            &created_by,
            &json!(bodies).to_string(),
            &json!(flags_text).to_string(),
        ]);
        if self.try_cache(st, &key)? {
            return Ok(());
        }

        let view = self.view(&st.img)?;
        let owner = match &chown {
            Some(spec) => Some(layers::resolve_owner(&view, spec)?),
            None => None,
        };
        let opts = CopyOptions { owner, chmod };
        let work = WorkDir::new(self.store, "copy")?;
        let staging = Staging {
            dir: work.path.join("stage"),
        };
        fs::create_dir(&staging.dir)?;
        let dest_rel = layers::resolve_in_scope(&view, &abs, true)?;
        let dest_is_dir = dest_dir_form || view.lookup(&dest_rel).is_some_and(|(_, m)| m.is_dir());
        for s in &sources {
            match s {
                Source::Heredoc(name, body) => {
                    let (dir, file) = if dest_is_dir {
                        (dest_rel.clone(), PathBuf::from(name))
                    } else {
                        split_last(&dest_rel)
                    };
                    let at = staging.ensure_dir(&view, &dir)?.join(file);
                    fs::write(&at, body)?;
                    let o = owner.unwrap_or_default();
                    std::os::unix::fs::chown(&at, Some(o.uid), Some(o.gid))?;
                    use std::os::unix::fs::PermissionsExt;
                    fs::set_permissions(&at, fs::Permissions::from_mode(chmod.unwrap_or(0o644)))?;
                }
                Source::Path(rel) => {
                    let (real, meta) = tree.lookup(rel).with_context(|| {
                        format!("{}: vanished from the build context", rel.display())
                    })?;
                    if meta.is_dir() {
                        // A directory copies its *contents*, not itself.
                        let target = staging.ensure_dir(&view, &dest_rel)?;
                        for name in tree.list(rel)? {
                            layers::copy_tree(
                                tree.as_ref(),
                                &rel.join(&name),
                                &target.join(&name),
                                opts,
                            )?;
                        }
                    } else if add && from_img.is_none() && is_archive(&real)? {
                        // ADD unpacks a local tar archive into the destination directory.
                        let target = staging.ensure_dir(&view, &dest_rel)?;
                        overlay::apply_layer(
                            File::open(&real)?,
                            &target,
                            overlay::Whiteouts::Apply,
                        )
                        .with_context(|| format!("ADD: unpacking {}", rel.display()))?;
                    } else {
                        let (dir, file) = if dest_is_dir {
                            (
                                dest_rel.clone(),
                                PathBuf::from(rel.file_name().unwrap_or_default()),
                            )
                        } else {
                            split_last(&dest_rel)
                        };
                        let target = staging.ensure_dir(&view, &dir)?;
                        layers::copy_tree(tree.as_ref(), rel, &target.join(file), opts)?;
                    }
                }
            }
        }
        let tar = work.path.join("layer.tar.gz");
        write_layer(&staging.dir, &tar, TreeKind::Plain)?;
        self.finish_step(st, &key, &created_by, Some(&tar), |_| Ok(()))
    }
    // ANCHOR_END: copy
}

/// A COPY source: a path in the context (or another image), or a heredoc's body.
enum Source {
    Path(PathBuf),
    Heredoc(String, String),
}

fn split_last(p: &Path) -> (PathBuf, PathBuf) {
    (
        p.parent().map(Path::to_path_buf).unwrap_or_default(),
        PathBuf::from(p.file_name().unwrap_or_default()),
    )
}

/// Whether ADD should unpack this file: a tar, or a gzip-compressed tar. bzip2 and xz
/// archives, which Docker also unpacks, are refused rather than copied as they are.
fn is_archive(path: &Path) -> Result<bool> {
    let mut head = vec![0u8; 512];
    let mut f = File::open(path)?;
    let n = f.read(&mut head)?;
    head.truncate(n);
    if head.starts_with(b"BZh") || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        bail!(
            "ADD {}: bzip2 and xz archives are not supported by this builder (gzip and plain \
             tar are)",
            path.display()
        );
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        let mut inner = vec![0u8; 512];
        let mut gz = flate2::read::GzDecoder::new(File::open(path)?);
        let mut got = 0;
        while got < inner.len() {
            match gz.read(&mut inner[got..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        return Ok(got > 262 && &inner[257..262] == b"ustar");
    }
    Ok(n > 262 && &head[257..262] == b"ustar")
}

/// A directory as a gzip-compressed layer tar.
fn write_layer(dir: &Path, tar: &Path, kind: TreeKind) -> Result<()> {
    let gz = flate2::write::GzEncoder::new(
        File::create(tar).with_context(|| format!("creating {}", tar.display()))?,
        flate2::Compression::fast(),
    );
    write_tree(dir, gz, kind)?
        .finish()
        .context("compressing the layer")?;
    Ok(())
}

/// `RUN` in shell form with heredocs is one script for the shell, bodies included:
/// `RUN cat <<EOF` ... `EOF` runs `sh -c 'cat <<EOF\n...\nEOF\n'`. A bare `RUN <<EOF`
/// runs the body itself as the script.
fn heredoc_script(line: &str, ins: &Instruction) -> String {
    if ins.heredocs.is_empty() {
        return line.to_string();
    }
    if ins.heredocs.len() == 1
        && line
            .trim()
            .trim_start_matches("<<")
            .trim_start_matches('-')
            .trim_matches(['"', '\''])
            == ins.heredocs[0].name
    {
        return ins.heredocs[0].body();
    }
    let mut s = line.to_string();
    s.push('\n');
    for h in &ins.heredocs {
        s.push_str(&h.content);
        s.push_str(&h.name);
        s.push('\n');
    }
    s
}

/// `EXPOSE 80` is `80/tcp`; a range and a protocol are allowed (`8000-8010/udp`).
pub(crate) fn normalize_port(p: &str) -> Result<String> {
    let (ports, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        bail!("invalid proto: {proto}");
    }
    let ok = |s: &str| s.parse::<u16>().is_ok_and(|n| n > 0);
    let valid = match ports.split_once('-') {
        Some((a, b)) => ok(a) && ok(b),
        None => ok(ports),
    };
    if !valid {
        bail!("invalid containerPort: {ports}");
    }
    Ok(format!("{ports}/{proto}"))
}

pub(crate) fn check_signal(s: &str) -> Result<()> {
    if s.parse::<i32>().is_ok_and(|n| (1..=64).contains(&n)) {
        return Ok(());
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    if name.parse::<nix::sys::signal::Signal>().is_ok() || name.starts_with("SIGRTM") {
        return Ok(());
    }
    bail!("Invalid signal: {s}")
}

/// A Go duration (`30s`, `1m30s`, `500ms`) in nanoseconds.
fn duration_ns(flag: &str, s: &str) -> Result<i64> {
    let bad = || anyhow!("HEALTHCHECK --{flag}={s}: invalid duration (use e.g. 30s, 1m30s, 500ms)");
    if s == "0" {
        return Ok(0);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += n * mult;
        rest = &rest[unit_len..];
    }
    Ok(total as i64)
}

// ANCHOR: healthcheck
/// `HEALTHCHECK [--interval=D ...] CMD ...` as Docker stores it: the test (`["CMD", ...]`
/// for the exec form, `["CMD-SHELL", "..."]` for the shell form, `["NONE"]`), and the
/// durations in nanoseconds.
fn healthcheck(ins: &Instruction) -> Result<Value> {
    let Args::Healthcheck { kind, command } = &ins.args else {
        unreachable!("validated")
    };
    if kind.eq_ignore_ascii_case("NONE") {
        return Ok(json!({"Test": ["NONE"]}));
    }
    let test = match command.as_ref() {
        Args::Exec(v) => std::iter::once("CMD".to_string())
            .chain(v.iter().cloned())
            .collect::<Vec<_>>(),
        Args::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
        _ => unreachable!("validated"),
    };
    let mut hc = json!({"Test": test});
    let f = flags(ins).map_err(|m| anyhow!(m))?;
    for (flag, field) in [
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start-period", "StartPeriod"),
        ("start-interval", "StartInterval"),
    ] {
        if let Some(v) = f.get(flag) {
            let ns = duration_ns(flag, v)?;
            if ns != 0 && ns < 1_000_000 {
                bail!("Interval {flag:?} cannot be less than 1ms");
            }
            if ns != 0 {
                hc[field] = json!(ns);
            }
        }
    }
    if let Some(r) = f.get("retries") {
        let n: i64 = r
            .parse()
            .map_err(|_| anyhow!("HEALTHCHECK --retries={r}: not a number"))?;
        if n < 0 {
            bail!("--retries cannot be negative ({n})");
        }
        if n > 0 {
            hc["Retries"] = json!(n);
        }
    }
    Ok(hc)
}
// ANCHOR_END: healthcheck

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Instruction {
        crate::parse(text).unwrap().instructions.remove(0)
    }

    #[test]
    fn durations_are_go_durations() {
        assert_eq!(duration_ns("interval", "5s").unwrap(), 5_000_000_000);
        assert_eq!(duration_ns("interval", "1m30s").unwrap(), 90_000_000_000);
        assert_eq!(duration_ns("interval", "500ms").unwrap(), 500_000_000);
        assert!(duration_ns("interval", "5").is_err());
        assert!(duration_ns("interval", "5 parsecs").is_err());
    }

    #[test]
    fn healthcheck_is_stored_as_docker_stores_it() {
        let hc = healthcheck(&one("HEALTHCHECK --interval=5s --timeout=3s --retries=2 CMD curl -fs http://localhost/ || exit 1")).unwrap();
        assert_eq!(
            hc,
            json!({"Test": ["CMD-SHELL", "curl -fs http://localhost/ || exit 1"],
                   "Interval": 5_000_000_000i64, "Timeout": 3_000_000_000i64, "Retries": 2})
        );
        let hc = healthcheck(&one("HEALTHCHECK CMD [\"true\"]")).unwrap();
        assert_eq!(hc, json!({"Test": ["CMD", "true"]}));
        assert_eq!(
            healthcheck(&one("HEALTHCHECK NONE")).unwrap(),
            json!({"Test": ["NONE"]})
        );
    }

    #[test]
    fn ports_are_normalized() {
        assert_eq!(normalize_port("80").unwrap(), "80/tcp");
        assert_eq!(normalize_port("53/UDP").unwrap(), "53/udp");
        assert_eq!(normalize_port("8000-8010/tcp").unwrap(), "8000-8010/tcp");
        assert!(normalize_port("http").is_err());
        assert!(normalize_port("80/icmp").is_err());
    }

    #[test]
    fn unsupported_flags_are_named() {
        let e = validate(&one("RUN --mount=type=cache,target=/x true")).unwrap_err();
        assert!(e.contains("--mount") && e.contains("not supported"), "{e}");
        let e = validate(&one("COPY --link a /b")).unwrap_err();
        assert!(e.contains("--link"), "{e}");
        let e = validate(&one("FROM --platform=linux/arm64 busybox")).unwrap_err();
        assert!(e.contains("--platform"), "{e}");
        let e = validate(&one("COPY --frobnicate=1 a /b")).unwrap_err();
        assert_eq!(e, "Unknown flag: frobnicate");
        assert!(validate(&one("RUN --network=none true")).is_ok());
        assert!(validate(&one("RUN --network=host true")).is_err());
        assert!(validate(&one("SHELL /bin/bash -c")).is_err());
        assert!(validate(&one("COPY onlyone")).is_err());
    }

    #[test]
    fn plans_split_global_args_and_stages() {
        let df = crate::parse("ARG V=1\nFROM busybox AS a\nRUN true\nFROM a\nCMD x\n").unwrap();
        let p = plan(&df.instructions).unwrap();
        assert_eq!(p.global_args.len(), 1);
        assert_eq!(p.stages.len(), 2);
        assert_eq!(p.stages[0].len(), 2);
        let df = crate::parse("RUN true\nFROM busybox\n").unwrap();
        let (line, msg) = plan(&df.instructions).err().unwrap();
        assert_eq!(line, 1);
        assert!(msg.contains("before the first FROM"), "{msg}");
        let df = crate::parse("FROM busybox AS a\nFROM busybox AS A\n").unwrap();
        assert!(plan(&df.instructions).is_err());
    }

    #[test]
    fn heredoc_scripts() {
        let df = crate::parse("FROM x\nRUN <<EOF\necho hi\nEOF\nRUN cat <<EOF > /f\nbody\nEOF\n")
            .unwrap();
        let bare = &df.instructions[1];
        let Args::Shell(s) = &bare.args else { panic!() };
        assert_eq!(heredoc_script(s, bare), "echo hi\n");
        let cat = &df.instructions[2];
        let Args::Shell(s) = &cat.args else { panic!() };
        assert_eq!(heredoc_script(s, cat), "cat <<EOF > /f\nbody\nEOF\n");
    }

    #[test]
    fn tags_must_be_references() {
        assert!(check_tag("demo").is_ok());
        assert!(check_tag("demo:v1").is_ok());
        assert!(check_tag("localhost:5000/demo:1").is_ok());
        assert!(check_tag("Demo").is_err());
        assert!(check_tag("a b").is_err());
        assert!(check_tag("").is_err());
    }
}
