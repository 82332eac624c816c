//! # spec, features, --version: what the runtime says about itself
//!
//! `features` prints the runtime-spec's `features.json`: which hooks,
//! namespaces, capabilities, mount options and cgroup versions this
//! runtime implements, so that a caller can decide before it asks.
//! Everything listed here is something [`crate::bundle`] translates.

use anyhow::{bail, Context};
use lab02_namespaces as lab02;

/// `--version` in runc's format (`runc version X`, `commit:`, `spec:`,
/// then the libraries: ours is lab 02's seccomp compiler, not libseccomp).
/// Callers parse the first three lines (containerd's `runc --version`).
pub fn version() -> String {
    format!(
        "dockyard-runtime version {}\ncommit: dockyard-labs\nspec: {}\nseccomp: lab02-namespaces",
        env!("CARGO_PKG_VERSION"),
        oci_spec::runtime::version(),
    )
}

/// `--systemd-cgroup` names groups as systemd units, which only systemd
/// (as PID 1) can create.
pub fn check_systemd() -> anyhow::Result<()> {
    let comm = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
    if comm.trim() != "systemd" {
        bail!(
            "--systemd-cgroup: systemd is not the init of this machine (PID 1 is {:?}); \
             use the cgroupfs driver (drop --systemd-cgroup, SystemdCgroup = false in containerd, \
             cgroup_manager = \"cgroupfs\" in containers.conf)",
            comm.trim()
        );
    }
    bail!("--systemd-cgroup: systemd cgroup units are not supported by this runtime yet")
}

/// `spec [--bundle DIR]`: a starting config.json (runc's defaults: `sh`
/// on a terminal, rootfs `rootfs`), refusing to overwrite one.
pub fn spec(bundle: Option<&std::path::Path>) -> anyhow::Result<()> {
    let dir = bundle.unwrap_or(std::path::Path::new("."));
    let path = dir.join("config.json");
    if path.exists() {
        bail!("File {} exists. Remove it first", path.display());
    }
    let spec = oci_spec::runtime::Spec::default();
    let text = serde_json::to_string_pretty(&spec)?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// `features`: runtime-spec `features.json`.
pub fn features() -> anyhow::Result<()> {
    let caps: Vec<String> = lab02::security::CAPABILITIES
        .iter()
        .map(|c| format!("CAP_{}", c.name.to_ascii_uppercase()))
        .collect();
    let v = serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": oci_spec::runtime::version(),
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
                  "poststart", "poststop"],
        "mountOptions": ["bind", "rbind", "ro", "rw", "nosuid", "nodev", "noexec",
                         "shared", "rshared", "slave", "rslave", "private", "rprivate",
                         "unbindable", "runbindable"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false},
            "seccomp": {"enabled": true},
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false}
        },
        "annotations": {"org.dockyard.runtime.labs": "02-namespaces,03-cgroups"}
    });
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
