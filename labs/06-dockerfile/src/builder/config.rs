//! The instructions that change only the image's config: `ENV`, `LABEL`, `MAINTAINER`,
//! `CMD`, `ENTRYPOINT`, `SHELL`, `USER`, `STOPSIGNAL`, `EXPOSE`, `VOLUME`, `HEALTHCHECK` and
//! `ONBUILD`; and `ARG`, which changes nothing but the variables of the steps after it (and
//! the history, where the classic builder records it).
//!
//! Each of the others is a step with no layer: the config with the change, and a history
//! entry with `empty_layer: true` and Docker's `/bin/sh -c #(nop)  INSTRUCTION` as its
//! `created_by`. The cache key is the parent image and that line (and, for `ENTRYPOINT`,
//! whether it resets `CMD`), so a step is reused exactly when the same instruction,
//! expanded the same way, follows the same image. What `docker inspect` shows of them:
//!
//! ```text
//! docker inspect -f '{{json .Config}}' IMAGE    # Env, Cmd, Entrypoint, ExposedPorts, ...
//! docker history --no-trunc IMAGE               # the #(nop) lines
//! ```

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

use super::check::{flags, validate};
use super::image::Img;
use super::{Builder, Stage};
use crate::cache;
use crate::parser::{Args, Instruction, Keyword};

/// The history line of a step that changes only the config, as Docker writes it.
fn nop(text: &str) -> String {
    format!("/bin/sh -c #(nop)  {text}")
}

