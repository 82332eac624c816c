//! Networks and volumes: list, inspect, create, delete, prune, each the
//! core call of `dockyard network ...` / `dockyard volume ...`, in docker's
//! JSON and with docker's statuses (404 for none such, 403 for a network
//! that may not go, 409 for one in use or a name taken).
//!
//! Creating a bridge network makes a real bridge (lab 05) in the network
//! namespace the service runs in, as dockerd makes one in its host's.

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::{json, Value};

use super::http::{Request, Response};
use super::routes::BadRequest;
use super::{lock, Service};
use dockyard::state::Status;
use dockyard::{container, network};

/// Route `/networks...` and `/volumes...`; None: no route here.
pub fn route(service: &Service, req: &Request) -> Option<Result<Response>> {
    let m = req.method.as_str();
    let p = req.path.as_str();
    if let Some(rest) = p.strip_prefix("/networks") {
        return match (m, rest) {
            ("GET", "" | "/") => Some(network_list(service, req)),
            ("POST", "/create") => Some(network_create(service, req)),
            ("POST", "/prune") => Some(network_prune(service)),
            ("POST", r) if r.ends_with("/connect") || r.ends_with("/disconnect") => {
                let (net, verb) = r.strip_prefix('/')?.rsplit_once('/')?;
                Some(network_connect(service, req, net, verb == "connect"))
            }
            ("GET", r) => Some(network_inspect(service, r.strip_prefix('/')?)),
            ("DELETE", r) => Some(network_remove(service, r.strip_prefix('/')?)),
            _ => None,
        };
    }
    if let Some(rest) = p.strip_prefix("/volumes") {
        return match (m, rest) {
            ("GET", "" | "/") => Some(volume_list(service, req)),
            ("POST", "/create") => Some(volume_create(service, req)),
            ("POST", "/prune") => Some(volume_prune(service, req)),
            ("GET", r) => Some(volume_inspect(service, r.strip_prefix('/')?)),
            ("DELETE", r) => Some(volume_remove(service, req, r.strip_prefix('/')?)),
            _ => None,
        };
    }
    None
}

fn empty(status: u16) -> Response {
    Response {
        status,
        content_type: "",
        body: Vec::new(),
    }
}

/// docker's `filters` query: `{"name":["x"]}` or `{"name":{"x":true}}`, as
/// (key, value) pairs.
fn filters(req: &Request) -> Result<Vec<(String, String)>> {
    let Some(f) = req.query("filters").filter(|f| !f.is_empty()) else {
        return Ok(Vec::new());
    };
    let v: Value =
        serde_json::from_str(f).map_err(|e| BadRequest(format!("invalid filter: {e}")))?;
    let mut out = Vec::new();
    for (k, vals) in v.as_object().into_iter().flatten() {
        let words: Vec<String> = match vals {
            Value::Array(a) => a
                .iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect(),
            Value::Object(o) => o.keys().cloned().collect(),
            _ => return Err(BadRequest(format!("invalid filter {k:?}")).into()),
        };
        out.extend(words.into_iter().map(|w| (k.clone(), w)));
    }
    Ok(out)
}

fn body(req: &Request) -> Result<Value> {
    if req.body.is_empty() {
        return Ok(json!({}));
    }
    Ok(serde_json::from_slice(&req.body).map_err(|e| BadRequest(format!("invalid JSON: {e}")))?)
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
        .collect()
}

/// `GET /networks?filters=...`: the inspect document of each network.
fn network_list(service: &Service, req: &Request) -> Result<Response> {
    let fs = filters(req)?
        .iter()
        .map(|(k, v)| network::NetworkFilter::new(k, v).map_err(|e| BadRequest(e.to_string())))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut out = Vec::new();
    for n in network::list(service.engine, &fs)? {
        out.push(network::inspect(service.engine, &n.name)?);
    }
    Ok(Response::json(200, &Value::Array(out)))
}

/// A network's error as docker's status: none such 404, a predefined one
/// or one with members 403, a name taken 409.
fn network_error(e: anyhow::Error) -> Result<Response> {
    let msg = format!("{e:#}");
    let status = if msg.contains("not found") {
        404
    } else if msg.contains("pre-defined") || msg.contains("active endpoints") {
        403
    } else if msg.contains("already exists") {
        409
    } else {
        return Err(e);
    };
    Ok(Response::error(status, &msg))
}

/// `GET /networks/ID`: by name, ID or ID prefix (the docker CLI sends the
/// ID it listed, for the predefined networks too).
fn network_inspect(service: &Service, id: &str) -> Result<Response> {
    let by_id = network::list(service.engine, &[])?
        .into_iter()
        .find(|n| n.name != id && !id.is_empty() && n.id.starts_with(id));
    let name = by_id.map_or_else(|| id.to_string(), |n| n.name);
    match network::inspect(service.engine, &name) {
        Ok(doc) => Ok(Response::json(200, &doc)),
        Err(e) => network_error(e),
    }
}

