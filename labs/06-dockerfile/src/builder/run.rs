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
//!
//! Roughly, because two things of a container matter here as in docker's classic builder:
//! its environment (`HOSTNAME`, the image's `Env`, the build args, `HOME` from the image's
//! passwd file: [`run_env`]), and the image's `VOLUME`s, which docker mounts over their
//! paths, so that what the command writes there never reaches the commit
//! ([`discard_volumes`]).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;

use super::image::write_layer;
use super::{Builder, Stage, PROXY_ARGS};
use crate::cache;
use crate::layers::{self, LayerView, Tree};
use crate::parser::{Args, Instruction};
use crate::runstep::{random_id, RunStep};
use lab04_overlay::diff::TreeKind;

/// A `RUN` whose command exited non-zero. Its message is Docker's classic builder's
/// (moby `builder/dockerfile/dispatchers.go`, `dispatchRun`), and `docker build` exits with the
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
        let script = match &ins.args {
            Args::Shell(s) => shebang_script(s, ins),
            _ => None,
        };
        let argv = match (&ins.args, &script) {
            (Args::Exec(v), _) => v.clone(),
            (Args::Shell(_), Some((path, _))) => {
                let mut v = st.img.shell();
                v.push(format!("/{}", path.display()));
                v
            }
            (Args::Shell(s), None) => {
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
        if self.probe(st, &key, &created_by, &|_| Ok(()))? {
            return Ok(());
        }
        let id = random_id()?;
        let view = self.view(&st.img)?;
        let env = run_env(st, &args, &id[..12], &view, &user);
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
            mountpoints: volume_dirs(st, &view)?,
            files: script_files(&view, script.as_ref())?,
            host_network: self.opts.network == super::Network::Host,
            memory: self.opts.memory,
            limits: self.opts.limits.clone(),
            hosts: self.opts.hosts.clone(),
            shm_size: self.opts.shm_size,
            rlimits: self.opts.rlimits.clone(),
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
        discard_volumes(st, &view, &finished.upper())?;
        if self.opts.hosts.is_some() {
            drop_mountpoint(&view, &finished.upper(), Path::new("/etc/hosts"))?;
        }
        if script.is_some() {
            // The script was the step's input, not its output.
            let dir = finished.upper().join(SCRIPT_DIR);
            fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        // A command that changed nothing makes no layer: docker's commit of an empty diff
        // is a history entry with `empty_layer: true` (moby's `NewChildImage`).
        let changed = fs::read_dir(finished.upper())
            .context("reading the step's upper dir")?
            .next()
            .is_some();
        let tar = finished.work.path.join("layer.tar.gz");
        if changed {
            write_layer(&finished.upper(), &tar, TreeKind::Upper)?;
        }
        let layer = changed.then_some(tar.as_path());
        self.finish_step(st, &key, &created_by, layer, |_| Ok(()))
    }
    // ANCHOR_END: run
}

// ANCHOR: run_env
/// The environment of a RUN step's container, as docker's daemon and runc make it: the
/// daemon starts from `PATH` and `HOSTNAME` (the container's short ID), puts the image's
/// `Env` over them (replacing a name it has, appending the others), then the build args
/// the stage declared; runc adds `HOME` from the user's `/etc/passwd` entry when nothing set
/// it (`/root` for root; `/` for a user the file does not list). So `RUN echo $HOME`
/// prints `/root`, and `RUN env` shows what a `docker build` would.
fn run_env(
    st: &Stage,
    args: &[(String, String)],
    hostname: &str,
    view: &LayerView,
    user: &str,
) -> Vec<String> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), lab01_chroot::DEFAULT_PATH.into()),
        ("HOSTNAME".into(), hostname.into()),
    ];
    for (k, v) in st.img.env().into_iter().chain(args.iter().cloned()) {
        match env.iter_mut().find(|(name, _)| *name == k) {
            Some(e) => e.1 = v,
            None => env.push((k, v)),
        }
    }
    if !env.iter().any(|(k, _)| k == "HOME") {
        env.push(("HOME".into(), home_of(view, user)));
    }
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// The home directory of `user` (`name` or `uid`, with an optional `:group`) in the
/// image's `/etc/passwd`; root when empty; `/` when the file does not list the user, as
/// runc's `GetExecUserPath` defaults it.
fn home_of(view: &LayerView, user: &str) -> String {
    let name = user.split(':').next().unwrap_or("");
    let name = if name.is_empty() { "0" } else { name };
    let passwd = layers::read_image_file(view, "/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && (f[0] == name || f[2] == name))
        .map(|f| f[5].to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".into())
}
// ANCHOR_END: run_env

// ANCHOR: discard_volumes
/// What a RUN wrote under a declared `VOLUME` is not in the image. Docker's classic builder
/// runs each RUN in a container whose volumes are mounted over those paths (fresh anonymous
/// volumes, filled from the image), so the command's writes there land in the volume, and
/// `docker commit` leaves volumes out. The same command here wrote into the upper dir, so
/// the builder throws those changes away: the copy of the volume's directory, its
/// contents, whiteouts of what was deleted. A volume directory the image did not have stays,
/// emptied, as the mountpoint docker would have created.
fn discard_volumes(st: &Stage, view: &LayerView, upper: &Path) -> Result<()> {
    for rel in volume_dirs(st, view)? {
        let at = upper.join(&rel);
        let Ok(meta) = fs::symlink_metadata(&at) else {
            continue;
        };
        let in_image = view.lookup(&rel).is_some_and(|(_, m)| m.is_dir());
        if meta.is_dir() && !in_image {
            for e in fs::read_dir(&at).with_context(|| format!("listing {}", at.display()))? {
                let p = e?.path();
                if fs::symlink_metadata(&p)?.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                }
                .with_context(|| format!("discarding {} (under a VOLUME)", p.display()))?;
            }
        } else if meta.is_dir() {
            fs::remove_dir_all(&at)
                .with_context(|| format!("discarding {} (a VOLUME)", at.display()))?;
        } else {
            fs::remove_file(&at)
                .with_context(|| format!("discarding {} (a VOLUME)", at.display()))?;
        }
    }
    Ok(())
}
// ANCHOR_END: discard_volumes

// ANCHOR: drop_mountpoint
/// The step's `/etc/hosts` is a bind of a file of the step: whatever the command wrote
/// there is in that file, not in the upper dir. But when the image has no `/etc/hosts`, lab
/// 02 made an empty file to mount over, in the upper dir (with `/etc` too, if the image has
/// none, or a copy-up of the image's `/etc` to hold it). Docker makes these mountpoints in
/// an "init" layer of the container, below the layer it commits, so they are never in the
/// image: the builder takes them out here. A directory stays if the step put anything in
/// it, or changed its mode or owner.
fn drop_mountpoint(view: &LayerView, upper: &Path, path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let rel = layers::resolve_in_scope(view, path, false)?;
    if view.lookup(&rel).is_some() {
        return Ok(()); // the image's own file was the mountpoint: nothing was made
    }
    let file = upper.join(&rel);
    match fs::symlink_metadata(&file) {
        Ok(m) if m.is_file() && m.len() == 0 => {
            fs::remove_file(&file).with_context(|| format!("removing {}", file.display()))?
        }
        _ => return Ok(()),
    }
    for dir in rel.ancestors().skip(1) {
        if dir.as_os_str().is_empty() {
            break;
        }
        let at = upper.join(dir);
        let Ok(meta) = fs::symlink_metadata(&at) else {
            break;
        };
        let empty = meta.is_dir() && fs::read_dir(&at)?.next().is_none();
        let unchanged = match view.lookup(dir) {
            None => true,
            Some((_, image)) => {
                (image.mode(), image.uid(), image.gid()) == (meta.mode(), meta.uid(), meta.gid())
            }
        };
        if !(empty && unchanged) {
            break;
        }
        fs::remove_dir(&at).with_context(|| format!("removing {}", at.display()))?;
    }
    Ok(())
}
// ANCHOR_END: drop_mountpoint

/// The image's VOLUME paths, relative to its root, symlinks resolved in the image, as the
/// daemon mounts them (`VOLUME /` is left out: docker refuses to mount over the root).
fn volume_dirs(st: &Stage, view: &LayerView) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if let Some(volumes) = st.img.get("Volumes").as_object() {
        for path in volumes.keys() {
            let rel = layers::resolve_in_scope(view, Path::new(path), true)?;
            if !rel.as_os_str().is_empty() {
                out.push(rel);
            }
        }
    }
    Ok(out)
}

