//! The smaller container verbs: restart, pause, unpause, top, rename,
//! changes, prune. Each is one call into the engine core, the same one the
//! CLI's command makes; what is here is docker's JSON and status codes
//! around it.
//!
//! `restart` starts a container again, which forks a monitor: like `start`,
//! it goes through the starter (see that module), never from this thread.

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::http::{Request, Response};
use super::routes::BadRequest;
use super::{lock, Service};
use dockyard::container;
use dockyard::state::{Record, Status};

fn resolve(service: &Service, id: &str) -> Result<Record> {
    let e = service.engine;
    e.containers.reconcile(e.containers.resolve(id)?)
}

fn empty(status: u16) -> Response {
    Response {
        status,
        content_type: "",
        body: Vec::new(),
    }
}

/// `POST /containers/ID/restart?t=N&signal=SIG`: stop (if it runs), then
/// start detached, as `dockyard restart` does.
pub fn restart(service: &Service, req: &Request, id: &str) -> Result<Response> {
    let r = resolve(service, id)?;
    // No `t`: the container's --stop-timeout, else 10 (see `stop_wait`).
    let timeout = match req.query("t").filter(|t| !t.is_empty()) {
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| BadRequest(format!("invalid value for t: {t:?}")))?,
        ),
        None => None,
    };
    let sig = req
        .query("signal")
        .filter(|s| !s.is_empty())
        .map(container::parse_signal)
        .transpose()
        .map_err(|e| BadRequest(e.to_string()))?;
    if matches!(
        r.state.status,
        Status::Running | Status::Paused | Status::Restarting
    ) {
        container::stop(service.engine, &r, timeout, sig)?;
    }
    lock(&service.starter).start(&r.id, false, false)?;
    Ok(empty(204))
}

/// `POST /containers/ID/pause` and `/unpause`: freeze or thaw its cgroup.
pub fn pause(service: &Service, id: &str, frozen: bool) -> Result<Response> {
    let r = resolve(service, id)?;
    if frozen {
        container::pause(service.engine, &r)?;
    } else {
        container::unpause(service.engine, &r)?;
    }
    Ok(empty(204))
}

/// `GET /containers/ID/top`: `ps -ef`'s titles and rows. Other `ps_args`
/// are refused rather than ignored: the core reads /proc itself and has
/// only `-ef`'s columns.
pub fn top(service: &Service, req: &Request, id: &str) -> Result<Response> {
    if let Some(args) = req
        .query("ps_args")
        .filter(|a| !a.is_empty() && *a != "-ef")
    {
        return Err(BadRequest(format!("ps_args {args:?} is not supported (only -ef)")).into());
    }
    let r = resolve(service, id)?;
    if !matches!(r.state.status, Status::Running | Status::Paused) {
        return Ok(Response::error(
            409,
            &format!("container {} is not running", r.id),
        ));
    }
    let top = container::top(&r)?;
    Ok(Response::json(
        200,
        &json!({ "Titles": top.titles, "Processes": top.processes }),
    ))
}

/// `POST /containers/ID/rename?name=NEW`.
pub fn rename(service: &Service, req: &Request, id: &str) -> Result<Response> {
    let Some(new) = req.query("name").filter(|n| !n.is_empty()) else {
        return Err(BadRequest("Neither old nor new names may be empty".into()).into());
    };
    container::rename(service.engine, id, new)?;
    Ok(empty(204))
}

/// `GET /containers/ID/changes`: `[{"Path", "Kind"}]`, Kind 0 changed,
/// 1 added, 2 deleted (docker's numbers for `C`, `A`, `D`).
pub fn changes(service: &Service, id: &str) -> Result<Response> {
    let r = resolve(service, id)?;
    let list: Vec<Value> = dockyard::image::container_changes(service.engine, &r.id)?
        .into_iter()
        .map(|c| {
            let kind = match c.kind {
                'C' => 0,
                'A' => 1,
                _ => 2,
            };
            json!({ "Path": c.path, "Kind": kind })
        })
        .collect();
    Ok(Response::json(200, &Value::Array(list)))
}

