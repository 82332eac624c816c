//! `GET /images/search?term=T&limit=N&filters=F`: the core's `search` (a
//! registry's catalog), as docker's daemon answers a search: a list of
//! `{"name", "description", "star_count", "is_official", "is_automated"}`.
//!
//! ```text
//! $ docker -H unix:///run/dockyard.sock search 127.0.0.1:5000/busy
//! NAME      DESCRIPTION   STARS     OFFICIAL
//! busybox                 0
//! ```

use anyhow::Result;

use super::http::{Request, Response};
use super::routes::{filter_pairs, BadRequest};
use super::Service;
use dockyard::search;

/// `GET /images/search`.
pub fn search(service: &Service, req: &Request) -> Result<Response> {
    let term = req.query("term").unwrap_or_default();
    if term.is_empty() {
        return Err(BadRequest("term is required".into()).into());
    }
    let limit = match req.query("limit").filter(|l| !l.is_empty()) {
        Some(l) => l
            .parse()
            .map_err(|_| BadRequest(format!("invalid limit {l:?}")))?,
        None => search::DEFAULT_LIMIT,
    };
    // docker's filters: {"is-official": {"true": true}} (or a list).
    let filters = filter_pairs(req.query("filters"))?;
    let results = search::search(service.engine, term, limit, &filters)?;
    Ok(Response::json(200, &serde_json::to_value(results)?))
}