// ANCHOR: shebang
/// Where a heredoc script is put for its RUN: buildkit mounts it at `/dev/pipes/NAME`;
/// here `/dev` is the container's own tmpfs, so a directory of the root that the image does
/// not have, written before the command runs and removed from the layer after it.
const SCRIPT_DIR: &str = ".dockyard-pipes";

/// A bare `RUN <<EOF` whose body starts with `#!`: buildkit writes the body to a file and
/// runs the file (`/bin/sh -c /dev/pipes/EOF`), so the kernel starts the interpreter the
/// first line names, `#!/usr/bin/env python3` included. Returns the file's path in the
/// root and its body (with `<<-`, tabs stripped).
fn shebang_script(line: &str, ins: &Instruction) -> Option<(PathBuf, String)> {
    let doc = ins.heredocs.first()?;
    let bare = ins.heredocs.len() == 1 && bare_heredoc_name(line) == Some(doc.name.as_str());
    let body = doc.body();
    if !bare || !body.starts_with("#!") {
        return None;
    }
    // The file is named after the heredoc, as in buildkit, when that is a plain name.
    let plain = doc
        .name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    let name = if plain && !doc.name.starts_with('.') && !doc.name.is_empty() {
        &doc.name
    } else {
        "script"
    };
    Some((Path::new(SCRIPT_DIR).join(name), body))
}

