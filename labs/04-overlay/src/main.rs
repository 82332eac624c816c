//! `lab04-overlay`: an image store and overlay-mounted containers.
//!
//! ```text
//! lab04-overlay --store S load images/busybox/oci      # OCI layout, docker-archive or OCI archive
//! lab04-overlay --store S images
//! lab04-overlay --store S run --image busybox -- sh -c 'echo hi > /tmp/x; rm /bin/vi'
//! lab04-overlay --store S diff CONTAINER
//! ```
//!
//! The mechanism lives in the library (`lab04_overlay`); this is its front end.

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use lab01_chroot as lab01;
use lab02_namespaces as lab02;
use lab03_cgroups as lab03;
use lab04_overlay::{archive, diff, mount_overlay, MountGuard, Store};

/// Store images as OCI layers and run commands on an overlay of them.
#[derive(Parser, Debug)]
#[command(name = "lab04-overlay", version)]
struct Cli {
    /// The image store directory (an OCI image layout plus unpacked layers).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/dockyard/lab04")]
    store: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Load images from an OCI layout directory, a docker-archive or an OCI archive.
    Load {
        /// A directory (OCI layout) or a tar file (docker save, OCI archive).
        path: PathBuf,
        /// Name the image this instead of what the layout says (OCI layouts only).
        #[arg(long)]
        name: Option<String>,
    },
    /// List images, as `docker images` does.
    Images,
    /// Show an image's layers: diff_id, chain ID, and the shared layer directory.
    Layers { image: String },
    /// Run a command on an overlay of the image, then show its upper dir.
    Run {
        /// The image to run.
        #[arg(long)]
        image: String,
        /// Remove the container (its upper dir) afterwards.
        #[arg(long)]
        rm: bool,
        /// Do not print the upper dir's contents afterwards.
        #[arg(long, short)]
        quiet: bool,
        /// The command and its arguments, after `--` (default: the image's).
        #[arg(last = true, value_name = "CMD")]
        command: Vec<OsString>,
    },
    /// List what a container changed: A added, C changed, D deleted.
    Diff { container: String },
    /// List containers.
    Ps,
    /// Remove a container.
    Rm { container: String },
    /// Make a new image from a container's upper dir.
    Commit { container: String, name: String },
    /// Make an image from a rootfs tarball (docker import).
    Import { tarball: PathBuf, name: String },
    /// Write a container's merged filesystem as a tarball (docker export).
    Export {
        container: String,
        /// Output file (default: stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Write an image as a docker-archive or OCI archive (docker save).
    Save {
        image: String,
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Docker)]
        format: Format,
    },
    /// Remove an image name, then its blobs and layers no other image or
    /// container needs.
    Rmi { image: String },
    /// Remove the blobs and layers no image or container references.
    Gc {
        /// Spare what was modified in the last SECS seconds (a pull or
        /// build in progress).
        #[arg(long, value_name = "SECS", default_value_t = lab04_overlay::gc::GRACE.as_secs())]
        grace: u64,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Docker,
    Oci,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 125 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("lab04-overlay: {e:#}");
            ExitCode::from(125)
        }
    }
}

fn dispatch(cli: Cli) -> Result<u8> {
    let store = Store::open(&cli.store)?;
    match cli.command {
        Command::Load { path, name } => {
            let names = if path.is_dir() {
                store.load_oci_layout(&path, name.as_deref())?
            } else {
                let f = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
                archive::load_archive(&store, f)?
            };
            for n in names {
                println!("Loaded image: {n}");
            }
        }
        Command::Images => images(&store)?,
        Command::Layers { image } => {
            let image = store.image(&image)?;
            let layers = store.image_layers(&image)?;
            for (i, l) in layers.iter().enumerate() {
                println!("layer {} of {}", i + 1, layers.len());
                println!("  diff_id:  {}", l.diff_id);
                println!("  chain_id: {}", l.chain_id);
                println!("  dir:      {}", l.diff.display());
                println!("  link:     {}", l.link.display());
            }
        }
        Command::Run {
            image,
            rm,
            quiet,
            command,
        } => return run(&store, &image, rm, quiet, command),
        Command::Diff { container } => {
            let c = store.container(&container)?;
            for ch in diff::changes(&c.upper(), &store.lower_dirs(&c)?)? {
                println!("{} {}", ch.kind, ch.path);
            }
        }
        Command::Ps => {
            println!("{:<15}IMAGE", "CONTAINER ID");
            for c in store.containers()? {
                println!("{:<15}{}", c.short_id(), c.image);
            }
        }
        Command::Rm { container } => {
            let c = store.container(&container)?;
            store.remove_container(&c)?;
            println!("{}", c.short_id());
        }
        Command::Commit { container, name } => {
            let c = store.container(&container)?;
            let image = archive::commit(&store, &c, &name)?;
            println!(
                "sha256:{}",
                image.config_digest.trim_start_matches("sha256:")
            );
        }
        Command::Import { tarball, name } => {
            let f =
                File::open(&tarball).with_context(|| format!("opening {}", tarball.display()))?;
            let image = archive::import_tarball(&store, f, &name)?;
            println!("{}", image.config_digest);
        }
        Command::Export { container, output } => {
            let c = store.container(&container)?;
            // A private mount namespace: the overlay mounted for the walk is
            // never visible on the host, and vanishes with this process.
            lab01::enter_new_mount_namespace()?;
            match output {
                Some(p) => {
                    let f =
                        File::create(&p).with_context(|| format!("creating {}", p.display()))?;
                    archive::export_container(&store, &c, f)?.sync_all()?;
                }
                None => {
                    archive::export_container(&store, &c, std::io::stdout().lock())?.flush()?;
                }
            }
        }
        Command::Save {
            image,
            output,
            format,
        } => {
            let image = store.image(&image)?;
            let f =
                File::create(&output).with_context(|| format!("creating {}", output.display()))?;
            let f = match format {
                Format::Docker => {
                    archive::save_docker(&store, &image, std::slice::from_ref(&image.name), f)?
                }
                Format::Oci => archive::save_oci(&store, &image, f)?,
            };
            f.sync_all()?;
        }
        Command::Rmi { image } => {
            let image = store.image(&image)?;
            store.untag(&image.name)?;
            println!("Untagged: {}", image.name);
            let report = store.gc(&lab04_overlay::Keep {
                released: vec![image.clone()],
                ..Default::default()
            })?;
            if report.blobs.contains(&image.config_digest) {
                println!("Deleted: {}", image.config_digest);
            }
            for chain in image.chain_ids().iter().rev() {
                if report.layers.contains(chain) {
                    println!("Deleted: {chain}");
                }
            }
        }
        Command::Gc { grace } => {
            let report = store.gc(&lab04_overlay::Keep {
                grace: std::time::Duration::from_secs(grace),
                ..Default::default()
            })?;
            for b in &report.blobs {
                println!("deleted blob {b}");
            }
            for l in &report.layers {
                println!("deleted layer {l}");
            }
            println!("reclaimed {} bytes", report.reclaimed);
        }
    }
    Ok(0)
}

