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
//! `RUN` (what the command changed, if it changed anything), `COPY` and `ADD` (the files),
//! `WORKDIR` when it has to create the directory. All the others only change the image *config*: `ENV`, `CMD`,
//! `ENTRYPOINT`, `LABEL`, `EXPOSE`, `VOLUME`, `USER`, `STOPSIGNAL`, `HEALTHCHECK`,
//! `ONBUILD`, `SHELL`, `MAINTAINER`; their history entry says `empty_layer: true`. `ARG`
//! changes neither, it declares a variable for the steps after it, but in a stage it is a
//! step with a history entry all the same, as the classic builder commits it.
//!
//! Each intermediate image is written to the store (config and manifest blobs, layers
//! unpacked) but never *named*: only the last one is tagged, at the very end, so a build
//! that fails at any step leaves no image and no tag. What the failed build did finish
//! stays as build cache (see [`crate::cache`]).
//!
//! A Dockerfile can have several *stages*, each starting with `FROM`; `--target` picks the
//! last one to build, and `COPY --from=STAGE` copies files out of an earlier one. Only the
//! final stage's layers are in the image: the compilers of a build stage stay behind.
//!
//! The chapters, in the order a step meets them: `inputs.rs` reads the build context and
//! the Dockerfile; `check.rs` splits the file into stages and checks every instruction
//! before anything is built; `step.rs` runs a stage one instruction at a time, with the
//! cache and the image each step makes; `image.rs` is that image under construction;
//! `config.rs` has the instructions that only change the config, `run.rs` runs `RUN` in a
//! container, and `copy.rs` makes the layers of `COPY`, `ADD` and `WORKDIR`.

mod cache_from;
mod check;
mod config;
mod copy;
mod image;
mod inputs;
mod quiet;
mod run;
mod step;

pub(crate) use self::config::{check_signal, port_set};
pub use self::run::RunFailed;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::image::{Descriptor, Digest, MediaType};

use self::check::{plan, stage_name, validate};
use self::image::Img;
use self::inputs::{prepare_context, read_dockerfile};
use crate::cache::Cache;
use crate::context::BuildContext;
use crate::shell::Lexer;
use lab04_overlay::store::normalize_name;
use lab04_overlay::Store;

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
    /// `-q`: print the image ID alone; the build's output only if it fails.
    pub quiet: bool,
    /// `--label KEY=VALUE`: labels on the final image, each a step of its own after the
    /// last stage's instructions, sorted by key, as moby's `buildLabelOptions` adds them.
    pub labels: Vec<String>,
    /// `--iidfile FILE`: where to write the image ID (removed first, so a failed build
    /// leaves none).
    pub iidfile: Option<PathBuf>,
    /// `--network`: the RUN steps' network, see [`Network`].
    pub network: Network,
    /// `--pull`: images are never pulled here, see [`build`].
    pub pull: bool,
    /// `-m`/`--memory`: the RUN steps' memory limit in bytes.
    pub memory: Option<u64>,
    /// `--no-cache-filter STAGE`: stages whose steps ignore the cache.
    pub no_cache_filter: Vec<String>,
    /// `--platform`: only the host's is built (`linux/amd64` on x86-64).
    pub platform: Option<String>,
    /// `--cpu-period`, `--cpu-quota`, `--cpu-shares`, `--cpuset-cpus`,
    /// `--cpuset-mems`, `--memory-swap`: the RUN steps' other cgroup limits
    /// (lab 03's, as `docker run` has them; `memory` above is `-m`).
    pub limits: lab03_cgroups::Limits,
    /// The RUN steps' own `/etc/hosts` (docker's are the container's, with
    /// `--add-host`'s lines): bind-mounted from a file of the step, so what
    /// the step writes there stays out of its layer. `None`: the image's.
    pub hosts: Option<String>,
    /// `--shm-size`: the RUN steps' `/dev/shm` size in bytes (`None`: 64 MiB).
    pub shm_size: Option<u64>,
    /// `--ulimit`: the RUN steps' resource limits, (resource, soft, hard).
    pub rlimits: Vec<(nix::sys::resource::Resource, u64, u64)>,
    /// `--cache-from IMAGE`: images whose history may stand for steps (see
    /// [`cache_from`]).
    pub cache_from: Vec<String>,
}

