//! The steady state of a container's monitor, shared by `dockyard` and the
//! small `dockyard-monitor` program.
//!
//! Starting a container is heavy work: an overlay mount, cgroups, namespaces,
//! a network, the security layer. Watching it afterwards is light: copy its
//! output to the log and to attached clients, pass input on, and wait for its
//! exit. podman splits the two the same way: podman sets up, and `conmon`, a
//! small C program, stays behind for each container. Dockyard's monitor does
//! the setup as a fork of the `dockyard` CLI, then `execve(2)`s this crate's
//! binary, which holds only what the steady state needs (see `main.rs`). The
//! container stays its child across the exec: a process keeps its PID and
//! its children when it runs a new program, so `waitpid(2)` still works.
//!
//! What lives here is used by both programs, never written twice:
//!
//! - [`pump`]: the poll loop that moves bytes and waits for the exit;
//! - [`attach`]: the attach socket's server side and its framing;
//! - [`jsonfile`]: the json-file log driver's writer, with rotation;
//! - [`time`]: RFC 3339 times, as docker writes them.
//!
//! Errors are plain `std::io::Error`s with the context in their message, so
//! that the small program needs no error-handling crate.

pub mod attach;
pub mod jsonfile;
pub mod pump;
pub mod time;

/// An `io::Error` that says what failed: "`what`: `error`".
pub fn context(what: impl std::fmt::Display, e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("{what}: {e}"))
}
