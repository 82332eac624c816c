//! `run`/`create` flags about the process and its life: its groups
//! (`--group-add`), namespaced kernel settings (`--sysctl`,
//! `--domainname`), the OOM killer (`--oom-score-adj`), how `stop` ends it
//! (`--stop-signal`, `--stop-timeout`), and what the client does around
//! the container (`--cidfile`, `--label-file`, `-q`).
//!
//! A struct of their own, flattened into `RunArgs`: the values docker's
//! CLI parses itself are parsed here, in its words; the rest is checked by
//! the engine at create (`check_settings`) and by lab 02 at start, as
//! dockerd and runc check them.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use dockyard::container::ContainerConfig;

use crate::flag_values::FlagValue;

/// The flags; see the module's documentation.
#[derive(Args, Debug, Clone, Default)]
pub struct ProcessFlags {
    /// Add additional groups to join (a name from the image's /etc/group, or a GID).
    #[arg(long = "group-add", value_name = "GROUP")]
    pub group_add: Vec<String>,
    /// Sysctl options of the container's own namespaces (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*).
    #[arg(long, value_name = "KEY=VALUE", value_parser = sysctl)]
    pub sysctl: Vec<String>,
    /// Tune host's OOM preferences (-1000 to 1000).
    #[arg(long = "oom-score-adj", value_name = "INT", allow_hyphen_values = true,
          value_parser = go_int)]
    pub oom_score_adj: Option<i64>,
    /// Signal to stop the container (default: the image's STOPSIGNAL, else SIGTERM).
    #[arg(long = "stop-signal", value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container (-1: wait for ever).
    #[arg(long = "stop-timeout", value_name = "INT", allow_hyphen_values = true,
          value_parser = go_int)]
    pub stop_timeout: Option<i64>,
    /// Container NIS domain name.
    #[arg(long, value_name = "STRING")]
    pub domainname: Option<String>,
    /// Write the container ID to the file.
    #[arg(long, value_name = "FILE")]
    pub cidfile: Option<PathBuf>,
    /// Read in a line delimited file of labels.
    #[arg(long = "label-file", value_name = "FILE")]
    pub label_file: Vec<PathBuf>,
    /// Suppress the pull output.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// `--sysctl KEY=VALUE`, as docker's CLI takes it (`opts.ValidateSysctl`):
/// only the namespaced keys it knows, and a value.
fn sysctl(value: &str) -> Result<String, FlagValue> {
    // The IPC namespace's keys are lab 02's list (runc's, and docker's CLI's).
    let ok = value
        .split_once('=')
        .is_some_and(|(key, _)| lab02_namespaces::sysctl::is_ipc(key) || key.starts_with("net."));
    if ok {
        Ok(value.to_string())
    } else {
        Err(FlagValue(format!("sysctl '{value}' is not allowed")))
    }
}

/// An int flag, refused in Go's words (`strconv.ParseInt: parsing "x":
/// invalid syntax`).
fn go_int(value: &str) -> Result<i64, FlagValue> {
    value.parse().map_err(|e: std::num::ParseIntError| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        FlagValue(format!("strconv.ParseInt: parsing {value:?}: {why}"))
    })
}

impl ProcessFlags {
    /// Record the flags in the container's config.
    pub fn apply(&self, config: &mut ContainerConfig) {
        config.group_add = self.group_add.clone();
        for s in &self.sysctl {
            if let Some((k, v)) = s.split_once('=') {
                config.sysctls.insert(k.to_string(), v.to_string());
            }
        }
        config.oom_score_adj = self.oom_score_adj.unwrap_or(0);
        if let Some(s) = &self.stop_signal {
            config.stop_signal = s.clone();
        }
        config.stop_timeout = self.stop_timeout;
        config.domainname = self.domainname.clone().unwrap_or_default();
    }

