//! The image commands: `images`, `rmi`, `history`, `load`, `save`,
//! `import` and `image prune` (`pull`, `push` and `tag` are in
//! `registry.rs`, `build` in `build.rs`). What they compute is the core's
//! (`dockyard::image`); here are docker's tables and messages.

use std::io::Write;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};

use super::{confirm, formatted, write_archive, Code};
use crate::cli::{
    HistoryArgs, ImagePruneArgs, ImagesArgs, ImportArgs, LoadArgs, RmiArgs, SaveArgs,
};
use crate::format::{human_duration, human_size, table};
use dockyard::image::{self, reference_matches, HistoryEntry, ImageSummary};
use dockyard::state::parse_rfc3339;
use dockyard::Engine;

/// "3 weeks ago" for an RFC 3339 time.
fn ago(time: Option<&str>, now: SystemTime) -> Option<String> {
    // From the whole second, as docker/cli counts it (the API's `Created`
    // is Unix seconds).
    let secs = parse_rfc3339(time?)?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    Some(format!(
        "{} ago",
        human_duration(now.duration_since(t).unwrap_or_default())
    ))
}

/// The fields of `images --format`, and their headers in a `table` format.
const IMAGE_FIELDS: [(&str, &str); 7] = [
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("ID", "IMAGE ID"),
    ("Digest", "DIGEST"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
];

/// `docker images [REPOSITORY[:TAG]]`, with `-f dangling=`, `-f
/// reference=` and `--format`.
pub fn images(engine: &Engine, args: &ImagesArgs) -> Result<Code> {
    // Each image's repository digests, by ID, for the DIGEST column.
    let mut digests = std::collections::HashMap::new();
    if args.digests || args.format.is_some() {
        for i in engine.images.images()? {
            digests
                .entry(i.config_digest.clone())
                .or_insert_with(|| dockyard::repo_digest::repo_digests(engine, &i));
        }
    }
    print_images_with(image::list(engine)?, &digests, args)
}

/// `images`' filters, order and output over a list of images: the core's
/// here, the API's through `-H` (`client/`).
pub(crate) fn print_images(all: Vec<ImageSummary>, args: &ImagesArgs) -> Result<Code> {
    print_images_with(all, &Default::default(), args)
}

/// `print_images` with each image's repository digests, by image ID.
fn print_images_with(
    all: Vec<ImageSummary>,
    repo_digests: &std::collections::HashMap<String, Vec<String>>,
    args: &ImagesArgs,
) -> Result<Code> {
    let mut patterns: Vec<String> = args.reference.iter().cloned().collect();
    let mut dangling = None;
    for f in &args.filter {
        match f.split_once('=') {
            Some(("dangling", v)) => {
                dangling = Some(match v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => bail!("Invalid filter 'dangling={v}'"),
                })
            }
            Some(("reference", v)) => patterns.push(v.to_string()),
            Some((k, _)) => bail!("invalid filter '{k}'"),
            None => bail!("bad format of filter (expected name=value)"),
        }
    }
    let list: Vec<ImageSummary> = all
        .into_iter()
        // Dangling: an image without a name (lab 04's `Store::unnamed`).
        .filter(|i| dangling.is_none_or(|d| d == i.name.is_empty()))
        .filter(|i| {
            patterns.is_empty()
                || !i.name.is_empty() && patterns.iter().all(|p| reference_matches(p, &i.name))
        })
        .collect();
    let list = dockers_order(list);
    let mut out = std::io::stdout().lock();
    let id = |i: &ImageSummary| {
        if args.no_trunc {
            i.id.clone()
        } else {
            i.short_id.clone()
        }
    };
    if args.quiet {
        // One line per row, as docker/cli's formatter prints `{{.ID}}`
        // for each name: an image with two tags is listed twice.
        for i in &list {
            writeln!(out, "{}", id(i))?;
        }
        return Ok(0);
    }
    let now = SystemTime::now();
    // The DIGEST of a row: the image's digest in the row's repository.
    let digest_of = |i: &ImageSummary, repo: &str| {
        repo_digests
            .get(&i.id)
            .and_then(|d| dockyard::repo_digest::digest_in(d, repo))
            .unwrap_or("<none>")
            .to_string()
    };
    let objects: Vec<serde_json::Value> = list
        .iter()
        .map(|i| {
            let (repo, tag) = repository_and_tag(&i.name);
            serde_json::json!({
                "Digest": digest_of(i, &repo),
                "Repository": repo,
                "Tag": tag,
                "ID": id(i),
                "Containers": "N/A",
                "SharedSize": "N/A",
                "UniqueSize": "N/A",
                "VirtualSize": dockyard::units::human_size_with_precision(i.size, 4),
                "CreatedSince": ago(i.created.as_deref(), now).unwrap_or_else(|| "N/A".into()),
                "CreatedAt": i.created.as_deref().and_then(parse_rfc3339)
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| dockyard::events::go_time_string(d.as_secs() as i64))
                    .unwrap_or_default(),
                "Size": human_size(i.size),
            })
        })
        .collect();
    if let Some(format) = &args.format {
        write!(out, "{}", formatted(format, &objects, &IMAGE_FIELDS)?)?;
        return Ok(0);
    }
    let mut columns = vec!["Repository", "Tag", "ID", "CreatedSince", "Size"];
    if args.digests {
        columns.insert(2, "Digest");
    }
    let rows: Vec<Vec<String>> = objects
        .iter()
        .map(|o| {
            columns
                .iter()
                .map(|k| o[*k].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .collect();
    let headers: Vec<&str> = columns
        .iter()
        .map(|c| {
            IMAGE_FIELDS
                .iter()
                .find(|(f, _)| f == c)
                .map_or("", |(_, h)| *h)
        })
        .collect();
    write!(out, "{}", table(&headers, &rows))?;
    Ok(0)
}

/// `busybox:latest` as ("busybox", "latest"); a name without a tag has
/// the tag `<none>` (`127.0.0.1:5000/x` has none: that colon is a port's).
fn repository_and_tag(name: &str) -> (String, String) {
    if name.is_empty() {
        // An image without a name: docker's dangling `<none>:<none>`.
        return ("<none>".to_string(), "<none>".to_string());
    }
    match name.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
        _ => (name.to_string(), "<none>".to_string()),
    }
}

/// The rows in dockerd's order: the newest image first (its list is sorted
/// by creation time), each image's names together, in name order (ties
/// between images: the one with the first name first).
fn dockers_order(mut list: Vec<ImageSummary>) -> Vec<ImageSummary> {
    list.sort_by(|a, b| a.name.cmp(&b.name));
    let first: Vec<String> = list.iter().map(|i| i.id.clone()).collect();
    let rank = |i: &ImageSummary| first.iter().position(|id| *id == i.id).unwrap_or(0);
    // (To the second, as the API's `Created` carries it.)
    let created = |i: &ImageSummary| {
        let t = i.created.as_deref().and_then(parse_rfc3339)?;
        Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs())
    };
    // (A stable sort: each image's names stay in name order.)
    list.sort_by_key(|i| (std::cmp::Reverse(created(i)), rank(i)));
    list
}

