//! The `dockyard` engine core: a docker-like engine built from the labs.
//!
//! This library is what every front end shares: the `dockyard` command
//! line (`src/main.rs`, `src/cli.rs`, `src/commands/`) today, and an
//! Engine API server and an OCI runtime next. None of them parses another's
//! arguments: each turns its own input into the typed calls below.
//!
//! - [`engine`]: one data root (images, containers, volumes) and its
//!   daemon.json settings;
//! - [`container`]: the life of a container, one verb per file;
//! - [`image`] (and [`image_lookup`]: names, IDs and ID prefixes),
//!   [`network`], [`volumes`]: the engine's side of labs 04 and
//!   05, and named volumes;
//! - [`state`], [`logs`], [`health`]: the records, logs and health of
//!   containers, kept in files (the engine has no daemon);
//! - [`remap`] and [`rootless`]: `--userns-remap`, and rootless mode;
//! - [`config`]: daemon.json; [`trace`]: the start-up trace; [`events`]:
//!   the event journal (`dockyard events`, `GET /events`).
//! - [`system`]: `info` and `system df`; [`distribution`]: pull, push,
//!   tag and the registry credentials; [`units`]: docker's human sizes and
//!   durations.
//!
//! Every kernel mechanism comes from a lab's library; the engine never
//! mounts, clones, enters a namespace or writes a cgroup file itself.

pub mod cluster;
pub mod config;
pub mod container;
pub mod distribution;
pub mod engine;
pub mod events;
pub mod health;
pub mod image;
pub mod image_lookup;
pub mod logs;
pub mod network;
pub mod remap;
pub mod repo_digest;
pub mod rootless;
pub mod search;
pub mod state;
pub mod system;
pub mod trace;
pub mod units;
pub mod volumes;

pub use engine::Engine;