/// `POST /containers/prune`: every stopped container. Filters (`until`,
/// `label`) are not implemented, so a request with any is refused rather
/// than allowed to remove more than it asked for.
pub fn prune(service: &Service, req: &Request) -> Result<Response> {
    if let Some(f) = req.query("filters") {
        let v: Value =
            serde_json::from_str(f).map_err(|e| BadRequest(format!("invalid filter: {e}")))?;
        if v.as_object().is_some_and(|o| !o.is_empty()) {
            return Err(BadRequest(format!("prune filters are not supported yet: {f}")).into());
        }
    }
    let deleted = container::prune_containers(service.engine, &mut |_| {})?;
    Ok(Response::json(
        200,
        &json!({ "ContainersDeleted": deleted, "SpaceReclaimed": 0 }),
    ))
}

/// `POST /containers/ID/resize?h=ROWS&w=COLS`: a TTY container's window
/// size, sent to its monitor as a resize frame (the monitor sets the
/// terminal's size, and the kernel sends the container SIGWINCH), as the
/// CLI's attach does when its own terminal changes.
pub fn resize(service: &Service, req: &Request, id: &str) -> Result<Response> {
    use std::io::Write;
    let r = resolve(service, id)?;
    let num = |k: &str| -> Result<u16> {
        req.query(k)
            .unwrap_or("0")
            .parse()
            .map_err(|_| BadRequest(format!("invalid {k}: {:?}", req.query(k))).into())
    };
    let (h, w) = (num("h")?, num("w")?);
    if !matches!(r.state.status, Status::Running | Status::Paused) {
        bail!("conflict: Container {} is not running", r.id);
    }
    if container::config_of(&r)?.tty {
        let mut data = h.to_be_bytes().to_vec();
        data.extend_from_slice(&w.to_be_bytes());
        let mut s = container::connect(service.engine, &r.id)?;
        s.write_all(&dockyard_monitor::attach::frame(
            dockyard_monitor::attach::RESIZE,
            &data,
        ))?;
    }
    Ok(empty(200))
}

/// `POST /containers/ID/update {"Memory": N, "NanoCpus": N, "CpuShares": N,
/// "MemorySwap": N, "PidsLimit": N, "CpusetCpus": "0-1", "CpusetMems": "0",
/// "CpuPeriod": N, "CpuQuota": N, "RestartPolicy": {...}}`: the core's
/// `update`, as `dockyard update` calls it.
pub fn update(service: &Service, req: &Request, id: &str) -> Result<Response> {
    let r = resolve(service, id)?;
    let b: Value =
        serde_json::from_slice(&req.body).map_err(|e| BadRequest(format!("invalid JSON: {e}")))?;
    let pos = |k: &str| b[k].as_i64().filter(|&v| v != 0);
    let text = |k: &str| b[k].as_str().filter(|v| !v.is_empty()).map(String::from);
    let restart = match b["RestartPolicy"]["Name"]
        .as_str()
        .filter(|n| !n.is_empty())
    {
        Some(name) => {
            let max = b["RestartPolicy"]["MaximumRetryCount"]
                .as_u64()
                .unwrap_or(0);
            // A count with another name is kept, for the core to refuse
            // as dockerd does ("can only be used with 'on-failure'").
            let text = if max > 0 {
                format!("{name}:{max}")
            } else {
                name.to_string()
            };
            Some(text.parse().map_err(|e| BadRequest(format!("{e:#}")))?)
        }
        None => None,
    };
    let u = container::Update {
        cpus: pos("NanoCpus").map(|n| n as f64 / 1e9),
        cpu_shares: pos("CpuShares").map(|n| n as u64),
        memory: pos("Memory").map(|n| n as u64),
        memory_swap: pos("MemorySwap"),
        pids: pos("PidsLimit"),
        restart,
        cpuset_cpus: text("CpusetCpus"),
        cpuset_mems: text("CpusetMems"),
        cpu_period: pos("CpuPeriod"),
        cpu_quota: pos("CpuQuota"),
        memory_reservation: pos("MemoryReservation").map(|n| n as u64),
        blkio_weight: pos("BlkioWeight").map(|n| u16::try_from(n).unwrap_or(u16::MAX)),
    };
    // As for create: the warnings are the client's to print.
    let warnings =
        container::update(service.engine, &r, &u).map_err(|e| BadRequest(format!("{e:#}")))?;
    Ok(Response::json(200, &json!({"Warnings": warnings})))
}
