//! The command line, with docker's names for every command and flag.
//!
//! Only what is implemented is accepted: an unknown flag is an error (exit
//! 125, as docker's), never silently ignored.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "dockyard",
    version,
    about = "A daemonless, docker-like container engine built from the Dockyard labs"
)]
pub struct Cli {
    /// The data root (default: $DOCKYARD_ROOT, daemon.json's data-root, /var/lib/dockyard).
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// The configuration file (default: $DOCKYARD_DAEMON_CONFIG, else
    /// /etc/dockyard/daemon.json).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Run every container in a user namespace whose root is an unprivileged range of the
    /// host: default, USER, USER:GROUP, UID or UID:GID (ranges from /etc/subuid and
    /// /etc/subgid; default: daemon.json's userns-remap). The data root becomes ROOT/UID.GID.
    #[arg(long = "userns-remap", global = true, value_name = "USER[:GROUP]")]
    pub userns_remap: Option<String>,
    /// Send the command to a service's Engine API instead of running it here:
    /// unix://PATH or tcp://HOST:PORT (default: $DOCKYARD_HOST).
    #[arg(short = 'H', long = "host", value_name = "HOST")]
    pub host: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create and run a new container from an image.
    Run(RunArgs),
    /// Create a new container without starting it.
    Create(RunArgs),
    /// Start one or more stopped containers.
    Start(StartArgs),
    /// Restart one or more containers.
    Restart(StopArgs),
    /// Execute a command in a running container.
    Exec(ExecArgs),
    /// List containers.
    Ps(PsArgs),
    /// Fetch the logs of a container.
    Logs(LogsArgs),
    /// Attach local standard input, output, and error streams to a running container.
    Attach(AttachArgs),
    /// Stop one or more running containers (the stop signal, then SIGKILL).
    Stop(StopArgs),
    /// Kill one or more running containers.
    Kill(KillArgs),
    /// Remove one or more containers.
    Rm(RmArgs),
    /// Block until one or more containers stop, then print their exit codes.
    Wait(NamesArgs),
    /// Show low-level information on containers or images, as JSON.
    Inspect(InspectArgs),
    /// List images.
    Images(ImagesArgs),
    /// Search a registry's catalog for images (Docker Hub needs the internet).
    Search(SearchArgs),
    /// Load an image from a tar archive (docker-archive or OCI) or an OCI layout directory.
    Load(LoadArgs),
    /// Create a new image from a container's changes.
    Commit(CommitArgs),
    /// Inspect changes to files on a container's filesystem.
    Diff(OneContainer),
    /// Copy files between a container and the host (CONTAINER:SRC DEST, or SRC CONTAINER:DEST).
    Cp(CpArgs),
    /// Export a container's filesystem as a tar archive.
    Export(ExportArgs),
    /// Import the contents from a tarball to create a filesystem image.
    Import(ImportArgs),
    /// Save an image to a tar archive (docker-archive format).
    Save(SaveArgs),
    /// Remove one or more images.
    Rmi(RmiArgs),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Rename a container.
    Rename(RenameArgs),
    /// List port mappings or a specific mapping for the container.
    Port(PortArgs),
    /// Pause all processes within one or more containers (the freezer cgroup).
    Pause(NamesArgs),
    /// Unpause all processes within one or more containers.
    Unpause(NamesArgs),
    /// Update configuration of one or more containers.
    Update(UpdateArgs),
    /// Get real time events from the engine (the event journal).
    Events(EventsArgs),
    /// Manage containers (docker's management commands: the same code as the short forms).
    #[command(subcommand)]
    Container(ContainerCmd),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCmd),
    /// Manage volumes.
    #[command(subcommand)]
    Volume(VolumeCmd),
    /// Download an image from a registry.
    Pull(PullArgs),
    /// Upload an image to a registry.
    Push(PushArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(TagArgs),
    /// Log in to a registry.
    Login(LoginArgs),
    /// Log out from a registry.
    Logout(LogoutArgs),
    /// Build an image from a Dockerfile.
    Build(BuildArgs),
    /// Display the running processes of a container.
    Top(OneContainer),
    /// Display a live stream of containers' resource usage (one sample with --no-stream).
    Stats(StatsArgs),
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Manage dockyard: disk usage and pruning.
    #[command(subcommand)]
    System(SystemCmd),
    /// Manage builds: the build cache.
    #[command(subcommand)]
    Builder(BuilderCmd),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion { shell: clap_complete::Shell },
    /// Write man pages for dockyard and each of its commands into DIR.
    Man {
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Display system-wide information.
    Info,
    /// `container prune` (reached through `container`).
    #[command(skip)]
    ContainerPrune(PruneArgs),
    /// `image prune` (reached through `image`).
    #[command(skip)]
    ImagePrune(ImagePruneArgs),
    /// Check that this host has what the labs and the engine need.
    Doctor,
    /// Show the version.
    Version,
    /// Internal: what a container's monitor runs when the container has
    /// exited (see `dockyard::container::monitor_exited`). Not for people.
    #[command(name = "__monitor-exited", hide = true)]
    MonitorExited(MonitorExitedArgs),
}

/// What the small monitor program hands back to `dockyard` after the exit.
#[derive(Args, Debug, Clone)]
pub struct MonitorExitedArgs {
    /// The container's PID 1 (exited now; its network is found by it).
    #[arg(long)]
    pub pid: i32,
    /// When the container started, on the monotonic clock (nanoseconds).
    #[arg(long)]
    pub started_ns: u64,
    /// The restart back-off to use next, in milliseconds.
    #[arg(long)]
    pub backoff_ms: u64,
    /// The health-check helper to wait for, if the container has a check.
    #[arg(long)]
    pub health_pid: Option<i32>,
    /// The engine is rootless: this process is in its user namespace already.
    #[arg(long)]
    pub rootless: bool,
    pub id: String,
    /// The exit code (128+N for signal N).
    pub code: i32,
}

/// `docker run`'s flags that dockyard implements.
#[derive(Args, Debug, Clone)]
// -h is docker's --hostname, so help is --help only, as in docker.
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Run in the background and print the container ID.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep STDIN open and pass it to the container.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Override the key sequence for detaching a container (with -it).
    #[arg(long = "detach-keys", default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables (KEY=value, or KEY to copy it from here).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read environment variables from a file.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// The working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>]).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Overwrite the image's ENTRYPOINT.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// The container's hostname (default: its short ID).
    #[arg(long, short = 'h')]
    pub hostname: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes.
    #[arg(long)]
    pub init: bool,
    /// Memory limit (e.g. 32m, 1g).
    #[arg(long, short = 'm')]
    pub memory: Option<String>,
    /// Memory plus swap limit, or -1 for unlimited swap.
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs (e.g. 0.5).
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Limit CPU CFS (Completely Fair Scheduler) period.
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota.
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// Limit read rate (bytes per second) from a device (e.g. /dev/vda:1mb).
    #[arg(long = "device-read-bps")]
    pub device_read_bps: Vec<String>,
    /// Limit write rate (bytes per second) to a device (e.g. /dev/vda:1mb).
    #[arg(long = "device-write-bps")]
    pub device_write_bps: Vec<String>,
    /// Disable OOM Killer.
    #[arg(long = "oom-kill-disable")]
    pub oom_kill_disable: bool,
    /// Tune container memory swappiness (0 to 100) (default -1).
    #[arg(long = "memory-swappiness", allow_hyphen_values = true)]
    pub memory_swappiness: Option<i64>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-shares", short = 'c')]
    pub cpu_shares: Option<u64>,
    /// Tune the container's pids limit (-1 for unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    #[command(flatten)]
    pub resources: crate::resource_flags::ResourceFlags,
    /// CPUs in which to allow execution (0-3, 0,1).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1).
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// The parent cgroup for the container.
    #[arg(long = "cgroup-parent")]
    pub cgroup_parent: Option<String>,
    /// Restart policy: no, always, on-failure[:N], unless-stopped.
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Set metadata on the container (KEY=value).
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Ulimit options (NAME=SOFT[:HARD], e.g. nofile=1024:2048).
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Log driver options (max-size, max-file).
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// Give extended privileges: every capability, no seccomp, no masked paths, all devices.
    #[arg(long)]
    pub privileged: bool,
    /// Add a host device to the container: HOST[:CONTAINER][:PERMS], PERMS of r, w, m.
    #[arg(long, value_name = "DEVICE")]
    pub device: Vec<String>,
    /// User namespace to use: `host` opts out of --userns-remap (empty: the engine's setting).
    #[arg(long, value_name = "MODE", default_value = "")]
    pub userns: String,
    #[command(flatten)]
    pub ns: crate::ns_flags::NsFlags,
    /// Add Linux capabilities (or ALL).
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities (or ALL).
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Security options: seccomp=unconfined|PROFILE.json, no-new-privileges[=false].
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Mount the container's root filesystem as read only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Mount a tmpfs directory (PATH[:OPTIONS]).
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Size of /dev/shm (e.g. 128m; default 64m, or daemon.json's default-shm-size).
    #[arg(long = "shm-size", value_name = "BYTES", allow_hyphen_values = true,
          value_parser = crate::flag_values::mem_bytes)]
    pub shm_size: Option<i64>,
    #[command(flatten)]
    pub process: crate::process_flags::ProcessFlags,
    /// Bind mount a volume: /host:/container[:ro], name:/container[:ro], or /container.
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount: type=bind|volume,source=...,target=...[,readonly].
    #[arg(long)]
    pub mount: Vec<String>,
    /// Add link to another container (legacy): CONTAINER[:ALIAS].
    #[arg(long)]
    pub link: Vec<String>,
    /// Mount volumes from the specified container(s): CONTAINER[:ro|rw].
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
    /// Connect the container to a network: bridge (the default, as docker's, unless
    /// daemon.json says "bridge": "none"), none, host, a user-defined network's name, or
    /// container:NAME.
    #[arg(long, alias = "net", default_value = "default")]
    pub network: String,
    /// Add a network-scoped alias for the container (user-defined networks).
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// IPv4 address (e.g. 172.30.100.104), on a user-defined network.
    #[arg(long)]
    pub ip: Option<String>,
    /// Set custom DNS servers.
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set custom DNS search domains.
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Set DNS options.
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip); ip may be host-gateway.
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Command to run to check health (run with /bin/sh -c inside the container).
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (e.g. 30s, 1m, 500ms).
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run.
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy.
    #[arg(long = "health-retries")]
    pub health_retries: Option<u32>,
    /// Start period for the container to initialize before failures count.
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// Disable any container-specified HEALTHCHECK.
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Publish a container's port to the host: [IP:][HOST_PORT:]CONTAINER_PORT[/udp].
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish every exposed port to a random host port.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports (80, 8000-8010/udp).
    #[arg(long)]
    pub expose: Vec<String>,
    /// Pull image before running ("always", "missing", "never").
    #[arg(long, default_value = "missing", value_name = "POLICY")]
    pub pull: String,
    /// The image, then the command and its arguments. Flags stop at the
    /// image: what follows it is the command's (`run busybox ls -l`), but a
    /// dash word before it is a flag, and an unknown one is an error, never
    /// an image called `--link`.
    #[arg(
        required = true,
        trailing_var_arg = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    pub image_and_command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run the command in the background.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep STDIN open.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Override the key sequence for detaching from the command (with -it; default: ctrl-p,ctrl-q).
    #[arg(long = "detach-keys", value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// Set environment variables.
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (default: the container's user).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// The container, then the command and its arguments (flags stop at
    /// the container, as in `run`).
    #[arg(required = true, num_args = 2.., trailing_var_arg = true, value_name = "CONTAINER COMMAND [ARG...]")]
    pub container_and_command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Do not attach STDIN.
    #[arg(long)]
    pub no_stdin: bool,
    /// Proxy all received signals to the process (without a terminal).
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container.
    #[arg(long = "detach-keys", default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
    pub container: String,
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals.
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach the container's STDIN.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container (with -ai).
    #[arg(long = "detach-keys", default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display container IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Show the n last created containers (includes all states).
    #[arg(short = 'n', long = "last", allow_hyphen_values = true, default_value_t = -1)]
    pub last: i64,
    /// Show the latest created container (includes all states).
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Filter output: status=, name=, id=, label=.
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format the output with a Go template ({{.ID}}, {{.Names}}, ...); "table ..." adds headers.
    #[arg(long)]
    pub format: Option<String>,
    /// Display total file sizes.
    #[arg(short = 's', long)]
    pub size: bool,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Show timestamps.
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Show extra details provided to logs (the attributes of --log-opt labels= and env=).
    #[arg(long)]
    pub details: bool,
    /// Number of lines to show from the end of the logs ("all" for every line).
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show logs since a timestamp (RFC 3339, Unix) or relative (e.g. 42m).
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp (RFC 3339, Unix) or relative (e.g. 42m).
    #[arg(long)]
    pub until: Option<String>,
    pub container: String,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing the container (default: its --stop-timeout, else 10).
    #[arg(short = 't', long = "time", allow_hyphen_values = true)]
    pub time: Option<i64>,
    /// Signal to send (default: the image's STOPSIGNAL, else SIGTERM).
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container.
    #[arg(short = 's', long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL).
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container.
    #[arg(short = 'v', long)]
    pub volumes: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct NamesArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `docker update`: the limits and restart policy of existing containers.
#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Number of CPUs.
    #[arg(long)]
    pub cpus: Option<f64>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-shares", short = 'c')]
    pub cpu_shares: Option<u64>,
    /// CPUs in which to allow execution (0-3, 0,1).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1).
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) period.
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota.
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// Memory limit.
    #[arg(long, short = 'm')]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap.
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Tune container pids limit (set -1 for unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    #[command(flatten)]
    pub more: crate::resource_flags::UpdateResourceFlags,
    /// Restart policy to apply when a container exits.
    #[arg(long)]
    pub restart: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format the output using a Go-template subset ({{.State.Pid}}, {{json .Config}}).
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Only inspect objects of this type (container or image).
    #[arg(long = "type")]
    pub kind: Option<String>,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Only show image IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Show all images.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Filter output: dangling=true|false, reference=REPOSITORY[:TAG].
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format the output with a Go template ({{.Repository}}, {{.Tag}}, {{.ID}}, ...);
    /// "table ..." adds headers.
    #[arg(long)]
    pub format: Option<String>,
    /// Show digests.
    #[arg(long)]
    pub digests: bool,
    /// Only the images of this repository (and tag).
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Filter output based on conditions provided (stars=N, is-official=BOOL).
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Pretty-print search using a Go template.
    #[arg(long)]
    pub format: Option<String>,
    /// Max number of search results.
    #[arg(long, default_value_t = dockyard::search::DEFAULT_LIMIT as i64, allow_hyphen_values = true)]
    pub limit: i64,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// A registry's host and the term, `127.0.0.1:5000/busy`.
    pub term: String,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from a tar archive file (or an OCI layout directory) instead of STDIN.
    #[arg(short = 'i', long)]
    pub input: Option<PathBuf>,
    /// Suppress the load output.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Subcommand, Debug)]
pub enum ContainerCmd {
    /// List containers.
    #[command(alias = "ps", alias = "list")]
    Ls(PsArgs),
    Run(RunArgs),
    Create(RunArgs),
    Start(StartArgs),
    Stop(StopArgs),
    Restart(StopArgs),
    Kill(KillArgs),
    #[command(alias = "remove")]
    Rm(RmArgs),
    Logs(LogsArgs),
    /// Attach local standard input, output, and error streams to a running container.
    Attach(AttachArgs),
    Exec(ExecArgs),
    Inspect(InspectArgs),
    Wait(NamesArgs),
    Commit(CommitArgs),
    Diff(OneContainer),
    Cp(CpArgs),
    Export(ExportArgs),
    Rename(RenameArgs),
    Pause(NamesArgs),
    Unpause(NamesArgs),
    Update(UpdateArgs),
    /// Remove all stopped containers.
    Prune(PruneArgs),
}

#[derive(Subcommand, Debug)]
pub enum ImageCmd {
    /// List images.
    #[command(alias = "list")]
    Ls(ImagesArgs),
    #[command(alias = "remove")]
    Rm(RmiArgs),
    Inspect(InspectArgs),
    History(HistoryArgs),
    Load(LoadArgs),
    Save(SaveArgs),
    Import(ImportArgs),
    /// Remove the layers and blobs no image or container uses (with -a,
    /// first untag every image no container uses).
    Prune(ImagePruneArgs),
}

impl Command {
    /// `container ls` is `ps`, `image rm` is `rmi`, and so on: one code path.
    pub fn flatten(self) -> Command {
        match self {
            Command::Container(c) => match c {
                ContainerCmd::Ls(a) => Command::Ps(a),
                ContainerCmd::Run(a) => Command::Run(a),
                ContainerCmd::Create(a) => Command::Create(a),
                ContainerCmd::Start(a) => Command::Start(a),
                ContainerCmd::Stop(a) => Command::Stop(a),
                ContainerCmd::Restart(a) => Command::Restart(a),
                ContainerCmd::Kill(a) => Command::Kill(a),
                ContainerCmd::Rm(a) => Command::Rm(a),
                ContainerCmd::Logs(a) => Command::Logs(a),
                ContainerCmd::Attach(a) => Command::Attach(a),
                ContainerCmd::Exec(a) => Command::Exec(a),
                ContainerCmd::Inspect(mut a) => {
                    a.kind.get_or_insert_with(|| "container".into());
                    Command::Inspect(a)
                }
                ContainerCmd::Wait(a) => Command::Wait(a),
                ContainerCmd::Commit(a) => Command::Commit(a),
                ContainerCmd::Diff(a) => Command::Diff(a),
                ContainerCmd::Cp(a) => Command::Cp(a),
                ContainerCmd::Export(a) => Command::Export(a),
                ContainerCmd::Rename(a) => Command::Rename(a),
                ContainerCmd::Pause(a) => Command::Pause(a),
                ContainerCmd::Unpause(a) => Command::Unpause(a),
                ContainerCmd::Update(a) => Command::Update(a),
                ContainerCmd::Prune(a) => Command::ContainerPrune(a),
            },
            Command::Image(i) => match i {
                ImageCmd::Ls(a) => Command::Images(a),
                ImageCmd::Rm(a) => Command::Rmi(a),
                ImageCmd::Inspect(mut a) => {
                    a.kind.get_or_insert_with(|| "image".into());
                    Command::Inspect(a)
                }
                ImageCmd::History(a) => Command::History(a),
                ImageCmd::Load(a) => Command::Load(a),
                ImageCmd::Save(a) => Command::Save(a),
                ImageCmd::Import(a) => Command::Import(a),
                ImageCmd::Prune(a) => Command::ImagePrune(a),
            },
            other => other,
        }
    }
}

#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Commit message.
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Author (e.g. "John Hannibal Smith <hannibal@a-team.com>").
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// Pause the container during commit.
    /// (`-p` alone, as the course notes write it, means true.)
    #[arg(short = 'p', long, default_value_t = true, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub pause: bool,
    /// Apply Dockerfile instruction to the created image (CMD, ENTRYPOINT, ENV, EXPOSE,
    /// LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR).
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    pub change: Vec<String>,
    pub container: String,
    /// REPOSITORY[:TAG]
    pub repository: Option<String>,
}

