//! The process flags in `POST /containers/create`'s body, as docker's CLI
//! sends them: `HostConfig.GroupAdd`, `Sysctls` and `OomScoreAdj`,
//! `Config.StopSignal`, `StopTimeout` (null unless `--stop-timeout`) and
//! `Domainname`. The engine's create checks them as for `dockyard run`.

use serde_json::Value;

use dockyard::container::ContainerConfig;

/// Read them from the body `b` into `config`.
pub fn read(b: &Value, config: &mut ContainerConfig) {
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
}
