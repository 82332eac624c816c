//! `docker commit --change`: Dockerfile instructions applied to an image's config.
//!
//! `docker commit -c 'CMD ["nginx"]' -c 'ENV MODE=prod' box web` writes the new image with its
//! config changed as if a Dockerfile had said so after `FROM` the container's image. Each change
//! is one Dockerfile line, read by the same [`parser`](crate::parser) as `docker build`, in the
//! same exec (`CMD ["a", "b"]`) and shell (`CMD a b`, run with `/bin/sh -c`) forms, with the
//! same `$VAR` expansion from the image's ENV.
//!
//! Only instructions that change the config without building anything make sense here: Docker
//! accepts CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR and STOPSIGNAL (and
//! ONBUILD, which this lab does not carry out). Anything else (`RUN`, `COPY`...) is refused
//! with Docker's message.
//!
//! The config is the `config` object of an OCI image config, as JSON (`Cmd`, `Env`,
//! `ExposedPorts`...), so the caller can keep its own types.

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

use crate::builder::{check_signal, port_set};
use crate::parser::{parse, Args, Instruction, Keyword};
use crate::shell::Lexer;

/// The instructions `--change` accepts.
pub const ALLOWED: [Keyword; 9] = [
    Keyword::Cmd,
    Keyword::Entrypoint,
    Keyword::Env,
    Keyword::Expose,
    Keyword::Label,
    Keyword::Stopsignal,
    Keyword::User,
    Keyword::Volume,
    Keyword::Workdir,
];

/// Parse every change (one Dockerfile line each) and check it is allowed, before anything is
/// applied: a bad change leaves the config, and the store, as they were.
pub fn parse_changes(changes: &[String]) -> Result<Vec<Instruction>> {
    let mut out = Vec::new();
    for change in changes {
        let file = parse(change).map_err(|e| anyhow::anyhow!("dockerfile parse error: {e}"))?;
        for ins in file.instructions {
            if !ALLOWED.contains(&ins.keyword) {
                bail!("{} is not a valid change command", ins.keyword);
            }
            out.push(ins);
        }
    }
    Ok(out)
}

/// Apply `changes` to `config` (the `config` object of an image config, possibly `null`).
/// Either every change is applied or none: they are applied to a copy.
pub fn apply_changes(config: &mut Value, changes: &[String]) -> Result<()> {
    let instructions = parse_changes(changes)?;
    let mut cfg = config.as_object().cloned().unwrap_or_default();
    apply(&mut cfg, &instructions)?;
    *config = Value::Object(cfg);
    Ok(())
}

fn apply(cfg: &mut Map<String, Value>, instructions: &[Instruction]) -> Result<()> {
    let lexer = Lexer::new('\\');
    // As in a Dockerfile, ENTRYPOINT drops an inherited CMD (its arguments were meant for the
    // old entrypoint), but not one given among the same changes.
    let cmd_set = instructions.iter().any(|i| i.keyword == Keyword::Cmd);
    for ins in instructions {
        // Variables come from the config's ENV as it stands before this instruction.
        let vars = env_pairs(cfg);
        let expand = |w: &str| {
            lexer
                .expand_word(w, &vars)
                .with_context(|| ins.original.clone())
        };
        match (ins.keyword, &ins.args) {
            (Keyword::Cmd | Keyword::Entrypoint, args) => {
                let argv = match args {
                    Args::Exec(v) => v.clone(),
                    Args::Shell(s) => {
                        let mut shell = strings(cfg, "Shell");
                        if shell.is_empty() {
                            shell = vec!["/bin/sh".into(), "-c".into()];
                        }
                        shell.push(s.clone());
                        shell
                    }
                    _ => Vec::new(),
                };
                if ins.keyword == Keyword::Cmd {
                    cfg.insert("Cmd".into(), json!(argv));
                } else {
                    cfg.insert("Entrypoint".into(), json!(argv));
                    if !cmd_set {
                        cfg.insert("Cmd".into(), Value::Null);
                    }
                }
            }
            (Keyword::Env | Keyword::Label, Args::Pairs(pairs)) => {
                let mut set = Vec::new();
                for p in pairs {
                    set.push((expand(&p.key)?, expand(&p.value)?));
                }
                for (k, v) in set {
                    if ins.keyword == Keyword::Env {
                        let mut env = strings(cfg, "Env");
                        let entry = format!("{k}={v}");
                        match env
                            .iter_mut()
                            .find(|e| e.split('=').next() == Some(k.as_str()))
                        {
                            Some(e) => *e = entry,
                            None => env.push(entry),
                        }
                        cfg.insert("Env".into(), json!(env));
                    } else {
                        object(cfg, "Labels").insert(k, json!(v));
                    }
                }
            }
            (Keyword::Expose, Args::Words(words)) => {
                let mut ports = Vec::new();
                for w in words {
                    for p in lexer.expand_words(w, &vars)? {
                        ports.extend(port_set(&p)?);
                    }
                }
                let map = object(cfg, "ExposedPorts");
                for p in ports {
                    map.insert(p, json!({}));
                }
            }
            (Keyword::Volume, Args::Exec(words) | Args::Words(words)) => {
                let mut paths = Vec::new();
                for w in words {
                    let p = expand(w)?;
                    if p.trim().is_empty() {
                        bail!("VOLUME specified can not be an empty string");
                    }
                    paths.push(p);
                }
                let map = object(cfg, "Volumes");
                for p in paths {
                    map.insert(p, json!({}));
                }
            }
            (Keyword::User, Args::Shell(u)) => {
                let user = expand(u)?;
                cfg.insert("User".into(), json!(user));
            }
            (Keyword::Stopsignal, Args::Shell(s)) => {
                let sig = expand(s)?;
                check_signal(&sig)?;
                cfg.insert("StopSignal".into(), json!(sig));
            }
            (Keyword::Workdir, Args::Shell(w)) => {
                let w = expand(w)?;
                // A relative WORKDIR is relative to the previous one, as in a Dockerfile.
                let base = cfg
                    .get("WorkingDir")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .unwrap_or("/")
                    .to_string();
                let dir = std::path::Path::new(&base).join(&w);
                cfg.insert("WorkingDir".into(), json!(dir.to_string_lossy()));
            }
            (k, _) => bail!("{}: unexpected arguments for {k}", ins.original),
        }
    }
    Ok(())
}

