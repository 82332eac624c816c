//! `RUN`: a command in a container on the image so far, whose changes become the layer.
//!
//! The container is [`crate::runstep`]'s: the image's layers as overlay lower dirs, a fresh
//! upper dir, the stage's `ENV`, `WORKDIR` and `USER`, and the build args declared in the
//! stage (which the image does not keep: they are in the step's history line instead, as
//! `|N NAME=value ... command`). When the command exits 0, its upper dir is the layer:
//!
//! ```text
//! docker run --name step IMAGE sh -c 'COMMAND' && docker commit step   # roughly
//! ```

use std::collections::BTreeSet;

use anyhow::Result;
use serde_json::json;

use super::image::write_layer;
use super::{Builder, Stage, PROXY_ARGS};
use crate::cache;
use crate::parser::{Args, Instruction};
use crate::runstep::{random_id, RunStep};
use lab04_overlay::diff::TreeKind;

/// A `RUN` whose command exited non-zero. Its message is Docker's classic builder's
/// (moby `builder/dockerfile/containerbackend.go`), and `docker build` exits with the
/// command's own status, not 1: the CLI turns the daemon's `JSONError{Code: N}` into its
/// exit code. Callers find it with `anyhow::Error::downcast_ref`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFailed {
    /// The command as the container ran it: the shell form with its shell, `/bin/sh -c ...`.
    pub command: String,
    /// Its exit status (128 + N for a signal).
    pub code: i32,
}

impl std::fmt::Display for RunFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "The command '{}' returned a non-zero code: {}",
            self.command, self.code
        )
    }
}

impl std::error::Error for RunFailed {}

impl Builder<'_> {
    /// The build args a RUN sees: those declared in the stage, and the proxy ones.
    fn run_args(&mut self, st: &Stage) -> Vec<(String, String)> {
        let env: BTreeSet<String> = st.img.env().into_iter().map(|(k, _)| k).collect();
        let mut out: Vec<(String, String)> = st
            .args
            .iter()
            .filter(|(k, _)| !env.contains(*k))
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        for p in PROXY_ARGS {
            if let Some(v) = self.build_args.get(p) {
                self.used_args.insert(p.to_string());
                out.push((p.to_string(), v.clone()));
            }
        }
        out
    }

    // ANCHOR: run
    pub(super) fn run(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let argv = match &ins.args {
            Args::Exec(v) => v.clone(),
            Args::Shell(s) => {
                let mut v = st.img.shell();
                v.push(heredoc_script(s, ins));
                v
            }
            _ => unreachable!("validated"),
        };
        // RUN runs as the stage's USER, resolved in the image's passwd file.
        let user = st.img.get("User").as_str().unwrap_or("").to_string();
        let args = self.run_args(st);
        let shown: Vec<String> = args
            .iter()
            .filter(|(k, _)| !PROXY_ARGS.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut created_by = argv.join(" ");
        if !shown.is_empty() {
            created_by = format!("|{} {} {created_by}", shown.len(), shown.join(" "));
        }
        let key = cache::key(&[
            &st.img.id,
            "RUN",
            &json!(argv).to_string(),
            &json!(shown).to_string(),
        ]);
        if self.try_cache(st, &key)? {
            return Ok(());
        }
        // The stage's Env has a PATH: the base image's, or the default one (step.rs).
        let mut env: Vec<String> = st.img.strings("Env");
        env.extend(args.iter().map(|(k, v)| format!("{k}={v}")));
        let id = random_id()?;
        self.say(&format!(" ---> Running in {}", &id[..12]))?;
        let layers = self.layers_of(&st.img)?;
        let finished = RunStep {
            store: self.store,
            layers: &layers,
            argv: argv.clone(),
            env,
            cwd: Some(st.img.workdir()),
            cgroup_parent: self
                .opts
                .cgroup_parent
                .as_deref()
                .unwrap_or(lab03_cgroups::DEFAULT_PARENT),
            id: id.clone(),
            user: user.clone(),
        }
        .run()?;
        if finished.code != 0 {
            return Err(RunFailed {
                command: argv.join(" "),
                code: finished.code,
            }
            .into());
        }
        self.say(&format!("Removing intermediate container {}", &id[..12]))?;
        let tar = finished.work.path.join("layer.tar.gz");
        write_layer(&finished.upper(), &tar, TreeKind::Upper)?;
        self.finish_step(st, &key, &created_by, Some(&tar), |_| Ok(()))
    }
    // ANCHOR_END: run
}

/// `RUN` in shell form with heredocs is one script for the shell, bodies included:
/// `RUN cat <<EOF` ... `EOF` runs `sh -c 'cat <<EOF\n...\nEOF\n'`. A bare `RUN <<EOF`
/// runs the body itself as the script.
fn heredoc_script(line: &str, ins: &Instruction) -> String {
    if ins.heredocs.is_empty() {
        return line.to_string();
    }
    if ins.heredocs.len() == 1
        && line
            .trim()
            .trim_start_matches("<<")
            .trim_start_matches('-')
            .trim_matches(['"', '\''])
            == ins.heredocs[0].name
    {
        return ins.heredocs[0].body();
    }
    let mut s = line.to_string();
    s.push('\n');
    for h in &ins.heredocs {
        s.push_str(&h.content);
        s.push_str(&h.name);
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heredoc_scripts() {
        let df = crate::parse("FROM x\nRUN <<EOF\necho hi\nEOF\nRUN cat <<EOF > /f\nbody\nEOF\n")
            .unwrap();
        let bare = &df.instructions[1];
        let Args::Shell(s) = &bare.args else { panic!() };
        assert_eq!(heredoc_script(s, bare), "echo hi\n");
        let cat = &df.instructions[2];
        let Args::Shell(s) = &cat.args else { panic!() };
        assert_eq!(heredoc_script(s, cat), "cat <<EOF > /f\nbody\nEOF\n");
    }
}