/// `docker load`: a docker-archive or OCI archive (or an OCI layout directory).
pub fn load(engine: &Engine, args: &LoadArgs) -> Result<Code> {
    let names = match &args.input {
        Some(p) if p.is_dir() => {
            let names = engine.images.load_oci_layout(p, None)?;
            image::log_loaded(engine, &names);
            names
        }
        Some(p) => {
            let f = std::fs::File::open(p).with_context(|| format!("open {}", p.display()))?;
            image::load_archive(engine, f)?
        }
        None => {
            if nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
                bail!("requested load from stdin, but stdin is empty");
            }
            image::load_archive(engine, std::io::stdin().lock())?
        }
    };
    if !args.quiet {
        for n in names {
            // An image without a name is reported by its ID, as docker's.
            match n.starts_with("sha256:") {
                true => println!("Loaded image ID: {n}"),
                false => println!("Loaded image: {n}"),
            }
        }
    }
    Ok(0)
}

/// `docker import`: a root filesystem tarball becomes a one-layer image.
pub fn import(engine: &Engine, args: &ImportArgs) -> Result<Code> {
    let Some(name) = &args.repository else {
        bail!("dockyard keeps images by name: give one (dockyard import FILE REPOSITORY[:TAG])");
    };
    if args.file.contains("://") {
        bail!(
            "importing from a URL ({}) needs the network, which dockyard does not reach for \
             an import: download it first, then `dockyard import FILE {name}`",
            args.file
        );
    }
    let opts = image::ImportOptions {
        changes: args.change.clone(),
        message: args.message.clone(),
    };
    let image = if args.file == "-" {
        image::import_with(engine, std::io::stdin().lock(), name, &opts)?
    } else {
        let f = std::fs::File::open(&args.file).with_context(|| format!("open {}", args.file))?;
        image::import_with(engine, f, name, &opts)?
    };
    println!("{}", image.config_digest);
    Ok(0)
}

