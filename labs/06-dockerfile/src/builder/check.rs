//! Checking the whole file before building anything.
//!
//! A Dockerfile is split into the `ARG`s before the first `FROM` (which only `FROM` lines
//! can see) and its stages, each starting with a `FROM`. Every instruction is then checked
//! for what can be known without building: its flags (refused by name when they are
//! BuildKit's or need a network this builder has not), and its number and form of
//! arguments. A mistake on the last line fails the build before the first step runs, as
//! `docker build` does.

use std::collections::{BTreeMap, BTreeSet};

use crate::parser::{Args, Instruction, Keyword};

/// A Dockerfile split into the ARGs before the first FROM and its stages.
pub(super) struct Plan<'a> {
    pub(super) global_args: Vec<&'a Instruction>,
    pub(super) stages: Vec<Vec<&'a Instruction>>,
}

pub(super) fn stage_name(from: &Instruction) -> Option<&str> {
    match &from.args {
        Args::Words(w) if w.len() == 3 => Some(w[2].as_str()),
        _ => None,
    }
}

pub(super) fn plan(instructions: &[Instruction]) -> std::result::Result<Plan<'_>, (usize, String)> {
    let mut global_args = Vec::new();
    let mut stages: Vec<Vec<&Instruction>> = Vec::new();
    let mut names = BTreeSet::new();
    for ins in instructions {
        if ins.keyword == Keyword::From {
            match &ins.args {
                Args::Words(w) if w.len() == 1 => {}
                Args::Words(w) if w.len() == 3 && w[1].eq_ignore_ascii_case("as") => {
                    let name = w[2].to_ascii_lowercase();
                    if !names.insert(name.clone()) {
                        return Err((ins.start_line, format!("duplicate stage name {:?}", w[2])));
                    }
                }
                _ => {
                    return Err((
                        ins.start_line,
                        "FROM requires either one or three arguments: FROM IMAGE [AS NAME]".into(),
                    ))
                }
            }
            stages.push(vec![ins]);
        } else if let Some(stage) = stages.last_mut() {
            stage.push(ins);
        } else if ins.keyword == Keyword::Arg {
            global_args.push(ins);
        } else {
            return Err((
                ins.start_line,
                format!(
                    "{} before the first FROM: only ARG may come before FROM (no build stage \
                     in current context)",
                    ins.keyword
                ),
            ));
        }
    }
    if stages.is_empty() {
        return Err((1, "the Dockerfile has no FROM instruction".into()));
    }
    Ok(Plan {
        global_args,
        stages,
    })
}

/// `--name=value` flags, checked against what the instruction accepts.
pub(super) fn flags(ins: &Instruction) -> std::result::Result<BTreeMap<String, String>, String> {
    let (allowed, unsupported): (&[&str], &[(&str, &str)]) = match ins.keyword {
        Keyword::Copy => (
            &["from", "chown", "chmod"],
            &[
                ("link", "layers are always stacked on their parent here"),
                ("parents", "it is a BuildKit extension"),
                ("exclude", "it is a BuildKit extension"),
            ],
        ),
        Keyword::Add => (
            &["chown", "chmod"],
            &[
                ("link", "layers are always stacked on their parent here"),
                (
                    "checksum",
                    "ADD of URLs needs the network, which this builder has not",
                ),
                (
                    "keep-git-dir",
                    "ADD of git URLs needs the network, which this builder has not",
                ),
                ("exclude", "it is a BuildKit extension"),
            ],
        ),
        Keyword::Run => (
            &["network"],
            &[
                ("mount", "cache, secret and bind mounts are BuildKit's"),
                (
                    "security",
                    "RUN steps always run with Docker's default security",
                ),
            ],
        ),
        Keyword::From => (
            &[],
            &[(
                "platform",
                "this builder builds for the host's platform only",
            )],
        ),
        Keyword::Healthcheck => (
            &[
                "interval",
                "timeout",
                "start-period",
                "start-interval",
                "retries",
            ],
            &[],
        ),
        _ => (&[], &[]),
    };
    let mut out = BTreeMap::new();
    for f in &ins.flags {
        let body = f.trim_start_matches("--");
        let (name, value) = body.split_once('=').unwrap_or((body, ""));
        if let Some((_, why)) = unsupported.iter().find(|(n, _)| *n == name) {
            return Err(format!(
                "{} --{name} is not supported by this builder ({why})",
                ins.keyword
            ));
        }
        if !allowed.contains(&name) {
            return Err(format!("Unknown flag: {name}"));
        }
        if name == "network" && !matches!(value, "none" | "default") {
            return Err(format!(
                "RUN --network={value} is not supported: RUN steps have no network here \
                 (only --network=none)"
            ));
        }
        out.insert(name.to_string(), value.to_string());
    }
    Ok(out)
}