    /// Put them in a `POST /containers/create` body, where docker's CLI
    /// sends them (`-H`; the labels go with `-l`'s, see [`Self::labels`]).
    pub fn api_fields(&self, body: &mut serde_json::Value) {
        let mut config = ContainerConfig::default();
        self.apply(&mut config);
        body["StopSignal"] = config.stop_signal.into();
        body["StopTimeout"] = config.stop_timeout.into();
        body["Domainname"] = config.domainname.into();
        let host = &mut body["HostConfig"];
        host["GroupAdd"] = serde_json::json!(config.group_add);
        host["Sysctls"] = serde_json::json!(config.sysctls);
        host["OomScoreAdj"] = config.oom_score_adj.into();
    }

    /// The labels: each `--label-file`'s lines, then `-l`'s, so that `-l`
    /// wins (docker's `ReadKVStrings`).
    pub fn labels(&self, flags: &[String]) -> Result<Vec<String>> {
        let mut labels = Vec::new();
        for file in &self.label_file {
            labels.extend(read_label_file(file)?);
        }
        labels.extend(flags.iter().cloned());
        Ok(labels)
    }
}

/// One `--label-file`, read as docker's CLI reads it (`parseKeyValueFile`):
/// a line each, blank lines and `#` comments skipped, no whitespace in a
/// key and no empty key.
fn read_label_file(file: &Path) -> Result<Vec<String>> {
    // Go's words for a file it cannot open.
    let text = match fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("open {}: no such file or directory", file.display())
        }
        Err(e) => bail!("open {}: {e}", file.display()),
    };
    let mut lines = Vec::new();
    for line in text.trim_start_matches('\u{feff}').lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line.split_once('=').map_or(line, |(k, _)| k);
        if key.is_empty() {
            bail!(
                "invalid env file ({}): no variable name on line '{line}'",
                file.display()
            );
        }
        if key.contains(char::is_whitespace) {
            bail!(
                "invalid env file ({}): variable '{key}' contains whitespaces",
                file.display()
            );
        }
        lines.push(line.to_string());
    }
    Ok(lines)
}

/// `--cidfile`: made before the container, as docker's client makes it,
/// refused if it is there already; it gets the ID once the container
/// exists, and is removed if it never does.
pub struct CidFile {
    path: Option<PathBuf>,
    written: bool,
}

impl CidFile {
    /// Create the (empty) file, if one was asked for.
    pub fn create(path: Option<&Path>) -> Result<CidFile> {
        let Some(path) = path else {
            return Ok(CidFile {
                path: None,
                written: false,
            });
        };
        if path.exists() {
            bail!(
                "container ID file found, make sure the other container isn't running or delete {}",
                path.display()
            );
        }
        fs::File::create(path).with_context(|| "failed to create the container ID file")?;
        Ok(CidFile {
            path: Some(path.to_path_buf()),
            written: false,
        })
    }

    /// Write the new container's ID.
    pub fn write(&mut self, id: &str) -> Result<()> {
        if let Some(path) = &self.path {
            fs::write(path, id).with_context(|| {
                format!(
                    "failed to write the container ID to the file {}",
                    path.display()
                )
            })?;
            self.written = true;
        }
        Ok(())
    }
}

impl Drop for CidFile {
    fn drop(&mut self) {
        if let (Some(path), false) = (&self.path, self.written) {
            let _ = fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctls_and_ints_are_refused_in_the_docker_clis_words() {
        assert!(sysctl("net.ipv4.ip_forward=1").is_ok());
        assert!(sysctl("kernel.shmmax=1").is_ok());
        assert_eq!(
            sysctl("kernel.pid_max=1").unwrap_err().0,
            "sysctl 'kernel.pid_max=1' is not allowed"
        );
        assert!(sysctl("net.ipv4.ip_forward").is_err());
        assert_eq!(go_int("-5").unwrap(), -5);
        assert_eq!(
            go_int("x").unwrap_err().0,
            "strconv.ParseInt: parsing \"x\": invalid syntax"
        );
    }
}
