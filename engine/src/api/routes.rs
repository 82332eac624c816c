//! Routing: method and path to a handler, the API version check, and
//! docker's error shapes.
//!
//! Every route exists twice, `/v1.50/containers/json` and
//! `/containers/json`: the version prefix (any from 1.24 to 1.50) is split
//! off by the `http` module. An error is always `{"message": "..."}` with
//! docker's status: 400 for a bad request (malformed JSON, a bad filter),
//! 404 for no such container or image, 409 for a conflict (a name in use, a
//! running container removed), 500 for the rest.
//!
//! The system endpoints are here too: `_ping` (what every docker command
//! sends first, for the `Api-Version` header), `version` and `info`.

use std::os::unix::net::UnixStream;

use anyhow::Result;
use serde_json::{json, Value};

use super::http::{write_response, Request, Response};
use super::{archive, build, containers, df, exec, images, netvol, registry, stats, verbs};
use super::{Service, API_VERSION, MIN_API_VERSION};
use dockyard::system;

/// What became of the connection.
pub enum Outcome {
    /// Answered; the connection may carry another request.
    Done,
    /// A handler took the connection over (attach): no more HTTP on it.
    TakenOver,
}

/// A handler's answer: a complete response, or the handler wrote its own
/// (streams: `wait`, `logs`, `attach`).
pub enum Reply {
    Full(Response),
    Streamed(Outcome),
}

/// Answer one request on `conn`. `early` holds bytes the client sent after
/// the request, already read into our buffer (an attach's first input).
pub fn handle(
    service: &Service,
    req: &Request,
    conn: &UnixStream,
    early: &[u8],
) -> Result<Outcome> {
    let reply = match check_version(req) {
        Some(r) => Reply::Full(r),
        None => route(service, req, conn, early),
    };
    match reply {
        Reply::Full(resp) => {
            write_response(&mut &*conn, &resp, req.method == "HEAD")?;
            Ok(Outcome::Done)
        }
        Reply::Streamed(o) => Ok(o),
    }
}

/// Refuse versions outside 1.24..=1.50, with dockerd's messages.
fn check_version(req: &Request) -> Option<Response> {
    let v = req.version.as_deref()?;
    let num = |s: &str| -> (u32, u32) {
        let (a, b) = s.split_once('.').unwrap_or((s, "0"));
        (a.parse().unwrap_or(0), b.parse().unwrap_or(0))
    };
    if num(v) < num(MIN_API_VERSION) {
        return Some(Response::error(
            400,
            &format!(
                "client version {v} is too old. Minimum supported API version is \
                 {MIN_API_VERSION}, please upgrade your client to a newer version"
            ),
        ));
    }
    if num(v) > num(API_VERSION) {
        return Some(Response::error(
            400,
            &format!(
                "client version {v} is too new. Maximum supported API version is {API_VERSION}"
            ),
        ));
    }
    None
}

/// The path's segments after a prefix: `/containers/ID/json` with
/// `containers` -> `["ID", "json"]`.
fn segments<'a>(path: &'a str, prefix: &str) -> Option<Vec<&'a str>> {
    let rest = path.strip_prefix(prefix)?.strip_prefix('/')?;
    Some(rest.split('/').collect())
}

