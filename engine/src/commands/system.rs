//! The commands about the engine as a whole: `info`, `system df`, `system
//! prune`, and `inspect` (which looks for containers, then images, as
//! docker's does). The numbers are the core's (`dockyard::system`).

use anyhow::{bail, Result};

use super::container::remove_stopped;
use super::image::prune_images;
use super::{confirm, print_documents, volume, Code};
use crate::cli::InspectArgs;
use crate::format::{human_size, table};
use dockyard::system::{self, Info, Usage};
use dockyard::{container, image, Engine};

/// `docker inspect`: containers first, then images, as docker looks them up.
pub fn inspect(engine: &Engine, args: &InspectArgs) -> Result<Code> {
    let mut docs = Vec::new();
    let mut code = 0;
    let container = |name: &str| {
        engine
            .containers
            .resolve(name)
            .and_then(|r| container::inspect(engine, r))
    };
    for name in &args.names {
        let found = match args.kind.as_deref() {
            Some("container") => container(name),
            Some("image") => image::inspect(engine, name),
            Some(other) => bail!("\"{other}\" is not a valid value for --type"),
            None => container(name).or_else(|_| image::inspect(engine, name)),
        };
        match found {
            Ok(doc) => docs.push(doc),
            // `image inspect` and `container inspect` say what is missing,
            // as the daemon does; plain `inspect` looked for both.
            Err(e) if args.kind.is_some() => {
                eprintln!("Error response from daemon: {e:#}");
                code = 1;
            }
            Err(_) => {
                eprintln!("Error: No such object: {name}");
                code = 1;
            }
        }
    }
    print_documents(args.format.as_deref(), docs)?;
    Ok(code)
}

/// `docker info`: what the course notes explain about it, for a daemonless
/// engine.
pub fn info(engine: &Engine) -> Result<Code> {
    print!("{}", info_text(&system::info(engine)?));
    Ok(0)
}

/// `info`'s text, as docker prints it: the client's part (dockyard's
/// version; no CLI plugins), then the server's, line for line docker's
/// but for the lines dockyard has nothing true to put in (`Init Binary`,
/// `containerd version`, `runc version`, `init version`).
pub(crate) fn info_text(i: &Info) -> String {
    let list = |v: &[String]| {
        if v.is_empty() {
            String::new()
        } else {
            format!("\n  {}", v.join("\n  "))
        }
    };
    let mut s = String::from("Client:\n");
    s += &format!(" Version:    {}\n", env!("CARGO_PKG_VERSION"));
    s += " Context:    default\n";
    s += " Debug Mode: false\n\n";
    s += "Server:\n";
    s += &format!(" Containers: {}\n", i.containers);
    s += &format!("  Running: {}\n", i.running);
    s += &format!("  Paused: {}\n", i.paused);
    s += &format!("  Stopped: {}\n", i.stopped);
    s += &format!(" Images: {}\n", i.images);
    s += &format!(" Server Version: {}\n", i.server_version);
    s += &format!(" Storage Driver: {}\n", i.driver);
    s += &format!(" Logging Driver: {}\n", i.logging_driver);
    s += &format!(" Cgroup Driver: {}\n", i.cgroup_driver);
    s += &format!(" Cgroup Version: {}\n", i.cgroup_version);
    s += " Plugins:\n";
    s += &format!("  Volume: {}\n", i.plugins.volume.join(" "));
    s += &format!("  Network: {}\n", i.plugins.network.join(" "));
    s += &format!("  Log: {}\n", i.plugins.log.join(" "));
    s += " Swarm: inactive\n";
    s += " Runtimes: dockyard\n";
    s += " Default Runtime: dockyard\n";
    s += " Security Options:\n";
    for opt in &i.security_options {
        s += &security_option(opt);
    }
    s += &format!(" Kernel Version: {}\n", i.kernel_version);
    s += &format!(" Operating System: {}\n", i.operating_system);
    s += &format!(" OSType: {}\n", i.os_type);
    s += &format!(" Architecture: {}\n", i.architecture);
    s += &format!(" CPUs: {}\n", i.cpus);
    s += &format!(" Total Memory: {}\n", binary_size(i.mem_total as f64));
    s += &format!(" Name: {}\n", i.name);
    s += &format!(" Docker Root Dir: {}\n", i.root_dir);
    s += &format!(" Debug Mode: {}\n", i.debug);
    s += " Experimental: false\n";
    // As docker's: these three lines only when there is something in them.
    if !i.labels.is_empty() {
        s += &format!(" Labels:{}\n", list(&i.labels));
    }
    if !i.registry.insecure.is_empty() {
        s += &format!(" Insecure Registries:{}\n", list(&i.registry.insecure));
    }
    if !i.registry.mirrors.is_empty() {
        s += &format!(" Registry Mirrors:{}\n", list(&i.registry.mirrors));
    }
    s += &format!(" Live Restore Enabled: {}\n\n", i.live_restore);
    s
}

