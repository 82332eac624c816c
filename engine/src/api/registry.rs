//! The endpoints that talk to registries: `POST /images/create` (pull, and
//! `fromSrc` import), `POST /images/NAME/push` and `POST /auth`.
//!
//! Each is the core call of `dockyard pull`, `push` and `login`
//! (`dockyard::distribution`, over lab 04's distribution protocol), with
//! the progress the CLI prints as lines turned into docker's JSON stream
//! (see `jsonstream`):
//!
//! ```text
//! POST /v1.50/images/create?fromImage=127.0.0.1:5000/busybox&tag=latest
//! X-Registry-Auth: base64url({"username":"alice","password":"...","serveraddress":"..."})
//!
//! {"status":"Pulling from busybox","id":"latest"}
//! {"status":"Pulling fs layer","progressDetail":{},"id":"a3ed95caeb02"}
//! {"status":"Pull complete","progressDetail":{},"id":"a3ed95caeb02"}
//! {"status":"Digest: sha256:..."}
//! {"status":"Status: Downloaded newer image for 127.0.0.1:5000/busybox:latest"}
//! ```
//!
//! **Whose credentials.** dockerd keeps none: each client sends its user's
//! in `X-Registry-Auth` (the docker CLI reads them from its own
//! `config.json`, which `docker login` fills after `POST /auth` vouched for
//! them). The service does the same: a pull or push uses the header's
//! credentials or none, never the credentials file of whoever started the
//! service, and `/auth` checks without storing. Security: the header is a
//! password; it is decoded here, handed to the registry client, and never
//! logged or echoed in an error.

use std::sync::Mutex;

use anyhow::Result;
use lab04_overlay::reference::Reference;
use lab04_overlay::registry::{Credentials, Event, Platform};
use serde_json::{json, Value};

use super::http::{Request, Response};
use super::jsonstream::JsonStream;
use super::routes::{BadRequest, Outcome, Reply};
use super::{lock, Service};
use dockyard::{distribution, image, units::human_size};

/// A non-empty query parameter.
fn param<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.query(name).filter(|v| !v.is_empty())
}

fn bad(e: anyhow::Error) -> anyhow::Error {
    BadRequest(format!("{e:#}")).into()
}

/// `POST /images/create`: `fromImage` pulls, `fromSrc` imports.
pub fn create(
    service: &Service,
    req: &Request,
    conn: &std::os::unix::net::UnixStream,
) -> Result<Reply> {
    if let Some(src) = param(req, "fromSrc") {
        return import(service, req, conn, src);
    }
    let Some(from) = param(req, "fromImage") else {
        return Err(BadRequest("fromImage or fromSrc is required".into()).into());
    };
    // `tag` may be a tag or a digest; without one, docker pulls every tag of
    // the repository (`docker pull -a`), which is not implemented here:
    // refused rather than narrowed to `latest` behind the client's back.
    let name = match param(req, "tag") {
        Some(t) if t.starts_with("sha256:") => format!("{from}@{t}"),
        Some(t) => format!("{from}:{t}"),
        None if has_tag_or_digest(from) => from.to_string(),
        None => {
            return Err(BadRequest(format!(
                "pulling every tag of {from} is not supported: give a tag"
            ))
            .into())
        }
    };
    let reference = Reference::parse(&name).map_err(bad)?;
    let platform = match param(req, "platform") {
        Some(p) => Platform::parse(p).map_err(bad)?,
        None => Platform::host(),
    };
    let creds = registry_auth(req.header("X-Registry-Auth"))?;
    let shown = reference
        .digest
        .clone()
        .or(reference.tag.clone())
        .unwrap_or_default();
    let stream = Mutex::new(JsonStream::new(conn));
    // The first message, once the manifest is in (as dockerd writes it):
    // until then a failure is still an HTTP error.
    let begin = |s: &mut JsonStream| -> Result<()> {
        if !s.started() {
            s.send(&json!({"status": format!("Pulling from {}", reference.path), "id": shown}))?;
        }
        Ok(())
    };
    let report = |e: Event| {
        let mut s = lock(&stream);
        // A client that went away only stops hearing of the pull.
        let _ = begin(&mut s).and_then(|()| s.send(&event_message(e, false)));
    };
    let mut warnings = Vec::new();
    let pulled = distribution::pull_as(
        service.engine,
        &reference,
        &platform,
        creds,
        &report,
        &mut |w| warnings.push(w.to_string()),
    );
    let mut s = stream.into_inner().unwrap_or_else(|e| e.into_inner());
    match pulled {
        Ok(p) => {
            begin(&mut s)?;
            for w in warnings {
                s.status(&w)?;
            }
            s.status(&format!("Digest: {}", p.digest))?;
            s.status(&match p.up_to_date {
                true => format!("Status: Image is up to date for {}", p.name),
                false => format!("Status: Downloaded newer image for {}", p.name),
            })?;
        }
        Err(e) if !s.started() => return Ok(Reply::Full(registry_error(&e, &reference))),
        Err(e) => s.error(&format!("{e:#}"), None)?,
    }
    s.finish()?;
    Ok(Reply::Streamed(Outcome::Done))
}

