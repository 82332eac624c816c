//! `lab03-cgroups`: run a command in new namespaces and its own cgroup, with
//! `docker run`'s resource limits.
//!
//! The mechanism lives in the library (`lab03_cgroups`); this is only its
//! front end: flags in, limits and exit status out.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::Parser;
use lab03_cgroups::{
    parse_size, Blueprint, CgroupNs, CgroupSpec, Devices, Limits, RunOptions, Size, Stats,
    DEFAULT_PARENT,
};

/// Run CMD in new namespaces (as lab 02, without a user namespace, as docker
/// run) and in a new cgroup with the given limits.
///
/// The cgroup is <PARENT>/<NAME> in every hierarchy the host uses, and is
/// removed when the command ends. Exit status: the command's, 128+N if
/// signal N killed it (137 after an OOM kill); 125 if the lab failed.
#[derive(Parser, Debug)]
#[command(name = "lab03-cgroups", version)]
struct Cli {
    /// The root filesystem: a directory holding the image's files.
    #[arg(long, value_name = "DIR")]
    rootfs: PathBuf,

    /// CPUs' worth of time the container may use (0.5 = half of one CPU):
    /// cpu.cfs_quota_us / cpu.cfs_period_us on v1, cpu.max on v2.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    cpus: Option<f64>,

    /// Relative CPU weight, 2..262144, default 1024 (v1 cpu.shares; converted to cpu.weight on v2).
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        conflicts_with = "cpu_weight"
    )]
    cpu_shares: Option<i64>,

    /// Relative CPU weight, 1..10000, default 100 (v2 cpu.weight; converted to cpu.shares on v1).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    cpu_weight: Option<i64>,

    /// Memory limit, like 32m or 1g (memory.limit_in_bytes on v1, memory.max on v2).
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    memory: Option<String>,

    /// Memory plus swap, like 64m, or -1 for unlimited swap. Default: twice --memory.
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    memory_swap: Option<String>,

    /// Most processes and threads at once (pids.max); -1 for no limit.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pids_limit: Option<i64>,

    /// The CFS period in microseconds (cpu.cfs_period_us, or cpu.max's second
    /// number), for --cpu-quota.
    #[arg(long, value_name = "US")]
    cpu_period: Option<u64>,

    /// CPU time per period in microseconds, or -1 for no limit
    /// (cpu.cfs_quota_us, or cpu.max's first number).
    #[arg(long, value_name = "US", allow_hyphen_values = true)]
    cpu_quota: Option<i64>,

    /// At the memory limit, make tasks wait instead of OOM-killing one (v1
    /// memory.oom_control; ignored with a warning on v2).
    #[arg(long)]
    oom_kill_disable: bool,

    /// How eagerly anonymous memory is swapped, 0 to 100 (v1
    /// memory.swappiness; ignored with a warning on v2).
    #[arg(long, value_name = "N")]
    memory_swappiness: Option<u64>,

    /// The CPUs the command may run on (cpuset.cpus), e.g. 0-1 or 0,2.
    #[arg(long, value_name = "LIST")]
    cpuset_cpus: Option<String>,

    /// The memory nodes it may allocate from (cpuset.mems), e.g. 0.
    #[arg(long, value_name = "LIST")]
    cpuset_mems: Option<String>,

    /// The parent cgroup, below each hierarchy's root.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_PARENT)]
    cgroup_parent: String,

    /// The container's name, and its cgroup's. Default: 12 random hex digits.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,

    /// Cgroup namespace: "host" shows the container its cgroup's full path in
    /// /proc/self/cgroup, "private" shows it as /. Default as docker's:
    /// private on cgroup v2, host on v1.
    #[arg(long, value_name = "MODE", value_parser = ["host", "private"])]
    cgroupns: Option<String>,

    /// Run a tiny init as PID 1 that forwards signals and reaps zombies, with
    /// the command as PID 2 (lab 02's, as docker run --init).
    #[arg(long)]
    init: bool,

    /// Docker's device allow list as a cgroup v2 eBPF program, attached to
    /// the container's group in the unified hierarchy (made there on a
    /// hybrid host).
    #[arg(long)]
    device_program: bool,

    /// After the command ends, print what the cgroup counted (to stderr), and
    /// the CPU time the host charged to the command's processes (getrusage),
    /// which agrees with the group's only if they ran in it.
    #[arg(long)]
    stats: bool,

    /// The command and its arguments, after `--`.
    #[arg(required = true, last = true, value_name = "CMD")]
    command: Vec<OsString>,
}

