//! Break-it experiments: the book asks the learner to edit a lab, rebuild it and watch what
//! breaks. Each edit is a patch in `book/src/breakit/`, shown in its chapter with
//! `{{#include breakit/NAME.patch}}`, and the chapter's session applies it, rebuilds, runs the
//! experiment and takes the edit back, as a learner would:
//!
//! ```text
//! # git apply book/src/breakit/ch01-keep-the-old-root.patch && cargo build -q -p lab01-chroot
//! # lab01-chroot --pivot ... (what breaks)
//! # git apply -R book/src/breakit/ch01-keep-the-old-root.patch && cargo build -q -p lab01-chroot
//! ```
//!
//! Such a block changes the source tree and the built binaries, which every later test uses. So
//! the one-shell run counts an applied patch as part of the terminal's state ([`STATE_FN`]): a
//! block that leaves one applied fails at its fence, like a block that leaves a `cd`. And the
//! book test takes back whatever a failed or killed run left applied ([`restore`]), before the
//! first session and after the last, and rebuilds the binaries from the clean tree.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// Where the patches are, relative to the workspace root.
pub const BREAKIT_DIR: &str = "book/src/breakit";

/// A bash function for the one-shell run's state probe: one `patched PATH` line per patch that
/// is applied now (`git apply -R --check` succeeds only on a tree that has it). It looks from
/// the workspace root, `$1`, whatever directory the block left the shell in.
pub const STATE_FN: &str = r#"__dockyard_booktest_patched() {
  local p
  for p in "$1"/book/src/breakit/*.patch; do
    [ -e "$p" ] || continue
    (cd -- "$1" && git apply -R --check "$p" >/dev/null 2>&1) && printf 'patched %s\n' "${p#"$1"/}"
  done
  return 0
}
"#;

/// Every break-it patch, sorted by name.
pub fn patches(root: &Path) -> Result<Vec<PathBuf>> {
    let dir = root.join(BREAKIT_DIR);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "patch"))
        .collect();
    found.sort();
    Ok(found)
}

/// `git apply [ARGS] PATCH` in `root`; whether it succeeded, and what it said.
fn git_apply(root: &Path, args: &[&str], patch: &Path) -> Result<(bool, String)> {
    let out = Command::new("git")
        .arg("apply")
        .args(args)
        .arg(patch)
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .context("running git apply")?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Whether `patch` applies to the tree as it is now (`git apply --check`), and if not, git's
/// words for why.
pub fn applies(root: &Path, patch: &Path) -> Result<Result<(), String>> {
    let (ok, said) = git_apply(root, &["--check"], patch)?;
    Ok(if ok { Ok(()) } else { Err(said) })
}

/// Whether the tree has `patch` applied now.
pub fn is_applied(root: &Path, patch: &Path) -> Result<bool> {
    Ok(git_apply(root, &["-R", "--check"], patch)?.0)
}

/// Takes back every patch that is applied and, if there was one, rebuilds the workspace's
/// binaries from the clean tree. Returns the patches it took back.
pub fn restore(root: &Path) -> Result<Vec<PathBuf>> {
    let mut taken_back = Vec::new();
    for patch in patches(root)? {
        if is_applied(root, &patch)? {
            let (ok, said) = git_apply(root, &["-R"], &patch)?;
            if !ok {
                bail!("taking back {}: {said}", patch.display());
            }
            taken_back.push(patch);
        }
    }
    if !taken_back.is_empty() {
        // As a learner's terminal would run it (see `as_a_learner`), so the build is fresh.
        let status = super::as_a_learner(&mut Command::new("cargo"))
            .args(["build", "--workspace", "-q"])
            .current_dir(root)
            .status()
            .context("running cargo build --workspace")?;
        if !status.success() {
            bail!("cargo build --workspace failed after taking the break-it patches back");
        }
    }
    Ok(taken_back)
}

/// The break-it patches named by `git apply` in `text` (a session command), as paths relative
/// to the workspace root.
pub fn named_in(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for piece in text.split("git apply").skip(1) {
        if let Some(word) = piece
            .split_whitespace()
            .find(|w| w.starts_with(BREAKIT_DIR))
        {
            names.push(word.trim_end_matches([';', '&', ')']).to_string());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_in_finds_the_patches_of_apply_and_take_back() {
        assert_eq!(
            named_in("git apply book/src/breakit/a.patch && cargo build -q -p x"),
            ["book/src/breakit/a.patch"]
        );
        assert_eq!(
            named_in("git apply -R book/src/breakit/b.patch; git apply book/src/breakit/c.patch"),
            ["book/src/breakit/b.patch", "book/src/breakit/c.patch"]
        );
        assert!(named_in("lab01-chroot --pivot").is_empty());
    }
}