/// `docker save`: one image as a docker-archive (which podman and docker load).
pub fn save(engine: &Engine, args: &SaveArgs) -> Result<Code> {
    if args.images.len() > 1 {
        bail!("saving several images into one archive is not supported yet: save them one by one");
    }
    // Looked up before the output file is made.
    image::find(engine, &args.images[0])?;
    write_archive(args.output.as_deref(), |out| {
        image::save(engine, &args.images[0], out)
    })?;
    Ok(0)
}

/// `docker rmi`: untag images no container uses (or any, with -f). When an
/// image's last name goes, its config, manifest and the layers no other image
/// shares are deleted from the store (lab 04's `Store::gc`), as docker does:
/// `Untagged: NAME`, then `Deleted: sha256:...` for the image ID and for each
/// layer (chain ID) removed.
pub fn rmi(engine: &Engine, args: &RmiArgs) -> Result<Code> {
    let mut code = 0;
    // Before anything is untagged: an unreadable container fails here.
    let remover = image::Remover::new(engine)?;
    for name in &args.images {
        let result = remover.untag(name, args.force).and_then(|(image, names)| {
            for n in names {
                println!("Untagged: {n}");
            }
            for id in remover.collect(&image)? {
                println!("Deleted: {id}");
            }
            Ok(())
        });
        if let Err(e) = result {
            eprintln!("Error response from daemon: {e:#}");
            code = 1;
        }
    }
    Ok(code)
}

/// `docker image prune`: removes the blobs and layers no image or container
/// references (older than the store's grace period); with `-a`, first
/// untags every image no container uses.
pub fn image_prune(engine: &Engine, args: &ImagePruneArgs) -> Result<Code> {
    if !args.force {
        let prompt = format!(
            "WARNING! This will remove all {} images{}.\nAre you sure you want to continue? [y/N] ",
            if args.all { "" } else { "dangling" },
            if args.all {
                " without at least one container associated to them"
            } else {
                ""
            }
        );
        if !confirm(&prompt)? {
            return Ok(0);
        }
    }
    let reclaimed = prune_images(engine, args.all)?;
    println!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(0)
}

/// The work of `image prune` (and `system prune`): prints what goes under
/// "Deleted Images:", returns the bytes reclaimed.
pub(super) fn prune_images(engine: &Engine, all: bool) -> Result<u64> {
    let report = image::prune(engine, all)?;
    let lines: Vec<String> = report
        .untagged
        .iter()
        .map(|n| format!("untagged: {n}"))
        .chain(report.deleted.iter().map(|d| format!("deleted: {d}")))
        .collect();
    if !lines.is_empty() {
        println!("Deleted Images:");
        for l in lines {
            println!("{l}");
        }
        println!();
    }
    Ok(report.reclaimed)
}

/// `docker history`: the image's history, newest first.
pub fn history(engine: &Engine, args: &HistoryArgs) -> Result<Code> {
    let (image, entries) = image::history(engine, &args.image)?;
    print_history(&image.config_digest, image.short_id(), &entries, args)
}

