//! `docker search TERM`, answered from a registry's catalog.
//!
//! docker's daemon sends a search to Docker Hub's v1 search API
//! (`index.docker.io/v1/search?q=TERM&n=25`), or to the registry named in
//! the term (`127.0.0.1:5000/busy`) the same way. A registry of the v2
//! protocol (`docker-registry`, distribution) has no search API, but it
//! lists its repositories: `GET /v2/_catalog` (lab 04's
//! `Client::catalog`). Dockyard searches that list: every repository
//! whose name contains the term, with no description, no stars, and not
//! official (only Docker Hub's own images are).
//!
//! ```text
//! $ dockyard search 127.0.0.1:5000/busy
//! NAME       DESCRIPTION   STARS     OFFICIAL
//! busybox                  0
//! ```
//!
//! Docker Hub is on the internet, which dockyard never reaches: a search
//! with no registry host in the term is refused before any name is looked
//! up.

use anyhow::{bail, Result};
use lab04_overlay::registry::{self, Client};

use crate::engine::Engine;

/// One result, as the Engine API's `GET /images/search` returns it
/// (`name`, `description`, `star_count`, `is_official`, `is_automated`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SearchResult {
    pub name: String,
    pub description: String,
    pub star_count: u64,
    pub is_official: bool,
    pub is_automated: bool,
}

/// docker's default `--limit`, and the daemon's bounds on it.
pub const DEFAULT_LIMIT: usize = 25;

/// `(registry, term)` of a search term, as moby's `splitReposSearchTerm`
/// reads it: the part before the first `/` is a registry when it looks
/// like a host (a `.` or a `:` in it, or `localhost`); else it is Docker
/// Hub's term.
pub fn split_term(term: &str) -> (Option<&str>, &str) {
    match term.split_once('/') {
        Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => {
            (Some(host), rest)
        }
        _ => (None, term),
    }
}

/// Search the registry named in `term`'s catalog: up to `limit` results,
/// keeping those that pass `filters` (`stars=N`, `is-official=BOOL`,
/// `is-automated=BOOL`, docker's).
pub fn search(
    engine: &Engine,
    term: &str,
    limit: usize,
    filters: &[(String, String)],
) -> Result<Vec<SearchResult>> {
    if !(1..=100).contains(&limit) {
        bail!("limit {limit} is outside the range of [1, 100]");
    }
    let mut min_stars = 0;
    let mut official = None;
    let mut automated = None;
    for (key, value) in filters {
        let flag = || match value.as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => bail!("invalid filter '{key}={value}'"),
        };
        match key.as_str() {
            "stars" => {
                min_stars = value
                    .parse()
                    .map_err(|_| anyhow::anyhow!("invalid filter 'stars={value}'"))?
            }
            "is-official" => official = Some(flag()?),
            "is-automated" => automated = Some(flag()?),
            _ => bail!("invalid filter '{key}'"),
        }
    }
    let (Some(host), wanted) = split_term(term) else {
        bail!(
            "searching Docker Hub for {term:?} needs the internet (index.docker.io), which \
             dockyard does not reach; search a registry on this machine instead, e.g. \
             `dockyard search 127.0.0.1:5000/{term}`"
        );
    };
    let base = registry::base_url(host, &engine.config.insecure_registries);
    let client = Client::new(&base, host, crate::distribution::credentials_for(host)?);
    let wanted = wanted.to_lowercase();
    Ok(client
        .catalog()?
        .into_iter()
        .filter(|name| name.to_lowercase().contains(&wanted))
        .map(|name| SearchResult {
            name,
            description: String::new(),
            star_count: 0,
            is_official: false,
            is_automated: false,
        })
        .filter(|r| r.star_count >= min_stars)
        .filter(|r| official.is_none_or(|o| o == r.is_official))
        .filter(|r| automated.is_none_or(|a| a == r.is_automated))
        .take(limit)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_term_names_a_registry_only_when_it_looks_like_a_host() {
        assert_eq!(split_term("busybox"), (None, "busybox"));
        assert_eq!(split_term("library/busybox"), (None, "library/busybox"));
        assert_eq!(
            split_term("127.0.0.1:5000/busy"),
            (Some("127.0.0.1:5000"), "busy")
        );
        assert_eq!(split_term("localhost/app/x"), (Some("localhost"), "app/x"));
    }
}