impl Builder<'_> {
    /// A step that changes only the config: reused from the cache (keyed by the parent
    /// image and the history line), or made by `change`, with no layer.
    fn config_step(
        &mut self,
        st: &mut Stage,
        created_by: String,
        change: impl Fn(&mut Img) -> Result<()>,
    ) -> Result<()> {
        let key = cache::key(&[&st.img.id, &created_by]);
        if self.probe(st, &key, &created_by, &change)? {
            return Ok(());
        }
        self.finish_step(st, &key, &created_by, None, change)
    }

    /// A step that sets one field of the config.
    fn set_config(
        &mut self,
        st: &mut Stage,
        field: &str,
        value: Value,
        text: String,
    ) -> Result<()> {
        self.config_step(st, nop(&text), |img| {
            img.cfg().insert(field.into(), value.clone());
            Ok(())
        })
    }

    /// `ENV` and `LABEL`: `key=value` pairs into `Env` or `Labels`.
    pub(super) fn env_or_label(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let Args::Pairs(pairs) = &ins.args else {
            unreachable!("validated")
        };
        // Every value is expanded with the variables from *before* the instruction:
        // `ENV A=1 B=$A` gives B the old A.
        let mut set = Vec::new();
        for p in pairs {
            set.push((self.expand(st, &p.key)?, self.expand(st, &p.value)?));
        }
        let text: Vec<String> = set.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let created_by = nop(&format!("{} {}", ins.keyword, text.join(" ")));
        let is_env = ins.keyword == Keyword::Env;
        self.config_step(st, created_by, |img| {
            for (k, v) in &set {
                if is_env {
                    img.set_env(k, v);
                } else {
                    let labels = img.cfg().entry("Labels").or_insert(json!({}));
                    if !labels.is_object() {
                        *labels = json!({});
                    }
                    labels[k] = json!(v);
                }
            }
            Ok(())
        })
    }

    /// `docker build --label KEY=VALUE`: a label step, its value taken as it is (no
    /// expansion), as moby's `NewLabelCommand(k, v, true)`.
    pub(super) fn label(&mut self, st: &mut Stage, key: &str, value: &str) -> Result<()> {
        let created_by = nop(&format!("LABEL {key}={value}"));
        self.config_step(st, created_by, |img| {
            let labels = img.cfg().entry("Labels").or_insert(json!({}));
            if !labels.is_object() {
                *labels = json!({});
            }
            labels[key] = json!(value);
            Ok(())
        })
    }

    /// `MAINTAINER`: the image's `author`.
    pub(super) fn maintainer(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let Args::Shell(who) = &ins.args else {
            unreachable!("validated")
        };
        let created_by = nop(&format!("MAINTAINER {who}"));
        let who = who.clone();
        self.config_step(st, created_by, |img| {
            img.config["author"] = json!(who);
            Ok(())
        })
    }

    /// `CMD` and `ENTRYPOINT`, the shell form wrapped in the stage's `SHELL`.
    pub(super) fn cmd_or_entrypoint(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let argv = match &ins.args {
            Args::Exec(v) => v.clone(),
            Args::Shell(s) => {
                let mut v = st.img.shell();
                v.push(s.clone());
                v
            }
            _ => Vec::new(),
        };
        let field = if ins.keyword == Keyword::Cmd {
            "Cmd"
        } else {
            "Entrypoint"
        };
        let created_by = nop(&format!("{} {}", field.to_uppercase(), json!(argv)));
        // ENTRYPOINT resets a CMD inherited from the base image: its arguments were
        // meant for another program. A CMD from this Dockerfile stays.
        let reset_cmd = ins.keyword == Keyword::Entrypoint && !st.cmd_set;
        let key = cache::key(&[
            &st.img.id,
            &created_by,
            if reset_cmd { "reset" } else { "" },
        ]);
        if ins.keyword == Keyword::Cmd {
            st.cmd_set = true;
        }
        let change = |img: &mut Img| {
            img.cfg().insert(field.into(), json!(argv));
            if reset_cmd {
                img.cfg().insert("Cmd".into(), Value::Null);
            }
            Ok(())
        };
        if self.probe(st, &key, &created_by, &change)? {
            return Ok(());
        }
        self.finish_step(st, &key, &created_by, None, change)
    }

    /// `SHELL ["executable", "parameters"]`: what the shell forms after it run in.
    pub(super) fn shell(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let Args::Exec(v) = &ins.args else {
            unreachable!("validated")
        };
        self.set_config(st, "Shell", json!(v), format!("SHELL {}", json!(v)))
    }

    /// `USER name[:group]`, expanded and kept as given: `RUN` and the engine resolve it in
    /// the image's passwd file.
    pub(super) fn user(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let Args::Shell(u) = &ins.args else {
            unreachable!("validated")
        };
        let user = self.expand(st, u)?;
        self.set_config(st, "User", json!(user), format!("USER {user}"))
    }

    /// `STOPSIGNAL`: a signal number or name, checked now.
    pub(super) fn stopsignal(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let Args::Shell(s) = &ins.args else {
            unreachable!("validated")
        };
        let sig = self.expand(st, s)?;
        check_signal(&sig)?;
        self.set_config(st, "StopSignal", json!(sig), format!("STOPSIGNAL {sig}"))
    }

    /// `EXPOSE`: ports into `ExposedPorts`, normalised (`80` is `80/tcp`).
    pub(super) fn expose(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let Args::Words(words) = &ins.args else {
            unreachable!("validated")
        };
        // The history line keeps the words as written (expanded), `EXPOSE 80 7000-7002/udp`,
        // as moby's dispatchExpose does; the config gets one entry a port.
        let mut words_out = Vec::new();
        let mut ports = Vec::new();
        for w in words {
            for p in self.lexer.expand_words(w, &self.vars(st))? {
                ports.extend(port_set(&p)?);
                words_out.push(p);
            }
        }
        let created_by = nop(&format!("EXPOSE {}", words_out.join(" ")));
        self.config_step(st, created_by, |img| {
            let map = img.cfg().entry("ExposedPorts").or_insert(json!({}));
            for p in &ports {
                map[p.as_str()] = json!({});
            }
            Ok(())
        })
    }

    /// `VOLUME`: paths into `Volumes`.
    pub(super) fn volume(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let words = match &ins.args {
            Args::Exec(v) | Args::Words(v) => v.clone(),
            _ => Vec::new(),
        };
        let mut paths = Vec::new();
        for w in words {
            let p = self.expand(st, &w)?;
            if p.trim().is_empty() {
                bail!("VOLUME specified can not be an empty string");
            }
            paths.push(p);
        }
        let created_by = nop(&format!("VOLUME {}", json!(paths)));
        self.config_step(st, created_by, |img| {
            let map = img.cfg().entry("Volumes").or_insert(json!({}));
            for p in &paths {
                map[p.as_str()] = json!({});
            }
            Ok(())
        })
    }

    /// `HEALTHCHECK`: see [`healthcheck`].
    pub(super) fn set_healthcheck(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let hc = healthcheck(ins)?;
        let created_by = nop(&format!("HEALTHCHECK {hc}"));
        self.config_step(st, created_by, |img| {
            img.cfg().insert("Healthcheck".into(), hc.clone());
            Ok(())
        })
    }

    /// `ONBUILD INSTRUCTION`: a trigger kept in the config, for the builds that start
    /// `FROM` this image; checked now, run there.
    pub(super) fn onbuild(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let Args::Trigger(inner) = &ins.args else {
            unreachable!("validated")
        };
        validate(inner).map_err(|m| anyhow!("{}:{}: {m}", self.dockerfile, ins.start_line))?;
        let trigger = inner.original.trim().to_string();
        let created_by = nop(&format!("ONBUILD {trigger}"));
        self.config_step(st, created_by, |img| {
            let mut all = img.strings("OnBuild");
            all.push(trigger.clone());
            img.cfg().insert("OnBuild".into(), json!(all));
            Ok(())
        })
    }

    // ANCHOR: arg
    /// `ARG NAME[=default]`: declares a variable for the rest of the stage. Its value is the
    /// `--build-arg`, else the default, else the value of a global `ARG` of the same name
    /// (declared before the first FROM, which only FROM lines can see until a stage
    /// re-declares it). The config does not change, but the classic builder commits the
    /// step all the same (moby's `dispatchArg`): a history entry `#(nop)  ARG NAME=default`
    /// with the default as written (expanded), never the `--build-arg` value, so the step
    /// is cached whatever the value; the RUN steps after it carry the value in their keys.
    pub(super) fn arg(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let Args::Words(words) = &ins.args else {
            unreachable!("validated")
        };
        let mut text = Vec::new();
        for w in words {
            let (name, default) = match w.split_once('=') {
                Some((n, d)) => (n.to_string(), Some(self.expand(st, d)?)),
                None => (w.clone(), None),
            };
            text.push(match &default {
                Some(d) => format!("{name}={d}"),
                None => name.clone(),
            });
            let value = match self.build_args.get(&name) {
                Some(v) => {
                    self.used_args.insert(name.clone());
                    Some(v.clone())
                }
                None => default.or_else(|| self.global_args.get(&name).cloned().flatten()),
            };
            st.args.insert(name, value);
        }
        self.config_step(st, nop(&format!("ARG {}", text.join(" "))), |_| Ok(()))
    }
    // ANCHOR_END: arg
}

