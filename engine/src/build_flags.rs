//! `docker build`'s flags beyond those of `cli::BuildArgs` (which
//! flattens them in): a module of its own, as cli.rs is near the size limit.

use anyhow::Context;

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
    pub fn limits(&self) -> anyhow::Result<lab03_cgroups::Limits> {
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
