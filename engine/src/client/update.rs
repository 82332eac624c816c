//! `update` through the service: `POST /containers/X/update` for each
//! container, with the body docker's CLI 28 sends, and its answer printed
//! as that CLI prints it.
//!
//! docker's CLI sends the whole `Resources` struct of its API types plus
//! the `RestartPolicy`, zero (or null) for what was not asked, whatever the
//! flags were; dockerd, and `api::verbs::update`, take a zero as "leave it":
//!
//! ```text
//! POST /v1.50/containers/web/update
//! {"CpuShares":0,"Memory":67108864,"NanoCpus":0,"CgroupParent":"","BlkioWeight":0, ...,
//!  "CpuPeriod":0,"CpuQuota":50000, ..., "PidsLimit":null, ...,
//!  "RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3}}
//! -> 200 {"Warnings": [...]}
//! ```
//!
//! The limits are parsed by the in-process command's own code
//! (`commands::container::update_limits`), so a value either front refuses
//! the other refuses too, in the same words, before anything is sent. The
//! restart policy is only split, as docker's CLI splits it: the service
//! judges it, and its refusal is the daemon's.

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

use super::http::Unreachable;
use super::{query_escape as q, Api};
use crate::cli::UpdateArgs;
use crate::commands::{self, Code};
use dockyard::container::Update;

/// `update [flags] C...`: each container's request; the names, then the
/// warnings, then the refusals, exit 1 if any (`warnings::update_each`).
pub fn update(api: &Api, a: &UpdateArgs) -> Result<Code> {
    let limits = commands::container::update_limits(a)?;
    if limits.is_empty() && a.restart.is_none() {
        return Err(commands::container::no_update_flags());
    }
    let body = body(&limits, restart_policy(a.restart.as_deref().unwrap_or(""))?);
    commands::warnings::update_each(
        &a.containers,
        |name| {
            let path = format!("/containers/{}/update", q(name));
            let answer = api.json("POST", &path, Some(&body))?;
            Ok(answer["Warnings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|w| w.as_str().map(String::from))
                .collect())
        },
        // No service, no point asking it about the next container.
        |e| e.is::<Unreachable>(),
    )
}

/// `--restart` as docker's CLI reads it (`opts.ParseRestartPolicy`): the
/// name and the count, split at the colon but not judged; which names
/// exist, and which take a count, is the daemon's to say (`Error response
/// from daemon: invalid restart policy ...`). Nothing given is `{"Name": ""}`,
/// which leaves the policy as it is.
fn restart_policy(policy: &str) -> Result<RestartPolicy> {
    let (name, count) = policy.split_once(':').unwrap_or((policy, ""));
    if policy.contains(':') && name.is_empty() {
        bail!("invalid restart policy format: no policy provided before colon");
    }
    let count = match count {
        "" => 0,
        n => n.parse().map_err(|_| {
            anyhow!("invalid restart policy format: maximum retry count must be an integer")
        })?,
    };
    Ok(RestartPolicy {
        name: name.to_string(),
        count,
    })
}

/// docker's `RestartPolicy` of its API types, as the CLI sends it.
struct RestartPolicy {
    name: String,
    count: i64,
}

/// docker's `container.UpdateConfig` for `u` and `restart`, every field
/// as its CLI sends it (captured from docker 28.2.2): 0, "" or null where
/// no flag was given.
fn body(u: &Update, restart: RestartPolicy) -> Value {
    json!({
        "CpuShares": u.cpu_shares.unwrap_or(0),
        "Memory": u.memory.unwrap_or(0),
        // docker's `NanoCPUs`: --cpus 1.5 is 1500000000.
        "NanoCpus": u.cpus.map_or(0, |c| (c * 1e9).round() as i64),
        "CgroupParent": "",
        "BlkioWeight": u.blkio_weight.unwrap_or(0),
        "BlkioWeightDevice": null,
        "BlkioDeviceReadBps": null,
        "BlkioDeviceWriteBps": null,
        "BlkioDeviceReadIOps": null,
        "BlkioDeviceWriteIOps": null,
        "CpuPeriod": u.cpu_period.unwrap_or(0),
        "CpuQuota": u.cpu_quota.unwrap_or(0),
        "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0,
        "CpusetCpus": u.cpuset_cpus.clone().unwrap_or_default(),
        "CpusetMems": u.cpuset_mems.clone().unwrap_or_default(),
        "Devices": null,
        "DeviceCgroupRules": null,
        "DeviceRequests": null,
        "MemoryReservation": u.memory_reservation.unwrap_or(0),
        "MemorySwap": u.memory_swap.unwrap_or(0),
        "MemorySwappiness": null,
        "OomKillDisable": null,
        // A pointer in docker's types: null unless --pids-limit is not 0.
        "PidsLimit": u.pids.filter(|&p| p != 0),
        "Ulimits": null,
        "CpuCount": 0,
        "CpuPercent": 0,
        "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0,
        "RestartPolicy": {"Name": restart.name, "MaximumRetryCount": restart.count},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body docker 28.2.2 sent for `update --cpu-quota 50000 -m 64m
    /// --restart on-failure:3` (captured through a logging proxy).
    #[test]
    fn the_body_is_what_docker_28_sends() {
        let docker: Value = serde_json::from_str(
            r#"{"CpuShares":0,"Memory":67108864,"NanoCpus":0,"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":null,"BlkioDeviceReadBps":null,"BlkioDeviceWriteBps":null,"BlkioDeviceReadIOps":null,"BlkioDeviceWriteIOps":null,"CpuPeriod":0,"CpuQuota":50000,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":null,"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":null,"OomKillDisable":null,"PidsLimit":null,"Ulimits":null,"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3}}"#,
        )
        .unwrap();
        let u = Update {
            memory: Some(64 << 20),
            cpu_quota: Some(50000),
            ..Default::default()
        };
        assert_eq!(body(&u, restart_policy("on-failure:3").unwrap()), docker);
    }
}
