//! `COPY`, `ADD` and `WORKDIR`: layers made without a container.
//!
//! The files go into a staging directory laid out like the image (the destination's
//! parents as the image has them, symlinks resolved inside the image, never outside it),
//! and the staging directory becomes the layer. `COPY --from` reads another stage or image
//! through its layers, as overlayfs would (see [`crate::layers`]); `ADD` also unpacks a
//! local tar archive. The cache key includes a digest of the copied files, so editing a
//! file in the context invalidates the step, and touching one does not.
//!
//! ```text
//! COPY --chown=app:app src/ /app/      # src's contents into /app, owned by app
//! ADD  rootfs.tar.gz /                 # unpacked
//! COPY --from=build /out/bin /usr/bin/ # from an earlier stage
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;

use super::check::flags;
use super::image::{write_layer, Img};
use super::inputs::is_remote;
use super::{Builder, Stage};
use crate::cache;
use crate::context;
use crate::layers::{self, CopyOptions, LayerView, Staging, Tree};
use crate::parser::{Args, Heredoc, Instruction, Keyword};
use crate::runstep::WorkDir;
use lab04_overlay as overlay;
use overlay::diff::TreeKind;

impl Builder<'_> {
    /// `WORKDIR`: relative to the previous one; created (as a layer) if the image lacks it.
    pub(super) fn workdir(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let Args::Shell(w) = &ins.args else {
            unreachable!("validated")
        };
        let w = self.expand(st, w)?;
        let joined = Path::new(&st.img.workdir()).join(&w);
        let path = format!("/{}", context::clean(&joined.to_string_lossy()).display());
        let created_by = format!("/bin/sh -c #(nop) WORKDIR {path}");
        let key = cache::key(&[&st.img.id, &created_by]);
        let change = |img: &mut Img| {
            img.cfg().insert("WorkingDir".into(), json!(path));
            Ok(())
        };
        if self.probe(st, &key, &created_by, &change)? {
            return Ok(());
        }
        let view = self.view(&st.img)?;
        let rel = layers::resolve_in_scope(&view, Path::new(&path), true)?;
        let exists = view.lookup(&rel).is_some_and(|(_, m)| m.is_dir());
        let work = WorkDir::new(self.store, "workdir")?;
        let tar = work.path.join("layer.tar.gz");
        let layer = if exists || rel.as_os_str().is_empty() {
            None
        } else {
            let staging = Staging {
                dir: work.path.join("stage"),
            };
            fs::create_dir(&staging.dir)?;
            staging.ensure_dir(&view, &rel)?;
            write_layer(&staging.dir, &tar, TreeKind::Plain)?;
            Some(tar.as_path())
        };
        self.finish_step(st, &key, &created_by, layer, change)
    }

    /// The image a `COPY --from` names: a stage (by name or number) or an image.
    fn source_image(&self, from: &str) -> Result<Img> {
        if let Some((_, img)) = self
            .done
            .iter()
            .find(|(n, _)| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(from)))
        {
            return Ok(img.clone());
        }
        if let Ok(i) = from.parse::<usize>() {
            return match self.done.get(i) {
                Some((_, img)) => Ok(img.clone()),
                None => bail!("COPY --from={i}: there is no stage {i} before this one"),
            };
        }
        self.image(from)
    }
}

/// A COPY source: a path in the context (or another image), or a heredoc's body.
enum Source {
    Path(PathBuf),
    Heredoc(String, String),
}

/// A `COPY` or `ADD` as written, its words and flags expanded.
struct CopyArgs {
    /// `--from`, `--chown`, `--chmod` as given: they go into the history line.
    flags: BTreeMap<String, String>,
    /// The sources, expanded; a heredoc's `<<EOF` stays as it is.
    sources: Vec<String>,
    dest: String,
    from: Option<String>,
    chmod: Option<u32>,
    chown: Option<String>,
}

/// The heredoc a `<<EOF` (or `<<-"EOF"`) word of the instruction names.
fn heredoc_of<'a>(ins: &'a Instruction, word: &str) -> Option<&'a Heredoc> {
    let name = word.strip_prefix("<<")?.trim_start_matches('-');
    let name = name.trim_matches(['"', '\'']);
    ins.heredocs.iter().find(|h| h.name == name)
}

