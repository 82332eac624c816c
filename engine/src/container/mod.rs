//! The life of a container, one verb per file, as youki organises its
//! `container/` module:
//!
//! | file          | what                                                        |
//! |---------------|-------------------------------------------------------------|
//! | `config.rs`   | what a container is created with (`Config`, `HostConfig`)   |
//! | `create.rs`   | `create`: the record and the writable layer                 |
//! | `plan.rs`     | `start`, first half: every translation, no side effect      |
//! | `start.rs`    | `start`, second half: everything that exists while it runs  |
//! | `monitor.rs`  | the monitor: the container's parent, its logs, its restarts |
//! | `exec.rs`     | `exec`: another process in it                               |
//! | `signal.rs`   | `kill`, `stop`, `wait` for an exit                          |
//! | `pause.rs`    | `pause`, `unpause`: lab 03's freezer                        |
//! | `top.rs`      | `top`: its processes                                        |
//! | `stats.rs`    | `stats`: its cgroup's counters                              |
//! | `list.rs`     | `ps`: the containers, filtered                              |
//! | `inspect.rs`  | `inspect`: docker's JSON of a container                     |
//! | `connect.rs`  | `network connect`, `disconnect`, and its networks' JSON     |
//! | `copy.rs`     | `cp`: files in and out of its root filesystem               |
//! | `detach.rs`   | the detach keys of an attached terminal                     |
//! | `rename.rs`   | `rename`                                                    |
//! | `links.rs`    | `--link`: legacy links' /etc/hosts lines and variables      |
//! | `ns_modes.rs` | `--pid`, `--ipc`, `--uts`, `--cgroupns`: shared namespaces  |
//! | `remove.rs`   | `rm`, the prunes, and what removal asks of containers       |
//!
//! Every kernel mechanism comes from a lab: the image store and the overlay
//! root filesystem from lab 04, the container itself (namespaces, cgroup,
//! devices, security, the process) from lab 03's assembler over labs 01 and
//! 02, its network from lab 05. What this module adds is the record of each
//! container (the `state` module) and its monitor.

mod config;
mod connect;
mod copy;
mod create;
mod detach;
mod exec;
mod inspect;
mod links;
mod list;
mod monitor;
pub mod ns_modes;
mod pause;
pub mod plan;
mod remove;
mod rename;
mod resource_checks;
mod signal;
mod size;
mod start;
mod stats;
mod top;
mod update;

pub use config::*;
pub use connect::*;
pub use copy::*;
pub use create::*;
pub use detach::*;
pub use exec::*;
pub use inspect::*;
pub use links::*;
pub use list::*;
pub use monitor::*;
pub use pause::*;
pub use remove::*;
pub use rename::*;
pub use resource_checks::*;
pub use signal::*;
pub use size::*;
pub use start::*;
pub use stats::*;
pub use top::*;
pub use update::*;