/// A size as docker's `units.BytesSize` writes it: four significant
/// digits, binary units (`23.54GiB`, `512MiB`).
fn binary_size(mut n: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut u = 0;
    while n >= 1024.0 && u < units.len() - 1 {
        n /= 1024.0;
        u += 1;
    }
    // Go's %.4g: four significant digits, trailing zeros dropped.
    let digits = 3usize.saturating_sub(n.max(1.0).log10().floor() as usize);
    let text = format!("{n:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{}", units[u])
}

/// One of the API's security options (`name=seccomp,profile=builtin`) as
/// docker's `info` prints it.
fn security_option(opt: &str) -> String {
    let mut s = String::new();
    for kv in opt.split(',') {
        match kv.split_once('=') {
            Some(("name", name)) => s += &format!("  {name}\n"),
            Some((k, v)) => {
                let mut key = k.to_string();
                if let Some(first) = key.get_mut(..1) {
                    first.make_ascii_uppercase();
                }
                s += &format!("   {key}: {v}\n");
            }
            None => s += &format!("  {kv}\n"),
        }
    }
    s
}

/// `docker system df`: what images, containers and volumes take on disk.
pub fn system_df(engine: &Engine) -> Result<Code> {
    let df = system::disk_usage(engine)?;
    let pct = |part: u64, whole: u64| (part * 100).checked_div(whole).unwrap_or(0);
    let row = |kind: &str, u: &Usage, reclaimable: String| {
        vec![
            kind.to_string(),
            u.total.to_string(),
            u.active.to_string(),
            human_size(u.size),
            reclaimable,
        ]
    };
    let c = &df.containers;
    let rows = vec![
        row("Images", &df.images, "0B (0%)".into()),
        row(
            "Containers",
            c,
            format!(
                "{} ({}%)",
                human_size(c.reclaimable),
                pct(c.reclaimable, c.size)
            ),
        ),
        row(
            "Local Volumes",
            &df.volumes,
            human_size(df.volumes.reclaimable),
        ),
        row(
            "Build Cache",
            &df.build_cache,
            human_size(df.build_cache.reclaimable),
        ),
    ];
    print!(
        "{}",
        table(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], &rows)
    );
    Ok(0)
}

/// `docker system prune`: stopped containers, the blobs and layers no image
/// or container references (`image prune`), and with --volumes the anonymous
/// volumes nothing uses.
pub fn system_prune(engine: &Engine, force: bool, volumes: bool, all: bool) -> Result<Code> {
    if !force {
        let prompt = format!("WARNING! This will remove:\n  - all stopped containers\n{}  - {}\n  - {}\n\nAre you sure you want to continue? [y/N] ",
            if volumes { "  - all anonymous volumes not used by at least one container\n" } else { "" },
            if all { "all images without at least one container associated to them" } else { "all dangling images" },
            if all { "all build cache" } else { "unused build cache" });
        if !confirm(&prompt)? {
            return Ok(0);
        }
    }
    remove_stopped(engine)?;
    if volumes {
        volume::prune(engine, false)?;
    }
    let mut reclaimed = prune_images(engine, all)?;
    let (keys, freed) = system::prune_build_cache(engine, all)?;
    print_cache_objects(&keys);
    reclaimed += freed;
    println!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(0)
}

/// `docker builder prune [-a] [-f]`: the dangling build cache (all of it
/// with -a), and the layers only it held.
pub fn builder_prune(engine: &Engine, all: bool, force: bool) -> Result<Code> {
    if !force {
        let what = if all {
            "all build cache"
        } else {
            "all dangling build cache"
        };
        if !confirm(&format!(
            "WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] "
        ))? {
            return Ok(0);
        }
    }
    let (keys, freed) = system::prune_build_cache(engine, all)?;
    print_cache_objects(&keys);
    println!("Total reclaimed space: {}", human_size(freed));
    Ok(0)
}