/// The config's ENV as (name, value) pairs, for `$VAR` expansion.
fn env_pairs(cfg: &Map<String, Value>) -> std::collections::BTreeMap<String, String> {
    strings(cfg, "Env")
        .into_iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e, String::new()),
        })
        .collect()
}

fn strings(cfg: &Map<String, Value>, key: &str) -> Vec<String> {
    cfg.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `cfg[key]` as an object, made one if it is missing or `null`.
fn object<'a>(cfg: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let v = cfg.entry(key).or_insert(json!({}));
    if !v.is_object() {
        *v = json!({});
    }
    v.as_object_mut().expect("just made an object")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply_all(start: Value, changes: &[&str]) -> Result<Value> {
        let mut cfg = start;
        let changes: Vec<String> = changes.iter().map(|s| s.to_string()).collect();
        apply_changes(&mut cfg, &changes)?;
        Ok(cfg)
    }

    #[test]
    fn exec_and_shell_forms() {
        let cfg = apply_all(
            json!({"Cmd": ["sh"]}),
            &[r#"ENTRYPOINT ["/bin/echo", "hi"]"#],
        )
        .unwrap();
        assert_eq!(cfg["Entrypoint"], json!(["/bin/echo", "hi"]));
        // ENTRYPOINT drops the inherited CMD...
        assert_eq!(cfg["Cmd"], Value::Null);
        // ...but not one among the same changes.
        let cfg = apply_all(json!({}), &["ENTRYPOINT [\"a\"]", "CMD echo $HOME"]).unwrap();
        assert_eq!(cfg["Cmd"], json!(["/bin/sh", "-c", "echo $HOME"]));
    }

    #[test]
    fn env_label_expose_volume_user_workdir_stopsignal() {
        let cfg = apply_all(
            json!({"Env": ["PATH=/bin", "A=old"], "WorkingDir": "/srv"}),
            &[
                "ENV A=new B=\"$A x\"",
                "LABEL version=1.0 \"two words\"=yes",
                "EXPOSE 80 53/udp",
                "VOLUME [\"/data\"]",
                "USER nobody",
                "WORKDIR app",
                "STOPSIGNAL SIGINT",
            ],
        )
        .unwrap();
        assert_eq!(cfg["Env"], json!(["PATH=/bin", "A=new", "B=old x"]));
        assert_eq!(cfg["Labels"], json!({"version": "1.0", "two words": "yes"}));
        assert_eq!(cfg["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(cfg["Volumes"], json!({"/data": {}}));
        assert_eq!(cfg["User"], json!("nobody"));
        assert_eq!(cfg["WorkingDir"], json!("/srv/app"));
        assert_eq!(cfg["StopSignal"], json!("SIGINT"));
    }

    #[test]
    fn refuses_what_docker_refuses() {
        let err = apply_all(json!({}), &["RUN rm -rf /"])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "RUN is not a valid change command");
        assert!(apply_all(json!({}), &["EXPOSE 99999"]).is_err());
        assert!(apply_all(json!({}), &["STOPSIGNAL SIGNOPE"]).is_err());
        // Nothing is applied when one change is bad.
        let mut cfg = json!({"User": "root"});
        let bad = vec!["USER nobody".to_string(), "COPY . /".to_string()];
        assert!(apply_changes(&mut cfg, &bad).is_err());
        assert_eq!(cfg, json!({"User": "root"}));
    }
}