impl Cli {
    fn limits(&self) -> anyhow::Result<Limits> {
        let memory = self.memory.as_deref().map(parse_size).transpose()?;
        let memory_swap = match self.memory_swap.as_deref() {
            None => None,
            Some("-1") => Some(-1),
            Some(s) => Some(i64::try_from(parse_size(s)?)?),
        };
        let non_negative = |v: Option<i64>, flag: &str| -> anyhow::Result<Option<u64>> {
            match v {
                Some(n) if n < 0 => bail!("{flag} {n}: must not be negative"),
                v => Ok(v.map(|n| n as u64)),
            }
        };
        Ok(Limits {
            cpus: self.cpus,
            cpu_period: self.cpu_period,
            cpu_quota: self.cpu_quota,
            cpu_shares: non_negative(self.cpu_shares, "--cpu-shares")?,
            cpu_weight: non_negative(self.cpu_weight, "--cpu-weight")?,
            memory,
            memory_swap,
            pids: self.pids_limit,
            oom_kill_disable: self.oom_kill_disable,
            device_read_bps: Vec::new(),
            device_write_bps: Vec::new(),
            more: Default::default(),
            memory_swappiness: self.memory_swappiness,
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
        })
    }
}

/// 12 random hex digits, like a short docker container ID.
fn random_name() -> anyhow::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 6];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn print_stats(stats: &Stats, elapsed: Duration, host_cpu_usec: u64) {
    let secs = elapsed.as_secs_f64();
    let share = |usec: u64| {
        if secs > 0.0 {
            usec as f64 / 1e4 / secs
        } else {
            0.0
        }
    };
    if let Some(usec) = stats.cpu_usage_usec {
        let share = share(usec);
        eprintln!("lab03-cgroups: cpu: {usec}us in {secs:.3}s = {share:.1}% of one CPU");
    }
    // The same time as the host charged it to the command's processes,
    // whatever group they were in: the two agree when the command ran in
    // the group, and only then.
    eprintln!(
        "lab03-cgroups: cpu, as the host saw the command's processes (getrusage): \
         {host_cpu_usec}us = {:.1}% of one CPU",
        share(host_cpu_usec)
    );
    let size = |v: Option<u64>| v.map_or("-".to_string(), |b| Size(b).to_string());
    eprintln!(
        "lab03-cgroups: memory: peak {}, now {}",
        size(stats.memory_peak),
        size(stats.memory_current)
    );
    if let Some(n) = stats.pids_denied {
        eprintln!("lab03-cgroups: pids: {n} forks refused at pids.max");
    }
    if let Some(n) = stats.oom_kills {
        eprintln!("lab03-cgroups: oom kills: {n}");
    }
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let limits = cli.limits()?;
    let host = lab03_cgroups::detect()?;
    let name = match &cli.name {
        Some(n) => n.clone(),
        None => random_name()?,
    };
    let mut spec = lab02_namespaces::Spec::new(&cli.rootfs, cli.command.clone());
    spec.init = cli.init;
    // As docker run (the blueprint's defaults): no user namespace, root
    // inside is root; a private cgroup namespace only on v2, unless asked.
    let mut blueprint = Blueprint::new(spec);
    blueprint.cgroupns = match cli.cgroupns.as_deref() {
        Some("private") => CgroupNs::Private,
        Some(_) => CgroupNs::Host,
        None => CgroupNs::HostDefault,
    };
    blueprint.cgroup = Some(CgroupSpec {
        parent: cli.cgroup_parent.clone(),
        name,
        limits: limits.clone(),
    });
    if cli.device_program {
        blueprint.devices = Devices::DockerDefaultProgram;
    }
    let opts = RunOptions {
        blueprint,
        stop_timeout: Duration::from_secs(3),
    };
    let outcome = lab03_cgroups::run(&host, &opts)?;
    for w in &outcome.warnings {
        eprintln!("lab03-cgroups: warning: {w}");
    }
    if let Some(event) = &outcome.oom {
        let limit = limits.memory.map_or("-".into(), |m| Size(m).to_string());
        eprintln!("lab03-cgroups: OOM-killed: memory limit {limit} reached ({event})");
    }
    if cli.stats {
        print_stats(&outcome.stats, outcome.elapsed, outcome.host_cpu_usec);
    }
    Ok(outcome.status.code())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and --version are not errors; bad flags exit 125 as in docker.
            let code = if e.use_stderr() { 125 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("lab03-cgroups: {e:#}");
            ExitCode::from(125)
        }
    }
}