#[derive(Args, Debug)]
pub struct OneContainer {
    pub container: String,
}

#[derive(Args, Debug)]
pub struct PortArgs {
    pub container: String,
    /// PRIVATE_PORT[/PROTO]: only this port's bindings (host address:port).
    pub port: Option<String>,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    pub container: String,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// A tar file, or - for STDIN.
    pub file: String,
    /// REPOSITORY[:TAG]
    pub repository: Option<String>,
    /// Apply Dockerfile instruction(s) to the created image (CMD, ENV, EXPOSE, ...).
    #[arg(short = 'c', long = "change")]
    pub change: Vec<String>,
    /// Set commit message for imported image.
    #[arg(short = 'm', long)]
    pub message: Option<String>,
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Force removal of the image.
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only show image IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    pub image: String,
}

#[derive(Args, Debug)]
pub struct RenameArgs {
    pub container: String,
    pub new_name: String,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not prompt for confirmation.
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct ImagePruneArgs {
    /// Remove all images no container uses, not just dangling ones.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Subcommand, Debug)]
pub enum VolumeCmd {
    /// Create a volume.
    Create {
        /// Set metadata for a volume.
        #[arg(long = "label")]
        label: Vec<String>,
        /// The volume's name (random if not given).
        name: Option<String>,
    },
    /// List volumes.
    #[command(alias = "list")]
    Ls {
        /// Only display volume names.
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Filter output: name=, dangling=, driver=, label=.
        #[arg(short = 'f', long = "filter")]
        filter: Vec<String>,
        /// Format the output with a Go template ({{.Name}}, {{.Driver}}, ...); "table ..." adds headers.
        #[arg(long)]
        format: Option<String>,
    },
    /// Display detailed information on one or more volumes.
    Inspect {
        #[arg(short = 'f', long)]
        format: Option<String>,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove one or more volumes.
    #[command(alias = "remove")]
    Rm {
        /// Force the removal of one or more volumes.
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove unused anonymous volumes (all unused ones with -a).
    Prune {
        #[arg(short = 'a', long)]
        all: bool,
        #[arg(short = 'f', long)]
        force: bool,
    },
}

#[derive(Args, Debug)]
pub struct CpArgs {
    /// CONTAINER:SRC_PATH or a host path.
    pub src: String,
    /// CONTAINER:DEST_PATH or a host path.
    pub dest: String,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Set platform if server is multi-platform capable (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<String>,
    /// NAME[:TAG|@DIGEST]
    pub image: String,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// NAME[:TAG]
    pub image: String,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    /// SOURCE_IMAGE[:TAG]
    pub source: String,
    /// TARGET_IMAGE[:TAG]
    pub target: String,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Username.
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password.
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Take the password from stdin.
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// The registry (default: Docker Hub).
    pub server: Option<String>,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// The registry (default: Docker Hub).
    pub server: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum NetworkCmd {
    /// List networks.
    #[command(alias = "list")]
    Ls {
        /// Only display network IDs.
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Filter output: name=, id=, driver=, label=.
        #[arg(short = 'f', long = "filter")]
        filter: Vec<String>,
        /// Format the output with a Go template ({{.ID}}, {{.Name}}, ...); "table ..." adds headers.
        #[arg(long)]
        format: Option<String>,
        /// Do not truncate the output.
        #[arg(long = "no-trunc")]
        no_trunc: bool,
    },
    /// Display detailed information on one or more networks.
    Inspect {
        #[arg(short = 'f', long)]
        format: Option<String>,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Create a network (a bridge, kept until `network rm`).
    Create {
        /// Driver to manage the network (only bridge).
        #[arg(short = 'd', long, default_value = "bridge")]
        driver: String,
        /// Subnet in CIDR format.
        #[arg(long)]
        subnet: Option<String>,
        /// IPv4 gateway for the subnet.
        #[arg(long)]
        gateway: Option<String>,
        /// Allocate container IPs from a sub-range (macvlan).
        #[arg(long)]
        ip_range: Option<String>,
        /// Set metadata on a network (key=value).
        #[arg(long)]
        label: Vec<String>,
        /// Set driver specific options: com.docker.network.bridge.name=X,
        /// com.docker.network.driver.mtu=N; macvlan: parent=IF, macvlan_mode=M.
        #[arg(short = 'o', long = "opt")]
        opt: Vec<String>,
        /// Restrict external access to the network.
        #[arg(long)]
        internal: bool,
        name: String,
    },
    /// Remove one or more networks.
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove all unused networks.
    Prune {
        /// Do not prompt for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Connect a running container to a network.
    Connect {
        /// Add a network-scoped alias for the container.
        #[arg(long)]
        alias: Vec<String>,
        /// IPv4 address (e.g. 172.30.100.104).
        #[arg(long)]
        ip: Option<String>,
        network: String,
        container: String,
    },
    /// Disconnect a container from a network.
    Disconnect {
        /// Force the container to disconnect from a network.
        #[arg(short = 'f', long)]
        force: bool,
        network: String,
        container: String,
    },
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Show all containers (default shows just running).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Print one sample and exit.
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    pub containers: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum SystemCmd {
    /// Show dockyard disk usage.
    Df,
    /// Remove stopped containers, unused layers and blobs (and, with --volumes, unused anonymous volumes).
    Prune {
        /// Do not prompt for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
        /// Also prune anonymous volumes no container uses.
        #[arg(long)]
        volumes: bool,
        /// Remove all unused images and all build cache, not just dangling ones.
        #[arg(short = 'a', long)]
        all: bool,
    },
    /// Display system-wide information (same as `dockyard info`).
    Info,
    /// Get real time events from the engine (same as `dockyard events`).
    Events(EventsArgs),
    /// Serve the Docker Engine API on a unix socket, for docker and other clients.
    Service {
        /// Where to listen.
        #[arg(short = 'H', long, default_value = "unix:///run/dockyard.sock")]
        host: String,
        /// Exit after this many seconds without a client (0: never).
        #[arg(short = 't', long, default_value_t = 5)]
        time: u64,
        /// TCP only with TLS, and only for clients whose certificate the CA
        /// signed (dockerd's --tlsverify).
        #[arg(long)]
        tlsverify: bool,
        /// The CA that signs the clients' certificates (PEM).
        #[arg(long, value_name = "FILE")]
        tlscacert: Option<std::path::PathBuf>,
        /// The service's certificate (PEM).
        #[arg(long, value_name = "FILE")]
        tlscert: Option<std::path::PathBuf>,
        /// The service's private key (PEM).
        #[arg(long, value_name = "FILE")]
        tlskey: Option<std::path::PathBuf>,
    },
}

/// `docker builder`'s commands.
#[derive(Subcommand, Debug)]
pub enum BuilderCmd {
    /// Remove build cache (the dangling entries; all of them with -a).
    Prune {
        /// Remove all build cache, not just the dangling entries.
        #[arg(short = 'a', long)]
        all: bool,
        /// Do not prompt for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
}

/// `docker build`'s flags that dockyard implements.
#[derive(Args, Debug, Clone)]
pub struct BuildArgs {
    /// Name and optionally a tag in the 'name:tag' format (repeatable).
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    pub tags: Vec<String>,
    /// Name of the Dockerfile (default: CONTEXT/Dockerfile; `-` reads standard input).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Set build-time variables (NAME=VALUE, or NAME to take it from the environment).
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    pub build_args: Vec<String>,
    /// Do not use cache when building the image.
    #[arg(long)]
    pub no_cache: bool,
    /// Set the target build stage to build.
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Optional parent cgroup for the RUN steps' containers.
    #[arg(long, value_name = "PATH")]
    pub cgroup_parent: Option<String>,
    /// Suppress the build output and print the image ID on success.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Set metadata for the image (KEY=VALUE, repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Write the image ID to the file.
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Networking mode for the RUN instructions: default (only lo here), none, host.
    #[arg(long, value_name = "MODE", default_value = "default")]
    pub network: String,
    /// Attempt to pull newer images (this builder never pulls: it warns and builds).
    #[arg(long)]
    pub pull: bool,
    /// Memory limit for the RUN steps' containers (e.g. 512m).
    #[arg(short = 'm', long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// Remove intermediate containers after a successful build (always done here).
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub rm: bool,
    /// Always remove intermediate containers (always done here).
    #[arg(long)]
    pub force_rm: bool,
    /// Do not use the cache for these stages (repeatable).
    #[arg(long, value_name = "STAGE", value_delimiter = ',')]
    pub no_cache_filter: Vec<String>,
    /// Build for this platform: the host's only (e.g. linux/amd64).
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    #[command(flatten)]
    pub more: crate::build_flags::BuildFlags,
    /// A directory, a tar archive, or `-` (a Dockerfile or a tar archive on standard input).
    /// (A lone `-` is a value to clap; any other dash word is a flag, so an
    /// unknown one is reported as such and never taken for the context.)
    #[arg(value_name = "CONTEXT")]
    pub context: String,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Show all events created since timestamp (RFC 3339, Unix seconds, or a duration back from now: 10m).
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp.
    #[arg(long)]
    pub until: Option<String>,
    /// Filter output based on conditions provided (type=, event=, container=, image=, network=, volume=, label=).
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format the output using the given Go template ('json' for one JSON line per event).
    #[arg(long)]
    pub format: Option<String>,
}
