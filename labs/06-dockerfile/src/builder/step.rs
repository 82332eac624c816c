//! Carrying out the steps: a stage, one instruction at a time.
//!
//! Each instruction is a step: `Step N/M : INSTRUCTION`, then either the cache's answer
//! (the same step on the same parent image was built before: ` ---> Using cache`) or the
//! step itself, which ends in [`Builder::finish_step`]: the new config, a history entry,
//! and the step's layer if it made one, written to the store as the next image. A stage
//! starts from its `FROM` image (an image of the store, an earlier stage, or `scratch`),
//! and runs the `ONBUILD` triggers that image carries before its own instructions.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use serde_json::json;

use super::check::{stage_name, validate};
use super::image::Img;
use super::{Builder, Stage};
use crate::parser::{Args, Instruction, Keyword};
use lab01_chroot::DEFAULT_PATH;
use lab04_overlay as overlay;
use overlay::digest::chain_ids;

impl Builder<'_> {
    pub(super) fn say(&mut self, line: &str) -> Result<()> {
        writeln!(self.out, "{line}")?;
        self.out.flush()?;
        Ok(())
    }

    /// Whether this stage's steps may come from a cache (`--no-cache`, `--no-cache-filter`).
    pub(super) fn cache_allowed(&self, st: &Stage) -> bool {
        let filtered = st.name.as_deref().is_some_and(|n| {
            self.opts
                .no_cache_filter
                .iter()
                .any(|f| f.eq_ignore_ascii_case(n))
        });
        !(self.opts.no_cache || filtered)
    }

    /// Looks the step up in the cache; on a hit, prints so and moves the stage on. With
    /// `--cache-from`, only a step on a source's chain counts (see [`super::cache_from`]).
    pub(super) fn try_cache(&mut self, st: &mut Stage, key: &str) -> Result<bool> {
        if !self.cache_allowed(st) {
            return Ok(false);
        }
        let Some(img) = self.cache.get(key).and_then(|m| self.load(&m)) else {
            return Ok(false);
        };
        if !self.opts.cache_from.is_empty()
            && !self
                .sources
                .iter()
                .any(|s| super::cache_from::on_chain(&img, s))
        {
            return Ok(false);
        }
        self.cached += 1;
        self.say(" ---> Using cache")?;
        self.say(&format!(" ---> {}", img.short()))?;
        st.img = img;
        Ok(true)
    }

    // ANCHOR: finish_step
    /// Makes the step's image: the new config, a history entry, and the layer (a tar file)
    /// if the step made one; records it in the cache.
    pub(super) fn finish_step(
        &mut self,
        st: &mut Stage,
        key: &str,
        created_by: &str,
        layer: Option<&Path>,
        change: impl FnOnce(&mut Img) -> Result<()>,
    ) -> Result<()> {
        let mut next = st.img.clone();
        change(&mut next)?;
        let created = overlay::archive::now_rfc3339();
        next.config["created"] = json!(created);
        let mut history = json!({"created": created, "created_by": created_by});
        if let Some(tar) = layer {
            let (desc, diff_id) = overlay::archive::put_layer(
                self.store,
                File::open(tar).context("reading the new layer")?,
            )?;
            let parent = chain_ids(&next.diff_ids()).pop();
            self.store
                .unpack_layer(&desc, &diff_id, parent.as_deref())?;
            let mut ids = next.diff_ids();
            ids.push(diff_id);
            next.config["rootfs"] = json!({"type": "layers", "diff_ids": ids});
            next.layers.push(desc);
        } else {
            history["empty_layer"] = json!(true);
        }
        if !next.config["history"].is_array() {
            next.config["history"] = json!([]);
        }
        if let Some(h) = next.config["history"].as_array_mut() {
            h.push(history);
        }
        let img = self.commit(next.config, next.layers)?;
        if let Some(m) = &img.manifest {
            self.cache.put(key, m, created_by)?;
        }
        self.say(&format!(" ---> {}", img.short()))?;
        st.img = img;
        Ok(())
    }
    // ANCHOR_END: finish_step

    /// The variables an instruction is expanded with: ARGs in scope, then ENV over them.
    pub(super) fn vars(&self, st: &Stage) -> BTreeMap<String, String> {
        let mut v: BTreeMap<String, String> = st
            .args
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        v.extend(st.img.env());
        v
    }

    pub(super) fn expand(&self, st: &Stage, word: &str) -> Result<String> {
        Ok(self.lexer.expand_word(word, &self.vars(st))?)
    }

    /// An `ARG` before the first `FROM`: a step in the count and the output, as in the
    /// classic builder, but no image (there is none yet): only FROM lines can use it.
    pub(super) fn global_arg(&mut self, ins: &Instruction) -> Result<()> {
        self.header(ins)?;
        let Args::Words(words) = &ins.args else {
            return Ok(());
        };
        for w in words {
            let (name, default) = match w.split_once('=') {
                Some((n, d)) => {
                    let vars: BTreeMap<String, String> = self
                        .global_args
                        .iter()
                        .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                        .collect();
                    (n.to_string(), Some(self.lexer.expand_word(d, &vars)?))
                }
                None => (w.clone(), None),
            };
            let value = match self.build_args.get(&name) {
                Some(v) => {
                    self.used_args.insert(name.clone());
                    Some(v.clone())
                }
                None => default,
            };
            self.global_args.insert(name, value);
        }
        Ok(())
    }

    fn header(&mut self, ins: &Instruction) -> Result<()> {
        self.step += 1;
        let line = format!(
            "Step {}/{} : {}",
            self.step,
            self.total,
            ins.original.trim()
        );
        self.say(&line)
    }

    /// A stage: `FROM`, the base's ONBUILD triggers, its instructions, then the `--label`
    /// steps (`labels`, for the last stage only).
    pub(super) fn stage(
        &mut self,
        instructions: &[&Instruction],
        labels: &[(String, String)],
    ) -> Result<()> {
        let from = instructions[0];
        self.header(from)?;
        let Args::Words(w) = &from.args else {
            unreachable!("checked by plan")
        };
        let globals: BTreeMap<String, String> = self
            .global_args
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        let base = self.lexer.expand_word(&w[0], &globals)?;
        let mut img = if base.eq_ignore_ascii_case("scratch") {
            Img::scratch()
        } else if let Some((_, img)) = self
            .done
            .iter()
            .rev()
            .find(|(n, _)| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&base)))
        {
            img.clone()
        } else {
            self.image(&base)?
        };
        if img.id != "scratch" {
            self.say(&format!(" ---> {}", img.short()))?;
        }
        add_default_path(&mut img);
        let triggers = img.strings("OnBuild");
        if !triggers.is_empty() {
            // The triggers run in this (the child's) build, and only here: the child's
            // config forgets them, so a grandchild does not run them again.
            img.cfg().remove("OnBuild");
        }
        let mut st = Stage {
            name: stage_name(from).map(str::to_string),
            img,
            args: BTreeMap::new(),
            cmd_set: false,
        };
        if !triggers.is_empty() {
            let s = if triggers.len() == 1 { "" } else { "s" };
            self.say(&format!("# Executing {} build trigger{s}", triggers.len()))?;
            for t in &triggers {
                let df =
                    crate::parse(t).map_err(|e| anyhow!("ONBUILD trigger {t:?}: {}", e.message))?;
                for ins in &df.instructions {
                    validate(ins).map_err(|m| anyhow!("ONBUILD trigger {t:?}: {m}"))?;
                    self.instruction(&mut st, ins)
                        .with_context(|| format!("running the ONBUILD trigger {t:?}"))?;
                }
            }
        }
        for ins in &instructions[1..] {
            self.header(ins)?;
            self.instruction(&mut st, ins)?;
        }
        for (k, v) in labels {
            self.step += 1;
            let line = format!("Step {}/{} : LABEL {k}={v}", self.step, self.total);
            self.say(&line)?;
            self.label(&mut st, k, v)?;
        }
        self.done.push((st.name, st.img));
        Ok(())
    }

    /// One instruction of a stage: `ARG`, `RUN`, `COPY`/`ADD` and `WORKDIR` have chapters of
    /// their own; the others only change the config (`config.rs`).
    fn instruction(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        match ins.keyword {
            Keyword::From => unreachable!("FROM starts a stage"),
            Keyword::Arg => self.arg(st, ins),
            Keyword::Run => self.run(st, ins),
            Keyword::Copy | Keyword::Add => self.copy(st, ins),
            Keyword::Workdir => self.workdir(st, ins),
            Keyword::Env | Keyword::Label => self.env_or_label(st, ins),
            Keyword::Maintainer => self.maintainer(st, ins),
            Keyword::Cmd | Keyword::Entrypoint => self.cmd_or_entrypoint(st, ins),
            Keyword::Shell => self.shell(st, ins),
            Keyword::User => self.user(st, ins),
            Keyword::Stopsignal => self.stopsignal(st, ins),
            Keyword::Expose => self.expose(st, ins),
            Keyword::Volume => self.volume(st, ins),
            Keyword::Healthcheck => self.set_healthcheck(st, ins),
            Keyword::Onbuild => self.onbuild(st, ins),
        }
    }
}

// ANCHOR: default_path
/// A stage whose base image sets no `PATH` gets Docker's default one in its config, as
/// moby's classic builder does when a stage begins (`dispatchState.beginStage`). A rootfs
/// made by `import`, or `FROM scratch`, has no `Env` at all; without this, `RUN apk add`
/// would find no program, `ENV PATH=/opt/bin:$PATH` would drop the system directories, and
/// the image would run differently under `docker run` than in its own build. It goes at the
/// end of `Env`, where docker appends it, and it is in the config of every step after it,
/// so the final image keeps it. A stage with no step after `FROM` is its base image
/// unchanged, as in docker: nothing is committed, so nothing is added.
fn add_default_path(img: &mut Img) {
    if img.env().iter().any(|(k, _)| k == "PATH") {
        return;
    }
    let mut env = img.strings("Env");
    env.push(format!("PATH={DEFAULT_PATH}"));
    img.cfg().insert("Env".into(), json!(env));
}
// ANCHOR_END: default_path
