//! `cp` through the service: both ways a tar stream, as docker's CLI does.
//!
//! ```text
//! cp CTR:/etc/hostname ./h    GET  /containers/CTR/archive?path=/etc/hostname -> a tar of hostname
//! cp ./site CTR:/srv          HEAD /containers/CTR/archive?path=/srv
//!                                  -> X-Docker-Container-Path-Stat: base64({"name":"srv","mode":2147484141,...})
//!                             PUT  /containers/CTR/archive?path=/srv  <- a tar of site/...
//! ```
//!
//! The rules are the in-process `cp`'s (`dockyard::container::copy_in` and
//! `copy_out`): into the destination when it is a directory, else at it
//! (under its name). The service stats the container's side (the HEAD), so
//! this end decides where the archive lands; unpacking on this machine is
//! lab 04's layer extraction, which writes nothing outside its target,
//! whatever the archive from the container says.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use lab04_overlay as overlay;

use super::http;
use super::{query_escape as q, Api};
use crate::commands::cp::{parse_side, Side};
use crate::commands::Code;

/// Go's `os.ModeDir` in the stat's `mode`.
const MODE_DIR: u64 = 1 << 31;

/// `cp SRC DEST`, one side a container's.
pub fn cp(api: &Api, src: &str, dest: &str) -> Result<Code> {
    match (src, parse_side(dest), parse_side(src), dest) {
        ("-", Side::Container(name, path), ..) => {
            let mut tar = Vec::new();
            std::io::stdin().read_to_end(&mut tar)?;
            put(api, &name, &path, tar)?;
            return Ok(0);
        }
        (_, _, Side::Container(name, path), "-") => {
            let mut body = get(api, &name, &path)?;
            std::io::copy(&mut body, &mut std::io::stdout().lock())?;
            return Ok(0);
        }
        ("-", ..) | (.., "-") => bail!("must specify at least one container source"),
        _ => {}
    }
    match (parse_side(src), parse_side(dest)) {
        (Side::Container(name, path), Side::Host(to)) => copy_out(api, &name, &path, &to)?,
        (Side::Host(from), Side::Container(name, path)) => copy_in(api, &from, &name, &path)?,
        (Side::Container(..), Side::Container(..)) => {
            bail!("copying between containers is not supported")
        }
        (Side::Host(..), Side::Host(..)) => bail!("must specify at least one container source"),
    }
    Ok(0)
}

fn archive_path(name: &str, path: &Path) -> String {
    format!(
        "/containers/{}/archive?path={}",
        q(name),
        q(&path.to_string_lossy())
    )
}

/// `GET .../archive?path=`: the tar, as it comes.
fn get(api: &Api, name: &str, path: &Path) -> Result<impl Read> {
    api.stream("GET", &archive_path(name, path), "", None)
}

/// `PUT .../archive?path=DIR` with a tar to unpack there.
fn put(api: &Api, name: &str, dir: &Path, tar: Vec<u8>) -> Result<()> {
    let tar_type = "Content-Type: application/x-tar\r\n";
    let mut answer = api.stream("PUT", &archive_path(name, dir), tar_type, Some(&tar))?;
    std::io::copy(&mut answer, &mut std::io::sink())?;
    Ok(())
}

/// `HEAD .../archive?path=`: the stat of the container's path (its
/// `X-Docker-Container-Path-Stat`, base64 JSON), or `None` if it is not
/// there.
fn stat(api: &Api, name: &str, path: &Path) -> Result<Option<serde_json::Value>> {
    let mut conn = http::connect(&api.host)?;
    let full = format!("/v{}{}", crate::api::API_VERSION, archive_path(name, path));
    let close = "Connection: close\r\n";
    http::send(&mut conn, &api.host, "HEAD", &full, close, None)?;
    let head = http::read_head(&mut std::io::BufReader::new(conn))?;
    match head.status {
        200 => {}
        // A HEAD's answer has no body: no message but the status's.
        404 => return Ok(None),
        s => {
            return Err(super::daemon_error(
                s,
                format!("HEAD {full}: {s}").as_bytes(),
            ))
        }
    }
    let raw = head
        .header("x-docker-container-path-stat")
        .context("the service sent no X-Docker-Container-Path-Stat")?;
    let json = crate::api::base64_decode(raw).context("a bad X-Docker-Container-Path-Stat")?;
    Ok(Some(serde_json::from_slice(&json)?))
}

fn base_name(p: &Path) -> Result<&std::ffi::OsStr> {
    p.file_name()
        .context("cannot copy the root directory itself: name a directory inside it")
}

/// Out of the container: the service's tar has the path's base name at
/// its top; it lands under `to` (a directory) or as `to`, renamed.
fn copy_out(api: &Api, name: &str, path: &Path, to: &Path) -> Result<()> {
    let leaf = base_name(path)?.to_os_string();
    let (dir, new_leaf) = if to.is_dir() {
        (to.to_path_buf(), leaf.clone())
    } else {
        let parent = to.parent().filter(|p| !p.as_os_str().is_empty());
        (
            parent.map_or_else(|| PathBuf::from("."), Path::to_path_buf),
            base_name(to)?.to_os_string(),
        )
    };
    let tar = get(api, name, path)?;
    let renamed = rename_top(tar, Path::new(&new_leaf))?;
    overlay::extract::apply_layer(&renamed[..], &dir, overlay::extract::Whiteouts::Apply)
        .with_context(|| format!("copying into {}", to.display()))?;
    Ok(())
}

/// The archive with its top entry (and everything under it) renamed to
/// `leaf`.
fn rename_top(input: impl Read, leaf: &Path) -> Result<Vec<u8>> {
    let mut out = tar::Builder::new(Vec::new());
    let mut archive = tar::Archive::new(input);
    let rename = |p: &Path| -> PathBuf {
        let mut parts = p.components();
        parts.next();
        leaf.join(parts.as_path())
    };
    for entry in archive.entries().context("reading the service's archive")? {
        let mut entry = entry?;
        let path = rename(&entry.path()?);
        let mut header = entry.header().clone();
        if header.entry_type().is_hard_link() {
            if let Some(target) = entry.link_name()? {
                let target = rename(&target);
                out.append_link(&mut header, &path, &target)?;
                continue;
            }
        }
        if header.entry_type().is_symlink() {
            let target = entry.link_name()?.unwrap_or_default().into_owned();
            out.append_link(&mut header, &path, &target)?;
            continue;
        }
        out.append_data(&mut header, &path, &mut entry)?;
    }
    Ok(out.into_inner()?)
}

/// Into the container: a tar of `from` under the name it will have, put
/// into the directory the service says `path` is (or `path`'s parent).
fn copy_in(api: &Api, from: &Path, name: &str, path: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(from).with_context(|| format!("{}", from.display()))?;
    let is_dir = |s: &serde_json::Value| s["mode"].as_u64().unwrap_or(0) & MODE_DIR != 0;
    let (dir, leaf) = match stat(api, name, path)? {
        Some(s) if is_dir(&s) => (path.to_path_buf(), base_name(from)?.to_os_string()),
        _ => (
            path.parent().unwrap_or(Path::new("/")).to_path_buf(),
            base_name(path)?.to_os_string(),
        ),
    };
    put(
        api,
        name,
        &dir,
        dockyard::container::archive_as(from, &meta, &leaf)?,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes_the_stat_header() {
        assert_eq!(crate::api::base64_decode("e30=").unwrap(), b"{}");
        assert_eq!(crate::api::base64_decode("Zm9vYg").unwrap(), b"foob");
        assert!(crate::api::base64_decode("!!").is_none());
    }
}