// ANCHOR: port_set
/// The ports an `EXPOSE` word stands for, normalised: `80` is `80/tcp`, and a range is each
/// of its ports, `7000-7002/udp` is `7000/udp`, `7001/udp` and `7002/udp` (docker's
/// `nat.ParsePortSpecs`, which is why `docker inspect` lists three). The protocol is tcp,
/// udp or sctp.
pub(crate) fn port_set(p: &str) -> Result<Vec<String>> {
    let (ports, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let proto = if proto.is_empty() {
        "tcp".to_string()
    } else {
        proto.to_ascii_lowercase()
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        bail!("invalid proto: {proto}");
    }
    let port = |s: &str| {
        s.parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| anyhow!("invalid containerPort: {ports}"))
    };
    let (first, last) = match ports.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => (port(ports)?, port(ports)?),
    };
    if first > last {
        bail!("invalid range specified for container port: {ports}");
    }
    Ok((first..=last).map(|n| format!("{n}/{proto}")).collect())
}
// ANCHOR_END: port_set

pub(crate) fn check_signal(s: &str) -> Result<()> {
    if s.parse::<i32>().is_ok_and(|n| (1..=64).contains(&n)) {
        return Ok(());
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    if name.parse::<nix::sys::signal::Signal>().is_ok() || name.starts_with("SIGRTM") {
        return Ok(());
    }
    bail!("Invalid signal: {s}")
}

/// A Go duration (`30s`, `1m30s`, `500ms`) in nanoseconds.
fn duration_ns(flag: &str, s: &str) -> Result<i64> {
    let bad = || anyhow!("HEALTHCHECK --{flag}={s}: invalid duration (use e.g. 30s, 1m30s, 500ms)");
    if s == "0" {
        return Ok(0);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += n * mult;
        rest = &rest[unit_len..];
    }
    Ok(total as i64)
}

// ANCHOR: healthcheck
/// `HEALTHCHECK [--interval=D ...] CMD ...` as Docker stores it: the test (`["CMD", ...]`
/// for the exec form, `["CMD-SHELL", "..."]` for the shell form, `["NONE"]`), and the
/// durations in nanoseconds.
fn healthcheck(ins: &Instruction) -> Result<Value> {
    let Args::Healthcheck { kind, command } = &ins.args else {
        unreachable!("validated")
    };
    if kind.eq_ignore_ascii_case("NONE") {
        return Ok(json!({"Test": ["NONE"]}));
    }
    let test = match command.as_ref() {
        Args::Exec(v) => std::iter::once("CMD".to_string())
            .chain(v.iter().cloned())
            .collect::<Vec<_>>(),
        Args::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
        _ => unreachable!("validated"),
    };
    let mut hc = json!({"Test": test});
    let f = flags(ins).map_err(|m| anyhow!(m))?;
    for (flag, field) in [
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start-period", "StartPeriod"),
        ("start-interval", "StartInterval"),
    ] {
        if let Some(v) = f.get(flag) {
            let ns = duration_ns(flag, v)?;
            if ns != 0 && ns < 1_000_000 {
                bail!("Interval {flag:?} cannot be less than 1ms");
            }
            if ns != 0 {
                hc[field] = json!(ns);
            }
        }
    }
    if let Some(r) = f.get("retries") {
        let n: i64 = r
            .parse()
            .map_err(|_| anyhow!("HEALTHCHECK --retries={r}: not a number"))?;
        if n < 0 {
            bail!("--retries cannot be negative ({n})");
        }
        if n > 0 {
            hc["Retries"] = json!(n);
        }
    }
    Ok(hc)
}
// ANCHOR_END: healthcheck

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Instruction {
        crate::parse(text).unwrap().instructions.remove(0)
    }

    #[test]
    fn durations_are_go_durations() {
        assert_eq!(duration_ns("interval", "5s").unwrap(), 5_000_000_000);
        assert_eq!(duration_ns("interval", "1m30s").unwrap(), 90_000_000_000);
        assert_eq!(duration_ns("interval", "500ms").unwrap(), 500_000_000);
        assert!(duration_ns("interval", "5").is_err());
        assert!(duration_ns("interval", "5 parsecs").is_err());
    }

    #[test]
    fn healthcheck_is_stored_as_docker_stores_it() {
        let hc = healthcheck(&one("HEALTHCHECK --interval=5s --timeout=3s --retries=2 CMD curl -fs http://localhost/ || exit 1")).unwrap();
        assert_eq!(
            hc,
            json!({"Test": ["CMD-SHELL", "curl -fs http://localhost/ || exit 1"],
                   "Interval": 5_000_000_000i64, "Timeout": 3_000_000_000i64, "Retries": 2})
        );
        let hc = healthcheck(&one("HEALTHCHECK CMD [\"true\"]")).unwrap();
        assert_eq!(hc, json!({"Test": ["CMD", "true"]}));
        assert_eq!(
            healthcheck(&one("HEALTHCHECK NONE")).unwrap(),
            json!({"Test": ["NONE"]})
        );
    }

    #[test]
    fn ports_are_normalized() {
        assert_eq!(port_set("80").unwrap(), ["80/tcp"]);
        assert_eq!(port_set("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(
            port_set("7000-7002/udp").unwrap(),
            ["7000/udp", "7001/udp", "7002/udp"]
        );
        assert!(port_set("http").is_err());
        assert!(port_set("80/icmp").is_err());
        assert!(port_set("90-80").is_err());
        assert!(port_set("0").is_err());
    }
}
