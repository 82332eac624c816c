//! Errors of the command line in docker's words.
//!
//! clap parses the command line (`cli.rs`); when it cannot, docker's users
//! expect docker's messages and exit codes, which scripts and the course
//! notes match on: `unknown flag: --link` (exit 125), `unknown command`
//! and `'docker run' requires at least 1 argument` (exit 1), each with the
//! usage line and where to read more.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::CommandFactory;

use crate::cli::Cli;
use crate::flag_values::FlagValue;

/// How docker's client reports a failed `run` or `create` (`withHelp`):
///
/// ```text
/// docker: Error response from daemon: Conflict. The container name "/web" is already in use ...
///
/// Run 'docker run --help' for more information
/// ```
///
/// with dockyard's name. What the client refuses itself, before it asks
/// the daemon (a flag's bad value, conflicting flags, no terminal for
/// `-t`), has no "Error response from daemon:".
pub fn run_error_report(command: &str, msg: &str) -> String {
    // dockerd's "conflicting options: hostname and the UTS mode" is the
    // daemon's; the client's conflicts all say "cannot".
    let client_side = [
        "invalid argument ",
        "conflicting options: cannot ",
        "the input device is not a TTY",
        "--pid: ",
        "--uts: ",
        "--cgroupns: ",
        "container ID file found",
        "invalid env file ",
        "open ",
    ];
    let daemon = if client_side.iter().any(|c| msg.starts_with(c)) {
        ""
    } else {
        "Error response from daemon: "
    };
    format!("dockyard: {daemon}{msg}\n\nRun 'dockyard {command} --help' for more information")
}

/// Docker's report of a command line it cannot parse, for every command,
/// with docker's exit code: an unknown flag (exit 125, as `run`'s)
///
/// ```text
/// unknown flag: --link
///
/// Usage:  dockyard run [OPTIONS] IMAGE [COMMAND] [ARG...]
///
/// Run 'dockyard run --help' for more information
/// ```
///
/// (`unknown shorthand flag: 'Z' in -Z` for a one-letter flag), an unknown
/// command (`dockyard: unknown command: dockyard foo`, exit 1) and missing
/// arguments (`dockyard: 'dockyard run' requires at least 1 argument`,
/// exit 1), a bad value of a flag docker's client parses itself
/// ([`FlagValue`]: `invalid argument "abc" for "--shm-size" flag: invalid
/// size: 'abc'`, exit 125, with the usage as for an unknown flag). `argv`
/// is the command line, to name the (sub)command. None for
/// any other kind of error: clap's own words stand for those.
pub fn parse_error_report(err: &clap::Error, argv: &[String]) -> Option<(String, u8)> {
    let (path, mut cmd) = subcommand_of(argv);
    let usage = docker_usage(
        cmd.render_usage()
            .to_string()
            .trim()
            .trim_start_matches("Usage:")
            .trim(),
    );
    match err.kind() {
        ErrorKind::UnknownArgument => {
            let Some(ContextValue::String(flag)) = err.get(ContextKind::InvalidArg) else {
                return None;
            };
            // A word where the command takes none (`events extra`): not a
            // flag, docker's "accepts no arguments" (exit 1).
            if !flag.starts_with('-') && cmd.get_positionals().next().is_none() {
                return Some((
                    format!(
                        "dockyard: '{path}' accepts no arguments\n\nUsage:  {usage}\n\nRun '{path} --help' for more information\n"
                    ),
                    1,
                ));
            }
            let first = match flag.strip_prefix('-') {
                Some(rest) if !rest.starts_with('-') => {
                    let letter = rest.chars().next().unwrap_or('-');
                    format!("unknown shorthand flag: '{letter}' in {flag}")
                }
                _ => format!("unknown flag: {}", flag.split('=').next().unwrap_or(flag)),
            };
            Some((
                format!("{first}\n\nUsage:  {usage}\n\nRun '{path} --help' for more information\n"),
                125,
            ))
        }
        ErrorKind::ValueValidation => {
            use std::error::Error;
            let why = err.source()?.downcast_ref::<FlagValue>()?;
            let (Some(ContextValue::String(arg)), Some(ContextValue::String(value))) = (
                err.get(ContextKind::InvalidArg),
                err.get(ContextKind::InvalidValue),
            ) else {
                return None;
            };
            // clap names it `--shm-size <BYTES>`.
            let flag = arg.split(' ').next().unwrap_or(arg);
            Some((
                format!(
                    "invalid argument \"{value}\" for \"{flag}\" flag: {why}\n\nUsage:  {usage}\n\nRun '{path} --help' for more information\n"
                ),
                125,
            ))
        }
        ErrorKind::InvalidSubcommand => {
            let Some(ContextValue::String(word)) = err.get(ContextKind::InvalidSubcommand) else {
                return None;
            };
            Some((
                format!(
                    "dockyard: unknown command: {path} {word}\n\nRun '{path} --help' for more information\n"
                ),
                1,
            ))
        }
        // (Too few values of a positional, as `exec web` gives: a
        // positional is shown as `<NAME>`, an option as `--name <VALUE>`.)
        ErrorKind::TooFewValues | ErrorKind::WrongNumberOfValues if !matches!(err.get(ContextKind::InvalidArg), Some(ContextValue::String(a)) if a.starts_with('<')) => {
            None
        }
        ErrorKind::MissingRequiredArgument
        | ErrorKind::TooFewValues
        | ErrorKind::WrongNumberOfValues => {
            // How many words the command takes: the least its required
            // positionals need, "at least" when the last takes more.
            let positionals: Vec<&clap::Arg> = cmd.get_positionals().collect();
            let least: usize = positionals
                .iter()
                .filter(|a| a.is_required_set())
                .map(|a| a.get_num_args().map_or(1, |r| r.min_values().max(1)))
                .sum();
            let more = positionals
                .iter()
                .any(|a| a.get_num_args().is_some_and(|r| r.max_values() > 1))
                || positionals.iter().any(|a| !a.is_required_set());
            let (how, s) = (
                if more { "at least" } else { "exactly" },
                if least == 1 { "" } else { "s" },
            );
            Some((
                format!(
                    "dockyard: '{path}' requires {how} {least} argument{s}\n\nUsage:  {usage}\n\nSee '{path} --help' for more information\n"
                ),
                1,
            ))
        }
        _ => None,
    }
}

