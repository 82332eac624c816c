//! # `--cache-from`: another image's history as a cache
//!
//! The step cache ([`crate::cache`]) only knows steps this store built. An image that came
//! from elsewhere (`docker load`, a pull) has no cache entries, but its config still says
//! how it was made: one history entry per step, in order, each with its `created_by` line,
//! and a layer for each entry that is not `empty_layer`. `docker build --cache-from IMAGE`
//! trusts that record (moby's `ImageCache`, daemon/internal/image/cache):
//!
//! ```text
//! the image so far:  history h1..hn, layers d1..dk
//! a source:          history h1..hn h(n+1) ..., layers d1..dk ...
//! this step:         created_by == h(n+1).created_by   ->  reuse h(n+1) and its layer
//! ```
//!
//! A hit makes the step's image from the parent's (with the step's config change), the
//! source's history entry (its `created` time too) and the source's layer, which is already
//! in the store: nothing runs, nothing is copied. When the source's next entry is its last,
//! the step's image *is* the source. After one hit only that source is followed, as moby
//! does. With `--cache-from`, a step of the local cache counts only if its image is on a
//! source's chain (the same history and layers as the start of one): the sources are what
//! the build was told to trust. A name that is not in the store is skipped without a word,
//! as moby's daemon only logs it (so `--cache-from` naming only such images turns the local
//! cache off, as in docker). A step taken from a source is not recorded in the local
//! cache (moby does not count it as built locally either).

use anyhow::Result;
use serde_json::{json, Value};

use super::image::Img;
use super::{Builder, Stage};

/// The history entries of an image's config.
fn history(img: &Img) -> &[Value] {
    img.config["history"].as_array().map_or(&[], Vec::as_slice)
}

/// Whether `img` is `target` or one of the images on its way: its history and layers are
/// the start of `target`'s.
pub(super) fn on_chain(img: &Img, target: &Img) -> bool {
    let (h, t) = (history(img), history(target));
    let (d, td) = (img.diff_ids(), target.diff_ids());
    h.len() <= t.len() && d.len() <= td.len() && h == &t[..h.len()] && d == td[..d.len()]
}

/// moby's `isValidParent`: `target` has a history entry after all of `parent`'s.
fn valid_parent(target: &Img, parent: &Img) -> bool {
    let t = history(target);
    if t.is_empty() {
        return false;
    }
    if history(parent).is_empty() && parent.diff_ids().is_empty() {
        return true;
    }
    history(parent).len() < t.len() && on_chain(parent, target)
}

impl Builder<'_> {
    /// The images `--cache-from` names that are in the store.
    pub(super) fn cache_sources(&self) -> Vec<Img> {
        self.opts
            .cache_from
            .iter()
            .filter_map(|name| self.image(name).ok())
            .collect()
    }

    // ANCHOR: probe
    /// Looks the step up in the local cache, then in the `--cache-from` images; on a hit,
    /// prints so and moves the stage on. `change` is what the step does to the config (for
    /// a hit from a source, whose image is made here).
    pub(super) fn probe(
        &mut self,
        st: &mut Stage,
        key: &str,
        created_by: &str,
        change: &dyn Fn(&mut Img) -> Result<()>,
    ) -> Result<bool> {
        if self.try_cache(st, key)? {
            return Ok(true);
        }
        if self.sources.is_empty() || !self.cache_allowed(st) {
            return Ok(false);
        }
        let n = history(&st.img).len();
        let Some(target) = self
            .sources
            .iter()
            .find(|t| {
                valid_parent(t, &st.img) && history(t)[n]["created_by"].as_str() == Some(created_by)
            })
            .cloned()
        else {
            return Ok(false);
        };
        let img = if history(&target).len() == n + 1 {
            target.clone()
        } else {
            self.restore(st, &target, n, change)?
        };
        // Not written to the local cache: moby does not mark a restored image as built
        // here, so a later build without --cache-from runs the step.
        self.sources = vec![target];
        self.cached += 1;
        self.say(" ---> Using cache")?;
        self.say(&format!(" ---> {}", img.short()))?;
        st.img = img;
        Ok(true)
    }
    // ANCHOR_END: probe

    /// moby's `restoreCachedImage`: the parent, the step's change, the source's history
    /// entry `n` and, unless it is empty, the layer it made.
    fn restore(
        &self,
        st: &Stage,
        target: &Img,
        n: usize,
        change: &dyn Fn(&mut Img) -> Result<()>,
    ) -> Result<Img> {
        let mut next = st.img.clone();
        change(&mut next)?;
        let entry = history(target)[n].clone();
        next.config["created"] = entry["created"].clone();
        if entry["empty_layer"] != json!(true) {
            // The layer of entry n: one for each non-empty entry before it.
            let index = history(target)[..n]
                .iter()
                .filter(|h| h["empty_layer"] != json!(true))
                .count();
            let ids = target.diff_ids();
            let (Some(diff_id), Some(desc)) = (ids.get(index), target.layers.get(index)) else {
                anyhow::bail!("cache source {}: history and layers disagree", target.id);
            };
            let mut mine = next.diff_ids();
            mine.push(diff_id.clone());
            next.config["rootfs"] = json!({"type": "layers", "diff_ids": mine});
            next.layers.push(desc.clone());
        }
        if !next.config["history"].is_array() {
            next.config["history"] = json!([]);
        }
        if let Some(h) = next.config["history"].as_array_mut() {
            h.push(entry);
        }
        self.commit(next.config, next.layers)
    }
}
