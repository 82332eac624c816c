//! The engine, observed from outside and inside: the whole life of a
//! container through `dockyard`, checked against the kernel (mount table,
//! cgroups, /proc) and the probe.
//!
//! Every test gets its own data root and cgroup parent, and removes every
//! container it made when it ends, even by panic.
//!
//! One test binary (one link, one `cargo test --test engine`), in modules by
//! subject: a test's name starts with its module, e.g.
//! `cargo test --test engine -- networking::` runs the network tests.

mod api;
mod api_bollard;
mod api_client_mode;
mod api_clients;
mod api_images;
mod api_listen;
mod api_server;
mod api_stdin;
mod api_warnings;
mod attach;
mod cgroups;
mod common;
mod confinement;
mod devices;
mod escapes;
mod events;
mod fidelity;
mod images;
mod lifecycle;
mod macvlan;
mod networking;
mod notes_forms;
mod ns_modes;
mod oracle;
mod output;
mod overlay;
mod process_flags;
mod resource_flags;
mod resources;
mod robustness;
mod rootless;
mod shm_size;
mod userns_remap;
mod volumes;
