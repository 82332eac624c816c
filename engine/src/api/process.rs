//! The process flags in `POST /containers/create`'s body, as docker's CLI
//! sends them: `HostConfig.GroupAdd`, `Sysctls` and `OomScoreAdj`,
//! `Config.StopSignal`, `StopTimeout` (null unless `--stop-timeout`) and
//! `Domainname`. What dockerd refuses at create is a 400 here, in its
//! words; the engine's create checks the rest as for `dockyard run`.

use anyhow::{bail, Result};
use serde_json::Value;

use dockyard::container::{self, ContainerConfig};

use super::routes::BadRequest;

/// Read them from the body `b` into `config`.
pub fn read(b: &Value, config: &mut ContainerConfig) -> Result<()> {
    let h = &b["HostConfig"];
    config.group_add = h["GroupAdd"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g.as_str().map(str::to_string))
        .collect();
    config.sysctls = h["Sysctls"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    config.oom_score_adj = h["OomScoreAdj"].as_i64().unwrap_or(0);
    config.stop_signal = b["StopSignal"].as_str().unwrap_or_default().to_string();
    config.stop_timeout = b["StopTimeout"].as_i64();
    config.domainname = b["Domainname"].as_str().unwrap_or_default().to_string();
    if !(-1000..=1000).contains(&config.oom_score_adj) {
        bail!(BadRequest(format!(
            "Invalid value {}, range for oom score adj is [-1000, 1000]",
            config.oom_score_adj
        )));
    }
    if !config.stop_signal.is_empty() && container::parse_signal(&config.stop_signal).is_err() {
        bail!(BadRequest(format!(
            "invalid signal: {}",
            config.stop_signal
        )));
    }
    Ok(())
}