/// clap's usage line in docker's notation: `<IMAGE [COMMAND] [ARG...]>...`
/// is `IMAGE [COMMAND] [ARG...]`, `<CONTAINERS>...` is `CONTAINERS
/// [CONTAINERS...]`, `<CONTEXT>` is `CONTEXT`.
fn docker_usage(usage: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut rest = usage;
    while let Some(open) = rest.find('<') {
        out.extend(rest[..open].split_whitespace().map(str::to_string));
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        let inner = &rest[open + 1..open + close];
        rest = &rest[open + close + 1..];
        let repeated = rest.starts_with("...");
        if repeated {
            rest = &rest[3..];
        }
        let word = match (repeated, inner.contains(' ')) {
            // Several words already say how they repeat.
            (true, false) => format!("{inner} [{inner}...]"),
            _ => inner.to_string(),
        };
        // clap writes a positional that takes two or more values twice.
        if out.last() != Some(&word) && !out.join(" ").ends_with(&word) {
            out.push(word);
        }
    }
    out.extend(rest.split_whitespace().map(str::to_string));
    out.join(" ")
}

/// The (sub)command `argv` reaches (`dockyard image ls`) and its clap
/// definition, skipping flags and the global options' values.
fn subcommand_of(argv: &[String]) -> (String, clap::Command) {
    let mut cmd = Cli::command();
    let mut path = vec!["dockyard".to_string()];
    let mut words = argv.iter().skip(1);
    while let Some(w) = words.next() {
        if matches!(w.as_str(), "--root" | "--config" | "--userns-remap") {
            words.next();
            continue;
        }
        if w.starts_with('-') {
            continue;
        }
        let Some(sub) = cmd.find_subcommand(w).cloned() else {
            break;
        };
        path.push(sub.get_name().to_string());
        let name = path.join(" ");
        cmd = sub.bin_name(name);
    }
    (path.join(" "), cmd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn usage_lines_are_written_in_dockers_notation() {
        assert_eq!(
            docker_usage("dockyard run [OPTIONS] <IMAGE [COMMAND] [ARG...]>..."),
            "dockyard run [OPTIONS] IMAGE [COMMAND] [ARG...]"
        );
        assert_eq!(
            docker_usage(
                "dockyard exec [OPTIONS] <CONTAINER COMMAND [ARG...]> <CONTAINER COMMAND [ARG...]>..."
            ),
            "dockyard exec [OPTIONS] CONTAINER COMMAND [ARG...]"
        );
        assert_eq!(
            docker_usage("dockyard rm [OPTIONS] <CONTAINERS>..."),
            "dockyard rm [OPTIONS] CONTAINERS [CONTAINERS...]"
        );
        assert_eq!(
            docker_usage("dockyard ps [OPTIONS]"),
            "dockyard ps [OPTIONS]"
        );
        assert_eq!(
            docker_usage("dockyard build [OPTIONS] <CONTEXT>"),
            "dockyard build [OPTIONS] CONTEXT"
        );
    }

    #[test]
    fn unknown_flags_name_the_command_they_were_given_to() {
        let argv = |a: &[&str]| -> Vec<String> { a.iter().map(|s| s.to_string()).collect() };
        let report = |a: &[&str]| {
            let err = Cli::try_parse_from(argv(a)).unwrap_err();
            parse_error_report(&err, &argv(a)).map(|(m, _)| m)
        };
        assert_eq!(
            report(&["dockyard", "--root", "/r", "image", "ls", "--bogus"]).unwrap(),
            "unknown flag: --bogus\n\nUsage:  dockyard image ls [OPTIONS] [REPOSITORY[:TAG]]\n\nRun 'dockyard image ls --help' for more information\n"
        );
        let short = report(&["dockyard", "run", "-dZ", "busybox"]).unwrap();
        assert!(
            short.starts_with("unknown shorthand flag: 'Z' in -Z"),
            "{short}"
        );
        // Missing arguments and unknown commands, in docker's words.
        assert!(report(&["dockyard", "run"])
            .unwrap()
            .starts_with("dockyard: 'dockyard run' requires at least 1 argument\n\nUsage:  dockyard run [OPTIONS] IMAGE [COMMAND] [ARG...]\n"));
        assert!(report(&["dockyard", "exec", "web"])
            .unwrap()
            .starts_with("dockyard: 'dockyard exec' requires at least 2 arguments\n"));
        assert!(report(&["dockyard", "rename", "a"])
            .unwrap()
            .starts_with("dockyard: 'dockyard rename' requires exactly 2 arguments\n"));
        assert_eq!(
            report(&["dockyard", "image", "foo"]).unwrap(),
            "dockyard: unknown command: dockyard image foo\n\nRun 'dockyard image --help' for more information\n"
        );
        // A size docker's client refuses, in its words (docker 28.2.2).
        assert_eq!(
            report(&["dockyard", "create", "--shm-size", "12x", "busybox"]).unwrap(),
            "invalid argument \"12x\" for \"--shm-size\" flag: invalid suffix: 'x'\n\nUsage:  dockyard create [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'dockyard create --help' for more information\n"
        );
        let err = Cli::try_parse_from(argv(&["dockyard", "run", "--shm-size=-1", "busybox"]))
            .unwrap_err();
        assert_eq!(
            parse_error_report(&err, &argv(&["dockyard", "run", "--shm-size=-1", "busybox"])),
            Some((
                "invalid argument \"-1\" for \"--shm-size\" flag: invalid size: '-1'\n\nUsage:  dockyard run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'dockyard run --help' for more information\n".to_string(),
                125
            ))
        );
        // Other errors keep clap's words.
        assert!(report(&["dockyard", "run", "--cpus", "lots", "busybox"]).is_none());
    }
}