/// The script file of [`shebang_script`], if any; refused if the image has the directory
/// already (writing there could follow the image's symlinks out of its root).
fn script_files(
    view: &LayerView,
    script: Option<&(PathBuf, String)>,
) -> Result<Vec<(PathBuf, String)>> {
    let Some((path, body)) = script else {
        return Ok(Vec::new());
    };
    if view.lookup(Path::new(SCRIPT_DIR)).is_some() {
        anyhow::bail!(
            "RUN <<: the image has /{SCRIPT_DIR}, where this builder puts heredoc scripts"
        );
    }
    Ok(vec![(path.clone(), body.clone())])
}
// ANCHOR_END: shebang

/// The name of the heredoc a RUN line is made of alone (`<<EOF`, `<<-"EOF"`), if it is.
fn bare_heredoc_name(line: &str) -> Option<&str> {
    let rest = line.trim().strip_prefix("<<")?;
    let name = rest.trim_start_matches('-').trim_matches(['"', '\'']);
    (!name.is_empty() && !name.contains(char::is_whitespace)).then_some(name)
}

/// `RUN` in shell form with heredocs is one script for the shell, bodies included:
/// `RUN cat <<EOF` ... `EOF` runs `sh -c 'cat <<EOF\n...\nEOF\n'`. A bare `RUN <<EOF`
/// runs the body itself as the script.
fn heredoc_script(line: &str, ins: &Instruction) -> String {
    if ins.heredocs.is_empty() {
        return line.to_string();
    }
    if ins.heredocs.len() == 1 && bare_heredoc_name(line) == Some(ins.heredocs[0].name.as_str()) {
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
    fn a_bare_heredoc_with_a_shebang_is_a_file() {
        let df = crate::parse(
            "FROM x\nRUN <<-PY\n\t#!/usr/bin/env python3\n\tprint(1)\n\tPY\nRUN <<EOF\necho hi\nEOF\n\
             RUN cat <<EOF\n#!/bin/sh\nEOF\n",
        )
        .unwrap();
        let script = |i: usize| {
            let ins = &df.instructions[i];
            let Args::Shell(s) = &ins.args else { panic!() };
            shebang_script(s, ins)
        };
        assert_eq!(
            script(1),
            Some((
                PathBuf::from(".dockyard-pipes/PY"),
                "#!/usr/bin/env python3\nprint(1)\n".to_string()
            ))
        );
        assert_eq!(
            script(2),
            None,
            "no shebang: the body is the shell's script"
        );
        assert_eq!(script(3), None, "not bare: the line is the command");
    }

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
