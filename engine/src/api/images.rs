//! The image endpoints that stay on this host: list (with filters), tag,
//! history, inspect, delete, prune, save (`get`), load, commit, and
//! search's refusal. Each is the core call `dockyard images`, `tag`,
//! `history`, `image inspect`, `rmi`, `image prune`, `save`, `load` and
//! `commit` make, in docker's JSON. (Pull, push and login are in
//! `registry`, build in `build`.)
//!
//! An image's name may hold slashes (`localhost:5000/team/app:1`), so the
//! path is not cut at every `/`: `/images/localhost:5000/team/app:1/json`
//! is the name up to the last segment, the verb.

use std::time::UNIX_EPOCH;

use std::os::unix::net::UnixStream;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Result};
use lab04_overlay::reference::Reference;
use serde_json::{json, Value};

use super::http::{Request, Response};
use super::jsonstream::{ChunkWriter, JsonStream};
use super::routes::{BadRequest, Outcome, Reply};
use super::Service;

use dockyard::image::reference_matches;
use dockyard::{distribution, image, state};

/// Route `/images/...` (after the fixed `/images/json`); None: no route.
pub fn route(service: &Service, req: &Request) -> Option<Result<Response>> {
    let rest = req.path.strip_prefix("/images/")?;
    let m = req.method.as_str();
    match (m, rest) {
        ("POST", "prune") => return Some(prune(service, req)),
        ("GET", "search") => return Some(super::search::search(service, req)),
        _ => {}
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

/// `POST /images/prune?filters=...`: `dangling=false` is `-a` (every
/// unused image, not only dangling blobs); `until` and `label` narrow which
/// images go. Other filters are refused rather than ignored: a prune that
/// ignored one would remove more than it was asked to.
fn prune(service: &Service, req: &Request) -> Result<Response> {
    let filters = Filters::parse(req, &["dangling", "until", "label", "label!"])?;
    let all = filters.dangling()? == Some(false);
    let now = SystemTime::now();
    let until = filters
        .get("until")
        .iter()
        .map(|u| parse_until(u, now))
        .collect::<Result<Vec<_>>>()?;
    let report = image::prune_where(service.engine, all, &|img| {
        let created = created_of(img);
        until.iter().all(|u| created.is_some_and(|c| c < *u)) && filters.labels_match(img)
    })?;
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

/// The image routes that write their own answer (a tar, a JSON stream):
/// save, load, pull (`create`), push. None: not one of them.
pub fn stream_route(service: &Service, req: &Request, conn: &UnixStream) -> Option<Result<Reply>> {
    let rest = req.path.strip_prefix("/images/")?;
    match (req.method.as_str(), rest) {
        ("POST", "create") => return Some(super::registry::create(service, req, conn)),
        ("POST", "load") => return Some(load(service, req, conn)),
        ("GET", "get") => {
            let names: Vec<&str> = req
                .query
                .iter()
                .filter(|(k, _)| k == "names")
                .flat_map(|(_, v)| v.split(','))
                .filter(|n| !n.is_empty())
                .collect();
            return Some(match names.as_slice() {
                [one] => save(service, conn, one),
                [] => Err(BadRequest("no image named: give names=IMAGE".into()).into()),
                _ => Err(BadRequest(
                    "saving several images into one archive is not supported yet: save them one by one"
                        .into(),
                )
                .into()),
            });
        }
        _ => {}
    }
    let (name, verb) = rest.rsplit_once('/')?;
    match (req.method.as_str(), verb) {
        ("GET", "get") => Some(save(service, conn, name)),
        ("POST", "push") => Some(super::registry::push(service, req, conn, name)),
        _ => None,
    }
}

/// `GET /images/json?filters=...`: one summary per image, its tags
/// together (the core lists one row per tag, as `dockyard images` prints
/// them), filtered by `reference`, `dangling`, `label`, `before` and
/// `since` as docker filters.
pub fn list(service: &Service, req: &Request) -> Result<Response> {
    let engine = service.engine;
    let filters = Filters::parse(
        req,
        &[
            "reference",
            "dangling",
            "label",
            "label!",
            "before",
            "since",
        ],
    )?;
    // Dangling: an image without a name (lab 04's `Store::unnamed`, what
    // a `load` of an archive saved by ID makes).
    let dangling = filters.dangling()?;
    let created_of_ref =
        |r: &str| -> Result<Option<SystemTime>> { Ok(created_of(&image::find(engine, r)?)) };
    let before: Vec<_> = filters
        .get("before")
        .iter()
        .map(|r| created_of_ref(r))
        .collect::<Result<_>>()?;
    let since: Vec<_> = filters
        .get("since")
        .iter()
        .map(|r| created_of_ref(r))
        .collect::<Result<_>>()?;
    let refs = filters.get("reference");
    let mut out: Vec<Value> = Vec::new();
    let mut all = engine.images.images()?;
    all.sort_by(|a, b| a.name.cmp(&b.name));
    for img in all {
        let created = created_of(&img);
        let nameless = img.name.is_empty();
        let keep = dangling.is_none_or(|d| d == nameless)
            && (refs.is_empty()
                || !nameless && refs.iter().any(|p| reference_matches(p, &img.name)))
            && before.iter().all(|b| created < *b)
            && since.iter().all(|s| created > *s)
            && filters.labels_match(&img);
        if !keep {
            continue;
        }
        if let Some(v) = out
            .iter_mut()
            .find(|v| v["Id"] == img.config_digest.as_str())
        {
            if let Some(tags) = v["RepoTags"].as_array_mut() {
                tags.push(json!(img.name));
            }
            continue;
        }
        let labels = img
            .config
            .config()
            .as_ref()
            .and_then(|c| c.labels().clone())
            .unwrap_or_default();
        out.push(json!({
            "Id": img.config_digest, "ParentId": "",
            // dockerd's `[]` for an image without a name (`<none>` in the CLI).
            "RepoTags": if nameless { json!([]) } else { json!([img.name]) },
            "RepoDigests": dockyard::repo_digest::repo_digests(engine, &img),
            "Created": unix(img.config.created().as_deref()), "Size": image::size(engine, &img),
            "SharedSize": -1, "Labels": labels, "Containers": -1,
        }));
    }
    // dockerd's order: the newest first (a stable sort keeps names in order).
    out.sort_by_key(|v| std::cmp::Reverse(v["Created"].as_u64()));
    Ok(Response::json(200, &Value::Array(out)))
}

fn created_of(img: &image::Image) -> Option<SystemTime> {
    img.config
        .created()
        .as_deref()
        .and_then(state::parse_rfc3339)
}

/// `until=`: a Unix time (`1700000000`, fractions allowed), an RFC 3339
/// time, or a duration before now (`24h`, `1h30m`, `90s`).
fn parse_until(s: &str, now: SystemTime) -> Result<SystemTime> {
    let invalid = || -> anyhow::Error { BadRequest(format!("invalid until filter {s:?}")).into() };
    if let Ok(secs) = s.parse::<f64>() {
        return UNIX_EPOCH
            .checked_add(Duration::from_secs_f64(secs.max(0.0)))
            .ok_or_else(invalid);
    }
    if let Some(t) = state::parse_rfc3339(s) {
        return Ok(t);
    }
    let mut total = 0f64;
    let mut number = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600.0,
            'm' => 60.0,
            's' => 1.0,
            _ => return Err(invalid()),
        };
        total += number.parse::<f64>().map_err(|_| invalid())? * unit;
        number.clear();
    }
    if !number.is_empty() || total == 0.0 {
        return Err(invalid());
    }
    now.checked_sub(Duration::from_secs_f64(total))
        .ok_or_else(invalid)
}

/// A request's `filters` JSON: `{"label":["a=1"]}` or `{"label":{"a=1":true}}`.
struct Filters(Vec<(String, Vec<String>)>);

impl Filters {
    /// Parse, refusing a filter not in `known` (docker: 400, "invalid filter").
    fn parse(req: &Request, known: &[&str]) -> Result<Filters> {
        let mut out = Vec::new();
        let Some(f) = req.query("filters").filter(|f| !f.is_empty()) else {
            return Ok(Filters(out));
        };
        let v: Value =
            serde_json::from_str(f).map_err(|e| BadRequest(format!("invalid filter: {e}")))?;
        for (k, vals) in v.as_object().into_iter().flatten() {
            if !known.contains(&k.as_str()) {
                return Err(BadRequest(format!("invalid filter '{k}'")).into());
            }
            let words = match vals {
                Value::Array(a) => a
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect(),
                Value::Object(o) => o.keys().cloned().collect(),
                _ => Vec::new(),
            };
            out.push((k.clone(), words));
        }
        Ok(Filters(out))
    }

    fn get(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.clone())
            .collect()
    }

    /// `dangling`: Some(true), Some(false), or None when not given.
    fn dangling(&self) -> Result<Option<bool>> {
        match self.get("dangling").as_slice() {
            [] => Ok(None),
            [w] if w == "true" || w == "1" => Ok(Some(true)),
            [w] if w == "false" || w == "0" => Ok(Some(false)),
            other => {
                Err(BadRequest(format!("Invalid filter 'dangling={}'", other.join(","))).into())
            }
        }
    }

    /// `label=KEY`, `label=KEY=VALUE` (all must hold), `label!=...` (none
    /// may), against the image's config labels.
    fn labels_match(&self, img: &image::Image) -> bool {
        let labels = img
            .config
            .config()
            .as_ref()
            .and_then(|c| c.labels().clone())
            .unwrap_or_default();
        let holds = |l: &String| match l.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(l),
        };
        self.get("label").iter().all(holds) && !self.get("label!").iter().any(holds)
    }
}