impl Builder<'_> {
    // ANCHOR: copy
    /// `COPY` and `ADD`: files from the context (or a stage) into a new layer.
    pub(super) fn copy(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let add = ins.keyword == Keyword::Add;
        let vars = self.vars(st);
        let args = self.copy_args(ins, &vars)?;

        // Where the files come from, and what identifies their content.
        let from_img = args
            .from
            .as_deref()
            .map(|n| self.source_image(n))
            .transpose()?;
        let tree: Box<dyn Tree> = match &from_img {
            Some(img) => Box::new(self.view(img)?),
            None => Box::new(self.context.clone()),
        };
        let sources = self.copy_sources(ins, &args, &vars, from_img.is_some(), tree.as_ref())?;
        let content = match &from_img {
            Some(img) => img.id.clone(),
            None => self.context_digest(&sources)?,
        };
        let dest_dir_form =
            args.dest.ends_with('/') || args.dest.ends_with("/.") || args.dest == ".";
        if sources.len() > 1 && !dest_dir_form {
            bail!(
                "When using {} with more than one source file, the destination must be a \
                 directory and end with a /",
                ins.keyword
            );
        }
        let abs = Path::new(&st.img.workdir()).join(&args.dest);
        let flags_text: Vec<String> = args
            .flags
            .iter()
            .map(|(k, v)| format!("--{k}={v}"))
            .collect();
        let created_by = copy_created_by(ins, &flags_text, &sources, tree.as_ref(), &content, &abs);
        let bodies: Vec<String> = sources
            .iter()
            .map(|s| match s {
                Source::Path(p) => p.display().to_string(),
                Source::Heredoc(n, b) => format!("<<{n}\n{b}"),
            })
            .collect();
        let key = cache::key(&[
            &st.img.id,
            &created_by,
            &json!(bodies).to_string(),
            &json!(flags_text).to_string(),
        ]);
        if self.probe(st, &key, &created_by, &|_| Ok(()))? {
            return Ok(());
        }

        let view = self.view(&st.img)?;
        let owner = match &args.chown {
            Some(spec) => Some(layers::resolve_owner(&view, spec)?),
            None => None,
        };
        let work = WorkDir::new(self.store, "copy")?;
        let staging = Staging {
            dir: work.path.join("stage"),
        };
        fs::create_dir(&staging.dir)?;
        let rel = layers::resolve_in_scope(&view, &abs, true)?;
        let is_dir = dest_dir_form || view.lookup(&rel).is_some_and(|(_, m)| m.is_dir());
        let dest = Destination {
            view: &view,
            staging: &staging,
            rel,
            is_dir,
            opts: CopyOptions {
                owner,
                chmod: args.chmod,
            },
            scratch: &work.path,
        };
        for s in &sources {
            match s {
                Source::Heredoc(name, body) => dest.put_heredoc(name, body)?,
                // ADD unpacks local tar archives; from another image, it copies them.
                Source::Path(rel) => {
                    dest.put_path(tree.as_ref(), rel, add && from_img.is_none())?
                }
            }
        }
        let tar = work.path.join("layer.tar.gz");
        write_layer(&staging.dir, &tar, TreeKind::Plain)?;
        self.finish_step(st, &key, &created_by, Some(&tar), |_| Ok(()))
    }

    /// The words and flags of a `COPY` or `ADD`, expanded with the stage's variables.
    fn copy_args(&self, ins: &Instruction, vars: &BTreeMap<String, String>) -> Result<CopyArgs> {
        let f = flags(ins).map_err(|m| anyhow!(m))?;
        let words = match &ins.args {
            Args::Exec(v) | Args::Words(v) => v.clone(),
            _ => unreachable!("validated"),
        };
        let mut expanded = Vec::new();
        for w in &words {
            expanded.push(match heredoc_of(ins, w) {
                Some(_) => w.clone(),
                None => self.lexer.expand_word(w, vars)?,
            });
        }
        let dest = expanded.pop().expect("validated: at least two words");
        let from = f
            .get("from")
            .map(|v| self.lexer.expand_word(v, vars))
            .transpose()?;
        let chmod = match f.get("chmod") {
            Some(m) => Some(u32::from_str_radix(m, 8).map_err(|_| {
                anyhow!("invalid chmod parameter {m:?}: it must be an octal mode such as 0755")
            })?),
            None => None,
        };
        let chown = f
            .get("chown")
            .map(|v| self.lexer.expand_word(v, vars))
            .transpose()?;
        Ok(CopyArgs {
            flags: f,
            sources: expanded,
            dest,
            from,
            chmod,
            chown,
        })
    }

    /// The sources a `COPY` names: heredoc bodies, paths in the image of `--from`, or the
    /// context's files that match each pattern (`*.txt`), which must exist.
    fn copy_sources(
        &self,
        ins: &Instruction,
        args: &CopyArgs,
        vars: &BTreeMap<String, String>,
        from_image: bool,
        tree: &dyn Tree,
    ) -> Result<Vec<Source>> {
        let add = ins.keyword == Keyword::Add;
        let mut sources: Vec<Source> = Vec::new();
        for s in &args.sources {
            if let Some(doc) = heredoc_of(ins, s) {
                let body = if doc.expand {
                    self.lexer
                        .expand_word(&doc.body(), vars)
                        .unwrap_or_else(|_| doc.body())
                } else {
                    doc.body()
                };
                sources.push(Source::Heredoc(doc.name.clone(), body));
            } else if add && is_remote(s) {
                bail!(
                    "ADD {s}: downloading from a URL is not supported here (no network): \
                     download it into the build context and ADD or COPY the file"
                );
            } else if from_image {
                let rel = layers::resolve_in_scope(tree, Path::new(s), true)?;
                if tree.lookup(&rel).is_none() {
                    bail!(
                        "COPY --from={}: {s}: no such file or directory in that image",
                        args.from.as_deref().unwrap_or("")
                    );
                }
                sources.push(Source::Path(rel));
            } else {
                let found = self
                    .context
                    .expand_source(s)
                    .map_err(|e| anyhow!("{} failed: {e}", ins.keyword))?;
                sources.extend(found.into_iter().map(Source::Path));
            }
        }
        Ok(sources)
    }

    /// What identifies the content of sources from the context: one digest of their files
    /// (see [`BuildContext::hash_sources`](crate::context::BuildContext::hash_sources)).
    fn context_digest(&self, sources: &[Source]) -> Result<String> {
        let paths: Vec<PathBuf> = sources
            .iter()
            .filter_map(|s| match s {
                Source::Path(p) => Some(p.clone()),
                Source::Heredoc(..) => None,
            })
            .collect();
        self.context.hash_sources(&paths)
    }
}