fn route(service: &Service, req: &Request, conn: &UnixStream, early: &[u8]) -> Reply {
    let m = req.method.as_str();
    let full = |r: Result<Response>| Reply::Full(r.unwrap_or_else(|e| error_response(&e)));
    match (m, req.path.as_str()) {
        ("GET" | "HEAD", "/_ping") => return Reply::Full(ping()),
        ("GET", "/version") => return Reply::Full(Response::json(200, &version())),
        ("GET", "/info") => return full(info(service)),
        ("GET", "/system/df") => return full(df::df(service)),
        ("GET", "/images/json") => return full(images::list(service, req)),
        ("POST", "/build") => return streamed(build::build(service, req, conn)),
        ("POST", "/commit") => return full(images::commit(service, req)),
        ("POST", "/auth") => return full(registry::auth(service, req)),
        ("GET", "/containers/json") => return full(containers::list(service, req)),
        ("POST", "/containers/create") => return full(containers::create(service, req)),
        ("POST", "/containers/prune") => return full(verbs::prune(service, req)),
        ("GET", "/events") => return streamed(super::events::stream(service, req, conn)),
        _ => {}
    }
    if let Some(seg) = segments(&req.path, "/containers") {
        match (m, seg.as_slice()) {
            ("GET", [id, "json"]) => return full(containers::inspect(service, id)),
            ("POST", [id, "start"]) => return full(containers::start(service, id)),
            ("POST", [id, "stop"]) => return full(containers::stop(service, req, id)),
            ("POST", [id, "kill"]) => return full(containers::kill(service, req, id)),
            ("DELETE", [id]) => return full(containers::remove(service, req, id)),
            ("POST", [id, "wait"]) => return streamed(containers::wait(service, req, conn, id)),
            ("GET", [id, "logs"]) => return streamed(containers::logs(service, req, conn, id)),
            ("POST", [id, "restart"]) => return full(verbs::restart(service, req, id)),
            ("POST", [id, "pause"]) => return full(verbs::pause(service, id, true)),
            ("POST", [id, "unpause"]) => return full(verbs::pause(service, id, false)),
            ("GET", [id, "top"]) => return full(verbs::top(service, req, id)),
            ("POST", [id, "rename"]) => return full(verbs::rename(service, req, id)),
            ("GET", [id, "changes"]) => return full(verbs::changes(service, id)),
            ("POST", [id, "exec"]) => return full(exec::create(service, req, id)),
            ("HEAD", [id, "archive"]) => return streamed(archive::head(service, req, conn, id)),
            ("GET", [id, "archive"]) => return streamed(archive::get(service, req, conn, id)),
            ("PUT", [id, "archive"]) => return full(archive::put(service, req, id)),
            ("GET", [id, "export"]) => return full(archive::export(service, id)),
            ("GET", [id, "stats"]) => return streamed(stats::stats(service, req, conn, id)),
            ("POST", [id, "resize"]) => return full(verbs::resize(service, req, id)),
            ("POST", [id, "update"]) => return full(verbs::update(service, req, id)),
            ("POST", [id, "attach"]) => {
                return streamed(containers::attach(service, req, conn, id, early))
            }
            _ => {}
        }
    }
    if let Some(r) = netvol::route(service, req) {
        return full(r);
    }
    if let Some(r) = images::stream_route(service, req, conn) {
        return streamed(r);
    }
    if let Some(r) = images::route(service, req) {
        return full(r);
    }
    if let Some(seg) = segments(&req.path, "/exec") {
        match (m, seg.as_slice()) {
            ("GET", [id, "json"]) => return full(exec::inspect(service, id)),
            ("POST", [id, "resize"]) => return full(exec::resize(service, req, id)),
            ("POST", [id, "start"]) => return streamed(exec::start(service, req, conn, id, early)),
            _ => {}
        }
    }
    Reply::Full(Response::error(404, "page not found"))
}

/// A streaming handler's result: its error as a response when it failed
/// before it wrote anything.
fn streamed(r: Result<Reply>) -> Reply {
    r.unwrap_or_else(|e| Reply::Full(error_response(&e)))
}

/// An engine error as docker's status and `{"message"}`. The core's errors
/// carry docker's own texts ("No such container: x"), which the CLI prints
/// as they are; the status is read from them.
pub fn error_response(e: &anyhow::Error) -> Response {
    let msg = format!("{e:#}");
    let status = if let Some(b) = e.downcast_ref::<BadRequest>() {
        return Response::error(400, &b.0);
    } else if msg.contains("No such container")
        || msg.contains("No such image")
        || msg.contains("No such exec instance")
    {
        404
    } else if msg.contains("Unable to find image") {
        // What the core says of an image it does not have; docker's API says
        // "No such image", and the CLI then offers to pull (which this
        // service refuses: it never pulls behind anyone's back).
        return Response::error(404, &format!("No such image: {}", image_of(&msg)));
    } else if msg.contains("already in use")
        || msg.contains("is already running")
        || msg.contains("cannot remove container")
        || msg.contains("is not running")
        || msg.contains("is paused")
        || msg.starts_with("conflict:")
    {
        409
    } else if msg.contains("invalid") || msg.contains("Invalid") {
        400
    } else {
        500
    };
    Response::error(status, &msg)
}