fn print_cache_objects(keys: &[String]) {
    if !keys.is_empty() {
        println!("Deleted build cache objects:");
        for k in keys {
            println!("{}", &k[..k.len().min(25)]);
        }
        println!();
    }
}

/// `dockyard system service`: serve the Docker Engine API (see the api
/// module) until idle for `time` seconds (0: forever).
pub fn service(engine: &Engine, cmd: &crate::cli::SystemCmd) -> Result<Code> {
    let crate::cli::SystemCmd::Service {
        host,
        time,
        tlsverify,
        tlscacert,
        tlscert,
        tlskey,
    } = cmd
    else {
        bail!("not `system service`");
    };
    let opts = crate::api::Options {
        host: host.to_string(),
        idle: std::time::Duration::from_secs(*time),
        tls: crate::api::TlsFiles {
            verify: *tlsverify,
            ca: tlscacert.clone(),
            cert: tlscert.clone(),
            key: tlskey.clone(),
        },
    };
    crate::api::serve(engine, &opts)?;
    Ok(0)
}

// ---- version -------------------------------------------------------------------

/// `version`'s server part for the engine in this process: the document
/// a service answers `GET /version` with, for the same binary (the
/// Engine, its API versions, and the parts that run containers).
pub fn local_server_version() -> serde_json::Value {
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let v = env!("CARGO_PKG_VERSION");
    let (api, min) = (crate::api::API_VERSION, crate::api::MIN_API_VERSION);
    serde_json::json!({
        "Platform": {"Name": "Dockyard"},
        "Components": [
            {"Name": "Engine", "Version": v, "Details": {
                "ApiVersion": api, "MinAPIVersion": min, "Os": "linux", "Arch": go_arch(),
                "KernelVersion": kernel, "Experimental": "false"}},
            {"Name": "dockyard-monitor", "Version": v, "Details": {"GitCommit": ""}},
            {"Name": "lab03 assembler (runtime)", "Version": v, "Details": {"GitCommit": ""}},
        ],
        "Version": v, "ApiVersion": api, "MinAPIVersion": min, "GitCommit": "", "GoVersion": "",
        "Os": "linux", "Arch": go_arch(), "KernelVersion": kernel, "BuildTime": "",
    })
}

/// The machine as Go names it (`GOARCH`), as docker prints OS/Arch.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `docker version`: the client's part, then the server's from its
/// version document (a service's `GET /version`, or this process's own
/// engine), laid out as docker/cli's template and tabwriter (minimum cell
/// width 20, padding 1) do. Without a server, the client's part and the
/// error, exit 1, as docker does.
pub fn print_version(server: Result<serde_json::Value>) -> Result<Code> {
    let client = format!(
        "Client:\n Version:\t{}\n API version:\t{}\n Go version:\t{}\n Git commit:\t\n \
         Built:\t\n OS/Arch:\tlinux/{}\n",
        env!("CARGO_PKG_VERSION"),
        crate::api::API_VERSION,
        // Not a Go program: the field docker prints, saying so.
        "none (Rust)",
        go_arch()
    );
    print!("{}", tabwriter(&client));
    let s = server?;
    let t = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let mut out = String::from("\nServer:");
    if let Some(p) = s["Platform"]["Name"].as_str().filter(|p| !p.is_empty()) {
        out += &format!(" {p}");
    }
    out += "\n";
    for c in s["Components"].as_array().into_iter().flatten() {
        let d = &c["Details"];
        out += &format!(" {}:\n", t(&c["Name"]));
        if c["Name"] == "Engine" {
            out += &format!("  Version:\t{}\n", t(&c["Version"]));
            out += &format!(
                "  API version:\t{} (minimum version {})\n",
                t(&d["ApiVersion"]),
                t(&d["MinAPIVersion"])
            );
            for (label, key) in [
                ("Go version", "GoVersion"),
                ("Git commit", "GitCommit"),
                ("Built", "BuildTime"),
            ] {
                out += &format!("  {label}:\t{}\n", t(&d[key]));
            }
            out += &format!("  OS/Arch:\t{}/{}\n", t(&d["Os"]), t(&d["Arch"]));
            out += &format!("  Experimental:\t{}\n", t(&d["Experimental"]));
        } else {
            out += &format!("  Version:\t{}\n", t(&c["Version"]));
            // docker/cli's getDetailsOrder: the details' keys, sorted.
            let mut keys: Vec<&String> = d
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            keys.sort();
            for k in keys {
                out += &format!("  {k}:\t{}\n", t(&d[k.as_str()]));
            }
        }
    }
    print!("{}", tabwriter(&out));
    Ok(0)
}

