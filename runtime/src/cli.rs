//! The command line, flag for flag as runc spells it: containerd's shim and
//! conmon build these argv vectors themselves, so a renamed flag is a
//! caller that cannot start containers. Flags runc accepts that change
//! nothing here (`--no-new-keyring`, `--preserve-fds 0`) are accepted too.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "dockyard-runtime",
    about = "An OCI runtime built from Dockyard's labs, with runc's command line"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// runc's global options; allowed before or after the command, as in runc.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Where the state of each container is kept (a tmpfs: it must not
    /// survive a reboot, and neither do the containers).
    #[arg(long, global = true, default_value = "/run/dockyard-runtime")]
    pub root: PathBuf,
    /// Write log lines to this file instead of stderr.
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// `text` (logrus's key=value) or `json` (one object per line).
    #[arg(long, global = true, default_value = "text")]
    pub log_format: String,
    /// Log debug lines too.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Name cgroups as systemd units (`slice:prefix:name`).
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Accepted for runc compatibility (criu's path); unused.
    #[arg(long, global = true, hide = true)]
    pub criu: Option<String>,
    /// Accepted for runc compatibility; unused.
    #[arg(long, global = true, hide = true)]
    pub rootless: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container: everything made, its process waiting before exec.
    Create(CreateArgs),
    /// Let a created container's process exec its command.
    Start { id: String },
    /// Create and start a container, and wait for it (unless --detach).
    Run(CreateArgs),
    /// Print the OCI state of a container as JSON.
    State { id: String },
    /// Send a signal (a name or a number; default SIGTERM) to a container.
    Kill {
        /// Send it to every process in the container's cgroup.
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a stopped (or, with --force, any) container.
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// List containers.
    List {
        #[arg(short, long, default_value = "table")]
        format: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// List a container's processes.
    Ps {
        #[arg(short, long, default_value = "table")]
        format: String,
        id: String,
        /// Options for ps(1), accepted as runc does; the table is ours.
        #[arg(trailing_var_arg = true)]
        ps_args: Vec<String>,
    },
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Change a running container's resources (`linux.resources` as JSON).
    Update {
        /// A file with the resources, or `-` for stdin.
        #[arg(short = 'r', long)]
        resources: Option<String>,
        /// Memory limit in bytes (a number, or with a k, m or g suffix).
        #[arg(short, long)]
        memory: Option<String>,
        /// Most tasks at once.
        #[arg(long)]
        pids_limit: Option<i64>,
        id: String,
    },
    /// Run a new process in a running container.
    Exec(ExecArgs),
    /// Write a starting config.json.
    Spec {
        #[arg(short, long)]
        bundle: Option<PathBuf>,
    },
    /// Print what this runtime supports (the runtime-spec features.json).
    Features,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// The bundle: a directory with config.json.
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container's PID here.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// A unix socket to which the pty's master is sent (`terminal: true`).
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Use MS_MOVE and chroot instead of pivot_root (for a rootfs on a
    /// ramdisk); Dockyard always uses pivot_root, which works everywhere
    /// else, and says so.
    #[arg(long)]
    pub no_pivot: bool,
    /// runc makes a session keyring per container unless told not to;
    /// this runtime never makes one, so the flag changes nothing.
    #[arg(long, hide = true)]
    pub no_new_keyring: bool,
    #[arg(long, default_value_t = 0, hide = true)]
    pub preserve_fds: u32,
    /// `run` only: return once the container is started.
    #[arg(short, long)]
    pub detach: bool,
    pub id: String,
}

#[derive(Args, Debug, Clone)]
pub struct ExecArgs {
    /// A JSON file with the process (config.json's `process`).
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    #[arg(short, long)]
    pub detach: bool,
    #[arg(short, long)]
    pub tty: bool,
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    #[arg(short, long)]
    pub env: Vec<String>,
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(long, default_value_t = 0, hide = true)]
    pub preserve_fds: u32,
    #[arg(long, hide = true)]
    pub process_label: Option<String>,
    #[arg(long, hide = true)]
    pub apparmor: Option<String>,
    #[arg(long, hide = true)]
    pub no_new_privs: bool,
    pub id: String,
    /// The command, after `--`, when there is no --process.
    #[arg(trailing_var_arg = true)]
    pub args: Vec<String>,
}