/// The image named in "Unable to find image 'busybox' locally: ...".
fn image_of(msg: &str) -> String {
    let name = msg.split('\'').nth(1).unwrap_or("");
    if name.contains(':') || name.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// A client's mistake: answered 400 with this message.
#[derive(Debug)]
pub struct BadRequest(pub String);

impl std::fmt::Display for BadRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadRequest {}

/// docker's `filters` query: a JSON object of lists, `{"status":["exited"]}`,
/// or the older object of flags, `{"status":{"exited":true}}`; as (key,
/// value) pairs in key order. Malformed JSON is the client's mistake (400).
pub fn filter_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let Some(raw) = raw.filter(|f| !f.is_empty()) else {
        return Ok(pairs);
    };
    let parsed: std::collections::BTreeMap<String, Value> =
        serde_json::from_str(raw).map_err(|e| BadRequest(format!("invalid filter: {e}")))?;
    for (key, values) in parsed {
        let values: Vec<String> = match values {
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            Value::Object(o) => o.keys().cloned().collect(),
            _ => Vec::new(),
        };
        pairs.extend(values.into_iter().map(|v| (key.clone(), v)));
    }
    Ok(pairs)
}

/// `_ping`: "OK", and the headers every response carries (`Api-Version`
/// among them: the CLI picks its version from it).
fn ping() -> Response {
    Response {
        status: 200,
        content_type: "text/plain; charset=utf-8",
        body: b"OK".to_vec(),
    }
}

/// `GET /version`: the server half of `docker version`.
fn version() -> Value {
    let uname = nix::sys::utsname::uname().ok();
    let kernel = uname
        .as_ref()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let v = env!("CARGO_PKG_VERSION");
    json!({
        "Platform": {"Name": "Dockyard"},
        "Components": [{
            "Name": "Engine",
            "Version": v,
            "Details": {
                "ApiVersion": API_VERSION,
                "MinAPIVersion": MIN_API_VERSION,
                "Os": "linux",
                "Arch": arch,
                "KernelVersion": kernel,
                "Experimental": "false",
            }
        }, {
            // The parts that run containers, as dockerd lists containerd,
            // runc and docker-init: here the per-container monitor (the
            // role of containerd's shim), and the assembler that sets up
            // namespaces, cgroups and the root filesystem (runc's).
            "Name": "dockyard-monitor",
            "Version": v,
            "Details": {"GitCommit": ""},
        }, {
            "Name": "lab03 assembler (runtime)",
            "Version": v,
            "Details": {"GitCommit": ""},
        }],
        "Version": v,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": arch,
        "KernelVersion": kernel,
        "BuildTime": "",
    })
}

/// `GET /info`: the core's `info` (the same as `dockyard info`), with the
/// fields the docker CLI's template reads that dockyard has no notion of
/// (swarm, plugins, runtimes) given their "none" values.
fn info(service: &Service) -> Result<Response> {
    let info = system::info(service.engine)?;
    let mut v = serde_json::to_value(&info)?;
    let extra = json!({
        "ID": "",
        "Swarm": {"LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "",
                  "ControlAvailable": false, "RemoteManagers": null},
        "Runtimes": {"dockyard": {"path": "dockyard"}},
        "DefaultRuntime": "dockyard",
        "IndexServerAddress": "https://index.docker.io/v1/",
        "ExperimentalBuild": false,
        "Warnings": [],
    });
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    Ok(Response::json(200, &v))
}
