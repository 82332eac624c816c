//! dockerd's warnings, printed where docker's CLI prints them.
//!
//! A setting this host cannot honour (a block I/O weight without BFQ, the
//! OOM killer disabled with no memory limit, swappiness on cgroup v2) is
//! not an error for dockerd: it drops the setting, makes the container, and
//! says why in the answer's `Warnings`. The CLI prints them, in two ways:
//!
//! ```text
//! $ docker run -d --blkio-weight 300 busybox sleep 60
//! WARNING: Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.
//! 3f1c...                                           # create: stderr, "WARNING: " each
//! $ docker update --blkio-weight 300 web
//! web
//! Your kernel does not support Block I/O weight ...   # update: stdout, after the names
//! ```
//!
//! Both fronts print through here, the in-process CLI with the engine
//! core's warnings and client mode with the service's `Warnings`, so the
//! two cannot drift apart.

use anyhow::Result;

use super::Code;

/// `create`/`run`: each warning on stderr, as docker's CLI prints a create
/// response's (`fmt.Fprintln(dockerCli.Err(), "WARNING:", w)`).
pub fn print_create(warnings: &[String]) {
    for w in warnings {
        eprintln!("WARNING: {w}");
    }
}

/// `update` of each of `names`, as docker's CLI (`runUpdate`) prints it:
/// each name on stdout once updated, then every warning of every answer on
/// stdout, then the refusals on stderr, exit 1 if any. `update` returns a
/// container's warnings; an error for which `fatal` says true (the service
/// cannot be reached) ends it at once, as one command error.
pub fn update_each(
    names: &[String],
    update: impl Fn(&str) -> Result<Vec<String>>,
    fatal: impl Fn(&anyhow::Error) -> bool,
) -> Result<Code> {
    let (mut warnings, mut errors) = (Vec::new(), Vec::new());
    for name in names {
        match update(name) {
            Ok(w) => {
                println!("{name}");
                warnings.extend(w);
            }
            Err(e) if fatal(&e) => return Err(e),
            Err(e) => errors.push(e),
        }
    }
    // One line each, joined as docker's CLI joins them.
    if !warnings.is_empty() {
        println!("{}", warnings.join("\n"));
    }
    for e in &errors {
        eprintln!("Error response from daemon: {e:#}");
    }
    Ok(if errors.is_empty() { 0 } else { 1 })
}