/// `GET /images/NAME/get`: the image as a docker-archive tar, streamed as
/// it is written (what `dockyard save` writes).
fn save(service: &Service, conn: &UnixStream, name: &str) -> Result<Reply> {
    // Looked up before the head goes out: a missing image is a 404.
    image::find(service.engine, name)?;
    let mut w = ChunkWriter::start(conn, "application/x-tar")?;
    // Once the head is out an error can only cut the body short: the
    // client sees a truncated tar and fails to read it.
    image::save(service.engine, name, &mut w)?;
    w.finish()?;
    Ok(Reply::Streamed(Outcome::Done))
}

/// `POST /images/load`: a docker-archive or OCI archive in the body; a
/// `Loaded image: NAME` stream message for each image (`quiet` only turns
/// off progress, which this loader has none of).
fn load(service: &Service, req: &Request, conn: &UnixStream) -> Result<Reply> {
    if req.body.is_empty() {
        return Err(BadRequest("no archive in the request body".into()).into());
    }
    let names = image::load_archive(service.engine, &req.body[..])?;
    let mut s = JsonStream::new(conn);
    for n in names {
        let line = match n.starts_with("sha256:") {
            true => format!("Loaded image ID: {n}\n"),
            false => format!("Loaded image: {n}\n"),
        };
        s.text(&line)?;
    }
    if !s.started() {
        s.text("")?;
    }
    s.finish()?;
    Ok(Reply::Streamed(Outcome::Done))
}

