//! `dockyard build`: lab 06's builder, into the engine's data root.
//!
//! The data root *is* a lab 04 image store, so the builder needs nothing from the engine but
//! the store: the image it tags is there for `dockyard run` at once. Like `docker build`, a
//! failed build exits 1 with the builder's own message, except a failing RUN, which prints
//! docker's `The command '...' returned a non-zero code: N` and exits N.

use anyhow::Context;

use crate::cli::BuildArgs;
use dockyard::Engine;

/// Build, and report a failure as docker does: its message alone, exit 1.
pub fn run(engine: &Engine, a: &BuildArgs) -> anyhow::Result<i32> {
    if engine.remap.is_some() {
        // Lab 06 runs RUN steps without a user namespace and writes its
        // layers with the owners it finds on disk: on a remapped store its
        // layers would carry host IDs. Refused rather than wrong.
        anyhow::bail!(
            "build with --userns-remap is not implemented yet: build without it, then \
             save and load the image into the remapped data root"
        );
    }
    if !a.rm {
        // Docker keeps a build's RUN containers with --rm=false; here they are not engine
        // containers (lab 06 runs them itself) and are always removed. Refused, not ignored.
        anyhow::bail!(
            "--rm=false is not supported: the RUN steps' containers are always removed              (--rm and --force-rm are what this builder always does)"
        );
    }
    let memory = match &a.memory {
        Some(m) => Some(lab03_cgroups::parse_size(m).context("invalid argument for -m, --memory")?),
        None => None,
    };
    let limits = a.more.limits()?;
    let network = lab06_dockerfile::Network::parse(&a.network)?;
    // A bad flag value is the client's refusal, as docker's CLI makes it.
    let client = |e: anyhow::Error| match e.downcast::<crate::build_flags::FlagError>() {
        Ok(f) => anyhow::Error::from(super::ClientRefusal(f.0)),
        Err(e) => e,
    };
    let hosts = a
        .more
        .hosts(engine, network == lab06_dockerfile::Network::Host)
        .map_err(client)?;
    let shm_size = a.more.shm_size(engine).map_err(client)?;
    let rlimits = a.more.rlimits(engine).map_err(client)?;
    let opts = lab06_dockerfile::BuildOptions {
        tags: a.tags.clone(),
        dockerfile: a.file.clone(),
        context: a.context.clone(),
        build_args: a.build_args.clone(),
        no_cache: a.no_cache,
        target: a.target.clone(),
        cgroup_parent: a.cgroup_parent.clone(),
        quiet: a.quiet,
        labels: a.labels.clone(),
        iidfile: a.iidfile.clone(),
        network,
        pull: a.pull,
        memory,
        no_cache_filter: a.no_cache_filter.clone(),
        platform: a.platform.clone(),
        limits,
        hosts: Some(hosts),
        shm_size,
        rlimits,
        cache_from: a.more.cache_from.clone(),
    };
    match lab06_dockerfile::build(&engine.images, &opts) {
        Ok(_) => Ok(0),
        Err(e) => {
            eprintln!("{e:#}");
            // A failing RUN exits with the command's own status, as docker's CLI does
            // with the classic builder's `JSONError{Code}`; any other failure is 1.
            Ok(e.downcast_ref::<lab06_dockerfile::RunFailed>()
                .map_or(1, |f| f.code))
        }
    }
}