/// The `history` table (or `-q`'s IDs) of an image's steps, newest first:
/// what `history` prints here and through the service (`client`).
pub fn print_history(
    id: &str,
    short_id: &str,
    entries: &[HistoryEntry],
    args: &HistoryArgs,
) -> Result<Code> {
    let now = SystemTime::now();
    let mut rows: Vec<Vec<String>> = entries
        .iter()
        .map(|h| history_row(h, now, args.no_trunc))
        .collect();
    if let Some(first) = rows.first_mut() {
        first[0] = if args.no_trunc {
            id.to_string()
        } else {
            short_id.to_string()
        };
    }
    if args.quiet {
        for r in &rows {
            println!("{}", r[0]);
        }
        return Ok(0);
    }
    print!(
        "{}",
        table(
            &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
            &rows
        )
    );
    Ok(0)
}

/// One row of `history`: only the newest step has the image's ID (set by
/// the caller); CREATED BY is cut to 45 characters unless `--no-trunc`.
fn history_row(h: &HistoryEntry, now: SystemTime, no_trunc: bool) -> Vec<String> {
    let mut by = h.created_by.clone();
    if !no_trunc && by.chars().count() > 45 {
        by = by.chars().take(44).collect::<String>() + "…";
    }
    vec![
        "<missing>".to_string(),
        // docker/cli: a step with no creation time, or the zero of Unix
        // time (reproducible builds write it), is "N/A".
        h.created
            .as_deref()
            .and_then(parse_rfc3339)
            .filter(|t| *t > std::time::UNIX_EPOCH)
            .and_then(|_| ago(h.created.as_deref(), now))
            .unwrap_or_else(|| "N/A".into()),
        by,
        human_size(h.size),
        h.comment.clone(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_select_images_as_dockers_do() {
        assert!(reference_matches("busybox", "busybox:latest"));
        assert!(reference_matches("busybox", "busybox:1.36"));
        assert!(reference_matches("busybox:1.36", "busybox:1.36"));
        assert!(!reference_matches("busybox:1", "busybox:1.36"));
        assert!(!reference_matches("busy", "busybox:latest"));
        assert!(reference_matches("bu*", "busybox:latest"));
        assert!(reference_matches("*:1.*", "busybox:1.36"));
        assert!(
            !reference_matches("*", "user/app:1"),
            "* stays in one component"
        );
        assert!(reference_matches(
            "127.0.0.1:5000/app",
            "127.0.0.1:5000/app:1"
        ));
        assert!(!reference_matches(
            "127.0.0.1:5000/app:2",
            "127.0.0.1:5000/app:1"
        ));
    }

    #[test]
    fn names_split_into_repository_and_tag() {
        let split = |n| repository_and_tag(n);
        assert_eq!(split("busybox:latest"), ("busybox".into(), "latest".into()));
        assert_eq!(
            split("127.0.0.1:5000/app:v1"),
            ("127.0.0.1:5000/app".into(), "v1".into())
        );
        assert_eq!(
            split("127.0.0.1:5000/app"),
            ("127.0.0.1:5000/app".into(), "<none>".into())
        );
    }

    #[test]
    fn history_rows_truncate_the_command() {
        let now = parse_rfc3339("2024-01-22T00:00:00Z").unwrap();
        let h = HistoryEntry {
            created: Some("2024-01-01T00:00:00Z".into()),
            created_by: "/bin/sh -c apt-get update && apt-get install -y curl".into(),
            size: 1_240_000,
            comment: "buildkit".into(),
        };
        let row = history_row(&h, now, false);
        assert_eq!(row[0], "<missing>");
        assert_eq!(row[1], "3 weeks ago");
        assert_eq!(row[2].chars().count(), 45);
        assert!(row[2].ends_with('…'));
        assert_eq!(row[3], "1.24MB");
        assert_eq!(history_row(&h, now, true)[2], h.created_by);
        let epoch = HistoryEntry {
            created: Some("1970-01-01T00:00:00Z".into()),
            ..h.clone()
        };
        assert_eq!(history_row(&epoch, now, false)[1], "N/A");
        let undated = HistoryEntry { created: None, ..h };
        assert_eq!(history_row(&undated, now, false)[1], "N/A");
    }
}