/// `POST /commit?container=C&repo=R&tag=T&comment=&author=&pause=&changes=`:
/// 201 `{"Id": ...}`, what `dockyard commit` does (paused, unless
/// `pause=0`; each `changes` a Dockerfile line applied to the config).
pub fn commit(service: &Service, req: &Request) -> Result<Response> {
    let param = |k: &str| req.query(k).filter(|v| !v.is_empty());
    let Some(container) = param("container") else {
        return Err(BadRequest("container is required".into()).into());
    };
    let Some(repo) = param("repo") else {
        // Docker would make an image without a name; a lab 04 store keeps
        // images by name (an unnamed one is garbage).
        return Err(BadRequest("dockyard keeps images by name: give repo (and tag)".into()).into());
    };
    let name = match param("tag") {
        Some(t) => format!("{repo}:{t}"),
        None => repo.to_string(),
    };
    let name = Reference::parse(&name)
        .map_err(|e| BadRequest(format!("{e:#}")))?
        .familiar();
    // The body may hold a container config to commit with (docker-py sends
    // `{}`); only the `changes` lines are implemented, so a config that
    // says anything is refused rather than dropped.
    if !req.body.is_empty() {
        let v: Value = serde_json::from_slice(&req.body)
            .map_err(|e| BadRequest(format!("invalid JSON body: {e}")))?;
        if v.as_object().is_some_and(|o| !o.is_empty()) {
            return Err(BadRequest(
                "commit with a container config in the body is not supported: use changes".into(),
            )
            .into());
        }
    }
    let r = service.engine.containers.resolve(container)?;
    let commit = image::CommitRequest {
        message: param("comment").map(str::to_string),
        author: param("author").map(str::to_string),
        changes: req
            .query
            .iter()
            .filter(|(k, v)| k == "changes" && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect(),
        // Absent or empty: docker's default, true.
        pause: req
            .query("pause")
            .filter(|v| !v.is_empty())
            .is_none_or(|_| req.flag("pause")),
    };
    let img = image::commit_container(service.engine, &r, &name, &commit)
        .map_err(|e| anyhow!("{e:#}"))?;
    Ok(Response::json(201, &json!({ "Id": img.config_digest })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_takes_times_and_durations() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let at = |s: &str| parse_until(s, now).unwrap();
        assert_eq!(
            at("1600000000"),
            UNIX_EPOCH + Duration::from_secs(1_600_000_000)
        );
        assert_eq!(at("2h"), now - Duration::from_secs(7200));
        assert_eq!(at("1h30m"), now - Duration::from_secs(5400));
        assert_eq!(
            at("1970-01-01T00:01:40Z"),
            UNIX_EPOCH + Duration::from_secs(100)
        );
        // "10" alone is a Unix time, not a duration without a unit.
        for bad in ["", "h", "10x", "1h2"] {
            assert!(parse_until(bad, now).is_err(), "{bad:?}");
        }
    }
}