/// `POST /networks/create`: `{"Id", "Warning"}`, 201.
fn network_create(service: &Service, req: &Request) -> Result<Response> {
    let b = body(req)?;
    let name = b["Name"].as_str().unwrap_or_default();
    if name.is_empty() {
        return Err(BadRequest("network name must not be empty".into()).into());
    }
    let ipam = b["IPAM"]["Config"].as_array().cloned().unwrap_or_default();
    if ipam.len() > 1 {
        return Err(
            BadRequest("only one IPAM config (one IPv4 subnet) is supported".into()).into(),
        );
    }
    let first = ipam.first().cloned().unwrap_or(Value::Null);
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let opts = network::CreateOptions {
        name: name.to_string(),
        driver: text(&b["Driver"]).unwrap_or_else(|| "bridge".into()),
        subnet: text(&first["Subnet"]),
        gateway: text(&first["Gateway"]),
        labels: string_map(&b["Labels"]),
        options: string_map(&b["Options"]),
        internal: b["Internal"].as_bool().unwrap_or(false),
    };
    match network::create(service.engine, &opts) {
        Ok(id) => Ok(Response::json(201, &json!({ "Id": id, "Warning": "" }))),
        Err(e) if format!("{e:#}").contains("plugin") => {
            Ok(Response::error(404, &format!("{e:#}")))
        }
        Err(e) => network_error(e),
    }
}

fn network_remove(service: &Service, id: &str) -> Result<Response> {
    match network::remove(service.engine, id) {
        Ok(()) => Ok(empty(204)),
        Err(e) => network_error(e),
    }
}