/// Whether `name` names a tag or a digest (a colon after the last slash, or
/// an `@`): `127.0.0.1:5000/app` has a port, not a tag.
fn has_tag_or_digest(name: &str) -> bool {
    let last = name.rsplit('/').next().unwrap_or(name);
    name.contains('@') || last.contains(':')
}

/// A registry failure before the stream began, as dockerd reports it: 404
/// for what the registry does not have, and, like moby's
/// `translatePullError`, 404 "pull access denied" for refused credentials
/// too. Not 401: the docker CLI answers a 401 by asking for a password,
/// and a registry that hides private repositories behind 401 cannot tell
/// "no such repository" from "not yours" anyway.
fn registry_error(e: &anyhow::Error, reference: &Reference) -> Response {
    let msg = format!("{e:#}");
    if msg.contains("unauthorized") || msg.contains("requires authentication") {
        let repo = reference.familiar_repository();
        return Response::error(
            404,
            &format!(
                "pull access denied for {repo}, repository does not exist or may require \
                 'docker login': {msg}"
            ),
        );
    }
    if msg.contains("not found") || msg.contains("manifest unknown") {
        return Response::error(404, &msg);
    }
    super::routes::error_response(e)
}

/// One progress event as dockerd's JSON message. `push`: the upload's
/// progress is "Pushing", not "Downloading".
fn event_message(e: Event, push: bool) -> Value {
    let plain = |id: &str, status: &str| json!({"status": status, "progressDetail": {}, "id": id});
    match e {
        Event::Waiting { id, .. } => plain(&id, "Pulling fs layer"),
        Event::Downloading { id, done, total } => json!({
            "status": if push { "Pushing" } else { "Downloading" },
            "progressDetail": {"current": done, "total": total},
            "progress": progress_bar(done, total),
            "id": id,
        }),
        Event::Downloaded { id } => plain(&id, "Download complete"),
        Event::Extracted { id } => plain(&id, "Pull complete"),
        Event::AlreadyExists { id } => plain(&id, "Already exists"),
        Event::Preparing { id } => plain(&id, "Preparing"),
        Event::Pushed { id } => plain(&id, "Pushed"),
        Event::LayerExists { id } => plain(&id, "Layer already exists"),
        Event::Mounted { id, from } => plain(&id, &format!("Mounted from {from}")),
    }
}

/// `[=====>      ]  1.2MB/3.4MB`, the text of docker's `JSONProgress`,
/// which a client shows when it does not draw the bar itself.
fn progress_bar(done: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    if total == 0 {
        return format!("{:>8}", human_size(done));
    }
    let filled = (done.min(total) * WIDTH / total) as usize;
    let arrow = if filled < WIDTH as usize { ">" } else { "" };
    let rest = (WIDTH as usize).saturating_sub(filled + arrow.len());
    format!(
        "[{}{arrow}{}] {:>8}/{}",
        "=".repeat(filled),
        " ".repeat(rest),
        human_size(done),
        human_size(total)
    )
}