/// Go's `tabwriter.NewWriter(out, 20, 1, 1, ' ', 0)` for two columns:
/// in each run of lines that have a tab, the first cell padded to the
/// widest cell plus one, at least 20.
fn tabwriter(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        if !lines[i].contains('\t') {
            out += lines[i];
            out += "\n";
            i += 1;
            continue;
        }
        let end = (i..lines.len())
            .find(|&j| !lines[j].contains('\t'))
            .unwrap_or(lines.len());
        let width = lines[i..end]
            .iter()
            .map(|l| l.split('\t').next().unwrap_or("").chars().count() + 1)
            .max()
            .unwrap_or(0)
            .max(20);
        for l in &lines[i..end] {
            let (cell, rest) = l.split_once('\t').unwrap_or((l, ""));
            out += &format!("{cell:<width$}{rest}\n");
        }
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_cells_are_padded_as_gos_tabwriter_pads_them() {
        let t = tabwriter("A:\n x:\t1\n a-very-long-label-here:\t2\nB:\n y:\t3\n");
        assert_eq!(
            t,
            "A:\n x:                      1\n a-very-long-label-here: 2\nB:\n y:                 3\n"
        );
    }

    #[test]
    fn security_options_print_like_dockers() {
        assert_eq!(
            security_option("name=seccomp,profile=builtin"),
            "  seccomp\n   Profile: builtin\n"
        );
        assert_eq!(security_option("name=rootless"), "  rootless\n");
    }

    #[test]
    fn info_prints_the_servers_part() {
        let info = Info {
            containers: 3,
            running: 1,
            paused: 1,
            stopped: 1,
            images: 2,
            server_version: "0.1.0".into(),
            driver: "overlay2".into(),
            logging_driver: "json-file".into(),
            cgroup_driver: "cgroupfs".into(),
            cgroup_version: "2".into(),
            security_options: vec!["name=seccomp,profile=builtin".into(), "name=userns".into()],
            kernel_version: "6.1.0".into(),
            operating_system: "Debian GNU/Linux 12 (bookworm)".into(),
            os_type: "linux".into(),
            architecture: "x86_64".into(),
            cpus: 2,
            mem_total: 3 << 29,
            root_dir: "/var/lib/dockyard".into(),
            debug: false,
            registry: system::RegistryConfig {
                mirrors: vec![],
                insecure: vec!["127.0.0.0/8".into()],
            },
            name: "host1".into(),
            plugins: system::Plugins {
                volume: vec!["local".into()],
                network: vec!["bridge".into(), "host".into()],
                log: vec!["json-file".into()],
            },
            labels: vec!["a=b".into()],
            live_restore: false,
        };
        let text = info_text(&info);
        assert!(text.starts_with("Client:\n Version:    "));
        assert!(text.contains("\n\nServer:\n Containers: 3\n  Running: 1\n"));
        assert!(text.contains(" Cgroup Version: 2\n Plugins:\n  Volume: local\n  Network: bridge host\n  Log: json-file\n Swarm: inactive\n"));
        assert!(text.contains(" Security Options:\n  seccomp\n   Profile: builtin\n  userns\n Kernel Version: 6.1.0\n"));
        assert!(text.contains(" Total Memory: 1.5GiB\n Name: host1\n"));
        assert!(text.ends_with(" Experimental: false\n Labels:\n  a=b\n Insecure Registries:\n  127.0.0.0/8\n Live Restore Enabled: false\n\n"));
        assert_eq!(binary_size(23.5403 * 1024.0 * 1024.0 * 1024.0), "23.54GiB");
        assert_eq!(binary_size(512.0 * 1024.0 * 1024.0), "512MiB");
    }
}
