//! `run`/`create`'s namespace flags, `--pid`, `--ipc`, `--uts` and
//! `--cgroupns`, flattened into `cli::RunArgs` (a module of its own, as
//! cli.rs is near the size limit). What they do is the core's
//! (`dockyard::container::ns_modes`); here is what docker's client itself
//! checks before it asks the daemon anything.

use anyhow::bail;
use dockyard::container::ns_modes;

/// The namespaces a container shares with the host or another container.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct NsFlags {
    /// PID namespace to use: host, or container:NAME.
    #[arg(long, value_name = "MODE", default_value = "")]
    pub pid: String,
    /// IPC mode to use: private, shareable, none, host, or container:NAME (default: daemon.json's default-ipc-mode, else private).
    #[arg(long, value_name = "MODE", default_value = "")]
    pub ipc: String,
    /// UTS namespace to use: host.
    #[arg(long, value_name = "MODE", default_value = "")]
    pub uts: String,
    /// Cgroup namespace to use (host|private); default: daemon.json's default-cgroupns-mode, else private on cgroup v2, host on v1.
    #[arg(long, value_name = "MODE", default_value = "")]
    pub cgroupns: String,
}

impl NsFlags {
    /// docker's client refuses these modes itself, in its words (exit 125
    /// with the usage hint); an IPC mode is the daemon's to check.
    pub fn check(&self) -> anyhow::Result<()> {
        if !ns_modes::pid_valid(&self.pid) {
            bail!("--pid: invalid PID mode");
        }
        if !ns_modes::uts_valid(&self.uts) {
            bail!("--uts: invalid UTS mode");
        }
        if !ns_modes::cgroupns_valid(&self.cgroupns) {
            bail!("--cgroupns: invalid CGROUP mode");
        }
        Ok(())
    }
}