/// `fromSrc=-`: the body is a root filesystem tarball, made a one-layer
/// image named `repo:tag` (what `dockyard import` does). A URL source is
/// refused: the service fetches nothing the client could send itself.
fn import(
    service: &Service,
    req: &Request,
    conn: &std::os::unix::net::UnixStream,
    src: &str,
) -> Result<Reply> {
    if src != "-" {
        return Err(BadRequest(format!(
            "importing from {src:?} is not supported: send the tarball in the body (fromSrc=-)"
        ))
        .into());
    }
    if req
        .query
        .iter()
        .any(|(k, v)| k == "changes" && !v.is_empty())
    {
        return Err(BadRequest("import with changes is not supported".into()).into());
    }
    let Some(repo) = param(req, "repo") else {
        return Err(
            BadRequest("dockyard keeps images by name: give one (repo, and tag)".into()).into(),
        );
    };
    let name = match param(req, "tag") {
        Some(t) => format!("{repo}:{t}"),
        None => repo.to_string(),
    };
    Reference::parse(&name).map_err(bad)?;
    let img = image::import(service.engine, &req.body[..], &name)?;
    let mut s = JsonStream::new(conn);
    s.status(&img.config_digest)?;
    s.finish()?;
    Ok(Reply::Streamed(Outcome::Done))
}

/// `POST /images/NAME/push?tag=T`: the local image `NAME:T` to its
/// registry; without a tag, every local tag of the repository.
pub fn push(
    service: &Service,
    req: &Request,
    conn: &std::os::unix::net::UnixStream,
    name: &str,
) -> Result<Reply> {
    let engine = service.engine;
    let names: Vec<String> = match param(req, "tag") {
        Some(t) => vec![format!("{name}:{t}")],
        None if has_tag_or_digest(name) => vec![name.to_string()],
        None => {
            let repo = Reference::parse(name).map_err(bad)?.familiar_repository();
            let mut tags: Vec<String> = image::list(engine)?
                .into_iter()
                .map(|s| s.name)
                .filter(|n| {
                    n.rsplit_once(':')
                        .is_some_and(|(r, t)| r == repo && !t.contains('/'))
                })
                .collect();
            tags.dedup();
            tags
        }
    };
    let creds = registry_auth(req.header("X-Registry-Auth"))?;
    let mut work = Vec::new();
    for n in &names {
        let reference = Reference::parse(n).map_err(bad)?;
        match distribution::image_to_push(engine, &reference) {
            Ok(img) => work.push((reference, img)),
            Err(e) => return Ok(Reply::Full(Response::error(404, &format!("{e:#}")))),
        }
    }
    if work.is_empty() {
        let msg = format!("An image does not exist locally with the tag: {name}");
        return Ok(Reply::Full(Response::error(404, &msg)));
    }
    let chunk = distribution::push_chunk_size()?;
    let stream = Mutex::new(JsonStream::new(conn));
    let report = |e: Event| {
        let _ = lock(&stream).send(&event_message(e, true));
    };
    // The full repository name, as dockerd prints it: `docker.io/library/x`
    // for Docker Hub, `127.0.0.1:5000/x` for the rest.
    let repo = work[0].0.repository();
    lock(&stream).status(&format!("The push refers to repository [{repo}]"))?;
    for (reference, img) in &work {
        let pushed = distribution::push_as(engine, img, reference, chunk, creds.clone(), &report);
        let mut s = lock(&stream);
        match pushed {
            Ok(p) => {
                s.status(&format!("{}: digest: {} size: {}", p.tag, p.digest, p.size))?;
                s.send(&json!({"progressDetail": {},
                               "aux": {"Tag": p.tag, "Digest": p.digest, "Size": p.size}}))?;
            }
            Err(e) => {
                s.error(&format!("{e:#}"), None)?;
                break;
            }
        }
    }
    let s = stream.into_inner().unwrap_or_else(|e| e.into_inner());
    s.finish()?;
    Ok(Reply::Streamed(Outcome::Done))
}

