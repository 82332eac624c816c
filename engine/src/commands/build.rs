//! `dockyard build`: lab 06's builder, into the engine's data root.
//!
//! The data root *is* a lab 04 image store, so the builder needs nothing from the engine but
//! the store: the image it tags is there for `dockyard run` at once. Like `docker build`, a
//! failed build exits 1 with the builder's own message, except a failing RUN, which prints
//! docker's `The command '...' returned a non-zero code: N` and exits N.

use anyhow::Context;

use crate::cli::BuildArgs;
use dockyard::Engine;

/// The rest of the classic builder's flags (`docker build --help`): the
/// RUN steps' cgroup limits, applied as `docker run` applies them, and the
/// flags with nothing to do here, accepted where docker accepts them.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BuildFlags {
    /// Limit the CPU CFS (Completely Fair Scheduler) period.
    #[arg(long, value_name = "INT")]
    pub cpu_period: Option<u64>,
    /// Limit the CPU CFS (Completely Fair Scheduler) quota.
    #[arg(long, value_name = "INT", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long, value_name = "INT")]
    pub cpu_shares: Option<u64>,
    /// CPUs in which to allow execution (0-3, 0,1).
    #[arg(long, value_name = "CPUS")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1).
    #[arg(long, value_name = "MEMS")]
    pub cpuset_mems: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap.
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Add a custom host-to-IP mapping (host:ip): not supported by this builder.
    #[arg(long, value_name = "HOST:IP")]
    pub add_host: Vec<String>,
    /// Size of /dev/shm: not supported by this builder.
    #[arg(long, value_name = "BYTES")]
    pub shm_size: Option<String>,
    /// Ulimit options: not supported by this builder.
    #[arg(long, value_name = "ULIMIT")]
    pub ulimit: Vec<String>,
    /// Security options: not supported by this builder.
    #[arg(long, value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Images to consider as cache sources: not supported by this builder.
    #[arg(long, value_name = "IMAGE")]
    pub cache_from: Vec<String>,
    /// Compress the build context using gzip (nothing to do: the context is read in place).
    #[arg(long)]
    pub compress: bool,
    /// Skip image verification (nothing to verify: no content trust here).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub disable_content_trust: Option<bool>,
    /// Container isolation technology: `default` only, on Linux.
    #[arg(long, value_name = "STRING")]
    pub isolation: Option<String>,
}

impl BuildFlags {
    /// The RUN steps' limits, or a refusal in docker's words (`--isolation`)
    /// or naming what this builder does not do.
    fn limits(&self) -> anyhow::Result<lab03_cgroups::Limits> {
        if let Some(i) = &self.isolation {
            // moby's build route: only the default isolation on Linux.
            if !(i.is_empty() || i.eq_ignore_ascii_case("default")) {
                anyhow::bail!("unsupported isolation: {i:?}");
            }
        }
        for (flag, given) in [
            ("--add-host", !self.add_host.is_empty()),
            ("--shm-size", self.shm_size.is_some()),
            ("--ulimit", !self.ulimit.is_empty()),
            ("--security-opt", !self.security_opt.is_empty()),
            ("--cache-from", !self.cache_from.is_empty()),
        ] {
            if given {
                anyhow::bail!(
                    "build {flag} is not supported yet: lab 06's RUN steps have no way to take it"
                );
            }
        }
        let memory_swap = match self.memory_swap.as_deref() {
            None => None,
            Some("-1") => Some(-1),
            Some(s) => Some(
                lab03_cgroups::parse_size(s).context("invalid argument for --memory-swap")? as i64,
            ),
        };
        Ok(lab03_cgroups::Limits {
            cpu_period: self.cpu_period,
            cpu_quota: self.cpu_quota,
            cpu_shares: self.cpu_shares,
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            memory_swap,
            ..Default::default()
        })
    }
}

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
        network: lab06_dockerfile::Network::parse(&a.network)?,
        pull: a.pull,
        memory,
        no_cache_filter: a.no_cache_filter.clone(),
        platform: a.platform.clone(),
        limits,
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