/// What can be said about an instruction before building anything.
pub(super) fn validate(ins: &Instruction) -> std::result::Result<(), String> {
    flags(ins)?;
    let k = ins.keyword;
    match (&ins.args, k) {
        (Args::None, Keyword::Onbuild | Keyword::Stopsignal | Keyword::Maintainer) => {
            Err(format!("{k} requires exactly one argument"))
        }
        (Args::None, Keyword::Copy | Keyword::Add) => Err(format!("{k} requires at least two arguments")),
        (Args::None, Keyword::Arg) => Err("ARG requires exactly one argument".into()),
        (Args::None, Keyword::Healthcheck) => Err("HEALTHCHECK requires an argument".into()),
        (Args::None, Keyword::Expose | Keyword::Volume | Keyword::Env | Keyword::Label | Keyword::Workdir | Keyword::User | Keyword::Run | Keyword::Shell) => {
            Err(format!("{k} requires at least one argument"))
        }
        (Args::Exec(v) | Args::Words(v), Keyword::Copy | Keyword::Add) if v.len() < 2 => {
            Err(format!("{k} requires at least two arguments, but only one was provided. Destination could not be determined."))
        }
        (Args::Shell(_), Keyword::Shell) => Err("SHELL requires the arguments to be in JSON form".into()),
        (Args::Exec(v), Keyword::Shell) if v.is_empty() => Err("SHELL requires at least one argument".into()),
        (Args::Healthcheck { kind, command }, Keyword::Healthcheck) => {
            match kind.to_ascii_uppercase().as_str() {
                "NONE" if !matches!(**command, Args::None) || !ins.flags.is_empty() => {
                    Err("HEALTHCHECK NONE takes no arguments".into())
                }
                "NONE" => Ok(()),
                "CMD" if matches!(**command, Args::None) => Err("Missing command after HEALTHCHECK CMD".into()),
                "CMD" => Ok(()),
                other => Err(format!("Unknown type {other:?} in HEALTHCHECK (try CMD)")),
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Instruction {
        crate::parse(text).unwrap().instructions.remove(0)
    }

    #[test]
    fn unsupported_flags_are_named() {
        let e = validate(&one("RUN --mount=type=cache,target=/x true")).unwrap_err();
        assert!(e.contains("--mount") && e.contains("not supported"), "{e}");
        let e = validate(&one("COPY --link a /b")).unwrap_err();
        assert!(e.contains("--link"), "{e}");
        let e = validate(&one("FROM --platform=linux/arm64 busybox")).unwrap_err();
        assert!(e.contains("--platform"), "{e}");
        let e = validate(&one("COPY --frobnicate=1 a /b")).unwrap_err();
        assert_eq!(e, "Unknown flag: frobnicate");
        assert!(validate(&one("RUN --network=none true")).is_ok());
        assert!(validate(&one("RUN --network=host true")).is_err());
        assert!(validate(&one("SHELL /bin/bash -c")).is_err());
        assert!(validate(&one("COPY onlyone")).is_err());
    }

    #[test]
    fn plans_split_global_args_and_stages() {
        let df = crate::parse("ARG V=1\nFROM busybox AS a\nRUN true\nFROM a\nCMD x\n").unwrap();
        let p = plan(&df.instructions).unwrap();
        assert_eq!(p.global_args.len(), 1);
        assert_eq!(p.stages.len(), 2);
        assert_eq!(p.stages[0].len(), 2);
        let df = crate::parse("RUN true\nFROM busybox\n").unwrap();
        let (line, msg) = plan(&df.instructions).err().unwrap();
        assert_eq!(line, 1);
        assert!(msg.contains("before the first FROM"), "{msg}");
        let df = crate::parse("FROM busybox AS a\nFROM busybox AS A\n").unwrap();
        assert!(plan(&df.instructions).is_err());
    }
}
