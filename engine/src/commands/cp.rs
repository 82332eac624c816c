//! `dockyard cp SRC DEST`: which side is the container's, as docker reads
//! the two arguments. The copy itself, and why it is safe against a
//! hostile container, is the core's (`dockyard::container::copy_in` and
//! `copy_out`, in `engine/src/container/copy.rs`).

use std::path::PathBuf;

use anyhow::{bail, Result};

use dockyard::container::{copy_in, copy_in_tar, copy_out, copy_out_tar};
use dockyard::Engine;

/// One side of `cp`: `CONTAINER:PATH` or a host path.
pub enum Side {
    Container(String, PathBuf),
    Host(PathBuf),
}

/// Parse an argument of `cp` as docker does: `NAME:PATH` names a container
/// path (a path with a `:` before any `/`), anything else is a host path.
pub fn parse_side(arg: &str) -> Side {
    match arg.split_once(':') {
        Some((name, path)) if !name.is_empty() && !name.contains('/') => Side::Container(
            name.to_string(),
            PathBuf::from(if path.is_empty() { "/" } else { path }),
        ),
        _ => Side::Host(PathBuf::from(arg)),
    }
}

/// `dockyard cp SRC DEST`.
pub fn cp(engine: &Engine, src: &str, dest: &str) -> Result<()> {
    // `-`: a tar stream on stdin (into a container's directory) or on
    // stdout (out of a container), as docker's `cp` takes it.
    match (src, parse_side(dest), parse_side(src), dest) {
        ("-", Side::Container(name, path), ..) => {
            return copy_in_tar(engine, std::io::stdin().lock(), &name, &path);
        }
        (_, _, Side::Container(name, path), "-") => {
            return copy_out_tar(engine, &name, &path, std::io::stdout().lock());
        }
        ("-", ..) | (.., "-") => bail!("must specify at least one container source"),
        _ => {}
    }
    match (parse_side(src), parse_side(dest)) {
        (Side::Container(name, path), Side::Host(to)) => copy_out(engine, &name, &path, &to),
        (Side::Host(from), Side::Container(name, path)) => copy_in(engine, &from, &name, &path),
        (Side::Container(..), Side::Container(..)) => {
            bail!("copying between containers is not supported")
        }
        (Side::Host(..), Side::Host(..)) => bail!("must specify at least one container source"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_colon_before_any_slash_names_a_container() {
        let container = |s: &str| match parse_side(s) {
            Side::Container(n, p) => Some((n, p)),
            Side::Host(_) => None,
        };
        assert_eq!(container("web:/etc"), Some(("web".into(), "/etc".into())));
        assert_eq!(container("web:"), Some(("web".into(), "/".into())));
        assert_eq!(container("./a:b"), None, "a path with a slash first");
        assert_eq!(container(":x"), None);
        assert_eq!(container("/tmp/file"), None);
    }
}