// ANCHOR: network
/// `docker build --network`: where RUN steps' containers are on the network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Network {
    /// `default` and `none`: a network namespace of the step's own with only `lo`. Docker's
    /// default is its bridge, with a route out; this builder has no bridge to offer (lab
    /// 05's networks belong to the engine), so its default is what `none` is in docker.
    #[default]
    Isolated,
    /// `host`: the host's network namespace, its interfaces and routes, as in docker.
    Host,
}

impl Network {
    /// Parses `--network`'s value.
    pub fn parse(s: &str) -> Result<Network> {
        match s {
            "" | "default" | "none" => Ok(Network::Isolated),
            "host" => Ok(Network::Host),
            other => bail!(
                "network mode {other:?} is not supported by this builder: use default, none                  or host (RUN steps cannot join the engine's networks)"
            ),
        }
    }
}
// ANCHOR_END: network

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

/// One stage being built.
struct Stage {
    name: Option<String>,
    img: Img,
    /// The ARGs declared in this stage, with their values (`None`: declared, no value).
    args: BTreeMap<String, Option<String>>,
    /// Whether this Dockerfile set CMD in this stage (ENTRYPOINT then keeps it).
    cmd_set: bool,
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
    /// The `--cache-from` images in the store.
    sources: Vec<Img>,
}

// ANCHOR: build
/// Builds an image as `docker build` does; see the module documentation.
///
/// Around the build itself: `--platform` must be the host's (a RUN step runs the image's
/// programs on this kernel and CPU, and this builder has no emulator); `--iidfile` is
/// removed first and written last, so a failed build leaves none; `-q` holds the output
/// back ([`quiet`]). `--pull` cannot pull: this builder never reaches a registry (a `FROM
/// name` without a registry host would mean Docker Hub), so it says so and uses the store's
/// image, as a build without `--pull` does.
pub fn build(store: &Store, opts: &BuildOptions) -> Result<Built> {
    for t in &opts.tags {
        check_tag(t)?;
    }
    if let Some(p) = &opts.platform {
        let host = format!("linux/{}", lab04_overlay::digest::host_arch());
        if p != &host && !p.starts_with(&format!("{host}/")) {
            bail!(
                "--platform {p}: this builder builds for the host's platform only ({host}):                  it runs the image's programs natively and has no emulator"
            );
        }
    }
    if let Some(f) = &opts.iidfile {
        match fs::remove_file(f) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing image ID file {}", f.display()))
            }
            _ => {}
        }
    }
    if opts.pull {
        eprintln!(
            "[Warning] --pull: this builder does not pull (it has no registry access);              the images FROM names are used as they are in the store"
        );
    }
    let quiet = match opts.quiet {
        true => Some(quiet::Quiet::start(&store.root().join("tmp"))?),
        false => None,
    };
    let result = build_steps(store, opts);
    if let Some(q) = quiet {
        let log = q.finish();
        if result.is_err() {
            std::io::stderr().write_all(&log)?;
        }
    }
    let built = result?;
    if let Some(f) = &opts.iidfile {
        fs::write(f, &built.id)
            .with_context(|| format!("writing image ID file {}", f.display()))?;
    }
    if opts.quiet {
        println!("{}", built.id);
    }
    Ok(built)
}
// ANCHOR_END: build

/// The build proper: the context, the Dockerfile, each stage's steps, the tags.
fn build_steps(store: &Store, opts: &BuildOptions) -> Result<Built> {
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
    let mut labels = Vec::new();
    for l in &opts.labels {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.push((k.to_string(), v.to_string()));
    }
    labels.sort();
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
        total: plan.global_args.len()
            + plan.stages[..=last].iter().map(Vec::len).sum::<usize>()
            + labels.len(),
        cached: 0,
        out: std::io::stdout(),
        sources: Vec::new(),
    };
    b.sources = b.cache_sources();
    for ins in &plan.global_args {
        b.global_arg(ins)?;
    }
    let staged = plan.stages[..=last]
        .iter()
        .enumerate()
        .try_for_each(|(i, stage)| {
            let extra: &[(String, String)] = if i == last { &labels } else { &[] };
            b.stage(stage, extra)
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_modes() {
        assert_eq!(Network::parse("default").unwrap(), Network::Isolated);
        assert_eq!(Network::parse("none").unwrap(), Network::Isolated);
        assert_eq!(Network::parse("host").unwrap(), Network::Host);
        assert!(Network::parse("bridge").is_err());
        assert!(Network::parse("container:x").is_err());
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
