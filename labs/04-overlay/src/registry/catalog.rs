//! The registry's list of repositories: `GET /v2/_catalog`, page by page.
//!
//! A registry answers `{"repositories": ["app", "busybox"]}`, at most `n`
//! names a page, in lexical order, with a `Link: </v2/_catalog?last=busybox&n=100>;
//! rel="next"` header while more follow. Docker Hub does not serve it (its
//! search is another API); a private registry usually does, to whoever may
//! `registry:catalog:*`.
//!
//! ```text
//! curl -s http://127.0.0.1:5000/v2/_catalog?n=100
//! ```

use anyhow::{anyhow, Result};

use super::client::{read_limited, Body, Client};

impl Client {
    /// Every repository the registry lists, in its order.
    pub fn catalog(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut url = self.url("_catalog?n=100");
        // A bound on the pages, in case a registry's `Link` goes in circles.
        for _ in 0..1000 {
            let resp = self.send("GET", &url, &[], Body::Empty, "registry:catalog:*")?;
            if !(200..300).contains(&resp.status()) {
                return Err(self.error(resp, "listing the repositories (/v2/_catalog)"));
            }
            let next = resp.header("link").and_then(next_page);
            let body = read_limited(resp, 16 << 20)?;
            let doc: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| anyhow!("registry {}: /v2/_catalog: {e}", self.name))?;
            names.extend(
                doc["repositories"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.as_str().map(str::to_string)),
            );
            match next {
                Some(path) => url = format!("{}{path}", self.base),
                None => break,
            }
        }
        Ok(names)
    }
}

/// The path of a `Link: <PATH>; rel="next"` header.
fn next_page(link: &str) -> Option<String> {
    let (target, params) = link.split_once(';')?;
    params
        .contains("rel=\"next\"")
        .then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
        .filter(|p| p.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_is_the_links_path() {
        assert_eq!(
            next_page("</v2/_catalog?last=b&n=100>; rel=\"next\"").as_deref(),
            Some("/v2/_catalog?last=b&n=100")
        );
        assert_eq!(next_page("</x>; rel=\"prev\""), None);
    }
}
