//! `dockyard pull`, `push`, `login` against a real registry: Debian's
//! `docker-registry` (distribution v2), one process per test on a free
//! loopback port, with its own storage directory (and htpasswd file for the
//! auth tests), killed when the test ends, even by panic. skopeo and podman
//! check that what dockyard pushes is what other tools read, and the other
//! way round. Every test has its own data roots and credentials directory.
//!
//! The Bearer token flow runs against distribution's own token auth, with
//! tests/token_server.py as the token issuer (lab 04's unit tests also run
//! it against a mock). A tiny fake registry (in `interrupted`) serves what
//! distribution cannot be made to do: a connection dropped half way through
//! a blob.
//!
//! One test binary, in modules by subject: a test's name starts with its
//! module, e.g. `cargo test --test registry -- auth::`.

mod auth;
mod common;
mod interop;
mod interrupted;
mod push_pull;
mod run_pulls;
