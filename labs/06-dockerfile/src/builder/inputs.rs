//! What a build reads: the build context and the Dockerfile.
//!
//! The context is a directory, a tar archive (plain, or compressed with gzip, bzip2, xz or
//! zstd), or a tar on standard input
//! (`docker build - < context.tar`), which is unpacked into a work directory first. Standard
//! input can also be the Dockerfile alone (`docker build - < Dockerfile`): a build with no
//! context at all. The Dockerfile is `-f FILE` (relative to the current directory, or inside
//! an archive context), else `CONTEXT/Dockerfile`. Remote contexts (git and HTTP URLs)
//! are refused: this builder has no network.

use std::fs;
use std::io::Read;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use super::BuildOptions;
use crate::archive::{self, Compression};
use crate::context::BuildContext;
use crate::runstep::WorkDir;
use lab04_overlay::Store;

pub(super) fn is_remote(s: &str) -> bool {
    [
        "http://",
        "https://",
        "git://",
        "git@",
        "github.com/",
        "ssh://",
    ]
    .iter()
    .any(|p| s.starts_with(p))
}

/// Whether bytes start like a tar archive, or a compressed file (which we take to hold one).
fn looks_like_tar(head: &[u8]) -> bool {
    Compression::detect(head) != Compression::None || archive::is_tar_header(head)
}

/// Unpacks a context archive (plain, gzip, bzip2, xz or zstd) into a work directory (the
/// tar crate refuses `..` and absolute names, so nothing lands outside it).
fn unpack_context(store: &Store, bytes: &[u8]) -> Result<WorkDir> {
    let work = WorkDir::new(store, "context")?;
    let scratch = WorkDir::new(store, "context-xz")?;
    let (reader, _) = archive::decompress(bytes, &scratch.path)?;
    tar::Archive::new(reader)
        .unpack(&work.path)
        .context("unpacking the build context archive")?;
    Ok(work)
}

/// The context, and the Dockerfile if it came on standard input instead of a context.
pub(super) fn prepare_context(
    store: &Store,
    opts: &BuildOptions,
) -> Result<(Option<WorkDir>, BuildContext, Option<String>)> {
    let c = opts.context.as_str();
    if is_remote(c) {
        bail!(
            "unable to prepare context: {c}: remote contexts (git and HTTP URLs) are not \
             supported here: this builder has no network (clone or download it, and build the \
             directory)"
        );
    }
    if c == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading the build context from standard input")?;
        if looks_like_tar(&bytes) {
            let work = unpack_context(store, &bytes)?;
            let ctx = BuildContext::open(&work.path)?;
            return Ok((Some(work), ctx, None));
        }
        // `build - < Dockerfile`: a Dockerfile and no context at all.
        let text =
            String::from_utf8(bytes).context("the Dockerfile on standard input is not UTF-8")?;
        let work = WorkDir::new(store, "context")?;
        let ctx = BuildContext::empty(&work.path);
        return Ok((Some(work), ctx, Some(text)));
    }
    let path = Path::new(c);
    if path.is_file() {
        let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        if !looks_like_tar(&bytes) {
            bail!("unable to prepare context: {c} is neither a directory nor a tar archive");
        }
        let work = unpack_context(store, &bytes)?;
        let ctx = BuildContext::open(&work.path)?;
        return Ok((Some(work), ctx, None));
    }
    Ok((None, BuildContext::open(path)?, None))
}

/// The Dockerfile's text, and the name errors show for it.
pub(super) fn read_dockerfile(
    opts: &BuildOptions,
    ctx: &BuildContext,
    from_stdin: Option<String>,
) -> Result<(String, String)> {
    if let Some(text) = from_stdin {
        if opts.dockerfile.is_some() {
            bail!("-f cannot be used when the Dockerfile comes on standard input");
        }
        return Ok(("Dockerfile".into(), text));
    }
    let path = match &opts.dockerfile {
        Some(f) if f.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the Dockerfile from standard input")?;
            return Ok(("Dockerfile".into(), text));
        }
        // Relative to the current directory, as docker does; for an archive context,
        // inside the archive.
        Some(f) if f.is_absolute() || f.exists() => f.clone(),
        Some(f) => ctx.root.join(f),
        None => ctx.root.join("Dockerfile"),
    };
    let bytes = fs::read(&path).with_context(|| {
        format!(
            "unable to prepare context: unable to evaluate symlinks in Dockerfile path: \
             lstat {}: no such file or directory",
            path.display()
        )
    })?;
    let shown = path.display().to_string();
    let text = String::from_utf8(bytes).map_err(|e| {
        let upto = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = upto.iter().filter(|b| **b == b'\n').count() + 1;
        anyhow!("{shown}:{line}: the file is not valid UTF-8")
    })?;
    Ok((shown, text))
}