fn images(store: &Store) -> Result<()> {
    let mut rows = vec![[
        "REPOSITORY".to_string(),
        "TAG".into(),
        "IMAGE ID".into(),
        "SIZE".into(),
    ]];
    for image in store.images()? {
        let (repo, tag) = image
            .name
            .rsplit_once(':')
            .map(|(r, t)| (r.to_string(), t.to_string()))
            .unwrap_or((image.name.clone(), "latest".into()));
        let size: u64 = store
            .image_layers(&image)?
            .iter()
            .map(|l| tree_size(&l.diff))
            .sum();
        rows.push([repo, tag, image.short_id().to_string(), human_size(size)]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: String = (0..4)
            .map(|i| format!("{:<w$}", r[i], w = if i < 3 { widths[i] + 3 } else { 0 }))
            .collect();
        println!("{}", line.trim_end());
    }
    Ok(())
}

/// Apparent size of the regular files under a directory.
fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// Docker's sizes: decimal units, three significant digits (`4.26MB`).
fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let s = format!("{v:.3}");
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{:.*}", digits, s.parse::<f64>().unwrap_or(v));
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", units[i])
}

// ANCHOR: run
/// Creates a container, runs the command in it, and shows its upper dir.
fn run(store: &Store, name: &str, rm: bool, quiet: bool, command: Vec<OsString>) -> Result<u8> {
    let image = store.image(name)?;
    store.unpack(&image)?;
    let container = store.create_container(&image)?;
    let dirs = store.overlay_dirs(&container)?;
    let config = image.config.config().clone().unwrap_or_default();
    let argv: Vec<OsString> = if command.is_empty() {
        let mut v: Vec<OsString> = Vec::new();
        v.extend(config.entrypoint().iter().flatten().map(OsString::from));
        v.extend(config.cmd().iter().flatten().map(OsString::from));
        v
    } else {
        command
    };
    let env: Vec<OsString> = match config.env() {
        Some(env) if !env.is_empty() => env.iter().map(OsString::from).collect(),
        _ => lab01::default_env(),
    };

    // The overlay goes on `merged`, in our mount namespace; the container
    // gets a copy of it in its own, and pivots into it. Labs 02 and 03 do
    // the rest: namespaces, a cgroup of its own, the process. No user
    // namespace: the layers' files belong to the host's root, and root in
    // a user namespace would see them as nobody's.
    mount_overlay(&dirs)?;
    let _mounted = MountGuard(dirs.merged.clone());
    let mut spec = lab02::Spec::new(&dirs.merged, argv);
    spec.env = env;
    let mut blueprint = lab03::Blueprint::new(spec);
    blueprint.cgroup = Some(lab03::CgroupSpec {
        parent: lab03::DEFAULT_PARENT.to_string(),
        name: container.id.clone(),
        limits: lab03::Limits::default(),
    });
    let host = lab03::detect()?;
    let outcome = lab03::run(
        &host,
        &lab03::RunOptions {
            blueprint,
            stop_timeout: std::time::Duration::from_secs(10),
        },
    )?;
    let status = outcome.status.code() as u8;
    drop(_mounted);

    // The overlay is unmounted; what the container did is left in its
    // upper dir.
    if !quiet {
        let changes = diff::changes(&container.upper(), &store.lower_dirs(&container)?)?;
        eprintln!(
            "--- container {} changed {} path(s) in its upper dir {} ---",
            container.short_id(),
            changes.len(),
            container.upper().display()
        );
        for ch in changes {
            eprintln!("{} {}", ch.kind, ch.path);
        }
    }
    if rm {
        store.remove_container(&container)?;
    }
    Ok(status)
}

// ANCHOR_END: run

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_read_like_dockers() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_260_000), "4.26MB");
        assert_eq!(human_size(12_340_000), "12.3MB");
        assert_eq!(human_size(1_000_000), "1MB");
    }
}
