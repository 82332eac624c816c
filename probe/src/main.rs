//! `probe`: a tiny static program that reports what the kernel shows a process.
//!
//! A container is not a thing the kernel knows about. It is an ordinary process
//! that the kernel shows a *different view* of the system: its own PID numbers
//! (PID namespace), its own hostname (UTS namespace), its own mount table
//! (mount namespace), its own network interfaces (network namespace), fewer
//! capabilities, a seccomp filter, a cgroup. The only honest way to check that
//! isolation works is to ask from the inside, the way `cat /proc/self/status`,
//! `ls -l /proc/self/ns`, `cat /proc/self/mountinfo` and `ip addr` would.
//!
//! `probe` does exactly that and prints one JSON object, so tests can assert on
//! what the kernel shows instead of on exit codes. It is linked statically so it
//! runs in any rootfs (there is no libc in a busybox image to load it with),
//! and it never panics on a missing `/proc`: fields it cannot read are `null`
//! and the reason is listed under `"errors"`.
//!
//! ```text
//! probe                          # the report (see `report.rs`)
//! probe escape [--read PATH]     # the nested-chroot escape (see `escape.rs`)
//! probe syscall NAME             # one refused system call (see `syscall.rs`)
//! ```
//!
//! Build it (from the workspace root) with:
//!
//! ```text
//! RUSTFLAGS="-C target-feature=+crt-static" \
//!   cargo build --release -p dockyard-probe --target x86_64-unknown-linux-gnu
//! ```

mod caps;
mod escape;
mod mountinfo;
mod report;
mod syscall;

use std::io::Write;
use std::process::ExitCode;

const USAGE: &str =
    "usage: probe                      print what the kernel shows this process, as JSON
       probe escape [--read PATH]  try the nested-chroot escape, then optionally read PATH
       probe syscall NAME          try keyctl, userfaultfd, bpf, perf_event_open or open_by_handle_at";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] => print_json(&report::collect()),
        ["escape"] => run_escape(None),
        ["escape", "--read", path] => run_escape(Some(path)),
        ["syscall", name] => match syscall::attempt(name) {
            Ok(outcome) => print_json(&outcome),
            Err(e) => {
                eprintln!("probe syscall: {e}");
                ExitCode::from(2)
            }
        },
        ["-h"] | ["--help"] | ["help"] => {
            let _ = writeln!(std::io::stdout().lock(), "{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("probe: unexpected arguments {args:?}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run_escape(read: Option<&str>) -> ExitCode {
    match escape::attempt(read) {
        Ok(outcome) => print_json(&outcome),
        Err(e) => {
            eprintln!("probe escape: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> ExitCode {
    match serde_json::to_string_pretty(value) {
        // writeln! instead of println!: println! panics when stdout is a
        // closed pipe (`probe | head`), and the probe must never panic.
        Ok(text) => match writeln!(std::io::stdout().lock(), "{text}") {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("probe: writing the report to stdout: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("probe: serializing the report as JSON: {e}");
            ExitCode::FAILURE
        }
    }
}