/// `POST /auth {"username","password","serveraddress"}`: log in to the
/// registry (`GET /v2/` with the credentials), store nothing. 200
/// `{"Status":"Login Succeeded"}`, or 401 with the registry's refusal.
pub fn auth(service: &Service, req: &Request) -> Result<Response> {
    let v: Value = serde_json::from_slice(&req.body)
        .map_err(|e| BadRequest(format!("invalid JSON in the auth request: {e}")))?;
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    if !field("identitytoken").is_empty() {
        return Err(
            BadRequest("identity tokens are not supported: log in with a password".into()).into(),
        );
    }
    let (username, password) = (field("username"), field("password"));
    if username.is_empty() || password.is_empty() {
        return Err(BadRequest("a username and a password are required".into()).into());
    }
    let server = field("serveraddress");
    let server = (!server.is_empty()).then_some(server.as_str());
    match distribution::check_login(service.engine, server, Credentials { username, password }) {
        Ok(_) => Ok(Response::json(
            200,
            &json!({"Status": "Login Succeeded", "IdentityToken": ""}),
        )),
        Err(e) => {
            let msg = format!("{e:#}");
            let status = if msg.contains("unauthorized") {
                401
            } else {
                500
            };
            Ok(Response::error(status, &msg))
        }
    }
}

/// The credentials of an `X-Registry-Auth` header: base64url of
/// `{"username","password"}` (or `"auth"`: base64 of `user:password`).
/// Absent, empty, or `{}` (what the CLI sends when it has none): none.
pub fn registry_auth(header: Option<&str>) -> Result<Option<Credentials>> {
    let Some(h) = header.map(str::trim).filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    // Security: the message says what is wrong, never what was sent.
    let invalid = || BadRequest("invalid X-Registry-Auth header".into());
    let raw = base64_decode(h).ok_or_else(invalid)?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| invalid())?;
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    if !field("auth").is_empty() {
        return Credentials::decode(&field("auth"))
            .map(Some)
            .map_err(|_| invalid().into());
    }
    let (username, password) = (field("username"), field("password"));
    if username.is_empty() && password.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials { username, password }))
}

/// Base64 in either alphabet (docker's CLI sends URL-safe, `+/` is the
/// standard one), padded or not; None if it is not base64.
pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        acc = (acc << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_auth_headers_decode() {
        assert!(registry_auth(None).unwrap().is_none());
        assert!(registry_auth(Some("e30=")).unwrap().is_none(), "{{}}");
        // {"username":"alice","password":"secretpw","serveraddress":"localhost:5000"}
        let c = registry_auth(Some(
            "eyJ1c2VybmFtZSI6ImFsaWNlIiwicGFzc3dvcmQiOiJzZWNyZXRwdyIsInNlcnZlcmFkZHJlc3MiOiJsb2NhbGhvc3Q6NTAwMCJ9",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("alice", "secretpw")
        );
        let e = registry_auth(Some("!!!")).unwrap_err().to_string();
        assert_eq!(e, "invalid X-Registry-Auth header");
    }

    #[test]
    fn tags_are_told_from_ports() {
        assert!(has_tag_or_digest("busybox:1"));
        assert!(has_tag_or_digest("127.0.0.1:5000/app:1"));
        assert!(!has_tag_or_digest("127.0.0.1:5000/app"));
        assert!(has_tag_or_digest("app@sha256:00"));
    }

    #[test]
    fn progress_bars_look_like_dockers() {
        let bar = progress_bar(1_000_000, 2_000_000);
        assert!(bar.starts_with("[=========================>"), "{bar}");
        assert!(bar.ends_with("1MB/2MB"), "{bar}");
    }
}