/// `POST /networks/NET/connect {"Container": C, "EndpointConfig":
/// {"Aliases": [...], "IPAMConfig": {"IPv4Address": IP}}}` and
/// `/disconnect {"Container": C}`: the core's `network connect` and
/// `disconnect`. 200 with no body, as dockerd answers.
fn network_connect(service: &Service, req: &Request, net: &str, connect: bool) -> Result<Response> {
    let b = body(req)?;
    let Some(c) = b["Container"].as_str().filter(|c| !c.is_empty()) else {
        return Err(BadRequest("container is required".into()).into());
    };
    if let Some(answer) = replug_primary(service, &b, net, c, connect)? {
        return Ok(answer);
    }
    let done = if connect {
        let ep = &b["EndpointConfig"];
        let opts = container::ConnectOptions {
            aliases: ep["Aliases"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect(),
            ip: ep["IPAMConfig"]["IPv4Address"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        };
        container::connect_network(service.engine, net, c, &opts)
    } else {
        container::disconnect_network(service.engine, net, c)
    };
    match done {
        Ok(()) => Ok(empty(200)),
        Err(e) => network_error(e),
    }
}

/// A stopped container taken off the network it was created for, and put
/// back (what docker-compose 1.x does to every container it creates, to
/// set its aliases: disconnect, then connect with `Aliases`).
///
/// Docker allows both on a stopped container; dockyard's core disconnects
/// a stopped container only from networks that `network connect` added,
/// because its first network is part of its configuration (`--network`).
/// So here the disconnect sets that configuration to `none` (truthfully:
/// the container is then on no network) and remembers which network it
/// was; a connect to a stopped container so unplugged makes the network
/// its first one again, with the new aliases and address. None: not this
/// case, the core's calls apply.
fn replug_primary(
    service: &Service,
    b: &Value,
    net: &str,
    c: &str,
    connect: bool,
) -> Result<Option<Response>> {
    let e = service.engine;
    let r = e.containers.reconcile(e.containers.resolve(c)?)?;
    if matches!(
        r.state.status,
        Status::Running | Status::Paused | Status::Restarting
    ) {
        return Ok(None);
    }
    let cfg = container::config_of(&r)?;
    let name = match network::inspect(e, net) {
        Ok(n) => n["Name"].as_str().unwrap_or(net).to_string(),
        Err(_) => return Ok(None),
    };
    let mut unplugged = lock(&service.unplugged);
    if !connect {
        if cfg.network_mode != name || cfg.connected.iter().any(|x| x.network == name) {
            return Ok(None);
        }
        save_config(service, &r.id, |c| {
            c.network_mode = "none".into();
            c.network_aliases.clear();
            c.ip = None;
        })?;
        unplugged.insert(r.id.clone(), name);
        return Ok(Some(empty(200)));
    }
    if cfg.network_mode != "none" || !unplugged.contains_key(&r.id) {
        return Ok(None);
    }
    let ep = &b["EndpointConfig"];
    let aliases: Vec<String> = ep["Aliases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    let ip = ep["IPAMConfig"]["IPv4Address"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    save_config(service, &r.id, |c| {
        c.network_mode = name.clone();
        c.network_aliases = aliases;
        c.ip = ip;
    })?;
    unplugged.remove(&r.id);
    Ok(Some(empty(200)))
}

/// Change container `id`'s stored configuration, under the records' lock.
fn save_config(
    service: &Service,
    id: &str,
    change: impl FnOnce(&mut container::ContainerConfig),
) -> Result<()> {
    let e = service.engine;
    let guard = e.containers.lock()?;
    let mut r = e.containers.load(id)?;
    let mut c = container::config_of(&r)?;
    change(&mut c);
    r.config = serde_json::to_value(&c)?;
    e.containers.save(&guard, &r)
}

fn network_prune(service: &Service) -> Result<Response> {
    let deleted = network::prune(service.engine)?;
    Ok(Response::json(200, &json!({ "NetworksDeleted": deleted })))
}

/// Whether volume `v` passes docker's volume filters: `name` (a part of
/// it), `label=K` or `label=K=V`, `dangling=true|false` (used by no
/// container), `driver=local`.
fn volume_matches(
    service: &Service,
    v: &dockyard::volumes::Volume,
    filters: &[(String, String)],
) -> Result<bool> {
    for (k, want) in filters {
        let ok = match k.as_str() {
            "name" => v.name.contains(want.as_str()),
            "label" => match want.split_once('=') {
                Some((k, val)) => v.labels.get(k).is_some_and(|l| l == val),
                None => v.labels.contains_key(want),
            },
            "dangling" => {
                let unused = container::volume_users(service.engine, &v.name)?.is_empty();
                unused == matches!(want.as_str(), "true" | "1")
            }
            "driver" => want == "local",
            // `all` is prune's, read by the caller.
            "all" => true,
            other => {
                return Err(BadRequest(format!("invalid filter '{other}'")).into());
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `GET /volumes?filters=...`: `{"Volumes": [...], "Warnings": []}`.
fn volume_list(service: &Service, req: &Request) -> Result<Response> {
    let vols = &service.engine.volumes;
    let filters = filters(req)?;
    let mut list: Vec<Value> = Vec::new();
    for v in vols.list()? {
        if volume_matches(service, &v, &filters)? {
            list.push(vols.inspect(&v));
        }
    }
    Ok(Response::json(
        200,
        &json!({ "Volumes": list, "Warnings": [] }),
    ))
}

/// `POST /volumes/create`: the volume's document, 201 (an existing one is
/// answered as it is, as docker does).
fn volume_create(service: &Service, req: &Request) -> Result<Response> {
    let b = body(req)?;
    if let Some(d) = b["Driver"]
        .as_str()
        .filter(|d| !d.is_empty() && *d != "local")
    {
        return Ok(Response::error(404, &format!("plugin \"{d}\" not found")));
    }
    if b["DriverOpts"].as_object().is_some_and(|o| !o.is_empty()) {
        return Err(BadRequest("volume driver options are not supported".into()).into());
    }
    let name = match b["Name"].as_str().filter(|n| !n.is_empty()) {
        Some(n) => n.to_string(),
        None => dockyard::volumes::random_name()?,
    };
    let vols = &service.engine.volumes;
    let v = vols
        .create(&name, string_map(&b["Labels"]), false)
        .map_err(|e| BadRequest(format!("{e:#}")))?;
    Ok(Response::json(201, &vols.inspect(&v)))
}

/// `POST /volumes/prune?filters={"all":["true"]}`: the volumes no
/// container uses, only anonymous ones unless `all` (docker's rule since
/// API 1.42), the label filters applied. The same core call as `dockyard
/// volume prune`, one volume at a time so that the filters can choose.
fn volume_prune(service: &Service, req: &Request) -> Result<Response> {
    let filters = filters(req)?;
    let all = filters
        .iter()
        .any(|(k, v)| k == "all" && matches!(v.as_str(), "true" | "1"));
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    for v in service.engine.volumes.list()? {
        let chosen = (all || v.anonymous) && volume_matches(service, &v, &filters)?;
        if !chosen || !container::volume_users(service.engine, &v.name)?.is_empty() {
            continue;
        }
        reclaimed += dir_size(&service.engine.volumes.data(&v.name));
        service.engine.volumes.remove(&v.name)?;
        deleted.push(v.name);
    }
    Ok(Response::json(
        200,
        &json!({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed}),
    ))
}

/// Bytes under `p` (not following symlinks).
pub fn dir_size(p: &std::path::Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(p)
        .map(|rd| rd.flatten().map(|e| dir_size(&e.path())).sum())
        .unwrap_or(0)
}

fn volume_inspect(service: &Service, name: &str) -> Result<Response> {
    let vols = &service.engine.volumes;
    match vols.get(name) {
        Ok(v) => Ok(Response::json(200, &vols.inspect(&v))),
        Err(e) => Ok(Response::error(404, &format!("{e:#}"))),
    }
}

/// `DELETE /volumes/NAME?force=1`: 204; 404 none such, 409 in use.
fn volume_remove(service: &Service, req: &Request, name: &str) -> Result<Response> {
    match container::remove_volume(service.engine, name, req.flag("force")) {
        Ok(()) => Ok(empty(204)),
        Err(e) => {
            let msg = format!("{e:#}");
            if msg.contains("no such volume") {
                Ok(Response::error(404, &msg))
            } else if msg.contains("in use") {
                Ok(Response::error(409, &msg))
            } else {
                Err(e)
            }
        }
    }
}
