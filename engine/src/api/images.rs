//! The image endpoints beyond the list: tag, history, inspect, delete,
//! prune. Each is the core call `dockyard tag`, `history`, `image inspect`,
//! `rmi` and `image prune` make, in docker's JSON.
//!
//! An image's name may hold slashes (`localhost:5000/team/app:1`), so the
//! path is not cut at every `/`: `/images/localhost:5000/team/app:1/json`
//! is the name up to the last segment, the verb.

use std::time::UNIX_EPOCH;

use anyhow::Result;
use serde_json::{json, Value};

use super::http::{Request, Response};
use super::routes::BadRequest;
use super::Service;
use dockyard::{distribution, image, state};

/// Route `/images/...` (after the fixed `/images/json`); None: no route.
pub fn route(service: &Service, req: &Request) -> Option<Result<Response>> {
    let rest = req.path.strip_prefix("/images/")?;
    let m = req.method.as_str();
    if m == "POST" && rest == "prune" {
        return Some(prune(service, req));
    }
    if m == "DELETE" {
        return Some(remove(service, req, rest));
    }
    let (name, verb) = rest.rsplit_once('/')?;
    match (m, verb) {
        ("GET", "json") => Some(inspect(service, name)),
        ("GET", "history") => Some(history(service, name)),
        ("POST", "tag") => Some(tag(service, req, name)),
        _ => None,
    }
}

/// `GET /images/NAME/json`: the document `dockyard image inspect` prints.
fn inspect(service: &Service, name: &str) -> Result<Response> {
    Ok(Response::json(200, &image::inspect(service.engine, name)?))
}

fn unix(t: Option<&str>) -> u64 {
    t.and_then(state::parse_rfc3339)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// `GET /images/NAME/history`: newest step first; the first carries the
/// image's ID and names, the others `<missing>` (docker's word for a step
/// that is no image of its own).
fn history(service: &Service, name: &str) -> Result<Response> {
    let (img, entries) = image::history(service.engine, name)?;
    let names = dockyard::image_lookup::names_of(service.engine, &img.config_digest)?;
    let list: Vec<Value> = entries
        .iter()
        .enumerate()
        .map(|(n, h)| {
            let (id, tags) = if n == 0 {
                (img.config_digest.clone(), json!(names))
            } else {
                ("<missing>".to_string(), Value::Null)
            };
            json!({
                "Id": id,
                "Created": unix(h.created.as_deref()),
                "CreatedBy": h.created_by,
                "Tags": tags,
                "Size": h.size,
                "Comment": h.comment,
            })
        })
        .collect();
    Ok(Response::json(200, &Value::Array(list)))
}

/// `POST /images/NAME/tag?repo=R&tag=T`: 201.
fn tag(service: &Service, req: &Request, name: &str) -> Result<Response> {
    let Some(repo) = req.query("repo").filter(|r| !r.is_empty()) else {
        return Err(BadRequest("repository name must have at least one component".into()).into());
    };
    let tag = req
        .query("tag")
        .filter(|t| !t.is_empty())
        .unwrap_or("latest");
    distribution::tag(service.engine, name, &format!("{repo}:{tag}")).map_err(|e| {
        match e.to_string().starts_with("Error parsing reference") {
            true => BadRequest(format!("{e:#}")).into(),
            false => e,
        }
    })?;
    Ok(Response {
        status: 201,
        content_type: "",
        body: Vec::new(),
    })
}

/// `DELETE /images/NAME?force=1`: `[{"Untagged": N}, {"Deleted": ID}]`, as
/// `dockyard rmi` prints them.
fn remove(service: &Service, req: &Request, name: &str) -> Result<Response> {
    let remover = image::Remover::new(service.engine)?;
    let (img, names) = remover.untag(name, req.flag("force"))?;
    let mut out: Vec<Value> = names.iter().map(|n| json!({ "Untagged": n })).collect();
    if !req.flag("noprune") {
        out.extend(
            remover
                .collect(&img)?
                .into_iter()
                .map(|d| json!({ "Deleted": d })),
        );
    }
    Ok(Response::json(200, &Value::Array(out)))
}

/// `POST /images/prune?filters={"dangling":["false"]}` (that filter is
/// `-a`). Other filters are refused rather than ignored: a prune that
/// ignored `until` or `label` would remove more than it was asked to.
fn prune(service: &Service, req: &Request) -> Result<Response> {
    let mut all = false;
    if let Some(f) = req.query("filters").filter(|f| !f.is_empty()) {
        let v: Value =
            serde_json::from_str(f).map_err(|e| BadRequest(format!("invalid filter: {e}")))?;
        for (k, vals) in v.as_object().into_iter().flatten() {
            // Both shapes docker accepts: ["false"] and {"false": true}.
            let words: Vec<String> = match vals {
                Value::Array(a) => a
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect(),
                Value::Object(o) => o.keys().cloned().collect(),
                _ => Vec::new(),
            };
            match (k.as_str(), words.as_slice()) {
                ("dangling", [w]) if w == "false" || w == "0" => all = true,
                ("dangling", [w]) if w == "true" || w == "1" => all = false,
                _ => return Err(BadRequest(format!("prune filter {k:?} is not supported")).into()),
            }
        }
    }
    let report = image::prune(service.engine, all)?;
    let deleted: Vec<Value> = report
        .untagged
        .iter()
        .map(|n| json!({ "Untagged": n }))
        .chain(report.deleted.iter().map(|d| json!({ "Deleted": d })))
        .collect();
    Ok(Response::json(
        200,
        &json!({ "ImagesDeleted": deleted, "SpaceReclaimed": report.reclaimed }),
    ))
}