/// The step's history line, as Docker's classic builder writes it:
/// `/bin/sh -c #(nop) COPY --chown=1:1 file:HASH in /dest ` (`multi:` for several files or
/// a directory).
fn copy_created_by(
    ins: &Instruction,
    flags_text: &[String],
    sources: &[Source],
    tree: &dyn Tree,
    content: &str,
    abs: &Path,
) -> String {
    format!(
        "/bin/sh -c #(nop) {} {}{}:{} in {} ",
        ins.keyword,
        flags_text
            .iter()
            .map(|f| format!("{f} "))
            .collect::<String>(),
        if sources.len() == 1
            && matches!(&sources[0], Source::Path(p) if tree.lookup(p).is_some_and(|(_, m)| !m.is_dir()))
        {
            "file"
        } else {
            "multi"
        },
        content.trim_start_matches("sha256:"),
        abs.display()
    )
}

/// Where a `COPY` puts its sources: a staging directory that becomes the layer, laid out
/// as the image (`view`) has it.
struct Destination<'a> {
    view: &'a LayerView,
    staging: &'a Staging,
    /// The destination, relative to the image's root, symlinks in it resolved in the image.
    rel: PathBuf,
    /// Whether the sources go *into* the destination (a directory) or *become* it.
    is_dir: bool,
    opts: CopyOptions,
    /// A scratch directory of the step (an xz archive is decoded into a file there).
    scratch: &'a Path,
}

impl Destination<'_> {
    /// A directory of the destination in the staging area; the ones the image lacks get
    /// `--chown`'s owner.
    fn ensure(&self, rel_dir: &Path) -> Result<PathBuf> {
        self.staging
            .ensure_dir_owned(self.view, rel_dir, self.opts.owner)
    }

    /// A heredoc's body as a file: root's (or `--chown`'s), mode 0644 (or `--chmod`).
    fn put_heredoc(&self, name: &str, body: &str) -> Result<()> {
        let (dir, file) = if self.is_dir {
            (self.rel.clone(), PathBuf::from(name))
        } else {
            split_last(&self.rel)
        };
        let at = self.ensure(&dir)?.join(file);
        fs::write(&at, body)?;
        let o = self.opts.owner.unwrap_or_default();
        std::os::unix::fs::chown(&at, Some(o.uid), Some(o.gid))?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(
            &at,
            fs::Permissions::from_mode(self.opts.chmod.unwrap_or(0o644)),
        )?;
        Ok(())
    }

    /// A file or directory of `tree`. A directory copies its contents; with `unpack`
    /// (`ADD` from the context), a tar archive is unpacked into the destination.
    fn put_path(&self, tree: &dyn Tree, rel: &Path, unpack: bool) -> Result<()> {
        let (real, meta) = tree
            .lookup(rel)
            .with_context(|| format!("{}: vanished from the build context", rel.display()))?;
        if meta.is_dir() {
            // A directory copies its *contents*, not itself.
            let target = self.ensure(&self.rel)?;
            for name in tree.list(rel)? {
                layers::copy_tree(tree, &rel.join(&name), &target.join(&name), self.opts)?;
            }
        } else if let Some(tar) = match unpack {
            true => crate::archive::open_tar(&real, self.scratch)
                .with_context(|| format!("ADD: reading {}", rel.display()))?,
            false => None,
        } {
            // ADD unpacks a local tar archive (plain, gzip, bzip2, xz or zstd) into the
            // destination directory. The entries keep the archive's owners, and the
            // directories made for it are root's, `--chown` or not: moby's `UntarPath`.
            let target = self.staging.ensure_dir(self.view, &self.rel)?;
            overlay::apply_layer(tar, &target, overlay::Whiteouts::Apply)
                .with_context(|| format!("ADD: unpacking {}", rel.display()))?;
        } else {
            let (dir, file) = if self.is_dir {
                (
                    self.rel.clone(),
                    PathBuf::from(rel.file_name().unwrap_or_default()),
                )
            } else {
                split_last(&self.rel)
            };
            let target = self.ensure(&dir)?;
            layers::copy_tree(tree, rel, &target.join(file), self.opts)?;
        }
        Ok(())
    }
}
// ANCHOR_END: copy

fn split_last(p: &Path) -> (PathBuf, PathBuf) {
    (
        p.parent().map(Path::to_path_buf).unwrap_or_default(),
        PathBuf::from(p.file_name().unwrap_or_default()),
    )
}
